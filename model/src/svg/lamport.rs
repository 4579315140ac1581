//! The space-time (Lamport) diagram: one vertical line per server, time
//! flowing down, one row per step. A message is a line from the row that
//! put it on the network to the row that delivered, dropped or lost it.

use super::colors::*;
use super::describe::{action_kind, describe_log, esc, has_pending_writes};
use super::header::{wrap, Header};
use crate::trace::{AbstractServer, AbstractState};
use crate::types::{Action, Body, Message, Role, ServerId};
use std::fmt::Write;

/// Widest diagram: 7 servers fit a 1400 px window beside its scroll bar
/// and the Explorer's margins.
pub const MAX_WIDTH: i64 = 1300;
const LABEL_W: i64 = 150;
const PAD: i64 = 10;
const MIN_COL: i64 = 160;
const MAX_COL: i64 = 240;
/// Width of a character of the 11 px monospace font.
const CHAR_W: f64 = 6.7;
const LINE: i64 = 13;
const LIFELINE_INSET: i64 = 16;

/// A drawing: the states, what the model knows about the steps, the header.
pub struct Input<'a> {
    pub initial: &'a AbstractState,
    pub steps: &'a [(Action, AbstractState)],
    /// Per step, messages sent across a cut and lost at once (empty when
    /// unknown, e.g. for a trace file).
    pub cut_losses: Vec<Vec<Message>>,
    pub header: Header,
}

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

/// The message in a few characters, e.g. `AE t1 p0/0 [1:1] c0`.
pub fn label(body: &Body) -> String {
    match body {
        Body::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => format!("RV t{term} {last_log_index}/{last_log_term}"),
        Body::RequestVoteResponse { term, granted } => {
            format!("RVR t{term} {}", if *granted { "✓" } else { "✗" })
        }
        Body::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => format!(
            "AE t{term} p{prev_log_index}/{prev_log_term} {} c{leader_commit}",
            describe_log(entries)
        ),
        Body::AppendEntriesResponse {
            term,
            success,
            index,
            conflict_index,
        } => {
            if *success {
                format!("AER t{term} ok {index}")
            } else {
                format!("AER t{term} no {index} h{conflict_index}")
            }
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
        "T{} {role} v{vote} c{} {}",
        s.term,
        s.commit_index,
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
            "disk T{} v{vote} {}",
            s.durable_term,
            describe_log(&s.durable_log)
        ));
    }
    if !s.outbox.is_empty() {
        let msgs: Vec<String> = s
            .outbox
            .iter()
            .map(|m| format!("{}→{}", super::describe::short_body(&m.body), m.to))
            .collect();
        lines.push(format!("outbox {}", msgs.join(" ")));
    }
    lines.iter().flat_map(|l| wrap(l, width)).collect()
}

struct Layout {
    n: usize,
    col: i64,
    width: i64,
}

impl Layout {
    /// A server's line: near the left of its column, so that the text to
    /// its right has the column's width.
    fn x(&self, i: ServerId) -> i64 {
        LABEL_W + i64::from(i) * self.col + LIFELINE_INSET
    }
    fn chars(&self, px: i64) -> usize {
        (px as f64 / CHAR_W) as usize
    }
}

/// Width of the diagram of `n` servers.
pub fn width_for(n: usize) -> i64 {
    let col = ((MAX_WIDTH - LABEL_W - PAD) / n.max(1) as i64).clamp(MIN_COL, MAX_COL);
    LABEL_W + n as i64 * col + PAD
}

fn text(out: &mut String, x: i64, y: i64, fill: &str, extra: &str, s: &str) {
    let _ = write!(
        out,
        "<text x='{x}' y='{y}' fill='{fill}'{extra}>{}</text>",
        esc(s)
    );
}

/// A label over lines: a halo of the background keeps it legible.
fn halo_text(out: &mut String, x: i64, y: i64, fill: &str, s: &str) {
    let extra = format!(
        " font-size='10' text-anchor='middle' stroke='{BACKGROUND}' stroke-width='3' \
         paint-order='stroke'"
    );
    text(out, x, y, fill, &extra, s);
}

