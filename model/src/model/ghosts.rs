//! Ghost records: the history the properties read and servers forget
//! (model/src/state/mod.rs, `Ghost`), all written here. The handlers do the
//! protocol and call one hook where a record is made: a vote when it becomes
//! observable (`record_vote`, from `send` and `persist`), an election and its
//! quorum (`record_election`, from `become_leader`), the entries a leader
//! commits (`record_commits`, from `advance_commit_index`). What compares
//! the states before and after a whole step is `update_ghosts` (the commit
//! index a Restart lost, append-only leaders, minority commits, pruning). (Deriving
//! the hooks from the before/after states too would need the moment a vote
//! entered the network and the quorum of each commit, which the states do
//! not keep.)

use super::RaftModel;
use crate::config::MAX_SERVERS;
use crate::properties;
use crate::state::{
    bit, flags, members, values_prefix_eq, CommitRecord, ElectionRecord, QuorumRecord, State,
    ValueSet, VoteRecord,
};
use crate::types::{Action, Entry, Index, Role, ServerId, Term};

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
            // A Restart forgets the commit index: the highest one lost is
            // kept until it is regained (CommittedSurvivesRestart).
            // Since R-snap-5 a Restart keeps the commit index of the durable
            // snapshot: only a commit index above it is lost.
            let restarted = *action
                == (Action::Restart {
                    server: i as ServerId,
                });
            if restarted {
                after.lost_commit = before.lost_commit;
                if before.commit_index > after.commit_index {
                    after.lost_commit = after.lost_commit.max(before.commit_index);
                }
                if after.lost_commit <= after.commit_index {
                    after.lost_commit = 0;
                }
            }
            // AppliedNeverGoesBack: while up (any step but its Restart), a
            // server's applied prefix (snapshot_values ++ log)[..commit_index]
            // only grows.
            let applied = before.commit_index as usize;
            if !restarted
                && (after.commit_index < before.commit_index
                    || !values_prefix_eq(before.value_parts(), after.value_parts(), applied))
            {
                s.ghost.flags |= flags::VIOLATED_APPLIED_GOES_BACK;
            }
            // A cut-off leader's own Persist may commit what a majority
            // acknowledged before the cut (it now counts itself): legal.
            let own_persist = *action
                == Action::Persist {
                    server: i as ServerId,
                };
            let same_leader = before.role == Role::Leader
                && after.role == Role::Leader
                && before.term == after.term;
            // Over snapshot ++ log (compaction moves entries, it does not
            // delete them): a value identifies its entry.
            if same_leader
                && (after.last_index() < before.last_index()
                    || !values_prefix_eq(
                        before.value_parts(),
                        after.value_parts(),
                        before.last_index() as usize,
                    ))
            {
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

    /// Candidate `i` becomes leader (R-vote-4): its self-vote is effective
    /// now at the latest (a single server wins before its first Persist),
    /// and the election and its vote quorum (what each voter held when it
    /// voted) are recorded. Called before the role changes.
    pub(super) fn record_election(&self, s: &mut State, i: ServerId) {
        let term = s.servers[usize::from(i)].term;
        self.record_vote(s, term, i, i);
        let voters = s.servers[usize::from(i)].votes_granted;
        let mut held: [ValueSet; MAX_SERVERS as usize] = Default::default();
        for v in members(voters) {
            if let Some(r) = s
                .ghost
                .votes
                .iter()
                .find(|r| r.term == term && r.voter == v && r.candidate == i)
            {
                held[usize::from(v)] = r.held.clone();
            }
        }
        if !s
            .ghost
            .elections
            .iter()
            .any(|e| e.term == term && e.leader == i)
        {
            s.ghost.elections.push(ElectionRecord { term, leader: i });
            s.ghost.elections.sort();
        }
        s.ghost.quorums.push(QuorumRecord {
            term,
            leader: i,
            voters,
            held,
        });
        s.ghost.quorums.sort();
    }

    /// Leader `i` commits `old + 1..=new` with the replicas in `quorum`
    /// (R-commit-1): the first (lowest-term) commit of each entry is
    /// recorded, and a commit before the leader's own Persist is flagged.
    pub(super) fn record_commits(
        &self,
        s: &mut State,
        i: ServerId,
        old: Index,
        new: Index,
        quorum: u8,
    ) {
        let srv = &s.servers[usize::from(i)];
        if !srv.durable_upto(new) {
            s.ghost.flags |= flags::EVENT_COMMIT_BEFORE_OWN_PERSIST;
        }
        let term = srv.term;
        let entries: Vec<(Index, Entry)> = (old + 1..=new)
            .filter_map(|k| srv.entry_at(k).map(|e| (k, *e)))
            .collect();
        for (index, entry) in entries {
            let known = s
                .ghost
                .commits
                .iter()
                .any(|c| c.index == index && c.entry == entry && c.term <= term);
            if !known {
                s.ghost
                    .commits
                    .retain(|c| !(c.index == index && c.entry == entry));
                s.ghost.commits.push(CommitRecord {
                    index,
                    entry,
                    term,
                    quorum,
                });
            }
        }
        s.ghost.commits.sort();
    }
}
