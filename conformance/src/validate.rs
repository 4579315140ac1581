//! Implementation → model: run real nodes under seeded random events chosen
//! by the harness, record every event with the abstract state the
//! implementation reached, and check that each step is a transition the
//! model allows: from `State::from_abstract(previous)`, the event must be
//! enabled and the model's next state must equal the recorded one.

use crate::cluster::Cluster;
use crate::divergence::{diff, Divergence};
use raft_model::trace::{AbstractState, Trace, TraceKind, TraceStep};
use raft_model::types::{Action, Message, Role, ServerId, Term, Value};
use raft_model::{Config, NetworkKind, RaftModel, State};
use raftkv::node::ImplBug;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::Model;
use std::path::Path;

/// Most client requests per run (a choice of run length: the model's values
/// are `u32`).
pub const MAX_VALUES: Value = 8;
/// The harness stops issuing Timeouts at this term (a choice of run shape:
/// runs stay short enough to read).
const TERM_CAP: Term = 200;
/// Above this many messages in flight the harness only delivers or drops,
/// so the network stays small and deliveries stay likely.
const INFLIGHT_CAP: usize = 24;

/// Model bounds wide enough that no bound disables an event the harness
/// picks: budgets are zero after `from_abstract`, so every fault budget of
/// one or more allows one more fault per step.
pub fn validation_config(servers: u8) -> Config {
    Config {
        servers,
        max_term: 254,
        max_requests: MAX_VALUES,
        max_inflight: u8::MAX,
        max_restarts: u8::MAX,
        max_partitions: u8::MAX,
        max_duplicates: u8::MAX,
        max_snapshots: u8::MAX,
        network: NetworkKind::Unordered,
        // The harness cluster follows every event with the node's Persist
        // (`Cluster::start_traced`); the records it writes are validated
        // with `recorded_config` (async) afterwards.
        persist: raft_model::PersistMode::Sync,
        max_batch: Some(crate::mapping::IMPL_MAX_BATCH),
        bug: None,
    }
}

#[derive(Debug)]
pub struct ValidateOutcome {
    pub seed: u64,
    pub steps: usize,
    /// The first step the model does not allow.
    pub violation: Option<Divergence>,
    /// The recorded trace, up to and including the violating step.
    pub trace: Trace,
}

