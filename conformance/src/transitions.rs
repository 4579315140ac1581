//! `raft-conform transitions`: every single-server transition of the
//! model's reachable state graph executed on the implementation's core.
//!
//! The enumeration is the search of `raft-model check`: a DFS from the
//! initial state over the model's listed actions, deduplicated by the
//! fingerprint of the symmetry representative (the path continues with the
//! state itself, as stateright's DFS does), violating states terminal. For
//! every transition of one server (Timeout, Heartbeat, ClientRequest,
//! Deliver, Restart) the implementation's `RaftCore` for that server in the
//! source state executes the same event, and its resulting abstract state
//! and the messages it hands to the network must equal the model's
//! successor. A local transition is memoised on (the server's state, the
//! event, which of its links are cut): one already checked is not executed
//! again.
//!
//! The core is built in the source state with `RaftCore::from_state` (the
//! server's whole protocol state: in-memory, durable part, outbox); a
//! Restart is `RaftCore::new` from the durable part. Besides the state and
//! the messages, the step's storage writes (its `Ready`) applied to the
//! state before it must give the core's state after it: what the node
//! writes at the next Persist is what the core runs on.

use crate::divergence::{diff, Divergence, FieldDiff};
use crate::mapping::{self, NodeCall};
use dashmap::DashSet;
use raft_model::trace::{Trace, TraceKind};
use raft_model::types::{Action, Message, ServerId};
use raft_model::{Config, RaftModel, State};
use raftkv::core::{HardState, LogOp, RaftCore, Ready};
use raftkv::node::ImplBug;
use raftkv::types::Entry;
use serde::Serialize;
use stateright::{Model, Representative};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

type NoHash = BuildHasherDefault<nohash_hasher::NoHashHasher<u64>>;

fn fingerprint<T: Hash>(v: &T) -> u64 {
    let mut h = ahash::AHasher::default();
    v.hash(&mut h);
    h.finish()
}

/// MAX_BATCH of the cores, as in production; the walks' logs are shorter.
const MAX_BATCH: usize = raftkv::node::DEFAULT_MAX_BATCH;

/// Default worker threads: the machine's cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CI bounds of `transitions`: the model's CI bounds.
pub fn ci_bounds() -> Config {
    Config::ci()
}

