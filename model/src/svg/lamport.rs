//! The space-time (Lamport) diagram: one vertical line per server, time
//! flowing down, one row per step. A message is a line from the row that
//! put it on the network to the row that delivered, dropped or lost it.

use super::colors::*;
use super::describe::{action_kind, annotation, esc, label};
use super::flights::{trace_copies, End};
use super::header::Header;
use super::legend::{header, legend};
use crate::trace::AbstractState;
use crate::types::{Action, Message, Role, ServerId};
use std::fmt::Write;

/// Widest diagram: 7 servers fit a 1400 px window beside its scroll bar
/// and the Explorer's margins.
pub const MAX_WIDTH: i64 = 1300;
const LABEL_W: i64 = 150;
pub(super) const PAD: i64 = 10;
const MIN_COL: i64 = 160;
const MAX_COL: i64 = 240;
/// Width of a character of the 11 px monospace font.
pub(super) const CHAR_W: f64 = 6.7;
pub(super) const LINE: i64 = 13;
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

pub(super) struct Layout {
    pub n: usize,
    pub col: i64,
    pub width: i64,
}

impl Layout {
    /// A server's line: near the left of its column, so that the text to
    /// its right has the column's width.
    fn x(&self, i: ServerId) -> i64 {
        LABEL_W + i64::from(i) * self.col + LIFELINE_INSET
    }
    pub fn chars(&self, px: i64) -> usize {
        (px as f64 / CHAR_W) as usize
    }
}

/// Width of the diagram of `n` servers.
pub fn width_for(n: usize) -> i64 {
    let col = ((MAX_WIDTH - LABEL_W - PAD) / n.max(1) as i64).clamp(MIN_COL, MAX_COL);
    LABEL_W + n as i64 * col + PAD
}

pub(super) fn text(out: &mut String, x: i64, y: i64, fill: &str, extra: &str, s: &str) {
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

pub(super) fn line(
    out: &mut String,
    (x1, y1): (i64, i64),
    (x2, y2): (i64, i64),
    stroke: &str,
    extra: &str,
) {
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
        Action::Snapshot { server, index } => format!("   s{server} ≤{index}"),
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
        Action::Snapshot { server, index } => {
            let x = lay.x(*server);
            let _ = write!(
                out,
                "<path d='M{} {} l6 -6 l6 6 l-6 6 z' fill='{LOCAL}'/>",
                x - 6,
                e
            );
            text(
                out,
                x + 9,
                e + 4,
                LOCAL,
                "",
                &format!("snapshot (compact through {index})"),
            );
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
