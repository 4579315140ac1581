//! One `raftkv serve` process: a Raft node on durable storage, the KV
//! service on top, and one TCP address serving both peers and clients.

use crate::codec::{ClientRequest, ClientResponse, NodeMetrics, NodeStatus};
use crate::kv::{KvConfig, KvService};
use crate::message::{Message, MsgTag};
use crate::metrics::{Metrics, PeerCounterMap};
use crate::node::{ImplBug, Node, NodeConfig, NodeError};
use crate::storage::{DirIdentity, FileStorage, FileStorageOptions, StorageError};
use crate::tls::NodeTls;
use crate::trace::TraceSink;
use crate::transport::tcp::{self, Inbound, TcpConfig, TcpTransport};
use crate::types::NodeId;
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub id: NodeId,
    /// Every node of the cluster (this one included) and its address.
    pub peers: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    /// The cluster the data directory must belong to (recorded on first use).
    pub cluster_id: Option<String>,
    pub election_timeout: (Duration, Duration),
    pub heartbeat_interval: Duration,
    pub max_batch: usize,
    pub kv: KvConfig,
    pub tcp: TcpConfig,
    /// Record every step of the node here (docs/trace-format.md).
    pub trace: Option<TraceSink>,
    /// A seeded protocol bug; honoured only with the `seeded-bugs` feature.
    pub bug: Option<ImplBug>,
    /// Serve Prometheus metrics over HTTP here (`GET /metrics`).
    pub metrics_addr: Option<String>,
    /// Mutual TLS for every peer and client connection (plain TCP if `None`).
    pub tls: Option<NodeTls>,
}

impl ServerConfig {
    /// Defaults from [`NodeConfig::new`] and friends.
    pub fn new(id: NodeId, peers: BTreeMap<NodeId, String>, data_dir: PathBuf) -> Self {
        let node = NodeConfig::new(id, vec![]);
        ServerConfig {
            id,
            peers,
            data_dir,
            cluster_id: None,
            election_timeout: node.election_timeout,
            heartbeat_interval: node.heartbeat_interval,
            max_batch: node.max_batch,
            kv: KvConfig::default(),
            tcp: TcpConfig::default(),
            trace: None,
            bug: None,
            metrics_addr: None,
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("node {0} is not in the peer list")]
    NotInPeers(NodeId),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the data directory {dir}")]
    Storage {
        dir: PathBuf,
        #[source]
        source: StorageError,
    },
    #[error("cannot serve metrics on {addr}")]
    MetricsBind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    pub local_addr: SocketAddr,
    /// Where the metrics are served, with `metrics_addr`.
    pub metrics_addr: Option<SocketAddr>,
    pub service: Arc<KvService>,
    pub metrics: Arc<Metrics>,
    accept: JoinHandle<()>,
    metrics_task: Option<JoinHandle<()>>,
}

struct Handler {
    id: NodeId,
    node: Node,
    service: Arc<KvService>,
    peers: BTreeMap<NodeId, String>,
    metrics: Arc<Metrics>,
    counters: PeerCounterMap,
}

impl Inbound for Handler {
    fn peer_message(&self, msg: Message, tag: Option<MsgTag>) {
        if msg.to != self.id || msg.from == self.id || !self.peers.contains_key(&msg.from) {
            warn!(
                me = self.id,
                from = msg.from,
                to = msg.to,
                "dropping a peer message not meant for this node"
            );
            return;
        }
        if let crate::message::Body::RequestVote(crate::message::RequestVote { term, .. }) =
            &msg.body
        {
            debug!(me = self.id, from = msg.from, term, "vote requested");
        }
        if let Some(c) = self.counters.get(&msg.from) {
            c.received.inc();
        }
        self.node.deliver_tagged(msg, tag);
    }

