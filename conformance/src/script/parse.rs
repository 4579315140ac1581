//! Reading a script file: comments, commands, their expected output, and
//! the `config` header (docs/scripts.md).

use super::config::{default_config, parse_config};
use raft_model::types::{
    AppendEntries, AppendEntriesResponse, Body, Index, Message, RequestVote, RequestVoteResponse,
    ServerId, Value,
};
use raft_model::Config;

/// A script: the config it runs under and its lines, kept so that a
/// rewrite reproduces every comment and blank line.
#[derive(Clone, Debug)]
pub struct Script {
    pub path: String,
    pub config: Config,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug)]
pub enum Item {
    /// A comment or blank line, verbatim.
    Text(String),
    Case(Case),
}

#[derive(Clone, Debug)]
pub struct Case {
    /// 1-based line of the command.
    pub line: usize,
    pub text: String,
    pub command: Command,
    /// `None` when the command has no `----` block yet.
    pub expected: Option<String>,
    /// Whether a blank line ended the expected block (EOF otherwise).
    pub terminated: bool,
}

impl Script {
    pub fn cases(&self) -> impl Iterator<Item = &Case> {
        self.items.iter().filter_map(|i| match i {
            Item::Case(c) => Some(c),
            Item::Text(_) => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The header: prints the effective config.
    Config,
    State,
    Timeout(ServerId),
    Heartbeat(ServerId),
    Persist(ServerId),
    Restart(ServerId),
    /// Snapshot(i, index): compact the log through `index`, by default
    /// the server's commit index (R-snap-2).
    Snapshot(ServerId, Option<Index>),
    Request(ServerId, Value),
    Message(Verb, Selector),
    /// The group `S` of `Partition(S)`: the left side of `|`.
    Partition(Vec<ServerId>),
    Heal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Deliver,
    Drop,
    Duplicate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    RequestVote,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    /// `InstallSnapshot` / `IS` (R-snap-3).
    InstallSnapshot,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "RequestVote" | "RV" => Kind::RequestVote,
            "VoteResponse" | "RequestVoteResponse" | "RVR" => Kind::VoteResponse,
            "AppendEntries" | "AE" => Kind::AppendEntries,
            "AppendResponse" | "AppendEntriesResponse" | "AER" => Kind::AppendResponse,
            "InstallSnapshot" | "IS" => Kind::InstallSnapshot,
            _ => return None,
        })
    }

    pub fn of(body: &Body) -> Kind {
        match body {
            Body::RequestVote(_) => Kind::RequestVote,
            Body::RequestVoteResponse(_) => Kind::VoteResponse,
            Body::AppendEntries(_) => Kind::AppendEntries,
            Body::AppendEntriesResponse(_) => Kind::AppendResponse,
            Body::InstallSnapshot(_) => Kind::InstallSnapshot,
        }
    }
}

/// A qualifier that narrows a message selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    Term(u32),
    /// RequestVote `last=I/T`.
    Last(u32, u32),
    /// VoteResponse `granted` / `denied`.
    Granted(bool),
    /// AppendEntries `prev=I/T`.
    Prev(u32, u32),
    /// AppendEntries `commit=N`.
    Commit(u32),
    /// AppendEntries `entries=N` (how many it carries).
    Entries(u32),
    /// AppendResponse `ok` / `reject`.
    Success(bool),
    /// AppendResponse `index=N`.
    Index(u32),
    /// AppendResponse `hint=N`.
    Hint(u32),
}

