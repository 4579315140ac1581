// Over 600 lines: one hand-built-state test per event rule and property; scenarios reachable from the initial state are scripts in conformance/testdata (docs/scripts.md).
//! Unit tests of the model's event functions on hand-built states (each
//! asserting the exact result that docs/protocol.md prescribes), of every
//! property on a violating and a good state, and of symmetry reduction.

use raft_model::config::{Bug, Config, NetworkKind, PersistMode};
use raft_model::model::RaftModel;
use raft_model::properties::{self, ALWAYS, REACHABILITY, SAFETY, SOMETIMES};
use raft_model::state::{
    bit, flags, CommitRecord, ElectionRecord, QuorumRecord, ServerState, State, ValueSet,
    VoteRecord,
};
use raft_model::types::{
    Action, AppendEntries, AppendEntriesResponse, Body, Entry, InstallSnapshot, Message,
    RequestVote, RequestVoteResponse, Role, ServerId,
};
use stateright::{Checker, Model, Representative};

/// Sync mode: the tests written before durability was modelled check that
/// `--persist sync` is the earlier protocol, unchanged. The async rules have
/// their own tests (`async_cfg`).
fn cfg(servers: u8) -> Config {
    Config {
        servers,
        max_term: 5,
        max_requests: 4,
        max_inflight: 8,
        max_restarts: 2,
        max_partitions: 2,
        max_duplicates: 2,
        max_snapshots: 2,
        network: NetworkKind::Unordered,
        persist: PersistMode::Sync,
        max_batch: None,
        bug: None,
    }
}

fn async_cfg(servers: u8) -> Config {
    Config {
        persist: PersistMode::Async,
        ..cfg(servers)
    }
}

fn model(servers: u8) -> RaftModel {
    RaftModel::new(cfg(servers))
}

fn bugged(servers: u8, bug: Bug) -> RaftModel {
    RaftModel::new(Config {
        bug: Some(bug),
        ..cfg(servers)
    })
}

fn e(term: u32, value: u32) -> Entry {
    Entry { term, value }
}

fn msg(from: ServerId, to: ServerId, body: Body) -> Message {
    Message { from, to, body }
}

fn rv(term: u32, last_log_index: u32, last_log_term: u32) -> Body {
    Body::RequestVote(RequestVote {
        term,
        last_log_index,
        last_log_term,
    })
}

fn rvr(term: u32, granted: bool) -> Body {
    Body::RequestVoteResponse(RequestVoteResponse { term, granted })
}

fn ae(term: u32, prev: u32, prev_term: u32, entries: &[Entry], commit: u32) -> Body {
    Body::AppendEntries(AppendEntries {
        term,
        prev_log_index: prev,
        prev_log_term: prev_term,
        entries: entries.to_vec(),
        leader_commit: commit,
    })
}

fn aer(term: u32, success: bool, index: u32, conflict_index: u32) -> Body {
    Body::AppendEntriesResponse(AppendEntriesResponse {
        term,
        success,
        index,
        conflict_index,
    })
}

/// A follower at `term` with `log`.
fn follower(term: u32, log: &[Entry]) -> ServerState {
    ServerState {
        term,
        log: log.iter().copied().collect(),
        ..ServerState::new()
    }
}

/// A leader of `term` with `log` and the given next/match arrays.
fn leader(term: u32, log: &[Entry], next: &[u32], matched: &[u32]) -> ServerState {
    let mut s = follower(term, log);
    s.role = Role::Leader;
    s.next_index[..next.len()].copy_from_slice(next);
    s.match_index[..matched.len()].copy_from_slice(matched);
    s
}

/// A state whose servers have no pending writes (durable = in-memory).
fn state_with(servers: Vec<ServerState>) -> State {
    let mut s = State::initial(servers.len() as u8);
    for (slot, srv) in s.servers.iter_mut().zip(servers) {
        *slot = srv;
    }
    synced(s)
}

/// `s` with every server's durable part set to its in-memory state (for
/// hand-built states changed after `state_with`).
fn synced(mut s: State) -> State {
    for srv in s.servers.iter_mut() {
        srv.durable_term = srv.term;
        srv.durable_voted_for = srv.voted_for;
        srv.durable_log = srv.log.clone();
        srv.durable_snapshot_index = srv.snapshot_index;
        srv.durable_snapshot_term = srv.snapshot_term;
        srv.durable_snapshot_values = srv.snapshot_values.clone();
    }
    s
}

fn deliver(m: &RaftModel, s: &State, message: Message) -> State {
    m.next_state(s, Action::Deliver { message })
        .expect("delivery is enabled")
}

fn network(s: &State) -> Vec<Message> {
    s.network.to_vec()
}

// ----- Timeout, ClientRequest, Heartbeat, Restart --------------------------

#[test]
fn timeout_is_disabled_for_leaders_and_at_max_term() {
    let m = RaftModel::new(Config {
        max_term: 2,
        ..cfg(3)
    });
    let s = state_with(vec![
        leader(1, &[], &[0, 1, 1], &[0, 0, 0]),
        follower(2, &[]),
        follower(1, &[]),
    ]);
    assert!(m.next_state(&s, Action::Timeout { server: 0 }).is_none());
    assert!(m.next_state(&s, Action::Timeout { server: 1 }).is_none());
    assert!(m.next_state(&s, Action::Timeout { server: 2 }).is_some());
}

#[test]
fn client_request_appends_without_sending_and_takes_the_next_value() {
    let m = model(3);
    let s = state_with(vec![
        leader(2, &[e(1, 1)], &[0, 2, 2], &[0, 0, 0]),
        follower(2, &[]),
        follower(2, &[]),
    ]);
    let mut s = s;
    s.requests = 1;
    let mut acts = Vec::new();
    m.actions(&s, &mut acts);
    assert!(acts.contains(&Action::ClientRequest {
        server: 0,
        value: 2
    }));
    assert!(!acts
        .iter()
        .any(|a| matches!(a, Action::ClientRequest { server, .. } if *server != 0)));
    let t = m
        .next_state(
            &s,
            Action::ClientRequest {
                server: 0,
                value: 2,
            },
        )
        .unwrap();
    assert_eq!(t.servers[0].log.to_vec(), vec![e(1, 1), e(2, 2)]);
    assert!(t.network.is_empty());
    assert_eq!(t.servers[0].commit_index, 0);
    assert_eq!(t.requests, 2);
    // Not a leader: disabled.
    assert!(m
        .next_state(
            &s,
            Action::ClientRequest {
                server: 1,
                value: 2
            }
        )
        .is_none());
}

#[test]
fn heartbeat_sends_from_next_index_and_does_not_advance_it() {
    let m = model(3);
    let log = [e(1, 1), e(2, 2), e(2, 3)];
    let s = state_with(vec![
        leader(2, &log, &[0, 2, 4], &[0, 1, 3]),
        follower(2, &[]),
        follower(2, &[]),
    ]);
    let mut s = s;
    s.servers[0].commit_index = 1;
    let t = m.next_state(&s, Action::Heartbeat { server: 0 }).unwrap();
    assert_eq!(
        network(&t),
        vec![
            msg(0, 1, ae(2, 1, 1, &[e(2, 2), e(2, 3)], 1)),
            msg(0, 2, ae(2, 3, 2, &[], 1)),
        ]
    );
    assert_eq!(t.servers[0].next_index, s.servers[0].next_index);
    assert!(m.next_state(&s, Action::Heartbeat { server: 1 }).is_none());
}

#[test]
fn heartbeat_sends_at_most_max_batch_entries() {
    let m = RaftModel::new(Config {
        max_batch: Some(2),
        ..cfg(3)
    });
    let log = [e(1, 1), e(2, 2), e(2, 3)];
    let s = state_with(vec![
        leader(2, &log, &[0, 1, 3], &[0, 0, 2]),
        follower(2, &[]),
        follower(2, &[]),
    ]);
    let t = m.next_state(&s, Action::Heartbeat { server: 0 }).unwrap();
    assert_eq!(
        network(&t),
        vec![
            msg(0, 1, ae(2, 0, 0, &[e(1, 1), e(2, 2)], 0)),
            msg(0, 2, ae(2, 2, 2, &[e(2, 3)], 0)),
        ]
    );
    // The follower's success vouches for the batch only; the next
    // AppendEntries starts after it.
    let u = deliver(&m, &t, msg(0, 1, ae(2, 0, 0, &[e(1, 1), e(2, 2)], 0)));
    assert_eq!(network(&u)[1..], [msg(1, 0, aer(2, true, 2, 0))]);
}

#[test]
fn restart_keeps_term_vote_and_log_and_resets_volatile_state() {
    let m = model(3);
    let mut s = state_with(vec![
        leader(3, &[e(1, 1), e(3, 2)], &[0, 3, 3], &[0, 2, 2]),
        follower(3, &[]),
        follower(3, &[]),
    ]);
    s.servers[0].voted_for = Some(0);
    s.servers[0].commit_index = 2;
    s.network.push(msg(1, 0, aer(3, true, 2, 0)));
    let s = synced(s);
    let t = m.next_state(&s, Action::Restart { server: 0 }).unwrap();
    let r = &t.servers[0];
    assert_eq!(
        (r.term, r.voted_for, r.log.to_vec()),
        (3, Some(0), vec![e(1, 1), e(3, 2)])
    );
    assert_eq!((r.role, r.commit_index), (Role::Follower, 0));
    assert_eq!(r.next_index, [0; 7]);
    assert_eq!(r.match_index, [0; 7]);
    assert_eq!(network(&t), network(&s), "messages in flight stay");
    assert_eq!(t.restarts, 1);
    // With the no-persist-vote bug Persist never wrote the vote: the disk
    // has none and the restart forgets it.
    let mut s = s;
    s.servers[0].durable_voted_for = None;
    let bug = bugged(3, Bug::NoPersistVote);
    assert!(
        !bug.has_pending_writes(&s, 0),
        "a vote alone is not pending"
    );
    let t = bug.next_state(&s, Action::Restart { server: 0 }).unwrap();
    assert_eq!(t.servers[0].voted_for, None);
}

