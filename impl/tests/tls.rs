//! Mutual TLS with real `raftkv serve` processes: a cluster started with
//! `--tls-dir` serves a client with a certificate its CA signed; a client
//! without a certificate, one speaking plain TCP and one with a foreign
//! CA's certificate are refused and nothing they sent is applied; a node
//! with a foreign certificate cannot join; `cluster --tls` makes working
//! certificates. Every wait is bounded.

mod common;

use common::{free_ports, raftkv, stderr, stdout, wait_until, Procs, EXE};
use futures::{SinkExt, StreamExt};
use raftkv::codec::{ClientRequest, Frame, FrameCodec, Op};
use raftkv::tls;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_util::codec::Framed;

fn hosts() -> Vec<String> {
    vec!["127.0.0.1".into(), "localhost".into()]
}

/// A CA with certificates for nodes 1..=3 and a client, in `dir`.
fn certs(dir: &Path) -> PathBuf {
    tls::generate(dir, &[1, 2, 3], &hosts()).unwrap();
    dir.to_path_buf()
}

fn tls_args(dir: &Path) -> Vec<String> {
    vec!["--tls-dir".into(), dir.to_str().unwrap().into()]
}

fn put(cluster: &str, dir: Option<&Path>, key: &str, timeout: &str) -> std::process::Output {
    let mut args = vec!["put", key, "v", "--cluster", cluster, "--timeout", timeout];
    if let Some(d) = dir {
        args.extend(["--tls-dir", d.to_str().unwrap()]);
    }
    raftkv(&args)
}

fn get(cluster: &str, dir: &Path, key: &str) -> std::process::Output {
    raftkv(&[
        "get",
        key,
        "--cluster",
        cluster,
        "--timeout",
        "30",
        "--tls-dir",
        dir.to_str().unwrap(),
    ])
}

