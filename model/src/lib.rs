//! raft-model: the Raft specification as a stateright model.
//!
//! The protocol it specifies is pinned in docs/protocol.md; the
//! implementation (`raftkv`) follows the same document independently.
//!
//! - [`model::RaftModel`]: the hand-written `stateright::Model`.
//! - [`state::State`]: servers, network, partition, budgets and ghosts, with
//!   symmetry reduction over server ids (`stateright::Representative`).
//! - [`properties`]: the `always` and `sometimes` properties, as plain functions.

pub mod config;
pub mod model;
pub mod properties;
pub mod state;
pub mod svg;
pub mod trace;
pub mod types;

pub use config::{Bug, Config, NetworkKind, PersistMode};
pub use model::RaftModel;
pub use state::State;
