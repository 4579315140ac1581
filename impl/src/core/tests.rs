//! One test (or a few) per rule of docs/protocol.md.

use super::*;

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
    Body::RequestVote {
        term,
        last_log_index,
        last_log_term,
    }
}

fn ae(term: Term, prev: LogIndex, prev_term: Term, entries: Vec<Entry>, commit: LogIndex) -> Body {
    Body::AppendEntries {
        term,
        prev_log_index: prev,
        prev_log_term: prev_term,
        entries,
        leader_commit: commit,
    }
}

fn aer(term: Term, success: bool, index: LogIndex, conflict_index: LogIndex) -> Body {
    Body::AppendEntriesResponse {
        term,
        success,
        index,
        conflict_index,
    }
}

/// Node 1 of `n` elected leader in term 1 with `log`, everyone's vote in.
fn leader(n: u64, log: Vec<Entry>, term: Term) -> RaftCore {
    let mut c = core_with(
        1,
        n,
        HardState {
            term: term - 1,
            voted_for: None,
        },
        log,
    );
    c.timeout();
    for j in 2..=n {
        c.deliver(msg(
            j,
            1,
            Body::RequestVoteResponse {
                term,
                granted: true,
            },
        ));
    }
    assert!(c.is_leader());
    c
}

#[test]
fn timeout_starts_election_and_persists_first() {
    let mut c = core_with(2, 3, HardState::default(), vec![e(1, "a")]);
    let r = c.timeout();
    assert_eq!(c.term(), 1);
    assert_eq!(c.role(), Role::Candidate);
    assert_eq!(c.voted_for(), Some(2));
    assert_eq!(c.status().votes_granted, vec![2]);
    assert_eq!(
        r.hard_state,
        Some(HardState {
            term: 1,
            voted_for: Some(2)
        })
    );
    let to: Vec<_> = r.messages.iter().map(|m| m.to).collect();
    assert_eq!(to, vec![1, 3]);
    assert!(r.messages.iter().all(|m| m.body == rv(1, 1, 1)));
}

#[test]
fn timeout_is_not_enabled_on_a_leader() {
    let mut c = leader(3, vec![], 1);
    assert_eq!(c.timeout(), Ready::default());
    assert_eq!(c.term(), 1);
}

