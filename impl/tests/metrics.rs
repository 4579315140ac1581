//! `serve --metrics-addr`: a 3-node cluster of real processes scraped over
//! HTTP after some writes; the text is parsed line by line and checked for
//! the metric names, values consistent with the writes, and monotone
//! histogram buckets. Every wait is bounded.

mod common;

use common::{free_ports, raftkv, stderr, wait_until, Procs};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// `GET path` over HTTP/1.1; (status code, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics address");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (code, body.to_string())
}

/// Samples by `name{labels}` (labels as printed), plus the `# TYPE` lines.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    /// Sample keys in the order printed.
    order: Vec<String>,
}

fn parse(text: &str) -> Scrape {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    let mut order = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("# TYPE name type");
            types.insert(name.to_string(), ty.to_string());
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let (key, value) = line.rsplit_once(' ').expect("name value");
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            samples.insert(key.to_string(), v);
            order.push(key.to_string());
        }
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    Scrape {
        samples,
        types,
        order,
    }
}

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key}; have {:?}", self.samples.keys()))
    }

    /// A histogram's buckets in printed order: (le, cumulative count).
    fn buckets(&self, name: &str) -> Vec<(String, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        self.order
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(|le| (le, k)))
            .map(|(le, k)| (le.trim_end_matches("\"}").to_string(), self.samples[k]))
            .collect()
    }

    /// Checks a histogram's shape; returns its count.
    fn histogram(&self, name: &str) -> f64 {
        assert_eq!(self.types.get(name).map(String::as_str), Some("histogram"));
        let b = self.buckets(name);
        assert!(b.len() >= 10, "{name}: {b:?}");
        assert_eq!(b.last().unwrap().0, "+Inf", "{name}: {b:?}");
        let bounds: Vec<f64> = b[..b.len() - 1]
            .iter()
            .map(|(le, _)| le.parse().unwrap())
            .collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{name}: {b:?}");
        assert!(
            b.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: buckets not monotone: {b:?}"
        );
        let count = self.get(&format!("{name}_count"));
        assert_eq!(b.last().unwrap().1, count, "{name}: +Inf bucket = count");
        let sum = self.get(&format!("{name}_sum"));
        assert!(
            sum >= 0.0 && (count == 0.0) == (sum == 0.0),
            "{name}: sum {sum}"
        );
        count
    }
}

