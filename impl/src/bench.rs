//! The `bench` load generator of the binary.

mod snapshots;

pub use snapshots::{snapshots, SnapshotBenchOptions};

use crate::launcher::LocalCluster;
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use raftkv::client::{node_metrics, Client, ClientConfig};
use raftkv::tls::Dialer;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct BenchOptions {
    pub cluster: Vec<String>,
    pub clients: usize,
    pub ops: u64,
    pub value_size: usize,
    pub fsync_dir: PathBuf,
    /// How connections are opened (plain TCP or TLS).
    pub dialer: Dialer,
}

/// Latency of `fdatasync` after a 4 KiB append, the floor for a durable write.
fn measure_fdatasync(dir: &Path, rounds: usize) -> Result<Histogram<u64>> {
    let path = dir.join(format!(".raftkv-fsync-probe-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let block = vec![0xabu8; 4096];
    let mut h = Histogram::<u64>::new(3).expect("valid histogram precision");
    let result = (|| -> Result<()> {
        for _ in 0..rounds {
            f.write_all(&block)?;
            let t = Instant::now();
            f.sync_data()?;
            h.record(t.elapsed().as_micros() as u64)?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    result.context("measuring fdatasync")?;
    Ok(h)
}

pub(crate) fn us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} µs")
    }
}

/// The write benchmark: `clients` concurrent sessions, `ops` Puts in total.
pub async fn writes(o: &BenchOptions) -> Result<String> {
    if o.clients == 0 || o.ops == 0 {
        bail!("--clients and --ops must be at least 1");
    }
    // The disk is shared and its fsync latency drifts: probe before and
    // after the load and compare against both together.
    let mut fsync = measure_fdatasync(&o.fsync_dir, 200)?;
    let value: String = "x".repeat(o.value_size);
    // Warm up: every client finds the leader and opens its connection.
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        let mut c =
            Client::connect_with(o.cluster.clone(), ClientConfig::default(), o.dialer.clone())?;
        c.put("bench-warmup", "x")
            .await
            .context("warm-up write (is the cluster up?)")?;
        clients.push(c);
    }
    let leader_addr = clients[0].last_target().to_string();
    // The nodes' own fsync histograms, before and after the load.
    let before_nodes = read_node_fsyncs(&o.dialer, &o.cluster).await;
    let per = o.ops / o.clients as u64;
    let extra = o.ops % o.clients as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let n = per + u64::from((i as u64) < extra);
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("valid histogram precision");
            for k in 0..n {
                let t = Instant::now();
                c.put(&format!("bench-{i}-{}", k % 1024), &value).await?;
                h.record(t.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(h)
        }));
    }
    let mut lat = Histogram::<u64>::new(3).expect("valid histogram precision");
    for t in tasks {
        lat.add(t.await.context("bench client panicked")??)?;
    }
    let elapsed = start.elapsed();
    let after_nodes = read_node_fsyncs(&o.dialer, &o.cluster).await;
    let before = fsync.value_at_quantile(0.5);
    let after_h = measure_fdatasync(&o.fsync_dir, 200)?;
    let after = after_h.value_at_quantile(0.5);
    fsync.add(after_h)?;
    let mut r = String::new();
    writeln!(
        r,
        "writes: {} ops, {} clients, {} B values, {:.2} s",
        lat.len(),
        o.clients,
        o.value_size,
        elapsed.as_secs_f64()
    )?;
    writeln!(
        r,
        "throughput: {:.0} writes/s",
        lat.len() as f64 / elapsed.as_secs_f64()
    )?;
    writeln!(
        r,
        "latency: p50 {}  p99 {}  p99.9 {}  max {}",
        us(lat.value_at_quantile(0.5)),
        us(lat.value_at_quantile(0.99)),
        us(lat.value_at_quantile(0.999)),
        us(lat.max())
    )?;
    let f50 = fsync.value_at_quantile(0.5).max(1);
    writeln!(
        r,
        "fdatasync of a 4 KiB append ({}): p50 {}  p99 {}  (p50 before the load {}, after {})",
        o.fsync_dir.display(),
        us(f50),
        us(fsync.value_at_quantile(0.99)),
        us(before),
        us(after)
    )?;
    writeln!(
        r,
        "ratio: write p50 / fdatasync p50 = {:.2}",
        lat.value_at_quantile(0.5) as f64 / f50 as f64
    )?;
    // The nodes' fsyncs during the load (after minus before).
    let mut leader_p50 = None;
    write!(r, "node fsync during the load:")?;
    for addr in &o.cluster {
        match (before_nodes.get(addr), after_nodes.get(addr)) {
            (Some(Ok((id, b))), Some(Ok((_, a)))) => {
                let mut d = a.clone();
                if d.subtract(b).is_err() {
                    d = a.clone(); // the node restarted meanwhile: all it has
                }
                let leader = *addr == leader_addr;
                if leader && !d.is_empty() {
                    leader_p50 = Some(d.value_at_quantile(0.5).max(1));
                }
                write!(
                    r,
                    "\n  node {id}{}: {} fsyncs, p50 {}  p99 {}",
                    if leader { " (leader)" } else { "" },
                    d.len(),
                    us(d.value_at_quantile(0.5)),
                    us(d.value_at_quantile(0.99))
                )?;
            }
            (_, Some(Err(e))) | (Some(Err(e)), _) => write!(r, "\n  {addr}: unavailable ({e})")?,
            _ => write!(r, "\n  {addr}: unavailable")?,
        }
    }
    match leader_p50 {
        Some(f) => write!(
            r,
            "\nratio: write p50 / node fsync p50 (leader) = {:.2}",
            lat.value_at_quantile(0.5) as f64 / f as f64
        )?,
        None => write!(
            r,
            "\nratio: write p50 / node fsync p50: leader fsyncs unavailable"
        )?,
    }
    Ok(r)
}

