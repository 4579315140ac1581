//! `raft-conform script`: scenario scripts on the model and on real nodes (docs/scripts.md).

use crate::*;

pub(crate) fn cmd_script(a: ScriptArgs) -> Result<bool> {
    use raft_conformance::script::{self, ScriptOptions};
    let opts = ScriptOptions {
        rewrite: a.rewrite || script::rewrite_from_env(),
        impl_bug: a.impl_bug,
        root: data_root(),
    };
    let rt = runtime(Some(1))?;
    let results = rt
        .block_on(script::check_files(&a.files, &opts))
        .map_err(|e| {
            if e.is_bad_input() {
                anyhow::Error::new(e)
            } else {
                failed(e)
            }
        })?;
    let passed = results.iter().filter(|r| r.passed()).count();
    let ok = passed == results.len();
    if a.json {
        let v = serde_json::json!({
            "files": results,
            "passed": passed,
            "failed": results.len() - passed,
            "exit_code": if ok { 0 } else { 1 },
        });
        println!("{v}");
    } else {
        for r in &results {
            for m in &r.mismatches {
                println!("{m}");
            }
            let status = if r.passed() { "ok" } else { "MISMATCH" };
            let note = if r.rewritten { " (rewritten)" } else { "" };
            println!("{status}  {} ({} commands){note}", r.file, r.commands);
        }
        println!(
            "{passed} of {} scripts print their expected output on the model and the implementation",
            results.len()
        );
    }
    Ok(ok)
}
