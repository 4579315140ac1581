//! In-memory storage for fast tests. Clones share one state, so a test can
//! "restart" a node by handing a clone of its storage to a new node.
//!
//! It follows the [`Storage`] contract to the letter, so tests can crash it:
//! the hard state is durable when `set_hard_state` returns, log changes only
//! at `sync`. [`MemStorage::crash`] loses every log change not yet synced
//! (what a power cut does to a file), [`MemStorage::durable`] is a separate
//! copy of only what is durable. `save_snapshot` is durable when it returns
//! (it syncs the log first, then replaces snapshot and log in one step).

use super::{Recovered, Storage, StorageError};
use crate::core::HardState;
use crate::types::{Entry, LogIndex, Snapshot, SnapshotMeta};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    hard_state: HardState,
    /// The snapshot (always durable); `log[0]` is the entry after it.
    snapshot: Option<Snapshot>,
    /// The log after the snapshot as written (synced or not).
    log: Vec<Entry>,
    /// `log[..stable]` is synced unchanged.
    stable: usize,
    /// Synced entries after `stable` that an unsynced truncation removed
    /// from `log`: the synced log is `log[..stable] ++ synced_tail`.
    synced_tail: Vec<Entry>,
    syncs: u64,
    fail_writes: bool,
}

impl Inner {
    fn snap_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    fn synced_log(&self) -> Vec<Entry> {
        let mut l = self.log[..self.stable].to_vec();
        l.extend(self.synced_tail.iter().cloned());
        l
    }
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The persisted state, for test assertions.
    pub fn snapshot(&self) -> Recovered {
        let g = self.lock();
        Recovered {
            hard_state: g.hard_state,
            snapshot: g.snapshot.clone(),
            log: g.log.clone(),
        }
    }

    /// A power cut: every log change not yet synced is lost (the storage
    /// and all its clones now hold only what was durable).
    pub fn crash(&self) {
        let mut g = self.lock();
        let synced = g.synced_log();
        g.stable = synced.len();
        g.log = synced;
        g.synced_tail.clear();
    }

    /// A new, independent storage holding only what is durable in this one
    /// (this one is unchanged): the disk a crashed node would restart from.
    pub fn durable(&self) -> MemStorage {
        let g = self.lock();
        let log = g.synced_log();
        MemStorage {
            inner: Arc::new(Mutex::new(Inner {
                hard_state: g.hard_state,
                snapshot: g.snapshot.clone(),
                stable: log.len(),
                log,
                synced_tail: Vec::new(),
                syncs: 0,
                fail_writes: false,
            })),
        }
    }

