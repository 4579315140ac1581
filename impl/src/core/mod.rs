//! The sans-IO protocol core: a deterministic state machine that implements
//! docs/protocol.md rule by rule.
//!
//! [`RaftCore`] does no I/O and reads no clock. Every change is the reaction
//! to one event (`Timeout`, `Heartbeat`, `ClientRequest`, `Deliver`,
//! `Persist`); a `Restart` is [`RaftCore::new`] from the durable state.
//!
//! Durability is an event (docs/protocol.md §7). The core tracks what is on
//! disk (the durable hard state, the durable log as `stable_index` plus a
//! `durable_tail`) next to its in-memory state, and an outbox of dependent
//! messages waiting for the disk. Each step returns a [`Ready`]: the writes
//! the step made (hard state, log truncation/appends) for the caller to
//! buffer, the messages to send *now* (AppendEntries never wait,
//! R-persist-3; dependent messages go straight out only while nothing is
//! pending, R-persist-2), and the new commit index. Once the caller has
//! written every buffered write and fsynced once, it calls
//! [`RaftCore::persist`] (R-persist-1): the durable part catches up, the
//! outbox is released in order and a leader may commit (R-persist-4).
//!
//! By responsibility, each citing the rule ids of docs/protocol.md it
//! implements, side by side with the model's modules of the same names
//! (model/src/model/): `election` (§3 term rule, R-vote-*), `replication`
//! (R-append-*, R-commit-*), `durability` (R-persist-*), `snapshot`
//! (R-snap-*: the Snapshot step, sending and installing InstallSnapshot).
//! The state, its constructors and accessors, and the Deliver dispatch are
//! here.
//!
//! With a snapshot (R-snap-1) the log is held as the snapshot (index, term,
//! opaque state-machine data) plus the entries after it; indices are
//! absolute everywhere (`last_index = snapshot_index + log.len()`), and an
//! index at or below the snapshot has no entry ([`RaftCore::entry`] is
//! `None` there, [`RaftCore::term_of`] knows only the snapshot's own term).

mod bug;
mod durability;
mod election;
mod replication;
mod snapshot;
#[cfg(test)]
mod tests;

pub use bug::{ImplBug, UnknownBug};

use crate::message::{Body, Message};
use crate::types::{Entry, LogIndex, NodeId, Role, Snapshot, SnapshotMeta, Status, Term};
use std::collections::{BTreeMap, BTreeSet};

/// The persistent `(term, voted_for)` pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
}

/// One change of the persisted log, in the order it must be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOp {
    /// Keep entries `1..=last_index`, drop the rest. After an install whose
    /// snapshot does not match the log (R-snap-4) `last_index` is the
    /// snapshot's index: the snapshot saved at the same Persist then
    /// forgets the entries up to it.
    Truncate { last_index: LogIndex },
    /// Append `entries`; the first lands at `first_index` (= current last + 1).
    Append {
        first_index: LogIndex,
        entries: Vec<Entry>,
    },
}

/// The outputs of one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The hard state to write at the next Persist, when term or vote
    /// changed in this step.
    pub hard_state: Option<HardState>,
    /// Log changes to write at the next Persist, in order.
    pub log_ops: Vec<LogOp>,
    /// Messages to hand to the transport now, in order: AppendEntries
    /// (R-persist-3), dependent messages sent while nothing was pending
    /// (R-persist-2), and, for [`RaftCore::persist`], the released outbox.
    pub messages: Vec<Message>,
    /// Dependent messages this step put into the outbox (R-persist-2), in
    /// order; they leave in the `messages` of a later `persist`. Reported
    /// for tracing: the caller sends nothing from here.
    pub outboxed: Vec<Message>,
    /// The term rule emptied the outbox in this step (R-term-2); the
    /// messages that were in it are lost.
    pub outbox_cleared: bool,
    /// The new commit index, when it advanced in this step (for an
    /// installed snapshot: its index, R-snap-4).
    pub committed: Option<LogIndex>,
    /// A snapshot to save at the next Persist (R-snap-2, R-snap-4), after
    /// the hard state and the log ops of the steps since the last Persist
    /// have been written and fsynced; only the newest one of those steps
    /// needs saving. Saving it forgets the log entries up to its index.
    pub snapshot: Option<Snapshot>,
    /// The snapshot was installed from a leader (R-snap-4): the state
    /// machine must load `snapshot.data` before it applies anything after
    /// `snapshot.meta.index`.
    pub restore_snapshot: bool,
    /// The step heard from a legitimate leader or candidate (or started an
    /// election): a real-time node restarts its election timer.
    pub reset_election_timer: bool,
}

