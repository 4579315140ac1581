//! Running a script's commands on the model and on real nodes, and what a
//! command prints. Both sides print through the same functions from their
//! own abstract state, so equal states print equal text.

use super::config::describe_config;
use super::parse::{Command, Script, Selector, Verb};
use crate::cluster::{Cluster, ClusterError};
use raft_model::state::State;
use raft_model::svg::{describe_action, describe_body, describe_server};
use raft_model::trace::AbstractState;
use raft_model::types::{Action, Message, Role, ServerId, Value};
use raft_model::{NetworkKind, RaftModel};
use raftkv::node::ImplBug;
use std::path::Path;

/// `a→b body`, as the model's reports write a message.
fn describe_message(m: &Message) -> String {
    format!("{}→{} {}", m.from, m.to, describe_body(&m.body))
}

/// The network in the order `state` lists it and `#K` counts: sorted, or
/// for the ordered network by link, each link oldest first.
fn listed_network(a: &AbstractState, kind: NetworkKind) -> Vec<Message> {
    let mut net = a.network.clone();
    match kind {
        NetworkKind::Unordered => net.sort(),
        NetworkKind::Ordered => net.sort_by_key(|m| (m.from, m.to)),
    }
    net
}

/// What `state` prints: one line per server, the messages in flight, the
/// partition.
pub fn describe_state(a: &AbstractState, kind: NetworkKind) -> String {
    let mut lines: Vec<String> = a
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| describe_server(i, s))
        .collect();
    let net = listed_network(a, kind);
    if net.is_empty() {
        lines.push("in flight: none".into());
    }
    for m in &net {
        lines.push(format!("in flight: {}", describe_message(m)));
    }
    if a.partition.is_some() {
        lines.push(describe_partition(a));
    }
    lines.join("\n")
}

/// `partition: [0] | [1, 2]`, or `partition: none`.
fn describe_partition(a: &AbstractState) -> String {
    match &a.partition {
        Some(g) => {
            let rest: Vec<ServerId> = (0..a.servers.len() as ServerId)
                .filter(|i| !g.contains(i))
                .collect();
            format!("partition: {g:?} | {rest:?}")
        }
        None => "partition: none".into(),
    }
}

/// The budgets a state spends that its abstract form does not carry; kept
/// by the side that runs the implementation, so that the model's
/// enabledness can be asked of the implementation's own state.
#[derive(Clone, Copy, Debug, Default)]
struct Budgets {
    requests: Value,
    restarts: u8,
    partitions: u8,
    duplicates: u8,
    snapshots: u8,
}

impl Budgets {
    fn of(s: &State) -> Budgets {
        Budgets {
            requests: s.requests,
            restarts: s.restarts,
            partitions: s.partitions,
            duplicates: s.duplicates,
            snapshots: s.snapshots,
        }
    }

    fn spend(&mut self, action: &Action) {
        match action {
            Action::ClientRequest { value, .. } => self.requests = self.requests.max(*value),
            Action::Restart { .. } => self.restarts += 1,
            Action::Partition { .. } => self.partitions += 1,
            Action::Duplicate { .. } => self.duplicates += 1,
            Action::Snapshot { .. } => self.snapshots += 1,
            _ => {}
        }
    }

    /// The model state of an abstract state with these budgets.
    fn state(self, a: &AbstractState) -> State {
        let mut s = State::from_abstract(a);
        s.requests = s.requests.max(self.requests);
        s.restarts = self.restarts;
        s.partitions = self.partitions;
        s.duplicates = self.duplicates;
        s.snapshots = self.snapshots;
        s
    }
}

/// The model action of a command in state `a`, or the error line it prints
/// (a message selection that matches no message, or several).
fn resolve(cmd: &Command, a: &AbstractState, kind: NetworkKind) -> Result<Option<Action>, String> {
    Ok(Some(match cmd {
        Command::Config | Command::State => return Ok(None),
        Command::Timeout(server) => Action::Timeout { server: *server },
        Command::Heartbeat(server) => Action::Heartbeat { server: *server },
        Command::Persist(server) => Action::Persist { server: *server },
        Command::Restart(server) => Action::Restart { server: *server },
        Command::Snapshot(server, index) => Action::Snapshot {
            server: *server,
            // Without an index: the server's commit index.
            index: index.unwrap_or(a.servers[usize::from(*server)].commit_index),
        },
        Command::Request(server, value) => Action::ClientRequest {
            server: *server,
            value: *value,
        },
        Command::Partition(group) => Action::Partition {
            group: group.clone(),
        },
        Command::Heal => Action::Heal,
        Command::Message(verb, sel) => {
            let message = select(sel, a, kind)?;
            match verb {
                Verb::Deliver => Action::Deliver { message },
                Verb::Drop => Action::Drop { message },
                Verb::Duplicate => Action::Duplicate { message },
            }
        }
    }))
}

