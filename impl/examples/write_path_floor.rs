//! The floor under `raftkv bench --clients 1`'s ratio "write p50 / node
//! fsync p50": the same path with no Raft in it. Three processes on
//! loopback TCP, each blocking on its socket like a one-thread node:
//!
//! client --request--> leader --entry--> followers 1 and 2
//!                     leader: write + fdatasync of its own log
//!                              each follower: write + fdatasync, ack
//! client <--answer--- leader <--ack----
//!
//! The leader sends the entry to both followers before its own fsync (as
//! R-persist-3 lets a node), so the fsyncs run at once, and answers when
//! its own and the first follower's are done: the least a majority of
//! three can do (the later ack is read when it comes, with `poll`). Message and record sizes are those
//! of a 100-byte `bench` write. docs/operating.md, "One thread per node",
//! has results.
//!
//! With `--tokio` the leader and followers are tokio current-thread
//! programs shaped like a raftkv node (`serve --runtime current-thread`):
//! a reader task per connection hands each message over a channel to one
//! loop task, which writes and fsyncs inline and sends with `write_all`.
//! The difference between the two modes is what the async runtime costs on
//! this path; the difference to `raftkv bench` is what raftkv adds.
//!
//! With `--split` (tokio) each follower answers on a connection of its own
//! to the leader, as raftkv's transport does.
//!
//! `cargo run --release -p raftkv --example write_path_floor -- DIR [WRITES] [--tokio | --split]`
//! (DIR on the disk under test; default 3000 writes).

use hdrhistogram::Histogram;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const REQUEST: usize = 122;
const ENTRY: usize = 133;
const RECORD: usize = 132;
const ACK: usize = 13;
const ANSWER: usize = 8;

fn log_file(dir: &Path, name: &str) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("open the log file")
}

fn append_and_sync(f: &mut File, fsyncs: &mut Histogram<u64>) {
    f.write_all(&[7u8; RECORD]).expect("write");
    let t = Instant::now();
    f.sync_data().expect("fdatasync");
    fsyncs.record(t.elapsed().as_micros() as u64).unwrap();
}

/// Listens on an ephemeral port and prints it on stdout for the parent.
fn listen() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("{}", l.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    l
}

fn accept(l: &TcpListener) -> TcpStream {
    let (s, _) = l.accept().expect("accept");
    s.set_nodelay(true).unwrap();
    s
}

fn follower(dir: &Path) {
    let l = listen();
    let mut leader = accept(&l);
    let mut log = log_file(dir, "follower.log");
    let mut fsyncs = Histogram::<u64>::new(3).unwrap();
    let mut buf = [0u8; ENTRY];
    while leader.read_exact(&mut buf).is_ok() {
        append_and_sync(&mut log, &mut fsyncs);
        leader.write_all(&[1u8; ACK]).expect("ack");
    }
}

