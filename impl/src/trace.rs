//! Recorded steps: the node's side of docs/trace-format.md, "Recorded steps
//! (NDJSON), version 2".
//!
//! A [`TraceSink`] receives one JSON line per step the node takes, written
//! before any message of that step is handed to the transport. A file sink
//! appends each record with a single `write` on a file opened with
//! `O_APPEND`, so several processes may share one file and its order
//! respects causality. A memory sink keeps the lines for tests and for
//! in-process harnesses.

use crate::core::RaftCore;
use crate::message::{
    AppendEntries, AppendEntriesResponse, Body, Message, MsgTag, RequestVote, RequestVoteResponse,
};
use crate::types::{Entry, LogIndex, NodeId, Role};
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The `format` of every record.
pub const FORMAT: &str = "raftkv-steps";
/// The `version` of every record (2: snapshots, docs/protocol.md §8).
pub const VERSION: u64 = 2;
/// FNV-1a 64-bit offset basis: the hash of the empty log.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot open trace file {path} for appending: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write a trace record: {source}")]
    Write {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read trace file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The chained log hash after `h` extended by one entry: its term (8 bytes
/// little endian), its command's length (8 bytes little endian), then the
/// command's bytes.
pub fn hash_entry(h: u64, e: &Entry) -> u64 {
    let h = fnv(h, &e.term.to_le_bytes());
    let h = fnv(h, &(e.command.len() as u64).to_le_bytes());
    fnv(h, &e.command)
}

/// The hash of a whole log (docs/trace-format.md, "Log hash").
pub fn log_hash(log: &[Entry]) -> u64 {
    log.iter().fold(FNV_OFFSET, hash_entry)
}

/// Lowercase hex of bytes (commands in records).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Where step records go. Clones share the destination.
#[derive(Clone)]
pub struct TraceSink {
    inner: Arc<SinkInner>,
}

enum SinkInner {
    File { path: PathBuf, file: File },
    Memory(Mutex<Vec<String>>),
}

impl std::fmt::Debug for TraceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            SinkInner::File { path, .. } => f.debug_tuple("TraceSink::File").field(path).finish(),
            SinkInner::Memory(_) => f.write_str("TraceSink::Memory"),
        }
    }
}

