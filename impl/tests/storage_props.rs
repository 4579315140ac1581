//! Storage properties against a simple model (a HardState, a snapshot and
//! the log after it): round-trips under random appends, truncations,
//! hard-state writes, snapshots and crash points, a crash at every step of
//! `save_snapshot` included; torn tails truncated; corruption anywhere
//! detected.

use proptest::prelude::*;
use raftkv::core::HardState;
use raftkv::storage::{
    FileStorage, FileStorageOptions, MemStorage, Recovered, Storage, StorageError,
};
use raftkv::types::{Entry, Snapshot, SnapshotMeta};
use std::path::Path;

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<(u64, Vec<u8>)>),
    /// Truncate to this fraction (0..=100 %) of the current length.
    Truncate(u8),
    Sync,
    HardState(u64, Option<u64>),
    /// Drop the handle (a process crash: written data is in the page cache)
    /// and reopen.
    Crash,
    /// Save a snapshot at this fraction of the range from just above the
    /// current snapshot to 3 past the last entry (beyond the log, as an
    /// installed snapshot can be).
    Snapshot(u8),
    /// The same, crashing after this many steps of `save_snapshot`
    /// (FileStorage; MemStorage saves it whole), then reopen.
    SnapshotCrash(u8, u32),
}

/// What the storage should hold.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    hs: HardState,
    snap: Option<Snapshot>,
    /// The entries after the snapshot.
    log: Vec<Entry>,
}

impl Model {
    fn base(&self) -> u64 {
        self.snap.as_ref().map_or(0, |s| s.meta.index)
    }
    fn last(&self) -> u64 {
        self.base() + self.log.len() as u64
    }
    fn snapshot_at(&self, pct: u8) -> Snapshot {
        let span = self.last() + 3 - self.base();
        let index = self.base() + 1 + (span - 1) * pct as u64 / 100;
        let term = match index.checked_sub(self.base() + 1) {
            Some(k) if (k as usize) < self.log.len() => self.log[k as usize].term,
            _ => 100 + index,
        };
        Snapshot {
            meta: SnapshotMeta { index, term },
            data: bytes::Bytes::from(format!(
                "kv-state-at-{index}-{}",
                "s".repeat(index as usize % 50)
            )),
        }
    }
    fn with_snapshot(&self, snap: &Snapshot) -> Model {
        let mut m = self.clone();
        let covered = ((snap.meta.index - m.base()) as usize).min(m.log.len());
        m.log.drain(..covered);
        m.snap = Some(snap.clone());
        m
    }
    fn of(r: &Recovered) -> Model {
        Model {
            hs: r.hard_state,
            snap: r.snapshot.clone(),
            log: r.log.clone(),
        }
    }
}

/// A storage the runner can crash in the middle of `save_snapshot`.
trait Crashable: Storage {
    /// Arm the crash; false if this storage cannot be crashed there.
    fn arm_snapshot_crash(&mut self, steps: u32) -> bool;
}

impl Crashable for FileStorage {
    fn arm_snapshot_crash(&mut self, steps: u32) -> bool {
        self.crash_save_snapshot_after(steps);
        true
    }
}

impl Crashable for MemStorage {
    fn arm_snapshot_crash(&mut self, _: u32) -> bool {
        false
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0u64..5, prop::collection::vec(any::<u8>(), 0..40)), 1..6).prop_map(Op::Append),
        2 => (0u8..=100).prop_map(Op::Truncate),
        2 => Just(Op::Sync),
        1 => (0u64..10, prop::option::of(1u64..6)).prop_map(|(t, v)| Op::HardState(t, v)),
        1 => Just(Op::Crash),
        1 => (0u8..=100).prop_map(Op::Snapshot),
        1 => ((0u8..=100), 0u32..14).prop_map(|(p, k)| Op::SnapshotCrash(p, k)),
    ]
}

fn opts() -> FileStorageOptions {
    // Tiny segments so every run crosses segment boundaries.
    FileStorageOptions { segment_size: 200 }
}

fn open(dir: &Path) -> FileStorage {
    FileStorage::open_with(dir, opts()).expect("reopen")
}

