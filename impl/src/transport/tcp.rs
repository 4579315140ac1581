// Over 600 lines: one transport (dialing, accepting, per-peer send buffers, plain and TLS streams) whose connection life cycle reads best in one file.
//! TCP transport between `raftkv` processes.
//!
//! Outbound: per peer, a buffer of encoded frames and one task that owns
//! the connection. [`Transport::send`] never blocks: it encodes the message
//! and, when the buffer is empty and the peer is connected, writes it to the
//! socket right away (non-blocking), so a message leaves without waiting for
//! another task to be scheduled; whatever the socket does not take is left
//! in the buffer for the peer's task, and a full buffer drops the message.
//! A broken connection is re-established with exponential backoff; messages
//! sent while the peer is unreachable are discarded (they would be stale by
//! the time it is back, and Raft resends what matters on the next
//! heartbeat).
//!
//! Inbound: [`serve`] accepts connections on the node's one address and
//! dispatches each frame by its kind: peer messages to the node, client
//! requests to the KV service (answered on the same connection). A malformed
//! or oversized frame closes that connection with a logged error.

use crate::codec::{
    encode_payload, ClientRequest, ClientResponse, CodecError, Frame, FrameCodec, NodeMetrics,
    NodeStatus, Reassembly, MAX_FRAME_LEN,
};
use crate::message::{Message, MsgTag};
use crate::metrics::{PeerCounterMap, PeerCounters};
use crate::tls::Dialer;
use crate::transport::Transport;
use crate::types::NodeId;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Encoder, FramedRead, FramedWrite};
use tracing::{debug, info, warn};

#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Messages buffered per peer before `send` starts dropping.
    pub queue_capacity: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
    /// How peer connections are opened: plain TCP (the default) or TLS.
    pub dialer: Dialer,
    /// A peer message whose encoded frame is longer than this many bytes
    /// travels as [`Frame::PeerChunk`]s of at most this many bytes of it
    /// (clamped to 1 ..= [`MAX_FRAME_LEN`] - [`CHUNK_HEADROOM`]).
    pub chunk_size: usize,
}

/// Bytes a [`Frame::PeerChunk`] adds to its data (variant, ids, offsets,
/// length), at most: a chunk frame is at most `chunk_size` + this.
pub const CHUNK_HEADROOM: usize = 64;

