//! Durable state of one server: the hard state `(term, voted_for)`, the
//! latest snapshot and the log after it. [`FileStorage`] keeps them on disk (segmented, crc32c-checksummed
//! log; atomically replaced hard-state file); [`MemStorage`] keeps them in
//! memory for fast tests.
//!
//! A data directory is whole or refused: [`FileStorage`] records in a
//! checksummed `meta` file which node and cluster the directory belongs to
//! and which log segments it holds, and opening refuses a directory that
//! lost its hard state or a segment ([`StorageError`] says what is
//! missing). A serving process holds [`DirLock`] on it for its lifetime.
//!
//! Contract: `set_hard_state` is durable when it returns; `truncate` and
//! `append` may be buffered until `sync`, which makes every earlier change
//! durable. The node calls `sync` once per group of steps, before sending
//! anything that depends on them. `save_snapshot` is durable when it
//! returns, and compacts the log up to the snapshot's index.

mod file;
pub mod group_commit;
mod lock;
mod mem;
mod meta;

pub use file::{FileStorage, FileStorageOptions};
pub use lock::DirLock;
pub use mem::MemStorage;
pub use meta::{validate_cluster_id, DirIdentity};

use crate::core::HardState;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, SnapshotMeta};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt log file {path} at byte offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("corrupt hard state file {path}: {reason}")]
    CorruptHardState { path: PathBuf, reason: String },
    #[error("corrupt snapshot file {path}: {reason}")]
    CorruptSnapshot { path: PathBuf, reason: String },
    #[error(
        "data directory {dir} is not whole: snapshot file {} (index {index}), \
         expected from its meta file, is missing; refusing to start on it",
        dir.join(snapshot_file_name(*index)).display()
    )]
    MissingSnapshot { dir: PathBuf, index: LogIndex },
    #[error("corrupt meta file {path}: {reason}")]
    CorruptMeta { path: PathBuf, reason: String },
    #[error(
        "data directory {dir} is not whole: it holds {found} but no meta file \
         (files were lost, or it was made by a raftkv older than the meta file); \
         refusing to start on it"
    )]
    MissingMeta { dir: PathBuf, found: String },
    #[error(
        "data directory {dir} is not whole: the hard state file {} is missing \
         (the node could vote twice in a term); refusing to start on it",
        dir.join("hardstate").display()
    )]
    MissingHardState { dir: PathBuf },
    #[error(
        "data directory {dir} is not whole: log segment {} (first index {first_index}), \
         expected from its meta file, is missing; refusing to start on it",
        dir.join(segment_file_name(*first_index)).display()
    )]
    MissingSegment { dir: PathBuf, first_index: LogIndex },
    #[error(
        "data directory {dir} is not whole: log segment {} is not recorded in its \
         meta file and lies inside the log; refusing to start on it",
        dir.join(segment_file_name(*first_index)).display()
    )]
    UnexpectedSegment { dir: PathBuf, first_index: LogIndex },
    #[error("data directory {dir} belongs to node {recorded}, not node {requested}")]
    WrongNode {
        dir: PathBuf,
        recorded: NodeId,
        requested: NodeId,
    },
    #[error("data directory {dir} belongs to cluster `{recorded}`, not cluster `{requested}`")]
    WrongCluster {
        dir: PathBuf,
        recorded: String,
        requested: String,
    },
    #[error(
        "data directory {dir} is in use by another process ({}) holding its LOCK file",
        match holder { Some(pid) => format!("pid {pid}"), None => "pid unknown".to_string() }
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
    #[error("invalid storage operation: {0}")]
    Invalid(String),
    #[error("storage failed earlier and refuses further writes: {0}")]
    Failed(String),
}

impl StorageError {
    /// Whether this error is a full disk (ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => source.raw_os_error() == Some(28),
            _ => false,
        }
    }
}

/// The file name of the log segment whose first entry is `first_index`.
pub fn segment_file_name(first_index: LogIndex) -> String {
    format!("log-{first_index:020}.seg")
}

/// The file name of the snapshot covering the log up to `index`.
pub fn snapshot_file_name(index: LogIndex) -> String {
    format!("snapshot-{index:020}.snap")
}

/// What a storage recovered when opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    /// The latest durable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot's index (from index 1 without one).
    pub log: Vec<Entry>,
}

pub trait Storage: Send + 'static {
    /// The persisted state (everything durable, plus whatever buffered
    /// changes this handle has made since).
    fn load(&mut self) -> Result<Recovered, StorageError>;
    /// Replace the hard state; durable when this returns.
    fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError>;
    /// Keep entries `1..=last_index`, drop the rest (durable after `sync`).
    fn truncate(&mut self, last_index: LogIndex) -> Result<(), StorageError>;
    /// Append entries after the current last entry (durable after `sync`).
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;
    /// Make every earlier `truncate`/`append` durable.
    fn sync(&mut self) -> Result<(), StorageError>;
    /// The index of the last entry (the snapshot's index if no entry
    /// follows it).
    fn last_index(&self) -> LogIndex;
    /// Make earlier log changes durable (as `sync`), then store `snapshot`
    /// durably and atomically, replacing the previous one, and forget every
    /// entry at or below its index (entries after it stay; if the log ends
    /// before it, the log becomes empty and the next append lands at
    /// `index + 1`). Durable when this returns. The index must be above the
    /// current snapshot's.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;
    /// What the current snapshot covers, if there is one.
    fn snapshot_meta(&self) -> Option<SnapshotMeta>;
    /// Bytes of log on disk (the segment files).
    fn log_bytes(&self) -> u64;
}

impl Storage for Box<dyn Storage> {
    fn load(&mut self) -> Result<Recovered, StorageError> {
        (**self).load()
    }
    fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        (**self).set_hard_state(hs)
    }
    fn truncate(&mut self, last_index: LogIndex) -> Result<(), StorageError> {
        (**self).truncate(last_index)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        (**self).append(entries)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        (**self).sync()
    }
    fn last_index(&self) -> LogIndex {
        (**self).last_index()
    }
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        (**self).save_snapshot(snapshot)
    }
    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        (**self).snapshot_meta()
    }
    fn log_bytes(&self) -> u64 {
        (**self).log_bytes()
    }
}
