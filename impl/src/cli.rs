//! The command line of the `raftkv` binary: subcommands, flags, their
//! parsers, and the exit-code scheme.

use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Exit codes (documented in `--help` and docs/operating.md).
pub mod exit {
    /// The operation failed: the cluster could not be reached or timed out,
    /// the key does not exist, a node refused its data directory, a node of
    /// `cluster` died, a node `status` asked did not answer.
    pub const FAILED: u8 = 1;
    /// Bad input or usage: an unknown flag, a malformed value, --id not in
    /// --peers, a value over the size limit, a missing or garbled TLS file.
    pub const USAGE: u8 = 2;
}

/// The exit-code table of `--help`.
macro_rules! exit_codes_help {
    () => {
        "Exit codes:\n  \
        0  success\n  \
        1  the operation failed: cluster unreachable or timed out, key not found, \
        a node refused its data directory, a node of `cluster` died, a node `status` \
        asked did not answer\n  \
        2  bad input or usage: unknown flag, malformed --peers or --cluster, --id not \
        in --peers, a value over the 64 KiB limit, a missing or garbled --tls-dir file"
    };
}

/// An error in the command line (exit code 2), as opposed to a failed
/// operation (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A usage error to return with `?` or `Err(...)`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The exit code for an error: 2 if a usage error is in its chain, else 1.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<UsageError>()) {
        exit::USAGE
    } else {
        exit::FAILED
    }
}

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
    after_help = concat!("Examples:\n  \
        # a local 3-node cluster on 127.0.0.1:7001..7003 (Ctrl-C stops it)\n  \
        raftkv cluster --nodes 3 --dir /tmp/raftkv\n\n  \
        # or the same by hand, one terminal per node\n  \
        raftkv serve --id 1 --data-dir d1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n\n  \
        # talk to it\n  \
        raftkv put color blue --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n  \
        raftkv append color -green --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n  \
        raftkv get color --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n\n  \
        # operate it: every node's role, term and indexes; Prometheus metrics\n  \
        raftkv status --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n  \
        raftkv serve ... --metrics-addr 127.0.0.1:9001   # then GET http://127.0.0.1:9001/metrics\n\n  \
        # mutual TLS: a local cluster with throwaway certificates in /tmp/raftkv-tls/tls\n  \
        raftkv cluster --nodes 3 --dir /tmp/raftkv-tls --tls\n  \
        raftkv put color blue --cluster 127.0.0.1:7001 --tls-dir /tmp/raftkv-tls/tls\n\n  \
        # measure it\n  \
        raftkv bench --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --clients 64 --ops 20000\n  \
        raftkv bench --snapshots --dir /tmp/raftkv-snap --writes 100000 --clients 64   # snapshots off vs on\n\n\
        Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=raftkv=debug) for more.\n\n",
        exit_codes_help!()
    )
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run one node of a cluster.
    #[command(after_help = "Example:\n  \
        raftkv serve --id 1 --data-dir d1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n\n\
        The node listens on its own entry of --peers. Its Raft state (term, vote, log) \
        is fsynced in --data-dir before it is acknowledged; restart it with the same \
        flags to recover. The node locks --data-dir for as long as it runs and refuses \
        a directory that belongs to another node or cluster, or that lost a file \
        (docs/operating.md, \"Startup checks\"). SIGINT, SIGTERM and SIGHUP stop it.\n\n\
        With --tls-dir DIR every peer and client connection uses mutual TLS: DIR holds \
        ca.pem, node-ID.pem and node-ID-key.pem (`raftkv cluster --tls` makes a set); a \
        peer or client without a certificate the CA signed is refused and logged \
        (docs/operating.md, \"TLS\").\n\n\
        With --metrics-addr 127.0.0.1:9001 the node serves Prometheus metrics at \
        http://127.0.0.1:9001/metrics: role, term, leader, commit/last/applied index, \
        proposals, fsync and client write latency histograms, and messages sent, \
        received and dropped per peer (docs/operating.md, \"Metrics\").\n\n\
        Exit codes: 0 stopped by a signal, 1 failed (e.g. the data directory was \
        refused), 2 bad flags.")]
    Serve(ServeArgs),
    /// Set KEY to VALUE (or to the contents of --value-file).
    #[command(after_help = "Examples:\n  \
        raftkv put color blue --cluster 127.0.0.1:7001,127.0.0.1:7002\n  \
        raftkv put page --value-file page.html --cluster 127.0.0.1:7001\n  \
        date | raftkv put now --value-file - --cluster 127.0.0.1:7001\n\n\
        Exit codes: 0 done, 1 failed or timed out, 2 bad input.")]
    Put(WriteArgs),
    /// Append VALUE (or the contents of --value-file) to KEY's value (an
    /// absent key counts as empty).
    #[command(after_help = "Example:\n  \
        raftkv append log ,entry --cluster 127.0.0.1:7001,127.0.0.1:7002\n\n\
        The result may not exceed 64 KiB (key plus value): an append past it fails \
        and changes nothing.\n\n\
        Exit codes: 0 done, 1 failed or timed out (or past the limit), 2 bad input.")]
    Append(WriteArgs),
    /// Print KEY's value (linearizable read); exit code 1 if the key does not exist.
    #[command(after_help = "Example:\n  \
        raftkv get color --cluster 127.0.0.1:7001,127.0.0.1:7002\n\n\
        Exit codes: 0 found, 1 not found (or failed, timed out), 2 bad input.")]
    Get {
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a local cluster of `raftkv serve` processes; Ctrl-C stops them all.
    #[command(
        after_help = "Example:\n  raftkv cluster --nodes 3 --dir /tmp/raftkv --base-port 7001\n\n\
        Node i listens on 127.0.0.1:(base-port + i - 1), keeps its data in DIR/node-i \
        and its log in DIR/node-i.log; run it again with the same DIR to restart the \
        cluster with its data. SIGINT, SIGTERM and SIGHUP are passed on to every node; \
        the nodes also stop if the launcher is killed. If a node dies, the launcher \
        names it and its log, stops the others and exits with code 1.\n\n\
        With --tls the launcher writes a throwaway CA and certificates into DIR/tls \
        (ca.pem, node-i.pem, client.pem and their keys) and every connection uses mutual \
        TLS; talk to the cluster with --tls-dir DIR/tls, e.g.\n  \
        raftkv cluster --nodes 3 --dir /tmp/raftkv-tls --tls\n  \
        raftkv put color blue --cluster 127.0.0.1:7001 --tls-dir /tmp/raftkv-tls/tls"
    )]
    Cluster(ClusterArgs),
    /// Measure throughput and latency of a running cluster.
    #[command(after_help = "Examples:\n  \
        raftkv bench --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --clients 1 --ops 2000\n  \
        raftkv bench --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --clients 64 --ops 50000\n  \
        raftkv bench --failover --nodes 3 --dir /tmp/raftkv-fo --trials 20\n  \
        raftkv bench --snapshots --nodes 3 --dir /tmp/raftkv-snap --writes 100000 --clients 64\n\n\
        The write bench also times one fdatasync of a 4 KiB write in --fsync-dir \
        (default: the current directory) and prints the latency ratio. --failover starts \
        its own local cluster, kills the leader with SIGKILL and times the first \
        successful write after it, restarting the victim between trials.\n\n\
        --snapshots runs two configurations one after the other, each on a fresh local \
        cluster in its own subdirectory of --dir: DIR/off (`serve --snapshot-entries 0`) \
        and DIR/on (`--snapshot-entries N`, default 10000). Each gets --writes Puts of \
        --value-size bytes from --clients clients over --keys distinct keys; then the \
        bench reports the bytes of every node's data directory (and its log_bytes), \
        kills every node with SIGKILL, starts them again on the same directories and \
        times until every node answers (its data directory is loaded), until a leader is \
        elected and until a linearizable read of a known key succeeds (--restarts \
        rounds, default 5), and checks that written keys read back with the \
        values last written (exit 1 if not). Write latency p50/p99/max is given for all \
        writes and, from status polled every 25 ms, separately for the writes in flight \
        while some node's snapshot index moved and for the others. --json prints one \
        object with both configurations. docs/operating.md, \"Benchmarks\", has results.")]
    Bench(BenchArgs),
    /// Show where every node stands: role, term, leader, indexes, fsync latency.
    #[command(after_help = "Examples:\n  \
        raftkv status --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003\n  \
        raftkv status --cluster 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --json | jq '.[] | select(.role == \"leader\")'\n\n\
        One row per address, asked concurrently: the node's id, whether it answered, its \
        role, term, the leader it knows of, its commit index, last log index and applied \
        index, and its fsync latency p50/p99 in microseconds since it started (- in the \
        table, null in JSON, until it has fsynced). --json prints a list of objects with the keys id, addr, \
        reachable, role, term, leader, commit_index, last_index, applied_index, \
        fsync_p50_us, fsync_p99_us and error; a node that does not answer is a row with \
        reachable false, error saying why, and every other field null. Nodes answer \
        from their live state, so the fields of a busy node may be a step apart.\n\n\
        Exit codes: 0 every node answered, 1 some node did not, 2 bad input.")]
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print JSON (a list of objects, one per address) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// This node's id (1..=n), a key of --peers.
    #[arg(long)]
    pub id: u64,
    /// Where the node keeps its log and hard state (created if missing).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Every node of the cluster as ID=HOST:PORT, comma-separated.
    #[arg(long, value_parser = parse_peers)]
    pub peers: BTreeMap<u64, String>,
    /// The cluster's name, recorded in --data-dir on first use: a directory
    /// recorded with another cluster id is refused. Optional.
    #[arg(long, value_name = "ID", value_parser = parse_cluster_id)]
    pub cluster_id: Option<String>,
    /// Election timeout range in milliseconds, LO..HI.
    #[arg(long, default_value = "300..600", value_parser = parse_range)]
    pub election_timeout_ms: (u64, u64),
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Append one NDJSON record per step of this node to FILE (created if
    /// missing; several nodes may share one file). See docs/trace-format.md.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Run with a seeded protocol bug (for checking the checkers; needs a
    /// binary built with the `seeded-bugs` feature).
    #[arg(long, value_name = "NAME")]
    pub impl_bug: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP: bind
    /// it to loopback or a private network). Off by default.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr)]
    pub metrics_addr: Option<String>,
    /// Mutual TLS on every peer and client connection: DIR holds ca.pem
    /// (the cluster CA), node-ID.pem and node-ID-key.pem (this node's
    /// certificate, signed by the CA, naming the host of its --peers entry).
    /// Connections without a certificate the CA signed are refused.
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Take a snapshot of the KV store once N entries have applied past the
    /// last one, and drop the log it covers (docs/operating.md,
    /// "Snapshots"); 0 never snapshots.
    #[arg(long, value_name = "N", default_value_t = raftkv::kv::service::DEFAULT_SNAPSHOT_ENTRIES)]
    pub snapshot_entries: u64,
    /// The process's async runtime. `current-thread` (the default) runs the
    /// node loop, its connections and the KV service on one thread: a
    /// message read from a socket reaches the node loop without waking
    /// another thread, which took a tenth off a single client's write
    /// latency (docs/operating.md, "One thread per node"). The node loop's
    /// fsync blocks that thread meanwhile; messages wait in the socket
    /// buffers. `multi-thread` runs one worker per core and moves the other
    /// tasks off the node loop's thread during its fsync.
    #[arg(long, value_enum, default_value_t = RuntimeKind::CurrentThread)]
    pub runtime: RuntimeKind,
}

