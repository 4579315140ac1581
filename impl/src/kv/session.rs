//! Client sessions: what makes a retried write apply once (Raft
//! dissertation §6.3).
//!
//! A client registers through the log ([`crate::codec::Op::RegisterClient`]):
//! the index of that entry becomes its session id, so every id a registered
//! client can hold is at most the index that created it. A write names its
//! session and a sequence number; the table remembers, per session, the
//! highest sequence number applied and why it failed if it did. A write
//! whose number is not higher is a retry and is answered from the table.
//!
//! Sessions idle for more than [`SESSION_TTL_ENTRIES`] log entries are
//! trimmed (at every [`TRIM_EVERY`]-th index, so every replica trims at the
//! same point of the log and the replicas stay identical). A write of a
//! trimmed session is refused, never applied: its id is at most the current
//! index and not in the table, which no live session can be.
//!
//! Clients that do not register (raftkv before sessions were registered
//! picked a random 64-bit id) keep the old rule, so a log written by them
//! replays as it did: an unknown id *above* the current index cannot be a
//! registered one and opens an implicit session at its first write. Such
//! sessions are never trimmed.

use crate::types::LogIndex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Registered sessions idle for more log entries than this are trimmed.
pub const SESSION_TTL_ENTRIES: LogIndex = 100_000;
/// The session table is trimmed when an index that is a multiple of this applies.
pub const TRIM_EVERY: LogIndex = 1024;

/// One client's session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Highest write sequence number applied (0: none yet).
    pub seq: u64,
    /// Why that write failed, if it did (a retry gets the same answer).
    pub failure: Option<String>,
    /// Index of the last entry of this session that applied (its
    /// registration at first): what idleness is measured from.
    pub last_active: LogIndex,
    /// An implicit session of an unregistered client: never trimmed.
    pub implicit: bool,
}

/// What the table says about a write.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// A new write: apply it, then [`Sessions::record`].
    Apply,
    /// Already applied (or an abandoned older attempt): answer without applying.
    Duplicate { failure: Option<String> },
    /// The session is unknown and cannot be opened: refuse.
    Expired,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    table: BTreeMap<u64, Session>,
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Session> {
        self.table.get(&id)
    }

    /// A `RegisterClient` applied at `index`: session `index` opens.
    pub fn register(&mut self, index: LogIndex) -> u64 {
        self.table.insert(
            index,
            Session {
                seq: 0,
                failure: None,
                last_active: index,
                implicit: false,
            },
        );
        index
    }

    /// Whether the write `(id, seq)`, applying at `index`, is new.
    pub fn admit(&mut self, id: u64, seq: u64, index: LogIndex) -> Admission {
        let s = match self.table.entry(id) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(_) if id <= index => {
                return Admission::Expired
            }
            std::collections::btree_map::Entry::Vacant(v) => v.insert(Session {
                seq: 0,
                failure: None,
                last_active: index,
                implicit: true,
            }),
        };
        if seq <= s.seq {
            // A retry of the last write gets that write's answer; an older
            // attempt answers success (its answer was superseded).
            let failure = if seq == s.seq {
                s.failure.clone()
            } else {
                None
            };
            return Admission::Duplicate { failure };
        }
        Admission::Apply
    }

    /// The write `(id, seq)` applied at `index` (and failed with `failure`).
    pub fn record(&mut self, id: u64, seq: u64, index: LogIndex, failure: Option<String>) {
        if let Some(s) = self.table.get_mut(&id) {
            s.seq = seq;
            s.failure = failure;
            s.last_active = index;
        }
    }

    /// Trims registered sessions idle for more than `ttl` entries when
    /// `index` is a multiple of [`TRIM_EVERY`]; returns how many went.
    pub fn trim(&mut self, index: LogIndex, ttl: LogIndex) -> usize {
        if !index.is_multiple_of(TRIM_EVERY) {
            return 0;
        }
        let before = self.table.len();
        self.table
            .retain(|_, s| s.implicit || s.last_active.saturating_add(ttl) >= index);
        before - self.table.len()
    }
}
