// Over 600 lines: the public Node handle and its NodeTask event loop share one private command protocol; splitting them would widen it to the crate.
//! The async node: owns the protocol core, its storage, the transport, the
//! timers and the apply stream.
//!
//! One loop for both timer modes. Every command the task receives, and every
//! timer, is one step of the core (docs/protocol.md §4): the step's writes
//! are buffered in the node, its immediate messages (AppendEntries, and
//! dependent messages while nothing is pending) are handed to the transport
//! at once, its dependent messages otherwise wait in the core's outbox. A
//! `Persist` step (docs/protocol.md §7) writes every buffered write to
//! storage — hard state first, then the log changes — fsyncs once, calls
//! [`RaftCore::persist`] and sends the released outbox. A crash before the
//! Persist loses every buffered write, as the model's Restart does.
//!
//! With [`TimerMode::Manual`] nothing happens on its own: the caller fires
//! the timers and the Persist ([`Node::fire_persist`]), and each call is
//! exactly one step, which is how tests and the conformance harness drive a
//! node event by event. With [`TimerMode::Real`] the node fires them itself:
//! it drains its queue (proposals, deliveries) as steps, then, as leader,
//! takes one Heartbeat step carrying the new entries whose copies to peers
//! with an AppendEntries outstanding are not sent (flow control: for the
//! protocol the network dropped them), and only then one Persist for the
//! batch (one fsync). The entries thus leave before the leader's own fsync
//! (R-persist-3): the followers' fsyncs run while the leader's does, and the
//! leader counts itself toward commit only after its Persist (R-persist-4).

use crate::core::{CoreConfig, HardState, LogOp, RaftCore, Ready, SnapshotRefused};
use crate::message::{AppendEntries, AppendEntriesResponse, Body, Message, MsgTag};
use crate::storage::{Storage, StorageError};
use crate::trace::{Recorder, TraceEvent, TraceSink};
use crate::transport::Transport;
use crate::types::{LogIndex, NodeId, Role, Snapshot, Status, Term};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::core::{ImplBug, NotLeader};

/// Who fires the election and heartbeat timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    /// The node's own randomized election timeout and heartbeat interval.
    Real,
    /// Deterministic mode: only `fire_election_timeout` / `fire_heartbeat`.
    Manual,
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Every node of the cluster except `id`.
    pub peers: Vec<NodeId>,
    /// Election timeout, drawn uniformly from `[lo, hi)` under Real timers.
    pub election_timeout: (Duration, Duration),
    pub heartbeat_interval: Duration,
    /// MAX_BATCH of docs/protocol.md: most entries per AppendEntries, and
    /// most proposals drained into one fsync.
    pub max_batch: usize,
    pub timers: TimerMode,
    /// Seed of the election-timeout randomness (None: from the OS).
    pub seed: Option<u64>,
    /// A seeded protocol bug; honoured only with the `seeded-bugs` feature.
    pub bug: Option<ImplBug>,
    /// Where to record every step (docs/trace-format.md, recorded steps).
    pub trace: Option<TraceSink>,
}

/// MAX_BATCH of docs/protocol.md unless a `NodeConfig` says otherwise;
/// `serve` has no flag for it, so every recorded run uses this one.
pub const DEFAULT_MAX_BATCH: usize = 1024;

impl NodeConfig {
    /// Defaults: election timeout 300..600 ms, heartbeat 50 ms, batch 1024,
    /// Real timers, no bug.
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> NodeConfig {
        NodeConfig {
            id,
            peers,
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            heartbeat_interval: Duration::from_millis(50),
            max_batch: DEFAULT_MAX_BATCH,
            timers: TimerMode::Real,
            seed: None,
            bug: None,
            trace: None,
        }
    }

