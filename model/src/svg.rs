//! The Explorer's sequence diagram (`Model::as_svg`) and the one-line
//! descriptions of actions, messages and servers that the CLI reports share.
//!
//! Servers are columns. Every step is two rows: the event (a delivered
//! message is an arrow from sender to receiver; a dropped one ends in a
//! cross; local events are dots on the server's line; restarts, partitions
//! and heals are marked across the diagram), then every server's state after
//! it (term, role, vote, commit index, log; leaders also next/match index).
//! A server whose state changed in the step is drawn bold; servers cut off by
//! an active partition have a dashed red box.
//!
//! The drawing works on abstract states (docs/trace-format.md), so it can
//! render a trace file as well as an Explorer path.
//!
//! Wiring (lib.rs and model.rs belong to the model core): lib.rs declares
//! `pub mod svg;` and `impl Model for RaftModel` has
//! `fn as_svg(&self, path: Path<State, Action>) -> Option<String> {
//! Some(crate::svg::sequence_diagram(self, &path)) }`.

use crate::trace::{AbstractServer, AbstractState};
use crate::types::{Action, Body, Entry, Message, Role, ServerId};
use std::fmt::Write;

const LEFT: i64 = 150;
const COL: i64 = 230;
const TOP: i64 = 40;
const EVENT_H: i64 = 46;
const STATE_H: i64 = 58;

/// Draws the path of the Explorer. m1's `RaftModel::as_svg` calls this.
pub fn sequence_diagram(
    _model: &crate::model::RaftModel,
    path: &stateright::Path<crate::state::State, Action>,
) -> String {
    let pairs = path.clone().into_vec();
    let initial = pairs[0].0.to_abstract();
    let mut steps = Vec::with_capacity(pairs.len());
    for window in pairs.windows(2) {
        if let Some(action) = &window[0].1 {
            steps.push((action.clone(), window[1].0.to_abstract()));
        }
    }
    sequence_diagram_abstract(&initial, &steps)
}

/// Draws `initial` followed by each `(action, state after it)`.
pub fn sequence_diagram_abstract(
    initial: &AbstractState,
    steps: &[(Action, AbstractState)],
) -> String {
    let n = initial.servers.len() as i64;
    let width = LEFT + n * COL + 10;
    let height = TOP + STATE_H + steps.len() as i64 * (EVENT_H + STATE_H) + 20;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg version='1.1' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' \
         viewBox='0 0 {width} {height}' font-family='monospace' font-size='11'>\
         <defs><marker id='rm-arrow' markerWidth='10' markerHeight='8' refX='10' refY='4' \
         orient='auto'><polygon points='0 0, 10 4, 0 8' fill='#333'/></marker></defs>"
    );
    // Lifelines and headers.
    for i in 0..n {
        let x = center(i);
        let _ = write!(
            out,
            "<line x1='{x}' y1='{TOP}' x2='{x}' y2='{height}' stroke='#bbb' stroke-dasharray='2,3'/>\
             <text x='{x}' y='{}' text-anchor='middle' font-size='14' font-weight='bold'>server {i}</text>",
            TOP - 16
        );
    }
    let mut y = TOP;
    state_row(&mut out, y, "initial", initial, None);
    y += STATE_H;
    let mut before = initial;
    for (k, (action, after)) in steps.iter().enumerate() {
        event_row(&mut out, y, k + 1, action, before, after, n);
        y += EVENT_H;
        state_row(&mut out, y, "", after, Some(before));
        y += STATE_H;
        before = after;
    }
    out.push_str("</svg>");
    out
}

fn center(i: i64) -> i64 {
    LEFT + i * COL + COL / 2
}

fn state_row(
    out: &mut String,
    y: i64,
    label: &str,
    state: &AbstractState,
    before: Option<&AbstractState>,
) {
    if !label.is_empty() {
        let _ = write!(out, "<text x='4' y='{}' fill='#555'>{label}</text>", y + 16);
    }
    let cut: &[ServerId] = state.partition.as_deref().unwrap_or(&[]);
    for (i, server) in state.servers.iter().enumerate() {
        let changed = before.is_some_and(|b| b.servers.get(i) != Some(server));
        let x0 = LEFT + i as i64 * COL + 6;
        let (fill, stroke) = match server.role {
            Role::Leader => ("#e3f5e1", "#2e7d32"),
            Role::Candidate => ("#fff4d6", "#b8860b"),
            Role::Follower => ("#f4f4f4", "#888"),
        };
        let (stroke, dash) = if cut.contains(&(i as ServerId)) {
            ("#c62828", " stroke-dasharray='5,3'")
        } else {
            (stroke, "")
        };
        let weight = if changed { " font-weight='bold'" } else { "" };
        let _ = write!(
            out,
            "<rect x='{x0}' y='{}' width='{}' height='{}' rx='4' fill='{fill}' stroke='{stroke}'{dash}/>",
            y + 3,
            COL - 12,
            STATE_H - 8
        );
        let lines = server_lines(server);
        for (l, line) in lines.iter().enumerate() {
            let _ = write!(
                out,
                "<text x='{}' y='{}'{weight}>{}</text>",
                x0 + 5,
                y + 17 + 13 * l as i64,
                esc(line)
            );
        }
    }
}

