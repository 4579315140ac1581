//! Prometheus metrics of one `raftkv serve` process, served as text over
//! HTTP (`GET /metrics`) with `prometheus-client` and `hyper`.
//!
//! The hot paths only touch atomics: per-peer message counters are
//! `prometheus_client` counters (an `Arc<AtomicU64>` each) looked up once at
//! start-up and held by the transport and the server; the node publishes
//! its indexes in relaxed atomics ([`crate::node::NodeProgress`]) that are
//! copied into gauges when scraped; the fsync histogram is the node's own
//! hdrhistogram, converted to buckets when scraped. The one lock is the
//! write-latency histogram's, taken once per answered write.

use crate::node::Node;
use crate::types::{NodeId, Role};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// Histogram bucket bounds in seconds: 50 µs doubling to about 1.6 s.
fn bounds() -> Vec<f64> {
    exponential_buckets(50e-6, 2.0, 16).collect()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

/// One peer's message counters (cheap to clone: shared atomics).
#[derive(Clone, Debug, Default)]
pub struct PeerCounters {
    /// Messages handed to the peer's connection (written or buffered).
    pub sent: Counter,
    /// Messages dropped on the way out: buffer full, peer unreachable,
    /// connection lost before they were written.
    pub dropped: Counter,
    /// Messages received from the peer and handed to the node.
    pub received: Counter,
}

/// Per-peer counters, by peer id; built once, read without locks.
pub type PeerCounterMap = HashMap<NodeId, PeerCounters>;

/// The node's fsync latency histogram, converted when scraped.
#[derive(Debug)]
struct FsyncHistogram {
    node: Arc<OnceLock<Node>>,
}

impl EncodeMetric for FsyncHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = match self.node.get() {
            Some(n) => n.fsync_histogram(),
            None => hdrhistogram::Histogram::<u64>::new(3).expect("valid histogram precision"),
        };
        // Per-bucket counts (the encoder accumulates), the last one +Inf.
        let mut buckets = Vec::new();
        let mut below = 0;
        for b in bounds() {
            let upto = h.count_between(0, (b * 1e6) as u64);
            buckets.push((b, upto.saturating_sub(below)));
            below = below.max(upto);
        }
        buckets.push((f64::INFINITY, h.len().saturating_sub(below)));
        // hdrhistogram keeps no exact sum: its mean (to 3 significant digits) times the count.
        let sum = h.mean() * h.len() as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, h.len(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// What the gauges are read from when scraped.
struct Source {
    node: Node,
    applied: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    /// Set once the node runs ([`Metrics::bind`]); the transport's counters
    /// exist before it.
    node: Arc<OnceLock<Node>>,
    source: OnceLock<Source>,
    role: Family<RoleLabel, Gauge>,
    term: Gauge,
    leader: Gauge,
    commit_index: Gauge,
    last_index: Gauge,
    applied_index: Gauge,
    proposals: Counter,
    write_latency: Histogram,
    peers: PeerCounterMap,
    /// Serializes scrapes (the copy into gauges and the proposal counter).
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of node `me` talking to `peers`; call [`bind`](Self::bind)
    /// once the node runs.
    pub fn new(me: NodeId, peers: impl IntoIterator<Item = NodeId>) -> Metrics {
        let node = Arc::new(OnceLock::new());
        let mut registry = Registry::with_prefix("raftkv");
        let role = Family::<RoleLabel, Gauge>::default();
        registry.register(
            "role",
            "1 for the node's current Raft role, 0 for the others",
            role.clone(),
        );
        let term = Gauge::default();
        registry.register("term", "The node's current term", term.clone());
        let leader = Gauge::default();
        registry.register(
            "leader",
            "The id of the leader the node knows of (itself when leader), 0 if none",
            leader.clone(),
        );
        let commit_index = Gauge::default();
        registry.register(
            "commit_index",
            "The node's commit index",
            commit_index.clone(),
        );
        let last_index = Gauge::default();
        registry.register(
            "last_index",
            "The index of the last entry of the node's log",
            last_index.clone(),
        );
        let applied_index = Gauge::default();
        registry.register(
            "applied_index",
            "The highest log index the node's KV store applied",
            applied_index.clone(),
        );
        let proposals = Counter::default();
        registry.register(
            "proposals",
            "Entries this node appended to its log as leader (client writes and reads)",
            proposals.clone(),
        );
        registry.register_with_unit(
            "fsync_duration",
            "Latency of the node's fsyncs (one per Persist step that wrote log changes)",
            Unit::Seconds,
            FsyncHistogram { node: node.clone() },
        );
        let write_latency = Histogram::new(bounds());
        registry.register_with_unit(
            "client_write_duration",
            "Put and append requests this node answered OK, from receipt to answer",
            Unit::Seconds,
            write_latency.clone(),
        );
        let sent = Family::<PeerLabel, Counter>::default();
        let dropped = Family::<PeerLabel, Counter>::default();
        let received = Family::<PeerLabel, Counter>::default();
        registry.register(
            "peer_messages_sent",
            "Raft messages sent to each peer",
            sent.clone(),
        );
        registry.register(
            "peer_messages_dropped",
            "Raft messages to each peer dropped before they were written (buffer full, peer unreachable, connection lost)",
            dropped.clone(),
        );
        registry.register(
            "peer_messages_received",
            "Raft messages received from each peer",
            received.clone(),
        );
        let peers = peers
            .into_iter()
            .filter(|p| *p != me)
            .map(|p| {
                let l = PeerLabel {
                    peer: p.to_string(),
                };
                let c = PeerCounters {
                    sent: sent.get_or_create(&l).clone(),
                    dropped: dropped.get_or_create(&l).clone(),
                    received: received.get_or_create(&l).clone(),
                };
                (p, c)
            })
            .collect();
        Metrics {
            registry,
            node,
            role,
            term,
            leader,
            commit_index,
            last_index,
            applied_index,
            proposals,
            write_latency,
            peers,
            scrape: Mutex::new(()),
            source: OnceLock::new(),
        }
    }

    /// Reads the node's state from `node` and the KV store's applied index
    /// from `applied` from now on (the first call wins).
    pub fn bind(&self, node: Node, applied: impl Fn() -> u64 + Send + Sync + 'static) {
        let _ = self.node.set(node.clone());
        let _ = self.source.set(Source {
            node,
            applied: Box::new(applied),
        });
    }

    /// The per-peer counters, for the transport and the server.
    pub fn peer_counters(&self) -> PeerCounterMap {
        self.peers.clone()
    }

    /// Records one write answered OK after `d`.
    pub fn observe_write(&self, d: Duration) {
        self.write_latency.observe(d.as_secs_f64());
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn render(&self) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(src) = self.source.get() {
            self.copy_gauges(src);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn copy_gauges(&self, src: &Source) {
        let l = *src.node.watch_leadership().borrow();
        for (role, name) in [
            (Role::Follower, "follower"),
            (Role::Candidate, "candidate"),
            (Role::Leader, "leader"),
        ] {
            self.role
                .get_or_create(&RoleLabel { role: name })
                .set(i64::from(l.role == role));
        }
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.term.set(clamp(l.term));
        self.leader.set(clamp(l.leader_hint.unwrap_or(0)));
        let p = src.node.progress();
        self.commit_index
            .set(clamp(p.commit_index.load(Ordering::Relaxed)));
        self.last_index
            .set(clamp(p.last_index.load(Ordering::Relaxed)));
        self.applied_index.set(clamp((src.applied)()));
        let proposals = p.proposals.load(Ordering::Relaxed);
        self.proposals
            .inc_by(proposals.saturating_sub(self.proposals.get()));
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` forever (HTTP/1.1, one task per
/// connection); other paths get 404, other methods 405.
pub async fn serve_http(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                debug!(%remote, "metrics connection: {e}");
            }
        });
    }
}

fn answer(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; the metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    reply(StatusCode::OK, CONTENT_TYPE, metrics.render())
}
