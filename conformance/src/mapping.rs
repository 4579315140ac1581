//! The explicit bridge between the model's vocabulary (`raft_model::types`)
//! and the implementation's (`raftkv`). The two crates describe one protocol
//! independently; this module is the only place that knows
//! both, so every translation rule lives here:
//!
//! - server ids: model `i` (0..n) ↔ node id `i + 1` (1..=n);
//! - values: model value `v` ↔ command bytes of its decimal form (`7` ↔ `b"7"`);
//! - messages, bodies and entries field by field;
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
    ElectionTimeout { node: kt::NodeId },
    Heartbeat { node: kt::NodeId },
    Propose { node: kt::NodeId, command: Vec<u8> },
    Deliver { message: k::Message },
    Drop { message: k::Message },
    Duplicate { message: k::Message },
    Persist { node: kt::NodeId },
    Restart { node: kt::NodeId },
    Partition { group: Vec<kt::NodeId> },
    Heal,
}

/// Model action → the call that executes it.
pub fn node_call(action: &m::Action) -> NodeCall {
    match action {
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

fn narrow(what: &'static str, value: u64) -> Result<u32, MappingError> {
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
        m::Body::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => k::Body::RequestVote {
            term: u64::from(*term),
            last_log_index: u64::from(*last_log_index),
            last_log_term: u64::from(*last_log_term),
        },
        m::Body::RequestVoteResponse { term, granted } => k::Body::RequestVoteResponse {
            term: u64::from(*term),
            granted: *granted,
        },
        m::Body::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => k::Body::AppendEntries {
            term: u64::from(*term),
            prev_log_index: u64::from(*prev_log_index),
            prev_log_term: u64::from(*prev_log_term),
            entries: entries.iter().map(entry_to_impl).collect(),
            leader_commit: u64::from(*leader_commit),
        },
        m::Body::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } => k::Body::AppendEntriesResponse {
            term: u64::from(*term),
            success: *success,
            index: u64::from(*index),
            conflict_index: u64::from(*conflict_index),
        },
    }
}

pub fn body_to_model(b: &k::Body) -> Result<m::Body, MappingError> {
    Ok(match b {
        k::Body::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => m::Body::RequestVote {
            term: narrow("term", *term)?,
            last_log_index: narrow("last_log_index", *last_log_index)?,
            last_log_term: narrow("last_log_term", *last_log_term)?,
        },
        k::Body::RequestVoteResponse { term, granted } => m::Body::RequestVoteResponse {
            term: narrow("term", *term)?,
            granted: *granted,
        },
        k::Body::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => m::Body::AppendEntries {
            term: narrow("term", *term)?,
            prev_log_index: narrow("prev_log_index", *prev_log_index)?,
            prev_log_term: narrow("prev_log_term", *prev_log_term)?,
            entries: entries
                .iter()
                .map(entry_to_model)
                .collect::<Result<_, _>>()?,
            leader_commit: narrow("leader_commit", *leader_commit)?,
        },
        k::Body::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } => m::Body::AppendEntriesResponse {
            term: narrow("term", *term)?,
            success: *success,
            index: narrow("index", *index)?,
            conflict_index: narrow("conflict_index", *conflict_index)?,
        },
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
        log: s.log.iter().map(entry_to_impl).collect(),
        commit_index: u64::from(s.commit_index),
        votes_granted: s.votes_granted.iter().map(|&v| node_id(v)).collect(),
        next_index: pairs(&s.next_index),
        match_index: pairs(&s.match_index),
        leader_hint: None,
        durable_term: u64::from(s.durable_term),
        durable_voted_for: s.durable_voted_for.map(node_id),
        durable_log: s.durable_log.iter().map(entry_to_impl).collect(),
        outbox: s.outbox.iter().map(message_to_impl).collect(),
    }
}

// ----- recorded steps (docs/trace-format.md, "Recorded steps") ---------

