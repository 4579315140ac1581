// Over 600 lines: one test per startup refusal and exit code of real raftkv processes (issue 8), each short, sharing its process helpers.
//! Issue 8 hardening, with real `raftkv` processes: the data directory
//! lock, the startup checks, `--peers` and `--cluster` validation, the
//! exit codes, `put --value-file`, log files without colour codes, and the
//! `cluster` launcher's handling of dead nodes and signals (no orphans).
//! Every wait is bounded; nothing is timed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{raftkv, run_bounded, stderr, EXE};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms, up to `secs` seconds.
fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 20 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A single-node `raftkv serve` with its stderr in `log`.
fn serve(data: &Path, id: u64, port: u16, extra: &[&str], log: &Path) -> Child {
    let stderr = std::fs::File::create(log).unwrap();
    Command::new(EXE)
        .args(["serve", "--id", &id.to_string()])
        .arg("--peers")
        .arg(format!("{id}=127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start raftkv serve")
}

/// Waits for the node to say it serves (its storage is open).
fn wait_serving(child: &mut Child, log: &Path) {
    let ok = wait_until(30, || {
        std::fs::read_to_string(log).is_ok_and(|s| s.contains("serving"))
            || child.try_wait().unwrap().is_some()
    });
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        ok && text.contains("serving"),
        "node did not start:\n{text}"
    );
}

fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let exited = wait_until(30, || child.try_wait().unwrap().is_some());
    if !exited {
        let _ = child.kill();
        panic!("serve did not stop on SIGTERM");
    }
}

