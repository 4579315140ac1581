//! An in-memory network for tests and the conformance harness (whose
//! `Cluster` drives it in Held mode).
//!
//! Two modes:
//!
//! - [`NetMode::Auto`]: every message is delivered by a tokio task after a
//!   random delay, subject to loss, duplication (random delays also reorder)
//!   and partitions. Deterministic under paused tokio time given the seed.
//! - [`NetMode::Held`]: sent messages wait in the network; the harness lists
//!   them and delivers, drops or duplicates them one by one.
//!
//! Links follow docs/protocol.md §4 (R-net-1, R-net-2): a message sent across a cut link is lost
//! at once; one already in flight across a cut can only be dropped.

use crate::message::{Message, MsgTag};
use crate::node::Node;
use crate::transport::Transport;
use crate::types::NodeId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetMode {
    Auto,
    Held,
}

/// Fault settings of the Auto mode.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Delivery delay, uniform in `[lo, hi]`.
    pub delay: (Duration, Duration),
}

impl Faults {
    /// No loss, no duplicates, no delay.
    pub fn reliable() -> Faults {
        Faults {
            drop: 0.0,
            duplicate: 0.0,
            delay: (Duration::ZERO, Duration::ZERO),
        }
    }

    /// The 6.824 "unreliable" network: 10% loss, some duplicates, up to 27 ms
    /// of delay (which reorders).
    pub fn unreliable() -> Faults {
        Faults {
            drop: 0.1,
            duplicate: 0.05,
            delay: (Duration::ZERO, Duration::from_millis(27)),
        }
    }
}

/// Identifies a held message.
pub type MsgId = u64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetError {
    #[error("no message {0} in flight")]
    NoSuchMessage(MsgId),
    #[error("message {0} crosses a cut link: it can only be dropped")]
    LinkCut(MsgId),
    #[error("node {0} is not registered with the network")]
    NodeDown(NodeId),
}

/// Counters for the RPC-economy tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

struct Inner {
    nodes: HashMap<NodeId, Node>,
    mode: NetMode,
    faults: Faults,
    partition: Option<BTreeSet<NodeId>>,
    isolated: BTreeSet<NodeId>,
    held: BTreeMap<MsgId, Message>,
    /// Trace ids of held messages whose sender records its steps.
    tags: HashMap<MsgId, MsgTag>,
    next_id: MsgId,
    rng: StdRng,
    stats: NetStats,
}

impl Inner {
    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        if self.isolated.contains(&a) || self.isolated.contains(&b) {
            return false;
        }
        match &self.partition {
            Some(s) => s.contains(&a) == s.contains(&b),
            None => true,
        }
    }

    /// A held message that may be delivered or duplicated: its link is up.
    fn deliverable(&self, id: MsgId) -> Result<Message, NetError> {
        let m = self
            .held
            .get(&id)
            .cloned()
            .ok_or(NetError::NoSuchMessage(id))?;
        if !self.connected(m.from, m.to) {
            return Err(NetError::LinkCut(id));
        }
        Ok(m)
    }

    fn hold(&mut self, m: Message, tag: Option<MsgTag>) -> MsgId {
        let id = self.next_id;
        self.next_id += 1;
        self.held.insert(id, m);
        if let Some(t) = tag {
            self.tags.insert(id, t);
        }
        id
    }

    fn unhold(&mut self, id: MsgId) -> Option<(Message, Option<MsgTag>)> {
        let m = self.held.remove(&id)?;
        Some((m, self.tags.remove(&id)))
    }
}

/// A shared in-memory network. Clones are handles to the same network.
#[derive(Clone)]
pub struct MemNetwork {
    inner: Arc<Mutex<Inner>>,
}