/// What a recorded trace may need that the model cannot represent: these
/// are limitations of the model's types, reported as such (exit 2), never
/// wrapped. The model's terms, indexes and values are `u32` (value sets
/// grow): this is the one place that narrows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limitation {
    #[error("the trace has {found} distinct commands; the model represents at most {max} client values (u32 values)")]
    Values { found: usize, max: usize },
    #[error("command {hex} is proposed twice; the model's client values are unique (each ClientRequest carries a fresh value)")]
    RepeatedCommand { hex: String },
    #[error("the trace has {found} nodes; the model represents at most {max} servers (raft_model::config::MAX_SERVERS)")]
    Servers { found: u64, max: u8 },
    #[error("{what} = {value} does not fit the model's range (at most {max})")]
    Range {
        what: &'static str,
        value: u64,
        max: u64,
    },
}

/// The implementation's MAX_BATCH (docs/protocol.md, Heartbeat) as the
/// model's `Config::max_batch` when real nodes are validated: a leader over a
/// follower more than a batch behind sends one batch at a time.
pub const IMPL_MAX_BATCH: u32 = raftkv::node::DEFAULT_MAX_BATCH as u32;

/// The most client values the model can represent (`u32` values).
pub const MAX_MODEL_VALUES: usize = u32::MAX as usize;

/// Commands (bytes) ↔ model values. Model traces: a fresh value per distinct
/// command in order of first appearance (1, 2, 3, ...). Recorded traces: a
/// fresh value per proposal, keyed by where the leader put it (its term and
/// index: one leader per term appends one entry per index, and an entry is
/// only ever copied to the same index), so a command that a client retried
/// and a leader proposed again is a value of its own, as the model needs.
#[derive(Debug, Default, Clone)]
pub struct CommandTable {
    by_bytes: std::collections::HashMap<Vec<u8>, m::Value>,
    by_position: std::collections::HashMap<(m::Term, m::Index), m::Value>,
    bytes: Vec<Vec<u8>>,
    /// Chained hashes of recently summarised model logs.
    hashes: std::cell::RefCell<LogHashCache>,
}

/// The most logs [`LogHashCache`] keeps.
const HASH_CACHE_SLOTS: usize = 8;

/// Chained log hashes of the model logs summarised lately, with the hash of
/// every prefix: a log that shares a prefix with one of them is hashed from
/// the end of the shared prefix on. Exact: the shared prefix is compared
/// entry by entry, never assumed (the validator checks Log Matching, it
/// must not rely on it).
#[derive(Debug, Default, Clone)]
struct LogHashCache {
    /// `(log, prefix)` where `prefix[k]` is the hash of `log[..k]`.
    slots: Vec<(Vec<m::Entry>, Vec<u64>)>,
}

impl CommandTable {
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The value of a command seen before, or a fresh one.
    pub fn value(&mut self, command: &[u8]) -> Result<m::Value, Limitation> {
        if let Some(&v) = self.by_bytes.get(command) {
            return Ok(v);
        }
        self.fresh(command)
    }

    /// A fresh value for a command that must not have been seen before.
    pub fn fresh(&mut self, command: &[u8]) -> Result<m::Value, Limitation> {
        if self.by_bytes.contains_key(command) {
            return Err(Limitation::RepeatedCommand {
                hex: crate::steps::hex(command),
            });
        }
        let v = self.new_value(command)?;
        self.by_bytes.insert(command.to_vec(), v);
        Ok(v)
    }

    /// A fresh value for a command a leader of `term` appends at `index`.
    pub fn propose(
        &mut self,
        term: m::Term,
        index: m::Index,
        command: &[u8],
    ) -> Result<m::Value, Limitation> {
        let v = self.new_value(command)?;
        self.by_position.insert((term, index), v);
        self.by_bytes.entry(command.to_vec()).or_insert(v);
        Ok(v)
    }

