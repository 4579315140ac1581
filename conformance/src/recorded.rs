// Over 600 lines: the validator of recorded steps (Validator) and its inverse, the writer of model walks as recorded steps (RecordWriter), which must stay in step.
//! `raft-conform validate --trace FILE...`: recorded steps of real nodes
//! (docs/trace-format.md, "Recorded steps") checked against the model.
//!
//! One model state is carried forward from the initial state (so the
//! model's ghost variables, and with them every history property, survive):
//! each record becomes one model action, which must be enabled, and the
//! model's resulting server state must equal the record's state; every
//! safety property is evaluated on every state. Messages that are never
//! delivered become a `Drop` right after they enter the network (after the
//! step that sent them, or after the `Persist` that released them), and a
//! message delivered `k` times gets `k - 1` `Duplicate`s there, so the
//! model's network holds only what will still be delivered.

use crate::divergence::{diff_messages, diff_view, FieldDiff};
use crate::mapping::{self, CommandTable, Limitation, RecordError};
use crate::steps::{Located, RecEvent, StepsError};
use raft_model::properties::SAFETY;
use raft_model::types::{Action, Message, ServerId};
use raft_model::{Config, NetworkKind, RaftModel, State};
use serde::Serialize;
use stateright::Model;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Instant;

/// Input the validator cannot check (exit 2): unreadable, malformed, or
/// beyond what the model can represent.
#[derive(Debug, thiserror::Error)]
pub enum RecordedError {
    #[error(transparent)]
    Steps(#[from] StepsError),
    #[error("{at}: model limitation: {limit}")]
    Limitation { at: String, limit: Limitation },
    #[error("{at}: {reason}")]
    Bad { at: String, reason: String },
    #[error("no records to validate")]
    Empty,
}

/// The first record the model does not allow.
#[derive(Clone, Debug, Serialize)]
pub struct RecordViolation {
    /// 1-based position in the merged record order.
    pub step: usize,
    pub file: String,
    pub line: usize,
    pub node: u64,
    pub seq: u64,
    pub event: RecEvent,
    /// The model action the record became, if it got that far.
    pub action: Option<Action>,
    /// What went wrong, in words.
    pub error: String,
    /// The safety property violated, if that is the failure.
    pub property: Option<String>,
    /// Expected (model) vs actual (record), field by field.
    pub fields: Vec<FieldDiff>,
}

impl fmt::Display for RecordViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "VIOLATION at step {} ({}:{}): node {} seq {} event {}",
            self.step,
            self.file,
            self.line,
            self.node,
            self.seq,
            serde_json::to_string(&self.event).unwrap_or_default()
        )?;
        if let Some(a) = &self.action {
            writeln!(
                f,
                "  model action: {}",
                serde_json::to_string(a).unwrap_or_default()
            )?;
        }
        writeln!(f, "  error: {}", self.error)?;
        if let Some(p) = &self.property {
            writeln!(f, "  property violated: {p}")?;
        }
        for d in &self.fields {
            writeln!(f, "  {}", d.field)?;
            writeln!(f, "    expected: {}", d.expected)?;
            writeln!(f, "    actual:   {}", d.actual)?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
pub struct RecordedOutcome {
    /// Records validated (the violating one included).
    pub steps: usize,
    /// Model actions applied (records plus the inferred Drops/Duplicates).
    pub model_steps: usize,
    /// Restarts that recovered what a Persist of the pending writes makes
    /// durable, although no Persist was recorded: the process died after its
    /// writes reached the disk and before it recorded the Persist. Each is
    /// taken as the model path Persist, its released messages dropped (they
    /// never left), Restart.
    pub inferred_persists: usize,
    pub servers: u8,
    /// Distinct commands (model values) in the trace.
    pub values: usize,
    pub violation: Option<RecordViolation>,
    pub seconds: f64,
}

/// The model bounds for a recorded run: wide enough that no bound disables
/// a recorded event (a bound that is hit anyway is a limitation, exit 2).
pub fn recorded_config(servers: u8) -> Config {
    Config {
        servers,
        max_term: raft_model::types::Term::MAX - 1,
        max_requests: raft_model::types::Value::MAX,
        max_inflight: u8::MAX,
        max_restarts: u8::MAX,
        max_partitions: 0,
        max_duplicates: u8::MAX,
        max_snapshots: u8::MAX,
        network: NetworkKind::Unordered,
        persist: raft_model::PersistMode::Async,
        max_batch: Some(mapping::IMPL_MAX_BATCH),
        bug: None,
    }
}

/// The bound of `cfg` that disables `action` in `s`, if one does.
fn bound_hit(model: &RaftModel, s: &State, action: &Action, sends: usize) -> Option<Limitation> {
    let cfg = &model.cfg;
    let range = |what, value: usize, max: u64| Limitation::Range {
        what,
        value: value as u64,
        max,
    };
    match action {
        Action::Timeout { server } => {
            let t = s.servers[usize::from(*server)].term;
            (t >= cfg.max_term).then(|| range("term", t as usize + 1, u64::from(cfg.max_term)))
        }
        Action::Restart { .. } => (s.restarts >= cfg.max_restarts).then(|| {
            range(
                "restarts",
                usize::from(s.restarts) + 1,
                u64::from(cfg.max_restarts),
            )
        }),
        Action::Duplicate { .. } => (s.duplicates >= cfg.max_duplicates).then(|| {
            range(
                "duplicated deliveries",
                usize::from(s.duplicates) + 1,
                u64::from(cfg.max_duplicates),
            )
        }),
        _ => None,
    }
    .or_else(|| {
        let total = model.inflight(s) + sends;
        (total > usize::from(cfg.max_inflight))
            .then(|| range("messages in flight", total, u64::from(cfg.max_inflight)))
    })
}

struct Validator {
    model: RaftModel,
    n: usize,
    state: State,
    table: CommandTable,
    /// Message id → the model message.
    msgs: HashMap<String, Message>,
    /// Message id → deliveries in the whole trace (pre-scan).
    deliveries: HashMap<String, usize>,
    /// Message id → copies in the model's network now.
    in_network: HashMap<String, usize>,
    /// Per node: the outbox ids of its latest record.
    outbox: Vec<Vec<String>>,
    model_steps: usize,
    inferred_persists: usize,
}

enum Failure {
    Violation {
        action: Option<Action>,
        error: String,
        property: Option<String>,
        fields: Vec<FieldDiff>,
    },
    Input(RecordedError),
}

fn at(r: &Located) -> String {
    format!("{}:{}", r.file, r.line)
}

// A `Failure` ends the validation, so its size is paid once per run, not per
// step: not worth boxing.
#[allow(clippy::result_large_err)]
impl Validator {
    fn violation(action: Option<Action>, error: impl Into<String>) -> Failure {
        Failure::Violation {
            action,
            error: error.into(),
            property: None,
            fields: Vec::new(),
        }
    }

    fn input(r: &Located, e: RecordError) -> Failure {
        Failure::Input(match e {
            RecordError::Limitation(limit) => RecordedError::Limitation { at: at(r), limit },
            RecordError::Bad(reason) => RecordedError::Bad { at: at(r), reason },
        })
    }

    fn safety(&self) -> Option<&'static str> {
        SAFETY
            .iter()
            .find(|(_, f)| !f(&self.model, &self.state))
            .map(|(name, _)| *name)
    }

    /// Applies a model action that the record implies.
    fn apply(&mut self, r: &Located, action: Action, sends: usize) -> Result<(), Failure> {
        match self.model.next_state(&self.state, action.clone()) {
            Some(next) => {
                self.state = next;
                self.model_steps += 1;
                Ok(())
            }
            None => match bound_hit(&self.model, &self.state, &action, sends) {
                Some(limit) => Err(Failure::Input(RecordedError::Limitation {
                    at: at(r),
                    limit,
                })),
                None => Err(Self::violation(
                    Some(action),
                    "the model does not allow this event in the state the trace reached",
                )),
            },
        }
    }

    /// Before a Restart record: when the plain model Restart does not
    /// recover the recorded state but a Persist of the pending writes
    /// followed by the Restart does, the process died after its writes
    /// reached the disk (kill -9 keeps what the kernel has; the Persist
    /// record is written after the fsync) and before it recorded the
    /// Persist. Take that path: Persist, drop what it released (it never
    /// left: messages leave after their record), then the Restart follows.
    fn persist_before_restart(&mut self, r: &Located, i: ServerId) -> Result<(), Failure> {
        let node = usize::from(i);
        if !self.state.servers[node].has_pending_writes() {
            return Ok(());
        }
        let actual = mapping::record_view(r.record.node, &r.record.state, self.n, Vec::new())
            .map_err(|e| Self::input(r, e))?;
        let recovers = |s: &State| {
            self.model
                .next_state(s, Action::Restart { server: i })
                .is_some_and(|next| {
                    let expected = mapping::model_view(i, &next.servers[node], self.n, &self.table);
                    diff_view(node, &expected, &actual).is_empty()
                })
        };
        if recovers(&self.state) {
            return Ok(());
        }
        let Some(persist) = mapping::persist_action(i) else {
            return Ok(());
        };
        let Some(mut s) = self.model.next_state(&self.state, persist) else {
            return Ok(());
        };
        let mut steps = 1;
        for m in self.state.servers[node].outbox.clone() {
            match self.model.next_state(&s, Action::Drop { message: m }) {
                Some(next) => s = next,
                None => return Ok(()),
            }
            steps += 1;
        }
        if recovers(&s) {
            self.state = s;
            self.model_steps += steps;
            self.inferred_persists += 1;
            if let Some(p) = self.safety() {
                return Err(Failure::Violation {
                    action: mapping::persist_action(i),
                    error: "a safety property of the model fails after the Persist this restart implies".into(),
                    property: Some(p.to_string()),
                    fields: Vec::new(),
                });
            }
        }
        Ok(())
    }

    fn step(&mut self, r: &Located) -> Result<(), Failure> {
        let rec = &r.record;
        let i: ServerId = mapping::server_id(rec.node, self.n)
            .map_err(|e| Self::input(r, RecordError::Bad(e.to_string())))?;
        let node = usize::from(i);
        // A proposal's value first: the step's AppendEntries may carry it.
        let proposed = match &rec.event {
            RecEvent::ClientRequest { command } => {
                let srv = &self.state.servers[node];
                Some(
                    mapping::rec_client_value(
                        command,
                        srv.term,
                        srv.last_index() + 1,
                        &mut self.table,
                    )
                    .map_err(|e| Self::input(r, e))?,
                )
            }
            _ => None,
        };
        // The messages this step creates, in the model's vocabulary.
        let mut sent = Vec::with_capacity(rec.sent.len());
        for s in &rec.sent {
            if self.msgs.contains_key(&s.id) {
                return Err(Self::input(
                    r,
                    RecordError::Bad(format!("message id {} is sent twice", s.id)),
                ));
            }
            let m = mapping::rec_message_to_model(
                rec.node,
                s,
                self.n,
                &mut self.table,
                &self.state.servers[node],
            )
            .map_err(|e| Self::input(r, e))?;
            sent.push((s.id.clone(), s.outbox, m));
        }
        let action = match &rec.event {
            RecEvent::Timeout => Action::Timeout { server: i },
            RecEvent::Heartbeat => Action::Heartbeat { server: i },
            RecEvent::ClientRequest { .. } => Action::ClientRequest {
                server: i,
                value: proposed.expect("set above for a ClientRequest"),
            },
            RecEvent::Deliver { id } => {
                let Some(m) = self.msgs.get(id) else {
                    return Err(Self::violation(
                        None,
                        format!("delivers message {id}, which is not in flight"),
                    ));
                };
                if m.to != i {
                    return Err(Self::violation(
                        None,
                        format!(
                            "delivers message {id} addressed to node {}",
                            mapping::node_id(m.to)
                        ),
                    ));
                }
                Action::Deliver { message: m.clone() }
            }
            RecEvent::Persist => match mapping::persist_action(i) {
                Some(a) => a,
                None => {
                    return Err(Failure::Input(RecordedError::Bad {
                        at: at(r),
                        reason: "this model has no Persist action".into(),
                    }))
                }
            },
            RecEvent::Restart => Action::Restart { server: i },
            // The index the state machine snapshotted at is the record's
            // snapshot index (R-snap-2: any committed index above the
            // snapshot; the model refuses any other).
            RecEvent::Snapshot => Action::Snapshot {
                server: i,
                index: mapping::rec_index(
                    "snapshot index",
                    rec.state.snapshot.map_or(0, |s| s.index),
                )
                .map_err(|e| Self::input(r, e))?,
            },
        };
        // What enters the network in this step: the straight sends, and for
        // a Persist the outbox it releases.
        let mut entering: Vec<String> = Vec::new();
        if matches!(rec.event, RecEvent::Persist) {
            entering.extend(self.outbox[node].iter().cloned());
        }
        entering.extend(sent.iter().filter(|s| !s.1).map(|s| s.0.clone()));
        if matches!(rec.event, RecEvent::Restart) {
            self.persist_before_restart(r, i)?;
        }
        let before = self.state.network.clone();
        self.apply(r, action.clone(), sent.len())?;
        let mut delivered_id = None;
        if let RecEvent::Deliver { id } = &rec.event {
            let c = self.in_network.get_mut(id);
            match c {
                Some(c) if *c > 0 => *c -= 1,
                _ => {
                    return Err(Self::violation(
                        Some(action),
                        format!("delivers message {id}, which is not in flight"),
                    ))
                }
            }
            delivered_id = Some(id.clone());
        }
        for (id, _, m) in &sent {
            self.msgs.insert(id.clone(), m.clone());
        }
        // The record's state against the model's.
        let mut out_msgs = Vec::with_capacity(rec.state.outbox.len());
        for id in &rec.state.outbox {
            match self.msgs.get(id) {
                Some(m) => out_msgs.push(m.clone()),
                None => {
                    return Err(Self::violation(
                        Some(action),
                        format!("the outbox lists message {id}, which no step sent"),
                    ))
                }
            }
        }
        let actual = mapping::record_view(rec.node, &rec.state, self.n, out_msgs)
            .map_err(|e| Self::input(r, e))?;
        let expected = mapping::model_view(i, &self.state.servers[node], self.n, &self.table);
        let mut fields = diff_view(node, &expected, &actual);
        // The messages the step put in the network.
        let mut added: Vec<Message> = self.state.network.to_vec();
        let mut remaining: Vec<Message> = before.to_vec();
        if let Action::Deliver { message } = &action {
            if let Some(p) = remaining.iter().position(|x| x == message) {
                remaining.remove(p);
            }
        }
        for m in remaining {
            if let Some(p) = added.iter().position(|x| *x == m) {
                added.remove(p);
            }
        }
        let entering_msgs: Vec<Message> = entering
            .iter()
            .filter_map(|id| self.msgs.get(id).cloned())
            .collect();
        if let Some(d) = diff_messages("sent to the network", &added, &entering_msgs) {
            fields.push(d);
        }
        if !fields.is_empty() {
            let error = if matches!(rec.event, RecEvent::Restart) {
                "the restart did not recover the durable state the model has for this server"
            } else {
                "the model reaches a different state (expected = model, actual = record)"
            };
            return Err(Failure::Violation {
                action: Some(action),
                error: error.into(),
                property: None,
                fields,
            });
        }
        if let Some(p) = self.safety() {
            return Err(Failure::Violation {
                action: Some(action),
                error: "a safety property of the model fails in the state after this step".into(),
                property: Some(p.to_string()),
                fields: Vec::new(),
            });
        }
        let _ = delivered_id;
        self.outbox[node] = rec.state.outbox.clone();
        // Messages that entered the network: duplicate or drop them now as
        // the rest of the trace needs.
        for id in entering {
            let want = self.deliveries.get(&id).copied().unwrap_or(0);
            let m = self.msgs[&id].clone();
            if want == 0 {
                self.apply(r, Action::Drop { message: m }, 0)?;
                continue;
            }
            for _ in 1..want {
                self.apply(r, Action::Duplicate { message: m.clone() }, 1)?;
            }
            *self.in_network.entry(id).or_insert(0) += want;
        }
        Ok(())
    }
}

