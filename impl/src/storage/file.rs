// Over 600 lines: one on-disk format (segments, hard state, recovery, locking) whose invariants are easier to check in one file.
//! On-disk storage.
//!
//! Layout of a data directory:
//!
//! - `meta`: the node id and cluster id the directory belongs to and the
//!   first index of every log segment (see `meta.rs`: checksummed text,
//!   replaced atomically like `hardstate`). It is what tells a whole
//!   directory from one that lost a file.
//! - `hardstate`: magic, term, voted_for (0 = none), crc32c. Replaced
//!   atomically: written to `hardstate.tmp`, fsynced, renamed, directory
//!   fsynced. Written (term 0, no vote) when the directory is created, so
//!   it always exists beside `meta`.
//! - `log-<first index, 20 digits>.seg`: log segments. A 20-byte header
//!   (magic, first index, crc32c) then records `[len u32][crc u32][payload]`
//!   where `payload = term u64 ++ command` and `crc = crc32c(len ++ payload)`.
//!   All integers little-endian. A new segment starts when the current one
//!   exceeds the segment size.
//! - `snapshot-<index, 20 digits>.snap`: the latest snapshot, which `meta`
//!   names by index and term. A 40-byte header (magic `RKVSNAP\0`, version
//!   u32 = 1, index u64, term u64, content length u64, crc32c u32 over the
//!   header's first 36 bytes and the content) then the content: the state
//!   machine's own encoding, opaque here. Written to `snapshot.tmp`,
//!   fsynced, renamed, directory fsynced, then listed in `meta`. The log
//!   then holds the entries after its index; a segment holding entries on
//!   both sides of the index stays, and its entries at or below the index
//!   are skipped when it is read.
//! - `LOCK`: see [`super::DirLock`]; ignored here.
//!
//! Order of operations, so that a crash (kill -9, power cut) at any point
//! leaves a directory that opens:
//!
//! - creating a directory: `hardstate`, then `meta`. A directory with no
//!   `meta`, no segment and at most a zero `hardstate` is a new one;
//! - creating a segment: the file with its header, fsync, then `meta`
//!   listing it. A segment file after the last listed one is the trace of an
//!   interrupted creation (or removal) and is removed;
//! - removing segments (truncation): `meta` without them, then the files;
//! - saving a snapshot: the log synced, the snapshot file whole and durable
//!   under its final name, then `meta` naming it and no longer listing the
//!   segments wholly at or below its index, then those segments and the
//!   previous snapshot file are removed. A crash before `meta` is replaced
//!   leaves the old `meta`, whose snapshot and segments are all untouched,
//!   plus an unlisted snapshot file, which open removes (it may equally be
//!   the previous snapshot whose removal was interrupted; nothing that
//!   depends on a snapshot happens before `save_snapshot` returns, so
//!   discarding an unlisted one loses nothing). A crash after it leaves
//!   unlisted segments below the first listed one and at or below the
//!   snapshot index: traces of the compaction, removed.
//!
//! Recovery: a segment listed in `meta` but missing, a `meta` missing
//! beside a log or a non-zero hard state, or a missing `hardstate` beside
//! `meta` is refused: the directory is not whole and guessing could lose
//! acknowledged writes or cast a second vote in a term. A bad record in the
//! last segment with no valid record after it is a torn tail (a write
//! interrupted by a crash) and is truncated; any other bad byte is refused
//! with an error naming the file and offset.

use super::group_commit::{GroupCommit, GroupCommitError};
use super::meta::{self, DirIdentity, Meta};
use super::{segment_file_name, snapshot_file_name, Recovered, Storage, StorageError};
use crate::core::HardState;
use crate::types::{Entry, LogIndex, Snapshot, SnapshotMeta};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const HS_MAGIC: &[u8; 8] = b"RKVHS001";
const HS_LEN: usize = 8 + 8 + 8 + 4;
const SEG_MAGIC: &[u8; 8] = b"RKVSEG01";
const SEG_HEADER: u64 = 8 + 8 + 4;
const REC_HEADER: u64 = 8;
/// Largest payload accepted (a guard against a corrupt length).
pub const MAX_RECORD_LEN: u64 = 256 << 20;
const SNAP_MAGIC: &[u8; 8] = b"RKVSNAP\0";
const SNAP_VERSION: u32 = 1;
const SNAP_HEADER: usize = 8 + 4 + 8 + 8 + 8 + 4;
const SNAP_TMP: &str = "snapshot.tmp";

