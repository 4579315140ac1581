//! The sans-IO protocol core: a deterministic state machine that implements
//! docs/protocol.md rule by rule.
//!
//! [`RaftCore`] does no I/O and reads no clock. Every change is the reaction
//! to one event (`Timeout`, `Heartbeat`, `ClientRequest`, `Deliver`); a
//! `Restart` is [`RaftCore::new`] from the persisted state. Each step returns
//! a [`Ready`]: what to persist (hard state, log truncation/appends), the
//! messages to send once that is durable, and the new commit index. The
//! caller must make the persist part durable before sending any message.

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
    /// The hard state to persist, when term or vote changed in this step.
    pub hard_state: Option<HardState>,
    /// Log changes to persist, in order.
    pub log_ops: Vec<LogOp>,
    /// Messages to send after the persist is durable.
    pub messages: Vec<Message>,
    /// The new commit index, when it advanced in this step.
    pub committed: Option<LogIndex>,
    /// The step heard from a legitimate leader or candidate (or started an
    /// election): a real-time node restarts its election timer.
    pub reset_election_timer: bool,
}

impl Ready {
    /// Whether anything must be made durable before the messages leave.
    pub fn needs_persist(&self) -> bool {
        self.hard_state.is_some() || !self.log_ops.is_empty()
    }
}

/// The events of docs/protocol.md §4 that reach a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Timeout,
    Heartbeat,
    ClientRequest(Vec<u8>),
    Deliver(Message),
}

/// A proposal reached a server that is not the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader hint: {leader_hint:?})")]
pub struct NotLeader {
    pub leader_hint: Option<NodeId>,
}

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
    // persistent
    term: Term,
    voted_for: Option<NodeId>,
    log: Vec<Entry>,
    // volatile
    role: Role,
    commit_index: LogIndex,
    votes_granted: BTreeSet<NodeId>,
    next_index: BTreeMap<NodeId, LogIndex>,
    match_index: BTreeMap<NodeId, LogIndex>,
    leader_hint: Option<NodeId>,
}