/// Validates the records of `files` (each in line order). Records are merged
/// in file order: the next record is the head of the first file that can go
/// on (a Deliver waits until its message is in flight), so records of one
/// file are taken in order and a file written by several processes needs no
/// reordering.
pub fn validate_records(files: Vec<Vec<Located>>) -> Result<RecordedOutcome, RecordedError> {
    validate_records_with(files, None)
}

/// [`validate_records`] against the model with a seeded model bug (to show
/// that the validator evaluates the model's safety properties).
pub fn validate_records_with(
    files: Vec<Vec<Located>>,
    bug: Option<raft_model::Bug>,
) -> Result<RecordedOutcome, RecordedError> {
    let started = Instant::now();
    let total: usize = files.iter().map(Vec::len).sum();
    if total == 0 {
        return Err(RecordedError::Empty);
    }
    // Servers: every node that took a step or was sent a message.
    let mut n: u64 = 0;
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for r in files.iter().flatten() {
        if r.record.node == 0 {
            return Err(RecordedError::Bad {
                at: at(r),
                reason: "node ids start at 1".into(),
            });
        }
        n = n.max(r.record.node);
        for s in &r.record.sent {
            n = n.max(s.to);
        }
        if let RecEvent::Deliver { id } = &r.record.event {
            *deliveries.entry(id.clone()).or_insert(0) += 1;
        }
    }
    let max = raft_model::config::MAX_SERVERS;
    if n > u64::from(max) {
        let r = &files.iter().flatten().next().expect("non-empty");
        return Err(RecordedError::Limitation {
            at: r.file.clone(),
            limit: Limitation::Servers { found: n, max },
        });
    }
    let servers = n as u8;
    let mut cfg = recorded_config(servers);
    cfg.bug = bug;
    let model = RaftModel::new(cfg);
    let state = model
        .init_states()
        .into_iter()
        .next()
        .expect("the model has an initial state");
    let mut v = Validator {
        model,
        n: usize::from(servers),
        state,
        table: CommandTable::default(),
        msgs: HashMap::new(),
        deliveries,
        in_network: HashMap::new(),
        outbox: vec![Vec::new(); usize::from(servers)],
        model_steps: 0,
        inferred_persists: 0,
    };
    let mut queues: Vec<VecDeque<Located>> = files.into_iter().map(VecDeque::from).collect();
    let mut steps = 0;
    let mut violation = None;
    if let Some(p) = v.safety() {
        return Err(RecordedError::Bad {
            at: "initial state".into(),
            reason: format!("the model's initial state violates {p}"),
        });
    }
    loop {
        let ready = |q: &VecDeque<Located>| {
            q.front().is_some_and(|r| match &r.record.event {
                RecEvent::Deliver { id } => v.in_network.get(id).copied().unwrap_or(0) > 0,
                _ => true,
            })
        };
        let pick = queues
            .iter()
            .position(ready)
            .or_else(|| queues.iter().position(|q| !q.is_empty()));
        let Some(k) = pick else { break };
        let r = queues[k].pop_front().expect("non-empty queue");
        steps += 1;
        match v.step(&r) {
            Ok(()) => {}
            Err(Failure::Input(e)) => return Err(e),
            Err(Failure::Violation {
                action,
                error,
                property,
                fields,
            }) => {
                violation = Some(RecordViolation {
                    step: steps,
                    file: r.file.clone(),
                    line: r.line,
                    node: r.record.node,
                    seq: r.record.seq,
                    event: r.record.event.clone(),
                    action,
                    error,
                    property,
                    fields,
                });
                break;
            }
        }
    }
    Ok(RecordedOutcome {
        steps,
        model_steps: v.model_steps,
        inferred_persists: v.inferred_persists,
        servers,
        values: v.table.len(),
        violation,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Reads and validates recorded-step files.
pub fn validate_files(paths: &[std::path::PathBuf]) -> Result<RecordedOutcome, RecordedError> {
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        files.push(crate::steps::read_file(p)?);
    }
    validate_records(files)
}

// ----- records from model walks (tests and the transitions harness) ------

/// Writes a model path as the records a node would write: node ids, the
/// commands of `table` (decimal forms for values it lacks), message ids
/// `<node>.<seq>.<k>`. Network-only actions (Drop, Duplicate) write no
/// record: a message that is never delivered counts as dropped. Partitions
/// are not supported (a recorded run has none).
pub struct RecordWriter {
    model: RaftModel,
    state: State,
    table: CommandTable,
    seq: Vec<u64>,
    /// Model message → ids of its copies in flight.
    in_flight: HashMap<Message, Vec<String>>,
    /// Per server: the ids of its outbox, in order.
    /// Per server: its outbox as (id, message), in send order.
    outbox_ids: Vec<Vec<(String, Message)>>,
    pub records: Vec<crate::steps::Record>,
}

impl RecordWriter {
    pub fn new(model: RaftModel) -> RecordWriter {
        let n = usize::from(model.cfg.servers);
        let state = model.init_states().remove(0);
        RecordWriter {
            model,
            state,
            table: CommandTable::default(),
            seq: vec![0; n],
            in_flight: HashMap::new(),
            outbox_ids: vec![Vec::new(); n],
            records: Vec::new(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Applies one model action and writes its record, if it has one.
    pub fn step(&mut self, action: &Action) -> Result<(), String> {
        let before = self.state.clone();
        let next = self
            .model
            .next_state(&before, action.clone())
            .ok_or_else(|| format!("{action:?} is not enabled"))?;
        self.state = next;
        let (server, event) = match action {
            Action::Timeout { server } => (*server, RecEvent::Timeout),
            Action::Heartbeat { server } => (*server, RecEvent::Heartbeat),
            Action::ClientRequest { server, value } => {
                let v = self
                    .table
                    .fresh(&mapping::command(*value))
                    .map_err(|e| e.to_string())?;
                assert_eq!(v, *value, "walk values are 1, 2, 3, ...");
                (
                    *server,
                    RecEvent::ClientRequest {
                        command: crate::steps::hex(&mapping::command(*value)),
                    },
                )
            }
            Action::Deliver { message } => {
                let ids = self
                    .in_flight
                    .get_mut(message)
                    .ok_or("delivered message has no id")?;
                let id = ids.remove(0);
                if ids.is_empty() {
                    self.in_flight.remove(message);
                }
                (message.to, RecEvent::Deliver { id })
            }
            Action::Drop { message } => {
                let ids = self
                    .in_flight
                    .get_mut(message)
                    .ok_or("dropped message has no id")?;
                ids.pop();
                if ids.is_empty() {
                    self.in_flight.remove(message);
                }
                return Ok(());
            }
            Action::Duplicate { message } => {
                let ids = self
                    .in_flight
                    .get_mut(message)
                    .ok_or("duplicated message has no id")?;
                let id = ids[0].clone();
                ids.push(id);
                return Ok(());
            }
            Action::Restart { server } => (*server, RecEvent::Restart),
            Action::Persist { server } => (*server, RecEvent::Persist),
            Action::Partition { .. } | Action::Heal => {
                return Err("recorded runs have no partitions".into())
            }
            Action::Snapshot { server, .. } => (*server, RecEvent::Snapshot),
        };
        let i = usize::from(server);
        let node = mapping::node_id(server);
        let seq = self.seq[i];
        self.seq[i] += 1;
        // Messages added to the network and to the outbox by this step.
        let mut added: Vec<Message> = self.state.network.to_vec();
        let mut remaining: Vec<Message> = before.network.to_vec();
        if let Action::Deliver { message } = action {
            if let Some(p) = remaining.iter().position(|x| x == message) {
                remaining.remove(p);
            }
        }
        for m in remaining {
            if let Some(p) = added.iter().position(|x| *x == m) {
                added.remove(p);
            }
        }
        let new_outbox = mapping::model_outbox(&self.state.servers[i]).to_vec();
        let mut sent = Vec::new();
        let mut k = 0;
        let mut fresh: Vec<Message> = Vec::new();
        if matches!(action, Action::Persist { .. }) {
            // The outbox enters the network: its messages keep their ids.
            for (id, m) in std::mem::take(&mut self.outbox_ids[i]) {
                if let Some(p) = added.iter().position(|x| *x == m) {
                    added.remove(p);
                    self.in_flight.entry(m).or_default().push(id);
                }
            }
        } else {
            // The outbox kept what it had (as a multiset; the model lists
            // it by destination) and gained the rest, or was emptied by the
            // term rule or a restart and refilled.
            let mut rest = new_outbox.clone();
            let kept = self.outbox_ids[i].iter().all(|(_, m)| {
                rest.iter()
                    .position(|x| x == m)
                    .map(|p| rest.remove(p))
                    .is_some()
            });
            if kept {
                fresh = rest;
            } else {
                self.outbox_ids[i].clear();
                fresh = new_outbox.clone();
            }
        }
        for m in fresh {
            let id = format!("{node}.{seq}.{k}");
            k += 1;
            sent.push(crate::steps::RecSent {
                id: id.clone(),
                to: mapping::node_id(m.to),
                outbox: true,
                body: mapping::model_body_to_rec(&m.body, &self.table),
            });
            self.outbox_ids[i].push((id, m));
        }
        for m in added {
            let id = format!("{node}.{seq}.{k}");
            k += 1;
            sent.push(crate::steps::RecSent {
                id: id.clone(),
                to: mapping::node_id(m.to),
                outbox: false,
                body: mapping::model_body_to_rec(&m.body, &self.table),
            });
            self.in_flight.entry(m).or_default().push(id);
        }
        let n = self.state.n();
        let view = mapping::model_view(server, &self.state.servers[i], n, &self.table);
        let ids = self.outbox_ids[i]
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        let state = mapping::view_to_record_state(&view, node, ids);
        self.records.push(crate::steps::Record {
            format: crate::steps::FORMAT.into(),
            version: crate::steps::VERSION,
            node,
            seq,
            event,
            state,
            sent,
        });
        Ok(())
    }

    /// The records as NDJSON text.
    pub fn ndjson(&self) -> String {
        let mut s = String::new();
        for r in &self.records {
            s.push_str(&serde_json::to_string(r).expect("records serialise"));
            s.push('\n');
        }
        s
    }
}

/// Wraps records as if read from `file`.
pub fn located(records: &[crate::steps::Record], file: &str) -> Vec<Located> {
    records
        .iter()
        .enumerate()
        .map(|(k, r)| Located {
            file: file.to_string(),
            line: k + 1,
            record: r.clone(),
        })
        .collect()
}
