// Over 600 lines: one test per rule on a core built in any state, asserting the Ready a script cannot see; reachable scenarios are scripts in conformance/testdata (docs/scripts.md).
//! One test (or a few) per rule of docs/protocol.md.

use super::*;
use crate::message::{AppendEntries, AppendEntriesResponse, RequestVote, RequestVoteResponse};

fn e(term: Term, v: &str) -> Entry {
    Entry {
        term,
        command: v.as_bytes().to_vec(),
    }
}

fn core_with(id: NodeId, n: u64, hs: HardState, log: Vec<Entry>) -> RaftCore {
    RaftCore::new(
        CoreConfig {
            id,
            peers: (1..=n).filter(|p| *p != id).collect(),
            max_batch: 1024,
            bug: None,
        },
        hs,
        None,
        log,
    )
}

fn core(id: NodeId, n: u64) -> RaftCore {
    core_with(id, n, HardState::default(), Vec::new())
}

fn msg(from: NodeId, to: NodeId, body: Body) -> Message {
    Message { from, to, body }
}

fn rv(term: Term, last_log_index: LogIndex, last_log_term: Term) -> Body {
    Body::RequestVote(RequestVote {
        term,
        last_log_index,
        last_log_term,
    })
}

fn ae(term: Term, prev: LogIndex, prev_term: Term, entries: Vec<Entry>, commit: LogIndex) -> Body {
    Body::AppendEntries(AppendEntries {
        term,
        prev_log_index: prev,
        prev_log_term: prev_term,
        entries,
        leader_commit: commit,
    })
}

fn aer(term: Term, success: bool, index: LogIndex, conflict_index: LogIndex) -> Body {
    Body::AppendEntriesResponse(AppendEntriesResponse {
        term,
        success,
        index,
        conflict_index,
    })
}

fn rvr(term: Term, granted: bool) -> Body {
    Body::RequestVoteResponse(RequestVoteResponse { term, granted })
}

fn hs(term: Term, voted_for: Option<NodeId>) -> HardState {
    HardState { term, voted_for }
}

/// Node 1 of `n` elected leader in `term` with `log`, everyone's vote in,
/// its term and vote durable (nothing pending).
fn leader(n: u64, log: Vec<Entry>, term: Term) -> RaftCore {
    let mut c = core_with(1, n, hs(term - 1, None), log);
    c.timeout();
    c.persist();
    for j in 2..=n {
        c.deliver(msg(j, 1, rvr(term, true)));
    }
    assert!(c.is_leader());
    assert!(!c.has_pending_writes());
    c
}

/// Node 2 of 3, follower in `term` with `log`, everything durable.
fn follower(term: Term, log: Vec<Entry>) -> RaftCore {
    core_with(2, 3, hs(term, None), log)
}

#[test]
fn timeout_outboxes_request_votes_until_persist() {
    let mut c = core_with(2, 3, HardState::default(), vec![e(1, "a")]);
    let r = c.timeout();
    let votes = vec![msg(2, 1, rv(1, 1, 1)), msg(2, 3, rv(1, 1, 1))];
    assert_eq!(
        r,
        Ready {
            hard_state: Some(hs(1, Some(2))),
            outboxed: votes.clone(),
            reset_election_timer: true,
            ..Ready::default()
        }
    );
    let s = c.status();
    assert_eq!((s.term, s.voted_for, s.role), (1, Some(2), Role::Candidate));
    assert_eq!(s.votes_granted, vec![2]);
    assert_eq!((s.durable_term, s.durable_voted_for), (0, None));
    assert_eq!(s.durable_log, vec![e(1, "a")]);
    assert_eq!(s.outbox, votes);
    assert!(c.has_pending_writes());

    // R-persist-1: Persist releases the outbox in send order.
    let r = c.persist();
    assert_eq!(
        r,
        Ready {
            messages: votes,
            ..Ready::default()
        }
    );
    let s = c.status();
    assert_eq!((s.durable_term, s.durable_voted_for), (1, Some(2)));
    assert!(s.outbox.is_empty());
    assert!(!c.has_pending_writes());
    // Nothing pending: Persist is a no-op.
    assert_eq!(c.persist(), Ready::default());
}

#[test]
fn timeout_is_not_enabled_on_a_leader() {
    let mut c = leader(3, vec![], 1);
    assert_eq!(c.timeout(), Ready::default());
    assert_eq!(c.term(), 1);
}

#[test]
fn single_node_elects_itself_and_commits_at_persist() {
    let mut c = core(1, 1);
    let r = c.timeout();
    assert!(c.is_leader());
    assert_eq!(
        r,
        Ready {
            hard_state: Some(hs(1, Some(1))),
            reset_election_timer: true,
            ..Ready::default()
        }
    );
    let (idx, term, r) = c.propose(b"x".to_vec()).unwrap();
    assert_eq!((idx, term), (1, 1));
    assert_eq!(
        r,
        Ready {
            log_ops: vec![LogOp::Append {
                first_index: 1,
                entries: vec![e(1, "x")]
            }],
            ..Ready::default()
        },
        "R-persist-4: not committed before it is durable"
    );
    assert_eq!(c.commit_index(), 0);
    let r = c.persist();
    assert_eq!(
        r,
        Ready {
            committed: Some(1),
            ..Ready::default()
        }
    );
    assert_eq!(c.commit_index(), 1);
}

#[test]
fn propose_on_a_follower_is_refused_with_hint() {
    let mut c = core(2, 3);
    c.deliver(msg(1, 2, ae(1, 0, 0, vec![], 0)));
    assert_eq!(
        c.propose(b"x".to_vec()).unwrap_err(),
        NotLeader {
            leader_hint: Some(1)
        }
    );
}