/// Picks the next event from what the implementation's state allows.
fn choose(rng: &mut StdRng, st: &AbstractState, requests: Value) -> Option<Action> {
    let n = st.servers.len() as ServerId;
    let cut = |m: &Message| {
        st.partition
            .as_ref()
            .is_some_and(|g| g.contains(&m.from) != g.contains(&m.to))
    };
    let deliverable: Vec<&Message> = st.network.iter().filter(|m| !cut(m)).collect();
    let leaders: Vec<ServerId> = (0..n)
        .filter(|&i| st.servers[usize::from(i)].role == Role::Leader)
        .collect();
    let can_timeout: Vec<ServerId> = (0..n)
        .filter(|&i| {
            let s = &st.servers[usize::from(i)];
            s.role != Role::Leader && s.term < TERM_CAP
        })
        .collect();
    // R-snap-2: a server with something committed past its snapshot.
    let can_snapshot: Vec<ServerId> = (0..n)
        .filter(|&i| {
            let s = &st.servers[usize::from(i)];
            s.commit_index > s.snapshot_index
        })
        .collect();
    let crowded = st.network.len() >= INFLIGHT_CAP;
    // (weight, category) of the categories that have an instance now.
    let mut cats: Vec<(u32, u8)> = Vec::new();
    if !deliverable.is_empty() {
        cats.push((50, 0));
    }
    if !st.network.is_empty() {
        cats.push((6, 1)); // drop
    }
    if !crowded {
        if !can_timeout.is_empty() {
            cats.push((8, 2));
        }
        if !leaders.is_empty() {
            cats.push((12, 3)); // heartbeat
            if requests < MAX_VALUES {
                cats.push((8, 4)); // client request
            }
        }
        if !deliverable.is_empty() {
            cats.push((4, 5)); // duplicate
        }
        cats.push((3, 6)); // restart
        if n > 1 {
            cats.push((2, 7)); // partition or heal
        }
    }
    if !can_snapshot.is_empty() {
        cats.push((8, 8)); // snapshot
    }
    let total: u32 = cats.iter().map(|c| c.0).sum();
    if total == 0 {
        return None;
    }
    let mut pick = rng.gen_range(0..total);
    let cat = cats
        .iter()
        .find(|(w, _)| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .map(|c| c.1)?;
    let any = |rng: &mut StdRng, v: &[ServerId]| v[rng.gen_range(0..v.len())];
    Some(match cat {
        0 => Action::Deliver {
            message: deliverable[rng.gen_range(0..deliverable.len())].clone(),
        },
        1 => Action::Drop {
            message: st.network[rng.gen_range(0..st.network.len())].clone(),
        },
        2 => Action::Timeout {
            server: any(rng, &can_timeout),
        },
        3 => Action::Heartbeat {
            server: any(rng, &leaders),
        },
        4 => Action::ClientRequest {
            server: any(rng, &leaders),
            value: requests + 1,
        },
        5 => Action::Duplicate {
            message: deliverable[rng.gen_range(0..deliverable.len())].clone(),
        },
        6 => Action::Restart {
            server: rng.gen_range(0..n),
        },
        8 => {
            // The state machine may snapshot anything it has applied: an
            // index above the snapshot, at most the commit index.
            let server = any(rng, &can_snapshot);
            let s = &st.servers[usize::from(server)];
            Action::Snapshot {
                server,
                index: rng.gen_range(s.snapshot_index + 1..=s.commit_index),
            }
        }
        _ => {
            if st.partition.is_some() {
                Action::Heal
            } else {
                // A random non-empty proper subset.
                let mask = rng.gen_range(1..(1u32 << n) - 1);
                Action::Partition {
                    group: (0..n).filter(|&i| mask & (1 << i) != 0).collect(),
                }
            }
        }
    })
}

/// Runs one seeded validation of `steps` events on a fresh `servers`-node
/// cluster. Harness failures (cannot start nodes) are errors; anything the
/// implementation does that the model does not allow is a violation.
pub async fn validate(
    servers: u8,
    steps: usize,
    seed: u64,
    bug: Option<ImplBug>,
    root: &Path,
) -> anyhow::Result<ValidateOutcome> {
    let cfg = validation_config(servers);
    cfg.validate().map_err(anyhow::Error::msg)?;
    let model = RaftModel::new(cfg.clone());
    // The nodes also record their steps (NDJSON, docs/trace-format.md):
    // the records are validated afterwards with one model state carried
    // forward (ghost properties, durable part), as `validate --trace` does.
    let sink = raftkv::trace::TraceSink::memory();
    let mut cluster =
        Cluster::start_traced(usize::from(servers), bug, root, Some(sink.clone())).await?;
    let label = format!("validate seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let initial = cluster.abstract_state().await?;
    let mut prev = initial.clone();
    let mut recorded = Vec::with_capacity(steps);
    let mut requests: Value = 0;
    let mut violation = None;
    for k in 0..steps {
        let Some(action) = choose(&mut rng, &prev, requests) else {
            break;
        };
        let fail = |error: Option<String>, fields| Divergence {
            trace: label.clone(),
            step: k + 1,
            steps_total: steps,
            event: Some(action.clone()),
            error,
            fields,
        };
        if let Err(e) = cluster.apply(&action).await {
            violation = Some(fail(
                Some(format!("the implementation refused the event: {e}")),
                vec![],
            ));
            break;
        }
        if matches!(action, Action::ClientRequest { .. }) {
            requests += 1;
        }
        let next = match cluster.abstract_state().await {
            Ok(s) => s,
            Err(e) => {
                violation = Some(fail(Some(e.to_string()), vec![]));
                break;
            }
        };
        recorded.push(TraceStep {
            action: action.clone(),
            state: next.clone(),
        });
        let mut from = State::from_abstract(&prev);
        // Values are fed 1, 2, 3, ...: the counter is the number fed so far.
        from.requests = requests - Value::from(matches!(action, Action::ClientRequest { .. }));
        match model.next_state(&from, action.clone()) {
            None => {
                violation = Some(fail(
                    Some("the model does not allow this event in the previous state".into()),
                    vec![],
                ));
                break;
            }
            Some(expected) => {
                let fields = diff(&expected.to_abstract(), &next);
                if !fields.is_empty() {
                    violation = Some(fail(
                        Some("the model reaches a different state (expected = model, actual = implementation)".into()),
                        fields,
                    ));
                    break;
                }
            }
        }
        prev = next;
    }
    cluster.shutdown().await;
    if violation.is_none() {
        violation = check_records(&sink, &label)?;
    }
    let steps_done = recorded.len();
    let trace = Trace::new(TraceKind::Recorded, None, cfg, initial, recorded);
    Ok(ValidateOutcome {
        seed,
        steps: steps_done,
        violation,
        trace,
    })
}

/// The nodes' recorded steps validated against the carried model state; a
/// violation is reported in the recorded steps' numbering.
fn check_records(
    sink: &raftkv::trace::TraceSink,
    label: &str,
) -> anyhow::Result<Option<Divergence>> {
    let lines = sink
        .lines()
        .map_err(|e| anyhow::anyhow!("cannot read the recorded steps: {e}"))?;
    let name = format!("{label} (recorded steps)");
    let recs = crate::steps::parse_text(&lines.join("\n"), &name)?;
    let total = recs.len();
    let out = crate::recorded::validate_records(vec![recs])?;
    Ok(out.violation.map(|v| {
        let mut error = format!(
            "recorded step of node {} seq {} ({}): {}",
            v.node,
            v.seq,
            v.event.name(),
            v.error
        );
        if let Some(p) = &v.property {
            error.push_str(&format!("; property violated: {p}"));
        }
        Divergence {
            trace: name,
            step: v.step,
            steps_total: total,
            event: v.action,
            error: Some(error),
            fields: v.fields,
        }
    }))
}

/// Totals of `raft-conform validate`.
#[derive(Debug)]
pub struct ValidateSummary {
    /// Runs done, in seed order (stops after the batch with the first violation).
    pub outcomes: Vec<ValidateOutcome>,
    pub seconds: f64,
}

impl ValidateSummary {
    pub fn steps(&self) -> usize {
        self.outcomes.iter().map(|o| o.steps).sum()
    }
    pub fn violations(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.violation.is_some())
            .count()
    }
    /// The run with the lowest seed that the model does not allow.
    pub fn first(&self) -> Option<&ValidateOutcome> {
        self.outcomes.iter().find(|o| o.violation.is_some())
    }
}

/// Validates seeds `seeds`, `jobs` runs at a time, stopping after the first
/// batch that has a violation. Call from within a multi-thread runtime.
pub async fn validate_many(
    servers: u8,
    steps: usize,
    seeds: std::ops::Range<u64>,
    bug: Option<ImplBug>,
    jobs: usize,
    root: &Path,
) -> anyhow::Result<ValidateSummary> {
    let started = std::time::Instant::now();
    let seeds: Vec<u64> = seeds.collect();
    let mut outcomes = Vec::new();
    for chunk in seeds.chunks(jobs.max(1)) {
        let mut set = tokio::task::JoinSet::new();
        for &seed in chunk {
            let root = root.to_path_buf();
            set.spawn(async move { validate(servers, steps, seed, bug, &root).await });
        }
        let mut batch = Vec::new();
        while let Some(r) = set.join_next().await {
            batch.push(r.map_err(|e| anyhow::anyhow!("validation task failed: {e}"))??);
        }
        batch.sort_by_key(|o| o.seed);
        let stop = batch.iter().any(|o| o.violation.is_some());
        outcomes.extend(batch);
        if stop {
            break;
        }
    }
    Ok(ValidateSummary {
        outcomes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
