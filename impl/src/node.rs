//! The async node: owns the protocol core, its storage, the transport, the
//! timers and the apply stream.
//!
//! Every command the task receives is one step of the core (docs/protocol.md
//! §4). A step's persist part is made durable before any of its messages is
//! handed to the transport. With [`TimerMode::Manual`] nothing happens on its
//! own: the caller fires the timers and each call returns once its step is
//! done, which is how tests and the conformance harness drive a node event
//! by event. With [`TimerMode::Real`] the node drains its whole queue
//! (proposals, deliveries) as steps sharing one fsync, sends their messages
//! once durable, and a leader then takes one Heartbeat step carrying the new
//! entries to the peers that have no AppendEntries outstanding.

use crate::core::{CoreConfig, LogOp, RaftCore, Ready};
use crate::message::{Body, Message};
use crate::storage::{Storage, StorageError};
use crate::transport::Transport;
use crate::types::{LogIndex, NodeId, Role, Status, Term};
use rand::{Rng, SeedableRng};
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
}

impl NodeConfig {
    /// Defaults: election timeout 300..600 ms, heartbeat 50 ms, batch 1024,
    /// Real timers, no bug.
    pub fn new(id: NodeId, peers: Vec<NodeId>) -> NodeConfig {
        NodeConfig {
            id,
            peers,
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            heartbeat_interval: Duration::from_millis(50),
            max_batch: 1024,
            timers: TimerMode::Real,
            seed: None,
            bug: None,
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

/// A committed entry, delivered in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyMsg {
    pub index: LogIndex,
    pub term: Term,
    pub command: Vec<u8>,
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
    Deliver(Message, Option<Reply<()>>),
    Status(Reply<Status>),
    FireTimeout(Reply<()>),
    FireHeartbeat(Reply<()>),
    Shutdown(Reply<()>),
}

/// A cheap handle to a running node task.
#[derive(Clone)]
pub struct Node {
    id: NodeId,
    tx: mpsc::UnboundedSender<Cmd>,
    leadership: watch::Receiver<Leadership>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Opens storage (recovering it), spawns the node task on the current
    /// tokio runtime. A restart is `shutdown` then `spawn` on the same storage.
    pub async fn spawn(
        cfg: NodeConfig,
        mut storage: Box<dyn Storage>,
        transport: Arc<dyn Transport>,
    ) -> Result<(Node, mpsc::UnboundedReceiver<ApplyMsg>), NodeError> {
        cfg.validate()?;
        let recovered = storage.load()?;
        let core = RaftCore::new(
            CoreConfig {
                id: cfg.id,
                peers: cfg.peers.clone(),
                max_batch: cfg.max_batch,
                bug: cfg.bug,
            },
            recovered.hard_state,
            recovered.log,
        );
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
        let mut task = NodeTask {
            core,
            storage,
            transport,
            apply_tx,
            last_applied: 0,
            lead_tx,
            election_deadline: now,
            heartbeat_deadline: now + cfg.heartbeat_interval,
            rng,
            cfg: cfg.clone(),
            flow: Flow::new(slots),
        };
        task.reset_election_timer();
        let handle = tokio::spawn(task.run(rx));
        Ok((
            Node {
                id: cfg.id,
                tx,
                leadership: lead_rx,
                task: Arc::new(Mutex::new(Some(handle))),
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

    /// ClientRequest: append and persist `command` (proposals arriving
    /// together share one fsync); under Real timers the node then takes one
    /// Heartbeat step carrying the batch. Returns the entry's index and term.
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
                    log: Vec::new(),
                    commit_index: 0,
                    votes_granted: Vec::new(),
                    next_index: Vec::new(),
                    match_index: Vec::new(),
                    leader_hint: None,
                    durable_term: l.term,
                    durable_voted_for: None,
                    durable_log: Vec::new(),
                    outbox: Vec::new(),
                }
            }
        }
    }

    /// Hand the node a message received from the network (one Deliver step).
    pub fn deliver(&self, msg: Message) {
        let _ = self.tx.send(Cmd::Deliver(msg, None));
    }

    /// Deliver and return once the step is done.
    pub async fn deliver_and_wait(&self, msg: Message) {
        self.call(|r| Cmd::Deliver(msg, Some(r))).await;
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

    /// Whether the node task is still running.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Stop the task between two steps and close its storage.
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
}

/// Run blocking storage I/O without starving a multi-threaded runtime.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl NodeTask {
    async fn run(self, rx: mpsc::UnboundedReceiver<Cmd>) {
        let id = self.cfg.id;
        if self.cfg.timers == TimerMode::Real {
            self.run_real(rx).await;
        } else {
            self.run_manual(rx).await;
        }
        tracing::debug!(id, "node task stopped");
    }

    /// Manual timers: every command is exactly one step, done (persisted,
    /// sent) before the next command is read.
    async fn run_manual(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        while let Some(cmd) = rx.recv().await {
            let ok = match cmd {
                Cmd::Propose(command, reply) => self.propose_one(command, reply),
                Cmd::Deliver(m, reply) => {
                    let r = self.core.deliver(m);
                    let ok = self.finish(r).is_ok();
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    ok
                }
                Cmd::Status(reply) => {
                    let _ = reply.send(self.core.status());
                    true
                }
                Cmd::FireTimeout(reply) => {
                    let r = self.core.timeout();
                    let ok = self.finish(r).is_ok();
                    let _ = reply.send(());
                    ok
                }
                Cmd::FireHeartbeat(reply) => {
                    let r = self.core.heartbeat();
                    let ok = self.finish(r).is_ok();
                    let _ = reply.send(());
                    ok
                }
                Cmd::Shutdown(reply) => {
                    let _ = reply.send(());
                    break;
                }
            };
            if !ok {
                // Fail-stop: the in-memory state ran ahead of the disk.
                break;
            }
        }
    }

    /// Real timers: wait for a command or a timer, then take as steps every
    /// command already queued (proposals, deliveries, ...), make all their
    /// persist parts durable with one fsync, and only then send their
    /// messages, in step order (group commit on both leader and followers;
    /// each reply still leaves only after the state it depends on is
    /// durable). A leader then sends new entries to every peer that has no
    /// AppendEntries outstanding (one Heartbeat step, see [`Flow`]).
    async fn run_real(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let leader = self.core.is_leader();
            let wake = tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => Wake::Cmd(c),
                    None => break,
                },
                _ = tokio::time::sleep_until(self.election_deadline), if !leader => Wake::ElectionTimer,
                _ = tokio::time::sleep_until(self.heartbeat_deadline), if leader => Wake::HeartbeatTimer,
            };
            let mut batch = Batch::default();
            let mut shutdown = None;
            let mut next = Some(wake);
            let mut steps = 0usize;
            while let Some(w) = next.take() {
                match w {
                    Wake::ElectionTimer => {
                        let r = self.core.timeout();
                        self.reset_election_timer();
                        batch.readies.push(r);
                    }
                    Wake::HeartbeatTimer => {
                        let r = self.core.heartbeat();
                        self.heartbeat_deadline = Instant::now() + self.cfg.heartbeat_interval;
                        batch.readies.push(r);
                    }
                    Wake::Cmd(Cmd::Propose(command, reply)) => match self.core.propose(command) {
                        Err(e) => {
                            let _ = reply.send(Err(e.into()));
                        }
                        Ok((index, term, r)) => {
                            batch.readies.push(r);
                            batch.accepted.push((reply, index, term));
                        }
                    },
                    Wake::Cmd(Cmd::Deliver(m, reply)) => {
                        self.note_response(&m);
                        let r = self.core.deliver(m);
                        batch.readies.push(r);
                        if let Some(reply) = reply {
                            batch.acks.push(reply);
                        }
                    }
                    Wake::Cmd(Cmd::Status(reply)) => {
                        if self.flush(&mut batch).is_err() {
                            return;
                        }
                        let _ = reply.send(self.core.status());
                    }
                    Wake::Cmd(Cmd::FireTimeout(reply)) => {
                        let r = self.core.timeout();
                        batch.readies.push(r);
                        batch.acks.push(reply);
                    }
                    Wake::Cmd(Cmd::FireHeartbeat(reply)) => {
                        let r = self.core.heartbeat();
                        batch.readies.push(r);
                        batch.acks.push(reply);
                    }
                    Wake::Cmd(Cmd::Shutdown(reply)) => {
                        shutdown = Some(reply);
                        break;
                    }
                }
                steps += 1;
                if batch.accepted.len() >= self.cfg.max_batch || steps >= 4 * self.cfg.max_batch {
                    break;
                }
                if let Ok(c) = rx.try_recv() {
                    next = Some(Wake::Cmd(c));
                }
            }
            if self.flush(&mut batch).is_err() {
                // Fail-stop: the in-memory state ran ahead of the disk.
                return;
            }
            if let Some(reply) = shutdown {
                let _ = reply.send(());
                return;
            }
            self.send_new_entries();
        }
    }

    /// Leader: record that `m` answers an AppendEntries of this term.
    fn note_response(&mut self, m: &Message) {
        if let Body::AppendEntriesResponse {
            term,
            success,
            index,
            ..
        } = m.body
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
    /// Heartbeat step and send it to the peers with nothing outstanding only
    /// (to the protocol, the others' copies are dropped by the network; the
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
        let mut r = self.core.heartbeat();
        r.messages
            .retain(|m| !matches!(m.body, Body::AppendEntries { .. }) || idle(m.to));
        // A Heartbeat step persists nothing.
        let _ = self.finish(r);
    }

    /// Make every step of the batch durable (one fsync), then send their
    /// messages and apply, in step order, then answer the callers.
    fn flush(&mut self, b: &mut Batch) -> Result<(), StorageError> {
        if b.readies.iter().any(Ready::has_writes) {
            let storage = &mut self.storage;
            let readies = &mut b.readies;
            let res: Result<(), StorageError> = blocking(|| {
                let mut run: Vec<crate::types::Entry> = Vec::new();
                let mut synced = true;
                for r in readies.iter_mut() {
                    if let Some(hs) = r.hard_state {
                        if !run.is_empty() {
                            storage.append(&run)?;
                            run.clear();
                        }
                        storage.set_hard_state(hs)?;
                    }
                    for op in r.log_ops.drain(..) {
                        synced = false;
                        match op {
                            LogOp::Append { entries, .. } => run.extend(entries),
                            LogOp::Truncate { last_index } => {
                                if !run.is_empty() {
                                    storage.append(&run)?;
                                    run.clear();
                                }
                                storage.truncate(last_index)?;
                            }
                        }
                    }
                }
                if !run.is_empty() {
                    storage.append(&run)?;
                }
                if !synced {
                    storage.sync()?;
                }
                Ok(())
            });
            if let Err(e) = res {
                tracing::error!(id = self.cfg.id, error = %e, "storage failed; stopping the node");
                for (reply, _, _) in b.accepted.drain(..) {
                    let _ = reply.send(Err(StartError::Storage(e.to_string())));
                }
                return Err(e);
            }
        }
        for r in std::mem::take(&mut b.readies) {
            self.after_persist(r);
        }
        let p = self.core.persist();
        self.after_persist(p);
        for (reply, index, term) in b.accepted.drain(..) {
            let _ = reply.send(Ok((index, term)));
        }
        for reply in b.acks.drain(..) {
            let _ = reply.send(());
        }
        Ok(())
    }

    fn reset_election_timer(&mut self) {
        let (lo, hi) = self.cfg.election_timeout;
        let d = self.rng.gen_range(lo..hi);
        self.election_deadline = Instant::now() + d;
    }

    fn persist(&mut self, r: &Ready) -> Result<(), StorageError> {
        let storage = &mut self.storage;
        blocking(|| {
            if let Some(hs) = r.hard_state {
                storage.set_hard_state(hs)?;
            }
            for op in &r.log_ops {
                match op {
                    LogOp::Truncate { last_index } => storage.truncate(*last_index)?,
                    LogOp::Append { entries, .. } => storage.append(entries)?,
                }
            }
            if !r.log_ops.is_empty() {
                storage.sync()?;
            }
            Ok(())
        })
    }

    /// Persist, then send, then apply: the tail of every step.
    fn finish(&mut self, r: Ready) -> Result<(), StorageError> {
        if r.has_writes() {
            if let Err(e) = self.persist(&r) {
                tracing::error!(id = self.cfg.id, error = %e, "storage failed; stopping the node");
                return Err(e);
            }
        }
        self.after_persist(r);
        let p = self.core.persist();
        self.after_persist(p);
        Ok(())
    }

    fn after_persist(&mut self, r: Ready) {
        let was_leader = *self.lead_tx.borrow();
        if self.core.is_leader() {
            self.flow.sync_term(self.core.term());
        }
        for m in r.messages {
            if let Body::AppendEntries { term, .. } = m.body {
                if term == self.flow.term {
                    if let Some(j) = self.flow.slot(m.to) {
                        self.flow.inflight[j] = true;
                    }
                }
            }
            self.transport.send(m);
        }
        if r.reset_election_timer {
            self.reset_election_timer();
        }
        if r.committed.is_some() {
            self.apply_committed();
        }
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
            let _ = self.apply_tx.send(ApplyMsg {
                index: self.last_applied,
                term: e.term,
                command: e.command.clone(),
            });
        }
    }

    fn propose_one(&mut self, command: Vec<u8>, reply: StartReply) -> bool {
        match self.core.propose(command) {
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                true
            }
            Ok((index, term, r)) => match self.finish(r) {
                Ok(()) => {
                    let _ = reply.send(Ok((index, term)));
                    true
                }
                Err(e) => {
                    let _ = reply.send(Err(StartError::Storage(e.to_string())));
                    false
                }
            },
        }
    }
}
/// Steps taken in one drain of the queue (Real timers), made durable by one
/// fsync before any of their messages leaves.
#[derive(Default)]
struct Batch {
    readies: Vec<Ready>,
    /// Proposals accepted in this batch, answered once durable.
    accepted: Vec<(StartReply, LogIndex, Term)>,
    /// `deliver_and_wait` callers, answered once their step is done.
    acks: Vec<Reply<()>>,
}

/// What the Real-timer loop woke up for.
enum Wake {
    Cmd(Cmd),
    ElectionTimer,
    HeartbeatTimer,
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
