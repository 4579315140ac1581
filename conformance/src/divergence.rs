//! Comparing an expected abstract state (the model's) with an actual one
//! (the implementation's), field by field, and the divergence report.

use raft_model::trace::{AbstractServer, AbstractState};
use raft_model::types::{Action, Message};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One field that differs: a path such as `servers[1].commit_index` or
/// `network`, and both values rendered as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub expected: String,
    pub actual: String,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}

fn diff_server(i: usize, e: &AbstractServer, a: &AbstractServer, out: &mut Vec<FieldDiff>) {
    let mut field = |name: &str, ev: String, av: String| {
        if ev != av {
            out.push(FieldDiff {
                field: format!("servers[{i}].{name}"),
                expected: ev,
                actual: av,
            });
        }
    };
    // Every field, by name: a field added to AbstractServer does not
    // compile here until it is compared.
    let AbstractServer {
        term,
        voted_for,
        role,
        snapshot_index,
        snapshot_term,
        snapshot_values,
        log,
        commit_index,
        votes_granted,
        next_index,
        match_index,
        durable_term,
        durable_voted_for,
        durable_snapshot_index,
        durable_snapshot_term,
        durable_snapshot_values,
        durable_log,
        outbox,
    } = e;
    field("term", json(term), json(&a.term));
    field("voted_for", json(voted_for), json(&a.voted_for));
    field("role", json(role), json(&a.role));
    field(
        "snapshot_index",
        json(snapshot_index),
        json(&a.snapshot_index),
    );
    field("snapshot_term", json(snapshot_term), json(&a.snapshot_term));
    field(
        "snapshot_values",
        json(snapshot_values),
        json(&a.snapshot_values),
    );
    field("log", json(log), json(&a.log));
    field("commit_index", json(commit_index), json(&a.commit_index));
    field("votes_granted", json(votes_granted), json(&a.votes_granted));
    field("next_index", json(next_index), json(&a.next_index));
    field("match_index", json(match_index), json(&a.match_index));
    field("durable_term", json(durable_term), json(&a.durable_term));
    field(
        "durable_voted_for",
        json(durable_voted_for),
        json(&a.durable_voted_for),
    );
    field(
        "durable_snapshot_index",
        json(durable_snapshot_index),
        json(&a.durable_snapshot_index),
    );
    field(
        "durable_snapshot_term",
        json(durable_snapshot_term),
        json(&a.durable_snapshot_term),
    );
    field(
        "durable_snapshot_values",
        json(durable_snapshot_values),
        json(&a.durable_snapshot_values),
    );
    field("durable_log", json(durable_log), json(&a.durable_log));
    field("outbox", json(outbox), json(&a.outbox));
}

fn counts(msgs: &[Message]) -> BTreeMap<&Message, i64> {
    let mut c = BTreeMap::new();
    for m in msgs {
        *c.entry(m).or_insert(0) += 1;
    }
    c
}

/// Every field in which `actual` differs from `expected`; empty when they
/// agree. The network is compared as a multiset (order does not matter, the
/// number of copies does); a difference lists what is missing and what is
/// extra instead of two long lists.
pub fn diff(expected: &AbstractState, actual: &AbstractState) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    if expected.servers.len() != actual.servers.len() {
        out.push(FieldDiff {
            field: "servers.len".into(),
            expected: expected.servers.len().to_string(),
            actual: actual.servers.len().to_string(),
        });
    }
    for (i, (e, a)) in expected.servers.iter().zip(&actual.servers).enumerate() {
        diff_server(i, e, a, &mut out);
    }
    let ec = counts(&expected.network);
    let ac = counts(&actual.network);
    if ec != ac {
        let mut missing = Vec::new();
        let mut extra = Vec::new();
        for (m, &n) in &ec {
            for _ in 0..(n - ac.get(m).copied().unwrap_or(0)).max(0) {
                missing.push(*m);
            }
        }
        for (m, &n) in &ac {
            for _ in 0..(n - ec.get(m).copied().unwrap_or(0)).max(0) {
                extra.push(*m);
            }
        }
        out.push(FieldDiff {
            field: "network (in flight only in expected | only in actual)".into(),
            expected: json(&missing),
            actual: json(&extra),
        });
    }
    let norm = |p: &Option<Vec<u8>>| {
        p.as_ref().map(|g| {
            let mut g = g.clone();
            g.sort_unstable();
            g
        })
    };
    if norm(&expected.partition) != norm(&actual.partition) {
        out.push(FieldDiff {
            field: "partition".into(),
            expected: json(&expected.partition),
            actual: json(&actual.partition),
        });
    }
    out
}

/// Field-by-field difference of two server views (a recorded node state
/// against the model's), fields named `servers[i].<field>`.
pub fn diff_view(
    i: usize,
    e: &crate::mapping::ServerView,
    a: &crate::mapping::ServerView,
) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut field = |name: &str, ev: String, av: String| {
        if ev != av {
            out.push(FieldDiff {
                field: format!("servers[{i}].{name}"),
                expected: ev,
                actual: av,
            });
        }
    };
    field("term", json(&e.term), json(&a.term));
    field("voted_for", json(&e.voted_for), json(&a.voted_for));
    field("role", json(&e.role), json(&a.role));
    field("commit_index", json(&e.commit_index), json(&a.commit_index));
    field(
        "votes_granted",
        json(&e.votes_granted),
        json(&a.votes_granted),
    );
    field("next_index", json(&e.next_index), json(&a.next_index));
    field("match_index", json(&e.match_index), json(&a.match_index));
    field("snapshot", json(&e.snapshot), json(&a.snapshot));
    field("log", json(&e.log), json(&a.log));
    field("durable_term", json(&e.durable_term), json(&a.durable_term));
    field(
        "durable_snapshot",
        json(&e.durable_snapshot),
        json(&a.durable_snapshot),
    );
    field(
        "durable_voted_for",
        json(&e.durable_voted_for),
        json(&a.durable_voted_for),
    );
    field("durable_log", json(&e.durable_log), json(&a.durable_log));
    field("outbox", json(&e.outbox), json(&a.outbox));
    out
}