    /// The value of the entry of `term` at `index` carrying `command`: the
    /// proposal made there when the bytes agree; otherwise (an entry no
    /// recorded proposal made, or different bytes at a proposal's place) a
    /// fresh value, so the model sees the difference instead of a mapping
    /// hiding it.
    pub fn entry(
        &mut self,
        term: m::Term,
        index: m::Index,
        command: &[u8],
    ) -> Result<m::Value, Limitation> {
        match self.by_position.get(&(term, index)) {
            Some(&v) if self.bytes[v as usize - 1] == command => Ok(v),
            Some(_) => self.new_value(command),
            None => self.value(command),
        }
    }

    fn new_value(&mut self, command: &[u8]) -> Result<m::Value, Limitation> {
        if self.bytes.len() >= MAX_MODEL_VALUES {
            return Err(Limitation::Values {
                found: self.bytes.len() + 1,
                max: MAX_MODEL_VALUES,
            });
        }
        self.bytes.push(command.to_vec());
        Ok(self.bytes.len() as m::Value)
    }

    /// The summary of a model log (length, last term, chained hash of the
    /// entries' terms and command bytes).
    pub fn log_summary(&self, log: &[m::Entry]) -> crate::steps::LogSummary {
        use crate::steps::LogHasher;
        let mut cache = self.hashes.borrow_mut();
        let common = |l: &[m::Entry]| l.iter().zip(log).take_while(|(a, b)| a == b).count();
        let best = cache
            .slots
            .iter()
            .enumerate()
            .map(|(k, (l, _))| (common(l), k))
            .max();
        let slot = match best {
            // Reuse a slot in place when the new log only extends it or the
            // cache is full; otherwise start a new slot from the shared prefix.
            Some((c, k))
                if c == cache.slots[k].0.len() || cache.slots.len() >= HASH_CACHE_SLOTS =>
            {
                let (l, p) = &mut cache.slots[k];
                l.truncate(c);
                p.truncate(c + 1);
                k
            }
            Some((c, k)) => {
                let (l, p) = &cache.slots[k];
                let slot = (l[..c].to_vec(), p[..=c].to_vec());
                cache.slots.push(slot);
                cache.slots.len() - 1
            }
            None => {
                cache
                    .slots
                    .push((Vec::new(), vec![LogHasher::default().value()]));
                0
            }
        };
        let (l, p) = &mut cache.slots[slot];
        for e in &log[l.len()..] {
            let mut h = LogHasher::from_value(*p.last().expect("the empty prefix is kept"));
            match (e.value as usize)
                .checked_sub(1)
                .and_then(|k| self.bytes.get(k))
            {
                Some(b) => h.entry(u64::from(e.term), b),
                None => h.entry(u64::from(e.term), &command(e.value)),
            }
            l.push(*e);
            p.push(h.value());
        }
        crate::steps::LogSummary {
            len: log.len() as u64,
            last_term: log.last().map_or(0, |e| u64::from(e.term)),
            hash: LogHasher::from_value(p[log.len()]).hex(),
        }
    }

    /// The command bytes of a model value (the decimal form for a value this
    /// table did not assign, as in model traces replayed on nodes).
    pub fn bytes(&self, v: m::Value) -> Vec<u8> {
        match (v as usize).checked_sub(1).and_then(|k| self.bytes.get(k)) {
            Some(b) => b.clone(),
            None => command(v),
        }
    }
}

fn narrow_rec(what: &'static str, value: u64) -> Result<u32, Limitation> {
    u32::try_from(value).map_err(|_| Limitation::Range {
        what,
        value,
        max: u64::from(u32::MAX),
    })
}

/// Why a record cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Limitation(#[from] Limitation),
    #[error("{0}")]
    Bad(String),
}

fn rec_node(node: u64, n: usize, what: &str) -> Result<m::ServerId, RecordError> {
    server_id(node, n)
        .map_err(|_| RecordError::Bad(format!("{what}: node {node} is outside 1..={n}")))
}

fn rec_command(hex: &str) -> Result<Vec<u8>, RecordError> {
    crate::steps::unhex(hex).ok_or_else(|| RecordError::Bad(format!("command {hex:?} is not hex")))
}

