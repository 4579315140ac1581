//! `raft-conform replay` and `run`: model traces replayed on real nodes; the trace files they write.

use crate::*;

pub(crate) fn print_divergences(batch: &BatchResult, max: usize) {
    for (_, d) in batch.divergences.iter().take(max) {
        println!("{d}");
    }
    if batch.divergences.len() > max {
        println!(
            "... and {} more divergent traces",
            batch.divergences.len() - max
        );
    }
}

/// A trace made by the model with a seeded bug (`bounds.bug`): the correct
/// implementation is expected to diverge from it.
#[derive(serde::Serialize)]
pub(crate) struct ModelBugTrace {
    trace: String,
    /// The model's bug (`raft-model check --bug`).
    bug: String,
    /// The implementation's bug of the same name, if raftkv has one.
    impl_bug: Option<&'static str>,
}

impl ModelBugTrace {
    fn of(label: &str, trace: &Trace) -> Option<ModelBugTrace> {
        let bug = trace.bounds.bug?;
        Some(ModelBugTrace {
            trace: label.to_string(),
            bug: bug.name().to_string(),
            impl_bug: bug.name().parse::<ImplBug>().ok().map(|b| b.name()),
        })
    }

    fn note(&self, replayed_with: Option<ImplBug>) -> String {
        let what = format!(
            "note: {} was made by the model with the seeded bug {} (bounds.bug): ",
            self.trace, self.bug
        );
        match (self.impl_bug, replayed_with) {
            (Some(b), Some(r)) if r.name() == b => {
                format!("{what}replayed on nodes with the same bug (--impl-bug {b})")
            }
            (Some(b), _) => format!(
                "{what}a correct implementation is expected to diverge from it; \
                 `replay --impl-bug {b}` runs the implementation's version of the bug"
            ),
            (None, _) => format!(
                "{what}a correct implementation is expected to diverge from it \
                 (raftkv has no seeded counterpart of this bug)"
            ),
        }
    }
}

pub(crate) fn cmd_replay(a: ReplayArgs) -> Result<bool> {
    // Read and check every file before running anything: a malformed file
    // is an input error (exit 2), not a divergence.
    let mut traces = Vec::new();
    let mut model_bugs = Vec::new();
    for path in &a.traces {
        let trace = Trace::read(path)?;
        let label = path.display().to_string();
        replay::check_trace(&trace, &label)?;
        model_bugs.extend(ModelBugTrace::of(&label, &trace));
        traces.push((label, trace));
    }
    let rt = runtime(a.common.threads)?;
    // Every trace was checked above: what fails now is the harness.
    let batch = rt
        .block_on(replay_all(
            traces,
            a.common.impl_bug,
            a.common.jobs,
            data_root(),
        ))
        .map_err(failed)?;
    let bugged_divergent = batch
        .divergences
        .iter()
        .filter(|(_, d)| model_bugs.iter().any(|m| m.trace == d.trace))
        .count();
    if a.common.json {
        let v = serde_json::json!({
            "traces": batch.traces,
            "steps": batch.steps,
            "states_covered": batch.covered.len(),
            "divergences": batch.divergences.len(),
            "seconds": batch.elapsed.as_secs_f64(),
            "first_divergence": batch.divergences.first().map(|(_, d)| d),
            "model_bugs": model_bugs,
        });
        println!("{v}");
    } else {
        for m in &model_bugs {
            println!("{}", m.note(a.common.impl_bug));
        }
        print_divergences(&batch, usize::MAX);
        let bugged = if model_bugs.is_empty() {
            String::new()
        } else {
            format!(
                "; {} made with a seeded model bug ({bugged_divergent} of them divergent)",
                model_bugs.len()
            )
        };
        println!(
            "{} traces, {} steps replayed, {} divergent{bugged}",
            batch.traces,
            batch.steps,
            batch.divergences.len()
        );
    }
    Ok(batch.divergences.is_empty())
}