impl TraceSink {
    /// Appends to `path` (created if missing, opened with `O_APPEND`).
    pub fn open(path: impl AsRef<Path>) -> Result<TraceSink, TraceError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| TraceError::Open {
                path: path.clone(),
                source,
            })?;
        Ok(TraceSink {
            inner: Arc::new(SinkInner::File { path, file }),
        })
    }

    /// Keeps the records in memory ([`TraceSink::lines`]).
    pub fn memory() -> TraceSink {
        TraceSink {
            inner: Arc::new(SinkInner::Memory(Mutex::new(Vec::new()))),
        }
    }

    /// Every record so far, one JSON object per line, in write order.
    pub fn lines(&self) -> Result<Vec<String>, TraceError> {
        match &*self.inner {
            SinkInner::Memory(v) => Ok(v.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            SinkInner::File { path, .. } => {
                let read_err = |source| TraceError::Read {
                    path: path.clone(),
                    source,
                };
                let f = File::open(path).map_err(read_err)?;
                BufReader::new(f)
                    .lines()
                    .filter(|l| !matches!(l, Ok(s) if s.is_empty()))
                    .collect::<Result<_, _>>()
                    .map_err(read_err)
            }
        }
    }

    /// The `seq` of node `node`'s next record: one more than the highest
    /// `seq` of its records already in the sink, 0 if none (lines that are
    /// not records of this format are skipped).
    pub fn next_seq(&self, node: NodeId) -> Result<u64, TraceError> {
        #[derive(serde::Deserialize)]
        struct Head {
            format: String,
            node: NodeId,
            seq: u64,
        }
        let mut next = 0;
        for line in self.lines()? {
            if let Ok(h) = serde_json::from_str::<Head>(&line) {
                if h.format == FORMAT && h.node == node {
                    next = next.max(h.seq + 1);
                }
            }
        }
        Ok(next)
    }

    /// One record: a single `write` of the line and its newline.
    fn write(&self, line: String) -> std::io::Result<()> {
        match &*self.inner {
            SinkInner::Memory(v) => {
                v.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                Ok(())
            }
            SinkInner::File { file, .. } => {
                let mut buf = line.into_bytes();
                buf.push(b'\n');
                let n = (&*file).write(&buf)?;
                if n != buf.len() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        format!("short write of a trace record ({n} of {} bytes)", buf.len()),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// The event of a record.
#[derive(Clone, Debug)]
pub(crate) enum TraceEvent<'a> {
    Timeout,
    Heartbeat,
    ClientRequest(&'a [u8]),
    Deliver(Option<MsgTag>),
    Persist,
    Restart,
    /// The Snapshot step (R-snap-2).
    Snapshot,
}

/// A node's recorder: the sink, the next `seq`, the chained hashes of the
/// in-memory log after the snapshot (one per entry, updated by the steps'
/// log changes: no record rehashes the log, except after the snapshot
/// moved) and the ids of the messages in the outbox.
pub(crate) struct Recorder {
    sink: TraceSink,
    node: NodeId,
    seq: u64,
    /// `prefix[i]` is the hash of `log[..=i]`, `log` the entries after the
    /// snapshot at `snapshot_index`.
    prefix: Vec<u64>,
    snapshot_index: LogIndex,
    outbox: Vec<MsgTag>,
}

/// The record of a snapshot: its index and term (its data is the state
/// machine's and is not recorded).
fn snapshot_json(s: Option<&crate::types::Snapshot>) -> Value {
    match s {
        Some(s) => json!({"index": s.meta.index, "term": s.meta.term}),
        None => Value::Null,
    }
}

/// The chained hashes of every prefix of `log`.
fn prefix_hashes(log: &[Entry]) -> Vec<u64> {
    let mut prefix = Vec::with_capacity(log.len());
    let mut h = FNV_OFFSET;
    for e in log {
        h = hash_entry(h, e);
        prefix.push(h);
    }
    prefix
}

impl Recorder {
    pub(crate) fn new(sink: TraceSink, core: &RaftCore) -> Result<Recorder, TraceError> {
        let node = core.id();
        let seq = sink.next_seq(node)?;
        Ok(Recorder {
            sink,
            node,
            seq,
            prefix: prefix_hashes(core.log()),
            snapshot_index: core.snapshot_index(),
            outbox: Vec::new(),
        })
    }

    /// Whether this node has records already (it is restarting).
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    fn hash_at(&self, len: usize) -> u64 {
        if len == 0 {
            FNV_OFFSET
        } else {
            self.prefix[len - 1]
        }
    }

    /// The tags of this step's new messages: `messages` first, then the
    /// ones it put into the outbox (for a Persist: the released outbox).
    pub(crate) fn tags(
        &mut self,
        event_is_persist: bool,
        sent_now: usize,
        outboxed: usize,
    ) -> Vec<MsgTag> {
        if event_is_persist {
            return std::mem::take(&mut self.outbox);
        }
        (0..sent_now + outboxed)
            .map(|k| MsgTag {
                node: self.node,
                seq: self.seq,
                k: k as u32,
            })
            .collect()
    }

    /// Records one step taken on `core`. `log_ops` are the step's log
    /// changes (to keep the hashes current), `sent` its new messages with
    /// their tags and whether they went to the outbox, `outbox_cleared`
    /// whether the term rule emptied the outbox first.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &mut self,
        core: &RaftCore,
        event: TraceEvent<'_>,
        log_ops: &[crate::core::LogOp],
        sent: &[(MsgTag, bool, &Message)],
        outbox_cleared: bool,
    ) -> std::io::Result<()> {
        if core.snapshot_index() != self.snapshot_index {
            // A Snapshot step or an installed snapshot: the log now starts
            // after another index (rare: rehash what is left).
            self.snapshot_index = core.snapshot_index();
            self.prefix = prefix_hashes(core.log());
        } else {
            for op in log_ops {
                match op {
                    crate::core::LogOp::Truncate { last_index } => {
                        let keep = last_index.saturating_sub(self.snapshot_index);
                        self.prefix.truncate(keep as usize);
                    }
                    crate::core::LogOp::Append { entries, .. } => {
                        for e in entries {
                            let h = hash_entry(self.hash_at(self.prefix.len()), e);
                            self.prefix.push(h);
                        }
                    }
                }
            }
        }
        debug_assert_eq!(self.prefix.len(), core.log().len());
        if outbox_cleared {
            self.outbox.clear();
        }
        if matches!(event, TraceEvent::Persist | TraceEvent::Restart) {
            self.outbox.clear();
        }
        for (tag, outboxed, _) in sent {
            if *outboxed {
                self.outbox.push(*tag);
            }
        }
        let event = match event {
            TraceEvent::Timeout => json!({"type": "Timeout"}),
            TraceEvent::Heartbeat => json!({"type": "Heartbeat"}),
            TraceEvent::ClientRequest(c) => json!({"type": "ClientRequest", "command": hex(c)}),
            TraceEvent::Deliver(tag) => {
                json!({"type": "Deliver", "id": tag.map(|t| t.to_string())})
            }
            TraceEvent::Persist => json!({"type": "Persist"}),
            TraceEvent::Restart => json!({"type": "Restart"}),
            TraceEvent::Snapshot => json!({"type": "Snapshot"}),
        };
        // The durable log after the durable snapshot: while a snapshot is
        // pending it is a frozen copy (hashed whole, rare); otherwise the
        // in-memory log through `stable_index`, then the durable tail.
        let (durable_len, durable_last_term, durable_hash) = if core.snapshot_pending() {
            let d = core.durable_log();
            (
                d.len(),
                d.last().map_or(0, |e| e.term),
                d.iter().fold(FNV_OFFSET, hash_entry),
            )
        } else {
            let stable = core.stable_index().saturating_sub(self.snapshot_index) as usize;
            let tail = core.durable_tail();
            let last_term = match (tail.last(), stable) {
                (Some(e), _) => e.term,
                (None, 0) => 0,
                (None, k) => core.log()[k - 1].term,
            };
            (
                stable + tail.len(),
                last_term,
                tail.iter().fold(self.hash_at(stable), hash_entry),
            )
        };
        let leader = core.role() == Role::Leader;
        let pairs = |m: &std::collections::BTreeMap<NodeId, LogIndex>| -> Value {
            if leader {
                m.iter().map(|(p, i)| json!([p, i])).collect()
            } else {
                json!([])
            }
        };
        let durable = core.durable_hard_state();
        let record = json!({
            "format": FORMAT,
            "version": VERSION,
            "node": self.node,
            "seq": self.seq,
            "event": event,
            "state": {
                "term": core.term(),
                "voted_for": core.voted_for(),
                "role": role_name(core.role()),
                "commit_index": core.commit_index(),
                "votes_granted": if core.role() == Role::Candidate {
                    core.votes_granted().iter().copied().collect::<Vec<_>>()
                } else {
                    Vec::new()
                },
                "next_index": pairs(core.next_index()),
                "match_index": pairs(core.match_index()),
                "snapshot": snapshot_json(core.current_snapshot()),
                "log": {
                    "len": core.log().len(),
                    "last_term": core.log().last().map_or(0, |e| e.term),
                    "hash": format!("{:016x}", self.hash_at(self.prefix.len())),
                },
                "durable_term": durable.term,
                "durable_voted_for": durable.voted_for,
                "durable_snapshot": snapshot_json(core.durable_snapshot()),
                "durable_log": {
                    "len": durable_len,
                    "last_term": durable_last_term,
                    "hash": format!("{durable_hash:016x}"),
                },
                "outbox": self.outbox.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            },
            "sent": sent.iter().map(|(tag, outboxed, m)| json!({
                "id": tag.to_string(),
                "to": m.to,
                "outbox": outboxed,
                "body": body_json(&m.body),
            })).collect::<Vec<_>>(),
        });
        self.seq += 1;
        self.sink.write(record.to_string())
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// A message body as docs/trace-format.md writes it (entries' commands in hex).
pub fn body_json(b: &Body) -> Value {
    match b {
        Body::RequestVote(RequestVote {
            term,
            last_log_index,
            last_log_term,
        }) => json!({"type": "RequestVote", "term": term,
                    "last_log_index": last_log_index, "last_log_term": last_log_term}),
        Body::RequestVoteResponse(RequestVoteResponse { term, granted }) => {
            json!({"type": "RequestVoteResponse", "term": term, "granted": granted})
        }
        Body::AppendEntries(AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }) => json!({"type": "AppendEntries", "term": term,
                    "prev_log_index": prev_log_index, "prev_log_term": prev_log_term,
                    "entries": entries.iter()
                        .map(|e| json!({"term": e.term, "command": hex(&e.command)}))
                        .collect::<Vec<_>>(),
                    "leader_commit": leader_commit}),
        Body::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        }) => json!({"type": "AppendEntriesResponse", "term": term, "success": success,
                    "index": index, "conflict_index": conflict_index}),
        // The snapshot's data is the state machine's: only its size.
        Body::InstallSnapshot(crate::message::InstallSnapshot { term, snapshot }) => {
            json!({"type": "InstallSnapshot", "term": term,
                    "last_included_index": snapshot.meta.index,
                    "last_included_term": snapshot.meta.term,
                    "data_len": snapshot.data.len()})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_hash_matches_hand_computed_values() {
        // The FNV-1a 64 reference vectors.
        assert_eq!(fnv(FNV_OFFSET, b""), 0xcbf29ce484222325);
        assert_eq!(fnv(FNV_OFFSET, b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv(FNV_OFFSET, b"foobar"), 0x85944171f73967e8);
        let e1 = Entry {
            term: 1,
            command: vec![],
        };
        let e2 = Entry {
            term: 2,
            command: b"x".to_vec(),
        };
        // Computed by hand (a few lines of Python over the byte strings
        // 01 00*7 | 00*8 and then 02 00*7 | 01 00*7 | 78).
        assert_eq!(format!("{:016x}", log_hash(&[])), "cbf29ce484222325");
        assert_eq!(
            format!("{:016x}", log_hash(std::slice::from_ref(&e1))),
            "392209f14dea4c24"
        );
        assert_eq!(
            format!("{:016x}", log_hash(&[e1.clone(), e2.clone()])),
            "f117f7d348fb218d"
        );
        // Chained: extending a hash by one entry equals hashing the longer log.
        assert_eq!(
            hash_entry(log_hash(std::slice::from_ref(&e1)), &e2),
            log_hash(&[e1, e2])
        );
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
