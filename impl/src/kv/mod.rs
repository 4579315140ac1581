//! The replicated key-value store: the state machine applied on every
//! replica ([`KvStore`]), the table of requests waiting for their log entry
//! to apply ([`Waiters`]), and the service that ties them to a Raft node
//! ([`service::KvService`]).

pub mod service;
pub mod waiters;

pub use service::{KvConfig, KvService};
pub use waiters::Waiters;

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
/// rebuilt by re-applying the log from index 1.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KvStore {
    data: HashMap<String, String>,
    /// Client id -> highest write sequence number applied, and why it
    /// failed if it did. A write whose sequence number is not higher is a
    /// retry (or an abandoned older attempt) and is not applied again; a
    /// retry of the last write gets the same failure.
    sessions: HashMap<u64, (u64, Option<String>)>,
    last_applied: LogIndex,
}

impl KvStore {
    pub fn new() -> Self {
        Self::default()
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

    /// Applies the command committed at `index`. Returns `None` if `index`
    /// was already applied (a re-delivery), else the response for the client.
    pub fn apply(&mut self, index: LogIndex, command: &[u8]) -> Option<ClientResponse> {
        if index <= self.last_applied {
            return None;
        }
        self.last_applied = index;
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
        Some(self.apply_request(&request))
    }

    fn apply_request(&mut self, request: &ClientRequest) -> ClientResponse {
        if !request.op.is_write() {
            let Op::Get { key } = &request.op else {
                unreachable!("only Get is not a write")
            };
            return ClientResponse::Ok {
                value: self.data.get(key).cloned(),
            };
        }
        let session = self.sessions.entry(request.client_id).or_insert((0, None));
        if request.seq < session.0 {
            return ClientResponse::Ok { value: None };
        }
        if request.seq == session.0 {
            return match &session.1 {
                None => ClientResponse::Ok { value: None },
                Some(reason) => ClientResponse::Invalid {
                    reason: reason.clone(),
                },
            };
        }
        // The size limit holds for the value a write leaves, checked here,
        // where every replica decides alike: a write over it changes nothing.
        let (key, size) = match &request.op {
            Op::Put { key, value } => (key, key.len() + value.len()),
            Op::Append { key, value } => (
                key,
                key.len() + self.data.get(key).map_or(0, String::len) + value.len(),
            ),
            Op::Get { .. } => unreachable!("handled above"),
        };
        let failure =
            (size > MAX_KV_BYTES).then(|| {
                format!(
                "{} to {key:?} would make key and value {size} bytes; the limit is {MAX_KV_BYTES}",
                if matches!(request.op, Op::Put { .. }) { "put" } else { "append" }
            )
            });
        *session = (request.seq, failure.clone());
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
            Op::Get { .. } => unreachable!("handled above"),
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
    fn retried_write_applies_once() {
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
            cmd(1, 1, append("k", &half)),
            // key + 2 halves > the limit: refused at apply time.
            cmd(1, 2, append("k", &half)),
            // A retry of it (same seq) gets the same answer.
            cmd(1, 2, append("k", &half)),
            cmd(
                2,
                1,
                Op::Put {
                    key: "p".into(),
                    value: "y".repeat(MAX_KV_BYTES),
                },
            ),
            cmd(1, 3, append("k", "tail")),
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
        assert!(kv.apply(1, &cmd(1, 1, append("k", "x"))).is_some());
        assert_eq!(kv.apply(1, &cmd(2, 1, append("k", "y"))), None);
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
                    i % 3,
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
}