    fn validate(&self) -> Result<(), NodeError> {
        let bad = |s: String| Err(NodeError::InvalidConfig(s));
        if self.id == 0 {
            return bad("node ids start at 1".into());
        }
        if self.peers.contains(&self.id) {
            return bad(format!(
                "peers must not contain the node's own id {}",
                self.id
            ));
        }
        if self.peers.contains(&0) {
            return bad("node ids start at 1; peer 0 is invalid".into());
        }
        let (lo, hi) = self.election_timeout;
        if lo.is_zero() || hi <= lo {
            return bad(format!(
                "election timeout range {lo:?}..{hi:?} must be non-empty and above zero"
            ));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= lo {
            return bad(format!(
                "heartbeat interval {:?} must be above zero and below the election timeout {lo:?}",
                self.heartbeat_interval
            ));
        }
        if self.max_batch == 0 {
            return bad("max_batch must be at least 1".into());
        }
        Ok(())
    }
}

/// What the state machine applies, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyMsg {
    /// A committed entry.
    Entry {
        index: LogIndex,
        term: Term,
        command: Vec<u8>,
    },
    /// Load this snapshot in place of everything applied so far: the node
    /// restarted from it (R-snap-5) or installed it from the leader
    /// (R-snap-4). Entries after its index follow.
    Snapshot(Snapshot),
}

impl ApplyMsg {
    /// The index this message brings the state machine to.
    pub fn index(&self) -> LogIndex {
        match self {
            ApplyMsg::Entry { index, .. } => *index,
            ApplyMsg::Snapshot(s) => s.meta.index,
        }
    }
}

/// [`Node::snapshot`] took no step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Refused(#[from] SnapshotRefused),
    #[error("the node has stopped")]
    Stopped,
}

/// What the node knows about leadership, published on every change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    pub term: Term,
    pub role: Role,
    pub leader_hint: Option<NodeId>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("invalid node configuration: {0}")]
    InvalidConfig(String),
    #[error("trace: {0}")]
    Trace(#[from] crate::trace::TraceError),
}

/// Where the node's log stands, published after every step (relaxed
/// atomics: for `raftkv status` and the metrics endpoint, never for
/// decisions).
#[derive(Debug, Default)]
pub struct NodeProgress {
    /// The commit index after the node's last step.
    pub commit_index: AtomicU64,
    /// The index of the last entry of the node's log (durable or not).
    pub last_index: AtomicU64,
    /// Proposals this node accepted as leader (ClientRequest steps).
    pub proposals: AtomicU64,
    /// The index of the node's durable snapshot (0: none).
    pub snapshot_index: AtomicU64,
    /// Bytes of log on disk.
    pub log_bytes: AtomicU64,
}

/// The node's fsync latency since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsyncLatency {
    /// How many fsyncs (Persist steps that wrote log changes).
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    #[error("the node has stopped")]
    Stopped,
    #[error("storage failed, the node stopped: {0}")]
    Storage(String),
}

impl From<NotLeader> for StartError {
    fn from(e: NotLeader) -> Self {
        StartError::NotLeader {
            leader_hint: e.leader_hint,
        }
    }
}

type Reply<T> = oneshot::Sender<T>;
type StartReply = Reply<Result<(LogIndex, Term), StartError>>;

enum Cmd {
    Propose(Vec<u8>, StartReply),
    Deliver(Message, Option<MsgTag>, Option<Reply<()>>),
    Status(Reply<Status>),
    FireTimeout(Reply<()>),
    FireHeartbeat(Reply<()>),
    FirePersist(Reply<()>),
    Snapshot(LogIndex, bytes::Bytes, Reply<Result<(), SnapshotRefused>>),
    Shutdown(Reply<()>),
}

/// A cheap handle to a running node task.
#[derive(Clone)]
pub struct Node {
    id: NodeId,
    tx: mpsc::UnboundedSender<Cmd>,
    leadership: watch::Receiver<Leadership>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    fsync: Arc<Mutex<Histogram<u64>>>,
    progress: Arc<NodeProgress>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new(3).expect("valid histogram precision")
}

