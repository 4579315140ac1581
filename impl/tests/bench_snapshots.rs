//! `raftkv bench --snapshots` end to end, tiny: both configurations run on
//! their own local clusters, the restarts read back what was written, and
//! compaction shows in the data directories. Nothing is timed: the
//! latencies and restart times it reports are only checked to be there.

use serde_json::Value;
use std::net::TcpListener;

mod common;

use common::{raftkv, stderr, stdout};

/// A base port with the `n` ports from it free right now, below the
/// kernel's ephemeral range (32768 and up on Linux) so that no client
/// connection takes one of them as its source port before the second
/// cluster binds it.
fn free_port_run(n: u16) -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id();
    for attempt in 0..200u32 {
        let base = 20_000 + ((seed.wrapping_add(attempt.wrapping_mul(7919))) % 12_000) as u16;
        let held: Vec<_> = (base..base + n)
            .map(|p| TcpListener::bind(("127.0.0.1", p)))
            .collect();
        if held.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no run of {n} free ports found");
}

#[test]
fn bench_snapshots_reports_both_configurations_and_reads_back_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_run(6).to_string();
    let o = raftkv(&[
        "bench",
        "--snapshots",
        "--nodes",
        "3",
        "--dir",
        dir.path().to_str().unwrap(),
        "--writes",
        "300",
        "--clients",
        "4",
        "--keys",
        "20",
        "--snapshot-entries",
        "50",
        "--restarts",
        "2",
        "--base-port",
        &base,
        "--json",
    ]);
    assert!(
        o.status.success(),
        "bench --snapshots failed:\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let r: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(&o)));
    let configs = r["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 2);
    let (off, on) = (&configs[0], &configs[1]);
    assert_eq!(off["name"], "off");
    assert_eq!(off["snapshot_entries"], 0);
    assert_eq!(on["name"], "on");
    assert_eq!(on["snapshot_entries"], 50);
    for c in configs {
        assert_eq!(c["latency"]["count"], 300, "{c}");
        assert_eq!(c["restarts"].as_array().unwrap().len(), 2, "{c}");
        assert!(c["keys_read_back"].as_u64().unwrap() >= 2, "{c}");
        assert_eq!(c["nodes"].as_array().unwrap().len(), 3, "{c}");
    }
    // Snapshots off never compact; on, every node has compacted (300 puts
    // are over 300 entries: at least 6 snapshot points) and holds less.
    for n in off["nodes"].as_array().unwrap() {
        assert_eq!(n["snapshot_index"], 0, "{n}");
        assert_eq!(n["snapshot_bytes"], 0, "{n}");
    }
    for n in on["nodes"].as_array().unwrap() {
        assert!(n["snapshot_index"].as_u64().unwrap() >= 50, "{n}");
        assert!(n["snapshot_bytes"].as_u64().unwrap() > 0, "{n}");
    }
    assert!(
        on["total_dir_bytes"].as_u64().unwrap() < off["total_dir_bytes"].as_u64().unwrap(),
        "on {} off {}",
        on["total_dir_bytes"],
        off["total_dir_bytes"]
    );
    // The table form prints both columns.
    let dir2 = tempfile::tempdir().unwrap();
    let base = free_port_run(6).to_string();
    let o = raftkv(&[
        "bench",
        "--snapshots",
        "--dir",
        dir2.path().to_str().unwrap(),
        "--writes",
        "100",
        "--clients",
        "2",
        "--snapshot-entries",
        "30",
        "--restarts",
        "1",
        "--base-port",
        &base,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(
        t.contains("snapshots off") && t.contains("snapshots every 30"),
        "{t}"
    );
    assert!(t.contains("read-back check") && t.contains("ok:"), "{t}");
    // A second run on the same --dir is refused: the clusters must be fresh.
    let o = raftkv(&[
        "bench",
        "--snapshots",
        "--dir",
        dir2.path().to_str().unwrap(),
        "--base-port",
        &base,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("fresh"), "{}", stderr(&o));
}
