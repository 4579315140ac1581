//! The KV state machine against a simple model: random client sessions
//! whose writes are retried (re-proposed) any number of times, and log
//! entries re-delivered after a restart. Each (client, seq) write must apply
//! exactly once, in log order of its first occurrence. Clients register
//! first (the log's first entries); at a random point the store is replaced
//! by one restored from its own snapshot, which must change nothing.

use proptest::prelude::*;
use raftkv::codec::{ClientRequest, ClientResponse, Op};
use raftkv::kv::{encode_command, KvStore};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
enum Step {
    /// Client `c` issues its next write (put or append) on key `k`.
    Write {
        c: u64,
        k: u8,
        append: bool,
    },
    /// Client `c`'s last write is proposed again (a retry).
    Retry {
        c: u64,
    },
    Get {
        k: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3u64, 0..3u8, any::<bool>()).prop_map(|(c, k, append)| Step::Write { c, k, append }),
        (0..3u64).prop_map(|c| Step::Retry { c }),
        (0..3u8).prop_map(|k| Step::Get { k }),
    ]
}

proptest! {
    #[test]
    fn writes_apply_once_and_reads_see_the_model(
        steps in proptest::collection::vec(step(), 0..200),
        restore_at in 0..210u64,
    ) {
        // Clients 0, 1, 2 register at indices 1, 2, 3: those are their ids.
        let register = ClientRequest { client_id: 0, seq: 0, op: Op::RegisterClient };
        let mut log: Vec<Vec<u8>> = (0..3).map(|_| encode_command(&register)).collect();
        let mut expected_reads: Vec<(usize, Option<String>)> = Vec::new();
        let mut model: HashMap<String, String> = HashMap::new();
        let mut applied: HashSet<(u64, u64)> = HashSet::new();
        let mut last: HashMap<u64, ClientRequest> = HashMap::new();
        let mut seq: HashMap<u64, u64> = HashMap::new();
        for s in steps {
            let req = match s {
                Step::Write { c, k, append } => {
                    let n = seq.entry(c).or_insert(0);
                    *n += 1;
                    let (key, value) = (format!("k{k}"), format!("{c}.{n};"));
                    let op = if append { Op::Append { key, value } } else { Op::Put { key, value } };
                    let r = ClientRequest { client_id: c + 1, seq: *n, op };
                    last.insert(c, r.clone());
                    r
                }
                Step::Retry { c } => match last.get(&c) {
                    Some(r) => r.clone(),
                    None => continue,
                },
                Step::Get { k } => ClientRequest { client_id: 99, seq: 0, op: Op::Get { key: format!("k{k}") } },
            };
            // The model: apply each (client, seq) write the first time only.
            match &req.op {
                Op::Put { key, value } if applied.insert((req.client_id, req.seq)) => {
                    model.insert(key.clone(), value.clone());
                }
                Op::Append { key, value } if applied.insert((req.client_id, req.seq)) => {
                    model.entry(key.clone()).or_default().push_str(value);
                }
                Op::Get { key } => expected_reads.push((log.len(), model.get(key).cloned())),
                _ => {}
            }
            log.push(encode_command(&req));
        }
        let reads: HashMap<usize, Option<String>> = expected_reads.into_iter().collect();
        let mut kv = KvStore::new();
        for (i, cmd) in log.iter().enumerate() {
            let index = i as u64 + 1;
            let r = kv.apply(index, cmd);
            if let Some(want) = reads.get(&i) {
                prop_assert_eq!(r, Some(ClientResponse::Ok { value: want.clone() }));
            }
            // A re-delivery of the same index changes nothing.
            prop_assert_eq!(kv.apply(index, cmd), None);
            if index == restore_at {
                let mut restored = KvStore::new();
                restored.restore(&kv.snapshot()).unwrap();
                prop_assert_eq!(&restored, &kv);
                kv = restored;
            }
        }
        for (k, v) in &model {
            prop_assert_eq!(kv.get(k), Some(v.as_str()));
        }
        prop_assert_eq!(kv.len(), model.len());
    }
}
