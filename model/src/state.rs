//! The model's state: servers, the network, the partition, the budgets used
//! so far, and the ghost variables that the properties read.
//!
//! Server sets (votes granted, partition group, quorums) are `u8` bit masks
//! and client values in ghost records are `u8` bit masks (`bit v - 1`):
//! states are cloned and hashed millions of times per second.

use crate::config::NetworkKind;
use crate::trace::{AbstractServer, AbstractState};
use crate::types::{Body, Entry, Index, Message, Role, ServerId, Term, Value};
use stateright::Representative;

/// Bit mask of a set of servers.
pub type ServerSet = u8;
/// Bit mask of a set of client values (`bit v - 1` for value `v`).
pub type ValueSet = u8;

pub fn bit(id: ServerId) -> ServerSet {
    1u8.checked_shl(u32::from(id)).unwrap_or(0)
}

pub fn value_bit(v: Value) -> ValueSet {
    if v == 0 {
        return 0;
    }
    1u8.checked_shl(u32::from(v - 1)).unwrap_or(0)
}

pub fn members(set: ServerSet) -> impl Iterator<Item = ServerId> {
    (0..8u8).filter(move |i| set & (1 << i) != 0)
}

/// One server, exactly the fields of docs/protocol.md §1 plus one ghost.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerState {
    pub term: Term,
    pub voted_for: Option<ServerId>,
    pub role: Role,
    pub log: Vec<Entry>,
    pub commit_index: Index,
    /// Candidate only: who granted a vote in `term` (bit mask, includes itself).
    pub votes_granted: ServerSet,
    /// Leader only: length `servers`, own slot 0; empty otherwise.
    pub next_index: Vec<Index>,
    pub match_index: Vec<Index>,
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
            log: Vec::new(),
            commit_index: 0,
            votes_granted: 0,
            next_index: Vec::new(),
            match_index: Vec::new(),
            lost_commit: 0,
        }
    }

    pub fn last_index(&self) -> Index {
        self.log.len() as Index
    }

    pub fn last_term(&self) -> Term {
        self.log.last().map_or(0, |e| e.term)
    }

    /// Term of the entry at `index`; 0 for the sentinel index 0, `None`
    /// beyond the end of the log.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == 0 {
            Some(0)
        } else {
            self.log.get(usize::from(index) - 1).map(|e| e.term)
        }
    }

    pub fn entry_at(&self, index: Index) -> Option<&Entry> {
        if index == 0 {
            None
        } else {
            self.log.get(usize::from(index) - 1)
        }
    }

    /// The set of client values in this log. Each value is created once, at
    /// one index, and only ever copied to the same index, so a value
    /// identifies its entry's position.
    pub fn held_values(&self) -> ValueSet {
        self.log.iter().fold(0, |acc, e| acc | value_bit(e.value))
    }

    /// Role becomes follower and the role-specific volatile state is cleared.
    pub fn become_follower(&mut self) {
        self.role = Role::Follower;
        self.votes_granted = 0;
        self.next_index.clear();
        self.match_index.clear();
    }
}

/// Ghost: a vote granted (`held` = values in the voter's log when it voted).
/// Kept while it can still matter: while the voter is in that term
/// (VoteOncePerTerm) or the candidate may still win with it (MajorityOverlap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VoteRecord {
    pub term: Term,
    pub voter: ServerId,
    pub candidate: ServerId,
    pub held: ValueSet,
}

/// Ghost: a server became leader of `term` with the votes of `voters`;
/// `held[s]` is what voter `s` held when it voted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ElectionRecord {
    pub term: Term,
    pub leader: ServerId,
    pub voters: ServerSet,
    pub held: [ValueSet; crate::config::MAX_SERVERS as usize],
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
    pub const EVENT_OVERWRITTEN: u8 = 4;
    pub const EVENT_COMMIT_SURVIVED: u8 = 8;
    pub const EVENTS: u8 = EVENT_OVERWRITTEN | EVENT_COMMIT_SURVIVED;
}