fn line(out: &mut String, (x1, y1): (i64, i64), (x2, y2): (i64, i64), stroke: &str, extra: &str) {
    let _ = write!(
        out,
        "<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='{stroke}'{extra}/>"
    );
}

fn cross(out: &mut String, (x, y): (i64, i64), stroke: &str) {
    let _ = write!(
        out,
        "<path d='M{} {} l10 10 M{} {} l-10 10' stroke='{stroke}' stroke-width='2' fill='none'/>",
        x - 5,
        y - 5,
        x + 5,
        y - 5
    );
}

/// Draws the whole diagram.
pub fn draw(input: &Input) -> String {
    let n = input.initial.servers.len();
    let width = width_for(n);
    let lay = Layout {
        n,
        col: (width - LABEL_W - PAD) / n.max(1) as i64,
        width,
    };
    let mut body = String::new();
    let mut y = header(&mut body, &input.header, &lay);
    y = legend(&mut body, y, &lay);
    // Server names, then the rows.
    for i in 0..n {
        text(
            &mut body,
            lay.x(i as ServerId),
            y + 14,
            INK,
            " text-anchor='middle' font-size='13' font-weight='bold'",
            &format!("server {i}"),
        );
    }
    y += 24;
    let lifeline_top = y;
    let annot_w = lay.chars(lay.col - LIFELINE_INSET - 12);
    let mut states = vec![input.initial];
    states.extend(input.steps.iter().map(|(_, s)| s));
    // Which servers each row annotates: all in row 0, the changed ones after.
    let annotated: Vec<Vec<usize>> = (0..states.len())
        .map(|r| {
            (0..n)
                .filter(|&i| r == 0 || states[r - 1].servers.get(i) != states[r].servers.get(i))
                .collect()
        })
        .collect();
    let mut tops = Vec::with_capacity(states.len());
    for (r, rows) in annotated.iter().enumerate() {
        tops.push(y);
        let lines = rows
            .iter()
            .map(|&i| annotation(i, &states[r].servers[i], annot_w).len())
            .max()
            .unwrap_or(0)
            .max(2);
        y += 18 + LINE * lines as i64 + 8;
    }
    // Room below the last row for the messages still in flight.
    let rows_end = y;
    let bottom = y + 36;
    let ey = |r: usize| tops[r] + 12;
    // A message leaves at the end of its row, under the sender's new state:
    // it is sent by the step, after the state it reports.
    let send_y = |r: usize| tops.get(r + 1).copied().unwrap_or(rows_end) - 6;
    let mut out = String::new();
    let height = bottom + PAD;
    let _ = write!(
        out,
        "<svg version='1.1' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' \
         viewBox='0 0 {width} {height}' font-family='DejaVu Sans Mono, Menlo, Consolas, monospace' \
         font-size='11'><defs>"
    );
    for (id, color) in [("d", DELIVERED), ("u", DUPLICATE)] {
        let _ = write!(
            out,
            "<marker id='rm-{id}' markerWidth='9' markerHeight='7' refX='9' refY='3.5' \
             orient='auto'><polygon points='0 0, 9 3.5, 0 7' fill='{color}'/></marker>"
        );
    }
    let _ = write!(
        out,
        "</defs><rect x='0' y='0' width='{width}' height='{height}' fill='{BACKGROUND}'/>"
    );
    // The violating row's band goes under everything else.
    if let Some(v) = &input.header.violation {
        if let Some(&top) = tops.get(v.step) {
            let h = tops.get(v.step + 1).copied().unwrap_or(bottom) - top;
            let _ = write!(
                out,
                "<rect x='0' y='{top}' width='{width}' height='{h}' fill='{VIOLATION_BAND}' \
                 stroke='{RED}' stroke-width='2'/>"
            );
        }
    }
    out.push_str(&body);
    // Lifelines, dashed red for the servers of an active partition's group.
    for i in 0..n {
        let x = lay.x(i as ServerId);
        line(&mut out, (x, lifeline_top), (x, bottom), MUTED, "");
    }
    for r in 1..states.len() {
        if let Some(group) = &states[r].partition {
            let end = if r + 1 < states.len() {
                ey(r + 1)
            } else {
                bottom
            };
            for &i in group {
                let x = lay.x(i);
                line(
                    &mut out,
                    (x, ey(r)),
                    (x, end),
                    RED,
                    " stroke-width='3' stroke-dasharray='6,4'",
                );
            }
        }
    }
    // Rows: step label, event, annotations.
    for (r, rows) in annotated.iter().enumerate() {
        let e = ey(r);
        let violated = input.header.violation.as_ref().filter(|v| v.step == r);
        if r == 0 {
            text(&mut out, 6, e + 4, MUTED, "", "0. initial");
        } else {
            let (action, _) = &input.steps[r - 1];
            text(
                &mut out,
                6,
                e + 4,
                INK,
                " font-weight='bold'",
                &format!("{r}. {}", action_kind(action)),
            );
            text(&mut out, 6, e + 4 + LINE, MUTED, "", &step_detail(action));
            event(&mut out, &lay, e, action);
        }
        if let Some(v) = violated {
            for (k, name) in v.properties.iter().enumerate() {
                let y = e + 4 + LINE * (2 + k as i64);
                text(
                    &mut out,
                    6,
                    y,
                    RED,
                    " font-weight='bold'",
                    &format!("✗ {name}"),
                );
            }
        }
        for &i in rows {
            let s = &states[r].servers[i];
            let fill = match s.role {
                Role::Leader => GREEN,
                Role::Candidate => CANDIDATE,
                Role::Follower => INK,
            };
            let weight = if r > 0 { " font-weight='bold'" } else { "" };
            let x = lay.x(i as ServerId) + 6;
            for (l, txt) in annotation(i, s, annot_w).iter().enumerate() {
                let (f, w) = if l == 0 { (fill, weight) } else { (INK, "") };
                text(&mut out, x, e + 18 + LINE * l as i64, f, w, txt);
            }
        }
    }
    messages(&mut out, input, &lay, (&ey, &send_y), bottom);
    out.push_str("</svg>");
    out
}

