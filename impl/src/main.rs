//! The `raftkv` binary: run a node, talk to a cluster, launch a local
//! cluster, measure one. The command line is in `cli.rs`, the local
//! cluster launcher in `launcher.rs`, the load generator in `bench.rs`.

/// `println!` that does not panic when stdout is closed (`raftkv ... | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod cli;
mod launcher;
mod status;

use anyhow::{Context, Result};
use bench::BenchOptions;
use clap::Parser;
use cli::{usage, Cli, ClientArgs, Command, RuntimeKind, ServeArgs, WriteArgs};
use raftkv::client::{Client, ClientConfig};
use raftkv::codec::MAX_KV_BYTES;
use raftkv::server::{Server, ServerConfig};
use raftkv::storage::DirLock;
use raftkv::tls::Dialer;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

fn init_logs(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never into a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve(_) | Command::Cluster(_) => "info",
        _ => "warn",
    };
    init_logs(default_log);
    let runtime = match &cli.command {
        Command::Serve(a) if a.runtime == RuntimeKind::CurrentThread => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        _ => tokio::runtime::Runtime::new(),
    };
    let rt = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::FAILED);
        }
    };
    // Everything runs on this (the main) thread's `block_on`: the launcher
    // relies on it for its children's death signal.
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cli::exit_code_of(&e))
        }
    }
}

