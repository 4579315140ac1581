//! The KV store's snapshot encoding: what `Snapshot::data` holds for
//! raftkv (docs/operating.md, "Snapshots").
//!
//! `RKVS` magic, a version byte, the crc32c of the body (little endian),
//! then the body: postcard of the applied index, every key and value in
//! key order, and the session table. The order is fixed, so two replicas
//! with the same state produce the same bytes. The storage checksums its
//! snapshot file as well; this checksum covers the bytes wherever they
//! travel (an InstallSnapshot over the network included).

use super::session::Sessions;
use crate::types::LogIndex;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"RKVS";
/// The version this build writes and the only one it reads.
pub const VERSION: u8 = 1;
const HEADER: usize = 4 + 1 + 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotDecodeError {
    #[error("KV snapshot is {0} bytes, shorter than its 9-byte header")]
    Short(usize),
    #[error("not a KV snapshot (magic {0:02x?}, expected \"RKVS\")")]
    Magic([u8; 4]),
    #[error("KV snapshot version {found} is not supported (this raftkv reads version {VERSION})")]
    Version { found: u8 },
    #[error("KV snapshot checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the snapshot is corrupt")]
    Checksum { stored: u32, computed: u32 },
    #[error("KV snapshot body does not decode: {0}")]
    Body(String),
}

#[derive(Serialize, Deserialize)]
pub(super) struct Body {
    pub last_applied: LogIndex,
    pub data: Vec<(String, String)>,
    pub sessions: Sessions,
}

pub(super) fn encode(body: &Body) -> Vec<u8> {
    let payload = postcard::to_stdvec(body).expect("encoding strings and integers cannot fail");
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

pub(super) fn decode(bytes: &[u8]) -> Result<Body, SnapshotDecodeError> {
    if bytes.len() < HEADER {
        return Err(SnapshotDecodeError::Short(bytes.len()));
    }
    let magic: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
    if &magic != MAGIC {
        return Err(SnapshotDecodeError::Magic(magic));
    }
    if bytes[4] != VERSION {
        return Err(SnapshotDecodeError::Version { found: bytes[4] });
    }
    let stored = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER..];
    let computed = crc32c::crc32c(payload);
    if stored != computed {
        return Err(SnapshotDecodeError::Checksum { stored, computed });
    }
    postcard::from_bytes(payload).map_err(|e| SnapshotDecodeError::Body(e.to_string()))
}
