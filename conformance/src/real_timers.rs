//! `raft-conform validate --seeds N --timers real`: nodes on Real timers
//! (their own election and heartbeat timers, the production node loop:
//! batching, one Persist per drained batch) under paused tokio time, on the
//! in-memory network with loss, duplication and delay, with a seeded
//! schedule of client proposals, partitions, crashes through a storage that
//! loses every write not yet synced, and restarts. The nodes record their
//! steps; the records are validated against one model state carried
//! forward from the initial state, as `validate --trace` does (every safety
//! property on every state, a restart recovering exactly the durable state).
//!
//! Each seed runs on a current-thread runtime of its own (paused time needs
//! one), so a run is deterministic up to the order the runtime polls tasks.

use crate::recorded::{validate_records, RecordViolation};
use raftkv::node::ImplBug;
use raftkv::storage::MemStorage;
use raftkv::trace::TraceSink;
use raftkv::transport::memory::{Faults, MemNetwork, NetMode};
use raftkv::types::Role;
use raftkv::{Node, NodeConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;

/// One seeded run on Real timers.
#[derive(Debug)]
pub struct RealOutcome {
    pub seed: u64,
    /// Schedule events played (proposals, faults, pauses).
    pub events: usize,
    /// Steps the nodes recorded (all validated unless a violation stops it).
    pub records: usize,
    pub restarts: usize,
    pub proposals: usize,
    pub violation: Option<RecordViolation>,
    /// The recorded steps (NDJSON) of a run with a violation, for
    /// `validate --trace` to re-check (of every [`catch_up`] run).
    pub ndjson: Option<String>,
}

struct Run {
    servers: u64,
    net: MemNetwork,
    sink: TraceSink,
    bug: Option<ImplBug>,
    seed: u64,
    storage: BTreeMap<u64, MemStorage>,
    nodes: BTreeMap<u64, Node>,
    /// Incarnations started so far, for per-incarnation timer seeds.
    starts: u64,
}

impl Run {
    async fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let peers = (1..=self.servers).filter(|p| *p != id).collect();
        let mut cfg = NodeConfig::new(id, peers);
        self.starts += 1;
        cfg.seed = Some(self.seed.wrapping_mul(1_000_003).wrapping_add(self.starts));
        cfg.trace = Some(self.sink.clone());
        cfg.bug = self.bug;
        let st = self.storage[&id].clone();
        let (node, mut applied) = Node::spawn(cfg, Box::new(st), self.net.endpoint(id))
            .await
            .map_err(|e| anyhow::anyhow!("starting node {id}: {e}"))?;
        tokio::spawn(async move { while applied.recv().await.is_some() {} });
        self.net.register(node.clone());
        self.nodes.insert(id, node);
        Ok(())
    }

    async fn crash(&mut self, id: u64) {
        if let Some(n) = self.nodes.remove(&id) {
            self.net.unregister(id);
            n.shutdown().await;
            // Every write not yet synced is lost, as in a power failure.
            self.storage[&id].crash();
        }
    }

    async fn leader(&self) -> Option<Node> {
        for n in self.nodes.values() {
            if n.status().await.role == Role::Leader {
                return Some(n.clone());
            }
        }
        None
    }
}

/// Runs seed `seed`: `events` schedule events on `servers` nodes, then
/// validates what the nodes recorded. Call on a current-thread runtime with
/// paused time ([`run_blocking`] makes one).
pub async fn run(
    servers: u8,
    events: usize,
    seed: u64,
    bug: Option<ImplBug>,
) -> anyhow::Result<RealOutcome> {
    let servers = u64::from(servers);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut run = Run::start(servers, Faults::unreliable(), seed, bug).await?;
    let (mut restarts, mut proposals, mut partitioned) = (0, 0, false);
    for k in 0..events {
        match rng.gen_range(0..100) {
            // Client proposals to whoever leads now.
            0..=54 => {
                if let Some(l) = run.leader().await {
                    let _ = l.start(format!("s{seed}-{k}").into_bytes()).await;
                    proposals += 1;
                }
            }
            // Crash (unsynced writes lost) and restart at once or later.
            55..=62 if servers > 1 => {
                let id = rng.gen_range(1..=servers);
                run.crash(id).await;
                if rng.gen_bool(0.5) {
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..800))).await;
                }
                run.spawn(id).await?;
                restarts += 1;
            }
            // A partition, healed by a later event.
            63..=70 if servers > 1 => {
                if partitioned {
                    run.net.heal();
                } else {
                    let mask = rng.gen_range(1..(1u64 << servers) - 1);
                    run.net
                        .partition((1..=servers).filter(|i| mask & (1 << (i - 1)) != 0));
                }
                partitioned = !partitioned;
            }
            // Otherwise time passes: timers fire, messages arrive.
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1..150))).await;
    }
    run.finish(events, restarts, proposals, false).await
}

