//! The report of a check: trace files, the JSON document and the text form.

use crate::cli::Strategy;
use crate::run::{Discovery, Outcome, StopReason};
use anyhow::{Context, Result};
use raft_model::svg::header::explore_command;
use raft_model::svg::{describe_action, describe_server};
use raft_model::trace::{AbstractState, Trace, TraceKind, TraceStep};
use raft_model::{Config, RaftModel};
use serde::Serialize;
use stateright::{Expectation, Model, Path};
use std::fmt::Write as _;
use std::path::{Path as FsPath, PathBuf};

/// The JSON report (docs/checking.md documents every key).
#[derive(Debug, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub strategy: &'static str,
    /// Whether symmetry reduction was actually applied.
    pub symmetry: bool,
    pub threads: usize,
    pub bounds: Config,
    pub complete: bool,
    pub stop_reason: &'static str,
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    pub states_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
    pub shrink_seconds: f64,
    pub properties: Vec<PropertyReport>,
    pub notes: Vec<String>,
    /// Properties left out of this check because they cannot mean anything
    /// at its bounds (`raft_model::properties::not_checked`), each with the
    /// reason: absent from `properties`, never a pass.
    pub not_checked: Vec<NotChecked>,
    /// Shared by every trace file of this run (`<kind>-<Property>-<run_id>.json`).
    pub run_id: String,
    /// What went wrong that is not a property's status: no leader was ever
    /// elected, a trace file could not be written. Listed by the text
    /// report; next to a JSON report they also go to stderr.
    pub errors: Vec<String>,
    pub exit_code: i32,
}

/// A property that was not checked, and why.
#[derive(Debug, Serialize)]
pub struct NotChecked {
    pub name: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct PropertyReport {
    pub name: &'static str,
    pub expectation: &'static str,
    pub status: &'static str,
    /// Path of the trace file, or null.
    pub trace: Option<String>,
    /// Steps of the reported (shrunk) trace.
    pub steps: Option<usize>,
    /// Steps of the path the checker returned.
    pub original_steps: Option<usize>,
    /// True when a bounded BFS proved no shorter trace exists.
    pub shortest_proven: Option<bool>,
    pub explorer: Option<String>,
    /// The `raft-model explore` command (same bounds, same `--addr`) that
    /// serves the `explorer` link; an Explorer on other bounds would show
    /// another path or none.
    pub explorer_command: Option<String>,
    #[serde(skip)]
    pub listing: Option<String>,
}

pub struct ReportInput<'a> {
    pub command: &'static str,
    pub strategy: Strategy,
    pub symmetry: bool,
    pub threads: usize,
    pub trace_dir: &'a FsPath,
    pub addr: &'a str,
    pub allow_missing_examples: bool,
    /// Names this run's trace files (`raft_model::trace::run_id`).
    pub run_id: &'a str,
}

