//! The KV service on the in-memory network with paused tokio time: many
//! concurrent clients, message loss, partitions and restarts. Every
//! recorded history is checked for linearizability.

use futures::future::BoxFuture;
use futures::FutureExt;
use raftkv::client::{Client, ClientConfig, Connector};
use raftkv::codec::{ClientRequest, ClientResponse, Op};
use raftkv::kv::{KvConfig, KvService};
use raftkv::linearizability::{check, CheckResult, KvOp, Recorder};
use raftkv::transport::memory::{Faults, MemNetwork, NetMode};
use raftkv::{MemStorage, Node, NodeConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn addr(id: u64) -> String {
    format!("node-{id}")
}

/// Routes client calls to the services that are up, in memory.
#[derive(Clone, Default)]
struct Directory(Arc<Mutex<HashMap<String, Arc<KvService>>>>);

impl Directory {
    fn get(&self, a: &str) -> Option<Arc<KvService>> {
        self.0.lock().unwrap().get(a).cloned()
    }
}

impl Connector for Directory {
    fn call<'a>(
        &'a mut self,
        a: &'a str,
        request: ClientRequest,
    ) -> BoxFuture<'a, Result<ClientResponse, String>> {
        let svc = self.get(a);
        async move {
            match svc {
                Some(s) => Ok(s.handle(request).await),
                None => Err(format!("{a} is down")),
            }
        }
        .boxed()
    }
}

struct Cluster {
    n: u64,
    net: MemNetwork,
    dir: Directory,
    storages: HashMap<u64, MemStorage>,
    seed: u64,
}

impl Cluster {
    async fn new(n: u64, faults: Faults, seed: u64) -> Cluster {
        let mut c = Cluster {
            n,
            net: MemNetwork::new(NetMode::Auto, faults, seed),
            dir: Directory::default(),
            storages: (1..=n).map(|i| (i, MemStorage::new())).collect(),
            seed,
        };
        for id in 1..=n {
            c.start(id).await;
        }
        c
    }

    async fn start(&mut self, id: u64) {
        let peers = (1..=self.n).filter(|p| *p != id).collect();
        let mut cfg = NodeConfig::new(id, peers);
        self.seed += 1;
        cfg.seed = Some(self.seed);
        let (node, apply_rx) = Node::spawn(
            cfg,
            Box::new(self.storages[&id].clone()),
            self.net.endpoint(id),
        )
        .await
        .expect("spawn node");
        self.net.register(node.clone());
        let addrs = (1..=self.n).map(|i| (i, addr(i))).collect();
        let svc = KvService::start(node, apply_rx, addrs, KvConfig::default());
        self.dir.0.lock().unwrap().insert(addr(id), svc);
    }

    async fn stop(&mut self, id: u64) {
        self.net.unregister(id);
        let svc = self.dir.0.lock().unwrap().remove(&addr(id));
        if let Some(svc) = svc {
            svc.node().clone().shutdown().await;
        }
    }

    async fn restart(&mut self, id: u64) {
        self.stop(id).await;
        self.start(id).await;
    }

    fn client(&self, op_timeout: Duration) -> Client<Directory> {
        let cfg = ClientConfig {
            op_timeout,
            attempt_timeout: Duration::from_secs(4),
            backoff: (Duration::from_millis(10), Duration::from_millis(100)),
        };
        Client::with_connector((1..=self.n).map(addr).collect(), self.dir.clone(), cfg)
            .expect("non-empty cluster")
    }
}

/// One client session issuing random operations on a few keys until told to
/// stop; every operation goes into the recorder.
async fn client_loop(
    mut client: Client<Directory>,
    me: u64,
    keys: usize,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut ok, mut failed) = (0, 0);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("k{}", rng.gen_range(0..keys));
        let value = format!("{me}.{n};");
        let (op, kop) = match rng.gen_range(0..10) {
            0..=1 => (
                Op::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                KvOp::Put(value),
            ),
            2..=5 => (
                Op::Append {
                    key: key.clone(),
                    value: value.clone(),
                },
                KvOp::Append(value),
            ),
            _ => (Op::Get { key: key.clone() }, KvOp::Get(None)),
        };
        let h = rec.begin(me, &key, kop);
        match client.call(op).await {
            Ok(read) => {
                rec.end(h, read);
                ok += 1;
            }
            // Unknown outcome: stays open in the history.
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
    }
    (ok, failed)
}

