//! The model's state: servers, the network, the partition, the budgets used
//! so far, and the ghost variables that the properties read.
//!
//! Server sets (votes granted, partition group, quorums) are `u8` bit masks
//! and client values in ghost records are growable bit sets with one word
//! inline (`bit v - 1`): states are cloned and hashed millions of times per
//! second, and a recorded trace may carry any number of values.

use crate::config::{NetworkKind, MAX_SERVERS};
use crate::trace::{AbstractServer, AbstractState};
use crate::types::{
    AppendEntries, Body, Entry, Index, InstallSnapshot, Message, Role, ServerId, Term, Value,
};
use smallvec::SmallVec;

mod symmetry;

use symmetry::mix;

/// Whether two `snapshot values ++ log values` sequences agree on their
/// first `k` values (as `a.take(k).eq(b.take(k))`): the part both snapshots
/// cover is one slice comparison, since a long recorded trace's snapshots
/// hold thousands of values; the rest goes value by value.
pub fn values_prefix_eq(a: (&[Value], &[Entry]), b: (&[Value], &[Entry]), k: usize) -> bool {
    fn rest<'a>(
        (snap, log): (&'a [Value], &'a [Entry]),
        from: usize,
        n: usize,
    ) -> impl Iterator<Item = Value> + 'a {
        snap[from..]
            .iter()
            .copied()
            .chain(log.iter().map(|e| e.value))
            .take(n)
    }
    let both = a.0.len().min(b.0.len()).min(k);
    a.0[..both] == b.0[..both] && rest(a, both, k - both).eq(rest(b, both, k - both))
}

/// A snapshot and the log after it, borrowed as plain slices, to ask
/// [`ServerState::holds`] of many records in one tight loop: the ghost
/// commit records of a long recorded trace number in the thousands, and
/// the properties that read them run at every step.
#[derive(Clone, Copy)]
pub struct HeldLog<'a> {
    snapshot_index: Index,
    snapshot_term: Term,
    values: &'a [Value],
    log: &'a [Entry],
}

impl<'a> HeldLog<'a> {
    pub fn new(
        snapshot_index: Index,
        snapshot_term: Term,
        values: &'a [Value],
        log: &'a [Entry],
    ) -> Self {
        HeldLog {
            snapshot_index,
            snapshot_term,
            values,
            log,
        }
    }

    /// `ServerState::holds` (or `durable_holds`) on these parts: the value
    /// at `index`, and the term where it is known (at and after the
    /// snapshot index).
    #[inline]
    pub fn holds(&self, index: Index, entry: &Entry) -> bool {
        if index == 0 {
            false
        } else if index < self.snapshot_index {
            self.values.get(index as usize - 1) == Some(&entry.value)
        } else if index == self.snapshot_index {
            self.values.get(index as usize - 1) == Some(&entry.value)
                && self.snapshot_term == entry.term
        } else {
            self.log.get((index - self.snapshot_index) as usize - 1) == Some(entry)
        }
    }

    /// Whether every `(index, entry)` of `records` is held.
    pub fn holds_all<'r>(&self, records: impl IntoIterator<Item = &'r CommitRecord>) -> bool {
        records.into_iter().all(|c| self.holds(c.index, &c.entry))
    }
}

/// A server's log. Inline up to 4 entries (bounded checks never exceed
/// `max_requests` entries), so cloning a state does not allocate.
pub type Log = SmallVec<[Entry; 4]>;
/// The values of the entries a snapshot covers (`1..=snapshot_index`, in
/// order: the model's state machine, R-snap-1), shared by reference.
pub use crate::types::Values;
/// The servers of a state, inline up to 5.
pub type Servers = SmallVec<[ServerState; 5]>;
/// The messages in flight, inline up to 4.
pub type Network = SmallVec<[Message; 4]>;

/// Bit mask of a set of servers.
pub type ServerSet = u8;
/// A set of client values: bit `v - 1` for value `v`, in 64-bit words, the
/// first inline (the checker's bounds never need a second). Canonical: no
/// trailing zero word, so equal sets are equal, hash and order alike.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueSet(SmallVec<[u64; 1]>);

impl ValueSet {
    pub fn new() -> ValueSet {
        ValueSet::default()
    }

