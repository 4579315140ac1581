//! `raft-conform run` as a library call: generate traces from the model and
//! replay them all on real nodes. The CLI and the CI tests share it.

use crate::divergence::Divergence;
use crate::generate::{self, trace_from_actions};
use crate::replay::{replay_all, IntoTrace, ReplayError};
use raft_model::trace::{Trace, TraceKind};
use raft_model::types::Action;
use raft_model::{Config, RaftModel};
use raftkv::node::ImplBug;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bounds `raft-conform run` uses with no flags: the model's CI bounds
/// (`Config::ci()`) with up to 3 messages in flight instead of 2 and 2
/// restarts instead of 1.
///
/// - With 2 in flight a leader cannot have a stale response in flight next
///   to a fresh one (an election alone fills the network), so
///   `accept-stale-response` is out of reach of every generated trace.
/// - Persistence bugs (`no-persist-vote`) show only when a restart follows
///   the unpersisted change; the BFS keeps one path per model state, and
///   the path it keeps often persists the same state in another order, so
///   the walks carry this bug, and a second restart doubles their chances.
pub fn ci_bounds() -> Config {
    let mut cfg = Config::ci();
    cfg.max_inflight = 3;
    cfg.max_restarts = 2;
    cfg.persist = RUN_PERSIST;
    cfg
}

/// The persist mode `run` generates traces in unless `--persist` says
/// otherwise: async, as `raft-model check` (Persist is `fire_persist()`).
pub const RUN_PERSIST: raft_model::PersistMode = raft_model::PersistMode::Async;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub bounds: Config,
    pub depth: usize,
    pub walks: usize,
    pub walk_len: usize,
    pub seed: u64,
    /// Time the model checker may spend on reachability examples that the
    /// BFS and the walks did not meet.
    pub examples_timeout: Duration,
    pub bug: Option<ImplBug>,
    pub jobs: usize,
    pub data_root: PathBuf,
}

impl RunOptions {
    /// The CI defaults of `raft-conform run`.
    pub fn ci(data_root: PathBuf) -> RunOptions {
        RunOptions {
            bounds: ci_bounds(),
            depth: DEFAULT_DEPTH,
            walks: DEFAULT_WALKS,
            walk_len: DEFAULT_WALK_LEN,
            seed: 1,
            examples_timeout: Duration::from_secs(DEFAULT_EXAMPLES_TIMEOUT),
            bug: None,
            jobs: DEFAULT_JOBS,
            data_root,
        }
    }
}

pub const DEFAULT_DEPTH: usize = 7;
pub const DEFAULT_WALKS: usize = 8000;
pub const DEFAULT_WALK_LEN: usize = 40;
pub const DEFAULT_EXAMPLES_TIMEOUT: u64 = 10;
/// Walks (model only) spent hunting for reachability examples before the checker.
pub const HUNT_WALKS: usize = 50_000;
pub const HUNT_WALK_LEN: usize = 60;
pub const DEFAULT_JOBS: usize = 8;

/// What `run` did and found. Serialises to the `--json` object.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub traces: usize,
    pub steps: usize,
    /// Unique model states (abstract) that the implementation reached and matched.
    pub states_covered: usize,
    pub divergences: usize,
    /// Seconds spent replaying (generation is reported separately).
    pub seconds: f64,
    pub steps_per_second: f64,
    pub traces_per_second: f64,
    pub generate_seconds: f64,
    pub bfs_depth: usize,
    pub bfs_unique_states: usize,
    pub bfs_complete: bool,
    pub bfs_traces: usize,
    pub walks: usize,
    pub walk_len: usize,
    pub seed: u64,
    pub examples: Vec<String>,
    pub examples_unreached: Vec<String>,
    pub impl_bug: Option<&'static str>,
    pub bounds: Config,
    pub first_divergence: Option<Divergence>,
    #[serde(skip)]
    pub first_divergent_trace: Option<Trace>,
}

/// A path of the model, made into a trace (expected states computed by the
/// model) only when its replay starts.
#[derive(Clone, Debug)]
pub struct ModelPath {
    pub model: Arc<RaftModel>,
    pub kind: TraceKind,
    pub property: Option<String>,
    pub actions: Vec<Action>,
}

impl IntoTrace for ModelPath {
    fn into_trace(self) -> Result<Trace, String> {
        trace_from_actions(&self.model, self.kind, self.property, &self.actions)
    }
}

