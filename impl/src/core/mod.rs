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

mod bug;
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
    /// Restart(i) (R-restart-1, R-persist-5): a server (re)starting from its durable
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
            m.from != c.id
                || !c.peers.contains(&m.to)
                || matches!(m.body, Body::AppendEntries { .. })
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

    /// Timeout(i), R-vote-1: start an election (not enabled on a leader). The new
    /// term and the self-vote are pending, so the RequestVotes wait in the
    /// outbox (R-persist-2).
    pub fn timeout(&mut self) -> Ready {
        let mut r = Ready::default();
        if self.role == Role::Leader {
            return r;
        }
        self.term += 1;
        self.role = Role::Candidate;
        self.voted_for = Some(self.id);
        self.votes_granted = BTreeSet::from([self.id]);
        self.leader_hint = None;
        r.hard_state = Some(self.hard_state());
        r.reset_election_timer = true;
        let (last_log_index, last_log_term) = (self.last_index(), self.last_term());
        for j in self.peers.clone() {
            let m = Message {
                from: self.id,
                to: j,
                body: Body::RequestVote {
                    term: self.term,
                    last_log_index,
                    last_log_term,
                },
            };
            self.send(m, &mut r);
        }
        if self.votes_granted.len() >= self.majority() {
            self.become_leader(&mut r);
        }
        r
    }

    /// Heartbeat(i), R-append-2: AppendEntries to every peer (not enabled
    /// unless leader).
    pub fn heartbeat(&mut self) -> Ready {
        let mut r = Ready::default();
        if self.role == Role::Leader {
            self.broadcast_append_entries(&mut r);
        }
        r
    }

    /// ClientRequest(i, v), R-append-1: append `(term, command)`; nothing is sent and
    /// nothing commits until the entry is durable (a single-server leader
    /// commits it at its next [`persist`](Self::persist), R-persist-4).
    /// Returns the entry's index and term.
    pub fn propose(&mut self, command: Vec<u8>) -> Result<(LogIndex, Term, Ready), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader_hint: self.leader_hint,
            });
        }
        let mut r = Ready::default();
        let entry = Entry {
            term: self.term,
            command,
        };
        let index = self.last_index() + 1;
        self.append_entries(vec![entry], &mut r);
        if self.bug(ImplBug::LeaderCountsVolatileSelf) {
            self.advance_commit_index(&mut r);
        }
        Ok((index, self.term, r))
    }

    /// Persist(i) (R-persist-1): the caller has written every write of the
    /// steps since the last Persist and fsynced once. The durable part
    /// becomes the in-memory state, the outbox leaves in send order (in
    /// `Ready::messages`), then a leader advances its commit index, now
    /// counting itself for its whole log (R-persist-4). A no-op (empty
    /// `Ready`) when nothing is pending.
    pub fn persist(&mut self) -> Ready {
        let mut r = Ready::default();
        if !self.has_pending_writes() {
            debug_assert!(self.outbox.is_empty(), "outbox without pending writes");
            return r;
        }
        self.durable_hard_state = self.hard_state();
        self.stable_index = self.last_index();
        self.durable_tail.clear();
        r.messages = std::mem::take(&mut self.outbox);
        if self.role == Role::Leader {
            self.advance_commit_index(&mut r);
        }
        r
    }

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
            Body::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => self.handle_request_vote(m.from, term, last_log_index, last_log_term, &mut r),
            Body::RequestVoteResponse { term, granted } => {
                self.handle_request_vote_response(m.from, term, granted, &mut r)
            }
            Body::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.handle_append_entries(
                m.from,
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                &mut r,
            ),
            Body::AppendEntriesResponse {
                term,
                success,
                index,
                conflict_index,
            } => self.handle_append_entries_response(
                m.from,
                term,
                success,
                index,
                conflict_index,
                &mut r,
            ),
        }
        r
    }

    /// §3 term rule (R-term-1), before anything else: adopt the newer term, forget the
    /// vote, step down, and empty the outbox (R-term-2: its messages carry
    /// the older term and are lost, as the network may lose any message).
    fn term_rule(&mut self, term: Term, r: &mut Ready) {
        self.term = term;
        self.voted_for = None;
        self.leader_hint = None;
        self.become_follower();
        r.hard_state = Some(self.hard_state());
        if !self.outbox.is_empty() {
            self.outbox.clear();
            r.outbox_cleared = true;
        }
    }

    /// Deliver(m) — RequestVote from `c` (after the term rule): R-vote-2,
    /// grant iff same term, vote free, log up to date; a granted response
    /// waits for the vote to be durable (R-persist-2).
    fn handle_request_vote(
        &mut self,
        c: NodeId,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
        r: &mut Ready,
    ) {
        let up_to_date = last_log_term > self.last_term()
            || (last_log_term == self.last_term() && last_log_index >= self.last_index());
        let granted = term == self.term
            && (self.voted_for.is_none() || self.voted_for == Some(c))
            && (up_to_date || self.bug(ImplBug::VoteWithoutLogCheck));
        if granted {
            self.voted_for = Some(c);
            if !self.bug(ImplBug::NoPersistVote) {
                r.hard_state = Some(self.hard_state());
            }
            r.reset_election_timer = true;
        }
        let m = Message {
            from: self.id,
            to: c,
            body: Body::RequestVoteResponse {
                term: self.term,
                granted,
            },
        };
        if granted && self.bug(ImplBug::VoteBeforePersist) {
            r.messages.push(m);
        } else {
            self.send(m, r);
        }
    }

    /// Deliver(m) — RequestVoteResponse from `j` (after the term rule):
    /// R-vote-3 (count a granted vote of this term) and R-vote-4 (a
    /// majority makes this candidate leader).
    fn handle_request_vote_response(
        &mut self,
        j: NodeId,
        term: Term,
        granted: bool,
        r: &mut Ready,
    ) {
        if self.role == Role::Candidate && term == self.term && granted {
            self.votes_granted.insert(j);
            if self.votes_granted.len() >= self.majority() {
                self.become_leader(r);
            }
        }
    }

    /// Deliver(m) — AppendEntries from `l` (after the term rule):
    /// R-append-3 (stale term), R-append-4 (consistency check), R-append-5
    /// (conflict rule), R-commit-2 (commit adoption), the reply.
    #[allow(clippy::too_many_arguments)]
    fn handle_append_entries(
        &mut self,
        l: NodeId,
        term: Term,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
        r: &mut Ready,
    ) {
        let reply = |me: &Self, success, index, conflict_index| Message {
            from: me.id,
            to: l,
            body: Body::AppendEntriesResponse {
                term: me.term,
                success,
                index,
                conflict_index,
            },
        };
        if term < self.term {
            let m = reply(self, false, 0, 0);
            self.send(m, r);
            return;
        }
        // Here term == self.term (the term rule ran).
        if self.role == Role::Candidate {
            self.become_follower();
        }
        if self.role != Role::Leader {
            self.leader_hint = Some(l);
        }
        r.reset_election_timer = true;

        // Consistency check.
        let last = self.last_index();
        if prev_log_index > last {
            let m = reply(self, false, prev_log_index, last + 1);
            self.send(m, r);
            return;
        }
        let local = self.term_at(prev_log_index);
        if local != prev_log_term {
            // Start of the run of the conflicting term (terms are monotonic in a log).
            let first = self
                .log
                .iter()
                .position(|e| e.term == local)
                .map_or(1, |p| p as LogIndex + 1);
            let m = reply(self, false, prev_log_index, first);
            self.send(m, r);
            return;
        }

        // Conflict rule.
        let n = entries.len() as LogIndex;
        if self.bug(ImplBug::TruncateOnMatch) {
            if prev_log_index < self.last_index() {
                self.truncate_log(prev_log_index, r);
            }
            if !entries.is_empty() {
                self.append_entries(entries, r);
            }
        } else {
            for (k, e) in entries.iter().enumerate() {
                let p = prev_log_index + k as LogIndex + 1;
                if p <= self.last_index() {
                    if self.term_at(p) == e.term {
                        continue; // same entry by Log Matching: never truncate on a match
                    }
                    self.truncate_log(p - 1, r);
                }
                let rest: Vec<Entry> = entries[k..].to_vec();
                self.append_entries(rest, r);
                break;
            }
        }

        let vouched = prev_log_index + n;
        let new_commit = self.commit_index.max(leader_commit.min(vouched));
        if new_commit > self.commit_index {
            self.commit_index = new_commit;
            r.committed = Some(new_commit);
        }
        let m = reply(self, true, vouched, 0);
        if self.bug(ImplBug::AckBeforePersist) {
            r.messages.push(m);
        } else {
            self.send(m, r);
        }
    }

    /// Deliver(m) — AppendEntriesResponse from `j` (after the term rule):
    /// R-term-3 / R-append-6 (ignored unless leader of this term; success
    /// moves match/next monotonically and commits) or R-append-7 (a current
    /// rejection backs next_index up and resends at once).
    fn handle_append_entries_response(
        &mut self,
        j: NodeId,
        term: Term,
        success: bool,
        index: LogIndex,
        conflict_index: LogIndex,
        r: &mut Ready,
    ) {
        if self.role != Role::Leader || term != self.term {
            return;
        }
        let stale_ok = self.bug(ImplBug::AcceptStaleResponse);
        let next = self.next_index[&j];
        let matched = self.match_index[&j];
        if success {
            if index > self.last_index() {
                return; // vouches for entries this leader never had: bogus, ignore
            }
            let (m, n) = if stale_ok {
                (index, index + 1)
            } else {
                (matched.max(index), next.max(index + 1))
            };
            self.match_index.insert(j, m);
            self.next_index.insert(j, n);
            self.advance_commit_index(r);
        } else if conflict_index == 0 {
            // stale-term rejection: ignored
        } else if index != next - 1 && !stale_ok {
            // answers a request sent before next_index[j] last moved: stale
        } else {
            let lowered = (matched + 1).max(conflict_index.min(next - 1));
            self.next_index.insert(j, lowered);
            let m = self.append_entries_for(j);
            r.messages.push(m);
        }
    }

    // ---- helpers ---------------------------------------------------------

    /// R-persist-2 / R-persist-3: AppendEntries go to the network now; a
    /// dependent message waits in the outbox while anything is pending
    /// (including writes made earlier in this step).
    fn send(&mut self, m: Message, r: &mut Ready) {
        let dependent = !matches!(m.body, Body::AppendEntries { .. });
        if dependent && self.has_pending_writes() {
            self.outbox.push(m.clone());
            r.outboxed.push(m);
        } else {
            debug_assert!(self.outbox.is_empty() || !dependent);
            r.messages.push(m);
        }
    }

    /// Keep `log[..=last_index]`; the durable part remembers what it still
    /// holds beyond (`durable_tail`) until the next Persist.
    fn truncate_log(&mut self, last_index: LogIndex, r: &mut Ready) {
        let t = last_index as usize;
        let stable = self.stable_index as usize;
        if t < stable {
            let mut tail = self.log[t..stable].to_vec();
            tail.append(&mut self.durable_tail);
            self.durable_tail = tail;
            self.stable_index = last_index;
        }
        self.log.truncate(t);
        r.log_ops.push(LogOp::Truncate { last_index });
    }

    fn append_entries(&mut self, entries: Vec<Entry>, r: &mut Ready) {
        let first_index = self.last_index() + 1;
        self.log.extend(entries.iter().cloned());
        r.log_ops.push(LogOp::Append {
            first_index,
            entries,
        });
        // Keep `stable_index` the longest common prefix of the in-memory and
        // the durable log (only a seeded bug re-appends what it truncated).
        while let Some(first) = self.durable_tail.first() {
            match self.log.get(self.stable_index as usize) {
                Some(e) if e == first => {
                    self.durable_tail.remove(0);
                    self.stable_index += 1;
                }
                _ => break,
            }
        }
    }

    fn become_follower(&mut self) {
        self.role = Role::Follower;
        self.votes_granted.clear();
        self.next_index.clear();
        self.match_index.clear();
    }

    /// R-vote-4, becoming leader: next_index after the log, match_index 0,
    /// AppendEntries to every peer in the same step.
    fn become_leader(&mut self, r: &mut Ready) {
        self.role = Role::Leader;
        self.votes_granted.clear();
        self.leader_hint = Some(self.id);
        let next = self.last_index() + 1;
        for &j in &self.peers {
            self.next_index.insert(j, next);
            self.match_index.insert(j, 0);
        }
        self.broadcast_append_entries(r);
    }

    /// R-append-2: AppendEntries to every peer, in increasing order of id.
    fn broadcast_append_entries(&self, r: &mut Ready) {
        for &j in &self.peers {
            r.messages.push(self.append_entries_for(j));
        }
    }

    /// The AppendEntries for peer `j` built from `next_index[j]` (R-append-2:
    /// at most `max_batch` entries).
    fn append_entries_for(&self, j: NodeId) -> Message {
        let next = self.next_index[&j].max(1);
        let prev_log_index = next - 1;
        let start = prev_log_index as usize;
        let end = self.log.len().min(start.saturating_add(self.max_batch));
        let entries = if start < end {
            self.log[start..end].to_vec()
        } else {
            Vec::new()
        };
        Message {
            from: self.id,
            to: j,
            body: Body::AppendEntries {
                term: self.term,
                prev_log_index,
                prev_log_term: self.term_at(prev_log_index),
                entries,
                leader_commit: self.commit_index,
            },
        }
    }

    /// How far this leader counts itself for commit (R-persist-4): the
    /// durable prefix of its log (`stable_index` is the longest common
    /// prefix of the in-memory and durable logs), or, with the seeded bug
    /// `leader-counts-volatile-self`, its whole in-memory log.
    fn self_match(&self) -> LogIndex {
        if self.bug(ImplBug::LeaderCountsVolatileSelf) {
            self.last_index()
        } else {
            self.stable_index
        }
    }

    /// §6 commit rule (R-commit-1): the largest N > commit_index with `log[N]` of the
    /// current term and a majority at or above N, this leader counting only
    /// for what is durable on it (R-persist-4).
    fn advance_commit_index(&mut self, r: &mut Ready) {
        let mut matched: Vec<LogIndex> = self.match_index.values().copied().collect();
        matched.push(self.self_match());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        // Capped at the log: match_index can only exceed it if this leader's
        // log shrank, which a correct cluster never does (seeded bugs can).
        let n = matched[self.majority() - 1].min(self.last_index());
        // Terms never decrease along a log, so if log[n] is of an older term,
        // so is every entry below it: n is the only candidate.
        if n > self.commit_index
            && (self.term_at(n) == self.term || self.bug(ImplBug::CommitOldTerm))
        {
            self.commit_index = n;
            r.committed = Some(n);
        }
    }
}
