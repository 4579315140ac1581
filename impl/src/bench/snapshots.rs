//! `raftkv bench --snapshots`: what snapshots cost and what they save.
//!
//! Two configurations, one after the other, each on a fresh local cluster
//! in its own subdirectory of `--dir`: snapshots off (`serve
//! --snapshot-entries 0`) and on. Each gets the same load; then the bench
//! measures the nodes' data directories, kills every node with SIGKILL,
//! starts them again on the same directories and times until a leader is
//! elected and until a linearizable read succeeds, and checks that written
//! keys read back with the values last written.

use super::us;
use crate::cli::usage;
use crate::launcher::LocalCluster;
use anyhow::{anyhow, bail, ensure, Context, Result};
use hdrhistogram::Histogram;
use raftkv::client::{node_status, Client, ClientConfig};
use raftkv::codec::NodeStatus;
use raftkv::tls::Dialer;
use raftkv::types::Role;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the bench asks every node for its snapshot index while it
/// writes.
const POLL: Duration = Duration::from_millis(25);
/// A key written before the load and read after every restart.
const PROBE_KEY: &str = "snapbench-probe";
const PROBE_VALUE: &str = "probe";
/// Bound on every wait for the cluster (start, catch-up, restart).
const WAIT: Duration = Duration::from_secs(180);

pub struct SnapshotBenchOptions {
    /// The `raftkv` executable the nodes run.
    pub exe: PathBuf,
    pub nodes: u64,
    pub dir: PathBuf,
    /// Port of node 1 of the snapshots-off cluster; the snapshots-on
    /// cluster uses the `nodes` ports after its.
    pub base_port: u16,
    pub clients: usize,
    pub writes: u64,
    pub value_size: usize,
    pub keys: u64,
    /// `serve --snapshot-entries` of the snapshots-on cluster.
    pub snapshot_entries: u64,
    pub restarts: usize,
}

/// Latency summary of some writes, in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        })
    }

    fn show(l: &Option<Latency>) -> String {
        match l {
            None => "-".into(),
            Some(l) => format!(
                "{} / {} / {}  ({} writes)",
                us(l.p50_us),
                us(l.p99_us),
                us(l.max_us),
                l.count
            ),
        }
    }
}

/// A node's snapshot index moved between two polls.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotEvent {
    pub node: u64,
    pub snapshot_index: u64,
    /// The window writes count as overlapping it, in microseconds since
    /// the load started: from the poll before the last one that still saw
    /// the old index to the answer that showed the new one.
    pub from_us: u64,
    pub to_us: u64,
}

/// One node's data directory after the load.
#[derive(Clone, Debug, Serialize)]
pub struct NodeDisk {
    pub id: u64,
    /// Bytes of every file in the data directory (apparent sizes).
    pub dir_bytes: u64,
    /// Bytes of the log segment files (`*.seg`).
    pub segment_bytes: u64,
    /// Bytes of the snapshot file(s) (`snapshot-*`).
    pub snapshot_bytes: u64,
    /// What the node reported as `log_bytes` before it was killed.
    pub log_bytes: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub last_index: Option<u64>,
}

/// One kill -9 / restart round.
#[derive(Clone, Debug, Serialize)]
pub struct Restart {
    /// From starting the processes until every node has answered a status
    /// request (it has opened its data directory: log and snapshot read).
    pub answering_ms: f64,
    /// From starting the processes to the first status answer naming a
    /// leader.
    pub leader_ms: f64,
    /// From starting the processes to a successful linearizable read of the
    /// probe key.
    pub serving_ms: f64,
}

