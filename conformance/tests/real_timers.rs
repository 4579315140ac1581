//! Real timers under paused time, an unreliable in-memory network and a
//! crash that loses unsynced writes: the steps the nodes record validate
//! against one carried model state (every safety property on every state,
//! the restart recovering exactly the durable state).

use raft_conformance::recorded::validate_records;
use raft_conformance::steps;
use raftkv::storage::MemStorage;
use raftkv::trace::TraceSink;
use raftkv::transport::memory::{Faults, MemNetwork, NetMode};
use raftkv::types::Role;
use raftkv::{Node, NodeConfig};
use std::collections::BTreeMap;
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
async fn recorded_steps_of_a_real_timer_cluster_with_faults_and_a_crash_validate() {
    let net = MemNetwork::new(NetMode::Auto, Faults::unreliable(), 3);
    let sink = TraceSink::memory();
    let storage: BTreeMap<u64, MemStorage> = (1..=3).map(|i| (i, MemStorage::new())).collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, spawn(id, &storage[&id], &net, &sink).await);
    }
    // At most 8 distinct commands: the model's client values are u8 sets.
    for round in 0..2 {
        let l = leader(&nodes).await;
        for k in 0..4 {
            let _ = l.start(format!("{round}-{k}").into_bytes()).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let n3 = nodes.remove(&3).unwrap();
    net.unregister(3);
    n3.shutdown().await;
    storage[&3].crash();
    nodes.insert(3, spawn(3, &storage[&3], &net, &sink).await);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for n in nodes.into_values() {
        net.unregister(n.id());
        n.shutdown().await;
    }
    let text = sink.lines().unwrap().join("\n");
    let recs = steps::parse_text(&text, "real-timers").unwrap();
    let n = recs.len();
    assert!(n > 50, "{n} records");
    let out = validate_records(vec![recs]).unwrap();
    if let Some(v) = out.violation {
        panic!("{v}");
    }
    println!(
        "{n} records, {} model steps, {} values",
        out.model_steps, out.values
    );
    assert_eq!(out.steps, n);
    assert!(out.values >= 4, "{} values", out.values);
}
