//! How nodes reach each other. The node only ever calls [`Transport::send`];
//! incoming messages are handed to the node by whoever owns the receiving
//! side (the TCP server, or the in-memory network under a test harness).

pub mod memory;
// tokio has no `net` under `--cfg loom`.
#[cfg(not(loom))]
pub mod tcp;

use crate::message::{Message, MsgTag};

/// Outbound half of a transport.
///
/// `send` never blocks and may lose the message (a full queue, a broken
/// connection, a partition): the protocol tolerates loss, and the sender
/// retries on its next heartbeat or election timeout.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, msg: Message);
    /// `send` with the message's trace id (docs/trace-format.md), for
    /// transports that carry it to the receiver; the default drops the tag.
    fn send_tagged(&self, msg: Message, tag: Option<MsgTag>) {
        let _ = tag;
        self.send(msg);
    }
}