/// Default [`TcpConfig::chunk_size`].
pub const DEFAULT_CHUNK_SIZE: usize = 1024 * 1024;

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            queue_capacity: 1024,
            backoff_min: Duration::from_millis(10),
            // Well below the election timeout, so a restarted node hears the
            // leader again before it times out and disrupts the cluster.
            backoff_max: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(1),
            dialer: Dialer::plain(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// Outbound half: per peer, a buffer of encoded frames and a connection
/// task. `send` encodes the message and, when nothing is buffered and the
/// peer is connected, writes it to the socket at once from the caller
/// (non-blocking `try_write`: no task hop before the message leaves); what
/// the socket does not take now is buffered and written by the peer's task.
pub struct TcpTransport {
    id: NodeId,
    peers: HashMap<NodeId, Arc<PeerOut>>,
    tasks: Vec<JoinHandle<()>>,
}

/// One peer's outbound state, shared by `send` and the peer's task.
struct PeerOut {
    state: Mutex<OutState>,
    /// Wakes the peer's task: bytes were buffered.
    wake: Notify,
    /// Most frames buffered before `send` starts dropping.
    capacity: usize,
    /// Messages sent and dropped (atomics; `received` is the server's).
    counters: PeerCounters,
    /// This node, named in the chunks it sends.
    me: NodeId,
    /// Encoded frames longer than this are sent in chunks.
    chunk_size: usize,
}

/// A peer frame sent in chunks ([`Frame::PeerChunk`]).
struct OutTransfer {
    id: u64,
    /// The whole encoded frame ([`Frame::Peer`] or [`Frame::PeerTagged`]).
    bytes: Bytes,
    /// Offset of the next chunk to buffer.
    next: usize,
    resume: Resume,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resume {
    /// Chunks follow one another on this connection.
    Streaming,
    /// The connection that carried earlier chunks is gone: ask the receiver
    /// ([`Frame::ChunkQuery`]) how much it holds before sending more.
    Ask,
    /// Asked on this connection; waiting for its [`Frame::ChunkHave`].
    Asked,
}

#[derive(Default)]
struct OutState {
    /// The connection's write half while connected.
    conn: Option<Arc<OwnedWriteHalf>>,
    /// Encoded bytes not yet written, starting at a frame boundary of the
    /// current connection (the rest of a partly written frame first).
    buf: BytesMut,
    /// Messages (partly) in `buf`; reset when it empties. Chunks and
    /// resume queries are not counted.
    frames: usize,
    /// The chunked message being sent, a chunk at a time, each when `buf`
    /// is empty: messages sent meanwhile go between two chunks.
    transfer: Option<OutTransfer>,
    /// The newest chunked message sent while `transfer` was under way; it
    /// starts when `transfer` is done (or abandoned). A newer one replaces it.
    pending: Option<Bytes>,
    /// Id of the next transfer (random start, so a restarted node does not
    /// resume a transfer of its previous life).
    next_id: u64,
}

impl OutState {
    /// When `buf` is empty, puts the next frame of the current transfer in
    /// it (a resume query or a chunk). False when there is nothing to send.
    fn refill(&mut self, me: NodeId, chunk_size: usize) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let Some(t) = self.transfer.as_mut() else {
            return false;
        };
        let frame = match t.resume {
            Resume::Asked => return false,
            Resume::Ask => {
                t.resume = Resume::Asked;
                Frame::ChunkQuery {
                    from: me,
                    transfer: t.id,
                    total: t.bytes.len() as u64,
                }
            }
            Resume::Streaming => {
                let end = (t.next + chunk_size).min(t.bytes.len());
                let frame = Frame::PeerChunk {
                    from: me,
                    transfer: t.id,
                    total: t.bytes.len() as u64,
                    offset: t.next as u64,
                    data: t.bytes.slice(t.next..end),
                };
                t.next = end;
                if end == t.bytes.len() {
                    // The last chunk is buffered: the next transfer may start.
                    self.start_pending();
                }
                frame
            }
        };
        FrameCodec::default()
            .encode(frame, &mut self.buf)
            .expect("a chunk or query fits a frame");
        true
    }

    /// Makes the pending message the current transfer (or none).
    fn start_pending(&mut self) {
        self.transfer = self.pending.take().map(|bytes| {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            OutTransfer {
                id,
                bytes,
                next: 0,
                resume: Resume::Streaming,
            }
        });
    }

    /// A large message to send in chunks: it becomes the pending one
    /// (replacing an older pending one, returned as dropped) and starts at
    /// once when no transfer is under way.
    fn push_large(&mut self, bytes: Bytes) -> bool {
        let replaced = self.pending.replace(bytes).is_some();
        if self.transfer.is_none() {
            self.start_pending();
        }
        replaced
    }
}

impl PeerOut {
    fn lock(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops everything buffered (the connection is gone or not there),
    /// and chunked messages not yet started; a transfer under way is kept
    /// to resume when the peer is back.
    fn discard(&self) {
        let mut st = self.lock();
        let mut dropped = st.frames as u64;
        st.buf.clear();
        st.frames = 0;
        if st.pending.take().is_some() {
            dropped += 1;
        }
        if st
            .transfer
            .as_ref()
            .is_some_and(|t| t.next == 0 && t.resume == Resume::Streaming)
        {
            st.transfer = None;
            dropped += 1;
        }
        self.counters.dropped.inc_by(dropped);
    }

    /// The connection ended: what is buffered is lost (it may end
    /// mid-frame); a transfer under way asks the receiver on the next
    /// connection how much it holds, unless a newer chunked message is
    /// pending, which supersedes it (the receiver drops its partial copy
    /// when the new transfer's first chunk arrives).
    fn connection_lost(&self) {
        let mut st = self.lock();
        st.conn = None;
        let mut dropped = st.frames as u64;
        st.buf.clear();
        st.frames = 0;
        if st.pending.is_some() {
            if st.transfer.is_some() {
                dropped += 1;
            }
            st.start_pending();
        } else if let Some(t) = st.transfer.as_mut() {
            if t.next > 0 || t.resume == Resume::Asked {
                t.resume = Resume::Ask;
            }
        }
        self.counters.dropped.inc_by(dropped);
    }

    /// The receiver's answer to a resume query: continue from `offset`.
    fn resume_at(&self, transfer: u64, offset: u64) -> Result<(), &'static str> {
        let mut st = self.lock();
        match st.transfer.as_mut() {
            Some(t) if t.id == transfer && t.resume == Resume::Asked => {
                if offset > t.bytes.len() as u64 {
                    return Err("resume offset beyond the message");
                }
                t.next = offset as usize;
                t.resume = Resume::Streaming;
                if t.next == t.bytes.len() {
                    // It has it all already (its last chunk was read but
                    // the answer lost): nothing left to send.
                    st.start_pending();
                }
                drop(st);
                self.wake.notify_one();
                Ok(())
            }
            // An answer about a transfer since abandoned.
            _ => Ok(()),
        }
    }
}

impl TcpTransport {
    /// Starts one connection task per peer on the current tokio runtime.
    pub fn spawn(
        id: NodeId,
        peers: impl IntoIterator<Item = (NodeId, String)>,
        cfg: TcpConfig,
    ) -> Arc<Self> {
        Self::spawn_counted(id, peers, cfg, PeerCounterMap::new())
    }

    /// [`spawn`](Self::spawn), counting each peer's sent and dropped
    /// messages in `counters` (a peer missing from it gets counters of its
    /// own that nobody reads).
    pub fn spawn_counted(
        id: NodeId,
        peers: impl IntoIterator<Item = (NodeId, String)>,
        cfg: TcpConfig,
        counters: PeerCounterMap,
    ) -> Arc<Self> {
        let mut outs = HashMap::new();
        let mut tasks = Vec::new();
        for (peer, addr) in peers {
            if peer == id {
                continue;
            }
            let out = Arc::new(PeerOut {
                state: Mutex::new(OutState::default()),
                wake: Notify::new(),
                capacity: cfg.queue_capacity.max(1),
                counters: counters.get(&peer).cloned().unwrap_or_default(),
                me: id,
                chunk_size: cfg.chunk_size.clamp(1, MAX_FRAME_LEN - CHUNK_HEADROOM),
            });
            out.lock().next_id = rand::random();
            outs.insert(peer, out.clone());
            if cfg.dialer.is_tls() {
                tasks.push(tokio::spawn(tls_peer_loop(
                    id,
                    peer,
                    addr,
                    out,
                    cfg.clone(),
                )));
            } else {
                tasks.push(tokio::spawn(peer_loop(id, peer, addr, out, cfg.clone())));
            }
        }
        Arc::new(TcpTransport {
            id,
            peers: outs,
            tasks,
        })
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, msg: Message) {
        self.send_tagged(msg, None);
    }

    fn send_tagged(&self, msg: Message, tag: Option<MsgTag>) {
        let Some(out) = self.peers.get(&msg.to) else {
            warn!(
                from = self.id,
                to = msg.to,
                "message to an unknown peer dropped"
            );
            return;
        };
        let frame = match tag {
            Some(tag) => Frame::PeerTagged { msg, tag },
            None => Frame::Peer(msg),
        };
        let payload = match encode_payload(&frame) {
            Ok(p) => p,
            Err(e) => {
                warn!(from = self.id, "cannot send message: {e}");
                return;
            }
        };
        let mut st = out.lock();
        if payload.len() > out.chunk_size {
            if st.push_large(Bytes::from(payload)) {
                out.counters.dropped.inc();
                debug!(
                    from = self.id,
                    "chunked message superseded by a newer one before it started"
                );
            }
            out.counters.sent.inc();
            drop(st);
            out.wake.notify_one();
            return;
        }
        if st.frames >= out.capacity {
            out.counters.dropped.inc();
            debug!(from = self.id, "dropping outbound message: queue full");
            return;
        }
        let start = st.buf.len();
        // At most `chunk_size` <= MAX_FRAME_LEN bytes: the prefix fits.
        st.buf.reserve(4 + payload.len());
        st.buf.put_u32(payload.len() as u32);
        st.buf.extend_from_slice(&payload);
        st.frames += 1;
        out.counters.sent.inc();
        if start == 0 {
            if let Some(conn) = st.conn.clone() {
                // Errors other than a full socket are left to the peer's
                // task, which notices the broken connection and reconnects.
                if let Ok(n) = conn.try_write(&st.buf) {
                    st.buf.advance(n);
                }
                if st.buf.is_empty() {
                    st.frames = 0;
                    return;
                }
            }
        }
        drop(st);
        out.wake.notify_one();
    }
}

async fn peer_loop(me: NodeId, peer: NodeId, addr: String, out: Arc<PeerOut>, cfg: TcpConfig) {
    let mut backoff = cfg.backoff_min;
    loop {
        let stream =
            match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(&addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(me, peer, %addr, "connect failed: {e}; retrying in {backoff:?}");
                    wait_discarding(&out, backoff).await;
                    backoff = (backoff * 2).min(cfg.backoff_max);
                    continue;
                }
                Err(_) => {
                    debug!(me, peer, %addr, "connect timed out; retrying in {backoff:?}");
                    wait_discarding(&out, backoff).await;
                    backoff = (backoff * 2).min(cfg.backoff_max);
                    continue;
                }
            };
        let _ = stream.set_nodelay(true);
        info!(me, peer, %addr, "connected to peer");
        backoff = cfg.backoff_min;
        let (read_half, write_half) = stream.into_split();
        let conn = Arc::new(write_half);
        // Messages sent while connecting are written on this connection.
        out.lock().conn = Some(conn.clone());
        let mut replies = FramedRead::new(read_half, FrameCodec::default());
        loop {
            let buffered = out.lock().refill(out.me, out.chunk_size);
            tokio::select! {
                _ = out.wake.notified() => {}
                w = conn.writable(), if buffered => {
                    if let Err(e) = w {
                        warn!(me, peer, %addr, "connection to peer lost: {e}");
                        break;
                    }
                    if let Err(e) = write_buffered(&out, &conn) {
                        warn!(me, peer, %addr, "connection to peer lost: {e}");
                        break;
                    }
                }
                // The peer writes on this connection only to answer a
                // resume query, so anything else readable means it closed
                // (the process died). Noticing at once matters: otherwise
                // the first message after the peer restarts would be
                // written into the dead socket and lost.
                r = replies.next() => {
                    match reply(&out, r) {
                        Ok(()) => continue,
                        Err(ReplyEnd::Closed) => info!(me, peer, %addr, "peer closed the connection"),
                        Err(ReplyEnd::Failed(e)) => warn!(me, peer, %addr, "connection to peer lost: {e}"),
                    }
                    break;
                }
            }
        }
        // Whatever is buffered belongs to the dead connection (and may start
        // mid-frame): drop it; Raft resends what matters.
        out.connection_lost();
    }
}

