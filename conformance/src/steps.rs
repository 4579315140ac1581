//! The recorded-steps NDJSON format of docs/trace-format.md ("Recorded
//! steps"), read with conformance's own serde structs: the document is the
//! contract, not the implementation's writer. One JSON object per line.

use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FORMAT: &str = "raftkv-steps";
/// The version written (2: snapshots); [`VERSIONS`] are read.
pub const VERSION: u64 = 2;
/// Version 1 is version 2 without snapshots: no `snapshot` fields, no
/// Snapshot event, no InstallSnapshot.
pub const VERSIONS: [u64; 2] = [1, 2];

/// One recorded step of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub format: String,
    pub version: u64,
    pub node: u64,
    pub seq: u64,
    pub event: RecEvent,
    pub state: RecState,
    #[serde(default)]
    pub sent: Vec<RecSent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RecEvent {
    Timeout,
    Heartbeat,
    ClientRequest { command: String },
    Deliver { id: String },
    Persist,
    Restart,
    Snapshot,
}

impl RecEvent {
    pub fn name(&self) -> &'static str {
        match self {
            RecEvent::Timeout => "Timeout",
            RecEvent::Heartbeat => "Heartbeat",
            RecEvent::ClientRequest { .. } => "ClientRequest",
            RecEvent::Deliver { .. } => "Deliver",
            RecEvent::Persist => "Persist",
            RecEvent::Restart => "Restart",
            RecEvent::Snapshot => "Snapshot",
        }
    }
}

/// A log given by its length, last term and FNV-1a chain hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSummary {
    pub len: u64,
    pub last_term: u64,
    pub hash: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecRole {
    Follower,
    Candidate,
    Leader,
}

/// The node's protocol state after the step (docs/protocol.md §1), in the
/// implementation's vocabulary (node ids, u64).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecState {
    pub term: u64,
    pub voted_for: Option<u64>,
    pub role: RecRole,
    pub commit_index: u64,
    pub votes_granted: Vec<u64>,
    /// `[[peer, index], ...]` for a leader, else empty.
    pub next_index: Vec<(u64, u64)>,
    pub match_index: Vec<(u64, u64)>,
    /// The in-memory snapshot (version 2); `log` is the entries after it.
    #[serde(default)]
    pub snapshot: Option<RecSnapshot>,
    pub log: LogSummary,
    pub durable_term: u64,
    pub durable_voted_for: Option<u64>,
    /// The snapshot on disk (version 2); `durable_log` is the entries after it.
    #[serde(default)]
    pub durable_snapshot: Option<RecSnapshot>,
    pub durable_log: LogSummary,
    /// Message ids waiting for the next Persist, in send order.
    pub outbox: Vec<String>,
}

/// A snapshot's index and term (its data is the state machine's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecSnapshot {
    pub index: u64,
    pub term: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecEntry {
    pub term: u64,
    pub command: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum RecBody {
    RequestVote {
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
    },
    RequestVoteResponse {
        term: u64,
        granted: bool,
    },
    AppendEntries {
        term: u64,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<RecEntry>,
        leader_commit: u64,
    },
    AppendEntriesResponse {
        term: u64,
        success: bool,
        index: u64,
        conflict_index: u64,
    },
    /// Version 2. `data_len` is the size of the snapshot's data (not compared).
    InstallSnapshot {
        term: u64,
        last_included_index: u64,
        last_included_term: u64,
        #[serde(default)]
        data_len: u64,
    },
}

/// A message the step created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecSent {
    pub id: String,
    pub to: u64,
    pub outbox: bool,
    pub body: RecBody,
}

/// A record with where it came from.
#[derive(Clone, Debug)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub record: Record,
}

#[derive(Debug, thiserror::Error)]
pub enum StepsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a recorded step: {reason}")]
    Malformed {
        path: String,
        line: usize,
        reason: String,
    },
    #[error(
        "{path}:{line}: unknown record format {found:?} (supported: {FORMAT:?} versions 1 and 2)"
    )]
    UnknownFormat {
        path: String,
        line: usize,
        found: String,
    },
    #[error("{path}:{line}: {FORMAT} version {found} is not supported (supported: [1, 2])")]
    UnknownVersion {
        path: String,
        line: usize,
        found: String,
    },
}

/// Parses one line. The format and version are checked before the rest, so
/// a future format gets a version error rather than a field error.
pub fn parse_line(text: &str, path: &str, line: usize) -> Result<Record, StepsError> {
    let malformed = |reason: String| StepsError::Malformed {
        path: path.to_string(),
        line,
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    match value.get("format") {
        Some(serde_json::Value::String(f)) if f == FORMAT => {}
        Some(other) => {
            return Err(StepsError::UnknownFormat {
                path: path.to_string(),
                line,
                found: match other {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                },
            })
        }
        None => return Err(malformed("missing field `format`".into())),
    }
    match value.get("version") {
        Some(v) if v.as_u64().is_some_and(|v| VERSIONS.contains(&v)) => {}
        Some(v) => {
            return Err(StepsError::UnknownVersion {
                path: path.to_string(),
                line,
                found: v.to_string(),
            })
        }
        None => return Err(malformed("missing field `version`".into())),
    }
    serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
}

/// Parses a whole NDJSON text (blank lines are skipped).
pub fn parse_text(text: &str, path: &str) -> Result<Vec<Located>, StepsError> {
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(Located {
            file: path.to_string(),
            line: k + 1,
            record: parse_line(line, path, k + 1)?,
        });
    }
    Ok(out)
}

