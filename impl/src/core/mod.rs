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
//! (R-append-*, R-commit-*), `durability` (R-persist-*). The state, its
//! constructors and accessors, and the Deliver dispatch are here.

mod bug;
mod durability;
mod election;
mod replication;
#[cfg(test)]
mod tests;

pub use bug::{ImplBug, UnknownBug};

use crate::message::{Body, Message};
use crate::types::{Entry, LogIndex, NodeId, Role, Status, Term};
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
    /// Keep entries `1..=last_index`, drop the rest.
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
    /// The new commit index, when it advanced in this step.
    pub committed: Option<LogIndex>,
    /// The step heard from a legitimate leader or candidate (or started an
    /// election): a real-time node restarts its election timer.
    pub reset_election_timer: bool,
}

impl Ready {
    /// Whether this step made writes the next Persist must write.
    pub fn has_writes(&self) -> bool {
        self.hard_state.is_some() || !self.log_ops.is_empty()
    }
}

/// A proposal reached a server that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader hint: {leader_hint:?})")]
pub struct NotLeader {
    pub leader_hint: Option<NodeId>,
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
    log: Vec<Entry>,
    // durable (docs/protocol.md §1): what a Restart recovers
    durable_hard_state: HardState,
    /// `log[..stable_index]` is on disk unchanged. Always the longest
    /// common prefix of the in-memory and the durable log.
    stable_index: LogIndex,
    /// Durable entries after `stable_index` that the in-memory log no
    /// longer has (a truncation not yet persisted); empty otherwise. The
    /// durable log is `log[..stable_index] ++ durable_tail`.
    durable_tail: Vec<Entry>,
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
    /// Restart(i) (R-restart-1, R-persist-5, R-commit-3): a server (re)starting from its durable
    /// state: everything durable, empty outbox, follower, commit 0.
    pub fn new(cfg: CoreConfig, hard_state: HardState, log: Vec<Entry>) -> RaftCore {
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
            stable_index: log.len() as LogIndex,
            log,
            durable_hard_state: hard_state,
            durable_tail: Vec::new(),
            outbox: Vec::new(),
            role: Role::Follower,
            commit_index: 0,
            votes_granted: BTreeSet::new(),
            next_index: BTreeMap::new(),
            match_index: BTreeMap::new(),
            leader_hint: None,
        }
    }

    /// A core in an arbitrary protocol state (feature `conformance`): the
    /// whole abstract state of docs/protocol.md §1 as a [`Status`] — term,
    /// voted_for, role, log, commit_index, votes_granted, next_index,
    /// match_index, the durable part (`durable_term`, `durable_voted_for`,
    /// `durable_log`) and the outbox — plus `leader_hint`. The conformance
    /// harness builds the core in a model state and executes one transition
    /// on it. `stable_index` becomes the longest common prefix of `log` and
    /// `durable_log`, the rest of `durable_log` the durable tail.
    ///
    /// Refused when the state is not one a core can be in: `state.id` is not
    /// `cfg.id`, `votes_granted` is non-empty for a non-candidate,
    /// `next_index`/`match_index` are not exactly the peers for a leader (or
    /// not empty otherwise), or the outbox holds messages while nothing is
    /// pending or messages that are not this server's dependent messages.
    #[cfg(feature = "conformance")]
    pub fn from_state(cfg: CoreConfig, state: &Status) -> Result<RaftCore, InvalidState> {
        let bad = |s: String| Err(InvalidState(s));
        if state.id != cfg.id {
            return bad(format!("state of node {} for core {}", state.id, cfg.id));
        }
        let mut c = RaftCore::new(
            cfg,
            HardState {
                term: state.durable_term,
                voted_for: state.durable_voted_for,
            },
            state.log.clone(),
        );
        c.term = state.term;
        c.voted_for = state.voted_for;
        c.role = state.role;
        c.commit_index = state.commit_index;
        c.leader_hint = state.leader_hint;
        let stable = state
            .log
            .iter()
            .zip(&state.durable_log)
            .take_while(|(a, b)| a == b)
            .count();
        c.stable_index = stable as LogIndex;
        c.durable_tail = state.durable_log[stable..].to_vec();
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
        if let Some(m) = state.outbox.iter().find(|m| {
            m.from != c.id || !c.peers.contains(&m.to) || matches!(m.body, Body::AppendEntries(_))
        }) {
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
    pub fn log(&self) -> &[Entry] {
        &self.log
    }
    pub fn last_index(&self) -> LogIndex {
        self.log.len() as LogIndex
    }
    pub fn last_term(&self) -> Term {
        self.term_at(self.last_index())
    }
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
        }
    }
    /// The entry at `index` (1-based), if present.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index == 0 {
            return None;
        }
        self.log.get((index - 1) as usize)
    }
    /// Term of `log[index]`, 0 for index 0 or beyond the log.
    pub fn term_at(&self, index: LogIndex) -> Term {
        self.entry(index).map_or(0, |e| e.term)
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
    /// `log[..stable_index]` is on disk unchanged.
    pub fn stable_index(&self) -> LogIndex {
        self.stable_index
    }
    /// Durable entries beyond `stable_index` that the in-memory log no
    /// longer has (non-empty only while a truncation is pending).
    pub fn durable_tail(&self) -> &[Entry] {
        &self.durable_tail
    }
    /// The durable log, `log[..stable_index] ++ durable_tail` (a copy).
    pub fn durable_log(&self) -> Vec<Entry> {
        let mut d = self.log[..self.stable_index as usize].to_vec();
        d.extend(self.durable_tail.iter().cloned());
        d
    }
    /// Dependent messages waiting for the next Persist, in send order.
    pub fn outbox(&self) -> &[Message] {
        &self.outbox
    }
    /// Whether the in-memory `(term, voted_for, log)` differs from the
    /// durable part: Persist is enabled (docs/protocol.md §4 Persist).
    pub fn has_pending_writes(&self) -> bool {
        self.hard_state() != self.durable_hard_state
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
        }
        r
    }
}
