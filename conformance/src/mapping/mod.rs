// Over 600 lines with its unit tests (about 250); the recorded-steps mapping is in mapping/recorded.rs.
//! The explicit bridge between the model's vocabulary (`raft_model::types`)
//! and the implementation's (`raftkv`). The two crates describe one protocol
//! independently; this module is the only place that knows
//! both, so every translation rule lives here:
//!
//! - server ids: model `i` (0..n) ↔ node id `i + 1` (1..=n);
//! - values: model value `v` ↔ command bytes of its decimal form (`7` ↔ `b"7"`);
//! - messages, bodies and entries field by field;
//! - snapshots: model `(index, term, values)` ↔ `Snapshot` whose data is
//!   the values in decimal, comma-separated (mapping/snapshot.rs);
//! - a node's `Status` (+ the messages in flight + the partition) ↔ the
//!   model's `AbstractState`: next/match index lists of `(peer, value)` ↔
//!   arrays of length n with the leader's own slot 0;
//! - model actions → the one call on a node, a core or the network that
//!   executes each ([`NodeCall`]), and the cluster sizes both sides support;
//! - recorded steps (docs/trace-format.md) ↔ model actions and views.
//!
//! The model uses small integers (u8); the implementation u64. Narrowing is
//! checked: a value that does not fit is a [`MappingError`], never a wrap.

use raft_model::trace::{AbstractServer, AbstractState};
use raft_model::types as m;
use raftkv::message as k;
use raftkv::types as kt;

mod recorded;
mod snapshot;
pub use recorded::*;
pub use snapshot::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("node id {0} is outside 1..={1}")]
    NodeId(u64, usize),
    #[error("{what} = {value} does not fit the model's range (0..=255)")]
    Narrow { what: &'static str, value: u64 },
    #[error("command bytes {0:?} are not the decimal form of a model value (1..=255)")]
    Command(Vec<u8>),
    #[error("status list has {found} entries, expected one per server ({expected})")]
    StatusCount { found: usize, expected: usize },
    #[error("status at position {pos} is for node {id}, expected node {expected}")]
    StatusOrder { pos: usize, id: u64, expected: u64 },
    #[error("{field} of node {node} names peer {peer}, not a peer of a {servers}-server cluster")]
    Peer {
        field: &'static str,
        node: u64,
        peer: u64,
        servers: usize,
    },
    #[error("snapshot data {0:?} is not the comma-separated decimal values of a model snapshot")]
    SnapshotData(Vec<u8>),
}

/// Model server id → node id.
pub fn node_id(server: m::ServerId) -> kt::NodeId {
    u64::from(server) + 1
}

/// Node id → position of the node in a cluster's list (the model server id
/// as an index; unchecked: the caller looks the position up).
pub fn node_position(node: kt::NodeId) -> usize {
    node.saturating_sub(1) as usize
}

/// Cluster sizes that both sides support: the model's server sets are `u8`
/// bit masks (raft_model::config::MAX_SERVERS).
pub fn supported_cluster_size(servers: usize) -> bool {
    (1..=usize::from(raft_model::config::MAX_SERVERS)).contains(&servers)
}

/// The configuration of the core of model server `i` in an `n`-server
/// cluster: its node id and its peers' ids.
pub fn core_config(
    n: u8,
    i: m::ServerId,
    max_batch: usize,
    bug: Option<raftkv::node::ImplBug>,
) -> raftkv::core::CoreConfig {
    raftkv::core::CoreConfig {
        id: node_id(i),
        peers: peer_ids(n, i),
        max_batch,
        bug,
    }
}

/// The node ids of the peers of model server `i` in an `n`-server cluster.
pub fn peer_ids(n: u8, i: m::ServerId) -> Vec<kt::NodeId> {
    (0..n).filter(|&j| j != i).map(node_id).collect()
}

