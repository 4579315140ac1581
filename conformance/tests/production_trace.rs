//! Production traces, validated: three `raftkv serve --trace` processes
//! over TCP share one step file while concurrent clients write and the test
//! cuts peer links, freezes a node (SIGSTOP/SIGCONT) and kills nodes with
//! SIGKILL and restarts them; then `raft-conform validate --trace` checks
//! every recorded step against the model (exit 0). The same run with a
//! seeded bug in the persist path (`--impl-bug ack-before-persist`) must
//! fail validation (exit 1).
//!
//! The `raftkv` binary is the one `cargo test --workspace` builds beside
//! this test (with the workspace's features, `seeded-bugs` included, since
//! this package enables it).

use raftkv::client::{Client, ClientConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn raftkv_binary() -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/raftkv
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("raftkv"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --release -p raftkv --features seeded-bugs` \
         (or run `cargo test --workspace --release`)",
        bin.display()
    );
    bin
}

fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A one-way peer link `from → to`: node `from` dials this proxy instead of
/// `to`. Cutting it closes every connection through it and refuses new
/// ones until it is healed: what `from` sends to `to` is lost.
struct Link {
    addr: String,
    cut: watch::Sender<bool>,
}

async fn link(to: String) -> Link {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (cut, cut_rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let mut cut_rx = cut_rx.clone();
            if *cut_rx.borrow() {
                continue; // dropped: the dialer sees the connection close
            }
            let to = to.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(&to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut_rx.wait_for(|cut| *cut) => {}
                }
            });
        }
    });
    Link { addr, cut }
}

struct Cluster {
    exe: PathBuf,
    dir: PathBuf,
    trace: PathBuf,
    bug: Option<&'static str>,
    addrs: BTreeMap<u64, String>,
    /// `(from, to)` → the proxy `from` dials to reach `to`.
    links: BTreeMap<(u64, u64), Link>,
    children: BTreeMap<u64, Child>,
    /// Processes started per node, to wait for the latest one to serve.
    spawns: BTreeMap<u64, usize>,
}

impl Cluster {
    async fn start(dir: &Path, bug: Option<&'static str>) -> Cluster {
        let addrs: BTreeMap<u64, String> = (1..=3)
            .zip(free_ports(3))
            .map(|(i, p)| (i, format!("127.0.0.1:{p}")))
            .collect();
        let mut links = BTreeMap::new();
        for from in 1..=3 {
            for to in 1..=3 {
                if from != to {
                    links.insert((from, to), link(addrs[&to].clone()).await);
                }
            }
        }
        let mut c = Cluster {
            exe: raftkv_binary(),
            dir: dir.to_path_buf(),
            trace: dir.join("steps.ndjson"),
            bug,
            addrs,
            links,
            children: BTreeMap::new(),
            spawns: BTreeMap::new(),
        };
        for id in 1..=3 {
            c.spawn(id);
        }
        c
    }

    fn spawn(&mut self, id: u64) {
        // The node listens on its own address and reaches each peer through
        // the proxy of that directed link.
        let peers = (1..=3)
            .map(|j| {
                let a = if j == id {
                    &self.addrs[&j]
                } else {
                    &self.links[&(id, j)].addr
                };
                format!("{j}={a}")
            })
            .collect::<Vec<_>>()
            .join(",");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{id}.log")))
            .unwrap();
        let mut cmd = Command::new(&self.exe);
        cmd.args(["serve", "--id", &id.to_string(), "--peers", &peers])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{id}")))
            // Snapshots often, so the trace holds Snapshot steps (at the
            // applied index, which under load lags the commit index) and
            // restarts from a snapshot.
            .args(["--snapshot-entries", SNAPSHOT_ENTRIES])
            .arg("--trace")
            .arg(&self.trace)
            .env("RUST_LOG", "raftkv=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(bug) = self.bug {
            cmd.args(["--impl-bug", bug]);
        }
        self.children
            .insert(id, cmd.spawn().expect("start raftkv serve"));
        *self.spawns.entry(id).or_default() += 1;
    }

    /// Waits until node `id`'s latest process logs that it serves: it has
    /// recovered its data directory and recorded its Restart step. Without
    /// this, on a loaded machine a process could be killed again before it
    /// recorded anything, and the run would have fewer restarts than planned.
    async fn wait_serving(&self, id: u64) {
        let want = self.spawns[&id];
        let log = self.dir.join(format!("node-{id}.log"));
        for _ in 0..600 {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("raftkv::server: serving id=").count() >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node {id} did not serve within 60 s:\n{}", logs(&self.dir));
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, id: u64, sig: &str) {
        let pid = self.children[&id].id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    fn cut(&self, from: u64, to: u64, cut: bool) {
        self.links[&(from, to)].cut.send_replace(cut);
    }

    fn client_addrs(&self) -> Vec<String> {
        self.addrs.values().cloned().collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            // A frozen node must be thawed to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &self.children[&id].id().to_string()])
                .status();
            self.kill(id);
        }
    }
}

/// Clients that write for as long as the run lasts; every error (timeouts
/// during faults) is tolerated, acknowledgements are counted.
fn writers(
    addrs: Vec<String>,
    n: usize,
    acked: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let addrs = addrs.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                let cfg = ClientConfig {
                    op_timeout: Duration::from_secs(2),
                    attempt_timeout: Duration::from_millis(700),
                    backoff: (Duration::from_millis(10), Duration::from_millis(100)),
                };
                let mut c = Client::connect(addrs, cfg).unwrap();
                for k in 0u64.. {
                    let r = if k % 3 == 2 {
                        c.append(&format!("log{w}"), &format!("{k},")).await
                    } else {
                        c.put(&format!("w{w}k{}", k % 5), &k.to_string()).await
                    };
                    if r.is_ok() {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

/// The fault schedule: link cuts, a frozen node, kill -9 and restart of a
/// follower and of every node, with clients writing throughout.
async fn run_with_faults(c: &mut Cluster, acked: &Arc<AtomicU64>) {
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));
    for id in 1..=3 {
        c.wait_serving(id).await;
    }
    let clients = writers(c.client_addrs(), 3, acked.clone());
    pause(1500).await;
    // Cut every link into and out of node 1 (a partition), then heal.
    for j in [2, 3] {
        c.cut(1, j, true);
        c.cut(j, 1, true);
    }
    pause(1500).await;
    for j in [2, 3] {
        c.cut(1, j, false);
        c.cut(j, 1, false);
    }
    pause(1000).await;
    // One-way cut: node 2 cannot reach node 3.
    c.cut(2, 3, true);
    pause(1000).await;
    c.cut(2, 3, false);
    // Freeze node 3 past an election timeout, then let it go on.
    c.signal(3, "-STOP");
    pause(1200).await;
    c.signal(3, "-CONT");
    pause(1000).await;
    // kill -9 node 2 and bring it back.
    c.kill(2);
    pause(800).await;
    c.spawn(2);
    c.wait_serving(2).await;
    pause(1500).await;
    // kill -9 all three, restart all.
    for id in 1..=3 {
        c.kill(id);
    }
    for id in 1..=3 {
        c.spawn(id);
    }
    for id in 1..=3 {
        c.wait_serving(id).await;
    }
    pause(2500).await;
    for h in clients {
        h.abort();
    }
    for id in 1..=3 {
        c.kill(id);
    }
}

fn validate(trace: &Path) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_raft-conform"))
        .args(["validate", "--json", "--trace"])
        .arg(trace)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate --json printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn logs(dir: &Path) -> String {
    (1..=3)
        .map(|id| {
            let p = dir.join(format!("node-{id}.log"));
            format!(
                "--- node {id}\n{}",
                std::fs::read_to_string(p).unwrap_or_default()
            )
        })
        .collect()
}

fn count_events(trace: &Path, event: &str) -> usize {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains(&format!("\"type\":\"{event}\"")))
        .count()
}

/// `serve --snapshot-entries` of every node.
const SNAPSHOT_ENTRIES: &str = "16";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_cluster_under_kill9_sigstop_and_cut_links_validates() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(tmp.path(), None).await;
    let acked = Arc::new(AtomicU64::new(0));
    run_with_faults(&mut c, &acked).await;
    let acked = acked.load(Ordering::Relaxed);
    let trace = c.trace.clone();
    // For measuring `validate --trace` on a real trace (docs/measurements.md).
    if let Some(keep) = std::env::var_os("PRODUCTION_TRACE_COPY") {
        std::fs::copy(&trace, keep).unwrap();
    }
    let (out, json) = validate(&trace);
    assert!(
        out.status.code() == Some(0),
        "validate exit {:?}:\n{}\n{}\nnode logs:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs(tmp.path())
    );
    let steps = json["steps"].as_u64().unwrap();
    let values = json["values"].as_u64().unwrap();
    println!("{steps} records, {values} values, {acked} acknowledged writes: {json}");
    // The run was not vacuous: writes were acknowledged and proposed (far
    // more values than the model's old 8-bit sets held), nodes restarted,
    // Persist steps were taken.
    assert!(acked > 20, "{acked} acknowledged writes");
    assert!(values > acked.min(200) / 2, "{values} values");
    assert!(values > 8, "{values} values");
    assert!(count_events(&trace, "Restart") >= 4);
    assert!(count_events(&trace, "Persist") > 20);
    let snapshots = count_events(&trace, "Snapshot");
    println!("{snapshots} Snapshot steps");
    assert!(snapshots >= 3, "{snapshots} Snapshot steps");
    assert!(json["first_violation"].is_null(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_run_with_ack_before_persist_fails_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(tmp.path(), Some("ack-before-persist")).await;
    let acked = Arc::new(AtomicU64::new(0));
    run_with_faults(&mut c, &acked).await;
    let (out, json) = validate(&c.trace);
    assert_eq!(
        out.status.code(),
        Some(1),
        "validate must find the seeded bug:\n{}\n{}\nnode logs:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs(tmp.path())
    );
    let v = &json["first_violation"];
    assert!(v.is_object(), "{json}");
    println!("found: {v}");
}
