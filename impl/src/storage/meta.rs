//! The `meta` file of a data directory: who the directory belongs to (node
//! id, cluster id) and which log segments make up its log, so that opening
//! it can tell a whole directory from one that lost a file.
//!
//! It is a few lines of text, checksummed, replaced atomically (written to
//! `meta.tmp`, fsynced, renamed over `meta`, directory fsynced):
//!
//! ```text
//! raftkv-meta 1
//! node 1
//! cluster prod-eu
//! segments 1 524289
//! snapshot 524000 7
//! crc32c 0x1a2b3c4d
//! ```
//!
//! `node 0` and `cluster -` mean "not recorded". The `snapshot` line (index
//! and term of the snapshot file `snapshot-<index>.snap`) is there only when
//! the directory holds a snapshot, so a directory written before snapshots
//! existed reads as one without a snapshot, and a raftkv older than
//! snapshots refuses a directory that has one ("unexpected lines") instead
//! of reading its log as if it began at 1. The checksum covers every byte
//! before the `crc32c` line.

use super::StorageError;
use crate::types::{LogIndex, NodeId, SnapshotMeta};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) const META: &str = "meta";
pub(super) const META_TMP: &str = "meta.tmp";
const HEADER: &str = "raftkv-meta 1";

/// Who a data directory belongs to. `None` fields claim nothing: they are
/// not checked, and a directory that has no such record yet gets one from
/// the first open that gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirIdentity {
    pub node_id: Option<NodeId>,
    pub cluster_id: Option<String>,
}

/// A cluster id is 1 to 64 characters of `A-Z a-z 0-9 . _ : -`.
pub fn validate_cluster_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("cluster id `{id}` must be 1 to 64 characters long"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!(
            "cluster id `{id}` contains {c:?}; use only letters, digits and . _ : -"
        ));
    }
    if id == "-" {
        return Err("cluster id `-` is reserved".into());
    }
    Ok(())
}

/// The content of the `meta` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Meta {
    pub node_id: Option<NodeId>,
    pub cluster_id: Option<String>,
    /// First index of every log segment, ascending.
    pub segments: Vec<LogIndex>,
    /// The snapshot the directory holds, if any (index >= 1).
    pub snapshot: Option<SnapshotMeta>,
}

impl Meta {
    pub fn encode(&self) -> String {
        let mut s = String::new();
        s.push_str(HEADER);
        s.push('\n');
        s.push_str(&format!("node {}\n", self.node_id.unwrap_or(0)));
        s.push_str(&format!(
            "cluster {}\n",
            self.cluster_id.as_deref().unwrap_or("-")
        ));
        s.push_str("segments");
        for f in &self.segments {
            s.push_str(&format!(" {f}"));
        }
        s.push('\n');
        if let Some(sm) = self.snapshot {
            s.push_str(&format!("snapshot {} {}\n", sm.index, sm.term));
        }
        let crc = crc32c::crc32c(s.as_bytes());
        s.push_str(&format!("crc32c {crc:#010x}\n"));
        s
    }

    pub fn decode(b: &[u8]) -> Result<Meta, String> {
        let text = std::str::from_utf8(b).map_err(|_| "not UTF-8 text".to_string())?;
        let crc_at = text
            .rfind("crc32c ")
            .ok_or_else(|| "no crc32c line".to_string())?;
        let (body, crc_line) = text.split_at(crc_at);
        let stored = crc_line
            .strip_prefix("crc32c 0x")
            .and_then(|s| s.strip_suffix('\n'))
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            .ok_or_else(|| format!("malformed crc32c line {:?}", crc_line.trim_end()))?;
        let actual = crc32c::crc32c(body.as_bytes());
        if stored != actual {
            return Err(format!(
                "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            ));
        }
        let mut lines = body.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("first line is not `{HEADER}`"));
        }
        let mut field = |name: &str| -> Result<&str, String> {
            let line = lines.next().ok_or_else(|| format!("no `{name}` line"))?;
            if line == name {
                return Ok("");
            }
            line.strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or_else(|| format!("expected a `{name}` line, found {line:?}"))
        };
        let node: NodeId = field("node")?
            .parse()
            .map_err(|_| "unparsable node id".to_string())?;
        let cluster = field("cluster")?;
        if cluster != "-" {
            validate_cluster_id(cluster)?;
        }
        let segments = field("segments")?
            .split_whitespace()
            .map(|s| s.parse::<LogIndex>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "unparsable segment index".to_string())?;
        if segments.windows(2).any(|w| w[0] >= w[1]) || segments.first() == Some(&0) {
            return Err("segment indexes are not ascending from 1".into());
        }
        let mut snapshot = None;
        let mut next = lines.next();
        if let Some(rest) = next.and_then(|l| l.strip_prefix("snapshot ")) {
            let nums = rest
                .split(' ')
                .map(|s| s.parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "unparsable snapshot line".to_string())?;
            let [index, term] = nums[..] else {
                return Err("the snapshot line needs an index and a term".into());
            };
            if index == 0 {
                return Err("snapshot index 0".into());
            }
            snapshot = Some(SnapshotMeta { index, term });
            next = lines.next();
        }
        if next.is_some() {
            return Err("unexpected lines after `segments`".into());
        }
        Ok(Meta {
            node_id: (node != 0).then_some(node),
            cluster_id: (cluster != "-").then(|| cluster.to_string()),
            segments,
            snapshot,
        })
    }
}

/// Reads `dir/meta`; `Ok(None)` if there is none.
pub(super) fn read(dir: &Path) -> Result<Option<Meta>, StorageError> {
    let path = dir.join(META);
    match fs::read(&path) {
        Ok(b) => Meta::decode(&b)
            .map(Some)
            .map_err(|reason| StorageError::CorruptMeta { path, reason }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StorageError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

/// Replaces `dir/meta` atomically; durable when this returns.
pub(super) fn write(dir: &Path, meta: &Meta) -> Result<(), StorageError> {
    let tmp = dir.join(META_TMP);
    let path = dir.join(META);
    let io = |op: &'static str, path: &PathBuf| {
        let path = path.clone();
        move |source| StorageError::Io { op, path, source }
    };
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(meta.encode().as_bytes())
        .map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync directory", &dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let m = Meta {
            node_id: Some(3),
            cluster_id: Some("prod-eu".into()),
            segments: vec![1, 17, 4000],
            snapshot: None,
        };
        let with_snap = Meta {
            snapshot: Some(SnapshotMeta { index: 20, term: 3 }),
            ..m.clone()
        };
        assert_eq!(
            Meta::decode(with_snap.encode().as_bytes()),
            Ok(with_snap.clone())
        );
        assert!(with_snap.encode().contains("\nsnapshot 20 3\n"));
        let text = m.encode();
        assert_eq!(Meta::decode(text.as_bytes()), Ok(m.clone()));
        let empty = Meta::default();
        assert_eq!(Meta::decode(empty.encode().as_bytes()), Ok(empty));
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] ^= 0x01;
            assert!(Meta::decode(&b).is_err(), "flip at {i} accepted");
        }
        assert!(Meta::decode(&text.as_bytes()[..text.len() - 3]).is_err());
    }

    #[test]
    fn cluster_ids_are_checked() {
        assert!(validate_cluster_id("prod-eu.1:a_b").is_ok());
        for bad in ["", "-", "a b", "a\nb", &"x".repeat(65)] {
            assert!(validate_cluster_id(bad).is_err(), "{bad:?}");
        }
    }
}
