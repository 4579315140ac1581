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
//! event, which of its links are cut, its disk): one already checked is not
//! executed again.
//!
//! The core of a server in a state is carried along the DFS path (each
//! state's cores are its parent's with the acting server's replaced), with
//! the disk the core's outputs wrote: a Restart is `RaftCore::new` from
//! that disk, so a write the core forgets to persist is lost as it would be
//! on a real node.

use crate::divergence::{diff, Divergence};
use crate::mapping;
use raft_model::trace::{Trace, TraceKind};
use raft_model::types::{Action, Message, ServerId};
use raft_model::{Config, RaftModel, State};
use raftkv::core::{CoreConfig, HardState, LogOp, RaftCore, Ready};
use raftkv::node::ImplBug;
use raftkv::types::Entry;
use serde::Serialize;
use stateright::{Model, Representative};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

type NoHash = BuildHasherDefault<nohash_hasher::NoHashHasher<u64>>;

fn fingerprint<T: Hash>(v: &T) -> u64 {
    let mut h = ahash::AHasher::default();
    v.hash(&mut h);
    h.finish()
}

/// MAX_BATCH of the cores: the model's logs are always shorter.
const MAX_BATCH: usize = 1024;

/// The CI bounds of `transitions`: the model's CI bounds.
pub fn ci_bounds() -> Config {
    Config::ci()
}

