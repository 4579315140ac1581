//! `raft-conform transitions`: every single-server transition of the model's state graph on the real core.

use crate::*;

pub(crate) fn transitions_config(a: &TransitionsArgs) -> Result<Config> {
    let mut cfg = if a.bounds == "default" {
        Config::default()
    } else {
        raft_conformance::transitions::ci_bounds()
    };
    a.bound_flags.apply(&mut cfg);
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

pub(crate) fn cmd_transitions(a: TransitionsArgs) -> Result<bool> {
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
    // The bounds and threads were checked above: what fails now is internal.
    let s = check_transitions(&opts)
        .map_err(anyhow::Error::msg)
        .map_err(failed)?;
    let run_id = run_id();
    let (written, write_error) = match &s.divergent_trace {
        Some(t) => write_finding(&a.out, "transitions-divergence", &run_id, t),
        None => (None, None),
    };
    if a.json {
        let mut v = serde_json::to_value(&s).context("cannot serialise the summary")?;
        v["divergent_trace_file"] = serde_json::json!(written);
        v["trace_write_error"] = serde_json::json!(write_error);
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
    if let Some(e) = &write_error {
        eprintln!("error: {e}");
    }
    if s.divergences == 0 && write_error.is_none() && !s.complete {
        eprintln!("error: the search stopped at --timeout before it was complete");
        return Err(anyhow::anyhow!("incomplete: timed out"));
    }
    Ok(s.divergences == 0 && write_error.is_none())
}
