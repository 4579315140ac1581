//! `raft-model explore`: the stateright Explorer on the model.

use anyhow::{bail, Context, Result};
use raft_model::RaftModel;
use stateright::Model;
use std::net::{TcpListener, ToSocketAddrs};

/// Serves the Explorer until the process is stopped.
pub fn serve(model: RaftModel, addr: &str) -> Result<()> {
    let resolved: Vec<_> = addr
        .to_socket_addrs()
        .with_context(|| format!("invalid --addr {addr:?} (expected HOST:PORT)"))?
        .collect();
    if resolved.is_empty() {
        bail!("--addr {addr:?} resolves to no address");
    }
    // stateright's server panics on a busy port: check first for a clear error.
    // A busy port is a failed operation (exit 1), not bad input.
    drop(
        TcpListener::bind(&resolved[..])
            .with_context(|| {
                format!("cannot listen on {addr}: is another Explorer (or program) using it?")
            })
            .map_err(crate::failed)?,
    );
    eprintln!(
        "Explorer for {} servers at http://{addr}/ (Ctrl-C to stop).\n\
         Symmetry reduction does not apply in the Explorer; \"Run to completion\" \
         explores breadth-first and keeps every state in memory.",
        model.cfg.servers
    );
    model.checker().serve(addr);
    Ok(())
}
