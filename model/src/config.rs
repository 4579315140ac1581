//! Bounds of a check and the seeded bugs.

use crate::types::{Term, Value};
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

/// When a server's writes become durable (docs/protocol.md §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistMode {
    /// Every step is followed, within the same step, by `Persist` of every
    /// server it left with pending writes: nothing is pending between steps
    /// and `Persist` is never an action (the protocol before durability was
    /// modelled).
    Sync,
    /// `Persist(i)` is a step of its own: in-memory state runs ahead of the
    /// disk and dependent messages wait in the outbox (the protocol the
    /// implementation runs).
    #[default]
    Async,
}

impl PersistMode {
    pub fn name(self) -> &'static str {
        match self {
            PersistMode::Sync => "sync",
            PersistMode::Async => "async",
        }
    }
}

impl fmt::Display for PersistMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A deliberate protocol bug, to prove that the properties have teeth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// A server grants a second vote in a term it already voted in.
    VoteTwice,
    /// Votes are granted without the up-to-date log check. Named
    /// `vote-without-log-check`, as in raftkv's `ImplBug`; the earlier model
    /// name `no-log-check-on-vote` is still read (flags and trace files).
    #[serde(rename = "vote-without-log-check", alias = "no-log-check-on-vote")]
    NoLogCheckOnVote,
    /// A leader commits an entry of an earlier term by counting replicas (Figure 8).
    CommitOldTerm,
    /// `Persist` does not write `voted_for`: a restart forgets the vote.
    NoPersistVote,
    /// A follower truncates its log after prev_log_index even when entries match.
    TruncateOnMatch,
    /// The leader counts a quorum without a majority (n/2 instead of n/2+1).
    QuorumMinority,
    /// A success AppendEntriesResponse bypasses the outbox: the follower
    /// acknowledges entries before they are durable (breaks R-persist-2).
    AckBeforePersist,
    /// A granted RequestVoteResponse bypasses the outbox: the vote leaves
    /// before it is durable (breaks R-persist-2).
    VoteBeforePersist,
    /// The leader counts itself up to its in-memory last index, durable or
    /// not (breaks R-persist-4).
    LeaderCountsVolatileSelf,
    /// Snapshot(i) compacts to `last_index` instead of `commit_index`
    /// (breaks R-snap-2).
    SnapshotUncommitted,
    /// Installing a snapshot discards the whole log even when the entry at
    /// `last_included_index` matches (breaks R-snap-4's kept suffix).
    InstallTruncatesMatchingSuffix,
    /// A snapshot with `last_included_index <= commit_index` is installed
    /// anyway, setting `commit_index` to it (breaks R-snap-4).
    StaleSnapshotRollsBack,
}

impl Bug {
    pub const ALL: [Bug; 12] = [
        Bug::VoteTwice,
        Bug::NoLogCheckOnVote,
        Bug::CommitOldTerm,
        Bug::NoPersistVote,
        Bug::TruncateOnMatch,
        Bug::QuorumMinority,
        Bug::AckBeforePersist,
        Bug::VoteBeforePersist,
        Bug::LeaderCountsVolatileSelf,
        Bug::SnapshotUncommitted,
        Bug::InstallTruncatesMatchingSuffix,
        Bug::StaleSnapshotRollsBack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::VoteTwice => "vote-twice",
            Bug::NoLogCheckOnVote => "vote-without-log-check",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::NoPersistVote => "no-persist-vote",
            Bug::TruncateOnMatch => "truncate-on-match",
            Bug::QuorumMinority => "quorum-minority",
            Bug::AckBeforePersist => "ack-before-persist",
            Bug::VoteBeforePersist => "vote-before-persist",
            Bug::LeaderCountsVolatileSelf => "leader-counts-volatile-self",
            Bug::SnapshotUncommitted => "snapshot-uncommitted",
            Bug::InstallTruncatesMatchingSuffix => "install-truncates-matching-suffix",
            Bug::StaleSnapshotRollsBack => "stale-snapshot-rolls-back",
        }
    }
}

