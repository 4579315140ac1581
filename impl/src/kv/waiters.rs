//! Requests waiting for their log entry to be applied.
//!
//! A leader proposes a command, learns the `(index, term)` it was appended
//! at, and waits here. When the applier applies index `i` it completes the
//! waiters at `i`: if the entry applied there has the waiter's term it is the
//! proposed entry and the waiter gets the result; otherwise a later leader
//! overwrote the proposal and the request fails (the client retries, and the
//! session makes the retry safe). Leadership loss fails pending waiters at
//! once so clients go elsewhere instead of waiting for a timeout.
//!
//! The apply stream may run ahead of the proposer (a single-node cluster
//! commits inside `start`), so the last results are remembered briefly and a
//! late registration still finds its result.

use crate::codec::ClientResponse;
use crate::types::{LogIndex, Term};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::oneshot;

use crate::sync::Mutex;

/// How many applied results are kept for waiters that register late. A
/// single-node leader commits a whole proposal batch (up to MAX_BATCH = 1024
/// entries) before its proposers register; with peers, registration almost
/// always wins the race. A result that fell out is answered with `Retry`,
/// which the session makes safe; the bound caps memory (Get results carry
/// values).
const RECENT: usize = 1024;

struct Waiter {
    term: Term,
    tx: oneshot::Sender<ClientResponse>,
}

#[derive(Default)]
struct Inner {
    applied: LogIndex,
    pending: BTreeMap<LogIndex, Vec<Waiter>>,
    recent: VecDeque<(LogIndex, Term, ClientResponse)>,
}

#[derive(Default)]
pub struct Waiters {
    inner: Mutex<Inner>,
}

fn replaced(index: LogIndex) -> ClientResponse {
    ClientResponse::Retry {
        reason: format!("the proposal at index {index} was replaced by another leader's entry"),
    }
}

