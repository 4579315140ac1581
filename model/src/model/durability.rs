//! Durability (docs/protocol.md §7): the outbox of dependent messages
//! (R-persist-2), Persist (R-persist-1, R-persist-4), Restart (R-restart-1,
//! R-persist-5) and sync mode.

use super::RaftModel;
use crate::config::Bug;
use crate::state::State;
use crate::types::{Message, Role, ServerId};

impl RaftModel {
    /// R-persist-2: a dependent message (RequestVote, RequestVoteResponse,
    /// AppendEntriesResponse) sent while the sender has pending writes,
    /// including writes made earlier in the same step, waits in the
    /// sender's outbox for its next Persist; otherwise it goes straight out.
    /// `bypass` is a seeded bug that sends it straight out regardless.
    pub(super) fn send_dependent(&self, s: &mut State, m: Message, bypass: bool) {
        if !bypass && self.has_pending_writes(s, m.from) {
            s.servers[usize::from(m.from)].outbox.push(m);
        } else {
            self.send(s, m);
        }
    }

    /// Whether Restart(i) changes server `i` (loses volatile state, pending
    /// writes or its outbox).
    pub fn restart_changes(&self, s: &State, i: ServerId) -> bool {
        let srv = &s.servers[usize::from(i)];
        srv.role != Role::Follower
            || srv.commit_index != srv.durable_snapshot_index
            || srv.term != srv.durable_term
            || srv.voted_for != srv.durable_voted_for
            || srv.log != srv.durable_log
            || !srv.snapshot_is_durable()
            || !srv.outbox.is_empty()
    }

    /// Persist(i), R-persist-1: one fsync makes every pending write of `i`
    /// durable at once (hard state and log), then the outbox enters the
    /// network in the order it was sent (a message across a cut is lost),
    /// then a leader advances its commit index, since it may now count
    /// itself for more (R-persist-4). The self-vote of a candidate is
    /// recorded now (see `record_vote`).
    pub fn persist(&self, s: &mut State, i: ServerId) {
        let no_vote = self.has_bug(Bug::NoPersistVote);
        let srv = &mut s.servers[usize::from(i)];
        srv.durable_term = srv.term;
        if !no_vote {
            srv.durable_voted_for = srv.voted_for;
        }
        srv.durable_log.clone_from(&srv.log);
        // R-snap-2: snapshot and log are written together.
        srv.durable_snapshot_index = srv.snapshot_index;
        srv.durable_snapshot_term = srv.snapshot_term;
        srv.durable_snapshot_values.clone_from(&srv.snapshot_values);
        let outbox = std::mem::take(&mut srv.outbox);
        let (term, own_vote, leader) =
            (srv.term, srv.voted_for == Some(i), srv.role == Role::Leader);
        if own_vote {
            self.record_vote(s, term, i, i);
        }
        for m in outbox {
            self.send(s, m);
        }
        if leader {
            self.advance_commit_index(s, i);
        }
    }

    /// Restart(i), R-restart-1, R-persist-5 and R-snap-5: term, vote,
    /// snapshot and log become the durable ones (pending writes are lost),
    /// the outbox is lost, volatile state reset: the commit index to the
    /// durable snapshot index (R-snap-5 amending R-commit-3; 0 without a
    /// snapshot).
    pub fn restart(&self, s: &mut State, i: ServerId) {
        let srv = &mut s.servers[usize::from(i)];
        srv.commit_index = srv.durable_snapshot_index;
        srv.snapshot_index = srv.durable_snapshot_index;
        srv.snapshot_term = srv.durable_snapshot_term;
        srv.snapshot_values.clone_from(&srv.durable_snapshot_values);
        srv.become_follower();
        srv.term = srv.durable_term;
        srv.voted_for = srv.durable_voted_for;
        srv.log.clone_from(&srv.durable_log);
        srv.outbox.clear();
        s.restarts += 1;
    }

    /// Sync mode: every server the step left with pending writes persists
    /// within the same step (in id order; at most one server has pending
    /// writes after any one event, so the order never matters).
    pub(super) fn persist_all(&self, s: &mut State) {
        for i in 0..self.cfg.servers {
            if self.has_pending_writes(s, i) {
                self.persist(s, i);
            }
        }
    }
}