impl Ready {
    /// Whether this step made writes the next Persist must write.
    pub fn has_writes(&self) -> bool {
        self.hard_state.is_some() || !self.log_ops.is_empty() || self.snapshot.is_some()
    }
}

/// A proposal reached a server that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader hint: {leader_hint:?})")]
pub struct NotLeader {
    pub leader_hint: Option<NodeId>,
}

/// The Snapshot step (R-snap-2) was refused: it needs
/// `snapshot_index < index <= commit_index` (and the entry at `index`
/// still in the log). Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot snapshot at index {index}: it must be above the snapshot index \
     {snapshot_index} and at most the commit index {commit_index}"
)]
pub struct SnapshotRefused {
    pub index: LogIndex,
    pub snapshot_index: LogIndex,
    pub commit_index: LogIndex,
}

/// [`RaftCore::from_state`] was given a state no core can be in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid protocol state: {0}")]
pub struct InvalidState(pub String);

/// Static configuration of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub id: NodeId,
    /// Every node of the cluster except `id`.
    pub peers: Vec<NodeId>,
    /// MAX_BATCH: most entries in one AppendEntries.
    pub max_batch: usize,
    /// A seeded bug; honoured only with the `seeded-bugs` feature.
    pub bug: Option<ImplBug>,
}

/// The protocol state of one server.
#[derive(Clone, Debug)]
pub struct RaftCore {
    id: NodeId,
    peers: Vec<NodeId>,
    max_batch: usize,
    bug: Option<ImplBug>,
    // persistent, in memory
    term: Term,
    voted_for: Option<NodeId>,
    /// The snapshot (R-snap-1): `log` holds the entries after it.
    snapshot: Option<Snapshot>,
    /// The entries at `snapshot_index + 1 ..= last_index`.
    log: Vec<Entry>,
    // durable (docs/protocol.md §1): what a Restart recovers
    durable_hard_state: HardState,
    /// The snapshot on disk.
    durable_snapshot: Option<Snapshot>,
    /// The in-memory and the durable log agree on indices `1..=stable_index`
    /// (absolute; indices a snapshot covers count as agreeing: they are
    /// committed). What the leader counts itself for (R-persist-4). While
    /// no snapshot is pending it is the longest common prefix and
    /// `log[..stable_index - snapshot_index]` is on disk unchanged.
    stable_index: LogIndex,
    /// No snapshot pending: durable entries after `stable_index` that the
    /// in-memory log no longer has (a truncation not yet persisted); empty
    /// otherwise. The durable log is then
    /// `log[..stable_index - snapshot_index] ++ durable_tail`.
    durable_tail: Vec<Entry>,
    /// Some while a snapshot is pending (taken or installed since the last
    /// Persist): the durable log after `durable_snapshot`, exactly, copied
    /// when the snapshot was made (the in-memory log no longer holds the
    /// entries it covers). `durable_tail` is empty meanwhile.
    frozen_durable_log: Option<Vec<Entry>>,
    /// Dependent messages waiting for the next Persist (R-persist-2).
    outbox: Vec<Message>,
    // volatile
    role: Role,
    commit_index: LogIndex,
    votes_granted: BTreeSet<NodeId>,
    next_index: BTreeMap<NodeId, LogIndex>,
    match_index: BTreeMap<NodeId, LogIndex>,
    leader_hint: Option<NodeId>,
}

impl RaftCore {
    /// Restart(i) (R-restart-1, R-persist-5, R-commit-3, R-snap-5): a
    /// server (re)starting from its durable state: the hard state, the
    /// snapshot and `log`, the durable entries after the snapshot (all of
    /// them without one). Everything durable, empty outbox, follower,
    /// commit index the snapshot's index (0 without one).
    pub fn new(
        cfg: CoreConfig,
        hard_state: HardState,
        snapshot: Option<Snapshot>,
        log: Vec<Entry>,
    ) -> RaftCore {
        let snapshot_index = snapshot.as_ref().map_or(0, |s| s.meta.index);
        let mut peers: Vec<NodeId> = cfg.peers.into_iter().filter(|p| *p != cfg.id).collect();
        peers.sort_unstable();
        peers.dedup();
        RaftCore {
            id: cfg.id,
            peers,
            max_batch: cfg.max_batch.max(1),
            bug: cfg.bug,
            term: hard_state.term,
            voted_for: hard_state.voted_for,
            stable_index: snapshot_index + log.len() as LogIndex,
            log,
            durable_snapshot: snapshot.clone(),
            snapshot,
            durable_hard_state: hard_state,
            durable_tail: Vec::new(),
            frozen_durable_log: None,
            outbox: Vec::new(),
            role: Role::Follower,
            commit_index: snapshot_index,
            votes_granted: BTreeSet::new(),
            next_index: BTreeMap::new(),
            match_index: BTreeMap::new(),
            leader_hint: None,
        }
    }

