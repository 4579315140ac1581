//! The Explorer's state view: the state as a student reads it, instead of
//! the `Debug` dump of the checker's compact encoding (fixed-size arrays,
//! bit masks, ghost records).
//!
//! One line per server (next/match only for the real servers), the network,
//! the partition and the budgets used; the ghost records the properties read
//! are one summary line here and listed in full in a folded section under
//! the diagram (`ghost_details`).

use raft_model::state::{flags, members, State};
use raft_model::svg::describe::esc;
use raft_model::svg::{describe_action, describe_body, describe_server};
use raft_model::types::Action;
use raft_model::RaftModel;
use std::fmt::Write;

/// The state in lines: servers, network, partition, budgets, ghost summary.
pub fn state_text(s: &State) -> String {
    let a = s.to_abstract();
    let mut out = String::new();
    for (i, srv) in a.servers.iter().enumerate() {
        let _ = writeln!(out, "{}", describe_server(i, srv));
    }
    if a.network.is_empty() {
        let _ = writeln!(out, "network: empty");
    } else {
        let _ = writeln!(out, "network ({} in flight):", a.network.len());
        for m in &a.network {
            let _ = writeln!(out, "  {}→{} {}", m.from, m.to, describe_body(&m.body));
        }
    }
    let _ = match &a.partition {
        Some(group) => {
            let rest: Vec<String> = (0..a.servers.len() as u8)
                .filter(|i| !group.contains(i))
                .map(|i| i.to_string())
                .collect();
            let group: Vec<String> = group.iter().map(|i| i.to_string()).collect();
            writeln!(
                out,
                "partition: {{{}}} | {{{}}}",
                group.join(","),
                rest.join(",")
            )
        }
        None => writeln!(out, "partition: none"),
    };
    let _ = writeln!(
        out,
        "used: {} client requests, {} restarts, {} partitions, {} duplicates",
        s.requests, s.restarts, s.partitions, s.duplicates
    );
    let g = &s.ghost;
    let _ = write!(
        out,
        "ghost records (history the properties read; listed under the diagram): \
         {} votes, {} elections, {} quorums, {} commits, flags {}",
        g.votes.len(),
        g.elections.len(),
        g.quorums.len(),
        g.commits.len(),
        flag_names(g.flags)
    );
    out
}

/// A step: the action, then the state after it, then what it violates.
pub fn step_text(model: &RaftModel, action: &Action, after: &State) -> String {
    let mut out = format!("after {}:\n{}", describe_action(action), state_text(after));
    for name in raft_model::properties::violated(model, after) {
        let _ = write!(
            out,
            "\n✗ {name} is violated: {}",
            raft_model::properties::meaning(name)
        );
    }
    out
}

fn flag_names(f: u8) -> String {
    let names = [
        (flags::VIOLATED_APPEND_ONLY, "append-only-violated"),
        (flags::VIOLATED_MINORITY_COMMIT, "minority-commit"),
        (
            flags::VIOLATED_MAJORITY_OVERLAP,
            "majority-overlap-violated",
        ),
        (flags::EVENT_OVERWRITTEN, "overwritten"),
        (flags::EVENT_COMMIT_SURVIVED, "commit-survived-restart"),
        (
            flags::EVENT_COMMIT_BEFORE_OWN_PERSIST,
            "commit-before-own-persist",
        ),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "none".into()
    } else {
        set.join(" ")
    }
}

fn servers(set: u8) -> String {
    let ids: Vec<String> = members(set).map(|i| format!("s{i}")).collect();
    format!("{{{}}}", ids.join(","))
}

/// The ghost records in full, folded (an HTML `<details>` for the Explorer).
pub fn ghost_details(s: &State) -> String {
    let g = &s.ghost;
    let mut lines = Vec::new();
    let values = |set: &raft_model::state::ValueSet| {
        let v: Vec<String> = (1..=s.requests)
            .filter(|v| set.contains(*v))
            .map(|v| format!("v{v}"))
            .collect();
        format!("{{{}}}", v.join(","))
    };
    for v in &g.votes {
        lines.push(format!(
            "vote: T{} s{} voted for s{}, holding {}",
            v.term,
            v.voter,
            v.candidate,
            values(&v.held)
        ));
    }
    for e in &g.elections {
        lines.push(format!("election: T{} leader s{}", e.term, e.leader));
    }
    for q in &g.quorums {
        lines.push(format!(
            "quorum: T{} leader s{} voters {}",
            q.term,
            q.leader,
            servers(q.voters)
        ));
    }
    for c in &g.commits {
        lines.push(format!(
            "commit: index {} entry {}:{} committed in T{} by {}",
            c.index,
            c.entry.term,
            c.entry.value,
            c.term,
            servers(c.quorum)
        ));
    }
    lines.push(format!("flags: {}", flag_names(g.flags)));
    format!(
        "<details><summary>ghost records of the last state ({} votes, {} elections, {} \
         quorums, {} commits)</summary><pre>{}</pre></details>",
        g.votes.len(),
        g.elections.len(),
        g.quorums.len(),
        g.commits.len(),
        esc(&lines.join("\n"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_model::Bug;
    use stateright::Model;

    #[test]
    fn the_view_has_one_line_per_real_server_and_no_debug_dump() {
        let model = RaftModel::new(Bug::VoteTwice.default_config());
        let init = model.init_states().remove(0);
        let a = Action::Timeout { server: 1 };
        let after = model.next_state(&init, a.clone()).unwrap();
        let text = step_text(&model, &a, &after);
        assert!(
            text.starts_with("after Timeout s1:\ns0 T0 follower"),
            "{text}"
        );
        assert!(text.contains("s1 T1 candidate vote=1"), "{text}");
        assert!(text.contains("network: empty"), "{text}");
        assert!(text.contains("ghost records"), "{text}");
        // No line per unused slot, no Rust structure names.
        assert!(!text.contains("s3 "), "{text}");
        for dump in ["ServerState", "next_index", "SmallVec", "{\n"] {
            assert!(!text.contains(dump), "{dump:?} in {text}");
        }
    }

    #[test]
    fn ghost_details_fold_the_records() {
        let model = RaftModel::new(Bug::VoteTwice.default_config());
        let mut s = model.init_states().remove(0);
        for a in [Action::Timeout { server: 0 }, Action::Persist { server: 0 }] {
            s = model.next_state(&s, a).unwrap();
        }
        let html = ghost_details(&s);
        assert!(html.starts_with("<details><summary>"), "{html}");
        assert!(html.contains("vote: T1 s0 voted for s0"), "{html}");
        assert!(html.ends_with("</pre></details>"));
    }
}