/// Why a peer connection's read side ended it.
enum ReplyEnd {
    Closed,
    Failed(std::io::Error),
}

/// A frame the peer wrote on our outbound connection: only an answer to
/// a resume query is expected.
fn reply(out: &PeerOut, r: Option<Result<Frame, CodecError>>) -> Result<(), ReplyEnd> {
    match r {
        None => Err(ReplyEnd::Closed),
        Some(Ok(Frame::ChunkHave { transfer, offset })) => out
            .resume_at(transfer, offset)
            .map_err(|e| ReplyEnd::Failed(std::io::Error::other(e))),
        Some(Ok(_)) => Err(ReplyEnd::Failed(std::io::Error::other(
            "unexpected frame from peer",
        ))),
        Some(Err(CodecError::Io(e))) => Err(match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => ReplyEnd::Closed,
            _ => ReplyEnd::Failed(e),
        }),
        Some(Err(e)) => Err(ReplyEnd::Failed(std::io::Error::other(e.to_string()))),
    }
}

/// First and largest pause after a TLS peer refused this node (or this
/// node refused its certificate): a misconfiguration, not a restart, so
/// the node retries slowly instead of flooding both logs.
const REFUSED_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(10));

/// How a TLS session with a peer ended.
enum SessionEnd {
    /// The peer closed or died: reconnect as after a restart.
    Closed,
    /// The connection failed otherwise (typically a TLS alert: the peer
    /// refused our certificate).
    Failed(std::io::Error),
}

