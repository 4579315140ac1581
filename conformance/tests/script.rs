//! The scenario scripts of conformance/testdata (docs/scripts.md), through
//! the library path `raft-conform script` uses: every script prints its
//! expected output on the model and on real nodes, a wrong line fails on
//! the side that printed otherwise, and seeded implementation bugs fail on
//! the implementation side at the command that shows them.

use raft_conformance::cluster::data_root;
use raft_conformance::script::{
    self, check_files, check_script, parse, FileResult, ScriptOptions, Side,
};
use raftkv::node::ImplBug;
use std::path::{Path, PathBuf};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn opts(rewrite: bool, impl_bug: Option<ImplBug>) -> ScriptOptions {
    ScriptOptions {
        rewrite,
        impl_bug,
        root: data_root(),
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Every `*.txt` under testdata, sorted.
fn scripts() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

fn report(results: &[FileResult]) -> String {
    results
        .iter()
        .flat_map(|r| r.mismatches.iter().map(|m| m.to_string()))
        .collect()
}

#[test]
fn every_script_prints_its_expected_output_on_both_sides() {
    let files = scripts();
    assert!(files.len() >= 25, "only {} scripts", files.len());
    let results = rt()
        .block_on(check_files(&files, &opts(false, None)))
        .unwrap();
    assert_eq!(results.len(), files.len());
    assert!(
        results.iter().all(FileResult::passed),
        "{}",
        report(&results)
    );
}

#[test]
fn every_script_starts_with_the_format_and_the_rule_it_exercises() {
    for f in scripts() {
        let text = std::fs::read_to_string(&f).unwrap();
        let head: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        let head = head.join("\n");
        assert!(
            head.contains("docs/scripts.md") && head.contains("docs/protocol.md"),
            "{}: the header comment must name the format (docs/scripts.md) and the rule \
             (docs/protocol.md):\n{head}",
            f.display()
        );
        // The rule ids let `grep -l R-vote-2 conformance/testdata/*.txt` find
        // the scripts of a rule (ARCHITECTURE.md, "To change a rule").
        // config-bounds.txt is about the model's bounds, not a rule.
        let ids: Vec<&str> = head
            .lines()
            .filter_map(|l| l.strip_prefix("# Rules: "))
            .flat_map(|l| l.trim_end_matches('.').split(", "))
            .collect();
        if !f.ends_with("config-bounds.txt") {
            assert!(
                !ids.is_empty(),
                "{}: the header needs a `# Rules: R-...` line",
                f.display()
            );
        }
        let protocol = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md"),
        )
        .unwrap();
        for id in ids {
            assert!(
                id.starts_with("R-") && protocol.contains(id),
                "{}: {id} is not a rule id of docs/protocol.md",
                f.display()
            );
        }
    }
}

const SMALL: &str = "\
# A small script.
timeout 0
----
s0 T1 candidate vote=0 commit=0 log=[] votes=[0]
sent 0→1 RequestVote t1 last=0/0
sent 0→2 RequestVote t1 last=0/0

heartbeat 0
----
error: Heartbeat s0 refused: s0 is not leader
";

#[test]
fn a_correct_script_passes_and_rewrite_leaves_its_file_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("small.txt");
    std::fs::write(&p, SMALL).unwrap();
    let rt = rt();
    let r = rt
        .block_on(script::check_file(&p, &opts(false, None)))
        .unwrap();
    assert!(r.passed(), "{}", report(std::slice::from_ref(&r)));
    assert_eq!(r.commands, 2);
    let r = rt
        .block_on(script::check_file(&p, &opts(true, None)))
        .unwrap();
    assert!(r.passed() && !r.rewritten, "{}", report(&[r]));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), SMALL);
}

#[test]
fn rewrite_fills_in_commands_without_output_and_fixes_wrong_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("new.txt");
    let bare = "# A small script.\ntimeout 0\n\nheartbeat 0\n----\nerror: wrong\n";
    std::fs::write(&p, bare).unwrap();
    let r = rt()
        .block_on(script::check_file(&p, &opts(true, None)))
        .unwrap();
    assert!(r.passed() && r.rewritten, "{}", report(&[r]));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), SMALL);
}

#[test]
fn a_wrong_expected_line_fails_on_both_sides_with_a_diff_at_its_command() {
    let wrong = SMALL.replace("votes=[0]", "votes=[0, 1]");
    let s = parse(&wrong, "wrong.txt").unwrap();
    let r = rt()
        .block_on(check_script(s, None, &opts(false, None)))
        .unwrap();
    let sides: Vec<Side> = r.mismatches.iter().map(|m| m.side).collect();
    assert_eq!(sides, [Side::Model, Side::Implementation]);
    for m in &r.mismatches {
        assert_eq!(m.at, "wrong.txt:2");
        assert_eq!(m.command, "timeout 0");
        let diff = format!(
            "--- wrong.txt (expected)\n\
             +++ wrong.txt ({})\n\
             @@ -1,7 +1,7 @@\n \
             # A small script.\n \
             timeout 0\n \
             ----\n\
             -s0 T1 candidate vote=0 commit=0 log=[] votes=[0, 1]\n\
             +s0 T1 candidate vote=0 commit=0 log=[] votes=[0]\n \
             sent 0→1 RequestVote t1 last=0/0\n \
             sent 0→2 RequestVote t1 last=0/0\n \n",
            m.side
        );
        assert_eq!(m.diff, diff);
    }
}