#[derive(Clone, Debug)]
pub struct TransitionsOptions {
    pub bounds: Config,
    pub bug: Option<ImplBug>,
    /// Worker threads of the search (each also runs the core).
    pub threads: usize,
    /// Stop (incomplete) after this long.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Serialize)]
pub struct TransitionsSummary {
    pub bounds: Config,
    pub impl_bug: Option<&'static str>,
    pub threads: usize,
    /// Unique model states (symmetry representatives) visited.
    pub states: usize,
    /// Every transition generated, network-only ones included.
    pub generated: usize,
    /// Single-server transitions explored (each checked, executed or memoised).
    pub transitions: usize,
    /// Of those, executed on the core (memo misses).
    pub executed: usize,
    pub divergences: usize,
    pub max_depth: usize,
    /// The whole reachable graph was explored without a divergence.
    pub complete: bool,
    pub seconds: f64,
    pub transitions_per_second: f64,
    pub first_divergence: Option<Divergence>,
    #[serde(skip)]
    pub divergent_trace: Option<Trace>,
}

/// The writes of a step (its `Ready`'s hard state, log operations and
/// snapshot) applied to the storage image of the state before it: they must
/// give the core's in-memory state after it, or the node would write
/// something else than what the core runs on. `log` holds the entries after
/// `snapshot`; log operations name absolute indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
struct Written {
    term: u64,
    voted_for: Option<u64>,
    snapshot: Option<raftkv::types::Snapshot>,
    log: Vec<Entry>,
}

impl Written {
    fn of(s: &raftkv::types::Status) -> Written {
        Written {
            term: s.term,
            voted_for: s.voted_for,
            snapshot: s.snapshot.clone(),
            log: s.log.clone(),
        }
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    /// Keeps the entries through absolute index `last`.
    fn keep_through(&mut self, last: u64) {
        let keep = last.saturating_sub(self.snapshot_index()) as usize;
        self.log.truncate(keep);
    }

    /// The order of the node's persist step: log operations, then the
    /// snapshot, which forgets every entry at or below its index.
    fn apply(&mut self, r: &Ready) {
        if let Some(h) = r.hard_state {
            self.term = h.term;
            self.voted_for = h.voted_for;
        }
        for op in &r.log_ops {
            match op {
                LogOp::Truncate { last_index } => self.keep_through(*last_index),
                LogOp::Append {
                    first_index,
                    entries,
                } => {
                    self.keep_through(first_index.saturating_sub(1));
                    self.log.extend(entries.iter().cloned());
                }
            }
        }
        if let Some(snap) = &r.snapshot {
            let covered = snap.meta.index.saturating_sub(self.snapshot_index()) as usize;
            self.log.drain(..covered.min(self.log.len()));
            self.snapshot = Some(snap.clone());
        }
    }
}

struct Frame {
    state: State,
    actions: Vec<Action>,
    next: usize,
    /// The action that led here from the parent frame.
    via: Option<Action>,
}

/// The server whose transition `a` is, for the events that reach a server.
pub fn acting_server(a: &Action) -> Option<ServerId> {
    match a {
        Action::Timeout { server }
        | Action::Heartbeat { server }
        | Action::ClientRequest { server, .. }
        | Action::Persist { server }
        | Action::Restart { server }
        | Action::Snapshot { server, .. } => Some(*server),
        Action::Deliver { message } => Some(message.to),
        Action::Drop { .. }
        | Action::Duplicate { .. }
        | Action::Partition { .. }
        | Action::Heal => None,
    }
}

/// Removes one copy of each of `remove` from `from` (multiset difference).
fn minus(mut from: Vec<Message>, remove: &[Message]) -> Vec<Message> {
    for m in remove {
        if let Some(p) = from.iter().position(|x| x == m) {
            from.swap_remove(p);
        }
    }
    from.sort();
    from
}

struct Search<'a> {
    model: RaftModel,
    bug: Option<ImplBug>,
    n: u8,
    /// Local transitions already checked: (server state, event, cut links).
    memo: &'a DashSet<u64, NoHash>,
    transitions: usize,
    executed: usize,
}

/// A transition the core does not take as the model does.
struct Mismatch {
    error: Option<String>,
    expected: raft_model::trace::AbstractState,
    actual: raft_model::trace::AbstractState,
    extra: Vec<FieldDiff>,
}

impl Search<'_> {
    /// Checks the transition `a` of server `i` from `src` to `succ` on the
    /// core built in `src`.
    fn check(
        &mut self,
        src: &State,
        i: ServerId,
        a: &Action,
        succ: &State,
    ) -> Result<(), Box<Mismatch>> {
        self.transitions += 1;
        let ii = usize::from(i);
        let cut: u8 = (0..self.n)
            .filter(|&j| src.is_cut(i, j))
            .fold(0, |acc, j| acc | (1 << j));
        let key = fingerprint(&(&src.servers[ii], a, cut));
        if self.memo.contains(&key) {
            return Ok(());
        }
        self.executed += 1;
        let n = usize::from(self.n);
        let src_abs = src.to_abstract();
        let expected = succ.to_abstract();
        let fail = |error: String| {
            Box::new(Mismatch {
                error: Some(error),
                expected: expected.clone(),
                actual: src_abs.clone(),
                extra: Vec::new(),
            })
        };
        let cfg = mapping::core_config(self.n, i, MAX_BATCH, self.bug);
        let status = mapping::server_to_status(i, &src_abs.servers[ii]);
        let mut core = RaftCore::from_state(cfg.clone(), &status)
            .map_err(|e| fail(format!("the core cannot be built in the source state: {e}")))?;
        let mut written = Written::of(&status);
        // The same calls as on a node (mapping::node_call), on its core.
        let mut ready = match mapping::node_call(a) {
            NodeCall::ElectionTimeout { .. } => core.timeout(),
            NodeCall::Heartbeat { .. } => core.heartbeat(),
            NodeCall::Propose { command, .. } => match core.propose(command) {
                Ok((_, _, r)) => r,
                Err(e) => return Err(fail(format!("the core refused the ClientRequest: {e}"))),
            },
            NodeCall::Deliver { message } => core.deliver(message),
            NodeCall::Persist { .. } => core.persist(),
            NodeCall::Restart { .. } => {
                let hs = HardState {
                    term: status.durable_term,
                    voted_for: status.durable_voted_for,
                };
                core = RaftCore::new(
                    cfg,
                    hs,
                    status.durable_snapshot.clone(),
                    status.durable_log.clone(),
                );
                written = Written::of(&core.status());
                Ready::default()
            }
            NodeCall::Snapshot { index, .. } => {
                // The state machine's data: the values applied through
                // `index` (mapping::applied_values), as on a node.
                let values = mapping::applied_values(&status, index)
                    .map_err(|e| fail(format!("the source state has no applied values: {e}")))?;
                match core.snapshot(index, mapping::snapshot_data(&values)) {
                    Ok(r) => r,
                    Err(e) => return Err(fail(format!("the core refused the Snapshot: {e}"))),
                }
            }
            _ => unreachable!("not a single-server transition"),
        };
        written.apply(&ready);
        if mapping::sync_persist(&self.model.cfg) && core.has_pending_writes() {
            // --persist sync: the step is followed at once by its Persist.
            let p = core.persist();
            ready.messages.extend(p.messages);
            if p.committed.is_some() {
                ready.committed = p.committed;
            }
        }
        // The implementation's successor: the source with server i replaced
        // by the core's state and its sends added to the network (a send
        // across a cut link is lost at once).
        let after = core.status();
        let mut actual = src_abs.clone();
        actual.servers[ii] = mapping::status_to_model(&after, n)
            .map_err(|e| fail(format!("the core's state has no model form: {e}")))?;
        let mut sent = Vec::with_capacity(ready.messages.len());
        for m in &ready.messages {
            let mm = mapping::message_to_model(m, n)
                .map_err(|e| fail(format!("the core sent a message with no model form: {e}")))?;
            if !src.is_cut(mm.from, mm.to) {
                sent.push(mm);
            }
        }
        let mut network = src.network.to_vec();
        if let Action::Deliver { message } = a {
            network = minus(network, std::slice::from_ref(message));
        }
        network.extend(sent);
        network.sort();
        actual.network = network;
        let mut extra = Vec::new();
        let in_memory = Written::of(&after);
        if written != in_memory {
            extra.push(FieldDiff {
                field: format!("servers[{ii}].writes (the step's storage writes applied to the state before it)"),
                expected: serde_json::to_string(&in_memory).unwrap_or_default(),
                actual: serde_json::to_string(&written).unwrap_or_default(),
            });
        }
        if !extra.is_empty() || !diff(&expected, &actual).is_empty() {
            return Err(Box::new(Mismatch {
                error: None,
                expected,
                actual,
                extra,
            }));
        }
        self.memo.insert(key);
        Ok(())
    }
}