impl Filter {
    pub fn matches(self, body: &Body) -> bool {
        match (self, body) {
            (Filter::Term(t), b) => b.term() == t,
            (
                Filter::Last(i, t),
                Body::RequestVote(RequestVote {
                    last_log_index,
                    last_log_term,
                    ..
                }),
            ) => (*last_log_index, *last_log_term) == (i, t),
            (
                Filter::Granted(g),
                Body::RequestVoteResponse(RequestVoteResponse { granted, .. }),
            ) => *granted == g,
            (
                Filter::Prev(i, t),
                Body::AppendEntries(AppendEntries {
                    prev_log_index,
                    prev_log_term,
                    ..
                }),
            ) => (*prev_log_index, *prev_log_term) == (i, t),
            (Filter::Commit(c), Body::AppendEntries(AppendEntries { leader_commit, .. })) => {
                *leader_commit == c
            }
            (Filter::Entries(n), Body::AppendEntries(AppendEntries { entries, .. })) => {
                entries.len() == n as usize
            }
            (
                Filter::Success(s),
                Body::AppendEntriesResponse(AppendEntriesResponse { success, .. }),
            ) => *success == s,
            (
                Filter::Index(i),
                Body::AppendEntriesResponse(AppendEntriesResponse { index, .. }),
            ) => *index == i,
            (
                Filter::Hint(h),
                Body::AppendEntriesResponse(AppendEntriesResponse { conflict_index, .. }),
            ) => *conflict_index == h,
            _ => false,
        }
    }
}

/// `FROM->TO [KIND] [FILTER...] [#K]`: the messages in flight on the link
/// that match every part; `#K` takes the K-th of them (1-based, in the
/// order `state` lists them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub from: ServerId,
    pub to: ServerId,
    pub kind: Option<Kind>,
    pub filters: Vec<Filter>,
    pub pick: Option<usize>,
}

impl Selector {
    pub fn matches(&self, m: &Message) -> bool {
        m.from == self.from
            && m.to == self.to
            && self.kind.is_none_or(|k| Kind::of(&m.body) == k)
            && self.filters.iter().all(|f| f.matches(&m.body))
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::RequestVote => "RequestVote",
            Kind::VoteResponse => "VoteResponse",
            Kind::AppendEntries => "AppendEntries",
            Kind::AppendResponse => "AppendResponse",
            Kind::InstallSnapshot => "InstallSnapshot",
        })
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Term(t) => write!(f, "term={t}"),
            Filter::Last(i, t) => write!(f, "last={i}/{t}"),
            Filter::Granted(true) => f.write_str("granted"),
            Filter::Granted(false) => f.write_str("denied"),
            Filter::Prev(i, t) => write!(f, "prev={i}/{t}"),
            Filter::Commit(c) => write!(f, "commit={c}"),
            Filter::Entries(n) => write!(f, "entries={n}"),
            Filter::Success(true) => f.write_str("ok"),
            Filter::Success(false) => f.write_str("reject"),
            Filter::Index(i) => write!(f, "index={i}"),
            Filter::Hint(h) => write!(f, "hint={h}"),
        }
    }
}

/// The selection without `#K`, as a script writes it.
impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}->{}", self.from, self.to)?;
        if let Some(k) = self.kind {
            write!(f, " {k}")?;
        }
        for x in &self.filters {
            write!(f, " {x}")?;
        }
        Ok(())
    }
}

/// A malformed script (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ParseError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

fn server(word: &str, n: u8) -> Result<ServerId, String> {
    let digits = word.strip_prefix('s').unwrap_or(word);
    let id: ServerId = digits
        .parse()
        .map_err(|_| format!("'{word}' is not a server id"))?;
    if id >= n {
        return Err(format!("server {id} does not exist (servers 0..{n})"));
    }
    Ok(id)
}

