//! The properties the checker verifies. Each is a plain function of the
//! model and a state, so tests can call it on hand-built states.
//!
//! Properties over history (who voted for whom, what was committed with
//! which quorum) read the ghost records of `State::ghost`; properties over a
//! step (a leader's log shrinking, a cut-off leader committing) read the
//! ghost flags that the step sets.

use crate::model::RaftModel;
use crate::state::{flags, members, values_prefix_eq, HeldLog, State};
use crate::types::{Index, Role, Value};
use smallvec::SmallVec;

/// A property's condition.
pub type Condition = fn(&RaftModel, &State) -> bool;

/// Names of the `always` properties, in report order.
pub const ALWAYS: &[&str] = &[
    "ElectionSafety",
    "LogMatching",
    "LeaderAppendOnly",
    "LeaderCompleteness",
    "StateMachineSafety",
    "MajorityOverlap",
    "MinorityNoCommit",
    "VoteOncePerTerm",
    "CommittedIsDurable",
    "SnapshotOnlyCommitted",
    "AppliedNeverGoesBack",
];

/// Names of the `sometimes` properties, in report order.
pub const SOMETIMES: &[&str] = &[
    "LeaderElected",
    "EntryCommitted",
    "LeaderDeposedByPartition",
    "CommittedSurvivesRestart",
    "UncommittedOverwritten",
    "LeaderCommitsBeforeOwnPersist",
    "InstallSnapshotInstalled",
];

/// Each property's meaning in one line, for the report and the diagram
/// (every name of `ALWAYS` and `SOMETIMES` has an entry: see the tests).
pub const MEANINGS: &[(&str, &str)] = &[
    ("ElectionSafety", "at most one leader is elected per term"),
    (
        "LogMatching",
        "two logs with an entry of the same index and term agree up to that index",
    ),
    (
        "LeaderAppendOnly",
        "a leader never overwrites or deletes entries of its own log",
    ),
    (
        "LeaderCompleteness",
        "every leader of a later term has every entry committed earlier",
    ),
    (
        "StateMachineSafety",
        "no two servers apply different entries at the same index",
    ),
    (
        "MajorityOverlap",
        "every later leader's voters include a holder of each committed entry",
    ),
    (
        "MinorityNoCommit",
        "a leader cut off in a minority never advances its commit index",
    ),
    (
        "VoteOncePerTerm",
        "no server grants its vote to two candidates in one term",
    ),
    (
        "CommittedIsDurable",
        "every committed entry is on the disk of a majority",
    ),
    (
        "SnapshotOnlyCommitted",
        "every index a snapshot covers, in memory or on disk, holds the committed value",
    ),
    (
        "AppliedNeverGoesBack",
        "while a server is up its applied prefix only grows",
    ),
    ("LeaderElected", "some server becomes leader"),
    ("EntryCommitted", "some server commits an entry"),
    (
        "LeaderDeposedByPartition",
        "a leader cut off in a minority is replaced by a later-term leader",
    ),
    (
        "CommittedSurvivesRestart",
        "a server that lost its commit index in a restart learns it again",
    ),
    (
        "UncommittedOverwritten",
        "an uncommitted entry is overwritten by a different one (Figure 8)",
    ),
    (
        "LeaderCommitsBeforeOwnPersist",
        "a leader commits an entry before its own fsync of it",
    ),
    (
        "InstallSnapshotInstalled",
        "a delivered InstallSnapshot is installed by its receiver",
    ),
];

/// The one-line meaning of property `name` (empty for an unknown name).
pub fn meaning(name: &str) -> &'static str {
    MEANINGS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, m)| m)
}

/// The safety properties `s` violates, in report order.
pub fn violated(m: &RaftModel, s: &State) -> Vec<&'static str> {
    SAFETY
        .iter()
        .filter(|(_, f)| !f(m, s))
        .map(|(n, _)| *n)
        .collect()
}

/// The `always` properties with their conditions (same order as `ALWAYS`).
pub const SAFETY: &[(&str, Condition)] = &[
    ("ElectionSafety", election_safety),
    ("LogMatching", log_matching),
    ("LeaderAppendOnly", leader_append_only),
    ("LeaderCompleteness", leader_completeness),
    ("StateMachineSafety", state_machine_safety),
    ("MajorityOverlap", majority_overlap),
    ("MinorityNoCommit", minority_no_commit),
    ("VoteOncePerTerm", vote_once_per_term),
    ("CommittedIsDurable", committed_is_durable),
    ("SnapshotOnlyCommitted", snapshot_only_committed),
    ("AppliedNeverGoesBack", applied_never_goes_back),
];