#[test]
fn single_node_elects_itself_and_commits_alone() {
    let mut c = core(1, 1);
    let r = c.timeout();
    assert!(c.is_leader());
    assert!(r.messages.is_empty());
    let (idx, term, r) = c.propose(b"x".to_vec()).unwrap();
    assert_eq!((idx, term), (1, 1));
    assert_eq!(r.committed, Some(1));
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
fn vote_granted_once_per_term_and_persisted() {
    let mut c = core(1, 3);
    let r = c.deliver(msg(2, 1, rv(1, 0, 0)));
    assert_eq!(
        r.hard_state,
        Some(HardState {
            term: 1,
            voted_for: Some(2)
        })
    );
    assert_eq!(
        r.messages,
        vec![msg(
            1,
            2,
            Body::RequestVoteResponse {
                term: 1,
                granted: true
            }
        )]
    );
    // Another candidate in the same term: refused.
    let r = c.deliver(msg(3, 1, rv(1, 5, 5)));
    assert_eq!(
        r.messages[0].body,
        Body::RequestVoteResponse {
            term: 1,
            granted: false
        }
    );
    assert_eq!(r.hard_state, None);
    // The same candidate again (a duplicate): granted again.
    let r = c.deliver(msg(2, 1, rv(1, 0, 0)));
    assert_eq!(
        r.messages[0].body,
        Body::RequestVoteResponse {
            term: 1,
            granted: true
        }
    );
    assert_eq!(c.role(), Role::Follower);
}

#[test]
fn vote_refused_to_a_less_up_to_date_log() {
    let log = vec![e(1, "a"), e(2, "b")];
    // Older last term, longer log: refused.
    let mut c = core_with(
        1,
        3,
        HardState {
            term: 2,
            voted_for: None,
        },
        log.clone(),
    );
    let r = c.deliver(msg(2, 1, rv(3, 10, 1)));
    assert_eq!(
        c.term(),
        3,
        "term rule applies even when the vote is refused"
    );
    assert_eq!(
        r.hard_state,
        Some(HardState {
            term: 3,
            voted_for: None
        })
    );
    assert_eq!(
        r.messages[0].body,
        Body::RequestVoteResponse {
            term: 3,
            granted: false
        }
    );
    // Same last term, shorter log: refused.
    let mut c = core_with(
        1,
        3,
        HardState {
            term: 2,
            voted_for: None,
        },
        log.clone(),
    );
    let r = c.deliver(msg(2, 1, rv(3, 1, 2)));
    assert_eq!(
        r.messages[0].body,
        Body::RequestVoteResponse {
            term: 3,
            granted: false
        }
    );
    // Same last term, same length: granted.
    let mut c = core_with(
        1,
        3,
        HardState {
            term: 2,
            voted_for: None,
        },
        log,
    );
    let r = c.deliver(msg(2, 1, rv(3, 2, 2)));
    assert_eq!(
        r.messages[0].body,
        Body::RequestVoteResponse {
            term: 3,
            granted: true
        }
    );
}

#[test]
fn stale_vote_request_is_refused_with_current_term() {
    let mut c = core_with(
        1,
        3,
        HardState {
            term: 5,
            voted_for: None,
        },
        vec![],
    );
    let r = c.deliver(msg(2, 1, rv(4, 0, 0)));
    assert_eq!(r.hard_state, None);
    assert_eq!(
        r.messages[0].body,
        Body::RequestVoteResponse {
            term: 5,
            granted: false
        }
    );
}

#[test]
fn winning_sends_append_entries_to_all_in_the_same_step() {
    let mut c = core_with(1, 5, HardState::default(), vec![e(0, "x")]);
    c.timeout();
    let r = c.deliver(msg(
        2,
        1,
        Body::RequestVoteResponse {
            term: 1,
            granted: true,
        },
    ));
    assert!(r.messages.is_empty());
    // A duplicate vote does not count twice.
    c.deliver(msg(
        2,
        1,
        Body::RequestVoteResponse {
            term: 1,
            granted: true,
        },
    ));
    assert_eq!(c.role(), Role::Candidate);
    // A refusal counts for nothing.
    c.deliver(msg(
        4,
        1,
        Body::RequestVoteResponse {
            term: 1,
            granted: false,
        },
    ));
    assert_eq!(c.status().votes_granted, vec![1, 2]);
    let r = c.deliver(msg(
        3,
        1,
        Body::RequestVoteResponse {
            term: 1,
            granted: true,
        },
    ));
    assert!(c.is_leader());
    let s = c.status();
    assert!(s.votes_granted.is_empty());
    assert_eq!(s.next_index, vec![(2, 2), (3, 2), (4, 2), (5, 2)]);
    assert_eq!(s.match_index, vec![(2, 0), (3, 0), (4, 0), (5, 0)]);
    assert_eq!(r.messages.len(), 4);
    for (m, to) in r.messages.iter().zip(2..) {
        assert_eq!(m.to, to);
        assert_eq!(m.body, ae(1, 1, 0, vec![], 0));
    }
}

#[test]
fn vote_response_of_an_old_term_is_ignored() {
    let mut c = core_with(
        1,
        3,
        HardState {
            term: 1,
            voted_for: None,
        },
        vec![],
    );
    c.timeout(); // term 2
    let r = c.deliver(msg(
        2,
        1,
        Body::RequestVoteResponse {
            term: 1,
            granted: true,
        },
    ));
    assert_eq!(r, Ready::default());
    assert_eq!(c.role(), Role::Candidate);
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
        r.hard_state,
        Some(HardState {
            term: 2,
            voted_for: None
        })
    );
}

