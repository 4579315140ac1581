//! The Raft model: one small function per event of docs/protocol.md §4, in
//! the style of Ongaro's raft.tla. Every function takes the state before the
//! step and returns the state after it; `actions` lists only enabled events.

use crate::config::{Bug, Config, NetworkKind, PersistMode};
use crate::properties;
use crate::state::{
    bit, flags, members, CommitRecord, ElectionRecord, QuorumRecord, State, VoteRecord,
};
use crate::types::{Action, Body, Entry, Index, Message, Role, ServerId, Term, Value};
use stateright::{Model, Path, Property};

/// The model of a Raft cluster under the bounds of `cfg`.
#[derive(Clone, Debug)]
pub struct RaftModel {
    pub cfg: Config,
}

impl RaftModel {
    pub fn new(cfg: Config) -> Self {
        RaftModel { cfg }
    }

    fn n(&self) -> usize {
        usize::from(self.cfg.servers)
    }

    fn has_bug(&self, bug: Bug) -> bool {
        self.cfg.bug == Some(bug)
    }

    fn majority(&self) -> usize {
        self.cfg.majority()
    }

    /// Commit quorum size: a majority, or `n / 2` with the quorum-minority bug.
    fn commit_quorum(&self) -> usize {
        if self.has_bug(Bug::QuorumMinority) {
            self.n() / 2
        } else {
            self.majority()
        }
    }

    // ----- enabledness ----------------------------------------------------

    /// Number of peers of `i` that a broadcast from `i` would reach (sends
    /// across a cut are lost at once and never enter the network).
    fn reachable_peers(&self, s: &State, i: ServerId) -> usize {
        (0..self.cfg.servers)
            .filter(|&j| j != i && !s.is_cut(i, j))
            .count()
    }

    /// Messages counted by `max_inflight`: the network plus every outbox
    /// (an outbox message is sent, just not yet released). Releasing an
    /// outbox at Persist therefore never changes the count, and Persist is
    /// always within the bound.
    pub fn inflight(&self, s: &State) -> usize {
        s.network.len() + s.servers.iter().map(|srv| srv.outbox.len()).sum::<usize>()
    }

    fn fits(&self, s: &State, removed: usize, added: usize) -> bool {
        self.inflight(s) - removed + added <= usize::from(self.cfg.max_inflight)
    }

    /// Whether server `i` has pending writes: its in-memory state differs
    /// from the durable part in a field that Persist writes (with the
    /// no-persist-vote bug Persist never writes `voted_for`, so a vote alone
    /// is not pending).
    pub fn has_pending_writes(&self, s: &State, i: ServerId) -> bool {
        let srv = &s.servers[usize::from(i)];
        srv.term != srv.durable_term
            || srv.log != srv.durable_log
            || (!self.has_bug(Bug::NoPersistVote) && srv.voted_for != srv.durable_voted_for)
    }

    /// Messages a Timeout of `i` adds to the count: its RequestVotes wait in
    /// the outbox (the new term is pending), across a cut too, since the cut
    /// is applied when they are released; in sync mode they are released in
    /// the same step and the ones across a cut are lost at once.
    fn timeout_sends(&self, s: &State, i: ServerId) -> usize {
        match self.cfg.persist {
            PersistMode::Async => self.n() - 1,
            PersistMode::Sync => self.reachable_peers(s, i),
        }
    }

    /// Whether delivering `m` (a RequestVoteResponse) makes its receiver leader.
    fn wins_with(&self, s: &State, m: &Message) -> bool {
        let Body::RequestVoteResponse { term, granted } = m.body else {
            return false;
        };
        let c = &s.servers[usize::from(m.to)];
        granted
            && term == c.term
            && c.role == Role::Candidate
            && c.votes_granted & bit(m.from) == 0
            && (c.votes_granted | bit(m.from)).count_ones() as usize >= self.majority()
    }

