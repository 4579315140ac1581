//! The `cluster` launcher: a local cluster of `raftkv serve` child
//! processes (also used by `bench --failover`).
//!
//! No orphans: SIGINT, SIGTERM and SIGHUP to the launcher are passed on to
//! every node; on Linux every node also asks the kernel for SIGTERM when
//! the launcher dies (`PR_SET_PDEATHSIG`), so even a launcher killed with
//! SIGKILL takes its nodes with it. A node that dies on its own is reported
//! with its log file, the others are stopped, and the launcher exits 1.

use crate::cli::{usage, ClusterArgs};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::Duration;

/// How long the nodes get to stop after the signal before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A local cluster of `raftkv serve` child processes.
pub struct LocalCluster {
    exe: PathBuf,
    dir: PathBuf,
    addrs: BTreeMap<u64, String>,
    children: BTreeMap<u64, Child>,
    /// Children's stderr goes to DIR/node-i.log instead of ours.
    log_to_files: bool,
    /// Every node records its steps here (`serve --trace`).
    trace: Option<PathBuf>,
    /// Every node serves with `--tls-dir` this directory.
    tls_dir: Option<PathBuf>,
    /// More `serve` flags for every node (e.g. `--snapshot-entries 0`).
    serve_args: Vec<String>,
}

impl LocalCluster {
    pub fn start_with(
        exe: &Path,
        nodes: u64,
        dir: &Path,
        base_port: u16,
        log_to_files: bool,
    ) -> Result<Self> {
        Self::start_full(exe, nodes, dir, base_port, log_to_files, None, None)
    }

    /// Like [`LocalCluster::start_with`] with log files, every node also
    /// getting `serve_args` (e.g. `["--snapshot-entries", "0"]`).
    pub fn start_with_serve_args(
        exe: &Path,
        nodes: u64,
        dir: &Path,
        base_port: u16,
        serve_args: Vec<String>,
    ) -> Result<Self> {
        let mut c = Self::new(exe, nodes, dir, base_port, true, None, None)?;
        c.serve_args = serve_args;
        c.spawn_all()?;
        Ok(c)
    }

    pub fn start_full(
        exe: &Path,
        nodes: u64,
        dir: &Path,
        base_port: u16,
        log_to_files: bool,
        trace: Option<PathBuf>,
        tls_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let mut c = Self::new(exe, nodes, dir, base_port, log_to_files, trace, tls_dir)?;
        c.spawn_all()?;
        Ok(c)
    }

    /// The cluster with no node started yet.
    fn new(
        exe: &Path,
        nodes: u64,
        dir: &Path,
        base_port: u16,
        log_to_files: bool,
        trace: Option<PathBuf>,
        tls_dir: Option<PathBuf>,
    ) -> Result<Self> {
        if nodes == 0 {
            return Err(usage("--nodes must be at least 1"));
        }
        if u64::from(base_port) + nodes - 1 > u64::from(u16::MAX) {
            return Err(usage(format!(
                "ports {base_port}.. do not fit {nodes} nodes"
            )));
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let addrs = (1..=nodes)
            .map(|i| (i, format!("127.0.0.1:{}", u64::from(base_port) + i - 1)))
            .collect();
        Ok(LocalCluster {
            exe: exe.to_path_buf(),
            dir: dir.to_path_buf(),
            addrs,
            children: BTreeMap::new(),
            log_to_files,
            trace,
            tls_dir,
            serve_args: Vec::new(),
        })
    }

    /// Starts every node that does not run.
    pub fn spawn_all(&mut self) -> Result<()> {
        let ids: Vec<u64> = self.addrs.keys().copied().collect();
        for id in ids {
            if !self.children.contains_key(&id) {
                self.spawn(id)?;
            }
        }
        Ok(())
    }

    /// Node `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    pub fn addrs(&self) -> &BTreeMap<u64, String> {
        &self.addrs
    }

    pub fn addr_list(&self) -> String {
        self.addrs.values().cloned().collect::<Vec<_>>().join(",")
    }

