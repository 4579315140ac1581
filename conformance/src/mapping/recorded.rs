//! The mapping of recorded steps (docs/trace-format.md, "Recorded steps"):
//! commands ↔ model values for long recorded runs ([`CommandTable`]),
//! recorded messages and states ↔ model messages and server views.

use super::*;

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

/// A recorded index → the model's (a limitation beyond its range).
pub fn rec_index(what: &'static str, index: u64) -> Result<m::Index, RecordError> {
    Ok(narrow_rec(what, index)?)
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
/// `sender` is the sender's model state: a recorded InstallSnapshot carries
/// its snapshot's index and term, not its data (the state machine's), so
/// its values are the sender's snapshot values when index and term are the
/// sender's (none otherwise: the message then differs from the model's).
pub fn rec_message_to_model(
    from: u64,
    sent: &crate::steps::RecSent,
    n: usize,
    table: &mut CommandTable,
    sender: &raft_model::state::ServerState,
) -> Result<m::Message, RecordError> {
    use crate::steps::RecBody as R;
    let from_id = rec_node(from, n, "sender")?;
    let to = rec_node(sent.to, n, &format!("message {}", sent.id))?;
    let body = match &sent.body {
        R::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => m::Body::RequestVote(m::RequestVote {
            term: narrow_rec("term", *term)?,
            last_log_index: narrow_rec("last_log_index", *last_log_index)?,
            last_log_term: narrow_rec("last_log_term", *last_log_term)?,
        }),
        R::RequestVoteResponse { term, granted } => {
            m::Body::RequestVoteResponse(m::RequestVoteResponse {
                term: narrow_rec("term", *term)?,
                granted: *granted,
            })
        }
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
            m::Body::AppendEntries(m::AppendEntries {
                term: narrow_rec("term", *term)?,
                prev_log_index: narrow_rec("prev_log_index", *prev_log_index)?,
                prev_log_term: narrow_rec("prev_log_term", *prev_log_term)?,
                entries: es,
                leader_commit: narrow_rec("leader_commit", *leader_commit)?,
            })
        }
        R::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } => m::Body::AppendEntriesResponse(m::AppendEntriesResponse {
            term: narrow_rec("term", *term)?,
            success: *success,
            index: narrow_rec("index", *index)?,
            conflict_index: narrow_rec("conflict_index", *conflict_index)?,
        }),
        R::InstallSnapshot {
            term,
            last_included_index,
            last_included_term,
            data_len: _,
        } => {
            let (lii, lit) = (
                narrow_rec("last_included_index", *last_included_index)?,
                narrow_rec("last_included_term", *last_included_term)?,
            );
            let values = if (sender.snapshot_index, sender.snapshot_term) == (lii, lit) {
                sender.snapshot_values.clone()
            } else {
                m::Values::new()
            };
            m::Body::InstallSnapshot(m::InstallSnapshot {
                term: narrow_rec("term", *term)?,
                last_included_index: lii,
                last_included_term: lit,
                values,
            })
        }
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
        m::Body::RequestVote(m::RequestVote {
            term,
            last_log_index,
            last_log_term,
        }) => R::RequestVote {
            term: u64::from(*term),
            last_log_index: u64::from(*last_log_index),
            last_log_term: u64::from(*last_log_term),
        },
        m::Body::RequestVoteResponse(m::RequestVoteResponse { term, granted }) => {
            R::RequestVoteResponse {
                term: u64::from(*term),
                granted: *granted,
            }
        }
        m::Body::AppendEntries(m::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }) => R::AppendEntries {
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
        m::Body::AppendEntriesResponse(m::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        }) => R::AppendEntriesResponse {
            term: u64::from(*term),
            success: *success,
            index: u64::from(*index),
            conflict_index: u64::from(*conflict_index),
        },
        m::Body::InstallSnapshot(m::InstallSnapshot {
            term,
            last_included_index,
            last_included_term,
            values,
        }) => R::InstallSnapshot {
            term: u64::from(*term),
            last_included_index: u64::from(*last_included_index),
            last_included_term: u64::from(*last_included_term),
            data_len: super::snapshot_data(values).len() as u64,
        },
    }
}

/// The summary (len, last term, hash) of a model log, commands through `table`.
pub fn model_log_summary(log: &[m::Entry], table: &CommandTable) -> crate::steps::LogSummary {
    table.log_summary(log)
}

/// The durable part of a model server: `(durable_term, durable_voted_for,
/// durable_log)` (docs/protocol.md §1, §7); the durable snapshot is
/// [`model_snapshot`] of its durable fields.
pub fn model_durable(
    s: &raft_model::state::ServerState,
) -> (m::Term, Option<m::ServerId>, &[m::Entry]) {
    (s.durable_term, s.durable_voted_for, &s.durable_log)
}

/// A model snapshot's `(index, term)` as a record states it (none at 0).
pub fn model_snapshot(index: m::Index, term: m::Term) -> Option<crate::steps::RecSnapshot> {
    (index > 0).then_some(crate::steps::RecSnapshot {
        index: u64::from(index),
        term: u64::from(term),
    })
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
    // A snapshot bug needs a snapshot; two of them also an entry past the
    // point compacted or installed (the uncommitted entry a bugged Snapshot
    // swallows, the matching suffix a bugged install drops): two requests.
    let snapshot = matches!(
        bug.name(),
        "snapshot-uncommitted" | "install-truncates-matching-suffix" | "stale-snapshot-rolls-back"
    );
    let needs_two_entries = matches!(
        bug.name(),
        "snapshot-uncommitted" | "install-truncates-matching-suffix"
    );
    (!durability || !sync_persist(cfg))
        && (!snapshot || cfg.max_snapshots > 0)
        && (!needs_two_entries || cfg.max_requests >= 2)
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
    pub snapshot: Option<crate::steps::RecSnapshot>,
    pub log: crate::steps::LogSummary,
    pub durable_term: u64,
    pub durable_voted_for: Option<m::ServerId>,
    pub durable_snapshot: Option<crate::steps::RecSnapshot>,
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
        snapshot: model_snapshot(s.snapshot_index, s.snapshot_term),
        log: model_log_summary(&s.log, table),
        durable_term: u64::from(dt),
        durable_voted_for: dv,
        durable_snapshot: model_snapshot(s.durable_snapshot_index, s.durable_snapshot_term),
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
        snapshot: st.snapshot,
        log: st.log.clone(),
        durable_term: st.durable_term,
        durable_voted_for: opt(st.durable_voted_for, "durable_voted_for")?,
        durable_snapshot: st.durable_snapshot,
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
        snapshot: v.snapshot,
        log: v.log.clone(),
        durable_term: v.durable_term,
        durable_voted_for: v.durable_voted_for.map(node_id),
        durable_snapshot: v.durable_snapshot,
        durable_log: v.durable_log.clone(),
        outbox: outbox_ids,
    }
}