/// `serve --runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    CurrentThread,
    MultiThread,
}

impl RuntimeKind {
    /// The value as `--runtime` spells it.
    pub fn as_arg(self) -> &'static str {
        match self {
            RuntimeKind::CurrentThread => "current-thread",
            RuntimeKind::MultiThread => "multi-thread",
        }
    }
}

#[derive(Args)]
pub struct WriteArgs {
    pub key: String,
    /// The value; may start with '-' (e.g. -green).
    #[arg(
        allow_hyphen_values = true,
        required_unless_present = "value_file",
        conflicts_with = "value_file"
    )]
    pub value: Option<String>,
    /// Read the value from PATH instead ('-' = standard input), byte for
    /// byte (a trailing newline is kept); it must be UTF-8 text.
    #[arg(long, value_name = "PATH")]
    pub value_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct ClientArgs {
    /// Addresses of the cluster's nodes as HOST:PORT, comma-separated (any
    /// subset works).
    #[arg(long, value_delimiter = ',', required = true, value_parser = parse_addr)]
    pub cluster: Vec<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Connect with mutual TLS: DIR holds ca.pem (the cluster CA),
    /// client.pem and client-key.pem (a client certificate the CA signed).
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Parent directory of the nodes' data directories and log files.
    #[arg(long)]
    pub dir: PathBuf,
    /// Port of node 1; node i gets base-port + i - 1.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    /// Every node appends its step records to FILE (`serve --trace`).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Mutual TLS: make a throwaway CA and certificates in DIR/tls (kept
    /// and reused when they are there already) and start every node with
    /// `--tls-dir DIR/tls`; clients then need `--tls-dir DIR/tls`.
    #[arg(long)]
    pub tls: bool,
    /// Every node's `serve --runtime`.
    #[arg(long, value_enum, default_value_t = RuntimeKind::CurrentThread)]
    pub runtime: RuntimeKind,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Addresses of the cluster's nodes (not with --failover or --snapshots).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present_any = ["failover", "snapshots"],
        value_parser = parse_addr
    )]
    pub cluster: Vec<String>,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Total writes across all clients.
    #[arg(long, visible_alias = "writes", default_value_t = 1000)]
    pub ops: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Directory for the fdatasync reference measurement.
    #[arg(long, default_value = ".")]
    pub fsync_dir: PathBuf,
    /// Measure failover instead: kill -9 the leader, time the first write.
    #[arg(long, conflicts_with = "snapshots")]
    pub failover: bool,
    /// Measure what snapshots cost and save instead: two fresh local
    /// clusters, snapshots off and on, each loaded with --ops writes; for
    /// each the data-dir size, the restart time after kill -9 of every
    /// node, and the write latency (p99 of writes overlapping a snapshot
    /// and of the others).
    #[arg(long)]
    pub snapshots: bool,
    /// Failover, snapshots: number of nodes of the local cluster it starts.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Failover, snapshots: directory for the local clusters' data.
    #[arg(long, required_if_eq_any = [("failover", "true"), ("snapshots", "true")])]
    pub dir: Option<PathBuf>,
    /// Failover: number of kill/recover trials.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Failover, snapshots: port of node 1 (the snapshots-on cluster uses
    /// the next --nodes ports).
    #[arg(long, default_value_t = 7101)]
    pub base_port: u16,
    /// Snapshots: the snapshots-on cluster's `serve --snapshot-entries`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = raftkv::kv::service::DEFAULT_SNAPSHOT_ENTRIES,
        requires = "snapshots"
    )]
    pub snapshot_entries: u64,
    /// Snapshots: distinct keys written (shared out among the clients; each
    /// key is written by one client only). Fewer keys: smaller snapshots.
    #[arg(long, default_value_t = 10_000, requires = "snapshots")]
    pub keys: u64,
    /// Snapshots: kill -9 / restart rounds per configuration.
    #[arg(long, default_value_t = 5, requires = "snapshots")]
    pub restarts: usize,
    /// Snapshots: print the results as one JSON object instead of a table.
    #[arg(long, requires = "snapshots")]
    pub json: bool,
    /// Connect with mutual TLS (as `put --tls-dir`; not with --failover or
    /// --snapshots).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["failover", "snapshots"])]
    pub tls_dir: Option<PathBuf>,
}

