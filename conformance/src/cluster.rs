//! A cluster of real async raftkv nodes driven event by event.
//!
//! Each node runs with [`TimerMode::Manual`] on real [`FileStorage`] in its
//! own data directory, and sends into a [`MemNetwork`] in Held mode: sent
//! messages wait there until the harness delivers, drops or duplicates
//! them. Every model action maps to exactly one thing the harness does to
//! the nodes or the network; each call returns once the step is complete
//! (state changed, persisted, messages handed to the transport).

use crate::mapping::{self, MappingError, NodeCall};
use raft_model::trace::AbstractState;
use raft_model::types::{Action, ServerId};
use raftkv::node::{ApplyMsg, ImplBug, Node, NodeConfig, TimerMode};
use raftkv::storage::FileStorage;
use raftkv::transport::memory::{Faults, MemNetwork, NetMode};
use raftkv::types::{NodeId, Status};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::UnboundedReceiver;

/// Why a step could not be applied to the implementation at all.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("server {0} does not exist in this cluster")]
    NoServer(ServerId),
    #[error("message is not in flight in the implementation's network: {0}")]
    NotInFlight(String),
    #[error("message crosses the active partition and cannot be delivered or duplicated: {0}")]
    LinkCut(String),
    #[error("ClientRequest refused by node {node}: {reason}")]
    Start { node: u64, reason: String },
    #[error("restart of node {node} failed: {reason}")]
    Restart { node: u64, reason: String },
    #[error("node {0} is not running")]
    Down(u64),
    #[error("Snapshot refused by node {node}: {reason}")]
    Snapshot { node: u64, reason: String },
    #[error("node {node}'s state has no model form: {source}")]
    Mapping { node: u64, source: MappingError },
}

/// Failures of the harness itself (not of the implementation under test).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot create data directories under {root}: {source}")]
    TempDir {
        root: String,
        source: std::io::Error,
    },
    #[error("cannot open storage of node {node}: {reason}")]
    Storage { node: u64, reason: String },
    #[error("cannot start node {node}: {reason}")]
    Spawn { node: u64, reason: String },
    #[error("cluster size {0} is not supported (1..=7)")]
    Size(usize),
}

/// Whether the harness drives a node's Persist from outside (trace format
/// v2 in `--persist async`): `Persist(i)` is `fire_persist()`.
pub const SUPPORTS_PERSIST: bool = true;

/// Environment variable that overrides [`data_root`] (e.g. to measure the
/// harness on a disk-backed directory).
pub const DATA_DIR_ENV: &str = "RAFT_CONFORM_DATA_DIR";

/// Where temporary data directories go: `$RAFT_CONFORM_DATA_DIR` if set,
/// else a RAM-backed filesystem when there is one (so fsync is cheap but the
/// real file format and recovery path are still exercised), else the system
/// temp dir.
pub fn data_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(probe) = tempfile::Builder::new()
            .prefix("raft-conform-probe-")
            .tempdir_in(shm)
        {
            drop(probe);
            return shm.to_path_buf();
        }
    }
    std::env::temp_dir()
}