    /// Whether `m` may be delivered or duplicated now: its link is not cut,
    /// and on an ordered network it is the oldest message of its link.
    fn is_deliverable(&self, s: &State, pos: usize) -> bool {
        let m = &s.network[pos];
        if s.is_cut(m.from, m.to) {
            return false;
        }
        match self.cfg.network {
            NetworkKind::Unordered => true,
            NetworkKind::Ordered => s.network[..pos]
                .iter()
                .all(|o| (o.from, o.to) != (m.from, m.to)),
        }
    }

    /// Position of a copy of `m` that may be delivered (for the ordered
    /// network, the head of the link must equal `m`).
    fn deliverable_position(&self, s: &State, m: &Message) -> Option<usize> {
        match self.cfg.network {
            NetworkKind::Unordered => s.network.iter().position(|o| o == m),
            NetworkKind::Ordered => s
                .network
                .iter()
                .position(|o| (o.from, o.to) == (m.from, m.to))
                .filter(|&p| &s.network[p] == m),
        }
        .filter(|&p| self.is_deliverable(s, p))
    }

    fn valid_server(&self, i: ServerId) -> bool {
        usize::from(i) < self.n()
    }

    /// Whether `action` is enabled in `s` under the bounds. `next_state`
    /// returns `None` exactly when this is false.
    pub fn is_enabled(&self, s: &State, action: &Action) -> bool {
        match action {
            Action::Timeout { server } => {
                self.valid_server(*server) && {
                    let srv = &s.servers[usize::from(*server)];
                    srv.role != Role::Leader
                        && srv.term < self.cfg.max_term
                        && self.fits(s, 0, self.timeout_sends(s, *server))
                }
            }
            Action::Heartbeat { server } => {
                self.valid_server(*server)
                    && s.servers[usize::from(*server)].role == Role::Leader
                    && self.fits(s, 0, self.reachable_peers(s, *server))
            }
            Action::ClientRequest { server, value } => {
                // The checker only lists value `requests + 1`; any fresh value
                // is accepted so that traces rebuilt by `from_abstract` replay.
                self.valid_server(*server)
                    && s.servers[usize::from(*server)].role == Role::Leader
                    && s.requests < self.cfg.max_requests
                    && *value > s.requests
                    && *value <= self.cfg.max_requests
            }
            Action::Deliver { message } => {
                self.valid_server(message.from)
                    && self.valid_server(message.to)
                    && message.from != message.to
                    && self.deliverable_position(s, message).is_some()
                    && (!self.wins_with(s, message)
                        || self.fits(s, 1, self.reachable_peers(s, message.to)))
            }
            Action::Drop { message } => s.network.contains(message),
            Action::Duplicate { message } => {
                s.duplicates < self.cfg.max_duplicates
                    && self.fits(s, 0, 1)
                    && self.deliverable_position(s, message).is_some()
            }
            Action::Persist { server } => {
                self.valid_server(*server) && self.has_pending_writes(s, *server)
            }
            Action::Restart { server } => {
                self.valid_server(*server) && s.restarts < self.cfg.max_restarts
            }
            Action::Partition { group } => {
                let mut set = 0u8;
                for &id in group {
                    if !self.valid_server(id) || set & bit(id) != 0 {
                        return false;
                    }
                    set |= bit(id);
                }
                s.partition == 0
                    && s.partitions < self.cfg.max_partitions
                    && !group.is_empty()
                    && group.len() < self.n()
            }
            Action::Heal => s.partition != 0,
        }
    }

    /// The partition groups listed as actions: every minority group, and for
    /// an even cluster the halves that contain server 0. `Partition(S)` and
    /// `Partition(rest)` cut the same links, so each cut is listed once.
    pub fn partition_groups(&self) -> Vec<Vec<ServerId>> {
        let n = self.n();
        let mut groups = Vec::new();
        for mask in 1u32..(1u32 << n) - 1 {
            let size = mask.count_ones() as usize;
            if size * 2 < n || (size * 2 == n && mask & 1 != 0) {
                groups.push(
                    (0..n as ServerId)
                        .filter(|i| mask & (1 << i) != 0)
                        .collect(),
                );
            }
        }
        groups
    }