impl RaftCore {
    /// A server (re)starting from its persisted state: follower, commit 0.
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
            log,
            role: Role::Follower,
            commit_index: 0,
            votes_granted: BTreeSet::new(),
            next_index: BTreeMap::new(),
            match_index: BTreeMap::new(),
            leader_hint: None,
        }
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
        }
    }

    fn bug(&self, b: ImplBug) -> bool {
        cfg!(feature = "seeded-bugs") && self.bug == Some(b)
    }

    // ---- events ----------------------------------------------------------

    /// One event. An event that is not enabled (Timeout on a leader,
    /// Heartbeat or ClientRequest on a non-leader, a message not addressed to
    /// this server or from a stranger) changes nothing and returns an empty
    /// `Ready`.
    pub fn step(&mut self, event: Event) -> Ready {
        match event {
            Event::Timeout => self.timeout(),
            Event::Heartbeat => self.heartbeat(),
            Event::ClientRequest(cmd) => self.propose(cmd).map(|(_, _, r)| r).unwrap_or_default(),
            Event::Deliver(m) => self.deliver(m),
        }
    }

    /// Timeout(i): start an election (not enabled on a leader).
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
        for &j in &self.peers {
            r.messages.push(Message {
                from: self.id,
                to: j,
                body: Body::RequestVote {
                    term: self.term,
                    last_log_index,
                    last_log_term,
                },
            });
        }
        if self.votes_granted.len() >= self.majority() {
            self.become_leader(&mut r);
        }
        r
    }

    /// Heartbeat(i): AppendEntries to every peer (not enabled unless leader).
    pub fn heartbeat(&mut self) -> Ready {
        let mut r = Ready::default();
        if self.role == Role::Leader {
            self.broadcast_append(&mut r);
        }
        r
    }

    /// ClientRequest(i, v): append `(term, command)`; nothing is sent.
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
        self.log.push(entry.clone());
        let index = self.last_index();
        r.log_ops.push(LogOp::Append {
            first_index: index,
            entries: vec![entry],
        });
        if self.peers.is_empty() {
            self.advance_commit(&mut r);
        }
        Ok((index, self.term, r))
    }

    /// Deliver(m): one message handled by this server.
    pub fn deliver(&mut self, m: Message) -> Ready {
        let mut r = Ready::default();
        if m.to != self.id || !self.peers.contains(&m.from) {
            return r;
        }
        // §3 term rule, before anything else.
        if m.body.term() > self.term {
            self.term = m.body.term();
            self.voted_for = None;
            self.leader_hint = None;
            self.become_follower();
            r.hard_state = Some(self.hard_state());
        }
        match m.body {
            Body::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => self.on_request_vote(m.from, term, last_log_index, last_log_term, &mut r),
            Body::RequestVoteResponse { term, granted } => {
                if self.role == Role::Candidate && term == self.term && granted {
                    self.votes_granted.insert(m.from);
                    if self.votes_granted.len() >= self.majority() {
                        self.become_leader(&mut r);
                    }
                }
            }
            Body::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.on_append_entries(
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
            } => self.on_append_response(m.from, term, success, index, conflict_index, &mut r),
        }
        r
    }

    fn on_request_vote(
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
        r.messages.push(Message {
            from: self.id,
            to: c,
            body: Body::RequestVoteResponse {
                term: self.term,
                granted,
            },
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_entries(
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
            r.messages.push(reply(self, false, 0, 0));
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
            r.messages
                .push(reply(self, false, prev_log_index, last + 1));
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
            r.messages.push(reply(self, false, prev_log_index, first));
            return;
        }

        // Conflict rule.
        let n = entries.len() as LogIndex;
        if self.bug(ImplBug::TruncateOnMatch) {
            if prev_log_index < self.last_index() {
                self.log.truncate(prev_log_index as usize);
                r.log_ops.push(LogOp::Truncate {
                    last_index: prev_log_index,
                });
            }
            if !entries.is_empty() {
                self.log.extend(entries.iter().cloned());
                r.log_ops.push(LogOp::Append {
                    first_index: prev_log_index + 1,
                    entries,
                });
            }
        } else {
            for (k, e) in entries.iter().enumerate() {
                let p = prev_log_index + k as LogIndex + 1;
                if p <= self.last_index() {
                    if self.term_at(p) == e.term {
                        continue; // same entry by Log Matching: never truncate on a match
                    }
                    self.log.truncate((p - 1) as usize);
                    r.log_ops.push(LogOp::Truncate { last_index: p - 1 });
                }
                let rest: Vec<Entry> = entries[k..].to_vec();
                self.log.extend(rest.iter().cloned());
                r.log_ops.push(LogOp::Append {
                    first_index: p,
                    entries: rest,
                });
                break;
            }
        }

        let vouched = prev_log_index + n;
        let new_commit = self.commit_index.max(leader_commit.min(vouched));
        if new_commit > self.commit_index {
            self.commit_index = new_commit;
            r.committed = Some(new_commit);
        }
        r.messages.push(reply(self, true, vouched, 0));
    }

    fn on_append_response(
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
            self.advance_commit(r);
        } else if conflict_index == 0 {
            // stale-term rejection: ignored
        } else if index != next - 1 && !stale_ok {
            // answers a request sent before next_index[j] last moved: stale
        } else {
            let lowered = (matched + 1).max(conflict_index.min(next - 1));
            self.next_index.insert(j, lowered);
            let m = self.append_for(j);
            r.messages.push(m);
        }
    }

    // ---- helpers ---------------------------------------------------------

    fn become_follower(&mut self) {
        self.role = Role::Follower;
        self.votes_granted.clear();
        self.next_index.clear();
        self.match_index.clear();
    }

    fn become_leader(&mut self, r: &mut Ready) {
        self.role = Role::Leader;
        self.votes_granted.clear();
        self.leader_hint = Some(self.id);
        let next = self.last_index() + 1;
        for &j in &self.peers {
            self.next_index.insert(j, next);
            self.match_index.insert(j, 0);
        }
        self.broadcast_append(r);
    }

    fn broadcast_append(&self, r: &mut Ready) {
        for &j in &self.peers {
            r.messages.push(self.append_for(j));
        }
    }

    /// The AppendEntries for peer `j` built from `next_index[j]`.
    fn append_for(&self, j: NodeId) -> Message {
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

    /// §6: the largest N > commit_index replicated on a majority (counting
    /// this leader) whose entry is of the current term.
    fn advance_commit(&mut self, r: &mut Ready) {
        let mut matched: Vec<LogIndex> = self.match_index.values().copied().collect();
        matched.push(self.last_index());
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