fn event_row(
    out: &mut String,
    y: i64,
    number: usize,
    action: &Action,
    before: &AbstractState,
    after: &AbstractState,
    n: i64,
) {
    let mid = y + EVENT_H / 2;
    let _ = write!(
        out,
        "<text x='4' y='{}' font-weight='bold'>{number}.</text><text x='32' y='{}'>{}</text>",
        mid - 4,
        mid - 4,
        esc(action_kind(action))
    );
    let right = LEFT + n * COL;
    match action {
        Action::Deliver { message } | Action::Duplicate { message } | Action::Drop { message } => {
            let x1 = center(message.from as i64);
            let x2 = center(message.to as i64);
            let (x2, end) = match action {
                // A drop stops three quarters of the way, with a cross.
                Action::Drop { .. } => (x1 + (x2 - x1) * 3 / 4, "cross"),
                _ => (x2, "arrow"),
            };
            let dash = if matches!(action, Action::Deliver { .. }) {
                ""
            } else {
                " stroke-dasharray='6,4'"
            };
            let marker = if end == "arrow" {
                " marker-end='url(#rm-arrow)'"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<line x1='{x1}' y1='{}' x2='{x2}' y2='{}' stroke='#333' stroke-width='1.5'{dash}{marker}/>",
                mid - 6,
                mid + 6
            );
            if end == "cross" {
                let _ = write!(
                    out,
                    "<path d='M{} {} l10 10 M{} {} l-10 10' stroke='#c62828' stroke-width='2'/>",
                    x2 - 5,
                    mid + 1,
                    x2 + 5,
                    mid + 1
                );
            }
            let prefix = match action {
                Action::Drop { .. } => format!("dropped (to {}): ", message.to),
                Action::Duplicate { .. } => "duplicated: ".to_string(),
                _ => String::new(),
            };
            let lx = (x1 + center(message.to as i64)) / 2;
            let _ = write!(
                out,
                "<text x='{lx}' y='{}' text-anchor='middle' fill='#1a237e'>{}</text>",
                mid - 9,
                esc(&format!("{prefix}{}", describe_body(&message.body)))
            );
        }
        Action::Timeout { server }
        | Action::Heartbeat { server }
        | Action::ClientRequest { server, .. } => {
            let x = center(*server as i64);
            let label = match action {
                Action::ClientRequest { value, .. } => format!("client request v{value}"),
                Action::Timeout { .. } => "election timeout".to_string(),
                _ => "heartbeat".to_string(),
            };
            let _ = write!(
                out,
                "<circle cx='{x}' cy='{}' r='5' fill='#1565c0'/>\
                 <text x='{}' y='{}'>{}</text>",
                mid - 8,
                x + 9,
                mid - 4,
                esc(&label)
            );
        }
        Action::Persist { server } => {
            let x = center(*server as i64);
            let _ = write!(
                out,
                "<rect x='{}' y='{}' width='10' height='10' fill='#00695c'/>\
                 <text x='{}' y='{}'>persist (fsync), outbox released</text>",
                x - 5,
                mid - 13,
                x + 9,
                mid - 4
            );
        }
        Action::Restart { server } => {
            let x0 = LEFT + *server as i64 * COL + 6;
            let _ = write!(
                out,
                "<rect x='{x0}' y='{}' width='{}' height='14' fill='#c62828'/>\
                 <text x='{}' y='{}' text-anchor='middle' fill='white' font-weight='bold'>CRASH + RESTART</text>",
                mid - 15,
                COL - 12,
                center(*server as i64),
                mid - 4
            );
        }
        Action::Partition { group } => {
            let ids: Vec<String> = group.iter().map(|s| s.to_string()).collect();
            let _ = write!(
                out,
                "<line x1='{LEFT}' y1='{}' x2='{right}' y2='{}' stroke='#c62828' stroke-width='2' stroke-dasharray='8,4'/>\
                 <text x='{}' y='{}' text-anchor='middle' fill='#c62828' font-weight='bold'>{}</text>",
                mid - 8,
                mid - 8,
                (LEFT + right) / 2,
                mid - 12,
                esc(&format!("PARTITION: {{{}}} cut off from the rest", ids.join(",")))
            );
        }
        Action::Heal => {
            let _ = write!(
                out,
                "<line x1='{LEFT}' y1='{}' x2='{right}' y2='{}' stroke='#2e7d32' stroke-width='2'/>\
                 <text x='{}' y='{}' text-anchor='middle' fill='#2e7d32' font-weight='bold'>HEAL: all links restored</text>",
                mid - 8,
                mid - 8,
                (LEFT + right) / 2,
                mid - 12
            );
        }
    }
    // What the step sent: new messages per sender, under the event.
    let sent = new_messages(before, after);
    let mut by_sender: Vec<(ServerId, Vec<&Message>)> = Vec::new();
    for m in sent {
        match by_sender.iter_mut().find(|(s, _)| *s == m.from) {
            Some((_, list)) => list.push(m),
            None => by_sender.push((m.from, vec![m])),
        }
    }
    // Duplicate adds a copy without a sender acting: shown by the arrow.
    if matches!(action, Action::Duplicate { .. }) {
        by_sender.clear();
    }
    for (from, msgs) in by_sender {
        let text = format!(
            "sends {}",
            msgs.iter()
                .map(|m| format!("{}→{}", short_body(&m.body), m.to))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let _ = write!(
            out,
            "<text x='{}' y='{}' fill='#6a1b9a' font-size='10'>{}</text>",
            LEFT + from as i64 * COL + 8,
            mid + 18,
            esc(&text)
        );
    }
}

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

fn action_kind(action: &Action) -> &'static str {
    match action {
        Action::Timeout { .. } => "Timeout",
        Action::Heartbeat { .. } => "Heartbeat",
        Action::ClientRequest { .. } => "ClientReq",
        Action::Deliver { .. } => "Deliver",
        Action::Drop { .. } => "Drop",
        Action::Duplicate { .. } => "Duplicate",
        Action::Persist { .. } => "Persist",
        Action::Restart { .. } => "Restart",
        Action::Partition { .. } => "Partition",
        Action::Heal => "Heal",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// The lines drawn in a server's box.
fn server_lines(s: &AbstractServer) -> Vec<String> {
    let role = match s.role {
        Role::Leader => "LEADER",
        Role::Candidate => "candidate",
        Role::Follower => "follower",
    };
    let vote = s.voted_for.map_or("-".to_string(), |v| v.to_string());
    let mut lines = vec![
        format!("term {} {role} vote {vote}", s.term),
        format!("commit {} log {}", s.commit_index, describe_log(&s.log)),
    ];
    match s.role {
        Role::Leader => lines.push(format!("next {:?} match {:?}", s.next_index, s.match_index)),
        Role::Candidate => lines.push(format!("votes {:?}", s.votes_granted)),
        Role::Follower => {}
    }
    if let Some(disk) = describe_disk(s) {
        lines.push(disk);
    }
    if !s.outbox.is_empty() {
        lines.push(describe_outbox(s));
    }
    lines
}

/// Whether the durable part differs from the in-memory state.
pub fn has_pending_writes(s: &AbstractServer) -> bool {
    s.durable_term != s.term || s.durable_voted_for != s.voted_for || s.durable_log != s.log
}

/// `disk T1 vote 0 log [1:1]` when the durable part differs from the
/// in-memory state (pending writes), else nothing.
fn describe_disk(s: &AbstractServer) -> Option<String> {
    has_pending_writes(s).then(|| {
        let vote = s
            .durable_voted_for
            .map_or("-".to_string(), |v| v.to_string());
        format!(
            "disk T{} vote {vote} log {}",
            s.durable_term,
            describe_log(&s.durable_log)
        )
    })
}

/// `outbox RVR→0 AER→1`: the messages waiting for the next Persist.
fn describe_outbox(s: &AbstractServer) -> String {
    let msgs: Vec<String> = s
        .outbox
        .iter()
        .map(|m| format!("{}→{}", short_body(&m.body), m.to))
        .collect();
    format!("outbox {}", msgs.join(" "))
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
        "s{id} T{} {role} vote={vote} commit={} log={}",
        s.term,
        s.commit_index,
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
            " disk=T{}/vote={vote}/log={}",
            s.durable_term,
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
        Body::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => format!("RequestVote t{term} last={last_log_index}/{last_log_term}"),
        Body::RequestVoteResponse { term, granted } => format!(
            "VoteResponse t{term} {}",
            if *granted { "granted" } else { "denied" }
        ),
        Body::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => format!(
            "AppendEntries t{term} prev={prev_log_index}/{prev_log_term} {} commit={leader_commit}",
            describe_log(entries)
        ),
        Body::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } => {
            if *success {
                format!("AppendResponse t{term} ok index={index}")
            } else {
                format!("AppendResponse t{term} reject index={index} hint={conflict_index}")
            }
        }
    }
}

