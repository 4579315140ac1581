//! The KV client: finds the leader, follows redirects, retries.
//!
//! A [`Client`] is one session: before its first write it registers
//! through the log (`RegisterClient`; the entry's index is its id), then
//! numbers its writes. A write is retried with the same sequence number
//! until some node answers, so it applies exactly once even if an earlier
//! attempt committed after its answer was lost. Reads are retried freely.
//! A session idle for more than `kv::SESSION_TTL_ENTRIES` log entries is
//! trimmed by the cluster; a write of it is refused ([`ClientError::Invalid`],
//! "session ... is unknown"), never applied.
//!
//! The client talks to nodes through a [`Connector`]: [`TcpConnector`] for a
//! real cluster; tests plug in one that calls services in memory.

use crate::codec::{ClientRequest, ClientResponse, Frame, FrameCodec, NodeMetrics, NodeStatus, Op};
use crate::tls::{Conn, Dialer};
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::debug;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no answer within {timeout:?}; last problem: {last_error}")]
    Timeout {
        timeout: Duration,
        last_error: String,
    },
    #[error("request rejected: {0}")]
    Invalid(String),
    #[error("the cluster address list is empty")]
    NoServers,
}

/// One request to one node; an `Err` means the connection failed (the
/// caller moves on to another node).
pub trait Connector: Send {
    fn call<'a>(
        &'a mut self,
        addr: &'a str,
        request: ClientRequest,
    ) -> BoxFuture<'a, Result<ClientResponse, String>>;
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Give up on an operation after this long.
    pub op_timeout: Duration,
    /// Give up on one node after this long (then try another).
    pub attempt_timeout: Duration,
    /// First and largest pause between rounds of retries.
    pub backoff: (Duration, Duration),
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            op_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(4),
            backoff: (Duration::from_millis(10), Duration::from_millis(200)),
        }
    }
}

pub struct Client<C: Connector = TcpConnector> {
    addrs: Vec<String>,
    connector: C,
    cfg: ClientConfig,
    /// The registered session, once the first write registered it.
    client_id: Option<u64>,
    seq: u64,
    /// Where the last successful request went (the leader, most likely).
    target: String,
}

impl Client<TcpConnector> {
    /// A client of the cluster whose nodes listen on `addrs` (plain TCP).
    pub fn connect(addrs: Vec<String>, cfg: ClientConfig) -> Result<Self, ClientError> {
        Client::with_connector(addrs, TcpConnector::default(), cfg)
    }

    /// A client that opens its connections with `dialer` (e.g. TLS).
    pub fn connect_with(
        addrs: Vec<String>,
        cfg: ClientConfig,
        dialer: Dialer,
    ) -> Result<Self, ClientError> {
        Client::with_connector(addrs, TcpConnector::new(dialer), cfg)
    }
}

impl<C: Connector> Client<C> {
    pub fn with_connector(
        addrs: Vec<String>,
        connector: C,
        cfg: ClientConfig,
    ) -> Result<Self, ClientError> {
        let first = addrs.first().cloned().ok_or(ClientError::NoServers)?;
        Ok(Client {
            addrs,
            connector,
            cfg,
            client_id: None,
            seq: 0,
            target: first,
        })
    }

    /// The node the last request went to (after a success: the leader).
    pub fn last_target(&self) -> &str {
        &self.target
    }

    /// The session id, once registered.
    pub fn client_id(&self) -> Option<u64> {
        self.client_id
    }

    /// Registers a session through the log (done before the first write).
    pub async fn register(&mut self) -> Result<u64, ClientError> {
        let request = ClientRequest {
            client_id: 0,
            seq: 0,
            op: Op::RegisterClient,
        };
        match self.round_trip(request).await? {
            ClientResponse::Registered { client_id } => {
                self.client_id = Some(client_id);
                self.seq = 0;
                Ok(client_id)
            }
            other => Err(ClientError::Invalid(format!(
                "RegisterClient answered {other:?}"
            ))),
        }
    }