/// [`peer_loop`] over TLS. A TLS stream has no non-blocking write from
/// another task, so `send` only buffers (the connection stays `None` in
/// the shared state) and this task writes everything.
async fn tls_peer_loop(me: NodeId, peer: NodeId, addr: String, out: Arc<PeerOut>, cfg: TcpConfig) {
    let mut backoff = cfg.backoff_min;
    let mut refused = REFUSED_BACKOFF.0;
    loop {
        let stream = match tokio::time::timeout(cfg.connect_timeout, cfg.dialer.connect(&addr))
            .await
        {
            Ok(Ok(tokio_util::either::Either::Right(s))) => s,
            Ok(Ok(tokio_util::either::Either::Left(_))) => {
                unreachable!("a TLS dialer opens TLS connections")
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                debug!(me, peer, %addr, "connect failed: {e}; retrying in {backoff:?}");
                wait_discarding(&out, backoff).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
                continue;
            }
            Ok(Err(e)) => {
                warn!(me, peer, %addr, "TLS connection to peer failed: {e}; retrying in {refused:?}");
                wait_discarding(&out, refused).await;
                refused = (refused * 2).min(REFUSED_BACKOFF.1);
                continue;
            }
            Err(_) => {
                debug!(me, peer, %addr, "connect timed out; retrying in {backoff:?}");
                wait_discarding(&out, backoff).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
                continue;
            }
        };
        debug!(me, peer, %addr, "TLS connection to peer open");
        let opened = tokio::time::Instant::now();
        let end = tls_session(stream, &out).await;
        out.connection_lost();
        match end {
            // A connection that lasted: the peer restarted, reconnect at once.
            SessionEnd::Closed if opened.elapsed() >= REFUSED_BACKOFF.0 => {
                info!(me, peer, %addr, "peer closed the connection");
                backoff = cfg.backoff_min;
                refused = REFUSED_BACKOFF.0;
                out.discard();
            }
            // Closed at once (a refusal whose alert was lost to a reset, or
            // a peer dying again): the usual backoff, not reset, bounds the
            // reconnects.
            SessionEnd::Closed => {
                info!(me, peer, %addr, "peer closed the connection; retrying in {backoff:?}");
                wait_discarding(&out, backoff).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
            SessionEnd::Failed(e) => {
                warn!(me, peer, %addr, "connection to peer failed: {e}; retrying in {refused:?}");
                wait_discarding(&out, refused).await;
                refused = (refused * 2).min(REFUSED_BACKOFF.1);
            }
        }
    }
}

/// Writes whatever is buffered for the peer until the connection ends.
async fn tls_session(
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    out: &PeerOut,
) -> SessionEnd {
    let (read_half, mut write_half) = tokio::io::split(stream);
    let mut replies = FramedRead::new(read_half, FrameCodec::default());
    let end = |e: std::io::Error| match e.kind() {
        // Killed without a TLS close_notify: the process died.
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => SessionEnd::Closed,
        _ => SessionEnd::Failed(e),
    };
    loop {
        let chunk = {
            let mut st = out.lock();
            if !st.refill(out.me, out.chunk_size) {
                None
            } else {
                let n = st.frames;
                st.frames = 0;
                Some((st.buf.split(), n))
            }
        };
        match chunk {
            Some((bytes, n)) => {
                let written = async {
                    write_half.write_all(&bytes).await?;
                    write_half.flush().await
                };
                if let Err(e) = written.await {
                    out.counters.dropped.inc_by(n as u64);
                    return end(e);
                }
            }
            None => {
                tokio::select! {
                    _ = out.wake.notified() => {}
                    // The peer writes only answers to resume queries: else
                    // readable means closed, or an alert (it refused our
                    // certificate).
                    r = replies.next() => {
                        match reply(out, r) {
                            Ok(()) => {}
                            Err(ReplyEnd::Closed) => return SessionEnd::Closed,
                            Err(ReplyEnd::Failed(e)) => return end(e),
                        }
                    }
                }
            }
        }
    }
}

/// Writes as much of the buffer as the socket takes now.
fn write_buffered(out: &PeerOut, conn: &OwnedWriteHalf) -> std::io::Result<()> {
    let mut st = out.lock();
    while !st.buf.is_empty() {
        match conn.try_write(&st.buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => st.buf.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    st.frames = 0;
    Ok(())
}

/// Sleeps for `d` while unconnected, discarding whatever is sent meanwhile
/// (it would be stale by the time the peer is back).
async fn wait_discarding(out: &PeerOut, d: Duration) {
    out.discard();
    let deadline = tokio::time::Instant::now() + d;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = out.wake.notified() => out.discard(),
        }
    }
    out.discard();
}

/// What the server does with inbound traffic.
pub trait Inbound: Send + Sync + 'static {
    /// A Raft message from a peer, with its trace id if the sender records
    /// (must not block).
    fn peer_message(&self, msg: Message, tag: Option<MsgTag>);
    /// The node's metrics, for a [`Frame::MetricsRequest`].
    fn metrics(&self) -> NodeMetrics;
    /// Where the node stands, for a [`Frame::StatusRequest`].
    fn status(&self) -> NodeStatus;
    /// A client request; the response is written back on its connection.
    fn client_request(&self, request: ClientRequest) -> BoxFuture<'static, ClientResponse>;
}

