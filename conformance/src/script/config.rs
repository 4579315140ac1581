//! The `config` header of a script: keys, defaults, and the line it prints.

use raft_model::{Config, NetworkKind, PersistMode};

/// The config of a script without a `config` header.
pub fn default_config() -> Config {
    default_config_for(3)
}

/// The defaults for `servers` servers: bounds that never refuse a step of
/// a script of ordinary length (a partition needs two servers).
pub fn default_config_for(servers: u8) -> Config {
    Config {
        servers,
        max_term: 1000,
        max_requests: raft_model::config::MAX_REQUESTS,
        max_inflight: u8::MAX,
        max_restarts: u8::MAX,
        max_partitions: if servers < 2 { 0 } else { u8::MAX },
        max_duplicates: u8::MAX,
        max_snapshots: u8::MAX,
        network: NetworkKind::Unordered,
        persist: PersistMode::Sync,
        max_batch: None,
        bug: None,
    }
}

/// The effective config in the form `config` prints.
pub fn describe_config(c: &Config) -> String {
    let mut s = format!(
        "servers={} persist={} network={}",
        c.servers,
        c.persist,
        match c.network {
            NetworkKind::Unordered => "unordered",
            NetworkKind::Ordered => "ordered",
        }
    );
    let d = default_config_for(c.servers);
    let bounds = [
        ("max_term", c.max_term, d.max_term),
        ("max_requests", c.max_requests, d.max_requests),
        ("max_inflight", c.max_inflight.into(), d.max_inflight.into()),
        ("max_restarts", c.max_restarts.into(), d.max_restarts.into()),
        (
            "max_partitions",
            c.max_partitions.into(),
            d.max_partitions.into(),
        ),
        (
            "max_duplicates",
            c.max_duplicates.into(),
            d.max_duplicates.into(),
        ),
        (
            "max_snapshots",
            c.max_snapshots.into(),
            d.max_snapshots.into(),
        ),
    ];
    for (name, v, default) in bounds {
        if v != default {
            s.push_str(&format!(" {name}={v}"));
        }
    }
    s
}

pub(crate) fn parse_config(words: &[&str]) -> Result<Config, String> {
    // The server count first: the other defaults depend on it.
    let servers = words
        .iter()
        .find_map(|w| w.strip_prefix("servers="))
        .map(|v| {
            v.parse::<u8>()
                .map_err(|_| format!("config servers: '{v}' is not a number from 1 to 7"))
        })
        .transpose()?
        .unwrap_or(3);
    let mut c = default_config_for(servers);
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("config takes key=value pairs, got '{w}'"))?;
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("config {k}: '{v}' is not a number"))
        };
        let small = |v: &str| {
            v.parse::<u8>()
                .map_err(|_| format!("config {k}: '{v}' is not a number from 0 to 255"))
        };
        match k {
            "servers" => c.servers = small(v)?,
            "persist" => {
                c.persist = match v {
                    "sync" => PersistMode::Sync,
                    "async" => PersistMode::Async,
                    _ => return Err(format!("config persist: '{v}' is not sync or async")),
                }
            }
            "network" => {
                c.network = match v {
                    "unordered" => NetworkKind::Unordered,
                    "ordered" => NetworkKind::Ordered,
                    _ => return Err(format!("config network: '{v}' is not unordered or ordered")),
                }
            }
            "max_term" => c.max_term = num(v)?,
            "max_requests" => c.max_requests = num(v)?,
            "max_inflight" => c.max_inflight = small(v)?,
            "max_restarts" => c.max_restarts = small(v)?,
            "max_partitions" => c.max_partitions = small(v)?,
            "max_duplicates" => c.max_duplicates = small(v)?,
            "max_snapshots" => c.max_snapshots = small(v)?,
            _ => {
                return Err(format!(
                    "unknown config key '{k}' (known: servers, persist, network, max_term, \
                     max_requests, max_inflight, max_restarts, max_partitions, \
                     max_duplicates, max_snapshots; the implementation's batch size is fixed, so \
                     max_batch cannot be set)"
                ))
            }
        }
    }
    // The implementation's cluster holds at most 7 nodes.
    if c.servers > 7 {
        return Err(format!("config servers: at most 7, got {}", c.servers));
    }
    c.validate()?;
    Ok(c)
}
