//! Recorded steps (docs/trace-format.md): a 3-node in-memory cluster under
//! Real timers records parseable records whose deliveries all reference
//! earlier sends, and a restarted node continues its `seq` with a Restart
//! record of the state it recovered.

use raftkv::storage::MemStorage;
use raftkv::trace::{log_hash, TraceSink};
use raftkv::transport::memory::{Faults, MemNetwork, NetMode};
use raftkv::types::Role;
use raftkv::{Node, NodeConfig};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

async fn spawn(id: u64, st: &MemStorage, net: &MemNetwork, sink: &TraceSink) -> Node {
    let mut cfg = NodeConfig::new(id, (1..=3).filter(|p| *p != id).collect());
    cfg.seed = Some(id);
    cfg.trace = Some(sink.clone());
    let (node, mut rx) = Node::spawn(cfg, Box::new(st.clone()), net.endpoint(id))
        .await
        .unwrap();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    net.register(node.clone());
    node
}

async fn leader(nodes: &BTreeMap<u64, Node>) -> Node {
    loop {
        for n in nodes.values() {
            if n.status().await.role == Role::Leader {
                return n.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_cluster_records_causal_parseable_steps() {
    let net = MemNetwork::new(NetMode::Auto, Faults::unreliable(), 3);
    let sink = TraceSink::memory();
    let storage: BTreeMap<u64, MemStorage> = (1..=3).map(|i| (i, MemStorage::new())).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, spawn(id, &storage[&id], &net, &sink).await);
    }
    for round in 0..3 {
        let l = leader(&nodes).await;
        for k in 0..5 {
            let _ = l.start(format!("{round}-{k}").into_bytes()).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Restart node 3 on its (durable) storage: its seq continues.
    let before = sink.next_seq(3).unwrap();
    let n3 = nodes.remove(&3).unwrap();
    net.unregister(3);
    n3.shutdown().await;
    storage[&3].crash();
    let recovered = storage[&3].snapshot();
    nodes.insert(3, spawn(3, &storage[&3], &net, &sink).await);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut statuses = BTreeMap::new();
    for (id, n) in &nodes {
        statuses.insert(*id, n.status().await);
    }
    for n in nodes.into_values() {
        net.unregister(n.id());
        n.shutdown().await;
    }

    let lines = sink.lines().unwrap();
    let mut sent: HashSet<String> = HashSet::new();
    let mut next_seq: BTreeMap<u64, u64> = BTreeMap::new();
    let mut last: BTreeMap<u64, Value> = BTreeMap::new();
    let (mut delivers, mut persists, mut restarts) = (0, 0, 0);
    for line in &lines {
        let r: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(r["format"], "raftkv-steps");
        assert_eq!(r["version"], 2);
        let node = r["node"].as_u64().unwrap();
        let seq = r["seq"].as_u64().unwrap();
        let expect = next_seq.entry(node).or_insert(0);
        assert_eq!(seq, *expect, "node {node}: seq not consecutive");
        *expect += 1;
        for (k, m) in r["sent"].as_array().unwrap().iter().enumerate() {
            let id = m["id"].as_str().unwrap();
            assert_eq!(id, format!("{node}.{seq}.{k}"));
            assert!(m["to"].as_u64().is_some() && m["outbox"].is_boolean());
            assert!(m["body"]["type"].is_string());
            sent.insert(id.to_string());
        }
        for id in r["state"]["outbox"].as_array().unwrap() {
            assert!(
                sent.contains(id.as_str().unwrap()),
                "outbox id {id} never sent"
            );
        }
        match r["event"]["type"].as_str().unwrap() {
            "Deliver" => {
                delivers += 1;
                let id = r["event"]["id"].as_str().expect("every sender records");
                assert!(
                    sent.contains(id),
                    "delivery of {id} before its send: {line}"
                );
            }
            "Persist" => {
                persists += 1;
                assert!(r["sent"].as_array().unwrap().is_empty());
                assert!(r["state"]["outbox"].as_array().unwrap().is_empty());
                let s = &r["state"];
                assert_eq!(s["log"], s["durable_log"], "durable after Persist");
                assert_eq!(s["term"], s["durable_term"]);
            }
            "Restart" => {
                restarts += 1;
                assert_eq!(node, 3);
                assert_eq!(seq, before, "a restart continues the seq");
                let s = &r["state"];
                assert_eq!(s["role"], "follower");
                assert_eq!(s["commit_index"], 0);
                assert_eq!(s["term"], recovered.hard_state.term);
                assert_eq!(s["log"]["len"], recovered.log.len());
                assert_eq!(
                    s["log"]["hash"],
                    format!("{:016x}", log_hash(&recovered.log))
                );
            }
            "Timeout" | "Heartbeat" | "ClientRequest" => {}
            other => panic!("unknown event {other}"),
        }
        last.insert(node, r);
    }
    assert!(
        delivers > 50 && persists > 10,
        "{delivers} deliveries, {persists} persists"
    );
    assert_eq!(restarts, 1);
    // The last record of each node is its final state; the incremental
    // hash equals the hash of the whole log.
    for (id, s) in &statuses {
        let st = &last[id]["state"];
        assert_eq!(st["term"], s.term);
        assert_eq!(st["commit_index"], s.commit_index);
        assert_eq!(st["log"]["len"], s.log.len());
        assert_eq!(st["log"]["hash"], format!("{:016x}", log_hash(&s.log)));
        assert_eq!(
            st["durable_log"]["hash"],
            format!("{:016x}", log_hash(&s.durable_log))
        );
        assert!(
            s.commit_index >= 15,
            "node {id} committed {}",
            s.commit_index
        );
    }
}

#[test]
fn an_unwritable_trace_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = TraceSink::open(dir.path().join("missing-dir").join("t.ndjson")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot open trace file") && msg.contains("t.ndjson"),
        "{msg}"
    );
}
