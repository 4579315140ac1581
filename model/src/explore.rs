//! `raft-model explore`: the stateright Explorer on the model.
//!
//! The Explorer shows a model's `Debug` state, `format_step` and `as_svg`.
//! It serves `RaftExplorer`, a view of `RaftModel` with the same states,
//! actions and properties (so the checker's links resolve to the same
//! paths), whose state prints as per-server lines (`view`) and whose
//! diagram names the command serving it (`--addr` included).

mod proxy;
mod view;

use anyhow::{bail, Context, Result};
use raft_model::properties::{REACHABILITY, SAFETY};
use raft_model::types::Action;
use raft_model::{RaftModel, State};
use stateright::{Model, Path, Property};
use std::fmt;
use std::net::{TcpListener, ToSocketAddrs};

/// A state as the Explorer prints it (`Debug` is the readable view).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shown(pub State);

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&view::state_text(&self.0))
    }
}

/// `RaftModel` as the Explorer presents it.
pub struct RaftExplorer {
    pub model: RaftModel,
    /// The address it is served on, for the command in the diagram.
    pub addr: String,
}

// Property conditions are plain `fn`s: one instance per table entry.
fn safety<const K: usize>(m: &RaftExplorer, s: &Shown) -> bool {
    (SAFETY[K].1)(&m.model, &s.0)
}

fn reachability<const K: usize>(m: &RaftExplorer, s: &Shown) -> bool {
    (REACHABILITY[K].1)(&m.model, &s.0)
}

type Condition = fn(&RaftExplorer, &Shown) -> bool;

const SAFETY_FNS: [Condition; 11] = [
    safety::<0>,
    safety::<1>,
    safety::<2>,
    safety::<3>,
    safety::<4>,
    safety::<5>,
    safety::<6>,
    safety::<7>,
    safety::<8>,
    safety::<9>,
    safety::<10>,
];
const REACHABILITY_FNS: [Condition; 7] = [
    reachability::<0>,
    reachability::<1>,
    reachability::<2>,
    reachability::<3>,
    reachability::<4>,
    reachability::<5>,
    reachability::<6>,
];
// A property added to the tables needs its instance above.
const _: () = assert!(SAFETY_FNS.len() == SAFETY.len());
const _: () = assert!(REACHABILITY_FNS.len() == REACHABILITY.len());

fn condition(name: &str) -> Condition {
    let in_table =
        |t: &[(&str, raft_model::properties::Condition)]| t.iter().position(|(n, _)| *n == name);
    match (in_table(SAFETY), in_table(REACHABILITY)) {
        (Some(k), _) => SAFETY_FNS[k],
        (None, Some(k)) => REACHABILITY_FNS[k],
        (None, None) => unreachable!("property {name} is in neither table"),
    }
}

impl Model for RaftExplorer {
    type State = Shown;
    type Action = Action;

    fn init_states(&self) -> Vec<Shown> {
        self.model.init_states().into_iter().map(Shown).collect()
    }

    fn actions(&self, s: &Shown, actions: &mut Vec<Action>) {
        self.model.actions(&s.0, actions)
    }

    fn next_state(&self, last: &Shown, action: Action) -> Option<Shown> {
        self.model.next_state(&last.0, action).map(Shown)
    }

    fn format_action(&self, action: &Action) -> String {
        self.model.format_action(action)
    }

    fn format_step(&self, last: &Shown, action: Action) -> Option<String> {
        let after = self.model.next_state(&last.0, action.clone())?;
        Some(view::step_text(&self.model, &action, &after))
    }

    fn as_svg(&self, path: Path<Shown, Action>) -> Option<String> {
        let pairs: Vec<(State, Option<Action>)> =
            path.into_vec().into_iter().map(|(s, a)| (s.0, a)).collect();
        let svg = raft_model::svg::diagram_of_path(&self.model, &pairs, Some(&self.addr));
        let ghosts = pairs
            .last()
            .map_or(String::new(), |(s, _)| view::ghost_details(s));
        Some(svg + &ghosts)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.model
            .properties()
            .into_iter()
            .map(|p| Property {
                expectation: p.expectation,
                name: p.name,
                condition: condition(p.name),
            })
            .collect()
    }

