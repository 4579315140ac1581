//! Command-line interface of `raft-model`.

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};
use raft_model::{Bug, Config, NetworkKind, PersistMode};
use std::path::PathBuf;

const ABOUT: &str = "\
Model-checks the Raft protocol of docs/protocol.md with stateright.

`check` explores every reachable state within the bounds (exhaustive DFS with
symmetry reduction by default) and verifies the safety properties (always)
and the reachability properties (sometimes) on every state. Every discovery
is shrunk to a short path, written as a trace file and printed as numbered
steps with a link into the Explorer (`explore`).";

/// The exit-code scheme shared by every subcommand (and by `raft-conform`).
pub const EXIT_CODES: &str = "\
Exit codes (the same scheme in every subcommand and in raft-conform):
  0  success: the check passed, the command did what was asked
  1  a finding or a failed operation: a safety property violated, no leader
     ever elected, a reachability example missing, a trace file or the
     Explorer's address that could not be used (a finding is printed anyway)
  2  bad input or usage: flags, bound combinations, unreadable or
     inconsistent trace files; also a search that --timeout stopped before
     it was complete (nothing proven either way)
`raft-model help <command>` gives each command's own list.";

const EXAMPLES: &str = "\
Examples:
  raft-model check                          exhaustive check at the default bounds
  raft-model check --bug vote-twice         a seeded bug: exit 1 with a shrunk counterexample
  raft-model check --max-term 3 --json      other bounds, JSON report on stdout
  raft-model check --servers 5 --timeout 600
                                            5 servers (--max-inflight defaults to 4 there)
  raft-model simulate --timeout 60 --seed 7 random walks for a minute
  raft-model explore --max-requests 1       browse the state space on http://127.0.0.1:3000/
  raft-model diagram traces/counterexample-VoteOncePerTerm-*.json > trace.svg
See docs/checking.md for every flag and the JSON schema, docs/measurements.md for measurements.";

const CHECK_HELP: &str = "\
Exit codes:
  0  every safety property holds, every reachability property has an example
     (or --allow-missing-examples) and the search was complete
  1  a safety property is violated; or no leader was ever elected (whatever
     --allow-missing-examples says, also when --timeout ended the search
     first: the report names the bound to raise); or a complete search found
     no example of a reachability property; or a trace file could not be
     written (the finding is printed anyway)
  2  bad flags or bound combination; or --timeout stopped the search before
     it was complete (nothing proven)
With --strategy simulate the exit codes of `simulate` apply.

Trace files: each discovery is written to --trace-dir as
<kind>-<Property>-<run id>.json; the run id (UTC start time and process id)
is printed, so a directory can hold several runs without mixing them:
`raft-conform replay traces/*-<run id>.json` replays exactly one run.";

const SIMULATE_HELP: &str = "\
Exit codes:
  0  no safety property was violated within the budget (--timeout, 10 s by
     default) and some walk elected a leader; examples that no walk reached
     do not fail a simulation
  1  a safety property was violated, no walk elected a leader (the report
     names the bound to raise), or a trace file could not be written
  2  bad flags or bound combination
A simulation is never complete: running out of its budget is its normal
end, not an incomplete search.";

const EXPLORE_HELP: &str = "\
Exit codes:
  0  the server stopped (it runs until the process is interrupted)
  1  the address cannot be listened on (e.g. another Explorer uses it)
  2  bad flags, bound combination or --addr";

const BENCH_HELP: &str = "\
Exit codes:
  0  every run completed
  1  a run failed (its child process printed no report)
  2  bad flags (e.g. --only matches no run, --threads 0), or a run stopped at
     --timeout before it was complete";

const DIAGRAM_HELP: &str = "\
Exit codes:
  0  the SVG was printed
  2  the trace file is unreadable, malformed, or inconsistent (a step or
     state that names a server outside the cluster, states that do not have
     `bounds.servers` servers, bounds out of range): what `raft-conform
     replay` refuses, diagram refuses too";

fn after_help() -> String {
    format!("{EXIT_CODES}\n\n{EXAMPLES}")
}

fn bug_long_help() -> String {
    format!(
        "Seed a protocol bug, so the checker must find a counterexample. Without explicit \
         bound flags this uses the bug's own bounds. The names are those of raft-conform \
         --impl-bug where both sides have the bug; earlier names are still accepted.\n{}",
        Bug::help_list().trim_end()
    )
}

