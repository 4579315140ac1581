//! Traces generated from the model for `raft-conform run`: a path to every
//! unique state up to a depth (BFS with dedup; only paths to leaves of the
//! BFS tree, since their prefixes cover the inner nodes), seeded random
//! walks, and an example of every reachability (`sometimes`) property.

use raft_model::properties::REACHABILITY;
use raft_model::trace::{Trace, TraceKind, TraceStep};
use raft_model::types::Action;
use raft_model::{Config, RaftModel, State};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// Builds a trace by running `actions` through the model from its initial
/// state. Fails if an action is not enabled (the path is not the model's).
pub fn trace_from_actions(
    model: &RaftModel,
    kind: TraceKind,
    property: Option<String>,
    actions: &[Action],
) -> Result<Trace, String> {
    let init = model
        .init_states()
        .into_iter()
        .next()
        .ok_or("model has no initial state")?;
    let initial = init.to_abstract();
    let mut state = init;
    let mut steps = Vec::with_capacity(actions.len());
    for (k, a) in actions.iter().enumerate() {
        state = model
            .next_state(&state, a.clone())
            .ok_or_else(|| format!("step {}: {a:?} is not enabled in the model", k + 1))?;
        steps.push(TraceStep {
            action: a.clone(),
            state: state.to_abstract(),
        });
    }
    Ok(Trace::new(
        kind,
        property,
        model.cfg.clone(),
        initial,
        steps,
    ))
}

fn state_fp(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// What a BFS up to a depth found.
#[derive(Debug, Default)]
pub struct Bfs {
    /// Action paths from the initial state to every leaf of the BFS tree.
    pub leaf_paths: Vec<Vec<Action>>,
    /// Unique model states within the depth (the initial state included).
    pub unique_states: usize,
    /// The shortest example found for each reachability property.
    pub examples: BTreeMap<&'static str, Vec<Action>>,
    /// Whether the whole reachable state space is within the depth.
    pub complete: bool,
}

/// Breadth-first search over the model up to `depth` steps, deduplicating
/// states by a 64-bit fingerprint of the full model state.
pub fn bfs(model: &RaftModel, depth: usize) -> Bfs {
    // Tree nodes: (parent, action that led here, has a child).
    let mut nodes: Vec<(u32, Option<Action>, bool)> = Vec::new();
    let mut seen = HashSet::new();
    let mut frontier: Vec<(u32, State)> = Vec::new();
    let mut examples: BTreeMap<&'static str, u32> = BTreeMap::new();
    let check = |model: &RaftModel, s: &State, idx: u32, ex: &mut BTreeMap<&'static str, u32>| {
        for (name, cond) in REACHABILITY {
            if !ex.contains_key(name) && cond(model, s) {
                ex.insert(name, idx);
            }
        }
    };
    for s in model.init_states() {
        if seen.insert(state_fp(&s)) {
            let idx = nodes.len() as u32;
            nodes.push((u32::MAX, None, false));
            check(model, &s, idx, &mut examples);
            frontier.push((idx, s));
        }
    }
    let mut actions = Vec::new();
    let mut complete = false;
    for _ in 0..depth {
        let mut next = Vec::new();
        for (idx, s) in &frontier {
            actions.clear();
            model.actions(s, &mut actions);
            for a in actions.drain(..) {
                let Some(t) = model.next_state(s, a.clone()) else {
                    continue;
                };
                if seen.insert(state_fp(&t)) {
                    let child = nodes.len() as u32;
                    nodes.push((*idx, Some(a), false));
                    nodes[*idx as usize].2 = true;
                    check(model, &t, child, &mut examples);
                    next.push((child, t));
                }
            }
        }
        frontier = next;
        if frontier.is_empty() {
            complete = true;
            break;
        }
    }
    let path = |mut idx: u32| {
        let mut p = Vec::new();
        while let Some(a) = &nodes[idx as usize].1 {
            p.push(a.clone());
            idx = nodes[idx as usize].0;
        }
        p.reverse();
        p
    };
    let leaf_paths = (0..nodes.len() as u32)
        .filter(|&i| !nodes[i as usize].2 && nodes[i as usize].1.is_some())
        .map(path)
        .collect();
    Bfs {
        leaf_paths,
        unique_states: nodes.len(),
        examples: examples.into_iter().map(|(k, v)| (k, path(v))).collect(),
        complete,
    }
}