/// `HOST:PORT` (an IPv6 host in brackets): checked for shape only, so a
/// typo fails at once instead of after the client's timeout.
pub fn parse_addr(s: &str) -> Result<String, String> {
    let s = s.trim();
    let bad = |why: &str| Err(format!("`{s}` is not HOST:PORT ({why})"));
    let Some((host, port)) = s.rsplit_once(':') else {
        return bad("no port");
    };
    match port.parse::<u16>() {
        Ok(0) => return bad("port 0"),
        Ok(_) => {}
        Err(_) => return bad("the port is not a number from 1 to 65535"),
    }
    let inner = match host.strip_prefix('[') {
        Some(h) => match h.strip_suffix(']') {
            Some(h) if h.parse::<std::net::Ipv6Addr>().is_ok() => return Ok(s.to_string()),
            _ => return bad("malformed IPv6 address"),
        },
        None => host,
    };
    if inner.is_empty() {
        return bad("no host");
    }
    if inner.contains(':') {
        return bad("an IPv6 host must be in brackets, e.g. [::1]:7001");
    }
    if !inner
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return bad("the host has characters a host name cannot have");
    }
    Ok(s.to_string())
}

/// `ID=HOST:PORT,...`: ids from 1, each listed once, every address once.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
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
        let addr = parse_addr(addr)?;
        if peers.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("no peers given".into());
    }
    // Two ids on one address: that node would dial itself forever.
    let key = |a: &str| match a.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.to_string(),
        Err(_) => a.to_ascii_lowercase(),
    };
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for (id, addr) in &peers {
        if let Some(other) = seen.insert(key(addr), *id) {
            return Err(format!(
                "nodes {other} and {id} have the same address {addr}; every node needs its own"
            ));
        }
    }
    Ok(peers)
}

pub fn parse_range(s: &str) -> Result<(u64, u64), String> {
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

pub fn parse_cluster_id(s: &str) -> Result<String, String> {
    raftkv::storage::validate_cluster_id(s)?;
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_for_shape() {
        for ok in [
            "127.0.0.1:7001",
            "localhost:1",
            "node-1.example:65535",
            "[::1]:7001",
        ] {
            assert_eq!(parse_addr(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "garbage",
            "127.0.0.1",
            ":7001",
            "host:0",
            "host:70000",
            "host:x",
            "::1:7001",
            "[::1:7001",
            "a b:1",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn peers_sharing_an_address_are_refused() {
        let err = parse_peers("1=127.0.0.1:7001,2=127.0.0.1:7001").unwrap_err();
        assert!(err.contains("nodes 1 and 2 have the same address"), "{err}");
        assert!(parse_peers("1=LocalHost:7001,2=localhost:7001").is_err());
        assert!(parse_peers("1=127.0.0.1:7001,2=127.0.0.1:7002").is_ok());
    }
}
