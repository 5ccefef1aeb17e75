//! The index records of primary-key tables: each key's current row (the key state) and, per
//! committed chunk, what each of its rows changed (the change record), written by the
//! sequencer in the same batch as the chunk's entry, so both are durable with the ack.
//!
//! - `0x40 | stream | key` → [`KeyState`]: the offset that wrote the key's current row, its
//!   version (tables with the `versioned` merge engine) and its image
//!   (`inlet_core::pk::row`). A deleted key has no state.
//! - `0x41 | stream | end offset` → [`ChangeRecord`]: one [`Change`] per row of the chunk
//!   ending there, in offset order, with the before image of updates and deletes. With the
//!   chunk's rows (the after images) it is the table's changelog.
//!
//! - `0x42 | stream | key` → [`LakeRow`]: where the key's current row is in the lake table
//!   (data file and row position), written by the compactor's lake commit, so the next
//!   round can delete that row by position when the key changes again.
//!
//! Keys sort by stream then key bytes, so one bucket's keys are one range and a bucket-key
//! prefix is a sub-range (`inlet_core::pk::key` puts bucket-key columns first).

use inlet_core::ids::{Offset, StreamId, TimestampMicros};
use inlet_core::limits::{MAX_PRIMARY_KEY_BYTES, MAX_ROW_IMAGE_BYTES};

/// Longest data file path a [`LakeRow`] holds: object paths of lake data files are well
/// below it (`lake/<db>/<table>-<id>/data/_bucket=<b>/<name>.parquet`).
pub const MAX_LAKE_PATH_BYTES: usize = 4096;

use crate::keys::{CodecError, KeyPrefix, Reader, STREAM_KEY_LEN, push_stream, with_prefix};

pub fn state_key(stream: StreamId, key: &[u8]) -> Vec<u8> {
    let mut out = with_prefix(KeyPrefix::PkState, STREAM_KEY_LEN + key.len());
    push_stream(&mut out, stream);
    out.extend_from_slice(key);
    out
}

/// The state keys of `stream` whose primary key starts with `prefix` (an encoded key of
/// the bucket-key columns, `inlet_core::pk::key`): `start..end`.
pub fn prefix_range(stream: StreamId, prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let start = state_key(stream, prefix);
    // The first key after every key that starts with `start`: the prefix with its last
    // byte below 0xFF incremented and what follows it dropped. The stream's bytes are
    // before the prefix, so the range never leaves the stream unless the prefix is empty
    // and the stream's last byte is 0xFF; then the carry moves into the stream, which is
    // still past every key with this prefix and before the next stream's keys.
    let mut end = start.clone();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            break;
        }
    }
    (start, end)
}

pub fn change_key(stream: StreamId, end_offset: Offset) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::PkChange, STREAM_KEY_LEN + 8);
    push_stream(&mut key, stream);
    key.extend_from_slice(&end_offset.0.to_be_bytes());
    key
}

pub fn lake_row_key(stream: StreamId, key: &[u8]) -> Vec<u8> {
    let mut out = with_prefix(KeyPrefix::PkLakeRow, STREAM_KEY_LEN + key.len());
    push_stream(&mut out, stream);
    out.extend_from_slice(key);
    out
}

/// Where a key's current row is in the lake table: a data file (its URL, as the Iceberg
/// manifests name it) and the row's position in it, as a position delete names a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeRow {
    pub path: String,
    pub position: u64,
}

impl LakeRow {
    const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.path.len());
        out.push(Self::VERSION);
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(self.path.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        r.version(Self::VERSION)?;
        let position = r.u64()?;
        let path = r.bytes(r.remaining())?;
        if path.is_empty() || path.len() > MAX_LAKE_PATH_BYTES {
            return Err(CodecError::Json(format!(
                "lake row path of {} bytes (1..={MAX_LAKE_PATH_BYTES})",
                path.len()
            )));
        }
        let path = String::from_utf8(path.to_vec())
            .map_err(|_| CodecError::Json("lake row path is not UTF-8".to_owned()))?;
        Ok(Self { path, position })
    }
}

/// A key's current row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// The changelog offset of the row that wrote this state.
    pub offset: Offset,
    /// When that row was committed (its chunk's commit time, the changelog's `_timestamp`);
    /// the Unix epoch for states written before version 2 kept it.
    pub committed: TimestampMicros,
    /// The row's version-column value (`versioned` merge engine only).
    pub version: Option<i64>,
    /// The row's image.
    pub image: Vec<u8>,
}