/// A ClientRequest's command, appended by a leader of `term` at `index` →
/// a fresh model value.
pub fn rec_client_value(
    hex: &str,
    term: m::Term,
    index: m::Index,
    table: &mut CommandTable,
) -> Result<m::Value, RecordError> {
    Ok(table.propose(term, index, &rec_command(hex)?)?)
}

/// A recorded message (sender `from`, node ids) → the model's message.
pub fn rec_message_to_model(
    from: u64,
    sent: &crate::steps::RecSent,
    n: usize,
    table: &mut CommandTable,
) -> Result<m::Message, RecordError> {
    use crate::steps::RecBody as R;
    let from_id = rec_node(from, n, "sender")?;
    let to = rec_node(sent.to, n, &format!("message {}", sent.id))?;
    let body = match &sent.body {
        R::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => m::Body::RequestVote {
            term: narrow_rec("term", *term)?,
            last_log_index: narrow_rec("last_log_index", *last_log_index)?,
            last_log_term: narrow_rec("last_log_term", *last_log_term)?,
        },
        R::RequestVoteResponse { term, granted } => m::Body::RequestVoteResponse {
            term: narrow_rec("term", *term)?,
            granted: *granted,
        },
        R::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => {
            let mut es = Vec::with_capacity(entries.len());
            let prev = narrow_rec("prev_log_index", *prev_log_index)?;
            for (k, e) in entries.iter().enumerate() {
                let term = narrow_rec("entry term", e.term)?;
                let index = narrow_rec("entry index", u64::from(prev) + k as u64 + 1)?;
                es.push(m::Entry {
                    term,
                    value: table.entry(term, index, &rec_command(&e.command)?)?,
                });
            }
            m::Body::AppendEntries {
                term: narrow_rec("term", *term)?,
                prev_log_index: narrow_rec("prev_log_index", *prev_log_index)?,
                prev_log_term: narrow_rec("prev_log_term", *prev_log_term)?,
                entries: es,
                leader_commit: narrow_rec("leader_commit", *leader_commit)?,
            }
        }
        R::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } => m::Body::AppendEntriesResponse {
            term: narrow_rec("term", *term)?,
            success: *success,
            index: narrow_rec("index", *index)?,
            conflict_index: narrow_rec("conflict_index", *conflict_index)?,
        },
    };
    Ok(m::Message {
        from: from_id,
        to,
        body,
    })
}

/// The model's message → the recorded body (commands through `table`).
pub fn model_body_to_rec(b: &m::Body, table: &CommandTable) -> crate::steps::RecBody {
    use crate::steps::RecBody as R;
    match b {
        m::Body::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => R::RequestVote {
            term: u64::from(*term),
            last_log_index: u64::from(*last_log_index),
            last_log_term: u64::from(*last_log_term),
        },
        m::Body::RequestVoteResponse { term, granted } => R::RequestVoteResponse {
            term: u64::from(*term),
            granted: *granted,
        },
        m::Body::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => R::AppendEntries {
            term: u64::from(*term),
            prev_log_index: u64::from(*prev_log_index),
            prev_log_term: u64::from(*prev_log_term),
            entries: entries
                .iter()
                .map(|e| crate::steps::RecEntry {
                    term: u64::from(e.term),
                    command: crate::steps::hex(&table.bytes(e.value)),
                })
                .collect(),
            leader_commit: u64::from(*leader_commit),
        },
        m::Body::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } => R::AppendEntriesResponse {
            term: u64::from(*term),
            success: *success,
            index: u64::from(*index),
            conflict_index: u64::from(*conflict_index),
        },
    }
}

/// The summary (len, last term, hash) of a model log, commands through `table`.
pub fn model_log_summary(log: &[m::Entry], table: &CommandTable) -> crate::steps::LogSummary {
    table.log_summary(log)
}