    /// Adds `v`; value 0 (no value) is ignored.
    pub fn insert(&mut self, v: Value) {
        if v == 0 {
            return;
        }
        let (word, bit) = (((v - 1) / 64) as usize, (v - 1) % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    pub fn contains(&self, v: Value) -> bool {
        if v == 0 {
            return false;
        }
        let (word, bit) = (((v - 1) / 64) as usize, (v - 1) % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// An id-free 64-bit summary for symmetry signatures.
    pub fn signature(&self) -> u64 {
        self.0.iter().fold(self.0.len() as u64, |h, &w| mix(h ^ w))
    }
}

impl FromIterator<Value> for ValueSet {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> ValueSet {
        let mut set = ValueSet::new();
        for v in iter {
            set.insert(v);
        }
        set
    }
}

pub fn bit(id: ServerId) -> ServerSet {
    1u8.checked_shl(u32::from(id)).unwrap_or(0)
}

pub fn members(set: ServerSet) -> impl Iterator<Item = ServerId> {
    (0..8u8).filter(move |i| set & (1 << i) != 0)
}

/// One server, exactly the fields of docs/protocol.md §1 plus one ghost.
/// `term`, `voted_for` and `log` are the in-memory state that every event
/// changes; `durable_*` is what is on disk (what a Restart recovers), written
/// only by Persist (R-persist-1); `outbox` holds the dependent messages sent
/// while writes were pending (R-persist-2), in the order they were sent.
/// With a snapshot (docs/protocol.md §8, R-snap-1) `log` holds only the
/// entries after `snapshot_index` and `durable_log` those after
/// `durable_snapshot_index`: read the log through the accessors
/// (`last_index`, `term_at`, `entry_at`, `value_at`), never by position.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerState {
    pub term: Term,
    pub voted_for: Option<ServerId>,
    pub role: Role,
    pub log: Log,
    pub durable_term: Term,
    pub durable_voted_for: Option<ServerId>,
    pub durable_log: Log,
    /// R-snap-1: index and term of the last entry the snapshot covers (0 =
    /// none) and the values of entries `1..=snapshot_index`.
    pub snapshot_index: Index,
    pub snapshot_term: Term,
    pub snapshot_values: Values,
    pub durable_snapshot_index: Index,
    pub durable_snapshot_term: Term,
    pub durable_snapshot_values: Values,
    pub outbox: Network,
    pub commit_index: Index,
    /// Candidate only: who granted a vote in `term` (bit mask, includes itself).
    pub votes_granted: ServerSet,
    /// Leader only: slot `j` for peer `j`, own slot 0; all 0 otherwise.
    /// Fixed arrays: no allocation when states are cloned.
    pub next_index: [Index; MAX_SERVERS as usize],
    pub match_index: [Index; MAX_SERVERS as usize],
    /// Ghost: the commit index this server lost in its last restart, until it
    /// learns a commit index at least as high again (CommittedSurvivesRestart).
    pub lost_commit: Index,
}

impl Default for ServerState {
    fn default() -> Self {
        ServerState::new()
    }
}

impl ServerState {
    pub fn new() -> ServerState {
        ServerState {
            term: 0,
            voted_for: None,
            role: Role::Follower,
            log: Log::new(),
            durable_term: 0,
            durable_voted_for: None,
            durable_log: Log::new(),
            snapshot_index: 0,
            snapshot_term: 0,
            snapshot_values: Values::new(),
            durable_snapshot_index: 0,
            durable_snapshot_term: 0,
            durable_snapshot_values: Values::new(),
            outbox: Network::new(),
            commit_index: 0,
            votes_granted: 0,
            next_index: [0; MAX_SERVERS as usize],
            match_index: [0; MAX_SERVERS as usize],
            lost_commit: 0,
        }
    }

    /// Whether the in-memory state differs from the durable part (the
    /// server has pending writes: Persist is enabled, R-persist-1), the
    /// snapshot included (R-snap-1).
    pub fn has_pending_writes(&self) -> bool {
        self.term != self.durable_term
            || self.voted_for != self.durable_voted_for
            || self.log != self.durable_log
            || !self.snapshot_is_durable()
    }

    /// Whether the snapshot equals the durable snapshot (R-snap-1).
    pub fn snapshot_is_durable(&self) -> bool {
        self.snapshot_index == self.durable_snapshot_index
            && self.snapshot_term == self.durable_snapshot_term
            && self.snapshot_values == self.durable_snapshot_values
    }

    /// Whether the log is durable up to `index`: entries `1..=index` are the
    /// same in memory and on disk (R-persist-4), read over snapshot and log
    /// on both sides (a value identifies its entry, see `held_values`;
    /// terms are compared where both sides know them).
    pub fn durable_upto(&self, index: Index) -> bool {
        if self.last_index() < index || self.durable_last_index() < index {
            return false;
        }
        if !values_prefix_eq(
            self.value_parts(),
            self.durable_value_parts(),
            index as usize,
        ) {
            return false;
        }
        let from = self.snapshot_index.max(self.durable_snapshot_index).max(1);
        (from..=index).all(|x| match (self.term_at(x), self.durable_term_at(x)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        })
    }

    /// `snapshot_index + len(log)` (R-snap-1).
    pub fn last_index(&self) -> Index {
        self.snapshot_index + self.log.len() as Index
    }

    /// Term of the last entry: of `log`, or `snapshot_term` when `log` is
    /// empty (R-snap-1).
    pub fn last_term(&self) -> Term {
        self.log.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// Term of the entry at `index`; 0 for the sentinel index 0,
    /// `snapshot_term` at `snapshot_index`, `None` below it (compacted away,
    /// R-snap-1) and beyond the end of the log.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == 0 {
            Some(0)
        } else if index < self.snapshot_index {
            None
        } else if index == self.snapshot_index {
            Some(self.snapshot_term)
        } else {
            self.log
                .get((index - self.snapshot_index) as usize - 1)
                .map(|e| e.term)
        }
    }

    /// The entry at `index` if it is in `log` (after the snapshot); `None`
    /// for compacted indices (use `value_at`) and beyond the end.
    pub fn entry_at(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot_index {
            None
        } else {
            self.log.get((index - self.snapshot_index) as usize - 1)
        }
    }

    /// The value at `index` over `snapshot_values ++ log` (R-snap-6).
    pub fn value_at(&self, index: Index) -> Option<Value> {
        if index == 0 {
            None
        } else if index <= self.snapshot_index {
            self.snapshot_values.get(index as usize - 1).copied()
        } else {
            self.entry_at(index).map(|e| e.value)
        }
    }

    /// Whether this server holds `entry` at `index`: its value there, and
    /// its term where the term is known (at and after `snapshot_index`).
    pub fn holds(&self, index: Index, entry: &Entry) -> bool {
        self.held_log().holds(index, entry)
    }

    /// Like `holds`, on the durable snapshot and log.
    pub fn durable_holds(&self, index: Index, entry: &Entry) -> bool {
        self.durable_held_log().holds(index, entry)
    }

    /// Snapshot and log as a [`HeldLog`], for [`holds`](Self::holds) over
    /// many records.
    pub fn held_log(&self) -> HeldLog<'_> {
        HeldLog::new(
            self.snapshot_index,
            self.snapshot_term,
            &self.snapshot_values,
            &self.log,
        )
    }

    /// The durable part as a [`HeldLog`], for [`durable_holds`](Self::durable_holds)
    /// over many records.
    pub fn durable_held_log(&self) -> HeldLog<'_> {
        HeldLog::new(
            self.durable_snapshot_index,
            self.durable_snapshot_term,
            &self.durable_snapshot_values,
            &self.durable_log,
        )
    }