#[derive(Parser, Debug)]
#[command(name = "raft-model", version, about = ABOUT, long_about = ABOUT, after_help = after_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Exhaustively check the model within the bounds (or walk it with --strategy simulate).
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Check by random walks (stateright's simulation): fast, deep, never complete.
    #[command(after_help = SIMULATE_HELP)]
    Simulate(SimulateArgs),
    /// Serve the stateright Explorer (a web UI) on the model with these bounds.
    #[command(after_help = EXPLORE_HELP)]
    Explore(ExploreArgs),
    /// Measure states/s, unique states, peak memory and time on reference bounds.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// Draw a trace file as the Explorer's sequence diagram (SVG on stdout).
    #[command(after_help = DIAGRAM_HELP)]
    Diagram(DiagramArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DiagramArgs {
    /// A trace file (docs/trace-format.md), e.g. one written by `check`.
    pub trace: PathBuf,
}

/// The bounds of the state space. Defaults are `Config::default()`; with
/// `--bug NAME`, the bug's own bounds, which explicit flags still override.
#[derive(Args, Debug, Clone)]
pub struct BoundArgs {
    /// Number of servers (1 to 7).
    #[arg(long, default_value_t = Config::default().servers,
          value_parser = clap::value_parser!(u8).range(1..=7))]
    pub servers: u8,
    /// Highest term: a server at this term cannot time out again.
    #[arg(long, default_value_t = Config::default().max_term)]
    pub max_term: raft_model::types::Term,
    /// Client requests over the whole run (values 1..=N).
    #[arg(long, default_value_t = Config::default().max_requests)]
    pub max_requests: raft_model::types::Value,
    /// Messages in flight at once (the network plus every outbox): a step that would
    /// exceed it is not enabled. When not given, at least --servers minus 1, so that
    /// a Timeout's RequestVotes fit and an election is possible.
    #[arg(long, default_value_t = Config::default().max_inflight)]
    pub max_inflight: u8,
    /// Crash-restarts over the whole run.
    #[arg(long, default_value_t = Config::default().max_restarts)]
    pub max_restarts: u8,
    /// Partition events over the whole run (each may be healed). At 0 (the default:
    /// with a snapshot a partition makes the default check about ten times larger)
    /// MinorityNoCommit and LeaderDeposedByPartition are not checked; 1 checks them.
    #[arg(long, default_value_t = Config::default().max_partitions)]
    pub max_partitions: u8,
    /// Message duplications over the whole run.
    #[arg(long, default_value_t = Config::default().max_duplicates)]
    pub max_duplicates: u8,
    /// Snapshot steps over the whole run (docs/protocol.md §8, R-snap-2).
    #[arg(long, default_value_t = Config::default().max_snapshots)]
    pub max_snapshots: u8,
    /// Network: unordered (any message in flight may be delivered next) or ordered (per-link FIFO).
    #[arg(long, value_enum, default_value_t = Network::from(Config::default().network))]
    pub network: Network,
    /// Durability (docs/protocol.md §7): async (Persist is a step of its own, dependent
    /// messages wait in an outbox) or sync (every step is durable at once).
    #[arg(long, value_enum, default_value_t = Persist::from(Config::default().persist))]
    pub persist: Persist,
    /// Seed a protocol bug, so the checker must find a counterexample (names: see --help).
    #[arg(long, value_name = "NAME", value_parser = parse_bug, long_help = bug_long_help())]
    pub bug: Option<Bug>,
}

fn parse_bug(s: &str) -> Result<Bug, String> {
    s.parse()
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Unordered,
    Ordered,
}

impl From<NetworkKind> for Network {
    fn from(k: NetworkKind) -> Self {
        match k {
            NetworkKind::Unordered => Network::Unordered,
            NetworkKind::Ordered => Network::Ordered,
        }
    }
}

