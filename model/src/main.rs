//! `raft-model`: check, simulate, explore and benchmark the Raft model.

mod bench;
mod cli;
mod explore;
mod report;
mod run;
mod shrink;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command, RunArgs, Strategy};
use raft_model::RaftModel;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// An operation that failed (exit 1), as opposed to bad input or usage
/// (exit 2, every other error): see `cli::EXIT_CODES`.
#[derive(Debug)]
struct Failed(anyhow::Error);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Failed {}

/// Marks `e` as a failed operation (exit 1).
fn failed(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Failed(e))
}

/// The exit code of an error: 1 for a failed operation, 2 for bad input.
fn error_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<Failed>()) {
        1
    } else {
        2
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // No colour codes in logs that go to a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // clap prints usage errors itself and exits 2.
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .expect("a subcommand is required");
    // A panic is an internal failure: exit 1 like any failed operation
    // (the panic message has been printed already), not Rust's 101.
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli.command, &sub)));
    match result {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(error_code(&e))
        }
        Err(_) => {
            eprintln!("error: internal failure (the panic above)");
            ExitCode::from(1)
        }
    }
}

fn dispatch(command: Command, sub: &clap::ArgMatches) -> Result<u8> {
    match command {
        Command::Check(args) => {
            let cfg = args.bounds.to_config(sub).map_err(anyhow::Error::msg)?;
            check("check", cfg, args.strategy, args.seed, &args.run)
        }
        Command::Simulate(args) => {
            let cfg = args.bounds.to_config(sub).map_err(anyhow::Error::msg)?;
            check("simulate", cfg, Strategy::Simulate, args.seed, &args.run)
        }
        Command::Explore(args) => {
            let cfg = args.bounds.to_config(sub).map_err(anyhow::Error::msg)?;
            explore::serve(RaftModel::new(cfg), &args.addr)?;
            Ok(0)
        }
        Command::Bench(args) => bench::run(&args),
        Command::Diagram(args) => {
            let trace = raft_model::trace::Trace::read(&args.trace)?;
            // What raft-conform replay refuses is refused here too, before
            // drawing could index out of range.
            trace.check().map_err(|reason| {
                anyhow::anyhow!("{}: not a drawable trace: {reason}", args.trace.display())
            })?;
            println!("{}", raft_model::svg::diagram_of_trace(&trace));
            Ok(0)
        }
    }
}

fn seconds(flag: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds, got {s}"))
}

fn check(
    command: &'static str,
    cfg: raft_model::Config,
    strategy: Strategy,
    seed: u64,
    run_args: &RunArgs,
) -> Result<u8> {
    if run_args.threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    let mut timeout = run_args
        .timeout
        .map(|t| seconds("--timeout", t))
        .transpose()?;
    if strategy == Strategy::Simulate && timeout.is_none() {
        timeout = Some(Duration::from_secs(10));
    }
    if !(run_args.progress_every.is_finite() && run_args.progress_every >= 0.0) {
        anyhow::bail!(
            "--progress-every must be 0 (never) or a positive number of seconds, got {}",
            run_args.progress_every
        );
    }
    let progress_every = if run_args.progress_every > 0.0 {
        Some(seconds("--progress-every", run_args.progress_every)?)
    } else {
        None
    };
    let run_id = raft_model::trace::run_id(std::time::SystemTime::now(), std::process::id());
    let model = RaftModel::new(cfg);
    let opts = run::RunOptions {
        strategy,
        threads: run_args.threads,
        timeout,
        symmetry: !run_args.no_symmetry,
        seed,
        shrink: !run_args.no_shrink,
        progress_every,
    };
    let outcome = run::run(&model, &opts);
    let input = report::ReportInput {
        command,
        strategy,
        symmetry: opts.symmetry,
        threads: opts.threads,
        trace_dir: &run_args.trace_dir,
        addr: &run_args.addr,
        allow_missing_examples: run_args.allow_missing_examples,
        run_id: &run_id,
    };
    let report = report::build(&model, &input, &outcome).map_err(failed)?;
    if run_args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render_text(&report));
    }
    if run_args.json {
        // The text report lists its errors; next to JSON they go to stderr.
        for e in &report.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(report.exit_code as u8)
}