/// Multiset difference of two message lists as one field (or none).
pub fn diff_messages(name: &str, expected: &[Message], actual: &[Message]) -> Option<FieldDiff> {
    let ec = counts(expected);
    let ac = counts(actual);
    if ec == ac {
        return None;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for (m, &n) in &ec {
        for _ in 0..(n - ac.get(m).copied().unwrap_or(0)).max(0) {
            missing.push(*m);
        }
    }
    for (m, &n) in &ac {
        for _ in 0..(n - ec.get(m).copied().unwrap_or(0)).max(0) {
            extra.push(*m);
        }
    }
    Some(FieldDiff {
        field: format!("{name} (only in expected | only in actual)"),
        expected: json(&missing),
        actual: json(&extra),
    })
}

/// The first step at which a replay or a validation went wrong.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    /// The trace (file name or generated label).
    pub trace: String,
    /// 1-based step number; 0 means the initial state.
    pub step: usize,
    pub steps_total: usize,
    /// The event of that step (None for the initial state).
    pub event: Option<Action>,
    /// Why the step could not be applied at all (e.g. a message to deliver
    /// is not in flight in the implementation), if that is the failure.
    pub error: Option<String>,
    /// Expected (model) vs actual (implementation), field by field.
    pub fields: Vec<FieldDiff>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "DIVERGENCE in {}", self.trace)?;
        match &self.event {
            Some(ev) => writeln!(
                f,
                "  step {} of {}: {}",
                self.step,
                self.steps_total,
                json(ev)
            )?,
            None => writeln!(f, "  initial state (before step 1 of {})", self.steps_total)?,
        }
        if let Some(e) = &self.error {
            writeln!(f, "  error: {e}")?;
        }
        for d in &self.fields {
            writeln!(f, "  {}", d.field)?;
            writeln!(f, "    expected: {}", d.expected)?;
            writeln!(f, "    actual:   {}", d.actual)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_model::types::{Body, Entry, RequestVote, Role};

    fn server() -> AbstractServer {
        AbstractServer {
            term: 1,
            snapshot_index: 0,
            snapshot_term: 0,
            snapshot_values: vec![],
            durable_snapshot_index: 0,
            durable_snapshot_term: 0,
            durable_snapshot_values: vec![],
            voted_for: None,
            role: Role::Follower,
            log: vec![],
            commit_index: 0,
            votes_granted: vec![],
            next_index: vec![],
            match_index: vec![],
            durable_term: 1,
            durable_voted_for: None,
            durable_log: vec![],
            outbox: vec![],
        }
    }

    fn rv(from: u8, to: u8) -> Message {
        Message {
            from,
            to,
            body: Body::RequestVote(RequestVote {
                term: 1,
                last_log_index: 0,
                last_log_term: 0,
            }),
        }
    }

    fn state() -> AbstractState {
        AbstractState {
            servers: vec![server(), server(), server()],
            network: vec![rv(0, 1), rv(0, 2)],
            partition: None,
        }
    }

    #[test]
    fn equal_states_have_no_diff_regardless_of_network_order() {
        let a = state();
        let mut b = state();
        b.network.reverse();
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn each_differing_field_is_named() {
        let a = state();
        let mut b = state();
        b.servers[1].commit_index = 2;
        b.servers[2].log.push(Entry { term: 1, value: 3 });
        b.servers[0].snapshot_term = 1;
        b.servers[0].durable_snapshot_values = vec![4];
        b.partition = Some(vec![2]);
        let d = diff(&a, &b);
        let fields: Vec<_> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "servers[0].snapshot_term",
                "servers[0].durable_snapshot_values",
                "servers[1].commit_index",
                "servers[2].log",
                "partition"
            ]
        );
        assert_eq!(d[2].expected, "0");
        assert_eq!(d[2].actual, "2");
    }

    #[test]
    fn network_is_a_multiset() {
        let a = state();
        let mut b = state();
        b.network.push(rv(0, 1)); // one copy too many
        b.network.retain(|m| m.to != 2); // one missing
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert!(d[0].field.starts_with("network"));
        assert_eq!(d[0].expected, json(&vec![rv(0, 2)]));
        assert_eq!(d[0].actual, json(&vec![rv(0, 1)]));
    }

    #[test]
    fn report_names_step_event_and_fields() {
        let a = state();
        let mut b = state();
        b.servers[0].term = 2;
        let div = Divergence {
            trace: "t.json".into(),
            step: 3,
            steps_total: 5,
            event: Some(Action::Timeout { server: 0 }),
            error: None,
            fields: diff(&a, &b),
        };
        let text = div.to_string();
        assert!(text.contains("step 3 of 5"), "{text}");
        assert!(text.contains("Timeout"), "{text}");
        assert!(text.contains("servers[0].term"), "{text}");
        assert!(text.contains("expected: 1"), "{text}");
        assert!(text.contains("actual:   2"), "{text}");
    }
}