#[derive(Clone, Debug)]
pub struct FileStorageOptions {
    /// Roll over to a new segment once the current one is this large.
    pub segment_size: u64,
}

impl Default for FileStorageOptions {
    fn default() -> Self {
        FileStorageOptions {
            segment_size: 64 << 20,
        }
    }
}

#[derive(Debug)]
struct Segment {
    first_index: LogIndex,
    path: PathBuf,
    /// Byte offset of each record; entry `first_index + k` is at `offsets[k]`.
    offsets: Vec<u64>,
    size: u64,
}

impl Segment {
    fn last_index(&self) -> LogIndex {
        self.first_index + self.offsets.len() as LogIndex - 1
    }
}

/// A segmented, checksummed log plus hard state in one directory.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    opts: FileStorageOptions,
    hard_state: HardState,
    /// What `meta` says; its segment list always equals `segments`' first indexes.
    meta: Meta,
    segments: Vec<Segment>,
    /// Append handle of the last segment.
    tail: Option<File>,
    /// The log read at open, handed out by the first `load`.
    recovered_log: Option<Vec<Entry>>,
    /// The snapshot read at open, handed out by the first `load`.
    recovered_snapshot: Option<Snapshot>,
    /// Test hook: fail `save_snapshot` (as a crash would stop it) after this
    /// many more of its steps.
    crash_after: Option<u32>,
    /// The last segment holds entries the snapshot covers: the next append
    /// starts a new segment, so that the next snapshot can delete this one
    /// whole (otherwise a segment below its size limit would keep every
    /// compacted entry on disk until it fills).
    roll: bool,
    data_dirty: bool,
    dir_dirty: bool,
    /// Set after a failed write: the tail may hold a partial record.
    failed: Option<String>,
    group: GroupCommit,
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn segment_name(first_index: LogIndex) -> String {
    segment_file_name(first_index)
}

