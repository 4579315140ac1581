//! Elections (docs/protocol.md §3 and §4): the term rule (R-term-1,
//! R-term-2), Timeout (R-vote-1), RequestVote (R-vote-2), its response
//! (R-vote-3) and becoming leader (R-vote-4).

use super::RaftModel;
use crate::config::Bug;
use crate::state::{bit, State};
use crate::types::{Body, Message, RequestVote, RequestVoteResponse, Role, ServerId, Term};

impl RaftModel {
    /// §3 term rule (R-term-1, R-term-2): a higher term makes the receiver
    /// a follower of it and empties its outbox (every message in it carries
    /// the older term).
    pub(super) fn term_rule(&self, s: &mut State, i: ServerId, term: Term) {
        let srv = &mut s.servers[usize::from(i)];
        if term > srv.term {
            srv.term = term;
            srv.voted_for = None;
            srv.become_follower();
            srv.outbox.clear();
        }
    }

    /// R-vote-4, becoming leader: candidate `i` has a majority; it becomes
    /// leader and sends AppendEntries to every peer in the same step.
    pub(super) fn become_leader(&self, s: &mut State, i: ServerId) {
        let n = self.n();
        self.record_election(s, i);
        let srv = &mut s.servers[usize::from(i)];
        let next = srv.last_index() + 1;
        srv.role = Role::Leader;
        srv.votes_granted = 0;
        srv.next_index = [0; crate::config::MAX_SERVERS as usize];
        srv.match_index = [0; crate::config::MAX_SERVERS as usize];
        for j in (0..n).filter(|&j| j != usize::from(i)) {
            srv.next_index[j] = next;
        }
        self.broadcast_append_entries(s, i);
    }

    /// Timeout(i), R-vote-1: start an election.
    pub fn timeout(&self, s: &mut State, i: ServerId) {
        let srv = &mut s.servers[usize::from(i)];
        srv.term += 1;
        srv.role = Role::Candidate;
        srv.voted_for = Some(i);
        srv.votes_granted = bit(i);
        srv.next_index = [0; crate::config::MAX_SERVERS as usize];
        srv.match_index = [0; crate::config::MAX_SERVERS as usize];
        let (term, last_log_index, last_log_term) = (srv.term, srv.last_index(), srv.last_term());
        // The new term and the self-vote are pending: the RequestVotes wait
        // in the outbox (R-persist-2) and the self-vote is recorded when it
        // becomes durable (`persist`).
        for j in 0..self.cfg.servers {
            if j != i {
                self.send_dependent(
                    s,
                    Message {
                        from: i,
                        to: j,
                        body: Body::RequestVote(RequestVote {
                            term,
                            last_log_index,
                            last_log_term,
                        }),
                    },
                    false,
                );
            }
        }
        if 1 >= self.majority() {
            self.become_leader(s, i);
        }
    }

    /// Deliver(m) — RequestVote from `c` to `i`: the term rule, then
    /// R-vote-2 (grant iff same term, vote free, log up to date).
    pub fn handle_request_vote(&self, s: &mut State, i: ServerId, c: ServerId, m: &RequestVote) {
        let &RequestVote {
            term,
            last_log_index,
            last_log_term,
        } = m;
        self.term_rule(s, i, term);
        let srv = &s.servers[usize::from(i)];
        let vote_free =
            srv.voted_for.is_none() || srv.voted_for == Some(c) || self.has_bug(Bug::VoteTwice);
        let up_to_date = last_log_term > srv.last_term()
            || (last_log_term == srv.last_term() && last_log_index >= srv.last_index())
            || self.has_bug(Bug::NoLogCheckOnVote);
        let granted = term == srv.term && vote_free && up_to_date;
        let reply_term = srv.term;
        if granted {
            s.servers[usize::from(i)].voted_for = Some(c);
        }
        // A grant (or a term change) leaves the vote pending: the response
        // waits for Persist (R-persist-2); the vote is recorded when the
        // response enters the network (`send`).
        self.send_dependent(
            s,
            Message {
                from: i,
                to: c,
                body: Body::RequestVoteResponse(RequestVoteResponse {
                    term: reply_term,
                    granted,
                }),
            },
            granted && self.has_bug(Bug::VoteBeforePersist),
        );
    }

    /// Deliver(m) — RequestVoteResponse from `j` to `i`: the term rule, then
    /// R-term-3 (a stale response is ignored), R-vote-3 (count the vote) and
    /// R-vote-4 (a majority makes a leader).
    pub fn handle_request_vote_response(
        &self,
        s: &mut State,
        i: ServerId,
        j: ServerId,
        m: &RequestVoteResponse,
    ) {
        let &RequestVoteResponse { term, granted } = m;
        self.term_rule(s, i, term);
        let srv = &mut s.servers[usize::from(i)];
        if srv.role != Role::Candidate || term != srv.term || !granted {
            return;
        }
        srv.votes_granted |= bit(j);
        if srv.votes_granted.count_ones() as usize >= self.majority() {
            self.become_leader(s, i);
        }
    }
}
