//! raft-conform: conformance between the Raft model and the real implementation.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use raft_conformance::cluster::data_root;
use raft_conformance::replay::{self, replay_all, BatchResult};
use raft_conformance::runner::{self, RunOptions};
use raft_conformance::validate;
use raft_model::trace::Trace;
use raft_model::Config;
use raftkv::node::ImplBug;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Model-based conformance for raftkv.
///
/// `replay` runs trace files (from `raft-model check --trace-dir`, or
/// recorded by `validate`) on a cluster of real raftkv nodes and compares the
/// abstract state after every step. `run` generates the traces from the model
/// itself and replays them. `validate` goes the other way: real nodes under
/// random events, every step checked against the model.
///
/// Exit status: 0 = everything conforms, 1 = a divergence was found,
/// 2 = bad arguments, unreadable or malformed input, or a harness failure.
///
/// Node data directories (real FileStorage) go under /dev/shm when it is
/// writable, else the system temp dir; RAFT_CONFORM_DATA_DIR overrides.
#[derive(Parser, Debug)]
#[command(name = "raft-conform", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay trace files on real nodes; report the first divergent step of each.
    Replay(ReplayArgs),
    /// Generate traces from the model (BFS to a depth, random walks, reachability
    /// examples) and replay them all. With no flags: the CI bounds.
    Run(RunArgs),
    /// Run real nodes under seeded random events and check every step against
    /// the model, or (--trace) validate recorded steps.
    Validate(ValidateArgs),
    /// Enumerate the model's reachable states (the search of `raft-model
    /// check`) and execute every single-server transition on the
    /// implementation's core. With no flags: the CI bounds.
    Transitions(TransitionsArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Run the implementation with a seeded protocol bug (to prove the harness
    /// catches it): commit-old-term, no-persist-vote, truncate-on-match,
    /// accept-stale-response, vote-without-log-check.
    #[arg(long, value_name = "NAME")]
    impl_bug: Option<ImplBug>,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    json: bool,
    /// Traces replayed at once (each on its own cluster).
    #[arg(long, default_value_t = runner::DEFAULT_JOBS)]
    jobs: usize,
    /// Worker threads of the async runtime (default: number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Trace files (JSON, docs/trace-format.md).
    #[arg(required = true, value_name = "TRACE.json")]
    traces: Vec<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// BFS depth: a trace to every unique model state within this many steps.
    #[arg(long, default_value_t = runner::DEFAULT_DEPTH)]
    depth: usize,
    /// Number of seeded random walks.
    #[arg(long, default_value_t = runner::DEFAULT_WALKS)]
    walks: usize,
    /// Length of each random walk.
    #[arg(long, default_value_t = runner::DEFAULT_WALK_LEN)]
    walk_len: usize,
    /// Seed of the random walks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Model bounds preset to start from: ci (the default: the model's CI
    /// bounds with 3 messages in flight) or default (those of
    /// `raft-model check`). The flags below override single bounds.
    #[arg(long, default_value = "ci", value_parser = ["ci", "default"])]
    bounds: String,
    #[arg(long)]
    servers: Option<u8>,
    #[arg(long)]
    max_term: Option<u8>,
    #[arg(long)]
    max_requests: Option<u8>,
    #[arg(long)]
    max_inflight: Option<u8>,
    #[arg(long)]
    max_restarts: Option<u8>,
    #[arg(long)]
    max_partitions: Option<u8>,
    #[arg(long)]
    max_duplicates: Option<u8>,
    /// sync or async (docs/protocol.md §7).
    #[arg(long, value_parser = ["sync", "async"])]
    persist: Option<String>,
    /// Seconds the model checker may spend looking for reachability examples
    /// that the BFS did not reach.
    #[arg(long, default_value_t = runner::DEFAULT_EXAMPLES_TIMEOUT)]
    examples_timeout: u64,
    /// Write the first divergent trace here (as a trace file `replay` reads).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// Validate recorded steps (NDJSON, docs/trace-format.md "Recorded
    /// steps", e.g. from `raftkv serve --trace`) instead of running nodes.
    /// Several files are merged in the order given.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    trace: Vec<PathBuf>,
    /// Number of seeded runs (seeds first-seed .. first-seed + N).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Events per run.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    servers: u8,
    /// Timers of the seeded runs. manual: the harness picks every event
    /// (one step per event, a Persist after each, every step checked from
    /// the state before it, then the recorded steps validated). real: the
    /// production node loop on its own timers under paused time, on the
    /// unreliable in-memory network, with proposals, partitions and crashes
    /// that lose unsynced writes; the recorded steps are validated with one
    /// carried model state (--steps = schedule events per run).
    #[arg(long, default_value = "manual", value_parser = ["manual", "real"])]
    timers: String,
    /// Where to write the trace of the first run the model does not allow
    /// (manual: kind "recorded"; real: the recorded steps as NDJSON, which
    /// `validate --trace` reads). Default: the current directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct TransitionsArgs {
    /// Model bounds preset: ci (the default: the model's CI bounds) or
    /// default (those of `raft-model check`). The flags below override
    /// single bounds.
    #[arg(long, default_value = "ci", value_parser = ["ci", "default"])]
    bounds: String,
    #[arg(long)]
    servers: Option<u8>,
    #[arg(long)]
    max_term: Option<u8>,
    #[arg(long)]
    max_requests: Option<u8>,
    #[arg(long)]
    max_inflight: Option<u8>,
    #[arg(long)]
    max_restarts: Option<u8>,
    #[arg(long)]
    max_partitions: Option<u8>,
    #[arg(long)]
    max_duplicates: Option<u8>,
    /// unordered or ordered (per-link FIFO).
    #[arg(long, value_parser = ["unordered", "ordered"])]
    network: Option<String>,
    /// sync or async (docs/protocol.md §7; default async, as `raft-model check`).
    #[arg(long, value_parser = ["sync", "async"])]
    persist: Option<String>,
    /// Run the core with a seeded protocol bug (see `run --help`).
    #[arg(long, value_name = "NAME")]
    impl_bug: Option<ImplBug>,
    /// Stop after this many seconds (the result is then incomplete, exit 2).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Search threads (default: number of cores).
    #[arg(long, default_value_t = raft_conformance::transitions::default_threads())]
    threads: usize,
    /// Write the path to the first divergent transition here, as a trace
    /// file (`transitions-divergence.json`) that `replay` and
    /// `raft-model diagram` read.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    json: bool,
}

fn transitions_config(a: &TransitionsArgs) -> Result<Config> {
    let mut cfg = if a.bounds == "default" {
        Config::default()
    } else {
        raft_conformance::transitions::ci_bounds()
    };
    let set = |slot: &mut u8, v: Option<u8>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut cfg.servers, a.servers);
    if let Some(v) = a.max_term {
        cfg.max_term = v.into();
    }
    if let Some(v) = a.max_requests {
        cfg.max_requests = v.into();
    }
    set(&mut cfg.max_inflight, a.max_inflight);
    set(&mut cfg.max_restarts, a.max_restarts);
    set(&mut cfg.max_partitions, a.max_partitions);
    set(&mut cfg.max_duplicates, a.max_duplicates);
    if let Some(p) = &a.persist {
        cfg.persist = persist_mode(p);
    }
    if let Some(net) = &a.network {
        cfg.network = if net == "ordered" {
            raft_model::NetworkKind::Ordered
        } else {
            raft_model::NetworkKind::Unordered
        };
    }
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid model bounds: {e}"))?;
    Ok(cfg)
}