    /// `(snapshot_values, log)`: the parts of [`values`](Self::values),
    /// for [`values_prefix_eq`].
    pub fn value_parts(&self) -> (&[Value], &[Entry]) {
        (&self.snapshot_values, &self.log)
    }

    /// `(durable_snapshot_values, durable_log)`.
    pub fn durable_value_parts(&self) -> (&[Value], &[Entry]) {
        (&self.durable_snapshot_values, &self.durable_log)
    }

    /// The values of `snapshot_values ++ log`, index 1 first.
    pub fn values(&self) -> impl Iterator<Item = Value> + '_ {
        self.snapshot_values
            .iter()
            .copied()
            .chain(self.log.iter().map(|e| e.value))
    }

    /// The values of `durable_snapshot_values ++ durable_log`.
    pub fn durable_values(&self) -> impl Iterator<Item = Value> + '_ {
        self.durable_snapshot_values
            .iter()
            .copied()
            .chain(self.durable_log.iter().map(|e| e.value))
    }

    pub fn durable_last_index(&self) -> Index {
        self.durable_snapshot_index + self.durable_log.len() as Index
    }

    /// `term_at` on the durable snapshot and log.
    pub fn durable_term_at(&self, index: Index) -> Option<Term> {
        if index == 0 {
            Some(0)
        } else if index < self.durable_snapshot_index {
            None
        } else if index == self.durable_snapshot_index {
            Some(self.durable_snapshot_term)
        } else {
            self.durable_log
                .get((index - self.durable_snapshot_index) as usize - 1)
                .map(|e| e.term)
        }
    }

    /// The set of client values in this log, snapshot included. Each value
    /// is created once, at one index, and only ever copied to the same
    /// index, so a value identifies its entry's position.
    pub fn held_values(&self) -> ValueSet {
        self.values().collect()
    }

    /// Role becomes follower and the role-specific volatile state is cleared.
    pub fn become_follower(&mut self) {
        self.role = Role::Follower;
        self.votes_granted = 0;
        self.next_index = [0; MAX_SERVERS as usize];
        self.match_index = [0; MAX_SERVERS as usize];
    }
}

