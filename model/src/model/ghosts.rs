//! Ghost records: the history the properties read and servers forget
//! (model/src/state/mod.rs, `Ghost`). The handlers record votes, elections and
//! commits where they happen (`record_vote`, `become_leader`,
//! `advance_commit_index`); what compares the states before and after a
//! whole step is here (`update_ghosts`).

use super::RaftModel;
use crate::properties;
use crate::state::{bit, flags, State, VoteRecord};
use crate::types::{Action, Role, ServerId, Term};

impl RaftModel {
    /// Ghost: `voter` voted for `candidate` in `term`; `held` is what is in
    /// the voter's log now.
    ///
    /// A vote is recorded when it becomes observable or effective, not when
    /// the voter sets `voted_for` in memory: a vote that a Restart loses
    /// before any Persist was never seen by anyone, and the voter may then
    /// legally vote again in that term (VoteOncePerTerm must not flag it).
    /// So a vote for another server is recorded when its granted
    /// RequestVoteResponse enters the network (straight, or released by
    /// Persist: `send`), and a candidate's self-vote when it becomes durable
    /// at Persist, which is also when its RequestVotes are released (and,
    /// for a single server, when it becomes leader at once). Between the
    /// in-memory grant and the release the voter's log can only gain entries
    /// of the same term, so `held` at release is what it holds when the
    /// vote can first be counted.
    pub(super) fn record_vote(
        &self,
        s: &mut State,
        term: Term,
        voter: ServerId,
        candidate: ServerId,
    ) {
        let v = &s.servers[usize::from(voter)];
        let rec = VoteRecord {
            term,
            voter,
            candidate,
            held: v.held_values(),
        };
        // The first grant is what counts: a repeated grant to the same
        // candidate changes nothing.
        if !s
            .ghost
            .votes
            .iter()
            .any(|r| (r.term, r.voter, r.candidate) == (rec.term, voter, candidate))
        {
            s.ghost.votes.push(rec);
            s.ghost.votes.sort();
        }
    }

    /// Ghost bookkeeping that compares the states before and after a step.
    pub(super) fn update_ghosts(&self, last: &State, action: &Action, s: &mut State) {
        for (i, (before, after)) in last.servers.iter().zip(s.servers.iter_mut()).enumerate() {
            // A cut-off leader's own Persist may commit what a majority
            // acknowledged before the cut (it now counts itself): legal.
            let own_persist = *action
                == Action::Persist {
                    server: i as ServerId,
                };
            let same_leader = before.role == Role::Leader
                && after.role == Role::Leader
                && before.term == after.term;
            if same_leader && !after.log.starts_with(&before.log) {
                s.ghost.flags |= flags::VIOLATED_APPEND_ONLY;
            }
            if same_leader
                && !own_persist
                && after.commit_index > before.commit_index
                && last.partition != 0
            {
                let own_side = if last.partition & bit(i as ServerId) != 0 {
                    last.partition
                } else {
                    !last.partition & (((1u16 << self.n()) - 1) as u8)
                };
                if (own_side.count_ones() as usize) < self.majority() {
                    s.ghost.flags |= flags::VIOLATED_MINORITY_COMMIT;
                }
            }
            if after.lost_commit > 0 && after.commit_index >= after.lost_commit {
                after.lost_commit = 0;
                s.ghost.flags |= flags::EVENT_COMMIT_SURVIVED;
            }
        }
        if !properties::quorums_overlap(s) {
            s.ghost.flags |= flags::VIOLATED_MAJORITY_OVERLAP;
        }
        // Drop quorum records that can no longer matter: only a leader or a
        // candidate of an earlier term can still commit at an earlier term
        // (any other server would need votes from the quorum, whose members
        // are all at the later term).
        let servers = &s.servers;
        s.ghost.quorums.retain(|q| {
            servers
                .iter()
                .any(|srv| srv.term < q.term && srv.role != Role::Follower)
        });
        // An election record matters while another server may still become
        // leader of that term: it is behind it, or a candidate in it.
        s.ghost.elections.retain(|e| {
            servers.iter().enumerate().any(|(k, srv)| {
                k != usize::from(e.leader)
                    && (srv.term < e.term || (srv.term == e.term && srv.role == Role::Candidate))
            })
        });
        // No election happens after max_term: the quorum of an entry committed
        // at max_term can never be needed, so forget it (fewer distinct states).
        let max_term = self.cfg.max_term;
        for c in s.ghost.commits.iter_mut().filter(|c| c.term >= max_term) {
            c.quorum = 0;
        }
        s.ghost.commits.sort();
        // Drop vote records that can no longer matter: the voter has moved
        // past the term and the candidate can no longer win with the vote.
        let servers = &s.servers;
        s.ghost.votes.retain(|r| {
            servers[usize::from(r.voter)].term == r.term || {
                let c = &servers[usize::from(r.candidate)];
                c.role == Role::Candidate && c.term == r.term
            }
        });
    }
}
