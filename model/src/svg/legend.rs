//! The diagram's header (bounds, command, violation) and legend.

use super::colors::*;
use super::header::{wrap, Header};
use super::lamport::{line, text, Layout, CHAR_W, LINE, PAD};
use std::fmt::Write;

/// The bounds, the command and the violation; returns the next free y.
pub(super) fn header(out: &mut String, h: &Header, lay: &Layout) -> i64 {
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
pub(super) fn legend(out: &mut String, y: i64, lay: &Layout) -> i64 {
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