#[test]
fn granted_vote_waits_for_persist_refusal_goes_straight() {
    let mut c = follower(1, vec![]);
    let r = c.deliver(msg(2, 1, rv(1, 0, 0)));
    assert_eq!(r, Ready::default(), "not addressed to node 2");
    let r = c.deliver(msg(1, 2, rv(1, 0, 0)));
    assert_eq!(
        r,
        Ready {
            hard_state: Some(hs(1, Some(1))),
            outboxed: vec![msg(2, 1, rvr(1, true))],
            reset_election_timer: true,
            ..Ready::default()
        },
        "R-persist-2: a granted vote leaves only once durable"
    );
    assert_eq!(
        c.persist(),
        Ready {
            messages: vec![msg(2, 1, rvr(1, true))],
            ..Ready::default()
        }
    );
    // Another candidate in the same term: refused; nothing pending, so the
    // refusal goes straight out.
    let r = c.deliver(msg(3, 2, rv(1, 5, 5)));
    assert_eq!(
        r,
        Ready {
            messages: vec![msg(2, 3, rvr(1, false))],
            ..Ready::default()
        }
    );
    // The same candidate again (a duplicate): granted again, nothing new to
    // persist, straight out.
    let r = c.deliver(msg(1, 2, rv(1, 0, 0)));
    assert_eq!(
        r,
        Ready {
            hard_state: Some(hs(1, Some(1))),
            messages: vec![msg(2, 1, rvr(1, true))],
            reset_election_timer: true,
            ..Ready::default()
        }
    );
    assert_eq!(c.role(), Role::Follower);
}

#[test]
fn refusal_after_a_term_change_waits_for_the_new_term() {
    let log = vec![e(1, "a"), e(2, "b")];
    // Older last term, longer log: refused, but the term rule left the new
    // term pending, so even the refusal waits.
    let mut c = follower(2, log.clone());
    let r = c.deliver(msg(1, 2, rv(3, 10, 1)));
    assert_eq!(
        r,
        Ready {
            hard_state: Some(hs(3, None)),
            outboxed: vec![msg(2, 1, rvr(3, false))],
            ..Ready::default()
        }
    );
    // Same last term, shorter log: refused.
    let mut c = follower(2, log.clone());
    let r = c.deliver(msg(1, 2, rv(3, 1, 2)));
    assert_eq!(r.outboxed, vec![msg(2, 1, rvr(3, false))]);
    // Same last term, same length: granted.
    let mut c = follower(2, log);
    let r = c.deliver(msg(1, 2, rv(3, 2, 2)));
    assert_eq!(r.hard_state, Some(hs(3, Some(1))));
    assert_eq!(r.outboxed, vec![msg(2, 1, rvr(3, true))]);
}

#[test]
fn winning_sends_append_entries_to_all_in_the_same_step() {
    let mut c = core_with(1, 5, HardState::default(), vec![e(0, "x")]);
    c.timeout();
    let r = c.deliver(msg(2, 1, rvr(1, true)));
    assert_eq!(r, Ready::default());
    // A duplicate vote does not count twice.
    c.deliver(msg(2, 1, rvr(1, true)));
    assert_eq!(c.role(), Role::Candidate);
    // A refusal counts for nothing.
    c.deliver(msg(4, 1, rvr(1, false)));
    assert_eq!(c.status().votes_granted, vec![1, 2]);
    // Winning before its own term is durable (votes of peers that persisted
    // theirs): the AppendEntries leave at once (R-persist-3) while the
    // RequestVotes still wait in the outbox.
    let r = c.deliver(msg(3, 1, rvr(1, true)));
    assert!(c.is_leader());
    let s = c.status();
    assert!(s.votes_granted.is_empty());
    assert_eq!(s.next_index, vec![(2, 2), (3, 2), (4, 2), (5, 2)]);
    assert_eq!(s.match_index, vec![(2, 0), (3, 0), (4, 0), (5, 0)]);
    assert_eq!(s.outbox.len(), 4);
    assert_eq!(
        r,
        Ready {
            messages: (2..=5).map(|j| msg(1, j, ae(1, 1, 0, vec![], 0))).collect(),
            ..Ready::default()
        }
    );
}

#[test]
fn vote_response_of_an_old_term_is_ignored() {
    let mut c = core_with(1, 3, hs(1, None), vec![]);
    c.timeout(); // term 2
    let before = c.status();
    let r = c.deliver(msg(2, 1, rvr(1, true)));
    assert_eq!(r, Ready::default());
    assert_eq!(c.status(), before);
}

#[test]
fn higher_term_deposes_a_leader() {
    let mut c = leader(3, vec![], 1);
    let r = c.deliver(msg(2, 1, aer(2, false, 0, 0)));
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.term(), 2);
    assert_eq!(c.voted_for(), None);
    assert!(c.status().next_index.is_empty());
    assert_eq!(
        r,
        Ready {
            hard_state: Some(hs(2, None)),
            ..Ready::default()
        }
    );
}

#[test]
fn term_rule_empties_the_outbox() {
    // R-term-2: follower 2 acknowledged entries of term 1 (waiting in its
    // outbox); a message of term 2 arrives before the Persist.
    let mut c = follower(1, vec![]);
    let r = c.deliver(msg(1, 2, ae(1, 0, 0, vec![e(1, "a")], 0)));
    assert_eq!(r.outboxed, vec![msg(2, 1, aer(1, true, 1, 0))]);
    let r = c.deliver(msg(3, 2, rv(2, 0, 0)));
    assert_eq!(
        r,
        Ready {
            hard_state: Some(hs(2, None)),
            outboxed: vec![msg(2, 3, rvr(2, false))],
            outbox_cleared: true,
            ..Ready::default()
        },
        "the ack of term 1 is lost; the refusal (log more up to date) waits"
    );
    assert_eq!(c.status().outbox, vec![msg(2, 3, rvr(2, false))]);
    assert_eq!(
        c.persist(),
        Ready {
            messages: vec![msg(2, 3, rvr(2, false))],
            ..Ready::default()
        }
    );
}

