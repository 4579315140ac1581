//! Snapshots and log compaction (docs/protocol.md §8): Snapshot(i)
//! (R-snap-2), the InstallSnapshot a leader sends instead of AppendEntries
//! (R-snap-3) and its delivery (R-snap-4). Restart from a snapshot
//! (R-snap-5) is in durability.rs, AppendEntries below a follower's
//! snapshot (R-snap-7) in replication.rs.

use super::RaftModel;
use crate::config::Bug;
use crate::state::{flags, State};
use crate::types::{AppendEntriesResponse, Body, InstallSnapshot, Message, Role, ServerId};

impl RaftModel {
    /// The highest index Snapshot(i) may compact to: the commit index
    /// (R-snap-2), or the last index with the snapshot-uncommitted bug.
    pub(super) fn snapshot_target(&self, s: &State, i: ServerId) -> u32 {
        let srv = &s.servers[usize::from(i)];
        if self.has_bug(Bug::SnapshotUncommitted) {
            srv.last_index()
        } else {
            srv.commit_index
        }
    }

    /// Snapshot(i, index), R-snap-2: the state machine has applied through
    /// `index` (enabled for `snapshot_index < index <= commit_index`) and
    /// the log is compacted through it. The entries it now covers move from
    /// `log` into `snapshot_values`; `snapshot_term` is the term of the last
    /// of them. Nothing is sent; the snapshot is pending until the next
    /// Persist.
    pub fn snapshot(&self, s: &mut State, i: ServerId, target: u32) {
        let srv = &mut s.servers[usize::from(i)];
        if target > srv.snapshot_index {
            let k = ((target - srv.snapshot_index) as usize).min(srv.log.len());
            let term = srv.log[k - 1].term;
            srv.snapshot_values = srv
                .snapshot_values
                .extended(srv.log.drain(..k).map(|e| e.value));
            srv.snapshot_index += k as u32;
            srv.snapshot_term = term;
        }
        s.snapshots = s.snapshots.saturating_add(1);
    }

    /// R-snap-3: the InstallSnapshot that leader `i` sends `j` instead of
    /// AppendEntries when `next_index[j] <= snapshot_index` (the term of
    /// `prev_log_index` is compacted away): its whole snapshot.
    pub(super) fn install_snapshot_for(&self, s: &State, i: ServerId, j: ServerId) -> Message {
        let l = &s.servers[usize::from(i)];
        Message {
            from: i,
            to: j,
            body: Body::InstallSnapshot(InstallSnapshot {
                term: l.term,
                last_included_index: l.snapshot_index,
                last_included_term: l.snapshot_term,
                values: l.snapshot_values.clone(),
            }),
        }
    }

    /// Deliver(m) — InstallSnapshot from `l` to `i`, R-snap-4: a stale term
    /// is rejected as for AppendEntries; otherwise the term rule, a
    /// candidate becomes follower, and a snapshot newer than the commit
    /// index is installed (a matching suffix of the log is kept). The
    /// answer is a success AppendEntriesResponse for `last_included_index`,
    /// dependent (R-persist-2): after an install it waits for Persist.
    pub fn handle_install_snapshot(
        &self,
        s: &mut State,
        i: ServerId,
        l: ServerId,
        m: &InstallSnapshot,
    ) {
        let InstallSnapshot {
            term,
            last_included_index: lii,
            last_included_term: lit,
            ref values,
        } = *m;
        let reply = |s: &mut State, term, success: bool, index| {
            self.send_dependent(
                s,
                Message {
                    from: i,
                    to: l,
                    body: Body::AppendEntriesResponse(AppendEntriesResponse {
                        term,
                        success,
                        index,
                        conflict_index: 0,
                    }),
                },
                false,
            )
        };
        if term < s.servers[usize::from(i)].term {
            let own = s.servers[usize::from(i)].term;
            reply(s, own, false, 0);
            return;
        }
        self.term_rule(s, i, term);
        let srv = &mut s.servers[usize::from(i)];
        if srv.role == Role::Candidate {
            srv.become_follower();
        }
        let newer = lii > srv.commit_index;
        if newer || self.has_bug(Bug::StaleSnapshotRollsBack) {
            let keep_suffix = lii >= srv.snapshot_index
                && srv.term_at(lii) == Some(lit)
                && !self.has_bug(Bug::InstallTruncatesMatchingSuffix);
            if keep_suffix {
                let k = ((lii - srv.snapshot_index) as usize).min(srv.log.len());
                srv.log.drain(..k);
            } else {
                srv.log.clear();
            }
            srv.snapshot_index = lii;
            srv.snapshot_term = lit;
            srv.snapshot_values = values.clone();
            srv.commit_index = lii;
            s.ghost.flags |= flags::EVENT_SNAPSHOT_INSTALLED;
        }
        reply(s, term, true, lii);
    }
}