    /// How many times `sync` was called (group-commit observations in tests).
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Make every following write fail as a full disk would (tests of the
    /// node's fail-stop behaviour).
    pub fn set_fail_writes(&self, fail: bool) {
        self.lock().fail_writes = fail;
    }

    fn check(&self, g: &Inner) -> Result<(), StorageError> {
        if g.fail_writes {
            return Err(StorageError::Io {
                op: "write",
                path: "<memory>".into(),
                source: std::io::Error::from_raw_os_error(28),
            });
        }
        Ok(())
    }
}

impl Storage for MemStorage {
    fn load(&mut self) -> Result<Recovered, StorageError> {
        Ok(self.snapshot())
    }
    fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        let mut g = self.lock();
        self.check(&g)?;
        g.hard_state = hs;
        Ok(())
    }
    fn truncate(&mut self, last_index: LogIndex) -> Result<(), StorageError> {
        let mut g = self.lock();
        self.check(&g)?;
        let base = g.snap_index();
        let last = base + g.log.len() as LogIndex;
        if last_index > last {
            return Err(StorageError::Invalid(format!(
                "truncate to {last_index} beyond last index {last}"
            )));
        }
        if last_index < base {
            return Err(StorageError::Invalid(format!(
                "truncate to {last_index} below the snapshot index {base}"
            )));
        }
        let t = (last_index - base) as usize;
        if t < g.stable {
            let mut tail = g.log[t..g.stable].to_vec();
            tail.append(&mut g.synced_tail);
            g.synced_tail = tail;
            g.stable = t;
        }
        g.log.truncate(t);
        Ok(())
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let mut g = self.lock();
        self.check(&g)?;
        g.log.extend_from_slice(entries);
        Ok(())
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        let mut g = self.lock();
        self.check(&g)?;
        g.syncs += 1;
        g.stable = g.log.len();
        g.synced_tail.clear();
        Ok(())
    }
    fn last_index(&self) -> LogIndex {
        let g = self.lock();
        g.snap_index() + g.log.len() as LogIndex
    }
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let mut g = self.lock();
        self.check(&g)?;
        let base = g.snap_index();
        if snapshot.meta.index <= base {
            return Err(StorageError::Invalid(format!(
                "snapshot at index {} is not above the current snapshot index {base}",
                snapshot.meta.index
            )));
        }
        // As `sync`, then the snapshot and the compaction in one step.
        g.syncs += 1;
        g.synced_tail.clear();
        let covered = ((snapshot.meta.index - base) as usize).min(g.log.len());
        g.log.drain(..covered);
        g.stable = g.log.len();
        g.snapshot = Some(snapshot.clone());
        Ok(())
    }
    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.lock().snapshot.as_ref().map(|s| s.meta)
    }
    fn log_bytes(&self) -> u64 {
        // What the file format would take: an 8-byte record header and the
        // 8-byte term per entry.
        self.lock()
            .log
            .iter()
            .map(|e| 16 + e.command.len() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(term: u64, v: &str) -> Entry {
        Entry {
            term,
            command: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn crash_loses_exactly_the_unsynced_log_changes() {
        let mut s = MemStorage::new();
        s.append(&[e(1, "a"), e(1, "b")]).unwrap();
        s.sync().unwrap();
        s.set_hard_state(HardState {
            term: 2,
            voted_for: Some(3),
        })
        .unwrap();
        // Unsynced: truncate b, append x, y.
        s.truncate(1).unwrap();
        s.append(&[e(2, "x"), e(2, "y")]).unwrap();
        assert_eq!(s.snapshot().log, vec![e(1, "a"), e(2, "x"), e(2, "y")]);
        let d = s.durable();
        let expect = Recovered {
            hard_state: HardState {
                term: 2,
                voted_for: Some(3),
            },
            snapshot: None,
            log: vec![e(1, "a"), e(1, "b")],
        };
        assert_eq!(d.snapshot(), expect);
        assert_eq!(
            s.snapshot().log.len(),
            3,
            "durable() leaves the original alone"
        );
        s.crash();
        assert_eq!(s.snapshot(), expect);
        // Synced changes survive a crash.
        s.append(&[e(2, "z")]).unwrap();
        s.sync().unwrap();
        s.crash();
        assert_eq!(s.snapshot().log, vec![e(1, "a"), e(1, "b"), e(2, "z")]);
    }

    #[test]
    fn save_snapshot_compacts_and_is_durable() {
        let mut s = MemStorage::new();
        s.append(&[e(1, "a"), e(1, "b"), e(2, "c")]).unwrap();
        let snap = |index, term| Snapshot {
            meta: SnapshotMeta { index, term },
            data: bytes::Bytes::from(format!("state@{index}")),
        };
        s.save_snapshot(&snap(2, 1)).unwrap();
        assert_eq!(s.last_index(), 3);
        assert_eq!(s.snapshot_meta(), Some(SnapshotMeta { index: 2, term: 1 }));
        assert!(s.truncate(1).is_err(), "below the snapshot");
        s.append(&[e(2, "d")]).unwrap();
        s.crash();
        // The log before the snapshot was synced by it; `d` was not.
        let r = s.snapshot();
        assert_eq!(r.snapshot, Some(snap(2, 1)));
        assert_eq!(r.log, vec![e(2, "c")]);
        // Beyond the end of the log: empty log, appends land after it.
        s.save_snapshot(&snap(10, 4)).unwrap();
        assert!(s.snapshot().log.is_empty());
        assert_eq!(s.last_index(), 10);
        s.append(&[e(4, "k")]).unwrap();
        assert_eq!(s.last_index(), 11);
        assert!(
            s.save_snapshot(&snap(10, 4)).is_err(),
            "not above the current"
        );
        assert_eq!(s.durable().snapshot().snapshot, Some(snap(10, 4)));
    }
}