    // ----- helpers used by the events -------------------------------------

    /// Puts `m` in flight unless its link is cut (then it is lost at once,
    /// R-net-2).
    /// A granted RequestVoteResponse entering the network is the moment the
    /// vote becomes observable: it is recorded then (see `record_vote`).
    fn send(&self, s: &mut State, m: Message) {
        if s.is_cut(m.from, m.to) {
            return;
        }
        if let Body::RequestVoteResponse {
            term,
            granted: true,
        } = m.body
        {
            self.record_vote(s, term, m.from, m.to);
        }
        s.network.push(m);
    }

    /// R-persist-2: a dependent message (RequestVote, RequestVoteResponse,
    /// AppendEntriesResponse) sent while the sender has pending writes,
    /// including writes made earlier in the same step, waits in the
    /// sender's outbox for its next Persist; otherwise it goes straight out.
    /// `bypass` is a seeded bug that sends it straight out regardless.
    fn send_dependent(&self, s: &mut State, m: Message, bypass: bool) {
        if !bypass && self.has_pending_writes(s, m.from) {
            s.servers[usize::from(m.from)].outbox.push(m);
        } else {
            self.send(s, m);
        }
    }

    /// §3 term rule (R-term-1, R-term-2): a higher term makes the receiver
    /// a follower of it and empties its outbox (every message in it carries
    /// the older term).
    fn term_rule(&self, s: &mut State, i: ServerId, term: Term) {
        let srv = &mut s.servers[usize::from(i)];
        if term > srv.term {
            srv.term = term;
            srv.voted_for = None;
            srv.become_follower();
            srv.outbox.clear();
        }
    }

    /// The AppendEntries that leader `i` sends `j` from `next_index[j]`
    /// (R-append-2: at most `max_batch` entries).
    fn append_entries_for(&self, s: &State, i: ServerId, j: ServerId) -> Message {
        let l = &s.servers[usize::from(i)];
        let next = l.next_index[usize::from(j)].max(1);
        let prev_log_index = next - 1;
        let start = (prev_log_index as usize).min(l.log.len());
        let end = match self.cfg.max_batch {
            Some(b) => l.log.len().min(start.saturating_add(b as usize)),
            None => l.log.len(),
        };
        Message {
            from: i,
            to: j,
            body: Body::AppendEntries {
                term: l.term,
                prev_log_index,
                prev_log_term: l.term_at(prev_log_index).unwrap_or(0),
                entries: l.log[start..end].to_vec(),
                leader_commit: l.commit_index,
            },
        }
    }

