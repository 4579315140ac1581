//! Seeded implementation bugs: deliberate protocol violations that the
//! conformance harness must catch. The enum always exists (so tools can parse
//! and list the names), but the core honours it only when the crate is built
//! with the `seeded-bugs` feature.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImplBug {
    /// Commit by counting replicas without the current-term check (Figure 8).
    CommitOldTerm,
    /// A granted vote is not made durable: a restart forgets it.
    NoPersistVote,
    /// Truncate the log after `prev_log_index` even when the entries match.
    TruncateOnMatch,
    /// A leader takes a stale AppendEntries response at face value.
    AcceptStaleResponse,
    /// Grant votes without the log up-to-date check.
    VoteWithoutLogCheck,
    /// A success AppendEntriesResponse bypasses the outbox: the follower
    /// acknowledges entries before they are durable (breaks R-persist-2).
    AckBeforePersist,
    /// A granted RequestVoteResponse bypasses the outbox: the vote leaves
    /// before it is durable (breaks R-persist-2).
    VoteBeforePersist,
    /// The leader counts itself for commit up to its in-memory last index,
    /// durable or not (breaks R-persist-4).
    LeaderCountsVolatileSelf,
    /// The Snapshot step compacts up to `last_index` instead of the
    /// requested (applied, committed) index: the snapshot covers entries
    /// that are not committed (breaks R-snap-2).
    SnapshotUncommitted,
    /// Installing a snapshot empties the log even when the entry at the
    /// snapshot's index matches (breaks R-snap-4: the suffix may hold
    /// entries a majority acknowledged).
    InstallTruncatesMatchingSuffix,
    /// A snapshot not newer than the commit index is installed anyway
    /// (when it is above the snapshot index), setting the commit index back
    /// to it (breaks R-snap-4 and R-commit-3).
    StaleSnapshotRollsBack,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown seeded bug {found:?}; known bugs: {known}")]
pub struct UnknownBug {
    pub found: String,
    pub known: String,
}

impl ImplBug {
    pub const ALL: [ImplBug; 11] = [
        ImplBug::CommitOldTerm,
        ImplBug::NoPersistVote,
        ImplBug::TruncateOnMatch,
        ImplBug::AcceptStaleResponse,
        ImplBug::VoteWithoutLogCheck,
        ImplBug::AckBeforePersist,
        ImplBug::VoteBeforePersist,
        ImplBug::LeaderCountsVolatileSelf,
        ImplBug::SnapshotUncommitted,
        ImplBug::InstallTruncatesMatchingSuffix,
        ImplBug::StaleSnapshotRollsBack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ImplBug::CommitOldTerm => "commit-old-term",
            ImplBug::NoPersistVote => "no-persist-vote",
            ImplBug::TruncateOnMatch => "truncate-on-match",
            ImplBug::AcceptStaleResponse => "accept-stale-response",
            ImplBug::VoteWithoutLogCheck => "vote-without-log-check",
            ImplBug::AckBeforePersist => "ack-before-persist",
            ImplBug::VoteBeforePersist => "vote-before-persist",
            ImplBug::LeaderCountsVolatileSelf => "leader-counts-volatile-self",
            ImplBug::SnapshotUncommitted => "snapshot-uncommitted",
            ImplBug::InstallTruncatesMatchingSuffix => "install-truncates-matching-suffix",
            ImplBug::StaleSnapshotRollsBack => "stale-snapshot-rolls-back",
        }
    }

    /// Earlier names, still accepted by `FromStr` (the model's name for the
    /// same bug before the tools agreed on one).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            ImplBug::VoteWithoutLogCheck => &["no-log-check-on-vote"],
            _ => &[],
        }
    }

    /// Whether this build honours seeded bugs at all.
    pub const fn enabled_in_build() -> bool {
        cfg!(feature = "seeded-bugs")
    }
}

impl fmt::Display for ImplBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ImplBug {
    type Err = UnknownBug;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImplBug::ALL
            .into_iter()
            .find(|b| b.name() == s || b.aliases().contains(&s))
            .ok_or_else(|| UnknownBug {
                found: s.to_string(),
                known: ImplBug::ALL.map(|b| b.name()).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in ImplBug::ALL {
            assert_eq!(b.name().parse::<ImplBug>().unwrap(), b);
        }
        let err = "nope".parse::<ImplBug>().unwrap_err();
        assert!(err.to_string().contains("commit-old-term"));
    }
}