    fn within_boundary(&self, s: &Shown) -> bool {
        self.model.within_boundary(&s.0)
    }
}

/// The state at the Explorer's action indices (the first picks an initial
/// state; each next one indexes `actions`, as stateright's paths do).
fn state_at(model: &RaftModel, indices: &[usize]) -> Option<State> {
    let (&first, rest) = indices.split_first()?;
    let mut s = model.init_states().into_iter().nth(first)?;
    for &k in rest {
        s = step(model, &s, k)?;
    }
    Some(s)
}

fn step(model: &RaftModel, s: &State, k: usize) -> Option<State> {
    let mut actions = Vec::new();
    model.actions(s, &mut actions);
    model.next_state(s, actions.into_iter().nth(k)?)
}

/// Rewrites stateright's answer to `/.states/<indices>`: each safety
/// property that a listed step's state violates is marked as discovered at
/// that step. The UI's per-state property list then says "Counterexample
/// found" there instead of "Safety holds" (the Explorer's own on-demand
/// search has not met the state of a link opened directly). None: no change.
pub fn mark_violations(model: &RaftModel, target: &str, body: &[u8]) -> Option<Vec<u8>> {
    let rest = target.strip_prefix("/.states")?;
    let indices: Vec<usize> = rest
        .split('/')
        .filter(|c| !c.is_empty())
        .map(|c| c.parse().ok())
        .collect::<Option<_>>()?;
    let last = match indices.is_empty() {
        true => None,
        false => Some(state_at(model, &indices)?),
    };
    let mut views: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    for view in views.as_array_mut()? {
        let Some(k) = view["actionIndex"].as_u64().map(|k| k as usize) else {
            continue;
        };
        let state = match &last {
            None => model.init_states().into_iter().nth(k),
            Some(s) => step(model, s, k),
        };
        let Some(state) = state.filter(|_| view.get("state").is_some()) else {
            continue;
        };
        let violated = raft_model::properties::violated(model, &state);
        if violated.is_empty() {
            continue;
        }
        let path: Vec<String> = indices.iter().chain([&k]).map(|i| i.to_string()).collect();
        let Some(props) = view["properties"].as_array_mut() else {
            continue;
        };
        for p in props {
            let named = p[1].as_str().is_some_and(|n| violated.contains(&n));
            if named && p[2].is_null() {
                p[2] = path.join("/").into();
                changed = true;
            }
        }
    }
    if changed {
        serde_json::to_vec(&views).ok()
    } else {
        None
    }
}

