//! Snapshots and log compaction (docs/protocol.md §8): the Snapshot step
//! (R-snap-2) and installing a leader's snapshot (R-snap-4). Sending it is
//! in `replication` (R-snap-3, `append_entries_for`), AppendEntries below a
//! snapshot too (R-snap-7); restart from a snapshot is [`RaftCore::new`]
//! (R-snap-5).

use super::{ImplBug, RaftCore, Ready, SnapshotRefused};
use crate::message::{AppendEntriesResponse, Body, InstallSnapshot, Message};
use crate::types::{LogIndex, NodeId, Role, Snapshot, SnapshotMeta};

impl RaftCore {
    /// Snapshot(i), R-snap-2: the state machine has applied every entry
    /// through `index` and serialised itself into `data`. Refused, changing
    /// nothing, unless `snapshot_index < index <= commit_index`. The
    /// snapshot takes the term of the entry at `index`; the entries up to
    /// `index` leave the in-memory log. Nothing is sent; the snapshot is
    /// pending (`Ready::snapshot`) until the next Persist.
    pub fn snapshot(
        &mut self,
        index: LogIndex,
        data: bytes::Bytes,
    ) -> Result<Ready, SnapshotRefused> {
        let refused = SnapshotRefused {
            index,
            snapshot_index: self.snapshot_index(),
            commit_index: self.commit_index,
        };
        if index <= self.snapshot_index() || index > self.commit_index {
            return Err(refused);
        }
        let index = if self.bug(ImplBug::SnapshotUncommitted) {
            self.last_index()
        } else {
            index
        };
        // Only a seeded bug truncates below the commit index, so the entry
        // is there; refuse rather than invent a term otherwise.
        let Some(term) = self.entry(index).map(|e| e.term) else {
            return Err(refused);
        };
        self.freeze_durable_log();
        let covered = (index - self.snapshot_index()) as usize;
        self.log.drain(..covered);
        let snapshot = Snapshot {
            meta: SnapshotMeta { index, term },
            data,
        };
        self.snapshot = Some(snapshot.clone());
        Ok(Ready {
            snapshot: Some(snapshot),
            ..Ready::default()
        })
    }

    /// Deliver(m) — InstallSnapshot from `l` (after the term rule),
    /// R-snap-4: a stale term gets the stale-term rejection; otherwise, as
    /// for AppendEntries of the current term, a candidate steps down and `l`
    /// is the known leader; a snapshot not above the commit index changes
    /// nothing (installing it would roll the state machine back); a newer
    /// one is installed, keeping the log after it when the entry at its
    /// index matches and emptying the log otherwise, with `commit_index`
    /// its index. Either way the reply is a success at the snapshot's
    /// index, a dependent message (R-persist-2): after an install it waits
    /// in the outbox for the snapshot to be durable.
    pub(super) fn handle_install_snapshot(&mut self, l: NodeId, m: InstallSnapshot, r: &mut Ready) {
        let InstallSnapshot { term, snapshot } = m;
        let reply = |me: &Self, success, index| Message {
            from: me.id,
            to: l,
            body: Body::AppendEntriesResponse(AppendEntriesResponse {
                term: me.term,
                success,
                index,
                conflict_index: 0,
            }),
        };
        if term < self.term {
            let m = reply(self, false, 0);
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
        let index = snapshot.meta.index;
        let newer = index > self.commit_index
            || (self.bug(ImplBug::StaleSnapshotRollsBack) && index > self.snapshot_index());
        if newer {
            self.install_snapshot(snapshot, r);
        }
        let m = reply(self, true, index);
        self.send(m, r);
    }

    /// R-snap-4, the install itself: a matching suffix is kept, otherwise
    /// the log is emptied (`LogOp::Truncate` to the snapshot's index when
    /// the log extends beyond it; saving the snapshot forgets the rest).
    fn install_snapshot(&mut self, snapshot: Snapshot, r: &mut Ready) {
        let SnapshotMeta { index, term } = snapshot.meta;
        let old_commit = self.commit_index;
        self.freeze_durable_log();
        let matches = index >= self.snapshot_index() && self.term_of(index) == Some(term);
        if matches && !self.bug(ImplBug::InstallTruncatesMatchingSuffix) {
            let covered = (index - self.snapshot_index()) as usize;
            self.log.drain(..covered);
        } else {
            if self.last_index() > index {
                self.truncate_log(index.max(self.snapshot_index()), r);
            }
            self.log.clear();
            // The durable log agrees with the new one only on what was
            // committed before.
            self.stable_index = self.stable_index.min(old_commit);
        }
        self.snapshot = Some(snapshot.clone());
        self.commit_index = index;
        if index != old_commit {
            r.committed = Some(index);
        }
        r.snapshot = Some(snapshot);
        r.restore_snapshot = true;
    }
}