/// Random walks and the reachability examples met along them.
#[derive(Debug, Default)]
pub struct Walks {
    pub walks: Vec<Vec<Action>>,
    /// For each reachability property met on some walk, the walk's prefix
    /// up to the first state that satisfies it.
    pub examples: BTreeMap<&'static str, Vec<Action>>,
}

/// `count` random walks of at most `len` steps, each choosing uniformly among
/// the enabled actions (`Model::actions`). Deterministic for a seed.
pub fn random_walks(model: &RaftModel, count: usize, len: usize, seed: u64) -> Walks {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Walks::default();
    let mut actions = Vec::new();
    for _ in 0..count {
        let mut state = model.init_states().remove(0);
        let mut walk = Vec::with_capacity(len);
        for _ in 0..len {
            actions.clear();
            model.actions(&state, &mut actions);
            if actions.is_empty() {
                break;
            }
            let a = actions.swap_remove(rng.gen_range(0..actions.len()));
            match model.next_state(&state, a.clone()) {
                Some(t) => {
                    state = t;
                    walk.push(a);
                }
                None => break,
            }
            for (name, cond) in REACHABILITY {
                if !out.examples.contains_key(name) && cond(model, &state) {
                    out.examples.insert(name, walk.clone());
                }
            }
        }
        out.walks.push(walk);
    }
    out
}

/// Random walks run only to meet reachability properties not in `have`:
/// cheap (model steps only, nothing is replayed but the example prefixes),
/// and often quicker than the checker's DFS, whose paths wander deep.
pub fn hunt_examples(
    model: &RaftModel,
    have: &BTreeSet<&'static str>,
    count: usize,
    len: usize,
    seed: u64,
) -> BTreeMap<&'static str, Vec<Action>> {
    let want = REACHABILITY
        .iter()
        .filter(|(n, _)| !have.contains(n) && reachable_under(n, &model.cfg))
        .count();
    let mut found = BTreeMap::new();
    if want == 0 {
        return found;
    }
    // Walk in chunks so a found example stops the hunt early.
    let chunk = 500;
    let mut done = 0;
    let mut round = 0u64;
    while done < count && found.len() < want {
        let n = chunk.min(count - done);
        let w = random_walks(
            model,
            n,
            len,
            seed.wrapping_add(round.wrapping_mul(0x9e37_79b9)),
        );
        for (k, v) in w.examples {
            if !have.contains(k) {
                found.entry(k).or_insert(v);
            }
        }
        done += n;
        round += 1;
    }
    found
}

/// Whether a reachability property can hold at all under `cfg`: each of
/// these needs a budget that the bounds may set to zero. Asking the checker
/// for an unreachable property would make it search until its timeout.
pub fn reachable_under(name: &str, cfg: &Config) -> bool {
    match name {
        "LeaderDeposedByPartition" => cfg.max_partitions > 0 && cfg.max_term >= 2,
        "CommittedSurvivesRestart" => cfg.max_restarts > 0 && cfg.max_requests > 0,
        // Two different entries at one index need two values and two terms.
        "UncommittedOverwritten" => cfg.max_requests >= 2 && cfg.max_term >= 2,
        "EntryCommitted" => cfg.max_requests > 0,
        _ => true,
    }
}