#[test]
fn stale_append_entries_is_rejected_and_changes_nothing() {
    let mut c = core_with(
        2,
        3,
        HardState {
            term: 3,
            voted_for: None,
        },
        vec![e(1, "a")],
    );
    let r = c.deliver(msg(1, 2, ae(2, 1, 1, vec![e(2, "b")], 1)));
    assert_eq!(r.messages, vec![msg(2, 1, aer(3, false, 0, 0))]);
    assert_eq!(c.log().len(), 1);
    assert_eq!(c.commit_index(), 0);
    assert!(!r.reset_election_timer);
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
    let mut c = core_with(
        2,
        3,
        HardState {
            term: 3,
            voted_for: None,
        },
        vec![e(1, "a")],
    );
    let r = c.deliver(msg(1, 2, ae(3, 5, 3, vec![e(3, "z")], 0)));
    assert_eq!(r.messages, vec![msg(2, 1, aer(3, false, 5, 2))]);
    assert!(r.log_ops.is_empty());
}

#[test]
fn consistency_check_term_mismatch_hints_start_of_run() {
    let log = vec![e(1, "a"), e(2, "b"), e(2, "c"), e(2, "d")];
    let mut c = core_with(
        2,
        3,
        HardState {
            term: 3,
            voted_for: None,
        },
        log,
    );
    let r = c.deliver(msg(1, 2, ae(3, 4, 3, vec![], 0)));
    assert_eq!(r.messages, vec![msg(2, 1, aer(3, false, 4, 2))]);
    assert_eq!(c.log().len(), 4, "a rejection changes nothing");
}

#[test]
fn conflict_rule_never_truncates_on_a_match() {
    let log = vec![e(1, "a"), e(1, "b"), e(1, "c")];
    let mut c = core_with(
        2,
        3,
        HardState {
            term: 1,
            voted_for: None,
        },
        log.clone(),
    );
    // A stale AppendEntries carrying only the first two entries.
    let r = c.deliver(msg(1, 2, ae(1, 0, 0, vec![e(1, "a"), e(1, "b")], 0)));
    assert_eq!(c.log(), &log[..]);
    assert!(r.log_ops.is_empty());
    assert_eq!(r.messages, vec![msg(2, 1, aer(1, true, 2, 0))]);
}

#[test]
fn conflict_rule_truncates_at_the_first_conflict_and_appends() {
    let log = vec![e(1, "a"), e(1, "b"), e(1, "c")];
    let mut c = core_with(
        2,
        3,
        HardState {
            term: 2,
            voted_for: None,
        },
        log,
    );
    let r = c.deliver(msg(
        1,
        2,
        ae(2, 1, 1, vec![e(1, "b"), e(2, "x"), e(2, "y")], 0),
    ));
    assert_eq!(c.log(), &[e(1, "a"), e(1, "b"), e(2, "x"), e(2, "y")][..]);
    assert_eq!(
        r.log_ops,
        vec![
            LogOp::Truncate { last_index: 2 },
            LogOp::Append {
                first_index: 3,
                entries: vec![e(2, "x"), e(2, "y")]
            }
        ]
    );
    assert_eq!(r.messages, vec![msg(2, 1, aer(2, true, 4, 0))]);
}

#[test]
fn follower_adopts_commit_only_up_to_what_the_message_vouches_for() {
    // A stale tail beyond the message must not be committed.
    let log = vec![e(1, "a"), e(1, "b"), e(1, "stale")];
    let mut c = core_with(
        2,
        3,
        HardState {
            term: 2,
            voted_for: None,
        },
        log,
    );
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
        vec![],
    );
    c.timeout();
    c.deliver(msg(
        2,
        1,
        Body::RequestVoteResponse {
            term: 1,
            granted: true,
        },
    ));
    for v in ["a", "b", "c"] {
        let (_, _, r) = c.propose(v.into()).unwrap();
        assert!(r.messages.is_empty(), "ClientRequest sends nothing");
    }
    for _ in 0..2 {
        let r = c.heartbeat();
        assert_eq!(r.messages.len(), 2);
        assert_eq!(
            r.messages[0].body,
            ae(1, 0, 0, vec![e(1, "a"), e(1, "b")], 0)
        );
    }
    assert_eq!(
        c.status().next_index,
        vec![(2, 1), (3, 1)],
        "sending does not advance next_index"
    );
}