impl Bug {
    /// Earlier names of the bug, still accepted by `FromStr` (and by the
    /// trace reader): one name per bug across the tools, old ones as aliases.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Bug::NoLogCheckOnVote => &["no-log-check-on-vote"],
            _ => &[],
        }
    }

    /// One line per bug: its name, earlier names and what it breaks (for
    /// `--help`).
    pub fn help_list() -> String {
        let mut out = String::new();
        for b in Bug::ALL {
            let aliases = b.aliases();
            let alias = if aliases.is_empty() {
                String::new()
            } else {
                format!(" (also: {})", aliases.join(", "))
            };
            out.push_str(&format!("  {}{alias}: {}\n", b.name(), b.summary()));
        }
        out
    }

    /// What the bug does, in one line.
    pub fn summary(self) -> &'static str {
        match self {
            Bug::VoteTwice => "a server grants a second vote in a term it already voted in",
            Bug::NoLogCheckOnVote => "votes are granted without the up-to-date log check",
            Bug::CommitOldTerm => {
                "a leader commits an entry of an earlier term by counting replicas (Figure 8)"
            }
            Bug::NoPersistVote => "Persist does not write voted_for: a restart forgets the vote",
            Bug::TruncateOnMatch => {
                "a follower truncates its log after prev_log_index even when entries match"
            }
            Bug::QuorumMinority => "the leader counts a quorum without a majority (n/2)",
            Bug::AckBeforePersist => "a follower acknowledges entries before they are durable",
            Bug::VoteBeforePersist => "a granted vote leaves before it is durable",
            Bug::LeaderCountsVolatileSelf => "the leader counts its non-durable entries for commit",
            Bug::SnapshotUncommitted => {
                "a snapshot compacts to the last index, not the commit index"
            }
            Bug::InstallTruncatesMatchingSuffix => {
                "installing a snapshot discards a matching suffix of the log"
            }
            Bug::StaleSnapshotRollsBack => {
                "a snapshot not newer than the commit index is installed, rolling it back"
            }
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
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s || b.aliases().contains(&s))
            .ok_or_else(|| {
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
    pub max_term: Term,
    /// Total client requests over the whole run (values 1..=max_requests).
    pub max_requests: Value,
    /// An action whose sends would put more messages than this in flight is not enabled.
    /// 255 is no bound (scripts, recorded traces).
    pub max_inflight: u8,
    pub max_restarts: u8,
    pub max_partitions: u8,
    pub max_duplicates: u8,
    /// Snapshot steps over the whole run (R-snap-2); 255 is no bound (a
    /// recorded trace snapshots every N entries). Missing in traces before
    /// version 3: 0.
    #[serde(default)]
    pub max_snapshots: u8,
    pub network: NetworkKind,
    /// `sync` or `async` (docs/protocol.md §7). Missing in version 1 traces,
    /// which the trace reader then marks `sync`.
    #[serde(default)]
    pub persist: PersistMode,
    /// Most entries one AppendEntries carries (docs/protocol.md §4, the
    /// batch rule); `None` sends the whole suffix. Model checks leave it
    /// unset (their logs are a few entries long); validation of real nodes
    /// sets the implementation's batch size. Missing in older traces.
    #[serde(default)]
    pub max_batch: Option<u32>,
    pub bug: Option<Bug>,
}

/// Largest cluster the model supports: server sets are `u8` bit masks.
pub const MAX_SERVERS: u8 = 7;
/// Most client requests a check may bound (values are `u32`, and value sets
/// grow; beyond a handful the state space is out of reach anyway).
pub const MAX_REQUESTS: Value = 255;

impl Default for Config {
    fn default() -> Config {
        Config::default()
    }
}

impl Config {
    /// Default bounds of `raft-model check`: three servers, async
    /// durability (Persist is a step), a restart, a snapshot, message loss
    /// and reordering; no partition, no duplication. With Persist as a step
    /// of its own the earlier defaults (one duplicate) grew 3.3x to 30.7 M
    /// unique states, so duplication went (checked by `Config::ci()` and the
    /// `truncate-on-match` bounds). With a snapshot (issue 10) and the
    /// partition the check was 75.3 M unique states, 504 s and 1.29 GB on
    /// two loaded cores; without the partition it is 7.7 M unique states,
    /// 38.5 s and 168 MB (the earlier default, no snapshot and one
    /// partition, was 12.2 M unique). Since Snapshot takes any committed
    /// index (R-snap-2) it is 8.3 M unique, 40 s on two free cores. Message loss is unbounded, so a
    /// partition adds few server states that loss cannot reach; what only a
    /// partition shows, `MinorityNoCommit` and `LeaderDeposedByPartition`,
    /// is reported as not checked here and is checked by
    /// `raft-model check --max-partitions 1` (docs/checking.md, "Default
    /// bounds and snapshots").
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> Config {
        Config {
            servers: 3,
            max_term: 2,
            max_requests: 2,
            max_inflight: 2,
            max_restarts: 1,
            max_partitions: 0,
            max_duplicates: 0,
            max_snapshots: 1,
            network: NetworkKind::Unordered,
            persist: PersistMode::Async,
            max_batch: None,
            bug: None,
        }
    }

    /// Small bounds that finish in a few seconds: used by CI tests.
    pub fn ci() -> Config {
        Config {
            servers: 3,
            max_term: 2,
            max_requests: 1,
            max_inflight: 2,
            max_restarts: 1,
            max_partitions: 0,
            max_duplicates: 1,
            max_snapshots: 1,
            network: NetworkKind::Unordered,
            persist: PersistMode::Async,
            max_batch: None,
            bug: None,
        }
    }

    /// Bounds comparable to the usual TLC run of raft.tla: two terms, one
    /// value, one message in flight, no faults. Our Timeout and Heartbeat
    /// broadcast in one step and a step whose sends do not fit is not
    /// enabled, so with three servers `max_inflight` must be raised to 2 for
    /// anything to happen (raft.tla sends one RequestVote per step).
    pub fn tlc() -> Config {
        Config {
            servers: 3,
            max_term: 2,
            max_requests: 1,
            max_inflight: 1,
            max_restarts: 0,
            max_partitions: 0,
            max_duplicates: 0,
            max_snapshots: 0,
            network: NetworkKind::Unordered,
            persist: PersistMode::Async,
            max_batch: None,
            bug: None,
        }
    }

    /// The majority of the cluster: `servers / 2 + 1`.
    pub fn majority(&self) -> usize {
        usize::from(self.servers) / 2 + 1
    }

    /// The smallest `max_inflight` at which an election is possible with
    /// `servers` servers: a Timeout is enabled only if its RequestVotes to
    /// every peer fit (they wait in the outbox, which counts, until the
    /// candidate's Persist), and a winning vote only if the new leader's
    /// AppendEntries to every peer fit.
    pub fn election_inflight(servers: u8) -> u8 {
        servers.saturating_sub(1)
    }

    /// Why no leader can ever be elected at these bounds, naming the flag
    /// to raise; None if an election is possible as far as the bounds go.
    pub fn election_blocker(&self) -> Option<String> {
        let need = Config::election_inflight(self.servers);
        (self.max_inflight < need).then(|| {
            format!(
                "with {} servers a Timeout sends {need} RequestVotes and is enabled only if they \
                 all fit in --max-inflight {} (the network plus every outbox): raise \
                 --max-inflight to at least {need}",
                self.servers, self.max_inflight
            )
        })
    }

    /// Checks ranges and combinations, with a message that names the bound
    /// and its `raft-model check` flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers == 0 || self.servers > MAX_SERVERS {
            return Err(format!(
                "servers (--servers) must be between 1 and {MAX_SERVERS}, got {}",
                self.servers
            ));
        }
        if self.max_term == 0 {
            return Err(
                "max_term (--max-term) must be at least 1: no election can happen at 0".into(),
            );
        }
        if self.max_term == Term::MAX {
            return Err(format!(
                "max_term (--max-term) must be below {}, got {}",
                Term::MAX,
                self.max_term
            ));
        }
        if self.max_requests > MAX_REQUESTS {
            return Err(format!(
                "max_requests (--max-requests) must be at most {MAX_REQUESTS}, got {}",
                self.max_requests
            ));
        }
        if self.max_inflight == 0 && self.servers > 1 {
            return Err(format!(
                "max_inflight (--max-inflight) 0 with {} servers: no message could be sent; \
                 an election needs --max-inflight {} or more",
                self.servers,
                Config::election_inflight(self.servers).max(1)
            ));
        }
        if self.max_partitions > 0 && self.servers < 2 {
            return Err(format!(
                "partitions need at least 2 servers: with --servers {} pass --max-partitions 0 \
                 (max_partitions is {})",
                self.servers, self.max_partitions
            ));
        }
        Ok(())
    }
}