    /// A core in an arbitrary protocol state (feature `conformance`): the
    /// whole abstract state of docs/protocol.md §1 as a [`Status`] — term,
    /// voted_for, role, snapshot, log, commit_index, votes_granted,
    /// next_index, match_index, the durable part (`durable_term`,
    /// `durable_voted_for`, `durable_snapshot`, `durable_log`) and the
    /// outbox — plus `leader_hint`. The conformance harness builds the core
    /// in a model state and executes one transition on it. With equal
    /// snapshots `stable_index` becomes the longest common prefix of `log`
    /// and `durable_log`, the rest of `durable_log` the durable tail; with
    /// different ones the snapshot is pending and `durable_log` is kept as
    /// it is.
    ///
    /// Refused when the state is not one a core can be in: `state.id` is not
    /// `cfg.id`, a snapshot at index 0, a snapshot beyond the commit index
    /// (R-snap-1), a durable snapshot beyond the in-memory one, a commit
    /// index beyond `last_index`, `votes_granted` is non-empty for a non-candidate,
    /// `next_index`/`match_index` are not exactly the peers for a leader (or
    /// not empty otherwise), or the outbox holds messages while nothing is
    /// pending or messages that are not this server's dependent messages.
    #[cfg(feature = "conformance")]
    pub fn from_state(cfg: CoreConfig, state: &Status) -> Result<RaftCore, InvalidState> {
        let bad = |s: String| Err(InvalidState(s));
        if state.id != cfg.id {
            return bad(format!("state of node {} for core {}", state.id, cfg.id));
        }
        let index_of = |s: &Option<Snapshot>| s.as_ref().map_or(0, |s| s.meta.index);
        let (si, dsi) = (index_of(&state.snapshot), index_of(&state.durable_snapshot));
        for (name, snap) in [
            ("snapshot", &state.snapshot),
            ("durable_snapshot", &state.durable_snapshot),
        ] {
            if snap.as_ref().is_some_and(|s| s.meta.index == 0) {
                return bad(format!("{name} at index 0"));
            }
        }
        if si > state.commit_index {
            return bad(format!(
                "snapshot index {si} beyond the commit index {}",
                state.commit_index
            ));
        }
        if dsi > si {
            return bad(format!(
                "durable snapshot index {dsi} beyond the snapshot index {si}"
            ));
        }
        if state.commit_index > state.last_index() {
            return bad(format!(
                "commit index {} beyond the last index {}",
                state.commit_index,
                state.last_index()
            ));
        }
        let mut c = RaftCore::new(
            cfg,
            HardState {
                term: state.durable_term,
                voted_for: state.durable_voted_for,
            },
            state.snapshot.clone(),
            state.log.clone(),
        );
        c.term = state.term;
        c.voted_for = state.voted_for;
        c.role = state.role;
        c.commit_index = state.commit_index;
        c.leader_hint = state.leader_hint;
        let common = |a: &[Entry], b: &[Entry]| {
            a.iter().zip(b).take_while(|(x, y)| x == y).count() as LogIndex
        };
        if state.snapshot == state.durable_snapshot {
            let stable = common(&state.log, &state.durable_log);
            c.stable_index = si + stable;
            c.durable_tail = state.durable_log[stable as usize..].to_vec();
        } else {
            // A pending snapshot: the durable entries it covers count as
            // agreeing (committed), the ones after it are compared.
            c.durable_snapshot = state.durable_snapshot.clone();
            let covered = (si - dsi) as usize;
            c.stable_index = if state.durable_log.len() >= covered {
                si + common(&state.log, &state.durable_log[covered..])
            } else {
                dsi + state.durable_log.len() as LogIndex
            };
            c.frozen_durable_log = Some(state.durable_log.clone());
        }
        if state.role == Role::Candidate {
            c.votes_granted = state.votes_granted.iter().copied().collect();
        } else if !state.votes_granted.is_empty() {
            return bad(format!(
                "votes_granted {:?} for a {:?}",
                state.votes_granted, state.role
            ));
        }
        let peers_of = |v: &[(NodeId, LogIndex)]| v.iter().map(|(p, _)| *p).collect::<Vec<_>>();
        if state.role == Role::Leader {
            for (name, v) in [
                ("next_index", &state.next_index),
                ("match_index", &state.match_index),
            ] {
                let mut ps = peers_of(v);
                ps.sort_unstable();
                if ps != c.peers {
                    return bad(format!("{name} covers {ps:?}, the peers are {:?}", c.peers));
                }
            }
            c.next_index = state.next_index.iter().copied().collect();
            c.match_index = state.match_index.iter().copied().collect();
            if c.next_index.values().any(|&n| n == 0) {
                return bad("next_index 0 for a leader".into());
            }
        } else if !state.next_index.is_empty() || !state.match_index.is_empty() {
            return bad(format!("next_index/match_index for a {:?}", state.role));
        }
        if let Some(m) = state
            .outbox
            .iter()
            .find(|m| m.from != c.id || !c.peers.contains(&m.to) || !m.body.is_dependent())
        {
            return bad(format!(
                "outbox message {m:?} is not a dependent message of this server"
            ));
        }
        if !state.outbox.is_empty() && !c.has_pending_writes() {
            return bad("outbox is not empty but nothing is pending".into());
        }
        c.outbox = state.outbox.clone();
        Ok(c)
    }