    /// R-append-2: AppendEntries to every peer, in increasing order of id.
    fn broadcast_append_entries(&self, s: &mut State, i: ServerId) {
        for j in 0..self.cfg.servers {
            if j != i {
                let m = self.append_entries_for(s, i, j);
                self.send(s, m);
            }
        }
    }

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
    fn record_vote(&self, s: &mut State, term: Term, voter: ServerId, candidate: ServerId) {
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

    /// R-vote-4, becoming leader: candidate `i` has a majority; it becomes
    /// leader and sends AppendEntries to every peer in the same step.
    fn become_leader(&self, s: &mut State, i: ServerId) {
        let n = self.n();
        let term = s.servers[usize::from(i)].term;
        // The self-vote is effective now at the latest (a single server
        // wins before its first Persist).
        self.record_vote(s, term, i, i);
        let voters = s.servers[usize::from(i)].votes_granted;
        let mut held: [crate::state::ValueSet; crate::config::MAX_SERVERS as usize] =
            Default::default();
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

    /// §6 commit rule (R-commit-1, R-persist-4): leader `i` commits the largest N
    /// whose entry is of its current term with a quorum of matches, counting
    /// itself only when its log is durable up to N (Raft dissertation
    /// §10.2.1: it replicates before its own fsync completes).
    fn advance_commit_index(&self, s: &mut State, i: ServerId) {
        let srv = &s.servers[usize::from(i)];
        let old = srv.commit_index;
        let mut new = old;
        let mut quorum = 0u8;
        for n in (old + 1..=srv.last_index()).rev() {
            if !self.has_bug(Bug::CommitOldTerm) && srv.term_at(n) != Some(srv.term) {
                continue;
            }
            let counts_self = srv.durable_upto(n) || self.has_bug(Bug::LeaderCountsVolatileSelf);
            let q = (0..self.cfg.servers)
                .filter(|&j| {
                    if j == i {
                        counts_self
                    } else {
                        srv.match_index[usize::from(j)] >= n
                    }
                })
                .fold(0u8, |acc, j| acc | bit(j));
            if q.count_ones() as usize >= self.commit_quorum() {
                new = n;
                quorum = q;
                break;
            }
        }
        if new == old {
            return;
        }
        if !srv.durable_upto(new) {
            s.ghost.flags |= flags::EVENT_COMMIT_BEFORE_OWN_PERSIST;
        }
        let term = srv.term;
        let entries: Vec<(Index, Entry)> = (old + 1..=new)
            .filter_map(|k| srv.entry_at(k).map(|e| (k, *e)))
            .collect();
        s.servers[usize::from(i)].commit_index = new;
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

    // ----- the events (docs/protocol.md §4) ------------------------------

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
                        body: Body::RequestVote {
                            term,
                            last_log_index,
                            last_log_term,
                        },
                    },
                    false,
                );
            }
        }
        if 1 >= self.majority() {
            self.become_leader(s, i);
        }
    }

    /// Heartbeat(i), R-append-2: AppendEntries to every peer, next_index
    /// unchanged.
    pub fn heartbeat(&self, s: &mut State, i: ServerId) {
        self.broadcast_append_entries(s, i);
    }

    /// ClientRequest(i, v), R-append-1: append (term, v) in memory; nothing is sent. A
    /// single-server leader commits it at its next Persist (R-persist-4).
    pub fn client_request(&self, s: &mut State, i: ServerId, v: Value) {
        let srv = &mut s.servers[usize::from(i)];
        let term = srv.term;
        srv.log.push(Entry { term, value: v });
        s.requests = v;
    }

    /// Deliver(m) — RequestVote from `c` to `i`: the term rule, then
    /// R-vote-2 (grant iff same term, vote free, log up to date).
    pub fn handle_request_vote(
        &self,
        s: &mut State,
        i: ServerId,
        c: ServerId,
        term: Term,
        last_log_index: Index,
        last_log_term: Term,
    ) {
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
                body: Body::RequestVoteResponse {
                    term: reply_term,
                    granted,
                },
            },
            granted && self.has_bug(Bug::VoteBeforePersist),
        );
    }

    /// Deliver(m) — RequestVoteResponse from `j` to `i`: the term rule, then
    /// R-vote-3 (count the vote) and R-vote-4 (a majority makes a leader).
    pub fn handle_request_vote_response(
        &self,
        s: &mut State,
        i: ServerId,
        j: ServerId,
        term: Term,
        granted: bool,
    ) {
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

    /// Deliver(m) — AppendEntries from `l` to `i`: R-append-3 (stale term),
    /// the term rule, R-append-4 (consistency check), R-append-5 (conflict
    /// rule), R-commit-2 (commit adoption), the reply.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_append_entries(
        &self,
        s: &mut State,
        i: ServerId,
        l: ServerId,
        term: Term,
        prev_log_index: Index,
        prev_log_term: Term,
        entries: &[Entry],
        leader_commit: Index,
    ) {
        // Every reply is dependent (R-persist-2): a success waits for the
        // log change it vouches for to be durable.
        let reply = |s: &mut State, term, success: bool, index, conflict_index| {
            self.send_dependent(
                s,
                Message {
                    from: i,
                    to: l,
                    body: Body::AppendEntriesResponse {
                        term,
                        success,
                        index,
                        conflict_index,
                    },
                },
                success && self.has_bug(Bug::AckBeforePersist),
            )
        };
        if term < s.servers[usize::from(i)].term {
            let own = s.servers[usize::from(i)].term;
            reply(s, own, false, 0, 0);
            return;
        }
        self.term_rule(s, i, term);
        let srv = &mut s.servers[usize::from(i)];
        if srv.role == Role::Candidate {
            srv.become_follower();
        }
        // Consistency check.
        let conflict = match srv.term_at(prev_log_index) {
            None => Some(srv.last_index() + 1),
            Some(t) if t != prev_log_term => {
                let first = srv.log.iter().position(|e| e.term == t).unwrap_or(0);
                Some(first as Index + 1)
            }
            Some(_) => None,
        };
        if let Some(conflict_index) = conflict {
            reply(s, term, false, prev_log_index, conflict_index);
            return;
        }
        // Conflict rule: never truncate on a match.
        let prev = prev_log_index as usize;
        let mut overwritten = false;
        if self.has_bug(Bug::TruncateOnMatch) {
            srv.log.truncate(prev);
            srv.log.extend_from_slice(entries);
        } else {
            for (k, e) in entries.iter().enumerate() {
                let p = prev + k; // 0-based position of index prev_log_index + k + 1
                match srv.log.get(p) {
                    Some(have) if have.term == e.term => continue,
                    Some(_) => {
                        srv.log.truncate(p);
                        srv.log.extend_from_slice(&entries[k..]);
                        overwritten = true;
                        break;
                    }
                    None => {
                        srv.log.extend_from_slice(&entries[k..]);
                        break;
                    }
                }
            }
        }
        if overwritten {
            s.ghost.flags |= flags::EVENT_OVERWRITTEN;
        }
        let vouched = prev_log_index + entries.len() as Index;
        let srv = &mut s.servers[usize::from(i)];
        srv.commit_index = srv.commit_index.max(leader_commit.min(vouched));
        reply(s, term, true, vouched, 0);
    }

    /// Deliver(m) — AppendEntriesResponse from `j` to `i`: the term rule,
    /// then R-append-6 (success: monotonic match/next, commit) or R-append-7
    /// (rejection: back next_index up, resend).
    #[allow(clippy::too_many_arguments)]
    pub fn handle_append_entries_response(
        &self,
        s: &mut State,
        i: ServerId,
        j: ServerId,
        term: Term,
        success: bool,
        index: Index,
        conflict_index: Index,
    ) {
        self.term_rule(s, i, term);
        let srv = &mut s.servers[usize::from(i)];
        if srv.role != Role::Leader || term != srv.term {
            return;
        }
        let jj = usize::from(j);
        if success && index > srv.last_index() {
            // Impossible from a correct peer (it only acknowledges what the
            // leader sent): ignored (docs/protocol.md §4).
        } else if success {
            srv.match_index[jj] = srv.match_index[jj].max(index);
            srv.next_index[jj] = srv.next_index[jj].max(index + 1);
            self.advance_commit_index(s, i);
        } else if conflict_index == 0 || index != srv.next_index[jj].saturating_sub(1) {
            // Stale-term rejection, or an answer to an older request.
        } else {
            srv.next_index[jj] = (srv.match_index[jj] + 1)
                .max(conflict_index.min(srv.next_index[jj].saturating_sub(1)));
            let m = self.append_entries_for(s, i, j);
            self.send(s, m);
        }
    }

    /// Deliver(m): remove one copy of `m` and let its destination handle it
    /// (the handlers below).
    pub fn deliver(&self, s: &mut State, m: &Message) {
        if let Some(pos) = self.deliverable_position(s, m) {
            s.network.remove(pos);
        }
        let (i, from) = (m.to, m.from);
        match &m.body {
            Body::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => self.handle_request_vote(s, i, from, *term, *last_log_index, *last_log_term),
            Body::RequestVoteResponse { term, granted } => {
                self.handle_request_vote_response(s, i, from, *term, *granted)
            }
            Body::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.handle_append_entries(
                s,
                i,
                from,
                *term,
                *prev_log_index,
                *prev_log_term,
                entries,
                *leader_commit,
            ),
            Body::AppendEntriesResponse {
                term,
                success,
                index,
                conflict_index,
            } => self.handle_append_entries_response(
                s,
                i,
                from,
                *term,
                *success,
                *index,
                *conflict_index,
            ),
        }
    }

    /// Drop(m), R-net-1: the network loses one copy of `m`.
    pub fn drop_message(&self, s: &mut State, m: &Message) {
        if let Some(pos) = s.network.iter().position(|o| o == m) {
            s.network.remove(pos);
        }
    }

    /// Duplicate(m), R-net-1: a second copy of `m`. On the ordered network the copy
    /// goes right behind the original, so the link delivers it twice in a row.
    pub fn duplicate(&self, s: &mut State, m: &Message) {
        if let Some(pos) = self.deliverable_position(s, m) {
            s.network.insert(pos + 1, m.clone());
        }
        s.duplicates += 1;
    }

    /// Whether Restart(i) changes server `i` (loses volatile state, pending
    /// writes or its outbox).
    pub fn restart_changes(&self, s: &State, i: ServerId) -> bool {
        let srv = &s.servers[usize::from(i)];
        srv.role != Role::Follower
            || srv.commit_index != 0
            || srv.term != srv.durable_term
            || srv.voted_for != srv.durable_voted_for
            || srv.log != srv.durable_log
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

    /// Restart(i), R-restart-1 and R-persist-5: term, vote and log become the durable ones
    /// (pending writes are lost), the outbox is lost, volatile state reset.
    pub fn restart(&self, s: &mut State, i: ServerId) {
        let srv = &mut s.servers[usize::from(i)];
        srv.lost_commit = srv.lost_commit.max(srv.commit_index);
        srv.commit_index = 0;
        srv.become_follower();
        srv.term = srv.durable_term;
        srv.voted_for = srv.durable_voted_for;
        srv.log.clone_from(&srv.durable_log);
        srv.outbox.clear();
        s.restarts += 1;
    }

    /// Partition(S), R-net-2: cut every link between `group` and the rest.
    pub fn partition(&self, s: &mut State, group: &[ServerId]) {
        s.partition = group.iter().fold(0, |acc, &id| acc | bit(id));
        s.partitions += 1;
    }

    /// Heal, R-net-2: restore every link.
    pub fn heal(&self, s: &mut State) {
        s.partition = 0;
    }

    /// Applies an enabled action. Also maintains the ghost state that is a
    /// function of the step as a whole.
    fn apply(&self, last: &State, action: &Action) -> State {
        let mut s = last.clone();
        s.ghost.flags &= !flags::EVENTS;
        match action {
            Action::Timeout { server } => self.timeout(&mut s, *server),
            Action::Heartbeat { server } => self.heartbeat(&mut s, *server),
            Action::ClientRequest { server, value } => self.client_request(&mut s, *server, *value),
            Action::Deliver { message } => self.deliver(&mut s, message),
            Action::Drop { message } => self.drop_message(&mut s, message),
            Action::Duplicate { message } => self.duplicate(&mut s, message),
            Action::Persist { server } => self.persist(&mut s, *server),
            Action::Restart { server } => self.restart(&mut s, *server),
            Action::Partition { group } => self.partition(&mut s, group),
            Action::Heal => self.heal(&mut s),
        }
        if self.cfg.persist == PersistMode::Sync {
            self.persist_all(&mut s);
        }
        s.normalize_network(self.cfg.network);
        self.update_ghosts(last, action, &mut s);
        s
    }

    /// Sync mode: every server the step left with pending writes persists
    /// within the same step (in id order; at most one server has pending
    /// writes after any one event, so the order never matters).
    fn persist_all(&self, s: &mut State) {
        for i in 0..self.cfg.servers {
            if self.has_pending_writes(s, i) {
                self.persist(s, i);
            }
        }
    }

    /// Ghost bookkeeping that compares the states before and after a step.
    fn update_ghosts(&self, last: &State, action: &Action, s: &mut State) {
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

    /// Whether any `always` property fails in `s`.
    pub fn violates_safety(&self, s: &State) -> bool {
        properties::SAFETY.iter().any(|(_, f)| !f(self, s))
    }
}

impl Model for RaftModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial(self.cfg.servers)]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        // Violating states are terminal: counterexamples end at the violation.
        if self.violates_safety(s) {
            return;
        }
        // Order matters for speed: DFS explores the last action first, so
        // faults come first and protocol progress (deliveries) last; a bug is
        // then found along short, busy paths.
        if s.restarts < self.cfg.max_restarts {
            for i in 0..self.cfg.servers {
                // A restart that changes nothing only spends budget: every
                // state after it is reachable without it, so it is not listed
                // (next_state still accepts it, for recorded traces).
                if self.restart_changes(s, i) {
                    actions.push(Action::Restart { server: i });
                }
            }
        }
        if s.partition == 0 && s.partitions < self.cfg.max_partitions {
            for group in self.partition_groups() {
                actions.push(Action::Partition { group });
            }
        }
        if s.partition != 0 {
            actions.push(Action::Heal);
        }
        let distinct = |pos: usize| pos == 0 || s.network[pos - 1] != s.network[pos];
        for (pos, m) in s.network.iter().enumerate() {
            // Identical copies are one action.
            if !distinct(pos) {
                continue;
            }
            actions.push(Action::Drop { message: m.clone() });
            if s.duplicates < self.cfg.max_duplicates
                && self.fits(s, 0, 1)
                && self.is_deliverable(s, pos)
            {
                actions.push(Action::Duplicate { message: m.clone() });
            }
        }
        for i in 0..self.cfg.servers {
            let a = Action::Timeout { server: i };
            if self.is_enabled(s, &a) {
                actions.push(a);
            }
        }
        for i in 0..self.cfg.servers {
            let a = Action::Heartbeat { server: i };
            if self.is_enabled(s, &a) {
                actions.push(a);
            }
            let a = Action::ClientRequest {
                server: i,
                value: s.requests.saturating_add(1),
            };
            if self.is_enabled(s, &a) {
                actions.push(a);
            }
        }
        // Persist is listed only when there are pending writes (never in
        // sync mode, where nothing is pending between steps).
        for i in 0..self.cfg.servers {
            if self.has_pending_writes(s, i) {
                actions.push(Action::Persist { server: i });
            }
        }
        for (pos, m) in s.network.iter().enumerate() {
            if distinct(pos) && self.is_deliverable(s, pos) {
                let a = Action::Deliver { message: m.clone() };
                if self.is_enabled(s, &a) {
                    actions.push(a);
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        // A state of another cluster size (e.g. a foreign abstract state) has
        // no transitions here.
        if last.n() != self.n() || !self.is_enabled(last, &action) {
            return None;
        }
        Some(self.apply(last, &action))
    }

    fn format_action(&self, action: &Action) -> String {
        crate::svg::describe_action(action)
    }

    fn as_svg(&self, path: Path<State, Action>) -> Option<String> {
        Some(crate::svg::sequence_diagram(self, &path))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut props: Vec<Property<Self>> = properties::SAFETY
            .iter()
            .map(|&(name, f)| Property::always(name, f))
            .collect();
        props.extend(
            properties::REACHABILITY
                .iter()
                .filter(|(name, _)| properties::applies(name, &self.cfg))
                .map(|&(name, f)| Property::sometimes(name, f)),
        );
        props
    }
}