// ----- RequestVote ---------------------------------------------------------

#[test]
fn vote_is_refused_to_a_candidate_with_a_less_up_to_date_log() {
    let m = model(3);
    // Lower last term.
    let mut s = state_with(vec![
        follower(2, &[e(2, 1)]),
        follower(2, &[e(1, 1), e(1, 2)]),
        follower(1, &[]),
    ]);
    s.network.push(msg(1, 0, rv(3, 2, 1)));
    let t = deliver(&m, &s, msg(1, 0, rv(3, 2, 1)));
    assert_eq!((t.servers[0].term, t.servers[0].voted_for), (3, None));
    assert_eq!(network(&t), vec![msg(0, 1, rvr(3, false))]);
    // Same last term, shorter log.
    let mut s = state_with(vec![
        follower(2, &[e(1, 1), e(1, 2)]),
        follower(2, &[e(1, 1)]),
        follower(1, &[]),
    ]);
    s.network.push(msg(1, 0, rv(3, 1, 1)));
    let t = deliver(&m, &s, msg(1, 0, rv(3, 1, 1)));
    assert_eq!(network(&t), vec![msg(0, 1, rvr(3, false))]);
    // Without the log check (seeded bug) it is granted.
    let t = deliver(
        &bugged(3, Bug::NoLogCheckOnVote),
        &s,
        msg(1, 0, rv(3, 1, 1)),
    );
    assert_eq!(network(&t), vec![msg(0, 1, rvr(3, true))]);
}

#[test]
fn vote_is_granted_once_per_term_but_repeated_to_the_same_candidate() {
    let m = model(3);
    let mut s = state_with(vec![follower(2, &[]), follower(2, &[]), follower(2, &[])]);
    s.servers[0].voted_for = Some(1);
    s.network.push(msg(2, 0, rv(2, 0, 0)));
    s.network.push(msg(1, 0, rv(2, 0, 0)));
    s.normalize_network(NetworkKind::Unordered);
    let t = deliver(&m, &s, msg(2, 0, rv(2, 0, 0)));
    assert_eq!(t.servers[0].voted_for, Some(1));
    assert!(t.network.contains(&msg(0, 2, rvr(2, false))));
    let t = deliver(&m, &s, msg(1, 0, rv(2, 0, 0)));
    assert!(t.network.contains(&msg(0, 1, rvr(2, true))));
    // vote-twice grants the second candidate.
    let t = deliver(&bugged(3, Bug::VoteTwice), &s, msg(2, 0, rv(2, 0, 0)));
    assert!(t.network.contains(&msg(0, 2, rvr(2, true))));
}

// ----- RequestVoteResponse -------------------------------------------------

#[test]
fn majority_of_votes_makes_leader_and_sends_append_entries_at_once() {
    let m = model(3);
    let mut s = state_with(vec![
        follower(2, &[e(1, 1)]),
        follower(2, &[]),
        follower(1, &[]),
    ]);
    s.servers[0].role = Role::Candidate;
    s.servers[0].voted_for = Some(0);
    s.servers[0].votes_granted = bit(0);
    s.network.push(msg(2, 0, rvr(2, true)));
    let t = deliver(&m, &s, msg(2, 0, rvr(2, true)));
    let l = &t.servers[0];
    assert_eq!((l.role, l.votes_granted), (Role::Leader, 0));
    assert_eq!(&l.next_index[..3], &[0, 2, 2]);
    assert_eq!(&l.match_index[..3], &[0, 0, 0]);
    assert_eq!(
        network(&t),
        vec![
            msg(0, 1, ae(2, 1, 1, &[], 0)),
            msg(0, 2, ae(2, 1, 1, &[], 0))
        ]
    );
    // Kept while server 2 (term 1) could still become leader of term 2.
    assert_eq!(
        t.ghost.elections.to_vec(),
        vec![ElectionRecord { term: 2, leader: 0 }]
    );
}

#[test]
fn refused_stale_and_duplicate_votes_change_nothing() {
    let m = model(5);
    let mut s = State::initial(5);
    s.servers[0] = follower(2, &[]);
    s.servers[0].role = Role::Candidate;
    s.servers[0].voted_for = Some(0);
    s.servers[0].votes_granted = bit(0) | bit(1);
    let s = synced(s);
    for body in [rvr(2, false), rvr(1, true)] {
        let mut s2 = s.clone();
        s2.network.push(msg(2, 0, body.clone()));
        let t = deliver(&m, &s2, msg(2, 0, body));
        assert_eq!(t.servers[0], s.servers[0]);
    }
    // A duplicate grant from a voter already counted is no new vote.
    let mut s2 = s.clone();
    s2.network.push(msg(1, 0, rvr(2, true)));
    let t = deliver(&m, &s2, msg(1, 0, rvr(2, true)));
    assert_eq!(t.servers[0].votes_granted, bit(0) | bit(1));
    assert_eq!(t.servers[0].role, Role::Candidate);
}

// ----- AppendEntries ---------------------------------------------------------

fn ae_state(follower_log: &[Entry], body: Body) -> State {
    let mut s = state_with(vec![
        leader(3, &[], &[0, 1, 1], &[0, 0, 0]),
        follower(3, follower_log),
        follower(3, &[]),
    ]);
    s.network.push(msg(0, 1, body));
    s
}

#[test]
fn term_mismatch_rejects_with_first_index_of_the_conflicting_term() {
    let m = model(3);
    let body = ae(3, 4, 3, &[], 0);
    let s = ae_state(&[e(1, 1), e(2, 2), e(2, 3), e(2, 4)], body.clone());
    let t = deliver(&m, &s, msg(0, 1, body));
    assert_eq!(t.servers[1].log.len(), 4, "a rejection changes nothing");
    assert_eq!(network(&t), vec![msg(1, 0, aer(3, false, 4, 2))]);
}

#[test]
fn stale_append_entries_never_truncates_matching_entries() {
    let m = model(3);
    let body = ae(3, 0, 0, &[e(1, 1)], 0);
    let log = [e(1, 1), e(3, 2)];
    let s = ae_state(&log, body.clone());
    let t = deliver(&m, &s, msg(0, 1, body.clone()));
    assert_eq!(t.servers[1].log.to_vec(), log.to_vec());
    assert_eq!(network(&t), vec![msg(1, 0, aer(3, true, 1, 0))]);
    // The seeded truncate-on-match bug erases the second entry.
    let t = deliver(&bugged(3, Bug::TruncateOnMatch), &s, msg(0, 1, body));
    assert_eq!(t.servers[1].log.to_vec(), vec![e(1, 1)]);
}

#[test]
fn conflicting_entry_truncates_and_appends_the_rest() {
    let m = model(3);
    let body = ae(3, 1, 1, &[e(3, 3), e(3, 4)], 0);
    let s = ae_state(&[e(1, 1), e(2, 2), e(2, 5)], body.clone());
    let t = deliver(&m, &s, msg(0, 1, body));
    assert_eq!(t.servers[1].log.to_vec(), vec![e(1, 1), e(3, 3), e(3, 4)]);
    assert_eq!(network(&t), vec![msg(1, 0, aer(3, true, 3, 0))]);
    assert!(properties::uncommitted_overwritten(&m, &t));
    assert!(!properties::uncommitted_overwritten(&m, &s));
}

#[test]
fn follower_adopts_commit_only_up_to_the_vouched_index() {
    let m = model(3);
    // leader_commit 5, but the message vouches only for index 2: the stale
    // tail at index 3 may not match the leader.
    let body = ae(3, 1, 1, &[e(3, 2)], 5);
    let s = ae_state(&[e(1, 1), e(3, 2), e(2, 9)], body.clone());
    let t = deliver(&m, &s, msg(0, 1, body));
    assert_eq!(t.servers[1].commit_index, 2);
    assert_eq!(t.servers[1].log.len(), 3);
    // Never decreases.
    let body = ae(3, 0, 0, &[], 0);
    let mut s = ae_state(&[e(1, 1)], body.clone());
    s.servers[1].commit_index = 1;
    let t = deliver(&m, &s, msg(0, 1, body));
    assert_eq!(t.servers[1].commit_index, 1);
}

// ----- AppendEntriesResponse -----------------------------------------------

fn aer_state(log: &[Entry], next: &[u32], matched: &[u32], body: Body) -> State {
    let mut s = state_with(vec![
        leader(3, log, next, matched),
        follower(3, &[]),
        follower(3, &[]),
    ]);
    s.network.push(msg(1, 0, body));
    s
}

#[test]
fn success_raises_match_and_next_monotonically_and_commits() {
    let m = model(3);
    let log = [e(3, 1), e(3, 2)];
    let body = aer(3, true, 2, 0);
    let s = aer_state(&log, &[0, 1, 1], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0].match_index[1], 2);
    assert_eq!(t.servers[0].next_index[1], 3);
    assert_eq!(t.servers[0].commit_index, 2);
    assert!(t.network.is_empty(), "nothing is sent on success");
    // A stale success cannot move them back.
    let body = aer(3, true, 1, 0);
    let s = aer_state(&log, &[0, 3, 1], &[0, 2, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0].match_index[1], 2);
    assert_eq!(t.servers[0].next_index[1], 3);
}