/// The durable part of a model server: `(durable_term, durable_voted_for,
/// durable_log)` (docs/protocol.md §1, §7).
pub fn model_durable(
    s: &raft_model::state::ServerState,
) -> (m::Term, Option<m::ServerId>, &[m::Entry]) {
    (s.durable_term, s.durable_voted_for, &s.durable_log)
}

/// The outbox of a model server, in send order.
pub fn model_outbox(s: &raft_model::state::ServerState) -> &[m::Message] {
    &s.outbox
}

/// Whether the model runs `--persist sync` (every step followed at once by
/// the Persist of the servers it left with pending writes).
pub fn sync_persist(cfg: &raft_model::Config) -> bool {
    cfg.persist == raft_model::PersistMode::Sync
}

/// Whether a seeded implementation bug can show at all under the model's
/// configuration: the durability bugs (a message that leaves before its
/// Persist, a leader counting its unpersisted log) need `--persist async`,
/// where in-memory state runs ahead of the disk.
pub fn bug_observable(bug: raftkv::node::ImplBug, cfg: &raft_model::Config) -> bool {
    let durability = matches!(
        bug.name(),
        "ack-before-persist" | "vote-before-persist" | "leader-counts-volatile-self"
    );
    !durability || !sync_persist(cfg)
}

/// The model's Persist action for `server`, if the model has one.
pub fn persist_action(server: m::ServerId) -> Option<m::Action> {
    Some(m::Action::Persist { server })
}

/// One server's protocol state in a vocabulary both a record and the model
/// translate to: model ids, logs as summaries, the outbox as messages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ServerView {
    pub term: u64,
    pub voted_for: Option<m::ServerId>,
    pub role: m::Role,
    pub commit_index: u64,
    pub votes_granted: Vec<m::ServerId>,
    pub next_index: Vec<u64>,
    pub match_index: Vec<u64>,
    pub log: crate::steps::LogSummary,
    pub durable_term: u64,
    pub durable_voted_for: Option<m::ServerId>,
    pub durable_log: crate::steps::LogSummary,
    pub outbox: Vec<m::Message>,
}

/// The model server `i`'s view (docs/protocol.md §1 normalisation).
pub fn model_view(
    i: m::ServerId,
    s: &raft_model::state::ServerState,
    n: usize,
    table: &CommandTable,
) -> ServerView {
    let _ = i;
    let (dt, dv, dl) = model_durable(s);
    let leader = s.role == m::Role::Leader;
    ServerView {
        term: u64::from(s.term),
        voted_for: s.voted_for,
        role: s.role,
        commit_index: u64::from(s.commit_index),
        votes_granted: if s.role == m::Role::Candidate {
            raft_model::state::members(s.votes_granted).collect()
        } else {
            Vec::new()
        },
        next_index: if leader {
            s.next_index[..n].iter().map(|&x| u64::from(x)).collect()
        } else {
            Vec::new()
        },
        match_index: if leader {
            s.match_index[..n].iter().map(|&x| u64::from(x)).collect()
        } else {
            Vec::new()
        },
        log: model_log_summary(&s.log, table),
        durable_term: u64::from(dt),
        durable_voted_for: dv,
        durable_log: model_log_summary(dl, table),
        outbox: {
            let mut o = model_outbox(s).to_vec();
            normalize_outbox(&mut o);
            o
        },
    }
}