/// Builds the report, writing one trace file per discovery.
pub fn build(model: &RaftModel, input: &ReportInput, outcome: &Outcome) -> Result<Report> {
    let mut notes = Vec::new();
    let symmetry = input.symmetry && input.strategy != Strategy::Bfs;
    if input.symmetry && input.strategy == Strategy::Bfs {
        notes.push(
            "symmetry reduction is not applied: stateright 0.31's BFS ignores it (use dfs)".into(),
        );
    }
    if input.strategy == Strategy::Simulate {
        notes.push(
            "random walks are never an exhaustive search: `holds` means no violation was met"
                .into(),
        );
    }
    match outcome.stop {
        StopReason::Violation => notes.push(
            "the search stopped at the first safety violation: other properties were not \
             checked to the end"
                .into(),
        ),
        StopReason::Timeout if input.strategy != Strategy::Simulate => notes
            .push("the time limit ended the search: `holds` covers only the states visited".into()),
        _ => {}
    }

    let mut properties = Vec::new();
    let mut errors = Vec::new();
    // A trace file that cannot be written is reported, and the finding is
    // still printed in full (the listing goes to stdout either way).
    let dir_error = if outcome.discoveries.is_empty() {
        None
    } else {
        let dir = input.trace_dir;
        if dir.exists() && !dir.is_dir() {
            Some(anyhow::anyhow!(
                "--trace-dir {} is not a directory",
                dir.display()
            ))
        } else {
            std::fs::create_dir_all(dir)
                .with_context(|| {
                    format!(
                        "cannot create trace directory {}",
                        input.trace_dir.display()
                    )
                })
                .err()
        }
    };
    if let Some(e) = &dir_error {
        errors.push(format!("{e:#}"));
    }
    for p in model.properties() {
        let always = p.expectation == Expectation::Always;
        let expectation = if always { "always" } else { "sometimes" };
        let mut pr = PropertyReport {
            name: p.name,
            expectation,
            status: match (always, outcome.discoveries.contains_key(p.name)) {
                (true, true) => "violated",
                (true, false) => "holds",
                (false, true) => "found",
                (false, false) => "not_found",
            },
            trace: None,
            steps: None,
            original_steps: None,
            shortest_proven: None,
            explorer: None,
            explorer_command: None,
            listing: None,
        };
        if let Some(d) = outcome.discoveries.get(p.name) {
            let kind = if always {
                TraceKind::Counterexample
            } else {
                TraceKind::Example
            };
            let trace = to_trace(model, kind, p.name, &d.actions)?;
            let file = trace_path(input.trace_dir, kind, p.name, input.run_id);
            let written = if dir_error.is_some() {
                Err("its directory could not be created".to_string())
            } else {
                write_new(&trace, &file)
                    .with_context(|| format!("cannot write trace file {}", file.display()))
                    .map_err(|e| {
                        let e = format!("{e:#}");
                        errors.push(e.clone());
                        e
                    })
            };
            let link = explorer_link(model, input.addr, &d.actions);
            let command = explore_command(&model.cfg, input.addr);
            let shown = match &written {
                Ok(()) => file.display().to_string(),
                Err(e) => format!("NOT WRITTEN ({}: {e})", file.display()),
            };
            pr.listing = Some(listing(p.name, kind, &trace, d, &shown, (&link, &command)));
            pr.trace = written.ok().map(|()| file.display().to_string());
            pr.steps = Some(d.actions.len());
            pr.original_steps = Some(d.original_len);
            pr.shortest_proven = Some(d.proven_shortest);
            pr.explorer = Some(link);
            pr.explorer_command = Some(command);
        }
        properties.push(pr);
    }

    let violated = properties.iter().any(|p| p.status == "violated");
    // A check in which no leader is ever elected cannot be meaningful:
    // nothing is committed, replicated or overwritten. It fails whatever
    // --allow-missing-examples says (unless a violation already fails it).
    let no_leader = !violated
        && properties
            .iter()
            .any(|p| p.name == "LeaderElected" && p.status == "not_found");
    if no_leader {
        errors.push(no_leader_message(&model.cfg, input.strategy, outcome));
    }
    let write_failed = properties
        .iter()
        .any(|p| p.steps.is_some() && p.trace.is_none());
    let missing =
        !input.allow_missing_examples && properties.iter().any(|p| p.status == "not_found");
    let exit_code = if violated || no_leader || write_failed {
        1
    } else if input.strategy == Strategy::Simulate {
        // A walk budget ran out, as intended: no violation met.
        0
    } else if !outcome.complete {
        2
    } else if missing {
        // A complete search without an example: the property is vacuous here.
        1
    } else {
        0
    };
    let secs = outcome.elapsed.as_secs_f64();
    Ok(Report {
        command: input.command,
        strategy: input.strategy.name(),
        symmetry,
        threads: input.threads,
        bounds: model.cfg.clone(),
        complete: outcome.complete,
        stop_reason: outcome.stop.name(),
        states: outcome.states,
        unique_states: outcome.unique_states,
        max_depth: outcome.max_depth,
        seconds: round3(secs),
        states_per_second: (outcome.states as f64 / secs.max(1e-9)).round(),
        peak_rss_bytes: outcome.peak_rss_bytes,
        shrink_seconds: round3(outcome.shrink_elapsed.as_secs_f64()),
        properties,
        notes,
        not_checked: raft_model::properties::not_checked(&model.cfg)
            .into_iter()
            .map(|(name, reason)| NotChecked { name, reason })
            .collect(),
        run_id: input.run_id.to_string(),
        errors,
        exit_code,
    })
}

