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
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod commands;
use commands::*;

/// Model-based conformance for raftkv.
///
/// `replay` runs trace files (from `raft-model check --trace-dir`, or
/// written by `run`, `validate` and `transitions`) on a cluster of real
/// raftkv nodes and compares the abstract state after every step. `run`
/// generates the traces from the model itself and replays them.
/// `transitions` executes every single-server transition of the model's
/// state graph on the implementation's core. `validate` goes the other way:
/// real nodes under random events (or recorded steps), every step checked
/// against the model.
///
/// Node data directories (real FileStorage) go under /dev/shm when it is
/// writable, else the system temp dir; RAFT_CONFORM_DATA_DIR overrides.
/// Logs (RUST_LOG, default warn) go to stderr.
#[derive(Parser, Debug)]
#[command(name = "raft-conform", version, about, long_about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const AFTER_HELP: &str = "\
Examples:
  raft-conform run                                  CI bounds: model traces replayed on real nodes
  raft-conform run --impl-bug truncate-on-match --out t
                                                    a seeded implementation bug: exit 1, the first
                                                    divergent trace written to t/
  raft-conform replay traces/*-<run id>.json        the traces of one `raft-model check` run
  raft-conform replay --impl-bug truncate-on-match t/divergence-*.json
  raft-conform transitions                          every single-server transition at the CI bounds
  raft-conform transitions --bounds default --json  ... at the bounds of `raft-model check`
  raft-conform validate --seeds 200 --steps 300     real nodes under random events vs the model
  raft-conform validate --trace steps.ndjson        steps recorded by `raftkv serve --trace`
`raft-conform help <command>` shows every flag of a command.

Exit codes (the same scheme as raft-model):
  0  everything conforms
  1  a finding (a divergence or a violation: it is printed even when its trace
     file cannot be written) or a failed operation (nodes that cannot start, a
     trace file that cannot be written, an internal failure)
  2  bad input or usage: flags, bounds, unreadable, malformed or inconsistent
     trace files, records the model cannot represent; also `transitions`
     stopped by --timeout before it was complete (nothing proven)

Trace files written with --out are named <stem>-<run id>.json (the run id is
the UTC start time and the process id), so runs never overwrite or mix.";

const REPLAY_HELP: &str = "\
Examples:
  raft-conform replay traces/*-<run id>.json         the traces of one `raft-model check` run
  raft-conform replay --impl-bug truncate-on-match t/divergence-*.json
Exit codes: 0 every trace conforms; 1 a divergence, or nodes that cannot start;
2 bad flags, or a trace that is unreadable, malformed, of an unknown version or
inconsistent with its bounds (nothing is replayed then). A trace made by the
model with a seeded bug (bounds.bug) is named in a note: a correct
implementation is expected to diverge from it.";

const RUN_HELP: &str = "\
Examples:
  raft-conform run                                    the CI bounds
  raft-conform run --bounds default --depth 6         the bounds of `raft-model check`
  raft-conform run --impl-bug truncate-on-match --out t
Exit codes: 0 no divergence; 1 a divergence (printed even when --out cannot be
written), a harness failure, or a trace file not written; 2 bad flags or bounds.";

const VALIDATE_HELP: &str = "\
Examples:
  raft-conform validate --seeds 200 --steps 300
  raft-conform validate --impl-bug vote-before-persist --out t
  raft-conform validate --trace node1.ndjson node2.ndjson node3.ndjson
Exit codes: 0 every step is one the model allows; 1 a violation (printed even
when --out cannot be written), a harness failure, or a trace file not written;
2 bad flags (--seeds, --jobs, --threads 0), unreadable or unknown records, or
records the model cannot represent.";

const TRANSITIONS_HELP: &str = "\
Examples:
  raft-conform transitions                            the CI bounds, about a second
  raft-conform transitions --bounds default --json    the bounds of `raft-model check`
  raft-conform transitions --impl-bug no-persist-vote --out t
Exit codes: 0 complete and no divergence; 1 a divergence (printed even when
--out cannot be written), or a trace file not written; 2 bad flags or bounds,
or --timeout stopped the search before it was complete (nothing proven).";

const SCRIPT_HELP: &str = "\
Examples:
  raft-conform script conformance/testdata/*.txt      every script: model and nodes
  raft-conform script --rewrite conformance/testdata/election-win.txt
                                                      regenerate the expected output from
                                                      the model (REWRITE=1 does the same),
                                                      then check the nodes against it
  raft-conform script --impl-bug vote-without-log-check conformance/testdata/vote-log-check-older-term.txt
                                                      a seeded bug: the implementation's
                                                      output differs, exit 1
A script looks like this (docs/scripts.md lists every command and output form):
  # docs/protocol.md §4 RequestVote: a majority of votes makes a leader
  timeout 0
  ----
  s0 T1 candidate vote=0 commit=0 log=[] votes=[0]
  sent 0→1 RequestVote t1 last=0/0
  sent 0→2 RequestVote t1 last=0/0

Exit codes: 0 every script prints its expected output on both sides; 1 a
mismatch (a unified diff naming the side, model or implementation, and the
file:line of the first differing command), or nodes that cannot start or a
file that cannot be rewritten; 2 bad input: a missing or unreadable file, an
unknown command or malformed line (nothing runs then).";

/// An operation that failed (exit 1), as opposed to bad input or usage
/// (exit 2, every other error).
#[derive(Debug)]
struct Failed(anyhow::Error);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&error_chain(&self.0))
    }
}

impl std::error::Error for Failed {}

/// Marks `e` as a failed operation (exit 1).
fn failed(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Failed(e.into()))
}

/// The exit code of an error: 1 for a failed operation, 2 for bad input.
fn error_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<Failed>()) {
        1
    } else {
        2
    }
}

/// The bound flags `run` and `transitions` share (the same flags as
/// `raft-model check`).
#[derive(Args, Debug)]
pub(crate) struct BoundFlags {
    /// Servers in the cluster (1 to 7). Without --max-inflight, the messages in flight
    /// are then raised to at least servers - 1, so that an election is possible.
    #[arg(long)]
    pub(crate) servers: Option<u8>,
    /// Highest term: a server at this term cannot time out again.
    #[arg(long)]
    pub(crate) max_term: Option<u8>,
    /// Client requests over the whole run.
    #[arg(long)]
    pub(crate) max_requests: Option<u8>,
    /// Messages in flight at once (the network plus every outbox).
    #[arg(long)]
    pub(crate) max_inflight: Option<u8>,
    /// Crash-restarts over the whole run.
    #[arg(long)]
    pub(crate) max_restarts: Option<u8>,
    /// Partition events over the whole run (each may be healed).
    #[arg(long)]
    pub(crate) max_partitions: Option<u8>,
    /// Message duplications over the whole run.
    #[arg(long)]
    pub(crate) max_duplicates: Option<u8>,
    /// Snapshot steps over the whole run (docs/protocol.md §8).
    #[arg(long)]
    pub(crate) max_snapshots: Option<u8>,
}

impl BoundFlags {
    /// Sets every bound given on the command line. Without --max-inflight,
    /// the messages in flight are raised to what an election at
    /// `cfg.servers` needs.
    pub(crate) fn apply(&self, cfg: &mut Config) {
        let set = |slot: &mut u8, v: Option<u8>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut cfg.servers, self.servers);
        if let Some(v) = self.max_term {
            cfg.max_term = v.into();
        }
        if let Some(v) = self.max_requests {
            cfg.max_requests = v.into();
        }
        set(&mut cfg.max_inflight, self.max_inflight);
        set(&mut cfg.max_restarts, self.max_restarts);
        set(&mut cfg.max_partitions, self.max_partitions);
        set(&mut cfg.max_duplicates, self.max_duplicates);
        set(&mut cfg.max_snapshots, self.max_snapshots);
        if self.max_inflight.is_none() {
            cfg.max_inflight = cfg.max_inflight.max(Config::election_inflight(cfg.servers));
        }
    }
}

/// The `--impl-bug` help: every name, with the earlier names it accepts.
fn impl_bug_help() -> String {
    let names: Vec<String> = ImplBug::ALL
        .iter()
        .map(|b| match b.aliases() {
            [] => b.name().to_string(),
            a => format!("{} (also: {})", b.name(), a.join(", ")),
        })
        .collect();
    format!(
        "Run the implementation with a seeded protocol bug, to prove the harness catches it. \
         Names (shared with raft-model --bug where both have the bug): {}",
        names.join(", ")
    )
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay trace files on real nodes; report the first divergent step of each.
    #[command(after_help = REPLAY_HELP)]
    Replay(ReplayArgs),
    /// Generate traces from the model (BFS to a depth, random walks, reachability
    /// examples) and replay them all. With no flags: the CI bounds.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),
    /// Run real nodes under seeded random events and check every step against
    /// the model, or (--trace) validate recorded steps.
    #[command(after_help = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Enumerate the model's reachable states (the search of `raft-model
    /// check`) and execute every single-server transition on the
    /// implementation's core. With no flags: the CI bounds.
    #[command(after_help = TRANSITIONS_HELP)]
    Transitions(TransitionsArgs),
    /// Run scenario scripts (docs/scripts.md) on the model and on real nodes
    /// and compare what each prints with the expected output in the file.
    ///
    /// A script is a text file of commands in the model's action vocabulary
    /// (timeout 0, deliver 0->1 RequestVote, request 0 v1, persist 1, restart 2,
    /// partition 0 | 1 2, heal, state, ...), each followed by a line `----`
    /// and the output it prints, then a blank line. Lines starting with `#`
    /// are comments. Every command runs on the model (RaftModel::next_state)
    /// and on a cluster of real raftkv nodes; both must print the expected
    /// text, a refused command included (it prints an `error:` line).
    #[command(after_help = SCRIPT_HELP, long_about)]
    Script(ScriptArgs),
}

#[derive(Args, Debug, Clone)]
struct Common {
    #[arg(long, value_name = "NAME", help = impl_bug_help())]
    impl_bug: Option<ImplBug>,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    json: bool,
    /// Traces replayed (or `validate` seeds run) at once, each on its own cluster.
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
    #[command(flatten)]
    bound_flags: BoundFlags,
    /// sync or async (docs/protocol.md §7).
    #[arg(long, value_parser = ["sync", "async"])]
    persist: Option<String>,
    /// Seconds the model checker may spend looking for reachability examples
    /// that the BFS did not reach.
    #[arg(long, default_value_t = runner::DEFAULT_EXAMPLES_TIMEOUT)]
    examples_timeout: u64,
    /// Write the first divergent trace here, as divergence-<run id>.json (a trace
    /// file `replay` reads). Default: not written.
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
    /// (manual: kind "recorded", as recorded-seed-<seed>-<run id>.json;
    /// real: the recorded steps as NDJSON, real-timers-seed-<seed>.ndjson,
    /// which `validate --trace` reads). Default: the current directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct ScriptArgs {
    /// Script files (docs/scripts.md), e.g. conformance/testdata/*.txt.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write the model's output into each file as its expected output (also
    /// when the environment has REWRITE=1), then check the implementation
    /// against it.
    #[arg(long)]
    rewrite: bool,
    #[arg(long, value_name = "NAME", help = impl_bug_help())]
    impl_bug: Option<ImplBug>,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct TransitionsArgs {
    /// Model bounds preset: ci (the default: the model's CI bounds) or
    /// default (those of `raft-model check`). The flags below override
    /// single bounds.
    #[arg(long, default_value = "ci", value_parser = ["ci", "default"])]
    bounds: String,
    #[command(flatten)]
    bound_flags: BoundFlags,
    /// unordered or ordered (per-link FIFO).
    #[arg(long, value_parser = ["unordered", "ordered"])]
    network: Option<String>,
    /// sync or async (docs/protocol.md §7; default async, as `raft-model check`).
    #[arg(long, value_parser = ["sync", "async"])]
    persist: Option<String>,
    #[arg(long, value_name = "NAME", help = impl_bug_help())]
    impl_bug: Option<ImplBug>,
    /// Stop after this many seconds (the result is then incomplete, exit 2).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Search threads (default: number of cores).
    #[arg(long, default_value_t = raft_conformance::transitions::default_threads())]
    threads: usize,
    /// Write the path to the first divergent transition here, as a trace
    /// file (transitions-divergence-<run id>.json) that `replay` and
    /// `raft-model diagram` read.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    json: bool,
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(t) = threads {
        b.worker_threads(t.max(1));
    }
    b.build()
        .context("cannot start the async runtime")
        .map_err(failed)
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
    let cli = Cli::parse();
    // A panic is an internal failure: exit 1 like any failed operation
    // (the panic message has been printed already), not Rust's 101.
    let result = std::panic::catch_unwind(|| match cli.cmd {
        Cmd::Replay(a) => cmd_replay(a),
        Cmd::Run(a) => cmd_run(a),
        Cmd::Validate(a) => cmd_validate(a),
        Cmd::Transitions(a) => cmd_transitions(a),
        Cmd::Script(a) => cmd_script(a),
    });
    match result {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::from(1),
        Ok(Err(e)) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(error_code(&e))
        }
        Err(_) => {
            eprintln!("error: internal failure (the panic above)");
            ExitCode::from(1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_of_every_subcommand_is_described() {
        let cmd = Cli::command();
        let mut missing = Vec::new();
        for sub in cmd.get_subcommands() {
            assert!(sub.get_about().is_some(), "{}", sub.get_name());
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{} --{id}", sub.get_name()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "flags without a description: {missing:?}"
        );
    }

    fn parse(args: &[&str]) -> Cmd {
        Cli::try_parse_from(args).unwrap().cmd
    }

    #[test]
    fn servers_raise_the_default_max_inflight_so_an_election_is_possible() {
        let Cmd::Run(a) = parse(&["raft-conform", "run", "--servers", "5"]) else {
            unreachable!()
        };
        assert_eq!(run_config(&a).unwrap().max_inflight, 4);
        let Cmd::Run(a) = parse(&["raft-conform", "run"]) else {
            unreachable!()
        };
        assert_eq!(run_config(&a).unwrap(), runner::ci_bounds());
        let Cmd::Transitions(a) = parse(&["raft-conform", "transitions", "--servers", "7"]) else {
            unreachable!()
        };
        assert_eq!(transitions_config(&a).unwrap().max_inflight, 6);
        let Cmd::Transitions(a) = parse(&[
            "raft-conform",
            "transitions",
            "--servers",
            "7",
            "--max-inflight",
            "2",
        ]) else {
            unreachable!()
        };
        assert_eq!(transitions_config(&a).unwrap().max_inflight, 2);
        // The CI bounds have no partitions: one server is a valid run.
        let Cmd::Transitions(a) = parse(&["raft-conform", "transitions", "--servers", "1"]) else {
            unreachable!()
        };
        assert_eq!(transitions_config(&a).unwrap().servers, 1);
    }

    #[test]
    fn harness_failures_are_exit_1_and_bad_input_exit_2() {
        assert_eq!(error_code(&failed(anyhow::anyhow!("cannot start"))), 1);
        let wrapped = failed(anyhow::anyhow!("x")).context("while replaying");
        assert_eq!(error_code(&wrapped), 1);
        assert_eq!(
            error_code(&anyhow::anyhow!("--seeds must be at least 1")),
            2
        );
    }
}
