//! `raftkv status` against real `raftkv serve` processes: the JSON keys and
//! values of a healthy 3-node cluster after some writes, the table, a
//! killed node's row and the exit codes. Every wait is bounded.

mod common;

use common::{raftkv, stderr, stdout, wait_until, Procs};
use serde_json::Value;
use std::collections::BTreeSet;

const KEYS: [&str; 14] = [
    "id",
    "addr",
    "reachable",
    "role",
    "term",
    "leader",
    "commit_index",
    "last_index",
    "applied_index",
    "snapshot_index",
    "log_bytes",
    "fsync_p50_us",
    "fsync_p99_us",
    "error",
];

fn status_json(cluster: &str) -> (Option<i32>, Vec<Value>, String) {
    let o = raftkv(&["status", "--cluster", cluster, "--json", "--timeout", "5"]);
    let rows: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", stdout(&o)));
    let rows = rows.as_array().expect("a JSON list").clone();
    (o.status.code(), rows, stderr(&o))
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is not a number in {v}"))
}

#[test]
fn status_reports_every_node_and_a_dead_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut procs = Procs::start(tmp.path(), 3, |_| vec![]);
    let cluster = procs.cluster();
    let puts = 5u64;
    for i in 0..puts {
        let o = raftkv(&[
            "put",
            &format!("k{i}"),
            "v",
            "--cluster",
            &cluster,
            "--timeout",
            "30",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), procs.logs());
    }

    // Followers apply once the next heartbeat tells them the commit index;
    // on a loaded machine an election may be under way: wait for a status
    // where every node applied the writes and agrees on one leader.
    let mut last = None;
    let settled = wait_until(30, || {
        let (code, rows, _) = status_json(&cluster);
        let leaders: Vec<&Value> = rows.iter().filter(|r| r["role"] == "leader").collect();
        let ok = code == Some(0)
            && rows.len() == 3
            && rows
                .iter()
                .all(|r| r["applied_index"].as_u64() >= Some(puts))
            && leaders.len() == 1
            && rows.iter().all(|r| r["leader"] == leaders[0]["id"]);
        last = Some(rows);
        ok
    });
    let rows = last.unwrap();
    assert!(
        settled,
        "status never showed every write applied under one leader: {rows:#?}"
    );

    let leaders: Vec<&Value> = rows.iter().filter(|r| r["role"] == "leader").collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {rows:#?}");
    let leader = u(leaders[0], "id");
    let mut ids = BTreeSet::new();
    for (r, (id, addr)) in rows.iter().zip(&procs.addrs) {
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, KEYS.into_iter().collect(), "{r}");
        assert_eq!(r["addr"], addr.as_str(), "rows in the order of --cluster");
        assert_eq!(u(r, "id"), *id, "{r}");
        assert_eq!(r["reachable"], true);
        assert!(r["error"].is_null());
        assert!(u(r, "term") >= 1, "{r}");
        assert_eq!(u(r, "leader"), leader, "every node knows the leader: {r}");
        let (commit, last, applied) = (
            u(r, "commit_index"),
            u(r, "last_index"),
            u(r, "applied_index"),
        );
        assert!(commit >= puts && last >= commit && applied <= commit, "{r}");
        // Every node fsynced the writes it stored.
        assert!(u(r, "fsync_p50_us") <= u(r, "fsync_p99_us"), "{r}");
        if u(r, "id") != leader {
            assert!(["follower", "candidate"].contains(&r["role"].as_str().unwrap()));
        }
        ids.insert(*id);
    }
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    // The leader's term is the highest.
    let leader_term = u(leaders[0], "term");
    assert!(
        rows.iter().all(|r| u(r, "term") <= leader_term),
        "{rows:#?}"
    );

    // The table: a header and one line per node.
    let o = raftkv(&["status", "--cluster", &cluster]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("FSYNC_P99_US"),
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" leader ")).count(),
        1,
        "{text}"
    );

    // Kill a follower: its row says unreachable, with everything else null,
    // and the command exits 1; the others still answer.
    let victim = *procs.addrs.keys().find(|id| **id != leader).unwrap();
    procs.kill(victim);
    let (code, rows, err) = status_json(&cluster);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, KEYS.into_iter().collect(), "{r}");
        if r["addr"] == procs.addrs[&victim].as_str() {
            assert_eq!(r["reachable"], false, "{r}");
            assert!(r["error"].is_string(), "{r}");
            for k in KEYS {
                if !["addr", "reachable", "error"].contains(&k) {
                    assert!(r[k].is_null(), "{k} of an unreachable node: {r}");
                }
            }
        } else {
            assert_eq!(r["reachable"], true, "{r}");
        }
    }
    assert!(err.contains(&procs.addrs[&victim]), "{err}");
}

#[test]
fn status_bad_input_is_a_usage_error() {
    for args in [
        &["status", "--cluster", "nonsense"][..],
        &["status"][..],
        &["status", "--cluster", "127.0.0.1:1", "--timeout", "0"][..],
    ] {
        let o = raftkv(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn status_of_nothing_listening_exits_1() {
    let port = common::free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let (code, rows, err) = status_json(&addr);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["reachable"], false);
    assert!(rows[0]["id"].is_null());
}