/// The `sometimes` properties with their conditions (same order as `SOMETIMES`).
pub const REACHABILITY: &[(&str, Condition)] = &[
    ("LeaderElected", leader_elected),
    ("EntryCommitted", entry_committed),
    ("LeaderDeposedByPartition", leader_deposed_by_partition),
    ("CommittedSurvivesRestart", committed_survives_restart),
    ("UncommittedOverwritten", uncommitted_overwritten),
    (
        "LeaderCommitsBeforeOwnPersist",
        leader_commits_before_own_persist,
    ),
    ("InstallSnapshotInstalled", install_snapshot_installed),
];

/// Why property `name` is not checked under `cfg`, or None when it is. A
/// property that cannot mean anything at these bounds is left out of the
/// check (and the report lists it as not checked) instead of passing:
/// - without partitions (`max_partitions` 0) no leader is ever cut off, so
///   `MinorityNoCommit` (its ghost flag is set only while a partition is
///   active) cannot fail and `LeaderDeposedByPartition` cannot be reached;
/// - without snapshots (`max_snapshots` 0) no InstallSnapshot is ever sent,
///   so `InstallSnapshotInstalled` cannot be reached;
/// - in sync mode a leader is always durable, so
///   `LeaderCommitsBeforeOwnPersist` is unreachable by construction.
pub fn not_checked_reason(name: &str, cfg: &crate::config::Config) -> Option<&'static str> {
    match name {
        "MinorityNoCommit" if cfg.max_partitions == 0 => Some(
            "--max-partitions 0: no leader is ever cut off in a minority, so the property \
             cannot fail (--max-partitions 1 checks it)",
        ),
        "LeaderDeposedByPartition" if cfg.max_partitions == 0 => Some(
            "--max-partitions 0: without a partition no leader can be deposed by one \
             (--max-partitions 1 checks it)",
        ),
        "InstallSnapshotInstalled" if cfg.max_snapshots == 0 => Some(
            "--max-snapshots 0: no snapshot is ever taken, so none is installed \
             (--max-snapshots 1 checks it)",
        ),
        "LeaderCommitsBeforeOwnPersist" if cfg.persist == crate::config::PersistMode::Sync => Some(
            "--persist sync: every step is durable at once, so a leader never commits \
             before its own fsync (--persist async checks it)",
        ),
        _ => None,
    }
}

/// Whether property `name` (safety or reachability) is checked under `cfg`
/// (see [`not_checked_reason`]).
pub fn applies(name: &str, cfg: &crate::config::Config) -> bool {
    not_checked_reason(name, cfg).is_none()
}

/// The properties not checked under `cfg` with the reason for each, in
/// report order (safety first).
pub fn not_checked(cfg: &crate::config::Config) -> Vec<(&'static str, &'static str)> {
    ALWAYS
        .iter()
        .chain(SOMETIMES)
        .filter_map(|&n| not_checked_reason(n, cfg).map(|r| (n, r)))
        .collect()
}

/// At most one leader per term, ever (ghost election records), and no two
/// current leaders share a term.
pub fn election_safety(_: &RaftModel, s: &State) -> bool {
    let elections = &s.ghost.elections;
    let history_ok = elections
        .windows(2)
        .all(|w| w[0].term != w[1].term || w[0].leader == w[1].leader);
    let leaders: Vec<_> = s
        .servers
        .iter()
        .filter(|srv| srv.role == Role::Leader)
        .map(|srv| srv.term)
        .collect();
    let current_ok = leaders
        .iter()
        .enumerate()
        .all(|(k, t)| !leaders[k + 1..].contains(t));
    history_ok && current_ok
}

/// If two logs have an entry with the same index and term, the logs are
/// identical up to that index. Read over `snapshot_values ++ log`
/// (R-snap-6): terms where both servers know them (at and after their
/// snapshots), values at every index up to the matching one.
pub fn log_matching(_: &RaftModel, s: &State) -> bool {
    for (k, a) in s.servers.iter().enumerate() {
        for b in &s.servers[k + 1..] {
            let common = a.last_index().min(b.last_index());
            let known = a.snapshot_index.max(b.snapshot_index).max(1);
            // The highest index where the terms agree decides.
            if let Some(p) = (known..=common)
                .rev()
                .find(|&p| a.term_at(p).is_some() && a.term_at(p) == b.term_at(p))
            {
                if !values_prefix_eq(a.value_parts(), b.value_parts(), p as usize) {
                    return false;
                }
            }
        }
    }
    true
}

