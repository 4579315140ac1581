//! raft-conform: conformance between the Raft model and the real implementation.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use raft_conformance::cluster::data_root;
use raft_conformance::generate::{self, trace_from_actions};
use raft_conformance::replay::{self, replay_all, BatchResult};
use raft_conformance::validate;
use raft_model::trace::{Trace, TraceKind};
use raft_model::{Config, RaftModel};
use raftkv::node::ImplBug;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    /// Run real nodes under seeded random events and check every step against the model.
    Validate(ValidateArgs),
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
    #[arg(long, default_value_t = 8)]
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
    #[arg(long, default_value_t = 9)]
    depth: usize,
    /// Number of seeded random walks.
    #[arg(long, default_value_t = 400)]
    walks: usize,
    /// Length of each random walk.
    #[arg(long, default_value_t = 40)]
    walk_len: usize,
    /// Seed of the random walks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Model bounds preset to start from: ci (small, the default) or default
    /// (those of `raft-model check`). The flags below override single bounds.
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
    /// Seconds the model checker may spend looking for reachability examples
    /// that the BFS did not reach.
    #[arg(long, default_value_t = 60)]
    examples_timeout: u64,
    /// Write the first divergent trace here (as a trace file `replay` reads).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct ValidateArgs {
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
    /// Where to write the trace of the first run the model does not allow
    /// (kind "recorded"). Default: the current directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
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
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
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

fn run_config(a: &RunArgs) -> Result<Config> {
    let mut cfg = if a.bounds == "default" {
        Config::default()
    } else {
        Config::ci()
    };
    let set = |slot: &mut u8, v: Option<u8>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut cfg.servers, a.servers);
    set(&mut cfg.max_term, a.max_term);
    set(&mut cfg.max_requests, a.max_requests);
    set(&mut cfg.max_inflight, a.max_inflight);
    set(&mut cfg.max_restarts, a.max_restarts);
    set(&mut cfg.max_partitions, a.max_partitions);
    set(&mut cfg.max_duplicates, a.max_duplicates);
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid model bounds: {e}"))?;
    Ok(cfg)
}

fn cmd_run(a: RunArgs) -> Result<bool> {
    let cfg = run_config(&a)?;
    let model = RaftModel::new(cfg);
    let started = Instant::now();
    let gen = generate::bfs(&model, a.depth);
    let mut traces = Vec::new();
    for (i, p) in gen.leaf_paths.iter().enumerate() {
        let t = trace_from_actions(&model, TraceKind::Walk, None, p).map_err(anyhow::Error::msg)?;
        traces.push((format!("bfs leaf {i}"), t));
    }
    let bfs_traces = traces.len();
    for (i, w) in generate::random_walks(&model, a.walks, a.walk_len, a.seed)
        .iter()
        .enumerate()
    {
        let t = trace_from_actions(&model, TraceKind::Walk, None, w).map_err(anyhow::Error::msg)?;
        traces.push((format!("walk {i} (seed {})", a.seed), t));
    }
    let mut examples = gen.examples.clone();
    let have: BTreeSet<&'static str> = examples.keys().copied().collect();
    examples.extend(generate::checker_examples(
        &model,
        &have,
        Duration::from_secs(a.examples_timeout),
    ));
    for (name, p) in &examples {
        let t = trace_from_actions(&model, TraceKind::Example, Some(name.to_string()), p)
            .map_err(anyhow::Error::msg)?;
        traces.push((format!("example {name}"), t));
    }
    let missing: Vec<&str> = raft_model::properties::SOMETIMES
        .iter()
        .copied()
        .filter(|n| !examples.contains_key(n))
        .collect();
    let gen_seconds = started.elapsed().as_secs_f64();
    // Keep the first divergent trace to write out.
    let keep: Vec<(String, Trace)> = if a.out.is_some() {
        traces.clone()
    } else {
        Vec::new()
    };
    let rt = runtime(a.common.threads)?;
    let batch = rt.block_on(replay_all(
        traces,
        a.common.impl_bug,
        a.common.jobs,
        data_root(),
    ))?;
    let seconds = batch.elapsed.as_secs_f64();
    let written = match (&a.out, batch.divergences.first()) {
        (Some(dir), Some((i, _))) => Some(write_trace(dir, "divergence", &keep[*i].1)?),
        _ => None,
    };
    let steps_per_sec = batch.steps as f64 / seconds.max(1e-9);
    if a.common.json {
        let v = serde_json::json!({
            "traces": batch.traces,
            "steps": batch.steps,
            "states_covered": batch.covered.len(),
            "divergences": batch.divergences.len(),
            "seconds": seconds,
            "steps_per_second": steps_per_sec,
            "traces_per_second": batch.traces as f64 / seconds.max(1e-9),
            "generate_seconds": gen_seconds,
            "bfs_depth": a.depth,
            "bfs_unique_states": gen.unique_states,
            "bfs_complete": gen.complete,
            "bfs_traces": bfs_traces,
            "walks": a.walks,
            "examples": examples.keys().collect::<Vec<_>>(),
            "examples_unreached": missing,
            "impl_bug": a.common.impl_bug.map(|b| b.name()),
            "bounds": model.cfg,
            "first_divergence": batch.divergences.first().map(|(_, d)| d),
            "divergent_trace_file": written,
        });
        println!("{v}");
    } else {
        print_divergences(&batch, 1);
        println!(
            "traces: {} ({} BFS leaves to depth {} over {} unique model states{}, {} walks, {} examples)",
            batch.traces,
            bfs_traces,
            a.depth,
            gen.unique_states,
            if gen.complete { ", complete" } else { "" },
            a.walks,
            examples.len()
        );
        if !missing.is_empty() {
            println!(
                "reachability examples not reached at these bounds: {}",
                missing.join(", ")
            );
        }
        println!("steps: {}", batch.steps);
        println!("unique model states covered: {}", batch.covered.len());
        println!("divergences: {}", batch.divergences.len());
        println!(
            "seconds: {seconds:.2} replaying ({gen_seconds:.2} generating); {steps_per_sec:.0} steps/s, {:.0} traces/s",
            batch.traces as f64 / seconds.max(1e-9)
        );
        if let Some(p) = &written {
            println!("first divergent trace written to {}", p.display());
        }
    }
    Ok(batch.divergences.is_empty())
}

