//! A linearizability checker for KV histories (Put, Append, Get).
//!
//! Linearizability is compositional, so a history is checked one key at a
//! time. Each key is searched with the Wing–Gong algorithm as improved by
//! Lowe and used by porcupine: walk the history in real-time order, try to
//! linearize each pending call against the key's current value, backtrack
//! on a return whose call could not be placed, and memoize (set of
//! linearized operations, value) pairs already explored. Appends make values
//! order-sensitive, so a wrong order shows up in a later Get.
//!
//! Operations whose outcome is unknown (the client gave up) are recorded
//! with `ret = None`: a write may then take effect at any point after its
//! call, or never; a read with an unknown result constrains nothing and is
//! ignored.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    Put(String),
    Append(String),
    /// A read and the value it returned (`None`: key absent).
    Get(Option<String>),
}

/// One operation of a history. `call` and `ret` are positions in one total
/// order of events consistent with real time (e.g. from [`Recorder`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: u64,
    pub key: String,
    pub op: KvOp,
    pub call: u64,
    /// `None`: the outcome is unknown (timed out, connection lost).
    pub ret: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    Linearizable,
    /// No linearization exists for the operations on `key`.
    NotLinearizable {
        key: String,
    },
    /// The search for `key` exceeded its step budget.
    Unknown {
        key: String,
    },
}

/// Checks a whole history, key by key. `max_steps` bounds the search per key.
pub fn check(history: &[Operation], max_steps: u64) -> CheckResult {
    let mut by_key: HashMap<&str, Vec<&Operation>> = HashMap::new();
    for op in history {
        // A read with unknown result carries no information.
        if op.ret.is_none() && matches!(op.op, KvOp::Get(_)) {
            continue;
        }
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut keys: Vec<_> = by_key.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        match check_key(&by_key[key], max_steps) {
            Some(true) => {}
            Some(false) => return CheckResult::NotLinearizable { key: key.into() },
            None => return CheckResult::Unknown { key: key.into() },
        }
    }
    CheckResult::Linearizable
}

/// Applies `op` to `state`; `None` if a Get's result does not match.
fn step(state: &Option<String>, op: &KvOp) -> Option<Option<String>> {
    match op {
        KvOp::Put(v) => Some(Some(v.clone())),
        KvOp::Append(v) => {
            let mut s = state.clone().unwrap_or_default();
            s.push_str(v);
            Some(Some(s))
        }
        KvOp::Get(r) => (r == state).then(|| state.clone()),
    }
}

const NIL: usize = usize::MAX;

/// Two independent 64-bit hashes: a collision (which could only make the
/// checker reject a valid history) is vanishingly unlikely.
fn digest(state: &Option<String>) -> u128 {
    use std::hash::{Hash, Hasher};
    let mut a = std::collections::hash_map::DefaultHasher::new();
    state.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    (0x9e37_79b9_7f4a_7c15u64, state).hash(&mut b);
    ((a.finish() as u128) << 64) | b.finish() as u128
}

/// Whether placing write `placed` (giving `new_state`) makes a pending read
/// impossible: a read whose call has been reached, that no Put can precede,
/// and whose result does not extend `new_state`.
fn dooms_pending_read(
    events: &[(u64, bool, usize)],
    next: &[usize],
    placed: usize,
    new_state: &Option<String>,
    ops: &[&Operation],
    put_before: &[bool],
) -> bool {
    let mut e = next[0];
    while e != NIL {
        let (_, is_ret, op) = events[e - 1];
        if is_ret && op != placed {
            break;
        }
        if !is_ret && !put_before[op] {
            if let KvOp::Get(r) = &ops[op].op {
                let extends = match (new_state, r) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(s), Some(r)) => r.starts_with(s.as_str()),
                };
                if !extends {
                    return true;
                }
            }
        }
        e = next[e];
    }
    false
}

