//! Peer-to-peer messages (docs/protocol.md §2).

use crate::types::{Entry, LogIndex, NodeId, Snapshot, Term};
use serde::{Deserialize, Serialize};

/// A message in its envelope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    RequestVote(RequestVote),
    RequestVoteResponse(RequestVoteResponse),
    AppendEntries(AppendEntries),
    AppendEntriesResponse(AppendEntriesResponse),
    InstallSnapshot(InstallSnapshot),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVote {
    pub term: Term,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    pub term: Term,
    pub granted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntries {
    pub term: Term,
    pub prev_log_index: LogIndex,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: LogIndex,
}

/// success: `index` = prev_log_index + entries.len(), `conflict_index` = 0;
/// consistency rejection: `index` = the request's prev_log_index, `conflict_index` ≥ 1;
/// stale-term rejection: both 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    pub term: Term,
    pub success: bool,
    pub index: LogIndex,
    pub conflict_index: LogIndex,
}

/// The leader's snapshot for a follower behind it (docs/protocol.md
/// R-snap-3): `snapshot.meta` is `(last_included_index,
/// last_included_term)`, `snapshot.data` the state machine at that index
/// (the model's `values`). Not a dependent message (R-persist-2); it is
/// answered by an [`AppendEntriesResponse`] (R-snap-4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub term: Term,
    pub snapshot: Snapshot,
}

impl Body {
    /// R-persist-2: RequestVote, RequestVoteResponse and
    /// AppendEntriesResponse wait for the sender's disk; AppendEntries and
    /// InstallSnapshot do not (R-persist-3, R-snap-3).
    pub fn is_dependent(&self) -> bool {
        !matches!(self, Body::AppendEntries(_) | Body::InstallSnapshot(_))
    }

    pub fn term(&self) -> Term {
        match self {
            Body::RequestVote(RequestVote { term, .. })
            | Body::RequestVoteResponse(RequestVoteResponse { term, .. })
            | Body::AppendEntries(AppendEntries { term, .. })
            | Body::AppendEntriesResponse(AppendEntriesResponse { term, .. })
            | Body::InstallSnapshot(InstallSnapshot { term, .. }) => *term,
        }
    }
}

/// The id of a message in recorded steps (docs/trace-format.md): the
/// sender, the `seq` of the step that created it, and its position `k` in
/// that step's `sent` list; written `"<node>.<seq>.<k>"`. It travels with
/// the message (when the sender records) so the receiver's Deliver record
/// can name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MsgTag {
    pub node: NodeId,
    pub seq: u64,
    pub k: u32,
}

impl std::fmt::Display for MsgTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.node, self.seq, self.k)
    }
}