/// Generates the traces (as model paths): BFS leaves, then walks, then one
/// example per reachability property. Labels name each trace's origin.
pub fn generate_traces(opts: &RunOptions) -> Result<(Vec<(String, ModelPath)>, GenStats), String> {
    opts.bounds.validate()?;
    let model = Arc::new(RaftModel::new(opts.bounds.clone()));
    let path = |kind, property: Option<String>, actions: Vec<Action>| ModelPath {
        model: model.clone(),
        kind,
        property,
        actions,
    };
    let bfs = generate::bfs(&model, opts.depth);
    let mut traces = Vec::new();
    for (i, p) in bfs.leaf_paths.into_iter().enumerate() {
        traces.push((format!("bfs leaf {i}"), path(TraceKind::Walk, None, p)));
    }
    let bfs_traces = traces.len();
    let walks = generate::random_walks(&model, opts.walks, opts.walk_len, opts.seed);
    for (i, w) in walks.walks.into_iter().enumerate() {
        traces.push((
            format!("walk {i} (seed {})", opts.seed),
            path(TraceKind::Walk, None, w),
        ));
    }
    // Prefer the BFS's (shortest) examples, then the walks', then the checker's.
    let mut examples = bfs.examples;
    for (k, v) in walks.examples {
        examples.entry(k).or_insert(v);
    }
    let have: BTreeSet<&'static str> = examples.keys().copied().collect();
    examples.extend(generate::hunt_examples(
        &model,
        &have,
        HUNT_WALKS,
        HUNT_WALK_LEN,
        opts.seed,
    ));
    let have: BTreeSet<&'static str> = examples.keys().copied().collect();
    examples.extend(generate::checker_examples(
        &model,
        &have,
        opts.examples_timeout,
    ));
    for (name, p) in &examples {
        // Checked here: an example that is not a path of the model is a
        // generator bug, better reported before anything runs.
        trace_from_actions(&model, TraceKind::Example, None, p)?;
        traces.push((
            format!("example {name}"),
            path(TraceKind::Example, Some(name.to_string()), p.clone()),
        ));
    }
    let unreached = raft_model::properties::SOMETIMES
        .iter()
        .filter(|n| !examples.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    Ok((
        traces,
        GenStats {
            bfs_unique_states: bfs.unique_states,
            bfs_complete: bfs.complete,
            bfs_traces,
            examples: examples.keys().map(|k| k.to_string()).collect(),
            unreached,
        },
    ))
}

#[derive(Debug)]
pub struct GenStats {
    pub bfs_unique_states: usize,
    pub bfs_complete: bool,
    pub bfs_traces: usize,
    pub examples: Vec<String>,
    pub unreached: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot generate traces: {0}")]
    Generate(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// Generates and replays; call from within a multi-thread tokio runtime.
pub async fn run(opts: &RunOptions) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let (traces, stats) = generate_traces(opts).map_err(RunError::Generate)?;
    let generate_seconds = started.elapsed().as_secs_f64();
    // Replays consume their paths; keep a copy (actions only) to write out
    // the first divergent trace.
    let keep = traces.clone();
    let batch = replay_all(traces, opts.bug, opts.jobs, opts.data_root.clone()).await?;
    let seconds = batch.elapsed.as_secs_f64();
    let first = batch.divergences.first();
    Ok(RunSummary {
        traces: batch.traces,
        steps: batch.steps,
        states_covered: batch.covered.len(),
        divergences: batch.divergences.len(),
        seconds,
        steps_per_second: batch.steps as f64 / seconds.max(1e-9),
        traces_per_second: batch.traces as f64 / seconds.max(1e-9),
        generate_seconds,
        bfs_depth: opts.depth,
        bfs_unique_states: stats.bfs_unique_states,
        bfs_complete: stats.bfs_complete,
        bfs_traces: stats.bfs_traces,
        walks: opts.walks,
        walk_len: opts.walk_len,
        seed: opts.seed,
        examples: stats.examples,
        examples_unreached: stats.unreached,
        impl_bug: opts.bug.map(|b| b.name()),
        bounds: opts.bounds.clone(),
        first_divergence: first.map(|(_, d)| d.clone()),
        first_divergent_trace: first.and_then(|(i, _)| keep[*i].1.clone().into_trace().ok()),
    })
}