#[test]
fn success_responses_are_monotonic_and_commit_by_majority() {
    let mut c = leader(3, vec![], 1);
    for v in ["a", "b"] {
        c.propose(v.into()).unwrap();
    }
    let r = c.deliver(msg(2, 1, aer(1, true, 2, 0)));
    assert_eq!(r.committed, Some(2));
    assert!(r.messages.is_empty());
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
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.messages[0].to, 2);
    assert_eq!(r.messages[0].body, ae(4, 2, 1, c.log()[2..].to_vec(), 0));
    // A second copy of the same rejection is now stale (index != next - 1).
    let r = c.deliver(msg(2, 1, aer(4, false, 6, 3)));
    assert!(r.messages.is_empty());
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
fn response_of_an_older_term_is_ignored() {
    let mut c = leader(3, vec![e(1, "a")], 2);
    let before = c.status();
    let r = c.deliver(msg(2, 1, aer(1, true, 1, 0)));
    assert_eq!(r, Ready::default());
    assert_eq!(c.status(), before);
}

#[test]
fn figure8_old_term_entries_are_not_committed_by_counting() {
    // Leader of term 4 holds an entry of term 2 at index 2, replicated on a majority.
    let mut c = leader(5, vec![e(1, "a"), e(2, "b")], 4);
    c.deliver(msg(2, 1, aer(4, true, 2, 0)));
    c.deliver(msg(3, 1, aer(4, true, 2, 0)));
    assert_eq!(
        c.commit_index(),
        0,
        "index 2 is of term 2: not committed by counting"
    );
    // An entry of the current term on a majority commits everything before it.
    c.propose(b"c".to_vec()).unwrap();
    c.deliver(msg(2, 1, aer(4, true, 3, 0)));
    assert_eq!(c.commit_index(), 0);
    let r = c.deliver(msg(3, 1, aer(4, true, 3, 0)));
    assert_eq!(r.committed, Some(3));
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
fn restart_keeps_persistent_state_only() {
    let mut c = leader(3, vec![], 1);
    c.propose(b"a".to_vec()).unwrap();
    c.deliver(msg(2, 1, aer(1, true, 1, 0)));
    assert_eq!(c.commit_index(), 1);
    let r = RaftCore::new(
        CoreConfig {
            id: 1,
            peers: vec![2, 3],
            max_batch: 8,
            bug: None,
        },
        c.hard_state(),
        c.log().to_vec(),
    );
    assert_eq!(r.role(), Role::Follower);
    assert_eq!(r.commit_index(), 0);
    assert_eq!(r.term(), 1);
    assert_eq!(r.voted_for(), Some(1));
    assert_eq!(r.log(), c.log());
}

/// The seeded bugs change behaviour only with the feature.
#[cfg(feature = "seeded-bugs")]
mod seeded {
    use super::*;

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
        let mut c = with_bug(
            core_with(
                1,
                3,
                HardState {
                    term: 1,
                    voted_for: None,
                },
                vec![],
            ),
            ImplBug::NoPersistVote,
        );
        let r = c.deliver(msg(2, 1, rv(1, 0, 0)));
        assert_eq!(c.voted_for(), Some(2));
        assert_eq!(r.hard_state, None);
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
        assert_eq!(
            r.messages[0].body,
            Body::RequestVoteResponse {
                term: 2,
                granted: true
            }
        );
    }
}

#[cfg(not(feature = "seeded-bugs"))]
#[test]
fn bugs_are_inert_without_the_feature() {
    let mut c = leader(3, vec![e(1, "a")], 2);
    c.bug = Some(ImplBug::CommitOldTerm);
    c.deliver(msg(2, 1, aer(2, true, 1, 0)));
    assert_eq!(c.commit_index(), 0);
}