/// Apply `ops` to `s` and to the model; returns the model.
fn run(s: &mut dyn Crashable, ops: &[Op], reopen: &mut dyn FnMut() -> Box<dyn Crashable>) -> Model {
    let mut m = Model::default();
    let mut boxed: Option<Box<dyn Crashable>> = None;
    for op in ops {
        let st: &mut dyn Crashable = match boxed.as_mut() {
            Some(b) => b.as_mut(),
            None => &mut *s,
        };
        match op {
            Op::Append(es) => {
                let es: Vec<Entry> = es
                    .iter()
                    .map(|(t, c)| Entry {
                        term: *t,
                        command: c.clone(),
                    })
                    .collect();
                st.append(&es).unwrap();
                m.log.extend(es);
            }
            Op::Truncate(pct) => {
                let keep = m.log.len() * *pct as usize / 100;
                st.truncate(m.base() + keep as u64).unwrap();
                m.log.truncate(keep);
            }
            Op::Sync => st.sync().unwrap(),
            Op::HardState(t, v) => {
                m.hs = HardState {
                    term: *t,
                    voted_for: *v,
                };
                st.set_hard_state(m.hs).unwrap();
            }
            Op::Crash => {
                drop(boxed.take());
                let mut b = reopen();
                let r = b.load().unwrap();
                assert_eq!(r.log, m.log, "log after crash");
                assert_eq!(r.hard_state, m.hs, "hard state after crash");
                assert_eq!(r.snapshot, m.snap, "snapshot after crash");
                boxed = Some(b);
            }
            Op::Snapshot(pct) => {
                let snap = m.snapshot_at(*pct);
                st.save_snapshot(&snap).unwrap();
                m = m.with_snapshot(&snap);
                assert_eq!(st.snapshot_meta(), Some(snap.meta));
            }
            Op::SnapshotCrash(pct, steps) => {
                let snap = m.snapshot_at(*pct);
                let new = m.with_snapshot(&snap);
                if !st.arm_snapshot_crash(*steps) {
                    st.save_snapshot(&snap).unwrap();
                    m = new;
                } else if st.save_snapshot(&snap).is_ok() {
                    m = new;
                } else {
                    // kill -9 in the middle: the old state or the new one,
                    // nothing lost either way.
                    drop(boxed.take());
                    let mut b = reopen();
                    let got = Model::of(&b.load().unwrap());
                    assert!(
                        got == m || got == new,
                        "after a crash at step {steps} of save_snapshot: {got:?}\nneither the old {m:?}\nnor the new {new:?}"
                    );
                    m = got;
                    boxed = Some(b);
                }
            }
        }
        let st: &dyn Crashable = match boxed.as_ref() {
            Some(b) => b.as_ref(),
            None => &*s,
        };
        assert_eq!(st.last_index(), m.last());
        assert_eq!(st.snapshot_meta(), m.snap.as_ref().map(|s| s.meta));
    }
    m
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn file_storage_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let path = dir.path().to_path_buf();
        let m = run(&mut s, &ops, &mut || Box::new(open(&path)));
        drop(s);
        let mut s = open(dir.path());
        let r = s.load().unwrap();
        prop_assert_eq!(Model::of(&r), m);
    }

    #[test]
    fn mem_storage_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut s = MemStorage::new();
        let shared = s.clone();
        let m = run(&mut s, &ops, &mut || Box::new(shared.clone()));
        let r = s.load().unwrap();
        prop_assert_eq!(Model::of(&r), m);
    }

    /// A write cut short by a crash: recovery keeps exactly the records that
    /// were complete, and the storage stays usable.
    #[test]
    fn torn_tail_is_truncated(
        batches in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 1..5), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let mut log = Vec::new();
        for (t, b) in batches.iter().enumerate() {
            let es: Vec<Entry> = b.iter().map(|c| Entry { term: t as u64, command: c.clone() }).collect();
            s.append(&es).unwrap();
            log.extend(es);
        }
        s.sync().unwrap();
        drop(s);
        let segs = segments(dir.path());
        let last = segs.last().unwrap();
        let len = std::fs::metadata(last).unwrap().len();
        let new_len = cut.index(len as usize + 1) as u64;
        std::fs::OpenOptions::new().write(true).open(last).unwrap().set_len(new_len).unwrap();
        let mut s = open(dir.path());
        let r = s.load().unwrap();
        prop_assert!(r.log.len() <= log.len());
        prop_assert_eq!(&r.log[..], &log[..r.log.len()]);
        // Everything in the earlier, untouched segments survives.
        let first_of_last: u64 = last.file_name().unwrap().to_str().unwrap()[4..24].parse().unwrap();
        prop_assert!(r.log.len() as u64 >= first_of_last - 1);
        // Usable after recovery.
        let e = Entry { term: 99, command: b"after".to_vec() };
        s.append(std::slice::from_ref(&e)).unwrap();
        s.sync().unwrap();
        drop(s);
        let mut want = r.log.clone();
        want.push(e);
        prop_assert_eq!(open(dir.path()).load().unwrap().log, want);
    }

    /// A flipped byte anywhere in any segment is refused, or (in the torn
    /// tail) truncated: never accepted with wrong content.
    #[test]
    fn corruption_is_detected(
        batches in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 1..5), 1..8),
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let mut log = Vec::new();
        for (t, b) in batches.iter().enumerate() {
            let es: Vec<Entry> = b.iter().map(|c| Entry { term: t as u64, command: c.clone() }).collect();
            s.append(&es).unwrap();
            log.extend(es);
        }
        s.sync().unwrap();
        drop(s);
        let segs = segments(dir.path());
        let k = which.index(segs.len());
        let victim = &segs[k];
        let mut data = std::fs::read(victim).unwrap();
        let pos = at.index(data.len());
        data[pos] ^= flip;
        std::fs::write(victim, &data).unwrap();
        match FileStorage::open_with(dir.path(), opts()) {
            Ok(mut s) => {
                let r = s.load().unwrap();
                prop_assert!(k == segs.len() - 1, "corruption in a non-final segment accepted");
                prop_assert!(r.log.len() < log.len(), "corrupt byte at {} silently accepted", pos);
                prop_assert_eq!(&r.log[..], &log[..r.log.len()]);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(matches!(e, StorageError::Corrupt { .. }), "unexpected error {}", msg);
                prop_assert!(msg.contains(victim.file_name().unwrap().to_str().unwrap()), "error does not name the file: {}", msg);
                prop_assert!(msg.contains("offset"), "error does not name the offset: {}", msg);
            }
        }
    }

    /// A flipped byte in the hard-state file is refused.
    #[test]
    fn hard_state_corruption_is_refused(at in 0usize..28, flip in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        s.set_hard_state(HardState { term: 7, voted_for: Some(3) }).unwrap();
        drop(s);
        let p = dir.path().join("hardstate");
        let mut data = std::fs::read(&p).unwrap();
        data[at] ^= flip;
        std::fs::write(&p, &data).unwrap();
        let err = FileStorage::open_with(dir.path(), opts()).unwrap_err();
        prop_assert!(matches!(err, StorageError::CorruptHardState { .. }), "{}", err);
        prop_assert!(err.to_string().contains("hardstate"));
    }
}