impl Node {
    /// Opens storage (recovering it), spawns the node task on the current
    /// tokio runtime. A restart is `shutdown` then `spawn` on the same
    /// storage: a node that records its steps and has recorded before (or
    /// recovers a non-empty state) records a `Restart` step first.
    pub async fn spawn(
        cfg: NodeConfig,
        mut storage: Box<dyn Storage>,
        transport: Arc<dyn Transport>,
    ) -> Result<(Node, mpsc::UnboundedReceiver<ApplyMsg>), NodeError> {
        cfg.validate()?;
        let recovered = storage.load()?;
        let fresh = recovered.hard_state == HardState::default()
            && recovered.log.is_empty()
            && recovered.snapshot.is_none();
        let restored = recovered.snapshot.clone();
        let core = RaftCore::new(
            CoreConfig {
                id: cfg.id,
                peers: cfg.peers.clone(),
                max_batch: cfg.max_batch,
                bug: cfg.bug,
            },
            recovered.hard_state,
            recovered.snapshot,
            recovered.log,
        );
        let mut recorder = match &cfg.trace {
            Some(sink) => Some(Recorder::new(sink.clone(), &core)?),
            None => None,
        };
        if let Some(rec) = recorder.as_mut() {
            if rec.seq() > 0 || !fresh {
                rec.record(&core, TraceEvent::Restart, &[], &[], false)
                    .map_err(|source| {
                        NodeError::Trace(crate::trace::TraceError::Write { source })
                    })?;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (apply_tx, apply_rx) = mpsc::unbounded_channel();
        let leadership = Leadership {
            term: core.term(),
            role: core.role(),
            leader_hint: core.leader_hint(),
        };
        let (lead_tx, lead_rx) = watch::channel(leadership);
        let rng = match cfg.seed {
            Some(s) => {
                rand::rngs::StdRng::seed_from_u64(s ^ cfg.id.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            }
            None => rand::rngs::StdRng::from_entropy(),
        };
        let now = Instant::now();
        let slots = cfg.peers.iter().copied().chain([cfg.id]).max().unwrap_or(0) as usize + 1;
        let fsync = Arc::new(Mutex::new(new_histogram()));
        let progress = Arc::new(NodeProgress {
            commit_index: AtomicU64::new(core.commit_index()),
            last_index: AtomicU64::new(core.last_index()),
            proposals: AtomicU64::new(0),
            snapshot_index: AtomicU64::new(storage.snapshot_meta().map_or(0, |m| m.index)),
            log_bytes: AtomicU64::new(storage.log_bytes()),
        });
        // R-snap-5: the state machine starts from the durable snapshot.
        let last_applied = restored.as_ref().map_or(0, |s| s.meta.index);
        if let Some(s) = restored {
            let _ = apply_tx.send(ApplyMsg::Snapshot(s));
        }
        let mut task = NodeTask {
            core,
            storage,
            transport,
            apply_tx,
            last_applied,
            lead_tx,
            election_deadline: now,
            heartbeat_deadline: now + cfg.heartbeat_interval,
            rng,
            cfg: cfg.clone(),
            flow: Flow::new(slots),
            pending_hard_state: None,
            pending_ops: Vec::new(),
            pending_snapshot: None,
            recorder,
            fsync: fsync.clone(),
            progress: progress.clone(),
            failed: false,
        };
        task.reset_election_timer();
        let handle = tokio::spawn(task.run(rx));
        Ok((
            Node {
                id: cfg.id,
                tx,
                leadership: lead_rx,
                task: Arc::new(Mutex::new(Some(handle))),
                fsync,
                progress,
            },
            apply_rx,
        ))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).ok()?;
        rx.await.ok()
    }

    /// ClientRequest: append `command` to the leader's log (one step).
    /// Under Real timers it returns once the entry is durable on this node
    /// (after the Persist of its batch, which proposals arriving together
    /// share); under Manual timers once the step is taken (call
    /// [`fire_persist`](Self::fire_persist) to make it durable). Returns
    /// the entry's index and term.
    pub async fn start(&self, command: Vec<u8>) -> Result<(LogIndex, Term), StartError> {
        self.call(|r| Cmd::Propose(command, r))
            .await
            .unwrap_or(Err(StartError::Stopped))
    }

    /// The abstract state (docs/protocol.md §1) and the leader hint.
    /// Panics never; a stopped node reports its last published leadership
    /// with an empty log.
    pub async fn status(&self) -> Status {
        match self.call(Cmd::Status).await {
            Some(s) => s,
            None => {
                let l = *self.leadership.borrow();
                Status {
                    id: self.id,
                    term: l.term,
                    voted_for: None,
                    role: Role::Follower,
                    snapshot: None,
                    log: Vec::new(),
                    commit_index: 0,
                    votes_granted: Vec::new(),
                    next_index: Vec::new(),
                    match_index: Vec::new(),
                    leader_hint: None,
                    durable_term: l.term,
                    durable_voted_for: None,
                    durable_snapshot: None,
                    durable_log: Vec::new(),
                    outbox: Vec::new(),
                }
            }
        }
    }

    /// Hand the node a message received from the network (one Deliver step).
    pub fn deliver(&self, msg: Message) {
        self.deliver_tagged(msg, None);
    }

    /// [`deliver`](Self::deliver) with the message's trace id, when the
    /// sender records its steps.
    pub fn deliver_tagged(&self, msg: Message, tag: Option<MsgTag>) {
        let _ = self.tx.send(Cmd::Deliver(msg, tag, None));
    }

    /// Deliver and return once the step is taken (its immediate messages
    /// sent; nothing persisted under Manual timers).
    pub async fn deliver_and_wait(&self, msg: Message) {
        self.deliver_tagged_and_wait(msg, None).await;
    }

    /// [`deliver_and_wait`](Self::deliver_and_wait) with a trace id.
    pub async fn deliver_tagged_and_wait(&self, msg: Message, tag: Option<MsgTag>) {
        self.call(|r| Cmd::Deliver(msg, tag, Some(r))).await;
    }

    /// Watch term/role/leader changes.
    pub fn watch_leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// One Timeout step (a no-op on a leader).
    pub async fn fire_election_timeout(&self) {
        self.call(Cmd::FireTimeout).await;
    }

    /// One Heartbeat step (a no-op unless leader).
    pub async fn fire_heartbeat(&self) {
        self.call(Cmd::FireHeartbeat).await;
    }

    /// One Persist step (docs/protocol.md §7): write every buffered write to
    /// storage, fsync once, then release the outbox and, as leader, commit.
    /// A no-op when nothing is pending. Returns once the released messages
    /// are handed to the transport.
    pub async fn fire_persist(&self) {
        self.call(Cmd::FirePersist).await;
    }

    /// One Snapshot step (R-snap-2): the state machine has applied
    /// through `index` and serialised itself into `data`; the log up to
    /// `index` is compacted, durably at the next Persist. Refused (no step)
    /// unless `index` lies above the node's snapshot and at most at its
    /// commit index.
    pub async fn snapshot(&self, index: LogIndex, data: bytes::Bytes) -> Result<(), SnapshotError> {
        match self.call(|r| Cmd::Snapshot(index, data, r)).await {
            Some(r) => r.map_err(SnapshotError::from),
            None => Err(SnapshotError::Stopped),
        }
    }

    /// The node's fsync latency (microseconds) since it started.
    pub fn fsync_latency(&self) -> FsyncLatency {
        let h = self.fsync.lock().unwrap_or_else(|e| e.into_inner());
        FsyncLatency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
        }
    }

    /// A copy of the node's fsync latency histogram (microseconds).
    pub fn fsync_histogram(&self) -> Histogram<u64> {
        self.fsync.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Commit index, last log index and proposal count, as of the node's
    /// last step.
    pub fn progress(&self) -> &NodeProgress {
        &self.progress
    }

    /// Whether the node task is still running.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Stop the task between two steps and close its storage. Under Manual
    /// timers writes not yet persisted are lost (a crash); under Real timers
    /// the batch being taken is persisted first.
    pub async fn shutdown(self) {
        self.call(Cmd::Shutdown).await;
        let handle = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }
}

struct NodeTask {
    core: RaftCore,
    storage: Box<dyn Storage>,
    transport: Arc<dyn Transport>,
    apply_tx: mpsc::UnboundedSender<ApplyMsg>,
    last_applied: LogIndex,
    lead_tx: watch::Sender<Leadership>,
    election_deadline: Instant,
    heartbeat_deadline: Instant,
    rng: rand::rngs::StdRng,
    cfg: NodeConfig,
    flow: Flow,
    /// Writes of the steps since the last Persist, handed to storage only
    /// at the next Persist (R-persist-1).
    pending_hard_state: Option<HardState>,
    pending_ops: Vec<LogOp>,
    /// The newest snapshot taken or installed since the last Persist,
    /// saved after the log writes at the next one.
    pending_snapshot: Option<Snapshot>,
    recorder: Option<Recorder>,
    fsync: Arc<Mutex<Histogram<u64>>>,
    progress: Arc<NodeProgress>,
    /// Storage failed: the node stops (fail-stop).
    failed: bool,
}

/// Run blocking storage I/O without starving a multi-threaded runtime (its
/// other tasks move to another thread meanwhile). On a current-thread
/// runtime (`serve`'s default) it runs inline: nothing else could run on
/// the node loop's thread anyway, and no thread is woken.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What the loop woke up for.
enum Wake {
    Cmd(Cmd),
    ElectionTimer,
    HeartbeatTimer,
}

impl NodeTask {
    /// The one loop. Wait for a command or (Real timers) a timer; take it
    /// as a step. Under Real timers, also take every command already queued
    /// as steps; as leader send the new entries (flow-controlled Heartbeat
    /// step, before the fsync: R-persist-3); then one Persist for all of
    /// them (one fsync), answer the proposals now durable, and as leader
    /// check once more for an idle peer lacking entries. Under Manual
    /// timers a command is exactly one step and the Persist waits for
    /// [`Node::fire_persist`].
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let real = self.cfg.timers == TimerMode::Real;
        'outer: loop {
            let leader = self.core.is_leader();
            let wake = tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => Wake::Cmd(c),
                    None => break,
                },
                _ = tokio::time::sleep_until(self.election_deadline), if real && !leader => Wake::ElectionTimer,
                _ = tokio::time::sleep_until(self.heartbeat_deadline), if real && leader => Wake::HeartbeatTimer,
            };
            let mut accepted: Vec<(StartReply, LogIndex, Term)> = Vec::new();
            let mut shutdown = None;
            let mut next = Some(wake);
            let mut steps = 0usize;
            while let Some(w) = next.take() {
                if let Some(reply) = self.handle(w, real, &mut accepted) {
                    shutdown = Some(reply);
                    break;
                }
                if self.failed {
                    break;
                }
                steps += 1;
                if !real || accepted.len() >= self.cfg.max_batch || steps >= 4 * self.cfg.max_batch
                {
                    break;
                }
                if let Ok(c) = rx.try_recv() {
                    next = Some(Wake::Cmd(c));
                }
            }
            if real && !self.failed {
                // R-persist-3: the new entries go to the peers before this
                // node's own fsync, so the followers' fsyncs run while ours
                // does; the leader counts itself only after the Persist.
                self.send_new_entries();
                self.persist_step();
            }
            if self.failed {
                let e = StartError::Storage("storage failed; the node stopped".into());
                for (reply, _, _) in accepted.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
                break 'outer;
            }
            for (reply, index, term) in accepted.drain(..) {
                let _ = reply.send(Ok((index, term)));
            }
            if let Some(reply) = shutdown {
                let _ = reply.send(());
                break;
            }
            if real {
                self.send_new_entries();
            }
        }
        tracing::debug!(id = self.cfg.id, "node task stopped");
    }

    /// One wake-up as one step. Returns the reply of a Shutdown.
    fn handle(
        &mut self,
        w: Wake,
        real: bool,
        accepted: &mut Vec<(StartReply, LogIndex, Term)>,
    ) -> Option<Reply<()>> {
        match w {
            Wake::ElectionTimer => self.timeout_step(),
            Wake::HeartbeatTimer => self.heartbeat_step(),
            Wake::Cmd(Cmd::Propose(command, reply)) => match self.core.propose(command) {
                // Not enabled on a non-leader: no step.
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
                Ok((index, term, r)) => {
                    self.progress.proposals.fetch_add(1, Ordering::Relaxed);
                    let cmd = self.core.entry(index).map(|e| e.command.clone());
                    self.after_step(
                        TraceEvent::ClientRequest(cmd.as_deref().unwrap_or(&[])),
                        r,
                        None,
                    );
                    if real {
                        accepted.push((reply, index, term));
                    } else {
                        let _ = reply.send(Ok((index, term)));
                    }
                }
            },
            Wake::Cmd(Cmd::Deliver(m, tag, reply)) => {
                self.note_response(&m);
                let r = self.core.deliver(m);
                self.after_step(TraceEvent::Deliver(tag), r, None);
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            Wake::Cmd(Cmd::Status(reply)) => {
                let _ = reply.send(self.core.status());
            }
            Wake::Cmd(Cmd::FireTimeout(reply)) => {
                self.timeout_step();
                let _ = reply.send(());
            }
            Wake::Cmd(Cmd::FireHeartbeat(reply)) => {
                self.heartbeat_step();
                let _ = reply.send(());
            }
            Wake::Cmd(Cmd::FirePersist(reply)) => {
                self.persist_step();
                let _ = reply.send(());
            }
            Wake::Cmd(Cmd::Snapshot(index, data, reply)) => {
                let result = self.core.snapshot(index, data).map(|r| {
                    self.after_step(TraceEvent::Snapshot, r, None);
                });
                let _ = reply.send(result);
            }
            Wake::Cmd(Cmd::Shutdown(reply)) => return Some(reply),
        }
        None
    }

    fn timeout_step(&mut self) {
        // Not enabled on a leader: no step (the timer only runs for non-leaders).
        if self.core.is_leader() {
            return;
        }
        let r = self.core.timeout();
        self.reset_election_timer();
        self.after_step(TraceEvent::Timeout, r, None);
    }

    fn heartbeat_step(&mut self) {
        if !self.core.is_leader() {
            return;
        }
        let r = self.core.heartbeat();
        self.heartbeat_deadline = Instant::now() + self.cfg.heartbeat_interval;
        self.after_step(TraceEvent::Heartbeat, r, None);
    }

    /// Persist (docs/protocol.md §4, §7; R-persist-1): hand every buffered
    /// write to storage (hard state first, then the log changes), fsync once,
    /// then take the core's Persist step: release the outbox, commit. A
    /// no-op when the core has nothing pending. On a storage error the node
    /// fails (stops): its in-memory state ran ahead of a disk it cannot
    /// trust.
    fn persist_step(&mut self) {
        if !self.core.has_pending_writes() {
            return;
        }
        let hs = self.pending_hard_state.take();
        let ops = std::mem::take(&mut self.pending_ops);
        let snapshot = self.pending_snapshot.take();
        let storage = &mut self.storage;
        let res: Result<Option<Duration>, StorageError> = blocking(|| {
            if let Some(hs) = hs {
                storage.set_hard_state(hs)?;
            }
            let mut synced = None;
            let mut snapshot = snapshot;
            if !ops.is_empty() {
                for op in ops {
                    match op {
                        LogOp::Truncate { last_index } => {
                            storage.truncate(last_index.max(storage_floor(storage)))?
                        }
                        LogOp::Append {
                            first_index,
                            entries,
                        } => {
                            // An install from the leader past the end of
                            // our disk log: entries after it continue from
                            // the snapshot, so it is saved first (its own
                            // fsync; save_snapshot syncs the log before it).
                            if first_index > storage.last_index() + 1 {
                                if let Some(s) =
                                    snapshot.take_if(|s| s.meta.index + 1 == first_index)
                                {
                                    storage.save_snapshot(&s)?;
                                }
                            }
                            storage.append(&entries)?
                        }
                    }
                }
                let t = std::time::Instant::now();
                storage.sync()?;
                synced = Some(t.elapsed());
            }
            // After the log writes (docs/protocol.md R-snap-2): a crash in
            // between leaves the old snapshot and a log that still holds
            // everything the new one covers.
            if let Some(s) = snapshot {
                storage.save_snapshot(&s)?;
            }
            Ok(synced)
        });
        match res {
            Err(e) => {
                tracing::error!(id = self.cfg.id, error = %e, "storage failed; stopping the node");
                self.failed = true;
                return;
            }
            Ok(Some(d)) => {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
                self.fsync
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .saturating_record(us);
            }
            Ok(None) => {}
        }
        self.progress.snapshot_index.store(
            self.storage.snapshot_meta().map_or(0, |m| m.index),
            Ordering::Relaxed,
        );
        self.progress
            .log_bytes
            .store(self.storage.log_bytes(), Ordering::Relaxed);
        let r = self.core.persist();
        self.after_step(TraceEvent::Persist, r, None);
    }

    /// The tail of every step: buffer its writes, record it, send its
    /// immediate messages (except those `suppress` holds back: flow
    /// control), restart the election timer, apply, publish leadership.
    fn after_step(
        &mut self,
        event: TraceEvent<'_>,
        r: Ready,
        suppress: Option<&dyn Fn(&Message) -> bool>,
    ) {
        let is_persist = matches!(event, TraceEvent::Persist);
        let tags: Vec<Option<MsgTag>> = match self.recorder.as_mut() {
            None => vec![None; r.messages.len()],
            Some(rec) => {
                let tags = rec.tags(is_persist, r.messages.len(), r.outboxed.len());
                let sent: Vec<(MsgTag, bool, &Message)> = if is_persist {
                    Vec::new()
                } else {
                    tags.iter()
                        .zip(
                            r.messages
                                .iter()
                                .map(|m| (false, m))
                                .chain(r.outboxed.iter().map(|m| (true, m))),
                        )
                        .map(|(t, (o, m))| (*t, o, m))
                        .collect()
                };
                if let Err(e) = rec.record(&self.core, event, &r.log_ops, &sent, r.outbox_cleared) {
                    tracing::error!(id = self.cfg.id, error = %e, "cannot write the trace; recording stops");
                    self.recorder = None;
                }
                let mut t: Vec<Option<MsgTag>> = tags.into_iter().map(Some).collect();
                t.resize(r.messages.len(), None);
                t
            }
        };
        if let Some(hs) = r.hard_state {
            self.pending_hard_state = Some(hs);
        }
        for op in r.log_ops {
            buffer_op(&mut self.pending_ops, op);
        }
        if let Some(snap) = r.snapshot {
            if r.restore_snapshot {
                // R-snap-4: the state machine loads it before anything after it.
                tracing::info!(
                    id = self.cfg.id,
                    index = snap.meta.index,
                    term = snap.meta.term,
                    bytes = snap.data.len(),
                    "installed snapshot from the leader"
                );
                self.last_applied = self.last_applied.max(snap.meta.index);
                let _ = self.apply_tx.send(ApplyMsg::Snapshot(snap.clone()));
            }
            self.pending_snapshot = Some(snap);
        }
        let was_leader = *self.lead_tx.borrow();
        if self.core.is_leader() {
            self.flow.sync_term(self.core.term());
        }
        for (m, tag) in r.messages.into_iter().zip(tags) {
            if suppress.is_some_and(|s| s(&m)) {
                continue;
            }
            if let Body::AppendEntries(AppendEntries { term, .. }) = m.body {
                if term == self.flow.term {
                    if let Some(j) = self.flow.slot(m.to) {
                        self.flow.inflight[j] = true;
                    }
                }
            }
            self.transport.send_tagged(m, tag);
        }
        if r.reset_election_timer {
            self.reset_election_timer();
        }
        if r.committed.is_some() {
            self.apply_committed();
        }
        self.progress
            .commit_index
            .store(self.core.commit_index(), Ordering::Relaxed);
        self.progress
            .last_index
            .store(self.core.last_index(), Ordering::Relaxed);
        let now = Leadership {
            term: self.core.term(),
            role: self.core.role(),
            leader_hint: self.core.leader_hint(),
        };
        if now != was_leader {
            if now.role == Role::Leader && was_leader.role != Role::Leader {
                // Becoming leader already sent AppendEntries to everyone.
                self.heartbeat_deadline = Instant::now() + self.cfg.heartbeat_interval;
            }
            if now.role != Role::Leader && was_leader.role == Role::Leader {
                self.reset_election_timer();
            }
            if now.role == Role::Leader {
                tracing::info!(id = self.cfg.id, term = now.term, "became leader");
            }
            let _ = self.lead_tx.send(now);
        }
    }

    /// Leader: record that `m` answers an AppendEntries of this term.
    fn note_response(&mut self, m: &Message) {
        if let Body::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success,
            index,
            ..
        }) = m.body
        {
            if self.core.is_leader() && term == self.core.term() {
                self.flow.sync_term(term);
                if let Some(j) = self.flow.slot(m.from) {
                    self.flow.inflight[j] = false;
                    if success {
                        self.flow.acked[j] = self.flow.acked[j].max(index);
                    }
                }
            }
        }
    }

    /// Leader: if a peer with nothing outstanding lacks entries, take one
    /// Heartbeat step and send its AppendEntries to the peers with nothing
    /// outstanding only (the step is recorded with every copy; to the
    /// protocol the held-back copies are dropped by the network; the
    /// heartbeat timer still sends to everyone and retransmits).
    fn send_new_entries(&mut self) {
        if !self.core.is_leader() {
            return;
        }
        self.flow.sync_term(self.core.term());
        let last = self.core.last_index();
        let flow = &self.flow;
        let idle = |id: NodeId| match flow.slot(id) {
            Some(j) => !flow.inflight[j],
            None => true,
        };
        let wanted = self
            .cfg
            .peers
            .iter()
            .any(|&p| idle(p) && flow.slot(p).is_some_and(|j| flow.acked[j] < last));
        if !wanted {
            return;
        }
        let busy: Vec<NodeId> = self
            .cfg
            .peers
            .iter()
            .copied()
            .filter(|&p| !idle(p))
            .collect();
        let r = self.core.heartbeat();
        let suppress =
            |m: &Message| matches!(m.body, Body::AppendEntries(_)) && busy.contains(&m.to);
        self.after_step(TraceEvent::Heartbeat, r, Some(&suppress));
    }

    fn reset_election_timer(&mut self) {
        let (lo, hi) = self.cfg.election_timeout;
        let d = self.rng.gen_range(lo..hi);
        self.election_deadline = Instant::now() + d;
    }

    fn apply_committed(&mut self) {
        while self.last_applied < self.core.commit_index() {
            let Some(e) = self.core.entry(self.last_applied + 1) else {
                // Only a seeded bug can truncate below the commit index.
                tracing::error!(
                    id = self.cfg.id,
                    index = self.last_applied + 1,
                    "committed entry missing from the log"
                );
                break;
            };
            self.last_applied += 1;
            let _ = self.apply_tx.send(ApplyMsg::Entry {
                index: self.last_applied,
                term: e.term,
                command: e.command.clone(),
            });
        }
    }
}

