//! The trace file format (docs/trace-format.md): versioned JSON, written by
//! `raft-model check --trace-dir`, read by `raft-conform`.

use crate::config::{Config, PersistMode};
use crate::types::{Action, Entry, Index, Message, Role, ServerId, Term, Value};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const TRACE_VERSION: u32 = 4;
/// Version 1 predates the durable part and the outbox: it is read as a
/// trace of `--persist sync` (docs/trace-format.md "Version 1"). Version 2
/// predates snapshots: it is read with every snapshot field 0 / empty
/// (docs/trace-format.md "Version 2").
pub const SUPPORTED_VERSIONS: &[u32] = &[1, 2, 3, TRACE_VERSION];

/// One server's abstract state (docs/protocol.md §1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AbstractServer {
    pub term: Term,
    pub voted_for: Option<ServerId>,
    pub role: Role,
    pub log: Vec<Entry>,
    pub commit_index: Index,
    /// Sorted; empty unless candidate.
    pub votes_granted: Vec<ServerId>,
    /// Length `servers` for a leader (own slot 0), empty otherwise.
    pub next_index: Vec<Index>,
    pub match_index: Vec<Index>,
    /// What is on disk (docs/protocol.md §1, §7). Absent in version 1
    /// traces: the reader then copies the in-memory fields.
    #[serde(default)]
    pub durable_term: Term,
    #[serde(default)]
    pub durable_voted_for: Option<ServerId>,
    #[serde(default)]
    pub durable_log: Vec<Entry>,
    /// Messages waiting for the next Persist, in the order sent.
    #[serde(default)]
    pub outbox: Vec<Message>,
    /// The snapshot (docs/protocol.md §8, R-snap-1): `log` holds the
    /// entries after `snapshot_index`, `durable_log` those after
    /// `durable_snapshot_index`. Absent in version 1 and 2 traces (no
    /// snapshot: 0 and empty).
    #[serde(default)]
    pub snapshot_index: Index,
    #[serde(default)]
    pub snapshot_term: Term,
    #[serde(default)]
    pub snapshot_values: Vec<Value>,
    #[serde(default)]
    pub durable_snapshot_index: Index,
    #[serde(default)]
    pub durable_snapshot_term: Term,
    #[serde(default)]
    pub durable_snapshot_values: Vec<Value>,
}

impl AbstractServer {
    /// Version 1 fix-up: the durable part equals the in-memory state and
    /// the outbox is empty (every step was durable at once).
    fn assume_synced(&mut self) {
        self.durable_term = self.term;
        self.durable_voted_for = self.voted_for;
        self.durable_log = self.log.clone();
        self.durable_snapshot_index = self.snapshot_index;
        self.durable_snapshot_term = self.snapshot_term;
        self.durable_snapshot_values = self.snapshot_values.clone();
        self.outbox.clear();
    }
}

impl AbstractState {
    fn assume_synced(&mut self) {
        for s in &mut self.servers {
            s.assume_synced();
        }
    }
}

/// The abstract state of the whole system: what conformance compares.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AbstractState {
    pub servers: Vec<AbstractServer>,
    /// Messages in flight, sorted (a multiset: duplicates appear twice).
    pub network: Vec<Message>,
    /// The group `S` of the active `Partition(S)`, sorted, or none.
    pub partition: Option<Vec<ServerId>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    Counterexample,
    Example,
    Walk,
    Recorded,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    pub action: Action,
    pub state: AbstractState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub version: u32,
    pub kind: TraceKind,
    pub property: Option<String>,
    pub bounds: Config,
    pub initial: AbstractState,
    pub steps: Vec<TraceStep>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a trace file: {source}")]
    Malformed {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: trace format version {found} is not supported (supported: {supported:?})")]
    UnknownVersion {
        path: String,
        found: u64,
        supported: &'static [u32],
    },
}

/// Version 3's Snapshot action has no `index`: it compacted to the server's
/// commit index in the state before the step, which is what it reads as.
fn snapshot_index_of_version_3(trace: &mut serde_json::Value) {
    let commit_of = |state: &serde_json::Value, server: &serde_json::Value| {
        let i = server.as_u64()? as usize;
        state.get("servers")?.get(i)?.get("commit_index").cloned()
    };
    let mut before = trace.get("initial").cloned().unwrap_or_default();
    let Some(steps) = trace.get_mut("steps").and_then(|s| s.as_array_mut()) else {
        return;
    };
    for step in steps {
        if let Some(action) = step.get_mut("action").and_then(|a| a.as_object_mut()) {
            if action.get("type").and_then(|t| t.as_str()) == Some("Snapshot")
                && !action.contains_key("index")
            {
                if let Some(c) = action.get("server").and_then(|srv| commit_of(&before, srv)) {
                    action.insert("index".into(), c);
                }
            }
        }
        before = step.get("state").cloned().unwrap_or_default();
    }
}

