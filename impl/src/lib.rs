//! raftkv: an async Raft with a durable log, TCP transport and a
//! linearizable replicated key-value store.
//!
//! The protocol is pinned in docs/protocol.md. The protocol core (`core`) is
//! a deterministic state machine with no I/O; the async `node` owns timers,
//! storage, transport and the apply stream.

// tokio has no `net` under `--cfg loom`: the TCP parts are left out of the loom build.
#[cfg(not(loom))]
pub mod client;
pub mod codec;
pub mod core;
pub mod kv;
// Test support, not part of the product (feature `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod linearizability;
pub mod message;
#[cfg(not(loom))]
pub mod metrics;
pub mod node;
#[cfg(not(loom))]
pub mod server;
pub mod storage;
pub mod sync;
#[cfg(not(loom))]
pub mod tls;
pub mod trace;
pub mod transport;
pub mod types;

pub use node::{
    ApplyMsg, FsyncLatency, Leadership, Node, NodeConfig, NodeError, NodeProgress, NotLeader,
    SnapshotError, StartError, TimerMode,
};
pub use storage::{FileStorage, MemStorage, Storage};
pub use trace::TraceSink;
