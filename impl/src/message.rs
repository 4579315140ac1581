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
    RequestVote {
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
    },
    RequestVoteResponse {
        term: Term,
        granted: bool,
    },
    AppendEntries {
        term: Term,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    },
    /// success: `index` = prev_log_index + entries.len(), `conflict_index` = 0;
    /// consistency rejection: `index` = the request's prev_log_index, `conflict_index` ≥ 1;
    /// stale-term rejection: both 0.
    AppendEntriesResponse {
        term: Term,
        success: bool,
        index: LogIndex,
        conflict_index: LogIndex,
    },
}

impl Body {
    pub fn term(&self) -> Term {
        match self {
            Body::RequestVote { term, .. }
            | Body::RequestVoteResponse { term, .. }
            | Body::AppendEntries { term, .. }
            | Body::AppendEntriesResponse { term, .. } => *term,
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