#[test]
fn stale_append_entries_is_rejected_and_changes_nothing() {
    let mut c = follower(3, vec![e(1, "a")]);
    let before = c.status();
    let r = c.deliver(msg(1, 2, ae(2, 1, 1, vec![e(2, "b")], 1)));
    assert_eq!(
        r,
        Ready {
            messages: vec![msg(2, 1, aer(3, false, 0, 0))],
            ..Ready::default()
        }
    );
    assert_eq!(c.status(), before);
}

#[test]
fn append_entries_turns_a_candidate_into_follower() {
    let mut c = core(2, 3);
    c.timeout();
    c.deliver(msg(1, 2, ae(1, 0, 0, vec![], 0)));
    assert_eq!(c.role(), Role::Follower);
    assert!(c.status().votes_granted.is_empty());
    assert_eq!(c.leader_hint(), Some(1));
}

#[test]
fn consistency_check_short_log_hints_last_plus_one() {
    let mut c = follower(3, vec![e(1, "a")]);
    let r = c.deliver(msg(1, 2, ae(3, 5, 3, vec![e(3, "z")], 0)));
    assert_eq!(
        r,
        Ready {
            messages: vec![msg(2, 1, aer(3, false, 5, 2))],
            reset_election_timer: true,
            ..Ready::default()
        }
    );
}

#[test]
fn consistency_check_term_mismatch_hints_start_of_run() {
    let log = vec![e(1, "a"), e(2, "b"), e(2, "c"), e(2, "d")];
    let mut c = follower(3, log);
    let r = c.deliver(msg(1, 2, ae(3, 4, 3, vec![], 0)));
    assert_eq!(r.messages, vec![msg(2, 1, aer(3, false, 4, 2))]);
    assert_eq!(c.log().len(), 4, "a rejection changes nothing");
}

#[test]
fn accepted_entries_are_acknowledged_only_once_durable() {
    let mut c = follower(1, vec![]);
    let r = c.deliver(msg(1, 2, ae(1, 0, 0, vec![e(1, "a")], 0)));
    assert_eq!(
        r,
        Ready {
            log_ops: vec![LogOp::Append {
                first_index: 1,
                entries: vec![e(1, "a")]
            }],
            outboxed: vec![msg(2, 1, aer(1, true, 1, 0))],
            reset_election_timer: true,
            ..Ready::default()
        }
    );
    // A heartbeat before the Persist: its ack queues behind the first one
    // (R-persist-2: straight sends never overtake the outbox).
    let r = c.deliver(msg(1, 2, ae(1, 1, 1, vec![], 1)));
    assert_eq!(
        r,
        Ready {
            outboxed: vec![msg(2, 1, aer(1, true, 1, 0))],
            committed: Some(1),
            reset_election_timer: true,
            ..Ready::default()
        }
    );
    let s = c.status();
    assert_eq!(s.log, vec![e(1, "a")]);
    assert!(s.durable_log.is_empty());
    assert_eq!(s.outbox.len(), 2);
    assert_eq!(
        c.persist(),
        Ready {
            messages: vec![msg(2, 1, aer(1, true, 1, 0)), msg(2, 1, aer(1, true, 1, 0))],
            ..Ready::default()
        }
    );
    assert_eq!(c.status().durable_log, vec![e(1, "a")]);
    // Nothing pending: a heartbeat's ack goes straight out.
    let r = c.deliver(msg(1, 2, ae(1, 1, 1, vec![], 1)));
    assert_eq!(r.messages, vec![msg(2, 1, aer(1, true, 1, 0))]);
    assert!(r.outboxed.is_empty());
}

#[test]
fn conflict_rule_never_truncates_on_a_match() {
    let log = vec![e(1, "a"), e(1, "b"), e(1, "c")];
    let mut c = follower(1, log.clone());
    // A stale AppendEntries carrying only the first two entries.
    let r = c.deliver(msg(1, 2, ae(1, 0, 0, vec![e(1, "a"), e(1, "b")], 0)));
    assert_eq!(c.log(), &log[..]);
    assert_eq!(
        r,
        Ready {
            messages: vec![msg(2, 1, aer(1, true, 2, 0))],
            reset_election_timer: true,
            ..Ready::default()
        }
    );
}

#[test]
fn conflict_rule_truncates_at_the_first_conflict_and_appends() {
    let log = vec![e(1, "a"), e(1, "b"), e(1, "c")];
    let mut c = follower(2, log.clone());
    let r = c.deliver(msg(
        1,
        2,
        ae(2, 1, 1, vec![e(1, "b"), e(2, "x"), e(2, "y")], 0),
    ));
    assert_eq!(c.log(), &[e(1, "a"), e(1, "b"), e(2, "x"), e(2, "y")][..]);
    assert_eq!(
        r,
        Ready {
            log_ops: vec![
                LogOp::Truncate { last_index: 2 },
                LogOp::Append {
                    first_index: 3,
                    entries: vec![e(2, "x"), e(2, "y")]
                }
            ],
            outboxed: vec![msg(2, 1, aer(2, true, 4, 0))],
            reset_election_timer: true,
            ..Ready::default()
        }
    );
    // The truncated entry is still on disk until the Persist.
    assert_eq!((c.stable_index(), c.durable_tail()), (2, &[e(1, "c")][..]));
    assert_eq!(c.status().durable_log, log);
    c.persist();
    assert_eq!((c.stable_index(), c.durable_tail()), (4, &[][..]));
    assert_eq!(c.status().durable_log, c.log());
}