/// Ghost: a vote granted (`held` = values in the voter's log when it voted).
/// Kept while it can still matter: while the voter is in that term
/// (VoteOncePerTerm) or the candidate may still win with it (MajorityOverlap).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VoteRecord {
    pub term: Term,
    pub voter: ServerId,
    pub candidate: ServerId,
    pub held: ValueSet,
}

/// Ghost: a server became leader of `term` (kept forever: ElectionSafety).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElectionRecord {
    pub term: Term,
    pub leader: ServerId,
}

/// Ghost: the vote quorum of an election: `voters` elected `leader` in
/// `term`, and `held[s]` is what voter `s` held when it voted. Kept while a
/// commit of an earlier term is still possible (a leader or candidate of an
/// earlier term exists); MajorityOverlap is also checked at every step, and
/// a failure is kept in `flags::VIOLATED_MAJORITY_OVERLAP`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QuorumRecord {
    pub term: Term,
    pub leader: ServerId,
    pub voters: ServerSet,
    pub held: [ValueSet; MAX_SERVERS as usize],
}

/// Ghost: a leader committed `entry` at `index` in `term` (its current term,
/// which for an indirectly committed entry is later than the entry's own)
/// with the replicas in `quorum`. Only the first (lowest-term) commit of an
/// entry is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitRecord {
    pub index: Index,
    pub entry: Entry,
    pub term: Term,
    pub quorum: ServerSet,
}

/// Ghost flags. The `VIOLATED_*` flags are set by a transition that breaks a
/// transition property (such states have no successors); the `EVENT_*` flags
/// say what the step that produced this state did and are cleared by the next
/// step, so they split few states.
pub mod flags {
    pub const VIOLATED_APPEND_ONLY: u8 = 1;
    pub const VIOLATED_MINORITY_COMMIT: u8 = 2;
    pub const VIOLATED_MAJORITY_OVERLAP: u8 = 4;
    pub const EVENT_OVERWRITTEN: u8 = 8;
    pub const EVENT_COMMIT_SURVIVED: u8 = 16;
    /// A leader advanced its commit index past what is durable on itself
    /// (LeaderCommitsBeforeOwnPersist).
    pub const EVENT_COMMIT_BEFORE_OWN_PERSIST: u8 = 32;
    /// A server's applied prefix shrank or changed while it was up
    /// (AppliedNeverGoesBack).
    pub const VIOLATED_APPLIED_GOES_BACK: u8 = 64;
    /// The step installed a delivered InstallSnapshot (InstallSnapshotInstalled).
    pub const EVENT_SNAPSHOT_INSTALLED: u8 = 128;
    pub const EVENTS: u8 = EVENT_OVERWRITTEN
        | EVENT_COMMIT_SURVIVED
        | EVENT_COMMIT_BEFORE_OWN_PERSIST
        | EVENT_SNAPSHOT_INSTALLED;
}

