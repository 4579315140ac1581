//! The wire format shared by peer and client traffic.
//!
//! Every TCP connection carries a sequence of frames: a 4-byte big-endian
//! length followed by that many bytes of a postcard-encoded [`Frame`]. One
//! address per node serves both kinds of traffic; the [`Frame`] variant says
//! which one a frame belongs to. A frame longer than [`MAX_FRAME_LEN`], or
//! one that does not decode, is an error that closes the connection: input
//! from the network never panics the node.

use crate::message::{Message, MsgTag};
use crate::types::NodeId;
use bytes::{Buf, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Largest frame accepted or sent, in bytes (payload, without the 4-byte
/// length prefix). A full AppendEntries batch (MAX_BATCH = 1024 entries of at
/// most [`MAX_KV_BYTES`] each) fits.
pub const MAX_FRAME_LEN: usize = 80 * 1024 * 1024;

/// Largest key + value a client may write, in bytes.
pub const MAX_KV_BYTES: usize = 64 * 1024;

/// One frame on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// A Raft message between nodes.
    Peer(Message),
    /// A client request; `id` is chosen by the client and echoed in the response.
    Request { id: u64, request: ClientRequest },
    /// The answer to the request with the same `id`.
    Response { id: u64, response: ClientResponse },
    /// A Raft message with its trace id (the sender records its steps).
    PeerTagged { msg: Message, tag: MsgTag },
    /// A client asks the node for its metrics.
    MetricsRequest { id: u64 },
    /// The answer to the [`Frame::MetricsRequest`] with the same `id`.
    MetricsResponse { id: u64, metrics: NodeMetrics },
    /// A client asks the node where it stands (`raftkv status`).
    StatusRequest { id: u64 },
    /// The answer to the [`Frame::StatusRequest`] with the same `id`.
    StatusResponse { id: u64, status: NodeStatus },
    /// Bytes `offset..offset + data.len()` of a peer frame ([`Frame::Peer`]
    /// or [`Frame::PeerTagged`]) whose encoding of `total` bytes is larger
    /// than the sender's chunk size (node -> node). `transfer` names the
    /// frame being sent; `from` is the sending node, whose receiver holds
    /// at most one partial transfer ([`Reassembly`]).
    PeerChunk {
        from: NodeId,
        transfer: u64,
        total: u64,
        offset: u64,
        data: Bytes,
    },
    /// Sent on a new connection before resuming `transfer` (node -> node):
    /// how many of its bytes does the receiver hold?
    ChunkQuery {
        from: NodeId,
        transfer: u64,
        total: u64,
    },
    /// The answer to a [`Frame::ChunkQuery`] (receiver -> sender, on the
    /// same connection): the receiver holds `transfer`'s first `offset`
    /// bytes (0 when it holds none of it).
    ChunkHave { transfer: u64, offset: u64 },
}

/// Largest peer frame sent in chunks, in bytes (the whole encoded message):
/// a receiver refuses a [`Frame::PeerChunk`] announcing more.
pub const MAX_MESSAGE_LEN: u64 = 4 * 1024 * 1024 * 1024;

/// Where a node stands ([`Frame::StatusRequest`]); read from the node's
/// published state without stopping it, so the fields are each current but
/// not one atomic snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub role: crate::types::Role,
    pub term: u64,
    /// The leader this node knows of (itself when leader).
    pub leader: Option<NodeId>,
    pub commit_index: u64,
    pub last_index: u64,
    /// The highest index the node's KV store has applied.
    pub applied_index: u64,
    /// The index of the node's durable snapshot (0: none yet).
    pub snapshot_index: u64,
    /// Bytes of log on the node's disk.
    pub log_bytes: u64,
}

/// What a node reports about itself ([`Frame::MetricsRequest`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMetrics {
    pub node: NodeId,
    /// The node's fsync latencies since it started, in microseconds, as
    /// `(value, count)` pairs of its histogram (see [`NodeMetrics::fsync_histogram`]).
    pub fsync_us: Vec<(u64, u64)>,
}