#[test]
fn leftover_temp_hard_state_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.set_hard_state(HardState {
        term: 3,
        voted_for: Some(1),
    })
    .unwrap();
    drop(s);
    // A crash between writing the temp file and renaming it.
    std::fs::write(dir.path().join("hardstate.tmp"), b"garbage").unwrap();
    let mut s = open(dir.path());
    assert_eq!(
        s.load().unwrap().hard_state,
        HardState {
            term: 3,
            voted_for: Some(1)
        }
    );
}

#[test]
fn a_missing_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    for t in 0..20u64 {
        s.append(&[Entry {
            term: t,
            command: vec![7; 50],
        }])
        .unwrap();
    }
    s.sync().unwrap();
    drop(s);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    std::fs::remove_file(&segs[1]).unwrap();
    let err = FileStorage::open_with(dir.path(), opts()).unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
}

#[test]
fn empty_directory_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(&dir.path().join("new"));
    let r = s.load().unwrap();
    assert!(r.log.is_empty());
    assert_eq!(r.hard_state, HardState::default());
    assert!(
        s.truncate(1).is_err(),
        "truncating beyond the log is an error"
    );
}

#[test]
fn torn_segment_creation_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    let es: Vec<Entry> = (0..3)
        .map(|t| Entry {
            term: t,
            command: b"v".to_vec(),
        })
        .collect();
    s.append(&es).unwrap();
    s.sync().unwrap();
    drop(s);
    // A crash right after creating the next segment: its blocks are zeros.
    let torn = dir.path().join(format!("log-{:020}.seg", 4));
    std::fs::write(&torn, vec![0u8; 64]).unwrap();
    let mut s = open(dir.path());
    assert_eq!(s.load().unwrap().log, es);
    assert!(!torn.exists());
    // A short header likewise.
    std::fs::write(&torn, b"RKV").unwrap();
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(s.load().unwrap().log, es);
}

