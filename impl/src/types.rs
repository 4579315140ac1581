//! The vocabulary of the protocol as the implementation names it.
//!
//! Deliberately independent of `raft-model`: the two crates are two
//! descriptions of one protocol (docs/protocol.md), bridged by `conformance/`.

use crate::message::Message;
use serde::{Deserialize, Serialize};

/// A node's identity, `1..=n` in a cluster of `n` nodes.
pub type NodeId = u64;
pub type Term = u64;
/// A log index; the first entry is at 1, index 0 is the empty sentinel.
pub type LogIndex = u64;

/// One log entry: the term it was created in and an opaque command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub command: Vec<u8>,
}

/// The index and term of the last entry a snapshot covers
/// (docs/protocol.md R-snap-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
}

/// A snapshot: what it covers and the state machine's serialised state at
/// that index. `data` is opaque to the core, the storage and the transport
/// (the KV store's own versioned encoding); `Bytes` so that the core can put
/// it into messages and its status without copying it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: bytes::Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

/// The abstract state of one node (docs/protocol.md §1): what conformance
/// compares with the model after every step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub role: Role,
    /// The snapshot in memory (R-snap-1); `log` holds the entries after it.
    #[serde(default)]
    pub snapshot: Option<Snapshot>,
    /// The entries after `snapshot` (all of them without a snapshot).
    pub log: Vec<Entry>,
    pub commit_index: LogIndex,
    /// Sorted; empty unless candidate.
    pub votes_granted: Vec<NodeId>,
    /// Leader only: `(peer, next_index)` for every other node, sorted by peer.
    pub next_index: Vec<(NodeId, LogIndex)>,
    /// Leader only: `(peer, match_index)` for every other node, sorted by peer.
    pub match_index: Vec<(NodeId, LogIndex)>,
    /// The leader this node last heard from in its current term (not compared).
    pub leader_hint: Option<NodeId>,
    /// The hard state on disk (docs/protocol.md §1, durable part).
    pub durable_term: Term,
    pub durable_voted_for: Option<NodeId>,
    /// The snapshot on disk (R-snap-1): what a Restart recovers with
    /// `durable_log`.
    #[serde(default)]
    pub durable_snapshot: Option<Snapshot>,
    /// The log on disk after `durable_snapshot`: what a Restart recovers.
    pub durable_log: Vec<Entry>,
    /// Dependent messages waiting for the next Persist, in send order (§7).
    pub outbox: Vec<Message>,
}

impl Status {
    /// The index of the in-memory snapshot, 0 without one.
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    /// `last_index` of R-snap-1: the snapshot index plus the entries after it.
    pub fn last_index(&self) -> LogIndex {
        self.snapshot_index() + self.log.len() as LogIndex
    }
}
