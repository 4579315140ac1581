//! Symmetry reduction over server ids (stateright's `Representative`):
//! renaming servers (`State::permuted`), id-free signatures of what
//! mentions each server, and the canonical representative of a state.

use super::*;
use crate::types::{AppendEntriesResponse, InstallSnapshot, RequestVote, RequestVoteResponse};
use stateright::Representative;

impl State {
    /// The same state with server `i` renamed `perm[i]` everywhere.
    pub fn permuted(&self, perm: &[ServerId]) -> State {
        let p = |id: ServerId| perm[usize::from(id)];
        let pset = |set: ServerSet| members(set).fold(0, |acc, id| acc | bit(p(id)));
        let n = self.n();
        let pvec = |v: &[Index; MAX_SERVERS as usize]| {
            let mut out = [0; MAX_SERVERS as usize];
            for (j, &x) in v.iter().enumerate().take(n) {
                out[usize::from(p(j as ServerId))] = x;
            }
            out
        };
        let mut servers = Servers::from_elem(ServerState::new(), n);
        for (old, s) in self.servers.iter().enumerate() {
            servers[usize::from(p(old as ServerId))] = ServerState {
                term: s.term,
                voted_for: s.voted_for.map(p),
                role: s.role,
                log: s.log.clone(),
                durable_term: s.durable_term,
                durable_voted_for: s.durable_voted_for.map(p),
                durable_log: s.durable_log.clone(),
                snapshot_index: s.snapshot_index,
                snapshot_term: s.snapshot_term,
                snapshot_values: s.snapshot_values.clone(),
                durable_snapshot_index: s.durable_snapshot_index,
                durable_snapshot_term: s.durable_snapshot_term,
                durable_snapshot_values: s.durable_snapshot_values.clone(),
                outbox: s
                    .outbox
                    .iter()
                    .map(|m| Message {
                        from: p(m.from),
                        to: p(m.to),
                        body: m.body.clone(),
                    })
                    .collect(),
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
        let mut votes: SmallVec<[VoteRecord; 6]> = self
            .ghost
            .votes
            .iter()
            .map(|v| VoteRecord {
                voter: p(v.voter),
                candidate: p(v.candidate),
                ..v.clone()
            })
            .collect();
        votes.sort();
        let mut elections: SmallVec<[ElectionRecord; 4]> = self
            .ghost
            .elections
            .iter()
            .map(|e| ElectionRecord {
                term: e.term,
                leader: p(e.leader),
            })
            .collect();
        elections.sort();
        let mut quorums: SmallVec<[QuorumRecord; 2]> = self
            .ghost
            .quorums
            .iter()
            .map(|e| {
                let mut held: [ValueSet; MAX_SERVERS as usize] = Default::default();
                for (s, h) in e.held.iter().enumerate().take(n) {
                    held[usize::from(p(s as ServerId))] = h.clone();
                }
                QuorumRecord {
                    term: e.term,
                    leader: p(e.leader),
                    voters: pset(e.voters),
                    held,
                }
            })
            .collect();
        quorums.sort();
        let mut commits: SmallVec<[CommitRecord; 3]> = self
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
            snapshots: self.snapshots,
            ghost: Ghost {
                votes,
                elections,
                quorums,
                commits,
                flags: self.ghost.flags,
            },
        }
    }
}

/// Mixes a value into a 64-bit signature (splitmix64 finaliser).
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Packs up to four small fields into one word for [`mix`]: each is taken
/// modulo 2^16 (a signature only needs to separate most states; equal states
/// always get equal signatures).
fn pack(tag: u64, a: impl Into<u64>, b: impl Into<u64>, c: impl Into<u64>) -> u64 {
    let f = |x: u64| x & 0xffff;
    tag | f(a.into()) << 8 | f(b.into()) << 24 | f(c.into()) << 40
}

fn body_signature(b: &Body) -> u64 {
    match b {
        Body::RequestVote(RequestVote {
            term,
            last_log_index,
            last_log_term,
        }) => mix(pack(1, *term, *last_log_index, *last_log_term)),
        Body::RequestVoteResponse(RequestVoteResponse { term, granted }) => {
            mix(pack(2, *term, u64::from(*granted), 0u64))
        }
        Body::AppendEntries(AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }) => {
            let mut h = mix(pack(3, *term, *prev_log_index, *prev_log_term));
            h = mix(h ^ pack(0, *leader_commit, entries.len() as u64, 0u64));
            for e in entries {
                h = mix(h ^ u64::from(e.term) << 32 ^ u64::from(e.value));
            }
            h
        }
        Body::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        }) => mix(pack(4, *term, *index, *conflict_index) ^ u64::from(*success) << 56),
        Body::InstallSnapshot(InstallSnapshot {
            term,
            last_included_index,
            last_included_term,
            values,
        }) => {
            let mut h = mix(pack(5, *term, *last_included_index, *last_included_term));
            for &v in values {
                h = mix(h ^ u64::from(v));
            }
            h
        }
    }
}