/// The second line of a step's label: who acted or which message.
fn step_detail(action: &Action) -> String {
    match action {
        Action::Timeout { server }
        | Action::Heartbeat { server }
        | Action::Persist { server }
        | Action::Restart { server } => format!("   s{server}"),
        Action::ClientRequest { server, value } => format!("   s{server} v{value}"),
        Action::Deliver { message } | Action::Drop { message } | Action::Duplicate { message } => {
            format!(
                "   {}→{} {}",
                message.from,
                message.to,
                super::describe::short_body(&message.body)
            )
        }
        Action::Partition { group } => {
            let ids: Vec<String> = group.iter().map(|s| s.to_string()).collect();
            format!("   {{{}}} | rest", ids.join(","))
        }
        Action::Heal => String::new(),
    }
}

/// The glyph of a step on the acting server's line (messages are drawn later).
fn event(out: &mut String, lay: &Layout, e: i64, action: &Action) {
    let right = LABEL_W + lay.n as i64 * lay.col;
    match action {
        Action::Timeout { server }
        | Action::Heartbeat { server }
        | Action::ClientRequest { server, .. } => {
            let x = lay.x(*server);
            let what = match action {
                Action::Timeout { .. } => "election timeout".to_string(),
                Action::Heartbeat { .. } => "heartbeat".to_string(),
                Action::ClientRequest { value, .. } => format!("client request v{value}"),
                _ => unreachable!(),
            };
            let _ = write!(out, "<circle cx='{x}' cy='{e}' r='5' fill='{LOCAL}'/>");
            text(out, x + 9, e + 4, LOCAL, "", &what);
        }
        Action::Persist { server } => {
            let x = lay.x(*server);
            let _ = write!(
                out,
                "<path d='M{} {} h10 v10 h-10 z' fill='{LOCAL}'/>",
                x - 5,
                e - 5
            );
            text(out, x + 9, e + 4, LOCAL, "", "persist (fsync)");
        }
        Action::Restart { server } => {
            let x = lay.x(*server);
            line(
                out,
                (x - 10, e),
                (x + lay.col - LIFELINE_INSET - 12, e),
                RED,
                " stroke-width='3'",
            );
            text(
                out,
                x + 9,
                e - 4,
                RED,
                " font-weight='bold'",
                "CRASH + RESTART",
            );
        }
        Action::Partition { group } => {
            line(
                out,
                (LABEL_W, e),
                (right, e),
                RED,
                " stroke-width='2' stroke-dasharray='8,4'",
            );
            let ids: Vec<String> = group.iter().map(|s| s.to_string()).collect();
            text(
                out,
                LABEL_W + 4,
                e - 4,
                RED,
                " font-weight='bold'",
                &format!("PARTITION: {{{}}} cut off from the rest", ids.join(",")),
            );
        }
        Action::Heal => {
            line(out, (LABEL_W, e), (right, e), GREEN, " stroke-width='2'");
            text(
                out,
                LABEL_W + 4,
                e - 4,
                GREEN,
                " font-weight='bold'",
                "HEAL: all links restored",
            );
        }
        Action::Deliver { .. } | Action::Drop { .. } | Action::Duplicate { .. } => {}
    }
}

