//! Elections (docs/protocol.md §3 and §4): the term rule (R-term-1,
//! R-term-2), Timeout (R-vote-1), RequestVote (R-vote-2), its response
//! (R-vote-3) and becoming leader (R-vote-4).

use super::{ImplBug, RaftCore, Ready};
use crate::message::{Body, Message, RequestVote, RequestVoteResponse};
use crate::types::{NodeId, Role, Term};
use std::collections::BTreeSet;

impl RaftCore {
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
                body: Body::RequestVote(RequestVote {
                    term: self.term,
                    last_log_index,
                    last_log_term,
                }),
            };
            self.send(m, &mut r);
        }
        if self.votes_granted.len() >= self.majority() {
            self.become_leader(&mut r);
        }
        r
    }

    /// §3 term rule (R-term-1), before anything else: adopt the newer term, forget the
    /// vote, step down, and empty the outbox (R-term-2: its messages carry
    /// the older term and are lost, as the network may lose any message).
    pub(super) fn term_rule(&mut self, term: Term, r: &mut Ready) {
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
    pub(super) fn handle_request_vote(&mut self, c: NodeId, m: RequestVote, r: &mut Ready) {
        let RequestVote {
            term,
            last_log_index,
            last_log_term,
        } = m;
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
            body: Body::RequestVoteResponse(RequestVoteResponse {
                term: self.term,
                granted,
            }),
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
    pub(super) fn handle_request_vote_response(
        &mut self,
        j: NodeId,
        m: RequestVoteResponse,
        r: &mut Ready,
    ) {
        let RequestVoteResponse { term, granted } = m;
        if self.role == Role::Candidate && term == self.term && granted {
            self.votes_granted.insert(j);
            if self.votes_granted.len() >= self.majority() {
                self.become_leader(r);
            }
        }
    }

    pub(super) fn become_follower(&mut self) {
        self.role = Role::Follower;
        self.votes_granted.clear();
        self.next_index.clear();
        self.match_index.clear();
    }

    /// R-vote-4, becoming leader: next_index after the log, match_index 0,
    /// AppendEntries to every peer in the same step.
    pub(super) fn become_leader(&mut self, r: &mut Ready) {
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
}