impl MemNetwork {
    pub fn new(mode: NetMode, faults: Faults, seed: u64) -> MemNetwork {
        MemNetwork {
            inner: Arc::new(Mutex::new(Inner {
                nodes: HashMap::new(),
                mode,
                faults,
                partition: None,
                isolated: BTreeSet::new(),
                held: BTreeMap::new(),
                tags: HashMap::new(),
                next_id: 0,
                rng: StdRng::seed_from_u64(seed),
                stats: NetStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sending half for node `id`.
    pub fn endpoint(&self, id: NodeId) -> Arc<dyn Transport> {
        Arc::new(MemEndpoint {
            net: self.clone(),
            id,
        })
    }

    /// Route messages for `node.id()` to `node` (replaces a previous one).
    pub fn register(&self, node: Node) {
        self.lock().nodes.insert(node.id(), node);
    }

    /// Stop routing to `id` (a crashed node): Auto-mode messages to it are lost.
    pub fn unregister(&self, id: NodeId) -> Option<Node> {
        self.lock().nodes.remove(&id)
    }

    pub fn set_mode(&self, mode: NetMode) {
        self.lock().mode = mode;
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Partition(S): cut every link between `group` and the rest.
    pub fn partition(&self, group: impl IntoIterator<Item = NodeId>) {
        self.lock().partition = Some(group.into_iter().collect());
    }

    /// Heal: restore every link cut by `partition` and `isolate`.
    pub fn heal(&self) {
        let mut g = self.lock();
        g.partition = None;
        g.isolated.clear();
    }

    /// Cut `id` off from every other node (6.824's `disconnect`).
    pub fn isolate(&self, id: NodeId) {
        self.lock().isolated.insert(id);
    }

    /// Undo `isolate(id)` (6.824's `connect`).
    pub fn reconnect(&self, id: NodeId) {
        self.lock().isolated.remove(&id);
    }

    /// The group of the active partition, sorted, if one is active.
    pub fn active_partition(&self) -> Option<Vec<NodeId>> {
        self.lock()
            .partition
            .as_ref()
            .map(|g| g.iter().copied().collect())
    }

    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.lock().connected(a, b)
    }

    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    /// Held mode: messages in flight, in the order they were sent.
    pub fn in_flight(&self) -> Vec<(MsgId, Message)> {
        self.lock()
            .held
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Held mode: the id of a message in flight equal to `m`, if any.
    pub fn find(&self, m: &Message) -> Option<MsgId> {
        self.lock()
            .held
            .iter()
            .find(|(_, v)| *v == m)
            .map(|(k, _)| *k)
    }

    /// Drop(m): remove a held message.
    pub fn drop_message(&self, id: MsgId) -> Result<Message, NetError> {
        let mut g = self.lock();
        let (m, _) = g.unhold(id).ok_or(NetError::NoSuchMessage(id))?;
        g.stats.dropped += 1;
        Ok(m)
    }

    /// Duplicate(m): add a second copy of a held message; returns its id.
    pub fn duplicate(&self, id: MsgId) -> Result<MsgId, NetError> {
        let mut g = self.lock();
        let m = g.deliverable(id)?;
        g.stats.duplicated += 1;
        let tag = g.tags.get(&id).copied();
        Ok(g.hold(m, tag))
    }

    /// Deliver(m): remove a held message and run its Deliver step on the
    /// destination; returns once the step is done (its replies are held).
    pub async fn deliver(&self, id: MsgId) -> Result<(), NetError> {
        let (node, m, tag) = {
            let mut g = self.lock();
            let m = g.deliverable(id)?;
            let node = g
                .nodes
                .get(&m.to)
                .cloned()
                .ok_or(NetError::NodeDown(m.to))?;
            let (_, tag) = g.unhold(id).ok_or(NetError::NoSuchMessage(id))?;
            g.stats.delivered += 1;
            (node, m, tag)
        };
        node.deliver_tagged_and_wait(m, tag).await;
        Ok(())
    }

    /// Held mode: deliver everything in flight (and whatever that sends)
    /// until the network is empty or `max_steps` deliveries were made.
    /// Messages to unregistered nodes or across cuts are dropped.
    pub async fn deliver_all(&self, max_steps: usize) -> usize {
        let mut n = 0;
        while n < max_steps {
            let Some((id, _)) = self.lock().held.iter().next().map(|(k, v)| (*k, v.clone())) else {
                break;
            };
            if self.deliver(id).await.is_err() {
                let _ = self.drop_message(id);
            } else {
                n += 1;
            }
        }
        n
    }

    fn send(&self, from: NodeId, m: Message, tag: Option<MsgTag>) {
        let mut g = self.lock();
        g.stats.sent += 1;
        // The envelope's sender is the endpoint, whatever the message claims.
        let m = Message { from, ..m };
        if !g.connected(m.from, m.to) {
            g.stats.dropped += 1;
            return;
        }
        match g.mode {
            NetMode::Held => {
                g.hold(m, tag);
            }
            NetMode::Auto => {
                let f = g.faults.clone();
                if f.drop > 0.0 && g.rng.gen_bool(f.drop.min(1.0)) {
                    g.stats.dropped += 1;
                    return;
                }
                let copies = if f.duplicate > 0.0 && g.rng.gen_bool(f.duplicate.min(1.0)) {
                    g.stats.duplicated += 1;
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let delay = if f.delay.1 > f.delay.0 {
                        g.rng.gen_range(f.delay.0..=f.delay.1)
                    } else {
                        f.delay.0
                    };
                    let Ok(rt) = tokio::runtime::Handle::try_current() else {
                        // No runtime to deliver on (a send from outside tokio): lost.
                        g.stats.dropped += 1;
                        continue;
                    };
                    let net = self.clone();
                    let m = m.clone();
                    rt.spawn(async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let mut g = net.lock();
                        if !g.connected(m.from, m.to) {
                            g.stats.dropped += 1;
                            return;
                        }
                        match g.nodes.get(&m.to).cloned() {
                            Some(node) => {
                                g.stats.delivered += 1;
                                drop(g);
                                node.deliver_tagged(m, tag);
                            }
                            None => g.stats.dropped += 1,
                        }
                    });
                }
            }
        }
    }
}

struct MemEndpoint {
    net: MemNetwork,
    id: NodeId,
}

impl Transport for MemEndpoint {
    fn send(&self, msg: Message) {
        self.net.send(self.id, msg, None);
    }

    fn send_tagged(&self, msg: Message, tag: Option<MsgTag>) {
        self.net.send(self.id, msg, tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, RequestVoteResponse};

    fn msg(from: NodeId, to: NodeId, term: u64) -> Message {
        Message {
            from,
            to,
            body: Body::RequestVoteResponse(RequestVoteResponse {
                term,
                granted: true,
            }),
        }
    }

    fn held(net: &MemNetwork) -> Vec<Message> {
        net.in_flight().into_iter().map(|(_, m)| m).collect()
    }

    #[test]
    fn held_messages_are_a_multiset() {
        let net = MemNetwork::new(NetMode::Held, Faults::reliable(), 0);
        net.endpoint(1).send(msg(1, 2, 1));
        net.endpoint(1).send(msg(1, 2, 1));
        net.endpoint(2).send(msg(2, 1, 1));
        let first = net.find(&msg(1, 2, 1)).unwrap();
        net.drop_message(first).unwrap();
        let second = net.find(&msg(1, 2, 1)).unwrap();
        net.drop_message(second).unwrap();
        assert_eq!(net.find(&msg(1, 2, 1)), None, "only two copies were held");
        let id = net.find(&msg(2, 1, 1)).unwrap();
        net.duplicate(id).unwrap();
        assert_eq!(held(&net), vec![msg(2, 1, 1), msg(2, 1, 1)]);
    }

    #[test]
    fn sends_across_a_cut_are_lost_at_once_and_held_ones_stay() {
        let net = MemNetwork::new(NetMode::Held, Faults::reliable(), 0);
        net.endpoint(1).send(msg(1, 3, 1)); // held before the cut
        net.partition([3]);
        assert!(!net.connected(1, 3));
        assert!(!net.connected(3, 2));
        assert!(net.connected(1, 2));
        net.endpoint(1).send(msg(1, 3, 2)); // across: lost
        net.endpoint(3).send(msg(3, 1, 2)); // across: lost
        net.endpoint(1).send(msg(1, 2, 2)); // same side: held
        assert_eq!(held(&net), vec![msg(1, 3, 1), msg(1, 2, 2)]);
        assert_eq!(net.active_partition(), Some(vec![3]));
        // The one held across the cut can only be dropped.
        let across = net.find(&msg(1, 3, 1)).unwrap();
        assert_eq!(net.duplicate(across), Err(NetError::LinkCut(across)));
        net.heal();
        assert!(net.connected(1, 3));
        net.endpoint(1).send(msg(1, 3, 3));
        assert_eq!(held(&net).len(), 3);
    }
}
