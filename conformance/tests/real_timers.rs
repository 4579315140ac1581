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
    for round in 0..3 {
        let l = leader(&nodes).await;
        for k in 0..12 {
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
    // More than the 8 values the model's 8-bit value sets held before.
    assert!(out.values > 8, "{} values", out.values);
}

/// `validate --seeds N --timers real` as a library: clean seeded runs (the
/// production node loop on its own timers, partitions, crashes that lose
/// unsynced writes) validate; every seeded implementation bug whose effect
/// shows in recorded steps on this harness is caught within 8 seeds.
#[test]
fn real_timer_validation_passes_clean_and_catches_seeded_bugs() {
    use raft_conformance::real_timers::run_many;
    use raftkv::node::ImplBug;
    let clean = run_many(3, 150, 0..8, None, 4).unwrap();
    assert_eq!(clean.outcomes.len(), 8);
    if let Some(o) = clean.first() {
        panic!("seed {}: {}", o.seed, o.violation.as_ref().unwrap());
    }
    let restarts: usize = clean.outcomes.iter().map(|o| o.restarts).sum();
    let proposals: usize = clean.outcomes.iter().map(|o| o.proposals).sum();
    assert!(restarts >= 8, "{restarts} restarts");
    assert!(proposals >= 100, "{proposals} proposals");
    assert!(clean.records() > 5000, "{} records", clean.records());
    for name in [
        "commit-old-term",
        "no-persist-vote",
        "truncate-on-match",
        "accept-stale-response",
        "vote-without-log-check",
        "ack-before-persist",
        "vote-before-persist",
    ] {
        let bug: ImplBug = name.parse().unwrap();
        let s = run_many(3, 200, 0..8, Some(bug), 4).unwrap();
        let o = s
            .first()
            .unwrap_or_else(|| panic!("{name}: not caught in 8 real-timer runs"));
        // The records of the violating run are kept and re-check the same.
        let text = o.ndjson.as_ref().expect("records of a violating run");
        let recs = steps::parse_text(text, name).unwrap();
        let again = validate_records(vec![recs]).unwrap();
        assert!(again.violation.is_some(), "{name}");
    }
}

/// A follower more than MAX_BATCH (1024) entries behind catches up one
/// batch at a time, and the recorded steps validate: the model sends at
/// most `Config::max_batch` entries per AppendEntries, as the core does.
/// Before the model had the batch rule, validation failed here (the model
/// expected the whole 2,100-entry suffix in one message).
#[test]
fn a_follower_a_batch_behind_catches_up_in_batches_and_validates() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let o = rt
        .block_on(raft_conformance::real_timers::catch_up(2100, 7))
        .unwrap();
    if let Some(v) = &o.violation {
        panic!("{v}");
    }
    let text = o.ndjson.as_ref().expect("catch_up keeps its records");
    // AppendEntries sent to node 3, by number of entries: the catch-up used
    // full batches and ended with a shorter one.
    let mut sizes = Vec::new();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        for m in r["sent"].as_array().unwrap() {
            if m["to"] == 3 && m["body"]["type"] == "AppendEntries" {
                sizes.push(m["body"]["entries"].as_array().unwrap().len());
            }
        }
    }
    let full = sizes.iter().filter(|&&n| n == 1024).count();
    assert!(full >= 2, "full batches to node 3: {full} of {sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 1024), "{sizes:?}");
    assert!(o.records > 2100, "{} records", o.records);
}
