//! Properties of the wire codec: frames round-trip, arbitrary bytes never
//! panic the decoder, oversized frames are rejected.

use bytes::BytesMut;
use proptest::prelude::*;
use raftkv::codec::{ClientRequest, ClientResponse, CodecError, Frame, FrameCodec, Op};
use raftkv::message::{
    AppendEntries, AppendEntriesResponse, Body, Message, RequestVote, RequestVoteResponse,
};
use raftkv::types::Entry;
use tokio_util::codec::{Decoder, Encoder};

fn entry() -> impl Strategy<Value = Entry> {
    (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(term, command)| Entry { term, command })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, i, t)| Body::RequestVote(
            RequestVote {
                term,
                last_log_index: i,
                last_log_term: t
            }
        )),
        (any::<u64>(), any::<bool>()).prop_map(|(term, granted)| Body::RequestVoteResponse(
            RequestVoteResponse { term, granted }
        )),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(entry(), 0..8),
            any::<u64>()
        )
            .prop_map(
                |(term, pi, pt, entries, lc)| Body::AppendEntries(AppendEntries {
                    term,
                    prev_log_index: pi,
                    prev_log_term: pt,
                    entries,
                    leader_commit: lc
                })
            ),
        (any::<u64>(), any::<bool>(), any::<u64>(), any::<u64>()).prop_map(
            |(term, success, index, conflict_index)| Body::AppendEntriesResponse(
                AppendEntriesResponse {
                    term,
                    success,
                    index,
                    conflict_index
                }
            )
        ),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (".{0,16}", ".{0,32}").prop_map(|(key, value)| Op::Put { key, value }),
        (".{0,16}", ".{0,32}").prop_map(|(key, value)| Op::Append { key, value }),
        ".{0,16}".prop_map(|key| Op::Get { key }),
        Just(Op::RegisterClient),
    ]
}

fn response() -> impl Strategy<Value = ClientResponse> {
    prop_oneof![
        proptest::option::of(".{0,32}").prop_map(|value| ClientResponse::Ok { value }),
        (
            proptest::option::of(1..10u64),
            proptest::option::of(".{0,20}")
        )
            .prop_map(|(leader_hint, leader_addr)| ClientResponse::NotLeader {
                leader_hint,
                leader_addr
            }),
        ".{0,20}".prop_map(|reason| ClientResponse::Retry { reason }),
        ".{0,20}".prop_map(|reason| ClientResponse::Invalid { reason }),
        any::<u64>().prop_map(|client_id| ClientResponse::Registered { client_id }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (1..10u64, 1..10u64, body()).prop_map(|(from, to, body)| Frame::Peer(Message {
            from,
            to,
            body
        })),
        (any::<u64>(), any::<u64>(), any::<u64>(), op()).prop_map(|(id, client_id, seq, op)| {
            Frame::Request {
                id,
                request: ClientRequest { client_id, seq, op },
            }
        }),
        (any::<u64>(), response()).prop_map(|(id, response)| Frame::Response { id, response }),
    ]
}

/// Decodes every complete frame in `buf`; stops at the first error.
fn decode_all(codec: &mut FrameCodec, buf: &mut BytesMut) -> (Vec<Frame>, Option<CodecError>) {
    let mut out = Vec::new();
    loop {
        match codec.decode(buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

proptest! {
    #[test]
    fn frames_roundtrip_in_a_stream(frames in proptest::collection::vec(frame(), 1..8)) {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut buf).unwrap();
        }
        let (decoded, err) = decode_all(&mut codec, &mut buf);
        prop_assert!(err.is_none());
        prop_assert_eq!(decoded, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn frames_roundtrip_when_split_at_any_point(f in frame(), cut in any::<prop::sample::Index>()) {
        let mut codec = FrameCodec::default();
        let mut whole = BytesMut::new();
        codec.encode(f.clone(), &mut whole).unwrap();
        let at = cut.index(whole.len());
        let mut buf = BytesMut::from(&whole[..at]);
        // A partial frame is not an error, just not yet a frame.
        prop_assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&whole[at..]);
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(f));
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut codec = FrameCodec::with_max_len(1024);
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = decode_all(&mut codec, &mut buf);
    }

    #[test]
    fn random_payload_in_a_valid_length_prefix_never_panics(
        payload in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        buf.extend_from_slice(&payload);
        // Either some frame or a Malformed error: never a panic, never a hang.
        match codec.decode(&mut buf) {
            Ok(Some(_)) | Err(CodecError::Malformed(_)) => {}
            other => prop_assert!(false, "unexpected result {:?}", other),
        }
    }

    #[test]
    fn oversized_length_prefix_is_rejected(max in 1usize..4096, extra in 1usize..1_000_000) {
        let mut codec = FrameCodec::with_max_len(max);
        let len = (max + extra) as u32;
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        let rejected = matches!(
            codec.decode(&mut buf),
            Err(CodecError::Oversized { len: l, max: m }) if l == max + extra && m == max
        );
        prop_assert!(rejected);
    }

    #[test]
    fn oversized_frame_is_not_encoded(value in ".{64,128}") {
        let mut codec = FrameCodec::with_max_len(32);
        let f = Frame::Response { id: 1, response: ClientResponse::Ok { value: Some(value) } };
        let mut buf = BytesMut::new();
        let rejected = matches!(codec.encode(f, &mut buf), Err(CodecError::Oversized { .. }));
        prop_assert!(rejected);
        prop_assert!(buf.is_empty());
    }
}