/// Examples for the reachability properties not in `have`, from the
/// stateright checker (DFS with symmetry, stopping once all are found or
/// after `timeout` per pass). Properties unreachable at the model's bounds
/// are absent.
///
/// A first pass searches the same bounds with at most 2 messages in flight:
/// that space is far smaller (an exhaustive pass at the CI bounds takes
/// seconds), and every path in it is also a path under the wider bound,
/// since the in-flight bound only ever disables actions. A second pass at
/// the real bounds looks for what is left.
pub fn checker_examples(
    model: &RaftModel,
    have: &BTreeSet<&'static str>,
    timeout: Duration,
) -> BTreeMap<&'static str, Vec<Action>> {
    let mut found = BTreeMap::new();
    let mut passes = Vec::new();
    if model.cfg.max_inflight > 2 {
        let mut narrow = model.cfg.clone();
        narrow.max_inflight = 2;
        passes.push(RaftModel::new(narrow));
    }
    passes.push(model.clone());
    for pass in passes {
        let want: BTreeSet<&'static str> = REACHABILITY
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| {
                !have.contains(n) && !found.contains_key(n) && reachable_under(n, &model.cfg)
            })
            .collect();
        if want.is_empty() {
            break;
        }
        // Two threads: stateright ignores `timeout` with one. Symmetry
        // shrinks the search ~6x; DFS paths are action indices from the
        // initial state, so a discovery is still a real path of the model.
        let checker = pass
            .checker()
            .symmetry()
            .threads(2)
            .timeout(timeout)
            .finish_when(HasDiscoveries::AllOf(want.clone()))
            .spawn_dfs()
            .join();
        for name in want {
            if let Some(p) = checker.discovery(name) {
                found.insert(name, p.into_actions());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> RaftModel {
        let mut cfg = Config::ci();
        cfg.max_restarts = 0;
        cfg.max_duplicates = 0;
        RaftModel::new(cfg)
    }

    #[test]
    fn bfs_leaf_paths_are_model_paths_and_reach_distinct_states() {
        let model = tiny();
        let b = bfs(&model, 4);
        assert!(b.unique_states > 1);
        assert!(!b.leaf_paths.is_empty());
        for p in &b.leaf_paths {
            assert!(!p.is_empty() && p.len() <= 4);
            trace_from_actions(&model, TraceKind::Walk, None, p).unwrap();
        }
        // Depth 1 from the initial state: one Timeout per server, all leaves.
        let b1 = bfs(&model, 1);
        assert_eq!(b1.leaf_paths.len(), 3);
        assert_eq!(b1.unique_states, 4);
    }

    #[test]
    fn bfs_finds_a_leader_example() {
        let model = tiny();
        let b = bfs(&model, 6);
        let p = b
            .examples
            .get("LeaderElected")
            .expect("a leader within 6 steps");
        let t = trace_from_actions(&model, TraceKind::Example, None, p).unwrap();
        let last = &t.steps.last().unwrap().state;
        assert!(last
            .servers
            .iter()
            .any(|s| s.role == raft_model::types::Role::Leader));
    }

    #[test]
    fn walks_are_deterministic_per_seed_and_enabled() {
        let model = tiny();
        let a = random_walks(&model, 5, 12, 7).walks;
        let b = random_walks(&model, 5, 12, 7).walks;
        let c = random_walks(&model, 5, 12, 8).walks;
        assert_eq!(a, b);
        assert_ne!(a, c);
        for w in &a {
            trace_from_actions(&model, TraceKind::Walk, None, w).unwrap();
        }
    }

    #[test]
    fn walk_examples_are_prefixes_that_satisfy_the_property() {
        let model = tiny();
        let w = random_walks(&model, 50, 20, 3);
        let p = w
            .examples
            .get("LeaderElected")
            .expect("50 walks elect a leader");
        let t = trace_from_actions(&model, TraceKind::Example, None, p).unwrap();
        assert!(t
            .steps
            .last()
            .unwrap()
            .state
            .servers
            .iter()
            .any(|s| s.role == raft_model::types::Role::Leader));
    }

    #[test]
    fn unreachable_properties_are_not_searched() {
        let mut cfg = Config::ci();
        cfg.max_partitions = 0;
        assert!(!reachable_under("LeaderDeposedByPartition", &cfg));
        cfg.max_partitions = 1;
        assert!(reachable_under("LeaderDeposedByPartition", &cfg));
        cfg.max_requests = 1;
        assert!(!reachable_under("UncommittedOverwritten", &cfg));
    }

    #[test]
    fn disabled_action_is_refused() {
        let model = tiny();
        let err = trace_from_actions(
            &model,
            TraceKind::Walk,
            None,
            &[Action::Heartbeat { server: 0 }],
        )
        .unwrap_err();
        assert!(err.contains("not enabled"), "{err}");
    }
}
