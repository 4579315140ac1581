//! Helpers shared by the process tests (processes, status, metrics, TLS): real
//! `raftkv serve` processes on loopback, the CLI run to its end. Every wait
//! is bounded; nothing is timed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const EXE: &str = env!("CARGO_BIN_EXE_raftkv");

pub fn free_ports(n: usize) -> Vec<u16> {
    // Hold every listener until all ports are chosen so they differ.
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Polls `f` every 100 ms, up to `secs` seconds.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Runs `raftkv ARGS` to its end (killed after 60 s: a hang is a failure).
pub fn raftkv(args: &[&str]) -> Output {
    let mut cmd = Command::new(EXE);
    cmd.args(args).env("RUST_LOG", "warn");
    run_bounded(cmd)
}

/// Runs a process to its end (killed after 60 s: a hang is a failure).
pub fn run_bounded(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "still running after 60 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A cluster of `raftkv serve` processes, killed on drop.
pub struct Procs {
    pub dir: PathBuf,
    pub addrs: BTreeMap<u64, String>,
    pub children: BTreeMap<u64, Child>,
    /// Extra `serve` flags per node.
    extra: BTreeMap<u64, Vec<String>>,
}

impl Procs {
    /// `n` nodes on free loopback ports; `extra(id)` adds flags to node `id`'s `serve`.
    pub fn start(dir: &Path, n: u64, extra: impl Fn(u64) -> Vec<String>) -> Procs {
        let addrs = (1..=n)
            .zip(free_ports(n as usize))
            .map(|(i, p)| (i, format!("127.0.0.1:{p}")))
            .collect();
        let mut p = Procs {
            dir: dir.to_path_buf(),
            addrs,
            children: BTreeMap::new(),
            extra: (1..=n).map(|id| (id, extra(id))).collect(),
        };
        for id in 1..=n {
            p.spawn(id);
        }
        p
    }

    pub fn peers(&self) -> String {
        self.addrs
            .iter()
            .map(|(i, a)| format!("{i}={a}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The addresses as `--cluster` takes them.
    pub fn cluster(&self) -> String {
        self.addrs.values().cloned().collect::<Vec<_>>().join(",")
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.log"))
    }

    pub fn spawn(&mut self, id: u64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        let child = Command::new(EXE)
            .args(["serve", "--id", &id.to_string(), "--peers", &self.peers()])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{id}")))
            .args(&self.extra[&id])
            .env("RUST_LOG", "raftkv=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start raftkv serve");
        self.children.insert(id, child);
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.children.remove(&id) {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for id in self.addrs.keys() {
            s += &format!("--- node {id}\n{}\n", self.log(*id));
        }
        s
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}