impl KeyState {
    /// Version 1 had no commit time.
    const VERSION_WITHOUT_TIME: u8 = 1;
    const VERSION: u8 = 2;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26 + self.image.len());
        out.push(Self::VERSION);
        out.extend_from_slice(&self.offset.0.to_be_bytes());
        out.extend_from_slice(&self.committed.0.to_be_bytes());
        match self.version {
            Some(version) => {
                out.push(1);
                out.extend_from_slice(&version.to_be_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.image);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let format = r.u8()?;
        if format != Self::VERSION && format != Self::VERSION_WITHOUT_TIME {
            return Err(CodecError::Version {
                version: format,
                supported: Self::VERSION,
            });
        }
        let offset = Offset(r.u64()?);
        let committed = match format {
            Self::VERSION => TimestampMicros(r.i64()?),
            _ => TimestampMicros(0),
        };
        let version = match r.u8()? {
            0 => None,
            1 => Some(r.i64()?),
            other => return Err(CodecError::Json(format!("key state version flag {other}"))),
        };
        let image = r.bytes(r.remaining())?.to_vec();
        if image.is_empty() || image.len() > MAX_ROW_IMAGE_BYTES {
            return Err(CodecError::Json(format!(
                "key state image of {} bytes (1..={MAX_ROW_IMAGE_BYTES})",
                image.len()
            )));
        }
        Ok(Self {
            offset,
            committed,
            version,
            image,
        })
    }
}

/// What one row of a primary-key chunk did to its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing: the merge engine kept the current row (an older version, a later
    /// `first_row` upsert), or the row deleted a key that had no row.
    Ignored,
    /// The key had no row; the chunk's row is its first (`+I`), or `after` when the row
    /// written differs from the chunk's (a partial update fills the other columns).
    Insert { after: Option<Vec<u8>> },
    /// The key's row `before` was replaced (`-U` before, `+U` the chunk's row, or `after` when
    /// the merge made a row of its own: a partial update or an aggregation).
    Update {
        before: Vec<u8>,
        after: Option<Vec<u8>>,
    },
    /// The key's row `before` was deleted (`-D`).
    Delete { before: Vec<u8> },
}

impl Change {
    fn kind(&self) -> u8 {
        match self {
            Self::Ignored => 0,
            Self::Insert { after: None } => 1,
            Self::Update { after: None, .. } => 2,
            Self::Delete { .. } => 3,
            Self::Insert { after: Some(_) } => 4,
            Self::Update { after: Some(_), .. } => 5,
        }
    }

    /// The images the record keeps for this change, in order: the before image, then the
    /// after image.
    fn images(&self) -> impl Iterator<Item = &Vec<u8>> {
        let (before, after) = match self {
            Self::Ignored => (None, None),
            Self::Insert { after } => (None, after.as_ref()),
            Self::Update { before, after } => (Some(before), after.as_ref()),
            Self::Delete { before } => (Some(before), None),
        };
        before.into_iter().chain(after)
    }
}

/// The changes of one primary-key chunk's rows, in offset order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    pub changes: Vec<Change>,
}

impl ChangeRecord {
    const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let images: usize = self
            .changes
            .iter()
            .flat_map(Change::images)
            .map(|image| 4 + image.len())
            .sum();
        let mut out = Vec::with_capacity(5 + self.changes.len() + images);
        out.push(Self::VERSION);
        out.extend_from_slice(&(self.changes.len() as u32).to_be_bytes());
        for change in &self.changes {
            out.push(change.kind());
            for image in change.images() {
                out.extend_from_slice(&(image.len() as u32).to_be_bytes());
                out.extend_from_slice(image);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        r.version(Self::VERSION)?;
        let count = r.u32()? as usize;
        // Each change takes at least a byte: never reserve more than the input can hold.
        if count > bytes.len() {
            return Err(CodecError::Json(format!(
                "change record of {count} rows in {} bytes",
                bytes.len()
            )));
        }
        let mut changes = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = r.u8()?;
            let mut image = || -> Result<Vec<u8>, CodecError> {
                let len = r.u32()? as usize;
                Ok(r.bytes(len)?.to_vec())
            };
            changes.push(match kind {
                0 => Change::Ignored,
                1 => Change::Insert { after: None },
                2 => Change::Update {
                    before: image()?,
                    after: None,
                },
                3 => Change::Delete { before: image()? },
                4 => Change::Insert {
                    after: Some(image()?),
                },
                5 => Change::Update {
                    before: image()?,
                    after: Some(image()?),
                },
                other => return Err(CodecError::Json(format!("change kind {other}"))),
            });
        }
        r.finish()?;
        Ok(Self { changes })
    }
}

