// Over 600 lines: the 6.824-style scenario suite (elections, agreement, persistence, unreliable networks), one short test each on shared helpers.
//! Scenario tests in the spirit of the MIT 6.824 Raft suite, on the
//! in-memory network with paused tokio time: fast and deterministic.

use raftkv::storage::{FileStorage, MemStorage, Storage};
use raftkv::transport::memory::{Faults, MemNetwork, NetMode};
use raftkv::types::{LogIndex, NodeId, Role, Term};
use raftkv::{ApplyMsg, Node, NodeConfig, StartError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::sleep;

const ELECTION_LO: Duration = Duration::from_millis(300);
const ELECTION_HI: Duration = Duration::from_millis(600);
const HEARTBEAT: Duration = Duration::from_millis(50);

/// `RAFTKV_SCENARIO_SEED=k` shifts every seed: sweep it to explore more
/// schedules (each run stays deterministic).
fn seed_offset() -> u64 {
    std::env::var("RAFTKV_SCENARIO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

enum StorageKind {
    Mem(Vec<MemStorage>),
    File(tempfile::TempDir),
}

#[derive(Default)]
struct Applied {
    /// Per node: the commands applied since its last (re)start, by index.
    per_node: BTreeMap<NodeId, Vec<Vec<u8>>>,
    /// The command every node applied at each index (they must agree).
    global: BTreeMap<LogIndex, Vec<u8>>,
    errors: Vec<String>,
}

struct Cluster {
    n: u64,
    net: MemNetwork,
    nodes: BTreeMap<NodeId, Node>,
    storage: StorageKind,
    applied: Arc<Mutex<Applied>>,
    seed: u64,
    restarts: u64,
}

impl Cluster {
    async fn new(n: u64, seed: u64) -> Cluster {
        Cluster::with_storage(
            n,
            seed,
            StorageKind::Mem((0..n).map(|_| MemStorage::new()).collect()),
        )
        .await
    }

    async fn new_on_disk(n: u64, seed: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        Cluster::with_storage(n, seed, StorageKind::File(dir)).await
    }

    async fn with_storage(n: u64, seed: u64, storage: StorageKind) -> Cluster {
        let seed = seed_offset().wrapping_add(seed);
        let mut c = Cluster {
            n,
            net: MemNetwork::new(NetMode::Auto, Faults::reliable(), seed),
            nodes: BTreeMap::new(),
            storage,
            applied: Arc::new(Mutex::new(Applied::default())),
            seed,
            restarts: 0,
        };
        for id in 1..=n {
            c.start_node(id).await;
        }
        c
    }

    fn open_storage(&self, id: NodeId) -> Box<dyn Storage> {
        match &self.storage {
            StorageKind::Mem(v) => Box::new(v[(id - 1) as usize].clone()),
            StorageKind::File(dir) => {
                Box::new(FileStorage::open(dir.path().join(format!("n{id}"))).unwrap())
            }
        }
    }

    async fn start_node(&mut self, id: NodeId) {
        let mut cfg = NodeConfig::new(id, (1..=self.n).filter(|p| *p != id).collect());
        cfg.election_timeout = (ELECTION_LO, ELECTION_HI);
        cfg.heartbeat_interval = HEARTBEAT;
        cfg.seed = Some(self.seed.wrapping_add(self.restarts * 1000));
        self.restarts += 1;
        let storage = self.open_storage(id);
        let (node, mut rx) = Node::spawn(cfg, storage, self.net.endpoint(id))
            .await
            .unwrap();
        self.net.register(node.clone());
        self.nodes.insert(id, node);
        let applied = self.applied.clone();
        applied.lock().unwrap().per_node.insert(id, Vec::new());
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let ApplyMsg::Entry { index, command, .. } = m else {
                    // These clusters never snapshot (nothing calls Node::snapshot).
                    panic!("node {id} was handed a snapshot");
                };
                let mut a = applied.lock().unwrap();
                let mine = a.per_node.get_mut(&id).unwrap();
                if index != mine.len() as LogIndex + 1 {
                    let msg = format!("node {id} applied {index} after {}", mine.len());
                    a.errors.push(msg);
                    continue;
                }
                mine.push(command.clone());
                match a.global.get(&index) {
                    Some(c) if *c != command => {
                        let msg = format!(
                            "node {id} applied {command:?} at {index}, another applied {c:?}"
                        );
                        a.errors.push(msg);
                    }
                    Some(_) => {}
                    None => {
                        a.global.insert(index, command);
                    }
                }
            }
        });
    }

    async fn crash(&mut self, id: NodeId) {
        self.net.unregister(id);
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await;
        }
    }

    async fn restart(&mut self, id: NodeId) {
        self.crash(id).await;
        self.start_node(id).await;
    }

    fn disconnect(&self, id: NodeId) {
        self.net.isolate(id);
    }

    fn connect(&self, id: NodeId) {
        self.net.reconnect(id);
    }

    fn errors(&self) -> Vec<String> {
        self.applied.lock().unwrap().errors.clone()
    }

    fn assert_no_errors(&self) {
        let e = self.errors();
        assert!(e.is_empty(), "apply errors: {e:?}");
    }

    /// The single leader among connected, running nodes (retrying as 6.824 does).
    async fn check_one_leader(&self) -> NodeId {
        for _ in 0..10 {
            sleep(Duration::from_millis(450)).await;
            let mut leaders: BTreeMap<Term, Vec<NodeId>> = BTreeMap::new();
            for (id, node) in &self.nodes {
                if self.net.connected(*id, *id) {
                    let s = node.status().await;
                    if s.role == Role::Leader {
                        leaders.entry(s.term).or_default().push(*id);
                    }
                }
            }
            for (term, ls) in &leaders {
                assert!(
                    ls.len() <= 1,
                    "term {term} has {} leaders: {ls:?}",
                    ls.len()
                );
            }
            if let Some((_, ls)) = leaders.iter().next_back() {
                return ls[0];
            }
        }
        panic!("expected one leader, got none");
    }

    async fn check_no_leader(&self) {
        for (id, node) in &self.nodes {
            if self.net.connected(*id, *id) {
                assert_ne!(
                    node.status().await.role,
                    Role::Leader,
                    "node {id} is leader without a quorum"
                );
            }
        }
    }

    async fn check_terms(&self) -> Term {
        let mut term = None;
        for (id, node) in &self.nodes {
            if self.net.connected(*id, *id) {
                let t = node.status().await.term;
                match term {
                    None => term = Some(t),
                    Some(x) => assert_eq!(x, t, "servers disagree on term"),
                }
            }
        }
        term.expect("some node is connected")
    }

    /// How many running nodes applied `index`, and the command.
    fn n_committed(&self, index: LogIndex) -> (usize, Option<Vec<u8>>) {
        let a = self.applied.lock().unwrap();
        let mut count = 0;
        let mut cmd = None;
        for (id, log) in &a.per_node {
            if !self.nodes.contains_key(id) {
                continue;
            }
            if let Some(c) = log.get(index as usize - 1) {
                if let Some(prev) = &cmd {
                    assert_eq!(prev, c, "committed values differ at {index}");
                }
                count += 1;
                cmd = Some(c.clone());
            }
        }
        (count, cmd)
    }

    /// Submit `cmd` until some leader commits it on at least `expected`
    /// nodes; returns its index (6.824's `one`).
    async fn one(&self, cmd: u64, expected: usize, retry: bool) -> LogIndex {
        let want = cmd.to_string().into_bytes();
        let mut starts = 0u64;
        for _ in 0..100 {
            let mut index = None;
            for i in 0..self.n {
                let id = (starts + i) % self.n + 1;
                if let Some(node) = self.nodes.get(&id) {
                    if !self.net.connected(id, id) {
                        continue;
                    }
                    if let Ok((idx, _)) = node.start(want.clone()).await {
                        index = Some(idx);
                        break;
                    }
                }
            }
            starts += 1;
            if let Some(idx) = index {
                for _ in 0..40 {
                    let (count, c) = self.n_committed(idx);
                    if count >= expected && c.as_deref() == Some(&want[..]) {
                        return idx;
                    }
                    sleep(Duration::from_millis(50)).await;
                }
                if !retry {
                    panic!("one({cmd}) failed to reach agreement on {expected} nodes");
                }
            } else {
                sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("one({cmd}) failed to reach agreement");
    }

    async fn wait(&self, index: LogIndex, n: usize) -> Option<Vec<u8>> {
        for _ in 0..60 {
            let (count, c) = self.n_committed(index);
            if count >= n {
                return c;
            }
            sleep(Duration::from_millis(50)).await;
        }
        self.n_committed(index).1
    }
}

#[tokio::test(start_paused = true)]
async fn initial_election() {
    let c = Cluster::new(3, 1).await;
    let leader = c.check_one_leader().await;
    let term1 = c.check_terms().await;
    assert!(term1 >= 1);
    // Stable leadership: no election without failures.
    sleep(2 * ELECTION_HI).await;
    assert_eq!(
        c.check_terms().await,
        term1,
        "term changed without a failure"
    );
    assert_eq!(c.check_one_leader().await, leader);
}

#[tokio::test(start_paused = true)]
async fn reelection_and_no_leader_without_quorum() {
    let c = Cluster::new(3, 2).await;
    let leader1 = c.check_one_leader().await;
    // The leader is cut off: a new one is elected.
    c.disconnect(leader1);
    let leader2 = c.check_one_leader().await;
    assert_ne!(leader1, leader2);
    // The old leader rejoins: still one leader.
    c.connect(leader1);
    let leader3 = c.check_one_leader().await;
    // Without a quorum, no leader.
    c.disconnect(leader3);
    let other = (1..=3)
        .find(|i| *i != leader3 && *i != leader1)
        .unwrap_or(leader1);
    let other = if other == leader3 { leader1 } else { other };
    c.disconnect(other);
    sleep(2 * ELECTION_HI).await;
    c.check_no_leader().await;
    // A quorum again: a leader.
    c.connect(other);
    c.check_one_leader().await;
    c.connect(leader3);
    c.check_one_leader().await;
}

#[tokio::test(start_paused = true)]
async fn many_elections_five_nodes() {
    let c = Cluster::new(5, 3).await;
    let mut rng = StdRng::seed_from_u64(seed_offset() + 3);
    c.check_one_leader().await;
    for _ in 0..10 {
        // Cut three at random: sometimes no quorum, sometimes a leader change.
        let mut cut = Vec::new();
        while cut.len() < 3 {
            let i = rng.gen_range(1..=5);
            if !cut.contains(&i) {
                cut.push(i);
            }
        }
        for &i in &cut {
            c.disconnect(i);
        }
        sleep(ELECTION_HI).await;
        for &i in &cut {
            c.connect(i);
        }
        c.check_one_leader().await;
    }
}

#[tokio::test(start_paused = true)]
async fn basic_agreement() {
    let c = Cluster::new(3, 4).await;
    for i in 1..=3u64 {
        let (count, _) = c.n_committed(i);
        assert_eq!(count, 0, "committed before start");
        let idx = c.one(i * 100, 3, false).await;
        assert_eq!(idx, i);
    }
    c.assert_no_errors();
}

#[tokio::test(start_paused = true)]
async fn agreement_despite_a_disconnected_follower() {
    let c = Cluster::new(3, 5).await;
    c.one(101, 3, false).await;
    let leader = c.check_one_leader().await;
    let f = leader % 3 + 1;
    c.disconnect(f);
    c.one(102, 2, false).await;
    c.one(103, 2, false).await;
    sleep(ELECTION_HI).await;
    c.one(104, 2, false).await;
    c.one(105, 2, false).await;
    c.connect(f);
    c.one(106, 3, true).await;
    sleep(ELECTION_HI).await;
    c.one(107, 3, true).await;
    c.assert_no_errors();
}

#[tokio::test(start_paused = true)]
async fn no_commit_without_a_majority() {
    let c = Cluster::new(5, 6).await;
    c.one(10, 5, false).await;
    let leader = c.check_one_leader().await;
    for k in 1..=3 {
        c.disconnect((leader + k - 1) % 5 + 1);
    }
    let (idx, _) = c.nodes[&leader]
        .start(b"20".to_vec())
        .await
        .expect("leader rejected start");
    assert_eq!(idx, 2);
    sleep(2 * ELECTION_HI).await;
    assert_eq!(c.n_committed(idx).0, 0, "committed without a majority");
    for k in 1..=3 {
        c.connect((leader + k - 1) % 5 + 1);
    }
    // The disconnected majority may have elected a leader whose log lacks index 2.
    let leader2 = c.check_one_leader().await;
    match c.nodes[&leader2].start(b"30".to_vec()).await {
        Ok((i, _)) => assert!((2..=3).contains(&i), "unexpected index {i}"),
        Err(e) => panic!("leader refused start: {e}"),
    }
    c.one(1000, 5, true).await;
    c.assert_no_errors();
}

#[tokio::test(start_paused = true)]
async fn concurrent_starts() {
    let c = Cluster::new(3, 7).await;
    'outer: for _attempt in 0..5 {
        let leader = c.check_one_leader().await;
        let node = c.nodes[&leader].clone();
        let Ok((_, term)) = node.start(b"1".to_vec()).await else {
            continue;
        };
        let handles: Vec<_> = (0..5u64)
            .map(|i| {
                let node = node.clone();
                tokio::spawn(async move { node.start((100 + i).to_string().into_bytes()).await })
            })
            .collect();
        let mut indices = Vec::new();
        for h in handles {
            match h.await.unwrap() {
                Ok((idx, t)) if t == term => indices.push((idx, 0)),
                _ => continue 'outer,
            }
        }
        let mut got = Vec::new();
        for (idx, _) in &indices {
            match c.wait(*idx, 3).await {
                Some(cmd) => got.push(String::from_utf8(cmd).unwrap()),
                None => continue 'outer,
            }
        }
        got.sort();
        assert_eq!(got, vec!["100", "101", "102", "103", "104"]);
        c.assert_no_errors();
        return;
    }
    panic!("term changed too often");
}

