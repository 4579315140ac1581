//! The replicated key-value store: the state machine applied on every
//! replica ([`KvStore`]), the table of requests waiting for their log entry
//! to apply ([`Waiters`]), and the service that ties them to a Raft node
//! ([`service::KvService`]).

pub mod service;
pub mod session;
mod snapshot;
pub mod waiters;

pub use service::{KvConfig, KvService};
pub use session::{SESSION_TTL_ENTRIES, TRIM_EVERY};
pub use snapshot::SnapshotDecodeError;
pub use waiters::Waiters;

use session::{Admission, Sessions};

use crate::codec::{ClientRequest, ClientResponse, Op, MAX_KV_BYTES};
use crate::types::LogIndex;
use std::collections::HashMap;

/// A log command is a postcard-encoded [`ClientRequest`].
pub fn encode_command(request: &ClientRequest) -> Vec<u8> {
    // Serializing owned strings and integers into a Vec cannot fail.
    postcard::to_stdvec(request).expect("encoding a ClientRequest cannot fail")
}

pub fn decode_command(bytes: &[u8]) -> Result<ClientRequest, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// The deterministic KV state machine. Every replica applies the same
/// commands in log order and reaches the same state; after a restart it is
/// rebuilt from the last snapshot ([`KvStore::restore`]) and the log after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvStore {
    data: HashMap<String, String>,
    /// Client sessions: a retried write applies once (session.rs).
    sessions: Sessions,
    last_applied: LogIndex,
    /// Registered sessions idle for longer are trimmed; the same on every
    /// replica (a constant of the build, [`SESSION_TTL_ENTRIES`]; tests shorten it).
    session_ttl: LogIndex,
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore {
            data: HashMap::new(),
            sessions: Sessions::default(),
            last_applied: 0,
            session_ttl: SESSION_TTL_ENTRIES,
        }
    }
}

