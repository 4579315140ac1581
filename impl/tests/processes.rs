//! Real `raftkv serve` processes on loopback: kill -9 the leader, keep
//! writing, restart it, read back every acknowledged write; then the same
//! after killing and restarting all three. Every wait is bounded.

use raftkv::client::{Client, ClientConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{free_ports, Procs};

/// A 3-node cluster whose nodes all record their steps into one shared file
/// (`DIR/steps.ndjson`).
fn traced_cluster(dir: &Path) -> Procs {
    let trace = dir.join("steps.ndjson").display().to_string();
    Procs::start(dir, 3, move |_| vec!["--trace".into(), trace.clone()])
}

fn id_of(procs: &Procs, addr: &str) -> u64 {
    *procs.addrs.iter().find(|(_, a)| *a == addr).unwrap().0
}

fn client(procs: &Procs) -> Client {
    let cfg = ClientConfig {
        op_timeout: Duration::from_secs(20),
        attempt_timeout: Duration::from_secs(3),
        backoff: (Duration::from_millis(10), Duration::from_millis(200)),
    };
    Client::connect(procs.addrs.values().cloned().collect(), cfg).unwrap()
}

/// Writes `key{i}` = `i` for i in `range` and appends `i,` to "log";
/// returns the acknowledged ones.
async fn write_range(
    c: &mut Client,
    range: std::ops::Range<u64>,
    acked: &mut BTreeMap<String, String>,
    log: &mut String,
) {
    for i in range {
        let (k, v) = (format!("key{i}"), i.to_string());
        c.put(&k, &v)
            .await
            .unwrap_or_else(|e| panic!("put {k}: {e}"));
        acked.insert(k, v);
        c.append("log", &format!("{i},"))
            .await
            .unwrap_or_else(|e| panic!("append {i}: {e}"));
        log.push_str(&format!("{i},"));
    }
}

async fn read_back(c: &mut Client, acked: &BTreeMap<String, String>, log: &str) {
    for (k, v) in acked {
        assert_eq!(c.get(k).await.unwrap().as_ref(), Some(v), "key {k}");
    }
    assert_eq!(c.get("log").await.unwrap().as_deref(), Some(log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_survive_kill9_of_leader_and_of_all() {
    let tmp = tempfile::tempdir().unwrap();
    let mut procs = traced_cluster(tmp.path());
    let result = tokio::time::timeout(Duration::from_secs(240), async {
        let mut c = client(&procs);
        let mut acked = BTreeMap::new();
        let mut log = String::new();
        write_range(&mut c, 0..20, &mut acked, &mut log).await;

        // kill -9 the leader, keep writing.
        let leader = id_of(&procs, c.last_target());
        procs.kill(leader);
        write_range(&mut c, 20..40, &mut acked, &mut log).await;
        let new_leader = id_of(&procs, c.last_target());
        assert_ne!(new_leader, leader);

        // Restart it; then kill the other follower so the restarted node is
        // needed for a majority: it must have recovered and caught up.
        procs.spawn(leader);
        let other = (1..=3).find(|i| *i != leader && *i != new_leader).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        procs.kill(other);
        write_range(&mut c, 40..50, &mut acked, &mut log).await;
        read_back(&mut c, &acked, &log).await;
        procs.spawn(other);

        // kill -9 all three, restart all, read everything back.
        for id in 1..=3 {
            procs.kill(id);
        }
        for id in 1..=3 {
            procs.spawn(id);
        }
        let mut c = client(&procs);
        read_back(&mut c, &acked, &log).await;
        write_range(&mut c, 50..55, &mut acked, &mut log).await;
        read_back(&mut c, &acked, &log).await;
    })
    .await;
    if result.is_err() {
        panic!("timed out; node logs:\n{}", procs.logs());
    }
    for id in 1..=3 {
        procs.kill(id);
    }
    // Restarts: the old leader, then all three (the follower restarted just
    // before the kill of all may die before it records anything).
    check_recorded_steps(&tmp.path().join("steps.ndjson"), 4..=5);
}

/// The shared step file of processes killed with SIGKILL: every line is a
/// record, each node's seq counts on across its restarts, every delivery
/// names a message whose send record came earlier in the file.
fn check_recorded_steps(path: &Path, restarts_expected: std::ops::RangeInclusive<usize>) {
    use std::collections::HashSet;
    let text = std::fs::read_to_string(path).unwrap();
    let mut sent = HashSet::new();
    let mut next: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut delivers, mut restarts) = (0, 0);
    for line in text.lines() {
        let r: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            (r["format"].as_str(), r["version"].as_u64()),
            (Some("raftkv-steps"), Some(2))
        );
        let (node, seq) = (r["node"].as_u64().unwrap(), r["seq"].as_u64().unwrap());
        let want = next.entry(node).or_insert(0);
        assert_eq!(seq, *want, "node {node}");
        *want += 1;
        for m in r["sent"].as_array().unwrap() {
            sent.insert(m["id"].as_str().unwrap().to_string());
        }
        match r["event"]["type"].as_str().unwrap() {
            "Deliver" => {
                delivers += 1;
                let id = r["event"]["id"].as_str().unwrap();
                assert!(sent.contains(id), "{id} delivered before its send record");
            }
            "Restart" => restarts += 1,
            _ => {}
        }
    }
    assert!(delivers > 100, "{delivers} deliveries recorded");
    assert!(
        restarts_expected.contains(&restarts),
        "{restarts} Restart records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_close_connection_on_bad_frames_and_keep_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let procs = traced_cluster(tmp.path());
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        let mut c = client(&procs);
        c.put("k", "before").await.unwrap();
        for garbage in [
            // Announces a 4 GiB frame: over the limit.
            vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            // A well-sized frame whose payload is not a frame.
            vec![0, 0, 0, 3, 0xff, 0xff, 0xff],
        ] {
            for addr in procs.addrs.values() {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(&garbage).await.unwrap();
                let mut buf = [0u8; 16];
                // The node closes the connection (EOF or reset), it does not hang.
                let n = s.read(&mut buf).await.unwrap_or(0);
                assert_eq!(n, 0, "expected the connection to be closed");
            }
        }
        c.put("k", "after").await.unwrap();
        assert_eq!(c.get("k").await.unwrap().as_deref(), Some("after"));
    })
    .await;
    if result.is_err() {
        panic!("timed out; node logs:\n{}", procs.logs());
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run raftkv")
}

#[test]
fn processes_serve_refuses_bad_trace_and_bug_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let peers = format!("1=127.0.0.1:{port}");
    let data = tmp.path().join("d");
    let data = data.to_str().unwrap();
    let bad = tmp.path().join("no-such-dir").join("steps.ndjson");
    let out = cli(&[
        "serve",
        "--id",
        "1",
        "--peers",
        &peers,
        "--data-dir",
        data,
        "--trace",
        bad.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--trace") && err.contains("cannot open trace file"),
        "{err}"
    );
    let out = cli(&[
        "serve",
        "--id",
        "1",
        "--peers",
        &peers,
        "--data-dir",
        data,
        "--impl-bug",
        "no-such-bug",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("unknown seeded bug") && err.contains("ack-before-persist"),
        "{err}"
    );
    if !cfg!(feature = "seeded-bugs") {
        let out = cli(&[
            "serve",
            "--id",
            "1",
            "--peers",
            &peers,
            "--data-dir",
            data,
            "--impl-bug",
            "ack-before-persist",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("built without the `seeded-bugs` feature"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_cli_put_append_get_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let procs = traced_cluster(tmp.path());
    let cluster = procs.addrs.values().cloned().collect::<Vec<_>>().join(",");
    // The CLI runs blocking; keep it off the runtime's workers.
    let out = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--cluster", &cluster, "--timeout", "20"]);
            cli(&a)
        };
        let put = run(&["put", "color", "blue"]);
        let append = run(&["append", "color", "-green"]);
        let get = run(&["get", "color"]);
        let missing = run(&["get", "nothing"]);
        (put, append, get, missing)
    })
    .await
    .unwrap();
    let (put, append, get, missing) = out;
    assert!(put.status.success(), "{put:?}");
    assert_eq!(String::from_utf8_lossy(&put.stdout), "OK\n");
    assert!(append.status.success(), "{append:?}");
    assert_eq!(String::from_utf8_lossy(&get.stdout), "blue-green\n");
    assert!(get.status.success());
    assert_eq!(missing.status.code(), Some(1)); // a failed operation
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    // Errors: a clear message and a non-zero exit, never a panic.
    let dead = cli(&["get", "k", "--cluster", "127.0.0.1:1", "--timeout", "1"]);
    assert_eq!(dead.status.code(), Some(1));
    let err = String::from_utf8_lossy(&dead.stderr);
    assert!(
        err.contains("error: get k") && err.contains("cannot connect"),
        "{err}"
    );
    let bad_peers = cli(&[
        "serve",
        "--id",
        "1",
        "--data-dir",
        "x",
        "--peers",
        "1:127.0.0.1:1",
    ]);
    assert_eq!(bad_peers.status.code(), Some(2)); // clap usage error
    assert!(String::from_utf8_lossy(&bad_peers.stderr).contains("ID=HOST:PORT"));
    let not_member = cli(&[
        "serve",
        "--id",
        "4",
        "--data-dir",
        "x",
        "--peers",
        "1=127.0.0.1:1",
    ]);
    assert_eq!(not_member.status.code(), Some(2)); // our own usage error
    assert!(String::from_utf8_lossy(&not_member.stderr).contains("not one of the --peers"));
    for out in [&dead, &bad_peers, &not_member] {
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

/// Three consecutive free ports (for `raftkv cluster --base-port`).
fn free_port_run() -> u16 {
    for _ in 0..100 {
        let base = free_ports(1)[0];
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_cluster_launcher_starts_and_stops_nodes() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let base = free_port_run();
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["cluster", "--nodes", "3", "--base-port", &base.to_string()])
        .arg("--dir")
        .arg(tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = launcher.stdout.take().unwrap();
    let cluster_line = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("--cluster "))
    });
    let line = tokio::time::timeout(Duration::from_secs(30), cluster_line)
        .await
        .expect("the launcher prints the addresses")
        .unwrap()
        .expect("a --cluster line");
    let addrs: Vec<String> = line["--cluster ".len()..]
        .split(',')
        .map(String::from)
        .collect();
    assert_eq!(addrs.len(), 3);
    let cfg = ClientConfig {
        op_timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    };
    let mut c = Client::connect(addrs.clone(), cfg).unwrap();
    c.put("k", "v").await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some("v"));

    // Ctrl-C stops the launcher and every node.
    let pid = launcher.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let mut exited = false;
    for _ in 0..100 {
        if launcher.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !exited {
        let _ = launcher.kill();
        panic!("the launcher did not stop on SIGINT");
    }
    for a in &addrs {
        assert!(
            tokio::net::TcpStream::connect(a).await.is_err(),
            "node at {a} still running"
        );
    }
}