#[tokio::test(start_paused = true)]
async fn deposed_leader_rejoins() {
    let c = Cluster::new(3, 8).await;
    c.one(101, 3, true).await;
    let leader1 = c.check_one_leader().await;
    c.disconnect(leader1);
    // The old leader accepts entries that can never commit.
    for v in [102, 103, 104] {
        c.nodes[&leader1]
            .start(v.to_string().into_bytes())
            .await
            .unwrap();
    }
    c.one(103, 2, true).await;
    let leader2 = c.check_one_leader().await;
    c.disconnect(leader2);
    c.connect(leader1);
    c.one(104, 2, true).await;
    c.connect(leader2);
    c.one(105, 3, true).await;
    c.assert_no_errors();
}

#[tokio::test(start_paused = true)]
async fn fast_backup_over_long_divergent_logs() {
    let c = Cluster::new(5, 9).await;
    let mut v = 1000u64;
    let mut next = || {
        v += 1;
        v
    };
    c.one(next(), 5, true).await;
    let leader1 = c.check_one_leader().await;
    // Put the leader and one follower in a partition.
    let others: Vec<NodeId> = (1..=5).filter(|i| *i != leader1).collect();
    for &i in &others[1..] {
        c.disconnect(i);
    }
    // Lots of entries that won't commit.
    for _ in 0..50 {
        let _ = c.nodes[&leader1]
            .start(next().to_string().into_bytes())
            .await;
    }
    sleep(ELECTION_HI / 2).await;
    c.disconnect(leader1);
    c.disconnect(others[0]);
    for &i in &others[1..] {
        c.connect(i);
    }
    // Lots of successful commands in the new group.
    for _ in 0..50 {
        c.one(next(), 3, true).await;
    }
    // Now another partitioned leader and one follower.
    let leader2 = c.check_one_leader().await;
    let other = *others[1..].iter().find(|i| **i != leader2).unwrap();
    c.disconnect(other);
    for _ in 0..50 {
        let _ = c.nodes[&leader2]
            .start(next().to_string().into_bytes())
            .await;
    }
    sleep(ELECTION_HI / 2).await;
    // Bring the original leader back to life.
    for i in 1..=5 {
        c.disconnect(i);
    }
    c.connect(leader1);
    c.connect(others[0]);
    c.connect(other);
    for _ in 0..50 {
        c.one(next(), 3, true).await;
    }
    // Everyone back: the long divergent logs are repaired.
    for i in 1..=5 {
        c.connect(i);
    }
    let sent_before = c.net.stats().sent;
    c.one(next(), 5, true).await;
    let sent = c.net.stats().sent - sent_before;
    eprintln!("fast backup: {sent} messages to repair");
    // With the conflict hint a follower 50+ entries behind in another term
    // is repaired in a few round trips, not one per entry.
    assert!(sent < 150, "repairing divergent logs took {sent} messages");
    c.assert_no_errors();
}

