//! The harness's own network: an inspectable multiset of messages in flight
//! that implements raftkv's [`Transport`]. Nodes only ever `send` into it;
//! the harness decides what is delivered, dropped or duplicated, and when.
//!
//! Partitions follow docs/protocol.md §4: while a link is cut, a message sent
//! across it is lost at once (it never enters the network); a message that
//! was already in flight stays there and can only be dropped.

use raftkv::message::{Message, MsgTag};
use raftkv::transport::Transport;
use raftkv::types::NodeId;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct NetState {
    in_flight: Vec<Message>,
    /// The trace id of each message in flight (same positions), when its
    /// sender records its steps.
    tags: Vec<Option<MsgTag>>,
    /// The group `S` of the active partition, in node ids.
    partition: Option<Vec<NodeId>>,
    /// Messages lost at send time because their link was cut.
    lost_to_partition: u64,
}

/// Shared by every node of a cluster (one `Arc<SimNetwork>` handed to each
/// node as its transport): messages carry `from`/`to`, so one multiset holds
/// every link.
#[derive(Debug, Default)]
pub struct SimNetwork {
    state: Mutex<NetState>,
}

fn crosses(partition: &Option<Vec<NodeId>>, from: NodeId, to: NodeId) -> bool {
    match partition {
        Some(group) => group.contains(&from) != group.contains(&to),
        None => false,
    }
}

impl SimNetwork {
    pub fn new() -> SimNetwork {
        SimNetwork::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        // A panic while holding the lock cannot leave the Vec half-updated
        // (every operation is a single push/remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the messages in flight, in send order.
    pub fn in_flight(&self) -> Vec<Message> {
        self.lock().in_flight.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes one copy of `msg` (for Deliver and Drop). False if it is not
    /// in flight.
    pub fn take(&self, msg: &Message) -> bool {
        self.take_tagged(msg).is_some()
    }

    /// [`take`](Self::take) that also returns the copy's trace id.
    pub fn take_tagged(&self, msg: &Message) -> Option<Option<MsgTag>> {
        let mut st = self.lock();
        let pos = st.in_flight.iter().position(|m| m == msg)?;
        st.in_flight.remove(pos);
        Some(st.tags.remove(pos))
    }

    /// Adds a second copy of `msg` (Duplicate). False if it is not in flight.
    pub fn duplicate(&self, msg: &Message) -> bool {
        let mut st = self.lock();
        if let Some(pos) = st.in_flight.iter().position(|m| m == msg) {
            let tag = st.tags[pos];
            st.in_flight.push(msg.clone());
            st.tags.push(tag);
            true
        } else {
            false
        }
    }

    /// Whether the link `from → to` is cut by the active partition.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        crosses(&self.lock().partition, from, to)
    }

    /// Cuts every link between `group` and the rest. Messages already in
    /// flight are kept (they can only be dropped while the cut lasts).
    pub fn partition(&self, group: &[NodeId]) {
        let mut g = group.to_vec();
        g.sort_unstable();
        g.dedup();
        self.lock().partition = Some(g);
    }

    pub fn heal(&self) {
        self.lock().partition = None;
    }

    /// The active partition's group, sorted, in node ids.
    pub fn active_partition(&self) -> Option<Vec<NodeId>> {
        self.lock().partition.clone()
    }

    pub fn lost_to_partition(&self) -> u64 {
        self.lock().lost_to_partition
    }
}

impl Transport for SimNetwork {
    fn send(&self, msg: Message) {
        self.send_tagged(msg, None);
    }

    fn send_tagged(&self, msg: Message, tag: Option<MsgTag>) {
        let mut st = self.lock();
        if crosses(&st.partition, msg.from, msg.to) {
            st.lost_to_partition += 1;
            return;
        }
        st.in_flight.push(msg);
        st.tags.push(tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftkv::message::Body;

    fn msg(from: NodeId, to: NodeId, term: u64) -> Message {
        Message {
            from,
            to,
            body: Body::RequestVoteResponse {
                term,
                granted: true,
            },
        }
    }

    #[test]
    fn multiset_take_and_duplicate() {
        let net = SimNetwork::new();
        net.send(msg(1, 2, 1));
        net.send(msg(1, 2, 1));
        net.send(msg(2, 1, 1));
        assert_eq!(net.len(), 3);
        assert!(net.take(&msg(1, 2, 1)));
        assert_eq!(net.len(), 2);
        assert!(net.take(&msg(1, 2, 1)));
        assert!(!net.take(&msg(1, 2, 1)), "only two copies were in flight");
        assert!(!net.duplicate(&msg(1, 3, 1)));
        assert!(net.duplicate(&msg(2, 1, 1)));
        assert_eq!(net.in_flight(), vec![msg(2, 1, 1), msg(2, 1, 1)]);
    }

    #[test]
    fn sends_across_a_cut_are_lost_at_once_and_in_flight_stays() {
        let net = SimNetwork::new();
        net.send(msg(1, 3, 1)); // in flight before the cut
        net.partition(&[3]);
        assert!(net.is_cut(1, 3));
        assert!(net.is_cut(3, 2));
        assert!(!net.is_cut(1, 2));
        net.send(msg(1, 3, 2)); // across: lost
        net.send(msg(3, 1, 2)); // across: lost
        net.send(msg(1, 2, 2)); // same side: kept
        assert_eq!(net.lost_to_partition(), 2);
        assert_eq!(net.in_flight(), vec![msg(1, 3, 1), msg(1, 2, 2)]);
        assert_eq!(net.active_partition(), Some(vec![3]));
        net.heal();
        assert!(!net.is_cut(1, 3));
        net.send(msg(1, 3, 3));
        assert_eq!(net.len(), 3);
    }
}
