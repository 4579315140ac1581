//! Group commit: writers that finish writing while an fsync is in flight
//! share the next one instead of each paying for their own.
//!
//! The protocol is a leader/follower handoff. A writer takes a ticket after
//! its write ([`GroupCommit::written`]) and calls
//! [`GroupCommit::wait_durable`]. If its ticket is already durable it
//! returns at once; if no sync is running it becomes the leader: it notes the
//! highest ticket written so far, runs the sync outside the lock, publishes
//! that ticket as durable and wakes everyone; otherwise it waits for the
//! running sync and checks again. The sync function is abstract, so loom can
//! explore the coordination without any I/O.

use crate::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    /// Highest ticket handed out (its data is written, maybe not durable).
    written: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// A leader is running a sync.
    syncing: bool,
    /// A sync failed: nothing written after `durable` can be trusted.
    failed: bool,
    /// Callers blocked in `cv.wait`: a sync with none to wake skips the
    /// notify (a futex syscall between every fsync and the messages it
    /// releases, for the one-writer case of a node).
    waiting: usize,
}

/// Why `wait_durable` did not make the ticket durable.
#[derive(Debug, PartialEq, Eq)]
pub enum GroupCommitError<E> {
    /// This caller ran the sync and it failed.
    Sync(E),
    /// Another caller's sync failed (earlier or covering this ticket).
    Failed,
}

#[derive(Debug, Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    cv: Condvar,
}

impl GroupCommit {
    pub fn new() -> GroupCommit {
        GroupCommit::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record that a write finished; returns its ticket.
    pub fn written(&self) -> u64 {
        let mut g = self.lock();
        g.written += 1;
        g.written
    }

    /// The highest durable ticket.
    pub fn durable(&self) -> u64 {
        self.lock().durable
    }

    /// Block until `ticket` is durable, running `sync` if this caller becomes
    /// the leader of a group. `sync` must make every write that finished
    /// before it was called durable.
    pub fn wait_durable<E>(
        &self,
        ticket: u64,
        sync: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), GroupCommitError<E>> {
        let mut sync = Some(sync);
        let mut g = self.lock();
        loop {
            if g.durable >= ticket {
                return Ok(());
            }
            if g.failed {
                return Err(GroupCommitError::Failed);
            }
            if !g.syncing {
                let Some(f) = sync.take() else {
                    // Only reachable if a leader's sync covered less than this ticket,
                    // which `target` below rules out.
                    return Err(GroupCommitError::Failed);
                };
                g.syncing = true;
                // Everything written so far is covered by the sync we are about to run.
                let target = g.written.max(ticket);
                drop(g);
                let res = f();
                g = self.lock();
                g.syncing = false;
                match res {
                    Ok(()) => g.durable = g.durable.max(target),
                    Err(_) => g.failed = true,
                }
                if g.waiting > 0 {
                    self.cv.notify_all();
                }
                return res.map_err(GroupCommitError::Sync);
            }
            g.waiting += 1;
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
            g.waiting -= 1;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn single_writer_syncs_once_per_ticket() {
        let gc = GroupCommit::new();
        let syncs = AtomicUsize::new(0);
        let t = gc.written();
        gc.wait_durable(t, || {
            syncs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(())
        })
        .unwrap();
        // Already durable: no second sync.
        gc.wait_durable(t, || {
            syncs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        assert_eq!(gc.durable(), 1);
    }

    #[test]
    fn concurrent_writers_share_syncs() {
        let gc = Arc::new(GroupCommit::new());
        let syncs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, syncs) = (gc.clone(), syncs.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        let t = gc.written();
                        gc.wait_durable(t, || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            std::thread::yield_now();
                            Ok::<_, ()>(())
                        })
                        .unwrap();
                        assert!(gc.durable() >= t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(gc.durable(), 800);
        assert!(syncs.load(Ordering::SeqCst) <= 800);
    }

    #[test]
    fn failure_is_reported_to_everyone_after() {
        let gc = GroupCommit::new();
        let t = gc.written();
        assert_eq!(
            gc.wait_durable(t, || Err("disk full")),
            Err(GroupCommitError::Sync("disk full"))
        );
        let t2 = gc.written();
        assert_eq!(
            gc.wait_durable(t2, || Ok::<_, &str>(())),
            Err(GroupCommitError::Failed)
        );
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::{AtomicU64, Ordering};
    use loom::sync::Arc;

    /// Models the file: `written` is what writers put in the page cache,
    /// `synced` what an fsync made durable.
    struct Disk {
        written: AtomicU64,
        synced: AtomicU64,
    }

    /// Two concurrent writers plus the main thread; preemptions bounded to
    /// keep the exploration to seconds (the bug classes here need few).
    #[test]
    fn loom_group_commit_never_returns_before_durable() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let gc = Arc::new(GroupCommit::new());
            let disk = Arc::new(Disk {
                written: AtomicU64::new(0),
                synced: AtomicU64::new(0),
            });
            let writer = |gc: Arc<GroupCommit>, disk: Arc<Disk>| {
                move || {
                    // Write first, then take the ticket: a sync that starts
                    // after the ticket exists sees the write.
                    disk.written.fetch_add(1, Ordering::SeqCst);
                    let t = gc.written();
                    gc.wait_durable(t, || {
                        let w = disk.written.load(Ordering::SeqCst);
                        disk.synced.fetch_max(w, Ordering::SeqCst);
                        Ok::<_, ()>(())
                    })
                    .unwrap();
                    assert!(
                        disk.synced.load(Ordering::SeqCst) >= t,
                        "returned before its data was synced"
                    );
                }
            };
            let a = loom::thread::spawn(writer(gc.clone(), disk.clone()));
            let b = loom::thread::spawn(writer(gc.clone(), disk.clone()));
            writer(gc.clone(), disk.clone())();
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(gc.durable(), 3);
        });
    }

    /// One writer thread and the main thread, explored exhaustively.
    #[test]
    fn loom_group_commit_two_writers_exhaustive() {
        loom::model(|| {
            let gc = Arc::new(GroupCommit::new());
            let disk = Arc::new(Disk {
                written: AtomicU64::new(0),
                synced: AtomicU64::new(0),
            });
            let write = |gc: &GroupCommit, disk: &Disk| {
                disk.written.fetch_add(1, Ordering::SeqCst);
                let t = gc.written();
                gc.wait_durable(t, || {
                    let w = disk.written.load(Ordering::SeqCst);
                    disk.synced.fetch_max(w, Ordering::SeqCst);
                    Ok::<_, ()>(())
                })
                .unwrap();
                assert!(disk.synced.load(Ordering::SeqCst) >= t);
            };
            let (gc2, disk2) = (gc.clone(), disk.clone());
            let a = loom::thread::spawn(move || write(&gc2, &disk2));
            write(&gc, &disk);
            a.join().unwrap();
            assert_eq!(gc.durable(), 2);
        });
    }

    #[test]
    fn loom_group_commit_failure_reaches_waiters() {
        loom::model(|| {
            let gc = Arc::new(GroupCommit::new());
            let gc2 = gc.clone();
            let a = loom::thread::spawn(move || {
                let t = gc2.written();
                gc2.wait_durable(t, || Err::<(), _>("eio")).is_ok()
            });
            let t = gc.written();
            let ok_b = gc.wait_durable(t, || Err::<(), _>("eio")).is_ok();
            let ok_a = a.join().unwrap();
            // A failing sync can never report success to anyone.
            assert!(!ok_a && !ok_b);
        });
    }
}