/// Every copy of every message, from the row that sent it to its end.
/// `ey` is a row's event height, `sy` the height its messages leave at.
type Heights<'a> = (&'a dyn Fn(usize) -> i64, &'a dyn Fn(usize) -> i64);

fn messages(out: &mut String, input: &Input, lay: &Layout, (ey, sy): Heights, bottom: i64) {
    let part = |a: i64, b: i64, f: f64| a + ((b - a) as f64 * f) as i64;
    for c in trace_copies(input) {
        let (x1, y1) = (lay.x(c.msg.from), sy(c.sent));
        let x2 = lay.x(c.msg.to);
        let dup = c.dup.is_some();
        let (color, dash) = if dup {
            (DUPLICATE, " stroke-dasharray='7,3'")
        } else {
            (DELIVERED, "")
        };
        let mut name = label(&c.msg.body);
        if dup {
            name = format!("dup {name}");
        }
        let (end, color) = match c.end {
            End::Delivered(r) => {
                let m = if dup { "u" } else { "d" };
                let extra = format!(" stroke-width='1.6' marker-end='url(#rm-{m})'{dash}");
                line(out, (x1, y1), (x2, ey(r) - 1), color, &extra);
                ((x2, ey(r)), color)
            }
            End::Dropped(r) | End::Vanished(r) => {
                let p = (part(x1, x2, 0.55), ey(r));
                line(out, (x1, y1), p, RED, &format!(" stroke-width='1.6'{dash}"));
                cross(out, p, RED);
                text(out, p.0 + 8, p.1 + 4, RED, " font-size='10'", "dropped");
                (p, RED)
            }
            End::Cut => {
                let p = (part(x1, x2, 0.3), y1 + 10);
                line(out, (x1, y1), p, LOST, " stroke-width='1.6'");
                let _ = write!(
                    out,
                    "<path d='M{} {} l0 12' stroke='{LOST}' stroke-width='3' fill='none'/>",
                    p.0,
                    p.1 - 6
                );
                halo_text(out, p.0, p.1 + 16, LOST, &format!("{name} lost: cut"));
                continue;
            }
            End::InFlight => {
                let p = (part(x1, x2, 0.5), bottom - 4);
                line(
                    out,
                    (x1, y1),
                    p,
                    MUTED,
                    " stroke-width='1.4' stroke-dasharray='3,3'",
                );
                let _ = write!(
                    out,
                    "<circle cx='{}' cy='{}' r='4' fill='none' stroke='{MUTED}' stroke-width='1.4'/>",
                    p.0, p.1
                );
                (p, MUTED)
            }
        };
        if let Some(r) = c.dup {
            // Where the copy was made: a ring on its line at the Duplicate row.
            let (ex, eyy) = end;
            let y = ey(r);
            if eyy != y1 {
                let x = x1 + (ex - x1) * (y - y1) / (eyy - y1);
                let _ = write!(
                    out,
                    "<circle cx='{x}' cy='{y}' r='5' fill='none' stroke='{DUPLICATE}' stroke-width='2'/>"
                );
            }
        }
        // The label sits half way, clear of the labels at both ends.
        let lx = part(x1, end.0, 0.5);
        let ly = part(y1, end.1, 0.5) - 3;
        halo_text(out, lx, ly, color, &name);
    }
}