#[test]
fn rejection_lowers_next_index_by_the_hint_and_resends_at_once() {
    let m = model(3);
    let log = [e(1, 1), e(1, 2), e(3, 3), e(3, 4)];
    let body = aer(3, false, 4, 2);
    let s = aer_state(&log, &[0, 5, 5], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0].next_index[1], 2);
    assert_eq!(
        network(&t),
        vec![msg(0, 1, ae(3, 1, 1, &[e(1, 2), e(3, 3), e(3, 4)], 0))]
    );
    // Never at or below match_index.
    let body = aer(3, false, 4, 1);
    let s = aer_state(&log, &[0, 5, 5], &[0, 2, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0].next_index[1], 3);
    // Always progress: a hint above next_index - 1 still lowers by one.
    let body = aer(3, false, 4, 9);
    let s = aer_state(&log, &[0, 5, 5], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0].next_index[1], 4);
}

#[test]
fn stale_rejections_and_responses_are_ignored() {
    let m = model(3);
    let log = [e(1, 1), e(3, 2)];
    // Answers a request sent before next_index last moved.
    let body = aer(3, false, 2, 1);
    let s = aer_state(&log, &[0, 2, 3], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0], s.servers[0]);
    assert!(t.network.is_empty());
    // Stale-term rejection (conflict_index 0).
    let body = aer(3, false, 0, 0);
    let s = aer_state(&log, &[0, 1, 3], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0], s.servers[0]);
    // Lower term: ignored entirely.
    let body = aer(2, true, 2, 0);
    let s = aer_state(&log, &[0, 1, 3], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0], s.servers[0]);
}

#[test]
fn commit_rule_counts_only_entries_of_the_current_term() {
    // Figure 8: a majority holds index 1 (term 1), but the leader is in
    // term 3; only when index 2 (term 3) is on a majority do both commit.
    let m = model(3);
    let log = [e(1, 1), e(3, 2)];
    let body = aer(3, true, 1, 0);
    let s = aer_state(&log, &[0, 1, 1], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body.clone()));
    assert_eq!(t.servers[0].match_index[1], 1);
    assert_eq!(t.servers[0].commit_index, 0);
    let t2 = {
        let mut t = t.clone();
        t.network.push(msg(1, 0, aer(3, true, 2, 0)));
        deliver(&m, &t, msg(1, 0, aer(3, true, 2, 0)))
    };
    assert_eq!(t2.servers[0].commit_index, 2);
    // The seeded commit-old-term bug commits index 1 at once.
    let t = deliver(&bugged(3, Bug::CommitOldTerm), &s, msg(1, 0, body));
    assert_eq!(t.servers[0].commit_index, 1);
    // The commit is recorded with the leader's term and quorum.
    assert_eq!(
        t.ghost.commits.to_vec(),
        vec![CommitRecord {
            index: 1,
            entry: e(1, 1),
            term: 3,
            quorum: bit(0) | bit(1)
        }]
    );
}

// ----- network, partitions, bounds -------------------------------------------

#[test]
fn partition_loses_sends_across_the_cut_and_only_drops_messages_in_flight() {
    let m = model(3);
    let mut s = State::initial(3);
    s.network.push(msg(0, 1, rv(1, 0, 0)));
    let p = m
        .next_state(&s, Action::Partition { group: vec![0] })
        .unwrap();
    assert_eq!(p.partition_group(), Some(vec![0]));
    assert!(m
        .next_state(
            &p,
            Action::Deliver {
                message: msg(0, 1, rv(1, 0, 0))
            }
        )
        .is_none());
    assert!(m
        .next_state(
            &p,
            Action::Duplicate {
                message: msg(0, 1, rv(1, 0, 0))
            }
        )
        .is_none());
    assert!(m
        .next_state(
            &p,
            Action::Drop {
                message: msg(0, 1, rv(1, 0, 0))
            }
        )
        .is_some());
    // A second partition is not enabled while one is active.
    assert!(m
        .next_state(&p, Action::Partition { group: vec![1] })
        .is_none());
    // Timeout of server 1: the RequestVote to 0 is lost at once.
    let t = m.next_state(&p, Action::Timeout { server: 1 }).unwrap();
    assert_eq!(
        network(&t),
        vec![msg(0, 1, rv(1, 0, 0)), msg(1, 2, rv(1, 0, 0))]
    );
    let h = m.next_state(&t, Action::Heal).unwrap();
    assert_eq!(h.partition_group(), None);
    assert!(m.next_state(&h, Action::Heal).is_none());
}

#[test]
fn partition_actions_list_each_cut_once() {
    assert_eq!(model(3).partition_groups(), vec![vec![0], vec![1], vec![2]]);
    let groups = model(4).partition_groups();
    // Four singletons and the three halves that contain server 0.
    assert_eq!(groups.len(), 7);
    assert!(groups.contains(&vec![0, 3]) && !groups.contains(&vec![1, 2]));
}

#[test]
fn actions_that_would_exceed_max_inflight_are_not_listed() {
    let m = RaftModel::new(Config {
        max_inflight: 2,
        ..cfg(3)
    });
    let mut s = State::initial(3);
    s.network.push(msg(0, 1, rv(1, 0, 0)));
    let mut acts = Vec::new();
    m.actions(&s, &mut acts);
    assert!(!acts.iter().any(|a| matches!(a, Action::Timeout { .. })));
    assert!(acts.contains(&Action::Duplicate {
        message: msg(0, 1, rv(1, 0, 0))
    }));
    for a in &acts {
        let t = m
            .next_state(&s, a.clone())
            .expect("listed actions are enabled");
        assert!(t.network.len() <= 2);
    }
}

#[test]
fn ordered_network_delivers_each_link_in_order() {
    let m = RaftModel::new(Config {
        network: NetworkKind::Ordered,
        ..cfg(3)
    });
    let mut s = State::initial(3);
    s.network.push(msg(0, 1, rv(2, 0, 0)));
    s.network.push(msg(0, 1, rv(1, 0, 0)));
    s.network.push(msg(2, 1, rv(1, 0, 0)));
    let first = Action::Deliver {
        message: msg(0, 1, rv(2, 0, 0)),
    };
    let second = Action::Deliver {
        message: msg(0, 1, rv(1, 0, 0)),
    };
    assert!(m.is_enabled(&s, &first));
    assert!(!m.is_enabled(&s, &second));
    assert!(m.is_enabled(
        &s,
        &Action::Drop {
            message: msg(0, 1, rv(1, 0, 0))
        }
    ));
    let mut acts = Vec::new();
    m.actions(&s, &mut acts);
    assert!(acts.contains(&first) && !acts.contains(&second));
}

#[test]
fn violating_states_are_terminal() {
    let m = model(3);
    let mut s = State::initial(3);
    s.servers[0] = leader(1, &[], &[0, 1, 1], &[0, 0, 0]);
    s.servers[1] = leader(1, &[], &[1, 0, 1], &[0, 0, 0]);
    assert!(!properties::election_safety(&m, &s));
    let mut acts = Vec::new();
    m.actions(&s, &mut acts);
    assert!(acts.is_empty());
}

// ----- abstract state --------------------------------------------------------

#[test]
fn abstract_state_round_trips() {
    let m = model(3);
    let mut s = State::initial(3);
    for a in [
        Action::Timeout { server: 1 },
        Action::Deliver {
            message: msg(1, 0, rv(1, 0, 0)),
        },
        Action::Deliver {
            message: msg(0, 1, rvr(1, true)),
        },
        Action::ClientRequest {
            server: 1,
            value: 1,
        },
    ] {
        s = m.next_state(&s, a).unwrap();
    }
    let a = s.to_abstract();
    assert_eq!(a.servers[1].role, Role::Leader);
    assert_eq!(a.servers[1].next_index, vec![1, 0, 1]);
    assert_eq!(a.servers[0].next_index, Vec::<u32>::new());
    let back = State::from_abstract(&a);
    assert_eq!(back.to_abstract(), a);
    assert_eq!(back.requests, 1);
    // The rebuilt state steps like the original (ghosts aside).
    let act = Action::Heartbeat { server: 1 };
    assert_eq!(
        m.next_state(&back, act.clone()).unwrap().to_abstract(),
        m.next_state(&s, act).unwrap().to_abstract()
    );
}

// ----- properties on hand-built states ---------------------------------------

#[test]
fn property_lists_match_their_conditions() {
    let names: Vec<_> = SAFETY.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ALWAYS);
    let names: Vec<_> = REACHABILITY.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, SOMETIMES);
    let m = model(3);
    let s = State::initial(3);
    for (name, f) in SAFETY {
        assert!(f(&m, &s), "{name} holds initially");
    }
    for (name, f) in REACHABILITY {
        assert!(!f(&m, &s), "{name} is not reached initially");
    }
}

#[test]
fn election_safety() {
    let m = model(3);
    let mut s = State::initial(3);
    s.ghost
        .elections
        .push(ElectionRecord { term: 1, leader: 0 });
    s.ghost
        .elections
        .push(ElectionRecord { term: 2, leader: 1 });
    assert!(properties::election_safety(&m, &s));
    s.ghost
        .elections
        .push(ElectionRecord { term: 2, leader: 2 });
    assert!(!properties::election_safety(&m, &s));
}