fn select(sel: &Selector, a: &AbstractState, kind: NetworkKind) -> Result<Message, String> {
    let mut found: Vec<Message> = listed_network(a, kind)
        .into_iter()
        .filter(|m| sel.matches(m))
        .collect();
    // Identical copies are one choice.
    found.dedup();
    let what = sel.to_string();
    match (sel.pick, found.len()) {
        (Some(k), n) if k <= n => Ok(found.swap_remove(k - 1)),
        (Some(k), n) => Err(format!(
            "#{k}: only {n} message{} {what} in flight",
            if n == 1 { "" } else { "s" }
        )),
        (None, 0) => Err(format!("no message {what} in flight")),
        (None, 1) => Ok(found.swap_remove(0)),
        (None, n) => {
            let list: Vec<String> = found
                .iter()
                .enumerate()
                .map(|(k, m)| format!("#{} {}", k + 1, describe_body(&m.body)))
                .collect();
            Err(format!(
                "{n} messages {what} in flight, qualify the selection: {}",
                list.join("; ")
            ))
        }
    }
}

/// Why the model does not enable `action` in `s`, in a few words.
fn refusal(model: &RaftModel, s: &State, action: &Action) -> String {
    let cfg = &model.cfg;
    let srv = |i: ServerId| &s.servers[usize::from(i)];
    let full = format!("max_inflight {} would be exceeded", cfg.max_inflight);
    let reason = match action {
        Action::Timeout { server } if srv(*server).role == Role::Leader => {
            format!("s{server} is leader")
        }
        Action::Timeout { server } if srv(*server).term >= cfg.max_term => {
            format!("s{server} is at max_term {}", cfg.max_term)
        }
        Action::Heartbeat { server } | Action::ClientRequest { server, .. }
            if srv(*server).role != Role::Leader =>
        {
            format!("s{server} is not leader")
        }
        Action::ClientRequest { value, .. } if *value <= s.requests => {
            format!(
                "v{value} is not fresh: values so far go up to v{}",
                s.requests
            )
        }
        Action::ClientRequest { value, .. } if *value > cfg.max_requests => {
            format!("v{value} is above max_requests {}", cfg.max_requests)
        }
        Action::ClientRequest { .. } => format!("max_requests {} reached", cfg.max_requests),
        Action::Deliver { message } | Action::Duplicate { message }
            if s.is_cut(message.from, message.to) =>
        {
            format!(
                "link {}-{} is cut by the partition",
                message.from, message.to
            )
        }
        Action::Duplicate { .. } if s.duplicates >= cfg.max_duplicates => {
            format!("max_duplicates {} reached", cfg.max_duplicates)
        }
        Action::Deliver { message } | Action::Duplicate { message }
            if cfg.network == NetworkKind::Ordered
                && s.network
                    .iter()
                    .find(|o| (o.from, o.to) == (message.from, message.to))
                    != Some(message) =>
        {
            format!(
                "not the oldest message on link {}->{} (ordered network)",
                message.from, message.to
            )
        }
        Action::Persist { server } => format!("s{server} has no pending writes"),
        Action::Restart { .. } => format!("max_restarts {} reached", cfg.max_restarts),
        Action::Snapshot { .. } if s.snapshots >= cfg.max_snapshots => {
            format!("max_snapshots {} reached", cfg.max_snapshots)
        }
        Action::Snapshot { server, index } => format!(
            "{index} is not above s{server}'s snapshot and at most its commit index \
             (snapshot={}, commit={})",
            srv(*server).snapshot_index,
            srv(*server).commit_index
        ),
        Action::Partition { .. } if s.partition != 0 => "a partition is active: heal first".into(),
        Action::Partition { .. } if s.partitions >= cfg.max_partitions => {
            format!("max_partitions {} reached", cfg.max_partitions)
        }
        Action::Partition { .. } => "a side must hold some but not all servers".into(),
        Action::Heal => "no partition is active".into(),
        _ => full,
    };
    format!("error: {} refused: {reason}", describe_action(action))
}

/// Multiset difference: the messages of `a` that `b` does not account for.
fn minus<'a>(a: &'a [Message], b: &[Message]) -> Vec<&'a Message> {
    let mut rest: Vec<&Message> = b.iter().collect();
    let mut out = Vec::new();
    for m in a {
        match rest.iter().position(|r| *r == m) {
            Some(p) => {
                rest.swap_remove(p);
            }
            None => out.push(m),
        }
    }
    out
}