/// `Some(true)` linearizable, `Some(false)` not, `None` out of budget.
fn check_key(ops: &[&Operation], max_steps: u64) -> Option<bool> {
    let m = ops.len();
    // Events: (time, is_return, op). Calls sort before returns at equal
    // times (only possible with hand-written histories): overlapping.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * m);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, false, i));
        events.push((op.ret.unwrap_or(u64::MAX), true, i));
    }
    events.sort_unstable();
    // Doubly linked list over event positions, node 0 is the head sentinel
    // and node k + 1 is events[k].
    let n = events.len();
    let mut next = vec![NIL; n + 1];
    let mut prev = vec![NIL; n + 1];
    for k in 0..=n {
        next[k] = if k < n { k + 1 } else { NIL };
        prev[k] = if k == 0 { NIL } else { k - 1 };
    }
    let mut call_node = vec![0; m];
    let mut ret_node = vec![0; m];
    for (k, &(_, is_ret, op)) in events.iter().enumerate() {
        if is_ret {
            ret_node[op] = k + 1;
        } else {
            call_node[op] = k + 1;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        let (p, nx) = (prev[x], next[x]);
        next[p] = nx;
        if nx != NIL {
            prev[nx] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, x: usize| {
        let (p, nx) = (prev[x], next[x]);
        next[p] = x;
        if nx != NIL {
            prev[nx] = x;
        }
    };

    // For each read: whether some Put could take effect before it returns.
    // Without one, the value can only grow by appends until the read, so
    // the read's result must extend the current value (pruning below).
    let first_put_call = ops
        .iter()
        .filter(|o| matches!(o.op, KvOp::Put(_)))
        .map(|o| o.call)
        .min()
        .unwrap_or(u64::MAX);
    let put_before: Vec<bool> = ops
        .iter()
        .map(|o| first_put_call < o.ret.unwrap_or(u64::MAX))
        .collect();

    let words = m.div_ceil(64);
    let mut linearized = vec![0u64; words];
    // Values can grow long (appends); the cache keeps a 128-bit digest of
    // the value instead of a copy.
    let mut cache: HashSet<(Vec<u64>, u128)> = HashSet::new();
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut state: Option<String> = None;
    let mut entry = next[0];
    let mut steps = 0u64;
    while next[0] != NIL {
        steps += 1;
        if steps > max_steps {
            return None;
        }
        if entry == NIL {
            return Some(false);
        }
        let (_, is_ret, op) = events[entry - 1];
        if !is_ret {
            let is_read = matches!(ops[op].op, KvOp::Get(_));
            let placed = step(&state, &ops[op].op).filter(|new_state| {
                is_read || !dooms_pending_read(&events, &next, op, new_state, ops, &put_before)
            });
            if let Some(new_state) = placed {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), digest(&new_state))) {
                    stack.push((op, std::mem::replace(&mut state, new_state)));
                    unlink(&mut next, &mut prev, call_node[op]);
                    unlink(&mut next, &mut prev, ret_node[op]);
                    entry = next[0];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = next[entry];
        } else {
            // A return whose call is still pending: nothing placed so far
            // lets this operation take effect before it returned. Undo the
            // last choice and try the next candidate after it.
            //
            // A read that matched the value is never a real choice: if any
            // linearization exists from the configuration where it was
            // placed, one exists with the read placed right there (it is
            // enabled, changes nothing, and everything that must precede it
            // is already placed). So undoing a read means that whole
            // configuration failed: keep undoing down to the last write.
            loop {
                let Some((op, old)) = stack.pop() else {
                    return Some(false);
                };
                linearized[op / 64] &= !(1 << (op % 64));
                state = old;
                relink(&mut next, &mut prev, ret_node[op]);
                relink(&mut next, &mut prev, call_node[op]);
                if !matches!(ops[op].op, KvOp::Get(_)) {
                    entry = next[call_node[op]];
                    break;
                }
            }
        }
    }
    Some(true)
}

/// Records a history from concurrent clients with a logical clock: every
/// call and return takes the next tick, so the order of ticks is consistent
/// with real time whatever the runtime's clock (paused tokio time included).
#[derive(Default)]
pub struct Recorder {
    inner: Mutex<(u64, Vec<Operation>)>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a call; returns a handle for [`Recorder::end`]. For a Get pass
    /// `KvOp::Get(None)`: the result is filled in by `end`.
    pub fn begin(&self, client: u64, key: &str, op: KvOp) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let call = g.0;
        g.1.push(Operation {
            client,
            key: key.to_string(),
            op,
            call,
            ret: None,
        });
        g.1.len() - 1
    }

    /// Records a successful return; `read` is the value a Get returned.
    pub fn end(&self, handle: usize, read: Option<String>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        let t = g.0;
        let op = &mut g.1[handle];
        op.ret = Some(t);
        if let KvOp::Get(r) = &mut op.op {
            *r = read;
        }
    }

    /// The history so far; operations never ended count as unknown outcome.
    pub fn history(&self) -> Vec<Operation> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, op: KvOp, call: u64, ret: Option<u64>) -> Operation {
        Operation {
            client,
            key: "k".into(),
            op,
            call,
            ret,
        }
    }
    fn put(v: &str) -> KvOp {
        KvOp::Put(v.into())
    }
    fn app(v: &str) -> KvOp {
        KvOp::Append(v.into())
    }
    fn get(v: Option<&str>) -> KvOp {
        KvOp::Get(v.map(String::from))
    }
    const BUDGET: u64 = 10_000_000;

    #[test]
    fn sequential_history_is_linearizable() {
        let h = vec![
            op(1, put("a"), 1, Some(2)),
            op(1, app("b"), 3, Some(4)),
            op(2, get(Some("ab")), 5, Some(6)),
        ];
        assert_eq!(check(&h, BUDGET), CheckResult::Linearizable);
    }

    #[test]
    fn stale_read_after_write_returned_is_rejected() {
        let h = vec![
            op(1, put("a"), 1, Some(2)),
            op(1, put("b"), 3, Some(4)),
            op(2, get(Some("a")), 5, Some(6)),
        ];
        assert!(matches!(
            check(&h, BUDGET),
            CheckResult::NotLinearizable { .. }
        ));
    }

    #[test]
    fn concurrent_reads_may_see_either_value_but_not_go_back() {
        // Put(b) overlaps both reads: the first may see b, the second a? No:
        // once a read saw b, a later read cannot see a.
        let ok = vec![
            op(1, put("a"), 1, Some(2)),
            op(1, put("b"), 3, Some(10)),
            op(2, get(Some("a")), 4, Some(5)),
            op(3, get(Some("b")), 6, Some(7)),
        ];
        assert_eq!(check(&ok, BUDGET), CheckResult::Linearizable);
        let bad = vec![
            op(1, put("a"), 1, Some(2)),
            op(1, put("b"), 3, Some(10)),
            op(2, get(Some("b")), 4, Some(5)),
            op(3, get(Some("a")), 6, Some(7)),
        ];
        assert!(matches!(
            check(&bad, BUDGET),
            CheckResult::NotLinearizable { .. }
        ));
    }

    #[test]
    fn append_order_must_match_a_real_time_order() {
        // Append(x) returned before Append(y) was called, so "yx" is impossible.
        let bad = vec![
            op(1, app("x"), 1, Some(2)),
            op(2, app("y"), 3, Some(4)),
            op(3, get(Some("yx")), 5, Some(6)),
        ];
        assert!(matches!(
            check(&bad, BUDGET),
            CheckResult::NotLinearizable { .. }
        ));
        // Overlapping appends may land in either order.
        let ok = vec![
            op(1, app("x"), 1, Some(4)),
            op(2, app("y"), 2, Some(3)),
            op(3, get(Some("yx")), 5, Some(6)),
        ];
        assert_eq!(check(&ok, BUDGET), CheckResult::Linearizable);
    }

    #[test]
    fn duplicated_append_is_rejected() {
        // A retried append applied twice shows up as a doubled suffix.
        let bad = vec![
            op(1, app("x"), 1, Some(2)),
            op(2, get(Some("xx")), 3, Some(4)),
        ];
        assert!(matches!(
            check(&bad, BUDGET),
            CheckResult::NotLinearizable { .. }
        ));
    }

    #[test]
    fn unknown_outcome_write_may_apply_late_or_never() {
        let late = vec![
            op(1, app("x"), 1, None),
            op(2, get(None), 2, Some(3)),
            op(2, get(Some("x")), 4, Some(5)),
        ];
        assert_eq!(check(&late, BUDGET), CheckResult::Linearizable);
        let never = vec![op(1, app("x"), 1, None), op(2, get(None), 2, Some(3))];
        assert_eq!(check(&never, BUDGET), CheckResult::Linearizable);
        // But it cannot take effect before it was called.
        let early = vec![op(2, get(Some("x")), 1, Some(2)), op(1, app("x"), 3, None)];
        assert!(matches!(
            check(&early, BUDGET),
            CheckResult::NotLinearizable { .. }
        ));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut h = vec![op(1, put("a"), 1, Some(2))];
        h.push(Operation {
            client: 2,
            key: "other".into(),
            op: get(Some("a")),
            call: 3,
            ret: Some(4),
        });
        assert_eq!(
            check(&h, BUDGET),
            CheckResult::NotLinearizable {
                key: "other".into()
            }
        );
    }

    /// A long, highly concurrent, valid history: generated by applying
    /// appends and reads at random linearization points inside their
    /// intervals. The checker must accept it, and reject it once a single
    /// read is corrupted.
    #[test]
    fn thousands_of_ops_valid_and_corrupted() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let clients = 8;
        let per_client = 300;
        // Each client's ops are sequential; pick a linearization point per op.
        let mut points: Vec<(u64, u64, u64, usize)> = Vec::new(); // (lin, call, ret, client)
        for c in 0..clients {
            let mut t = 0u64;
            for _ in 0..per_client {
                let call = t + rng.gen_range(1..5);
                let lin = call + rng.gen_range(0..20);
                let ret = lin + rng.gen_range(0..20);
                points.push((lin * 2 + 1, call * 2, ret * 2 + 2, c));
                t = ret + 1;
            }
        }
        points.sort();
        let mut value = String::new();
        let mut h = Vec::new();
        for (i, &(_, call, ret, c)) in points.iter().enumerate() {
            let o = if rng.gen_bool(0.5) {
                let v = format!("{i},");
                value.push_str(&v);
                KvOp::Append(v)
            } else {
                KvOp::Get((!value.is_empty()).then(|| value.clone()))
            };
            h.push(op(c as u64, o, call, Some(ret)));
        }
        assert_eq!(h.len(), 2400);
        assert_eq!(check(&h, BUDGET), CheckResult::Linearizable);
        let idx = h
            .iter()
            .rposition(|o| matches!(&o.op, KvOp::Get(Some(_))))
            .unwrap();
        if let KvOp::Get(Some(v)) = &mut h[idx].op {
            v.push_str("999,");
        }
        assert!(matches!(
            check(&h, BUDGET),
            CheckResult::NotLinearizable { .. }
        ));
    }
}