impl KvStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that trims sessions idle for more than `ttl` entries (tests).
    pub fn with_session_ttl(ttl: LogIndex) -> Self {
        KvStore {
            session_ttl: ttl,
            ..Self::default()
        }
    }

    pub fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The number of client sessions held.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The store's state as snapshot bytes (snapshot.rs): applied index,
    /// data and sessions, in a fixed order.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut data: Vec<(String, String)> = self
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        data.sort_unstable();
        snapshot::encode(&snapshot::Body {
            last_applied: self.last_applied,
            data,
            sessions: self.sessions.clone(),
        })
    }

    /// Replaces the state with the one `bytes` (from [`KvStore::snapshot`])
    /// holds; a corrupt or foreign snapshot is refused and changes nothing.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotDecodeError> {
        let body = snapshot::decode(bytes)?;
        self.data = body.data.into_iter().collect();
        self.sessions = body.sessions;
        self.last_applied = body.last_applied;
        Ok(())
    }

    /// Applies the command committed at `index`. Returns `None` if `index`
    /// was already applied (a re-delivery), else the response for the client.
    pub fn apply(&mut self, index: LogIndex, command: &[u8]) -> Option<ClientResponse> {
        if index <= self.last_applied {
            return None;
        }
        self.last_applied = index;
        let trimmed = self.sessions.trim(index, self.session_ttl);
        if trimmed > 0 {
            tracing::debug!(index, trimmed, "trimmed idle client sessions");
        }
        let request = match decode_command(command) {
            Ok(r) => r,
            Err(e) => {
                // Every replica skips the same undecodable entry, so the
                // replicas stay identical.
                tracing::warn!(index, error = %e, "skipping undecodable log command");
                return Some(ClientResponse::Invalid {
                    reason: format!("undecodable command: {e}"),
                });
            }
        };
        Some(self.apply_request(index, &request))
    }

    fn apply_request(&mut self, index: LogIndex, request: &ClientRequest) -> ClientResponse {
        let (key, size) = match &request.op {
            Op::Get { key } => {
                return ClientResponse::Ok {
                    value: self.data.get(key).cloned(),
                }
            }
            Op::RegisterClient => {
                return ClientResponse::Registered {
                    client_id: self.sessions.register(index),
                }
            }
            Op::Put { key, value } => (key, key.len() + value.len()),
            Op::Append { key, value } => (
                key,
                key.len() + self.data.get(key).map_or(0, String::len) + value.len(),
            ),
        };
        match self.sessions.admit(request.client_id, request.seq, index) {
            Admission::Apply => {}
            Admission::Duplicate { failure: None } => return ClientResponse::Ok { value: None },
            Admission::Duplicate {
                failure: Some(reason),
            } => return ClientResponse::Invalid { reason },
            Admission::Expired => {
                return ClientResponse::Invalid {
                    reason: format!(
                        "session {} is unknown: it expired (idle for more than {} log entries) \
                         or was never registered; this write (seq {}) was not applied; \
                         register a new session",
                        request.client_id, self.session_ttl, request.seq
                    ),
                }
            }
        }
        // The size limit holds for the value a write leaves, checked here,
        // where every replica decides alike: a write over it changes nothing.
        let failure =
            (size > MAX_KV_BYTES).then(|| {
                format!(
                "{} to {key:?} would make key and value {size} bytes; the limit is {MAX_KV_BYTES}",
                if matches!(request.op, Op::Put { .. }) { "put" } else { "append" }
            )
            });
        self.sessions
            .record(request.client_id, request.seq, index, failure.clone());
        if let Some(reason) = failure {
            return ClientResponse::Invalid { reason };
        }
        match &request.op {
            Op::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
            }
            Op::Append { key, value } => {
                self.data.entry(key.clone()).or_default().push_str(value);
            }
            Op::Get { .. } | Op::RegisterClient => unreachable!("answered above"),
        }
        ClientResponse::Ok { value: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(client_id: u64, seq: u64, op: Op) -> Vec<u8> {
        encode_command(&ClientRequest { client_id, seq, op })
    }

    fn append(k: &str, v: &str) -> Op {
        Op::Append {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn retried_write_of_an_unregistered_client_applies_once() {
        // An id above the current index: an old client's random id, whose
        // implicit session keeps the rule logs written before registration had.
        let mut kv = KvStore::new();
        kv.apply(1, &cmd(7, 1, append("k", "a")));
        kv.apply(2, &cmd(7, 1, append("k", "a")));
        kv.apply(3, &cmd(7, 2, append("k", "b")));
        // An abandoned older attempt that commits late is not applied either.
        kv.apply(4, &cmd(7, 1, append("k", "a")));
        assert_eq!(kv.get("k"), Some("ab"));
        let got = kv.apply(5, &cmd(7, 0, Op::Get { key: "k".into() }));
        assert_eq!(
            got,
            Some(ClientResponse::Ok {
                value: Some("ab".into())
            })
        );
    }

    #[test]
    fn append_past_the_size_limit_fails_and_changes_nothing_on_every_replica() {
        let half = "x".repeat(MAX_KV_BYTES / 2);
        let log = [
            cmd(100, 1, append("k", &half)),
            // key + 2 halves > the limit: refused at apply time.
            cmd(100, 2, append("k", &half)),
            // A retry of it (same seq) gets the same answer.
            cmd(100, 2, append("k", &half)),
            cmd(
                200,
                1,
                Op::Put {
                    key: "p".into(),
                    value: "y".repeat(MAX_KV_BYTES),
                },
            ),
            cmd(100, 3, append("k", "tail")),
        ];
        let mut replicas = [KvStore::new(), KvStore::new()];
        let mut answers = Vec::new();
        for kv in &mut replicas {
            let a: Vec<_> = log
                .iter()
                .enumerate()
                .map(|(i, c)| kv.apply(i as u64 + 1, c).unwrap())
                .collect();
            answers.push(a);
        }
        assert_eq!(replicas[0], replicas[1]);
        assert_eq!(answers[0], answers[1]);
        let a = &answers[0];
        assert_eq!(a[0], ClientResponse::Ok { value: None });
        for i in [1, 2, 3] {
            match &a[i] {
                ClientResponse::Invalid { reason } => {
                    assert!(reason.contains("the limit is 65536"), "{reason}")
                }
                other => panic!("entry {i}: expected Invalid, got {other:?}"),
            }
        }
        assert_eq!(a[4], ClientResponse::Ok { value: None });
        let kv = &replicas[0];
        assert_eq!(kv.get("k").map(str::len), Some(half.len() + 4));
        assert_eq!(kv.get("p"), None);
    }

    #[test]
    fn redelivered_index_is_ignored() {
        let mut kv = KvStore::new();
        assert!(kv.apply(1, &cmd(100, 1, append("k", "x"))).is_some());
        assert_eq!(kv.apply(1, &cmd(200, 1, append("k", "y"))), None);
        assert_eq!(kv.get("k"), Some("x"));
    }

    #[test]
    fn undecodable_command_is_skipped_without_panic() {
        let mut kv = KvStore::new();
        assert!(matches!(
            kv.apply(1, &[0xff, 0xff, 0xff]),
            Some(ClientResponse::Invalid { .. })
        ));
        assert_eq!(kv.last_applied(), 1);
        assert!(kv.is_empty());
    }

    #[test]
    fn replicas_applying_the_same_log_agree() {
        let log: Vec<Vec<u8>> = (0..50u64)
            .map(|i| {
                cmd(
                    1000 + i % 3,
                    i / 3 + 1,
                    append(&format!("k{}", i % 5), &i.to_string()),
                )
            })
            .collect();
        let mut a = KvStore::new();
        let mut b = KvStore::new();
        for (i, c) in log.iter().enumerate() {
            a.apply(i as u64 + 1, c);
        }
        // b sees every entry twice (re-delivery after a restart of the apply stream).
        for (i, c) in log.iter().enumerate() {
            b.apply(i as u64 + 1, c);
            b.apply(i as u64 + 1, c);
        }
        assert_eq!(a, b);
    }

    fn register() -> Vec<u8> {
        cmd(0, 0, Op::RegisterClient)
    }

    #[test]
    fn a_registered_session_applies_each_write_once_until_it_expires_then_refuses_it() {
        let mut kv = KvStore::with_session_ttl(100);
        assert_eq!(
            kv.apply(1, &register()),
            Some(ClientResponse::Registered { client_id: 1 })
        );
        assert_eq!(
            kv.apply(2, &cmd(1, 1, append("k", "a"))),
            Some(ClientResponse::Ok { value: None })
        );
        // The retry answers success and changes nothing.
        assert_eq!(
            kv.apply(3, &cmd(1, 1, append("k", "a"))),
            Some(ClientResponse::Ok { value: None })
        );
        assert_eq!(kv.get("k"), Some("a"));
        // Another session keeps the log going past the ttl; trimming happens
        // at the next multiple of TRIM_EVERY.
        assert_eq!(
            kv.apply(4, &register()),
            Some(ClientResponse::Registered { client_id: 4 })
        );
        for index in 5..=TRIM_EVERY {
            kv.apply(index, &cmd(4, index, append("other", "x")));
        }
        assert_eq!(
            kv.session_count(),
            1,
            "session 1 idle for over 100 entries is trimmed"
        );
        // A late retry of session 1 is refused, not applied again.
        let late = kv.apply(TRIM_EVERY + 1, &cmd(1, 1, append("k", "a")));
        match late {
            Some(ClientResponse::Invalid { reason }) => {
                assert!(reason.contains("session 1 is unknown"), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(matches!(
            kv.apply(TRIM_EVERY + 2, &cmd(1, 2, append("k", "b"))),
            Some(ClientResponse::Invalid { .. })
        ));
        assert_eq!(kv.get("k"), Some("a"));
        // An id never registered (at most the current index) is refused too.
        assert!(matches!(
            kv.apply(TRIM_EVERY + 3, &cmd(3, 1, append("k", "c"))),
            Some(ClientResponse::Invalid { .. })
        ));
        assert_eq!(kv.get("k"), Some("a"));
    }

    #[test]
    fn an_active_session_is_not_trimmed() {
        let mut kv = KvStore::with_session_ttl(100);
        kv.apply(1, &register());
        for index in 2..=2 * TRIM_EVERY {
            kv.apply(index, &cmd(1, index, append("k", "")));
        }
        assert_eq!(kv.session_count(), 1);
        assert_eq!(
            kv.apply(
                2 * TRIM_EVERY + 1,
                &cmd(1, 2 * TRIM_EVERY + 1, append("k", "z"))
            ),
            Some(ClientResponse::Ok { value: None })
        );
        assert_eq!(kv.get("k"), Some("z"));
    }

    fn sample_log() -> Vec<Vec<u8>> {
        let mut log = vec![register(), register()];
        for i in 0..40u64 {
            let id = 1 + i % 2;
            log.push(cmd(
                id,
                i / 2 + 1,
                append(&format!("k{}", i % 7), &i.to_string()),
            ));
        }
        log
    }

    #[test]
    fn a_restored_snapshot_continues_exactly_like_the_store_it_was_taken_from() {
        let log = sample_log();
        let mut a = KvStore::new();
        for (i, c) in log[..25].iter().enumerate() {
            a.apply(i as u64 + 1, c);
        }
        let bytes = a.snapshot();
        let mut b = KvStore::new();
        b.restore(&bytes).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.last_applied(), 25);
        // Same bytes from an identical replica: the encoding is canonical.
        assert_eq!(b.snapshot(), bytes);
        // A retry of a write inside the snapshot still applies once.
        let retry = log[24].clone();
        assert_eq!(
            b.apply(26, &retry),
            Some(ClientResponse::Ok { value: None })
        );
        a.apply(26, &retry);
        for (i, c) in log[25..].iter().enumerate() {
            let index = i as u64 + 27;
            assert_eq!(a.apply(index, c), b.apply(index, c));
        }
        assert_eq!(a, b);
    }

    #[test]
    fn a_corrupt_or_foreign_snapshot_is_refused_and_changes_nothing() {
        let mut a = KvStore::new();
        for (i, c) in sample_log().iter().enumerate() {
            a.apply(i as u64 + 1, c);
        }
        let good = a.snapshot();
        let before = a.clone();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let mut version = good.clone();
        version[4] = 9;
        let mut magic = good.clone();
        magic[0] = b'X';
        let cases: [(&[u8], &str); 5] = [
            (&flipped, "checksum mismatch"),
            (&version, "version 9 is not supported"),
            (&magic, "not a KV snapshot"),
            (&good[..5], "shorter than its 9-byte header"),
            (&good[..good.len() - 3], "checksum mismatch"),
        ];
        for (bytes, expected) in cases {
            let err = a.restore(bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert_eq!(a, before);
        }
    }
}