fn cmd_transitions(a: TransitionsArgs) -> Result<bool> {
    use raft_conformance::transitions::{check_transitions, TransitionsOptions};
    if a.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let timeout = match a.timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            anyhow::bail!("--timeout must be a positive number of seconds")
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    let opts = TransitionsOptions {
        bounds: transitions_config(&a)?,
        bug: a.impl_bug,
        threads: a.threads,
        timeout,
    };
    let s = check_transitions(&opts).map_err(anyhow::Error::msg)?;
    let written = match &s.divergent_trace {
        Some(t) => Some(write_trace(&a.out, "transitions-divergence", t)?),
        None => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&s).context("cannot serialise the summary")?;
        v["divergent_trace_file"] = serde_json::json!(written);
        println!("{v}");
    } else {
        if let Some(d) = &s.first_divergence {
            println!("{d}");
        }
        if let Some(p) = &written {
            println!(
                "path to the divergent transition written to {}",
                p.display()
            );
        }
        println!(
            "{} states ({}), {} transitions generated, {} single-server transitions checked ({} executed on the core), max depth {}",
            s.states,
            if s.complete { "complete" } else { "incomplete" },
            s.generated,
            s.transitions,
            s.executed,
            s.max_depth
        );
        println!(
            "divergences: {}; {:.2} s ({:.0} transitions/s)",
            s.divergences, s.seconds, s.transitions_per_second
        );
    }
    if s.divergences == 0 && !s.complete {
        eprintln!("error: the search stopped at --timeout before it was complete");
        return Err(anyhow::anyhow!("incomplete: timed out"));
    }
    Ok(s.divergences == 0)
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(t) = threads {
        b.worker_threads(t.max(1));
    }
    b.build().context("cannot start the async runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Replay(a) => cmd_replay(a),
        Cmd::Run(a) => cmd_run(a),
        Cmd::Validate(a) => cmd_validate(a),
        Cmd::Transitions(a) => cmd_transitions(a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, skipping a cause whose text the previous
/// message already contains (library errors often embed their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn print_divergences(batch: &BatchResult, max: usize) {
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

fn cmd_replay(a: ReplayArgs) -> Result<bool> {
    // Read and check every file before running anything: a malformed file
    // is an input error (exit 2), not a divergence.
    let mut traces = Vec::new();
    for path in &a.traces {
        let trace = Trace::read(path)?;
        let label = path.display().to_string();
        replay::check_trace(&trace, &label)?;
        traces.push((label, trace));
    }
    let rt = runtime(a.common.threads)?;
    let batch = rt.block_on(replay_all(
        traces,
        a.common.impl_bug,
        a.common.jobs,
        data_root(),
    ))?;
    if a.common.json {
        let v = serde_json::json!({
            "traces": batch.traces,
            "steps": batch.steps,
            "states_covered": batch.covered.len(),
            "divergences": batch.divergences.len(),
            "seconds": batch.elapsed.as_secs_f64(),
            "first_divergence": batch.divergences.first().map(|(_, d)| d),
        });
        println!("{v}");
    } else {
        print_divergences(&batch, usize::MAX);
        println!(
            "{} traces, {} steps replayed, {} divergent",
            batch.traces,
            batch.steps,
            batch.divergences.len()
        );
    }
    Ok(batch.divergences.is_empty())
}

fn persist_mode(name: &str) -> raft_model::PersistMode {
    if name == "sync" {
        raft_model::PersistMode::Sync
    } else {
        raft_model::PersistMode::Async
    }
}

fn run_config(a: &RunArgs) -> Result<Config> {
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
    let set = |slot: &mut u8, v: Option<u8>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut cfg.servers, a.servers);
    if let Some(v) = a.max_term {
        cfg.max_term = v.into();
    }
    if let Some(v) = a.max_requests {
        cfg.max_requests = v.into();
    }
    set(&mut cfg.max_inflight, a.max_inflight);
    set(&mut cfg.max_restarts, a.max_restarts);
    set(&mut cfg.max_partitions, a.max_partitions);
    set(&mut cfg.max_duplicates, a.max_duplicates);
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid model bounds: {e}"))?;
    Ok(cfg)
}

fn cmd_run(a: RunArgs) -> Result<bool> {
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
    let s = rt.block_on(runner::run(&opts))?;
    let written = match (&a.out, &s.first_divergent_trace) {
        (Some(dir), Some(t)) => Some(write_trace(dir, "divergence", t)?),
        _ => None,
    };
    if a.common.json {
        let mut v = serde_json::to_value(&s).context("cannot serialise the summary")?;
        v["divergent_trace_file"] = serde_json::json!(written);
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
    Ok(s.divergences == 0)
}

fn write_trace(dir: &Path, stem: &str, trace: &Trace) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{stem}.json"));
    trace
        .write(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn cmd_validate_trace(a: &ValidateArgs) -> Result<bool> {
    let out = raft_conformance::recorded::validate_files(&a.trace)?;
    let violations = usize::from(out.violation.is_some());
    let rate = out.steps as f64 / out.seconds.max(1e-9);
    if a.common.json {
        let v = serde_json::json!({
            "files": a.trace.len(),
            "steps": out.steps,
            "model_steps": out.model_steps,
            "inferred_persists": out.inferred_persists,
            "servers": out.servers,
            "values": out.values,
            "violations": violations,
            "seconds": out.seconds,
            "steps_per_second": rate,
            "first_violation": out.violation,
        });
        println!("{v}");
    } else {
        if let Some(v) = &out.violation {
            print!("{v}");
        }
        println!(
            "{} files, {} records ({} model steps, {} servers, {} values), {} violations, {:.3} s ({:.0} steps/s)",
            a.trace.len(),
            out.steps,
            out.model_steps,
            out.servers,
            out.values,
            violations,
            out.seconds,
            rate
        );
    }
    Ok(violations == 0)
}

/// `validate --seeds N --timers real`.
fn cmd_validate_real(a: &ValidateArgs) -> Result<bool> {
    let bug = a.common.impl_bug;
    let seeds = a.first_seed..a.first_seed.saturating_add(a.seeds);
    let s = raft_conformance::real_timers::run_many(a.servers, a.steps, seeds, bug, a.common.jobs)?;
    let first = s.first();
    let written = match first.and_then(|o| o.ndjson.as_ref().map(|t| (o.seed, t))) {
        Some((seed, text)) => {
            std::fs::create_dir_all(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?;
            let p = a.out.join(format!("real-timers-seed-{seed}.ndjson"));
            match std::fs::write(&p, text) {
                Ok(()) => Some(p),
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", p.display());
                    None
                }
            }
        }
        None => None,
    };
    let records = s.records();
    let rate = records as f64 / s.seconds.max(1e-9);
    if a.common.json {
        let v = serde_json::json!({
            "timers": "real",
            "runs": s.outcomes.len(),
            "steps": records,
            "restarts": s.outcomes.iter().map(|o| o.restarts).sum::<usize>(),
            "proposals": s.outcomes.iter().map(|o| o.proposals).sum::<usize>(),
            "violations": s.violations(),
            "divergences": s.violations(),
            "seconds": s.seconds,
            "steps_per_second": rate,
            "impl_bug": bug.map(|b| b.name()),
            "first_violation": first.and_then(|o| o.violation.as_ref()),
            "recorded_trace_file": written,
        });
        println!("{v}");
    } else {
        if let Some(o) = first {
            if let Some(v) = &o.violation {
                println!("seed {}:", o.seed);
                print!("{v}");
            }
            if let Some(p) = &written {
                println!("recorded steps written to {}", p.display());
            }
        }
        println!(
            "{} runs (real timers), {} recorded steps, {} violations, {:.2} s ({:.0} steps/s)",
            s.outcomes.len(),
            records,
            s.violations(),
            s.seconds,
            rate
        );
    }
    Ok(first.is_none())
}

fn cmd_validate(a: ValidateArgs) -> Result<bool> {
    if !a.trace.is_empty() {
        return cmd_validate_trace(&a);
    }
    if a.seeds == 0 {
        anyhow::bail!("--seeds must be at least 1");
    }
    if a.common.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    if a.common.threads == Some(0) {
        anyhow::bail!("--threads must be at least 1");
    }
    if a.timers == "real" {
        return cmd_validate_real(&a);
    }
    let rt = runtime(a.common.threads)?;
    let bug = a.common.impl_bug;
    let seeds = a.first_seed..a.first_seed.saturating_add(a.seeds);
    let s = rt.block_on(validate::validate_many(
        a.servers,
        a.steps,
        seeds,
        bug,
        a.common.jobs,
        &data_root(),
    ))?;
    let first = s.first();
    let written = match first {
        Some(o) => Some(write_trace(
            &a.out,
            &format!("recorded-seed-{}", o.seed),
            &o.trace,
        )?),
        None => None,
    };
    let steps = s.steps();
    if a.common.json {
        let v = serde_json::json!({
            "runs": s.outcomes.len(),
            "steps": steps,
            "violations": s.violations(),
            "divergences": s.violations(),
            "seconds": s.seconds,
            "steps_per_second": steps as f64 / s.seconds.max(1e-9),
            "impl_bug": bug.map(|b| b.name()),
            "first_violation": first.and_then(|o| o.violation.as_ref()),
            "recorded_trace_file": written,
        });
        println!("{v}");
    } else {
        if let (Some(o), Some(p)) = (first, &written) {
            if let Some(v) = &o.violation {
                print!("{v}");
            }
            println!("recorded trace written to {}", p.display());
        }
        println!(
            "{} runs, {} steps, {} violations, {:.2} s ({:.0} steps/s)",
            s.outcomes.len(),
            steps,
            s.violations(),
            s.seconds,
            steps as f64 / s.seconds.max(1e-9)
        );
    }
    Ok(first.is_none())
}
