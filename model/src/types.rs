//! The protocol's vocabulary as the model names it (docs/protocol.md §2,
//! docs/trace-format.md). These types are both the model's internal state
//! and its serialised trace form, so a trace needs no conversion layer.
//!
//! Terms, indexes and values are `u32`: wide enough for traces recorded from
//! real clusters (`raft-conform validate --trace`), where thousands of
//! client commands and log entries occur. Measured against `u8` on the
//! checker's hot path in docs/measurements.md ("Widths of the model's integers").

use serde::{Deserialize, Serialize};

pub type ServerId = u8;
pub type Term = u32;
/// A log index: 1-based, 0 is the empty sentinel.
pub type Index = u32;
/// A client value; the n-th client request carries value n.
pub type Value = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Message {
    pub from: ServerId,
    pub to: ServerId,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Body {
    RequestVote(RequestVote),
    RequestVoteResponse(RequestVoteResponse),
    AppendEntries(AppendEntries),
    AppendEntriesResponse(AppendEntriesResponse),
    InstallSnapshot(InstallSnapshot),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestVote {
    pub term: Term,
    pub last_log_index: Index,
    pub last_log_term: Term,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    pub term: Term,
    pub granted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppendEntries {
    pub term: Term,
    pub prev_log_index: Index,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: Index,
}

/// success: `index` = prev_log_index + len(entries), `conflict_index` = 0;
/// consistency rejection: `index` = the request's prev_log_index,
/// `conflict_index` >= 1; stale-term rejection: both 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    pub term: Term,
    pub success: bool,
    pub index: Index,
    pub conflict_index: Index,
}

/// R-snap-3: a leader's snapshot, sent instead of AppendEntries when the
/// entries a follower needs are compacted away. `values` are the values of
/// entries `1..=last_included_index` in order (the model's state machine).
/// Answered by an AppendEntriesResponse (R-snap-4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub term: Term,
    pub last_included_index: Index,
    pub last_included_term: Term,
    pub values: Vec<Value>,
}

impl Body {
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

/// One event of docs/protocol.md §4: the model's actions and the conformance
/// harness's steps. `Persist` is docs/protocol.md §4 Persist / §7: one
/// fsync of every pending write, then the outbox enters the network.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Action {
    Timeout {
        server: ServerId,
    },
    Heartbeat {
        server: ServerId,
    },
    ClientRequest {
        server: ServerId,
        value: Value,
    },
    Deliver {
        message: Message,
    },
    Drop {
        message: Message,
    },
    Duplicate {
        message: Message,
    },
    Persist {
        server: ServerId,
    },
    Restart {
        server: ServerId,
    },
    /// R-snap-2: the state machine has applied through `index` (above the
    /// snapshot index, at most the commit index) and the log is compacted
    /// through it.
    Snapshot {
        server: ServerId,
        index: Index,
    },
    Partition {
        group: Vec<ServerId>,
    },
    Heal,
}