/// A full disk is an error, never a panic or silent loss, and what was
/// synced before survives. Needs a small filesystem: run with
/// `RAFTKV_SMALL_FS=<dir on a tiny tmpfs> cargo test -p raftkv --test
/// storage_props -- --ignored disk_full`.
#[test]
#[ignore]
fn disk_full_is_an_error_and_loses_nothing() {
    let Ok(root) = std::env::var("RAFTKV_SMALL_FS") else {
        panic!("set RAFTKV_SMALL_FS to a directory on a small filesystem");
    };
    let dir = tempfile::tempdir_in(root).unwrap();
    let mut s = FileStorage::open_with(
        dir.path(),
        FileStorageOptions {
            segment_size: 1 << 30,
        },
    )
    .unwrap();
    s.set_hard_state(HardState {
        term: 4,
        voted_for: Some(2),
    })
    .unwrap();
    let mut synced = Vec::new();
    let err = loop {
        let e = Entry {
            term: 4,
            command: vec![synced.len() as u8; 1000],
        };
        match s.append(std::slice::from_ref(&e)).and_then(|()| s.sync()) {
            Ok(()) => synced.push(e),
            Err(err) => break err,
        }
        assert!(synced.len() < 1_000_000, "the filesystem never filled up");
    };
    assert!(err.is_disk_full(), "expected ENOSPC, got {err}");
    // The storage refuses further writes instead of writing after a gap.
    assert!(matches!(
        s.append(&synced[..1]),
        Err(StorageError::Failed(_))
    ));
    // A hard-state write on a full disk fails and leaves the old one intact.
    drop(s);
    let mut s = FileStorage::open_with(dir.path(), opts()).unwrap();
    let r = s.load().unwrap();
    assert_eq!(
        r.hard_state,
        HardState {
            term: 4,
            voted_for: Some(2)
        }
    );
    assert_eq!(r.log, synced, "recovery keeps every synced entry");
    eprintln!("disk full after {} entries: {err}", synced.len());
}

fn snap(index: u64, term: u64, len: usize) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { index, term },
        data: bytes::Bytes::from(vec![(index % 251) as u8; len]),
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A directory with a snapshot at 5 and entries 6..=40 over several tiny
/// segments; returns the model.
fn with_old_snapshot(dir: &Path) -> Model {
    let mut s = open(dir);
    let mut m = Model {
        hs: HardState {
            term: 3,
            voted_for: Some(2),
        },
        ..Model::default()
    };
    s.set_hard_state(m.hs).unwrap();
    for i in 0..40u64 {
        let e = Entry {
            term: 1 + i / 10,
            command: format!("cmd-{i:03}-{}", "x".repeat(20)).into_bytes(),
        };
        s.append(std::slice::from_ref(&e)).unwrap();
        m.log.push(e);
    }
    let old = snap(5, 1, 3000);
    s.save_snapshot(&old).unwrap();
    m = m.with_snapshot(&old);
    // An unsynced append: save_snapshot must make it durable first.
    let e = Entry {
        term: 4,
        command: b"unsynced".to_vec(),
    };
    s.append(std::slice::from_ref(&e)).unwrap();
    m.log.push(e);
    assert!(s.segment_paths().len() >= 4);
    m
}

