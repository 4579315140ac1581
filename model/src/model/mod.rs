//! The Raft model: one small function per event of docs/protocol.md §4, in
//! the style of Ongaro's raft.tla. Every function takes the state before the
//! step and returns the state after it; `actions` lists only enabled events.
//!
//! The events by responsibility, each citing the rule ids it implements:
//! [`enabled`] (which events the bounds allow), [`election`] (§3 term rule,
//! R-vote-*), [`replication`] (R-append-*, R-commit-*, R-snap-3, R-snap-7),
//! [`durability`] (R-persist-*, R-restart-1, R-snap-5), [`snapshot`]
//! (R-snap-2, R-snap-4), [`ghosts`] (the history the properties read).
//! The network events (Deliver dispatch, Drop, Duplicate, Partition, Heal)
//! and the step function are here.

mod durability;
mod election;
mod enabled;
mod ghosts;
mod replication;
mod snapshot;

use crate::config::{Bug, Config, PersistMode};
use crate::properties;
use crate::state::{bit, flags, State};
use crate::types::{Action, Body, Message, RequestVoteResponse, ServerId};
use stateright::{Model, Path, Property};

/// The model of a Raft cluster under the bounds of `cfg`.
#[derive(Clone, Debug)]
pub struct RaftModel {
    pub cfg: Config,
}

impl RaftModel {
    pub fn new(cfg: Config) -> Self {
        RaftModel { cfg }
    }

    fn n(&self) -> usize {
        usize::from(self.cfg.servers)
    }

    fn has_bug(&self, bug: Bug) -> bool {
        self.cfg.bug == Some(bug)
    }

    fn majority(&self) -> usize {
        self.cfg.majority()
    }

    /// Commit quorum size: a majority, or `n / 2` with the quorum-minority bug.
    fn commit_quorum(&self) -> usize {
        if self.has_bug(Bug::QuorumMinority) {
            self.n() / 2
        } else {
            self.majority()
        }
    }

    /// Puts `m` in flight unless its link is cut (then it is lost at once,
    /// R-net-2).
    /// A granted RequestVoteResponse entering the network is the moment the
    /// vote becomes observable: it is recorded then (see `record_vote`).
    fn send(&self, s: &mut State, m: Message) {
        if s.is_cut(m.from, m.to) {
            return;
        }
        if let Body::RequestVoteResponse(RequestVoteResponse {
            term,
            granted: true,
        }) = m.body
        {
            self.record_vote(s, term, m.from, m.to);
        }
        s.network.push(m);
    }

    /// Deliver(m): remove one copy of `m` and let its destination handle it
    /// (the handlers in election.rs and replication.rs).
    pub fn deliver(&self, s: &mut State, m: &Message) {
        if let Some(pos) = self.deliverable_position(s, m) {
            s.network.remove(pos);
        }
        let (i, from) = (m.to, m.from);
        match &m.body {
            Body::RequestVote(rv) => self.handle_request_vote(s, i, from, rv),
            Body::RequestVoteResponse(rvr) => self.handle_request_vote_response(s, i, from, rvr),
            Body::AppendEntries(ae) => self.handle_append_entries(s, i, from, ae),
            Body::AppendEntriesResponse(aer) => {
                self.handle_append_entries_response(s, i, from, aer)
            }
            Body::InstallSnapshot(is) => self.handle_install_snapshot(s, i, from, is),
        }
    }

    /// Drop(m), R-net-1: the network loses one copy of `m`.
    pub fn drop_message(&self, s: &mut State, m: &Message) {
        if let Some(pos) = s.network.iter().position(|o| o == m) {
            s.network.remove(pos);
        }
    }

    /// Duplicate(m), R-net-1: a second copy of `m`. On the ordered network the copy
    /// goes right behind the original, so the link delivers it twice in a row.
    pub fn duplicate(&self, s: &mut State, m: &Message) {
        if let Some(pos) = self.deliverable_position(s, m) {
            s.network.insert(pos + 1, m.clone());
        }
        s.duplicates += 1;
    }

    /// Partition(S), R-net-2: cut every link between `group` and the rest.
    pub fn partition(&self, s: &mut State, group: &[ServerId]) {
        s.partition = group.iter().fold(0, |acc, &id| acc | bit(id));
        s.partitions += 1;
    }

    /// Heal, R-net-2: restore every link.
    pub fn heal(&self, s: &mut State) {
        s.partition = 0;
    }