impl NodeMetrics {
    /// The fsync latency histogram (microseconds) these metrics carry.
    pub fn fsync_histogram(&self) -> hdrhistogram::Histogram<u64> {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("valid histogram precision");
        for &(v, n) in &self.fsync_us {
            h.saturating_record_n(v, n);
        }
        h
    }
}

/// What a client asks a node to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The client's session: the log index of its `RegisterClient`
    /// (kv/session.rs). Reads and `RegisterClient` ignore it.
    pub client_id: u64,
    /// Per-client sequence number of writes, starting at 1; a retried write
    /// carries the same number and is applied at most once. Reads carry 0.
    pub seq: u64,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: String,
        value: String,
    },
    Append {
        key: String,
        value: String,
    },
    Get {
        key: String,
    },
    /// Opens a client session; answered with [`ClientResponse::Registered`].
    /// Appended last: older log commands decode unchanged.
    RegisterClient,
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Append { key, .. } | Op::Get { key } => key,
            Op::RegisterClient => "",
        }
    }

    /// A write of a session: carries a sequence number, applies once.
    pub fn is_write(&self) -> bool {
        matches!(self, Op::Put { .. } | Op::Append { .. })
    }

    /// Bytes of key and value, checked against [`MAX_KV_BYTES`].
    pub fn payload_len(&self) -> usize {
        match self {
            Op::Put { key, value } | Op::Append { key, value } => key.len() + value.len(),
            Op::Get { key } => key.len(),
            Op::RegisterClient => 0,
        }
    }
}

/// A node's answer to a [`ClientRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResponse {
    /// The operation took effect (writes) or read this value (Get; `None`
    /// when the key does not exist). Writes answer `value: None`.
    Ok { value: Option<String> },
    /// This node is not the leader (or lost leadership while the request was
    /// pending). The hint, when known, names the leader and its address.
    NotLeader {
        leader_hint: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// The request failed on this node; retrying it (with the same sequence
    /// number) is safe.
    Retry { reason: String },
    /// The request is invalid and retrying will not help.
    Invalid { reason: String },
    /// A `RegisterClient` applied: the new session's id.
    /// Appended last: the encoding of the other answers is unchanged.
    Registered { client_id: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("unexpected frame: {0}")]
    Unexpected(&'static str),
    #[error("bad chunk: {0}")]
    Chunk(#[from] ChunkError),
}

/// Encodes and decodes [`Frame`]s with a 4-byte length prefix and a size limit.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    max: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::with_max_len(MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    pub fn with_max_len(max: usize) -> Self {
        let inner = LengthDelimitedCodec::builder()
            .length_field_length(4)
            .max_frame_length(max)
            .new_codec();
        FrameCodec { inner, max }
    }
}

/// Serializes a frame to its payload bytes (without the length prefix).
pub fn encode_payload(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    Ok(postcard::to_stdvec(frame)?)
}

/// Decodes a payload (without the length prefix); trailing bytes are an error.
pub fn decode_payload(bytes: &[u8]) -> Result<Frame, CodecError> {
    let (frame, rest) = postcard::take_from_bytes::<Frame>(bytes)?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed(
            postcard::Error::DeserializeBadEncoding,
        ));
    }
    Ok(frame)
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        // The length prefix stays in `src` until the whole frame is there, so
        // it is always read from the start of `src` (LengthDelimitedCodec
        // consumes it early, and reports an oversized one as a generic
        // InvalidData i/o error).
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max {
            return Err(CodecError::Oversized { len, max: self.max });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let payload = src.split_to(len);
        decode_payload(&payload).map(Some)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let payload = encode_payload(&frame)?;
        if payload.len() > self.max {
            return Err(CodecError::Oversized {
                len: payload.len(),
                max: self.max,
            });
        }
        self.inner.encode(Bytes::from(payload), dst)?;
        Ok(())
    }
}

