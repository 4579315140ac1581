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
//! `cargo run --release -p raftkv --example write_path_floor -- DIR [WRITES]`
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
        Some("--leader") => {
            let ports: Vec<u16> = args[3..].iter().map(|p| p.parse().unwrap()).collect();
            return leader(Path::new(&args[2]), &ports);
        }
        _ => {}
    }
    let Some(dir) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: write_path_floor DIR [WRITES]");
        std::process::exit(2);
    };
    let writes: u64 = args.get(2).map_or(3000, |w| w.parse().expect("WRITES"));
    let dir = tempfile::tempdir_in(&dir).expect("a directory in DIR");
    let d = dir.path().to_str().unwrap();
    for k in ["1", "2"] {
        std::fs::create_dir(dir.path().join(k)).unwrap();
    }
    let (mut f1, port1) = spawn(&["--follower", &format!("{d}/1")]);
    let (mut f2, port2) = spawn(&["--follower", &format!("{d}/2")]);
    let (mut l, lport) = spawn(&["--leader", d, &port1.to_string(), &port2.to_string()]);
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
        "{writes} writes: write p50 {w50} µs, p99 {} µs; leader fdatasync p50 {fsync_p50} µs; \
         ratio {:.2}",
        writes_h.value_at_quantile(0.99),
        w50 as f64 / fsync_p50.max(1) as f64
    );
}