/// Why the run elected no leader, naming the bound to raise.
fn no_leader_message(cfg: &Config, strategy: Strategy, outcome: &Outcome) -> String {
    let what = match (strategy, outcome.stop) {
        (Strategy::Simulate, _) => format!(
            "no random walk elected a leader within {:.2} s",
            outcome.elapsed.as_secs_f64()
        ),
        (_, StopReason::Timeout) => format!(
            "the search stopped at --timeout after {:.2} s before any leader was elected \
             ({} unique states visited): nothing was checked beyond that",
            outcome.elapsed.as_secs_f64(),
            outcome.unique_states
        ),
        _ => "no leader is ever elected at these bounds, so the check is vacuous".to_string(),
    };
    let hint = match cfg.election_blocker() {
        Some(b) => b,
        None if strategy == Strategy::Simulate || outcome.stop == StopReason::Timeout => {
            "raise --timeout, or lower the bounds (--servers, --max-requests, --max-restarts, \
             --max-partitions) so that the search reaches an election sooner"
                .to_string()
        }
        None => "raise --max-inflight or --max-term".to_string(),
    };
    format!("no leader elected: {what}; {hint}")
}

/// Writes `trace` to `file`, refusing to replace an existing file (a run id
/// never repeats, so this only guards against a clash).
fn write_new(trace: &Trace, file: &FsPath) -> std::io::Result<()> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(trace).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn trace_path(dir: &FsPath, kind: TraceKind, property: &str, run_id: &str) -> PathBuf {
    let kind = match kind {
        TraceKind::Counterexample => "counterexample",
        TraceKind::Example => "example",
        TraceKind::Walk => "walk",
        TraceKind::Recorded => "recorded",
    };
    dir.join(format!("{kind}-{property}-{run_id}.json"))
}

/// The trace of `actions` from the initial state, with every abstract state.
pub fn to_trace(
    model: &RaftModel,
    kind: TraceKind,
    property: &str,
    actions: &[raft_model::types::Action],
) -> Result<Trace> {
    let states = crate::run::replay(model, actions)
        .context("internal error: a discovered path does not replay through the model")?;
    let steps = actions
        .iter()
        .zip(&states[1..])
        .map(|(a, s)| TraceStep {
            action: a.clone(),
            state: s.to_abstract(),
        })
        .collect();
    Ok(Trace::new(
        kind,
        Some(property.to_string()),
        model.cfg.clone(),
        states[0].to_abstract(),
        steps,
    ))
}

pub fn explorer_link(
    model: &RaftModel,
    addr: &str,
    actions: &[raft_model::types::Action],
) -> String {
    let init = model.init_states().remove(0);
    match Path::from_actions(model, init, actions) {
        Some(path) => format!(
            "http://{addr}/#/steps/{}?bounds={}",
            path.encode(model),
            raft_model::svg::header::bounds_tag(&model.cfg)
        ),
        None => format!("http://{addr}/"),
    }
}

