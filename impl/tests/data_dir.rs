//! A data directory is whole or refused (issue 8 §1.2, §1.3): the `meta`
//! file records the node, the cluster and the segments, and opening refuses
//! a directory that lost its hard state, its meta file or any segment
//! (the last one included), or that belongs to another node or cluster.
//! Every crash point of segment creation and removal leaves a directory
//! that opens: shown for the states a crash can leave, and with real
//! processes killed with SIGKILL in the middle of writing.

use raftkv::core::HardState;
use raftkv::storage::{DirIdentity, FileStorage, FileStorageOptions, Storage, StorageError};
use raftkv::types::Entry;
use std::path::{Path, PathBuf};

fn opts() -> FileStorageOptions {
    FileStorageOptions { segment_size: 200 }
}

fn open(dir: &Path) -> Result<FileStorage, StorageError> {
    FileStorage::open_with(dir, opts())
}

fn entry(term: u64, i: usize) -> Entry {
    Entry {
        term,
        command: format!("entry-{i:04}-{}", "x".repeat(40)).into_bytes(),
    }
}

/// A directory with a vote and `n` entries over several segments.
fn populated(dir: &Path, n: usize) -> Vec<Entry> {
    let mut s = open(dir).unwrap();
    s.set_hard_state(HardState {
        term: 5,
        voted_for: Some(2),
    })
    .unwrap();
    let log: Vec<Entry> = (0..n).map(|i| entry(5, i)).collect();
    for e in &log {
        s.append(std::slice::from_ref(e)).unwrap();
    }
    s.sync().unwrap();
    log
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn name(p: &Path) -> &str {
    p.file_name().unwrap().to_str().unwrap()
}

#[test]
fn a_missing_hard_state_beside_a_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 10);
    std::fs::remove_file(dir.path().join("hardstate")).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StorageError::MissingHardState { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("not whole") && msg.contains("hardstate"),
        "{msg}"
    );
    assert!(msg.contains(dir.path().to_str().unwrap()), "{msg}");
}

#[test]
fn a_missing_hard_state_with_an_empty_log_is_refused() {
    // A node that voted in term 5 and has no log yet: without the meta file
    // it would start at term 0 and could vote again in term 5.
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path()).unwrap();
    s.set_hard_state(HardState {
        term: 5,
        voted_for: Some(3),
    })
    .unwrap();
    drop(s);
    std::fs::remove_file(dir.path().join("hardstate")).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StorageError::MissingHardState { .. }),
        "{err}"
    );
}

#[test]
fn a_missing_last_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 20);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let last = segs.last().unwrap();
    std::fs::remove_file(last).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::MissingSegment { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(name(last)) && msg.contains("missing"), "{msg}");
}

#[test]
fn a_missing_first_or_middle_segment_is_refused() {
    for k in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        populated(dir.path(), 20);
        let segs = segments(dir.path());
        std::fs::remove_file(&segs[k]).unwrap();
        let err = open(dir.path()).unwrap_err();
        assert!(matches!(err, StorageError::MissingSegment { .. }), "{err}");
        assert!(err.to_string().contains(name(&segs[k])), "{err}");
    }
}

#[test]
fn a_missing_meta_file_beside_a_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 5);
    std::fs::remove_file(dir.path().join("meta")).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::MissingMeta { .. }), "{err}");
    assert!(err.to_string().contains("no meta file"), "{err}");
}

#[test]
fn a_corrupt_meta_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 5);
    let p = dir.path().join("meta");
    let mut b = std::fs::read(&p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x04;
    std::fs::write(&p, b).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::CorruptMeta { .. }), "{err}");
    assert!(err.to_string().contains("meta"), "{err}");
}

#[test]
fn a_directory_of_another_node_or_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let as_node = |id: u64, cluster: Option<&str>| {
        FileStorage::open_as(
            dir.path(),
            opts(),
            &DirIdentity {
                node_id: Some(id),
                cluster_id: cluster.map(String::from),
            },
        )
    };
    drop(as_node(1, Some("blue")).unwrap());
    drop(as_node(1, Some("blue")).unwrap());
    // No claim: accepted (the library's own tests and the conformance harness).
    drop(open(dir.path()).unwrap());
    drop(as_node(1, None).unwrap());
    let err = as_node(2, Some("blue")).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::WrongNode {
                recorded: 1,
                requested: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("belongs to node 1, not node 2"));
    let err = as_node(1, Some("green")).unwrap_err();
    assert!(matches!(err, StorageError::WrongCluster { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("belongs to cluster `blue`, not cluster `green`"),
        "{err}"
    );
}

#[test]
fn a_first_claim_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 3); // made without an identity
    let id = |n: u64, c: &str| DirIdentity {
        node_id: Some(n),
        cluster_id: Some(c.into()),
    };
    let mut s = FileStorage::open_as(dir.path(), opts(), &id(3, "c1")).unwrap();
    assert_eq!(s.load().unwrap().log.len(), 3);
    drop(s);
    assert!(FileStorage::open_as(dir.path(), opts(), &id(4, "c1")).is_err());
    assert!(FileStorage::open_as(dir.path(), opts(), &id(3, "c2")).is_err());
}

// --- the states a crash can leave -------------------------------------------

