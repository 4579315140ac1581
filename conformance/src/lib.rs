//! raft-conformance: model-based conformance between the stateright model
//! (`raft-model`) and the real async Raft (`raftkv`).
//!
//! - [`mapping`]: the explicit bridge between the two vocabularies;
//! - [`network`]: the harness's in-memory transport (a multiset in flight);
//! - [`divergence`]: field-by-field comparison and the divergence report.

pub mod divergence;
pub mod mapping;
pub mod network;