/// The numbered steps of a discovery; after each step, the servers it
/// changed. `explorer` is the link and the command that serves it.
fn listing(
    name: &str,
    kind: TraceKind,
    trace: &Trace,
    d: &Discovery,
    file: &str,
    (link, command): (&str, &str),
) -> String {
    let mut out = String::new();
    let what = if kind == TraceKind::Counterexample {
        "Counterexample"
    } else {
        "Example"
    };
    let shrunk = if d.original_len != d.actions.len() {
        format!(", shrunk from {}", d.original_len)
    } else {
        String::new()
    };
    let proven = if d.proven_shortest {
        "; no shorter trace exists"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{what} for {name}: {} steps{shrunk}{proven}",
        d.actions.len()
    );
    let meaning = raft_model::properties::meaning(name);
    if !meaning.is_empty() {
        let _ = writeln!(out, "  {name}: {meaning}");
    }
    let _ = writeln!(out, "  trace file: {file}");
    let _ = writeln!(
        out,
        "  explorer:   {link}\n              (serve it with: {command})"
    );
    let _ = writeln!(out, "   0. initial state");
    for (i, s) in trace.initial.servers.iter().enumerate() {
        let _ = writeln!(out, "        {}", describe_server(i, s));
    }
    let mut before: &AbstractState = &trace.initial;
    for (k, step) in trace.steps.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {}", k + 1, describe_action(&step.action));
        for (i, s) in step.state.servers.iter().enumerate() {
            if before.servers.get(i) != Some(s) {
                let _ = writeln!(out, "        {}", describe_server(i, s));
            }
        }
        before = &step.state;
    }
    out
}