/// A Put sent over TLS that trusts the cluster's CA but presents no
/// certificate: the node must refuse the connection before the frame.
async fn put_without_a_certificate(ca_dir: &Path, addr: &str, key: &str) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_dir.join(tls::CA_CERT)).unwrap();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let dialer = tls::Dialer::tls(Arc::new(cfg));
    // TLS 1.3: the client's side of the handshake completes before the
    // node has checked for a certificate; the refusal arrives after.
    let conn = dialer.connect(addr).await.map_err(|e| e.to_string())?;
    let mut framed = Framed::new(conn, FrameCodec::default());
    let request = ClientRequest {
        client_id: 77,
        seq: 1,
        op: Op::Put {
            key: key.into(),
            value: "v".into(),
        },
    };
    framed
        .send(Frame::Request { id: 1, request })
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(std::time::Duration::from_secs(20), framed.next()).await {
        Ok(Some(Ok(Frame::Response { .. }))) => Ok(()),
        Ok(Some(Ok(f))) => Err(format!("unexpected frame {f:?}")),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err("closed".into()),
        Err(_) => panic!("no answer and no refusal within 20 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_need_a_certificate_the_cluster_ca_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let good = certs(&tmp.path().join("good"));
    let foreign = certs(&tmp.path().join("foreign"));
    // Trusts the cluster's CA, presents the foreign CA's client certificate.
    let mixed = tmp.path().join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(good.join(tls::CA_CERT), mixed.join(tls::CA_CERT)).unwrap();
    for f in [tls::CLIENT_CERT, tls::CLIENT_KEY] {
        std::fs::copy(foreign.join(f), mixed.join(f)).unwrap();
    }
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let procs = Procs::start(&data, 3, |_| tls_args(&good));
    let cluster = procs.cluster();
    let run = {
        let cluster = cluster.clone();
        move |f: Box<dyn FnOnce(&str) -> std::process::Output + Send>| {
            let cluster = cluster.clone();
            std::thread::spawn(move || f(&cluster)).join().unwrap()
        }
    };

    let g = good.clone();
    let o = run(Box::new(move |c| put(c, Some(&g), "authorized", "30")));
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), procs.logs());

    // Plain TCP, a foreign client certificate, a wholly foreign TLS dir.
    let o = run(Box::new(|c| put(c, None, "plain", "3")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--tls-dir"), "{}", stderr(&o));
    let m = mixed.clone();
    let o = run(Box::new(move |c| put(c, Some(&m), "foreign-cert", "3")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = foreign.clone();
    let o = run(Box::new(move |c| put(c, Some(&f), "foreign-ca", "3")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // No certificate at all, to every node.
    for addr in procs.addrs.values() {
        let r = put_without_a_certificate(&good, addr, "no-cert").await;
        assert!(r.is_err(), "a client without a certificate was answered");
    }

    // Nothing they sent was applied; the authorized write was.
    let g = good.clone();
    let o = run(Box::new(move |c| get(c, &g, "authorized")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "v");
    for key in ["plain", "foreign-cert", "foreign-ca", "no-cert"] {
        let g = good.clone();
        let o = run(Box::new(move |c| get(c, &g, key)));
        assert_eq!(
            o.status.code(),
            Some(1),
            "{key} was applied: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("not found"), "{key}: {}", stderr(&o));
    }
    // The nodes logged the refusals.
    let logs = procs.logs();
    assert!(logs.contains("TLS handshake refused"), "{logs}");
}

#[test]
fn a_node_with_a_foreign_certificate_cannot_join() {
    let tmp = tempfile::tempdir().unwrap();
    let good = certs(&tmp.path().join("good"));
    let foreign = certs(&tmp.path().join("foreign"));
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let procs = Procs::start(&data, 3, |id| {
        tls_args(if id == 3 { &foreign } else { &good })
    });
    let cluster = procs.cluster();
    // Nodes 1 and 2 are a majority.
    for i in 0..3 {
        let o = put(&cluster, Some(&good), &format!("k{i}"), "30");
        assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), procs.logs());
    }
    let status = |dir: &Path, addr: &str| -> (Option<i32>, Value) {
        let o = raftkv(&[
            "status",
            "--cluster",
            addr,
            "--json",
            "--timeout",
            "5",
            "--tls-dir",
            dir.to_str().unwrap(),
        ]);
        let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
        (o.status.code(), rows[0].clone())
    };
    // The cluster's nodes committed the writes (a follower learns the
    // commit index with the leader's next message).
    for id in [1, 2] {
        let mut row = Value::Null;
        let committed = wait_until(30, || {
            let (code, r) = status(&good, &procs.addrs[&id]);
            row = r;
            code == Some(0) && row["commit_index"].as_u64() >= Some(3)
        });
        assert!(committed, "{row}");
    }
    // The cluster's CA does not reach node 3, and node 3 (asked with its
    // own CA) has learnt nothing: no entry, no leader of the cluster's.
    let (code, row) = status(&good, &procs.addrs[&3]);
    assert_eq!(code, Some(1), "{row}");
    assert_eq!(row["reachable"], false);
    let (code, row) = status(&foreign, &procs.addrs[&3]);
    assert_eq!(code, Some(0), "{row}");
    assert_eq!(row["commit_index"], 0, "{row}");
    assert_eq!(row["last_index"], 0, "{row}");
    assert!(row["role"] != "leader" && row["leader"].is_null(), "{row}");
    // Both sides logged it: nodes 1 and 2 refused node 3's handshakes, and
    // node 3 could not connect to them.
    assert!(
        wait_until(30, || {
            procs.log(1).contains("TLS handshake refused")
                && procs.log(2).contains("TLS handshake refused")
        }),
        "{}",
        procs.logs()
    );
    assert!(
        procs.log(3).contains("TLS connection to peer failed")
            || procs.log(3).contains("connection to peer failed"),
        "{}",
        procs.log(3)
    );
}

#[test]
fn cluster_tls_makes_certificates_clients_can_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    // Three consecutive free ports.
    let base = loop {
        let p = free_ports(1)[0];
        if p < 65000 && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            break p;
        }
    };
    let out = std::fs::File::create(tmp.path().join("launcher.out")).unwrap();
    let mut launcher = std::process::Command::new(EXE)
        .args([
            "cluster",
            "--nodes",
            "3",
            "--tls",
            "--base-port",
            &base.to_string(),
        ])
        .arg("--dir")
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tls_dir = dir.join("tls");
    let printed = wait_until(30, || {
        std::fs::read_to_string(tmp.path().join("launcher.out"))
            .is_ok_and(|s| s.contains(&format!("--tls-dir {}", tls_dir.display())))
    });
    let cluster = (0..3)
        .map(|i| format!("127.0.0.1:{}", base + i))
        .collect::<Vec<_>>()
        .join(",");
    let result = std::panic::catch_unwind(|| {
        assert!(printed, "the launcher did not print the client's --tls-dir");
        for f in [
            "ca.pem",
            "node-1.pem",
            "node-3-key.pem",
            "client.pem",
            "client-key.pem",
        ] {
            assert!(tls_dir.join(f).is_file(), "{f}");
        }
        let o = put(&cluster, Some(&tls_dir), "color", "30");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = get(&cluster, &tls_dir, "color");
        assert_eq!(stdout(&o).trim(), "v", "{}", stderr(&o));
        let o = put(&cluster, None, "plain", "2");
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(launcher.id() as libc::pid_t, libc::SIGTERM) };
    let stopped = wait_until(30, || launcher.try_wait().unwrap().is_some());
    if !stopped {
        let _ = launcher.kill();
    }
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
    assert!(stopped, "the launcher did not stop on SIGTERM");
}

#[test]
fn bad_tls_dirs_are_usage_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = certs(&tmp.path().join("t"));
    std::fs::write(dir.join("node-2.pem"), "not a certificate").unwrap();
    let port = free_ports(1)[0];
    let o = raftkv(&[
        "serve",
        "--id",
        "2",
        "--peers",
        &format!("2=127.0.0.1:{port}"),
        "--data-dir",
        tmp.path().join("d").to_str().unwrap(),
        "--tls-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("node-2.pem"), "{}", stderr(&o));
    let o = raftkv(&[
        "get",
        "k",
        "--cluster",
        "127.0.0.1:1",
        "--tls-dir",
        tmp.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("ca.pem"), "{}", stderr(&o));
}

#[test]
fn a_tls_cluster_survives_killing_its_leader_and_the_node_rejoins() {
    let tmp = tempfile::tempdir().unwrap();
    let good = certs(&tmp.path().join("good"));
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut procs = Procs::start(&data, 3, |_| tls_args(&good));
    let cluster = procs.cluster();
    let o = put(&cluster, Some(&good), "before", "30");
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), procs.logs());
    let rows = |addr: &str| -> Vec<Value> {
        let o = raftkv(&[
            "status",
            "--cluster",
            addr,
            "--json",
            "--timeout",
            "5",
            "--tls-dir",
            good.to_str().unwrap(),
        ]);
        serde_json::from_str::<Value>(&stdout(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let mut leader = None;
    assert!(wait_until(30, || {
        leader = rows(&cluster)
            .iter()
            .find(|r| r["role"] == "leader")
            .and_then(|r| r["id"].as_u64());
        leader.is_some()
    }));
    let leader = leader.unwrap();
    procs.kill(leader);
    // The other two elect a leader over TLS and take the write.
    let o = put(&cluster, Some(&good), "after", "30");
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stderr(&o), procs.logs());
    // The restarted node reconnects over TLS and catches up.
    procs.spawn(leader);
    let addr = procs.addrs[&leader].clone();
    let mut last = Vec::new();
    let caught_up = wait_until(30, || {
        last = rows(&addr);
        last[0]["applied_index"].as_u64() >= Some(2)
    });
    assert!(caught_up, "{last:?}\n{}", procs.logs());
    let o = get(&cluster, &good, "after");
    assert_eq!(stdout(&o).trim(), "v", "{}", stderr(&o));
}