/// A transfer a node holds part of.
#[derive(Debug)]
struct Partial {
    transfer: u64,
    total: u64,
    data: Vec<u8>,
}

/// Why a chunk was refused; the connection it came on is closed and the
/// sender's partial transfer discarded.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunked message of {total} bytes exceeds the limit of {max} bytes")]
    Oversized { total: u64, max: u64 },
    #[error("chunk at offset {offset} of transfer {transfer}, which is not held (held: {held:?})")]
    UnknownTransfer {
        transfer: u64,
        offset: u64,
        held: Option<u64>,
    },
    #[error("chunk of transfer {transfer} at offset {offset}, beyond the {held} bytes held")]
    Gap {
        transfer: u64,
        offset: u64,
        held: u64,
    },
    #[error("chunk of transfer {transfer} announces {total} bytes, {expected} before")]
    TotalMismatch {
        transfer: u64,
        total: u64,
        expected: u64,
    },
    #[error("chunk of transfer {transfer} ends at {end}, beyond its {total} bytes")]
    Overrun { transfer: u64, end: u64, total: u64 },
    #[error("empty chunk of transfer {transfer}")]
    Empty { transfer: u64 },
    #[error("reassembled transfer {transfer} is not a peer message: {reason}")]
    NotAPeerMessage { transfer: u64, reason: String },
}

/// The receiving side of chunked transfers: per sending node, at most one
/// partial transfer (a chunk at offset 0 of a new transfer replaces it), so
/// a node holds at most one [`MAX_MESSAGE_LEN`]-bounded buffer per peer.
/// Shared by all connections of a node, so a transfer survives the
/// connection it started on.
#[derive(Debug)]
pub struct Reassembly {
    partials: HashMap<NodeId, Partial>,
    max_total: u64,
}

impl Default for Reassembly {
    fn default() -> Self {
        Self::with_max_total(MAX_MESSAGE_LEN)
    }
}

impl Reassembly {
    /// Refusing transfers of more than `max_total` bytes.
    pub fn with_max_total(max_total: u64) -> Self {
        Reassembly {
            partials: HashMap::new(),
            max_total,
        }
    }

    /// How many of `transfer`'s bytes are held from `from` (the answer to
    /// a [`Frame::ChunkQuery`]): 0 unless that very transfer is partly held.
    pub fn held(&self, from: NodeId, transfer: u64, total: u64) -> u64 {
        match self.partials.get(&from) {
            Some(p) if p.transfer == transfer && p.total == total => p.data.len() as u64,
            _ => 0,
        }
    }

    /// Partial transfers held, over all senders.
    pub fn partials(&self) -> usize {
        self.partials.len()
    }

    /// Bytes held in partial transfers, over all senders.
    pub fn held_bytes(&self) -> usize {
        self.partials.values().map(|p| p.data.len()).sum()
    }

    /// Drops what is held from `from`.
    pub fn discard(&mut self, from: NodeId) {
        self.partials.remove(&from);
    }

