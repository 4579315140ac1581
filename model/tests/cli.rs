// Over 600 lines: the raft-model command line's whole contract (check, replay, diagram, explore, simulate, bench) in one place.
//! End-to-end tests of the `raft-model` binary at small bounds.

use raft_model::trace::{Trace, TraceKind};
use raft_model::{Config, RaftModel};
use serde_json::Value;
use stateright::Model;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raft-model");

/// Bounds small enough for a debug-ish test build: 2 servers, 1 request.
const SMALL: &[&str] = &[
    "--servers",
    "2",
    "--max-term",
    "2",
    "--max-requests",
    "1",
    "--max-inflight",
    "1",
    "--max-duplicates",
    "0",
    "--max-partitions",
    "0",
];

fn run(args: &[&str], trace_dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--trace-dir")
        .arg(trace_dir)
        .args(["--progress-every", "0"])
        .output()
        .expect("run raft-model")
}

fn json_of(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn property<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no property {name} in {report}"))
}

#[test]
fn unbugged_check_reports_every_property_and_exits_by_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["check", "--json"];
    args.extend(SMALL);
    let out = run(&args, dir.path());
    let report = json_of(&out);
    for key in [
        "complete",
        "states",
        "unique_states",
        "max_depth",
        "seconds",
        "properties",
    ] {
        assert!(report.get(key).is_some(), "missing key {key} in {report}");
    }
    assert_eq!(report["complete"], true);
    assert!(report["unique_states"].as_u64().unwrap() > 1);
    assert!(report["states"].as_u64() >= report["unique_states"].as_u64());
    let bounds: Config = serde_json::from_value(report["bounds"].clone()).unwrap();
    let model = RaftModel::new(bounds);
    let props = report["properties"].as_array().unwrap();
    assert_eq!(props.len(), model.properties().len());
    for p in props {
        let expectation = p["expectation"].as_str().unwrap();
        let status = p["status"].as_str().unwrap();
        match expectation {
            "always" => assert_eq!(status, "holds", "{p}"),
            "sometimes" => assert!(status == "found" || status == "not_found", "{p}"),
            other => panic!("bad expectation {other}"),
        }
        // A trace file exists exactly for discoveries.
        assert_eq!(p["trace"].is_string(), status == "found", "{p}");
    }
    // A leader is elected even at these bounds, and its example is short.
    let elected = property(&report, "LeaderElected");
    assert_eq!(elected["status"], "found");
    assert!(elected["steps"].as_u64().unwrap() <= elected["original_steps"].as_u64().unwrap());
    // Two different entries at one index need two values: with one request
    // the Figure 8 example is genuinely missing, so exit 1.
    assert_eq!(
        property(&report, "UncommittedOverwritten")["status"],
        "not_found"
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["exit_code"], 1);

    // The same check may accept missing examples: then it passes.
    args.push("--allow-missing-examples");
    let out = run(&args, dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_of(&out)["exit_code"], 0);
}

/// Names of the report's `not_checked` entries (each has a reason).
fn not_checked(report: &Value) -> Vec<&str> {
    report["not_checked"]
        .as_array()
        .unwrap_or_else(|| panic!("no not_checked in {report}"))
        .iter()
        .map(|p| {
            assert!(!p["reason"].as_str().unwrap().is_empty(), "{p}");
            p["name"].as_str().unwrap()
        })
        .collect()
}

fn has_property(report: &Value, name: &str) -> bool {
    report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == name)
}

