//! Shrinking of discovered paths.
//!
//! stateright 0.31 overwrites a property's discovery with later matches and
//! its DFS returns long paths, so a counterexample straight from the checker
//! is rarely the short story a reader needs. The shrinker replays candidate
//! action lists through the model's own `actions`/`next_state`, so every
//! trace it returns is a real path of the model:
//!
//! 1. cut the path at the first state that meets the goal;
//! 2. delta debugging: remove chunks (halving down to single actions) while
//!    the goal is still met; actions that a removal disabled are skipped
//!    during the replay, so one removal can drop several dependent steps;
//! 3. a breadth-first search from the initial state bounded by the length
//!    found so far and by a state budget: when it finishes, the result is a
//!    shortest path (`proven_shortest`).

use stateright::{Expectation, Model, Property};
use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

/// What a path must reach.
pub struct Goal<M: Model> {
    expectation: Expectation,
    condition: fn(&M, &M::State) -> bool,
}

impl<M: Model> Goal<M> {
    pub fn of(property: &Property<M>) -> Goal<M> {
        Goal {
            expectation: property.expectation.clone(),
            condition: property.condition,
        }
    }

    /// `always` goals are met by a violating state, `sometimes` goals by a
    /// satisfying one.
    pub fn met(&self, model: &M, state: &M::State) -> bool {
        match self.expectation {
            Expectation::Always | Expectation::Eventually => !(self.condition)(model, state),
            Expectation::Sometimes => (self.condition)(model, state),
        }
    }
}

/// The result of shrinking one path.
#[derive(Debug, Clone)]
pub struct Shrunk<A> {
    pub actions: Vec<A>,
    pub original_len: usize,
    /// True when the bounded BFS finished: no shorter path reaches the goal.
    pub proven_shortest: bool,
}

/// Limits of the BFS phase (states kept in memory).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub bfs_states: usize,
    pub bfs_time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            bfs_states: 200_000,
            bfs_time: Duration::from_secs(2),
        }
    }
}

/// Replays `candidate` from `init`, skipping actions that are not enabled
/// where they come. Returns the actions actually taken, up to and including
/// the first one whose state meets the goal, or None if it is never met.
pub fn replay_to_goal<M>(
    model: &M,
    init: &M::State,
    candidate: &[M::Action],
    goal: &Goal<M>,
) -> Option<Vec<M::Action>>
where
    M: Model,
    M::State: Clone,
    M::Action: Clone + PartialEq,
{
    if goal.met(model, init) {
        return Some(Vec::new());
    }
    let mut state = init.clone();
    let mut taken = Vec::new();
    let mut enabled = Vec::new();
    for action in candidate {
        enabled.clear();
        model.actions(&state, &mut enabled);
        if !enabled.contains(action) {
            continue;
        }
        let Some(next) = model.next_state(&state, action.clone()) else {
            continue;
        };
        // The checker never expands states outside the boundary, so a path
        // through one is not a path of the check.
        if !model.within_boundary(&next) {
            continue;
        }
        state = next;
        taken.push(action.clone());
        if goal.met(model, &state) {
            return Some(taken);
        }
    }
    None
}

/// Shrinks `actions` (a path from `init` that meets `goal`) as described in
/// the module documentation. If the input path does not meet the goal it is
/// returned unchanged.
pub fn shrink<M>(
    model: &M,
    init: &M::State,
    actions: Vec<M::Action>,
    goal: &Goal<M>,
    budget: Budget,
) -> Shrunk<M::Action>
where
    M: Model,
    M::State: Clone + Hash + Eq,
    M::Action: Clone + PartialEq,
{
    let original_len = actions.len();
    let Some(mut best) = replay_to_goal(model, init, &actions, goal) else {
        return Shrunk {
            actions,
            original_len,
            proven_shortest: false,
        };
    };

    // Delta debugging: try removing chunks of decreasing size.
    let mut chunk = best.len().div_ceil(2).max(1);
    loop {
        let mut progress = false;
        let mut start = 0;
        while start < best.len() {
            let end = (start + chunk).min(best.len());
            let candidate: Vec<_> = best[..start].iter().chain(&best[end..]).cloned().collect();
            match replay_to_goal(model, init, &candidate, goal) {
                Some(shorter) if shorter.len() < best.len() => {
                    best = shorter;
                    progress = true;
                }
                _ => start += chunk,
            }
        }
        if chunk == 1 && !progress {
            break;
        }
        if !progress {
            chunk = chunk.div_ceil(2);
        } else {
            chunk = chunk.min(best.len().div_ceil(2)).max(1);
        }
    }

    // Bounded BFS for anything shorter still.
    let proven_shortest = match bfs_shorter(model, init, best.len(), goal, budget) {
        BfsOutcome::Found(shorter) => {
            best = shorter;
            true
        }
        BfsOutcome::NoneShorter => true,
        BfsOutcome::OutOfBudget => false,
    };
    Shrunk {
        actions: best,
        original_len,
        proven_shortest,
    }
}

