//! Snapshots across the bridge (docs/protocol.md §8): the model's
//! `(snapshot_index, snapshot_term, snapshot_values)` ↔ the implementation's
//! `Option<Snapshot>`, and the model's InstallSnapshot ↔ the core's.
//!
//! The implementation treats a snapshot's data as opaque state-machine
//! bytes; the harness's state machine is the list of applied values, so
//! the data of a snapshot taken or installed under conformance is the
//! values through its index in decimal, comma-separated (`[1, 12]` ↔
//! `b"1,12"`, no values ↔ empty data). The encoding is a bijection: only
//! the canonical form decodes.

use super::{narrow, MappingError};
use raft_model::types as m;
use raftkv::message as k;
use raftkv::types as kt;

/// Applied values → snapshot data.
pub fn snapshot_data(values: &[m::Value]) -> bytes::Bytes {
    let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    bytes::Bytes::from(text.join(","))
}

/// Snapshot data → applied values; anything but the canonical form of
/// [`snapshot_data`] is a [`MappingError::SnapshotData`].
pub fn snapshot_values(data: &[u8]) -> Result<Vec<m::Value>, MappingError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    data.split(|&b| b == b',')
        .map(|part| super::value(part).map_err(|_| MappingError::SnapshotData(data.to_vec())))
        .collect()
}

/// The model's snapshot fields → the implementation's snapshot (`None` at
/// index 0: the model's "no snapshot").
pub fn snapshot_to_impl(
    index: m::Index,
    term: m::Term,
    values: &[m::Value],
) -> Option<kt::Snapshot> {
    (index > 0).then(|| kt::Snapshot {
        meta: kt::SnapshotMeta {
            index: u64::from(index),
            term: u64::from(term),
        },
        data: snapshot_data(values),
    })
}

/// The implementation's snapshot → the model's `(index, term, values)`.
/// The values are whatever the data holds: a snapshot whose data does not
/// cover exactly its index (a seeded bug) maps faithfully and so differs
/// from the model's.
pub fn snapshot_to_model(
    s: Option<&kt::Snapshot>,
) -> Result<(m::Index, m::Term, Vec<m::Value>), MappingError> {
    match s {
        None => Ok((0, 0, Vec::new())),
        Some(s) => Ok((
            narrow("snapshot index", s.meta.index)?,
            narrow("snapshot term", s.meta.term)?,
            snapshot_values(&s.data)?,
        )),
    }
}

/// The values a node has applied through `through` (at most its commit
/// index): its snapshot's values, then the values of its log entries. What
/// the harness's state machine hands to `Snapshot(i)` as the data.
pub fn applied_values(
    s: &kt::Status,
    through: kt::LogIndex,
) -> Result<Vec<m::Value>, MappingError> {
    let (index, _, mut values) = snapshot_to_model(s.snapshot.as_ref())?;
    let rest = through.saturating_sub(u64::from(index)) as usize;
    for e in s.log.iter().take(rest) {
        values.push(super::value(&e.command)?);
    }
    Ok(values)
}

pub fn install_snapshot_to_impl(m: &m::InstallSnapshot) -> k::InstallSnapshot {
    k::InstallSnapshot {
        term: u64::from(m.term),
        snapshot: kt::Snapshot {
            meta: kt::SnapshotMeta {
                index: u64::from(m.last_included_index),
                term: u64::from(m.last_included_term),
            },
            data: snapshot_data(&m.values),
        },
    }
}

pub fn install_snapshot_to_model(
    k: &k::InstallSnapshot,
) -> Result<m::InstallSnapshot, MappingError> {
    let (last_included_index, last_included_term, values) = snapshot_to_model(Some(&k.snapshot))?;
    Ok(m::InstallSnapshot {
        term: narrow("term", k.term)?,
        last_included_index,
        last_included_term,
        values: values.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_data_is_a_bijection_on_canonical_forms() {
        for values in [vec![], vec![1], vec![1, 12, 255], vec![7, 7]] {
            let data = snapshot_data(&values);
            assert_eq!(snapshot_values(&data).unwrap(), values);
        }
        for bad in [&b","[..], b"1,", b",1", b"01", b"1,,2", b"0", b"x", b"1, 2"] {
            assert_eq!(
                snapshot_values(bad),
                Err(MappingError::SnapshotData(bad.to_vec())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn snapshots_round_trip() {
        assert_eq!(snapshot_to_impl(0, 0, &[]), None);
        assert_eq!(snapshot_to_model(None).unwrap(), (0, 0, vec![]));
        let s = snapshot_to_impl(3, 2, &[4, 5, 6]).unwrap();
        assert_eq!(&s.data[..], b"4,5,6");
        assert_eq!(snapshot_to_model(Some(&s)).unwrap(), (3, 2, vec![4, 5, 6]));
        let is = m::InstallSnapshot {
            term: 4,
            last_included_index: 2,
            last_included_term: 1,
            values: vec![9, 3].into(),
        };
        assert_eq!(
            install_snapshot_to_model(&install_snapshot_to_impl(&is)).unwrap(),
            is
        );
    }
}