/// A leader never overwrites or deletes entries of its log while it leads.
pub fn leader_append_only(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::VIOLATED_APPEND_ONLY == 0
}

/// An entry committed in term T is in the log of every leader of every term
/// after T (the paper's Leader Completeness; a stale leader of an earlier
/// term may legally lack it). Over snapshot and log (R-snap-6).
pub fn leader_completeness(_: &RaftModel, s: &State) -> bool {
    s.servers
        .iter()
        .filter(|srv| srv.role == Role::Leader)
        .all(|srv| {
            srv.held_log()
                .holds_all(s.ghost.commits.iter().filter(|c| c.term < srv.term))
        })
}

/// No two servers ever apply different entries at one index: committed
/// records agree, every server's committed prefix is in its log and agrees
/// with the records and with every other server's committed prefix, all
/// read over `snapshot_values ++ log` (R-snap-6).
pub fn state_machine_safety(_: &RaftModel, s: &State) -> bool {
    let commits = &s.ghost.commits;
    let records_agree = commits
        .windows(2)
        .all(|w| w[0].index != w[1].index || w[0].entry == w[1].entry);
    if !records_agree {
        return false;
    }
    for srv in &s.servers {
        if srv.commit_index > srv.last_index() {
            return false;
        }
        let committed = commits.iter().filter(|c| c.index <= srv.commit_index);
        if !srv.held_log().holds_all(committed) {
            return false;
        }
    }
    for (k, a) in s.servers.iter().enumerate() {
        for b in &s.servers[k + 1..] {
            let upto = a.commit_index.min(b.commit_index) as usize;
            if !values_prefix_eq(a.value_parts(), b.value_parts(), upto) {
                return false;
            }
        }
    }
    true
}

/// The vote quorum of every leader of a later term intersects the commit
/// quorum of every committed entry in a server that held the entry when it
/// voted. Checked at every step on the ghost records (a failure is kept as a
/// flag, because quorum records are dropped once no earlier-term commit is
/// possible).
pub fn majority_overlap(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::VIOLATED_MAJORITY_OVERLAP == 0 && quorums_overlap(s)
}

/// The record-level check of MajorityOverlap.
pub fn quorums_overlap(s: &State) -> bool {
    s.ghost.commits.iter().all(|c| {
        s.ghost.quorums.iter().filter(|q| q.term > c.term).all(|q| {
            members(c.quorum & q.voters).any(|v| q.held[usize::from(v)].contains(c.entry.value))
        })
    })
}

/// A leader cut off in a minority never advances its commit index on any
/// step but its own Persist: only there may it commit, by counting itself
/// at last, entries that a majority acknowledged before the cut
/// (R-persist-4).
pub fn minority_no_commit(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::VIOLATED_MINORITY_COMMIT == 0
}

/// No server grants votes to two different candidates in one term, across
/// restarts (ghost record of every vote that can still matter).
pub fn vote_once_per_term(_: &RaftModel, s: &State) -> bool {
    // Sorted by (term, voter, candidate): conflicting grants are adjacent.
    s.ghost.votes.windows(2).all(|w| {
        (w[0].term, w[0].voter) != (w[1].term, w[1].voter) || w[0].candidate == w[1].candidate
    })
}

/// Every committed entry (ghost commit records) is in the durable log of a
/// majority of servers: what a commit promises survives any set of
/// restarts of a minority (R-persist-2, R-persist-4).
pub fn committed_is_durable(m: &RaftModel, s: &State) -> bool {
    let majority = m.cfg.majority();
    let disks: SmallVec<[HeldLog; 5]> =
        s.servers.iter().map(|srv| srv.durable_held_log()).collect();
    s.ghost.commits.iter().all(|c| {
        disks
            .iter()
            .filter(|disk| disk.holds(c.index, &c.entry))
            .count()
            >= majority
    })
}