impl Waiters {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> impl std::ops::DerefMut<Target = Inner> + '_ {
        // A poisoned lock only means another thread panicked mid-update of
        // plain data that stays consistent; keep serving.
        #[cfg(not(loom))]
        {
            self.inner.lock().unwrap_or_else(|e| e.into_inner())
        }
        #[cfg(loom)]
        {
            self.inner.lock().unwrap()
        }
    }

    /// Waits for the entry proposed at `(index, term)`.
    pub fn register(&self, index: LogIndex, term: Term) -> oneshot::Receiver<ClientResponse> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        if index <= inner.applied {
            let response = match inner.recent.iter().find(|(i, _, _)| *i == index) {
                Some((_, t, r)) if *t == term => r.clone(),
                Some(_) => replaced(index),
                None => ClientResponse::Retry {
                    reason: format!("index {index} applied too long ago to know its outcome"),
                },
            };
            let _ = tx.send(response);
        } else {
            inner
                .pending
                .entry(index)
                .or_default()
                .push(Waiter { term, tx });
        }
        rx
    }

    /// Called by the applier, in log order, for every applied entry.
    pub fn complete(&self, index: LogIndex, term: Term, response: ClientResponse) {
        let mut inner = self.lock();
        inner.applied = inner.applied.max(index);
        // Waiters below `index` can only be left over from a re-delivery gap;
        // their outcome is unknown to us, so they retry.
        let rest = inner.pending.split_off(&(index + 1));
        let done = std::mem::replace(&mut inner.pending, rest);
        for (i, waiters) in done {
            for w in waiters {
                let r = if i == index && w.term == term {
                    response.clone()
                } else {
                    replaced(i)
                };
                let _ = w.tx.send(r);
            }
        }
        inner.recent.push_back((index, term, response));
        while inner.recent.len() > RECENT {
            inner.recent.pop_front();
        }
    }

    /// Fails every pending waiter whose term is not `keep_term` (pass `None`
    /// to fail them all) with `response`.
    pub fn fail_except_term(&self, keep_term: Option<Term>, response: ClientResponse) {
        let mut inner = self.lock();
        let pending = std::mem::take(&mut inner.pending);
        for (i, waiters) in pending {
            for w in waiters {
                if Some(w.term) == keep_term {
                    inner.pending.entry(i).or_default().push(w);
                } else {
                    let _ = w.tx.send(response.clone());
                }
            }
        }
    }

    /// Number of requests still waiting.
    pub fn pending(&self) -> usize {
        self.lock().pending.values().map(Vec::len).sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ok(v: &str) -> ClientResponse {
        ClientResponse::Ok {
            value: Some(v.into()),
        }
    }

    #[test]
    fn waiter_gets_result_of_its_own_entry() {
        let w = Waiters::new();
        let mut rx = w.register(3, 2);
        w.complete(1, 1, ok("a"));
        w.complete(2, 1, ok("b"));
        assert!(rx.try_recv().is_err());
        w.complete(3, 2, ok("c"));
        assert_eq!(rx.try_recv().unwrap(), ok("c"));
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn waiter_fails_when_another_term_applies_at_its_index() {
        let w = Waiters::new();
        let mut rx = w.register(3, 2);
        w.complete(3, 3, ok("other"));
        assert!(matches!(
            rx.try_recv().unwrap(),
            ClientResponse::Retry { .. }
        ));
    }

    #[test]
    fn late_registration_finds_recent_result() {
        let w = Waiters::new();
        w.complete(1, 1, ok("a"));
        let mut rx = w.register(1, 1);
        assert_eq!(rx.try_recv().unwrap(), ok("a"));
        let mut rx = w.register(1, 5);
        assert!(matches!(
            rx.try_recv().unwrap(),
            ClientResponse::Retry { .. }
        ));
    }

    #[test]
    fn leadership_loss_fails_waiters_of_old_terms() {
        let w = Waiters::new();
        let mut old = w.register(5, 1);
        let mut cur = w.register(6, 2);
        w.fail_except_term(
            Some(2),
            ClientResponse::NotLeader {
                leader_hint: None,
                leader_addr: None,
            },
        );
        assert!(matches!(
            old.try_recv().unwrap(),
            ClientResponse::NotLeader { .. }
        ));
        assert!(cur.try_recv().is_err());
        assert_eq!(w.pending(), 1);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Whatever the interleaving of proposer and applier, the waiter gets
    /// exactly the applied result.
    #[test]
    fn loom_register_races_complete() {
        loom::model(|| {
            let w = Arc::new(Waiters::new());
            let w2 = w.clone();
            let applier = loom::thread::spawn(move || {
                w2.complete(1, 1, ClientResponse::Ok { value: None });
            });
            let mut rx = w.register(1, 1);
            applier.join().unwrap();
            assert_eq!(rx.try_recv().unwrap(), ClientResponse::Ok { value: None });
        });
    }

    /// A leadership-loss failure racing the apply either delivers the result
    /// or fails the request, never loses the waiter.
    #[test]
    fn loom_fail_races_complete() {
        loom::model(|| {
            let w = Arc::new(Waiters::new());
            let mut rx = w.register(1, 1);
            let w2 = w.clone();
            let failer = loom::thread::spawn(move || {
                w2.fail_except_term(None, ClientResponse::Retry { reason: "x".into() });
            });
            w.complete(1, 1, ClientResponse::Ok { value: None });
            failer.join().unwrap();
            assert!(rx.try_recv().is_ok());
            assert_eq!(w.pending(), 0);
        });
    }

    /// If another leader's entry applies at the proposal's index, the
    /// waiter fails (whichever of register and complete runs first).
    #[test]
    fn loom_other_term_at_index_fails_the_waiter() {
        loom::model(|| {
            let w = Arc::new(Waiters::new());
            let w2 = w.clone();
            let applier = loom::thread::spawn(move || {
                w2.complete(1, 2, ClientResponse::Ok { value: None });
            });
            let mut rx = w.register(1, 1);
            applier.join().unwrap();
            assert!(matches!(
                rx.try_recv().unwrap(),
                ClientResponse::Retry { .. }
            ));
        });
    }
}
