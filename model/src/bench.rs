//! `raft-model bench`: states/s, unique states, peak memory and time on
//! reference bounds. Each run is a child `raft-model check --json` process,
//! so that its peak RSS (VmHWM) is its own.

use crate::cli::{config_flags, BenchArgs};
use anyhow::{bail, Context, Result};
use raft_model::{Config, NetworkKind, PersistMode};
use serde::Serialize;
use std::fmt::Write as _;
use std::process::Command;

/// TLC on Ongaro's raft.tla at the comparable bounds (3 servers, terms <= 2,
/// one value, at most one message in flight, no restarts, partitions or
/// duplicates): 2,379,781 distinct states in 7 min 09 s without symmetry,
/// 2 min 07 s with it.
const TLC_SECONDS_NO_SYMMETRY: f64 = 429.0;
const TLC_SECONDS_SYMMETRY: f64 = 127.0;
const TLC_DISTINCT_STATES: u64 = 2_379_781;

/// The TLC-comparable bounds: `Config::tlc()`, but with room for the two
/// RequestVotes a Timeout broadcasts in a 3-server cluster. Our model counts
/// every message in the network against `max_inflight`, and a step whose
/// sends do not fit is not enabled: with a cap of 1, no election can start
/// and the state space is the initial state alone.
pub fn tlc_comparable() -> Config {
    let mut cfg = Config::tlc();
    cfg.max_inflight = cfg.max_inflight.max(cfg.servers - 1);
    cfg
}

struct Case {
    name: &'static str,
    cfg: Config,
    symmetry: bool,
    tlc_seconds: Option<f64>,
}

/// Bounds of the 5-server run: as small as still meaningful (two terms,
/// one request, room for one broadcast: a Timeout sends 4 RequestVotes)
/// so it finishes.
pub fn five_servers() -> Config {
    Config {
        servers: 5,
        max_term: 2,
        max_requests: 1,
        max_inflight: 4,
        max_restarts: 0,
        max_partitions: 0,
        max_duplicates: 0,
        max_snapshots: 0,
        network: NetworkKind::Unordered,
        persist: PersistMode::Async,
        max_batch: None,
        bug: None,
    }
}

fn cases(quick: bool) -> Vec<Case> {
    let tlc = tlc_comparable();
    // One more message in flight: the size closest to TLC's state space.
    let tlc_scale = Config {
        max_inflight: tlc.max_inflight + 1,
        ..tlc.clone()
    };
    let mut v = vec![
        Case {
            name: "TLC bounds, symmetry",
            cfg: tlc.clone(),
            symmetry: true,
            tlc_seconds: Some(TLC_SECONDS_SYMMETRY),
        },
        Case {
            name: "TLC bounds, no symmetry",
            cfg: tlc,
            symmetry: false,
            tlc_seconds: Some(TLC_SECONDS_NO_SYMMETRY),
        },
        Case {
            name: "TLC bounds+1 inflight, sym",
            cfg: tlc_scale.clone(),
            symmetry: true,
            tlc_seconds: Some(TLC_SECONDS_SYMMETRY),
        },
        Case {
            name: "TLC bounds+1 inflight, no sym",
            cfg: tlc_scale,
            symmetry: false,
            tlc_seconds: Some(TLC_SECONDS_NO_SYMMETRY),
        },
    ];
    if !quick {
        v.extend([
            Case {
                name: "default bounds, symmetry",
                cfg: Config::default(),
                symmetry: true,
                tlc_seconds: None,
            },
            Case {
                name: "default bounds, no symmetry",
                cfg: Config::default(),
                symmetry: false,
                tlc_seconds: None,
            },
            Case {
                name: "5 servers, symmetry",
                cfg: five_servers(),
                symmetry: true,
                tlc_seconds: None,
            },
        ]);
    }
    v
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    flags: String,
    symmetry: bool,
    complete: bool,
    states: u64,
    unique_states: u64,
    seconds: f64,
    states_per_second: f64,
    unique_per_second: f64,
    peak_rss_bytes: Option<u64>,
    tlc_seconds: Option<f64>,
    /// TLC's time divided by ours.
    speedup_vs_tlc: Option<f64>,
}

