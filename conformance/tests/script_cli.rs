//! `raft-conform script` on the command line: exit codes 0, 1 and 2, the
//! report of a mismatch, REWRITE=1, --json and --help.

use std::path::Path;
use std::process::{Command, Output};

fn conform(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_raft-conform"));
    c.args(args).env_remove("REWRITE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run raft-conform")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const SCRIPT: &str = "\
# Scenario script (docs/scripts.md).
timeout 0
----
s0 T1 candidate vote=0 commit=0 log=[] votes=[0]
sent 0→1 RequestVote t1 last=0/0
sent 0→2 RequestVote t1 last=0/0
";

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn a_passing_script_exits_0_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ok.txt", SCRIPT);
    let out = conform(&["script", &p], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ok  {p} (1 commands)\n\
             1 of 1 scripts print their expected output on the model and the implementation\n"
        )
    );
}

#[test]
fn a_mismatch_exits_1_with_a_diff_per_side() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.txt",
        &SCRIPT.replace("last=0/0\nsent 0→2", "last=0/1\nsent 0→2"),
    );
    let out = conform(&["script", &p], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let diff = |side: &str| {
        format!(
            "{p}:2: the {side} printed something else for `timeout 0`:\n\
             --- {p} (expected)\n\
             +++ {p} ({side})\n\
             @@ -2,5 +2,5 @@\n \
             timeout 0\n \
             ----\n \
             s0 T1 candidate vote=0 commit=0 log=[] votes=[0]\n\
             -sent 0→1 RequestVote t1 last=0/1\n\
             +sent 0→1 RequestVote t1 last=0/0\n \
             sent 0→2 RequestVote t1 last=0/0\n\n"
        )
    };
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}{}MISMATCH  {p} (1 commands)\n\
             0 of 1 scripts print their expected output on the model and the implementation\n",
            diff("model"),
            diff("implementation")
        )
    );
}

#[test]
fn a_seeded_implementation_bug_fails_on_the_implementation_side_only() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/vote-log-check-older-term.txt");
    let p = script.display().to_string();
    let out = conform(
        &[
            "script",
            "--impl-bug",
            "vote-without-log-check",
            "--json",
            &p,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], 0);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["exit_code"], 1);
    let m = &v["files"][0]["mismatches"];
    assert_eq!(m.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(m[0]["side"], "implementation");
    assert_eq!(m[0]["at"], format!("{p}:98"));
    assert_eq!(m[0]["command"], "deliver 0->2 RequestVote term=3");
}

#[test]
fn bad_input_exits_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.txt", SCRIPT);
    let bad = write(dir.path(), "bad.txt", "timeout 0\nelect 1\n");
    let out = conform(&["script", &good, &bad], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {bad}:2: unknown command 'elect' (known: config, state, timeout, \
             heartbeat, request, deliver, drop, duplicate, persist, restart, snapshot, partition, heal)\n"
        )
    );
    let missing = dir.path().join("missing.txt").display().to_string();
    let out = conform(&["script", &missing], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!("error: cannot read {missing}: ")),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rewrite_env_writes_the_models_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "new.txt",
        "# Scenario script (docs/scripts.md).\ntimeout 0\n",
    );
    let out = conform(&["script", &p], &[("REWRITE", "1")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("ok  {p} (1 commands) (rewritten)\n")));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), SCRIPT);
    // Now correct: checking it changes nothing.
    let out = conform(&["script", "--rewrite", &p], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with(&format!("ok  {p} (1 commands)\n")));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), SCRIPT);
}

#[test]
fn help_teaches_the_format_examples_and_exit_codes() {
    let out = conform(&["script", "--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let h = text(&out.stdout);
    for want in [
        "raft-conform script conformance/testdata/*.txt",
        "--rewrite",
        "REWRITE=1",
        "--impl-bug",
        "deliver 0->1 RequestVote",
        "----",
        "Exit codes: 0",
        "docs/scripts.md",
    ] {
        assert!(h.contains(want), "--help lacks {want:?}:\n{h}");
    }
}