async fn run_chaos(seed: u64, faults: Faults, clients: u64, rounds: usize) {
    let mut cluster = Cluster::new(3, faults, seed).await;
    let rec = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(client_loop(
            cluster.client(Duration::from_secs(8)),
            c,
            3,
            rec.clone(),
            stop.clone(),
            seed * 1000 + c,
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2500))).await;
        match rng.gen_range(0..5) {
            0 => {
                let lone = rng.gen_range(1..=3);
                cluster.net.partition([lone]);
            }
            1 => cluster.net.heal(),
            2 => {
                let id = rng.gen_range(1..=3);
                cluster.restart(id).await;
            }
            3 => {
                let id = rng.gen_range(1..=3);
                cluster.net.isolate(id);
            }
            _ => {
                cluster.net.heal();
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
        }
    }
    cluster.net.heal();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap();
        ok += o;
        failed += f;
    }
    let history = rec.history();
    let reads = history
        .iter()
        .filter(|o| matches!(o.op, KvOp::Get(Some(_))) && o.ret.is_some())
        .count();
    eprintln!(
        "seed {seed}: {} ops ({ok} ok, {failed} unknown), {reads} non-empty reads",
        history.len()
    );
    // Not vacuous: the cluster made progress and reads saw values.
    assert!(ok > 100, "only {ok} operations succeeded");
    assert!(reads > 20, "only {reads} reads returned a value");
    assert_eq!(check(&history, 50_000_000), CheckResult::Linearizable);
}

#[tokio::test(start_paused = true)]
async fn kv_linearizable_reliable_net_with_partitions_and_restarts() {
    run_chaos(1, Faults::reliable(), 8, 12).await;
}

#[tokio::test(start_paused = true)]
async fn kv_linearizable_unreliable_net_with_partitions_and_restarts() {
    for seed in [2, 3] {
        run_chaos(seed, Faults::unreliable(), 6, 10).await;
    }
}

/// A retried write (same client id and sequence number) applies once, even
/// when the first attempt went to a node that then lost leadership.
#[tokio::test(start_paused = true)]
async fn kv_retried_append_applies_once() {
    let cluster = Cluster::new(3, Faults::reliable(), 11).await;
    let mut client = cluster.client(Duration::from_secs(10));
    client.put("k", "").await.unwrap();
    let leader = client.last_target().to_string();
    let svc = cluster.dir.get(&leader).unwrap();
    let req = ClientRequest {
        client_id: 42,
        seq: 1,
        op: Op::Append {
            key: "k".into(),
            value: "x".into(),
        },
    };
    for _ in 0..3 {
        assert_eq!(
            svc.handle(req.clone()).await,
            ClientResponse::Ok { value: None }
        );
    }
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some("x"));
}

/// Killing and restarting every node rebuilds the KV state from the log.
#[tokio::test(start_paused = true)]
async fn kv_state_rebuilt_after_restarting_every_node() {
    let mut cluster = Cluster::new(3, Faults::reliable(), 21).await;
    let mut client = cluster.client(Duration::from_secs(10));
    for i in 0..20 {
        client.append("log", &format!("{i},")).await.unwrap();
        client
            .put(&format!("key{i}"), &i.to_string())
            .await
            .unwrap();
    }
    for id in 1..=3 {
        cluster.stop(id).await;
    }
    for id in 1..=3 {
        cluster.start(id).await;
    }
    let mut client = cluster.client(Duration::from_secs(10));
    let expected: String = (0..20).map(|i| format!("{i},")).collect();
    assert_eq!(client.get("log").await.unwrap(), Some(expected));
    for i in 0..20 {
        assert_eq!(
            client.get(&format!("key{i}")).await.unwrap(),
            Some(i.to_string())
        );
    }
    // Every replica converges to the same state machine once it applied
    // the same prefix.
    tokio::time::sleep(Duration::from_secs(2)).await;
    client.put("sync", "1").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stores: Vec<_> = (1..=3)
        .map(|i| cluster.dir.get(&addr(i)).unwrap())
        .map(|s| (s.last_applied(), s.store_snapshot()))
        .collect();
    assert!(stores.iter().all(|s| s == &stores[0]), "replicas diverge");
}

/// A leader cut off in a minority fails its pending requests and clients
/// complete elsewhere.
#[tokio::test(start_paused = true)]
async fn kv_client_moves_on_when_leader_is_partitioned() {
    let cluster = Cluster::new(3, Faults::reliable(), 31).await;
    let mut client = cluster.client(Duration::from_secs(20));
    client.put("k", "1").await.unwrap();
    let leader = client.last_target().to_string();
    let leader_id: u64 = leader.trim_start_matches("node-").parse().unwrap();
    cluster.net.isolate(leader_id);
    client.put("k", "2").await.unwrap();
    assert_ne!(client.last_target(), leader);
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some("2"));
}