/// Add one log change to the buffered writes, merging consecutive appends
/// (one storage append per run of entries).
fn buffer_op(ops: &mut Vec<LogOp>, op: LogOp) {
    if let LogOp::Append {
        first_index,
        entries,
    } = &op
    {
        if let Some(LogOp::Append {
            first_index: run_first,
            entries: run,
        }) = ops.last_mut()
        {
            // Only a contiguous run: after an install the next entries
            // continue from the snapshot, not from the run.
            if *run_first + run.len() as LogIndex == *first_index {
                run.extend(entries.iter().cloned());
                return;
            }
        }
    }
    ops.push(op);
}

/// The lowest index a truncation may keep to: the storage's snapshot.
fn storage_floor(storage: &dyn Storage) -> LogIndex {
    storage.snapshot_meta().map_or(0, |m| m.index)
}

/// Leader-side send scheduling (Real timers only). Per peer: whether an
/// AppendEntries to it is still unanswered, and the highest index it
/// acknowledged in `term`. A batch of new entries goes to a peer only when
/// nothing is outstanding to it; the heartbeat timer still sends to everyone.
/// Not sending a message is, for the protocol, the same as the network
/// dropping it, so every step stays a step of docs/protocol.md.
struct Flow {
    term: Term,
    inflight: Vec<bool>,
    acked: Vec<LogIndex>,
}

impl Flow {
    fn new(slots: usize) -> Flow {
        Flow {
            term: 0,
            inflight: vec![false; slots],
            acked: vec![0; slots],
        }
    }

    fn sync_term(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.inflight.iter_mut().for_each(|x| *x = false);
            self.acked.iter_mut().for_each(|x| *x = 0);
        }
    }

    fn slot(&self, id: NodeId) -> Option<usize> {
        let i = usize::try_from(id).ok()?;
        (i < self.inflight.len()).then_some(i)
    }
}