    pub async fn put(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.call(Op::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
        .map(drop)
    }

    pub async fn append(&mut self, key: &str, value: &str) -> Result<(), ClientError> {
        self.call(Op::Append {
            key: key.into(),
            value: value.into(),
        })
        .await
        .map(drop)
    }

    /// The key's value, `None` if it does not exist.
    pub async fn get(&mut self, key: &str) -> Result<Option<String>, ClientError> {
        self.call(Op::Get { key: key.into() }).await
    }

    fn next_addr(&self, after: &str) -> String {
        let i = self.addrs.iter().position(|a| a == after);
        let j = i.map_or(0, |i| (i + 1) % self.addrs.len());
        self.addrs[j].clone()
    }

    /// Runs one operation to completion: redirects, retries, backoff.
    pub async fn call(&mut self, op: Op) -> Result<Option<String>, ClientError> {
        let (client_id, seq) = if op.is_write() {
            let id = match self.client_id {
                Some(id) => id,
                None => self.register().await?,
            };
            self.seq += 1;
            (id, self.seq)
        } else {
            (self.client_id.unwrap_or(0), 0)
        };
        let request = ClientRequest { client_id, seq, op };
        match self.round_trip(request).await? {
            ClientResponse::Ok { value } => Ok(value),
            other => Err(ClientError::Invalid(format!("unexpected answer {other:?}"))),
        }
    }

    /// Sends one request until a node answers it for good (success, an
    /// invalid request, or a registration); redirects, retries, backoff.
    async fn round_trip(&mut self, request: ClientRequest) -> Result<ClientResponse, ClientError> {
        let deadline = Instant::now() + self.cfg.op_timeout;
        let mut backoff = self.cfg.backoff.0;
        let mut last_error = String::from("no attempt made");
        let mut redirects = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    timeout: self.cfg.op_timeout,
                    last_error,
                });
            }
            let budget = self.cfg.attempt_timeout.min(deadline - now);
            let target = self.target.clone();
            let attempt =
                tokio::time::timeout(budget, self.connector.call(&target, request.clone())).await;
            let mut pause = true;
            match attempt {
                Ok(Ok(r @ (ClientResponse::Ok { .. } | ClientResponse::Registered { .. }))) => {
                    return Ok(r)
                }
                Ok(Ok(ClientResponse::Invalid { reason })) => {
                    return Err(ClientError::Invalid(reason))
                }
                Ok(Ok(ClientResponse::NotLeader {
                    leader_addr: Some(a),
                    ..
                })) if a != target && redirects < self.addrs.len() => {
                    // Follow a redirect at once, but not around in circles.
                    redirects += 1;
                    last_error = format!("{target} is not the leader; redirected to {a}");
                    self.target = a;
                    pause = false;
                }
                Ok(Ok(ClientResponse::NotLeader { .. })) => {
                    last_error = format!("{target} is not the leader and knows no leader");
                    self.target = self.next_addr(&target);
                }
                Ok(Ok(ClientResponse::Retry { reason })) => {
                    last_error = format!("{target}: {reason}");
                    self.target = self.next_addr(&target);
                }
                Ok(Err(e)) => {
                    last_error = format!("{target}: {e}");
                    self.target = self.next_addr(&target);
                }
                Err(_) => {
                    last_error = format!("{target}: no answer within {budget:?}");
                    self.target = self.next_addr(&target);
                }
            }
            debug!(%last_error, "retrying");
            if pause {
                redirects = 0;
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(self.cfg.backoff.1);
            }
        }
    }
}

/// Connections to nodes over TCP (or TLS), one per address, opened on
/// demand and dropped after an error.
#[derive(Default)]
pub struct TcpConnector {
    dialer: Dialer,
    conns: HashMap<String, Framed<Conn, FrameCodec>>,
    next_id: u64,
}

impl TcpConnector {
    pub fn new(dialer: Dialer) -> Self {
        TcpConnector {
            dialer,
            conns: HashMap::new(),
            next_id: 0,
        }
    }