#[test]
fn truncation_below_a_pending_append_keeps_the_durable_log() {
    // Durable [a1 b1]; pending c1 appended; then a leader of term 2
    // truncates back to index 1: durable stays [a1 b1].
    let mut c = follower(1, vec![e(1, "a"), e(1, "b")]);
    c.deliver(msg(1, 2, ae(1, 2, 1, vec![e(1, "c")], 0)));
    c.deliver(msg(3, 2, ae(2, 1, 1, vec![e(2, "x")], 0)));
    let s = c.status();
    assert_eq!(s.log, vec![e(1, "a"), e(2, "x")]);
    assert_eq!(s.durable_log, vec![e(1, "a"), e(1, "b")]);
    assert_eq!(s.outbox, vec![msg(2, 3, aer(2, true, 2, 0))]);
    assert_eq!((c.stable_index(), c.durable_tail()), (1, &[e(1, "b")][..]));
}

#[test]
fn follower_adopts_commit_only_up_to_what_the_message_vouches_for() {
    // A stale tail beyond the message must not be committed.
    let log = vec![e(1, "a"), e(1, "b"), e(1, "stale")];
    let mut c = follower(2, log);
    let r = c.deliver(msg(1, 2, ae(2, 1, 1, vec![], 3)));
    assert_eq!(c.commit_index(), 1);
    assert_eq!(r.committed, Some(1));
    // Never decreases.
    c.deliver(msg(1, 2, ae(2, 0, 0, vec![], 0)));
    assert_eq!(c.commit_index(), 1);
}

#[test]
fn heartbeat_resends_unacknowledged_entries_and_caps_the_batch() {
    let mut c = RaftCore::new(
        CoreConfig {
            id: 1,
            peers: vec![2, 3],
            max_batch: 2,
            bug: None,
        },
        HardState::default(),
        None,
        vec![],
    );
    c.timeout();
    c.deliver(msg(2, 1, rvr(1, true)));
    for v in ["a", "b", "c"] {
        let (_, _, r) = c.propose(v.into()).unwrap();
        assert!(r.messages.is_empty(), "ClientRequest sends nothing");
    }
    // R-persist-3: entries not yet durable on the leader are sent anyway.
    for _ in 0..2 {
        let r = c.heartbeat();
        let batch = ae(1, 0, 0, vec![e(1, "a"), e(1, "b")], 0);
        assert_eq!(
            r,
            Ready {
                messages: vec![msg(1, 2, batch.clone()), msg(1, 3, batch)],
                ..Ready::default()
            }
        );
    }
    assert_eq!(c.stable_index(), 0);
    assert_eq!(
        c.status().next_index,
        vec![(2, 1), (3, 1)],
        "sending does not advance next_index"
    );
}

#[test]
fn leader_counts_itself_only_for_what_is_durable() {
    // R-persist-4: 3 servers; one follower acknowledges entries the leader
    // has not persisted yet: not a majority.
    let mut c = leader(3, vec![], 1);
    for v in ["a", "b"] {
        c.propose(v.into()).unwrap();
    }
    let r = c.deliver(msg(2, 1, aer(1, true, 2, 0)));
    assert_eq!(r, Ready::default());
    assert_eq!(c.commit_index(), 0);
    // Its own Persist makes it count: committed at the Persist step.
    assert_eq!(
        c.persist(),
        Ready {
            committed: Some(2),
            ..Ready::default()
        }
    );
    // Durable on the leader first, then acknowledged: commits at the ack.
    c.propose(b"c".to_vec()).unwrap();
    assert_eq!(c.persist(), Ready::default(), "alone it is no majority");
    let r = c.deliver(msg(3, 1, aer(1, true, 3, 0)));
    assert_eq!(
        r,
        Ready {
            committed: Some(3),
            ..Ready::default()
        }
    );
}

#[test]
fn success_responses_are_monotonic_and_commit_by_majority() {
    let mut c = leader(3, vec![], 1);
    for v in ["a", "b"] {
        c.propose(v.into()).unwrap();
    }
    c.persist();
    let r = c.deliver(msg(2, 1, aer(1, true, 2, 0)));
    assert_eq!(
        r,
        Ready {
            committed: Some(2),
            ..Ready::default()
        }
    );
    // A stale duplicate success cannot move match/next back.
    c.deliver(msg(2, 1, aer(1, true, 1, 0)));
    let s = c.status();
    assert_eq!(s.match_index, vec![(2, 2), (3, 0)]);
    assert_eq!(s.next_index, vec![(2, 3), (3, 1)]);
    assert_eq!(c.commit_index(), 2);
}

#[test]
fn rejection_lowers_next_index_by_hint_and_resends_at_once() {
    // Leader with 6 entries; follower 2 has a long divergent log of term 1.
    let log: Vec<Entry> = (0..6).map(|i| e(if i < 2 { 1 } else { 3 }, "v")).collect();
    let mut c = leader(3, log, 4);
    assert_eq!(c.status().next_index, vec![(2, 7), (3, 7)]);
    let r = c.deliver(msg(2, 1, aer(4, false, 6, 3)));
    assert_eq!(c.status().next_index, vec![(2, 3), (3, 7)]);
    assert_eq!(
        r,
        Ready {
            messages: vec![msg(1, 2, ae(4, 2, 1, c.log()[2..].to_vec(), 0))],
            ..Ready::default()
        }
    );
    // A second copy of the same rejection is now stale (index != next - 1).
    let r = c.deliver(msg(2, 1, aer(4, false, 6, 3)));
    assert_eq!(r, Ready::default());
    assert_eq!(c.status().next_index, vec![(2, 3), (3, 7)]);
    // A hint at or above next_index still makes progress by one.
    let r = c.deliver(msg(2, 1, aer(4, false, 2, 9)));
    assert_eq!(c.status().next_index, vec![(2, 2), (3, 7)]);
    assert_eq!(r.messages.len(), 1);
}