#[test]
fn log_matching() {
    let m = model(3);
    let good = state_with(vec![
        follower(3, &[e(1, 1), e(2, 2)]),
        follower(3, &[e(1, 1), e(3, 3)]),
        follower(3, &[]),
    ]);
    assert!(properties::log_matching(&m, &good));
    let bad = state_with(vec![
        follower(3, &[e(1, 1), e(2, 2)]),
        follower(3, &[e(1, 4), e(2, 2)]),
        follower(3, &[]),
    ]);
    assert!(!properties::log_matching(&m, &bad));
}

#[test]
fn leader_append_only() {
    let m = model(3);
    // Two leaders of one term (only possible with a bug): the AppendEntries
    // of one truncates the other's log, which the step flags.
    let mut s = state_with(vec![
        leader(2, &[e(1, 1)], &[0, 1, 1], &[0, 0, 0]),
        leader(2, &[e(2, 2)], &[1, 0, 1], &[0, 0, 0]),
        follower(2, &[]),
    ]);
    assert!(properties::leader_append_only(&m, &s));
    s.network.push(msg(1, 0, ae(2, 0, 0, &[e(2, 2)], 0)));
    let t = deliver(&m, &s, msg(1, 0, ae(2, 0, 0, &[e(2, 2)], 0)));
    assert!(!properties::leader_append_only(&m, &t));
}

#[test]
fn leader_completeness() {
    let m = model(3);
    let mut s = state_with(vec![
        leader(3, &[e(1, 1)], &[0, 2, 2], &[0, 0, 0]),
        leader(1, &[], &[1, 0, 1], &[0, 0, 0]),
        follower(3, &[]),
    ]);
    s.ghost.commits.push(CommitRecord {
        index: 1,
        entry: e(1, 1),
        term: 2,
        quorum: bit(0) | bit(2),
    });
    // Server 1 is a stale leader of term 1: it may lack the entry.
    assert!(properties::leader_completeness(&m, &s));
    s.servers[0].log[0] = e(3, 2);
    assert!(!properties::leader_completeness(&m, &s));
}

#[test]
fn state_machine_safety() {
    let m = model(3);
    let mut s = state_with(vec![
        follower(3, &[e(1, 1)]),
        follower(3, &[e(1, 1), e(2, 2)]),
        follower(3, &[e(1, 1), e(3, 3)]),
    ]);
    s.servers[0].commit_index = 1;
    s.servers[1].commit_index = 1;
    assert!(properties::state_machine_safety(&m, &s));
    let mut bad = s.clone();
    bad.servers[1].commit_index = 2;
    bad.servers[2].commit_index = 2;
    assert!(!properties::state_machine_safety(&m, &bad));
    // A commit index beyond the log (entries erased under it).
    let mut bad = s.clone();
    bad.servers[0].commit_index = 2;
    assert!(!properties::state_machine_safety(&m, &bad));
    // A server whose committed prefix disagrees with a commit record.
    let mut bad = s;
    bad.ghost.commits.push(CommitRecord {
        index: 1,
        entry: e(1, 7),
        term: 1,
        quorum: 0,
    });
    assert!(!properties::state_machine_safety(&m, &bad));
}

#[test]
fn majority_overlap() {
    let m = model(3);
    let mut s = State::initial(3);
    s.ghost.commits.push(CommitRecord {
        index: 1,
        entry: e(1, 1),
        term: 1,
        quorum: bit(0) | bit(1),
    });
    let mut held: [ValueSet; 7] = Default::default();
    held[1] = [1].into_iter().collect(); // voter 1 held value 1 when it voted
    s.ghost.quorums.push(QuorumRecord {
        term: 2,
        leader: 2,
        voters: bit(1) | bit(2),
        held,
    });
    assert!(properties::majority_overlap(&m, &s));
    // The overlap server did not hold the entry when it voted.
    let mut bad = s.clone();
    bad.ghost.quorums[0].held = Default::default();
    assert!(!properties::majority_overlap(&m, &bad));
    // The quorums do not intersect at all.
    let mut bad = s.clone();
    bad.ghost.commits[0].quorum = bit(0);
    assert!(!properties::majority_overlap(&m, &bad));
    // A flagged failure stays a failure after the records are dropped.
    let mut bad = State::initial(3);
    bad.ghost.flags = flags::VIOLATED_MAJORITY_OVERLAP;
    assert!(!properties::majority_overlap(&m, &bad));
}

#[test]
fn minority_no_commit() {
    // Five servers, leader 0 cut off with 1 in the minority {0, 1}; 1
    // acknowledges the entry.
    let mut s = State::initial(5);
    s.servers[0] = leader(1, &[e(1, 1)], &[0, 2, 2, 2, 2], &[0, 0, 0, 0, 0]);
    s.servers[1] = follower(1, &[e(1, 1)]);
    s.partition = bit(0) | bit(1);
    s.network.push(msg(1, 0, aer(1, true, 1, 0)));
    let ack = msg(1, 0, aer(1, true, 1, 0));
    // Correct quorum: no commit, the property holds.
    let m = model(5);
    let t = deliver(&m, &s, ack.clone());
    assert_eq!(t.servers[0].commit_index, 0);
    assert!(properties::minority_no_commit(&m, &t));
    // quorum-minority (n / 2 = 2) commits in the minority: flagged.
    let m = bugged(5, Bug::QuorumMinority);
    let t = deliver(&m, &s, ack.clone());
    assert_eq!(t.servers[0].commit_index, 1);
    assert!(!properties::minority_no_commit(&m, &t));
    // The same commit without a partition is not this property's business.
    let mut healed = s.clone();
    healed.partition = 0;
    let t = deliver(&m, &healed, ack);
    assert!(properties::minority_no_commit(&m, &t));
}

#[test]
fn vote_once_per_term() {
    let m = model(3);
    let mut s = State::initial(3);
    let v = |voter, candidate| VoteRecord {
        term: 1,
        voter,
        candidate,
        held: ValueSet::new(),
    };
    s.ghost.votes.push(v(0, 0));
    s.ghost.votes.push(v(1, 0));
    assert!(properties::vote_once_per_term(&m, &s));
    s.ghost.votes.push(v(1, 2));
    s.ghost.votes.sort();
    assert!(!properties::vote_once_per_term(&m, &s));
}

#[test]
fn vote_once_per_term_survives_a_restart_without_persisted_vote() {
    // Server 0 votes for 1, restarts forgetting its vote (bug), votes for 2.
    let m = bugged(3, Bug::NoPersistVote);
    let mut s = State::initial(3);
    for srv in s.servers.iter_mut() {
        srv.term = 1;
    }
    s.network.push(msg(1, 0, rv(1, 0, 0)));
    s.network.push(msg(2, 0, rv(1, 0, 0)));
    s.normalize_network(NetworkKind::Unordered);
    let s = deliver(&m, &s, msg(1, 0, rv(1, 0, 0)));
    assert!(properties::vote_once_per_term(&m, &s));
    let s = m.next_state(&s, Action::Restart { server: 0 }).unwrap();
    let s = deliver(&m, &s, msg(2, 0, rv(1, 0, 0)));
    assert!(!properties::vote_once_per_term(&m, &s));
}

#[test]
fn reachability_properties() {
    let m = model(3);
    let mut s = state_with(vec![
        leader(1, &[], &[0, 1, 1], &[0, 0, 0]),
        leader(2, &[], &[1, 0, 1], &[0, 0, 0]),
        follower(2, &[]),
    ]);
    assert!(properties::leader_elected(&m, &s));
    assert!(!properties::entry_committed(&m, &s));
    assert!(!properties::leader_deposed_by_partition(&m, &s));
    s.partition = bit(0);
    assert!(properties::leader_deposed_by_partition(&m, &s));
    // The newer leader on the minority side does not count.
    s.partition = bit(1);
    assert!(!properties::leader_deposed_by_partition(&m, &s));
    s.servers[2].commit_index = 1;
    assert!(properties::entry_committed(&m, &s));
    assert!(!properties::committed_survives_restart(&m, &s));
    s.ghost.flags = flags::EVENT_COMMIT_SURVIVED;
    assert!(properties::committed_survives_restart(&m, &s));
}

#[test]
fn commit_survives_restart_is_flagged_when_the_commit_index_is_regained() {
    let m = model(3);
    let mut s = state_with(vec![
        leader(1, &[e(1, 1)], &[0, 2, 2], &[0, 1, 0]),
        follower(1, &[e(1, 1)]),
        follower(1, &[]),
    ]);
    s.servers[0].commit_index = 1;
    s.servers[1].commit_index = 1;
    let s = m.next_state(&s, Action::Restart { server: 1 }).unwrap();
    assert_eq!(s.servers[1].lost_commit, 1);
    let s = m.next_state(&s, Action::Heartbeat { server: 0 }).unwrap();
    let s = deliver(&m, &s, msg(0, 1, ae(1, 1, 1, &[], 1)));
    assert!(properties::committed_survives_restart(&m, &s));
    assert_eq!(s.servers[1].lost_commit, 0);
    let s = m.next_state(&s, Action::Heartbeat { server: 0 }).unwrap();
    assert!(
        !properties::committed_survives_restart(&m, &s),
        "an event flag"
    );
}

// ----- symmetry ----------------------------------------------------------------