/// The bounds, the command and the violation; returns the next free y.
fn header(out: &mut String, h: &Header, lay: &Layout) -> i64 {
    let chars = lay.chars(lay.width - 2 * PAD);
    let mut y = 8;
    if let Some(bounds) = &h.bounds {
        for l in wrap(&format!("Raft model: {bounds}"), chars * 11 / 12) {
            y += 16;
            text(out, PAD, y, INK, " font-size='12' font-weight='bold'", &l);
        }
    }
    if let Some(cmd) = &h.command {
        for l in wrap(&format!("served by: {cmd}"), chars) {
            y += LINE;
            text(out, PAD, y, MUTED, "", &l);
        }
    }
    y += 6;
    if let Some(v) = &h.violation {
        let mut lines = Vec::new();
        for name in &v.properties {
            let at = if v.step == 0 {
                "in the initial state".to_string()
            } else {
                format!("at step {}", v.step)
            };
            lines.extend(wrap(
                &format!(
                    "✗ {name} violated {at}: {}",
                    crate::properties::meaning(name)
                ),
                chars * 11 / 12,
            ));
        }
        let hgt = 16 * lines.len() as i64 + 10;
        let _ = write!(
            out,
            "<rect x='4' y='{y}' width='{}' height='{hgt}' fill='{VIOLATION_BAND}' stroke='{RED}' \
             stroke-width='2' rx='3'/>",
            lay.width - 8
        );
        for l in lines {
            y += 16;
            text(out, PAD, y, RED, " font-size='12' font-weight='bold'", &l);
        }
        y += 14;
    } else if h.bounds.is_some() {
        y += 14;
        text(
            out,
            PAD,
            y,
            GREEN,
            "",
            "✓ no safety property is violated on this path",
        );
        y += 6;
    }
    y + 6
}

/// The notation, then a sample of every kind of line.
fn legend(out: &mut String, y: i64, lay: &Layout) -> i64 {
    let chars = lay.chars(lay.width - 2 * PAD);
    let notes = [
        "Legend. Time flows down; one line per server. Under a server: T term, L/C/F leader/\
         candidate/follower, v vote (- none), c commit index, then the log [term:value ...]; \
         next/match per server (· itself); disk = what is durable when it differs; outbox = \
         sent, released at the sender's next persist.",
        "Messages: RV RequestVote t<term> <last index>/<last term>; RVR vote response ✓ granted \
         ✗ denied; AE AppendEntries t<term> p<prev index>/<prev term> [entries] c<leader commit>; \
         AER append response ok <index> or no <index> h<hint>.",
    ];
    let lines: Vec<String> = notes.iter().flat_map(|n| wrap(n, chars)).collect();
    let samples: [(&str, &str, &str); 5] = [
        (DELIVERED, "", "delivered"),
        (
            DUPLICATE,
            " stroke-dasharray='7,3'",
            "duplicate copy (ring: copied)",
        ),
        (RED, "", "dropped ✕"),
        (LOST, "", "lost: sent across a cut"),
        (MUTED, " stroke-dasharray='3,3'", "still in flight"),
    ];
    // Samples flow left to right and wrap at the diagram's width.
    let mut placed = Vec::new();
    let (mut x, mut row) = (PAD, 0);
    for (color, dash, what) in samples {
        let w = 34 + (what.chars().count() as f64 * CHAR_W) as i64 + 18;
        if x > PAD && x + w > lay.width - PAD {
            x = PAD;
            row += 1;
        }
        placed.push((x, row, color, dash, what));
        x += w;
    }
    let hgt = LINE * lines.len() as i64 + 18 * (row + 1) + 18;
    let _ = write!(
        out,
        "<rect x='4' y='{y}' width='{}' height='{hgt}' fill='{LEGEND_BAND}' stroke='{MUTED}' rx='3'/>",
        lay.width - 8
    );
    let mut yy = y + 2;
    for l in lines {
        yy += LINE;
        text(out, PAD, yy, INK, "", &l);
    }
    yy += 18;
    for (x, row, color, dash, what) in placed {
        let sy = yy + 18 * row;
        line(
            out,
            (x, sy - 4),
            (x + 28, sy - 4),
            color,
            &format!(" stroke-width='2'{dash}"),
        );
        text(out, x + 34, sy, color, "", what);
    }
    y + hgt + 8
}