impl State {
    /// Per server, an id-free summary of everything that mentions it (the
    /// messages it sends and receives, its ghost records), combined with
    /// commutative sums so that the order of the lists does not matter.
    fn signatures(&self) -> [u64; MAX_SERVERS as usize] {
        let n = self.n();
        let mut sig = [0u64; MAX_SERVERS as usize];
        for m in &self.network {
            let b = body_signature(&m.body);
            sig[usize::from(m.from)] = sig[usize::from(m.from)].wrapping_add(mix(b ^ 0x51));
            sig[usize::from(m.to)] = sig[usize::from(m.to)].wrapping_add(mix(b ^ 0x52));
        }
        // Outbox messages mention their destination too (tagged apart from
        // messages in flight).
        for srv in &self.servers {
            for m in &srv.outbox {
                let b = body_signature(&m.body);
                sig[usize::from(m.from)] = sig[usize::from(m.from)].wrapping_add(mix(b ^ 0x53));
                sig[usize::from(m.to)] = sig[usize::from(m.to)].wrapping_add(mix(b ^ 0x54));
            }
        }
        for v in &self.ghost.votes {
            let base = u64::from(v.term) << 8 ^ v.held.signature() << 16;
            let own = u64::from(v.voter == v.candidate) << 24;
            sig[usize::from(v.voter)] =
                sig[usize::from(v.voter)].wrapping_add(mix(base | own | 0x61));
            sig[usize::from(v.candidate)] =
                sig[usize::from(v.candidate)].wrapping_add(mix(base | own | 0x62));
        }
        for e in &self.ghost.elections {
            sig[usize::from(e.leader)] =
                sig[usize::from(e.leader)].wrapping_add(mix(u64::from(e.term) << 8 | 0x71));
        }
        for q in &self.ghost.quorums {
            for (v, sv) in sig.iter_mut().enumerate().take(n) {
                let role = u64::from(q.voters & bit(v as ServerId) != 0)
                    | u64::from(q.leader as usize == v) << 1;
                *sv = sv.wrapping_add(mix(
                    (u64::from(q.term) << 8 | role << 40 | 0x72) ^ q.held[v].signature() << 48
                ));
            }
        }
        for c in &self.ghost.commits {
            for v in members(c.quorum) {
                sig[usize::from(v)] =
                    sig[usize::from(v)].wrapping_add(mix(pack(0x81, c.index, c.term, 0u64)));
            }
        }
        sig
    }
}

/// At most this many candidate orders are compared to break ties between
/// servers with equal keys; beyond it the first order is taken (sound, just
/// a weaker reduction).
const MAX_TIE_CANDIDATES: usize = 24;

/// Symmetry reduction over server ids: sort the servers on a key that does
/// not mention ids (their own fields plus an id-free signature of the
/// messages and ghost records that mention them), rename ids everywhere, and
/// break remaining ties by taking the least of the tied orders. A
/// representative is always a permutation of the state, so the reduction is
/// sound even when the tie limit is hit.
impl Representative for State {
    fn representative(&self) -> State {
        let n = self.n();
        let all: ServerSet = if n >= 8 { u8::MAX } else { (1u8 << n) - 1 };
        // Which side of an uneven cut a server is on is id-free.
        let group_size = self.partition.count_ones() as usize;
        let side_matters = self.partition != 0 && group_size * 2 != n;
        let sig = self.signatures();
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
                (
                    s.durable_term,
                    s.durable_voted_for == Some(i as ServerId),
                    s.durable_voted_for.is_some(),
                    s.durable_voted_for == s.voted_for,
                    &s.durable_log,
                    s.outbox.len(),
                ),
                (
                    s.snapshot_index,
                    s.snapshot_term,
                    &s.snapshot_values,
                    s.durable_snapshot_index,
                    s.durable_snapshot_term,
                    &s.durable_snapshot_values,
                ),
                sig[i],
            )
        };
        let mut order: SmallVec<[usize; MAX_SERVERS as usize]> = (0..n).collect();
        order.sort_by(|&a, &b| key(a).cmp(&key(b)));
        // Tie groups: runs of equal keys in the sorted order.
        let mut groups: SmallVec<[(usize, usize); 3]> = SmallVec::new();
        let mut start = 0;
        for k in 1..=n {
            if k == n || key(order[k]) != key(order[start]) {
                if k - start > 1 {
                    groups.push((start, k));
                }
                start = k;
            }
        }
        let canonical = |order: &[usize]| {
            let mut perm = [0 as ServerId; MAX_SERVERS as usize];
            for (new, &old) in order.iter().enumerate() {
                perm[old] = new as ServerId;
            }
            let mut rep = self.permuted(&perm[..n]);
            // Canonical side of the cut: the smaller one, or for two halves
            // the one holding server 0.
            if rep.partition != 0 {
                let size = rep.partition.count_ones() as usize;
                if size * 2 > n || (size * 2 == n && rep.partition & 1 == 0) {
                    rep.partition = all & !rep.partition;
                }
            }
            // A stable sort by link is right for both network kinds: it
            // keeps each link's FIFO order, and a fully sorted (unordered)
            // network renamed and sorted by link is fully sorted again.
            rep.network.sort_by_key(|m| (m.from, m.to));
            for srv in &mut rep.servers {
                srv.outbox.sort_by_key(|m| m.to);
            }
            rep
        };
        let mut best = canonical(&order);
        if groups.is_empty() {
            return best;
        }
        let mut seen = 1;
        let mut current = order.clone();
        // Odometer over the permutations of each tie group.
        loop {
            let mut advanced = false;
            for &(a, b) in &groups {
                if next_permutation(&mut current[a..b]) {
                    advanced = true;
                    break;
                }
                // This group wrapped around to its first order: carry on.
            }
            if !advanced || seen >= MAX_TIE_CANDIDATES {
                break;
            }
            seen += 1;
            let candidate = canonical(&current);
            if candidate < best {
                best = candidate;
            }
        }
        best
    }
}

/// Rearranges `v` into the next lexicographic permutation; at the last one
/// it wraps around to the first and returns false.
fn next_permutation(v: &mut [usize]) -> bool {
    let n = v.len();
    if n < 2 {
        return false;
    }
    let mut i = n - 1;
    while i > 0 && v[i - 1] >= v[i] {
        i -= 1;
    }
    if i == 0 {
        v.reverse();
        return false;
    }
    let mut j = n - 1;
    while v[j] <= v[i - 1] {
        j -= 1;
    }
    v.swap(i - 1, j);
    v[i..].reverse();
    true
}
