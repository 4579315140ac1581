//! The `raftkv` binary: run a node, talk to a cluster, launch a local
//! cluster, measure one.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
mod bench;

/// `println!` that does not panic when stdout is closed (`raftkv ... | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use bench::BenchOptions;
use raftkv::client::{Client, ClientConfig};
use raftkv::server::{Server, ServerConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "raftkv",
    version,
    about = "A replicated, linearizable key-value store on Raft",
    long_about = "A replicated, linearizable key-value store on Raft.\n\n\
        Every node is one `raftkv serve` process with its own data directory; \
        one TCP address per node serves both the other nodes and clients. \
        Writes (put, append) apply exactly once even when retried, and reads \
        (get) are linearizable: they go through the Raft log.",
    after_help = "Examples:\n  \
        # a local 3-node cluster on 127.0.0.1:7001..7003 (Ctrl-C stops it)\n  \
        raftkv cluster --nodes 3 --dir /tmp/raftkv\n\n  \
        # or the same by hand, one terminal per node\n  \
        raftkv serve --id 1 --data-dir d1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n\n  \
        # talk to it\n  \
        raftkv put color blue --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n  \
        raftkv append color -green --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n  \
        raftkv get color --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n\n  \
        # measure it\n  \
        raftkv bench --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --clients 64 --ops 20000\n\n\
        Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=raftkv=debug) for more."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a cluster.
    #[command(after_help = "Example:\n  \
        raftkv serve --id 1 --data-dir d1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n\n\
        The node listens on its own entry of --peers. Its Raft state (term, vote, log) \
        is fsynced in --data-dir before it is acknowledged; restart it with the same \
        flags to recover.")]
    Serve(ServeArgs),
    /// Set KEY to VALUE.
    #[command(
        after_help = "Example:\n  raftkv put color blue --cluster 127.0.0.1:7001,127.0.0.1:7002"
    )]
    Put {
        key: String,
        /// May start with '-' (e.g. -green).
        #[arg(allow_hyphen_values = true)]
        value: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Append VALUE to KEY's value (an absent key counts as empty).
    #[command(
        after_help = "Example:\n  raftkv append log ,entry --cluster 127.0.0.1:7001,127.0.0.1:7002"
    )]
    Append {
        key: String,
        /// May start with '-' (e.g. -green).
        #[arg(allow_hyphen_values = true)]
        value: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print KEY's value (linearizable read); exit code 2 if the key does not exist.
    #[command(after_help = "Example:\n  raftkv get color --cluster 127.0.0.1:7001,127.0.0.1:7002")]
    Get {
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a local cluster of `raftkv serve` processes; Ctrl-C stops them all.
    #[command(
        after_help = "Example:\n  raftkv cluster --nodes 3 --dir /tmp/raftkv --base-port 7001\n\n\
        Node i listens on 127.0.0.1:(base-port + i - 1) and keeps its data in DIR/node-i; \
        run it again with the same DIR to restart the cluster with its data."
    )]
    Cluster(ClusterArgs),
    /// Measure throughput and latency of a running cluster.
    #[command(after_help = "Examples:\n  \
        raftkv bench --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --clients 1 --ops 2000\n  \
        raftkv bench --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --clients 64 --ops 50000\n  \
        raftkv bench --failover --nodes 3 --dir /tmp/raftkv-fo --trials 20\n\n\
        The write bench also times one fdatasync of a 4 KiB write in --fsync-dir \
        (default: the current directory) and prints the latency ratio. --failover starts \
        its own local cluster, kills the leader with SIGKILL and times the first \
        successful write after it, restarting the victim between trials.")]
    Bench(BenchArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// This node's id (1..=n), a key of --peers.
    #[arg(long)]
    id: u64,
    /// Where the node keeps its log and hard state (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Every node of the cluster as ID=HOST:PORT, comma-separated.
    #[arg(long, value_parser = parse_peers)]
    peers: BTreeMap<u64, String>,
    /// Election timeout range in milliseconds, LO..HI.
    #[arg(long, default_value = "300..600", value_parser = parse_range)]
    election_timeout_ms: (u64, u64),
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Append one NDJSON record per step of this node to FILE (created if
    /// missing; several nodes may share one file). See docs/trace-format.md.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Run with a seeded protocol bug (for checking the checkers; needs a
    /// binary built with the `seeded-bugs` feature).
    #[arg(long, value_name = "NAME")]
    impl_bug: Option<String>,
}

#[derive(Args)]
struct ClientArgs {
    /// Addresses of the cluster's nodes, comma-separated (any subset works).
    #[arg(long, value_delimiter = ',', required = true)]
    cluster: Vec<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

#[derive(Args)]
struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Parent directory of the nodes' data directories.
    #[arg(long)]
    dir: PathBuf,
    /// Port of node 1; node i gets base-port + i - 1.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Every node appends its step records to FILE (`serve --trace`).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Addresses of the cluster's nodes (not with --failover).
    #[arg(long, value_delimiter = ',', required_unless_present = "failover")]
    cluster: Vec<String>,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Total writes across all clients.
    #[arg(long, default_value_t = 1000)]
    ops: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Directory for the fdatasync reference measurement.
    #[arg(long, default_value = ".")]
    fsync_dir: PathBuf,
    /// Measure failover instead: kill -9 the leader, time the first write.
    #[arg(long)]
    failover: bool,
    /// Failover: number of nodes of the local cluster it starts.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Failover: directory for the local cluster's data.
    #[arg(long, required_if_eq("failover", "true"))]
    dir: Option<PathBuf>,
    /// Failover: number of kill/recover trials.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Failover: port of node 1.
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
}

fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("`{id}` in `{part}` is not a node id"))?;
        if id == 0 {
            return Err("node ids start at 1".into());
        }
        if peers.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("no peers given".into());
    }
    Ok(peers)
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not LO..HI"))?;
    let lo = lo.parse().map_err(|_| format!("`{lo}` is not a number"))?;
    let hi = hi.parse().map_err(|_| format!("`{hi}` is not a number"))?;
    if lo == 0 || hi <= lo {
        return Err(format!("need 0 < LO < HI, got {lo}..{hi}"));
    }
    Ok((lo, hi))
}