#[test]
fn a_crash_while_creating_the_directory_opens_empty() {
    // After `hardstate` and before `meta`.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    std::fs::remove_file(dir.path().join("meta")).unwrap();
    let mut s = open(dir.path()).unwrap();
    assert_eq!(s.load().unwrap().log, vec![]);
    // And before `hardstate` was renamed into place.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hardstate.tmp"), b"partial").unwrap();
    let mut s = open(dir.path()).unwrap();
    assert_eq!(s.load().unwrap().hard_state, HardState::default());
}

#[test]
fn a_crash_while_creating_a_segment_opens_without_it() {
    for contents in [
        None, // a valid header, not yet listed
        Some(vec![0u8; 64]),
        Some(b"RKV".to_vec()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = populated(dir.path(), 8);
        let next = dir.path().join(format!("log-{:020}.seg", log.len() + 1));
        match contents {
            Some(b) => std::fs::write(&next, b).unwrap(),
            None => {
                // Make a real one (header only), then forget it in meta by
                // restoring the meta file from before.
                let meta = std::fs::read(dir.path().join("meta")).unwrap();
                let mut s =
                    FileStorage::open_with(dir.path(), FileStorageOptions { segment_size: 1 })
                        .unwrap();
                s.append(&[entry(5, 99)]).unwrap();
                drop(s);
                assert!(next.exists());
                std::fs::write(dir.path().join("meta"), meta).unwrap();
            }
        }
        std::fs::write(dir.path().join("meta.tmp"), b"half a meta").unwrap();
        let mut s = open(dir.path()).unwrap();
        assert_eq!(s.load().unwrap().log, log);
        assert!(!next.exists(), "the unlisted segment is removed");
        assert!(!dir.path().join("meta.tmp").exists());
        // Usable, and whole on the next open.
        s.append(&[entry(6, 100)]).unwrap();
        s.sync().unwrap();
        drop(s);
        assert_eq!(open(dir.path()).unwrap().load().unwrap().log.len(), 9);
    }
}

#[test]
fn a_crash_while_removing_segments_opens_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let log = populated(dir.path(), 20);
    let before = segments(dir.path());
    // Keep copies of the files the truncation will remove, then put them
    // back: the state of a crash after `meta` was replaced.
    let saved: Vec<(PathBuf, Vec<u8>)> = before
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let mut s = open(dir.path()).unwrap();
    s.truncate(3).unwrap();
    s.sync().unwrap();
    drop(s);
    let after = segments(dir.path());
    assert!(after.len() < before.len());
    for (p, b) in &saved {
        if !p.exists() {
            std::fs::write(p, b).unwrap();
        }
    }
    let mut s = open(dir.path()).unwrap();
    assert_eq!(s.load().unwrap().log, log[..3].to_vec());
    assert_eq!(segments(dir.path()), after);
}

#[test]
fn an_unlisted_segment_inside_the_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 20);
    let segs = segments(dir.path());
    let first_of = |p: &Path| -> u64 { name(p)[4..24].parse().unwrap() };
    let between = first_of(&segs[0]) + 1;
    std::fs::copy(&segs[0], dir.path().join(format!("log-{between:020}.seg"))).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StorageError::UnexpectedSegment { .. }),
        "{err}"
    );
}

// --- real crashes -------------------------------------------------------------

const CHILD_ENV: &str = "RAFTKV_DATA_DIR_CRASH_CHILD";

/// Not a test on its own: the writer that `kill9_at_any_point_leaves_a_directory_that_opens`
/// runs in a child process (this test binary again) and kills.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    use std::io::Write;
    let mut s = FileStorage::open_with(&dir, FileStorageOptions { segment_size: 120 }).unwrap();
    let mut i = s.last_index() as usize;
    let mut out = std::io::stdout();
    for round in 1u64.. {
        s.set_hard_state(HardState {
            term: round,
            voted_for: Some(1),
        })
        .unwrap();
        let es: Vec<Entry> = (0..3).map(|k| entry(round, i + k)).collect();
        s.append(&es).unwrap();
        i += 3;
        if round % 4 == 0 {
            // Remove a few entries, often a segment or two with them.
            let to = s.last_index().saturating_sub(5);
            s.truncate(to).unwrap();
            i = to as usize;
        }
        s.sync().unwrap();
        let _ = writeln!(out, "synced {}", s.last_index());
    }
}

#[test]
fn kill9_at_any_point_leaves_a_directory_that_opens() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut killed_after = 0u64;
    for round in 0..10u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it get through a varying number of syncs, then kill it
        // wherever it is (between syncs, inside a segment creation, ...).
        let want = 4 + round * 6;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut last_synced = 0;
        let mut seen = 0;
        while seen < want {
            let line = lines.next().expect("the writer runs").unwrap();
            // (libtest's own lines come first)
            if let Some(n) = line.strip_prefix("synced ") {
                last_synced = n.parse::<u64>().unwrap();
                seen += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        killed_after += want;
        let mut s = open(&data).unwrap_or_else(|e| {
            panic!("round {round}: after kill -9 the directory does not open: {e}")
        });
        let r = s.load().unwrap();
        // What was synced survives, except what a later truncation removed
        // (durable as soon as it returns).
        assert!(
            r.log.len() as u64 + 5 >= last_synced,
            "round {round}: {} entries after a sync of {last_synced}",
            r.log.len()
        );
        assert!(r.hard_state.term >= 1);
    }
    assert!(killed_after > 0);
}