fn client_timeout(args: &ClientArgs) -> Result<Duration> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        return Err(usage("--timeout must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(args.timeout))
}

/// The client's dialer: plain TCP, or TLS from `--tls-dir` (a missing or
/// garbled file is bad input, exit code 2).
fn dialer(tls_dir: Option<&std::path::Path>) -> Result<Dialer> {
    match tls_dir {
        None => Ok(Dialer::plain()),
        Some(dir) => raftkv::tls::client_tls(dir)
            .map_err(|e| usage(format!("--tls-dir {}: {e}", dir.display()))),
    }
}

fn client(args: &ClientArgs) -> Result<Client> {
    let cfg = ClientConfig {
        op_timeout: client_timeout(args)?,
        ..ClientConfig::default()
    };
    let dialer = dialer(args.tls_dir.as_deref())?;
    Ok(Client::connect_with(args.cluster.clone(), cfg, dialer)?)
}

/// The value of a put or append: the argument, or the file's contents.
fn write_value(a: &WriteArgs) -> Result<String> {
    let value = match (&a.value, &a.value_file) {
        (Some(v), None) => v.clone(),
        (None, Some(path)) => {
            use std::io::Read;
            let mut bytes = Vec::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading the value from standard input")?;
            } else {
                bytes = std::fs::read(path)
                    .with_context(|| format!("--value-file {}", path.display()))?;
            }
            String::from_utf8(bytes).map_err(|e| {
                usage(format!(
                    "--value-file {}: not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ))
            })?
        }
        // clap makes them exclusive and requires one.
        _ => return Err(usage("give either VALUE or --value-file")),
    };
    let size = a.key.len() + value.len();
    if size > MAX_KV_BYTES {
        return Err(usage(format!(
            "key and value are {size} bytes; the limit is {MAX_KV_BYTES}"
        )));
    }
    Ok(value)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Put(a) => {
            let value = write_value(&a)?;
            client(&a.client)?
                .put(&a.key, &value)
                .await
                .with_context(|| format!("put {}", a.key))?;
            out!("OK");
            Ok(ExitCode::SUCCESS)
        }
        Command::Append(a) => {
            let value = write_value(&a)?;
            client(&a.client)?
                .append(&a.key, &value)
                .await
                .with_context(|| format!("append {}", a.key))?;
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
                    Ok(ExitCode::from(cli::exit::FAILED))
                }
            }
        }
        Command::Cluster(a) => launcher::run(a).await,
        Command::Status(a) => {
            let timeout = client_timeout(&a.client)?;
            let dialer = dialer(a.client.tls_dir.as_deref())?;
            let rows = status::rows(&dialer, &a.client.cluster, timeout).await;
            if a.json {
                out!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                use std::io::Write as _;
                let _ = write!(std::io::stdout(), "{}", status::table(&rows));
            }
            let mut all = true;
            for r in &rows {
                if let Some(e) = &r.error {
                    eprintln!("{} unreachable: {e}", r.addr);
                    all = false;
                }
            }
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(cli::exit::FAILED)
            })
        }
        Command::Bench(a) => {
            if a.clients == 0 || a.ops == 0 {
                return Err(usage("--clients and --ops must be at least 1"));
            }
            if a.failover && a.nodes < 3 {
                return Err(usage("--failover needs --nodes 3 or more"));
            }
            if a.failover && a.trials == 0 {
                return Err(usage("--trials must be at least 1"));
            }
            if a.snapshots {
                let exe = std::env::current_exe().context("finding the raftkv executable")?;
                let dir = a.dir.ok_or_else(|| usage("--snapshots needs --dir"))?;
                let opts = bench::SnapshotBenchOptions {
                    exe,
                    nodes: a.nodes,
                    dir,
                    base_port: a.base_port,
                    clients: a.clients,
                    writes: a.ops,
                    value_size: a.value_size,
                    keys: a.keys,
                    snapshot_entries: a.snapshot_entries,
                    restarts: a.restarts,
                };
                let report = bench::snapshots(&opts).await?;
                if a.json {
                    out!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    out!("{}", report.table());
                }
            } else if a.failover {
                let exe = std::env::current_exe().context("finding the raftkv executable")?;
                let dir = a.dir.ok_or_else(|| usage("--failover needs --dir"))?;
                let report = bench::failover(&exe, a.nodes, &dir, a.base_port, a.trials).await?;
                out!("{report}");
            } else {
                let opts = BenchOptions {
                    cluster: a.cluster,
                    clients: a.clients,
                    ops: a.ops,
                    value_size: a.value_size,
                    fsync_dir: a.fsync_dir,
                    dialer: dialer(a.tls_dir.as_deref())?,
                };
                let report = bench::writes(&opts).await?;
                out!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(a: ServeArgs) -> Result<ExitCode> {
    if !a.peers.contains_key(&a.id) {
        return Err(usage(format!(
            "--id {} is not one of the --peers ids {:?}",
            a.id,
            a.peers.keys().collect::<Vec<_>>()
        )));
    }
    if a.heartbeat_ms == 0 || a.heartbeat_ms >= a.election_timeout_ms.0 {
        return Err(usage(format!(
            "--heartbeat-ms {} must be above zero and below the election timeout's low end {}",
            a.heartbeat_ms, a.election_timeout_ms.0
        )));
    }
    let bug = match a.impl_bug.as_deref() {
        None => None,
        Some(name) => {
            let bug: raftkv::node::ImplBug = name
                .parse()
                .map_err(|e| usage(format!("--impl-bug: {e}")))?;
            if !raftkv::node::ImplBug::enabled_in_build() {
                return Err(usage(format!(
                    "--impl-bug {name}: this raftkv binary was built without the \
                     `seeded-bugs` feature, so it cannot run seeded bugs; rebuild with \
                     `cargo build --release -p raftkv --features seeded-bugs`"
                )));
            }
            tracing::warn!(bug = %bug, "running with a SEEDED PROTOCOL BUG");
            Some(bug)
        }
    };
    // Before anything can stop us half-way: a signal during start-up is
    // handled once the node runs.
    let mut signals = launcher::NodeStopSignals::install()?;
    // The lock first: a second process must not even read (and repair) the
    // directory while another one serves it. Held until the process exits.
    let _lock = DirLock::acquire(&a.data_dir).with_context(|| format!("starting node {}", a.id))?;
    let trace = match &a.trace {
        None => None,
        Some(path) => Some(
            raftkv::TraceSink::open(path).with_context(|| format!("--trace {}", path.display()))?,
        ),
    };
    let mut cfg = ServerConfig::new(a.id, a.peers, a.data_dir);
    cfg.cluster_id = a.cluster_id;
    cfg.trace = trace;
    cfg.bug = bug;
    cfg.election_timeout = (
        Duration::from_millis(a.election_timeout_ms.0),
        Duration::from_millis(a.election_timeout_ms.1),
    );
    cfg.heartbeat_interval = Duration::from_millis(a.heartbeat_ms);
    cfg.metrics_addr = a.metrics_addr;
    cfg.kv.snapshot_entries = a.snapshot_entries;
    if let Some(dir) = &a.tls_dir {
        cfg.tls = Some(
            raftkv::tls::node_tls(dir, a.id)
                .map_err(|e| usage(format!("--tls-dir {}: {e}", dir.display())))?,
        );
    }
    let server = Server::start(cfg)
        .await
        .with_context(|| format!("starting node {}", a.id))?;
    let name = signals.recv().await;
    tracing::info!("{name}: shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
