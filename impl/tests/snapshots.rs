//! Snapshots and log compaction with real `raftkv serve` processes, in the
//! spirit of MIT 6.824's labs 3D/4B: the persisted state stays bounded over
//! thousands of writes; a follower that was down while the leader compacted
//! past its log catches up by InstallSnapshot; every acknowledged write
//! survives a restart of all nodes after compaction, and kill -9 of all
//! nodes while they snapshot constantly. Every wait is bounded; nothing is
//! timed.

use raftkv::client::{Client, ClientConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod common;

use common::{raftkv, stdout, wait_until, Procs};

fn cluster(dir: &Path, snapshot_entries: u64) -> Procs {
    Procs::start(dir, 3, move |_| {
        vec!["--snapshot-entries".into(), snapshot_entries.to_string()]
    })
}

fn client(procs: &Procs) -> Client {
    let cfg = ClientConfig {
        op_timeout: Duration::from_secs(30),
        attempt_timeout: Duration::from_secs(3),
        backoff: (Duration::from_millis(10), Duration::from_millis(200)),
    };
    Client::connect(procs.addrs.values().cloned().collect(), cfg).unwrap()
}

fn id_of(procs: &Procs, addr: &str) -> u64 {
    *procs.addrs.iter().find(|(_, a)| *a == addr).unwrap().0
}

/// `raftkv status --json` of the given nodes, by id; unreachable nodes are
/// left out.
fn status(procs: &Procs, ids: &[u64]) -> BTreeMap<u64, Value> {
    let addrs: Vec<&str> = ids.iter().map(|i| procs.addrs[i].as_str()).collect();
    let o = raftkv(&[
        "status",
        "--cluster",
        &addrs.join(","),
        "--json",
        "--timeout",
        "5",
    ]);
    let rows: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", stdout(&o)));
    rows.as_array()
        .expect("a JSON list")
        .iter()
        .filter(|r| r["reachable"] == Value::Bool(true))
        .map(|r| (r["id"].as_u64().unwrap(), r.clone()))
        .collect()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is not a number in {v}"))
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

async fn put_range(
    c: &mut Client,
    range: std::ops::Range<u64>,
    acked: &mut BTreeMap<String, String>,
) {
    for i in range {
        let (k, v) = (format!("key{i}"), format!("value-{i}"));
        c.put(&k, &v)
            .await
            .unwrap_or_else(|e| panic!("put {k}: {e}"));
        acked.insert(k, v);
    }
}

async fn read_back(c: &mut Client, acked: &BTreeMap<String, String>) {
    for (k, v) in acked {
        assert_eq!(c.get(k).await.unwrap().as_ref(), Some(v), "key {k}");
    }
}

/// The bound docs/operating.md ("Snapshots") states for this test: with
/// `--snapshot-entries 200`, a node's data directory after 5,000 writes of
/// ~100-byte values to 100 keys.
const PERSISTED_BOUND: u64 = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_the_persisted_state_bounded_over_5000_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let procs = cluster(tmp.path(), 200);
    let result = tokio::time::timeout(Duration::from_secs(300), async {
        let mut c = client(&procs);
        let value = "v".repeat(100);
        for i in 0..5_000u64 {
            c.put(&format!("key{}", i % 100), &format!("{i}:{value}"))
                .await
                .unwrap_or_else(|e| panic!("put {i}: {e}"));
        }
        for k in 0..100u64 {
            let last = 4_900 + k;
            assert_eq!(
                c.get(&format!("key{k}")).await.unwrap(),
                Some(format!("{last}:{value}"))
            );
        }
    })
    .await;
    assert!(result.is_ok(), "timed out; node logs:\n{}", procs.logs());
    // Let the followers apply and snapshot the tail, then measure.
    let done = wait_until(30, || {
        let s = status(&procs, &[1, 2, 3]);
        s.len() == 3 && s.values().all(|r| u(r, "snapshot_index") >= 4_500)
    });
    let s = status(&procs, &[1, 2, 3]);
    assert!(done, "not every node compacted past index 4,500: {s:?}");
    // The log alone, uncompacted, would hold 5,000 such commands: over
    // twice the bound. The bound is discriminating.
    let command = raftkv::kv::encode_command(&raftkv::codec::ClientRequest {
        client_id: 1,
        seq: 4_999,
        op: raftkv::codec::Op::Put {
            key: "key99".into(),
            value: format!("4999:{}", "v".repeat(100)),
        },
    });
    assert!(5_000 * command.len() as u64 > 2 * PERSISTED_BOUND);
    for id in 1..=3u64 {
        let bytes = dir_bytes(&tmp.path().join(format!("node-{id}")));
        assert!(
            bytes < PERSISTED_BOUND,
            "node {id}: data directory holds {bytes} bytes, over the bound {PERSISTED_BOUND}; status {:?}",
            s[&id]
        );
        assert!(u(&s[&id], "log_bytes") < PERSISTED_BOUND, "{:?}", s[&id]);
        assert!(u(&s[&id], "last_index") >= 5_000, "{:?}", s[&id]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_leaders_snapshot_catches_up_by_install_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut procs = cluster(tmp.path(), 100);
    let result = tokio::time::timeout(Duration::from_secs(300), async {
        let mut c = client(&procs);
        let mut acked = BTreeMap::new();
        put_range(&mut c, 0..50, &mut acked).await;
        let leader = id_of(&procs, c.last_target());
        let follower = (1..=3).find(|i| *i != leader).unwrap();
        procs.kill(follower);
        let before = status(&procs, &[leader]);
        put_range(&mut c, 50..700, &mut acked).await;
        // The leader compacted past everything the follower has.
        let lead = id_of(&procs, c.last_target());
        let s = status(&procs, &[lead]);
        let snap = u(&s[&lead], "snapshot_index");
        assert!(
            snap > 150,
            "leader did not compact: {s:?} (before: {before:?})"
        );
        procs.spawn(follower);
        let caught_up = wait_until(60, || {
            let s = status(&procs, &[lead, follower]);
            s.len() == 2
                && u(&s[&follower], "snapshot_index") >= snap
                && u(&s[&follower], "applied_index") >= u(&s[&lead], "commit_index")
        });
        assert!(
            caught_up,
            "follower did not catch up: {:?}",
            status(&procs, &[lead, follower])
        );
        assert!(
            procs.log(follower).contains("installed snapshot"),
            "the follower caught up without an InstallSnapshot:\n{}",
            procs.log(follower)
        );
        // Now the follower is needed for a majority: kill the third node.
        let third = (1..=3).find(|i| *i != lead && *i != follower).unwrap();
        procs.kill(third);
        put_range(&mut c, 700..720, &mut acked).await;
        read_back(&mut c, &acked).await;
        // And the follower's own state machine serves them when it leads:
        // restart the third, stop the leader.
        procs.spawn(third);
        tokio::time::sleep(Duration::from_secs(1)).await;
        procs.kill(lead);
        let mut c = client(&procs);
        read_back(&mut c, &acked).await;
    })
    .await;
    assert!(result.is_ok(), "timed out; node logs:\n{}", procs.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_restart_of_all_nodes_after_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut procs = cluster(tmp.path(), 100);
    let result = tokio::time::timeout(Duration::from_secs(300), async {
        let mut c = client(&procs);
        let mut acked = BTreeMap::new();
        put_range(&mut c, 0..450, &mut acked).await;
        let compacted = wait_until(30, || {
            let s = status(&procs, &[1, 2, 3]);
            s.len() == 3 && s.values().all(|r| u(r, "snapshot_index") >= 300)
        });
        assert!(compacted, "{:?}", status(&procs, &[1, 2, 3]));
        for id in 1..=3 {
            procs.kill(id);
        }
        for id in 1..=3 {
            procs.spawn(id);
        }
        let mut c = client(&procs);
        read_back(&mut c, &acked).await;
        put_range(&mut c, 450..460, &mut acked).await;
        read_back(&mut c, &acked).await;
        // Restarted from their snapshots: no node re-read the whole log.
        let s = status(&procs, &[1, 2, 3]);
        assert!(s.values().all(|r| u(r, "snapshot_index") >= 300), "{s:?}");
    })
    .await;
    assert!(result.is_ok(), "timed out; node logs:\n{}", procs.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_all_nodes_while_they_snapshot_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    // A snapshot every 10 entries: a kill lands inside or next to a
    // snapshot write most of the time.
    let mut procs = cluster(tmp.path(), 10);
    let addrs: Vec<String> = procs.addrs.values().cloned().collect();
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let result = tokio::time::timeout(Duration::from_secs(400), async {
        for round in 0..4u64 {
            let cfg = ClientConfig {
                op_timeout: Duration::from_secs(60),
                attempt_timeout: Duration::from_secs(3),
                backoff: (Duration::from_millis(10), Duration::from_millis(200)),
            };
            let mut c = Client::connect(addrs.clone(), cfg).unwrap();
            let writer = tokio::spawn(async move {
                let mut ok = BTreeMap::new();
                for i in 0..80u64 {
                    let (k, v) = (format!("r{round}-{i}"), format!("{round}.{i}"));
                    if c.put(&k, &v).await.is_ok() {
                        ok.insert(k, v);
                    }
                }
                ok
            });
            // Kill all three mid-stream, at a different point each round.
            tokio::time::sleep(Duration::from_millis(150 + 170 * round)).await;
            for id in 1..=3 {
                procs.kill(id);
            }
            for id in 1..=3 {
                procs.spawn(id);
            }
            acked.extend(writer.await.unwrap());
        }
        assert!(
            acked.len() > 100,
            "too few writes were acknowledged: {}",
            acked.len()
        );
        for id in 1..=3 {
            procs.kill(id);
        }
        for id in 1..=3 {
            procs.spawn(id);
        }
        let mut c = client(&procs);
        read_back(&mut c, &acked).await;
    })
    .await;
    assert!(result.is_ok(), "timed out; node logs:\n{}", procs.logs());
}