impl Trace {
    pub fn new(
        kind: TraceKind,
        property: Option<String>,
        bounds: Config,
        initial: AbstractState,
        steps: Vec<TraceStep>,
    ) -> Trace {
        Trace {
            version: TRACE_VERSION,
            kind,
            property,
            bounds,
            initial,
            steps,
        }
    }

    /// Parses a trace, checking the version before the rest of the document
    /// so that a future format gets a version error, not a field error.
    pub fn from_json(text: &str, path: &str) -> Result<Trace, TraceError> {
        let malformed = |source| TraceError::Malformed {
            path: path.to_string(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(malformed)?;
        let found = value.get("version").and_then(|v| v.as_u64());
        match found {
            Some(v) if SUPPORTED_VERSIONS.iter().any(|&s| u64::from(s) == v) => {}
            Some(v) => {
                return Err(TraceError::UnknownVersion {
                    path: path.to_string(),
                    found: v,
                    supported: SUPPORTED_VERSIONS,
                })
            }
            None => {
                return Err(malformed(serde::de::Error::custom(
                    "missing integer field `version`",
                )))
            }
        }
        let mut value = value;
        if found == Some(3) {
            snapshot_index_of_version_3(&mut value);
        }
        let mut trace: Trace = serde_json::from_value(value).map_err(malformed)?;
        if trace.version == 1 {
            trace.bounds.persist = PersistMode::Sync;
            trace.initial.assume_synced();
            for step in &mut trace.steps {
                step.state.assume_synced();
            }
        }
        Ok(trace)
    }

    /// Checks that the trace is consistent with its own bounds, so that
    /// nothing drawing or replaying it can index out of range: 1 to
    /// `MAX_SERVERS` servers, every state with `bounds.servers` servers and
    /// only server ids below that (votes, leaders' next/match slots,
    /// messages, the partition group), positive client values, and actions
    /// that name servers of the cluster. `raft-model diagram` and
    /// `raft-conform replay` both refuse a trace that fails it.
    pub fn check(&self) -> Result<(), String> {
        let n = usize::from(self.bounds.servers);
        if n == 0 || n > usize::from(crate::config::MAX_SERVERS) {
            return Err(format!(
                "bounds.servers = {n}, expected 1..={}",
                crate::config::MAX_SERVERS
            ));
        }
        check_state(&self.initial, n).map_err(|e| format!("initial state: {e}"))?;
        for (k, step) in self.steps.iter().enumerate() {
            check_state(&step.state, n).map_err(|e| format!("step {}: {e}", k + 1))?;
            check_action(&step.action, n).map_err(|e| format!("step {}: {e}", k + 1))?;
        }
        Ok(())
    }

    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: name.clone(),
            source,
        })?;
        Trace::from_json(&text, &name)
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

/// An id for the trace files of one run: its UTC start time and process id,
/// e.g. `20261202T054010Z-p4242`. Two runs never share one, so a trace
/// directory can hold several runs without mixing them up or overwriting.
pub fn run_id(now: std::time::SystemTime, pid: u32) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-p{pid}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn check_state(state: &AbstractState, n: usize) -> Result<(), String> {
    if state.servers.len() != n {
        return Err(format!(
            "state has {} servers, bounds say {n}",
            state.servers.len()
        ));
    }
    let ok = |s: ServerId| usize::from(s) < n;
    for (i, s) in state.servers.iter().enumerate() {
        let bad = |what: &str| format!("server {i}: {what}");
        if s.voted_for.is_some_and(|v| !ok(v)) || s.durable_voted_for.is_some_and(|v| !ok(v)) {
            return Err(bad("voted_for names no server"));
        }
        if s.votes_granted.iter().any(|&v| !ok(v)) {
            return Err(bad("votes_granted names no server"));
        }
        if s.role == Role::Leader && (s.next_index.len() != n || s.match_index.len() != n) {
            return Err(bad(
                "a leader's next_index/match_index must have one slot per server",
            ));
        }
        if s.log.iter().chain(&s.durable_log).any(|e| e.value == 0) {
            return Err(bad("log values must be positive"));
        }
        if let Some(m) = s.outbox.iter().find(|m| !ok(m.from) || !ok(m.to)) {
            return Err(bad(&format!("outbox message {m:?} names no server")));
        }
    }
    if let Some(m) = state.network.iter().find(|m| !ok(m.from) || !ok(m.to)) {
        return Err(format!("message {m:?} names no server"));
    }
    if let Some(g) = &state.partition {
        if g.iter().any(|&x| !ok(x)) {
            return Err("partition group names no server".into());
        }
    }
    Ok(())
}

/// An action that names a server outside the cluster, or a client value 0.
fn check_action(action: &Action, n: usize) -> Result<(), String> {
    let ok = |s: ServerId| usize::from(s) < n;
    let fine = match action {
        Action::Timeout { server }
        | Action::Heartbeat { server }
        | Action::ClientRequest { server, .. }
        | Action::Persist { server }
        | Action::Restart { server }
        | Action::Snapshot { server, .. } => ok(*server),
        Action::Deliver { message } | Action::Drop { message } | Action::Duplicate { message } => {
            ok(message.from) && ok(message.to)
        }
        Action::Partition { group } => group.iter().all(|&s| ok(s)),
        Action::Heal => true,
    };
    if !fine {
        return Err(format!("action {action:?} names a server outside 0..{n}"));
    }
    if let Action::ClientRequest { value: 0, .. } = action {
        return Err("client values must be positive".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Body, RequestVote};

    const V1: &str = r#"{
      "version": 1, "kind": "walk", "property": null,
      "bounds": { "servers": 2, "max_term": 2, "max_requests": 1, "max_inflight": 2,
                  "max_restarts": 0, "max_partitions": 0, "max_duplicates": 0,
                  "network": "unordered", "bug": null },
      "initial": { "servers": [
          { "term": 0, "voted_for": null, "role": "follower", "log": [], "commit_index": 0,
            "votes_granted": [], "next_index": [], "match_index": [] },
          { "term": 0, "voted_for": null, "role": "follower", "log": [], "commit_index": 0,
            "votes_granted": [], "next_index": [], "match_index": [] } ],
        "network": [], "partition": null },
      "steps": [ { "action": { "type": "Timeout", "server": 0 },
        "state": { "servers": [
          { "term": 1, "voted_for": 0, "role": "candidate", "log": [ { "term": 0, "value": 1 } ],
            "commit_index": 0, "votes_granted": [0], "next_index": [], "match_index": [] },
          { "term": 0, "voted_for": null, "role": "follower", "log": [], "commit_index": 0,
            "votes_granted": [], "next_index": [], "match_index": [] } ],
          "network": [ { "from": 0, "to": 1, "body": { "type": "RequestVote", "term": 1,
                         "last_log_index": 1, "last_log_term": 0 } } ],
          "partition": null } } ]
    }"#;

    #[test]
    fn version_1_is_read_as_sync_with_durable_equal_to_in_memory() {
        let t = Trace::from_json(V1, "v1.json").unwrap();
        assert_eq!(t.version, 1);
        assert_eq!(t.bounds.persist, PersistMode::Sync);
        let s = &t.steps[0].state.servers[0];
        assert_eq!(
            (s.durable_term, s.durable_voted_for, s.durable_log.clone()),
            (s.term, s.voted_for, s.log.clone())
        );
        assert_eq!((s.durable_term, s.durable_voted_for), (1, Some(0)));
        assert!(s.outbox.is_empty());
        assert!(matches!(
            t.steps[0].state.network[0].body,
            Body::RequestVote(RequestVote { term: 1, .. })
        ));
    }

    #[test]
    fn version_2_round_trips_with_the_durable_part_and_the_outbox() {
        let mut t = Trace::from_json(V1, "v1.json").unwrap();
        t.version = TRACE_VERSION;
        t.bounds.persist = PersistMode::Async;
        let state = &mut t.steps[0].state;
        let s = &mut state.servers[0];
        s.durable_term = 0;
        s.durable_voted_for = None;
        s.durable_log.clear();
        s.outbox = std::mem::take(&mut state.network);
        let text = serde_json::to_string(&t).unwrap();
        assert!(text.contains(r#""persist":"async""#), "{text}");
        assert!(text.contains(r#""outbox":[{"from":0"#), "{text}");
        let back = Trace::from_json(&text, "v2.json").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn a_version_3_snapshot_compacts_to_the_commit_index_before_it() {
        let mut t = Trace::from_json(V1, "v1.json").unwrap();
        t.version = TRACE_VERSION;
        t.initial.servers[0].commit_index = 2;
        let mut after = t.initial.clone();
        after.servers[0].snapshot_index = 2;
        t.steps = vec![TraceStep {
            action: Action::Snapshot {
                server: 0,
                index: 2,
            },
            state: after,
        }];
        let text = serde_json::to_string(&t).unwrap();
        assert!(
            text.contains(r#""type":"Snapshot","server":0,"index":2"#),
            "{text}"
        );
        let v3 = text
            .replace(r#""version":4"#, r#""version":3"#)
            .replace(r#","index":2}"#, "}");
        assert!(!v3.contains(r#""index":2"#), "{v3}");
        let back = Trace::from_json(&v3, "v3.json").unwrap_or_else(|e| panic!("{e}\n{v3}"));
        assert_eq!(back.version, 3);
        assert_eq!(back.steps[0].action, t.steps[0].action);
    }

    #[test]
    fn unknown_versions_are_refused_naming_the_supported_ones() {
        let err = Trace::from_json(r#"{"version": 5}"#, "v5.json").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("version 5") && msg.contains("[1, 2, 3, 4]"),
            "{msg}"
        );
    }
}