#[tokio::test(start_paused = true)]
async fn rpc_economy() {
    let c = Cluster::new(3, 10).await;
    let leader = c.check_one_leader().await;
    let term = c.check_terms().await;
    // Idle: only heartbeats and their responses.
    let before = c.net.stats().sent;
    let idle = Duration::from_secs(2);
    sleep(idle).await;
    let sent = c.net.stats().sent - before;
    eprintln!("rpc economy: {sent} messages");
    let beats = (idle.as_millis() / HEARTBEAT.as_millis()) as u64 + 1;
    assert!(
        sent <= beats * 2 * 2,
        "{sent} messages while idle (at most {} expected)",
        beats * 4
    );
    // Under load: a bounded number of messages per command.
    let before = c.net.stats().sent;
    let mut last = 0;
    for i in 1..=10u64 {
        let (idx, t) = c.nodes[&leader]
            .start(i.to_string().into_bytes())
            .await
            .unwrap();
        assert_eq!(t, term, "term changed during the test");
        last = idx;
    }
    assert_eq!(c.wait(last, 3).await, Some(b"10".to_vec()));
    let sent = c.net.stats().sent - before;
    eprintln!("rpc economy: {sent} messages");
    // Each start triggers one AppendEntries per peer and a response; the
    // wait adds heartbeats.
    assert!(sent <= 10 * 4 + 3 * 60, "{sent} messages for 10 commands");
    c.assert_no_errors();
}