pub fn run(args: &BenchArgs) -> Result<u8> {
    // Bad values are bad input (exit 2) here, not a failed child run.
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if !(args.timeout.is_finite() && args.timeout > 0.0) {
        bail!(
            "--timeout must be a positive number of seconds, got {}",
            args.timeout
        );
    }
    let exe = std::env::current_exe()
        .context("cannot locate the raft-model executable")
        .map_err(crate::failed)?;
    let traces = std::env::temp_dir().join(format!("raft-model-bench-{}", std::process::id()));
    let mut rows = Vec::new();
    let selected: Vec<Case> = cases(args.quick)
        .into_iter()
        .map(|mut c| {
            c.cfg.persist = args.persist.into();
            c
        })
        .filter(|c| match &args.only {
            None => true,
            Some(o) => c.name.to_lowercase().contains(&o.to_lowercase()),
        })
        .collect();
    if selected.is_empty() {
        bail!(
            "no bench run matches --only {:?}",
            args.only.as_deref().unwrap_or("")
        );
    }
    for case in selected {
        let flags = config_flags(&case.cfg);
        eprintln!("bench: {} ({flags})", case.name);
        let mut cmd = Command::new(&exe);
        cmd.arg("check")
            .args(flags.split(' '))
            .arg("--json")
            // Bench runs measure the search, not the shrinker or the scenario coverage.
            .args(["--no-shrink", "--allow-missing-examples"])
            .args(["--progress-every", "0"])
            .args(["--threads", &args.threads.to_string()])
            .args(["--timeout", &args.timeout.to_string()])
            .arg("--trace-dir")
            .arg(&traces);
        if !case.symmetry {
            cmd.arg("--no-symmetry");
        }
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", exe.display()))
            .map_err(crate::failed)?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| {
                format!(
                    "run '{}' printed no JSON report; stderr:\n{}",
                    case.name,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .map_err(crate::failed)?;
        let num = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
        let seconds = num("seconds");
        let complete = report["complete"].as_bool().unwrap_or(false);
        rows.push(Row {
            name: case.name,
            flags,
            symmetry: case.symmetry,
            complete,
            states: report["states"].as_u64().unwrap_or(0),
            unique_states: report["unique_states"].as_u64().unwrap_or(0),
            seconds,
            states_per_second: num("states_per_second"),
            unique_per_second: (num("unique_states") / seconds).round(),
            peak_rss_bytes: report["peak_rss_bytes"].as_u64(),
            tlc_seconds: case.tlc_seconds,
            speedup_vs_tlc: case
                .tlc_seconds
                .filter(|_| complete)
                .map(|t| (t / seconds * 10.0).round() / 10.0),
        });
    }
    let _ = std::fs::remove_dir_all(&traces);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "threads": args.threads,
                "tlc_distinct_states": TLC_DISTINCT_STATES,
                "runs": rows,
            }))?
        );
    } else {
        print!("{}", render(&rows, args.threads));
    }
    if rows.iter().any(|r| !r.complete) {
        bail!("a bench run did not complete (raise --timeout)");
    }
    Ok(0)
}

fn render(rows: &[Row], threads: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:>8} {:>11} {:>10} {:>8} {:>10} {:>10} {:>8}  vs TLC",
        "run", "complete", "states", "unique", "seconds", "states/s", "unique/s", "peak MB"
    );
    for r in rows {
        let vs = match (r.tlc_seconds, r.speedup_vs_tlc) {
            (Some(t), Some(x)) => format!("TLC {t:.0} s: {x}x faster"),
            (Some(t), None) => format!("TLC {t:.0} s"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<30} {:>8} {:>11} {:>10} {:>8.2} {:>10.0} {:>10.0} {:>8.1}  {vs}",
            r.name,
            if r.complete { "yes" } else { "NO" },
            r.states,
            r.unique_states,
            r.seconds,
            r.states_per_second,
            r.unique_per_second,
            r.peak_rss_bytes.map_or(f64::NAN, |b| b as f64 / 1e6),
        );
    }
    let _ = writeln!(
        out,
        "{threads} thread(s). TLC reference (Ongaro's raft.tla, 3 servers, terms <= 2, one value, \
         one message in flight, no faults): {TLC_DISTINCT_STATES} distinct states, {:.0} distinct \
         states/s without symmetry. The specs differ (see docs/measurements.md): compare rates as \
         well as times.",
        TLC_DISTINCT_STATES as f64 / TLC_SECONDS_NO_SYMMETRY
    );
    out
}