pub(crate) fn persist_mode(name: &str) -> raft_model::PersistMode {
    if name == "sync" {
        raft_model::PersistMode::Sync
    } else {
        raft_model::PersistMode::Async
    }
}

pub(crate) fn run_config(a: &RunArgs) -> Result<Config> {
    let mut cfg = if a.bounds == "default" {
        Config {
            persist: runner::RUN_PERSIST,
            ..Config::default()
        }
    } else {
        runner::ci_bounds()
    };
    if let Some(p) = &a.persist {
        cfg.persist = persist_mode(p);
    }
    a.bound_flags.apply(&mut cfg);
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid model bounds: {e}"))?;
    Ok(cfg)
}

pub(crate) fn cmd_run(a: RunArgs) -> Result<bool> {
    let opts = RunOptions {
        bounds: run_config(&a)?,
        depth: a.depth,
        walks: a.walks,
        walk_len: a.walk_len,
        seed: a.seed,
        examples_timeout: Duration::from_secs(a.examples_timeout),
        bug: a.common.impl_bug,
        jobs: a.common.jobs,
        data_root: data_root(),
    };
    let rt = runtime(a.common.threads)?;
    // The bounds were checked above: what fails now is the harness.
    let s = rt.block_on(runner::run(&opts)).map_err(failed)?;
    let (written, write_error) = match (&a.out, &s.first_divergent_trace) {
        (Some(dir), Some(t)) => write_finding(dir, "divergence", &run_id(), t),
        _ => (None, None),
    };
    if a.common.json {
        let mut v = serde_json::to_value(&s).context("cannot serialise the summary")?;
        v["divergent_trace_file"] = serde_json::json!(written);
        v["trace_write_error"] = serde_json::json!(write_error);
        println!("{v}");
    } else {
        if let Some(d) = &s.first_divergence {
            println!("{d}");
        }
        println!(
            "traces: {} ({} BFS leaves to depth {} over {} unique model states{}, {} walks of <= {} steps, {} reachability examples)",
            s.traces,
            s.bfs_traces,
            s.bfs_depth,
            s.bfs_unique_states,
            if s.bfs_complete { ", complete" } else { "" },
            s.walks,
            s.walk_len,
            s.examples.len()
        );
        if !s.examples_unreached.is_empty() {
            println!(
                "reachability examples not reached at these bounds: {}",
                s.examples_unreached.join(", ")
            );
        }
        println!("steps: {}", s.steps);
        println!("unique model states covered: {}", s.states_covered);
        println!("divergences: {}", s.divergences);
        println!(
            "seconds: {:.2} replaying ({:.2} generating); {:.0} steps/s, {:.0} traces/s",
            s.seconds, s.generate_seconds, s.steps_per_second, s.traces_per_second
        );
        if let Some(p) = &written {
            println!("first divergent trace written to {}", p.display());
        }
    }
    if let Some(e) = &write_error {
        eprintln!("error: {e}");
    }
    Ok(s.divergences == 0 && write_error.is_none())
}

/// The id of this run in the names of the trace files it writes.
pub(crate) fn run_id() -> String {
    raft_model::trace::run_id(std::time::SystemTime::now(), std::process::id())
}

/// Writes `trace` as `DIR/<stem>-<run id>.json`, never replacing a file.
pub(crate) fn write_trace(dir: &Path, stem: &str, run_id: &str, trace: &Trace) -> Result<PathBuf> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{stem}-{run_id}.json"));
    let text = serde_json::to_string_pretty(trace).context("cannot serialise the trace")?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// [`write_trace`] for the trace of a finding: a failure to write it is
/// returned as a message (printed after the finding, exit 1), so the
/// finding itself is never lost.
pub(crate) fn write_finding(
    dir: &Path,
    stem: &str,
    run_id: &str,
    trace: &Trace,
) -> (Option<PathBuf>, Option<String>) {
    match write_trace(dir, stem, run_id, trace) {
        Ok(p) => (Some(p), None),
        Err(e) => (
            None,
            Some(format!(
                "the trace of the finding was not written: {}",
                error_chain(&e)
            )),
        ),
    }
}