/// A deterministic walk of the model (a small LCG picks the actions).
fn walk(m: &RaftModel, seed: u64, steps: usize) -> Vec<State> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut s = m.init_states().remove(0);
    let mut out = vec![s.clone()];
    for _ in 0..steps {
        let mut acts = Vec::new();
        m.actions(&s, &mut acts);
        if acts.is_empty() {
            break;
        }
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = acts.swap_remove((x >> 33) as usize % acts.len());
        s = m.next_state(&s, a).expect("listed actions are enabled");
        out.push(s.clone());
    }
    out
}

fn permutations(n: u8) -> Vec<Vec<u8>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for k in 0..=p.len() {
            let mut q = p.clone();
            q.insert(k, n - 1);
            out.push(q);
        }
    }
    out
}

#[test]
fn symmetric_states_have_the_same_representative() {
    let m = RaftModel::new(Config {
        max_term: 3,
        max_requests: 2,
        max_inflight: 4,
        ..async_cfg(3)
    });
    let perms = permutations(3);
    let mut checked = 0;
    for seed in 0..40 {
        for s in walk(&m, seed, 40) {
            let rep = s.representative();
            for p in &perms {
                let q = s.permuted(p);
                assert_eq!(q.representative(), rep, "seed {seed}, permutation {p:?}");
                checked += 1;
            }
            // A representative is a permutation of the state.
            assert!(perms.iter().any(|p| {
                let mut q = s.permuted(p);
                q.normalize_network(NetworkKind::Unordered);
                let mut r = rep.clone();
                r.partition = q.partition;
                q == r
            }));
        }
    }
    assert!(checked > 1000);
}

#[test]
fn permuting_commutes_with_stepping() {
    // Renaming ids then stepping with renamed actions gives the renamed
    // successor: the model itself has no preferred id.
    let m = RaftModel::new(Config {
        max_requests: 2,
        max_inflight: 4,
        ..async_cfg(3)
    });
    let rename = |a: &Action, p: &[u8]| -> Action {
        let pm = |msg: &Message| Message {
            from: p[usize::from(msg.from)],
            to: p[usize::from(msg.to)],
            body: msg.body.clone(),
        };
        match a {
            Action::Snapshot { server, index } => Action::Snapshot {
                server: p[usize::from(*server)],
                index: *index,
            },
            Action::Timeout { server } => Action::Timeout {
                server: p[usize::from(*server)],
            },
            Action::Heartbeat { server } => Action::Heartbeat {
                server: p[usize::from(*server)],
            },
            Action::ClientRequest { server, value } => Action::ClientRequest {
                server: p[usize::from(*server)],
                value: *value,
            },
            Action::Deliver { message } => Action::Deliver {
                message: pm(message),
            },
            Action::Drop { message } => Action::Drop {
                message: pm(message),
            },
            Action::Duplicate { message } => Action::Duplicate {
                message: pm(message),
            },
            Action::Restart { server } => Action::Restart {
                server: p[usize::from(*server)],
            },
            Action::Persist { server } => Action::Persist {
                server: p[usize::from(*server)],
            },
            Action::Partition { group } => {
                let mut g: Vec<u8> = group.iter().map(|&i| p[usize::from(i)]).collect();
                g.sort();
                Action::Partition { group: g }
            }
            Action::Heal => Action::Heal,
        }
    };
    let p = [2u8, 0, 1];
    for seed in 0..20 {
        let states = walk(&m, seed, 30);
        for s in &states {
            let mut acts = Vec::new();
            m.actions(s, &mut acts);
            let mut q = s.permuted(&p);
            q.normalize_network(NetworkKind::Unordered);
            for a in acts {
                let t = m.next_state(s, a.clone()).unwrap();
                let tq = m.next_state(&q, rename(&a, &p)).unwrap();
                let mut expected = t.permuted(&p);
                expected.normalize_network(NetworkKind::Unordered);
                assert_eq!(tq, expected, "seed {seed} action {a:?}");
            }
        }
    }
}

fn discoveries(cfg: Config, symmetry: bool) -> Vec<&'static str> {
    let model = RaftModel::new(cfg.clone());
    let names: Vec<&'static str> = model.properties().iter().map(|p| p.name).collect();
    let mut b = RaftModel::new(cfg).checker().threads(2);
    if symmetry {
        b = b.symmetry();
    }
    let c = b.spawn_dfs().join();
    assert!(c.is_done());
    names
        .into_iter()
        .filter(|n| c.discovery(n).is_some())
        .collect()
}

#[test]
fn symmetry_finds_the_same_results_as_a_full_search() {
    let small = Config {
        servers: 3,
        max_term: 2,
        max_requests: 1,
        max_inflight: 2,
        max_restarts: 0,
        max_partitions: 1,
        max_duplicates: 0,
        max_snapshots: 0,
        network: NetworkKind::Unordered,
        persist: PersistMode::Async,
        max_batch: None,
        bug: None,
    };
    for cfg in [
        small.clone(),
        Config {
            bug: Some(Bug::QuorumMinority),
            ..small.clone()
        },
        Config {
            bug: Some(Bug::VoteTwice),
            ..small
        },
    ] {
        assert_eq!(
            discoveries(cfg.clone(), true),
            discoveries(cfg.clone(), false),
            "{cfg:?}"
        );
    }
}

// ----- durability: Persist, the outbox, the durable part (docs/protocol.md §7)

fn amodel(servers: u8) -> RaftModel {
    RaftModel::new(async_cfg(servers))
}

fn step(m: &RaftModel, s: &State, a: Action) -> State {
    m.next_state(s, a.clone())
        .unwrap_or_else(|| panic!("{a:?} is enabled"))
}

fn persist(server: ServerId) -> Action {
    Action::Persist { server }
}

fn listed(m: &RaftModel, s: &State) -> Vec<Action> {
    let mut acts = Vec::new();
    m.actions(s, &mut acts);
    acts
}

#[test]
fn timeout_puts_request_votes_in_the_outbox_until_persist() {
    // R-persist-2: the new term and the self-vote are pending.
    let m = amodel(3);
    let s = state_with(vec![
        follower(2, &[e(1, 1)]),
        follower(2, &[]),
        follower(2, &[]),
    ]);
    let t = step(&m, &s, Action::Timeout { server: 0 });
    let c = &t.servers[0];
    assert_eq!((c.term, c.voted_for), (3, Some(0)));
    assert_eq!((c.durable_term, c.durable_voted_for), (2, None));
    assert_eq!(
        c.outbox.to_vec(),
        vec![msg(0, 1, rv(3, 1, 1)), msg(0, 2, rv(3, 1, 1))]
    );
    assert!(t.network.is_empty());
    assert!(t.ghost.votes.is_empty(), "the self-vote is not durable yet");
    assert_eq!(m.inflight(&t), 2, "outbox messages count as in flight");
    // Persist is listed for exactly the server with pending writes.
    let persists: Vec<_> = listed(&m, &t)
        .into_iter()
        .filter(|a| matches!(a, Action::Persist { .. }))
        .collect();
    assert_eq!(persists, vec![persist(0)]);
    assert!(m.next_state(&t, persist(1)).is_none(), "nothing pending");
    // Persist: durable part = in-memory, the outbox enters the network in
    // order, the self-vote is recorded.
    let u = step(&m, &t, persist(0));
    let c = &u.servers[0];
    assert_eq!(
        (c.durable_term, c.durable_voted_for, c.durable_log.to_vec()),
        (3, Some(0), vec![e(1, 1)])
    );
    assert!(c.outbox.is_empty());
    assert_eq!(
        network(&u),
        vec![msg(0, 1, rv(3, 1, 1)), msg(0, 2, rv(3, 1, 1))]
    );
    assert_eq!(
        u.ghost.votes.to_vec(),
        vec![VoteRecord {
            term: 3,
            voter: 0,
            candidate: 0,
            held: [1].into_iter().collect()
        }]
    );
    assert!(
        m.next_state(&u, persist(0)).is_none(),
        "nothing pending now"
    );
}

#[test]
fn a_granted_vote_leaves_only_at_persist_and_is_recorded_then() {
    let m = amodel(3);
    let mut s = state_with(vec![
        follower(1, &[]),
        follower(1, &[e(1, 1)]),
        follower(1, &[]),
    ]);
    s.network.push(msg(0, 1, rv(2, 1, 1)));
    let t = deliver(&m, &s, msg(0, 1, rv(2, 1, 1)));
    let v = &t.servers[1];
    assert_eq!((v.term, v.voted_for), (2, Some(0)));
    assert_eq!(v.outbox.to_vec(), vec![msg(1, 0, rvr(2, true))]);
    assert!(t.network.is_empty() && t.ghost.votes.is_empty());
    let u = step(&m, &t, persist(1));
    assert_eq!(network(&u), vec![msg(1, 0, rvr(2, true))]);
    assert_eq!(
        u.ghost.votes.to_vec(),
        vec![VoteRecord {
            term: 2,
            voter: 1,
            candidate: 0,
            held: [1].into_iter().collect()
        }]
    );
    // With vote-before-persist the granted response goes straight out
    // (and is recorded at once) although the vote is not durable.
    let b = bugged_async(3, Bug::VoteBeforePersist);
    let t = deliver(&b, &s, msg(0, 1, rv(2, 1, 1)));
    assert_eq!(network(&t), vec![msg(1, 0, rvr(2, true))]);
    assert_eq!(t.servers[1].durable_voted_for, None);
    assert_eq!(t.ghost.votes.len(), 1);
}

fn bugged_async(servers: u8, bug: Bug) -> RaftModel {
    RaftModel::new(Config {
        bug: Some(bug),
        ..async_cfg(servers)
    })
}

