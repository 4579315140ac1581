//! Bounds of a check and the seeded bugs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the network orders messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// A multiset: any message in flight may be delivered next (reordering).
    Unordered,
    /// Per-link FIFO: only the oldest message of each (from, to) link may be
    /// delivered or duplicated; any message may be dropped.
    Ordered,
}

/// A deliberate protocol bug, to prove that the properties have teeth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// A server grants a second vote in a term it already voted in.
    VoteTwice,
    /// Votes are granted without the up-to-date log check.
    NoLogCheckOnVote,
    /// A leader commits an entry of an earlier term by counting replicas (Figure 8).
    CommitOldTerm,
    /// `voted_for` is not persisted: a restart forgets the vote.
    NoPersistVote,
    /// A follower truncates its log after prev_log_index even when entries match.
    TruncateOnMatch,
    /// The leader counts a quorum without a majority (n/2 instead of n/2+1).
    QuorumMinority,
}

impl Bug {
    pub const ALL: [Bug; 6] = [
        Bug::VoteTwice,
        Bug::NoLogCheckOnVote,
        Bug::CommitOldTerm,
        Bug::NoPersistVote,
        Bug::TruncateOnMatch,
        Bug::QuorumMinority,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::VoteTwice => "vote-twice",
            Bug::NoLogCheckOnVote => "no-log-check-on-vote",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::NoPersistVote => "no-persist-vote",
            Bug::TruncateOnMatch => "truncate-on-match",
            Bug::QuorumMinority => "quorum-minority",
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            let names: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
            format!("unknown bug '{s}'; known bugs: {}", names.join(", "))
        })
    }
}

/// The bounds of the state space. Serialised as the `bounds` object of a trace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    pub servers: u8,
    /// Timeout is disabled once a server's term reaches this.
    pub max_term: u8,
    /// Total client requests over the whole run (values 1..=max_requests).
    pub max_requests: u8,
    /// An action whose sends would put more messages than this in flight is not enabled.
    pub max_inflight: u8,
    pub max_restarts: u8,
    pub max_partitions: u8,
    pub max_duplicates: u8,
    pub network: NetworkKind,
    pub bug: Option<Bug>,
}
