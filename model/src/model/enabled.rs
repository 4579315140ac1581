//! Enabledness: which events the bounds allow in a state (`is_enabled`,
//! the single source of truth for `actions` and `next_state`), and the
//! message counting behind `max_inflight`.

use super::RaftModel;
use crate::config::{Bug, NetworkKind, PersistMode};
use crate::state::{bit, State};
use crate::types::{Action, Body, Message, RequestVoteResponse, Role, ServerId};

impl RaftModel {
    /// Number of peers of `i` that a broadcast from `i` would reach (sends
    /// across a cut are lost at once and never enter the network).
    pub(super) fn reachable_peers(&self, s: &State, i: ServerId) -> usize {
        (0..self.cfg.servers)
            .filter(|&j| j != i && !s.is_cut(i, j))
            .count()
    }

    /// Messages counted by `max_inflight`: the network plus every outbox
    /// (an outbox message is sent, just not yet released). Releasing an
    /// outbox at Persist therefore never changes the count, and Persist is
    /// always within the bound.
    pub fn inflight(&self, s: &State) -> usize {
        s.network.len() + s.servers.iter().map(|srv| srv.outbox.len()).sum::<usize>()
    }

    /// Whether a step's sends fit `max_inflight`; 255 (`u8::MAX`) is no
    /// bound at all (scripts and recorded traces: a real network can hold
    /// more than 255 messages at once).
    pub(super) fn fits(&self, s: &State, removed: usize, added: usize) -> bool {
        self.cfg.max_inflight == u8::MAX
            || self.inflight(s) - removed + added <= usize::from(self.cfg.max_inflight)
    }

    /// Whether server `i` has pending writes: its in-memory state differs
    /// from the durable part in a field that Persist writes (with the
    /// no-persist-vote bug Persist never writes `voted_for`, so a vote alone
    /// is not pending).
    pub fn has_pending_writes(&self, s: &State, i: ServerId) -> bool {
        let srv = &s.servers[usize::from(i)];
        srv.term != srv.durable_term
            || srv.log != srv.durable_log
            || !srv.snapshot_is_durable()
            || (!self.has_bug(Bug::NoPersistVote) && srv.voted_for != srv.durable_voted_for)
    }

    /// Messages a Timeout of `i` adds to the count: its RequestVotes wait in
    /// the outbox (the new term is pending), across a cut too, since the cut
    /// is applied when they are released; in sync mode they are released in
    /// the same step and the ones across a cut are lost at once.
    pub(super) fn timeout_sends(&self, s: &State, i: ServerId) -> usize {
        match self.cfg.persist {
            PersistMode::Async => self.n() - 1,
            PersistMode::Sync => self.reachable_peers(s, i),
        }
    }

    /// Whether delivering `m` (a RequestVoteResponse) makes its receiver leader.
    pub(super) fn wins_with(&self, s: &State, m: &Message) -> bool {
        let Body::RequestVoteResponse(RequestVoteResponse { term, granted }) = m.body else {
            return false;
        };
        let c = &s.servers[usize::from(m.to)];
        granted
            && term == c.term
            && c.role == Role::Candidate
            && c.votes_granted & bit(m.from) == 0
            && (c.votes_granted | bit(m.from)).count_ones() as usize >= self.majority()
    }

    /// Whether `m` may be delivered or duplicated now: its link is not cut,
    /// and on an ordered network it is the oldest message of its link.
    pub(super) fn is_deliverable(&self, s: &State, pos: usize) -> bool {
        let m = &s.network[pos];
        if s.is_cut(m.from, m.to) {
            return false;
        }
        match self.cfg.network {
            NetworkKind::Unordered => true,
            NetworkKind::Ordered => s.network[..pos]
                .iter()
                .all(|o| (o.from, o.to) != (m.from, m.to)),
        }
    }

