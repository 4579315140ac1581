//! raft-model: the Raft specification as a stateright model.
//!
//! The protocol it specifies is pinned in docs/protocol.md; the
//! implementation (`raftkv`) follows the same document independently.

pub mod config;
pub mod trace;
pub mod types;