/// The text report.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let b = &r.bounds;
    let _ = writeln!(
        out,
        "raft-model {}: {} servers, max term {}, max requests {}, max in flight {}, \
         max restarts {}, max partitions {}, max duplicates {}, max snapshots {}, {:?} network, \
         persist {}, bug {}",
        r.command,
        b.servers,
        b.max_term,
        b.max_requests,
        b.max_inflight,
        b.max_restarts,
        b.max_partitions,
        b.max_duplicates,
        b.max_snapshots,
        b.network,
        b.persist,
        b.bug.map_or("none".to_string(), |b| b.to_string())
    );
    let _ = writeln!(
        out,
        "strategy {}, symmetry {}, {} thread(s)",
        r.strategy,
        if r.symmetry { "on" } else { "off" },
        r.threads
    );
    let _ = writeln!(out);
    for p in &r.properties {
        if let Some(listing) = &p.listing {
            let _ = writeln!(out, "{listing}");
        }
    }
    let _ = writeln!(
        out,
        "search complete: {} ({})",
        if r.complete { "yes" } else { "NO" },
        r.stop_reason
    );
    let _ = writeln!(
        out,
        "states {}  unique states {}  max depth {}  {:.2} s  {:.0} states/s  peak memory {}",
        r.states,
        r.unique_states,
        r.max_depth,
        r.seconds,
        r.states_per_second,
        r.peak_rss_bytes.map_or("unknown".to_string(), |b| format!(
            "{:.1} MB",
            b as f64 / 1e6
        ))
    );
    let _ = writeln!(out, "properties:");
    for p in &r.properties {
        let status = match p.status {
            "not_found" => "NOT FOUND",
            "violated" => "VIOLATED",
            s => s,
        };
        let extra = match (&p.trace, p.steps) {
            (Some(t), Some(n)) => format!("  {n} steps: {t}"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {:<9} {:<26} {status}{extra}", p.expectation, p.name);
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for p in &r.not_checked {
        let _ = writeln!(out, "note: {} not checked: {}", p.name, p.reason);
    }
    for e in &r.errors {
        let _ = writeln!(out, "error: {e}");
    }
    if r.properties.iter().any(|p| p.trace.is_some()) {
        let _ = writeln!(out, "run id: {} (in every trace file name)", r.run_id);
    }
    let verdict = match r.exit_code {
        0 => "OK",
        1 => "FAILED",
        _ => "INCOMPLETE",
    };
    let _ = writeln!(out, "result: {verdict} (exit {})", r.exit_code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn outcome(stop: StopReason) -> Outcome {
        Outcome {
            complete: stop == StopReason::Exhausted,
            stop,
            states: 10,
            unique_states: 7,
            max_depth: 3,
            elapsed: Duration::from_millis(1500),
            peak_rss_bytes: None,
            discoveries: HashMap::new(),
            shrink_elapsed: Duration::ZERO,
        }
    }

    fn report(cfg: Config, strategy: Strategy, stop: StopReason, allow: bool) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let input = ReportInput {
            command: "check",
            strategy,
            symmetry: true,
            threads: 1,
            trace_dir: dir.path(),
            addr: "127.0.0.1:3000",
            allow_missing_examples: allow,
            run_id: "test",
        };
        build(&RaftModel::new(cfg), &input, &outcome(stop)).unwrap()
    }

    #[test]
    fn a_timeout_before_any_leader_is_a_failure_that_says_so() {
        // Before, a timeout was always "incomplete" (exit 2), even when
        // nothing at all had been shown.
        let r = report(Config::default(), Strategy::Dfs, StopReason::Timeout, true);
        assert_eq!(r.exit_code, 1);
        let e = &r.errors[0];
        assert!(e.contains("stopped at --timeout after 1.50 s"), "{e}");
        assert!(e.contains("before any leader was elected"), "{e}");
        assert!(e.contains("raise --timeout"), "{e}");
    }

    #[test]
    fn no_leader_fails_whatever_allow_missing_examples_says() {
        let cfg = Config {
            servers: 7,
            ..Config::default()
        };
        for allow in [false, true] {
            let r = report(cfg.clone(), Strategy::Dfs, StopReason::Exhausted, allow);
            assert_eq!(r.exit_code, 1);
            assert!(
                r.errors[0].contains("--max-inflight to at least 6"),
                "{r:?}"
            );
        }
        let r = report(cfg, Strategy::Simulate, StopReason::Timeout, true);
        assert_eq!(r.exit_code, 1);
        assert!(r.errors[0].contains("no random walk"), "{:?}", r.errors);
    }

    #[test]
    fn properties_that_cannot_mean_anything_are_listed_as_not_checked() {
        let names = |r: &Report| -> Vec<&str> { r.not_checked.iter().map(|p| p.name).collect() };
        let in_props = |r: &Report, n: &str| r.properties.iter().any(|p| p.name == n);
        let r = report(
            Config::default(),
            Strategy::Dfs,
            StopReason::Exhausted,
            true,
        );
        assert_eq!(names(&r), ["MinorityNoCommit", "LeaderDeposedByPartition"]);
        assert!(!in_props(&r, "MinorityNoCommit") && !in_props(&r, "LeaderDeposedByPartition"));
        let text = render_text(&r);
        assert!(
            text.contains("note: MinorityNoCommit not checked: --max-partitions 0"),
            "{text}"
        );
        let cfg = Config {
            max_partitions: 1,
            max_snapshots: 0,
            persist: raft_model::PersistMode::Sync,
            ..Config::default()
        };
        let r = report(cfg, Strategy::Dfs, StopReason::Exhausted, true);
        assert_eq!(
            names(&r),
            ["LeaderCommitsBeforeOwnPersist", "InstallSnapshotInstalled"]
        );
        assert!(in_props(&r, "MinorityNoCommit") && in_props(&r, "LeaderDeposedByPartition"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["not_checked"][1]["name"], "InstallSnapshotInstalled");
        assert!(json["not_checked"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("--max-snapshots 0"));
    }

    #[test]
    fn run_ids_are_utc_times_and_process_ids() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_796_190_010);
        assert_eq!(raft_model::trace::run_id(t, 42), "20261202T054010Z-p42");
        let leap = std::time::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(raft_model::trace::run_id(leap, 1), "20000229T000000Z-p1");
    }
}