async fn persistence(mut c: Cluster) {
    c.one(11, 3, true).await;
    // Crash and restart every server.
    for i in 1..=3 {
        c.restart(i).await;
    }
    c.one(12, 3, true).await;
    let leader1 = c.check_one_leader().await;
    c.restart(leader1).await;
    c.one(13, 3, true).await;
    let leader2 = c.check_one_leader().await;
    c.crash(leader2).await;
    c.one(14, 2, true).await;
    c.start_node(leader2).await;
    c.wait(4, 3).await;
    let i3 = c.check_one_leader().await % 3 + 1;
    c.crash(i3).await;
    c.one(15, 2, true).await;
    c.start_node(i3).await;
    c.one(16, 3, true).await;
    // Every server re-applied the whole log from index 1 after its restart.
    for i in 1..=3 {
        let applied = c.applied.lock().unwrap().per_node[&i].clone();
        let want: Vec<Vec<u8>> = (11..=16).map(|v: u64| v.to_string().into_bytes()).collect();
        assert_eq!(applied, want, "node {i} applied {applied:?}");
    }
    c.assert_no_errors();
}

#[tokio::test(start_paused = true)]
async fn persistence_across_restarts_mem() {
    persistence(Cluster::new(3, 11).await).await;
}

#[tokio::test(start_paused = true)]
async fn persistence_across_restarts_on_disk() {
    persistence(Cluster::new_on_disk(3, 12).await).await;
}