/// One configuration's results.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigReport {
    /// `off` or `on`.
    pub name: &'static str,
    /// `serve --snapshot-entries` (0: off).
    pub snapshot_entries: u64,
    pub dir: String,
    pub load_seconds: f64,
    pub writes_per_sec: f64,
    pub latency: Option<Latency>,
    /// Writes in flight during some [`SnapshotEvent`] window.
    pub latency_overlapping_snapshot: Option<Latency>,
    pub latency_not_overlapping: Option<Latency>,
    pub snapshot_events: Vec<SnapshotEvent>,
    pub nodes: Vec<NodeDisk>,
    pub total_dir_bytes: u64,
    /// How the nodes were stopped before each restart.
    pub stop: &'static str,
    pub restarts: Vec<Restart>,
    pub restart_serving_median_ms: f64,
    /// Keys read back with the value last written, in every restart round.
    pub keys_read_back: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct SnapshotReport {
    pub nodes: u64,
    pub writes: u64,
    pub clients: usize,
    pub value_size: usize,
    /// Distinct keys written.
    pub keys: u64,
    pub poll_ms: u64,
    pub configs: Vec<ConfigReport>,
    /// Write p99, snapshots on / off.
    pub p99_ratio_on_off: Option<f64>,
    /// Median time to serve after restart, on / off.
    pub restart_ratio_on_off: Option<f64>,
    /// Total data-dir bytes, on / off.
    pub dir_bytes_ratio_on_off: Option<f64>,
}

/// Which key and value write `k` of client `i` uses: every key belongs to
/// one client, so the value it holds at the end is known.
#[derive(Clone, Copy)]
struct Keys {
    slots: u64,
    value_size: usize,
}

impl Keys {
    fn key(&self, i: usize, slot: u64) -> String {
        format!("snapbench-{i}-{slot}")
    }

    fn value(&self, i: usize, k: u64) -> String {
        let mut v = format!("{i}:{k}:");
        while v.len() < self.value_size {
            v.push('x');
        }
        v
    }

    /// The last of client `i`'s `n` writes to `slot`, if any.
    fn last_write(&self, n: u64, slot: u64) -> Option<u64> {
        (slot < n).then(|| slot + self.slots * ((n - 1 - slot) / self.slots))
    }
}

fn writes_of(total: u64, clients: usize, i: usize) -> u64 {
    total / clients as u64 + u64::from((i as u64) < total % clients as u64)
}

pub async fn snapshots(o: &SnapshotBenchOptions) -> Result<SnapshotReport> {
    if o.clients == 0 || o.writes == 0 {
        return Err(usage("--clients and --writes must be at least 1"));
    }
    if o.snapshot_entries == 0 {
        return Err(usage(
            "--snapshot-entries must be at least 1 (the bench runs snapshots off by itself)",
        ));
    }
    if o.keys == 0 || o.restarts == 0 || o.nodes == 0 {
        return Err(usage("--keys, --restarts and --nodes must be at least 1"));
    }
    let on_port = u64::from(o.base_port) + o.nodes;
    if on_port + o.nodes - 1 > u64::from(u16::MAX) {
        return Err(usage(format!(
            "ports {}.. do not fit two clusters of {} nodes",
            o.base_port, o.nodes
        )));
    }
    for name in ["off", "on"] {
        let d = o.dir.join(name);
        if d.exists() {
            return Err(usage(format!(
                "{} exists: the bench needs fresh clusters; give a new --dir",
                d.display()
            )));
        }
    }
    let keys = Keys {
        slots: (o.keys / o.clients as u64).max(1),
        value_size: o.value_size,
    };
    let off = run_config(o, keys, "off", 0, o.base_port)
        .await
        .context("snapshots off")?;
    let on = run_config(o, keys, "on", o.snapshot_entries, on_port as u16)
        .await
        .context("snapshots on")?;
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    let p99 = |c: &ConfigReport| c.latency.as_ref().map_or(0.0, |l| l.p99_us as f64);
    Ok(SnapshotReport {
        nodes: o.nodes,
        writes: o.writes,
        clients: o.clients,
        value_size: o.value_size,
        keys: keys.slots * o.clients as u64,
        poll_ms: POLL.as_millis() as u64,
        p99_ratio_on_off: ratio(p99(&on), p99(&off)),
        restart_ratio_on_off: ratio(on.restart_serving_median_ms, off.restart_serving_median_ms),
        dir_bytes_ratio_on_off: ratio(on.total_dir_bytes as f64, off.total_dir_bytes as f64),
        configs: vec![off, on],
    })
}