/// The ghost variables: history the properties need and servers forget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ghost {
    /// Sorted.
    pub votes: Vec<VoteRecord>,
    /// Sorted.
    pub elections: Vec<ElectionRecord>,
    /// Sorted.
    pub commits: Vec<CommitRecord>,
    pub flags: u8,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub servers: Vec<ServerState>,
    /// Messages in flight (a multiset). Unordered network: sorted. Ordered
    /// network: sorted by link `(from, to)` only, so each link's queue keeps
    /// its order, oldest first.
    pub network: Vec<Message>,
    /// The group `S` of the active `Partition(S)`, 0 when none.
    pub partition: ServerSet,
    /// Client requests so far (the next value is `requests + 1`).
    pub requests: u8,
    pub restarts: u8,
    pub partitions: u8,
    pub duplicates: u8,
    pub ghost: Ghost,
}

impl State {
    /// All servers followers at term 0 with empty logs; nothing in flight.
    pub fn initial(servers: u8) -> State {
        State {
            servers: vec![ServerState::new(); usize::from(servers)],
            network: Vec::new(),
            partition: 0,
            requests: 0,
            restarts: 0,
            partitions: 0,
            duplicates: 0,
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

    /// Restores the network's canonical order after changes.
    pub fn normalize_network(&mut self, kind: NetworkKind) {
        match kind {
            NetworkKind::Unordered => self.network.sort(),
            // Stable: keeps each link's FIFO order.
            NetworkKind::Ordered => self.network.sort_by_key(|m| (m.from, m.to)),
        }
    }

    /// The abstract state of docs/protocol.md §1 and docs/trace-format.md.
    pub fn to_abstract(&self) -> AbstractState {
        let servers = self
            .servers
            .iter()
            .map(|s| AbstractServer {
                term: s.term,
                voted_for: s.voted_for,
                role: s.role,
                log: s.log.clone(),
                commit_index: s.commit_index,
                votes_granted: if s.role == Role::Candidate {
                    members(s.votes_granted).collect()
                } else {
                    Vec::new()
                },
                next_index: if s.role == Role::Leader {
                    s.next_index.clone()
                } else {
                    Vec::new()
                },
                match_index: if s.role == Role::Leader {
                    s.match_index.clone()
                } else {
                    Vec::new()
                },
            })
            .collect();
        AbstractState {
            servers,
            network: self.network.clone(),
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
        let servers: Vec<ServerState> = a
            .servers
            .iter()
            .map(|s| {
                let leader = s.role == Role::Leader;
                let fit = |v: &Vec<Index>| {
                    if leader {
                        let mut v = v.clone();
                        v.resize(n, 0);
                        v
                    } else {
                        Vec::new()
                    }
                };
                ServerState {
                    term: s.term,
                    voted_for: s.voted_for,
                    role: s.role,
                    log: s.log.clone(),
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
        for e in servers.iter().flat_map(|s| s.log.iter()) {
            requests = requests.max(e.value);
        }
        for m in &a.network {
            if let Body::AppendEntries { entries, .. } = &m.body {
                for e in entries {
                    requests = requests.max(e.value);
                }
            }
        }
        let mut state = State {
            servers,
            network: a.network.clone(),
            partition: a
                .partition
                .as_ref()
                .map_or(0, |g| g.iter().fold(0, |acc, &id| acc | bit(id))),
            requests,
            restarts: 0,
            partitions: 0,
            duplicates: 0,
            ghost: Ghost::default(),
        };
        state.normalize_network(NetworkKind::Ordered);
        state
    }

    /// The same state with server `i` renamed `perm[i]` everywhere.
    pub fn permuted(&self, perm: &[ServerId]) -> State {
        let p = |id: ServerId| perm[usize::from(id)];
        let pset = |set: ServerSet| members(set).fold(0, |acc, id| acc | bit(p(id)));
        let pvec = |v: &Vec<Index>| {
            if v.is_empty() {
                return Vec::new();
            }
            let mut out = vec![0; v.len()];
            for (j, &x) in v.iter().enumerate() {
                out[usize::from(p(j as ServerId))] = x;
            }
            out
        };
        let n = self.n();
        let mut servers = vec![ServerState::new(); n];
        for (old, s) in self.servers.iter().enumerate() {
            servers[usize::from(p(old as ServerId))] = ServerState {
                term: s.term,
                voted_for: s.voted_for.map(p),
                role: s.role,
                log: s.log.clone(),
                commit_index: s.commit_index,
                votes_granted: pset(s.votes_granted),
                next_index: pvec(&s.next_index),
                match_index: pvec(&s.match_index),
                lost_commit: s.lost_commit,
            };
        }
        let network = self
            .network
            .iter()
            .map(|m| Message {
                from: p(m.from),
                to: p(m.to),
                body: m.body.clone(),
            })
            .collect();
        let mut votes: Vec<VoteRecord> = self
            .ghost
            .votes
            .iter()
            .map(|v| VoteRecord {
                voter: p(v.voter),
                candidate: p(v.candidate),
                ..*v
            })
            .collect();
        votes.sort();
        let mut elections: Vec<ElectionRecord> = self
            .ghost
            .elections
            .iter()
            .map(|e| {
                let mut held = [0; crate::config::MAX_SERVERS as usize];
                for (s, &h) in e.held.iter().enumerate().take(n) {
                    held[usize::from(p(s as ServerId))] = h;
                }
                ElectionRecord {
                    term: e.term,
                    leader: p(e.leader),
                    voters: pset(e.voters),
                    held,
                }
            })
            .collect();
        elections.sort();
        let mut commits: Vec<CommitRecord> = self
            .ghost
            .commits
            .iter()
            .map(|c| CommitRecord {
                quorum: pset(c.quorum),
                ..*c
            })
            .collect();
        commits.sort();
        State {
            servers,
            network,
            partition: pset(self.partition),
            requests: self.requests,
            restarts: self.restarts,
            partitions: self.partitions,
            duplicates: self.duplicates,
            ghost: Ghost {
                votes,
                elections,
                commits,
                flags: self.ghost.flags,
            },
        }
    }
}

/// Symmetry reduction over server ids: sort the servers on a key that does
/// not mention ids, then rename ids everywhere. Ties are left unbroken (the
/// reduction is then partial but still sound: a representative is always a
/// permutation of the state).
impl Representative for State {
    fn representative(&self) -> State {
        let n = self.n();
        let all: ServerSet = if n >= 8 { u8::MAX } else { (1u8 << n) - 1 };
        // Which side of an uneven cut a server is on is id-free.
        let group_size = self.partition.count_ones() as usize;
        let side_matters = self.partition != 0 && group_size * 2 != n;
        let mut order: Vec<usize> = (0..n).collect();
        let key = |i: usize| {
            let s = &self.servers[i];
            (
                side_matters && self.partition & bit(i as ServerId) != 0,
                s.term,
                s.role,
                s.commit_index,
                s.voted_for == Some(i as ServerId),
                s.voted_for.is_some(),
                s.votes_granted.count_ones(),
                s.lost_commit,
                &s.log,
            )
        };
        order.sort_by(|&a, &b| key(a).cmp(&key(b)));
        let mut perm = vec![0 as ServerId; n];
        for (new, &old) in order.iter().enumerate() {
            perm[old] = new as ServerId;
        }
        let mut rep = self.permuted(&perm);
        // Canonical side of the cut: the smaller one, or for two halves the
        // one holding server 0.
        if rep.partition != 0 {
            let size = rep.partition.count_ones() as usize;
            let complement = all & !rep.partition;
            if size * 2 > n || (size * 2 == n && rep.partition & 1 == 0) {
                rep.partition = complement;
            }
        }
        // A stable sort by link is right for both network kinds: it keeps
        // each link's FIFO order, and a fully sorted (unordered) network
        // renamed and sorted by link is fully sorted again.
        rep.network.sort_by_key(|m| (m.from, m.to));
        rep
    }
}
