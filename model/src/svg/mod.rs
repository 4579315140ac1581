//! The Explorer's space-time diagram (`Model::as_svg`) and the one-line
//! descriptions of actions, messages and servers that the CLI reports share.
//!
//! Servers are vertical lines and time flows down, one row per step (a
//! Lamport diagram): a message is drawn from the step that put it on the
//! network to the step that delivered it, dropped it, or to the bottom while
//! it is still in flight; a message sent across a partition's cut is lost
//! where it was sent. Under each server are its state after the step (when
//! it changed). The header names the bounds and the command that serves
//! them, and a violated safety property with its meaning; the violating step
//! is highlighted. docs/explorer.md documents the notation.
//!
//! The drawing works on abstract states (docs/trace-format.md), so it can
//! render a trace file as well as an Explorer path.

pub mod colors;
pub mod describe;
mod flights;
pub mod header;
pub mod lamport;
mod legend;

pub use describe::{
    describe_action, describe_body, describe_log, describe_server, has_pending_writes, new_messages,
};

use crate::model::RaftModel;
use crate::state::State;
use crate::trace::AbstractState;
use crate::types::{Action, Message};
use header::{Header, Violation};
use stateright::Model;

/// Draws the path of the Explorer. `RaftModel::as_svg` calls this.
pub fn sequence_diagram(model: &RaftModel, path: &stateright::Path<State, Action>) -> String {
    diagram_of_path(model, &path.clone().into_vec(), None)
}

/// Draws a path given as (state, action that leaves it) pairs; `addr` is
/// the Explorer's address for the command in the header.
pub fn diagram_of_path(
    model: &RaftModel,
    pairs: &[(State, Option<Action>)],
    addr: Option<&str>,
) -> String {
    let Some((first, _)) = pairs.first() else {
        return String::new();
    };
    let initial = first.to_abstract();
    let mut steps = Vec::with_capacity(pairs.len());
    let mut cut_losses = Vec::with_capacity(pairs.len());
    for window in pairs.windows(2) {
        if let Some(action) = &window[0].1 {
            cut_losses.push(lost_to_cut(model, &window[0].0, action, &window[1].0));
            steps.push((action.clone(), window[1].0.to_abstract()));
        }
    }
    let violation = pairs.iter().enumerate().find_map(|(step, (s, _))| {
        let properties = crate::properties::violated(model, s);
        (!properties.is_empty()).then_some(Violation { step, properties })
    });
    let command = match addr {
        Some(addr) => header::explore_command(&model.cfg, addr),
        None => format!("raft-model explore {}", header::config_flags(&model.cfg)),
    };
    lamport::draw(&lamport::Input {
        initial: &initial,
        steps: &steps,
        cut_losses,
        header: Header {
            bounds: Some(header::describe_bounds(&model.cfg)),
            command: Some(command),
            violation,
        },
    })
}

/// The messages a step sent across the active partition's cut, which never
/// entered the network: the step replayed without the cut, less the step.
fn lost_to_cut(model: &RaftModel, before: &State, action: &Action, after: &State) -> Vec<Message> {
    if before.partition == 0 {
        return Vec::new();
    }
    let mut free = before.clone();
    free.partition = 0;
    // Without the cut the step may exceed a bound: then nothing is known.
    let Some(alt) = model.next_state(&free, action.clone()) else {
        return Vec::new();
    };
    let mut remaining: Vec<&Message> = after.network.iter().collect();
    let mut lost = Vec::new();
    for m in &alt.network {
        if let Some(p) = remaining.iter().position(|r| *r == m) {
            remaining.swap_remove(p);
        } else if before.is_cut(m.from, m.to) {
            lost.push(m.clone());
        }
    }
    lost
}

/// Draws a trace file. A trace that replays through the model on its
/// bounds (every checker trace) is drawn as its path, with the header's
/// violation and the partition losses; any other (e.g. recorded from the
/// implementation) as its abstract states, with the bounds only.
pub fn diagram_of_trace(trace: &crate::trace::Trace) -> String {
    let model = RaftModel::new(trace.bounds.clone());
    let init = model.init_states().remove(0);
    let actions: Vec<Action> = trace.steps.iter().map(|s| s.action.clone()).collect();
    if init.to_abstract() == trace.initial {
        if let Some(path) = stateright::Path::from_actions(&model, init, &actions) {
            let pairs = path.into_vec();
            let same = pairs
                .iter()
                .skip(1)
                .zip(&trace.steps)
                .all(|((s, _), step)| s.to_abstract() == step.state);
            if same && pairs.len() == trace.steps.len() + 1 {
                return diagram_of_path(&model, &pairs, None);
            }
        }
    }
    let steps: Vec<_> = trace
        .steps
        .iter()
        .map(|s| (s.action.clone(), s.state.clone()))
        .collect();
    lamport::draw(&lamport::Input {
        initial: &trace.initial,
        steps: &steps,
        cut_losses: Vec::new(),
        header: Header {
            bounds: Some(header::describe_bounds(&trace.bounds)),
            command: None,
            violation: None,
        },
    })
}

/// Draws `initial` followed by each `(action, state after it)`, without a
/// model: no bounds, violation or partition losses.
pub fn sequence_diagram_abstract(
    initial: &AbstractState,
    steps: &[(Action, AbstractState)],
) -> String {
    lamport::draw(&lamport::Input {
        initial,
        steps,
        cut_losses: Vec::new(),
        header: Header::default(),
    })
}

#[cfg(test)]
mod tests;
