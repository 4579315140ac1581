//! Durability (docs/protocol.md §7): Persist (R-persist-1, R-persist-4),
//! the outbox of dependent messages (R-persist-2, R-persist-3) and the log
//! writes each step hands to the caller (`Ready::log_ops`), with the
//! snapshot as part of what is pending (R-snap-1).

use super::{LogOp, RaftCore, Ready};
use crate::message::Message;
use crate::types::{Entry, LogIndex, Role};

impl RaftCore {
    /// Persist(i) (R-persist-1): the caller has written every write of the
    /// steps since the last Persist and fsynced once. The durable part
    /// becomes the in-memory state, the outbox leaves in send order (in
    /// `Ready::messages`), then a leader advances its commit index, now
    /// counting itself for its whole log (R-persist-4). A pending snapshot
    /// (R-snap-2, R-snap-4) is now the durable one: the caller saved it
    /// after the fsync of the log. A no-op (empty `Ready`) when nothing is
    /// pending.
    pub fn persist(&mut self) -> Ready {
        let mut r = Ready::default();
        if !self.has_pending_writes() {
            debug_assert!(self.outbox.is_empty(), "outbox without pending writes");
            return r;
        }
        self.durable_hard_state = self.hard_state();
        if self.frozen_durable_log.take().is_some() {
            self.durable_snapshot = self.snapshot.clone();
        }
        self.stable_index = self.last_index();
        self.durable_tail.clear();
        r.messages = std::mem::take(&mut self.outbox);
        if self.role == Role::Leader {
            self.advance_commit_index(&mut r);
        }
        r
    }

    /// R-persist-2 / R-persist-3: AppendEntries go to the network now; a
    /// dependent message waits in the outbox while anything is pending
    /// (including writes made earlier in this step).
    pub(super) fn send(&mut self, m: Message, r: &mut Ready) {
        let dependent = m.body.is_dependent();
        if dependent && self.has_pending_writes() {
            self.outbox.push(m.clone());
            r.outboxed.push(m);
        } else {
            debug_assert!(self.outbox.is_empty() || !dependent);
            r.messages.push(m);
        }
    }

    /// Keep the entries up to `last_index` (absolute, at least the snapshot
    /// index); the durable part remembers what it still holds beyond
    /// (`durable_tail`, or the frozen durable log while a snapshot is
    /// pending) until the next Persist.
    pub(super) fn truncate_log(&mut self, last_index: LogIndex, r: &mut Ready) {
        let si = self.snapshot_index();
        debug_assert!(last_index >= si, "truncation below the snapshot");
        let t = last_index.saturating_sub(si) as usize;
        if self.frozen_durable_log.is_some() {
            self.stable_index = self.stable_index.min(last_index);
            self.log.truncate(t);
            r.log_ops.push(LogOp::Truncate { last_index });
            return;
        }
        let stable = (self.stable_index - si) as usize;
        if t < stable {
            let mut tail = self.log[t..stable].to_vec();
            tail.append(&mut self.durable_tail);
            self.durable_tail = tail;
            self.stable_index = last_index;
        }
        self.log.truncate(t);
        r.log_ops.push(LogOp::Truncate { last_index });
    }

    pub(super) fn append_entries(&mut self, entries: Vec<Entry>, r: &mut Ready) {
        let first_index = self.last_index() + 1;
        self.log.extend(entries.iter().cloned());
        r.log_ops.push(LogOp::Append {
            first_index,
            entries,
        });
        // Keep `stable_index` the longest common prefix of the in-memory and
        // the durable log (only a seeded bug re-appends what it truncated).
        // While a snapshot is pending the durable log is frozen: nothing to do.
        let si = self.snapshot_index();
        while let Some(first) = self.durable_tail.first() {
            match self.log.get((self.stable_index - si) as usize) {
                Some(e) if e == first => {
                    self.durable_tail.remove(0);
                    self.stable_index += 1;
                }
                _ => break,
            }
        }
    }
}

impl RaftCore {
    /// Before the snapshot changes (R-snap-2, R-snap-4): keep the durable
    /// log as it is until the next Persist, since the in-memory log is about
    /// to lose the entries the new snapshot covers.
    pub(super) fn freeze_durable_log(&mut self) {
        if self.frozen_durable_log.is_none() {
            let d = self.durable_log();
            self.durable_tail.clear();
            self.frozen_durable_log = Some(d);
        }
    }
}