#[derive(Clone, Debug)]
pub struct TransitionsOptions {
    pub bounds: Config,
    pub bug: Option<ImplBug>,
    /// Stop (incomplete) after this long.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Serialize)]
pub struct TransitionsSummary {
    pub bounds: Config,
    pub impl_bug: Option<&'static str>,
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

/// What a node's storage holds: the core's writes (its `Ready` outputs)
/// applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Disk {
    hard_state: (u64, Option<u64>),
    log: Vec<Entry>,
}

impl Disk {
    fn apply(&mut self, r: &Ready) {
        if let Some(h) = r.hard_state {
            self.hard_state = (h.term, h.voted_for);
        }
        for op in &r.log_ops {
            match op {
                LogOp::Truncate { last_index } => self.log.truncate(*last_index as usize),
                LogOp::Append {
                    first_index,
                    entries,
                } => {
                    self.log.truncate((*first_index - 1) as usize);
                    self.log.extend(entries.iter().cloned());
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct Server {
    core: RaftCore,
    disk: Disk,
}

struct Frame {
    state: State,
    servers: Vec<Server>,
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
        | Action::Restart { server } => Some(*server),
        Action::Deliver { message } => Some(message.to),
        Action::Drop { .. }
        | Action::Duplicate { .. }
        | Action::Partition { .. }
        | Action::Heal => None,
    }
}

fn core_config(n: u8, i: ServerId, bug: Option<ImplBug>) -> CoreConfig {
    let id = mapping::node_id(i);
    CoreConfig {
        id,
        peers: (1..=u64::from(n)).filter(|&p| p != id).collect(),
        max_batch: MAX_BATCH,
        bug,
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

struct Search {
    model: RaftModel,
    bug: Option<ImplBug>,
    n: u8,
    memo: HashMap<u64, Server, NoHash>,
    transitions: usize,
    executed: usize,
}

/// A transition the core does not take as the model does.
struct Mismatch {
    error: Option<String>,
    expected: raft_model::trace::AbstractState,
    actual: raft_model::trace::AbstractState,
}

impl Search {
    /// Checks the transition `a` of server `i` from `src` to `succ` on the
    /// core; returns the server's core after it.
    fn check(
        &mut self,
        src: &State,
        servers: &[Server],
        i: ServerId,
        a: &Action,
        succ: &State,
    ) -> Result<Server, Box<Mismatch>> {
        self.transitions += 1;
        let ii = usize::from(i);
        let cut: u8 = (0..self.n)
            .filter(|&j| src.is_cut(i, j))
            .fold(0, |acc, j| acc | (1 << j));
        let key = fingerprint(&(&src.servers[ii], a, cut, &servers[ii].disk));
        if let Some(s) = self.memo.get(&key) {
            return Ok(s.clone());
        }
        self.executed += 1;
        let mut s = servers[ii].clone();
        let ready = match a {
            Action::Timeout { .. } => s.core.timeout(),
            Action::Heartbeat { .. } => s.core.heartbeat(),
            Action::ClientRequest { value, .. } => match s.core.propose(mapping::command(*value)) {
                Ok((_, _, r)) => r,
                Err(e) => {
                    return Err(Box::new(Mismatch {
                        error: Some(format!("the core refused the ClientRequest: {e}")),
                        expected: succ.to_abstract(),
                        actual: src.to_abstract(),
                    }))
                }
            },
            Action::Deliver { message } => s.core.deliver(mapping::message_to_impl(message)),
            Action::Restart { .. } => {
                let hs = HardState {
                    term: s.disk.hard_state.0,
                    voted_for: s.disk.hard_state.1,
                };
                s.core = RaftCore::new(core_config(self.n, i, self.bug), hs, s.disk.log.clone());
                Ready::default()
            }
            _ => unreachable!("not a single-server transition"),
        };
        s.disk.apply(&ready);
        // The implementation's successor: the source with server i replaced
        // by the core's state and its sends added to the network (a send
        // across a cut link is lost at once).
        let mut actual = src.to_abstract();
        let fail = |error: String, expected| {
            Box::new(Mismatch {
                error: Some(error),
                expected,
                actual: src.to_abstract(),
            })
        };
        actual.servers[ii] = mapping::status_to_model(&s.core.status(), usize::from(self.n))
            .map_err(|e| {
                fail(
                    format!("the core's state has no model form: {e}"),
                    succ.to_abstract(),
                )
            })?;
        let mut sent = Vec::with_capacity(ready.messages.len());
        for m in &ready.messages {
            let mm = mapping::message_to_model(m, usize::from(self.n)).map_err(|e| {
                fail(
                    format!("the core sent a message with no model form: {e}"),
                    succ.to_abstract(),
                )
            })?;
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
        let expected = succ.to_abstract();
        if !diff(&expected, &actual).is_empty() {
            return Err(Box::new(Mismatch {
                error: None,
                expected,
                actual,
            }));
        }
        self.memo.insert(key, s.clone());
        Ok(s)
    }
}

/// Enumerates the reachable states at `opts.bounds` and checks every
/// single-server transition on the core. Stops at the first divergence.
pub fn check_transitions(opts: &TransitionsOptions) -> Result<TransitionsSummary, String> {
    let started = Instant::now();
    opts.bounds.validate()?;
    let model = RaftModel::new(opts.bounds.clone());
    let n = opts.bounds.servers;
    let init = model
        .init_states()
        .into_iter()
        .next()
        .ok_or("the model has no initial state")?;
    let servers: Vec<Server> = (0..n)
        .map(|i| Server {
            core: RaftCore::new(
                core_config(n, i, opts.bug),
                HardState::default(),
                Vec::new(),
            ),
            disk: Disk::default(),
        })
        .collect();
    let mut visited: HashSet<u64, NoHash> = HashSet::default();
    visited.insert(fingerprint(&init.representative()));
    let mut search = Search {
        model: model.clone(),
        bug: opts.bug,
        n,
        memo: HashMap::default(),
        transitions: 0,
        executed: 0,
    };
    let mut actions = Vec::new();
    model.actions(&init, &mut actions);
    let mut stack = vec![Frame {
        state: init,
        servers,
        actions,
        next: 0,
        via: None,
    }];
    let mut generated = 0usize;
    let mut max_depth = 0usize;
    let mut timed_out = false;
    let mut divergence = None;
    let mut since_clock = 0u32;
    'dfs: while let Some(top) = stack.last_mut() {
        if top.next == top.actions.len() {
            stack.pop();
            continue;
        }
        let a = top.actions[top.next].clone();
        top.next += 1;
        let Some(succ) = search.model.next_state(&top.state, a.clone()) else {
            continue;
        };
        generated += 1;
        since_clock += 1;
        if since_clock >= 4096 {
            since_clock = 0;
            if opts.timeout.is_some_and(|t| started.elapsed() >= t) {
                timed_out = true;
                break;
            }
        }
        let changed = match acting_server(&a) {
            Some(i) => match search.check(&top.state, &top.servers, i, &a, &succ) {
                Ok(s) => Some((i, s)),
                Err(m) => {
                    divergence = Some((a, m));
                    break 'dfs;
                }
            },
            None => None,
        };
        let fp = fingerprint(&succ.representative());
        if !visited.insert(fp) {
            continue;
        }
        let mut servers = top.servers.clone();
        if let Some((i, s)) = changed {
            servers[usize::from(i)] = s;
        }
        let mut actions = Vec::new();
        search.model.actions(&succ, &mut actions);
        stack.push(Frame {
            state: succ,
            servers,
            actions,
            next: 0,
            via: Some(a),
        });
        max_depth = max_depth.max(stack.len() - 1);
    }
    let seconds = started.elapsed().as_secs_f64();
    let (first_divergence, divergent_trace) = match divergence {
        None => (None, None),
        Some((a, m)) => {
            let mut path: Vec<Action> = stack.iter().filter_map(|f| f.via.clone()).collect();
            path.push(a.clone());
            let trace = crate::generate::trace_from_actions(&model, TraceKind::Walk, None, &path)?;
            let fields = diff(&m.expected, &m.actual);
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
    Ok(TransitionsSummary {
        bounds: opts.bounds.clone(),
        impl_bug: opts.bug.map(|b| b.name()),
        states: visited.len(),
        generated,
        transitions: search.transitions,
        executed: search.executed,
        divergences,
        max_depth,
        complete: !timed_out && divergences == 0,
        seconds,
        transitions_per_second: search.transitions as f64 / seconds.max(1e-9),
        first_divergence,
        divergent_trace,
    })
}
