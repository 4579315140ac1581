//! What the diagram's header says: the bounds of the model that drew it, the
//! command that serves an Explorer on these bounds, and the violated
//! property with its meaning.
//!
//! The Explorer's links are action indices: a link opened on an Explorer
//! started with other bounds may resolve to another path. Naming the bounds
//! (and the command) above every diagram makes such a mismatch visible.

use crate::config::{Config, NetworkKind};

/// The flags of `raft-model explore` (or `check`) that reproduce `cfg`.
pub fn config_flags(cfg: &Config) -> String {
    let network = match cfg.network {
        NetworkKind::Unordered => "unordered",
        NetworkKind::Ordered => "ordered",
    };
    let mut s = format!(
        "--servers {} --max-term {} --max-requests {} --max-inflight {} --max-restarts {} \
         --max-partitions {} --max-duplicates {} --max-snapshots {} --network {network} \
         --persist {}",
        cfg.servers,
        cfg.max_term,
        cfg.max_requests,
        cfg.max_inflight,
        cfg.max_restarts,
        cfg.max_partitions,
        cfg.max_duplicates,
        cfg.max_snapshots,
        cfg.persist,
    );
    if let Some(bug) = cfg.bug {
        s.push_str(&format!(" --bug {bug}"));
    }
    s
}

/// The command that serves an Explorer on `cfg` at `addr`.
pub fn explore_command(cfg: &Config, addr: &str) -> String {
    format!("raft-model explore {} --addr {addr}", config_flags(cfg))
}

/// The bounds as one URL-safe word, e.g.
/// `servers3.term2.requests0.inflight2.restarts0.partitions0.duplicates0.snapshots0.unordered.async.vote-twice`:
/// the checker's links carry it (`?bounds=`) so that an Explorer on other
/// bounds can say that the link is not for it.
pub fn bounds_tag(cfg: &Config) -> String {
    let network = match cfg.network {
        NetworkKind::Unordered => "unordered",
        NetworkKind::Ordered => "ordered",
    };
    format!(
        "servers{}.term{}.requests{}.inflight{}.restarts{}.partitions{}.duplicates{}.snapshots{}.{network}.{}.{}",
        cfg.servers,
        cfg.max_term,
        cfg.max_requests,
        cfg.max_inflight,
        cfg.max_restarts,
        cfg.max_partitions,
        cfg.max_duplicates,
        cfg.max_snapshots,
        cfg.persist,
        cfg.bug.map_or("no-bug".to_string(), |b| b.to_string())
    )
}

/// The bounds in words, e.g. `3 servers, max term 2, ... bug vote-twice`.
pub fn describe_bounds(cfg: &Config) -> String {
    let network = match cfg.network {
        NetworkKind::Unordered => "unordered",
        NetworkKind::Ordered => "ordered",
    };
    format!(
        "{} servers, max term {}, max requests {}, max in flight {}, max restarts {}, \
         max partitions {}, max duplicates {}, max snapshots {}, {network} network, persist {}, \
         bug {}",
        cfg.servers,
        cfg.max_term,
        cfg.max_requests,
        cfg.max_inflight,
        cfg.max_restarts,
        cfg.max_partitions,
        cfg.max_duplicates,
        cfg.max_snapshots,
        cfg.persist,
        cfg.bug.map_or("none".to_string(), |b| b.to_string())
    )
}

/// The first step (0 = the initial state) at which a safety property fails,
/// and the properties failing there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub step: usize,
    pub properties: Vec<&'static str>,
}

/// What the header shows above the drawing.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// The bounds in words (none for a drawing without a model).
    pub bounds: Option<String>,
    /// The command serving these bounds.
    pub command: Option<String>,
    pub violation: Option<Violation>,
}

/// Splits `text` into lines of at most `width` characters at spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_width() {
        let text = "raft-model explore --servers 3 --max-term 2 --addr 127.0.0.1:3000";
        let lines = wrap(text, 20);
        assert_eq!(lines.join(" "), text);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
    }

    #[test]
    fn the_command_reproduces_the_bounds() {
        let cfg = crate::Bug::VoteTwice.default_config();
        let cmd = explore_command(&cfg, "127.0.0.1:4000");
        assert!(cmd.starts_with("raft-model explore --servers 3 "), "{cmd}");
        assert!(
            cmd.ends_with("--bug vote-twice --addr 127.0.0.1:4000"),
            "{cmd}"
        );
        assert!(describe_bounds(&cfg).ends_with("bug vote-twice"));
    }
}