/// The ghost variables: history the properties need and servers forget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ghost {
    /// Sorted.
    pub votes: SmallVec<[VoteRecord; 6]>,
    /// Sorted.
    pub elections: SmallVec<[ElectionRecord; 4]>,
    /// Sorted.
    pub quorums: SmallVec<[QuorumRecord; 2]>,
    /// Sorted.
    pub commits: SmallVec<[CommitRecord; 3]>,
    pub flags: u8,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State {
    pub servers: Servers,
    /// Messages in flight (a multiset). Unordered network: sorted. Ordered
    /// network: sorted by link `(from, to)` only, so each link's queue keeps
    /// its order, oldest first.
    pub network: Network,
    /// The group `S` of the active `Partition(S)`, 0 when none.
    pub partition: ServerSet,
    /// Client requests so far (the next value is `requests + 1`).
    pub requests: Value,
    pub restarts: u8,
    pub partitions: u8,
    pub duplicates: u8,
    /// Snapshot steps so far (`max_snapshots`, R-snap-2).
    pub snapshots: u8,
    pub ghost: Ghost,
}

impl State {
    /// All servers followers at term 0 with empty logs; nothing in flight.
    pub fn initial(servers: u8) -> State {
        State {
            servers: Servers::from_elem(ServerState::new(), usize::from(servers)),
            network: Network::new(),
            partition: 0,
            requests: 0,
            restarts: 0,
            partitions: 0,
            duplicates: 0,
            snapshots: 0,
            ghost: Ghost::default(),
        }
    }

    pub fn n(&self) -> usize {
        self.servers.len()
    }

    /// Whether the link between `a` and `b` is cut by the active partition.
    pub fn is_cut(&self, a: ServerId, b: ServerId) -> bool {
        self.partition != 0 && ((self.partition & bit(a) != 0) != (self.partition & bit(b) != 0))
    }

    /// The partition group as a sorted list, if one is active.
    pub fn partition_group(&self) -> Option<Vec<ServerId>> {
        (self.partition != 0).then(|| members(self.partition).collect())
    }

    /// Restores the canonical order of the network and the outboxes after
    /// changes. An outbox is kept sorted stably by destination: every
    /// message in it is from its server, so this keeps each link's send
    /// order, which is the only order a release can observe (a broadcast's
    /// order across links is an artefact of ids, so it is not kept).
    pub fn normalize_network(&mut self, kind: NetworkKind) {
        match kind {
            NetworkKind::Unordered => self.network.sort(),
            // Stable: keeps each link's FIFO order.
            NetworkKind::Ordered => self.network.sort_by_key(|m| (m.from, m.to)),
        }
        for srv in &mut self.servers {
            srv.outbox.sort_by_key(|m| m.to);
        }
    }

    /// The abstract state of docs/protocol.md §1 and docs/trace-format.md.
    pub fn to_abstract(&self) -> AbstractState {
        let n = self.n();
        let servers = self
            .servers
            .iter()
            .map(|s| AbstractServer {
                term: s.term,
                voted_for: s.voted_for,
                role: s.role,
                log: s.log.to_vec(),
                commit_index: s.commit_index,
                durable_term: s.durable_term,
                durable_voted_for: s.durable_voted_for,
                durable_log: s.durable_log.to_vec(),
                snapshot_index: s.snapshot_index,
                snapshot_term: s.snapshot_term,
                snapshot_values: s.snapshot_values.to_vec(),
                durable_snapshot_index: s.durable_snapshot_index,
                durable_snapshot_term: s.durable_snapshot_term,
                durable_snapshot_values: s.durable_snapshot_values.to_vec(),
                outbox: s.outbox.to_vec(),
                votes_granted: if s.role == Role::Candidate {
                    members(s.votes_granted).collect()
                } else {
                    Vec::new()
                },
                next_index: if s.role == Role::Leader {
                    s.next_index[..n].to_vec()
                } else {
                    Vec::new()
                },
                match_index: if s.role == Role::Leader {
                    s.match_index[..n].to_vec()
                } else {
                    Vec::new()
                },
            })
            .collect();
        AbstractState {
            servers,
            network: self.network.to_vec(),
            partition: self.partition_group(),
        }
    }