/// kill -9 at every step of `save_snapshot` (as the failpoint leaves the
/// files), for a snapshot inside the log (a straddling segment stays) and
/// beyond it (the log empties): the directory opens as the old state or the
/// new one, stays usable, and a later save works. Then every file state a
/// power cut can add after a completed save (removals not yet durable:
/// any subset of the removed segments and the old snapshot back) opens as
/// the new state.
#[test]
fn a_crash_at_every_step_of_save_snapshot_loses_nothing() {
    for (index, term) in [(23u64, 3u64), (60, 9)] {
        let mut saw_old = false;
        let mut saw_new = false;
        for step in 0.. {
            let dir = tempfile::tempdir().unwrap();
            let old = with_old_snapshot(dir.path());
            let new_snap = snap(index, term, 5000);
            let new = old.with_snapshot(&new_snap);
            let before = files(dir.path());
            let mut s = open(dir.path());
            // The handle above was dropped with its unsynced append in the
            // page cache; reopen and redo the append so it is unsynced here.
            let e = old.log.last().unwrap().clone();
            s.truncate(old.last() - 1).unwrap();
            s.append(std::slice::from_ref(&e)).unwrap();
            s.crash_save_snapshot_after(step);
            let done = s.save_snapshot(&new_snap).is_ok();
            drop(s);
            let mut s = open(dir.path());
            let got = Model::of(&s.load().unwrap());
            if done {
                assert_eq!(got, new, "completed save");
                saw_new = true;
                // Removals that a power cut could undo.
                let after: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
                let removed: Vec<&(String, Vec<u8>)> = before
                    .iter()
                    .filter(|(n, _)| !after.contains(n) && !n.ends_with(".tmp"))
                    .collect();
                assert!(!removed.is_empty());
                drop(s);
                for mask in 1u32..(1 << removed.len()) {
                    let d2 = tempfile::tempdir().unwrap();
                    for (n, b) in files(dir.path()) {
                        std::fs::write(d2.path().join(n), b).unwrap();
                    }
                    for (k, (n, b)) in removed.iter().enumerate() {
                        if mask & (1 << k) != 0 {
                            std::fs::write(d2.path().join(n), b).unwrap();
                        }
                    }
                    let mut s2 = open(d2.path());
                    assert_eq!(Model::of(&s2.load().unwrap()), new, "restored {mask:b}");
                    drop(s2);
                    let names: Vec<String> = files(d2.path()).into_iter().map(|(n, _)| n).collect();
                    assert_eq!(names, after, "leftovers removed");
                }
                break;
            }
            assert!(
                got == old || got == new,
                "crash at step {step}: {got:?}\nneither old {old:?}\nnor new {new:?}"
            );
            saw_old |= got == old;
            saw_new |= got == new;
            // Usable: append, save a later snapshot, reopen.
            let e = Entry {
                term: 50,
                command: b"after".to_vec(),
            };
            s.append(std::slice::from_ref(&e)).unwrap();
            let mut want = got.clone();
            want.log.push(e);
            let later = snap(want.last(), 50, 10);
            s.save_snapshot(&later).unwrap();
            let want = want.with_snapshot(&later);
            drop(s);
            assert_eq!(Model::of(&open(dir.path()).load().unwrap()), want);
            assert!(step < 50, "save_snapshot never completed");
        }
        assert!(saw_old && saw_new, "index {index}: both outcomes reached");
    }
}

#[test]
fn snapshots_compact_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let m = with_old_snapshot(dir.path());
    let mut s = open(dir.path());
    assert_eq!(Model::of(&s.load().unwrap()), m);
    let bytes_before = s.log_bytes();
    let segs_before = s.segment_paths().len();
    let on_disk: u64 = segments(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(
        bytes_before, on_disk,
        "log_bytes is the segment files' size"
    );
    // Inside the log: segments wholly below go, the straddling one stays.
    let sn = snap(30, 3, 100);
    s.save_snapshot(&sn).unwrap();
    let m = m.with_snapshot(&sn);
    assert!(s.log_bytes() < bytes_before);
    assert!(s.segment_paths().len() < segs_before);
    assert_eq!(s.last_index(), m.last());
    // Below the snapshot is invalid; at it empties the log.
    assert!(matches!(s.truncate(29), Err(StorageError::Invalid(_))));
    assert!(matches!(
        s.save_snapshot(&snap(30, 3, 1)),
        Err(StorageError::Invalid(_))
    ));
    // Snapshot files: exactly the current one.
    let snaps: Vec<String> = files(dir.path())
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".snap"))
        .collect();
    assert_eq!(snaps, vec![format!("snapshot-{:020}.snap", 30)]);
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(Model::of(&s.load().unwrap()), m);
    // Beyond the log: empty, the next append lands after it.
    s.save_snapshot(&snap(100, 7, 10)).unwrap();
    assert_eq!(s.log_bytes(), 0);
    assert!(segments(dir.path()).is_empty());
    assert_eq!(s.last_index(), 100);
    let e = Entry {
        term: 7,
        command: b"x".to_vec(),
    };
    s.append(std::slice::from_ref(&e)).unwrap();
    assert_eq!(s.last_index(), 101);
    s.sync().unwrap();
    drop(s);
    let mut s = open(dir.path());
    let r = s.load().unwrap();
    assert_eq!(r.snapshot, Some(snap(100, 7, 10)));
    assert_eq!(r.log, vec![e]);
    assert_eq!(
        segments(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        vec![format!("log-{:020}.seg", 101)]
    );
    // Truncating to the snapshot index empties the log again.
    s.truncate(100).unwrap();
    s.sync().unwrap();
    drop(s);
    let r = open(dir.path()).load().unwrap();
    assert!(r.log.is_empty());
}

