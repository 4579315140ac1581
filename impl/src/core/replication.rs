//! Log replication and commit (docs/protocol.md §4–§6): ClientRequest
//! (`propose`, R-append-1), Heartbeat (R-append-2), AppendEntries
//! (R-append-3..5, R-commit-2), its response (R-append-6, R-append-7) and
//! the leader's commit rule (R-commit-1, R-persist-4); with a snapshot,
//! AppendEntries below it (R-snap-7) and InstallSnapshot in its place
//! (R-snap-3).

use super::{ImplBug, NotLeader, RaftCore, Ready};
use crate::message::{AppendEntries, AppendEntriesResponse, Body, InstallSnapshot, Message};
use crate::types::{Entry, LogIndex, NodeId, Role, Term};

impl RaftCore {
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

    /// Deliver(m) — AppendEntries from `l` (after the term rule):
    /// R-append-3 (stale term), R-append-4 (consistency check), R-append-5
    /// (conflict rule), R-commit-2 (commit adoption), the reply; R-snap-7:
    /// a `prev_log_index` below the snapshot passes the check and the
    /// entries the snapshot covers are skipped, and the conflict hint is
    /// never below the snapshot index.
    pub(super) fn handle_append_entries(&mut self, l: NodeId, m: AppendEntries, r: &mut Ready) {
        let AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } = m;
        let reply = |me: &Self, success, index, conflict_index| Message {
            from: me.id,
            to: l,
            body: Body::AppendEntriesResponse(AppendEntriesResponse {
                term: me.term,
                success,
                index,
                conflict_index,
            }),
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
        let snap = self.snapshot_meta();
        if prev_log_index > last {
            let m = reply(self, false, prev_log_index, last + 1);
            self.send(m, r);
            return;
        }
        // R-snap-7: below the snapshot everything is committed and matches.
        let local = self.term_at(prev_log_index);
        if prev_log_index >= snap.index && local != prev_log_term {
            // Start of the run of the conflicting term (terms are monotonic
            // in a log), looking only at indices whose term is known: at
            // the snapshot index when the run reaches back into it.
            let first = if snap.index > 0 && snap.term == local {
                snap.index
            } else {
                self.log
                    .iter()
                    .position(|e| e.term == local)
                    .map_or(snap.index.max(1), |p| snap.index + p as LogIndex + 1)
            };
            let m = reply(self, false, prev_log_index, first);
            self.send(m, r);
            return;
        }

        // Conflict rule, from the first index above the snapshot (R-snap-7).
        let n = entries.len() as LogIndex;
        if self.bug(ImplBug::TruncateOnMatch) {
            let base = prev_log_index.max(snap.index);
            let skip = (base - prev_log_index) as usize;
            if base < self.last_index() {
                self.truncate_log(base, r);
            }
            if entries.len() > skip {
                self.append_entries(entries[skip..].to_vec(), r);
            }
        } else {
            for (k, e) in entries.iter().enumerate() {
                let p = prev_log_index + k as LogIndex + 1;
                if p <= snap.index {
                    continue; // covered by the snapshot: committed, the same entry
                }
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
    pub(super) fn handle_append_entries_response(
        &mut self,
        j: NodeId,
        m: AppendEntriesResponse,
        r: &mut Ready,
    ) {
        let AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } = m;
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

    /// R-append-2: AppendEntries (or InstallSnapshot, R-snap-3) to every
    /// peer, in increasing order of id.
    pub(super) fn broadcast_append_entries(&self, r: &mut Ready) {
        for &j in &self.peers {
            r.messages.push(self.append_entries_for(j));
        }
    }

    /// The AppendEntries for peer `j` built from `next_index[j]` (R-append-2:
    /// at most `max_batch` entries), `prev_log_term` the snapshot's term at
    /// the snapshot index; R-snap-3: InstallSnapshot with the current
    /// snapshot instead when `next_index[j] <= snapshot_index` (the term of
    /// `prev_log_index` is compacted away). Used wherever the leader sends
    /// to a peer: Heartbeat, becoming leader (R-vote-4), after a rejection
    /// (R-append-7). Sending never moves `next_index`.
    pub(super) fn append_entries_for(&self, j: NodeId) -> Message {
        let next = self.next_index[&j].max(1);
        if let Some(snapshot) = &self.snapshot {
            if next <= snapshot.meta.index {
                return Message {
                    from: self.id,
                    to: j,
                    body: Body::InstallSnapshot(InstallSnapshot {
                        term: self.term,
                        snapshot: snapshot.clone(),
                    }),
                };
            }
        }
        let prev_log_index = next - 1;
        let start = (prev_log_index - self.snapshot_index()) as usize;
        let end = self.log.len().min(start.saturating_add(self.max_batch));
        let entries = if start < end {
            self.log[start..end].to_vec()
        } else {
            Vec::new()
        };
        Message {
            from: self.id,
            to: j,
            body: Body::AppendEntries(AppendEntries {
                term: self.term,
                prev_log_index,
                prev_log_term: self.term_at(prev_log_index),
                entries,
                leader_commit: self.commit_index,
            }),
        }
    }

    /// How far this leader counts itself for commit (R-persist-4): the
    /// durable prefix of its log (`stable_index`: the in-memory and the
    /// durable log agree up to it; a Snapshot step does not move it, the
    /// durable log being the same entries, and appends while a snapshot is
    /// pending do not raise it until the Persist), or, with the seeded bug
    /// `leader-counts-volatile-self`, its whole in-memory log.
    pub(super) fn self_match(&self) -> LogIndex {
        if self.bug(ImplBug::LeaderCountsVolatileSelf) {
            self.last_index()
        } else {
            self.stable_index
        }
    }

    /// §6 commit rule (R-commit-1): the largest N > commit_index with `log[N]` of the
    /// current term and a majority at or above N, this leader counting only
    /// for what is durable on it (R-persist-4). Only ever raises the commit
    /// index (R-commit-3).
    pub(super) fn advance_commit_index(&mut self, r: &mut Ready) {
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
