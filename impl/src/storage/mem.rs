//! In-memory storage for fast tests. Clones share one state, so a test can
//! "restart" a node by handing a clone of its storage to a new node.

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
    log: Vec<Entry>,
    syncs: u64,
    fail_writes: bool,
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
        g.log.truncate(last_index as usize);
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
        Ok(())
    }
    fn last_index(&self) -> LogIndex {
        self.lock().log.len() as LogIndex
    }
}
