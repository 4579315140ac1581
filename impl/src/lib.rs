//! raftkv: an async Raft with a durable log, TCP transport and a
//! linearizable replicated key-value store.
//!
//! The protocol is pinned in docs/protocol.md. The protocol core (`core`) is
//! a deterministic state machine with no I/O; the async `node` owns timers,
//! storage, transport and the apply stream.

pub mod message;
pub mod transport;
pub mod types;
