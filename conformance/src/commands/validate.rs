//! `raft-conform validate`: recorded steps (`--trace`), and real nodes under seeded events (`--seeds`, manual or real timers).

use crate::*;

pub(crate) fn cmd_validate_trace(a: &ValidateArgs) -> Result<bool> {
    let out = raft_conformance::recorded::validate_files(&a.trace)?;
    let violations = usize::from(out.violation.is_some());
    let rate = out.steps as f64 / out.seconds.max(1e-9);
    if a.common.json {
        let v = serde_json::json!({
            "files": a.trace.len(),
            "steps": out.steps,
            "model_steps": out.model_steps,
            "inferred_persists": out.inferred_persists,
            "servers": out.servers,
            "values": out.values,
            "violations": violations,
            "seconds": out.seconds,
            "steps_per_second": rate,
            "first_violation": out.violation,
        });
        println!("{v}");
    } else {
        if let Some(v) = &out.violation {
            print!("{v}");
        }
        println!(
            "{} files, {} records ({} model steps, {} servers, {} values), {} violations, {:.3} s ({:.0} steps/s)",
            a.trace.len(),
            out.steps,
            out.model_steps,
            out.servers,
            out.values,
            violations,
            out.seconds,
            rate
        );
    }
    Ok(violations == 0)
}

/// `validate --seeds N --timers real`.
pub(crate) fn cmd_validate_real(a: &ValidateArgs) -> Result<bool> {
    let bug = a.common.impl_bug;
    let seeds = a.first_seed..a.first_seed.saturating_add(a.seeds);
    let s = raft_conformance::real_timers::run_many(a.servers, a.steps, seeds, bug, a.common.jobs)?;
    let first = s.first();
    let written = match first.and_then(|o| o.ndjson.as_ref().map(|t| (o.seed, t))) {
        Some((seed, text)) => {
            std::fs::create_dir_all(&a.out)
                .with_context(|| format!("creating {}", a.out.display()))?;
            let p = a.out.join(format!("real-timers-seed-{seed}.ndjson"));
            match std::fs::write(&p, text) {
                Ok(()) => Some(p),
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", p.display());
                    None
                }
            }
        }
        None => None,
    };
    let records = s.records();
    let rate = records as f64 / s.seconds.max(1e-9);
    if a.common.json {
        let v = serde_json::json!({
            "timers": "real",
            "runs": s.outcomes.len(),
            "steps": records,
            "restarts": s.outcomes.iter().map(|o| o.restarts).sum::<usize>(),
            "proposals": s.outcomes.iter().map(|o| o.proposals).sum::<usize>(),
            "violations": s.violations(),
            "divergences": s.violations(),
            "seconds": s.seconds,
            "steps_per_second": rate,
            "impl_bug": bug.map(|b| b.name()),
            "first_violation": first.and_then(|o| o.violation.as_ref()),
            "recorded_trace_file": written,
        });
        println!("{v}");
    } else {
        if let Some(o) = first {
            if let Some(v) = &o.violation {
                println!("seed {}:", o.seed);
                print!("{v}");
            }
            if let Some(p) = &written {
                println!("recorded steps written to {}", p.display());
            }
        }
        println!(
            "{} runs (real timers), {} recorded steps, {} violations, {:.2} s ({:.0} steps/s)",
            s.outcomes.len(),
            records,
            s.violations(),
            s.seconds,
            rate
        );
    }
    Ok(first.is_none())
}

pub(crate) fn cmd_validate(a: ValidateArgs) -> Result<bool> {
    if !a.trace.is_empty() {
        return cmd_validate_trace(&a);
    }
    if a.seeds == 0 {
        anyhow::bail!("--seeds must be at least 1");
    }
    if a.common.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    if a.common.threads == Some(0) {
        anyhow::bail!("--threads must be at least 1");
    }
    if a.timers == "real" {
        return cmd_validate_real(&a);
    }
    let rt = runtime(a.common.threads)?;
    let bug = a.common.impl_bug;
    let seeds = a.first_seed..a.first_seed.saturating_add(a.seeds);
    let s = rt
        .block_on(validate::validate_many(
            a.servers,
            a.steps,
            seeds,
            bug,
            a.common.jobs,
            &data_root(),
        ))
        .map_err(failed)?;
    let first = s.first();
    let (written, write_error) = match first {
        Some(o) => write_finding(
            &a.out,
            &format!("recorded-seed-{}", o.seed),
            &run_id(),
            &o.trace,
        ),
        None => (None, None),
    };
    let steps = s.steps();
    if a.common.json {
        let v = serde_json::json!({
            "runs": s.outcomes.len(),
            "steps": steps,
            "violations": s.violations(),
            "divergences": s.violations(),
            "seconds": s.seconds,
            "steps_per_second": steps as f64 / s.seconds.max(1e-9),
            "impl_bug": bug.map(|b| b.name()),
            "first_violation": first.and_then(|o| o.violation.as_ref()),
            "recorded_trace_file": written,
            "trace_write_error": write_error,
        });
        println!("{v}");
    } else {
        if let Some(v) = first.and_then(|o| o.violation.as_ref()) {
            print!("{v}");
        }
        if let Some(p) = &written {
            println!("recorded trace written to {}", p.display());
        }
        println!(
            "{} runs, {} steps, {} violations, {:.2} s ({:.0} steps/s)",
            s.outcomes.len(),
            steps,
            s.violations(),
            s.seconds,
            steps as f64 / s.seconds.max(1e-9)
        );
    }
    if let Some(e) = &write_error {
        eprintln!("error: {e}");
    }
    Ok(first.is_none() && write_error.is_none())
}