    fn metrics(&self) -> NodeMetrics {
        let h = self.node.fsync_histogram();
        NodeMetrics {
            node: self.id,
            fsync_us: h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    fn status(&self) -> NodeStatus {
        let leadership = *self.node.watch_leadership().borrow();
        let progress = self.node.progress();
        NodeStatus {
            node: self.id,
            role: leadership.role,
            term: leadership.term,
            leader: leadership.leader_hint,
            commit_index: progress.commit_index.load(Ordering::Relaxed),
            last_index: progress.last_index.load(Ordering::Relaxed),
            applied_index: self.service.last_applied(),
            snapshot_index: progress.snapshot_index.load(Ordering::Relaxed),
            log_bytes: progress.log_bytes.load(Ordering::Relaxed),
        }
    }

    fn client_request(&self, request: ClientRequest) -> BoxFuture<'static, ClientResponse> {
        let service = self.service.clone();
        if !request.op.is_write() {
            return async move { service.handle(request).await }.boxed();
        }
        let metrics = self.metrics.clone();
        async move {
            let t = Instant::now();
            let r = service.handle(request).await;
            if matches!(r, ClientResponse::Ok { .. }) {
                metrics.observe_write(t.elapsed());
            }
            r
        }
        .boxed()
    }
}

impl Server {
    /// Opens storage, binds the node's own address and starts serving.
    pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
        let addr = cfg
            .peers
            .get(&cfg.id)
            .cloned()
            .ok_or(ServerError::NotInPeers(cfg.id))?;
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let identity = DirIdentity {
            node_id: Some(cfg.id),
            cluster_id: cfg.cluster_id.clone(),
        };
        let storage = FileStorage::open_as(&cfg.data_dir, FileStorageOptions::default(), &identity)
            .map_err(|source| ServerError::Storage {
                dir: cfg.data_dir.clone(),
                source,
            })?;
        let metrics_listener =
            match &cfg.metrics_addr {
                None => None,
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| {
                    ServerError::MetricsBind {
                        addr: addr.clone(),
                        source,
                    }
                })?),
            };
        let metrics = Arc::new(Metrics::new(cfg.id, cfg.peers.keys().copied()));
        let counters = metrics.peer_counters();
        let mut tcp_cfg = cfg.tcp.clone();
        if let Some(tls) = &cfg.tls {
            tcp_cfg.dialer = tls.dialer.clone();
        }
        let transport = TcpTransport::spawn_counted(
            cfg.id,
            cfg.peers.iter().map(|(id, a)| (*id, a.clone())),
            tcp_cfg,
            counters.clone(),
        );
        let mut node_cfg = NodeConfig::new(
            cfg.id,
            cfg.peers.keys().copied().filter(|p| *p != cfg.id).collect(),
        );
        node_cfg.election_timeout = cfg.election_timeout;
        node_cfg.heartbeat_interval = cfg.heartbeat_interval;
        node_cfg.max_batch = cfg.max_batch;
        node_cfg.trace = cfg.trace.clone();
        node_cfg.bug = cfg.bug;
        let (node, apply_rx) = Node::spawn(node_cfg, Box::new(storage), transport).await?;
        let service = KvService::start(
            node.clone(),
            apply_rx,
            cfg.peers.iter().map(|(id, a)| (*id, a.clone())).collect(),
            cfg.kv.clone(),
        );
        {
            let service = service.clone();
            metrics.bind(node.clone(), move || service.last_applied());
        }
        let handler = Arc::new(Handler {
            id: cfg.id,
            node,
            service: service.clone(),
            peers: cfg.peers.clone(),
            metrics: metrics.clone(),
            counters,
        });
        let acceptor = cfg.tls.as_ref().map(|t| t.acceptor.clone());
        let accept = tokio::spawn(tcp::serve_with(listener, handler, acceptor));
        let mut metrics_addr = None;
        let mut metrics_task = None;
        if let Some(l) = metrics_listener {
            let a = l.local_addr().ok();
            metrics_addr = a;
            metrics_task = Some(tokio::spawn(crate::metrics::serve_http(l, metrics.clone())));
            if let Some(a) = a {
                info!(id = cfg.id, metrics = %format!("http://{a}/metrics"), "serving metrics");
            }
        }
        info!(
            id = cfg.id,
            %local_addr,
            data_dir = %cfg.data_dir.display(),
            tls = cfg.tls.is_some(),
            "serving"
        );
        Ok(Server {
            local_addr,
            metrics_addr,
            service,
            metrics,
            accept,
            metrics_task,
        })
    }

    /// Stops accepting connections and stops the node.
    pub async fn shutdown(self) {
        self.accept.abort();
        if let Some(t) = &self.metrics_task {
            t.abort();
        }
        self.service.node().clone().shutdown().await;
    }
}
