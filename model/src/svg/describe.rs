//! One-line descriptions of actions, messages and servers, shared by the
//! diagram, the Explorer's state view and the CLI report.

use super::header::wrap;
use crate::trace::{AbstractServer, AbstractState};
use crate::types::{
    Action, AppendEntries, AppendEntriesResponse, Body, Entry, InstallSnapshot, Message,
    RequestVote, RequestVoteResponse, Role,
};
use std::fmt::Write;

/// Messages in `after`'s network that `before`'s does not account for (multiset difference).
pub fn new_messages<'a>(before: &AbstractState, after: &'a AbstractState) -> Vec<&'a Message> {
    let mut remaining: Vec<&Message> = before.network.iter().collect();
    let mut fresh = Vec::new();
    for m in &after.network {
        if let Some(pos) = remaining.iter().position(|r| *r == m) {
            remaining.swap_remove(pos);
        } else {
            fresh.push(m);
        }
    }
    fresh
}

pub fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Timeout { .. } => "Timeout",
        Action::Heartbeat { .. } => "Heartbeat",
        Action::ClientRequest { .. } => "ClientReq",
        Action::Deliver { .. } => "Deliver",
        Action::Drop { .. } => "Drop",
        Action::Duplicate { .. } => "Duplicate",
        Action::Persist { .. } => "Persist",
        Action::Restart { .. } => "Restart",
        Action::Snapshot { .. } => "Snapshot",
        Action::Partition { .. } => "Partition",
        Action::Heal => "Heal",
    }
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// Whether the durable part differs from the in-memory state.
pub fn has_pending_writes(s: &AbstractServer) -> bool {
    s.durable_term != s.term
        || s.durable_voted_for != s.voted_for
        || s.durable_log != s.log
        || s.durable_snapshot_index != s.snapshot_index
        || s.durable_snapshot_term != s.snapshot_term
        || s.durable_snapshot_values != s.snapshot_values
}

/// `snap=2/1[1 2] ` (index/term and values) when a snapshot is held,
/// else nothing: put in front of the log it precedes.
pub fn describe_snapshot(index: u32, term: u32, values: &[u32]) -> String {
    if index == 0 {
        return String::new();
    }
    let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    format!("snap={index}/{term}[{}] ", v.join(" "))
}

/// `[1:1 1:2]`: each entry as term:value.
pub fn describe_log(log: &[Entry]) -> String {
    let entries: Vec<String> = log
        .iter()
        .map(|e| format!("{}:{}", e.term, e.value))
        .collect();
    format!("[{}]", entries.join(" "))
}

/// One line per server for reports: `s0 T1 leader vote=0 commit=1 log=[1:1] next=[0, 2, 2] match=[0, 1, 0]`.
pub fn describe_server(id: usize, s: &AbstractServer) -> String {
    let role = match s.role {
        Role::Leader => "leader",
        Role::Candidate => "candidate",
        Role::Follower => "follower",
    };
    let vote = s.voted_for.map_or("-".to_string(), |v| v.to_string());
    let mut line = format!(
        "s{id} T{} {role} vote={vote} commit={} {}log={}",
        s.term,
        s.commit_index,
        describe_snapshot(s.snapshot_index, s.snapshot_term, &s.snapshot_values),
        describe_log(&s.log)
    );
    match s.role {
        Role::Leader => {
            let _ = write!(line, " next={:?} match={:?}", s.next_index, s.match_index);
        }
        Role::Candidate => {
            let _ = write!(line, " votes={:?}", s.votes_granted);
        }
        Role::Follower => {}
    }
    if has_pending_writes(s) {
        let vote = s
            .durable_voted_for
            .map_or("-".to_string(), |v| v.to_string());
        let _ = write!(
            line,
            " disk=T{}/vote={vote}/{}log={}",
            s.durable_term,
            describe_snapshot(
                s.durable_snapshot_index,
                s.durable_snapshot_term,
                &s.durable_snapshot_values
            )
            .replace(' ', "/"),
            describe_log(&s.durable_log)
        );
    }
    if !s.outbox.is_empty() {
        let msgs: Vec<String> = s
            .outbox
            .iter()
            .map(|m| format!("{}→{} {}", m.from, m.to, describe_body(&m.body)))
            .collect();
        let _ = write!(line, " outbox=[{}]", msgs.join("; "));
    }
    line
}

/// A message body in a few words, e.g. `AppendEntries t1 prev=0/0 [1:1] commit=0`.
pub fn describe_body(body: &Body) -> String {
    match body {
        Body::RequestVote(RequestVote {
            term,
            last_log_index,
            last_log_term,
        }) => format!("RequestVote t{term} last={last_log_index}/{last_log_term}"),
        Body::RequestVoteResponse(RequestVoteResponse { term, granted }) => format!(
            "VoteResponse t{term} {}",
            if *granted { "granted" } else { "denied" }
        ),
        Body::AppendEntries(AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }) => format!(
            "AppendEntries t{term} prev={prev_log_index}/{prev_log_term} {} commit={leader_commit}",
            describe_log(entries)
        ),
        Body::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        }) => {
            if *success {
                format!("AppendResponse t{term} ok index={index}")
            } else {
                format!("AppendResponse t{term} reject index={index} hint={conflict_index}")
            }
        }
        Body::InstallSnapshot(InstallSnapshot {
            term,
            last_included_index,
            last_included_term,
            values,
        }) => format!(
            "InstallSnapshot t{term} last={last_included_index}/{last_included_term} values={values:?}"
        ),
    }
}