pub struct Cluster {
    net: MemNetwork,
    nodes: Vec<Option<Node>>,
    applies: Vec<UnboundedReceiver<ApplyMsg>>,
    dirs: Vec<PathBuf>,
    bug: Option<ImplBug>,
    /// `--persist sync`: every step is followed by the node's Persist.
    sync_persist: bool,
    /// Where the nodes record their steps (NDJSON), if anywhere.
    trace: Option<raftkv::trace::TraceSink>,
    // Removed (with every node's data) when the cluster is dropped.
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` fresh nodes (ids 1..=n) with empty data directories under
    /// `root`.
    pub async fn start(
        n: usize,
        bug: Option<ImplBug>,
        root: &Path,
    ) -> Result<Cluster, ClusterError> {
        Cluster::start_traced(n, bug, root, None).await
    }

    /// [`Cluster::start`] with every node (and every restarted node)
    /// recording its steps into `trace`.
    pub async fn start_traced(
        n: usize,
        bug: Option<ImplBug>,
        root: &Path,
        trace: Option<raftkv::trace::TraceSink>,
    ) -> Result<Cluster, ClusterError> {
        if !mapping::supported_cluster_size(n) {
            return Err(ClusterError::Size(n));
        }
        let tmp = tempfile::Builder::new()
            .prefix("raft-conform-")
            .tempdir_in(root)
            .map_err(|source| ClusterError::TempDir {
                root: root.display().to_string(),
                source,
            })?;
        let net = MemNetwork::new(NetMode::Held, Faults::reliable(), 0);
        let mut cluster = Cluster {
            net,
            nodes: Vec::with_capacity(n),
            applies: Vec::with_capacity(n),
            dirs: Vec::with_capacity(n),
            bug,
            sync_persist: true,
            trace,
            _tmp: tmp,
        };
        for i in 0..n {
            let dir = cluster._tmp.path().join(format!("node-{}", i + 1));
            cluster.dirs.push(dir);
        }
        for i in 0..n {
            let (node, rx) = cluster.spawn_node(i).await?;
            cluster.nodes.push(Some(node));
            cluster.applies.push(rx);
        }
        Ok(cluster)
    }

    /// Drives the nodes in `mode`: sync (the default) fires each node's
    /// Persist right after its step; async only on `Persist` actions.
    pub fn set_persist(&mut self, mode: raft_model::PersistMode) {
        self.sync_persist = mode == raft_model::PersistMode::Sync;
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    pub fn network(&self) -> &MemNetwork {
        &self.net
    }

    async fn spawn_node(
        &self,
        i: usize,
    ) -> Result<(Node, UnboundedReceiver<ApplyMsg>), ClusterError> {
        let server = i as ServerId;
        let id = mapping::node_id(server);
        let mut cfg = NodeConfig::new(id, mapping::peer_ids(self.dirs.len() as u8, server));
        cfg.timers = TimerMode::Manual;
        cfg.bug = self.bug;
        cfg.seed = Some(id);
        cfg.trace = self.trace.clone();
        let storage = FileStorage::open(&self.dirs[i]).map_err(|e| ClusterError::Storage {
            node: id,
            reason: e.to_string(),
        })?;
        let (node, applied) = Node::spawn(cfg, Box::new(storage), self.net.endpoint(id))
            .await
            .map_err(|e| ClusterError::Spawn {
                node: id,
                reason: e.to_string(),
            })?;
        // Routes the network's deliveries to this node (replaces a
        // restarted node's predecessor).
        self.net.register(node.clone());
        Ok((node, applied))
    }

    fn node(&self, id: NodeId) -> Result<&Node, StepError> {
        match self.nodes.get(mapping::node_position(id)) {
            None => Err(StepError::NoServer(mapping::node_position(id) as ServerId)),
            Some(None) => Err(StepError::Down(id)),
            Some(Some(node)) => Ok(node),
        }
    }

    /// In sync mode (docs/protocol.md §7) each step is followed at once by
    /// the Persist of the server it changed; in async mode Persist is a
    /// step of its own.
    async fn persist_if_sync(&self, node: &Node) {
        if self.sync_persist {
            node.fire_persist().await;
        }
    }

    /// Applies one event (a model action) to the implementation: the call
    /// of [`mapping::node_call`].
    pub async fn apply(&mut self, action: &Action) -> Result<(), StepError> {
        // Errors name the message as the model does.
        let shown = || match action {
            Action::Deliver { message }
            | Action::Drop { message }
            | Action::Duplicate { message } => format!("{message:?}"),
            other => format!("{other:?}"),
        };
        match mapping::node_call(action) {
            NodeCall::ElectionTimeout { node } => {
                let node = self.node(node)?;
                node.fire_election_timeout().await;
                self.persist_if_sync(node).await;
            }
            NodeCall::Heartbeat { node } => {
                let node = self.node(node)?;
                node.fire_heartbeat().await;
                self.persist_if_sync(node).await;
            }
            NodeCall::Propose { node, command } => {
                let node = self.node(node)?;
                node.start(command).await.map_err(|e| StepError::Start {
                    node: node.id(),
                    reason: e.to_string(),
                })?;
                self.persist_if_sync(node).await;
            }
            NodeCall::Deliver { message: msg } => {
                if mapping::node_position(msg.to) >= self.len() {
                    return Err(StepError::NoServer(
                        mapping::node_position(msg.to) as ServerId
                    ));
                }
                if !self.net.connected(msg.from, msg.to) {
                    return Err(StepError::LinkCut(shown()));
                }
                let Some(id) = self.net.find(&msg) else {
                    return Err(StepError::NotInFlight(shown()));
                };
                let node = self.node(msg.to)?;
                // Runs the Deliver step on the node and waits for it.
                self.net
                    .deliver(id)
                    .await
                    .map_err(|_| StepError::Down(msg.to))?;
                self.persist_if_sync(node).await;
            }
            NodeCall::Drop { message: msg } => {
                let dropped = self.net.find(&msg).map(|id| self.net.drop_message(id));
                if !matches!(dropped, Some(Ok(_))) {
                    return Err(StepError::NotInFlight(shown()));
                }
            }
            NodeCall::Duplicate { message: msg } => {
                if !self.net.connected(msg.from, msg.to) {
                    return Err(StepError::LinkCut(shown()));
                }
                let copied = self.net.find(&msg).map(|id| self.net.duplicate(id));
                if !matches!(copied, Some(Ok(_))) {
                    return Err(StepError::NotInFlight(shown()));
                }
            }
            NodeCall::Persist { node } => self.node(node)?.fire_persist().await,
            NodeCall::Restart { node } => {
                self.restart(mapping::node_position(node) as ServerId)
                    .await?
            }
            NodeCall::Partition { group } => {
                if let Some(&bad) = group
                    .iter()
                    .find(|&&id| mapping::node_position(id) >= self.len())
                {
                    return Err(StepError::NoServer(mapping::node_position(bad) as ServerId));
                }
                self.net.partition(group);
            }
            NodeCall::Heal => self.net.heal(),
            NodeCall::Snapshot { node, index } => {
                let node = self.node(node)?;
                // The harness's state machine: the values applied through
                // `index` (R-snap-2).
                let status = node.status().await;
                let values = mapping::applied_values(&status, index).map_err(|source| {
                    StepError::Mapping {
                        node: node.id(),
                        source,
                    }
                })?;
                node.snapshot(index, mapping::snapshot_data(&values))
                    .await
                    .map_err(|e| StepError::Snapshot {
                        node: node.id(),
                        reason: e.to_string(),
                    })?;
                self.persist_if_sync(node).await;
            }
        }
        self.drain_applies();
        Ok(())
    }

    /// Restart = the node task is shut down (storage closed) and a new node
    /// is opened from the same data directory, recovering from disk.
    pub async fn restart(&mut self, server: ServerId) -> Result<(), StepError> {
        let i = usize::from(server);
        let id = mapping::node_id(server);
        let old = self
            .nodes
            .get_mut(i)
            .ok_or(StepError::NoServer(server))?
            .take()
            .ok_or(StepError::Down(id))?;
        old.shutdown().await;
        let (node, rx) = self.spawn_node(i).await.map_err(|e| StepError::Restart {
            node: id,
            reason: e.to_string(),
        })?;
        self.nodes[i] = Some(node);
        self.applies[i] = rx;
        Ok(())
    }

    /// Committed entries are not compared (the commit index is), but the
    /// apply streams are drained so they do not grow without bound.
    fn drain_applies(&mut self) {
        for rx in &mut self.applies {
            while rx.try_recv().is_ok() {}
        }
    }

    /// Every node's status, ordered by id.
    pub async fn statuses(&self) -> Result<Vec<Status>, StepError> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            match n {
                Some(node) => out.push(node.status().await),
                None => return Err(StepError::Down(mapping::node_id(i as ServerId))),
            }
        }
        Ok(out)
    }

    /// The implementation's abstract state in the model's vocabulary.
    pub async fn abstract_state(&self) -> Result<AbstractState, StateError> {
        let statuses = self.statuses().await?;
        let partition: Option<Vec<ServerId>> = self
            .net
            .active_partition()
            .map(|g| mapping::group_to_model(&g, statuses.len()))
            .transpose()?;
        let in_flight: Vec<_> = self.net.in_flight().into_iter().map(|(_, m)| m).collect();
        Ok(mapping::abstract_state(
            &statuses,
            &in_flight,
            partition.as_deref(),
        )?)
    }

    /// Stops every node. Dropping a cluster without this leaves the node
    /// tasks to end with the runtime; their data directories are removed
    /// either way.
    pub async fn shutdown(mut self) {
        for n in self.nodes.iter_mut() {
            if let Some(node) = n.take() {
                node.shutdown().await;
            }
        }
    }
}

impl Drop for Cluster {
    /// The network holds a handle of every node and every node a handle of
    /// the network: unregistering breaks that cycle so the node tasks end.
    fn drop(&mut self) {
        for id in 1..=self.dirs.len() as u64 {
            self.net.unregister(id);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("implementation state has no model form: {0}")]
    Mapping(#[from] MappingError),
}