fn pair(v: &str, what: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{what}: '{v}' is not INDEX/TERM");
    let (a, b) = v.split_once('/').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn selector(words: &[&str], n: u8) -> Result<Selector, String> {
    let link = words
        .first()
        .ok_or("expected a link FROM->TO, e.g. 0->1 RequestVote")?;
    let (from, to) = link
        .split_once("->")
        .ok_or_else(|| format!("expected a link FROM->TO, got '{link}'"))?;
    let mut sel = Selector {
        from: server(from, n)?,
        to: server(to, n)?,
        kind: None,
        filters: Vec::new(),
        pick: None,
    };
    for w in &words[1..] {
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("'{w}': '{v}' is not a number"))
        };
        if let Some(k) = Kind::parse(w) {
            if sel.kind.replace(k).is_some() {
                return Err(format!("'{w}': a message kind is given twice"));
            }
            continue;
        }
        if let Some(k) = w.strip_prefix('#') {
            let k = num(k)?;
            if k == 0 {
                return Err("#K counts from 1".into());
            }
            sel.pick = Some(k as usize);
            continue;
        }
        let f = match w.split_once('=') {
            None => match *w {
                "granted" => Filter::Granted(true),
                "denied" => Filter::Granted(false),
                "ok" => Filter::Success(true),
                "reject" => Filter::Success(false),
                _ => return Err(format!("unknown message qualifier '{w}'")),
            },
            Some(("term", v)) => Filter::Term(num(v)?),
            Some(("last", v)) => {
                let (i, t) = pair(v, "last")?;
                Filter::Last(i, t)
            }
            Some(("prev", v)) => {
                let (i, t) = pair(v, "prev")?;
                Filter::Prev(i, t)
            }
            Some(("commit", v)) => Filter::Commit(num(v)?),
            Some(("entries", v)) => Filter::Entries(num(v)?),
            Some(("index", v)) => Filter::Index(num(v)?),
            Some(("hint", v)) => Filter::Hint(num(v)?),
            Some(_) => return Err(format!("unknown message qualifier '{w}'")),
        };
        sel.filters.push(f);
    }
    Ok(sel)
}

fn partition(words: &[&str], n: u8) -> Result<Vec<ServerId>, String> {
    let text = words.join(" ");
    let (left, right) = match text.split_once('|') {
        Some((l, r)) => (l, Some(r)),
        None => (text.as_str(), None),
    };
    let ids = |side: &str| -> Result<Vec<ServerId>, String> {
        side.split_whitespace().map(|w| server(w, n)).collect()
    };
    let group = ids(left)?;
    let mut all = group.clone();
    if let Some(r) = right {
        let rest = ids(r)?;
        all.extend(&rest);
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != all.len() || sorted.len() != usize::from(n) {
            return Err(format!(
                "partition: the two sides must split servers 0..{n} without overlap"
            ));
        }
    }
    if group.is_empty() {
        return Err("partition: expected the servers of one side, e.g. partition 0 | 1 2".into());
    }
    Ok(group)
}

fn command(text: &str, n: u8) -> Result<Command, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (name, args) = (words[0], &words[1..]);
    let one = |what: &str| -> Result<ServerId, String> {
        match args {
            [w] => server(w, n),
            _ => Err(format!("{what} takes one server id, e.g. {what} 0")),
        }
    };
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(format!("{name} takes no arguments"))
        }
    };
    match name {
        "config" => Err("config must be the first command of a script".into()),
        "state" => none(Command::State),
        "heal" => none(Command::Heal),
        "timeout" => Ok(Command::Timeout(one(name)?)),
        "heartbeat" => Ok(Command::Heartbeat(one(name)?)),
        "persist" => Ok(Command::Persist(one(name)?)),
        "restart" => Ok(Command::Restart(one(name)?)),
        "snapshot" => match args {
            [s] => Ok(Command::Snapshot(server(s, n)?, None)),
            [s, i] => {
                let index = i.parse().map_err(|_| {
                    format!("snapshot: '{i}' is not an index (snapshot 0 2: s0 through index 2)")
                })?;
                Ok(Command::Snapshot(server(s, n)?, Some(index)))
            }
            _ => Err(
                "snapshot takes a server and optionally an index, e.g. snapshot 0 or snapshot 0 2"
                    .into(),
            ),
        },
        "request" => match args {
            [s, v] => {
                let digits = v.strip_prefix('v').unwrap_or(v);
                let value: Value = digits
                    .parse()
                    .ok()
                    .filter(|&x| x > 0)
                    .ok_or_else(|| format!("request: '{v}' is not a positive value like v3"))?;
                Ok(Command::Request(server(s, n)?, value))
            }
            _ => Err("request takes a server and a value, e.g. request 1 v3".into()),
        },
        "deliver" => Ok(Command::Message(Verb::Deliver, selector(args, n)?)),
        "drop" => Ok(Command::Message(Verb::Drop, selector(args, n)?)),
        "duplicate" => Ok(Command::Message(Verb::Duplicate, selector(args, n)?)),
        "partition" => Ok(Command::Partition(partition(args, n)?)),
        _ => Err(format!(
            "unknown command '{name}' (known: config, state, timeout, heartbeat, request, \
             deliver, drop, duplicate, persist, restart, snapshot, partition, heal)"
        )),
    }
}