#[test]
fn rejection_never_lowers_next_index_to_or_below_match() {
    let log = vec![e(1, "a"), e(1, "b"), e(1, "c")];
    let mut c = leader(3, log, 2);
    c.deliver(msg(2, 1, aer(2, true, 3, 0)));
    assert_eq!(c.status().next_index, vec![(2, 4), (3, 4)]);
    // A rejection answering next_index 4 with a hint of 1: floored at match + 1.
    let r = c.deliver(msg(2, 1, aer(2, false, 3, 1)));
    assert_eq!(c.status().next_index, vec![(2, 4), (3, 4)]);
    assert_eq!(r.messages.len(), 1);
}

#[test]
fn stale_term_rejection_is_ignored() {
    let mut c = leader(3, vec![e(1, "a")], 2);
    let before = c.status();
    let r = c.deliver(msg(2, 1, aer(2, false, 0, 0)));
    assert_eq!(r, Ready::default());
    assert_eq!(c.status(), before);
}

#[test]
fn bogus_success_beyond_the_log_is_ignored() {
    let mut c = leader(3, vec![], 1);
    let before = c.status();
    c.deliver(msg(2, 1, aer(1, true, 9, 0)));
    assert_eq!(c.status(), before);
}

#[test]
fn messages_for_someone_else_or_from_strangers_are_ignored() {
    let mut c = core(1, 3);
    assert_eq!(c.deliver(msg(2, 3, rv(1, 0, 0))), Ready::default());
    assert_eq!(c.deliver(msg(9, 1, rv(1, 0, 0))), Ready::default());
    assert_eq!(c.term(), 0);
}

#[test]
fn restart_recovers_the_durable_part_only() {
    // R-persist-5: a follower with a durable vote and entry, then a pending
    // vote change (term 2) and a pending entry and ack.
    let mut c = follower(1, vec![]);
    c.deliver(msg(1, 2, rv(1, 0, 0)));
    c.deliver(msg(1, 2, ae(1, 0, 0, vec![e(1, "a")], 1)));
    c.persist();
    c.deliver(msg(3, 2, ae(2, 1, 1, vec![e(2, "b")], 2)));
    let s = c.status();
    assert_eq!((s.term, s.voted_for, s.commit_index), (2, None, 2));
    assert_eq!((s.durable_term, s.durable_voted_for), (1, Some(1)));
    assert_eq!(s.durable_log, vec![e(1, "a")]);
    assert_eq!(s.outbox.len(), 1);
    let r = RaftCore::new(
        CoreConfig {
            id: 2,
            peers: vec![1, 3],
            max_batch: 8,
            bug: None,
        },
        c.durable_hard_state(),
        None,
        c.durable_log(),
    );
    let s = r.status();
    assert_eq!(s.role, Role::Follower);
    assert_eq!((s.term, s.voted_for, s.commit_index), (1, Some(1), 0));
    assert_eq!(s.log, vec![e(1, "a")]);
    assert_eq!(s.durable_log, s.log);
    assert_eq!((s.durable_term, s.durable_voted_for), (1, Some(1)));
    assert!(s.outbox.is_empty());
    assert!(!r.has_pending_writes());
}

/// `from_state` rebuilds exactly the state it is given.
#[cfg(feature = "conformance")]
#[test]
fn from_state_round_trips_and_refuses_impossible_states() {
    let cfg = |id| CoreConfig {
        id,
        peers: (1..=3).filter(|p| *p != id).collect(),
        max_batch: 8,
        bug: None,
    };
    // A follower with a pending truncation and an outbox; a candidate; a leader.
    let mut f = follower(1, vec![e(1, "a"), e(1, "b")]);
    f.deliver(msg(1, 2, ae(1, 2, 1, vec![e(1, "c")], 0)));
    f.deliver(msg(3, 2, ae(2, 1, 1, vec![e(2, "x")], 0)));
    let mut cand = core(2, 3);
    cand.timeout();
    let mut l = leader(3, vec![e(1, "a")], 2);
    l.propose(b"b".to_vec()).unwrap();
    l.deliver(msg(2, 1, aer(2, true, 1, 0)));
    for c in [f, cand, l] {
        let s = c.status();
        let mut rebuilt = RaftCore::from_state(cfg(s.id), &s).unwrap();
        assert_eq!(rebuilt.status(), s);
        assert_eq!(rebuilt.stable_index(), c.stable_index());
        assert_eq!(rebuilt.durable_tail(), c.durable_tail());
        // And it behaves the same from there.
        let mut orig = c.clone();
        assert_eq!(rebuilt.persist(), orig.persist());
        assert_eq!(rebuilt.status(), orig.status());
    }
    let base = follower(1, vec![]).status();
    let refuse = |s: Status, what: &str| {
        let err = RaftCore::from_state(cfg(2), &s).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    };
    let mut s = base.clone();
    s.id = 3;
    refuse(s, "state of node 3");
    let mut s = base.clone();
    s.votes_granted = vec![2];
    refuse(s, "votes_granted");
    let mut s = base.clone();
    s.next_index = vec![(1, 1), (3, 1)];
    refuse(s, "next_index/match_index");
    let mut s = base.clone();
    s.role = Role::Leader;
    s.next_index = vec![(1, 1)];
    s.match_index = vec![(1, 0), (3, 0)];
    refuse(s, "next_index covers");
    let mut s = base.clone();
    s.outbox = vec![msg(2, 1, rvr(1, false))];
    refuse(s, "nothing is pending");
    let mut s = base;
    s.term = 2;
    s.outbox = vec![msg(2, 1, ae(2, 0, 0, vec![], 0))];
    refuse(s, "not a dependent message");
}

// ---- snapshots (docs/protocol.md §8) -------------------------------------

fn snap(index: LogIndex, term: Term) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta { index, term },
        data: bytes::Bytes::from(format!("state@{index}")),
    }
}

fn is(term: Term, s: Snapshot) -> Body {
    Body::InstallSnapshot(crate::message::InstallSnapshot { term, snapshot: s })
}