#[test]
fn bad_input_is_a_parse_error_naming_file_and_line() {
    let cases = [
        (
            "timeout 0\nfrobnicate 1\n",
            "x.txt:2: unknown command 'frobnicate' (known: config, state, timeout, heartbeat, \
             request, deliver, drop, duplicate, persist, restart, snapshot, partition, heal)",
        ),
        (
            "timeout 3\n",
            "x.txt:1: server 3 does not exist (servers 0..3)",
        ),
        ("----\n", "x.txt:1: '----' without a command before it"),
        (
            "timeout 0\nconfig servers=5\n",
            "x.txt:2: config must be the first command of a script",
        ),
        (
            "deliver 0->1 RequestVote color=red\n",
            "x.txt:1: unknown message qualifier 'color=red'",
        ),
        (
            "partition 0 1 | 1 2\n",
            "x.txt:1: partition: the two sides must split servers 0..3 without overlap",
        ),
        (
            "request 0 v0\n",
            "x.txt:1: request: 'v0' is not a positive value like v3",
        ),
    ];
    for (text, want) in cases {
        let e = parse(text, "x.txt").unwrap_err();
        assert_eq!(e.to_string(), want);
    }
    let e = rt()
        .block_on(check_files(
            &[PathBuf::from("no/such/script.txt")],
            &opts(false, None),
        ))
        .unwrap_err();
    assert!(e.is_bad_input());
}

/// Each seeded implementation bug makes exactly these scripts fail, on the
/// implementation side only, at the command that shows the bug.
#[test]
fn seeded_implementation_bugs_fail_on_the_implementation_side() {
    let table: [(ImplBug, &[&str]); 11] = [
        (
            ImplBug::VoteWithoutLogCheck,
            &["vote-log-check-older-term.txt:98"],
        ),
        (
            ImplBug::TruncateOnMatch,
            &[
                "ae-stale-no-truncate.txt:54",
                "vote-log-check-older-term.txt:85",
            ],
        ),
        (
            ImplBug::CommitOldTerm,
            &[
                "ae-conflict-truncates.txt:174",
                "ae-too-short.txt:102",
                "figure8-current-term-commits.txt:93",
                "figure8.txt:148",
                "snapshot-persist-restart.txt:123",
            ],
        ),
        (
            ImplBug::LeaderCountsVolatileSelf,
            &[
                "persist-followers-commit.txt:69",
                "persist-leader-counts-durable.txt:60",
                "single-server.txt:20",
                "snapshot-persist-restart.txt:123",
            ],
        ),
        (
            ImplBug::AckBeforePersist,
            &[
                "persist-ack-waits.txt:49",
                "persist-followers-commit.txt:49",
                "persist-leader-counts-durable.txt:50",
                "snapshot-persist-restart.txt:53",
            ],
        ),
        (
            ImplBug::VoteBeforePersist,
            &[
                "persist-ack-waits.txt:22",
                "persist-followers-commit.txt:23",
                "persist-leader-counts-durable.txt:24",
                "persist-vote-waits.txt:34",
                "restart-loses-pending.txt:32",
                "snapshot-persist-restart.txt:23",
                "term-rule-empties-outbox.txt:40",
            ],
        ),
        (
            ImplBug::NoPersistVote,
            &["config-bounds.txt:54", "restart-durable-volatile.txt:52"],
        ),
        (
            ImplBug::AcceptStaleResponse,
            &["stale-rejection-index.txt:95"],
        ),
        (
            ImplBug::SnapshotUncommitted,
            &[
                "snapshot-compacts-committed.txt:67",
                "snapshot-install-keeps-suffix.txt:77",
            ],
        ),
        (
            ImplBug::InstallTruncatesMatchingSuffix,
            &["snapshot-install-keeps-suffix.txt:88"],
        ),
        (
            ImplBug::StaleSnapshotRollsBack,
            &["snapshot-install-stale.txt:79"],
        ),
    ];
    let rt = rt();
    let files = scripts();
    let dir = testdata().display().to_string();
    for (bug, want) in table {
        let results = rt
            .block_on(check_files(&files, &opts(false, Some(bug))))
            .unwrap();
        let mut got = Vec::new();
        for r in &results {
            for m in &r.mismatches {
                assert_eq!(m.side, Side::Implementation, "{bug}: {m}");
                got.push(m.at.strip_prefix(&format!("{dir}/")).unwrap().to_string());
            }
        }
        assert_eq!(got, want, "{bug}");
    }
    assert_eq!(
        ImplBug::ALL.len(),
        table.len(),
        "a new seeded bug needs a row here"
    );
}