/// A record's state → the view. `outbox` are the record's outbox ids
/// already resolved to model messages.
pub fn record_view(
    node: u64,
    st: &crate::steps::RecState,
    n: usize,
    mut outbox: Vec<m::Message>,
) -> Result<ServerView, RecordError> {
    normalize_outbox(&mut outbox);
    use crate::steps::RecRole;
    let role = match st.role {
        RecRole::Follower => m::Role::Follower,
        RecRole::Candidate => m::Role::Candidate,
        RecRole::Leader => m::Role::Leader,
    };
    let opt = |v: Option<u64>, what: &str| -> Result<Option<m::ServerId>, RecordError> {
        v.map(|x| rec_node(x, n, what)).transpose()
    };
    let mut votes = Vec::new();
    if role == m::Role::Candidate {
        for &v in &st.votes_granted {
            votes.push(rec_node(v, n, "votes_granted")?);
        }
        votes.sort_unstable();
        votes.dedup();
    }
    let arr = |list: &[(u64, u64)], what: &str| -> Result<Vec<u64>, RecordError> {
        if role != m::Role::Leader {
            return Ok(Vec::new());
        }
        let mut out = vec![0; n];
        for &(peer, idx) in list {
            let j = rec_node(peer, n, what)?;
            if u64::from(j) + 1 == node {
                return Err(RecordError::Bad(format!(
                    "{what} of node {node} names itself"
                )));
            }
            out[usize::from(j)] = idx;
        }
        Ok(out)
    };
    Ok(ServerView {
        term: st.term,
        voted_for: opt(st.voted_for, "voted_for")?,
        role,
        commit_index: st.commit_index,
        votes_granted: votes,
        next_index: arr(&st.next_index, "next_index")?,
        match_index: arr(&st.match_index, "match_index")?,
        log: st.log.clone(),
        durable_term: st.durable_term,
        durable_voted_for: opt(st.durable_voted_for, "durable_voted_for")?,
        durable_log: st.durable_log.clone(),
        outbox,
    })
}

/// A model view → the recorded state (ids for the outbox supplied).
pub fn view_to_record_state(
    v: &ServerView,
    node: u64,
    outbox_ids: Vec<String>,
) -> crate::steps::RecState {
    use crate::steps::RecRole;
    let pairs = |a: &[u64]| -> Vec<(u64, u64)> {
        a.iter()
            .enumerate()
            .filter(|&(j, _)| j as u64 + 1 != node)
            .map(|(j, &x)| (j as u64 + 1, x))
            .collect()
    };
    crate::steps::RecState {
        term: v.term,
        voted_for: v.voted_for.map(node_id),
        role: match v.role {
            m::Role::Follower => RecRole::Follower,
            m::Role::Candidate => RecRole::Candidate,
            m::Role::Leader => RecRole::Leader,
        },
        commit_index: v.commit_index,
        votes_granted: v.votes_granted.iter().map(|&x| node_id(x)).collect(),
        next_index: pairs(&v.next_index),
        match_index: pairs(&v.match_index),
        log: v.log.clone(),
        durable_term: v.durable_term,
        durable_voted_for: v.durable_voted_for.map(node_id),
        durable_log: v.durable_log.clone(),
        outbox: outbox_ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_server(role: m::Role) -> AbstractServer {
        AbstractServer {
            term: 3,
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
            m::Body::RequestVote {
                term: 2,
                last_log_index: 3,
                last_log_term: 1,
            },
            m::Body::RequestVoteResponse {
                term: 2,
                granted: true,
            },
            m::Body::AppendEntries {
                term: 4,
                prev_log_index: 1,
                prev_log_term: 1,
                entries: vec![m::Entry { term: 4, value: 9 }],
                leader_commit: 1,
            },
            m::Body::AppendEntriesResponse {
                term: 4,
                success: false,
                index: 1,
                conflict_index: 1,
            },
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
            body: k::Body::RequestVoteResponse {
                term: u64::from(u32::MAX) + 1,
                granted: false,
            },
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
            body: k::Body::RequestVoteResponse {
                term: 1,
                granted: false,
            },
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
            log: vec![],
            commit_index: 0,
            votes_granted: vec![],
            next_index: vec![(1, 1), (3, 1)],
            match_index: vec![(1, 0), (3, 0)],
            leader_hint: Some(2),
            durable_term: 1,
            durable_voted_for: Some(2),
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
            body: k::Body::RequestVote {
                term: 1,
                last_log_index: 0,
                last_log_term: 0,
            },
        };
        let b = k::Message {
            from: 1,
            to: 2,
            body: k::Body::RequestVote {
                term: 1,
                last_log_index: 0,
                last_log_term: 0,
            },
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
