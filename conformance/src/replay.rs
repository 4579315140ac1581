//! Model → implementation: replaying traces on a real cluster and comparing
//! the abstract state after every step.

use crate::cluster::{Cluster, ClusterError};
use crate::divergence::{diff, Divergence, FieldDiff};
use raft_model::trace::{AbstractState, Trace};
use raftkv::node::ImplBug;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{trace}: not a replayable trace: {reason}")]
    BadTrace { trace: String, reason: String },
    #[error("{trace}: {source}")]
    Cluster { trace: String, source: ClusterError },
}

/// The result of replaying one trace.
#[derive(Debug)]
pub struct ReplayOutcome {
    pub label: String,
    /// Steps applied and compared (the divergent one included).
    pub steps: usize,
    pub divergence: Option<Divergence>,
    /// Fingerprints of the model states that the implementation matched.
    pub covered: Vec<u64>,
}

pub fn fingerprint(state: &AbstractState) -> u64 {
    let mut h = DefaultHasher::new();
    state.hash(&mut h);
    h.finish()
}

/// Checks a trace read from a file before anything runs on it: the model's
/// own shape check (`raft-model diagram` refuses the same traces), so a
/// server id outside the cluster is malformed input, not a divergence.
pub fn check_trace(trace: &Trace, label: &str) -> Result<(), ReplayError> {
    trace.check().map_err(|reason| ReplayError::BadTrace {
        trace: label.to_string(),
        reason,
    })
}

/// Replays `trace` on a fresh cluster of real nodes (data under `root`),
/// stopping at the first divergence.
pub async fn replay(
    trace: &Trace,
    label: &str,
    bug: Option<ImplBug>,
    root: &Path,
) -> Result<ReplayOutcome, ReplayError> {
    replay_recording(trace, label, bug, root, None).await
}

/// [`replay`] with the nodes recording their steps into `sink` (the
/// recorded-steps NDJSON that `validate --trace` reads).
pub async fn replay_recording(
    trace: &Trace,
    label: &str,
    bug: Option<ImplBug>,
    root: &Path,
    sink: Option<raftkv::trace::TraceSink>,
) -> Result<ReplayOutcome, ReplayError> {
    check_trace(trace, label)?;
    let n = usize::from(trace.bounds.servers);
    let mut cluster = Cluster::start_traced(n, bug, root, sink)
        .await
        .map_err(|source| ReplayError::Cluster {
            trace: label.to_string(),
            source,
        })?;
    cluster.set_persist(trace.bounds.persist);
    let total = trace.steps.len();
    let mut out = ReplayOutcome {
        label: label.to_string(),
        steps: 0,
        divergence: None,
        covered: Vec::with_capacity(total + 1),
    };
    let divergence =
        |step: usize, event, error: Option<String>, fields: Vec<FieldDiff>| Divergence {
            trace: label.to_string(),
            step,
            steps_total: total,
            event,
            error,
            fields,
        };
    // Step 0: the fresh cluster must be the trace's initial state (checker
    // traces start from the empty cluster; a different start cannot be set
    // up on real nodes, and is reported rather than silently skipped).
    match cluster.abstract_state().await {
        Ok(actual) => {
            let fields = diff(&trace.initial, &actual);
            if !fields.is_empty() {
                out.divergence = Some(divergence(
                    0,
                    None,
                    Some(
                        "the trace does not start from the initial state of a fresh cluster".into(),
                    ),
                    fields,
                ));
            } else {
                out.covered.push(fingerprint(&trace.initial));
            }
        }
        Err(e) => out.divergence = Some(divergence(0, None, Some(e.to_string()), vec![])),
    }
    if out.divergence.is_none() {
        for (k, step) in trace.steps.iter().enumerate() {
            out.steps += 1;
            let applied = cluster.apply(&step.action).await;
            let actual = cluster.abstract_state().await;
            let (error, fields) = match (applied, actual) {
                (Ok(()), Ok(actual)) => (None, diff(&step.state, &actual)),
                (Err(e), Ok(actual)) => (Some(e.to_string()), diff(&step.state, &actual)),
                (Ok(()), Err(e)) => (Some(e.to_string()), vec![]),
                (Err(e1), Err(e2)) => (Some(format!("{e1}; then {e2}")), vec![]),
            };
            if error.is_some() || !fields.is_empty() {
                out.divergence = Some(divergence(k + 1, Some(step.action.clone()), error, fields));
                break;
            }
            out.covered.push(fingerprint(&step.state));
        }
    }
    cluster.shutdown().await;
    Ok(out)
}

/// Something that becomes a trace when its replay starts: a `Trace` read
/// from a file, or a model path whose expected states are computed only
/// then (a run holds tens of thousands of paths; their states would not
/// all fit in memory at once for deep runs).
pub trait IntoTrace: Send + 'static {
    fn into_trace(self) -> Result<Trace, String>;
}

impl IntoTrace for Trace {
    fn into_trace(self) -> Result<Trace, String> {
        Ok(self)
    }
}

/// Totals over many replays.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub traces: usize,
    pub steps: usize,
    /// Divergent traces, in input order.
    pub divergences: Vec<(usize, Divergence)>,
    pub covered: std::collections::HashSet<u64>,
    pub elapsed: Duration,
}

/// Replays every trace, up to `jobs` at a time on the current (multi-thread)
/// runtime. Each replay has its own cluster and network, so they are
/// independent; running several at once keeps both cores busy while nodes
/// wait on channels and fsyncs.
pub async fn replay_all<T: IntoTrace>(
    traces: impl IntoIterator<Item = (String, T)>,
    bug: Option<ImplBug>,
    jobs: usize,
    root: PathBuf,
) -> Result<BatchResult, ReplayError> {
    let started = Instant::now();
    let root = Arc::new(root);
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let mut result = BatchResult::default();
    for (i, (label, trace)) in traces.into_iter().enumerate() {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let root = root.clone();
        set.spawn(async move {
            let r = match trace.into_trace() {
                Ok(trace) => replay(&trace, &label, bug, &root).await,
                Err(reason) => Err(ReplayError::BadTrace {
                    trace: label.clone(),
                    reason,
                }),
            };
            drop(permit);
            (i, r)
        });
        // Harvest finished replays as we go so memory stays flat.
        while let Some(done) = set.try_join_next() {
            absorb(&mut result, done)?;
        }
    }
    while let Some(done) = set.join_next().await {
        absorb(&mut result, done)?;
    }
    result.divergences.sort_by_key(|(i, _)| *i);
    result.elapsed = started.elapsed();
    Ok(result)
}

fn absorb(
    result: &mut BatchResult,
    done: Result<(usize, Result<ReplayOutcome, ReplayError>), tokio::task::JoinError>,
) -> Result<(), ReplayError> {
    let (i, r) = done.map_err(|e| ReplayError::BadTrace {
        trace: "<replay task>".into(),
        reason: format!("replay task failed: {e}"),
    })?;
    let outcome = r?;
    result.traces += 1;
    result.steps += outcome.steps;
    result.covered.extend(outcome.covered);
    if let Some(d) = outcome.divergence {
        result.divergences.push((i, d));
    }
    Ok(())
}
