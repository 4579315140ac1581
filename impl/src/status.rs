//! `raftkv status`: one row per node, like `etcdctl endpoint status`.

use raftkv::client::node_status;
use raftkv::tls::Dialer;
use raftkv::types::Role;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// One node's row; every field but `addr`, `reachable` and `error` is
/// `None` when the node did not answer.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub id: Option<u64>,
    pub addr: String,
    pub reachable: bool,
    pub role: Option<&'static str>,
    pub term: Option<u64>,
    pub leader: Option<u64>,
    pub commit_index: Option<u64>,
    pub last_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The index of the node's durable snapshot (0: none yet).
    pub snapshot_index: Option<u64>,
    /// Bytes of log on the node's disk (its segment files).
    pub log_bytes: Option<u64>,
    pub fsync_p50_us: Option<u64>,
    pub fsync_p99_us: Option<u64>,
    /// Why the node did not answer.
    pub error: Option<String>,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// Asks every address concurrently; rows in the order of `addrs`.
pub async fn rows(dialer: &Dialer, addrs: &[String], timeout: Duration) -> Vec<Row> {
    let asks = addrs.iter().map(|addr| async move {
        match node_status(dialer, addr, timeout).await {
            Ok((s, m)) => {
                let h = m.fsync_histogram();
                let q = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
                Row {
                    id: Some(s.node),
                    addr: addr.clone(),
                    reachable: true,
                    role: Some(role_name(s.role)),
                    term: Some(s.term),
                    leader: s.leader,
                    commit_index: Some(s.commit_index),
                    last_index: Some(s.last_index),
                    applied_index: Some(s.applied_index),
                    snapshot_index: Some(s.snapshot_index),
                    log_bytes: Some(s.log_bytes),
                    fsync_p50_us: q(0.5),
                    fsync_p99_us: q(0.99),
                    error: None,
                }
            }
            Err(e) => Row {
                id: None,
                addr: addr.clone(),
                reachable: false,
                role: None,
                term: None,
                leader: None,
                commit_index: None,
                last_index: None,
                applied_index: None,
                snapshot_index: None,
                log_bytes: None,
                fsync_p50_us: None,
                fsync_p99_us: None,
                error: Some(e.to_string()),
            },
        }
    });
    futures::future::join_all(asks).await
}

/// The rows as an aligned table (unknown values as `-`).
pub fn table(rows: &[Row]) -> String {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let header = [
        "ID",
        "ADDRESS",
        "REACHABLE",
        "ROLE",
        "TERM",
        "LEADER",
        "COMMIT",
        "LAST",
        "APPLIED",
        "SNAPSHOT",
        "LOG_BYTES",
        "FSYNC_P50_US",
        "FSYNC_P99_US",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            opt(r.id),
            r.addr.clone(),
            if r.reachable { "yes" } else { "no" }.to_string(),
            r.role.unwrap_or("-").to_string(),
            opt(r.term),
            opt(r.leader),
            opt(r.commit_index),
            opt(r.last_index),
            opt(r.applied_index),
            opt(r.snapshot_index),
            opt(r.log_bytes),
            opt(r.fsync_p50_us),
            opt(r.fsync_p99_us),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}