    pub fn id_of(&self, addr: &str) -> Option<u64> {
        self.addrs
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(id, _)| *id)
    }

    /// The process id of node `id`, if it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// Where node `id`'s stderr goes (with log files on).
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.log"))
    }

    /// Starts (or restarts) node `id` on its data directory.
    ///
    /// Call it from one thread that lives as long as the cluster (the
    /// binary calls it from `main`'s): on Linux the child's death signal
    /// fires when the thread that forked it exits.
    pub fn spawn(&mut self, id: u64) -> Result<()> {
        let peers = self
            .addrs
            .iter()
            .map(|(i, a)| format!("{i}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        let data = self.data_dir(id);
        let mut cmd = Command::new(&self.exe);
        cmd.arg("serve")
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(&data)
            .arg("--peers")
            .arg(peers)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(t) = &self.trace {
            cmd.arg("--trace").arg(t);
        }
        if let Some(t) = &self.tls_dir {
            cmd.arg("--tls-dir").arg(t);
        }
        cmd.args(&self.serve_args);
        if self.log_to_files {
            let path = self.log_path(id);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening the node's log file {}", path.display()))?;
            cmd.stderr(log);
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting node {id} ({})", self.exe.display()))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL every node and reap them.
    pub fn stop_all(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }

    /// Sends `signal` to every running node.
    pub fn signal_all(&self, signal: i32) {
        for (id, c) in &self.children {
            send_signal(c, signal, *id);
        }
    }

    /// Sends `signal` to every node, waits up to `grace` for them to exit,
    /// then SIGKILLs the rest; returns how each node ended.
    pub async fn stop_with(
        &mut self,
        signal: i32,
        grace: Duration,
    ) -> BTreeMap<u64, Option<ExitStatus>> {
        self.signal_all(signal);
        let mut ended = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.children.is_empty() && tokio::time::Instant::now() < deadline {
            self.children.retain(|id, c| match c.try_wait() {
                Ok(Some(status)) => {
                    ended.insert(*id, Some(status));
                    false
                }
                Ok(None) => true,
                Err(_) => {
                    ended.insert(*id, None);
                    false
                }
            });
            if !self.children.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for (id, mut c) in std::mem::take(&mut self.children) {
            tracing::warn!(node = id, "node did not stop in {grace:?}; killing it");
            let _ = c.kill();
            ended.insert(id, c.wait().ok());
        }
        ended
    }

    /// Resolves when some node exits on its own; returns its id and status
    /// (the node is no longer one of the cluster's children).
    pub async fn wait_any_exit(&mut self) -> (u64, ExitStatus) {
        loop {
            let mut exited = None;
            for (id, c) in self.children.iter_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    exited = Some((*id, status));
                    break;
                }
            }
            if let Some((id, status)) = exited {
                self.children.remove(&id);
                return (id, status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(unix)]
fn send_signal(c: &Child, signal: i32, id: u64) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    if unsafe { libc::kill(c.id() as libc::pid_t, signal) } != 0 {
        tracing::debug!(node = id, error = %std::io::Error::last_os_error(), "signalling node");
    }
}

#[cfg(not(unix))]
fn send_signal(_c: &Child, _signal: i32, _id: u64) {}

/// On Linux, the child gets SIGTERM when its parent dies.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and makes
    // only async-signal-safe calls (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl: nobody would stop us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// The stop signals the launcher passes on.
#[cfg(unix)]
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    fn install() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// The next stop signal: (number, name).
    async fn recv(&mut self) -> (i32, &'static str) {
        tokio::select! {
            _ = self.int.recv() => (libc::SIGINT, "SIGINT"),
            _ = self.term.recv() => (libc::SIGTERM, "SIGTERM"),
            _ = self.hup.recv() => (libc::SIGHUP, "SIGHUP"),
        }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn install() -> Result<Self> {
        Ok(StopSignals)
    }
    async fn recv(&mut self) -> (i32, &'static str) {
        let _ = tokio::signal::ctrl_c().await;
        (2, "Ctrl-C")
    }
}

/// The stop signals a `serve` node obeys (SIGINT, SIGTERM, SIGHUP):
/// install before starting, await to stop.
pub struct NodeStopSignals(StopSignals);

impl NodeStopSignals {
    pub fn install() -> Result<Self> {
        StopSignals::install().map(NodeStopSignals)
    }

    /// Resolves with the signal's name.
    pub async fn recv(&mut self) -> &'static str {
        self.0.recv().await.1
    }
}

/// `raftkv cluster`.
pub async fn run(a: ClusterArgs) -> Result<ExitCode> {
    let mut signals = StopSignals::install()?;
    let exe = std::env::current_exe().context("finding the raftkv executable")?;
    let tls_dir = if a.tls {
        Some(throwaway_certs(&a.dir, a.nodes)?)
    } else {
        None
    };
    let mut cluster = LocalCluster::new(
        &exe,
        a.nodes,
        &a.dir,
        a.base_port,
        true,
        a.trace,
        tls_dir.clone(),
    )?;
    cluster.serve_args = vec!["--runtime".into(), a.runtime.as_arg().into()];
    cluster.spawn_all().context("starting the local cluster")?;
    out!(
        "cluster of {} nodes (data in {}):",
        a.nodes,
        a.dir.display()
    );
    for (id, addr) in cluster.addrs() {
        out!(
            "  node {id}: {addr} (pid {}, log {})",
            cluster.pid(*id).map_or("-".to_string(), |p| p.to_string()),
            cluster.log_path(*id).display()
        );
    }
    match &tls_dir {
        None => out!("--cluster {}", cluster.addr_list()),
        Some(t) => out!(
            "--cluster {} --tls-dir {}",
            cluster.addr_list(),
            t.display()
        ),
    }
    out!("Ctrl-C stops every node.");
    enum Outcome {
        Signal(i32, &'static str),
        Died(u64, ExitStatus),
    }
    let outcome = tokio::select! {
        (signal, name) = signals.recv() => Outcome::Signal(signal, name),
        (id, status) = cluster.wait_any_exit() => Outcome::Died(id, status),
    };
    match outcome {
        Outcome::Signal(signal, name) => {
            tracing::info!("{name}: passing it on to every node");
            let again = tokio::select! {
                ended = cluster.stop_with(signal, STOP_GRACE) => {
                    for (id, status) in ended {
                        let status = status.map_or("unknown".to_string(), |s| s.to_string());
                        tracing::info!(node = id, %status, "node stopped");
                    }
                    None
                }
                (_, again) = signals.recv() => Some(again),
            };
            if let Some(again) = again {
                tracing::warn!("{again} while stopping: killing every node");
                cluster.stop_all();
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Died(id, status) => {
            let log = cluster.log_path(id);
            tracing::error!(node = id, %status, log = %log.display(), "node exited; stopping the cluster");
            cluster.stop_with(libc_sigterm(), STOP_GRACE).await;
            Err(anyhow!(
                "node {id} exited on its own ({status}); its log is {}; the other nodes were stopped",
                log.display()
            ))
        }
    }
}

#[cfg(unix)]
fn libc_sigterm() -> i32 {
    libc::SIGTERM
}

#[cfg(not(unix))]
fn libc_sigterm() -> i32 {
    15
}

/// `cluster --tls`: DIR/tls with a CA and certificates for nodes
/// 1..=nodes and a client; kept when every file is there already (so
/// clients' certificates stay valid across restarts), else made anew.
fn throwaway_certs(dir: &Path, nodes: u64) -> Result<PathBuf> {
    use raftkv::tls;
    let tls_dir = dir.join("tls");
    let mut files = vec![
        tls::CA_CERT.to_string(),
        tls::CLIENT_CERT.to_string(),
        tls::CLIENT_KEY.to_string(),
    ];
    for id in 1..=nodes {
        files.push(tls::node_cert(id));
        files.push(tls::node_key(id));
    }
    if files.iter().all(|f| tls_dir.join(f).is_file()) {
        tracing::info!(dir = %tls_dir.display(), "reusing the cluster's certificates");
        return Ok(tls_dir);
    }
    let ids: Vec<u64> = (1..=nodes).collect();
    tls::generate(&tls_dir, &ids, &["127.0.0.1".into(), "localhost".into()])
        .with_context(|| format!("making certificates in {}", tls_dir.display()))?;
    tracing::info!(dir = %tls_dir.display(), "made a throwaway CA and certificates");
    Ok(tls_dir)
}