    async fn call_inner(
        &mut self,
        addr: &str,
        request: ClientRequest,
    ) -> Result<ClientResponse, String> {
        if !self.conns.contains_key(addr) {
            let stream = self
                .dialer
                .connect(addr)
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            self.conns
                .insert(addr.to_string(), Framed::new(stream, FrameCodec::default()));
        }
        self.next_id += 1;
        let id = self.next_id;
        let conn = self.conns.get_mut(addr).expect("inserted above");
        conn.send(Frame::Request { id, request })
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match conn.next().await {
                None => return Err("connection closed".into()),
                Some(Err(e)) => return Err(explain(e)),
                // A late answer to an abandoned earlier attempt: skip it.
                Some(Ok(Frame::Response { id: rid, .. })) if rid != id => continue,
                Some(Ok(Frame::Response { response, .. })) => return Ok(response),
                Some(Ok(_)) => return Err("unexpected frame from server".into()),
            }
        }
    }
}

impl Connector for TcpConnector {
    fn call<'a>(
        &'a mut self,
        addr: &'a str,
        request: ClientRequest,
    ) -> BoxFuture<'a, Result<ClientResponse, String>> {
        async move {
            // A timeout may drop this future mid-request: the connection stays
            // usable (a partly written frame is finished by the next send,
            // and the late answer is skipped by its id).
            let r = self.call_inner(addr, request).await;
            if r.is_err() {
                self.conns.remove(addr);
            }
            r
        }
        .boxed()
    }
}

/// A codec error as the client reports it: a "frame length" that is a TLS
/// record header means the node speaks TLS and this client does not.
fn explain(e: crate::codec::CodecError) -> String {
    if let crate::codec::CodecError::Oversized { len, .. } = &e {
        let (kind, major) = (len >> 24, (len >> 16) & 0xff);
        if (0x14..=0x17).contains(&kind) && major == 3 {
            return "the node answered with TLS: connect with --tls-dir".into();
        }
    }
    e.to_string()
}

/// Asks the node at `addr` for its metrics ([`NodeMetrics`]: its id and
/// fsync latency histogram) over a connection of its own.
pub async fn node_metrics(
    dialer: &Dialer,
    addr: &str,
    timeout: Duration,
) -> Result<NodeMetrics, ClientError> {
    let fail = |last_error: String| ClientError::Timeout {
        timeout,
        last_error,
    };
    let attempt = async {
        let stream = dialer
            .connect(addr)
            .await
            .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
        let mut conn = Framed::new(stream, FrameCodec::default());
        conn.send(Frame::MetricsRequest { id: 1 })
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        match conn.next().await {
            Some(Ok(Frame::MetricsResponse { metrics, .. })) => Ok(metrics),
            Some(Ok(_)) => Err(format!("{addr}: unexpected frame from server")),
            Some(Err(e)) => Err(format!("{addr}: {}", explain(e))),
            None => Err(format!(
                "{addr}: connection closed (an older raftkv without metrics?)"
            )),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r.map_err(fail),
        Err(_) => Err(fail(format!("{addr}: no answer"))),
    }
}

/// Asks the node at `addr` where it stands and for its metrics (two
/// requests on one connection of its own): its [`NodeStatus`] and the
/// [`NodeMetrics`] `raftkv bench` reads its fsync latency from.
pub async fn node_status(
    dialer: &Dialer,
    addr: &str,
    timeout: Duration,
) -> Result<(NodeStatus, NodeMetrics), ClientError> {
    let fail = |last_error: String| ClientError::Timeout {
        timeout,
        last_error,
    };
    let attempt = async {
        let stream = dialer
            .connect(addr)
            .await
            .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
        let mut conn = Framed::new(stream, FrameCodec::default());
        conn.feed(Frame::StatusRequest { id: 1 })
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        conn.send(Frame::MetricsRequest { id: 2 })
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let (mut status, mut metrics) = (None, None);
        while status.is_none() || metrics.is_none() {
            match conn.next().await {
                Some(Ok(Frame::StatusResponse { status: s, .. })) => status = Some(s),
                Some(Ok(Frame::MetricsResponse { metrics: m, .. })) => metrics = Some(m),
                Some(Ok(_)) => return Err(format!("{addr}: unexpected frame from server")),
                Some(Err(e)) => return Err(format!("{addr}: {}", explain(e))),
                None => {
                    return Err(format!(
                        "{addr}: connection closed (an older raftkv without status?)"
                    ))
                }
            }
        }
        Ok((
            status.expect("loop ends with both"),
            metrics.expect("loop ends with both"),
        ))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r.map_err(fail),
        Err(_) => Err(fail(format!("{addr}: no answer"))),
    }
}
