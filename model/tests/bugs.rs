//! The properties have teeth: the correct model passes a complete search,
//! and every seeded bug is caught by the property it breaks first.
//!
//! Each search is DFS with symmetry on two threads, as `raft-model check`
//! runs it. Speed is not asserted here (see `raft-model bench`).

use raft_model::config::{Bug, Config, PersistMode};
use raft_model::properties::{self, ALWAYS, SOMETIMES};
use raft_model::RaftModel;
use stateright::{Checker, HasDiscoveries, Model};

fn discovered(checker: &impl Checker<RaftModel>, names: &[&'static str]) -> Vec<&'static str> {
    names
        .iter()
        .copied()
        .filter(|n| checker.discovery(n).is_some())
        .collect()
}

#[test]
fn correct_model_passes_a_complete_search_at_ci_bounds() {
    let cfg = Config::ci();
    cfg.validate().unwrap();
    let checker = RaftModel::new(cfg)
        .checker()
        .threads(2)
        .symmetry()
        .spawn_dfs()
        .join();
    assert!(checker.is_done());
    assert!(
        checker.unique_state_count() > 10_000,
        "not a trivial search"
    );
    assert_eq!(discovered(&checker, ALWAYS), Vec::<&str>::new());
    // Not vacuous: what the CI bounds leave room for is reached.
    let reached = discovered(&checker, SOMETIMES);
    for name in [
        "LeaderElected",
        "EntryCommitted",
        "CommittedSurvivesRestart",
        "InstallSnapshotInstalled",
    ] {
        assert!(reached.contains(&name), "{name} not reached: {reached:?}");
    }
}

/// A complete search that must hold every safety property and reach `want`.
fn complete_search_reaches(cfg: Config, want: &[&str]) {
    let model = RaftModel::new(cfg.clone());
    let checker = RaftModel::new(cfg.clone())
        .checker()
        .threads(2)
        .symmetry()
        .spawn_dfs()
        .join();
    assert!(checker.is_done());
    assert_eq!(discovered(&checker, ALWAYS), Vec::<&str>::new(), "{cfg:?}");
    let reached = discovered(&checker, SOMETIMES);
    for name in want {
        assert!(reached.contains(name), "{name} not reached: {cfg:?}");
    }
    // Each example really ends in a state where its property holds.
    for p in model.properties() {
        if let Some(path) = checker.discovery(p.name) {
            if SOMETIMES.contains(&p.name) {
                assert!((p.condition)(&model, path.last_state()), "{}", p.name);
            }
        }
    }
}

#[test]
fn every_reachability_property_is_reached() {
    // Two small profiles of the default bounds, each searched completely.
    // Without snapshots (the profiles predate them and stay cheap); the
    // snapshot example is reached at the CI bounds (third search).
    let base = Config {
        max_duplicates: 0,
        max_snapshots: 0,
        ..Config::default()
    };
    complete_search_reaches(
        Config {
            max_requests: 1,
            max_restarts: 0,
            // The default has none since snapshots (issue 10): the partition
            // example needs one.
            max_partitions: 1,
            ..base.clone()
        },
        &[
            "LeaderElected",
            "EntryCommitted",
            "LeaderDeposedByPartition",
        ],
    );
    complete_search_reaches(
        Config {
            max_partitions: 0,
            ..base
        },
        &[
            "LeaderElected",
            "EntryCommitted",
            "CommittedSurvivesRestart",
            "UncommittedOverwritten",
            "LeaderCommitsBeforeOwnPersist",
        ],
    );
    complete_search_reaches(
        Config::ci(),
        &[
            "LeaderElected",
            "EntryCommitted",
            "InstallSnapshotInstalled",
        ],
    );
}

/// The property each bug breaks first (violating states are terminal, so a
/// later consequence such as ElectionSafety after a double vote is never
/// reached).
fn expected(bug: Bug) -> &'static str {
    match bug {
        Bug::VoteTwice => "VoteOncePerTerm",
        Bug::NoLogCheckOnVote => "LeaderCompleteness",
        Bug::CommitOldTerm => "LeaderCompleteness",
        Bug::NoPersistVote => "VoteOncePerTerm",
        Bug::TruncateOnMatch => "StateMachineSafety",
        Bug::QuorumMinority => "MajorityOverlap",
        Bug::AckBeforePersist => "CommittedIsDurable",
        Bug::VoteBeforePersist => "VoteOncePerTerm",
        Bug::LeaderCountsVolatileSelf => "CommittedIsDurable",
        Bug::SnapshotUncommitted => "SnapshotOnlyCommitted",
        // The follower's install drops an entry it acknowledged; once that
        // is persisted the entry is on the disk of a minority only.
        Bug::InstallTruncatesMatchingSuffix => "CommittedIsDurable",
        Bug::StaleSnapshotRollsBack => "AppliedNeverGoesBack",
    }
}

fn assert_caught(bug: Bug) {
    assert_caught_with(bug, bug.default_config());
}

fn assert_caught_with(bug: Bug, cfg: Config) {
    assert_eq!(cfg.bug, Some(bug));
    cfg.validate().unwrap();
    let want = expected(bug);
    // The property that catches it is checked at these bounds (a bug caught
    // by MinorityNoCommit needs its own max_partitions >= 1).
    assert!(
        properties::applies(want, &cfg),
        "{bug}: {want} is not checked at {cfg:?}"
    );
    let model = RaftModel::new(cfg.clone());
    let checker = RaftModel::new(cfg)
        .checker()
        .threads(2)
        .symmetry()
        .finish_when(HasDiscoveries::AnyOf([want].into_iter().collect()))
        .spawn_dfs()
        .join();
    let path = checker
        .discovery(want)
        .unwrap_or_else(|| panic!("{bug}: {want} not violated"));
    // The counterexample is real: replaying its actions from the initial
    // state ends in a state that violates the property.
    let last = path.last_state();
    let property = model
        .properties()
        .into_iter()
        .find(|p| p.name == want)
        .unwrap();
    assert!(!(property.condition)(&model, last), "{bug}");
    let replayed = path
        .clone()
        .into_actions()
        .into_iter()
        .try_fold(model.init_states().remove(0), |s, a| {
            model.next_state(&s, a)
        })
        .expect("every step of the counterexample is enabled");
    assert_eq!(&replayed, last);
}

#[test]
fn vote_twice_is_caught() {
    assert_caught(Bug::VoteTwice);
}

#[test]
fn no_log_check_on_vote_is_caught() {
    assert_caught(Bug::NoLogCheckOnVote);
}

#[test]
fn commit_old_term_is_caught() {
    assert_caught(Bug::CommitOldTerm);
}

#[test]
fn no_persist_vote_is_caught() {
    assert_caught(Bug::NoPersistVote);
}

#[test]
fn truncate_on_match_is_caught() {
    assert_caught(Bug::TruncateOnMatch);
}

#[test]
fn quorum_minority_is_caught() {
    assert_caught(Bug::QuorumMinority);
}

#[test]
fn ack_before_persist_is_caught() {
    assert_caught(Bug::AckBeforePersist);
}

#[test]
fn vote_before_persist_is_caught() {
    assert_caught(Bug::VoteBeforePersist);
}

#[test]
fn leader_counts_volatile_self_is_caught() {
    assert_caught(Bug::LeaderCountsVolatileSelf);
}

#[test]
fn snapshot_uncommitted_is_caught() {
    assert_caught(Bug::SnapshotUncommitted);
}

#[test]
fn install_truncates_matching_suffix_is_caught() {
    assert_caught(Bug::InstallTruncatesMatchingSuffix);
}

#[test]
fn stale_snapshot_rolls_back_is_caught() {
    assert_caught(Bug::StaleSnapshotRollsBack);
}

/// The seeded bugs of the protocol before durability was modelled are
/// still caught, by the same property, when every step is durable at once.
#[test]
fn the_earlier_bugs_are_caught_in_sync_mode_too() {
    for bug in [
        Bug::VoteTwice,
        Bug::NoLogCheckOnVote,
        Bug::NoPersistVote,
        Bug::TruncateOnMatch,
        Bug::QuorumMinority,
    ] {
        assert_caught_with(
            bug,
            Config {
                persist: PersistMode::Sync,
                ..bug.default_config()
            },
        );
    }
}

/// `bug`'s own bounds, checked exhaustively without it: every safety
/// property holds (the bug, not the bounds, makes a property fail).
fn bounds_hold_without(bug: Bug) {
    let cfg = Config {
        bug: None,
        ..bug.default_config()
    };
    let checker = RaftModel::new(cfg)
        .checker()
        .threads(2)
        .symmetry()
        .spawn_dfs()
        .join();
    assert!(checker.is_done());
    assert_eq!(
        discovered(&checker, ALWAYS),
        Vec::<&str>::new(),
        "{bug} bounds"
    );
}

/// The two deep snapshot bugs need 2 requests and 3-4 messages in flight
/// with a snapshot: an exhaustive check of those bounds is minutes on 2
/// cores, too long for CI. `cargo test --release -p raft-model --test bugs
/// -- --ignored` runs it.
#[test]
#[ignore]
fn the_same_bounds_without_the_bug_hold_for_the_deep_snapshot_bugs() {
    for bug in [
        Bug::InstallTruncatesMatchingSuffix,
        Bug::StaleSnapshotRollsBack,
    ] {
        bounds_hold_without(bug);
    }
}

#[test]
fn the_same_bounds_without_the_bug_hold_for_the_cheap_bugs() {
    // The bug, not the bounds, makes the property fail.
    for bug in [
        Bug::VoteTwice,
        Bug::NoPersistVote,
        Bug::QuorumMinority,
        Bug::TruncateOnMatch,
        Bug::AckBeforePersist,
        Bug::VoteBeforePersist,
        Bug::LeaderCountsVolatileSelf,
        Bug::SnapshotUncommitted,
    ] {
        bounds_hold_without(bug);
    }
}

#[test]
fn configs_validate() {
    assert!(Config::default().validate().is_ok());
    assert!(Config::ci().validate().is_ok());
    for bug in Bug::ALL {
        assert!(bug.default_config().validate().is_ok(), "{bug}");
    }
    let bad = [
        Config {
            servers: 0,
            ..Config::ci()
        },
        Config {
            servers: 8,
            ..Config::ci()
        },
        Config {
            max_term: 0,
            ..Config::ci()
        },
        Config {
            max_requests: raft_model::config::MAX_REQUESTS + 1,
            ..Config::ci()
        },
        Config {
            max_inflight: 0,
            ..Config::ci()
        },
    ];
    for cfg in bad {
        let err = cfg.validate().unwrap_err();
        assert!(!err.is_empty(), "{cfg:?}");
    }
    // The default bounds include restarts, loss and reordering with async
    // durability; CI bounds add duplication. No partition (issue 10: with a
    // snapshot it made the default check 75 M unique states): the two
    // properties that need one are not checked there, and are at
    // `--max-partitions 1`.
    let d = Config::default();
    assert!(d.max_term >= 2 && d.max_requests >= 2 && d.max_inflight >= 2);
    assert!(d.max_restarts >= 1);
    assert_eq!(d.max_partitions, 0);
    assert!(!properties::applies("MinorityNoCommit", &d));
    assert!(!properties::applies("LeaderDeposedByPartition", &d));
    let p = Config {
        max_partitions: 1,
        ..d.clone()
    };
    assert!(properties::applies("MinorityNoCommit", &p));
    assert!(properties::applies("LeaderDeposedByPartition", &p));
    assert_eq!(d.network, raft_model::NetworkKind::Unordered);
    assert_eq!(d.persist, PersistMode::Async);
    assert!(Config::ci().max_duplicates >= 1);
    // Snapshots (docs/protocol.md §8) are in both.
    assert!(d.max_snapshots >= 1 && Config::ci().max_snapshots >= 1);
}