#[test]
fn a_response_without_pending_writes_goes_straight_out() {
    // A refused vote in the same term changes nothing durable: straight to
    // the network. The same refusal after an earlier unpersisted write of
    // the voter waits in the outbox behind it.
    let m = amodel(3);
    let mut s = state_with(vec![follower(2, &[]), follower(2, &[]), follower(2, &[])]);
    s.servers[1].voted_for = Some(2);
    let mut s = synced(s);
    s.network.push(msg(0, 1, rv(2, 0, 0)));
    let t = deliver(&m, &s, msg(0, 1, rv(2, 0, 0)));
    assert_eq!(network(&t), vec![msg(1, 0, rvr(2, false))]);
    assert!(t.servers[1].outbox.is_empty());
    let mut p = s.clone();
    p.servers[1].log.push(e(2, 1)); // pending, not yet durable
    let t = deliver(&m, &p, msg(0, 1, rv(2, 0, 0)));
    assert!(t.network.is_empty());
    assert_eq!(t.servers[1].outbox.to_vec(), vec![msg(1, 0, rvr(2, false))]);
}

#[test]
fn an_acknowledgement_waits_for_the_log_change_and_append_entries_does_not() {
    let m = amodel(3);
    let mut s = state_with(vec![
        leader(1, &[e(1, 1)], &[0, 1, 1], &[0, 0, 0]),
        follower(1, &[]),
        follower(1, &[]),
    ]);
    // The leader's entry is not durable on itself: AppendEntries still goes
    // straight out (R-persist-3).
    s.servers[0].durable_log.clear();
    let t = step(&m, &s, Action::Heartbeat { server: 0 });
    assert_eq!(
        network(&t),
        vec![
            msg(0, 1, ae(1, 0, 0, &[e(1, 1)], 0)),
            msg(0, 2, ae(1, 0, 0, &[e(1, 1)], 0))
        ]
    );
    // The follower appends in memory; its success waits (R-persist-2).
    let u = deliver(&m, &t, msg(0, 1, ae(1, 0, 0, &[e(1, 1)], 0)));
    let f = &u.servers[1];
    assert_eq!(
        (f.log.to_vec(), f.durable_log.to_vec()),
        (vec![e(1, 1)], vec![])
    );
    assert_eq!(f.outbox.to_vec(), vec![msg(1, 0, aer(1, true, 1, 0))]);
    assert_eq!(network(&u), vec![msg(0, 2, ae(1, 0, 0, &[e(1, 1)], 0))]);
    // With ack-before-persist it goes straight out.
    let b = bugged_async(3, Bug::AckBeforePersist);
    let u = deliver(&b, &t, msg(0, 1, ae(1, 0, 0, &[e(1, 1)], 0)));
    assert!(u.servers[1].outbox.is_empty());
    assert!(network(&u).contains(&msg(1, 0, aer(1, true, 1, 0))));
}

#[test]
fn persist_releases_the_outbox_in_send_order_and_loses_what_crosses_a_cut() {
    let m = RaftModel::new(Config {
        network: NetworkKind::Ordered,
        ..async_cfg(3)
    });
    let mut s = state_with(vec![follower(2, &[]), follower(2, &[]), follower(2, &[])]);
    s.servers[0].term = 3; // pending
    s.servers[0].outbox.extend([
        msg(0, 1, aer(3, false, 0, 0)),
        msg(0, 2, rvr(3, false)),
        msg(0, 1, rvr(3, true)),
    ]);
    s.network.push(msg(0, 1, ae(2, 0, 0, &[], 0)));
    let t = step(&m, &s, persist(0));
    // Per link, older messages first; the outbox follows what was in flight.
    assert_eq!(
        network(&t),
        vec![
            msg(0, 1, ae(2, 0, 0, &[], 0)),
            msg(0, 1, aer(3, false, 0, 0)),
            msg(0, 1, rvr(3, true)),
            msg(0, 2, rvr(3, false)),
        ]
    );
    // Across a cut the released messages are lost at once.
    let mut cut = s.clone();
    cut.partition = bit(2);
    let t = step(&m, &cut, persist(0));
    assert!(!network(&t).iter().any(|x| x.to == 2));
    assert_eq!(network(&t).len(), 3);
    assert!(t.servers[0].outbox.is_empty());
}

#[test]
fn restart_loses_pending_writes_and_the_outbox() {
    // R-persist-5.
    let m = amodel(3);
    let mut s = state_with(vec![
        follower(1, &[e(1, 1)]),
        follower(1, &[]),
        follower(1, &[]),
    ]);
    s.servers[0].term = 2;
    s.servers[0].voted_for = Some(1);
    s.servers[0].log.push(e(2, 2));
    s.servers[0].outbox.push(msg(0, 1, rvr(2, true)));
    s.servers[0].commit_index = 1;
    s.network.push(msg(1, 0, rv(2, 0, 0)));
    let t = step(&m, &s, Action::Restart { server: 0 });
    let r = &t.servers[0];
    assert_eq!(
        (r.term, r.voted_for, r.log.to_vec()),
        (1, None, vec![e(1, 1)])
    );
    assert_eq!(
        (r.durable_term, r.durable_voted_for, r.durable_log.to_vec()),
        (1, None, vec![e(1, 1)])
    );
    assert!(r.outbox.is_empty());
    assert_eq!((r.role, r.commit_index), (Role::Follower, 0));
    assert_eq!(network(&t), network(&s), "the network keeps what is in it");
    // A restart after Persist keeps everything durable.
    let p = step(&m, &s, persist(0));
    let t = step(&m, &p, Action::Restart { server: 0 });
    let r = &t.servers[0];
    assert_eq!(
        (r.term, r.voted_for, r.log.to_vec()),
        (2, Some(1), vec![e(1, 1), e(2, 2)])
    );
}

#[test]
fn a_vote_lost_before_persist_is_no_double_vote() {
    // Voter 1 grants candidate 0 in memory, restarts before Persist, then
    // grants candidate 2 in the same term: legal, nobody saw the first vote.
    let m = amodel(3);
    let mut s = state_with(vec![follower(1, &[]), follower(0, &[]), follower(1, &[])]);
    for c in [0, 2] {
        s.servers[c].role = Role::Candidate;
        s.servers[c].voted_for = Some(c as ServerId);
        s.servers[c].votes_granted = bit(c as ServerId);
    }
    let mut s = synced(s);
    s.network.push(msg(0, 1, rv(1, 0, 0)));
    s.network.push(msg(2, 1, rv(1, 0, 0)));
    let t = deliver(&m, &s, msg(0, 1, rv(1, 0, 0)));
    assert_eq!(t.servers[1].voted_for, Some(0));
    let t = step(&m, &t, Action::Restart { server: 1 });
    assert_eq!((t.servers[1].term, t.servers[1].voted_for), (0, None));
    let t = deliver(&m, &t, msg(2, 1, rv(1, 0, 0)));
    let t = step(&m, &t, persist(1));
    assert_eq!(network(&t), vec![msg(1, 2, rvr(1, true))]);
    assert!(properties::vote_once_per_term(&m, &t));
    // The same steps with vote-before-persist: both grants were seen.
    let b = bugged_async(3, Bug::VoteBeforePersist);
    let t = deliver(&b, &s, msg(0, 1, rv(1, 0, 0)));
    let t = step(&b, &t, Action::Restart { server: 1 });
    let t = deliver(&b, &t, msg(2, 1, rv(1, 0, 0)));
    assert!(!properties::vote_once_per_term(&b, &t));
}

#[test]
fn leader_counts_itself_only_for_its_durable_prefix() {
    // R-persist-4 / §6: 3 servers, one follower acknowledged index 1.
    let m = amodel(3);
    let mut s = state_with(vec![
        leader(1, &[e(1, 1)], &[0, 1, 1], &[0, 0, 0]),
        follower(1, &[e(1, 1)]),
        follower(1, &[]),
    ]);
    s.servers[0].durable_log.clear();
    s.network.push(msg(1, 0, aer(1, true, 1, 0)));
    let t = deliver(&m, &s, msg(1, 0, aer(1, true, 1, 0)));
    assert_eq!(t.servers[0].match_index[1], 1);
    assert_eq!(
        t.servers[0].commit_index, 0,
        "one durable copy is no quorum"
    );
    assert!(t.ghost.commits.is_empty());
    // The leader's own Persist makes the quorum.
    let u = step(&m, &t, persist(0));
    assert_eq!(u.servers[0].commit_index, 1);
    assert_eq!(
        u.ghost.commits.to_vec(),
        vec![CommitRecord {
            index: 1,
            entry: e(1, 1),
            term: 1,
            quorum: bit(0) | bit(1)
        }]
    );
    assert!(properties::committed_is_durable(&m, &u));
    assert!(!properties::leader_commits_before_own_persist(&m, &u));
    // leader-counts-volatile-self commits at once, with one durable copy.
    let b = bugged_async(3, Bug::LeaderCountsVolatileSelf);
    let t = deliver(&b, &s, msg(1, 0, aer(1, true, 1, 0)));
    assert_eq!(t.servers[0].commit_index, 1);
    assert!(!properties::committed_is_durable(&b, &t));
}