/// Parses a script. `path` names it in errors.
pub fn parse(text: &str, path: &str) -> Result<Script, ParseError> {
    let err = |line: usize, message: String| ParseError {
        path: path.to_string(),
        line,
        message,
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut config: Option<Config> = None;
    let mut k = 0;
    while k < lines.len() {
        let raw = lines[k];
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            items.push(Item::Text(raw.to_string()));
            k += 1;
            continue;
        }
        if trimmed == "----" {
            return Err(err(k + 1, "'----' without a command before it".into()));
        }
        let line = k + 1;
        let first = config.is_none() && !items.iter().any(|i| matches!(i, Item::Case(_)));
        let cmd = if trimmed.split_whitespace().next() == Some("config") {
            if !first {
                return Err(err(
                    line,
                    "config must be the first command of a script".into(),
                ));
            }
            let words: Vec<&str> = trimmed.split_whitespace().skip(1).collect();
            config = Some(parse_config(&words).map_err(|m| err(line, m))?);
            Command::Config
        } else {
            let n = config.get_or_insert_with(default_config).servers;
            command(trimmed, n).map_err(|m| err(line, m))?
        };
        k += 1;
        let (mut expected, mut terminated) = (None, false);
        if lines.get(k).map(|l| l.trim()) == Some("----") {
            k += 1;
            let mut out = Vec::new();
            while k < lines.len() && !lines[k].trim().is_empty() {
                out.push(lines[k].trim_end());
                k += 1;
            }
            if k < lines.len() {
                terminated = true;
                k += 1;
            }
            expected = Some(out.join("\n"));
        } else if k < lines.len() && lines[k].trim().is_empty() {
            // No output block yet: the blank line after the command is the
            // one a rendered block ends with.
            terminated = true;
            k += 1;
        }
        items.push(Item::Case(Case {
            line,
            text: trimmed.to_string(),
            command: cmd,
            expected,
            terminated,
        }));
    }
    Ok(Script {
        path: path.to_string(),
        config: config.unwrap_or_else(default_config),
        items,
    })
}

/// The script with `outputs` (one per case, in order) as the expected
/// blocks; comments and blank lines as they were.
pub fn render(script: &Script, outputs: &[String]) -> String {
    render_with(script, |k, _| {
        Some(outputs.get(k).map_or("", String::as_str))
    })
}

/// The script as written: its own expected blocks, and no `----` where it
/// has none.
pub fn render_expected(script: &Script) -> String {
    render_with(script, |_, c| c.expected.as_deref())
}

fn render_with<'a>(
    script: &'a Script,
    output: impl Fn(usize, &'a Case) -> Option<&'a str>,
) -> String {
    let mut out = String::new();
    let mut k = 0;
    for (pos, item) in script.items.iter().enumerate() {
        match item {
            Item::Text(t) => {
                out.push_str(t);
                out.push('\n');
            }
            Item::Case(c) => {
                out.push_str(&c.text);
                out.push('\n');
                if let Some(o) = output(k, c) {
                    out.push_str("----\n");
                    if !o.is_empty() {
                        out.push_str(o);
                        out.push('\n');
                    }
                }
                // A blank line ends an output block: always one before the
                // next item, none added at the end of the file.
                if c.terminated || pos + 1 < script.items.len() {
                    out.push('\n');
                }
                k += 1;
            }
        }
    }
    out
}
