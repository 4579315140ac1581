//! Running a check: spawning the stateright checker, supervising it with our
//! own deadline and progress, and turning its discoveries into shrunk paths.
//!
//! stateright 0.31 ignores `.timeout()` with one thread and reports
//! `is_done()` after a timeout, so completeness is decided here: a search is
//! complete only if every checker thread finished on its own before our
//! deadline and no early stop (a violation) ended it.

use crate::cli::Strategy;
use crate::shrink::{self, Budget, Goal};
use raft_model::{RaftModel, State};
use stateright::{Checker, CheckerBuilder, Expectation, HasDiscoveries, Model, UniformChooser};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use raft_model::types::Action;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub strategy: Strategy,
    pub threads: usize,
    pub timeout: Option<Duration>,
    pub symmetry: bool,
    pub seed: u64,
    pub shrink: bool,
    /// Print progress to stderr this often (None: never).
    pub progress_every: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every reachable state within the bounds was visited.
    Exhausted,
    /// A safety property was violated: the search stopped at once.
    Violation,
    /// The time limit was reached.
    Timeout,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::Exhausted => "exhausted",
            StopReason::Violation => "violation",
            StopReason::Timeout => "timeout",
        }
    }
}

/// A discovery after shrinking.
pub struct Discovery {
    pub actions: Vec<Action>,
    pub original_len: usize,
    pub proven_shortest: bool,
}

pub struct Outcome {
    pub complete: bool,
    pub stop: StopReason,
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    pub elapsed: Duration,
    /// VmHWM when the search ended (before shrinking), in bytes.
    pub peak_rss_bytes: Option<u64>,
    pub discoveries: HashMap<&'static str, Discovery>,
    /// Time spent shrinking.
    pub shrink_elapsed: Duration,
}

/// Runs the configured search on `model` and returns its outcome. On a
/// timeout the checker threads are left running (stateright has no way to
/// stop them); the caller should exit the process after reporting.
pub fn run(model: &RaftModel, opts: &RunOptions) -> Outcome {
    let builder = model
        .clone()
        .checker()
        .threads(opts.threads.max(1))
        .finish_when(HasDiscoveries::AnyFailures);
    match opts.strategy {
        Strategy::Dfs => {
            let builder = if opts.symmetry {
                builder.symmetry()
            } else {
                builder
            };
            supervise(model, builder.spawn_dfs(), opts)
        }
        // BFS keeps its own order; stateright 0.31 ignores symmetry here.
        Strategy::Bfs => supervise(model, builder.spawn_bfs(), opts),
        Strategy::Simulate => {
            let builder: CheckerBuilder<RaftModel> = if opts.symmetry {
                builder.symmetry()
            } else {
                builder
            };
            // Simulation stops between walks at stateright's own timeout.
            let builder = match opts.timeout {
                Some(t) => builder.timeout(t),
                None => builder,
            };
            supervise(
                model,
                builder.spawn_simulation(opts.seed, UniformChooser),
                opts,
            )
        }
    }
}

fn supervise<C: Checker<RaftModel>>(
    model: &RaftModel,
    mut checker: C,
    opts: &RunOptions,
) -> Outcome {
    let start = Instant::now();
    let handles = checker.handles();
    let mut next_progress = opts.progress_every.map(|p| start + p);
    let mut last_count = (start, 0usize);
    let finished = loop {
        if handles.iter().all(|h| h.is_finished()) {
            for h in handles {
                // A panicking model is a bug in the model: surface it.
                if let Err(panic) = h.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            break true;
        }
        if opts.timeout.is_some_and(|t| start.elapsed() >= t) {
            break false;
        }
        if let (Some(at), Some(every)) = (next_progress, opts.progress_every) {
            if Instant::now() >= at {
                let states = checker.state_count();
                let now = Instant::now();
                let rate = (states - last_count.1) as f64
                    / now.duration_since(last_count.0).as_secs_f64().max(1e-9);
                last_count = (now, states);
                eprintln!(
                    "[{:>6.1}s] states {:>12}  unique {:>11}  depth {:>4}  {:>9.0} states/s",
                    start.elapsed().as_secs_f64(),
                    states,
                    checker.unique_state_count(),
                    checker.max_depth(),
                    rate
                );
                next_progress = Some(at + every);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    // Counts at the end of the search: after a timeout the threads go on.
    let (states, unique_states, max_depth) = (
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
    );
    let peak_rss_bytes = peak_rss_bytes();
    let raw = checker.discoveries();
    let properties = model.properties();
    let violated = properties
        .iter()
        .any(|p| p.expectation == Expectation::Always && raw.contains_key(p.name));
    let stop = if violated {
        StopReason::Violation
    } else if !finished {
        StopReason::Timeout
    } else {
        StopReason::Exhausted
    };
    // Random walks never prove anything exhaustively.
    let complete = stop == StopReason::Exhausted && opts.strategy != Strategy::Simulate;

    let shrink_start = Instant::now();
    let mut discoveries = HashMap::new();
    for p in &properties {
        let Some(path) = raw.get(p.name) else {
            continue;
        };
        let pairs = path.clone().into_vec();
        let init = pairs[0].0.clone();
        let actions: Vec<Action> = pairs.into_iter().filter_map(|(_, a)| a).collect();
        let d = if opts.shrink {
            let s = shrink::shrink(model, &init, actions, &Goal::of(p), Budget::default());
            Discovery {
                actions: s.actions,
                original_len: s.original_len,
                proven_shortest: s.proven_shortest,
            }
        } else {
            Discovery {
                original_len: actions.len(),
                actions,
                proven_shortest: false,
            }
        };
        discoveries.insert(p.name, d);
    }
    Outcome {
        complete,
        stop,
        states,
        unique_states,
        max_depth,
        elapsed,
        peak_rss_bytes,
        discoveries,
        shrink_elapsed: shrink_start.elapsed(),
    }
}

/// Replays `actions` from the model's initial state: the states after each
/// action (the initial state first). None if an action is not enabled.
pub fn replay(model: &RaftModel, actions: &[Action]) -> Option<Vec<State>> {
    let mut states = vec![model.init_states().into_iter().next()?];
    for a in actions {
        let next = model.next_state(states.last()?, a.clone())?;
        states.push(next);
    }
    Some(states)
}

/// The process's peak resident set size (VmHWM), if the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