fn init_logs(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve(_) | Command::Cluster(_) => "info",
        _ => "warn",
    };
    init_logs(default_log);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn client(args: &ClientArgs) -> Result<Client> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        bail!("--timeout must be a positive number of seconds");
    }
    let cfg = ClientConfig {
        op_timeout: Duration::from_secs_f64(args.timeout),
        ..ClientConfig::default()
    };
    Ok(Client::connect(args.cluster.clone(), cfg)?)
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cli.command {
        Command::Serve(a) => {
            if !a.peers.contains_key(&a.id) {
                bail!(
                    "--id {} is not one of the --peers ids {:?}",
                    a.id,
                    a.peers.keys().collect::<Vec<_>>()
                );
            }
            let bug = match a.impl_bug.as_deref() {
                None => None,
                Some(name) => {
                    let bug: raftkv::node::ImplBug = name.parse().context("--impl-bug")?;
                    if !raftkv::node::ImplBug::enabled_in_build() {
                        bail!(
                            "--impl-bug {name}: this raftkv binary was built without the \
                             `seeded-bugs` feature, so it cannot run seeded bugs; rebuild with \
                             `cargo build --release -p raftkv --features seeded-bugs`"
                        );
                    }
                    tracing::warn!(bug = %bug, "running with a SEEDED PROTOCOL BUG");
                    Some(bug)
                }
            };
            let trace = match &a.trace {
                None => None,
                Some(path) => Some(
                    raftkv::TraceSink::open(path)
                        .with_context(|| format!("--trace {}", path.display()))?,
                ),
            };
            let mut cfg = ServerConfig::new(a.id, a.peers, a.data_dir);
            cfg.trace = trace;
            cfg.bug = bug;
            cfg.election_timeout = (
                Duration::from_millis(a.election_timeout_ms.0),
                Duration::from_millis(a.election_timeout_ms.1),
            );
            cfg.heartbeat_interval = Duration::from_millis(a.heartbeat_ms);
            let server = Server::start(cfg)
                .await
                .with_context(|| format!("starting node {}", a.id))?;
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            tracing::info!("Ctrl-C: shutting down");
            server.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Put {
            key,
            value,
            client: c,
        } => {
            client(&c)?
                .put(&key, &value)
                .await
                .with_context(|| format!("put {key}"))?;
            out!("OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Append {
            key,
            value,
            client: c,
        } => {
            client(&c)?
                .append(&key, &value)
                .await
                .with_context(|| format!("append {key}"))?;
            out!("OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { key, client: c } => {
            match client(&c)?
                .get(&key)
                .await
                .with_context(|| format!("get {key}"))?
            {
                Some(v) => {
                    out!("{v}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("key {key:?} not found");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Cluster(a) => {
            let exe = std::env::current_exe().context("finding the raftkv executable")?;
            let mut cluster =
                bench::LocalCluster::start_traced(&exe, a.nodes, &a.dir, a.base_port, a.trace)
                    .context("starting the local cluster")?;
            out!(
                "cluster of {} nodes (data in {}):",
                a.nodes,
                a.dir.display()
            );
            for (id, addr) in cluster.addrs() {
                out!("  node {id}: {addr}");
            }
            out!("--cluster {}", cluster.addr_list());
            out!("Ctrl-C stops every node.");
            tokio::select! {
                r = tokio::signal::ctrl_c() => { r.context("waiting for Ctrl-C")?; }
                id = cluster.wait_any_exit() => {
                    eprintln!("node {id} exited; stopping the cluster");
                }
            }
            cluster.stop_all();
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => {
            if a.failover {
                let exe = std::env::current_exe().context("finding the raftkv executable")?;
                let dir = a.dir.context("--failover needs --dir")?;
                let report = bench::failover(&exe, a.nodes, &dir, a.base_port, a.trials).await?;
                out!("{report}");
            } else {
                let opts = BenchOptions {
                    cluster: a.cluster,
                    clients: a.clients,
                    ops: a.ops,
                    value_size: a.value_size,
                    fsync_dir: a.fsync_dir,
                };
                let report = bench::writes(&opts).await?;
                out!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