#[test]
fn metrics_are_served_over_http_and_agree_with_the_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let mports = free_ports(3);
    let maddr = |id: u64| format!("127.0.0.1:{}", mports[id as usize - 1]);
    let procs = Procs::start(tmp.path(), 3, |id| vec!["--metrics-addr".into(), maddr(id)]);
    let cluster = procs.cluster();
    let puts = 6u64;
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
    // Wait for every node to apply the writes and agree on one leader.
    let mut scrapes = BTreeMap::new();
    let settled = wait_until(30, || {
        scrapes.clear();
        for id in 1..=3u64 {
            let (code, body) = http_get(&maddr(id), "/metrics");
            assert_eq!(code, 200, "{body}");
            scrapes.insert(id, parse(&body));
        }
        let leaders: Vec<u64> = scrapes
            .iter()
            .filter(|(_, s)| s.get("raftkv_role{role=\"leader\"}") == 1.0)
            .map(|(id, _)| *id)
            .collect();
        leaders.len() == 1
            && scrapes.values().all(|s| {
                s.get("raftkv_applied_index") >= puts as f64
                    && s.get("raftkv_leader") == leaders[0] as f64
            })
    });
    assert!(settled, "the nodes never agreed:\n{}", procs.logs());

    let mut writes_answered = 0.0;
    for (id, s) in &scrapes {
        for name in [
            "raftkv_role",
            "raftkv_term",
            "raftkv_leader",
            "raftkv_commit_index",
            "raftkv_last_index",
            "raftkv_applied_index",
        ] {
            assert_eq!(
                s.types.get(name).map(String::as_str),
                Some("gauge"),
                "{name}"
            );
        }
        assert_eq!(
            s.types.get("raftkv_proposals").map(String::as_str),
            Some("counter")
        );
        // One role at a time.
        let roles: f64 = ["follower", "candidate", "leader"]
            .iter()
            .map(|r| s.get(&format!("raftkv_role{{role=\"{r}\"}}")))
            .sum();
        assert_eq!(roles, 1.0, "node {id}");
        assert!(s.get("raftkv_term") >= 1.0);
        let (commit, last, applied) = (
            s.get("raftkv_commit_index"),
            s.get("raftkv_last_index"),
            s.get("raftkv_applied_index"),
        );
        assert!(commit >= puts as f64 && last >= commit && applied <= commit);
        // Every node stored the writes, so it fsynced.
        assert!(
            s.histogram("raftkv_fsync_duration_seconds") >= 1.0,
            "node {id}"
        );
        writes_answered += s.histogram("raftkv_client_write_duration_seconds");
        if s.get("raftkv_role{role=\"leader\"}") == 1.0 {
            // The leader proposed every write (and nothing else here).
            assert!(s.get("raftkv_proposals_total") >= puts as f64, "node {id}");
        }
        // The leader and each follower talk both ways (two followers
        // need not have exchanged anything since the election).
        let leader_id = s.get("raftkv_leader") as u64;
        for peer in (1..=3u64).filter(|p| p != id) {
            let sent = s.get(&format!(
                "raftkv_peer_messages_sent_total{{peer=\"{peer}\"}}"
            ));
            let received = s.get(&format!(
                "raftkv_peer_messages_received_total{{peer=\"{peer}\"}}"
            ));
            let dropped = s.get(&format!(
                "raftkv_peer_messages_dropped_total{{peer=\"{peer}\"}}"
            ));
            if *id == leader_id || peer == leader_id {
                assert!(
                    sent >= 1.0 && received >= 1.0,
                    "node {id} peer {peer}: sent {sent} received {received}"
                );
            }
            assert!(
                dropped >= 0.0 && dropped <= sent,
                "node {id} peer {peer}: sent {sent} dropped {dropped}"
            );
        }
        assert!(
            !s.samples
                .contains_key(&format!("raftkv_peer_messages_sent_total{{peer=\"{id}\"}}")),
            "no counters for itself"
        );
    }
    // Each put was answered OK once (a retry after a lost answer could add one).
    assert!(writes_answered >= puts as f64, "{writes_answered}");

    // A later scrape sees the leader's proposals grow with a write.
    let leader = *scrapes
        .iter()
        .find(|(_, s)| s.get("raftkv_role{role=\"leader\"}") == 1.0)
        .unwrap()
        .0;
    let before = scrapes[&leader].get("raftkv_proposals_total");
    let o = raftkv(&[
        "put",
        "one-more",
        "v",
        "--cluster",
        &cluster,
        "--timeout",
        "30",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = parse(&http_get(&maddr(leader), "/metrics").1);
    if after.get("raftkv_role{role=\"leader\"}") == 1.0 {
        assert!(after.get("raftkv_proposals_total") > before);
    }

    // Anything but /metrics is 404.
    assert_eq!(http_get(&maddr(1), "/").0, 404);
    assert_eq!(http_get(&maddr(1), "/metricsx").0, 404);
}

#[test]
fn a_bad_or_taken_metrics_address_is_refused() {
    let o = raftkv(&[
        "serve",
        "--id",
        "1",
        "--peers",
        "1=127.0.0.1:7001",
        "--data-dir",
        "unused",
        "--metrics-addr",
        "nonsense",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--metrics-addr"), "{}", stderr(&o));

    // Taken: the node fails to start and says which address.
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let port = free_ports(1)[0];
    let o = raftkv(&[
        "serve",
        "--id",
        "1",
        "--peers",
        &format!("1=127.0.0.1:{port}"),
        "--data-dir",
        tmp.path().join("d").to_str().unwrap(),
        "--metrics-addr",
        &taken_addr,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&taken_addr), "{}", stderr(&o));
}
