//! Every copy of every message through a path: the row that put it on the
//! network, and the row that delivered, dropped or lost it.

use super::lamport::Input;
use crate::types::{Action, Message};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum End {
    Delivered(usize),
    Dropped(usize),
    /// Left the network without a Deliver or Drop.
    Vanished(usize),
    /// Sent across a cut: lost in the row that sent it.
    Cut,
    InFlight,
}

/// One copy of a message on the network.
#[derive(Clone, Debug)]
pub(crate) struct Flight {
    pub msg: Message,
    pub sent: usize,
    /// The row of the Duplicate step that made this copy.
    pub dup: Option<usize>,
    pub end: End,
}

/// Follows every copy of every message through the steps.
pub(crate) fn trace_copies(input: &Input) -> Vec<Flight> {
    let mut done = Vec::new();
    let mut live: Vec<Flight> = input
        .initial
        .network
        .iter()
        .map(|m| Flight {
            msg: m.clone(),
            sent: 0,
            dup: None,
            end: End::InFlight,
        })
        .collect();
    for (k, (action, after)) in input.steps.iter().enumerate() {
        let row = k + 1;
        let take = |live: &mut Vec<Flight>, m: &Message| {
            live.iter()
                .position(|c| &c.msg == m)
                .map(|p| live.remove(p))
        };
        match action {
            Action::Deliver { message } | Action::Drop { message } => {
                if let Some(mut c) = take(&mut live, message) {
                    c.end = match action {
                        Action::Deliver { .. } => End::Delivered(row),
                        _ => End::Dropped(row),
                    };
                    done.push(c);
                }
            }
            Action::Duplicate { message } => {
                if let Some(c) = live.iter().find(|c| &c.msg == message) {
                    let mut copy = c.clone();
                    copy.dup = Some(row);
                    live.push(copy);
                }
            }
            _ => {}
        }
        // Reconcile with the network after the step: what is new was sent
        // in this row, what is gone without a Deliver or Drop vanished.
        let mut matched = vec![false; live.len()];
        let mut fresh = Vec::new();
        for m in &after.network {
            match (0..live.len()).find(|&p| !matched[p] && &live[p].msg == m) {
                Some(p) => matched[p] = true,
                None => fresh.push(Flight {
                    msg: m.clone(),
                    sent: row,
                    dup: None,
                    end: End::InFlight,
                }),
            }
        }
        let mut kept = Vec::new();
        for (c, ok) in live.into_iter().zip(matched) {
            if ok {
                kept.push(c);
            } else {
                done.push(Flight {
                    end: End::Vanished(row),
                    ..c
                });
            }
        }
        live = kept;
        live.extend(fresh);
        for m in input.cut_losses.get(k).into_iter().flatten() {
            done.push(Flight {
                msg: m.clone(),
                sent: row,
                dup: None,
                end: End::Cut,
            });
        }
    }
    done.extend(live);
    done
}