fn leader(dir: &Path, follower_ports: &[u16]) {
    use std::os::fd::AsRawFd;
    let mut followers: Vec<TcpStream> = follower_ports
        .iter()
        .map(|&p| {
            let s = TcpStream::connect(("127.0.0.1", p)).expect("connect");
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let l = listen();
    let mut client = accept(&l);
    let mut log = log_file(dir, "leader.log");
    let mut fsyncs = Histogram::<u64>::new(3).unwrap();
    let (mut req, mut ack) = ([0u8; REQUEST], [0u8; ACK]);
    // Acks read per follower; write `n` is acknowledged by a follower once
    // it has acked `n` entries (each follower acks in order).
    let mut acked = vec![0u64; followers.len()];
    let mut n = 0u64;
    while client.read_exact(&mut req).is_ok() {
        n += 1;
        for f in &mut followers {
            f.write_all(&[3u8; ENTRY]).expect("send the entry");
        }
        append_and_sync(&mut log, &mut fsyncs);
        while acked.iter().all(|&a| a < n) {
            let mut fds: Vec<libc::pollfd> = followers
                .iter()
                .map(|f| libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is a valid array of pollfd for its length.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            assert!(r > 0, "poll");
            for (k, fd) in fds.iter().enumerate() {
                if fd.revents & libc::POLLIN != 0 {
                    followers[k].read_exact(&mut ack).expect("read the ack");
                    acked[k] += 1;
                }
            }
        }
        client.write_all(&[0u8; ANSWER]).expect("answer");
    }
    eprintln!("{}", fsyncs.value_at_quantile(0.5));
}

/// `--split` (tokio only): each follower answers on a connection of its
/// own to the leader, as raftkv's transport does (one connection per
/// direction between two nodes), instead of on the one the entry came on.
fn split() -> bool {
    std::env::var_os("WRITE_PATH_FLOOR_SPLIT").is_some()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn async_listen() -> tokio::net::TcpListener {
    let l = listen();
    l.set_nonblocking(true).unwrap();
    tokio::net::TcpListener::from_std(l).unwrap()
}

fn async_follower(dir: &Path) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    runtime().block_on(async {
        let l = async_listen();
        let (leader, _) = l.accept().await.unwrap();
        leader.set_nodelay(true).unwrap();
        let (mut rd, wr) = leader.into_split();
        let mut wr: Box<dyn tokio::io::AsyncWrite + Unpin> = Box::new(wr);
        if split() {
            // [k, port]: answer on a connection of our own to the leader.
            let mut hello = [0u8; 3];
            rd.read_exact(&mut hello).await.unwrap();
            let port = u16::from_be_bytes([hello[1], hello[2]]);
            let mut back = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            back.set_nodelay(true).unwrap();
            back.write_all(&hello[..1]).await.unwrap();
            wr = Box::new(back);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            let mut buf = [0u8; ENTRY];
            while rd.read_exact(&mut buf).await.is_ok() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
        let mut log = log_file(dir, "follower.log");
        let mut fsyncs = Histogram::<u64>::new(3).unwrap();
        while rx.recv().await.is_some() {
            append_and_sync(&mut log, &mut fsyncs);
            wr.write_all(&[1u8; ACK]).await.expect("ack");
        }
    })
}

fn async_leader(dir: &Path, follower_ports: &[u16]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    runtime().block_on(async {
        // Messages to the loop task.
        enum Msg {
            Request,
            Ack(usize),
            ClientGone,
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
        let mut to_followers = Vec::new();
        let acks = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ack_port = acks.local_addr().unwrap().port().to_be_bytes();
        for (k, &p) in follower_ports.iter().enumerate() {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", p))
                .await
                .unwrap();
            s.set_nodelay(true).unwrap();
            // Where follower k's acks come from: the same connection, or
            // (split) one it opens back to `acks`, named by its first byte.
            let (mut rd, k) = if split() {
                s.write_all(&[k as u8, ack_port[0], ack_port[1]])
                    .await
                    .unwrap();
                let (back, _) = acks.accept().await.unwrap();
                back.set_nodelay(true).unwrap();
                let (mut rd, _) = back.into_split();
                let mut who = [0u8; 1];
                rd.read_exact(&mut who).await.unwrap();
                let (_, wr) = s.into_split();
                to_followers.push(wr);
                (rd, usize::from(who[0]))
            } else {
                let (rd, wr) = s.into_split();
                to_followers.push(wr);
                (rd, k)
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut ack = [0u8; ACK];
                while rd.read_exact(&mut ack).await.is_ok() {
                    if tx.send(Msg::Ack(k)).is_err() {
                        break;
                    }
                }
            });
        }
        let l = async_listen();
        let (client, _) = l.accept().await.unwrap();
        client.set_nodelay(true).unwrap();
        let (mut client_rd, mut client_wr) = client.into_split();
        tokio::spawn(async move {
            let mut req = [0u8; REQUEST];
            while client_rd.read_exact(&mut req).await.is_ok() {
                if tx.send(Msg::Request).is_err() {
                    break;
                }
            }
            let _ = tx.send(Msg::ClientGone);
        });
        let mut log = log_file(dir, "leader.log");
        let mut fsyncs = Histogram::<u64>::new(3).unwrap();
        let mut acked = vec![0u64; to_followers.len()];
        let (mut n, mut answered) = (0u64, 0u64);
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::ClientGone => break,
                Msg::Ack(k) => acked[k] += 1,
                Msg::Request => {
                    n += 1;
                    for f in &mut to_followers {
                        f.write_all(&[3u8; ENTRY]).await.expect("send the entry");
                    }
                    append_and_sync(&mut log, &mut fsyncs);
                }
            }
            // Write n is done once its own fsync (inline above) and one
            // follower's ack are; the client sends the next request only
            // after the answer.
            if n > answered && acked.iter().any(|&a| a >= n) {
                client_wr.write_all(&[0u8; ANSWER]).await.expect("answer");
                answered = n;
            }
        }
        eprintln!("{}", fsyncs.value_at_quantile(0.5));
    })
}

fn spawn(args: &[&str]) -> (std::process::Child, u16) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().parse().expect("a port"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--follower") => return follower(Path::new(&args[2])),
        Some("--async-follower") => return async_follower(Path::new(&args[2])),
        Some(mode @ ("--leader" | "--async-leader")) => {
            let ports: Vec<u16> = args[3..].iter().map(|p| p.parse().unwrap()).collect();
            if mode == "--leader" {
                return leader(Path::new(&args[2]), &ports);
            }
            return async_leader(Path::new(&args[2]), &ports);
        }
        _ => {}
    }
    let Some(dir) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: write_path_floor DIR [WRITES]");
        std::process::exit(2);
    };
    let split = args.iter().any(|a| a == "--split");
    if split {
        // The children read it from their environment.
        std::env::set_var("WRITE_PATH_FLOOR_SPLIT", "1");
    }
    let tokio = split || args.iter().any(|a| a == "--tokio");
    let writes: u64 = args
        .get(2)
        .filter(|a| !a.starts_with("--"))
        .map_or(3000, |w| w.parse().expect("WRITES"));
    let (follower_mode, leader_mode) = if tokio {
        ("--async-follower", "--async-leader")
    } else {
        ("--follower", "--leader")
    };
    let dir = tempfile::tempdir_in(&dir).expect("a directory in DIR");
    let d = dir.path().to_str().unwrap();
    for k in ["1", "2"] {
        std::fs::create_dir(dir.path().join(k)).unwrap();
    }
    let (mut f1, port1) = spawn(&[follower_mode, &format!("{d}/1")]);
    let (mut f2, port2) = spawn(&[follower_mode, &format!("{d}/2")]);
    let (mut l, lport) = spawn(&[leader_mode, d, &port1.to_string(), &port2.to_string()]);
    let mut leader = TcpStream::connect(("127.0.0.1", lport)).expect("connect");
    leader.set_nodelay(true).unwrap();
    let mut writes_h = Histogram::<u64>::new(3).unwrap();
    let mut answer = [0u8; ANSWER];
    for _ in 0..writes {
        let t = Instant::now();
        leader.write_all(&[5u8; REQUEST]).unwrap();
        leader.read_exact(&mut answer).unwrap();
        writes_h.record(t.elapsed().as_micros() as u64).unwrap();
    }
    drop(leader);
    let mut out = String::new();
    l.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = l.wait();
    for f in [&mut f1, &mut f2] {
        let _ = f.kill();
        let _ = f.wait();
    }
    let fsync_p50: u64 = out.trim().parse().expect("the leader's fsync p50");
    let w50 = writes_h.value_at_quantile(0.5);
    println!(
        "{} {writes} writes: write p50 {w50} µs, p99 {} µs; leader fdatasync p50 {fsync_p50} µs; \
         ratio {:.2}",
        match (tokio, split) {
            (_, true) => "tokio, split connections,",
            (true, _) => "tokio",
            _ => "blocking",
        },
        writes_h.value_at_quantile(0.99),
        w50 as f64 / fsync_p50.max(1) as f64
    );
}