#[test]
fn followers_alone_can_commit_before_the_leaders_own_persist() {
    // Two acknowledgements are a majority of 3 without the leader.
    let m = amodel(3);
    let mut s = state_with(vec![
        leader(1, &[e(1, 1)], &[0, 2, 1], &[0, 1, 0]),
        follower(1, &[e(1, 1)]),
        follower(1, &[e(1, 1)]),
    ]);
    s.servers[0].durable_log.clear();
    s.network.push(msg(2, 0, aer(1, true, 1, 0)));
    let t = deliver(&m, &s, msg(2, 0, aer(1, true, 1, 0)));
    assert_eq!(t.servers[0].commit_index, 1);
    assert!(properties::leader_commits_before_own_persist(&m, &t));
    assert!(properties::committed_is_durable(&m, &t));
}

#[test]
fn success_beyond_the_leaders_last_index_is_ignored() {
    let m = amodel(3);
    let body = aer(3, true, 5, 0);
    let s = aer_state(&[e(1, 1), e(3, 2)], &[0, 3, 3], &[0, 0, 0], body.clone());
    let t = deliver(&m, &s, msg(1, 0, body));
    assert_eq!(t.servers[0], s.servers[0]);
}

#[test]
fn committed_is_durable_counts_durable_logs_only() {
    let m = amodel(3);
    let mut s = state_with(vec![
        leader(1, &[e(1, 1)], &[0, 2, 2], &[0, 1, 0]),
        follower(1, &[e(1, 1)]),
        follower(1, &[]),
    ]);
    s.ghost.commits.push(CommitRecord {
        index: 1,
        entry: e(1, 1),
        term: 1,
        quorum: bit(0) | bit(1),
    });
    assert!(properties::committed_is_durable(&m, &s));
    // The follower's copy is in memory only: one durable copy of three.
    s.servers[1].durable_log.clear();
    assert!(!properties::committed_is_durable(&m, &s));
}

#[test]
fn sync_mode_persists_within_every_step() {
    // Scripted election and commit: in sync mode nothing is ever pending
    // or in an outbox between steps, Persist is never listed, and the
    // states are the ones the tests above (written for the protocol before
    // durability) expect.
    let m = model(3);
    let mut s = State::initial(3);
    let script = [
        Action::Timeout { server: 0 },
        Action::Deliver {
            message: msg(0, 1, rv(1, 0, 0)),
        },
        Action::Deliver {
            message: msg(1, 0, rvr(1, true)),
        },
        Action::ClientRequest {
            server: 0,
            value: 1,
        },
        Action::Heartbeat { server: 0 },
        Action::Deliver {
            message: msg(0, 1, ae(1, 0, 0, &[e(1, 1)], 0)),
        },
        Action::Deliver {
            message: msg(1, 0, aer(1, true, 1, 0)),
        },
        Action::Restart { server: 1 },
    ];
    for a in script {
        s = step(&m, &s, a);
        for (i, srv) in s.servers.iter().enumerate() {
            assert!(!srv.has_pending_writes(), "server {i} after {s:?}");
            assert!(srv.outbox.is_empty());
        }
        assert!(!listed(&m, &s)
            .iter()
            .any(|a| matches!(a, Action::Persist { .. })));
    }
    assert_eq!(s.servers[0].commit_index, 1);
    assert_eq!(s.servers[1].log.to_vec(), vec![e(1, 1)], "durable");
    assert_eq!(s.ghost.votes.len(), 2);
    assert!(properties::committed_is_durable(&m, &s));
}

#[test]
fn sync_and_async_agree_when_async_persists_after_every_step() {
    // Following each async step by Persist of whoever has pending writes
    // gives exactly the sync state (ghost flags aside: an async Persist is
    // a step of its own).
    let sm = model(3);
    // Room for the async Timeout's outbox across a cut (the sync one only
    // counts what crosses no cut), so every sync step is enabled.
    let am = RaftModel::new(Config {
        max_inflight: 10,
        ..async_cfg(3)
    });
    let mut steps = 0;
    for seed in 0..20 {
        let states = walk(&sm, seed, 30);
        let mut a = State::initial(3);
        for w in states.windows(2) {
            // Find the action that led from w[0] to w[1] in sync mode.
            let act = listed(&sm, &w[0])
                .into_iter()
                .find(|act| sm.next_state(&w[0], act.clone()).as_ref() == Some(&w[1]))
                .expect("a listed action");
            a = step(&am, &a, act);
            for i in 0..3 {
                if am.has_pending_writes(&a, i) {
                    a = step(&am, &a, persist(i));
                }
            }
            let mut left = a.clone();
            let mut right = w[1].clone();
            left.ghost.flags = 0;
            right.ghost.flags = 0;
            assert_eq!(left, right, "seed {seed}");
            steps += 1;
        }
    }
    assert!(steps > 300, "the walks are not trivial: {steps}");
}

#[test]
fn sync_mode_has_no_persist_example_to_find() {
    let names =
        |m: &RaftModel| -> Vec<&'static str> { m.properties().iter().map(|p| p.name).collect() };
    let a = names(&amodel(3));
    let s = names(&model(3));
    assert!(a.contains(&"LeaderCommitsBeforeOwnPersist"));
    assert_eq!(a.len(), ALWAYS.len() + SOMETIMES.len());
    let mut expected = a.clone();
    expected.retain(|n| *n != "LeaderCommitsBeforeOwnPersist");
    assert_eq!(s, expected);
}

// ----- Snapshots and log compaction (docs/protocol.md §8) ------------------

fn install(term: u32, lii: u32, lit: u32, values: &[u32]) -> Body {
    Body::InstallSnapshot(InstallSnapshot {
        term,
        last_included_index: lii,
        last_included_term: lit,
        values: values.into(),
    })
}

/// `srv` with a snapshot of `values` (index = their count) at `term`, in
/// memory only (`synced` makes it durable).
fn with_snapshot(mut srv: ServerState, term: u32, values: &[u32]) -> ServerState {
    srv.snapshot_index = values.len() as u32;
    srv.snapshot_term = term;
    srv.snapshot_values = values.iter().copied().collect();
    srv
}

/// Commit records for `entries` at indices 1.. (what a leader of `term`
/// committed), so that SnapshotOnlyCommitted holds for them.
fn committed(s: &mut State, term: u32, entries: &[Entry]) {
    for (k, &entry) in entries.iter().enumerate() {
        s.ghost.commits.push(CommitRecord {
            index: k as u32 + 1,
            entry,
            term,
            quorum: 0b011,
        });
    }
    s.ghost.commits.sort();
}

#[test]
fn snapshot_compacts_through_a_committed_index_and_is_pending() {
    // R-snap-2.
    let m = RaftModel::new(async_cfg(3));
    let mut s = state_with(vec![
        leader(2, &[e(1, 1), e(2, 2), e(2, 3)], &[0, 4, 4], &[0, 0, 0]),
        follower(2, &[]),
        follower(2, &[]),
    ]);
    s.servers[0].commit_index = 2;
    committed(&mut s, 2, &[e(1, 1), e(2, 2)]);
    let t = m
        .next_state(
            &s,
            Action::Snapshot {
                server: 0,
                index: 2,
            },
        )
        .expect("enabled: snapshot_index < 2 <= commit_index");
    let mut want = s.clone();
    want.servers[0].snapshot_index = 2;
    want.servers[0].snapshot_term = 2;
    want.servers[0].snapshot_values = [1, 2].into_iter().collect();
    want.servers[0].log = [e(2, 3)].into_iter().collect();
    want.snapshots = 1;
    assert_eq!(t, want);
    assert!(m.has_pending_writes(&t, 0), "pending until Persist");
    assert_eq!(t.servers[0].last_index(), 3);
    assert_eq!(t.servers[0].term_at(1), None, "compacted away");
    assert_eq!(t.servers[0].term_at(2), Some(2));
    assert_eq!(t.servers[0].value_at(1), Some(1));
    // Persist writes snapshot and log together.
    let p = m.next_state(&t, Action::Persist { server: 0 }).unwrap();
    let mut want = t.clone();
    want.servers[0].durable_snapshot_index = 2;
    want.servers[0].durable_snapshot_term = 2;
    want.servers[0].durable_snapshot_values = [1, 2].into_iter().collect();
    want.servers[0].durable_log = [e(2, 3)].into_iter().collect();
    assert_eq!(p, want);
    // Any committed index may be the state machine's: 1 as well.
    let one = m
        .next_state(
            &s,
            Action::Snapshot {
                server: 0,
                index: 1,
            },
        )
        .expect("enabled: 1 is committed");
    assert_eq!(one.servers[0].snapshot_index, 1);
    assert_eq!(one.servers[0].snapshot_term, 1);
    assert_eq!(one.servers[0].log.len(), 2);
    // Not beyond the commit index, not at or below the snapshot, not
    // beyond the budget.
    assert!(m
        .next_state(
            &s,
            Action::Snapshot {
                server: 0,
                index: 3
            }
        )
        .is_none());
    assert!(m
        .next_state(
            &t,
            Action::Snapshot {
                server: 0,
                index: 2
            }
        )
        .is_none());
    let mut spent = s.clone();
    spent.snapshots = 2;
    assert!(m
        .next_state(
            &spent,
            Action::Snapshot {
                server: 0,
                index: 2
            }
        )
        .is_none());
    assert!(properties::snapshot_only_committed(&m, &t));
    // The seeded bug compacts the uncommitted entry too.
    let b = RaftModel::new(Config {
        bug: Some(Bug::SnapshotUncommitted),
        ..async_cfg(3)
    });
    let t = b
        .next_state(
            &s,
            Action::Snapshot {
                server: 0,
                index: 3,
            },
        )
        .unwrap();
    assert_eq!(t.servers[0].snapshot_index, 3);
    assert!(t.servers[0].log.is_empty());
    assert!(!properties::snapshot_only_committed(&b, &t));
}