/// What an applied step prints: the resolved message (for deliver, drop
/// and duplicate), every server whose one-line form changed, as it is now,
/// the messages that entered or left the network besides the one the
/// command names, and the partition when it changed.
pub fn describe_step(action: &Action, before: &AbstractState, after: &AbstractState) -> String {
    let mut lines = Vec::new();
    let mut named: Option<&Message> = None;
    if let Action::Deliver { message } | Action::Drop { message } | Action::Duplicate { message } =
        action
    {
        lines.push(describe_action(action));
        named = Some(message);
    }
    for (i, (b, a)) in before.servers.iter().zip(&after.servers).enumerate() {
        let now = describe_server(i, a);
        if describe_server(i, b) != now {
            lines.push(now);
        }
    }
    let mut sent = minus(&after.network, &before.network);
    let mut gone = minus(&before.network, &after.network);
    if let (Some(m), Action::Duplicate { .. }) = (named, action) {
        if let Some(p) = sent.iter().position(|x| *x == m) {
            sent.remove(p);
        }
    } else if let Some(m) = named {
        if let Some(p) = gone.iter().position(|x| *x == m) {
            gone.remove(p);
        }
    }
    sent.sort();
    gone.sort();
    lines.extend(sent.iter().map(|m| format!("sent {}", describe_message(m))));
    lines.extend(
        gone.iter()
            .map(|m| format!("removed {}", describe_message(m))),
    );
    if before.partition != after.partition {
        lines.push(describe_partition(after));
    }
    if lines.is_empty() {
        lines.push("no change".into());
    }
    lines.join("\n")
}

/// The script run on the model: one output per command.
pub fn run_model(script: &Script) -> Vec<String> {
    let model = RaftModel::new(script.config.clone());
    let kind = script.config.network;
    let mut s = State::initial(script.config.servers);
    let mut outputs = Vec::new();
    for case in script.cases() {
        let a = s.to_abstract();
        let out = match &case.command {
            Command::Config => describe_config(&script.config),
            Command::State => describe_state(&a, kind),
            cmd => match resolve(cmd, &a, kind) {
                Err(e) => format!("error: {e}"),
                Ok(None) => unreachable!("only config and state have no action"),
                Ok(Some(action)) => {
                    use stateright::Model;
                    match model.next_state(&s, action.clone()) {
                        Some(next) => {
                            let out = describe_step(&action, &a, &next.to_abstract());
                            s = next;
                            out
                        }
                        None => refusal(&model, &s, &action),
                    }
                }
            },
        };
        outputs.push(out);
    }
    outputs
}

/// The script run on a fresh cluster of real nodes (data under `root`):
/// one output per command. A command the model does not enable in the
/// implementation's own state is not applied (as replays never apply
/// one), and prints the model's refusal.
pub async fn run_impl(
    script: &Script,
    bug: Option<ImplBug>,
    root: &Path,
) -> Result<Vec<String>, ClusterError> {
    let model = RaftModel::new(script.config.clone());
    let kind = script.config.network;
    let mut cluster = Cluster::start(usize::from(script.config.servers), bug, root).await?;
    cluster.set_persist(script.config.persist);
    let mut budgets = Budgets::of(&State::initial(script.config.servers));
    let mut outputs = Vec::new();
    let mut broken: Option<String> = None;
    for case in script.cases() {
        if let Some(why) = &broken {
            outputs.push(format!("error: not run: {why}"));
            continue;
        }
        let a = match cluster.abstract_state().await {
            Ok(a) => a,
            Err(e) => {
                let why = format!("implementation state: {e}");
                outputs.push(format!("error: {why}"));
                broken = Some(why);
                continue;
            }
        };
        let out = match &case.command {
            Command::Config => describe_config(&script.config),
            Command::State => describe_state(&a, kind),
            cmd => match resolve(cmd, &a, kind) {
                Err(e) => format!("error: {e}"),
                Ok(None) => unreachable!("only config and state have no action"),
                Ok(Some(action)) => {
                    let s = budgets.state(&a);
                    if !model.is_enabled(&s, &action) {
                        refusal(&model, &s, &action)
                    } else {
                        let applied = cluster.apply(&action).await;
                        budgets.spend(&action);
                        match (applied, cluster.abstract_state().await) {
                            (Ok(()), Ok(after)) => describe_step(&action, &a, &after),
                            (Err(e), _) => format!("error: the implementation refused: {e}"),
                            (Ok(()), Err(e)) => {
                                let why = format!("implementation state: {e}");
                                broken = Some(why.clone());
                                format!("error: {why}")
                            }
                        }
                    }
                }
            },
        };
        outputs.push(out);
    }
    cluster.shutdown().await;
    Ok(outputs)
}