#[test]
fn properties_that_need_a_partition_are_not_checked_without_one() {
    let dir = tempfile::tempdir().unwrap();
    // At max_partitions 0 (SMALL, and the default) they are listed as not
    // checked, with the reason, and are not among the properties.
    let mut args = vec!["check", "--json", "--allow-missing-examples"];
    args.extend(SMALL);
    let out = run(&args, dir.path());
    let report = json_of(&out);
    assert_eq!(
        not_checked(&report),
        ["MinorityNoCommit", "LeaderDeposedByPartition"]
    );
    assert!(report["not_checked"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("--max-partitions 0"));
    for name in ["MinorityNoCommit", "LeaderDeposedByPartition"] {
        assert!(!has_property(&report, name), "{name} in {report}");
    }
    assert_eq!(out.status.code(), Some(0));
    // The text report says so on a `note:` line.
    let text_args: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
    let text = stdout_of(&run(&text_args, dir.path()));
    assert!(
        text.contains("note: MinorityNoCommit not checked: --max-partitions 0"),
        "{text}"
    );
    assert!(
        text.contains("note: LeaderDeposedByPartition not checked:"),
        "{text}"
    );

    // With a partition both are checked: the safety property holds and the
    // partition example is found (3 servers; no restart or snapshot keeps
    // it about a second).
    let out = run(
        &[
            "check",
            "--json",
            "--allow-missing-examples",
            "--servers",
            "3",
            "--max-requests",
            "1",
            "--max-restarts",
            "0",
            "--max-snapshots",
            "0",
            "--max-partitions",
            "1",
        ],
        dir.path(),
    );
    let report = json_of(&out);
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(property(&report, "MinorityNoCommit")["status"], "holds");
    assert_eq!(
        property(&report, "LeaderDeposedByPartition")["status"],
        "found"
    );
    // The other exclusions are reported the same way.
    assert_eq!(not_checked(&report), ["InstallSnapshotInstalled"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let out = run(
        &[
            "check",
            "--json",
            "--persist",
            "sync",
            "--allow-missing-examples",
        ]
        .iter()
        .copied()
        .chain(SMALL.iter().copied())
        .collect::<Vec<_>>(),
        dir.path(),
    );
    assert_eq!(
        not_checked(&json_of(&out)),
        [
            "MinorityNoCommit",
            "LeaderDeposedByPartition",
            "LeaderCommitsBeforeOwnPersist"
        ]
    );
}

/// Replays a trace through the model: every step must be enabled and lead
/// to exactly the recorded abstract state.
fn assert_replays(trace: &Trace) {
    let model = RaftModel::new(trace.bounds.clone());
    let mut state = model.init_states().remove(0);
    assert_eq!(state.to_abstract(), trace.initial);
    for (k, step) in trace.steps.iter().enumerate() {
        state = model
            .next_state(&state, step.action.clone())
            .unwrap_or_else(|| panic!("step {} ({:?}) is not enabled", k + 1, step.action));
        assert_eq!(
            state.to_abstract(),
            step.state,
            "state after step {}",
            k + 1
        );
    }
}

#[test]
fn seeded_bugs_exit_1_with_a_replayable_counterexample() {
    for (bug, want) in [
        ("vote-twice", "VoteOncePerTerm"),
        ("no-persist-vote", "VoteOncePerTerm"),
        ("ack-before-persist", "CommittedIsDurable"),
        ("vote-before-persist", "VoteOncePerTerm"),
        ("leader-counts-volatile-self", "CommittedIsDurable"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&["check", "--json", "--bug", bug], dir.path());
        assert_eq!(out.status.code(), Some(1), "bug {bug}");
        let report = json_of(&out);
        assert_eq!(report["bounds"]["bug"], bug);
        assert_eq!(report["complete"], false, "stopped at the violation");
        let violated: Vec<&Value> = report["properties"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "violated")
            .collect();
        assert!(
            violated.iter().any(|p| p["name"] == want),
            "bug {bug}: {want} not violated in {report}"
        );
        for p in violated {
            // Shrunk: no longer than the checker's path, and proven shortest
            // (these bugs are caught within the shrinker's BFS budget).
            assert!(p["steps"].as_u64() <= p["original_steps"].as_u64(), "{p}");
            assert_eq!(p["shortest_proven"], true, "{bug}: {p}");
            let path = p["trace"]
                .as_str()
                .expect("a violated property has a trace");
            let trace = Trace::read(Path::new(path)).unwrap();
            assert_eq!(trace.kind, TraceKind::Counterexample);
            assert_eq!(trace.property.as_deref(), p["name"].as_str());
            assert_eq!(trace.steps.len() as u64, p["steps"].as_u64().unwrap());
            assert!(p["explorer"].as_str().unwrap().contains("/#/steps/0/"));
            assert_replays(&trace);
            // The last state violates the property, and shrinking kept it so.
            let model = RaftModel::new(trace.bounds.clone());
            let prop = model
                .properties()
                .into_iter()
                .find(|q| Some(q.name) == p["name"].as_str())
                .unwrap();
            let mut state = model.init_states().remove(0);
            for step in &trace.steps {
                state = model.next_state(&state, step.action.clone()).unwrap();
            }
            assert!(
                !(prop.condition)(&model, &state),
                "{bug}: last state is not a violation"
            );
        }
    }
}

#[test]
fn text_report_lists_numbered_steps_and_explorer_links() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["check", "--bug", "vote-twice"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Counterexample for "), "{text}");
    assert!(text.contains("   1. Timeout s"), "{text}");
    assert!(text.contains("http://127.0.0.1:3000/#/steps/0/"), "{text}");
    assert!(text.contains("VIOLATED"), "{text}");
    assert!(text.contains("result: FAILED (exit 1)"), "{text}");
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["check", "--servers", "9"], "--servers"),
        (&["check", "--bug", "no-such-bug"], "known bugs"),
        (&["check", "--max-term", "0"], "max_term"),
        (&["check", "--network", "lossy"], "--network"),
        (&["check", "--timeout=0"], "--timeout"),
        (&["check", "--threads", "0"], "--threads"),
        (&["explore", "--addr", "not an address"], "--addr"),
    ];
    for (args, needle) in cases {
        let out = run(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn timeout_makes_the_search_incomplete_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // Default bounds do not finish in half a second.
    let out = run(
        &[
            "check",
            "--json",
            "--timeout",
            "0.5",
            "--no-shrink",
            "--threads",
            "1",
        ],
        dir.path(),
    );
    let report = json_of(&out);
    assert_eq!(report["complete"], false);
    assert_eq!(report["stop_reason"], "timeout");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_walks_until_its_budget_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["simulate", "--json", "--timeout", "1", "--seed", "7"];
    args.extend(SMALL);
    let out = run(&args, dir.path());
    let report = json_of(&out);
    assert_eq!(report["strategy"], "simulate");
    assert_eq!(report["complete"], false);
    assert!(report["states"].as_u64().unwrap() > 0);
    assert_eq!(
        out.status.code(),
        Some(0),
        "no violation in an unbugged model"
    );
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Starts `raft-model explore` on a free port; returns the child and its address.
fn start_explorer() -> (std::process::Child, String) {
    // A free port: bind, read it, release it for the Explorer.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["explore", "--addr", addr.as_str()];
    args.extend(SMALL);
    let child = Command::new(BIN).args(&args).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&addr, "/.status").is_none() {
        assert!(Instant::now() < deadline, "Explorer did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, addr)
}

#[test]
fn explore_serves_status_and_states() {
    let (mut child, addr) = start_explorer();
    let status = http_get(&addr, "/.status").unwrap();
    let init = http_get(&addr, "/.states").unwrap();
    let next = http_get(&addr, "/.states/0").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(status.contains("ElectionSafety"), "{status}");
    assert!(init.contains("servers"), "{init}");
    assert!(next.contains("Timeout s0"), "{next}");
}

#[test]
fn explore_shows_the_sequence_diagram() {
    let (mut child, addr) = start_explorer();
    let after_timeout = http_get(&addr, "/.states/0/0").unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The model draws its own diagram: the step's arrow label and server boxes.
    assert!(after_timeout.contains("<svg"), "{after_timeout}");
    assert!(after_timeout.contains("server 1"), "{after_timeout}");
    assert!(
        after_timeout.contains("election timeout"),
        "{after_timeout}"
    );
}

#[test]
fn bench_measures_a_non_degenerate_run() {
    let out = Command::new(BIN)
        .args(["bench", "--json", "--only", "TLC bounds, symmetry"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["complete"], true);
    // An election is possible at these bounds: more than the initial state.
    assert!(run["unique_states"].as_u64().unwrap() > 100, "{run}");
    assert!(run["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(run["speedup_vs_tlc"].as_f64().unwrap() > 0.0);
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn help_of(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    stdout_of(&out)
}

#[test]
fn help_documents_one_exit_code_scheme_for_every_command() {
    let top = help_of(&["--help"]);
    for needle in [
        "Exit codes",
        "0  success",
        "1  a finding or a failed operation",
        "2  bad input or usage",
    ] {
        assert!(top.contains(needle), "{needle}: {top}");
    }
    for sub in ["check", "simulate", "explore", "bench", "diagram"] {
        let help = help_of(&[sub, "--help"]);
        assert!(help.contains("Exit codes:"), "{sub}: {help}");
    }
    // A simulation's budget is its normal end: its help must not say that
    // --timeout makes it incomplete with exit 2.
    let simulate = help_of(&["simulate", "--help"]);
    assert!(!simulate.contains("incomplete (exit 2)"), "{simulate}");
    assert!(simulate.contains("no walk elected a leader"), "{simulate}");
    let check = help_of(&["check", "--help"]);
    assert!(check.contains("no leader was ever elected"), "{check}");
}

#[test]
fn a_check_in_which_no_leader_is_elected_fails_and_names_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // 7 servers and 2 messages in flight: a Timeout's 6 RequestVotes never fit.
    let args = [
        "check",
        "--servers",
        "7",
        "--max-inflight",
        "2",
        "--allow-missing-examples",
        "--json",
    ];
    let out = run(&args, dir.path());
    let report = json_of(&out);
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(property(&report, "LeaderElected")["status"], "not_found");
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["exit_code"], 1);
    let err = stderr_of(&out);
    assert!(
        err.contains("no leader elected") && err.contains("--max-inflight to at least 6"),
        "{err}"
    );
    assert!(report["errors"][0]
        .as_str()
        .unwrap()
        .contains("--max-inflight"));
    // The text report says so too.
    let out = run(&args[..args.len() - 1], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = stdout_of(&out);
    assert!(
        text.contains("error: no leader elected") && text.contains("result: FAILED (exit 1)"),
        "{text}"
    );
    // Random walks that never elect a leader fail as well.
    let out = run(
        &[
            "simulate",
            "--servers",
            "7",
            "--max-inflight",
            "2",
            "--timeout",
            "0.5",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout_of(&out));
    assert!(stdout_of(&out).contains("no random walk elected a leader"));
}

#[test]
fn servers_raise_the_default_max_inflight_so_an_election_is_possible() {
    let dir = tempfile::tempdir().unwrap();
    // The full check at 7 servers is far too large: stop it early. Either a
    // leader was elected before the deadline (incomplete, exit 2) or not
    // (exit 1); it never passes, as it did when no Timeout could fit.
    let out = run(
        &[
            "check",
            "--servers",
            "7",
            "--allow-missing-examples",
            "--timeout",
            "1",
            "--no-shrink",
            "--json",
        ],
        dir.path(),
    );
    let report = json_of(&out);
    assert_eq!(report["bounds"]["max_inflight"], 6, "{report}");
    assert_ne!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["complete"], false);
    // An explicit --max-inflight is kept, and the default check is unchanged.
    let out = run(
        &[
            "check",
            "--servers",
            "5",
            "--max-inflight",
            "3",
            "--timeout",
            "0.2",
            "--no-shrink",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(json_of(&out)["bounds"]["max_inflight"], 3);
}

#[test]
fn bound_combinations_are_refused_naming_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["check", "--servers", "1", "--max-partitions", "1"],
            &["--servers 1", "--max-partitions 0"],
        ),
        (
            &["check", "--servers", "1", "--max-partitions", "2"],
            &["--max-partitions 0"],
        ),
        (
            &["check", "--servers", "3", "--max-inflight", "0"],
            &["--max-inflight"],
        ),
        (&["check", "--max-requests", "256"], &["--max-requests"]),
        (&["simulate", "--max-term", "0"], &["--max-term"]),
    ];
    for (args, needles) in cases {
        let out = run(args, dir.path());
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{args:?}: {n}: {err}");
        }
    }
    // bench checks its own flags instead of failing in a child run (exit 1).
    for args in [
        &["bench", "--threads", "0"][..],
        &["bench", "--timeout=-1"],
        &["check", "--progress-every=-1"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("must be"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    // One server without partitions is a valid (tiny) check, and since the
    // default has no partition `--servers 1` alone is one too.
    for args in [
        &["check", "--servers", "1", "--max-partitions", "0", "--json"][..],
        &["check", "--servers", "1", "--json"],
    ] {
        let out = run(args, dir.path());
        assert_eq!(
            property(&json_of(&out), "LeaderElected")["status"],
            "found",
            "{args:?}"
        );
    }
}

#[test]
fn a_finding_is_printed_even_when_its_trace_file_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for trace_dir in [file.clone(), file.join("sub")] {
        let out = run(&["check", "--bug", "vote-twice"], &trace_dir);
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        let text = stdout_of(&out);
        assert!(
            text.contains("Counterexample for VoteOncePerTerm"),
            "{text}"
        );
        assert!(text.contains("   1. Timeout s"), "{text}");
        assert!(text.contains("NOT WRITTEN"), "{text}");
        assert!(text.contains("error: "), "{text}");

        let out = run(&["check", "--bug", "vote-twice", "--json"], &trace_dir);
        assert_eq!(out.status.code(), Some(1));
        let report = json_of(&out);
        let p = property(&report, "VoteOncePerTerm");
        assert_eq!(p["status"], "violated");
        assert!(p["trace"].is_null(), "{p}");
        assert!(p["steps"].as_u64().unwrap() > 0);
        assert!(p["explorer"].as_str().unwrap().contains("/#/steps/0/"));
        let err = stderr_of(&out);
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Without a finding, a trace that cannot be written is a failed
    // operation: exit 1, not the 0 of a passing check.
    let mut args = vec!["check", "--allow-missing-examples"];
    args.extend(SMALL);
    let out = run(&args, &file);
    assert_eq!(out.status.code(), Some(1), "{}", stdout_of(&out));
}

#[test]
fn runs_never_overwrite_or_mix_in_one_trace_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let out = run(&["check", "--bug", "vote-twice", "--json"], dir.path());
        assert_eq!(out.status.code(), Some(1));
        runs.push(json_of(&out));
    }
    let files = |r: &Value| -> Vec<String> {
        r["properties"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["trace"].as_str().map(String::from))
            .collect()
    };
    let (a, b) = (files(&runs[0]), files(&runs[1]));
    assert!(!a.is_empty());
    assert_ne!(runs[0]["run_id"], runs[1]["run_id"]);
    for (r, fs) in [(&runs[0], &a), (&runs[1], &b)] {
        let id = r["run_id"].as_str().unwrap();
        for f in fs {
            assert!(
                f.ends_with(&format!("-{id}.json")),
                "{f} is not named by {id}"
            );
            assert!(Path::new(f).exists(), "{f}");
        }
    }
    assert!(a.iter().all(|f| !b.contains(f)), "{a:?} {b:?}");
    let on_disk = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(on_disk, a.len() + b.len());
}

/// A trace with no steps for 3 servers (version 2).
fn empty_trace() -> Value {
    let model = RaftModel::new(Config::default());
    let init = model.init_states().remove(0).to_abstract();
    let t = Trace::new(TraceKind::Walk, None, Config::default(), init, vec![]);
    serde_json::to_value(t).unwrap()
}

#[test]
fn diagram_refuses_what_replay_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let ok = empty_trace();
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let mut v = ok.clone();
    v["steps"] = serde_json::json!([{ "action": { "type": "Timeout", "server": 5 },
                                      "state": ok["initial"].clone() }]);
    cases.push(("server outside the cluster", v, "outside"));
    let mut v = ok.clone();
    v["bounds"]["servers"] = serde_json::json!(4);
    cases.push(("states of 3 servers, bounds of 4", v, "bounds say 4"));
    let mut v = ok.clone();
    v["bounds"]["servers"] = serde_json::json!(0);
    cases.push(("no servers", v, "bounds.servers"));
    let mut v = ok.clone();
    v["initial"]["servers"][0]["voted_for"] = serde_json::json!(9);
    cases.push(("a vote for no server", v, "voted_for"));
    for (what, v, needle) in cases {
        let p = dir.path().join("t.json");
        std::fs::write(&p, v.to_string()).unwrap();
        let out = Command::new(BIN).arg("diagram").arg(&p).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(needle), "{what}: {err}");
        assert!(err.contains("not a drawable trace"), "{what}: {err}");
    }
    let p = dir.path().join("ok.json");
    std::fs::write(&p, ok.to_string()).unwrap();
    let out = Command::new(BIN).arg("diagram").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("<svg"));
}

#[test]
fn seeded_bugs_have_one_name_and_the_old_one_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let help = help_of(&["check", "--help"]);
    for b in raft_model::Bug::ALL {
        assert!(help.contains(b.name()), "{b}: {help}");
    }
    assert!(help.contains("vote-without-log-check (also: no-log-check-on-vote)"));
    for name in ["vote-without-log-check", "no-log-check-on-vote"] {
        let out = run(&["check", "--bug", name, "--json"], dir.path());
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr_of(&out));
        let report = json_of(&out);
        assert_eq!(report["bounds"]["bug"], "vote-without-log-check");
        assert_eq!(
            property(&report, "LeaderCompleteness")["status"],
            "violated"
        );
    }
}

#[test]
fn logs_carry_no_colour_codes_when_not_written_to_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["simulate", "--timeout", "0.3"];
    args.extend(SMALL);
    let out = Command::new(BIN)
        .args(&args)
        .arg("--trace-dir")
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(
        err.contains("Thread started"),
        "no log lines to check: {err}"
    );
    assert!(!err.contains('\x1b'), "{err:?}");
}