    /// Position of a copy of `m` that may be delivered (for the ordered
    /// network, the head of the link must equal `m`).
    pub(super) fn deliverable_position(&self, s: &State, m: &Message) -> Option<usize> {
        match self.cfg.network {
            NetworkKind::Unordered => s.network.iter().position(|o| o == m),
            NetworkKind::Ordered => s
                .network
                .iter()
                .position(|o| (o.from, o.to) == (m.from, m.to))
                .filter(|&p| &s.network[p] == m),
        }
        .filter(|&p| self.is_deliverable(s, p))
    }

    pub(super) fn valid_server(&self, i: ServerId) -> bool {
        usize::from(i) < self.n()
    }

    /// Whether `action` is enabled in `s` under the bounds. `next_state`
    /// returns `None` exactly when this is false.
    pub fn is_enabled(&self, s: &State, action: &Action) -> bool {
        match action {
            Action::Timeout { server } => {
                self.valid_server(*server) && {
                    let srv = &s.servers[usize::from(*server)];
                    srv.role != Role::Leader
                        && srv.term < self.cfg.max_term
                        && self.fits(s, 0, self.timeout_sends(s, *server))
                }
            }
            Action::Heartbeat { server } => {
                self.valid_server(*server)
                    && s.servers[usize::from(*server)].role == Role::Leader
                    && self.fits(s, 0, self.reachable_peers(s, *server))
            }
            Action::ClientRequest { server, value } => {
                // The checker only lists value `requests + 1`; any fresh value
                // is accepted so that traces rebuilt by `from_abstract` replay.
                self.valid_server(*server)
                    && s.servers[usize::from(*server)].role == Role::Leader
                    && s.requests < self.cfg.max_requests
                    && *value > s.requests
                    && *value <= self.cfg.max_requests
            }
            Action::Deliver { message } => {
                self.valid_server(message.from)
                    && self.valid_server(message.to)
                    && message.from != message.to
                    && self.deliverable_position(s, message).is_some()
                    && (!self.wins_with(s, message)
                        || self.fits(s, 1, self.reachable_peers(s, message.to)))
            }
            Action::Drop { message } => s.network.contains(message),
            Action::Duplicate { message } => {
                s.duplicates < self.cfg.max_duplicates
                    && self.fits(s, 0, 1)
                    && self.deliverable_position(s, message).is_some()
            }
            Action::Persist { server } => {
                self.valid_server(*server) && self.has_pending_writes(s, *server)
            }
            Action::Restart { server } => {
                self.valid_server(*server) && s.restarts < self.cfg.max_restarts
            }
            // R-snap-2: an index above the snapshot, at most the commit
            // index (with the snapshot-uncommitted bug: the last index).
            Action::Snapshot { server, index } => {
                self.valid_server(*server)
                    && (self.cfg.max_snapshots == u8::MAX || s.snapshots < self.cfg.max_snapshots)
                    && *index > s.servers[usize::from(*server)].snapshot_index
                    && *index <= self.snapshot_target(s, *server)
            }
            Action::Partition { group } => {
                let mut set = 0u8;
                for &id in group {
                    if !self.valid_server(id) || set & bit(id) != 0 {
                        return false;
                    }
                    set |= bit(id);
                }
                s.partition == 0
                    && s.partitions < self.cfg.max_partitions
                    && !group.is_empty()
                    && group.len() < self.n()
            }
            Action::Heal => s.partition != 0,
        }
    }

    /// The partition groups listed as actions: every minority group, and for
    /// an even cluster the halves that contain server 0. `Partition(S)` and
    /// `Partition(rest)` cut the same links, so each cut is listed once.
    pub fn partition_groups(&self) -> Vec<Vec<ServerId>> {
        let n = self.n();
        let mut groups = Vec::new();
        for mask in 1u32..(1u32 << n) - 1 {
            let size = mask.count_ones() as usize;
            if size * 2 < n || (size * 2 == n && mask & 1 != 0) {
                groups.push(
                    (0..n as ServerId)
                        .filter(|i| mask & (1 << i) != 0)
                        .collect(),
                );
            }
        }
        groups
    }
}