fn snapshot_path(dir: &Path) -> std::path::PathBuf {
    files(dir)
        .into_iter()
        .find(|(n, _)| n.ends_with(".snap"))
        .map(|(n, _)| dir.join(n))
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A flipped byte anywhere in the snapshot file is refused, naming it.
    #[test]
    fn snapshot_corruption_is_refused(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let dir = tempfile::tempdir().unwrap();
        with_old_snapshot(dir.path());
        let p = snapshot_path(dir.path());
        let mut data = std::fs::read(&p).unwrap();
        let pos = at.index(data.len());
        data[pos] ^= flip;
        std::fs::write(&p, &data).unwrap();
        let err = FileStorage::open_with(dir.path(), opts()).unwrap_err();
        prop_assert!(matches!(err, StorageError::CorruptSnapshot { .. }), "{}", err);
        prop_assert!(err.to_string().contains(p.file_name().unwrap().to_str().unwrap()), "{}", err);
    }

    /// A snapshot file cut short (or grown) is refused.
    #[test]
    fn truncated_snapshot_is_refused(cut in any::<prop::sample::Index>(), grow in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        with_old_snapshot(dir.path());
        let p = snapshot_path(dir.path());
        let len = std::fs::metadata(&p).unwrap().len();
        let new_len = if grow { len + 1 + cut.index(100) as u64 } else { cut.index(len as usize) as u64 };
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(new_len).unwrap();
        let err = FileStorage::open_with(dir.path(), opts()).unwrap_err();
        prop_assert!(matches!(err, StorageError::CorruptSnapshot { .. }), "{}", err);
    }
}

#[test]
fn a_missing_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    with_old_snapshot(dir.path());
    let p = snapshot_path(dir.path());
    std::fs::remove_file(&p).unwrap();
    let err = FileStorage::open_with(dir.path(), opts()).unwrap_err();
    assert!(
        matches!(err, StorageError::MissingSnapshot { index: 5, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(p.file_name().unwrap().to_str().unwrap()),
        "{msg}"
    );
    assert!(msg.contains("is missing"), "{msg}");
}

#[test]
fn a_snapshot_without_meta_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path());
    s.save_snapshot(&snap(3, 1, 10)).unwrap();
    drop(s);
    std::fs::remove_file(dir.path().join("meta")).unwrap();
    let err = FileStorage::open_with(dir.path(), opts()).unwrap_err();
    assert!(matches!(err, StorageError::MissingMeta { .. }), "{err}");
    assert!(err.to_string().contains("1 snapshot file(s)"), "{err}");
}

#[test]
fn an_unlisted_snapshot_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let m = with_old_snapshot(dir.path());
    // What a crash between renaming a new snapshot and replacing meta
    // leaves, and a leftover temp file.
    let stray = dir.path().join(format!("snapshot-{:020}.snap", 9));
    std::fs::copy(snapshot_path(dir.path()), &stray).unwrap();
    std::fs::write(dir.path().join("snapshot.tmp"), b"partial").unwrap();
    let mut s = open(dir.path());
    assert_eq!(Model::of(&s.load().unwrap()), m);
    assert!(!stray.exists());
    assert!(!dir.path().join("snapshot.tmp").exists());
}
