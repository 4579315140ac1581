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
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
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
}

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
        // Check the announced length ourselves so the error says what happened
        // (LengthDelimitedCodec reports it as a generic InvalidData i/o error).
        if src.len() >= 4 {
            let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
            if len > self.max {
                return Err(CodecError::Oversized { len, max: self.max });
            }
        }
        match self.inner.decode(src)? {
            Some(payload) => decode_payload(&payload).map(Some),
            None => Ok(None),
        }
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
}
