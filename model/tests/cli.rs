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
    let model = RaftModel::new(Config::default());
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
    // The partition scenario needs 3 servers and a partition: not found, so exit 1.
    assert_eq!(
        property(&report, "LeaderDeposedByPartition")["status"],
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