/// Checks a key prefix received from outside before it becomes part of an index key: a
/// format byte and at least one column.
pub fn check_key_prefix(prefix: &[u8]) -> Result<(), CodecError> {
    check_key(prefix)
}

/// Checks a key received from outside before it becomes part of an index key.
pub fn check_key(key: &[u8]) -> Result<(), CodecError> {
    if key.len() < 2 || key.len() > MAX_PRIMARY_KEY_BYTES {
        return Err(CodecError::BadKey { len: key.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn change() -> impl Strategy<Value = Change> {
        (
            0u8..6,
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(|(kind, before, after)| match kind {
                0 => Change::Ignored,
                1 => Change::Insert { after: None },
                2 => Change::Update {
                    before,
                    after: None,
                },
                3 => Change::Delete { before },
                4 => Change::Insert { after: Some(after) },
                _ => Change::Update {
                    before,
                    after: Some(after),
                },
            })
    }

    proptest! {
        #[test]
        fn records_round_trip_and_cuts_are_errors(
            changes in proptest::collection::vec(change(), 0..10),
            offset in any::<u64>(),
            committed in any::<i64>(),
            version in any::<Option<i64>>(),
            image in proptest::collection::vec(any::<u8>(), 1..30),
        ) {
            let record = ChangeRecord { changes };
            let bytes = record.encode();
            prop_assert_eq!(ChangeRecord::decode(&bytes).expect("decode"), record);
            for cut in 0..bytes.len() {
                prop_assert!(ChangeRecord::decode(&bytes[..cut]).is_err());
            }
            let state = KeyState {
                offset: Offset(offset),
                committed: TimestampMicros(committed),
                version,
                image,
            };
            let bytes = state.encode();
            prop_assert_eq!(&KeyState::decode(&bytes).expect("decode"), &state);
            // Without its header or any image byte (the image is the rest).
            let header = if state.version.is_some() { 26 } else { 18 };
            for cut in 0..=header {
                prop_assert!(KeyState::decode(&bytes[..cut]).is_err());
            }
            // Version 1, without the commit time, still reads (as the epoch).
            let mut old = vec![1];
            old.extend_from_slice(&bytes[1..9]);
            old.extend_from_slice(&bytes[17..]);
            let read = KeyState::decode(&old).expect("version 1 decodes");
            prop_assert_eq!(read.committed, TimestampMicros(0));
            prop_assert_eq!((read.offset, read.version, &read.image), (state.offset, state.version, &state.image));
        }
    }

    proptest! {
        #[test]
        fn lake_rows_round_trip_and_reject_truncation(
            path in "[a-z0-9/=_.-]{1,120}",
            position in any::<u64>(),
        ) {
            let row = LakeRow { path, position };
            let bytes = row.encode();
            prop_assert_eq!(LakeRow::decode(&bytes).expect("decodes"), row);
            // Without its header or any path byte.
            for cut in 0..=9 {
                prop_assert!(LakeRow::decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn keys_of_one_stream_sort_together() {
        let stream = StreamId::new(
            inlet_core::ids::TableId(7),
            inlet_core::ids::PartitionId(0),
            inlet_core::ids::Bucket(2),
        );
        let other = StreamId::new(
            inlet_core::ids::TableId(7),
            inlet_core::ids::PartitionId(0),
            inlet_core::ids::Bucket(3),
        );
        assert!(state_key(stream, &[1, 0xFF, 0xFF]) < state_key(other, &[1, 0]));
        assert!(state_key(stream, &[1, 5]) < state_key(stream, &[1, 5, 0]));
        assert!(change_key(stream, Offset(9)) < change_key(stream, Offset(10)));
        let (start, end) = prefix_range(stream, &[1, 7, 0xFF]);
        for inside in [
            vec![1, 7, 0xFF],
            vec![1, 7, 0xFF, 0],
            vec![1, 7, 0xFF, 0xFF, 3],
        ] {
            let key = state_key(stream, &inside);
            assert!(start <= key && key < end, "{inside:?}");
        }
        for outside in [vec![1, 7, 0xFE, 9], vec![1, 8], vec![1, 7]] {
            let key = state_key(stream, &outside);
            assert!(!(start <= key && key < end), "{outside:?}");
        }
        assert!(end <= state_key(other, &[0]));
    }
}
