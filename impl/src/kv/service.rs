//! The KV service on one node: proposes client requests to the Raft node,
//! applies committed commands to the [`KvStore`], and answers each request
//! once its own entry has applied.
//!
//! Reads go through the log like writes (docs/protocol.md §8 has no no-op
//! entry and no ReadIndex): a Get is answered when its entry applies, so it
//! observes every write committed before it was proposed, and a deposed
//! leader cannot answer one (its entry never commits at its index).

use super::{encode_command, KvStore, Waiters};
use crate::codec::{ClientRequest, ClientResponse, MAX_KV_BYTES};
use crate::node::{ApplyMsg, Leadership, Node, StartError};
use crate::types::{NodeId, Role};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

#[derive(Clone, Debug)]
pub struct KvConfig {
    /// Longest a request waits for its entry to apply before the client is
    /// told to retry.
    pub request_timeout: Duration,
    /// Take a snapshot once this many entries have applied past the last
    /// one (`serve --snapshot-entries`); 0 never snapshots.
    pub snapshot_entries: u64,
}

/// The default of `serve --snapshot-entries`.
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 10_000;

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            request_timeout: Duration::from_secs(3),
            snapshot_entries: DEFAULT_SNAPSHOT_ENTRIES,
        }
    }
}

pub struct KvService {
    node: Node,
    store: Arc<Mutex<KvStore>>,
    waiters: Arc<Waiters>,
    leadership: watch::Receiver<Leadership>,
    /// Client-facing address of every node, for redirects.
    addrs: HashMap<NodeId, String>,
    cfg: KvConfig,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KvService {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl KvService {
    /// Starts the applier (consumes `apply_rx`) and the leadership watcher
    /// on the current tokio runtime. The store starts empty and is rebuilt
    /// from the apply stream: the node's snapshot first, if it has one,
    /// then the entries after it.
    pub fn start(
        node: Node,
        apply_rx: mpsc::UnboundedReceiver<ApplyMsg>,
        addrs: HashMap<NodeId, String>,
        cfg: KvConfig,
    ) -> Arc<KvService> {
        let store = Arc::new(Mutex::new(KvStore::new()));
        let waiters = Arc::new(Waiters::new());
        let leadership = node.watch_leadership();
        let applier = tokio::spawn(apply_loop(
            apply_rx,
            store.clone(),
            waiters.clone(),
            node.clone(),
            cfg.snapshot_entries,
        ));
        let watcher = tokio::spawn(watch_loop(
            leadership.clone(),
            waiters.clone(),
            addrs.clone(),
        ));
        Arc::new(KvService {
            node,
            store,
            waiters,
            leadership,
            addrs,
            cfg,
            tasks: vec![applier, watcher],
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// This replica's value for `key` (not linearizable: for tests and
    /// debugging only).
    pub fn local_get(&self, key: &str) -> Option<String> {
        self.lock_store().get(key).map(String::from)
    }

    /// The highest log index this replica has applied.
    pub fn last_applied(&self) -> u64 {
        self.lock_store().last_applied()
    }

    /// A copy of the replica's state machine (tests compare replicas).
    pub fn store_snapshot(&self) -> KvStore {
        self.lock_store().clone()
    }

    fn lock_store(&self) -> std::sync::MutexGuard<'_, KvStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_leader(&self, leader_hint: Option<NodeId>) -> ClientResponse {
        not_leader(&self.addrs, leader_hint)
    }

    /// Serves one client request: propose, wait for the entry to apply,
    /// answer with its result.
    pub async fn handle(&self, request: ClientRequest) -> ClientResponse {
        if request.op.payload_len() > MAX_KV_BYTES {
            return ClientResponse::Invalid {
                reason: format!(
                    "key and value are {} bytes; the limit is {MAX_KV_BYTES}",
                    request.op.payload_len()
                ),
            };
        }
        if request.op.is_write() && request.seq == 0 {
            return ClientResponse::Invalid {
                reason: "a write needs a sequence number of at least 1".into(),
            };
        }
        let l = *self.leadership.borrow();
        if l.role != Role::Leader {
            return self.not_leader(l.leader_hint);
        }
        let (index, term) = match self.node.start(encode_command(&request)).await {
            Ok(it) => it,
            Err(StartError::NotLeader { leader_hint }) => return self.not_leader(leader_hint),
            Err(e) => {
                return ClientResponse::Retry {
                    reason: e.to_string(),
                }
            }
        };
        let rx = self.waiters.register(index, term);
        // Leadership may have changed between `start` and `register`, after
        // the watcher already failed the waiters of the old term.
        let l = *self.leadership.borrow();
        if l.role != Role::Leader || l.term != term {
            self.waiters
                .fail_except_term(current_term(&l), self.not_leader(l.leader_hint));
        }
        match tokio::time::timeout(self.cfg.request_timeout, rx).await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => ClientResponse::Retry {
                reason: "the node stopped".into(),
            },
            Err(_) => {
                debug!(index, term, "request timed out waiting to apply");
                ClientResponse::Retry {
                    reason: format!(
                        "not applied within {:?} (index {index}, term {term})",
                        self.cfg.request_timeout
                    ),
                }
            }
        }
    }
}

fn current_term(l: &Leadership) -> Option<u64> {
    (l.role == Role::Leader).then_some(l.term)
}

fn not_leader(addrs: &HashMap<NodeId, String>, leader_hint: Option<NodeId>) -> ClientResponse {
    ClientResponse::NotLeader {
        leader_hint,
        leader_addr: leader_hint.and_then(|id| addrs.get(&id).cloned()),
    }
}

/// Applies the stream in order; every `snapshot_entries` applied entries
/// it serialises the store and hands the snapshot to the node (one Snapshot
/// step, R-snap-2), in the apply order, so the snapshot is exactly the state
/// at its index.
async fn apply_loop(
    mut apply_rx: mpsc::UnboundedReceiver<ApplyMsg>,
    store: Arc<Mutex<KvStore>>,
    waiters: Arc<Waiters>,
    node: Node,
    snapshot_entries: u64,
) {
    let mut last_snapshot = 0;
    while let Some(m) = apply_rx.recv().await {
        let lock = || store.lock().unwrap_or_else(|e| e.into_inner());
        match m {
            ApplyMsg::Entry {
                index,
                term,
                command,
            } => {
                let response = lock().apply(index, &command);
                if let Some(r) = response {
                    waiters.complete(index, term, r);
                }
                if snapshot_entries > 0 && index >= last_snapshot + snapshot_entries {
                    let data = lock().snapshot();
                    let bytes = data.len();
                    match node.snapshot(index, data.into()).await {
                        Ok(()) => {
                            debug!(index, bytes, "took a snapshot");
                            last_snapshot = index;
                        }
                        // The node installed a newer one meanwhile, or stopped.
                        Err(e) => debug!(index, error = %e, "no snapshot taken"),
                    }
                }
            }
            ApplyMsg::Snapshot(s) => {
                let index = s.meta.index;
                if let Err(e) = lock().restore(&s.data) {
                    // The node holds a snapshot its state machine cannot
                    // read: applying anything after it would diverge.
                    tracing::error!(index, error = %e, "cannot load the snapshot; the KV service stops applying");
                    break;
                }
                last_snapshot = index;
            }
        }
    }
    waiters.fail_except_term(
        None,
        ClientResponse::Retry {
            reason: "the node stopped".into(),
        },
    );
}

async fn watch_loop(
    mut leadership: watch::Receiver<Leadership>,
    waiters: Arc<Waiters>,
    addrs: HashMap<NodeId, String>,
) {
    while leadership.changed().await.is_ok() {
        let l = *leadership.borrow_and_update();
        if waiters.pending() > 0 {
            if l.role != Role::Leader {
                warn!(term = l.term, "lost leadership; failing pending requests");
            }
            waiters.fail_except_term(current_term(&l), not_leader(&addrs, l.leader_hint));
        }
    }
}
