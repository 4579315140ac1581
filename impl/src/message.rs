//! Peer-to-peer messages (docs/protocol.md §2).

use crate::types::{Entry, LogIndex, NodeId, Term};
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

impl Body {
    pub fn term(&self) -> Term {
        match self {
            Body::RequestVote(RequestVote { term, .. })
            | Body::RequestVoteResponse(RequestVoteResponse { term, .. })
            | Body::AppendEntries(AppendEntries { term, .. })
            | Body::AppendEntriesResponse(AppendEntriesResponse { term, .. }) => *term,
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