fn client_for(addrs: &[String]) -> Result<Client> {
    let cfg = ClientConfig {
        op_timeout: WAIT,
        attempt_timeout: Duration::from_secs(2),
        backoff: (Duration::from_millis(5), Duration::from_millis(50)),
    };
    Ok(Client::connect(addrs.to_vec(), cfg)?)
}

async fn statuses(addrs: &[String], timeout: Duration) -> Vec<Option<NodeStatus>> {
    let dialer = Dialer::plain();
    let asks = addrs.iter().map(|a| {
        let dialer = dialer.clone();
        async move { node_status(&dialer, a, timeout).await.ok().map(|(s, _)| s) }
    });
    futures::future::join_all(asks).await
}

async fn run_config(
    o: &SnapshotBenchOptions,
    keys: Keys,
    name: &'static str,
    snapshot_entries: u64,
    base_port: u16,
) -> Result<ConfigReport> {
    let dir = o.dir.join(name);
    eprintln!(
        "snapshots {name}: starting {} nodes in {} (--snapshot-entries {snapshot_entries})",
        o.nodes,
        dir.display()
    );
    let mut cluster = LocalCluster::start_with_serve_args(
        &o.exe,
        o.nodes,
        &dir,
        base_port,
        vec!["--snapshot-entries".into(), snapshot_entries.to_string()],
    )
    .context("starting the local cluster")?;
    let addrs: Vec<String> = cluster.addrs().values().cloned().collect();

    // Every client registers and finds the leader before the clock starts.
    let clients = unless_a_node_dies(&mut cluster, &dir, async {
        let mut probe = client_for(&addrs)?;
        probe
            .put(PROBE_KEY, PROBE_VALUE)
            .await
            .context("first write to the new cluster")?;
        let mut clients = Vec::new();
        for i in 0..o.clients {
            let mut c = client_for(&addrs)?;
            c.put(&format!("snapbench-warmup-{i}"), "x")
                .await
                .context("warm-up write")?;
            clients.push(c);
        }
        Ok(clients)
    })
    .await?;

    eprintln!(
        "snapshots {name}: {} writes from {} clients",
        o.writes, o.clients
    );
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_snapshots(addrs.clone(), start, stop.clone()));
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let n = writes_of(o.writes, o.clients, i);
        tasks.push(tokio::spawn(async move {
            // (start, duration) of every write, in µs since `start`.
            let mut times = Vec::with_capacity(n as usize);
            for k in 0..n {
                let t = Instant::now();
                c.put(&keys.key(i, k % keys.slots), &keys.value(i, k))
                    .await
                    .with_context(|| format!("client {i}, write {k}"))?;
                let began = t.duration_since(start).as_micros() as u64;
                times.push((began, t.elapsed().as_micros() as u64));
            }
            anyhow::Ok(times)
        }));
    }
    let times = unless_a_node_dies(&mut cluster, &dir, async {
        let mut times = Vec::new();
        for t in tasks {
            times.extend(t.await.context("bench client panicked")??);
        }
        Ok(times)
    })
    .await;
    let times = match times {
        Ok(t) => t,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };
    let load = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let events = poller.await.context("status poller panicked")?;

    let mut all = hist();
    let mut over = hist();
    let mut other = hist();
    for &(began, d) in &times {
        all.record(d.max(1))?;
        let end = began + d;
        let overlaps = events.iter().any(|e| began <= e.to_us && end >= e.from_us);
        if overlaps { &mut over } else { &mut other }.record(d.max(1))?;
    }

    // Let the followers apply everything, then look at the disks.
    let nodes =
        unless_a_node_dies(&mut cluster, &dir, async { Ok(catch_up(&addrs).await) }).await?;
    cluster.stop_all();
    let mut disks = Vec::new();
    for (n, id) in cluster.addrs().keys().enumerate() {
        let (dir_bytes, segment_bytes, snapshot_bytes) = dir_size(&cluster.data_dir(*id))?;
        let s = nodes.get(n).and_then(|s| s.as_ref());
        disks.push(NodeDisk {
            id: *id,
            dir_bytes,
            segment_bytes,
            snapshot_bytes,
            log_bytes: s.map(|s| s.log_bytes),
            snapshot_index: s.map(|s| s.snapshot_index),
            last_index: s.map(|s| s.last_index),
        });
    }

    // The keys to read back: first, middle and last slot of three clients.
    let mut sample = Vec::new();
    for i in [0, o.clients / 2, o.clients - 1] {
        let n = writes_of(o.writes, o.clients, i);
        // Slots this client wrote at all.
        let m = n.min(keys.slots).max(1);
        for slot in [0, m / 2, m - 1] {
            if let Some(k) = keys.last_write(n, slot) {
                let pair = (keys.key(i, slot), keys.value(i, k));
                if !sample.contains(&pair) {
                    sample.push(pair);
                }
            }
        }
    }

    let mut restarts = Vec::new();
    for round in 1..=o.restarts {
        cluster.stop_all();
        let t0 = Instant::now();
        cluster.spawn_all().context("restarting the nodes")?;
        let r = unless_a_node_dies(&mut cluster, &dir, async {
            let mut answered = vec![false; addrs.len()];
            let (mut answering, mut leader) = (None, None);
            let (answering, leader) = loop {
                let ss = statuses(&addrs, Duration::from_millis(500)).await;
                let t = t0.elapsed();
                for (a, s) in answered.iter_mut().zip(&ss) {
                    *a |= s.is_some();
                }
                if answering.is_none() && answered.iter().all(|a| *a) {
                    answering = Some(t);
                }
                if leader.is_none() && ss.iter().flatten().any(|s| s.role == Role::Leader) {
                    leader = Some(t);
                }
                if let (Some(a), Some(l)) = (answering, leader) {
                    break (a, l);
                }
                if t > WAIT {
                    bail!(
                        "restart {round}: no leader, or not every node answering, after {WAIT:?} \
                     (node logs in {})",
                        dir.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let mut c = client_for(&addrs)?;
            let v = c
                .get(PROBE_KEY)
                .await
                .with_context(|| format!("restart {round}: reading {PROBE_KEY}"))?;
            let serving = t0.elapsed();
            ensure!(
                v.as_deref() == Some(PROBE_VALUE),
                "restart {round}: {PROBE_KEY} read back as {v:?}, not {PROBE_VALUE:?}"
            );
            for (k, want) in &sample {
                let got = c
                    .get(k)
                    .await
                    .with_context(|| format!("restart {round}: reading {k}"))?;
                ensure!(
                got.as_deref() == Some(want.as_str()),
                "restart {round}: {k} read back as {got:?}, not the last value written {want:?}"
            );
            }
            Ok((answering, leader, serving))
        })
        .await?;
        let (answering, leader, serving) = r;
        eprintln!(
            "snapshots {name}: restart {round}: every node answering after {answering:?}, \
             leader after {leader:?}, read OK after {serving:?}; {} keys read back",
            sample.len() + 1
        );
        restarts.push(Restart {
            answering_ms: answering.as_secs_f64() * 1000.0,
            leader_ms: leader.as_secs_f64() * 1000.0,
            serving_ms: serving.as_secs_f64() * 1000.0,
        });
    }
    cluster.stop_all();
    let mut serving: Vec<f64> = restarts.iter().map(|r| r.serving_ms).collect();
    serving.sort_by(f64::total_cmp);
    Ok(ConfigReport {
        name,
        snapshot_entries,
        dir: dir.display().to_string(),
        load_seconds: load.as_secs_f64(),
        writes_per_sec: times.len() as f64 / load.as_secs_f64(),
        latency: Latency::of(&all),
        latency_overlapping_snapshot: Latency::of(&over),
        latency_not_overlapping: (!events.is_empty()).then(|| Latency::of(&other)).flatten(),
        snapshot_events: events,
        total_dir_bytes: disks.iter().map(|d| d.dir_bytes).sum(),
        nodes: disks,
        stop: "SIGKILL",
        restarts,
        restart_serving_median_ms: serving[serving.len() / 2],
        keys_read_back: sample.len() + 1,
    })
}

/// `fut`, or an error naming the node and its log if one of the cluster's
/// nodes exits first (a node that cannot bind its port, say).
async fn unless_a_node_dies<T>(
    cluster: &mut LocalCluster,
    dir: &Path,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        r = fut => r,
        (id, status) = cluster.wait_any_exit() => Err(anyhow!(
            "node {id} exited on its own ({status}); its log is {}",
            dir.join(format!("node-{id}.log")).display()
        )),
    }
}

fn hist() -> Histogram<u64> {
    Histogram::<u64>::new(3).expect("valid histogram precision")
}

/// Polls every node's snapshot index until `stop`; one event per change.
async fn poll_snapshots(
    addrs: Vec<String>,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<SnapshotEvent> {
    let now = || start.elapsed().as_micros() as u64;
    // Per address: the snapshot index last seen, and when the last two
    // polls that saw it were sent.
    let mut last: BTreeMap<usize, (u64, u64, u64)> = BTreeMap::new();
    let mut events = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = now();
        let ss = statuses(&addrs, Duration::from_secs(1)).await;
        let answered = now();
        for (n, s) in ss.into_iter().enumerate() {
            let Some(s) = s else { continue };
            match last.get(&n).copied() {
                Some((idx, before, _)) if idx != s.snapshot_index => {
                    events.push(SnapshotEvent {
                        node: s.node,
                        snapshot_index: s.snapshot_index,
                        from_us: before,
                        to_us: answered,
                    });
                    last.insert(n, (s.snapshot_index, sent, sent));
                }
                Some((idx, _, prev)) => {
                    last.insert(n, (idx, prev, sent));
                }
                None => {
                    last.insert(n, (s.snapshot_index, sent, sent));
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    events
}

/// Waits (bounded) until every node has applied the leader's commit index;
/// returns the last statuses, in the order of `addrs`.
async fn catch_up(addrs: &[String]) -> Vec<Option<NodeStatus>> {
    let t = Instant::now();
    loop {
        let ss = statuses(addrs, Duration::from_secs(2)).await;
        let commit = ss
            .iter()
            .flatten()
            .filter(|s| s.role == Role::Leader)
            .map(|s| s.commit_index)
            .max();
        let caught_up = match commit {
            Some(c) => ss
                .iter()
                .all(|s| s.as_ref().is_some_and(|s| s.applied_index >= c)),
            None => false,
        };
        if caught_up || t.elapsed() > WAIT {
            if !caught_up {
                tracing::warn!("the nodes did not all catch up in {WAIT:?}; measuring anyway");
            }
            return ss;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (all bytes, segment bytes, snapshot bytes) of the files under `dir`.
fn dir_size(dir: &Path) -> Result<(u64, u64, u64)> {
    let (mut all, mut seg, mut snap) = (0, 0, 0);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let m = e
                .metadata()
                .with_context(|| format!("reading {}", e.path().display()))?;
            if m.is_dir() {
                todo.push(e.path());
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            all += m.len();
            if name.ends_with(".seg") {
                seg += m.len();
            } else if name.starts_with("snapshot") {
                snap += m.len();
            }
        }
    }
    Ok((all, seg, snap))
}

fn bytes(b: u64) -> String {
    let mib = b as f64 / (1024.0 * 1024.0);
    if mib >= 1.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

impl SnapshotReport {
    /// The results as a readable table, one column per configuration.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        let mut row = |label: &str, f: &dyn Fn(&ConfigReport) -> String| {
            rows.push((label.to_string(), self.configs.iter().map(f).collect()));
        };
        row("", &|c| {
            if c.snapshot_entries == 0 {
                "snapshots off".into()
            } else {
                format!("snapshots every {}", c.snapshot_entries)
            }
        });
        row("writes/s", &|c| format!("{:.0}", c.writes_per_sec));
        row("write p50 / p99 / max", &|c| Latency::show(&c.latency));
        row("  overlapping a snapshot", &|c| {
            Latency::show(&c.latency_overlapping_snapshot)
        });
        row("  not overlapping one", &|c| {
            Latency::show(&c.latency_not_overlapping)
        });
        row("snapshots seen (per node)", &|c| {
            c.nodes
                .iter()
                .map(|n| {
                    c.snapshot_events
                        .iter()
                        .filter(|e| e.node == n.id)
                        .count()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(" / ")
        });
        let nodes = self.configs.first().map_or(0, |c| c.nodes.len());
        for n in 0..nodes {
            row(&format!("node {} data dir", n + 1), &|c| {
                let d = &c.nodes[n];
                format!(
                    "{} B ({}; log {}, snapshot {}; log_bytes {})",
                    d.dir_bytes,
                    bytes(d.dir_bytes),
                    bytes(d.segment_bytes),
                    bytes(d.snapshot_bytes),
                    d.log_bytes.map_or("-".into(), |b| b.to_string())
                )
            });
        }
        row("restart -> all answer (ms)", &|c| {
            c.restarts
                .iter()
                .map(|r| format!("{:.0}", r.answering_ms))
                .collect::<Vec<_>>()
                .join(", ")
        });
        row("restart -> leader (ms)", &|c| {
            c.restarts
                .iter()
                .map(|r| format!("{:.0}", r.leader_ms))
                .collect::<Vec<_>>()
                .join(", ")
        });
        row("restart -> read OK (ms)", &|c| {
            let all: Vec<String> = c
                .restarts
                .iter()
                .map(|r| format!("{:.0}", r.serving_ms))
                .collect();
            format!(
                "{} (median {:.0})",
                all.join(", "),
                c.restart_serving_median_ms
            )
        });
        row("  read OK - leader (ms)", &|c| {
            c.restarts
                .iter()
                .map(|r| format!("{:.0}", r.serving_ms - r.leader_ms))
                .collect::<Vec<_>>()
                .join(", ")
        });
        row("read-back check", &|c| {
            format!("ok: {} keys after each restart", c.keys_read_back)
        });
        let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let w1 = rows
            .iter()
            .map(|r| r.1.first().map_or(0, |s| s.chars().count()))
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "snapshot bench: {} nodes, {} writes from {} clients, {} B values, {} keys; \
             restarts after SIGKILL of every node; snapshot indexes polled every {} ms",
            self.nodes, self.writes, self.clients, self.value_size, self.keys, self.poll_ms
        );
        for (label, cells) in &rows {
            let mut line = format!("{label:<w0$}");
            for (j, cell) in cells.iter().enumerate() {
                if j + 1 < cells.len() {
                    let pad = w1 - cell.chars().count();
                    let _ = write!(line, "  {cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(line, "  {cell}");
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let r = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        let _ = write!(
            out,
            "on / off: write p99 {}, restart (median, to read OK) {}, data dirs (total) {}",
            r(self.p99_ratio_on_off),
            r(self.restart_ratio_on_off),
            r(self.dir_bytes_ratio_on_off)
        );
        out
    }
}