impl Bug {
    /// Bounds at which the default DFS with symmetry finds this bug quickly.
    pub fn default_config(self) -> Config {
        let base = Config {
            servers: 3,
            max_term: 2,
            max_requests: 0,
            max_inflight: 2,
            max_restarts: 0,
            max_partitions: 0,
            max_duplicates: 0,
            max_snapshots: 0,
            network: NetworkKind::Unordered,
            persist: PersistMode::Async,
            max_batch: None,
            bug: Some(self),
        };
        match self {
            Bug::VoteTwice => Config { ..base },
            Bug::NoLogCheckOnVote => Config {
                max_term: 3,
                max_requests: 1,
                ..base
            },
            // Figure 8 needs four terms with three servers: an old-term entry
            // committed in term 3, then a leader of term 4 that lacks it.
            Bug::CommitOldTerm => Config {
                max_term: 4,
                max_requests: 2,
                ..base
            },
            Bug::NoPersistVote => Config {
                max_restarts: 1,
                ..base
            },
            Bug::TruncateOnMatch => Config {
                max_term: 1,
                max_requests: 2,
                max_inflight: 3,
                max_duplicates: 1,
                ..base
            },
            Bug::QuorumMinority => Config {
                max_requests: 1,
                ..base
            },
            Bug::AckBeforePersist => Config {
                max_requests: 1,
                ..base
            },
            Bug::VoteBeforePersist => Config {
                max_restarts: 1,
                ..base
            },
            Bug::LeaderCountsVolatileSelf => Config {
                max_requests: 1,
                ..base
            },
            // An entry appended but not committed, then one Snapshot.
            Bug::SnapshotUncommitted => Config {
                max_term: 1,
                max_requests: 1,
                max_snapshots: 1,
                ..base
            },
            // Two entries sent in two AppendEntries (the first reaches a
            // majority and is committed and compacted, the second reaches the
            // follower that the leader then sends its snapshot): reordering
            // delivers that snapshot after the second entry.
            Bug::InstallTruncatesMatchingSuffix => Config {
                max_term: 1,
                max_requests: 2,
                max_inflight: 4,
                max_snapshots: 1,
                ..base
            },
            // A snapshot of the first entry delivered after the follower
            // learned that the second is committed.
            Bug::StaleSnapshotRollsBack => Config {
                max_term: 1,
                max_requests: 2,
                max_inflight: 3,
                max_snapshots: 1,
                ..base
            },
        }
    }
}
