//! raft-conformance: model-based conformance between the stateright model
//! (`raft-model`) and the real async Raft (`raftkv`).
//!
//! - [`mapping`]: the explicit bridge between the two vocabularies;
//! - [`cluster`]: real nodes (FileStorage, manual timers) driven event by event;
//! - [`divergence`]: field-by-field comparison and the divergence report;
//! - [`replay`]: model traces replayed on the implementation (`raft-conform replay`/`run`);
//! - [`generate`]: traces from the model (BFS leaves, random walks, `sometimes` examples);
//! - [`runner`]: `run` as a library call (generate + replay, summary);
//! - [`validate`]: implementation runs checked step by step against the model;
//! - [`steps`]: the recorded-steps NDJSON format (docs/trace-format.md);
//! - [`recorded`]: recorded steps validated against one carried model state;
//! - [`script`]: scenario scripts run on the model and on real nodes (docs/scripts.md).

pub mod cluster;
pub mod divergence;
pub mod generate;
pub mod mapping;
pub mod real_timers;
pub mod recorded;
pub mod replay;
pub mod runner;
pub mod script;
pub mod steps;
pub mod transitions;
pub mod validate;
