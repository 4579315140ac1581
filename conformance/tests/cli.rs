// Over 600 lines: the raft-conform command line's whole contract (every subcommand's exit codes, JSON keys and errors) in one place.
//! The `raft-conform` command line: exit codes, JSON keys, error messages.

use std::path::Path;
use std::process::{Command, Output};

fn conform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raft-conform"))
        .args(args)
        .output()
        .expect("run raft-conform")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A valid trace with no steps: three servers at term 0.
const EMPTY_TRACE: &str = r#"{
  "version": 1, "kind": "walk", "property": null,
  "bounds": { "servers": 3, "max_term": 2, "max_requests": 1, "max_inflight": 2,
              "max_restarts": 0, "max_partitions": 0, "max_duplicates": 0,
              "network": "unordered", "bug": null },
  "initial": { "servers": [
    { "term": 0, "voted_for": null, "role": "follower", "log": [], "commit_index": 0,
      "votes_granted": [], "next_index": [], "match_index": [] },
    { "term": 0, "voted_for": null, "role": "follower", "log": [], "commit_index": 0,
      "votes_granted": [], "next_index": [], "match_index": [] },
    { "term": 0, "voted_for": null, "role": "follower", "log": [], "commit_index": 0,
      "votes_granted": [], "next_index": [], "match_index": [] } ],
    "network": [], "partition": null },
  "steps": []
}"#;

