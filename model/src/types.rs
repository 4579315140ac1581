//! The protocol's vocabulary as the model names it (docs/protocol.md §2,
//! docs/trace-format.md). These types are both the model's internal state
//! and its serialised trace form, so a trace needs no conversion layer.
//!
//! Terms, indexes and values are `u32`: wide enough for traces recorded from
//! real clusters (`raft-conform validate --trace`), where thousands of
//! client commands and log entries occur. Measured against `u8` on the
//! checker's hot path in docs/measurements.md ("Widths of the model's integers").

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub type ServerId = u8;
pub type Term = u32;
/// A log index: 1-based, 0 is the empty sentinel.
pub type Index = u32;
/// A client value; the n-th client request carries value n.
pub type Value = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Message {
    pub from: ServerId,
    pub to: ServerId,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Body {
    RequestVote(RequestVote),
    RequestVoteResponse(RequestVoteResponse),
    AppendEntries(AppendEntries),
    AppendEntriesResponse(AppendEntriesResponse),
    InstallSnapshot(InstallSnapshot),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestVote {
    pub term: Term,
    pub last_log_index: Index,
    pub last_log_term: Term,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    pub term: Term,
    pub granted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppendEntries {
    pub term: Term,
    pub prev_log_index: Index,
    pub prev_log_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: Index,
}

/// success: `index` = prev_log_index + len(entries), `conflict_index` = 0;
/// consistency rejection: `index` = the request's prev_log_index,
/// `conflict_index` >= 1; stale-term rejection: both 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    pub term: Term,
    pub success: bool,
    pub index: Index,
    pub conflict_index: Index,
}

/// R-snap-3: a leader's snapshot, sent instead of AppendEntries when the
/// entries a follower needs are compacted away. `values` are the values of
/// entries `1..=last_included_index` in order (the model's state machine).
/// Answered by an AppendEntriesResponse (R-snap-4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub term: Term,
    pub last_included_index: Index,
    pub last_included_term: Term,
    pub values: Values,
}

/// The values of the entries a snapshot covers, index 1 first: a server's
/// snapshot (R-snap-1) and the InstallSnapshot that carries it (R-snap-3).
/// Immutable. Up to [`Values::INLINE`] values are kept inline (the
/// checker's usual bounds, `--max-requests` up to 4, stay within that, so
/// its states hold no reference counts); longer ones are shared, so a state or message holding a
/// snapshot of thousands of values (a recorded trace) is cloned in constant
/// time, and compared in constant time against a clone of itself. Equality,
/// order and hash are those of the values, as for a `Vec<Value>`.
#[derive(Clone)]
pub struct Values(ValuesRepr);

#[derive(Clone)]
enum ValuesRepr {
    Inline {
        len: u8,
        values: [Value; Values::INLINE],
    },
    Shared(Arc<[Value]>),
}

impl Default for Values {
    fn default() -> Values {
        Values::new()
    }
}

impl Values {
    /// The longest sequence kept inline.
    pub const INLINE: usize = 4;

    pub fn new() -> Values {
        Values(ValuesRepr::Inline {
            len: 0,
            values: [0; Values::INLINE],
        })
    }

    pub fn as_slice(&self) -> &[Value] {
        match &self.0 {
            ValuesRepr::Inline { len, values } => &values[..usize::from(*len)],
            ValuesRepr::Shared(values) => values,
        }
    }

    /// These values followed by `more`.
    pub fn extended(&self, more: impl IntoIterator<Item = Value>) -> Values {
        self.iter().copied().chain(more).collect()
    }

    /// Whether `other` is a clone of these values (the same shared
    /// allocation, so equal without a look at the values); false for
    /// inline values.
    pub fn shares(&self, other: &Values) -> bool {
        match (&self.0, &other.0) {
            (ValuesRepr::Shared(a), ValuesRepr::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl std::ops::Deref for Values {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Values {
    type Item = &'a Value;
    type IntoIter = std::slice::Iter<'a, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl FromIterator<Value> for Values {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Values {
        Values::from(
            iter.into_iter()
                .collect::<smallvec::SmallVec<[Value; Values::INLINE]>>()
                .as_slice(),
        )
    }
}

impl From<Vec<Value>> for Values {
    fn from(v: Vec<Value>) -> Values {
        if v.len() <= Values::INLINE {
            Values::from(&v[..])
        } else {
            Values(ValuesRepr::Shared(Arc::from(v)))
        }
    }
}

impl From<&[Value]> for Values {
    fn from(v: &[Value]) -> Values {
        if v.len() <= Values::INLINE {
            let mut values = [0; Values::INLINE];
            values[..v.len()].copy_from_slice(v);
            Values(ValuesRepr::Inline {
                len: v.len() as u8,
                values,
            })
        } else {
            Values(ValuesRepr::Shared(Arc::from(v)))
        }
    }
}

impl<const N: usize> From<[Value; N]> for Values {
    fn from(v: [Value; N]) -> Values {
        Values::from(&v[..])
    }
}

impl PartialEq for Values {
    fn eq(&self, other: &Values) -> bool {
        self.shares(other) || self.as_slice() == other.as_slice()
    }
}

impl Eq for Values {}

impl PartialOrd for Values {
    fn partial_cmp(&self, other: &Values) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Values {
    fn cmp(&self, other: &Values) -> Ordering {
        if self.shares(other) {
            return Ordering::Equal;
        }
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Values {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h)
    }
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl Serialize for Values {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
        Vec::<Value>::deserialize(d).map(Values::from)
    }
}

impl Body {
    pub fn term(&self) -> Term {
        match self {
            Body::RequestVote(RequestVote { term, .. })
            | Body::RequestVoteResponse(RequestVoteResponse { term, .. })
            | Body::AppendEntries(AppendEntries { term, .. })
            | Body::AppendEntriesResponse(AppendEntriesResponse { term, .. })
            | Body::InstallSnapshot(InstallSnapshot { term, .. }) => *term,
        }
    }
}

/// One event of docs/protocol.md §4: the model's actions and the conformance
/// harness's steps. `Persist` is docs/protocol.md §4 Persist / §7: one
/// fsync of every pending write, then the outbox enters the network.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Action {
    Timeout {
        server: ServerId,
    },
    Heartbeat {
        server: ServerId,
    },
    ClientRequest {
        server: ServerId,
        value: Value,
    },
    Deliver {
        message: Message,
    },
    Drop {
        message: Message,
    },
    Duplicate {
        message: Message,
    },
    Persist {
        server: ServerId,
    },
    Restart {
        server: ServerId,
    },
    /// R-snap-2: the state machine has applied through `index` (above the
    /// snapshot index, at most the commit index) and the log is compacted
    /// through it.
    Snapshot {
        server: ServerId,
        index: Index,
    },
    Partition {
        group: Vec<ServerId>,
    },
    Heal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash(v: &(impl Hash + ?Sized)) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    /// `Values` behaves as the `Vec<Value>` it holds: equality, order and
    /// hash, inline and shared alike, also between two separately built
    /// shared copies (no pointer fast path to hide behind).
    #[test]
    fn values_compare_hash_and_serialize_as_their_vec() {
        let seqs: Vec<Vec<Value>> = vec![
            vec![],
            vec![1],
            vec![1, 2],
            vec![1, 2, 3, 4],
            vec![1, 2, 3, 4, 5],
            vec![1, 2, 3, 4, 6],
            vec![2],
            (1..=1000).collect(),
        ];
        for a in &seqs {
            let va = Values::from(a.clone());
            assert_eq!(va.as_slice(), &a[..]);
            assert_eq!(va, Values::from(&a[..]));
            assert_eq!(va, a.iter().copied().collect::<Values>());
            assert_eq!(hash(&va), hash(&Values::from(a.clone())));
            assert_eq!(hash(&va), hash(&a[..]));
            let json = serde_json::to_string(&va).unwrap();
            assert_eq!(json, serde_json::to_string(a).unwrap());
            assert_eq!(serde_json::from_str::<Values>(&json).unwrap(), va);
            for b in &seqs {
                let vb = Values::from(b.clone());
                assert_eq!(va == vb, a == b, "{a:?} == {b:?}");
                assert_eq!(va.cmp(&vb), a.cmp(b), "{a:?} cmp {b:?}");
            }
        }
        let long = Values::from((1..=10).collect::<Vec<Value>>());
        assert_eq!(
            long.extended([11, 12]).as_slice(),
            &(1..=12).collect::<Vec<_>>()[..]
        );
        assert_eq!(Values::new().extended([7]).as_slice(), &[7]);
    }
}