fn short_body(body: &Body) -> &'static str {
    match body {
        Body::RequestVote { .. } => "RV",
        Body::RequestVoteResponse { .. } => "RVR",
        Body::AppendEntries { .. } => "AE",
        Body::AppendEntriesResponse { .. } => "AER",
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
        Action::Partition { group } => format!("Partition {group:?} | rest"),
        Action::Heal => "Heal".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(term: u32, role: Role, log: Vec<Entry>) -> AbstractServer {
        AbstractServer {
            term,
            voted_for: Some(0),
            role,
            durable_term: term,
            durable_voted_for: Some(0),
            durable_log: log.clone(),
            outbox: vec![],
            log,
            commit_index: 0,
            votes_granted: vec![],
            next_index: vec![],
            match_index: vec![],
        }
    }

    #[test]
    fn persist_pending_writes_and_outbox_are_drawn() {
        let s0 = AbstractState {
            servers: vec![server(0, Role::Follower, vec![]); 2],
            network: vec![],
            partition: None,
        };
        let rv = Message {
            from: 0,
            to: 1,
            body: Body::RequestVote {
                term: 1,
                last_log_index: 0,
                last_log_term: 0,
            },
        };
        // Timeout: term 1 in memory, disk still at term 0, RequestVote waits.
        let mut s1 = s0.clone();
        s1.servers[0] = server(1, Role::Candidate, vec![]);
        s1.servers[0].durable_term = 0;
        s1.servers[0].durable_voted_for = None;
        s1.servers[0].outbox = vec![rv.clone()];
        // Persist: durable, released.
        let mut s2 = s1.clone();
        s2.servers[0] = server(1, Role::Candidate, vec![]);
        s2.network = vec![rv.clone()];
        let steps = vec![
            (Action::Timeout { server: 0 }, s1.clone()),
            (Action::Persist { server: 0 }, s2),
        ];
        let svg = sequence_diagram_abstract(&s0, &steps);
        for needle in [
            "disk T0 vote - log []",
            "outbox RV→1",
            "persist (fsync), outbox released",
            "sends RV→1",
        ] {
            assert!(svg.contains(needle), "missing {needle:?} in {svg}");
        }
        // The RequestVote is sent by the Persist step, not by the Timeout.
        assert_eq!(svg.matches("sends RV→1").count(), 1);
        assert_eq!(
            describe_action(&Action::Persist { server: 1 }),
            "Persist s1"
        );
        assert_eq!(
            describe_server(0, &s1.servers[0]),
            "s0 T1 candidate vote=0 commit=0 log=[] votes=[] disk=T0/vote=-/log=[] \
             outbox=[0→1 RequestVote t1 last=0/0]"
        );
    }

    #[test]
    fn diagram_shows_servers_messages_and_every_state() {
        let s0 = AbstractState {
            servers: vec![server(0, Role::Follower, vec![]); 3],
            network: vec![],
            partition: None,
        };
        let rv = Message {
            from: 0,
            to: 1,
            body: Body::RequestVote {
                term: 1,
                last_log_index: 0,
                last_log_term: 0,
            },
        };
        let mut s1 = s0.clone();
        s1.servers[0] = server(1, Role::Candidate, vec![]);
        s1.network = vec![rv.clone()];
        let mut s2 = s1.clone();
        s2.servers[1].term = 1;
        s2.network = vec![];
        let mut s3 = s2.clone();
        s3.partition = Some(vec![2]);
        let mut s4 = s3.clone();
        s4.servers[0] = server(1, Role::Leader, vec![Entry { term: 1, value: 7 }]);
        let steps = vec![
            (Action::Timeout { server: 0 }, s1),
            (Action::Deliver { message: rv }, s2),
            (Action::Partition { group: vec![2] }, s3),
            (Action::Restart { server: 1 }, s4),
        ];
        let svg = sequence_diagram_abstract(&s0, &steps);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        for needle in [
            "server 0",
            "server 2",
            "election timeout",
            "RequestVote t1 last=0/0",
            "sends RV→1",
            "PARTITION: {2}",
            "CRASH + RESTART",
            "LEADER",
            "log [1:7]",
            "stroke-dasharray='5,3'",
        ] {
            assert!(svg.contains(needle), "missing {needle:?} in {svg}");
        }
        // Initial row plus one state row per step, each with all servers.
        assert_eq!(svg.matches("<rect x=").count() - 1, 3 * 5);
    }

    #[test]
    fn new_messages_is_a_multiset_difference() {
        let m = Message {
            from: 1,
            to: 0,
            body: Body::RequestVoteResponse {
                term: 1,
                granted: true,
            },
        };
        let before = AbstractState {
            servers: vec![],
            network: vec![m.clone()],
            partition: None,
        };
        let mut after = before.clone();
        after.network.push(m.clone());
        assert_eq!(new_messages(&before, &after), vec![&m]);
        assert!(new_messages(&after, &before).is_empty());
    }
}