pub fn short_body(body: &Body) -> &'static str {
    match body {
        Body::RequestVote(_) => "RV",
        Body::RequestVoteResponse(_) => "RVR",
        Body::AppendEntries(_) => "AE",
        Body::AppendEntriesResponse(_) => "AER",
        Body::InstallSnapshot(_) => "IS",
    }
}

/// An action in one line, e.g. `Deliver 0→1 RequestVote t1 last=0/0`.
pub fn describe_action(action: &Action) -> String {
    let msg = |m: &Message| format!("{}→{} {}", m.from, m.to, describe_body(&m.body));
    match action {
        Action::Timeout { server } => format!("Timeout s{server}"),
        Action::Heartbeat { server } => format!("Heartbeat s{server}"),
        Action::ClientRequest { server, value } => format!("ClientRequest s{server} v{value}"),
        Action::Deliver { message } => format!("Deliver {}", msg(message)),
        Action::Drop { message } => format!("Drop {}", msg(message)),
        Action::Duplicate { message } => format!("Duplicate {}", msg(message)),
        Action::Persist { server } => format!("Persist s{server}"),
        Action::Restart { server } => format!("Restart s{server}"),
        Action::Snapshot { server, index } => format!("Snapshot s{server} through {index}"),
        Action::Partition { group } => format!("Partition {group:?} | rest"),
        Action::Heal => "Heal".to_string(),
    }
}

/// The message in a few characters, e.g. `AE t1 p0/0 [1:1] c0`.
pub fn label(body: &Body) -> String {
    match body {
        Body::RequestVote(RequestVote {
            term,
            last_log_index,
            last_log_term,
        }) => format!("RV t{term} {last_log_index}/{last_log_term}"),
        Body::RequestVoteResponse(RequestVoteResponse { term, granted }) => {
            format!("RVR t{term} {}", if *granted { "✓" } else { "✗" })
        }
        Body::AppendEntries(AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }) => format!(
            "AE t{term} p{prev_log_index}/{prev_log_term} {} c{leader_commit}",
            describe_log(entries)
        ),
        Body::AppendEntriesResponse(AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        }) => {
            if *success {
                format!("AER t{term} ok {index}")
            } else {
                format!("AER t{term} no {index} h{conflict_index}")
            }
        }
        Body::InstallSnapshot(InstallSnapshot {
            term,
            last_included_index,
            last_included_term,
            values,
        }) => {
            let v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            format!(
                "IS t{term} {last_included_index}/{last_included_term} [{}]",
                v.join(" ")
            )
        }
    }
}

/// The lines under a server's dot: `T1 L v0 c1 [1:1]`, then what only
/// some servers have (next/match, votes, disk, outbox).
pub fn annotation(i: usize, s: &AbstractServer, width: usize) -> Vec<String> {
    let role = match s.role {
        Role::Leader => "L",
        Role::Candidate => "C",
        Role::Follower => "F",
    };
    let vote = s.voted_for.map_or("-".to_string(), |v| v.to_string());
    let mut lines = vec![format!(
        "T{} {role} v{vote} c{} {}{}",
        s.term,
        s.commit_index,
        describe_snapshot(s.snapshot_index, s.snapshot_term, &s.snapshot_values),
        describe_log(&s.log)
    )];
    let slots = |v: &[u32]| {
        v.iter()
            .enumerate()
            .map(|(j, x)| {
                if j == i {
                    "·".to_string()
                } else {
                    x.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match s.role {
        Role::Leader => {
            lines.push(format!("next [{}]", slots(&s.next_index)));
            lines.push(format!("match [{}]", slots(&s.match_index)));
        }
        Role::Candidate => {
            let v: Vec<String> = s.votes_granted.iter().map(|v| v.to_string()).collect();
            lines.push(format!("votes {{{}}}", v.join(",")));
        }
        Role::Follower => {}
    }
    if has_pending_writes(s) {
        let vote = s
            .durable_voted_for
            .map_or("-".to_string(), |v| v.to_string());
        lines.push(format!(
            "disk T{} v{vote} {}{}",
            s.durable_term,
            describe_snapshot(
                s.durable_snapshot_index,
                s.durable_snapshot_term,
                &s.durable_snapshot_values
            ),
            describe_log(&s.durable_log)
        ));
    }
    if !s.outbox.is_empty() {
        let msgs: Vec<String> = s
            .outbox
            .iter()
            .map(|m| format!("{}→{}", short_body(&m.body), m.to))
            .collect();
        lines.push(format!("outbox {}", msgs.join(" ")));
    }
    lines.iter().flat_map(|l| wrap(l, width)).collect()
}