/// What executes a model action on the implementation: one call on a node
/// (or its core), or one change of the harness's network. `Timeout` and
/// `Heartbeat` fire the node's timers, `ClientRequest(i, v)` proposes the
/// command of `v`, `Restart` reopens the node from its data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCall {
    ElectionTimeout {
        node: kt::NodeId,
    },
    Heartbeat {
        node: kt::NodeId,
    },
    Propose {
        node: kt::NodeId,
        command: Vec<u8>,
    },
    Deliver {
        message: k::Message,
    },
    Drop {
        message: k::Message,
    },
    Duplicate {
        message: k::Message,
    },
    Persist {
        node: kt::NodeId,
    },
    Restart {
        node: kt::NodeId,
    },
    Partition {
        group: Vec<kt::NodeId>,
    },
    Heal,
    /// Snapshot(i, index), R-snap-2: the node's state machine snapshots
    /// itself at `index` (the harness's state machine is the list of
    /// applied values: [`applied_values`], [`snapshot_data`]).
    Snapshot {
        node: kt::NodeId,
        index: kt::LogIndex,
    },
}

/// Model action → the call that executes it.
pub fn node_call(action: &m::Action) -> NodeCall {
    match action {
        m::Action::Snapshot { server, index } => NodeCall::Snapshot {
            node: node_id(*server),
            index: u64::from(*index),
        },
        m::Action::Timeout { server } => NodeCall::ElectionTimeout {
            node: node_id(*server),
        },
        m::Action::Heartbeat { server } => NodeCall::Heartbeat {
            node: node_id(*server),
        },
        m::Action::ClientRequest { server, value } => NodeCall::Propose {
            node: node_id(*server),
            command: command(*value),
        },
        m::Action::Deliver { message } => NodeCall::Deliver {
            message: message_to_impl(message),
        },
        m::Action::Drop { message } => NodeCall::Drop {
            message: message_to_impl(message),
        },
        m::Action::Duplicate { message } => NodeCall::Duplicate {
            message: message_to_impl(message),
        },
        m::Action::Persist { server } => NodeCall::Persist {
            node: node_id(*server),
        },
        m::Action::Restart { server } => NodeCall::Restart {
            node: node_id(*server),
        },
        m::Action::Partition { group } => NodeCall::Partition {
            group: group.iter().map(|&s| node_id(s)).collect(),
        },
        m::Action::Heal => NodeCall::Heal,
    }
}

/// Node id → model server id, checked against the cluster size.
pub fn server_id(node: kt::NodeId, servers: usize) -> Result<m::ServerId, MappingError> {
    if node == 0 || node > servers as u64 || node > 256 {
        return Err(MappingError::NodeId(node, servers));
    }
    Ok((node - 1) as m::ServerId)
}

pub(crate) fn narrow(what: &'static str, value: u64) -> Result<u32, MappingError> {
    u32::try_from(value).map_err(|_| MappingError::Narrow { what, value })
}

/// Model value → command bytes (its decimal form).
pub fn command(value: m::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// Command bytes → model value. Only the canonical decimal form of 1..=u32::MAX
/// is accepted, so the mapping is a bijection (no `b"07"`, no `b"+7"`).
pub fn value(command: &[u8]) -> Result<m::Value, MappingError> {
    let bad = || MappingError::Command(command.to_vec());
    let text = std::str::from_utf8(command).map_err(|_| bad())?;
    let v: m::Value = text.parse().map_err(|_| bad())?;
    if v == 0 || v.to_string() != text {
        return Err(bad());
    }
    Ok(v)
}

pub fn entry_to_impl(e: &m::Entry) -> kt::Entry {
    kt::Entry {
        term: u64::from(e.term),
        command: command(e.value),
    }
}

pub fn entry_to_model(e: &kt::Entry) -> Result<m::Entry, MappingError> {
    Ok(m::Entry {
        term: narrow("entry term", e.term)?,
        value: value(&e.command)?,
    })
}

pub fn role_to_model(r: kt::Role) -> m::Role {
    match r {
        kt::Role::Follower => m::Role::Follower,
        kt::Role::Candidate => m::Role::Candidate,
        kt::Role::Leader => m::Role::Leader,
    }
}

pub fn body_to_impl(b: &m::Body) -> k::Body {
    match b {
        m::Body::RequestVote(m::RequestVote {
            term,
            last_log_index,
            last_log_term,
        }) => k::Body::RequestVote(k::RequestVote {
            term: u64::from(*term),
            last_log_index: u64::from(*last_log_index),
            last_log_term: u64::from(*last_log_term),
        }),
        m::Body::RequestVoteResponse(m::RequestVoteResponse { term, granted }) => {
            k::Body::RequestVoteResponse(k::RequestVoteResponse {
                term: u64::from(*term),
                granted: *granted,
            })
        }
        m::Body::AppendEntries(m::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }) => k::Body::AppendEntries(k::AppendEntries {
            term: u64::from(*term),
            prev_log_index: u64::from(*prev_log_index),
            prev_log_term: u64::from(*prev_log_term),
            entries: entries.iter().map(entry_to_impl).collect(),
            leader_commit: u64::from(*leader_commit),
        }),
        m::Body::AppendEntriesResponse(m::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        }) => k::Body::AppendEntriesResponse(k::AppendEntriesResponse {
            term: u64::from(*term),
            success: *success,
            index: u64::from(*index),
            conflict_index: u64::from(*conflict_index),
        }),
        m::Body::InstallSnapshot(is) => k::Body::InstallSnapshot(install_snapshot_to_impl(is)),
    }
}

