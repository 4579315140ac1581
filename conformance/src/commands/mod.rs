//! One module per subcommand of `raft-conform` (the binary's root,
//! main.rs, holds the clap definitions, exit codes and dispatch).

pub(crate) mod replay;
pub(crate) mod script;
pub(crate) mod transitions;
pub(crate) mod validate;

pub(crate) use replay::*;
pub(crate) use script::*;
pub(crate) use transitions::*;
pub(crate) use validate::*;