/// Follower 2 of 3 in term 1 with `a b c` on disk, told commit 2.
fn follower_committed_2() -> RaftCore {
    let mut c = follower(1, vec![e(1, "a"), e(1, "b"), e(1, "c")]);
    let r = c.deliver(msg(1, 2, ae(1, 3, 1, vec![], 2)));
    assert_eq!(r.messages, vec![msg(2, 1, aer(1, true, 3, 0))]);
    assert_eq!(c.commit_index(), 2);
    c
}

#[test]
fn snapshot_compacts_up_to_the_commit_index_only_and_is_durable_at_persist() {
    let mut c = follower_committed_2();
    assert_eq!(
        c.snapshot(3, snap(3, 1).data).unwrap_err(),
        SnapshotRefused {
            index: 3,
            snapshot_index: 0,
            commit_index: 2
        }
    );
    let r = c.snapshot(2, snap(2, 1).data).unwrap();
    assert_eq!(r.snapshot, Some(snap(2, 1)));
    assert!(!r.restore_snapshot);
    assert!(r.messages.is_empty() && r.log_ops.is_empty());
    assert_eq!(c.log(), &[e(1, "c")]);
    assert_eq!((c.snapshot_index(), c.last_index()), (2, 3));
    assert_eq!(c.entry(2), None);
    assert_eq!(c.entry(3), Some(&e(1, "c")));
    assert!(c.has_pending_writes());
    assert!(
        c.snapshot(2, snap(2, 1).data).is_err(),
        "not above the snapshot"
    );
    c.persist();
    assert!(!c.has_pending_writes());
    assert_eq!(c.status().durable_snapshot, Some(snap(2, 1)));
    assert_eq!(c.status().durable_log, vec![e(1, "c")]);
}

#[test]
fn a_leader_sends_install_snapshot_to_a_peer_behind_its_snapshot() {
    let mut c = leader(3, vec![], 1);
    c.propose(b"a".to_vec()).unwrap();
    c.propose(b"b".to_vec()).unwrap();
    c.persist();
    c.deliver(msg(2, 1, aer(1, true, 2, 0)));
    assert_eq!(c.commit_index(), 2);
    c.snapshot(2, snap(2, 1).data).unwrap();
    c.persist();
    let r = c.heartbeat();
    assert_eq!(
        r.messages,
        vec![
            msg(1, 2, ae(1, 2, 1, vec![], 2)),
            msg(1, 3, is(1, snap(2, 1))),
        ]
    );
    // Its answer is an ordinary success.
    c.deliver(msg(3, 1, aer(1, true, 2, 0)));
    assert_eq!(c.status().match_index, vec![(2, 2), (3, 2)]);
}

#[test]
fn install_keeps_a_matching_suffix_and_answers_once_durable() {
    let mut c = follower(1, vec![e(1, "a"), e(1, "b"), e(1, "c")]);
    let r = c.deliver(msg(1, 2, is(1, snap(2, 1))));
    assert!(r.restore_snapshot);
    assert_eq!(r.snapshot, Some(snap(2, 1)));
    assert!(r.log_ops.is_empty());
    assert!(r.messages.is_empty());
    assert_eq!(r.outboxed, vec![msg(2, 1, aer(1, true, 2, 0))]);
    assert_eq!(r.committed, Some(2));
    assert_eq!(c.log(), &[e(1, "c")]);
    assert_eq!((c.commit_index(), c.last_index()), (2, 3));
    let p = c.persist();
    assert_eq!(p.messages, vec![msg(2, 1, aer(1, true, 2, 0))]);
}

#[test]
fn install_without_a_match_empties_the_log() {
    let mut c = follower(2, vec![e(1, "a"), e(1, "b"), e(1, "c")]);
    let r = c.deliver(msg(1, 2, is(2, snap(2, 2))));
    assert_eq!(r.log_ops, vec![LogOp::Truncate { last_index: 2 }]);
    assert!(c.log().is_empty());
    assert_eq!(
        (c.snapshot_index(), c.last_index(), c.commit_index()),
        (2, 2, 2)
    );
}

#[test]
fn a_snapshot_not_newer_than_the_commit_index_changes_nothing() {
    let mut c = follower_committed_2();
    let before = c.status();
    let r = c.deliver(msg(1, 2, is(1, snap(1, 1))));
    assert_eq!(r.messages, vec![msg(2, 1, aer(1, true, 1, 0))]);
    assert_eq!(r.snapshot, None);
    assert_eq!(c.status(), before);
}

#[test]
fn restart_from_a_snapshot_and_its_tail_commits_the_snapshot() {
    let c = RaftCore::new(
        CoreConfig {
            id: 2,
            peers: vec![1, 3],
            max_batch: 1024,
            bug: None,
        },
        hs(1, None),
        Some(snap(2, 1)),
        vec![e(1, "c")],
    );
    assert_eq!(
        (c.commit_index(), c.last_index(), c.snapshot_index()),
        (2, 3, 2)
    );
    assert_eq!(c.entry(2), None);
    assert!(!c.has_pending_writes());
}

#[cfg(feature = "seeded-bugs")]
mod seeded {
    use super::*;

    #[test]
    fn snapshot_uncommitted() {
        let mut c = with_bug(follower_committed_2(), ImplBug::SnapshotUncommitted);
        c.snapshot(2, snap(2, 1).data).unwrap();
        assert_eq!(c.snapshot_index(), 3, "compacted past the commit index");
    }

    #[test]
    fn install_truncates_matching_suffix() {
        let mut c = with_bug(
            follower(1, vec![e(1, "a"), e(1, "b"), e(1, "c")]),
            ImplBug::InstallTruncatesMatchingSuffix,
        );
        c.deliver(msg(1, 2, is(1, snap(2, 1))));
        assert!(c.log().is_empty(), "the matching entry 3 is gone");
    }