    /// Takes one [`Frame::PeerChunk`]. A chunk at offset 0 starts a
    /// transfer (replacing the one held from `from`); a later one must
    /// continue the held transfer at or before the bytes held (an earlier
    /// offset rewinds: the bytes after it are replaced). Returns the whole
    /// peer frame once its last byte arrived and it decodes as
    /// [`Frame::Peer`] or [`Frame::PeerTagged`]. Any error discards what is
    /// held from `from`.
    pub fn chunk(
        &mut self,
        from: NodeId,
        transfer: u64,
        total: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<Option<Frame>, ChunkError> {
        let r = self.take(from, transfer, total, offset, data);
        if r.is_err() {
            self.partials.remove(&from);
        }
        r
    }

    fn take(
        &mut self,
        from: NodeId,
        transfer: u64,
        total: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<Option<Frame>, ChunkError> {
        if total > self.max_total {
            return Err(ChunkError::Oversized {
                total,
                max: self.max_total,
            });
        }
        if data.is_empty() {
            return Err(ChunkError::Empty { transfer });
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > total {
            return Err(ChunkError::Overrun {
                transfer,
                end,
                total,
            });
        }
        let held = self.partials.get(&from).filter(|p| p.transfer == transfer);
        match held {
            None if offset == 0 => {
                // A new transfer replaces whatever was held from `from`. The
                // buffer grows with what arrives, not with what is announced.
                self.partials.insert(
                    from,
                    Partial {
                        transfer,
                        total,
                        data: Vec::new(),
                    },
                );
            }
            None => {
                return Err(ChunkError::UnknownTransfer {
                    transfer,
                    offset,
                    held: self.partials.get(&from).map(|p| p.transfer),
                })
            }
            Some(p) if p.total != total => {
                return Err(ChunkError::TotalMismatch {
                    transfer,
                    total,
                    expected: p.total,
                })
            }
            Some(p) if offset > p.data.len() as u64 => {
                return Err(ChunkError::Gap {
                    transfer,
                    offset,
                    held: p.data.len() as u64,
                })
            }
            Some(_) => {}
        }
        let p = self
            .partials
            .get_mut(&from)
            .expect("inserted or held above");
        p.data.truncate(offset as usize);
        p.data.extend_from_slice(data);
        if (p.data.len() as u64) < total {
            return Ok(None);
        }
        let p = self.partials.remove(&from).expect("held above");
        match decode_payload(&p.data) {
            Ok(f @ (Frame::Peer(_) | Frame::PeerTagged { .. })) => Ok(Some(f)),
            Ok(_) => Err(ChunkError::NotAPeerMessage {
                transfer,
                reason: "another kind of frame".into(),
            }),
            Err(e) => Err(ChunkError::NotAPeerMessage {
                transfer,
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, RequestVote};

    fn roundtrip(frame: Frame) {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(frame.clone(), &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }

    #[test]
    fn frames_roundtrip() {
        roundtrip(Frame::Peer(Message {
            from: 1,
            to: 2,
            body: Body::RequestVote(RequestVote {
                term: 3,
                last_log_index: 4,
                last_log_term: 2,
            }),
        }));
        roundtrip(Frame::Request {
            id: 7,
            request: ClientRequest {
                client_id: 9,
                seq: 1,
                op: Op::Append {
                    key: "k".into(),
                    value: "v".into(),
                },
            },
        });
        roundtrip(Frame::Response {
            id: 7,
            response: ClientResponse::NotLeader {
                leader_hint: Some(2),
                leader_addr: Some("127.0.0.1:7002".into()),
            },
        });
    }

    #[test]
    fn oversized_frame_is_rejected_before_buffering_it() {
        let mut codec = FrameCodec::with_max_len(16);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 17][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Oversized { len: 17, max: 16 })
        ));
    }

    #[test]
    fn status_frames_roundtrip_and_malformed_ones_are_errors() {
        let status = NodeStatus {
            node: 2,
            role: crate::types::Role::Leader,
            term: 5,
            leader: Some(2),
            commit_index: 10,
            last_index: 11,
            applied_index: 9,
            snapshot_index: 0,
            log_bytes: 0,
        };
        roundtrip(Frame::StatusRequest { id: 3 });
        roundtrip(Frame::StatusResponse {
            id: 3,
            status: status.clone(),
        });
        let full = encode_payload(&Frame::StatusResponse { id: 3, status }).unwrap();
        // Every truncation of a valid status response is malformed, not a panic.
        for cut in 0..full.len() {
            assert!(
                matches!(decode_payload(&full[..cut]), Err(CodecError::Malformed(_))),
                "cut at {cut}"
            );
        }
        // A trailing byte is malformed too.
        let mut long = full.clone();
        long.push(0);
        assert!(matches!(
            decode_payload(&long),
            Err(CodecError::Malformed(_))
        ));
        // A role outside the enum is malformed.
        let mut bad_role = encode_payload(&Frame::StatusResponse {
            id: 3,
            status: NodeStatus {
                node: 2,
                role: crate::types::Role::Follower,
                term: 0,
                leader: None,
                commit_index: 0,
                last_index: 0,
                applied_index: 0,
                snapshot_index: 0,
                log_bytes: 0,
            },
        })
        .unwrap();
        // variant tag, id, node, then the role's tag.
        bad_role[3] = 0x7f;
        assert!(matches!(
            decode_payload(&bad_role),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_payload_is_malformed() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 0xff, 0xff][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::Malformed(_))
        ));
    }

    fn big_frame(n: usize) -> (Frame, Vec<u8>) {
        let frame = Frame::PeerTagged {
            msg: Message {
                from: 1,
                to: 2,
                body: Body::AppendEntries(crate::message::AppendEntries {
                    term: 3,
                    prev_log_index: 0,
                    prev_log_term: 0,
                    entries: vec![crate::types::Entry {
                        term: 3,
                        command: (0..n).map(|i| i as u8).collect(),
                    }],
                    leader_commit: 0,
                }),
            },
            tag: MsgTag {
                node: 1,
                seq: 9,
                k: 2,
            },
        };
        let bytes = encode_payload(&frame).unwrap();
        (frame, bytes)
    }

    #[test]
    fn chunk_frames_roundtrip() {
        roundtrip(Frame::PeerChunk {
            from: 1,
            transfer: u64::MAX,
            total: 10,
            offset: 3,
            data: Bytes::from_static(b"abc"),
        });
        roundtrip(Frame::ChunkQuery {
            from: 1,
            transfer: 5,
            total: 10,
        });
        roundtrip(Frame::ChunkHave {
            transfer: 5,
            offset: 7,
        });
    }

    #[test]
    fn chunks_reassemble_the_tagged_frame_and_a_rewind_replaces_bytes() {
        let (frame, bytes) = big_frame(1000);
        let mut r = Reassembly::default();
        let mut got = None;
        for (i, c) in bytes.chunks(100).enumerate() {
            assert_eq!(r.held(1, 7, bytes.len() as u64), (i * 100) as u64);
            got = r
                .chunk(1, 7, bytes.len() as u64, (i * 100) as u64, c)
                .unwrap();
            // A resent chunk (rewind to its own offset) is taken again.
            if got.is_none() && i == 3 {
                assert_eq!(r.chunk(1, 7, bytes.len() as u64, 300, c).unwrap(), None);
                assert_eq!(r.held(1, 7, bytes.len() as u64), 400);
            }
        }
        assert_eq!(got, Some(frame));
        assert_eq!(r.partials(), 0);
        assert_eq!(r.held(1, 7, bytes.len() as u64), 0);
    }

    #[test]
    fn malformed_chunk_sequences_are_refused_and_discard_the_partial() {
        let (_, bytes) = big_frame(1000);
        let total = bytes.len() as u64;
        let started = || {
            let mut r = Reassembly::default();
            assert_eq!(r.chunk(1, 7, total, 0, &bytes[..100]).unwrap(), None);
            r
        };
        type Step<'a> = Box<dyn Fn(&mut Reassembly) -> Result<Option<Frame>, ChunkError> + 'a>;
        let cases: Vec<(Step, &str)> = vec![
            (
                Box::new(|r| r.chunk(1, 7, total, 200, &bytes[200..300])),
                "gap",
            ),
            (
                Box::new(|r| r.chunk(1, 8, total, 100, &bytes[100..200])),
                "unknown transfer",
            ),
            (
                Box::new(|r| r.chunk(1, 7, total + 1, 100, &bytes[100..200])),
                "total mismatch",
            ),
            (
                Box::new(|r| r.chunk(1, 7, total, total - 10, &bytes[..100])),
                "overrun",
            ),
            (
                Box::new(|r| r.chunk(1, 7, total, u64::MAX, &bytes[..100])),
                "offset overflow",
            ),
            (Box::new(|r| r.chunk(1, 7, total, 100, &[])), "empty"),
            (
                Box::new(|r| r.chunk(1, 7, MAX_MESSAGE_LEN + 1, 100, &bytes[100..200])),
                "oversized",
            ),
        ];
        for (case, name) in cases {
            let mut r = started();
            assert!(case(&mut r).is_err(), "{name}");
            assert_eq!(r.partials(), 0, "{name}: partial discarded");
            assert_eq!(r.held(1, 7, total), 0, "{name}");
        }
        // A chunk that is not at offset 0 of a transfer never started.
        let mut r = Reassembly::default();
        assert!(matches!(
            r.chunk(1, 7, total, 100, &bytes[100..200]),
            Err(ChunkError::UnknownTransfer { .. })
        ));
        // A limit of the receiver's own.
        let mut r = Reassembly::with_max_total(total - 1);
        assert!(matches!(
            r.chunk(1, 7, total, 0, &bytes[..100]),
            Err(ChunkError::Oversized { .. })
        ));
        assert_eq!(r.partials(), 0);
    }

    #[test]
    fn reassembled_bytes_that_are_not_a_peer_message_are_refused() {
        let mut r = Reassembly::default();
        let status = encode_payload(&Frame::StatusRequest { id: 3 }).unwrap();
        assert!(matches!(
            r.chunk(1, 1, status.len() as u64, 0, &status),
            Err(ChunkError::NotAPeerMessage { .. })
        ));
        let (_, mut bytes) = big_frame(100);
        bytes.push(0); // trailing byte
        assert!(matches!(
            r.chunk(1, 2, bytes.len() as u64, 0, &bytes),
            Err(ChunkError::NotAPeerMessage { .. })
        ));
        assert!(matches!(
            r.chunk(1, 3, 4, 0, &[0xff; 4]),
            Err(ChunkError::NotAPeerMessage { .. })
        ));
        assert_eq!(r.partials(), 0);
    }

    #[test]
    fn at_most_one_partial_transfer_per_peer() {
        let (_, bytes) = big_frame(1000);
        let total = bytes.len() as u64;
        let mut r = Reassembly::default();
        r.chunk(1, 7, total, 0, &bytes[..500]).unwrap();
        // A new transfer from the same peer replaces the partial one.
        r.chunk(1, 8, total, 0, &bytes[..100]).unwrap();
        assert_eq!(r.partials(), 1);
        assert_eq!(r.held_bytes(), 100);
        assert_eq!(r.held(1, 7, total), 0);
        assert_eq!(r.held(1, 8, total), 100);
        // The replaced one cannot continue.
        assert!(r.chunk(1, 7, total, 500, &bytes[500..600]).is_err());
        assert_eq!(r.partials(), 0);
        // Another peer has its own.
        r.chunk(1, 9, total, 0, &bytes[..100]).unwrap();
        r.chunk(3, 9, total, 0, &bytes[..200]).unwrap();
        assert_eq!(r.partials(), 2);
        assert_eq!(r.held_bytes(), 300);
        r.discard(3);
        assert_eq!(r.partials(), 1);
    }

    #[test]
    fn a_frame_arriving_in_pieces_is_decoded_whole() {
        // A chunk frame's payload starts with bytes that, read as a length,
        // exceed the limit: the decoder must never read the payload as a
        // length prefix while it waits for the rest of the frame.
        let frame = Frame::PeerChunk {
            from: 1,
            transfer: 0xa4b3_0000_0000,
            total: 100_000,
            offset: 0,
            data: Bytes::from(vec![5u8; 50_000]),
        };
        let mut whole = BytesMut::new();
        FrameCodec::default()
            .encode(frame.clone(), &mut whole)
            .unwrap();
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut got = None;
        for piece in whole.chunks(1000) {
            assert!(got.is_none());
            buf.extend_from_slice(piece);
            got = codec.decode(&mut buf).unwrap();
        }
        assert_eq!(got, Some(frame));
        assert!(buf.is_empty());
    }
}