/// A piece of the search handed between workers: a state on some path
/// and the actions of it still to explore.
struct Job {
    state: State,
    actions: Vec<Action>,
    /// The actions from the initial state to `state`.
    path: Vec<Action>,
}

struct Pool {
    jobs: Vec<Job>,
    /// Workers holding work (a local stack).
    active: usize,
}

struct Shared {
    model: RaftModel,
    bug: Option<ImplBug>,
    n: u8,
    visited: DashSet<u64, NoHash>,
    memo: DashSet<u64, NoHash>,
    pool: Mutex<Pool>,
    /// Workers waiting for a job.
    hungry: AtomicUsize,
    stop: AtomicBool,
    timed_out: AtomicBool,
    started: Instant,
    timeout: Option<Duration>,
    divergence: Mutex<Option<(Vec<Action>, Box<Mismatch>)>>,
}

#[derive(Default)]
struct Counts {
    generated: usize,
    transitions: usize,
    executed: usize,
    max_depth: usize,
}

fn worker(sh: &Shared) -> Counts {
    let mut search = Search {
        model: sh.model.clone(),
        bug: sh.bug,
        n: sh.n,
        memo: &sh.memo,
        transitions: 0,
        executed: 0,
    };
    let mut counts = Counts::default();
    let mut tick = 0u32;
    'jobs: loop {
        // Take a job, or finish when none is left and nobody holds work.
        let job = loop {
            if sh.stop.load(Ordering::Relaxed) {
                break 'jobs;
            }
            {
                let mut pool = sh.pool.lock().expect("pool lock");
                if let Some(j) = pool.jobs.pop() {
                    pool.active += 1;
                    break j;
                }
                if pool.active == 0 {
                    break 'jobs;
                }
            }
            sh.hungry.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(200));
            sh.hungry.fetch_sub(1, Ordering::Relaxed);
        };
        let base = job.path;
        let mut stack = vec![Frame {
            state: job.state,
            actions: job.actions,
            next: 0,
            via: None,
        }];
        while let Some(top) = stack.last_mut() {
            if top.next == top.actions.len() {
                stack.pop();
                continue;
            }
            let a = top.actions[top.next].clone();
            top.next += 1;
            let Some(succ) = search.model.next_state(&top.state, a.clone()) else {
                continue;
            };
            counts.generated += 1;
            tick += 1;
            if tick >= 1024 {
                tick = 0;
                if sh.stop.load(Ordering::Relaxed) {
                    break 'jobs;
                }
                if sh.timeout.is_some_and(|t| sh.started.elapsed() >= t) {
                    sh.timed_out.store(true, Ordering::Relaxed);
                    sh.stop.store(true, Ordering::Relaxed);
                    break 'jobs;
                }
                if sh.hungry.load(Ordering::Relaxed) > 0 {
                    donate(sh, &base, &mut stack);
                }
            }
            if let Some(i) = acting_server(&a) {
                if let Err(m) = search.check(&stack.last().expect("top").state, i, &a, &succ) {
                    let mut path = base.clone();
                    path.extend(stack.iter().filter_map(|f| f.via.clone()));
                    path.push(a);
                    let mut d = sh.divergence.lock().expect("divergence lock");
                    if d.is_none() {
                        *d = Some((path, m));
                    }
                    sh.stop.store(true, Ordering::Relaxed);
                    break 'jobs;
                }
            }
            if !sh.visited.insert(fingerprint(&succ.representative())) {
                continue;
            }
            let mut actions = Vec::new();
            search.model.actions(&succ, &mut actions);
            stack.push(Frame {
                state: succ,
                actions,
                next: 0,
                via: Some(a),
            });
            counts.max_depth = counts.max_depth.max(base.len() + stack.len() - 1);
        }
        sh.pool.lock().expect("pool lock").active -= 1;
    }
    counts.transitions = search.transitions;
    counts.executed = search.executed;
    counts
}