#[test]
fn heartbeat_sends_install_snapshot_below_the_snapshot_and_append_entries_above() {
    // R-snap-3: next_index 2 <= snapshot_index 2: InstallSnapshot; next_index
    // 3 = snapshot_index + 1: AppendEntries with prev_log_term = snapshot_term.
    let m = RaftModel::new(async_cfg(3));
    let mut l = with_snapshot(leader(2, &[e(2, 3)], &[0, 2, 3], &[0, 0, 2]), 2, &[1, 2]);
    l.commit_index = 2;
    let mut s = state_with(vec![l, follower(2, &[]), follower(2, &[e(1, 1), e(2, 2)])]);
    committed(&mut s, 2, &[e(1, 1), e(2, 2)]);
    let t = m.next_state(&s, Action::Heartbeat { server: 0 }).unwrap();
    let mut want = s.clone();
    want.network = vec![
        msg(0, 1, install(2, 2, 2, &[1, 2])),
        msg(0, 2, ae(2, 2, 2, &[e(2, 3)], 2)),
    ]
    .into_iter()
    .collect();
    want.network.sort();
    assert_eq!(t, want);
}

fn install_state(follower_srv: ServerState, body: Body) -> State {
    let mut l = with_snapshot(leader(2, &[e(2, 3)], &[0, 1, 1], &[0, 0, 0]), 2, &[1, 2]);
    l.commit_index = 2;
    let mut s = state_with(vec![l, follower_srv, follower(2, &[])]);
    committed(&mut s, 2, &[e(1, 1), e(2, 2)]);
    s.network.push(msg(0, 1, body));
    s
}

#[test]
fn install_snapshot_keeps_a_matching_suffix_and_replies_after_persist() {
    // R-snap-4: the entry at last_included_index matches: the entries after
    // it are kept; the reply waits in the outbox (the install is pending).
    let m = RaftModel::new(async_cfg(3));
    let body = install(2, 2, 2, &[1, 2]);
    let s = install_state(follower(2, &[e(1, 1), e(2, 2), e(2, 3)]), body.clone());
    let t = deliver(&m, &s, msg(0, 1, body.clone()));
    let mut want = s.clone();
    want.network.clear();
    let f = &mut want.servers[1];
    f.snapshot_index = 2;
    f.snapshot_term = 2;
    f.snapshot_values = [1, 2].into_iter().collect();
    f.log = [e(2, 3)].into_iter().collect();
    f.commit_index = 2;
    f.outbox = [msg(1, 0, aer(2, true, 2, 0))].into_iter().collect();
    want.ghost.flags |= flags::EVENT_SNAPSHOT_INSTALLED;
    assert_eq!(t, want);
    assert!(properties::install_snapshot_installed(&m, &t));
    // Without a match the log becomes empty.
    let s2 = install_state(follower(2, &[e(1, 1), e(1, 7)]), body.clone());
    let t2 = deliver(&m, &s2, msg(0, 1, body.clone()));
    assert!(t2.servers[1].log.is_empty());
    assert_eq!(t2.servers[1].snapshot_index, 2);
    // The seeded bug discards the matching suffix too.
    let b = RaftModel::new(Config {
        bug: Some(Bug::InstallTruncatesMatchingSuffix),
        ..async_cfg(3)
    });
    let t3 = deliver(&b, &s, msg(0, 1, body));
    assert!(t3.servers[1].log.is_empty());
}

#[test]
fn install_snapshot_not_newer_than_the_commit_index_changes_nothing() {
    // R-snap-4: last_included_index <= commit_index: only the reply (no
    // pending writes: straight into the network).
    let m = RaftModel::new(async_cfg(3));
    let body = install(2, 1, 1, &[1]);
    let mut f = follower(2, &[e(1, 1), e(2, 2)]);
    f.commit_index = 2;
    let s = install_state(f, body.clone());
    let t = deliver(&m, &s, msg(0, 1, body.clone()));
    let mut want = s.clone();
    want.network = [msg(1, 0, aer(2, true, 1, 0))].into_iter().collect();
    assert_eq!(t, want);
    assert!(properties::applied_never_goes_back(&m, &t));
    // The seeded bug installs it and rolls the commit index back.
    let b = RaftModel::new(Config {
        bug: Some(Bug::StaleSnapshotRollsBack),
        ..async_cfg(3)
    });
    let t = deliver(&b, &s, msg(0, 1, body));
    assert_eq!(t.servers[1].commit_index, 1);
    assert!(!properties::applied_never_goes_back(&b, &t));
}

#[test]
fn install_snapshot_of_a_stale_term_is_rejected() {
    let m = RaftModel::new(async_cfg(3));
    let body = install(1, 2, 1, &[1, 2]);
    let s = install_state(follower(2, &[]), body.clone());
    let t = deliver(&m, &s, msg(0, 1, body));
    let mut want = s.clone();
    want.network = [msg(1, 0, aer(2, false, 0, 0))].into_iter().collect();
    assert_eq!(t, want);
}

#[test]
fn restart_recovers_the_durable_snapshot_and_its_commit_index() {
    // R-snap-5: commit_index = durable_snapshot_index; the in-memory
    // snapshot beyond it is lost with the other pending writes.
    let m = RaftModel::new(async_cfg(3));
    let mut s = state_with(vec![
        with_snapshot(follower(2, &[e(2, 3)]), 2, &[1, 2]),
        follower(2, &[]),
        follower(2, &[]),
    ]);
    committed(&mut s, 2, &[e(1, 1), e(2, 2), e(2, 3)]);
    let f = &mut s.servers[0];
    f.commit_index = 3;
    f.snapshot_index = 3;
    f.snapshot_values = f.snapshot_values.extended([3]);
    f.log.clear();
    let t = m.next_state(&s, Action::Restart { server: 0 }).unwrap();
    let mut want = s.clone();
    let f = &mut want.servers[0];
    f.snapshot_index = 2;
    f.snapshot_values = [1, 2].into_iter().collect();
    f.log = [e(2, 3)].into_iter().collect();
    f.commit_index = 2;
    f.lost_commit = 3;
    want.restarts = 1;
    assert_eq!(t, want);
}

#[test]
fn append_entries_below_the_snapshot_is_accepted_and_skips_the_covered_entries() {
    // R-snap-7: prev_log_index 1 < snapshot_index 2: accepted; entries at
    // 2 is skipped, 3 matches, 4 is appended; index = prev + len(entries).
    let m = RaftModel::new(async_cfg(3));
    let body = ae(2, 1, 1, &[e(2, 2), e(2, 3), e(2, 4)], 2);
    let mut f = with_snapshot(follower(2, &[e(2, 3)]), 2, &[1, 2]);
    f.commit_index = 2;
    let mut s = state_with(vec![
        leader(
            2,
            &[e(1, 1), e(2, 2), e(2, 3), e(2, 4)],
            &[0, 2, 5],
            &[0, 0, 0],
        ),
        f,
        follower(2, &[]),
    ]);
    committed(&mut s, 2, &[e(1, 1), e(2, 2)]);
    s.network.push(msg(0, 1, body.clone()));
    let t = deliver(&m, &s, msg(0, 1, body));
    let mut want = s.clone();
    want.network.clear();
    want.servers[1].log = [e(2, 3), e(2, 4)].into_iter().collect();
    want.servers[1].outbox = [msg(1, 0, aer(2, true, 4, 0))].into_iter().collect();
    assert_eq!(t, want);
    // The conflict hint never goes below snapshot_index: the follower knows
    // term 2 from snapshot_index 2 on, so the hint for term 2 is 2.
    let body = ae(3, 3, 3, &[], 0);
    let mut s2 = s.clone();
    s2.servers[0].term = 3;
    s2.servers[1].term = 3;
    s2.servers[2].term = 3;
    let s2 = synced(s2);
    let mut s2 = s2;
    s2.network = [msg(0, 1, body.clone())].into_iter().collect();
    let t2 = deliver(&m, &s2, msg(0, 1, body));
    assert_eq!(network(&t2), vec![msg(1, 0, aer(3, false, 3, 2))]);
}

#[test]
fn snapshot_properties_on_good_and_violating_states() {
    let m = RaftModel::new(async_cfg(3));
    let mut s = state_with(vec![
        with_snapshot(follower(2, &[]), 2, &[1, 2]),
        follower(2, &[e(1, 1), e(2, 2)]),
        follower(2, &[]),
    ]);
    s.servers[0].commit_index = 2;
    s.servers[1].commit_index = 2;
    committed(&mut s, 2, &[e(1, 1), e(2, 2)]);
    assert!(properties::snapshot_only_committed(&m, &s));
    assert!(properties::state_machine_safety(&m, &s));
    assert!(properties::log_matching(&m, &s));
    assert!(properties::committed_is_durable(&m, &s));
    // A durable snapshot of a value never committed at that index.
    let mut bad = s.clone();
    bad.servers[0].durable_snapshot_values = [1, 9].into_iter().collect();
    assert!(!properties::snapshot_only_committed(&m, &bad));
    // Two servers applying different values at index 2.
    let mut bad = s.clone();
    bad.servers[0].snapshot_values = [1, 9].into_iter().collect();
    assert!(!properties::state_machine_safety(&m, &bad));
    let mut flagged = s.clone();
    flagged.ghost.flags |= flags::VIOLATED_APPLIED_GOES_BACK;
    assert!(!properties::applied_never_goes_back(&m, &flagged));
}
