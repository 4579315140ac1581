//! Synchronisation primitives: `loom`'s under `--cfg loom` (so the loom
//! models explore every interleaving), `std`'s otherwise.

#[cfg(loom)]
pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};