async fn figure8(unreliable: bool, iters: usize, seed: u64, on_disk: bool) {
    let mut c = if on_disk {
        Cluster::new_on_disk(5, seed).await
    } else {
        Cluster::new(5, seed).await
    };
    if unreliable {
        c.net.set_faults(Faults {
            drop: 0.1,
            duplicate: 0.05,
            delay: (Duration::ZERO, Duration::from_millis(200)),
        });
    }
    let mut rng = StdRng::seed_from_u64(seed_offset() + seed);
    c.one(rng.gen_range(1..10_000), 1, true).await;
    let mut up = 5;
    let mut deposed = 0;
    for _ in 0..iters {
        let mut leader = None;
        for i in 1..=5 {
            if let Some(node) = c.nodes.get(&i) {
                if c.net.connected(i, i)
                    && node
                        .start(rng.gen_range(1..10_000u64).to_string().into_bytes())
                        .await
                        .is_ok()
                {
                    leader = Some(i);
                }
            }
        }
        let ms = if rng.gen_range(0..1000) < 100 {
            rng.gen_range(0..ELECTION_HI.as_millis() as u64 / 2)
        } else {
            rng.gen_range(0..13)
        };
        sleep(Duration::from_millis(ms)).await;
        if let Some(l) = leader {
            if unreliable {
                if rng.gen_bool(0.5) {
                    c.disconnect(l);
                    up -= 1;
                    deposed += 1;
                }
            } else {
                c.crash(l).await;
                up -= 1;
                deposed += 1;
            }
        }
        if up < 3 {
            let i = rng.gen_range(1..=5);
            if unreliable {
                if !c.net.connected(i, i) {
                    c.connect(i);
                    up += 1;
                }
            } else if !c.nodes.contains_key(&i) {
                c.start_node(i).await;
                up += 1;
            }
        }
    }
    for i in 1..=5 {
        if !c.nodes.contains_key(&i) {
            c.start_node(i).await;
        }
        c.connect(i);
    }
    c.net.set_faults(Faults::reliable());
    let last = c.one(rng.gen_range(1..10_000), 5, true).await;
    // Non-vacuous: leaders were cut off right after appending, many times.
    assert!(
        deposed >= 5,
        "only {deposed} leaders deposed in {iters} iterations"
    );
    eprintln!("figure8 (unreliable: {unreliable}): {deposed} leaders deposed, final index {last}");
    c.assert_no_errors();
}