/// Serves the Explorer until the process is stopped: stateright's server
/// on a private port, behind the proxy on `addr` (see `proxy`).
pub fn serve(model: RaftModel, addr: &str) -> Result<()> {
    let resolved: Vec<_> = addr
        .to_socket_addrs()
        .with_context(|| format!("invalid --addr {addr:?} (expected HOST:PORT)"))?
        .collect();
    if resolved.is_empty() {
        bail!("--addr {addr:?} resolves to no address");
    }
    // A busy port is a failed operation (exit 1), not bad input.
    let listener = TcpListener::bind(&resolved[..])
        .with_context(|| {
            format!("cannot listen on {addr}: is another Explorer (or program) using it?")
        })
        .map_err(crate::failed)?;
    // stateright binds by address only: a free port is picked and released
    // for it (if another program takes it in between, `ready` fails).
    let backend = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("no free local port for the Explorer")?
        .to_string();
    let cfg = model.cfg.clone();
    let marker = RaftModel::new(cfg.clone());
    let identity = proxy::Identity {
        tag: raft_model::svg::header::bounds_tag(&cfg),
        bounds: raft_model::svg::header::describe_bounds(&cfg),
        command: raft_model::svg::header::explore_command(&cfg, addr),
        rewrite_states: Box::new(move |target, body| mark_violations(&marker, target, body)),
    };
    let explorer = RaftExplorer {
        model,
        addr: addr.to_string(),
    };
    let inner = backend.clone();
    std::thread::spawn(move || {
        explorer.checker().serve(inner);
    });
    // Ready when this model's Explorer answers (it binds in its thread).
    let ready = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        proxy::answers_as_explorer(&backend)
    });
    if !ready {
        bail!("the Explorer did not start on its private port {backend}");
    }
    eprintln!(
        "Explorer for {} at http://{addr}/ (Ctrl-C to stop).\n\
         A link printed by `raft-model check` for other bounds is refused with a \
         message; each diagram's header names the bounds it was drawn with.\n\
         Symmetry reduction does not apply in the Explorer; \"Run to completion\" \
         explores breadth-first and keeps every state in memory.",
        identity.bounds
    );
    proxy::run(listener, backend, identity);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_model::Bug;
    use stateright::Checker;

    #[test]
    fn the_explorer_has_the_models_properties_and_paths() {
        let model = RaftModel::new(Bug::VoteTwice.default_config());
        let explorer = RaftExplorer {
            model: RaftModel::new(Bug::VoteTwice.default_config()),
            addr: "127.0.0.1:1".into(),
        };
        let names = |ps: Vec<&'static str>| ps;
        assert_eq!(
            names(explorer.properties().iter().map(|p| p.name).collect()),
            names(model.properties().iter().map(|p| p.name).collect())
        );
        // Each wrapped condition is its own property's condition.
        let init = model.init_states().remove(0);
        let mut s = init.clone();
        for a in [Action::Timeout { server: 0 }, Action::Persist { server: 0 }] {
            s = model.next_state(&s, a).unwrap();
        }
        for (p, q) in explorer.properties().iter().zip(model.properties()) {
            for st in [&init, &s] {
                assert_eq!(
                    (p.condition)(&explorer, &Shown(st.clone())),
                    (q.condition)(&model, st),
                    "{}",
                    p.name
                );
            }
        }
        // The same action indices lead to the same states.
        let actions = [Action::Timeout { server: 1 }];
        let a = Path::from_actions(&model, init.clone(), &actions).unwrap();
        let b = Path::from_actions(&explorer, Shown(init), &actions).unwrap();
        assert_eq!(a.encode(&model), b.encode(&explorer));
        let svg = explorer.as_svg(b).unwrap();
        assert!(svg.contains("--addr 127.0.0.1:1"), "{svg}");
        assert!(svg.contains("<details>"), "{svg}");
    }

    #[test]
    fn a_violating_step_is_marked_in_the_states_answer() {
        let model = RaftModel::new(Bug::VoteTwice.default_config());
        let found = RaftModel::new(Bug::VoteTwice.default_config())
            .checker()
            .spawn_bfs()
            .join()
            .discovery("VoteOncePerTerm")
            .unwrap()
            .encode(&model);
        let (prefix, last) = found.rsplit_once('/').unwrap();
        // stateright's shape: one view per action of the last state.
        let view = |k: &str| {
            format!(
                r#"{{"action":"a","state":"s","actionIndex":{k},"properties":[["Always","VoteOncePerTerm",null],["Always","ElectionSafety",null]]}}"#
            )
        };
        let body = format!("[{}]", view(last));
        let target = format!("/.states/{prefix}");
        let out = mark_violations(&model, &target, body.as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["properties"][0][2], found.as_str());
        assert!(v[0]["properties"][1][2].is_null(), "only what is violated");
        // A step that violates nothing, and a path that does not exist.
        let init = format!("[{}]", view("0"));
        assert!(mark_violations(&model, "/.states", init.as_bytes()).is_none());
        assert!(mark_violations(&model, "/.states/0/99", body.as_bytes()).is_none());
    }
}