    #[test]
    fn stale_snapshot_rolls_back() {
        let mut c = with_bug(follower_committed_2(), ImplBug::StaleSnapshotRollsBack);
        c.deliver(msg(1, 2, is(1, snap(1, 1))));
        assert_eq!(c.commit_index(), 1, "the applied state went back");
    }

    fn with_bug(mut c: RaftCore, b: ImplBug) -> RaftCore {
        c.bug = Some(b);
        c
    }

    #[test]
    fn commit_old_term() {
        let mut c = with_bug(leader(3, vec![e(1, "a")], 2), ImplBug::CommitOldTerm);
        c.deliver(msg(2, 1, aer(2, true, 1, 0)));
        assert_eq!(c.commit_index(), 1);
    }

    #[test]
    fn no_persist_vote() {
        let mut c = with_bug(follower(1, vec![]), ImplBug::NoPersistVote);
        let r = c.deliver(msg(1, 2, rv(1, 0, 0)));
        assert_eq!(c.voted_for(), Some(1));
        assert_eq!(r.hard_state, None, "the vote is never written");
        assert_eq!(r.outboxed, vec![msg(2, 1, rvr(1, true))]);
    }

    #[test]
    fn ack_before_persist() {
        let mut c = with_bug(follower(1, vec![]), ImplBug::AckBeforePersist);
        let r = c.deliver(msg(1, 2, ae(1, 0, 0, vec![e(1, "a")], 0)));
        assert_eq!(r.messages, vec![msg(2, 1, aer(1, true, 1, 0))]);
        assert!(r.outboxed.is_empty());
        assert!(c.has_pending_writes());
    }

    #[test]
    fn vote_before_persist() {
        let mut c = with_bug(follower(1, vec![]), ImplBug::VoteBeforePersist);
        let r = c.deliver(msg(1, 2, rv(1, 0, 0)));
        assert_eq!(r.messages, vec![msg(2, 1, rvr(1, true))]);
        assert!(r.outboxed.is_empty());
        // A refusal after a term change still waits.
        let mut c = with_bug(follower(1, vec![e(1, "a")]), ImplBug::VoteBeforePersist);
        let r = c.deliver(msg(1, 2, rv(2, 0, 0)));
        assert_eq!(r.outboxed, vec![msg(2, 1, rvr(2, false))]);
    }

    #[test]
    fn leader_counts_volatile_self() {
        let mut c = with_bug(leader(3, vec![], 1), ImplBug::LeaderCountsVolatileSelf);
        c.propose(b"a".to_vec()).unwrap();
        let r = c.deliver(msg(2, 1, aer(1, true, 1, 0)));
        assert_eq!(
            r.committed,
            Some(1),
            "committed before the leader's own fsync"
        );
    }

    #[test]
    fn truncate_on_match() {
        let log = vec![e(1, "a"), e(1, "b")];
        let mut c = with_bug(
            core_with(
                2,
                3,
                HardState {
                    term: 1,
                    voted_for: None,
                },
                log,
            ),
            ImplBug::TruncateOnMatch,
        );
        c.deliver(msg(1, 2, ae(1, 0, 0, vec![e(1, "a")], 0)));
        assert_eq!(c.log(), &[e(1, "a")][..]);
    }

    #[test]
    fn accept_stale_response() {
        let mut c = with_bug(
            leader(3, vec![e(1, "a"), e(1, "b")], 2),
            ImplBug::AcceptStaleResponse,
        );
        c.deliver(msg(2, 1, aer(2, true, 2, 0)));
        c.deliver(msg(2, 1, aer(2, true, 1, 0)));
        assert_eq!(c.status().match_index, vec![(2, 1), (3, 0)]);
    }

    #[test]
    fn vote_without_log_check() {
        let mut c = with_bug(
            core_with(
                1,
                3,
                HardState {
                    term: 1,
                    voted_for: None,
                },
                vec![e(1, "a")],
            ),
            ImplBug::VoteWithoutLogCheck,
        );
        let r = c.deliver(msg(2, 1, rv(2, 0, 0)));
        assert_eq!(r.outboxed, vec![msg(1, 2, rvr(2, true))]);
    }
}

/// The seeded bugs change behaviour only with the feature.
#[cfg(not(feature = "seeded-bugs"))]
#[test]
fn bugs_are_inert_without_the_feature() {
    let mut c = leader(3, vec![e(1, "a")], 2);
    c.bug = Some(ImplBug::CommitOldTerm);
    c.deliver(msg(2, 1, aer(2, true, 1, 0)));
    assert_eq!(c.commit_index(), 0);
}

/// Random schedules over a few cores with a lossy, duplicating, reordering
/// network, Persist steps at random times and restarts from the disk. The
/// writes of each step are buffered per server and reach its disk only at
/// its Persist, as in the node. After every step: the core's durable part
/// is exactly its disk; after a Persist the disk is the in-memory state; at
/// most one leader per term; logs match; committed entries never change,
/// every new leader holds them all and a majority holds them on disk.
#[test]
fn random_schedules_keep_raft_safety() {
    simulate(None);
}

/// The same schedules catch the seeded bugs that break safety or durability
/// (`accept-stale-response` only changes next/match: conformance catches it).
#[cfg(feature = "seeded-bugs")]
#[test]
fn random_schedules_catch_seeded_bugs() {
    for bug in [
        ImplBug::CommitOldTerm,
        ImplBug::NoPersistVote,
        ImplBug::TruncateOnMatch,
        ImplBug::VoteWithoutLogCheck,
        ImplBug::AckBeforePersist,
        ImplBug::VoteBeforePersist,
        ImplBug::LeaderCountsVolatileSelf,
    ] {
        let caught = std::panic::catch_unwind(|| simulate(Some(bug))).is_err();
        assert!(caught, "{bug} went unnoticed");
    }
}

type Disk = (HardState, Vec<Entry>);