    // ---- accessors -------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader_hint
    }
    /// The in-memory entries after the snapshot (the whole log without
    /// one): `log()[k]` is at index `snapshot_index() + 1 + k`.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }
    /// The in-memory snapshot (R-snap-1). (`snapshot` is the Snapshot
    /// step, [`RaftCore::snapshot`].)
    pub fn current_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    /// The in-memory snapshot's index and term, `(0, 0)` without one.
    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot
            .as_ref()
            .map_or(SnapshotMeta::default(), |s| s.meta)
    }
    /// Index of the last entry the snapshot covers, 0 without one.
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot_meta().index
    }
    /// R-snap-1: `snapshot_index + len(log)`.
    pub fn last_index(&self) -> LogIndex {
        self.snapshot_index() + self.log.len() as LogIndex
    }
    /// R-snap-1: the term of the last entry, or the snapshot's term when
    /// the log after it is empty.
    pub fn last_term(&self) -> Term {
        self.log
            .last()
            .map_or(self.snapshot_meta().term, |e| e.term)
    }
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
        }
    }
    /// The entry at `index` (1-based), if the in-memory log holds it:
    /// `None` for index 0, beyond `last_index`, and at or below the
    /// snapshot index (compacted: the state machine has it through the
    /// snapshot, R-snap-1).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let si = self.snapshot_index();
        if index <= si {
            return None;
        }
        self.log.get((index - si - 1) as usize)
    }
    /// The term of `index` as R-snap-1 defines it: 0 for index 0, the
    /// snapshot's term at the snapshot index, the entry's term above it;
    /// `None` below the snapshot index (compacted away) and beyond
    /// `last_index`.
    pub fn term_of(&self, index: LogIndex) -> Option<Term> {
        let meta = self.snapshot_meta();
        if index == 0 {
            Some(0)
        } else if index == meta.index {
            Some(meta.term)
        } else {
            self.entry(index).map(|e| e.term)
        }
    }
    /// [`term_of`](Self::term_of) with 0 for an unknown term.
    pub fn term_at(&self, index: LogIndex) -> Term {
        self.term_of(index).unwrap_or(0)
    }
    /// Candidate only: the servers that granted a vote (empty otherwise).
    pub fn votes_granted(&self) -> &BTreeSet<NodeId> {
        &self.votes_granted
    }
    /// Leader only: `next_index` per peer (empty otherwise).
    pub fn next_index(&self) -> &BTreeMap<NodeId, LogIndex> {
        &self.next_index
    }
    /// Leader only: `match_index` per peer (empty otherwise).
    pub fn match_index(&self) -> &BTreeMap<NodeId, LogIndex> {
        &self.match_index
    }
    /// The hard state on disk.
    pub fn durable_hard_state(&self) -> HardState {
        self.durable_hard_state
    }
    /// The snapshot on disk.
    pub fn durable_snapshot(&self) -> Option<&Snapshot> {
        self.durable_snapshot.as_ref()
    }
    /// The in-memory and the durable log agree on `1..=stable_index`
    /// (absolute). While no snapshot is pending, the entries
    /// `snapshot_index + 1 ..= stable_index` are on disk unchanged.
    pub fn stable_index(&self) -> LogIndex {
        self.stable_index
    }
    /// Durable entries beyond `stable_index` that the in-memory log no
    /// longer has (non-empty only while a truncation is pending and no
    /// snapshot is).
    pub fn durable_tail(&self) -> &[Entry] {
        &self.durable_tail
    }
    /// Whether a snapshot taken or installed since the last Persist waits
    /// for the next one.
    pub fn snapshot_pending(&self) -> bool {
        self.frozen_durable_log.is_some()
    }
    /// The durable log after the durable snapshot (a copy): while no
    /// snapshot is pending `log[..stable_index - snapshot_index] ++
    /// durable_tail`.
    pub fn durable_log(&self) -> Vec<Entry> {
        if let Some(frozen) = &self.frozen_durable_log {
            return frozen.clone();
        }
        let mut d = self.log[..(self.stable_index - self.snapshot_index()) as usize].to_vec();
        d.extend(self.durable_tail.iter().cloned());
        d
    }
    /// Dependent messages waiting for the next Persist, in send order.
    pub fn outbox(&self) -> &[Message] {
        &self.outbox
    }
    /// Whether the in-memory `(term, voted_for, snapshot, log)` differs
    /// from the durable part: Persist is enabled (docs/protocol.md §4
    /// Persist, R-snap-1).
    pub fn has_pending_writes(&self) -> bool {
        self.hard_state() != self.durable_hard_state
            || self.frozen_durable_log.is_some()
            || self.stable_index != self.last_index()
            || !self.durable_tail.is_empty()
    }
    fn majority(&self) -> usize {
        let n = self.peers.len() + 1;
        n / 2 + 1
    }

    /// The abstract state of docs/protocol.md §1.
    pub fn status(&self) -> Status {
        let leader = self.role == Role::Leader;
        Status {
            id: self.id,
            term: self.term,
            voted_for: self.voted_for,
            role: self.role,
            snapshot: self.snapshot.clone(),
            log: self.log.clone(),
            commit_index: self.commit_index,
            votes_granted: if self.role == Role::Candidate {
                self.votes_granted.iter().copied().collect()
            } else {
                Vec::new()
            },
            next_index: if leader {
                self.next_index.iter().map(|(k, v)| (*k, *v)).collect()
            } else {
                Vec::new()
            },
            match_index: if leader {
                self.match_index.iter().map(|(k, v)| (*k, *v)).collect()
            } else {
                Vec::new()
            },
            leader_hint: self.leader_hint,
            durable_term: self.durable_hard_state.term,
            durable_voted_for: self.durable_hard_state.voted_for,
            durable_snapshot: self.durable_snapshot.clone(),
            durable_log: self.durable_log(),
            outbox: self.outbox.clone(),
        }
    }

    fn bug(&self, b: ImplBug) -> bool {
        cfg!(feature = "seeded-bugs") && self.bug == Some(b)
    }

    // ---- events ----------------------------------------------------------

    // An event that is not enabled (Timeout on a leader, Heartbeat or
    // ClientRequest on a non-leader, a message not addressed to this server
    // or from a stranger) changes nothing and returns an empty `Ready`.

    /// Deliver(m): one message handled by this server: the term rule, then
    /// the handler of its body.
    pub fn deliver(&mut self, m: Message) -> Ready {
        let mut r = Ready::default();
        if m.to != self.id || !self.peers.contains(&m.from) {
            return r;
        }
        if m.body.term() > self.term {
            self.term_rule(m.body.term(), &mut r);
        }
        match m.body {
            Body::RequestVote(rv) => self.handle_request_vote(m.from, rv, &mut r),
            Body::RequestVoteResponse(rvr) => {
                self.handle_request_vote_response(m.from, rvr, &mut r)
            }
            Body::AppendEntries(ae) => self.handle_append_entries(m.from, ae, &mut r),
            Body::AppendEntriesResponse(aer) => {
                self.handle_append_entries_response(m.from, aer, &mut r)
            }
            Body::InstallSnapshot(is) => self.handle_install_snapshot(m.from, is, &mut r),
        }
        r
    }
}