/// Every node's id and fsync histogram, by address (errors kept per node).
async fn read_node_fsyncs(
    dialer: &Dialer,
    addrs: &[String],
) -> BTreeMap<String, Result<(u64, Histogram<u64>), String>> {
    let mut out = BTreeMap::new();
    for a in addrs {
        let m = node_metrics(dialer, a, Duration::from_secs(5))
            .await
            .map(|m| (m.node, m.fsync_histogram()))
            .map_err(|e| e.to_string());
        out.insert(a.clone(), m);
    }
    out
}

/// The failover benchmark: kill -9 the leader, time the first successful
/// write through a client that knows every address.
pub async fn failover(
    exe: &Path,
    nodes: u64,
    dir: &Path,
    base_port: u16,
    trials: usize,
) -> Result<String> {
    if nodes < 3 {
        bail!("failover needs at least 3 nodes");
    }
    let mut cluster = LocalCluster::start_with(exe, nodes, dir, base_port, true)?;
    let addrs: Vec<String> = cluster.addrs().values().cloned().collect();
    let cfg = ClientConfig {
        op_timeout: Duration::from_secs(30),
        attempt_timeout: Duration::from_secs(2),
        backoff: (Duration::from_millis(2), Duration::from_millis(10)),
    };
    let mut client = Client::connect(addrs.clone(), cfg)?;
    client
        .put("failover", "start")
        .await
        .context("first write to the new cluster")?;
    let mut times = Vec::new();
    for trial in 1..=trials {
        client.put("failover", "probe").await?;
        let leader_addr = client.last_target().to_string();
        let leader = cluster
            .id_of(&leader_addr)
            .context("the client's target is not a cluster address")?;
        cluster.kill(leader);
        let t = Instant::now();
        client
            .put("failover", &format!("after-{trial}"))
            .await
            .with_context(|| format!("trial {trial}: first write after killing node {leader}"))?;
        let d = t.elapsed();
        times.push(d);
        eprintln!("trial {trial}: killed leader {leader}, first write after {d:?}");
        cluster.spawn(leader)?;
        // Let the victim rejoin and catch up before the next kill.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    cluster.stop_all();
    times.sort();
    let median = times[times.len() / 2];
    let max = *times.last().expect("at least one trial");
    Ok(format!(
        "failover: {} trials, {} nodes; kill -9 leader -> first successful write: median {:.0} ms, max {:.0} ms, min {:.0} ms",
        times.len(),
        nodes,
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0
    ))
}