pub fn read_file(path: &Path) -> Result<Vec<Located>, StepsError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| StepsError::Io {
        path: name.clone(),
        source,
    })?;
    parse_text(&text, &name)
}

/// Hex of bytes, lowercase.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Bytes of a hex string (either case); None if it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The log hash of docs/trace-format.md: 64-bit FNV-1a chained over the
/// entries (term as 8 bytes LE, command length as 8 bytes LE, the bytes).
#[derive(Clone, Copy, Debug)]
pub struct LogHasher(u64);

impl Default for LogHasher {
    fn default() -> Self {
        LogHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl LogHasher {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn entry(&mut self, term: u64, command: &[u8]) {
        self.feed(&term.to_le_bytes());
        self.feed(&(command.len() as u64).to_le_bytes());
        self.feed(command);
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    pub fn value(&self) -> u64 {
        self.0
    }

    pub fn from_value(h: u64) -> LogHasher {
        LogHasher(h)
    }
}

/// The summary of a log given as `(term, command bytes)` entries.
pub fn summarize<'a>(entries: impl IntoIterator<Item = (u64, &'a [u8])>) -> LogSummary {
    let mut h = LogHasher::default();
    let mut len = 0;
    let mut last_term = 0;
    for (term, cmd) in entries {
        h.entry(term, cmd);
        len += 1;
        last_term = term;
    }
    LogSummary {
        len,
        last_term,
        hash: h.hex(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_log_hash_is_the_offset_basis() {
        assert_eq!(summarize(std::iter::empty()).hash, "cbf29ce484222325");
    }

    #[test]
    fn hash_depends_on_term_command_and_order() {
        let a = summarize([(1, &b"1"[..]), (1, &b"2"[..])]);
        let b = summarize([(1, &b"2"[..]), (1, &b"1"[..])]);
        let c = summarize([(2, &b"1"[..]), (1, &b"2"[..])]);
        // Length prefix: ("12") and ("1","2") differ.
        let d = summarize([(1, &b"12"[..])]);
        assert_eq!(a.len, 2);
        assert_eq!(a.last_term, 1);
        let hashes = [&a.hash, &b.hash, &c.hash, &d.hash];
        for i in 0..4 {
            for j in i + 1..4 {
                assert_ne!(hashes[i], hashes[j]);
            }
        }
        // One entry by hand: FNV-1a of 8 LE bytes of 1, 8 LE bytes of 1, "7".
        let mut h: u64 = 0xcbf29ce484222325;
        let mut bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend(1u64.to_le_bytes());
        bytes.push(b'7');
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        assert_eq!(summarize([(1, &b"7"[..])]).hash, format!("{h:016x}"));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(b"\x00\xffA"), "00ff41");
        assert_eq!(unhex("00ff41"), Some(b"\x00\xffA".to_vec()));
        assert_eq!(unhex("0G"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn the_documented_example_parses() {
        // The example of docs/trace-format.md, "Recorded steps", as printed.
        let line = r#"{"format":"raftkv-steps","version":2,"node":2,"seq":41,
 "event":{"type":"Deliver","id":"1.40.0"},
 "state":{"term":3,"voted_for":1,"role":"follower","commit_index":7,
          "votes_granted":[],"next_index":[],"match_index":[],
          "snapshot":{"index":4,"term":2},
          "log":{"len":5,"last_term":3,"hash":"8c7d0f2b4a1e6d93"},
          "durable_term":3,"durable_voted_for":1,
          "durable_snapshot":{"index":4,"term":2},
          "durable_log":{"len":4,"last_term":3,"hash":"1f0e5a9b6c2d7e40"},
          "outbox":["2.41.0"]},
 "sent":[{"id":"2.41.0","to":1,"outbox":true,
          "body":{"type":"AppendEntriesResponse","term":3,"success":true,"index":9,"conflict_index":0}}]}"#
            .replace('\n', "");
        let r = parse_line(&line, "f", 1).unwrap();
        assert_eq!(r.node, 2);
        assert_eq!(
            r.event,
            RecEvent::Deliver {
                id: "1.40.0".into()
            }
        );
        assert_eq!(r.state.outbox, vec!["2.41.0".to_string()]);
        assert!(r.sent[0].outbox);
        assert_eq!(r.state.snapshot, Some(RecSnapshot { index: 4, term: 2 }));
        // Version 1: the same without the snapshot fields.
        let v1 = line
            .replace(r#""version":2"#, r#""version":1"#)
            .replace(r#""snapshot":{"index":4,"term":2},"#, "")
            .replace(r#""durable_snapshot":{"index":4,"term":2},"#, "");
        let r1 = parse_line(&v1, "f", 1).unwrap();
        assert_eq!(r1.state.snapshot, None);
        assert_eq!(r1.state.durable_snapshot, None);
    }

    #[test]
    fn unknown_format_and_version_are_named() {
        let e = parse_line(r#"{"format":"other","version":1}"#, "f", 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:3: unknown record format \"other\" (supported: \"raftkv-steps\" versions 1 and 2)"
        );
        let e = parse_line(r#"{"format":"raftkv-steps","version":9}"#, "f", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:1: raftkv-steps version 9 is not supported (supported: [1, 2])"
        );
        let e = parse_line(r#"{"format":"raftkv-steps","version":1}"#, "f", 1).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
    }
}
