//! Tests of the diagram: notation, message lines, legibility and width.

use super::colors::{contrast, parse_hex, BACKGROUND};
use super::*;
use crate::config::{Bug, Config};
use crate::trace::AbstractServer;
use crate::types::{Body, Entry, RequestVote, RequestVoteResponse, Role};
use stateright::{Checker, Model, Path};

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
        snapshot_index: 0,
        snapshot_term: 0,
        snapshot_values: vec![],
        durable_snapshot_index: 0,
        durable_snapshot_term: 0,
        durable_snapshot_values: vec![],
        commit_index: 0,
        votes_granted: vec![],
        next_index: vec![],
        match_index: vec![],
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

/// Elements of an SVG as (tag, attributes); enough for what `lamport` writes.
fn elements(svg: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for chunk in svg.split('<').skip(1) {
        if chunk.starts_with('/') {
            continue;
        }
        let head = &chunk[..chunk.find('>').unwrap_or(chunk.len())];
        let mut parts = head.splitn(2, char::is_whitespace);
        let tag = parts.next().unwrap_or("").trim_end_matches('/').to_string();
        let mut attrs = Vec::new();
        let mut rest = parts.next().unwrap_or("");
        while let Some(eq) = rest.find("='") {
            let name = rest[..eq].trim().to_string();
            let after = &rest[eq + 2..];
            let close = after.find('\'').expect("unterminated attribute");
            attrs.push((name, after[..close].to_string()));
            rest = &after[close + 1..];
        }
        out.push((tag, attrs));
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The counterexample `raft-model check --bug vote-twice` reports.
fn vote_twice_counterexample() -> (RaftModel, Path<State, Action>) {
    let model = RaftModel::new(Bug::VoteTwice.default_config());
    let checker = RaftModel::new(Bug::VoteTwice.default_config())
        .checker()
        .spawn_bfs()
        .join();
    let path = checker
        .discovery("VoteOncePerTerm")
        .expect("vote-twice breaks VoteOncePerTerm");
    (model, path)
}

#[test]
fn every_text_and_line_of_a_counterexample_is_legible_on_its_background() {
    let (model, path) = vote_twice_counterexample();
    let svg = sequence_diagram(&model, &path);
    let els = elements(&svg);
    // The first shape is the background, filling the whole diagram.
    let (tag, bg) = els
        .iter()
        .find(|(t, _)| t != "svg" && t != "defs" && t != "marker" && t != "polygon")
        .unwrap();
    assert_eq!(tag, "rect");
    let root = &els[0].1;
    assert_eq!(attr(bg, "fill"), Some(BACKGROUND));
    assert_eq!(attr(bg, "width"), attr(root, "width"));
    assert_eq!(attr(bg, "height"), attr(root, "height"));
    // Grounds: the background and every other filled rectangle (bands).
    let grounds: Vec<&str> = els
        .iter()
        .filter(|(t, _)| t == "rect")
        .filter_map(|(_, a)| attr(a, "fill"))
        .filter(|f| *f != "none")
        .collect();
    let mut inks = Vec::new();
    let mut texts = 0;
    for (tag, a) in &els {
        match tag.as_str() {
            "text" => {
                texts += 1;
                let fill = attr(a, "fill").unwrap_or_else(|| panic!("text without fill: {a:?}"));
                inks.push(fill);
                // A stroke of the background colour is a halo, not ink.
                if let Some(s) = attr(a, "stroke").filter(|s| *s != BACKGROUND) {
                    inks.push(s);
                }
            }
            "line" | "path" | "polygon" | "circle" => {
                for key in ["stroke", "fill"] {
                    if let Some(c) = attr(a, key).filter(|c| *c != "none") {
                        inks.push(c);
                    }
                }
            }
            "rect" => {
                if let Some(c) = attr(a, "stroke") {
                    inks.push(c);
                }
            }
            "g" => assert!(attr(a, "fill").is_none() && attr(a, "stroke").is_none()),
            _ => {}
        }
    }
    assert!(texts > 20, "a real diagram: {svg}");
    for ink in &inks {
        for ground in &grounds {
            let c = contrast(parse_hex(ink).unwrap(), parse_hex(ground).unwrap());
            assert!(c >= 4.5, "{ink} on {ground}: {c:.2}:1");
        }
    }
}

#[test]
fn a_counterexample_names_its_violation_and_bounds() {
    let (model, path) = vote_twice_counterexample();
    let steps = path.clone().into_actions().len();
    let svg = diagram_of_path(&model, &path.into_vec(), Some("127.0.0.1:4321"));
    let meaning = crate::properties::meaning("VoteOncePerTerm");
    assert!(!meaning.is_empty());
    for needle in [
        format!("✗ VoteOncePerTerm violated at step {steps}: {meaning}"),
        "Raft model: 3 servers, max term 2".to_string(),
        "bug vote-twice".to_string(),
        "--addr 127.0.0.1:4321".to_string(),
        "Legend.".to_string(),
    ] {
        assert!(svg.contains(&needle), "missing {needle:?} in {svg}");
    }
    // The violating row is banded; a path without violation says so.
    assert_eq!(
        svg.matches(&format!("fill='{}'", colors::VIOLATION_BAND))
            .count(),
        2
    );
    let init = model.init_states().remove(0);
    let clean = diagram_of_path(&model, &[(init, None)], None);
    assert!(clean.contains("no safety property is violated"), "{clean}");
}

#[test]
fn seven_servers_fit_a_1400_px_window() {
    let s0 = AbstractState {
        servers: vec![server(0, Role::Follower, vec![]); 7],
        network: vec![],
        partition: None,
    };
    let mut s1 = s0.clone();
    s1.servers[6] = server(2, Role::Leader, vec![Entry { term: 1, value: 1 }; 4]);
    s1.servers[6].next_index = vec![5; 7];
    s1.servers[6].match_index = vec![4; 7];
    s1.servers[6].outbox = (0..6).map(|j| rv(6, j)).collect();
    s1.servers[6].durable_term = 1;
    let steps = vec![(Action::Timeout { server: 6 }, s1)];
    let svg = sequence_diagram_abstract(&s0, &steps);
    let els = elements(&svg);
    let width: i64 = attr(&els[0].1, "width").unwrap().parse().unwrap();
    // The window less the Explorer's margins (2 × 25 px) and a scroll bar.
    assert!(width <= 1400 - 50 - 20, "{width}");
    assert_eq!(width, lamport::width_for(7));
    // Left-aligned text stays inside: every line was wrapped to fit.
    for (tag, a) in &els {
        if tag == "text" && attr(a, "text-anchor").is_none() {
            let x: i64 = attr(a, "x").unwrap().parse().unwrap();
            assert!(x < width, "{a:?}");
        }
    }
    for chunk in svg.split("<text ").skip(1) {
        let x: f64 = chunk[3..].split('\'').next().unwrap().parse().unwrap();
        let head = &chunk[..chunk.find('>').unwrap()];
        let content = chunk[head.len() + 1..chunk.find("</text>").unwrap()]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&apos;", "'")
            .replace("&amp;", "&");
        // A monospace advance is 0.6 em (DejaVu Sans Mono: 0.602).
        let size: f64 = head
            .split("font-size='")
            .nth(1)
            .map_or(11.0, |v| v.split('\'').next().unwrap().parse().unwrap());
        if !head.contains("text-anchor") {
            let end = x + content.chars().count() as f64 * 0.61 * size;
            assert!(end <= width as f64 + 1.0, "{content:?} ends at {end}");
        }
    }
}

#[test]
fn messages_run_from_send_to_delivery_and_duplicates_differ() {
    let s0 = AbstractState {
        servers: vec![server(0, Role::Follower, vec![]); 3],
        network: vec![],
        partition: None,
    };
    let m = rv(0, 1);
    let mut s1 = s0.clone();
    s1.servers[0] = server(1, Role::Candidate, vec![]);
    s1.network = vec![m.clone(), rv(0, 2)];
    let mut s2 = s1.clone();
    s2.network = vec![m.clone(), m.clone(), rv(0, 2)];
    let mut s3 = s2.clone();
    s3.servers[1].term = 1;
    s3.network = vec![m.clone(), rv(0, 2)];
    let mut s4 = s3.clone();
    s4.network = vec![rv(0, 2)];
    let mut s5 = s4.clone();
    s5.network = vec![];
    let steps = vec![
        (Action::Timeout { server: 0 }, s1),
        (Action::Duplicate { message: m.clone() }, s2),
        (Action::Deliver { message: m.clone() }, s3),
        (Action::Deliver { message: m.clone() }, s4),
        (Action::Drop { message: rv(0, 2) }, s5),
    ];
    let input = lamport::Input {
        initial: &s0,
        steps: &steps,
        cut_losses: vec![],
        header: Header::default(),
    };
    let copies = flights::trace_copies(&input);
    let ends: Vec<_> = copies
        .iter()
        .map(|c| (c.msg.to, c.sent, c.dup, c.end))
        .collect();
    use flights::End::*;
    // The original is delivered first; the copy made at step 2 second; both
    // were sent at step 1.
    assert!(ends.contains(&(1, 1, None, Delivered(3))), "{ends:?}");
    assert!(ends.contains(&(1, 1, Some(2), Delivered(4))), "{ends:?}");
    assert!(ends.contains(&(2, 1, None, Dropped(5))), "{ends:?}");
    assert_eq!(ends.len(), 3);
    let svg = lamport::draw(&input);
    assert_eq!(svg.matches("marker-end='url(#rm-d)'").count(), 1);
    assert_eq!(svg.matches("marker-end='url(#rm-u)'").count(), 1);
    for needle in ["dup RV t1 0/0", "dropped", "election timeout", "server 2"] {
        assert!(svg.contains(needle), "missing {needle:?} in {svg}");
    }
}

#[test]
fn a_send_across_a_cut_is_drawn_lost_where_it_happens() {
    let cfg = Config {
        max_partitions: 1,
        ..Bug::VoteTwice.default_config()
    };
    let model = RaftModel::new(cfg);
    let init = model.init_states().remove(0);
    let actions = [
        Action::Partition { group: vec![2] },
        Action::Timeout { server: 0 },
        Action::Persist { server: 0 },
    ];
    let path = Path::from_actions(&model, init, &actions).expect("enabled steps");
    let svg = sequence_diagram(&model, &path);
    // The RequestVote to 2 is lost at the Persist; the one to 1 is in flight.
    assert_eq!(svg.matches("lost: cut").count(), 1, "{svg}");
    assert!(svg.contains("RV t1 0/0 lost: cut"), "{svg}");
    assert!(svg.contains("PARTITION: {2} cut off from the rest"));
    assert!(svg.contains("stroke-dasharray='6,4'"), "cut-off lifeline");
}

#[test]
fn persist_pending_writes_and_outbox_are_drawn() {
    let s0 = AbstractState {
        servers: vec![server(0, Role::Follower, vec![]); 2],
        network: vec![],
        partition: None,
    };
    let mut s1 = s0.clone();
    s1.servers[0] = server(1, Role::Candidate, vec![]);
    s1.servers[0].durable_term = 0;
    s1.servers[0].durable_voted_for = None;
    s1.servers[0].outbox = vec![rv(0, 1)];
    let mut s2 = s1.clone();
    s2.servers[0] = server(1, Role::Candidate, vec![]);
    s2.network = vec![rv(0, 1)];
    let steps = vec![
        (Action::Timeout { server: 0 }, s1.clone()),
        (Action::Persist { server: 0 }, s2),
    ];
    let svg = sequence_diagram_abstract(&s0, &steps);
    for needle in [
        "disk T0 v- []",
        "outbox RV→1",
        "persist (fsync)",
        "T1 C v0 c0 []",
    ] {
        assert!(svg.contains(needle), "missing {needle:?} in {svg}");
    }
    // One message line: sent by the Persist, still in flight.
    assert_eq!(svg.matches("RV t1 0/0").count(), 1);
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
fn restarts_leaders_and_partitions_are_drawn() {
    let s0 = AbstractState {
        servers: vec![server(0, Role::Follower, vec![]); 3],
        network: vec![],
        partition: None,
    };
    let mut s1 = s0.clone();
    s1.partition = Some(vec![2]);
    let mut s2 = s1.clone();
    s2.servers[0] = server(1, Role::Leader, vec![Entry { term: 1, value: 7 }]);
    s2.servers[0].next_index = vec![0, 2, 2];
    s2.servers[0].match_index = vec![0, 1, 0];
    let mut s3 = s2.clone();
    s3.partition = None;
    let steps = vec![
        (Action::Partition { group: vec![2] }, s1),
        (Action::Restart { server: 1 }, s2),
        (Action::Heal, s3),
    ];
    let svg = sequence_diagram_abstract(&s0, &steps);
    for needle in [
        "PARTITION: {2}",
        "CRASH + RESTART",
        "HEAL: all links restored",
        "T1 L v0 c0 [1:7]",
        "next [· 2 2]",
        "match [· 1 0]",
    ] {
        assert!(svg.contains(needle), "missing {needle:?} in {svg}");
    }
}

#[test]
fn new_messages_is_a_multiset_difference() {
    let m = Message {
        from: 1,
        to: 0,
        body: Body::RequestVoteResponse(RequestVoteResponse {
            term: 1,
            granted: true,
        }),
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

#[test]
fn a_trace_file_is_drawn_with_its_bounds_and_violation() {
    let (model, path) = vote_twice_counterexample();
    let pairs = path.into_vec();
    let steps = pairs
        .iter()
        .skip(1)
        .zip(&pairs)
        .map(|((s, _), (_, a))| crate::trace::TraceStep {
            action: a.clone().unwrap(),
            state: s.to_abstract(),
        })
        .collect();
    let mut trace = crate::trace::Trace::new(
        crate::trace::TraceKind::Counterexample,
        Some("VoteOncePerTerm".into()),
        model.cfg.clone(),
        pairs[0].0.to_abstract(),
        steps,
    );
    let svg = diagram_of_trace(&trace);
    assert!(svg.contains("✗ VoteOncePerTerm violated at step"), "{svg}");
    // A trace that does not replay keeps its bounds, claims no violation.
    trace.steps[0].state.servers[0].term = 9;
    let svg = diagram_of_trace(&trace);
    assert!(svg.contains("Raft model: 3 servers"), "{svg}");
    assert!(!svg.contains("violated at step"), "{svg}");
}