fn encode_record(buf: &mut Vec<u8>, e: &Entry) {
    let len = (8 + e.command.len()) as u32;
    let start = buf.len();
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&e.term.to_le_bytes());
    buf.extend_from_slice(&e.command);
    let mut crc = crc32c::crc32c(&buf[start..start + 4]);
    crc = crc32c::crc32c_append(crc, &buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Parse the record at `pos`: `Ok((entry, next_pos))` or why it is bad.
fn decode_record(data: &[u8], pos: u64) -> Result<(Entry, u64), String> {
    let rest = data.len() as u64 - pos;
    if rest < REC_HEADER {
        return Err("incomplete record header".into());
    }
    let p = pos as usize;
    let len = u32::from_le_bytes(data[p..p + 4].try_into().unwrap()) as u64;
    let crc = u32::from_le_bytes(data[p + 4..p + 8].try_into().unwrap());
    if !(8..=MAX_RECORD_LEN).contains(&len) {
        return Err(format!("invalid record length {len}"));
    }
    if rest - REC_HEADER < len {
        return Err("incomplete record".into());
    }
    let payload = &data[p + 8..p + 8 + len as usize];
    let actual = crc32c::crc32c_append(crc32c::crc32c(&data[p..p + 4]), payload);
    if actual != crc {
        return Err(format!(
            "checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    let term = u64::from_le_bytes(payload[..8].try_into().unwrap());
    Ok((
        Entry {
            term,
            command: payload[8..].to_vec(),
        },
        pos + REC_HEADER + len,
    ))
}

fn encode_snapshot_header(s: &Snapshot) -> [u8; SNAP_HEADER] {
    let mut h = [0u8; SNAP_HEADER];
    h[..8].copy_from_slice(SNAP_MAGIC);
    h[8..12].copy_from_slice(&SNAP_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&s.meta.index.to_le_bytes());
    h[20..28].copy_from_slice(&s.meta.term.to_le_bytes());
    h[28..36].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..36]), &s.data);
    h[36..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn decode_snapshot(b: Vec<u8>) -> Result<Snapshot, String> {
    if b.len() < SNAP_HEADER {
        return Err(format!(
            "{} bytes, shorter than its {SNAP_HEADER}-byte header (truncated)",
            b.len()
        ));
    }
    if &b[..8] != SNAP_MAGIC {
        return Err("bad magic".into());
    }
    let version = u32::from_le_bytes(b[8..12].try_into().unwrap());
    if version != SNAP_VERSION {
        return Err(format!("unsupported snapshot format version {version}"));
    }
    let index = u64::from_le_bytes(b[12..20].try_into().unwrap());
    let term = u64::from_le_bytes(b[20..28].try_into().unwrap());
    let len = u64::from_le_bytes(b[28..36].try_into().unwrap());
    let held = (b.len() - SNAP_HEADER) as u64;
    if held < len {
        return Err(format!(
            "truncated: its header says {len} bytes of content, the file holds {held}"
        ));
    }
    if held > len {
        return Err(format!(
            "its header says {len} bytes of content, the file holds {held}"
        ));
    }
    let stored = u32::from_le_bytes(b[36..40].try_into().unwrap());
    let actual = crc32c::crc32c_append(crc32c::crc32c(&b[..36]), &b[SNAP_HEADER..]);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    Ok(Snapshot {
        meta: SnapshotMeta { index, term },
        data: bytes::Bytes::from(b).slice(SNAP_HEADER..),
    })
}

/// Reads and checks the snapshot `meta` names.
fn read_snapshot(dir: &Path, sm: SnapshotMeta) -> Result<Snapshot, StorageError> {
    let path = dir.join(snapshot_file_name(sm.index));
    let b = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::MissingSnapshot {
                dir: dir.to_path_buf(),
                index: sm.index,
            })
        }
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let snap = decode_snapshot(b).map_err(|reason| StorageError::CorruptSnapshot {
        path: path.clone(),
        reason,
    })?;
    if snap.meta != sm {
        return Err(StorageError::CorruptSnapshot {
            path,
            reason: format!(
                "it covers index {} term {}, its meta file says index {} term {}",
                snap.meta.index, snap.meta.term, sm.index, sm.term
            ),
        });
    }
    Ok(snap)
}

fn encode_hard_state(hs: HardState) -> [u8; HS_LEN] {
    let mut b = [0u8; HS_LEN];
    b[..8].copy_from_slice(HS_MAGIC);
    b[8..16].copy_from_slice(&hs.term.to_le_bytes());
    b[16..24].copy_from_slice(&hs.voted_for.unwrap_or(0).to_le_bytes());
    let crc = crc32c::crc32c(&b[..24]);
    b[24..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode_hard_state(b: &[u8]) -> Result<HardState, String> {
    if b.len() != HS_LEN {
        return Err(format!("length {} (expected {HS_LEN})", b.len()));
    }
    if &b[..8] != HS_MAGIC {
        return Err("bad magic".into());
    }
    let crc = u32::from_le_bytes(b[24..].try_into().unwrap());
    if crc32c::crc32c(&b[..24]) != crc {
        return Err("checksum mismatch".into());
    }
    let term = u64::from_le_bytes(b[8..16].try_into().unwrap());
    let vote = u64::from_le_bytes(b[16..24].try_into().unwrap());
    Ok(HardState {
        term,
        voted_for: (vote != 0).then_some(vote),
    })
}

/// Replaces `dir/hardstate` atomically; durable when this returns.
fn write_hard_state(dir: &Path, hs: HardState) -> Result<(), StorageError> {
    let tmp = dir.join("hardstate.tmp");
    let path = dir.join("hardstate");
    let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&encode_hard_state(hs))
        .map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    sync_dir(dir)
}

impl FileStorage {
    /// Open (creating if needed) the storage in `dir` and recover it.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStorage, StorageError> {
        FileStorage::open_with(dir, FileStorageOptions::default())
    }

    pub fn open_with(
        dir: impl AsRef<Path>,
        opts: FileStorageOptions,
    ) -> Result<FileStorage, StorageError> {
        FileStorage::open_as(dir, opts, &DirIdentity::default())
    }

    /// Open (creating if needed) the storage in `dir` for `identity`:
    /// a directory recorded as another node's or another cluster's is
    /// refused ([`StorageError::WrongNode`], [`StorageError::WrongCluster`]);
    /// a claim the directory has no record of yet is recorded.
    pub fn open_as(
        dir: impl AsRef<Path>,
        opts: FileStorageOptions,
        identity: &DirIdentity,
    ) -> Result<FileStorage, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        for name in ["hardstate.tmp", meta::META_TMP, SNAP_TMP] {
            let tmp = dir.join(name);
            if tmp.exists() {
                // An interrupted replacement: the old file is still intact.
                fs::remove_file(&tmp).map_err(io_err("remove", &tmp))?;
            }
        }
        let hs_path = dir.join("hardstate");
        let hard_state =
            match fs::read(&hs_path) {
                Ok(b) => Some(decode_hard_state(&b).map_err(|reason| {
                    StorageError::CorruptHardState {
                        path: hs_path.clone(),
                        reason,
                    }
                })?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err("read", &hs_path)(e)),
            };

        let mut on_disk: Vec<(LogIndex, PathBuf)> = Vec::new();
        let mut snaps_on_disk: Vec<(LogIndex, PathBuf)> = Vec::new();
        for ent in fs::read_dir(&dir).map_err(io_err("list directory", &dir))? {
            let ent = ent.map_err(io_err("list directory", &dir))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(num) = name
                .strip_prefix("log-")
                .and_then(|s| s.strip_suffix(".seg"))
            {
                let first: LogIndex = num.parse().map_err(|_| StorageError::Corrupt {
                    path: ent.path(),
                    offset: 0,
                    reason: "unparsable segment file name".into(),
                })?;
                on_disk.push((first, ent.path()));
            } else if let Some(num) = name
                .strip_prefix("snapshot-")
                .and_then(|s| s.strip_suffix(".snap"))
            {
                let index: LogIndex = num.parse().map_err(|_| StorageError::CorruptSnapshot {
                    path: ent.path(),
                    reason: "unparsable snapshot file name".into(),
                })?;
                snaps_on_disk.push((index, ent.path()));
            }
        }
        on_disk.sort();

        let (meta, hard_state) = match meta::read(&dir)? {
            Some(m) => {
                let Some(hs) = hard_state else {
                    return Err(StorageError::MissingHardState { dir });
                };
                (m, hs)
            }
            None => {
                let hs = hard_state.unwrap_or_default();
                if !on_disk.is_empty() || !snaps_on_disk.is_empty() || hs != HardState::default() {
                    let mut found = Vec::new();
                    if hs != HardState::default() {
                        found.push(format!("a hard state (term {})", hs.term));
                    }
                    if !on_disk.is_empty() {
                        found.push(format!("{} log segment(s)", on_disk.len()));
                    }
                    if !snaps_on_disk.is_empty() {
                        found.push(format!("{} snapshot file(s)", snaps_on_disk.len()));
                    }
                    return Err(StorageError::MissingMeta {
                        dir,
                        found: found.join(" and "),
                    });
                }
                // A new directory, or one whose creation a crash interrupted
                // (nothing in it yet): create it, hard state first.
                if hard_state.is_none() {
                    write_hard_state(&dir, HardState::default())?;
                }
                let m = Meta::default();
                meta::write(&dir, &m)?;
                (m, hs)
            }
        };
        let mut meta = meta;
        let mut claim = false;
        if let Some(requested) = identity.node_id {
            match meta.node_id {
                Some(recorded) if recorded != requested => {
                    return Err(StorageError::WrongNode {
                        dir,
                        recorded,
                        requested,
                    })
                }
                Some(_) => {}
                None => {
                    meta.node_id = Some(requested);
                    claim = true;
                }
            }
        }
        if let Some(requested) = &identity.cluster_id {
            match &meta.cluster_id {
                Some(recorded) if recorded != requested => {
                    return Err(StorageError::WrongCluster {
                        dir,
                        recorded: recorded.clone(),
                        requested: requested.clone(),
                    })
                }
                Some(_) => {}
                None => {
                    meta.cluster_id = Some(requested.clone());
                    claim = true;
                }
            }
        }

        // Every listed segment must be there; an unlisted one after the last
        // listed is left over from an interrupted creation or truncation.
        let mut names: Vec<(LogIndex, PathBuf)> = Vec::new();
        for &first in &meta.segments {
            match on_disk.iter().find(|(f, _)| *f == first) {
                Some((_, p)) => names.push((first, p.clone())),
                None => {
                    return Err(StorageError::MissingSegment {
                        dir,
                        first_index: first,
                    })
                }
            }
        }
        let snap_index = meta.snapshot.map_or(0, |s| s.index);
        let snapshot = match meta.snapshot {
            Some(sm) => Some(read_snapshot(&dir, sm)?),
            None => None,
        };
        let mut removed = false;
        for (index, path) in &snaps_on_disk {
            if meta.snapshot.is_some_and(|s| s.index == *index) {
                continue;
            }
            // Written by a `save_snapshot` that did not get to replace
            // `meta`, or the previous snapshot it did not get to remove.
            tracing::warn!(
                path = %path.display(),
                "removing a snapshot file its meta file does not name (an interrupted snapshot save)"
            );
            fs::remove_file(path).map_err(io_err("remove", path))?;
            removed = true;
        }
        for (first, path) in &on_disk {
            if meta.segments.contains(first) {
                continue;
            }
            if meta.segments.last().is_some_and(|l| first < l) {
                let below_log = meta.segments.first().is_some_and(|f| first < f);
                if !(below_log && *first <= snap_index) {
                    return Err(StorageError::UnexpectedSegment {
                        dir,
                        first_index: *first,
                    });
                }
                tracing::warn!(
                    path = %path.display(),
                    "removing a log segment below the snapshot that its meta file no longer lists (an interrupted compaction)"
                );
            } else {
                tracing::warn!(
                    path = %path.display(),
                    "removing a log segment its meta file does not list (an interrupted segment creation, truncation or compaction)"
                );
            }
            fs::remove_file(path).map_err(io_err("remove", path))?;
            removed = true;
        }
        if removed {
            sync_dir(&dir)?;
        }
        if claim {
            meta::write(&dir, &meta)?;
        }

        let mut segments = Vec::new();
        let mut log = Vec::new();
        // The index the next segment must start at (the first may start
        // anywhere up to just after the snapshot).
        let mut next_index: Option<LogIndex> = None;
        let count = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let data = fs::read(&path).map_err(io_err("read", &path))?;
            let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
                path: path.clone(),
                offset,
                reason,
            };
            if (data.len() as u64) < SEG_HEADER || (is_last && data.iter().all(|b| *b == 0)) {
                if is_last {
                    // The last segment torn down to (part of) its header: no
                    // record in it survived. (Its header was fsynced before
                    // `meta` listed it, so only a torn tail comes here.)
                    tracing::warn!(path = %path.display(), "removing torn last segment");
                    meta.segments.pop();
                    meta::write(&dir, &meta)?;
                    fs::remove_file(&path).map_err(io_err("remove", &path))?;
                    sync_dir(&dir)?;
                    continue;
                }
                return Err(corrupt(0, "segment shorter than its header".into()));
            }
            if &data[..8] != SEG_MAGIC {
                return Err(corrupt(0, "bad segment magic".into()));
            }
            let hcrc = u32::from_le_bytes(data[16..20].try_into().unwrap());
            if crc32c::crc32c(&data[..16]) != hcrc {
                return Err(corrupt(0, "segment header checksum mismatch".into()));
            }
            let hfirst = u64::from_le_bytes(data[8..16].try_into().unwrap());
            if hfirst != first {
                return Err(corrupt(
                    8,
                    format!("header says first index {hfirst}, file name says {first}"),
                ));
            }
            match next_index {
                Some(expected) if first != expected => {
                    return Err(corrupt(
                        8,
                        format!("segment starts at index {first}, expected {expected} (missing or extra segment)"),
                    ));
                }
                None if first > snap_index + 1 => {
                    return Err(corrupt(
                        8,
                        format!(
                            "segment starts at index {first}, expected at most {} (missing segment after the snapshot at {snap_index})",
                            snap_index + 1
                        ),
                    ));
                }
                _ => {}
            }
            let mut offsets = Vec::new();
            let mut pos = SEG_HEADER;
            while pos < data.len() as u64 {
                match decode_record(&data, pos) {
                    Ok((e, next)) => {
                        // Entries at or below the snapshot are compacted away.
                        if first + offsets.len() as LogIndex > snap_index {
                            log.push(e);
                        }
                        offsets.push(pos);
                        pos = next;
                    }
                    Err(reason) => {
                        if !is_last {
                            return Err(corrupt(pos, reason));
                        }
                        if let Some(at) =
                            (pos + 1..data.len() as u64).find(|&q| decode_record(&data, q).is_ok())
                        {
                            return Err(corrupt(
                                pos,
                                format!("{reason}, followed by a valid record at offset {at}: not a torn tail"),
                            ));
                        }
                        tracing::warn!(path = %path.display(), offset = pos, %reason, "truncating torn log tail");
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_err("open", &path))?;
                        f.set_len(pos).map_err(io_err("truncate", &path))?;
                        f.sync_all().map_err(io_err("fsync", &path))?;
                        break;
                    }
                }
            }
            next_index = Some(first + offsets.len() as LogIndex);
            segments.push(Segment {
                first_index: first,
                path,
                offsets,
                size: pos,
            });
        }
        if next_index.is_some_and(|n| n <= snap_index) {
            // The log ends below the snapshot (only a lost write can do
            // this): every segment is covered by the snapshot, and appending
            // to the last would leave a gap. Drop them, `meta` first.
            tracing::warn!(
                snap_index,
                "removing log segments that end below the snapshot"
            );
            meta.segments.clear();
            meta::write(&dir, &meta)?;
            for s in segments.drain(..) {
                fs::remove_file(&s.path).map_err(io_err("remove", &s.path))?;
            }
            sync_dir(&dir)?;
        }
        let tail = match segments.last() {
            Some(s) => Some(
                OpenOptions::new()
                    .append(true)
                    .open(&s.path)
                    .map_err(io_err("open", &s.path))?,
            ),
            None => None,
        };
        Ok(FileStorage {
            dir,
            opts,
            hard_state,
            meta,
            segments,
            tail,
            recovered_log: Some(log),
            recovered_snapshot: snapshot,
            crash_after: None,
            roll: false,
            data_dirty: false,
            dir_dirty: false,
            failed: None,
            group: GroupCommit::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths of the segment files, oldest first (tests and tools).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Test hook: make the next `save_snapshot` stop, as a crash (kill -9)
    /// would, after `steps` of its steps (0: before writing anything; past
    /// the last step it completes). The storage then refuses every further
    /// write; drop it and reopen the directory to see what the crash left.
    #[doc(hidden)]
    pub fn crash_save_snapshot_after(&mut self, steps: u32) {
        self.crash_after = Some(steps);
    }

    fn failpoint(&mut self) -> Result<(), StorageError> {
        match self.crash_after.as_mut() {
            Some(0) => {
                self.crash_after = None;
                Err(StorageError::Failed(
                    "injected crash in save_snapshot".into(),
                ))
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn snap_index(&self) -> LogIndex {
        self.meta.snapshot.map_or(0, |s| s.index)
    }

    /// The steps of `save_snapshot` after the log is synced; each
    /// `failpoint` is a point where a crash leaves the files as they are.
    fn write_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let index = snapshot.meta.index;
        let old = self.meta.snapshot;
        self.failpoint()?;
        let tmp = self.dir.join(SNAP_TMP);
        let path = self.dir.join(snapshot_file_name(index));
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&encode_snapshot_header(snapshot))
            .map_err(io_err("write", &tmp))?;
        self.failpoint()?;
        f.write_all(&snapshot.data).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        self.failpoint()?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        self.failpoint()?;
        sync_dir(&self.dir)?;
        self.failpoint()?;
        // Segments wholly at or below the index go; one straddling it stays.
        let covered = self
            .segments
            .iter()
            .take_while(|s| s.first_index + s.offsets.len() as LogIndex - 1 <= index)
            .count();
        let mut meta = self.meta.clone();
        meta.snapshot = Some(snapshot.meta);
        meta.segments.drain(..covered);
        if self.crash_after == Some(0) {
            // The crash interrupts the replacement of `meta`: a partial
            // `meta.tmp` beside the old `meta`.
            let text = meta.encode();
            let _ = fs::write(
                self.dir.join(meta::META_TMP),
                &text.as_bytes()[..text.len() / 2],
            );
        }
        self.failpoint()?;
        meta::write(&self.dir, &meta)?;
        self.meta = meta;
        self.failpoint()?;
        let gone: Vec<Segment> = self.segments.drain(..covered).collect();
        if self.segments.is_empty() {
            self.tail = None;
        }
        self.roll = self.segments.last().is_some_and(|s| s.first_index <= index);
        for s in gone {
            fs::remove_file(&s.path).map_err(io_err("remove", &s.path))?;
            self.failpoint()?;
        }
        if let Some(old) = old {
            let p = self.dir.join(snapshot_file_name(old.index));
            fs::remove_file(&p).map_err(io_err("remove", &p))?;
            self.failpoint()?;
        }
        sync_dir(&self.dir)
    }

    fn check_ok(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: StorageError) -> StorageError {
        self.failed = Some(e.to_string());
        e
    }

    fn read_log(&self) -> Result<Vec<Entry>, StorageError> {
        let snap_index = self.snap_index();
        let mut log = Vec::with_capacity((self.last_index() - snap_index) as usize);
        for s in &self.segments {
            let mut data = Vec::new();
            File::open(&s.path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(io_err("read", &s.path))?;
            for (k, &off) in s.offsets.iter().enumerate() {
                if s.first_index + (k as LogIndex) <= snap_index {
                    continue;
                }
                let (e, _) = decode_record(&data, off).map_err(|reason| StorageError::Corrupt {
                    path: s.path.clone(),
                    offset: off,
                    reason,
                })?;
                log.push(e);
            }
        }
        Ok(log)
    }

    fn new_segment(&mut self) -> Result<(), StorageError> {
        let first = self.last_index() + 1;
        if let (Some(tail), true) = (&self.tail, self.data_dirty) {
            // Older segments are complete: make them durable before moving on.
            let path = self
                .segments
                .last()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            tail.sync_data().map_err(io_err("fsync", &path))?;
        }
        let path = self.dir.join(segment_name(first));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let mut h = Vec::with_capacity(SEG_HEADER as usize);
        h.extend_from_slice(SEG_MAGIC);
        h.extend_from_slice(&first.to_le_bytes());
        let crc = crc32c::crc32c(&h);
        h.extend_from_slice(&crc.to_le_bytes());
        f.write_all(&h).map_err(io_err("write", &path))?;
        // The header is durable before `meta` lists the segment; a crash
        // before `meta` is replaced leaves an unlisted file that open removes.
        f.sync_all().map_err(io_err("fsync", &path))?;
        drop(f);
        let mut meta = self.meta.clone();
        meta.segments.push(first);
        meta::write(&self.dir, &meta)?;
        self.meta = meta;
        let f = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        self.segments.push(Segment {
            first_index: first,
            path,
            offsets: Vec::new(),
            size: SEG_HEADER,
        });
        self.tail = Some(f);
        self.dir_dirty = true;
        self.data_dirty = true;
        Ok(())
    }
}

impl Storage for FileStorage {
    fn load(&mut self) -> Result<Recovered, StorageError> {
        let log = match self.recovered_log.take() {
            Some(l) => l,
            None => self.read_log()?,
        };
        let snapshot = match (self.recovered_snapshot.take(), self.meta.snapshot) {
            (_, None) => None,
            (Some(s), Some(sm)) if s.meta == sm => Some(s),
            (_, Some(sm)) => Some(read_snapshot(&self.dir, sm)?),
        };
        Ok(Recovered {
            hard_state: self.hard_state,
            snapshot,
            log,
        })
    }

    fn set_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        self.check_ok()?;
        match write_hard_state(&self.dir, hs) {
            // A failed replacement leaves the old file intact: no need to fail-stop
            // the storage, the caller decides.
            Err(e) => Err(e),
            Ok(()) => {
                self.hard_state = hs;
                Ok(())
            }
        }
    }

    fn truncate(&mut self, last_index: LogIndex) -> Result<(), StorageError> {
        self.check_ok()?;
        let last = self.last_index();
        if last_index > last {
            return Err(StorageError::Invalid(format!(
                "truncate to {last_index} beyond last index {last}"
            )));
        }
        if last_index < self.snap_index() {
            return Err(StorageError::Invalid(format!(
                "truncate to {last_index} below the snapshot index {}",
                self.snap_index()
            )));
        }
        if last_index == last {
            return Ok(());
        }
        self.recovered_log = None;
        let res = (|| {
            let keep = self
                .segments
                .iter()
                .take_while(|s| s.first_index <= last_index)
                .count();
            let removed = keep < self.segments.len();
            if removed {
                // `meta` first: after it, the files are no longer part of the
                // log, and a crash before they are gone leaves unlisted files
                // that open removes.
                let mut meta = self.meta.clone();
                meta.segments.truncate(keep);
                meta::write(&self.dir, &meta)?;
                self.meta = meta;
                self.tail = None;
                for s in self.segments.drain(keep..) {
                    fs::remove_file(&s.path).map_err(io_err("remove", &s.path))?;
                }
                sync_dir(&self.dir)?;
                if let Some(s) = self.segments.last() {
                    self.tail = Some(
                        OpenOptions::new()
                            .append(true)
                            .open(&s.path)
                            .map_err(io_err("open", &s.path))?,
                    );
                }
            }
            if let Some(s) = self.segments.last_mut() {
                let keep = (last_index + 1 - s.first_index) as usize;
                if keep < s.offsets.len() {
                    let cut = s.offsets[keep];
                    self.tail
                        .as_ref()
                        .unwrap()
                        .set_len(cut)
                        .map_err(io_err("truncate", &s.path))?;
                    s.offsets.truncate(keep);
                    s.size = cut;
                    self.data_dirty = true;
                }
            }
            Ok(())
        })();
        res.map_err(|e| self.fail(e))
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_ok()?;
        if entries.is_empty() {
            return Ok(());
        }
        if let Some(e) = entries
            .iter()
            .find(|e| 8 + e.command.len() as u64 > MAX_RECORD_LEN)
        {
            return Err(StorageError::Invalid(format!(
                "entry of {} bytes exceeds the record limit of {MAX_RECORD_LEN}",
                e.command.len()
            )));
        }
        self.recovered_log = None;
        let res = (|| {
            if self
                .segments
                .last()
                .is_none_or(|s| s.size >= self.opts.segment_size)
                || self.roll
            {
                self.new_segment()?;
                self.roll = false;
            }
            let mut buf = Vec::new();
            let seg = self.segments.last_mut().unwrap();
            let mut offsets = Vec::with_capacity(entries.len());
            for e in entries {
                offsets.push(seg.size + buf.len() as u64);
                encode_record(&mut buf, e);
            }
            self.tail
                .as_mut()
                .unwrap()
                .write_all(&buf)
                .map_err(io_err("write", &seg.path))?;
            seg.offsets.extend(offsets);
            seg.size += buf.len() as u64;
            self.data_dirty = true;
            Ok(())
        })();
        res.map_err(|e| self.fail(e))
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_ok()?;
        if !self.data_dirty && !self.dir_dirty {
            return Ok(());
        }
        let (tail, dir, data_dirty, dir_dirty) =
            (&self.tail, &self.dir, self.data_dirty, self.dir_dirty);
        let path = self
            .segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let ticket = self.group.written();
        let res = self.group.wait_durable(ticket, || {
            if data_dirty {
                if let Some(f) = tail {
                    f.sync_data().map_err(io_err("fsync", &path))?;
                }
            }
            if dir_dirty {
                sync_dir(dir)?;
            }
            Ok::<(), StorageError>(())
        });
        match res {
            Ok(()) => {
                self.data_dirty = false;
                self.dir_dirty = false;
                Ok(())
            }
            Err(GroupCommitError::Sync(e)) => Err(self.fail(e)),
            Err(GroupCommitError::Failed) => {
                Err(self.fail(StorageError::Failed("an earlier sync failed".into())))
            }
        }
    }

    fn last_index(&self) -> LogIndex {
        let seg_end = self.segments.last().map_or(0, |s| {
            if s.offsets.is_empty() {
                s.first_index - 1
            } else {
                s.last_index()
            }
        });
        seg_end.max(self.snap_index())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_ok()?;
        let base = self.snap_index();
        if snapshot.meta.index <= base {
            return Err(StorageError::Invalid(format!(
                "snapshot at index {} is not above the current snapshot index {base}",
                snapshot.meta.index
            )));
        }
        self.sync()?;
        self.recovered_log = None;
        self.recovered_snapshot = None;
        let res = self.write_snapshot(snapshot);
        // The test hook is for this save only.
        self.crash_after = None;
        res.map_err(|e| self.fail(e))
    }

    fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.meta.snapshot
    }

    fn log_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}