fn simulate(bug: Option<ImplBug>) {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    let (mut total_leaders, mut total_committed, mut total_restarts) = (0, 0, 0);
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let n: u64 = if seed % 2 == 0 { 3 } else { 5 };
        let cfg = |id| CoreConfig {
            id,
            peers: (1..=n).filter(|p| *p != id).collect(),
            max_batch: 3,
            bug,
        };
        let mut cores: Vec<RaftCore> = (1..=n)
            .map(|id| RaftCore::new(cfg(id), HardState::default(), None, vec![]))
            .collect();
        let mut disks: Vec<Disk> = vec![(HardState::default(), vec![]); n as usize];
        // Writes made since each server's last Persist.
        let mut buffered: Vec<Vec<Ready>> = vec![Vec::new(); n as usize];
        let mut net: Vec<Message> = Vec::new();
        let mut leaders: BTreeMap<Term, NodeId> = BTreeMap::new();
        let mut committed: BTreeMap<LogIndex, Entry> = BTreeMap::new();
        let mut value = 0u64;
        for _step in 0..1000 {
            let mut i = rng.gen_range(0..n as usize);
            let was_leader: Vec<bool> = cores.iter().map(|c| c.is_leader()).collect();
            let r = match rng.gen_range(0..100) {
                0..=2 => cores[i].timeout(),
                3..=12 => cores[i].heartbeat(),
                13..=20 => {
                    value += 1;
                    cores[i]
                        .propose(value.to_string().into_bytes())
                        .map(|(_, _, r)| r)
                        .unwrap_or_default()
                }
                21..=22 => {
                    total_restarts += 1;
                    buffered[i].clear();
                    cores[i] =
                        RaftCore::new(cfg(i as u64 + 1), disks[i].0, None, disks[i].1.clone());
                    Ready::default()
                }
                23..=39 => {
                    for w in buffered[i].drain(..) {
                        write(&mut disks[i], &w);
                    }
                    let r = cores[i].persist();
                    assert_eq!(
                        (disks[i].0, &disks[i].1[..]),
                        (cores[i].hard_state(), cores[i].log()),
                        "seed {seed}: after Persist the disk is the in-memory state"
                    );
                    r
                }
                40..=44 if !net.is_empty() => {
                    net.swap_remove(rng.gen_range(0..net.len()));
                    Ready::default()
                }
                45..=47 if !net.is_empty() && net.len() < 60 => {
                    let m = net[rng.gen_range(0..net.len())].clone();
                    net.push(m);
                    Ready::default()
                }
                _ if !net.is_empty() => {
                    let m = net.swap_remove(rng.gen_range(0..net.len()));
                    i = (m.to - 1) as usize;
                    cores[i].deliver(m)
                }
                _ => Ready::default(),
            };
            if !was_leader[i] && cores[i].is_leader() {
                for (idx, e) in &committed {
                    assert_eq!(
                        cores[i].entry(*idx),
                        Some(e),
                        "seed {seed}: new leader lacks committed {idx}"
                    );
                }
            }
            net.extend(r.messages.iter().cloned());
            if r.has_writes() {
                buffered[i].push(r);
            }
            assert_eq!(
                (cores[i].durable_hard_state(), cores[i].durable_log()),
                disks[i].clone(),
                "seed {seed}: the core's durable part is not the disk"
            );
            check(&cores, &disks, &mut leaders, &mut committed, seed);
        }
        total_leaders += leaders.len();
        total_committed += committed.len();
    }
    // Non-vacuous: elections, commits and restarts happened.
    assert!(total_leaders > 1000, "{total_leaders} leaders");
    assert!(total_committed > 500, "{total_committed} committed entries");
    assert!(total_restarts > 3000, "{total_restarts} restarts");

    fn write(disk: &mut Disk, r: &Ready) {
        if let Some(hs) = r.hard_state {
            disk.0 = hs;
        }
        for op in &r.log_ops {
            match op {
                LogOp::Truncate { last_index } => disk.1.truncate(*last_index as usize),
                LogOp::Append {
                    first_index,
                    entries,
                } => {
                    assert_eq!(
                        *first_index,
                        disk.1.len() as u64 + 1,
                        "append not at the end"
                    );
                    disk.1.extend(entries.iter().cloned());
                }
            }
        }
    }

    fn check(
        cores: &[RaftCore],
        disks: &[Disk],
        leaders: &mut std::collections::BTreeMap<Term, NodeId>,
        committed: &mut std::collections::BTreeMap<LogIndex, Entry>,
        seed: u64,
    ) {
        for c in cores {
            if c.is_leader() {
                let l = *leaders.entry(c.term()).or_insert(c.id());
                assert_eq!(l, c.id(), "seed {seed}: two leaders in term {}", c.term());
            }
            assert!(c.commit_index() <= c.last_index());
            for idx in 1..=c.commit_index() {
                let e = c.entry(idx).unwrap();
                let prev = committed.entry(idx).or_insert_with(|| e.clone());
                assert_eq!(prev, e, "seed {seed}: committed entry {idx} changed");
            }
        }
        let majority = cores.len() / 2 + 1;
        for (idx, e) in committed.iter() {
            let on_disk = disks
                .iter()
                .filter(|d| d.1.get(*idx as usize - 1) == Some(e))
                .count();
            assert!(
                on_disk >= majority,
                "seed {seed}: committed entry {idx} is on {on_disk} disks only"
            );
        }
        for a in cores {
            for b in cores {
                let common = a.last_index().min(b.last_index());
                for idx in (1..=common).rev() {
                    if a.term_at(idx) == b.term_at(idx) {
                        assert_eq!(
                            &a.log()[..idx as usize],
                            &b.log()[..idx as usize],
                            "seed {seed}: log matching violated at {idx}"
                        );
                        break;
                    }
                }
            }
        }
    }
}