#[tokio::test(start_paused = true)]
async fn figure8_reliable() {
    figure8(false, 1000, 13, false).await;
}

#[tokio::test(start_paused = true)]
async fn figure8_reliable_on_disk() {
    figure8(false, 300, 16, true).await;
}

#[tokio::test(start_paused = true)]
async fn figure8_unreliable() {
    figure8(true, 1000, 14, false).await;
}

/// Commands clients saw committed: (index, command).
type Observed = Vec<(LogIndex, Vec<u8>)>;

#[tokio::test(start_paused = true)]
async fn churn_unreliable() {
    let mut c = Cluster::new(5, 15).await;
    c.net.set_faults(Faults::unreliable());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observed: Arc<Mutex<Observed>> = Arc::default();
    // Clients: propose on random nodes, record what they saw committed.
    // The clients see the current node handles (crashed ones are replaced).
    let handles: Arc<Mutex<Vec<Node>>> = Arc::new(Mutex::new(c.nodes.values().cloned().collect()));
    let mut clients = Vec::new();
    for me in 0..3u64 {
        let (stop, observed, applied, handles) = (
            stop.clone(),
            observed.clone(),
            c.applied.clone(),
            handles.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed_offset() + 100 + me);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let cmd = rng.gen::<u32>().to_string().into_bytes();
                let node = {
                    let h = handles.lock().unwrap();
                    h[rng.gen_range(0..h.len())].clone()
                };
                match node.start(cmd.clone()).await {
                    Ok((idx, _)) => {
                        for _ in 0..20 {
                            sleep(Duration::from_millis(50)).await;
                            let got = applied.lock().unwrap().global.get(&idx).cloned();
                            if let Some(g) = got {
                                if g == cmd {
                                    observed.lock().unwrap().push((idx, cmd.clone()));
                                }
                                break;
                            }
                        }
                    }
                    Err(StartError::Stopped) => {}
                    Err(_) => sleep(Duration::from_millis(79 + me * 17)).await,
                }
            }
        }));
    }
    let mut rng = StdRng::seed_from_u64(seed_offset() + 15);
    for _ in 0..20 {
        if rng.gen_bool(0.2) {
            c.disconnect(rng.gen_range(1..=5));
        }
        if rng.gen_bool(0.5) {
            let i = rng.gen_range(1..=5);
            if !c.nodes.contains_key(&i) {
                c.start_node(i).await;
            }
            c.connect(i);
        }
        if rng.gen_bool(0.2) {
            let i = rng.gen_range(1..=5);
            if c.nodes.contains_key(&i) {
                c.crash(i).await;
            }
        }
        *handles.lock().unwrap() = c.nodes.values().cloned().collect();
        sleep(Duration::from_millis(
            rng.gen_range(0..ELECTION_HI.as_millis() as u64 * 7 / 10),
        ))
        .await;
    }
    sleep(ELECTION_HI).await;
    c.net.set_faults(Faults::reliable());
    for i in 1..=5 {
        if !c.nodes.contains_key(&i) {
            c.start_node(i).await;
        }
        c.connect(i);
    }
    *handles.lock().unwrap() = c.nodes.values().cloned().collect();
    // Let the clients work on a healed cluster for a moment, then stop them.
    sleep(ELECTION_HI).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for h in clients {
        h.await.unwrap();
    }
    sleep(ELECTION_HI).await;
    let last = c.one(rng.gen::<u32>() as u64, 5, true).await;
    let observed = observed.lock().unwrap().clone();
    assert!(
        !observed.is_empty(),
        "no client command committed during churn"
    );
    for (idx, cmd) in observed {
        assert!(idx <= last);
        let got = c.wait(idx, 5).await;
        assert_eq!(got.as_ref(), Some(&cmd), "committed command at {idx} lost");
    }
    c.assert_no_errors();
}