    /// Applies an enabled action. Also maintains the ghost state that is a
    /// function of the step as a whole.
    fn apply(&self, last: &State, action: &Action) -> State {
        let mut s = last.clone();
        s.ghost.flags &= !flags::EVENTS;
        match action {
            Action::Timeout { server } => self.timeout(&mut s, *server),
            Action::Heartbeat { server } => self.heartbeat(&mut s, *server),
            Action::ClientRequest { server, value } => self.client_request(&mut s, *server, *value),
            Action::Deliver { message } => self.deliver(&mut s, message),
            Action::Drop { message } => self.drop_message(&mut s, message),
            Action::Duplicate { message } => self.duplicate(&mut s, message),
            Action::Persist { server } => self.persist(&mut s, *server),
            Action::Restart { server } => self.restart(&mut s, *server),
            Action::Snapshot { server, index } => self.snapshot(&mut s, *server, *index),
            Action::Partition { group } => self.partition(&mut s, group),
            Action::Heal => self.heal(&mut s),
        }
        if self.cfg.persist == PersistMode::Sync {
            self.persist_all(&mut s);
        }
        s.normalize_network(self.cfg.network);
        self.update_ghosts(last, action, &mut s);
        s
    }

    /// Whether any `always` property fails in `s`. Every one, checked or
    /// not: a property left out at these bounds (`properties::applies`)
    /// cannot fail in a state they reach, and a hand-built or recorded
    /// state is still judged by all of them.
    pub fn violates_safety(&self, s: &State) -> bool {
        properties::SAFETY.iter().any(|(_, f)| !f(self, s))
    }
}

impl Model for RaftModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial(self.cfg.servers)]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        // Violating states are terminal: counterexamples end at the violation.
        if self.violates_safety(s) {
            return;
        }
        // Order matters for speed: DFS explores the last action first, so
        // faults come first and protocol progress (deliveries) last; a bug is
        // then found along short, busy paths.
        if s.restarts < self.cfg.max_restarts {
            for i in 0..self.cfg.servers {
                // A restart that changes nothing only spends budget: every
                // state after it is reachable without it, so it is not listed
                // (next_state still accepts it, for recorded traces).
                if self.restart_changes(s, i) {
                    actions.push(Action::Restart { server: i });
                }
            }
        }
        if s.partition == 0 && s.partitions < self.cfg.max_partitions {
            for group in self.partition_groups() {
                actions.push(Action::Partition { group });
            }
        }
        if s.partition != 0 {
            actions.push(Action::Heal);
        }
        let distinct = |pos: usize| pos == 0 || s.network[pos - 1] != s.network[pos];
        for (pos, m) in s.network.iter().enumerate() {
            // Identical copies are one action.
            if !distinct(pos) {
                continue;
            }
            actions.push(Action::Drop { message: m.clone() });
            if s.duplicates < self.cfg.max_duplicates
                && self.fits(s, 0, 1)
                && self.is_deliverable(s, pos)
            {
                actions.push(Action::Duplicate { message: m.clone() });
            }
        }
        for i in 0..self.cfg.servers {
            let a = Action::Timeout { server: i };
            if self.is_enabled(s, &a) {
                actions.push(a);
            }
        }
        for i in 0..self.cfg.servers {
            let a = Action::Heartbeat { server: i };
            if self.is_enabled(s, &a) {
                actions.push(a);
            }
            let a = Action::ClientRequest {
                server: i,
                value: s.requests.saturating_add(1),
            };
            if self.is_enabled(s, &a) {
                actions.push(a);
            }
        }
        for i in 0..self.cfg.servers {
            let from = s.servers[usize::from(i)].snapshot_index + 1;
            for index in from..=self.snapshot_target(s, i) {
                let a = Action::Snapshot { server: i, index };
                if self.is_enabled(s, &a) {
                    actions.push(a);
                }
            }
        }
        // Persist is listed only when there are pending writes (never in
        // sync mode, where nothing is pending between steps).
        for i in 0..self.cfg.servers {
            if self.has_pending_writes(s, i) {
                actions.push(Action::Persist { server: i });
            }
        }
        for (pos, m) in s.network.iter().enumerate() {
            if distinct(pos) && self.is_deliverable(s, pos) {
                let a = Action::Deliver { message: m.clone() };
                if self.is_enabled(s, &a) {
                    actions.push(a);
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        // A state of another cluster size (e.g. a foreign abstract state) has
        // no transitions here.
        if last.n() != self.n() || !self.is_enabled(last, &action) {
            return None;
        }
        Some(self.apply(last, &action))
    }

    fn format_action(&self, action: &Action) -> String {
        crate::svg::describe_action(action)
    }

    fn as_svg(&self, path: Path<State, Action>) -> Option<String> {
        Some(crate::svg::sequence_diagram(self, &path))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        // A property that cannot mean anything at these bounds is not
        // checked (`properties::not_checked` names it and says why).
        let mut props: Vec<Property<Self>> = properties::SAFETY
            .iter()
            .filter(|(name, _)| properties::applies(name, &self.cfg))
            .map(|&(name, f)| Property::always(name, f))
            .collect();
        props.extend(
            properties::REACHABILITY
                .iter()
                .filter(|(name, _)| properties::applies(name, &self.cfg))
                .map(|&(name, f)| Property::sometimes(name, f)),
        );
        props
    }
}