#[test]
fn an_empty_trace_replays_and_a_wrong_initial_state_diverges_at_step_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.json");
    std::fs::write(&p, EMPTY_TRACE).unwrap();
    let out = conform(&["replay", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut v: serde_json::Value = serde_json::from_str(EMPTY_TRACE).unwrap();
    v["initial"]["servers"][1]["term"] = serde_json::json!(3);
    std::fs::write(&p, v.to_string()).unwrap();
    let out = conform(&["replay", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains("initial state"), "{report}");
    assert!(report.contains("servers[1].term"), "{report}");
}

const SMALL: [&str; 8] = [
    "--depth",
    "3",
    "--walks",
    "5",
    "--walk-len",
    "12",
    "--examples-timeout",
    "1",
];

#[test]
fn malformed_and_unknown_version_traces_exit_2_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("garbage.json", "not json at all", "is not a trace file"),
        (
            "v7.json",
            r#"{"version": 7, "kind": "walk"}"#,
            "version 7 is not supported",
        ),
        (
            "partial.json",
            r#"{"version": 1, "kind": "walk"}"#,
            "missing field",
        ),
    ];
    for (name, body, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let out = conform(&["replay", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains(expect), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    // A well-formed trace whose action names a server the cluster lacks.
    let mut v: serde_json::Value = serde_json::from_str(EMPTY_TRACE).unwrap();
    v["steps"] = serde_json::json!([{ "action": { "type": "Timeout", "server": 5 }, "state": v["initial"].clone() }]);
    let p = dir.path().join("server5.json");
    std::fs::write(&p, v.to_string()).unwrap();
    let out = conform(&["replay", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("outside"),
        "{}",
        text(&out.stderr)
    );

    let out = conform(&["replay", dir.path().join("absent.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read trace file"));
}

#[test]
fn bad_arguments_exit_2() {
    let out = conform(&["run", "--impl-bug", "no-such-bug"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("commit-old-term"),
        "lists known bugs"
    );
    let out = conform(&["run", "--servers", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("servers"));
    let out = conform(&["validate", "--servers", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_json_has_the_contract_keys_and_exits_0_when_conformant() {
    let mut args = vec!["run", "--json"];
    args.extend(SMALL);
    let out = conform(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "traces",
        "steps",
        "states_covered",
        "divergences",
        "seconds",
    ] {
        assert!(v.get(key).is_some(), "missing key {key}: {v}");
    }
    assert_eq!(v["divergences"], 0);
    assert!(v["steps"].as_u64().unwrap() > v["traces"].as_u64().unwrap());
    assert!(v["states_covered"].as_u64().unwrap() > 1);
}

#[test]
fn divergent_run_writes_a_trace_that_replay_reports_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    // The CI bounds (no size flags): where every seeded bug is caught.
    let bug = "vote-without-log-check";
    let out = conform(&["run", "--json", "--impl-bug", bug, "--out", out_dir]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["divergences"].as_u64().unwrap() > 0);
    let step = v["first_divergence"]["step"].as_u64().unwrap();
    let file = Path::new(v["divergent_trace_file"].as_str().unwrap()).to_path_buf();
    assert!(
        file.starts_with(out_dir) && file.exists(),
        "{}",
        file.display()
    );
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("divergence-") && name.ends_with(".json"),
        "{name}"
    );

    // The correct implementation conforms to the model's trace ...
    let out = conform(&["replay", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // ... the bugged one diverges at the same step, and the report names
    // the step, the event and each differing field.
    let out = conform(&["replay", "--impl-bug", bug, file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    assert!(report.contains("DIVERGENCE"), "{report}");
    assert!(report.contains(&format!("step {step} of ")), "{report}");
    assert!(report.contains("\"type\":"), "names the event: {report}");
    assert!(
        report.contains("servers[") || report.contains("network"),
        "{report}"
    );
    assert!(
        report.contains("expected:") && report.contains("actual:"),
        "{report}"
    );
}

#[test]
fn validate_json_and_recorded_trace() {
    let dir = tempfile::tempdir().unwrap();
    let out = conform(&["validate", "--seeds", "4", "--steps", "60", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"], 4);
    assert_eq!(v["violations"], 0);

    let out = conform(&[
        "validate",
        "--seeds",
        "16",
        "--steps",
        "200",
        "--impl-bug",
        "vote-without-log-check",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("recorded trace written to"), "{report}");
    let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(written.len(), 1);
    let path = written[0].as_ref().unwrap().path();
    let trace = raft_model::trace::Trace::read(&path).unwrap();
    assert_eq!(trace.kind, raft_model::trace::TraceKind::Recorded);
}

/// NDJSON records of a seeded model walk (as a node writes them).
fn recorded_walk(seed: u64, len: usize) -> String {
    use rand::{Rng, SeedableRng};
    use stateright::Model;
    let cfg = raft_model::Config {
        servers: 3,
        max_term: 6,
        max_requests: 4,
        max_inflight: 5,
        max_restarts: 3,
        max_partitions: 0,
        max_duplicates: 2,
        ..raft_model::Config::default()
    };
    let model = raft_model::RaftModel::new(cfg);
    let mut w = raft_conformance::recorded::RecordWriter::new(model.clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..len {
        let mut actions = Vec::new();
        model.actions(w.state(), &mut actions);
        if actions.is_empty() {
            break;
        }
        w.step(&actions[rng.gen_range(0..actions.len())]).unwrap();
    }
    w.ndjson()
}

#[test]
fn validate_trace_exit_codes_json_keys_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("steps.ndjson");
    let ndjson = recorded_walk(3, 300);
    std::fs::write(&p, &ndjson).unwrap();
    let out = conform(&["validate", "--trace", p.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in ["steps", "violations", "seconds", "steps_per_second"] {
        assert!(v.get(key).is_some(), "missing key {key}: {v}");
    }
    assert_eq!(v["violations"], 0);
    assert_eq!(
        v["steps"].as_u64().unwrap() as usize,
        ndjson.lines().count()
    );

    // One record's term changed: exit 1, the report names where.
    let mut lines: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let k = lines.len() / 2;
    let t = lines[k]["state"]["term"].as_u64().unwrap();
    lines[k]["state"]["term"] = serde_json::json!(t + 1);
    let mutated: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&p, mutated).unwrap();
    let out = conform(&["validate", "--trace", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let report = text(&out.stdout);
    let node = lines[k]["node"].as_u64().unwrap();
    let seq = lines[k]["seq"].as_u64().unwrap();
    assert!(
        report.contains(&format!(
            "VIOLATION at step {} ({}:{}): node {node} seq {seq} event ",
            k + 1,
            p.display(),
            k + 1
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("servers[{}].term", node - 1)),
        "{report}"
    );

    // Unknown version and unknown format: exit 2, naming what was found.
    std::fs::write(&p, "{\"format\":\"raftkv-steps\",\"version\":3}\n").unwrap();
    let out = conform(&["validate", "--trace", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("raftkv-steps version 3 is not supported"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&p, "{\"format\":\"x\",\"version\":1}\n").unwrap();
    let out = conform(&["validate", "--trace", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown record format \"x\""));
}

#[test]
fn validate_rejects_zero_seeds_jobs_threads() {
    for args in [
        &["validate", "--seeds", "0"][..],
        &["validate", "--jobs", "0"],
        &["validate", "--threads", "0"],
    ] {
        let out = conform(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("at least 1"), "{args:?}");
    }
}

fn text_of(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn transitions_at_ci_bounds_exit_0_with_the_contract_keys() {
    let out = conform(&["transitions", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in [
        "transitions",
        "executed",
        "states",
        "divergences",
        "seconds",
        "complete",
    ] {
        assert!(v.get(key).is_some(), "missing key {key}: {v}");
    }
    assert_eq!(v["divergences"], 0);
    assert_eq!(v["complete"], true);
    assert!(v["transitions"].as_u64().unwrap() > v["executed"].as_u64().unwrap());
}

#[test]
fn transitions_divergence_exits_1_and_writes_a_replayable_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = conform(&["transitions", "--impl-bug", "truncate-on-match", "--out", d]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let report = text(&out.stdout);
    assert!(
        report.starts_with("DIVERGENCE in transition from the state at depth "),
        "{report}"
    );
    assert!(
        report.contains("expected:") && report.contains("actual:"),
        "{report}"
    );
    let written: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let file = &written[0];
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("transitions-divergence-"), "{name}");
    assert!(
        report.contains(&format!("written to {}", file.display())),
        "{report}"
    );
    let out = conform(&[
        "replay",
        "--impl-bug",
        "truncate-on-match",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    // Bad bounds and a bad timeout are input errors.
    let out = conform(&["transitions", "--servers", "9"]);
    assert_eq!(out.status.code(), Some(2));
    let out = conform(&["transitions", "--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_with_real_timers_json_and_a_replayable_ndjson_on_a_violation() {
    let dir = tempfile::tempdir().unwrap();
    let out = conform(&[
        "validate", "--seeds", "3", "--steps", "100", "--timers", "real", "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["timers"], "real");
    assert_eq!(v["runs"], 3);
    assert_eq!(v["violations"], 0);
    assert!(v["steps"].as_u64().unwrap() > 100, "{v}");

    let out = conform(&[
        "validate",
        "--seeds",
        "8",
        "--steps",
        "200",
        "--timers",
        "real",
        "--impl-bug",
        "ack-before-persist",
        "--json",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["first_violation"].is_object(), "{v}");
    let written = v["recorded_trace_file"].as_str().unwrap().to_string();
    // The written records are what `validate --trace` reads: the same finding.
    let again = conform(&["validate", "--trace", &written]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again.stdout));
    assert!(
        text(&again.stdout).contains("VIOLATION"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn help_has_examples_the_exit_codes_and_every_flag_described() {
    let out = conform(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "Examples:",
        "raft-conform run --impl-bug",
        "Exit codes",
        "0  everything conforms",
        "1  a finding",
        "2  bad input or usage",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    // (Every flag of every subcommand has a description: the unit test
    // `every_flag_of_every_subcommand_is_described` in src/main.rs.)
    for sub in ["replay", "run", "validate", "transitions"] {
        let out = conform(&[sub, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{sub}");
        let help = text(&out.stdout);
        assert!(
            help.contains("Examples:") && help.contains("Exit codes: 0 "),
            "{sub}: {help}"
        );
    }
    // The bug names, with the old model name as an alias.
    let help = text(&conform(&["run", "--help"]).stdout);
    assert!(
        help.contains("vote-without-log-check (also: no-log-check-on-vote)"),
        "{help}"
    );
    assert!(help.contains("leader-counts-volatile-self"), "{help}");
}

#[test]
fn a_divergence_is_printed_even_when_its_trace_file_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let f = file.to_str().unwrap();
    let out = conform(&["transitions", "--impl-bug", "truncate-on-match", "--out", f]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let report = text(&out.stdout);
    assert!(report.starts_with("DIVERGENCE in transition"), "{report}");
    assert!(report.contains("expected:"), "{report}");
    let err = text(&out.stderr);
    assert!(err.contains("was not written") && err.contains(f), "{err}");
    let out = conform(&[
        "transitions",
        "--impl-bug",
        "truncate-on-match",
        "--out",
        f,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert!(v["first_divergence"].is_object(), "{v}");
    assert!(v["divergent_trace_file"].is_null());
    assert!(v["trace_write_error"].as_str().unwrap().contains(f));
    // validate too: its violation used to be printed only once written.
    let out = conform(&[
        "validate",
        "--seeds",
        "16",
        "--steps",
        "200",
        "--impl-bug",
        "vote-without-log-check",
        "--out",
        f,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    assert!(
        text(&out.stdout).contains("DIVERGENCE in validate seed"),
        "{}",
        text_of(&out)
    );
    assert!(text(&out.stderr).contains("was not written"));
}

#[test]
fn runs_never_overwrite_or_mix_in_one_out_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut files = Vec::new();
    for _ in 0..2 {
        let out = conform(&[
            "transitions",
            "--impl-bug",
            "truncate-on-match",
            "--out",
            d,
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        files.push(v["divergent_trace_file"].as_str().unwrap().to_string());
    }
    assert_ne!(files[0], files[1]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn replay_says_when_a_trace_was_made_with_a_seeded_model_bug() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bugged.json");
    // The model's earlier name of the bug: old traces stay readable.
    let mut v: serde_json::Value = serde_json::from_str(EMPTY_TRACE).unwrap();
    v["bounds"]["bug"] = serde_json::json!("no-log-check-on-vote");
    std::fs::write(&p, v.to_string()).unwrap();
    let out = conform(&["replay", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    let report = text(&out.stdout);
    assert!(
        report.contains("made by the model with the seeded bug vote-without-log-check"),
        "{report}"
    );
    assert!(
        report.contains("--impl-bug vote-without-log-check"),
        "{report}"
    );
    let out = conform(&["replay", "--json", p.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["model_bugs"][0]["bug"], "vote-without-log-check");
    assert_eq!(j["model_bugs"][0]["impl_bug"], "vote-without-log-check");
    // A model-only bug has no counterpart in raftkv.
    v["bounds"]["bug"] = serde_json::json!("vote-twice");
    std::fs::write(&p, v.to_string()).unwrap();
    let report = text(&conform(&["replay", p.to_str().unwrap()]).stdout);
    assert!(report.contains("no seeded counterpart"), "{report}");
    // The old impl-side alias works, and an unbugged trace has no note.
    let e = dir.path().join("empty.json");
    std::fs::write(&e, EMPTY_TRACE).unwrap();
    let out = conform(&[
        "replay",
        "--impl-bug",
        "no-log-check-on-vote",
        e.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert!(!text(&out.stdout).contains("seeded bug"));
}

#[test]
fn shared_bug_names_agree_between_model_and_implementation() {
    use raftkv::node::ImplBug;
    let model: Vec<&str> = raft_model::Bug::ALL.iter().map(|b| b.name()).collect();
    for b in ImplBug::ALL {
        if let Ok(m) = b.name().parse::<raft_model::Bug>() {
            assert_eq!(m.name(), b.name());
        }
        for a in b.aliases() {
            assert_eq!(a.parse::<ImplBug>().unwrap(), b);
        }
    }
    // The vote bug had two names; both sides now take both.
    assert!(model.contains(&"vote-without-log-check"));
    assert_eq!(
        "no-log-check-on-vote".parse::<ImplBug>().unwrap(),
        ImplBug::VoteWithoutLogCheck
    );
    assert_eq!(
        "no-log-check-on-vote"
            .parse::<raft_model::Bug>()
            .unwrap()
            .name(),
        "vote-without-log-check"
    );
}

#[test]
fn a_harness_failure_is_exit_1_and_an_inconsistent_trace_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.json");
    std::fs::write(&p, EMPTY_TRACE).unwrap();
    // Node data under a regular file: the nodes cannot start.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raft-conform"))
        .args(["replay", p.to_str().unwrap()])
        .env("RAFT_CONFORM_DATA_DIR", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    assert!(text(&out.stderr).contains("cannot"), "{}", text_of(&out));
    // An outbox message to a server the cluster lacks: refused like
    // `raft-model diagram` refuses it.
    let mut v: serde_json::Value = serde_json::from_str(EMPTY_TRACE).unwrap();
    v["version"] = serde_json::json!(2);
    v["initial"]["servers"][0]["outbox"] = serde_json::json!([{ "from": 0, "to": 7,
        "body": { "type": "RequestVote", "term": 1, "last_log_index": 0, "last_log_term": 0 } }]);
    std::fs::write(&p, v.to_string()).unwrap();
    let out = conform(&["replay", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
    assert!(
        text(&out.stderr).contains("names no server"),
        "{}",
        text_of(&out)
    );
}

#[test]
fn logs_carry_no_colour_codes_when_not_written_to_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.json");
    std::fs::write(&p, EMPTY_TRACE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_raft-conform"))
        .args(["replay", p.to_str().unwrap()])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.contains("node task stopped"), "no log lines: {err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}
