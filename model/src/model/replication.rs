//! Log replication and commit (docs/protocol.md §4–§6): ClientRequest
//! (R-append-1), Heartbeat (R-append-2), AppendEntries (R-append-3..5,
//! R-commit-2), its response (R-append-6, R-append-7) and the leader's
//! commit rule (R-commit-1, R-persist-4).

use super::RaftModel;
use crate::config::Bug;
use crate::state::{bit, flags, State};
use crate::types::{
    AppendEntries, AppendEntriesResponse, Body, Entry, Index, Message, Role, ServerId, Value,
};

impl RaftModel {
    /// The AppendEntries that leader `i` sends `j` from `next_index[j]`
    /// (R-append-2: at most `max_batch` entries), or, R-snap-3, its
    /// InstallSnapshot when `next_index[j] <= snapshot_index` (every place
    /// that sends AppendEntries builds it here: Heartbeat, becoming leader,
    /// after a rejection).
    pub(super) fn append_entries_for(&self, s: &State, i: ServerId, j: ServerId) -> Message {
        let l = &s.servers[usize::from(i)];
        let next = l.next_index[usize::from(j)].max(1);
        if next <= l.snapshot_index {
            return self.install_snapshot_for(s, i, j);
        }
        let prev_log_index = next - 1;
        // Position in `log` of index `next` (R-snap-1: `log` starts after
        // the snapshot).
        let start = ((prev_log_index - l.snapshot_index) as usize).min(l.log.len());
        let end = match self.cfg.max_batch {
            Some(b) => l.log.len().min(start.saturating_add(b as usize)),
            None => l.log.len(),
        };
        Message {
            from: i,
            to: j,
            body: Body::AppendEntries(AppendEntries {
                term: l.term,
                prev_log_index,
                prev_log_term: l.term_at(prev_log_index).unwrap_or(0),
                entries: l.log[start..end].to_vec(),
                leader_commit: l.commit_index,
            }),
        }
    }

    /// R-append-2: AppendEntries to every peer, in increasing order of id.
    pub(super) fn broadcast_append_entries(&self, s: &mut State, i: ServerId) {
        for j in 0..self.cfg.servers {
            if j != i {
                let m = self.append_entries_for(s, i, j);
                self.send(s, m);
            }
        }
    }

    /// §6 commit rule (R-commit-1, R-persist-4): leader `i` commits the largest N
    /// whose entry is of its current term with a quorum of matches, counting
    /// itself only when its log is durable up to N (Raft dissertation
    /// §10.2.1: it replicates before its own fsync completes). Only ever
    /// raises the commit index (R-commit-3).
    pub(super) fn advance_commit_index(&self, s: &mut State, i: ServerId) {
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
        self.record_commits(s, i, old, new, quorum);
        s.servers[usize::from(i)].commit_index = new;
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

    /// Deliver(m) — AppendEntries from `l` to `i`: R-append-3 (stale term),
    /// the term rule, R-append-4 (consistency check), R-append-5 (conflict
    /// rule), R-commit-2 (commit adoption), the reply.
    pub fn handle_append_entries(
        &self,
        s: &mut State,
        i: ServerId,
        l: ServerId,
        m: &AppendEntries,
    ) {
        let AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            ref entries,
            leader_commit,
        } = *m;
        // Every reply is dependent (R-persist-2): a success waits for the
        // log change it vouches for to be durable.
        let reply = |s: &mut State, term, success: bool, index, conflict_index| {
            self.send_dependent(
                s,
                Message {
                    from: i,
                    to: l,
                    body: Body::AppendEntriesResponse(AppendEntriesResponse {
                        term,
                        success,
                        index,
                        conflict_index,
                    }),
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
        // Consistency check. R-snap-7: below the snapshot every index is
        // committed and matches, so the check accepts; the conflict hint
        // looks only at indices whose term is known (snapshot_index and up).
        let snap = srv.snapshot_index;
        let conflict = if prev_log_index < snap {
            None
        } else {
            match srv.term_at(prev_log_index) {
                None => Some(srv.last_index() + 1),
                Some(t) if t != prev_log_term => {
                    let first = if snap > 0 && srv.snapshot_term == t {
                        snap
                    } else {
                        let pos = srv.log.iter().position(|e| e.term == t).unwrap_or(0);
                        snap + pos as Index + 1
                    };
                    Some(first.max(1))
                }
                Some(_) => None,
            }
        };
        if let Some(conflict_index) = conflict {
            reply(s, term, false, prev_log_index, conflict_index);
            return;
        }
        // Conflict rule: never truncate on a match; R-snap-7: entries at
        // indices <= snapshot_index are skipped (compacted, committed).
        let mut overwritten = false;
        let skip = (snap.saturating_sub(prev_log_index) as usize).min(entries.len());
        let entries = &entries[skip..];
        // 0-based position in `log` of the first remaining entry.
        let prev = (prev_log_index.max(snap) - snap) as usize;
        if self.has_bug(Bug::TruncateOnMatch) {
            srv.log.truncate(prev);
            srv.log.extend_from_slice(entries);
        } else {
            for (k, e) in entries.iter().enumerate() {
                let p = prev + k; // position of index max(prev_log_index, snap) + k + 1
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
        let vouched = prev_log_index + m.entries.len() as Index;
        let srv = &mut s.servers[usize::from(i)];
        srv.commit_index = srv.commit_index.max(leader_commit.min(vouched));
        reply(s, term, true, vouched, 0);
    }

    /// Deliver(m) — AppendEntriesResponse from `j` to `i`: the term rule,
    /// R-term-3 (a stale response is ignored), then R-append-6 (success: monotonic match/next, commit) or R-append-7
    /// (rejection: back next_index up, resend).
    pub fn handle_append_entries_response(
        &self,
        s: &mut State,
        i: ServerId,
        j: ServerId,
        m: &AppendEntriesResponse,
    ) {
        let AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } = *m;
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
}
