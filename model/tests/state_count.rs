//! The size of the state space at the CI bounds, pinned (as stateright's own
//! examples pin theirs): a change to the model that adds or removes states
//! (a new action, a field that is no longer abstracted, a guard) fails here
//! even when every property still holds, so it is noticed and explained.
//!
//! To update after an intended change of the state space: run
//! `cargo test --release -p raft-model --test state_count`, check that the
//! new count is explained by the change (and that the default check's count
//! in docs/measurements.md is re-measured), and put the reported number here.

use raft_model::config::{Config, PersistMode};
use raft_model::RaftModel;
use stateright::{Checker, Model};

/// Unique states of a complete DFS with symmetry, as `raft-model check` runs
/// it. The count of a complete search does not depend on the thread count.
fn unique_states(cfg: Config) -> usize {
    let checker = RaftModel::new(cfg)
        .checker()
        .threads(2)
        .symmetry()
        .spawn_dfs()
        .join();
    assert!(checker.is_done());
    checker.unique_state_count()
}

#[test]
fn state_count_at_ci_bounds_async_persist() {
    let cfg = Config::ci();
    assert_eq!(cfg.persist, PersistMode::Async);
    // 249_123 before snapshots (max_snapshots 0); 1_001_863 with max_snapshots 1 (issue 10).
    assert_eq!(unique_states(cfg), 1_001_863);
}

#[test]
fn state_count_at_ci_bounds_sync_persist() {
    let cfg = Config {
        persist: PersistMode::Sync,
        ..Config::ci()
    };
    // 102_539 before snapshots (max_snapshots 0).
    assert_eq!(unique_states(cfg), 261_413);
}