/// Random schedules over a few cores with a lossy, duplicating, reordering
/// network and restarts from the persisted state. After every step: the
/// persist outputs reproduce the core's term, vote and log exactly; at most
/// one leader per term; logs match; committed entries never change and
/// every new leader holds them all.
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
    ] {
        let caught = std::panic::catch_unwind(|| simulate(Some(bug))).is_err();
        assert!(caught, "{bug} went unnoticed");
    }
}

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
            .map(|id| RaftCore::new(cfg(id), HardState::default(), vec![]))
            .collect();
        let mut disks: Vec<(HardState, Vec<Entry>)> =
            vec![(HardState::default(), vec![]); n as usize];
        let mut net: Vec<Message> = Vec::new();
        let mut leaders: BTreeMap<Term, NodeId> = BTreeMap::new();
        let mut committed: BTreeMap<LogIndex, Entry> = BTreeMap::new();
        let mut value = 0u64;
        for _step in 0..400 {
            let i = rng.gen_range(0..n as usize);
            let was_leader = cores[i].is_leader();
            let r = match rng.gen_range(0..100) {
                0..=4 => cores[i].timeout(),
                5..=14 => cores[i].heartbeat(),
                15..=24 => {
                    value += 1;
                    cores[i]
                        .propose(value.to_string().into_bytes())
                        .map(|(_, _, r)| r)
                        .unwrap_or_default()
                }
                25..=29 => {
                    total_restarts += 1;
                    cores[i] = RaftCore::new(cfg(i as u64 + 1), disks[i].0, disks[i].1.clone());
                    Ready::default()
                }
                30..=37 if !net.is_empty() => {
                    net.swap_remove(rng.gen_range(0..net.len()));
                    Ready::default()
                }
                38..=40 if !net.is_empty() && net.len() < 60 => {
                    let m = net[rng.gen_range(0..net.len())].clone();
                    net.push(m);
                    Ready::default()
                }
                _ if !net.is_empty() => {
                    let m = net.swap_remove(rng.gen_range(0..net.len()));
                    let to = (m.to - 1) as usize;
                    let was = cores[to].is_leader();
                    let r = cores[to].deliver(m);
                    if !was && cores[to].is_leader() {
                        for (idx, e) in &committed {
                            assert_eq!(
                                cores[to].entry(*idx),
                                Some(e),
                                "seed {seed}: new leader lacks committed {idx}"
                            );
                        }
                    }
                    // Apply as the destination's step.
                    let disk = &mut disks[to];
                    apply_persist(disk, &r);
                    assert_eq!(
                        disk.0,
                        cores[to].hard_state(),
                        "seed {seed}: hard state not persisted"
                    );
                    assert_eq!(
                        disk.1,
                        cores[to].log(),
                        "seed {seed}: log ops do not reproduce the log"
                    );
                    net.extend(r.messages);
                    check(&cores, &mut leaders, &mut committed, seed);
                    continue;
                }
                _ => Ready::default(),
            };
            apply_persist(&mut disks[i], &r);
            assert_eq!(
                disks[i].0,
                cores[i].hard_state(),
                "seed {seed}: hard state not persisted"
            );
            assert_eq!(
                disks[i].1,
                cores[i].log(),
                "seed {seed}: log ops do not reproduce the log"
            );
            if !was_leader && cores[i].is_leader() {
                for (idx, e) in &committed {
                    assert_eq!(
                        cores[i].entry(*idx),
                        Some(e),
                        "seed {seed}: new leader lacks committed {idx}"
                    );
                }
            }
            net.extend(r.messages);
            check(&cores, &mut leaders, &mut committed, seed);
        }
        total_leaders += leaders.len();
        total_committed += committed.len();
    }
    // Non-vacuous: elections, commits and restarts happened.
    assert!(total_leaders > 300, "{total_leaders} leaders");
    assert!(total_committed > 300, "{total_committed} committed entries");
    assert!(total_restarts > 300, "{total_restarts} restarts");

    fn apply_persist(disk: &mut (HardState, Vec<Entry>), r: &Ready) {
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
