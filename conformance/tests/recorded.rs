//! `validate --trace`: recorded steps written from model walks (as a node
//! would write them) validate; a single mutated record is a violation that
//! names the step, node, seq, event and field; inputs beyond the model are
//! limitation errors.

use raft_conformance::recorded::{located, validate_records, validate_records_with, RecordWriter};
use raft_conformance::steps::{self, RecEvent, Record};
use raft_model::types::Action;
use raft_model::{Config, RaftModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::Model;

fn walk_config() -> Config {
    Config {
        servers: 3,
        max_term: 4,
        max_requests: 3,
        max_inflight: 4,
        max_snapshots: 3,
        max_restarts: 2,
        max_partitions: 0,
        max_duplicates: 2,
        ..Config::default()
    }
}

/// A seeded random walk of the model written as records.
fn walk(cfg: &Config, seed: u64, len: usize) -> RecordWriter {
    let model = RaftModel::new(cfg.clone());
    let mut w = RecordWriter::new(model.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..len {
        let mut actions = Vec::new();
        model.actions(w.state(), &mut actions);
        if actions.is_empty() {
            break;
        }
        let a = actions[rng.gen_range(0..actions.len())].clone();
        w.step(&a).unwrap();
    }
    w
}

#[test]
fn walks_written_as_records_validate() {
    let cfg = walk_config();
    let mut total = 0;
    let mut deliveries = 0;
    let (mut persists, mut outboxed) = (0, 0);
    let (mut snapshots, mut installs) = (0, 0);
    for seed in 0..200 {
        let w = walk(&cfg, seed, 60);
        persists += w
            .records
            .iter()
            .filter(|r| r.event == RecEvent::Persist)
            .count();
        outboxed += w
            .records
            .iter()
            .flat_map(|r| &r.sent)
            .filter(|s| s.outbox)
            .count();
        snapshots += w
            .records
            .iter()
            .filter(|r| r.event == RecEvent::Snapshot)
            .count();
        installs += w
            .records
            .iter()
            .flat_map(|r| &r.sent)
            .filter(|s| matches!(s.body, steps::RecBody::InstallSnapshot { .. }))
            .count();
        // Through the text form, as a file would be read.
        let text = w.ndjson();
        let recs = steps::parse_text(&text, "walk.ndjson").unwrap();
        assert_eq!(recs.len(), w.records.len());
        deliveries += recs
            .iter()
            .filter(|r| matches!(r.record.event, RecEvent::Deliver { .. }))
            .count();
        let out = validate_records(vec![recs]).unwrap();
        if let Some(v) = &out.violation {
            panic!("seed {seed}: model walk does not validate:\n{v}\n{text}");
        }
        assert_eq!(out.steps, w.records.len());
        assert!(out.model_steps >= out.steps);
        total += out.steps;
    }
    assert!(total > 5000, "{total} records");
    assert!(deliveries > total / 4, "{deliveries} deliveries");
    assert!(persists > total / 10, "{persists} persists");
    assert!(outboxed > 100, "{outboxed} messages through the outbox");
    assert!(snapshots > 20, "{snapshots} snapshots");
    assert!(installs > 5, "{installs} InstallSnapshots sent");
}

#[test]
fn records_split_over_files_per_node_merge_causally() {
    let cfg = walk_config();
    for seed in 0..50 {
        let w = walk(&cfg, seed, 60);
        // One file per node, given in reverse node order: a Deliver waits
        // for its message.
        let mut files = Vec::new();
        for node in (1..=3u64).rev() {
            let recs: Vec<Record> = w
                .records
                .iter()
                .filter(|r| r.node == node)
                .cloned()
                .collect();
            files.push(located(&recs, &format!("node{node}.ndjson")));
        }
        let out = validate_records(files).unwrap();
        assert!(
            out.violation.is_none(),
            "seed {seed}: {}",
            out.violation.unwrap()
        );
        assert_eq!(out.steps, w.records.len());
    }
}

/// A walk long enough to have a leader with entries, deliveries and a restart.
fn rich_walk() -> RecordWriter {
    let cfg = walk_config();
    (0..500)
        .map(|seed| walk(&cfg, seed, 60))
        .find(|w| {
            w.records
                .iter()
                .any(|r| matches!(r.event, RecEvent::Restart))
                && w.records.iter().any(|r| r.state.commit_index > 0)
        })
        .expect("a walk with a restart and a commit")
}

#[test]
fn a_mutated_record_is_a_violation_naming_step_node_seq_event_and_field() {
    let w = rich_walk();
    let k = w
        .records
        .iter()
        .position(|r| r.state.commit_index > 0)
        .unwrap();
    let mut recs = w.records.clone();
    recs[k].state.commit_index += 1;
    let out = validate_records(vec![located(&recs, "m.ndjson")]).unwrap();
    let v = out.violation.expect("mutated commit index must be caught");
    assert_eq!(v.step, k + 1);
    assert_eq!(v.line, k + 1);
    assert_eq!(v.node, recs[k].node);
    assert_eq!(v.seq, recs[k].seq);
    assert_eq!(v.event, recs[k].event);
    let i = recs[k].node - 1;
    assert_eq!(v.fields.len(), 1, "{v}");
    assert_eq!(v.fields[0].field, format!("servers[{i}].commit_index"));
    assert_eq!(v.fields[0].actual, (recs[k].state.commit_index).to_string());
    let text = v.to_string();
    assert!(
        text.starts_with(&format!(
            "VIOLATION at step {} (m.ndjson:{}): node {} seq {} event {{\"type\":",
            k + 1,
            k + 1,
            recs[k].node,
            recs[k].seq
        )),
        "{text}"
    );

    // A log hash that differs (one command byte changed in the summary).
    let mut recs = w.records.clone();
    let k = recs.iter().position(|r| r.state.log.len > 0).unwrap();
    recs[k].state.log.hash = "0000000000000000".into();
    let v = validate_records(vec![located(&recs, "m")])
        .unwrap()
        .violation
        .unwrap();
    assert_eq!(v.step, k + 1);
    assert!(v.fields[0].field.ends_with(".log"), "{v}");

    // A message body changed: the sent messages (to the network, or to the
    // outbox while the new term is pending) differ from the model's.
    let mut recs = w.records.clone();
    let k = recs
        .iter()
        .position(|r| {
            r.sent
                .iter()
                .any(|s| matches!(s.body, steps::RecBody::RequestVote { .. }))
        })
        .unwrap();
    for s in &mut recs[k].sent {
        if let steps::RecBody::RequestVote { last_log_index, .. } = &mut s.body {
            *last_log_index += 1;
        }
    }
    let v = validate_records(vec![located(&recs, "m")])
        .unwrap()
        .violation
        .unwrap();
    assert_eq!(v.step, k + 1);
    assert!(
        v.fields
            .iter()
            .any(|f| f.field.starts_with("sent to the network") || f.field.ends_with(".outbox")),
        "{v}"
    );
}

#[test]
fn a_restart_that_recovers_other_than_the_durable_state_is_a_violation() {
    let w = rich_walk();
    let k = w
        .records
        .iter()
        .position(|r| matches!(r.event, RecEvent::Restart))
        .unwrap();
    let mut recs = w.records.clone();
    recs[k].state.term += 1;
    recs[k].state.durable_term += 1;
    let v = validate_records(vec![located(&recs, "m")])
        .unwrap()
        .violation
        .unwrap();
    assert_eq!(v.step, k + 1);
    assert_eq!(
        v.action,
        Some(Action::Restart {
            server: (recs[k].node - 1) as u8
        })
    );
    assert!(v.error.contains("restart did not recover"), "{v}");
    let names: Vec<_> = v.fields.iter().map(|f| f.field.as_str()).collect();
    let i = recs[k].node - 1;
    assert_eq!(
        names,
        vec![
            format!("servers[{i}].term"),
            format!("servers[{i}].durable_term")
        ]
    );
}

#[test]
fn an_event_the_model_does_not_allow_is_a_violation() {
    let w = rich_walk();
    // A follower's record claims a Heartbeat.
    let mut recs = w.records.clone();
    let k = recs
        .iter()
        .position(|r| matches!(r.event, RecEvent::Timeout))
        .unwrap();
    recs[k].event = RecEvent::Heartbeat;
    let v = validate_records(vec![located(&recs, "m")])
        .unwrap()
        .violation
        .unwrap();
    assert_eq!(v.step, k + 1);
    assert!(v.error.contains("does not allow"), "{v}");
    // A delivery of a message nobody sent.
    let mut recs = w.records.clone();
    recs[0].event = RecEvent::Deliver { id: "9.9.9".into() };
    let v = validate_records(vec![located(&recs, "m")])
        .unwrap()
        .violation
        .unwrap();
    assert_eq!(v.step, 1);
    assert!(v.error.contains("9.9.9"), "{v}");
}

#[test]
fn safety_properties_are_evaluated_on_every_state() {
    // The model with a seeded vote bug breaks ElectionSafety along some
    // walk; validated against that same (bugged) model every step is
    // allowed, so only the property check can report it.
    let mut cfg = walk_config();
    cfg.bug = Some(raft_model::Bug::VoteTwice);
    cfg.max_requests = 0;
    let model = RaftModel::new(cfg.clone());
    let mut found = None;
    'seeds: for seed in 0..5000 {
        let mut w = RecordWriter::new(model.clone());
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..40 {
            let mut actions = Vec::new();
            model.actions(w.state(), &mut actions);
            if actions.is_empty() {
                if model.violates_safety(w.state()) {
                    found = Some(w);
                    break 'seeds;
                }
                break;
            }
            let a = actions[rng.gen_range(0..actions.len())].clone();
            w.step(&a).unwrap();
        }
    }
    let w = found.expect("a walk that violates a property of the bugged model");
    let out = validate_records_with(vec![located(&w.records, "m")], cfg.bug).unwrap();
    let v = out
        .violation
        .expect("the property violation must be reported");
    assert_eq!(v.step, w.records.len());
    assert!(v.property.is_some(), "{v}");
    assert!(v.to_string().contains("property violated: "), "{v}");
    // The correct model rejects the trace earlier or at the same step.
    let v = validate_records(vec![located(&w.records, "m")])
        .unwrap()
        .violation
        .unwrap();
    assert!(v.step <= w.records.len());
}

#[test]
fn many_commands_validate_and_out_of_range_numbers_are_a_limitation_error() {
    // Far more values than the 8 an 8-bit value set held before.
    let cfg = Config {
        servers: 1,
        max_requests: 200,
        ..walk_config()
    };
    let model = RaftModel::new(cfg);
    let mut w = RecordWriter::new(model);
    w.step(&Action::Timeout { server: 0 }).unwrap();
    for v in 1..=200 {
        w.step(&Action::ClientRequest {
            server: 0,
            value: v,
        })
        .unwrap();
    }
    let out = validate_records(vec![located(&w.records, "m")]).unwrap();
    assert!(out.violation.is_none(), "{}", out.violation.unwrap());
    assert_eq!(out.values, 200);
    assert_eq!(out.steps, 201);

    // A term beyond the model's u32 is reported as a limitation, not wrapped.
    let cfg = Config {
        servers: 3,
        ..walk_config()
    };
    let mut w = RecordWriter::new(RaftModel::new(cfg));
    w.step(&Action::Timeout { server: 0 }).unwrap();
    let mut recs = w.records.clone();
    let sent = recs[0]
        .sent
        .first_mut()
        .expect("a Timeout sends RequestVotes");
    let steps::RecBody::RequestVote { term, .. } = &mut sent.body else {
        panic!("{:?}", sent.body);
    };
    *term = u64::from(u32::MAX) + 1;
    let e = validate_records(vec![located(&recs, "m")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "m:1: model limitation: term = 4294967296 does not fit the model's range (at most 4294967295)"
    );
}

/// A recorded snapshot is compared by index and term. A state machine may
/// snapshot any committed index (R-snap-2): one below the commit index
/// validates; one above it is an event the model does not allow; one with
/// the wrong term is a violation naming the field.
#[test]
fn a_snapshot_is_checked_by_index_and_term() {
    let cfg = walk_config();
    let below = |r: &Record| {
        r.event == RecEvent::Snapshot
            && r.state
                .snapshot
                .is_some_and(|s| s.index < r.state.commit_index)
    };
    let (w, k) = (0..400)
        .find_map(|seed| {
            let w = walk(&cfg, seed, 60);
            let k = w.records.iter().position(below)?;
            Some((w, k))
        })
        .expect("some walk snapshots below its commit index");
    let snap = w.records[k].state.snapshot.unwrap();
    let prefix = &w.records[..=k];
    let out = validate_records(vec![located(prefix, "s")]).unwrap();
    assert!(out.violation.is_none(), "{}", out.violation.unwrap());

    let mut beyond = prefix.to_vec();
    beyond[k].state.snapshot = Some(steps::RecSnapshot {
        index: beyond[k].state.commit_index + 1,
        term: snap.term,
    });
    let v = validate_records(vec![located(&beyond, "s")])
        .unwrap()
        .violation
        .expect("a snapshot beyond the commit index is a violation");
    assert_eq!(v.step, k + 1);
    assert_eq!(
        v.error,
        "the model does not allow this event in the state the trace reached"
    );

    let mut wrong = prefix.to_vec();
    wrong[k].state.snapshot = Some(steps::RecSnapshot {
        index: snap.index,
        term: snap.term + 1,
    });
    let v = validate_records(vec![located(&wrong, "s")])
        .unwrap()
        .violation
        .expect("a snapshot of another term is a violation");
    assert_eq!(v.step, k + 1);
    assert!(
        v.fields.iter().any(|f| f.field.ends_with(".snapshot")),
        "{v}"
    );
}

/// Writes a long recorded walk for measuring `validate --trace` (run with
/// `RAFT_CONFORM_BENCH_FILE=path cargo test --release --test recorded -- --ignored`).
#[test]
#[ignore]
fn write_a_long_walk_for_benchmarks() {
    let Some(path) = std::env::var_os("RAFT_CONFORM_BENCH_FILE") else {
        return;
    };
    let cfg = Config {
        servers: 3,
        max_term: 250,
        max_requests: 8,
        max_inflight: 8,
        max_snapshots: 100,
        max_restarts: 200,
        max_partitions: 0,
        max_duplicates: 100,
        ..Config::default()
    };
    let w = walk(&cfg, 7, 100_000);
    std::fs::write(&path, w.ndjson()).unwrap();
    println!("{} records", w.records.len());
}

/// Real nodes record their steps (the node's in-memory trace sink) while a
/// model walk is replayed on them; the recorded NDJSON, read with
/// conformance's own parser, validates against the carried model state.
/// With a seeded durability bug the records show the violation.
#[test]
fn steps_recorded_by_real_nodes_validate_and_a_bug_is_a_violation() {
    use raft_conformance::cluster::data_root;
    use raft_conformance::generate::{random_walks, trace_from_actions};
    use raft_conformance::replay::replay_recording;
    use raft_model::trace::TraceKind;
    use raftkv::node::ImplBug;
    use raftkv::trace::TraceSink;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = walk_config();
    let model = RaftModel::new(cfg);
    let walks = random_walks(&model, 60, 40, 5);
    let root = data_root();
    let record = |actions: &[Action], bug: Option<ImplBug>| {
        let trace = trace_from_actions(&model, TraceKind::Walk, None, actions).unwrap();
        let sink = TraceSink::memory();
        let out = rt
            .block_on(replay_recording(
                &trace,
                "w",
                bug,
                &root,
                Some(sink.clone()),
            ))
            .unwrap();
        let text = sink.lines().unwrap().join("\n");
        (out, steps::parse_text(&text, "recorded").unwrap())
    };
    let mut records = 0;
    for (k, w) in walks.walks.iter().enumerate() {
        let (out, recs) = record(w, None);
        assert!(
            out.divergence.is_none(),
            "walk {k}: {}",
            out.divergence.unwrap()
        );
        records += recs.len();
        let v = validate_records(vec![recs.clone()]).unwrap();
        if let Some(v) = v.violation {
            let head: Vec<String> = recs
                .iter()
                .take(v.step + 1)
                .map(|r| serde_json::to_string(&r.record).unwrap())
                .collect();
            panic!(
                "walk {k}: the records of a conformant run do not validate:\n{v}\nactions: {:?}\nrecords:\n{}",
                &w[..v.step.min(w.len())],
                head.join("\n")
            );
        }
    }
    assert!(records > 1000, "{records} records");
    // vote-before-persist: a granted vote leaves before its Persist.
    let caught = walks.walks.iter().any(|w| {
        let (_, recs) = record(w, Some(ImplBug::VoteBeforePersist));
        validate_records(vec![recs]).unwrap().violation.is_some()
    });
    assert!(caught, "vote-before-persist not seen in the recorded steps");
}