pub fn body_to_model(b: &k::Body) -> Result<m::Body, MappingError> {
    Ok(match b {
        k::Body::RequestVote(k::RequestVote {
            term,
            last_log_index,
            last_log_term,
        }) => m::Body::RequestVote(m::RequestVote {
            term: narrow("term", *term)?,
            last_log_index: narrow("last_log_index", *last_log_index)?,
            last_log_term: narrow("last_log_term", *last_log_term)?,
        }),
        k::Body::RequestVoteResponse(k::RequestVoteResponse { term, granted }) => {
            m::Body::RequestVoteResponse(m::RequestVoteResponse {
                term: narrow("term", *term)?,
                granted: *granted,
            })
        }
        k::Body::AppendEntries(k::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }) => m::Body::AppendEntries(m::AppendEntries {
            term: narrow("term", *term)?,
            prev_log_index: narrow("prev_log_index", *prev_log_index)?,
            prev_log_term: narrow("prev_log_term", *prev_log_term)?,
            entries: entries
                .iter()
                .map(entry_to_model)
                .collect::<Result<_, _>>()?,
            leader_commit: narrow("leader_commit", *leader_commit)?,
        }),
        k::Body::AppendEntriesResponse(k::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        }) => m::Body::AppendEntriesResponse(m::AppendEntriesResponse {
            term: narrow("term", *term)?,
            success: *success,
            index: narrow("index", *index)?,
            conflict_index: narrow("conflict_index", *conflict_index)?,
        }),
        k::Body::InstallSnapshot(is) => m::Body::InstallSnapshot(install_snapshot_to_model(is)?),
    })
}

pub fn message_to_impl(msg: &m::Message) -> k::Message {
    k::Message {
        from: node_id(msg.from),
        to: node_id(msg.to),
        body: body_to_impl(&msg.body),
    }
}

pub fn message_to_model(msg: &k::Message, servers: usize) -> Result<m::Message, MappingError> {
    Ok(m::Message {
        from: server_id(msg.from, servers)?,
        to: server_id(msg.to, servers)?,
        body: body_to_model(&msg.body)?,
    })
}

/// An outbox in the order that matters (docs/trace-format.md): a release
/// puts each message on its own link, so only the order per destination is
/// compared; the model lists an outbox sorted stably by `to`.
pub fn normalize_outbox(outbox: &mut [m::Message]) {
    outbox.sort_by_key(|msg| msg.to);
}

/// A partition group of node ids → model ids.
pub fn group_to_model(
    group: &[kt::NodeId],
    servers: usize,
) -> Result<Vec<m::ServerId>, MappingError> {
    group.iter().map(|&id| server_id(id, servers)).collect()
}

/// `(peer, index)` list of a leader → array of length n with own slot 0.
fn index_array(
    field: &'static str,
    node: kt::NodeId,
    list: &[(kt::NodeId, kt::LogIndex)],
    servers: usize,
) -> Result<Vec<m::Index>, MappingError> {
    let mut out = vec![0; servers];
    for &(peer, idx) in list {
        if peer == node || peer == 0 || peer > servers as u64 {
            return Err(MappingError::Peer {
                field,
                node,
                peer,
                servers,
            });
        }
        out[(peer - 1) as usize] = narrow(field, idx)?;
    }
    Ok(out)
}

