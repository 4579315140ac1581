//! In-memory storage for fast tests. Clones share one state, so a test can
//! "restart" a node by handing a clone of its storage to a new node.
//!
//! It follows the [`Storage`] contract to the letter, so tests can crash it:
//! the hard state is durable when `set_hard_state` returns, log changes only
//! at `sync`. [`MemStorage::crash`] loses every log change not yet synced
//! (what a power cut does to a file), [`MemStorage::durable`] is a separate
//! copy of only what is durable.

use super::{Recovered, Storage, StorageError};
use crate::core::HardState;
use crate::types::{Entry, LogIndex};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    hard_state: HardState,
    /// The log as written (synced or not).
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
        if last_index as usize > g.log.len() {
            return Err(StorageError::Invalid(format!(
                "truncate to {last_index} beyond last index {}",
                g.log.len()
            )));
        }
        let t = last_index as usize;
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
        self.lock().log.len() as LogIndex
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
}