impl From<Network> for NetworkKind {
    fn from(n: Network) -> Self {
        match n {
            Network::Unordered => NetworkKind::Unordered,
            Network::Ordered => NetworkKind::Ordered,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    Sync,
    Async,
}

impl From<PersistMode> for Persist {
    fn from(p: PersistMode) -> Self {
        match p {
            PersistMode::Sync => Persist::Sync,
            PersistMode::Async => Persist::Async,
        }
    }
}

impl From<Persist> for PersistMode {
    fn from(p: Persist) -> Self {
        match p {
            Persist::Sync => PersistMode::Sync,
            Persist::Async => PersistMode::Async,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Depth-first, fingerprints only (little memory); honours symmetry.
    Dfs,
    /// Breadth-first: keeps full states (much more memory); stateright 0.31 ignores symmetry here.
    Bfs,
    /// Random walks from the initial state (same as the `simulate` command).
    Simulate,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Dfs => "dfs",
            Strategy::Bfs => "bfs",
            Strategy::Simulate => "simulate",
        }
    }
}

/// How to run a check and where its results go.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Checker threads.
    #[arg(long, default_value_t = default_threads())]
    pub threads: usize,
    /// Stop after this many seconds. `check`: a search stopped this way is incomplete
    /// (see the exit codes below); default: no limit. `simulate` (and --strategy
    /// simulate): the walk budget, a normal end; default: 10 seconds.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Do not reduce states by server-id symmetry (symmetry is honoured by dfs and
    /// simulate only: stateright 0.31's BFS and the Explorer ignore it).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Directory for the trace files of discoveries (created if missing). Each file is
    /// named <kind>-<Property>-<run id>.json, so earlier runs are never overwritten.
    #[arg(long, value_name = "DIR", default_value = "traces")]
    pub trace_dir: PathBuf,
    /// Print the report as one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// Explorer address used in the printed links (`raft-model explore --addr`).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: String,
    /// Report discoveries as the checker found them, without shrinking.
    #[arg(long)]
    pub no_shrink: bool,
    /// Do not fail when a reachability (sometimes) property has no example: for bounds
    /// too small to reach every scenario. Its status stays `not_found`. A run in which
    /// no leader is ever elected fails anyway (exit 1): it would check nothing.
    #[arg(long)]
    pub allow_missing_examples: bool,
    /// Print progress to stderr every this many seconds (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    pub progress_every: f64,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub bounds: BoundArgs,
    /// Search strategy.
    #[arg(long, value_enum, default_value_t = Strategy::Dfs)]
    pub strategy: Strategy,
    /// Seed of the random walks (with --strategy simulate).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub bounds: BoundArgs,
    /// Seed of the random walks (each thread uses seed + thread index).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub bounds: BoundArgs,
    /// Address to serve the Explorer on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: String,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Checker threads of every run.
    #[arg(long, default_value_t = default_threads())]
    pub threads: usize,
    /// Time limit of each run, in seconds (a run that hits it is reported incomplete).
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    pub timeout: f64,
    /// Only the quick runs (TLC-comparable bounds), e.g. for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Only the runs whose name contains this text (e.g. "5 servers", "default").
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Durability mode of every run (see `check --persist`).
    #[arg(long, value_enum, default_value_t = Persist::from(Config::default().persist))]
    pub persist: Persist,
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl BoundArgs {
    /// The configuration: `Config::default()` or the bug's bounds, overridden
    /// by every bound flag given on the command line. `matches` are the
    /// subcommand's matches, to tell given flags from defaults.
    pub fn to_config(&self, matches: &ArgMatches) -> Result<Config, String> {
        let mut cfg = match self.bug {
            Some(bug) => bug.default_config(),
            None => Config::default(),
        };
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        if given("servers") {
            cfg.servers = self.servers;
        }
        if given("max_term") {
            cfg.max_term = self.max_term;
        }
        if given("max_requests") {
            cfg.max_requests = self.max_requests;
        }
        if given("max_inflight") {
            cfg.max_inflight = self.max_inflight;
        } else {
            // Not given: large enough for an election at this cluster size
            // (unchanged at 3 servers, where the default already fits).
            cfg.max_inflight = cfg.max_inflight.max(Config::election_inflight(cfg.servers));
        }
        if given("max_restarts") {
            cfg.max_restarts = self.max_restarts;
        }
        if given("max_partitions") {
            cfg.max_partitions = self.max_partitions;
        }
        if given("max_duplicates") {
            cfg.max_duplicates = self.max_duplicates;
        }
        if given("max_snapshots") {
            cfg.max_snapshots = self.max_snapshots;
        }
        if given("network") {
            cfg.network = self.network.into();
        }
        if given("persist") {
            cfg.persist = self.persist.into();
        }
        cfg.bug = self.bug;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The flags that reproduce `cfg` (for the printed `explore` command).
pub fn config_flags(cfg: &Config) -> String {
    raft_model::svg::header::config_flags(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn config_of(args: &[&str]) -> Result<Config, String> {
        let matches = Cli::command()
            .try_get_matches_from(args)
            .map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        let (_, sub) = matches.subcommand().unwrap();
        match cli.command {
            Command::Check(c) => c.bounds.to_config(sub),
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_are_config_default() {
        assert_eq!(
            config_of(&["raft-model", "check"]).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn bug_uses_its_bounds_and_flags_override_them() {
        let bug = Bug::CommitOldTerm;
        let cfg = config_of(&["raft-model", "check", "--bug", "commit-old-term"]).unwrap();
        assert_eq!(cfg, bug.default_config());
        let cfg = config_of(&[
            "raft-model",
            "check",
            "--bug",
            "commit-old-term",
            "--max-term",
            "3",
        ])
        .unwrap();
        assert_eq!(cfg.max_term, 3);
        assert_eq!(cfg.max_requests, bug.default_config().max_requests);
        assert_eq!(cfg.bug, Some(bug));
    }

    #[test]
    fn flags_round_trip_through_config_flags() {
        let mut cfg = Bug::TruncateOnMatch.default_config();
        cfg.network = NetworkKind::Ordered;
        cfg.persist = PersistMode::Sync;
        let flags = config_flags(&cfg);
        let mut args = vec!["raft-model", "check"];
        args.extend(flags.split(' '));
        assert_eq!(config_of(&args).unwrap(), cfg);
    }

    #[test]
    fn persist_defaults_to_async_and_sync_is_a_flag() {
        assert_eq!(
            config_of(&["raft-model", "check"]).unwrap().persist,
            PersistMode::Async
        );
        let cfg = config_of(&["raft-model", "check", "--persist", "sync"]).unwrap();
        assert_eq!(
            cfg,
            Config {
                persist: PersistMode::Sync,
                ..Config::default()
            }
        );
        let cfg = config_of(&[
            "raft-model",
            "check",
            "--bug",
            "vote-twice",
            "--persist",
            "sync",
        ])
        .unwrap();
        assert_eq!(
            cfg,
            Config {
                persist: PersistMode::Sync,
                ..Bug::VoteTwice.default_config()
            }
        );
        let err = config_of(&["raft-model", "check", "--persist", "never"]).unwrap_err();
        assert!(err.contains("--persist"), "{err}");
    }

    #[test]
    fn bad_values_are_errors_that_name_the_problem() {
        let err = config_of(&["raft-model", "check", "--servers", "9"]).unwrap_err();
        assert!(err.contains("--servers"), "{err}");
        let err = config_of(&["raft-model", "check", "--bug", "nope"]).unwrap_err();
        assert!(err.contains("known bugs"), "{err}");
        let err = config_of(&["raft-model", "check", "--max-term", "0"]).unwrap_err();
        assert!(err.contains("max_term"), "{err}");
    }

    #[test]
    fn max_inflight_defaults_to_what_an_election_at_that_size_needs() {
        for (servers, inflight) in [("2", 2), ("3", 2), ("4", 3), ("5", 4), ("7", 6)] {
            let cfg = config_of(&["raft-model", "check", "--servers", servers]).unwrap();
            assert_eq!(cfg.max_inflight, inflight, "--servers {servers}");
            assert_eq!(cfg.election_blocker(), None, "--servers {servers}");
        }
        let cfg = config_of(&[
            "raft-model",
            "check",
            "--servers",
            "7",
            "--max-inflight",
            "2",
        ])
        .unwrap();
        assert_eq!(cfg.max_inflight, 2);
        assert!(cfg.election_blocker().unwrap().contains("--max-inflight"));
        let cfg = config_of(&[
            "raft-model",
            "check",
            "--bug",
            "vote-twice",
            "--servers",
            "5",
        ])
        .unwrap();
        assert_eq!(cfg.max_inflight, 4);
    }

    #[test]
    fn old_bug_names_are_aliases() {
        let cfg = config_of(&["raft-model", "check", "--bug", "no-log-check-on-vote"]).unwrap();
        assert_eq!(cfg.bug, Some(Bug::NoLogCheckOnVote));
        assert_eq!(Bug::NoLogCheckOnVote.name(), "vote-without-log-check");
        // Old trace files name the bug by its old name.
        let b: Bug = serde_json::from_str("\"no-log-check-on-vote\"").unwrap();
        assert_eq!(b, Bug::NoLogCheckOnVote);
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            "\"vote-without-log-check\""
        );
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