enum BfsOutcome<A> {
    Found(Vec<A>),
    NoneShorter,
    OutOfBudget,
}

/// BFS from `init` for a path of fewer than `limit` actions that meets the goal.
fn bfs_shorter<M>(
    model: &M,
    init: &M::State,
    limit: usize,
    goal: &Goal<M>,
    budget: Budget,
) -> BfsOutcome<M::Action>
where
    M: Model,
    M::State: Clone + Hash + Eq,
    M::Action: Clone,
{
    if limit == 0 {
        return BfsOutcome::NoneShorter;
    }
    // Each node: (state, parent node, action from parent, depth).
    type Node<S, A> = (S, usize, Option<A>, usize);
    let mut nodes: Vec<Node<M::State, M::Action>> = vec![(init.clone(), usize::MAX, None, 0)];
    // Fingerprints, not states: the nodes already hold every state once.
    let mut seen: HashSet<u64> = HashSet::from([hash_of(init)]);
    let mut queue = VecDeque::from([0usize]);
    let mut actions = Vec::new();
    let started = Instant::now();
    while let Some(idx) = queue.pop_front() {
        if started.elapsed() > budget.bfs_time {
            return BfsOutcome::OutOfBudget;
        }
        let depth = nodes[idx].3;
        // Children would have depth + 1 actions; only paths shorter than
        // `limit` are of interest.
        if depth + 1 >= limit {
            continue;
        }
        let state = nodes[idx].0.clone();
        actions.clear();
        model.actions(&state, &mut actions);
        for action in actions.drain(..) {
            let Some(next) = model.next_state(&state, action.clone()) else {
                continue;
            };
            if !model.within_boundary(&next) || !seen.insert(hash_of(&next)) {
                continue;
            }
            if goal.met(model, &next) {
                let mut path = vec![action];
                let mut at = idx;
                while at != 0 {
                    let (_, parent, a, _) = &nodes[at];
                    path.push(a.clone().expect("non-root nodes have an action"));
                    at = *parent;
                }
                path.reverse();
                return BfsOutcome::Found(path);
            }
            if nodes.len() >= budget.bfs_states {
                return BfsOutcome::OutOfBudget;
            }
            nodes.push((next, idx, Some(action), depth + 1));
            queue.push_back(nodes.len() - 1);
        }
    }
    BfsOutcome::NoneShorter
}

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter on a grid: x and y go up to 9, `Reset` goes back to 0 and
    /// `Jump` goes from (0, 0) straight to (3, 0). "Bad" is x == 3 and
    /// y == 2: the shortest path is Jump and two IncY; without Jump, five
    /// increments.
    #[derive(Clone)]
    struct Grid;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    enum Step {
        IncX,
        IncY,
        Reset,
        Noop,
        Jump,
    }

    impl Model for Grid {
        type State = (u8, u8);
        type Action = Step;
        fn init_states(&self) -> Vec<(u8, u8)> {
            vec![(0, 0)]
        }
        fn actions(&self, s: &(u8, u8), out: &mut Vec<Step>) {
            if s.0 < 9 {
                out.push(Step::IncX);
            }
            if s.1 < 9 {
                out.push(Step::IncY);
            }
            out.push(Step::Reset);
            out.push(Step::Noop);
            if *s == (0, 0) {
                out.push(Step::Jump);
            }
        }
        fn next_state(&self, s: &(u8, u8), a: Step) -> Option<(u8, u8)> {
            Some(match a {
                Step::IncX => (s.0 + 1, s.1),
                Step::IncY => (s.0, s.1 + 1),
                Step::Reset => (0, 0),
                Step::Noop => *s,
                Step::Jump => (3, 0),
            })
        }
        fn properties(&self) -> Vec<Property<Self>> {
            vec![
                Property::always("not 3,2", |_, s| *s != (3, 2)),
                Property::sometimes("y is 4", |_, s: &(u8, u8)| s.1 == 4),
            ]
        }
    }

    fn long_bad_path() -> Vec<Step> {
        use Step::*;
        vec![
            IncX, IncX, Noop, IncY, Reset, IncY, IncY, IncY, IncX, Noop, IncX, IncX,
            IncX, // (4, 3)
            Reset, IncY, IncX, IncY, IncX, Noop, IncX, // (3, 2) after 20 actions
            IncY, IncY,
        ]
    }

    fn goal(idx: usize) -> Goal<Grid> {
        Goal::of(&Grid.properties()[idx])
    }

    #[test]
    fn replay_cuts_at_the_first_violation_and_skips_disabled_actions() {
        let path = long_bad_path();
        let cut = replay_to_goal(&Grid, &(0, 0), &path, &goal(0)).expect("path violates");
        assert_eq!(cut.len(), 20);
        // A path that never reaches (3, 2) does not meet the goal.
        assert!(replay_to_goal(&Grid, &(0, 0), &[Step::IncX; 9], &goal(0)).is_none());
        // IncX is disabled at x == 9: it is skipped, not applied.
        let mut walk = vec![Step::IncX; 12];
        walk.push(Step::IncY);
        let g = Goal {
            expectation: Expectation::Sometimes,
            condition: |_, s: &(u8, u8)| s.1 == 1,
        };
        let taken = replay_to_goal(&Grid, &(0, 0), &walk, &g).unwrap();
        assert_eq!(taken.len(), 10);
    }

    #[test]
    fn delta_debugging_alone_reaches_a_minimal_path() {
        let shrunk = shrink(
            &Grid,
            &(0, 0),
            long_bad_path(),
            &goal(0),
            Budget {
                bfs_states: 0,
                bfs_time: Duration::ZERO,
            },
        );
        assert_eq!(shrunk.original_len, long_bad_path().len());
        assert_eq!(shrunk.actions.len(), 5, "{:?}", shrunk.actions);
        assert!(!shrunk.proven_shortest, "no BFS budget, nothing proven");
        let end = shrunk
            .actions
            .iter()
            .fold((0, 0), |s, a| Grid.next_state(&s, *a).unwrap());
        assert_eq!(end, (3, 2));
    }

    /// Delta debugging only removes actions: the five increments are
    /// 1-minimal, but the BFS finds the shorter path through Jump.
    #[test]
    fn bfs_finds_and_proves_a_shorter_path_than_removal_can() {
        let shrunk = shrink(&Grid, &(0, 0), long_bad_path(), &goal(0), Budget::default());
        assert_eq!(shrunk.actions, vec![Step::Jump, Step::IncY, Step::IncY]);
        assert!(shrunk.proven_shortest);
    }

    #[test]
    fn sometimes_goals_shrink_to_their_example() {
        use Step::*;
        let path = vec![IncX, IncY, Reset, IncY, IncY, IncX, Noop, IncY, IncY];
        let shrunk = shrink(&Grid, &(0, 0), path, &goal(1), Budget::default());
        assert_eq!(shrunk.actions, vec![IncY; 4]);
        assert!(shrunk.proven_shortest);
    }

    #[test]
    fn a_path_that_misses_the_goal_is_returned_unchanged() {
        let path = vec![Step::IncX, Step::IncY];
        let shrunk = shrink(&Grid, &(0, 0), path.clone(), &goal(0), Budget::default());
        assert_eq!(shrunk.actions, path);
        assert!(!shrunk.proven_shortest);
    }
}