fn assert_no_panic(o: &Output) {
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

// --- §1: one process per data directory -------------------------------------

#[test]
fn a_second_serve_on_the_same_data_dir_is_refused_with_the_holder_pid() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let log = tmp.path().join("a.log");
    let mut a = serve(&data, 1, free_port(), &[], &log);
    wait_serving(&mut a, &log);
    // Another port, so only the directory is shared.
    let mut cmd = Command::new(EXE);
    cmd.args(["serve", "--id", "1", "--peers"])
        .arg(format!("1=127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&data);
    let b = run_bounded(cmd);
    let err = stderr(&b);
    assert_eq!(b.status.code(), Some(1), "{err}");
    assert!(err.contains(data.to_str().unwrap()), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains(&format!("pid {}", a.id())), "{err}");
    assert!(
        a.try_wait().unwrap().is_none(),
        "the first node keeps running"
    );
    stop(&mut a);
    // Once it is gone the directory is free again (kill -9 too).
    let mut again = serve(&data, 1, free_port(), &[], &log);
    wait_serving(&mut again, &log);
    again.kill().unwrap();
    again.wait().unwrap();
    let mut after_kill = serve(&data, 1, free_port(), &[], &log);
    wait_serving(&mut after_kill, &log);
    stop(&mut after_kill);
}

// --- §2, §3: startup checks ------------------------------------------------------

#[test]
fn serve_refuses_another_nodes_or_clusters_directory_and_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let log = tmp.path().join("n.log");
    let port = free_port();
    let mut n1 = serve(&data, 1, port, &["--cluster-id", "blue"], &log);
    wait_serving(&mut n1, &log);
    stop(&mut n1);

    let refused = |id: u64, extra: &[&str]| {
        let mut cmd = Command::new(EXE);
        cmd.args(["serve", "--id", &id.to_string(), "--peers"])
            .arg(format!("{id}=127.0.0.1:{}", free_port()))
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .env("RUST_LOG", "warn");
        let out = run_bounded(cmd);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_no_panic(&out);
        stderr(&out)
    };
    let err = refused(2, &[]);
    assert!(err.contains("belongs to node 1, not node 2"), "{err}");
    let err = refused(1, &["--cluster-id", "green"]);
    assert!(
        err.contains("belongs to cluster `blue`, not cluster `green`"),
        "{err}"
    );
    // Without --cluster-id, and with the right one, it starts.
    for extra in [&[][..], &["--cluster-id", "blue"][..]] {
        let mut n = serve(&data, 1, port, extra, &log);
        wait_serving(&mut n, &log);
        stop(&mut n);
    }
    // A lost hard state file: refused, not started at term 0.
    std::fs::remove_file(data.join("hardstate")).unwrap();
    let err = refused(1, &[]);
    assert!(
        err.contains("is not whole") && err.contains("hardstate"),
        "{err}"
    );
    // A malformed cluster id is a usage error.
    let bad = raftkv(&[
        "serve",
        "--id",
        "1",
        "--peers",
        "1=127.0.0.1:1",
        "--data-dir",
        data.to_str().unwrap(),
        "--cluster-id",
        "has space",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

// --- §4, §7: validation and exit codes ---------------------------------------------

#[test]
fn bad_peers_and_bad_cluster_addresses_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let unused = tmp.path().join("unused");
    let unused = unused.to_str().unwrap();
    let out = raftkv(&[
        "serve",
        "--id",
        "1",
        "--data-dir",
        unused,
        "--peers",
        "1=127.0.0.1:7001,2=127.0.0.1:7001,3=127.0.0.1:7003",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nodes 1 and 2 have the same address 127.0.0.1:7001"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(unused).exists());

    // Rejected before any connection attempt: with a 60 s timeout, a
    // client that tried would be killed by run_bounded.
    for cmd in [
        &["get", "k"][..],
        &["put", "k", "v"][..],
        &["append", "k", "v"][..],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--cluster", "garbage", "--timeout", "60"]);
        let out = raftkv(&args);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is not HOST:PORT"),
            "{}",
            stderr(&out)
        );
    }
    let out = raftkv(&[
        "bench",
        "--cluster",
        "127.0.0.1:7001,nonsense",
        "--ops",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Our own validation errors are usage errors too.
    let out = raftkv(&["get", "k", "--cluster", "127.0.0.1:1", "--timeout", "-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = raftkv(&[
        "serve",
        "--id",
        "4",
        "--data-dir",
        unused,
        "--peers",
        "1=127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = raftkv(&["cluster", "--nodes", "0", "--dir", unused]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = raftkv(&[
        "serve",
        "--id",
        "1",
        "--data-dir",
        unused,
        "--peers",
        "1=127.0.0.1:1",
        "--heartbeat-ms",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = raftkv(&["bench", "--failover", "--dir", unused, "--trials", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!Path::new(unused).exists());

    let help = raftkv(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("Exit codes:") && text.contains("2  bad input or usage"),
        "{text}"
    );
}

/// A one-node cluster for the client commands.
struct OneNode {
    child: Child,
    addr: String,
    _tmp: tempfile::TempDir,
}

impl OneNode {
    fn start() -> OneNode {
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = tmp.path().join("node.log");
        let mut child = serve(&tmp.path().join("d"), 1, port, &[], &log);
        wait_serving(&mut child, &log);
        OneNode {
            child,
            addr: format!("127.0.0.1:{port}"),
            _tmp: tmp,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut a = args.to_vec();
        a.extend(["--cluster", &self.addr, "--timeout", "20"]);
        raftkv(&a)
    }

    fn cli_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(EXE)
            .args(args)
            .args(["--cluster", &self.addr, "--timeout", "20"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for OneNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn put_value_file_append_limit_and_exit_codes() {
    let node = OneNode::start();
    let tmp = tempfile::tempdir().unwrap();

    // A value from a file (larger than we would put on a command line) ...
    let big: String = (0..60_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let file = tmp.path().join("value");
    std::fs::write(&file, &big).unwrap();
    let out = node.cli(&["put", "big", "--value-file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = node.cli(&["get", "big"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), format!("{big}\n"));

    // ... and from standard input, byte for byte.
    let out = node.cli_stdin(&["put", "s", "--value-file", "-"], b"line one\nline two\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let got = node.cli(&["get", "s"]);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout),
        "line one\nline two\n\n"
    );

    // An append that would grow the value past 64 KiB fails and changes nothing.
    std::fs::write(&file, "x".repeat(6_000)).unwrap();
    let out = node.cli(&["append", "big", "--value-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the limit is 65536"),
        "{}",
        stderr(&out)
    );
    let got = node.cli(&["get", "big"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), format!("{big}\n"));

    // Too large to send at all, not UTF-8, missing: bad input, before any request.
    std::fs::write(&file, "x".repeat(70_000)).unwrap();
    let out = node.cli(&["put", "k", "--value-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    std::fs::write(&file, [0xff, 0xfe]).unwrap();
    let out = node.cli(&["put", "k", "--value-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
    let out = node.cli(&["put", "k", "v", "--value-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A missing key is a failed operation: 1.
    let out = node.cli(&["get", "nothing"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not found"));
}

// --- §8: no colour codes in log files ---------------------------------------------

#[test]
fn a_node_logging_to_a_file_writes_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("node.log");
    // NO_COLOR is removed from the node's environment (see `serve`).
    let mut node = serve(&tmp.path().join("d"), 1, free_port(), &[], &log);
    wait_serving(&mut node, &log);
    stop(&mut node);
    let text = std::fs::read(&log).unwrap();
    assert!(String::from_utf8_lossy(&text).contains("shutting down"));
    assert!(
        !text.contains(&0x1b),
        "ESC in a log file: {}",
        String::from_utf8_lossy(&text)
    );
}

// --- §5: the cluster launcher ---------------------------------------------------------

/// Three consecutive free ports.
fn free_port_run() -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base > u16::MAX - 3 {
            continue;
        }
        let held: Vec<_> = (0..3)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if held.len() == 3 {
            return base;
        }
    }
    panic!("no run of 3 free ports found");
}

struct Launcher {
    child: Child,
    /// node id -> pid
    pids: BTreeMap<u64, u32>,
    addrs: Vec<String>,
    dir: PathBuf,
    stderr: PathBuf,
}

fn launch(dir: &Path, extra: &[&str]) -> Launcher {
    let base = free_port_run();
    let stderr = dir.join("launcher.err");
    let mut child = Command::new(EXE)
        .args(["cluster", "--nodes", "3", "--base-port", &base.to_string()])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("--cluster ");
            lines.push(line);
            if done {
                let _ = tx.send(lines);
                return;
            }
        }
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the launcher prints its banner");
    // "  node 2: 127.0.0.1:7002 (pid 1234, log DIR/node-2.log)"
    let mut pids = BTreeMap::new();
    for l in &lines {
        if let Some(rest) = l.trim().strip_prefix("node ") {
            let id: u64 = rest[..rest.find(':').unwrap()].parse().unwrap();
            let pid = rest[rest.find("(pid ").unwrap() + 5..rest.find(',').unwrap()]
                .parse()
                .unwrap();
            let log = dir.join(format!("node-{id}.log"));
            assert!(rest.contains(log.to_str().unwrap()), "{l}");
            pids.insert(id, pid);
        }
    }
    assert_eq!(pids.len(), 3, "{lines:?}");
    let addrs = lines
        .last()
        .unwrap()
        .strip_prefix("--cluster ")
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    Launcher {
        child,
        pids,
        addrs,
        dir: dir.to_path_buf(),
        stderr,
    }
}

/// Whether `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z')),
    }
}

impl Launcher {
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let mut status = None;
        wait_until(60, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("the launcher did not exit: {}", self.stderr_text())
        })
    }

    fn assert_nodes_gone(&self) {
        for (id, pid) in &self.pids {
            assert!(
                wait_until(30, || gone(*pid)),
                "node {id} (pid {pid}) still runs: an orphan"
            );
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn write_one(&self) {
        let out = raftkv(&[
            "put",
            "k",
            "v",
            "--cluster",
            &self.addrs.join(","),
            "--timeout",
            "30",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in self.pids.values() {
            if !gone(*pid) {
                // SAFETY: best-effort cleanup of a node this test started.
                unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

#[test]
fn cluster_exits_non_zero_naming_a_dead_node_and_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = launch(tmp.path(), &[]);
    l.write_one();
    let victim = l.pids[&2];
    // SAFETY: kill(2) on a node of our launcher.
    unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
    let status = l.wait();
    let err = l.stderr_text();
    assert_eq!(status.code(), Some(1), "{err}");
    let log = l.dir.join("node-2.log");
    assert!(
        err.contains("node 2 exited") && err.contains(log.to_str().unwrap()),
        "{err}"
    );
    l.assert_nodes_gone();
}

#[test]
fn cluster_passes_sigterm_and_sighup_on_and_keeps_recording_traces() {
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let tmp = tempfile::tempdir().unwrap();
        let trace = tmp.path().join("steps.ndjson");
        let mut l = launch(tmp.path(), &["--trace", trace.to_str().unwrap()]);
        l.write_one();
        l.signal(sig);
        let status = l.wait();
        assert_eq!(status.code(), Some(0), "{name}: {}", l.stderr_text());
        l.assert_nodes_gone();
        for id in 1..=3 {
            let log = std::fs::read_to_string(l.dir.join(format!("node-{id}.log"))).unwrap();
            assert!(
                log.contains(&format!("{name}: shutting down")),
                "node {id} did not get {name}:\n{log}"
            );
        }
        // `cluster --trace` still hands --trace to every node.
        let text = std::fs::read_to_string(&trace).unwrap();
        let nodes: std::collections::BTreeSet<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["node"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(nodes, (1..=3).collect(), "{name}");
    }
}

#[test]
fn cluster_killed_with_sigkill_leaves_no_orphans() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = launch(tmp.path(), &[]);
    l.write_one();
    l.signal(libc::SIGKILL);
    l.wait();
    l.assert_nodes_gone();
}

/// Threads of process `pid` (Linux: /proc/PID/status).
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn cluster_runtime_flag_reaches_every_node_and_both_runtimes_serve_writes() {
    // `--runtime multi-thread` gives each node one worker per core beside
    // its main thread; the default runs each node on its main thread (the
    // blocking pool may add a thread for a DNS lookup, never the workers).
    let mut counts = BTreeMap::new();
    for runtime in ["current-thread", "multi-thread"] {
        let tmp = tempfile::tempdir().unwrap();
        let extra: &[&str] = if runtime == "current-thread" {
            &[]
        } else {
            &["--runtime", "multi-thread"]
        };
        let mut l = launch(tmp.path(), extra);
        l.write_one();
        let out = raftkv(&[
            "get",
            "k",
            "--cluster",
            &l.addrs.join(","),
            "--timeout",
            "30",
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "v\n", "{runtime}");
        let per_node: Vec<usize> = l.pids.values().map(|&p| threads(p)).collect();
        counts.insert(runtime, per_node);
        l.signal(libc::SIGTERM);
        assert_eq!(l.wait().code(), Some(0), "{runtime}: {}", l.stderr_text());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (ct, mt) in counts["current-thread"].iter().zip(&counts["multi-thread"]) {
        assert!(
            *mt > cores,
            "multi-thread node with {mt} threads on {cores} cores: {counts:?}"
        );
        assert!(ct < mt, "{counts:?}");
    }
    let out = raftkv(&[
        "serve",
        "--id",
        "1",
        "--data-dir",
        "x",
        "--peers",
        "1=127.0.0.1:1",
        "--runtime",
        "green",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("current-thread"), "{}", stderr(&out));
}