/// Accepts connections forever, handling each on its own task.
pub async fn serve(listener: TcpListener, handler: Arc<dyn Inbound>) {
    serve_with(listener, handler, None).await
}

/// Longest a TLS handshake may take before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// [`serve`], with TLS when `tls` is given: a connection whose handshake
/// fails (no certificate, one the CA did not sign, not TLS at all) is
/// closed with a logged warning before any frame is read.
pub async fn serve_with(
    listener: TcpListener,
    handler: Arc<dyn Inbound>,
    tls: Option<TlsAcceptor>,
) {
    // Chunked transfers in progress, by sending node: shared by all
    // connections, so a transfer resumes on the connection after the one
    // that dropped.
    let chunks = Arc::new(Mutex::new(Reassembly::default()));
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let tls = tls.clone();
                let chunks = chunks.clone();
                tokio::spawn(async move {
                    let r = match tls {
                        None => {
                            let (read, write) = stream.into_split();
                            handle_connection(read, write, handler, chunks).await
                        }
                        Some(acceptor) => {
                            let stream = match tokio::time::timeout(
                                HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    warn!(%remote, "TLS handshake refused: {e}");
                                    return;
                                }
                                Err(_) => {
                                    warn!(%remote, "TLS handshake timed out");
                                    return;
                                }
                            };
                            let (read, write) = tokio::io::split(stream);
                            handle_connection(read, write, handler, chunks).await
                        }
                    };
                    match r {
                        Ok(()) => {}
                        // A TLS client that exits without close_notify:
                        // the end of its connection, not an error.
                        Err(CodecError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            debug!(%remote, "connection closed: {e}");
                        }
                        Err(e) => warn!(%remote, "closing connection: {e}"),
                    }
                });
            }
            Err(e) => {
                // Typically out of file descriptors: back off rather than spin.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection: read frames, and write each answer as soon as it is
/// ready. The connection's task polls its requests' futures itself (no task
/// per request, no writer task), so an answer is written by the task the
/// applier wakes, one hop after the commit. While an answer is being
/// written the connection reads nothing (TCP backpressure).
async fn handle_connection<R, W>(
    read: R,
    write: W,
    handler: Arc<dyn Inbound>,
    chunks: Arc<Mutex<Reassembly>>,
) -> Result<(), CodecError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = FramedRead::new(read, FrameCodec::default());
    let mut sink = FramedWrite::new(write, FrameCodec::default());
    let mut pending: FuturesUnordered<BoxFuture<'static, Frame>> = FuturesUnordered::new();
    let result = loop {
        tokio::select! {
            // Answers first: they finish work already admitted.
            biased;
            Some(first) = pending.next(), if !pending.is_empty() => {
                // Write every answer ready now, then flush once.
                let mut next = Some(first);
                while let Some(f) = next.take() {
                    sink.feed(f).await?;
                    next = pending.next().now_or_never().flatten();
                }
                sink.flush().await?;
            }
            frame = frames.next() => match frame {
                None => break Ok(()),
                Some(Err(e)) => break Err(e),
                Some(Ok(Frame::Peer(msg))) => handler.peer_message(msg, None),
                Some(Ok(Frame::PeerTagged { msg, tag })) => handler.peer_message(msg, Some(tag)),
                Some(Ok(Frame::MetricsRequest { id })) => {
                    let metrics = handler.metrics();
                    sink.send(Frame::MetricsResponse { id, metrics }).await?;
                }
                Some(Ok(Frame::StatusRequest { id })) => {
                    let status = handler.status();
                    sink.send(Frame::StatusResponse { id, status }).await?;
                }
                Some(Ok(Frame::Request { id, request })) => {
                    let fut = handler.client_request(request);
                    pending.push(async move { Frame::Response { id, response: fut.await } }.boxed());
                }
                Some(Ok(Frame::PeerChunk { from, transfer, total, offset, data })) => {
                    let done = chunks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .chunk(from, transfer, total, offset, &data);
                    match done {
                        Ok(None) => {}
                        Ok(Some(Frame::Peer(msg))) => handler.peer_message(msg, None),
                        Ok(Some(Frame::PeerTagged { msg, tag })) => {
                            handler.peer_message(msg, Some(tag))
                        }
                        Ok(Some(_)) => unreachable!("reassembly yields peer frames only"),
                        Err(e) => break Err(e.into()),
                    }
                }
                Some(Ok(Frame::ChunkQuery { from, transfer, total })) => {
                    let offset = chunks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .held(from, transfer, total);
                    sink.send(Frame::ChunkHave { transfer, offset }).await?;
                }
                Some(Ok(
                    Frame::Response { .. }
                    | Frame::MetricsResponse { .. }
                    | Frame::StatusResponse { .. }
                    | Frame::ChunkHave { .. },
                )) => {
                    break Err(CodecError::Unexpected("a response sent to a server"))
                }
            }
        }
    };
    // The client stopped sending (or sent garbage): still answer what it
    // asked before.
    while let Some(f) = pending.next().await {
        if sink.send(f).await.is_err() {
            break;
        }
    }
    result
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::message::{AppendEntries, Body, RequestVoteResponse};
    use std::time::Duration;

    fn msg(term: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            body: Body::RequestVoteResponse(RequestVoteResponse {
                term,
                granted: true,
            }),
        }
    }

    async fn next_peer_msg(
        frames: &mut FramedRead<tokio::net::TcpStream, FrameCodec>,
    ) -> Option<Message> {
        match frames.next().await {
            Some(Ok(Frame::Peer(m))) => Some(m),
            _ => None,
        }
    }

    #[tokio::test]
    async fn send_never_blocks_when_the_peer_is_unreachable() {
        // A port nobody listens on: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = TcpConfig {
            queue_capacity: 4,
            ..TcpConfig::default()
        };
        let t = TcpTransport::spawn(1, [(2, format!("127.0.0.1:{port}"))], cfg);
        for i in 0..10_000 {
            t.send(msg(i));
        }
        // An unknown destination is dropped, not a panic.
        t.send(Message { to: 9, ..msg(0) });
    }

    #[tokio::test]
    async fn a_burst_larger_than_the_socket_buffer_arrives_whole_and_in_order() {
        // More bytes than the socket takes at once: `send` writes what it
        // can, the peer's task the rest, frame boundaries intact.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cfg = TcpConfig {
            queue_capacity: 10_000,
            ..TcpConfig::default()
        };
        let t = TcpTransport::spawn(1, [(2, addr)], cfg);
        let (s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("transport connects")
            .unwrap();
        let command = vec![7u8; 32 * 1024];
        let n: u64 = 800;
        let ae = |term: u64| Message {
            from: 1,
            to: 2,
            body: Body::AppendEntries(AppendEntries {
                term,
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![crate::types::Entry {
                    term,
                    command: command.clone(),
                }],
                leader_commit: 0,
            }),
        };
        for term in 1..=n {
            t.send(ae(term));
        }
        let mut frames = FramedRead::new(s, FrameCodec::default());
        for term in 1..=n {
            let got = tokio::time::timeout(Duration::from_secs(10), next_peer_msg(&mut frames))
                .await
                .expect("every message arrives");
            assert_eq!(got, Some(ae(term)));
        }
    }

    #[tokio::test]
    async fn delivers_and_reconnects_after_the_peer_dies() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let t = TcpTransport::spawn(1, [(2, addr)], TcpConfig::default());
        t.send(msg(1));
        let (s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("transport connects")
            .unwrap();
        let mut frames = FramedRead::new(s, FrameCodec::default());
        assert_eq!(next_peer_msg(&mut frames).await, Some(msg(1)));
        // The peer "dies": its end of the connection closes.
        drop(frames);
        // The transport notices, reconnects, and later messages arrive on
        // the new connection.
        let (s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("transport reconnects")
            .unwrap();
        let mut frames = FramedRead::new(s, FrameCodec::default());
        t.send(msg(2));
        let got = tokio::time::timeout(Duration::from_secs(10), next_peer_msg(&mut frames))
            .await
            .expect("message after reconnect");
        assert_eq!(got, Some(msg(2)));
    }

    /// Collects the peer messages a server hands to its node.
    struct Collect(tokio::sync::mpsc::UnboundedSender<(Message, Option<MsgTag>)>);

    impl Inbound for Collect {
        fn peer_message(&self, msg: Message, tag: Option<MsgTag>) {
            let _ = self.0.send((msg, tag));
        }
        fn metrics(&self) -> NodeMetrics {
            unreachable!("no metrics requests in these tests")
        }
        fn status(&self) -> NodeStatus {
            unreachable!("no status requests in these tests")
        }
        fn client_request(&self, _: ClientRequest) -> BoxFuture<'static, ClientResponse> {
            unreachable!("no client requests in these tests")
        }
    }

    type Inbox = tokio::sync::mpsc::UnboundedReceiver<(Message, Option<MsgTag>)>;

    /// A server for node 2 on a fresh port (TLS when `tls` names the
    /// certificates' directory): its address and what it receives.
    async fn server(tls: Option<&std::path::Path>) -> (String, Inbox) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let acceptor = tls.map(|d| crate::tls::node_tls(d, 2).unwrap().acceptor);
        tokio::spawn(serve_with(listener, Arc::new(Collect(tx)), acceptor));
        (addr, rx)
    }

    const CHUNK: usize = 64 * 1024;

    fn chunked_cfg(tls: Option<&std::path::Path>) -> TcpConfig {
        TcpConfig {
            chunk_size: CHUNK,
            dialer: match tls {
                Some(d) => crate::tls::node_tls(d, 1).unwrap().dialer,
                None => Dialer::plain(),
            },
            ..TcpConfig::default()
        }
    }

    fn certs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        crate::tls::generate(dir.path(), &[1, 2], &["127.0.0.1".into()]).unwrap();
        dir
    }

    /// An AppendEntries of about `mib` MiB (20 commands of `mib`/20 MiB).
    fn big(term: u64, mib: usize) -> Message {
        let len = mib * 1024 * 1024 / 20;
        Message {
            from: 1,
            to: 2,
            body: Body::AppendEntries(AppendEntries {
                term,
                prev_log_index: 0,
                prev_log_term: 0,
                entries: (0..20u64)
                    .map(|i| crate::types::Entry {
                        term,
                        command: (0..len).map(|j| (j as u64 ^ i ^ term) as u8).collect(),
                    })
                    .collect(),
                leader_commit: 0,
            }),
        }
    }

    fn tag(seq: u64) -> MsgTag {
        MsgTag { node: 1, seq, k: 0 }
    }

    async fn recv(inbox: &mut Inbox) -> (Message, Option<MsgTag>) {
        tokio::time::timeout(Duration::from_secs(60), inbox.recv())
            .await
            .expect("message arrives")
            .expect("server runs")
    }

    async fn large_message_arrives_whole(tls: Option<&std::path::Path>) {
        let (addr, mut inbox) = server(tls).await;
        let t = TcpTransport::spawn(1, [(2, addr)], chunked_cfg(tls));
        let large = big(5, 20);
        t.send(msg(1));
        t.send_tagged(large.clone(), Some(tag(7)));
        for term in 2..=50 {
            t.send(msg(term));
        }
        let mut small = Vec::new();
        loop {
            let (m, tg) = recv(&mut inbox).await;
            if matches!(m.body, Body::AppendEntries(_)) {
                assert!(m == large, "the large message arrives equal");
                assert_eq!(tg, Some(tag(7)), "its tag survives chunking");
                break;
            }
            small.push(m);
        }
        while small.len() < 50 {
            small.push(recv(&mut inbox).await.0);
        }
        // The small ones keep their order among themselves.
        assert_eq!(small, (1..=50).map(msg).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_20_mib_message_arrives_whole_in_64_kib_chunks() {
        large_message_arrives_whole(None).await;
    }

    #[tokio::test]
    async fn a_20_mib_message_arrives_whole_in_64_kib_chunks_over_tls() {
        let dir = certs();
        large_message_arrives_whole(Some(dir.path())).await;
    }

    /// Accepts the transport's next connection (read and write halves).
    async fn accept(
        listener: &TcpListener,
    ) -> (
        FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
        FramedWrite<OwnedWriteHalf, FrameCodec>,
    ) {
        let (s, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("transport connects")
            .unwrap();
        let (r, w) = s.into_split();
        (
            FramedRead::new(r, FrameCodec::default()),
            FramedWrite::new(w, FrameCodec::default()),
        )
    }

    async fn next_frame(
        frames: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
    ) -> Frame {
        tokio::time::timeout(Duration::from_secs(60), frames.next())
            .await
            .expect("frame arrives")
            .expect("connection open")
            .expect("frame decodes")
    }

    #[tokio::test]
    async fn small_messages_sent_during_a_transfer_go_between_its_chunks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let t = TcpTransport::spawn(1, [(2, addr)], chunked_cfg(None));
        let (mut frames, _w) = accept(&listener).await;
        let large = big(5, 20);
        t.send(large.clone());
        let mut r = Reassembly::default();
        match next_frame(&mut frames).await {
            Frame::PeerChunk {
                from,
                transfer,
                total,
                offset: 0,
                data,
            } => assert_eq!(r.chunk(from, transfer, total, 0, &data).unwrap(), None),
            f => panic!("unexpected frame {f:?}"),
        }
        // The transfer is under way (at most the socket buffers' worth of
        // its 20 MiB written): these go between two of its chunks.
        for term in 1..=10 {
            t.send(msg(term));
        }
        let mut small = Vec::new();
        let mut chunks = 1;
        let whole = loop {
            match next_frame(&mut frames).await {
                Frame::Peer(m) => small.push(m),
                Frame::PeerChunk {
                    from,
                    transfer,
                    total,
                    offset,
                    data,
                } => {
                    assert!(data.len() <= CHUNK);
                    chunks += 1;
                    if let Some(f) = r.chunk(from, transfer, total, offset, &data).unwrap() {
                        break f;
                    }
                }
                f => panic!("unexpected frame {f:?}"),
            }
        };
        assert_eq!(whole, Frame::Peer(large));
        assert!(chunks > 300, "20 MiB in 64 KiB chunks");
        assert_eq!(
            small,
            (1..=10).map(msg).collect::<Vec<_>>(),
            "all small messages arrive before the last chunk"
        );
    }

    #[tokio::test]
    async fn a_transfer_cut_mid_way_resumes_from_what_the_receiver_holds() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let t = TcpTransport::spawn(1, [(2, addr)], chunked_cfg(None));
        let large = big(5, 20);
        t.send_tagged(large.clone(), Some(tag(3)));
        let mut r = Reassembly::default();
        // First connection: take 40 chunks, then cut it.
        let (mut frames, w) = accept(&listener).await;
        let (mut id, mut size) = (0, 0);
        for _ in 0..40 {
            match next_frame(&mut frames).await {
                Frame::PeerChunk {
                    from,
                    transfer,
                    total,
                    offset,
                    data,
                } => {
                    assert_eq!(r.chunk(from, transfer, total, offset, &data).unwrap(), None);
                    (id, size) = (transfer, total);
                }
                f => panic!("unexpected frame {f:?}"),
            }
        }
        let held = r.held(1, id, size);
        assert_eq!(held, 40 * CHUNK as u64);
        drop((frames, w));
        // Second connection: the sender asks, then sends the rest only.
        let (mut frames, mut w) = accept(&listener).await;
        assert_eq!(
            next_frame(&mut frames).await,
            Frame::ChunkQuery {
                from: 1,
                transfer: id,
                total: size
            }
        );
        w.send(Frame::ChunkHave {
            transfer: id,
            offset: held,
        })
        .await
        .unwrap();
        let mut resent = 0u64;
        let whole = loop {
            match next_frame(&mut frames).await {
                Frame::PeerChunk {
                    from,
                    transfer,
                    total,
                    offset,
                    data,
                } => {
                    resent += data.len() as u64;
                    if let Some(f) = r.chunk(from, transfer, total, offset, &data).unwrap() {
                        break f;
                    }
                }
                f => panic!("unexpected frame {f:?}"),
            }
        };
        assert_eq!(
            whole,
            Frame::PeerTagged {
                msg: large,
                tag: tag(3)
            }
        );
        assert_eq!(
            resent,
            size - held,
            "only what the receiver lacked is sent again"
        );
    }

    /// Forwards connections from the transport to `to`: the first one cut
    /// after `cut` bytes from the transport, later ones whole, counting
    /// what they carry from the transport.
    async fn cutting_proxy(to: String, cut: u64) -> (String, Arc<std::sync::atomic::AtomicU64>) {
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let later = Arc::new(AtomicU64::new(0));
        let counted = later.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let (a, _) = listener.accept().await.unwrap();
                let b = TcpStream::connect(&to).await.unwrap();
                let (mut ar, mut aw) = a.into_split();
                let (mut br, mut bw) = b.into_split();
                let limit = if first { cut } else { u64::MAX };
                first = false;
                let counted = counted.clone();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut br, &mut aw).await;
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut carried = 0u64;
                    while carried < limit {
                        let want = buf.len().min((limit - carried) as usize);
                        let n = match tokio::io::AsyncReadExt::read(&mut ar, &mut buf[..want]).await
                        {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if bw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        carried += n as u64;
                        if limit == u64::MAX {
                            counted.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    }
                    // Cut: both directions of both connections close.
                });
            }
        });
        (addr, later)
    }

    async fn cut_transfer_resumes(tls: Option<&std::path::Path>) {
        let (server_addr, mut inbox) = server(tls).await;
        let cut = 8 * 1024 * 1024;
        let (addr, later) = cutting_proxy(server_addr, cut).await;
        let t = TcpTransport::spawn(1, [(2, addr)], chunked_cfg(tls));
        let large = big(5, 20);
        let size = encode_payload(&Frame::Peer(large.clone())).unwrap().len() as u64;
        t.send(large.clone());
        let (m, tg) = recv(&mut inbox).await;
        assert!(m == large, "the large message arrives equal");
        assert_eq!(tg, None);
        let resent = later.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            resent < size - cut / 2,
            "after the cut the sender resumed: {resent} bytes resent of {size}"
        );
    }

    #[tokio::test]
    async fn a_cut_connection_resumes_the_transfer_end_to_end() {
        cut_transfer_resumes(None).await;
    }

    #[tokio::test]
    async fn a_cut_connection_resumes_the_transfer_end_to_end_over_tls() {
        let dir = certs();
        cut_transfer_resumes(Some(dir.path())).await;
    }

    #[tokio::test]
    async fn a_newer_chunked_message_replaces_a_pending_one() {
        let (addr, mut inbox) = server(None).await;
        let counters = PeerCounters::default();
        let t = TcpTransport::spawn_counted(
            1,
            [(2, addr)],
            chunked_cfg(None),
            [(2, counters.clone())].into_iter().collect(),
        );
        // In one go (no await): the first starts, the second waits, the
        // third replaces the second.
        t.send(big(1, 2));
        t.send(big(2, 2));
        t.send(big(3, 2));
        t.send(msg(9));
        assert_eq!(counters.dropped.get(), 1);
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(recv(&mut inbox).await.0.body.term());
        }
        got.sort();
        assert_eq!(got, vec![1, 3, 9]);
    }
}