/// Hands the unexplored actions of the lowest frame that has any to the
/// pool (the biggest piece of work this worker holds).
fn donate(sh: &Shared, base: &[Action], stack: &mut [Frame]) {
    let top = stack.len().saturating_sub(1);
    let Some(k) = stack.iter().enumerate().position(|(idx, f)| {
        let left = f.actions.len() - f.next;
        left >= 2 || (left >= 1 && idx < top)
    }) else {
        return;
    };
    let f = &mut stack[k];
    let rest = f.actions.split_off(f.next);
    let mut path = base.to_vec();
    path.extend(stack[..=k].iter().filter_map(|f| f.via.clone()));
    let job = Job {
        state: stack[k].state.clone(),
        actions: rest,
        path,
    };
    sh.pool.lock().expect("pool lock").jobs.push(job);
}

/// Enumerates the reachable states at `opts.bounds` and checks every
/// single-server transition on the core, on `opts.threads` threads. Stops
/// at the first divergence.
pub fn check_transitions(opts: &TransitionsOptions) -> Result<TransitionsSummary, String> {
    let started = Instant::now();
    opts.bounds.validate()?;
    if opts.threads == 0 {
        return Err("threads must be at least 1".into());
    }
    let model = RaftModel::new(opts.bounds.clone());
    let init = model
        .init_states()
        .into_iter()
        .next()
        .ok_or("the model has no initial state")?;
    let visited = DashSet::default();
    visited.insert(fingerprint(&init.representative()));
    let mut actions = Vec::new();
    model.actions(&init, &mut actions);
    let sh = Shared {
        model: model.clone(),
        bug: opts.bug,
        n: opts.bounds.servers,
        visited,
        memo: DashSet::default(),
        pool: Mutex::new(Pool {
            jobs: vec![Job {
                state: init,
                actions,
                path: Vec::new(),
            }],
            active: 0,
        }),
        hungry: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        timed_out: AtomicBool::new(false),
        started,
        timeout: opts.timeout,
        divergence: Mutex::new(None),
    };
    let mut total = Counts::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..opts.threads)
            .map(|_| scope.spawn(|| worker(&sh)))
            .collect();
        for h in handles {
            let c = h.join().expect("transitions worker panicked");
            total.generated += c.generated;
            total.transitions += c.transitions;
            total.executed += c.executed;
            total.max_depth = total.max_depth.max(c.max_depth);
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let divergence = sh.divergence.into_inner().expect("divergence lock");
    let (first_divergence, divergent_trace) = match divergence {
        None => (None, None),
        Some((path, m)) => {
            let a = path.last().cloned().expect("a divergent step");
            let trace = crate::generate::trace_from_actions(&model, TraceKind::Walk, None, &path)?;
            let mut fields = diff(&m.expected, &m.actual);
            fields.extend(m.extra);
            let d = Divergence {
                trace: format!("transition from the state at depth {}", path.len() - 1),
                step: path.len(),
                steps_total: path.len(),
                event: Some(a),
                error: m.error,
                fields,
            };
            (Some(d), Some(trace))
        }
    };
    let divergences = usize::from(first_divergence.is_some());
    let timed_out = sh.timed_out.load(Ordering::Relaxed);
    Ok(TransitionsSummary {
        bounds: opts.bounds.clone(),
        impl_bug: opts.bug.map(|b| b.name()),
        threads: opts.threads,
        states: sh.visited.len(),
        generated: total.generated,
        transitions: total.transitions,
        executed: total.executed,
        divergences,
        max_depth: total.max_depth,
        complete: !timed_out && divergences == 0,
        seconds,
        transitions_per_second: total.transitions as f64 / seconds.max(1e-9),
        first_divergence,
        divergent_trace,
    })
}