fn write_trace(dir: &Path, stem: &str, trace: &Trace) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{stem}.json"));
    trace
        .write(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn cmd_validate(a: ValidateArgs) -> Result<bool> {
    let rt = runtime(a.common.threads)?;
    let root = data_root();
    let started = Instant::now();
    let bug = a.common.impl_bug;
    let servers = a.servers;
    let steps = a.steps;
    let seeds: Vec<u64> = (a.first_seed..a.first_seed + a.seeds).collect();
    let jobs = a.common.jobs.max(1);
    let outcomes = rt.block_on(async move {
        let mut results = Vec::new();
        for chunk in seeds.chunks(jobs) {
            let mut set = tokio::task::JoinSet::new();
            for &seed in chunk {
                let root = root.clone();
                set.spawn(
                    async move { validate::validate(servers, steps, seed, bug, &root).await },
                );
            }
            let mut batch = Vec::new();
            while let Some(r) = set.join_next().await {
                batch.push(r.context("validation task failed")??);
            }
            batch.sort_by_key(|o| o.seed);
            let stop = batch.iter().any(|o| o.violation.is_some());
            results.extend(batch);
            // Stop at the first chunk with a violation: the report is the first one.
            if stop {
                break;
            }
        }
        anyhow::Ok(results)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let total_steps: usize = outcomes.iter().map(|o| o.steps).sum();
    let first = outcomes.iter().find(|o| o.violation.is_some());
    let written = match first {
        Some(o) => Some(write_trace(
            &a.out,
            &format!("recorded-seed-{}", o.seed),
            &o.trace,
        )?),
        None => None,
    };
    if a.common.json {
        let v = serde_json::json!({
            "runs": outcomes.len(),
            "steps": total_steps,
            "violations": outcomes.iter().filter(|o| o.violation.is_some()).count(),
            "seconds": seconds,
            "steps_per_second": total_steps as f64 / seconds.max(1e-9),
            "impl_bug": bug.map(|b| b.name()),
            "first_violation": first.and_then(|o| o.violation.as_ref()),
            "recorded_trace_file": written,
        });
        println!("{v}");
    } else {
        if let (Some(o), Some(p)) = (first, &written) {
            print!("{}", o.violation.as_ref().expect("first has a violation"));
            println!("recorded trace written to {}", p.display());
        }
        println!(
            "{} runs, {} steps, {} violations, {seconds:.2} s ({:.0} steps/s)",
            outcomes.len(),
            total_steps,
            outcomes.iter().filter(|o| o.violation.is_some()).count(),
            total_steps as f64 / seconds.max(1e-9)
        );
    }
    Ok(first.is_none())
}