/// One node's `Status` → the model's `AbstractServer` (docs/protocol.md §1).
/// Leader-only and candidate-only fields are normalised exactly as the
/// model states them: the index arrays are empty unless leader and
/// `votes_granted` is sorted and empty unless candidate, whatever the node
/// reports, so that a node leaking stale volatile state is compared on the
/// fields the protocol defines. (A node that *reports* such state is still
/// caught if it acts on it, because its messages and later states differ.)
pub fn status_to_model(s: &kt::Status, servers: usize) -> Result<AbstractServer, MappingError> {
    let (snapshot_index, snapshot_term, snapshot_values) = snapshot_to_model(s.snapshot.as_ref())?;
    let (durable_snapshot_index, durable_snapshot_term, durable_snapshot_values) =
        snapshot_to_model(s.durable_snapshot.as_ref())?;
    let role = role_to_model(s.role);
    let voted_for = match s.voted_for {
        Some(v) => Some(server_id(v, servers)?),
        None => None,
    };
    let log = s
        .log
        .iter()
        .map(entry_to_model)
        .collect::<Result<Vec<_>, _>>()?;
    let mut votes_granted = Vec::new();
    if role == m::Role::Candidate {
        for &v in &s.votes_granted {
            votes_granted.push(server_id(v, servers)?);
        }
        votes_granted.sort_unstable();
        votes_granted.dedup();
    }
    let (next_index, match_index) = if role == m::Role::Leader {
        (
            index_array("next_index", s.id, &s.next_index, servers)?,
            index_array("match_index", s.id, &s.match_index, servers)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let durable_voted_for = match s.durable_voted_for {
        Some(v) => Some(server_id(v, servers)?),
        None => None,
    };
    let durable_log = s
        .durable_log
        .iter()
        .map(entry_to_model)
        .collect::<Result<Vec<_>, _>>()?;
    let mut outbox = s
        .outbox
        .iter()
        .map(|msg| message_to_model(msg, servers))
        .collect::<Result<Vec<_>, _>>()?;
    normalize_outbox(&mut outbox);
    Ok(AbstractServer {
        term: narrow("term", s.term)?,
        voted_for,
        role,
        durable_term: narrow("durable_term", s.durable_term)?,
        durable_voted_for,
        durable_log,
        outbox,
        log,
        snapshot_index,
        snapshot_term,
        snapshot_values,
        durable_snapshot_index,
        durable_snapshot_term,
        durable_snapshot_values,
        commit_index: narrow("commit_index", s.commit_index)?,
        votes_granted,
        next_index,
        match_index,
    })
}

/// The implementation's whole-system state → the model's `AbstractState`.
/// `statuses` must be ordered by node id 1..=n; `in_flight` is the harness
/// network's multiset (any order: the result is sorted); `partition` is the
/// active group in model ids.
pub fn abstract_state(
    statuses: &[kt::Status],
    in_flight: &[k::Message],
    partition: Option<&[m::ServerId]>,
) -> Result<AbstractState, MappingError> {
    let servers = statuses.len();
    let mut out = Vec::with_capacity(servers);
    for (pos, s) in statuses.iter().enumerate() {
        let expected = pos as u64 + 1;
        if s.id != expected {
            return Err(MappingError::StatusOrder {
                pos,
                id: s.id,
                expected,
            });
        }
        out.push(status_to_model(s, servers)?);
    }
    let mut network = in_flight
        .iter()
        .map(|msg| message_to_model(msg, servers))
        .collect::<Result<Vec<_>, _>>()?;
    network.sort();
    let partition = partition.map(|g| {
        let mut g = g.to_vec();
        g.sort_unstable();
        g
    });
    Ok(AbstractState {
        servers: out,
        network,
        partition,
    })
}

/// The model's `AbstractServer` → the `Status` a node in that state reports
/// (used by tests and to check that the mapping is a bijection).
pub fn server_to_status(id: m::ServerId, s: &AbstractServer) -> kt::Status {
    let node = node_id(id);
    let pairs = |v: &[m::Index]| -> Vec<(kt::NodeId, kt::LogIndex)> {
        v.iter()
            .enumerate()
            .filter(|&(j, _)| j as u64 + 1 != node)
            .map(|(j, &x)| (j as u64 + 1, u64::from(x)))
            .collect()
    };
    kt::Status {
        id: node,
        term: u64::from(s.term),
        voted_for: s.voted_for.map(node_id),
        role: match s.role {
            m::Role::Follower => kt::Role::Follower,
            m::Role::Candidate => kt::Role::Candidate,
            m::Role::Leader => kt::Role::Leader,
        },
        snapshot: snapshot_to_impl(s.snapshot_index, s.snapshot_term, &s.snapshot_values),
        log: s.log.iter().map(entry_to_impl).collect(),
        commit_index: u64::from(s.commit_index),
        votes_granted: s.votes_granted.iter().map(|&v| node_id(v)).collect(),
        next_index: pairs(&s.next_index),
        match_index: pairs(&s.match_index),
        leader_hint: None,
        durable_term: u64::from(s.durable_term),
        durable_voted_for: s.durable_voted_for.map(node_id),
        durable_snapshot: snapshot_to_impl(
            s.durable_snapshot_index,
            s.durable_snapshot_term,
            &s.durable_snapshot_values,
        ),
        durable_log: s.durable_log.iter().map(entry_to_impl).collect(),
        outbox: s.outbox.iter().map(message_to_impl).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_server(role: m::Role) -> AbstractServer {
        AbstractServer {
            term: 3,
            snapshot_index: 0,
            snapshot_term: 0,
            snapshot_values: vec![],
            durable_snapshot_index: 0,
            durable_snapshot_term: 0,
            durable_snapshot_values: vec![],
            voted_for: Some(1),
            role,
            log: vec![
                m::Entry { term: 1, value: 1 },
                m::Entry { term: 3, value: 12 },
            ],
            commit_index: 1,
            votes_granted: if role == m::Role::Candidate {
                vec![0, 1]
            } else {
                vec![]
            },
            next_index: if role == m::Role::Leader {
                vec![3, 0, 2]
            } else {
                vec![]
            },
            match_index: if role == m::Role::Leader {
                vec![2, 0, 1]
            } else {
                vec![]
            },
            durable_term: 3,
            durable_voted_for: Some(1),
            durable_log: vec![
                m::Entry { term: 1, value: 1 },
                m::Entry { term: 3, value: 12 },
            ],
            outbox: vec![],
        }
    }

    #[test]
    fn ids_are_shifted_by_one_and_checked() {
        assert_eq!(node_id(0), 1);
        assert_eq!(node_id(2), 3);
        assert_eq!(server_id(1, 3), Ok(0));
        assert_eq!(server_id(3, 3), Ok(2));
        assert_eq!(server_id(0, 3), Err(MappingError::NodeId(0, 3)));
        assert_eq!(server_id(4, 3), Err(MappingError::NodeId(4, 3)));
    }

    #[test]
    fn a_retried_command_proposed_again_is_a_value_of_its_own() {
        let mut t = CommandTable::default();
        let a = t.propose(1, 1, b"put x 1").unwrap();
        let b = t.propose(2, 2, b"put x 1").unwrap();
        assert_ne!(a, b);
        // Entries are found by where they were proposed.
        assert_eq!(t.entry(1, 1, b"put x 1"), Ok(a));
        assert_eq!(t.entry(2, 2, b"put x 1"), Ok(b));
        // Other bytes at a proposal's place are not that proposal.
        let c = t.entry(2, 2, b"put x 2").unwrap();
        assert!(c != a && c != b);
        assert_eq!(t.bytes(b), b"put x 1".to_vec());
        assert_eq!(t.bytes(c), b"put x 2".to_vec());
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn values_are_canonical_decimal() {
        assert_eq!(command(7), b"7".to_vec());
        assert_eq!(command(255), b"255".to_vec());
        for v in (1..=300u32).chain([65_536, u32::MAX]) {
            assert_eq!(value(&command(v)), Ok(v));
        }
        for bad in [
            &b"0"[..],
            b"07",
            b"+7",
            b"4294967296",
            b"",
            b"x",
            b" 7",
            &[0xff],
        ] {
            assert!(value(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn messages_round_trip() {
        let bodies = vec![
            m::Body::RequestVote(m::RequestVote {
                term: 2,
                last_log_index: 3,
                last_log_term: 1,
            }),
            m::Body::RequestVoteResponse(m::RequestVoteResponse {
                term: 2,
                granted: true,
            }),
            m::Body::AppendEntries(m::AppendEntries {
                term: 4,
                prev_log_index: 1,
                prev_log_term: 1,
                entries: vec![m::Entry { term: 4, value: 9 }],
                leader_commit: 1,
            }),
            m::Body::AppendEntriesResponse(m::AppendEntriesResponse {
                term: 4,
                success: false,
                index: 1,
                conflict_index: 1,
            }),
        ];
        for body in bodies {
            let msg = m::Message {
                from: 2,
                to: 0,
                body,
            };
            let imp = message_to_impl(&msg);
            assert_eq!(imp.from, 3);
            assert_eq!(imp.to, 1);
            assert_eq!(message_to_model(&imp, 3), Ok(msg));
        }
    }

    #[test]
    fn impl_values_outside_model_range_are_errors() {
        let msg = k::Message {
            from: 1,
            to: 2,
            body: k::Body::RequestVoteResponse(k::RequestVoteResponse {
                term: u64::from(u32::MAX) + 1,
                granted: false,
            }),
        };
        assert_eq!(
            message_to_model(&msg, 3),
            Err(MappingError::Narrow {
                what: "term",
                value: u64::from(u32::MAX) + 1
            })
        );
        let msg = k::Message {
            from: 1,
            to: 9,
            body: k::Body::RequestVoteResponse(k::RequestVoteResponse {
                term: 1,
                granted: false,
            }),
        };
        assert_eq!(message_to_model(&msg, 3), Err(MappingError::NodeId(9, 3)));
    }

    #[test]
    fn status_round_trips_for_every_role() {
        for (id, role) in [
            (0u8, m::Role::Leader),
            (1, m::Role::Candidate),
            (2, m::Role::Follower),
        ] {
            let mut s = sample_server(role);
            if role == m::Role::Leader {
                s.next_index[id as usize] = 0;
                s.match_index[id as usize] = 0;
            }
            let status = server_to_status(id, &s);
            assert_eq!(status.id, u64::from(id) + 1);
            if role == m::Role::Leader {
                // Own slot is not in the pair list.
                assert_eq!(status.next_index, vec![(2, 0), (3, 2)]);
                assert_eq!(status.match_index, vec![(2, 0), (3, 1)]);
            }
            assert_eq!(status_to_model(&status, 3), Ok(s));
        }
    }

    #[test]
    fn leader_arrays_have_own_slot_zero() {
        let status = kt::Status {
            id: 2,
            term: 1,
            voted_for: Some(2),
            role: kt::Role::Leader,
            snapshot: None,
            log: vec![],
            commit_index: 0,
            votes_granted: vec![],
            next_index: vec![(1, 1), (3, 1)],
            match_index: vec![(1, 0), (3, 0)],
            leader_hint: Some(2),
            durable_term: 1,
            durable_voted_for: Some(2),
            durable_snapshot: None,
            durable_log: vec![],
            outbox: vec![],
        };
        let s = status_to_model(&status, 3).unwrap();
        assert_eq!(s.next_index, vec![1, 0, 1]);
        assert_eq!(s.match_index, vec![0, 0, 0]);
        assert_eq!(s.voted_for, Some(1));
        let mut bad = status.clone();
        bad.next_index.push((2, 5));
        assert!(matches!(
            status_to_model(&bad, 3),
            Err(MappingError::Peer { peer: 2, .. })
        ));
    }

    #[test]
    fn abstract_state_sorts_network_and_checks_order() {
        let statuses: Vec<_> = (0..3u8)
            .map(|i| server_to_status(i, &sample_server(m::Role::Follower)))
            .collect();
        let a = k::Message {
            from: 3,
            to: 1,
            body: k::Body::RequestVote(k::RequestVote {
                term: 1,
                last_log_index: 0,
                last_log_term: 0,
            }),
        };
        let b = k::Message {
            from: 1,
            to: 2,
            body: k::Body::RequestVote(k::RequestVote {
                term: 1,
                last_log_index: 0,
                last_log_term: 0,
            }),
        };
        let st =
            abstract_state(&statuses, &[a.clone(), b.clone(), a.clone()], Some(&[2, 0])).unwrap();
        assert_eq!(st.network.len(), 3);
        assert!(st.network.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(st.network[0].from, 0);
        assert_eq!(st.partition, Some(vec![0, 2]));
        let mut swapped = statuses.clone();
        swapped.swap(0, 1);
        assert!(matches!(
            abstract_state(&swapped, &[], None),
            Err(MappingError::StatusOrder { pos: 0, .. })
        ));
    }
}