/// A follower that falls more than a batch behind (MAX_BATCH of
/// docs/protocol.md) catches up: node 3 is cut off while `proposals`
/// writes commit on the other two, then the network heals and the leader
/// sends it the missing entries one batch at a time. Validated like [`run`]
/// (a reliable network: the point is the batch rule, not loss). A recorded
/// run hit this path by chance first (a leader elected over a follower
/// 1,060 entries behind sent it 1,024).
pub async fn catch_up(proposals: usize, seed: u64) -> anyhow::Result<RealOutcome> {
    let run = Run::start(3, Faults::reliable(), seed, None).await?;
    run.net.partition([3]);
    let mut leader = None;
    while leader.is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        leader = run.leader().await;
    }
    let leader = leader.expect("elected");
    for k in 0..proposals {
        let _ = leader.start(format!("c{k}").into_bytes()).await;
        if k % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    run.net.heal();
    run.finish(proposals, 0, proposals, true).await
}

impl Run {
    async fn start(
        servers: u64,
        faults: Faults,
        seed: u64,
        bug: Option<ImplBug>,
    ) -> anyhow::Result<Run> {
        let mut run = Run {
            servers,
            net: MemNetwork::new(NetMode::Auto, faults, seed),
            sink: TraceSink::memory(),
            bug,
            seed,
            storage: (1..=servers).map(|i| (i, MemStorage::new())).collect(),
            nodes: BTreeMap::new(),
            starts: 0,
        };
        for id in 1..=servers {
            run.spawn(id).await?;
        }
        Ok(run)
    }

    /// Heals, lets the cluster settle, stops every node and validates what
    /// the nodes recorded (kept in the outcome on a violation or when
    /// `keep_records`).
    async fn finish(
        mut self,
        events: usize,
        restarts: usize,
        proposals: usize,
        keep_records: bool,
    ) -> anyhow::Result<RealOutcome> {
        self.net.heal();
        // Quiet time at the end: the cluster settles and commits what it can.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for (id, n) in std::mem::take(&mut self.nodes) {
            self.net.unregister(id);
            n.shutdown().await;
        }
        let lines = self
            .sink
            .lines()
            .map_err(|e| anyhow::anyhow!("cannot read the recorded steps: {e}"))?;
        let text = lines.join("\n");
        let seed = self.seed;
        let recs = crate::steps::parse_text(&text, &format!("real-timers-seed-{seed}.ndjson"))?;
        let records = recs.len();
        let out = validate_records(vec![recs])?;
        Ok(RealOutcome {
            seed,
            events,
            records,
            restarts,
            proposals,
            ndjson: (keep_records || out.violation.is_some()).then(|| text + "\n"),
            violation: out.violation,
        })
    }
}

/// [`run`] on a current-thread runtime of its own with paused time.
pub fn run_blocking(
    servers: u8,
    events: usize,
    seed: u64,
    bug: Option<ImplBug>,
) -> anyhow::Result<RealOutcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    rt.block_on(run(servers, events, seed, bug))
}

/// Totals of `validate --seeds N --timers real`.
#[derive(Debug)]
pub struct RealSummary {
    /// Runs done, in seed order (stops after the batch with the first
    /// violation).
    pub outcomes: Vec<RealOutcome>,
    pub seconds: f64,
}

impl RealSummary {
    pub fn records(&self) -> usize {
        self.outcomes.iter().map(|o| o.records).sum()
    }
    pub fn violations(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.violation.is_some())
            .count()
    }
    pub fn first(&self) -> Option<&RealOutcome> {
        self.outcomes.iter().find(|o| o.violation.is_some())
    }
}

/// Runs seeds `seeds`, `jobs` at a time on threads of their own, stopping
/// after the first batch with a violation.
pub fn run_many(
    servers: u8,
    events: usize,
    seeds: std::ops::Range<u64>,
    bug: Option<ImplBug>,
    jobs: usize,
) -> anyhow::Result<RealSummary> {
    let started = std::time::Instant::now();
    let seeds: Vec<u64> = seeds.collect();
    let mut outcomes = Vec::new();
    for chunk in seeds.chunks(jobs.max(1)) {
        let batch: Vec<anyhow::Result<RealOutcome>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&seed| scope.spawn(move || run_blocking(servers, events, seed, bug)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a validation thread panicked")))
                })
                .collect()
        });
        let mut batch = batch.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        batch.sort_by_key(|o| o.seed);
        let stop = batch.iter().any(|o| o.violation.is_some());
        outcomes.extend(batch);
        if stop {
            break;
        }
    }
    Ok(RealSummary {
        outcomes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