    /// Rebuilds a state from an abstract one: ghosts empty, budgets zero
    /// except `requests`, which is the highest client value present (so the
    /// next request's value is fresh). The network is put in per-link order
    /// (the list order is kept within each link); the model re-sorts it for
    /// the unordered network on its next step.
    pub fn from_abstract(a: &AbstractState) -> State {
        let n = a.servers.len();
        let servers: Servers = a
            .servers
            .iter()
            .map(|s| {
                let leader = s.role == Role::Leader;
                let fit = |v: &Vec<Index>| {
                    let mut out = [0; MAX_SERVERS as usize];
                    if leader {
                        for (o, &x) in out.iter_mut().zip(v.iter().take(n)) {
                            *o = x;
                        }
                    }
                    out
                };
                ServerState {
                    term: s.term,
                    voted_for: s.voted_for,
                    role: s.role,
                    log: s.log.iter().copied().collect(),
                    durable_term: s.durable_term,
                    durable_voted_for: s.durable_voted_for,
                    durable_log: s.durable_log.iter().copied().collect(),
                    snapshot_index: s.snapshot_index,
                    snapshot_term: s.snapshot_term,
                    snapshot_values: s.snapshot_values.iter().copied().collect(),
                    durable_snapshot_index: s.durable_snapshot_index,
                    durable_snapshot_term: s.durable_snapshot_term,
                    durable_snapshot_values: s.durable_snapshot_values.iter().copied().collect(),
                    outbox: s.outbox.iter().cloned().collect(),
                    commit_index: s.commit_index,
                    votes_granted: if s.role == Role::Candidate {
                        s.votes_granted.iter().fold(0, |acc, &id| acc | bit(id))
                    } else {
                        0
                    },
                    next_index: fit(&s.next_index),
                    match_index: fit(&s.match_index),
                    lost_commit: 0,
                }
            })
            .collect();
        let mut requests = 0;
        for e in servers
            .iter()
            .flat_map(|s| s.log.iter().chain(s.durable_log.iter()))
        {
            requests = requests.max(e.value);
        }
        for &v in servers.iter().flat_map(|s| {
            s.snapshot_values
                .iter()
                .chain(s.durable_snapshot_values.iter())
        }) {
            requests = requests.max(v);
        }
        for m in a
            .network
            .iter()
            .chain(servers.iter().flat_map(|s| s.outbox.iter()))
        {
            if let Body::AppendEntries(AppendEntries { entries, .. }) = &m.body {
                for e in entries {
                    requests = requests.max(e.value);
                }
            }
            if let Body::InstallSnapshot(InstallSnapshot { values, .. }) = &m.body {
                for &v in values {
                    requests = requests.max(v);
                }
            }
        }
        let mut state = State {
            servers,
            network: a.network.iter().cloned().collect(),
            partition: a
                .partition
                .as_ref()
                .map_or(0, |g| g.iter().fold(0, |acc, &id| acc | bit(id))),
            requests,
            restarts: 0,
            partitions: 0,
            duplicates: 0,
            snapshots: 0,
            ghost: Ghost::default(),
        };
        state.normalize_network(NetworkKind::Ordered);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `values_prefix_eq` is `a.take(k).eq(b.take(k))` over every split of
    /// two short value sequences between snapshot and log.
    #[test]
    fn values_prefix_eq_is_the_prefix_comparison_of_the_whole_sequences() {
        let seqs: [&[Value]; 5] = [&[], &[1], &[1, 2], &[1, 3], &[1, 2, 4]];
        let split = |v: &[Value], at: usize| -> (Vec<Value>, Vec<Entry>) {
            let log = v[at..]
                .iter()
                .map(|&value| Entry { term: 1, value })
                .collect();
            (v[..at].to_vec(), log)
        };
        for a in seqs {
            for b in seqs {
                for (sa, sb) in (0..=a.len()).flat_map(|x| (0..=b.len()).map(move |y| (x, y))) {
                    let (av, al) = split(a, sa);
                    let (bv, bl) = split(b, sb);
                    for k in 0..=4 {
                        let want = a.iter().take(k).eq(b.iter().take(k));
                        assert_eq!(
                            values_prefix_eq((&av, &al), (&bv, &bl), k),
                            want,
                            "{a:?} split at {sa}, {b:?} split at {sb}, k = {k}"
                        );
                    }
                }
            }
        }
    }
}