/// SnapshotOnlyCommitted (R-snap-6): every index a snapshot covers, in
/// memory or on disk, holds the value committed at that index (ghost commit
/// records: an index no leader committed fails too).
pub fn snapshot_only_committed(_: &RaftModel, s: &State) -> bool {
    // `commits` is sorted by index: one walk over it per snapshot (a
    // recorded trace's snapshots hold thousands of values).
    let covers = |n: Index, vals: &[Value]| {
        if vals.len() != n as usize {
            return false;
        }
        // The usual shape: one record per index from 1 on, so the records
        // of 1..=n are the first n (and the next is beyond n), checked and
        // compared in one pass; anything else (a second record at an
        // index, a value that differs) takes the general walk below.
        let commits = &s.ghost.commits;
        let first = &commits[..commits.len().min(vals.len())];
        if first.len() == vals.len()
            && commits.get(vals.len()).is_none_or(|c| c.index > n)
            && first
                .iter()
                .zip(vals)
                .zip(1..)
                .all(|((c, &v), i)| c.index == i && c.entry.value == v)
        {
            return true;
        }
        let mut commits = s.ghost.commits.iter().peekable();
        vals.iter().zip(1..).all(|(&v, index)| {
            while commits.next_if(|c| c.index < index).is_some() {}
            let mut at = commits.clone();
            while let Some(c) = at.next_if(|c| c.index == index) {
                if c.entry.value == v {
                    return true;
                }
            }
            false
        })
    };
    s.servers.iter().all(|srv| {
        // After a Persist the durable snapshot is the in-memory one (shared,
        // `Values::shares`): asked once.
        let durable_is_same = srv.durable_snapshot_index == srv.snapshot_index
            && srv.durable_snapshot_values.shares(&srv.snapshot_values);
        covers(srv.snapshot_index, &srv.snapshot_values)
            && (durable_is_same || covers(srv.durable_snapshot_index, &srv.durable_snapshot_values))
    })
}

/// AppliedNeverGoesBack (R-snap-6): while a server is up its applied prefix
/// `(snapshot_values ++ log)[..commit_index]` only grows. A step property:
/// the ghost flag set by the step that shrank or changed it.
pub fn applied_never_goes_back(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::VIOLATED_APPLIED_GOES_BACK == 0
}

pub fn leader_elected(_: &RaftModel, s: &State) -> bool {
    s.servers.iter().any(|srv| srv.role == Role::Leader)
}

pub fn entry_committed(_: &RaftModel, s: &State) -> bool {
    s.servers.iter().any(|srv| srv.commit_index > 0)
}

/// A partition is active, a leader is on its minority side, and a leader of
/// a later term has been elected on the majority side.
pub fn leader_deposed_by_partition(m: &RaftModel, s: &State) -> bool {
    if s.partition == 0 {
        return false;
    }
    let majority = m.cfg.majority();
    let in_group = |i: usize| s.partition & crate::state::bit(i as u8) != 0;
    let group_size = s.partition.count_ones() as usize;
    let side_size = |i: usize| {
        if in_group(i) {
            group_size
        } else {
            s.n() - group_size
        }
    };
    s.servers.iter().enumerate().any(|(a, old)| {
        old.role == Role::Leader
            && side_size(a) < majority
            && s.servers.iter().enumerate().any(|(b, new)| {
                new.role == Role::Leader
                    && in_group(a) != in_group(b)
                    && side_size(b) >= majority
                    && new.term > old.term
            })
    })
}

/// A server that lost its commit index in a restart has just learned a
/// commit index at least as high again.
pub fn committed_survives_restart(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::EVENT_COMMIT_SURVIVED != 0
}

/// The last step overwrote an entry of some log with a different entry at
/// the same index (the Figure 8 shape).
pub fn uncommitted_overwritten(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::EVENT_OVERWRITTEN != 0
}

/// The last step committed an entry that was not yet durable on the leader
/// itself: the leader replicates before its own fsync (R-persist-3, Raft
/// dissertation §10.2.1) and the followers' acknowledgements alone made the
/// quorum.
pub fn leader_commits_before_own_persist(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::EVENT_COMMIT_BEFORE_OWN_PERSIST != 0
}

/// The last step delivered an InstallSnapshot that its receiver installed
/// (R-snap-4). Only reachable with `max_snapshots` >= 1 (see `applies`).
pub fn install_snapshot_installed(_: &RaftModel, s: &State) -> bool {
    s.ghost.flags & flags::EVENT_SNAPSHOT_INSTALLED != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_has_a_one_line_meaning() {
        for name in ALWAYS.iter().chain(SOMETIMES) {
            let m = meaning(name);
            assert!(!m.is_empty() && !m.contains('\n'), "{name}: {m:?}");
        }
        assert_eq!(MEANINGS.len(), ALWAYS.len() + SOMETIMES.len());
        assert_eq!(meaning("NoSuchProperty"), "");
    }
}
