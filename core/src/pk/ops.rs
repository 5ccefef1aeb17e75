//! What a writer sends the index owner for each row of a primary-key chunk: the operation,
//! the row's key, its image (upserts) and its version (tables with the `versioned` merge
//! engine). The owner applies them in offset order to the key state; the chunk in the WAL
//! holds the same rows as Arrow for changelog reads.
//!
//! Packed for the wire as: a format byte, a u32 row count, then per row: the op byte, a flags
//! byte (bit 0: an i64 version follows; bit 1: a partial update's column mask follows, as a
//! u16 length and the bytes), the key (u32 length, bytes) and the image (u32 length, bytes;
//! empty for deletes). Integers little-endian. The decoder takes bytes from
//! other processes: it checks every length against what is left before using it and never
//! allocates more than the input's size.

use super::{PkCodecError, take, take_u32};
use crate::limits::{MAX_COLUMNS, MAX_PRIMARY_KEY_BYTES, MAX_REQUEST_ROWS, MAX_ROW_IMAGE_BYTES};

/// The first byte of a packed list of this layout.
pub const OPS_FORMAT_V1: u8 = 1;

/// What a row of a primary-key chunk asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkOp {
    /// Insert the row, or replace (or merge into) the key's current row.
    Upsert,
    /// Remove the key's current row, if any.
    Delete,
}

impl PkOp {
    fn byte(self) -> u8 {
        match self {
            Self::Upsert => 0,
            Self::Delete => 1,
        }
    }
}

/// One row of a primary-key chunk, as the index owner applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PkWrite {
    pub op: PkOp,
    /// The row's key ([`super::key`]).
    pub key: Vec<u8>,
    /// The row's image ([`super::row`]); empty for deletes.
    pub image: Vec<u8>,
    /// The row's version-column value, for the `versioned` merge engine.
    pub version: Option<i64>,
    /// A partial update's columns (`super::merge::column_mask`); `None`: every column.
    pub columns: Option<Vec<u8>>,
}

/// Packs `writes` for the wire.
pub fn encode_writes(writes: &[PkWrite]) -> Vec<u8> {
    let size: usize = writes
        .iter()
        .map(|w| {
            2 + 8 + 8 + w.key.len() + w.image.len() + w.columns.as_ref().map_or(0, |m| 2 + m.len())
        })
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(OPS_FORMAT_V1);
    out.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for write in writes {
        out.push(write.op.byte());
        let flags = u8::from(write.version.is_some()) | (u8::from(write.columns.is_some()) << 1);
        out.push(flags);
        if let Some(version) = write.version {
            out.extend_from_slice(&version.to_le_bytes());
        }
        if let Some(mask) = &write.columns {
            // At most MAX_COLUMNS / 8 bytes: checked by the decoder, built by the writer.
            out.extend_from_slice(&(mask.len().min(u16::MAX as usize) as u16).to_le_bytes());
            out.extend_from_slice(mask);
        }
        out.extend_from_slice(&(write.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&write.key);
        out.extend_from_slice(&(write.image.len() as u32).to_le_bytes());
        out.extend_from_slice(&write.image);
    }
    out
}

const WHAT: &str = "primary-key writes";

fn malformed(reason: String) -> PkCodecError {
    PkCodecError::Malformed { what: WHAT, reason }
}

/// Unpacks what [`encode_writes`] packed, checking every bound: at most
/// [`MAX_REQUEST_ROWS`] rows, keys of 2..=[`MAX_PRIMARY_KEY_BYTES`] bytes, images of at most
/// [`MAX_ROW_IMAGE_BYTES`] (none for deletes, some for upserts), no trailing bytes.
pub fn decode_writes(bytes: &[u8]) -> Result<Vec<PkWrite>, PkCodecError> {
    let mut pos = 0;
    let format = take(bytes, &mut pos, 1, WHAT)?[0];
    if format != OPS_FORMAT_V1 {
        return Err(malformed(format!(
            "format byte {format}, expected {OPS_FORMAT_V1}"
        )));
    }
    let count = take_u32(bytes, &mut pos, WHAT)? as usize;
    if count > MAX_REQUEST_ROWS {
        return Err(malformed(format!(
            "{count} rows, more than the limit of {MAX_REQUEST_ROWS}"
        )));
    }
    // Each row takes at least 10 bytes: never reserve more than the input can hold.
    let mut writes = Vec::with_capacity(count.min(bytes.len() / 10));
    for row in 0..count {
        let op = match take(bytes, &mut pos, 1, WHAT)?[0] {
            0 => PkOp::Upsert,
            1 => PkOp::Delete,
            other => return Err(malformed(format!("row {row}: unknown op byte {other}"))),
        };
        let flags = take(bytes, &mut pos, 1, WHAT)?[0];
        if flags > 0b11 {
            return Err(malformed(format!("row {row}: flags {flags:#b}")));
        }
        let version = if flags & 1 != 0 {
            let raw = take(bytes, &mut pos, 8, WHAT)?;
            Some(i64::from_le_bytes(raw.try_into().expect("8 bytes")))
        } else {
            None
        };
        let columns = if flags & 2 != 0 {
            let raw = take(bytes, &mut pos, 2, WHAT)?;
            let len = u16::from_le_bytes(raw.try_into().expect("2 bytes")) as usize;
            if len == 0 || len > MAX_COLUMNS.div_ceil(8) {
                return Err(malformed(format!("row {row}: column mask of {len} bytes")));
            }
            Some(take(bytes, &mut pos, len, WHAT)?.to_vec())
        } else {
            None
        };
        let key_len = take_u32(bytes, &mut pos, WHAT)? as usize;
        if !(2..=MAX_PRIMARY_KEY_BYTES).contains(&key_len) {
            return Err(malformed(format!(
                "row {row}: key of {key_len} bytes (must be 2..={MAX_PRIMARY_KEY_BYTES})"
            )));
        }
        let key = take(bytes, &mut pos, key_len, WHAT)?.to_vec();
        let image_len = take_u32(bytes, &mut pos, WHAT)? as usize;
        let image_ok = match op {
            PkOp::Delete => image_len == 0,
            PkOp::Upsert => (1..=MAX_ROW_IMAGE_BYTES).contains(&image_len),
        };
        if !image_ok {
            return Err(malformed(format!(
                "row {row}: {op:?} with an image of {image_len} bytes"
            )));
        }
        let image = take(bytes, &mut pos, image_len, WHAT)?.to_vec();
        if op == PkOp::Delete && columns.is_some() {
            return Err(malformed(format!("row {row}: a delete with a column mask")));
        }
        writes.push(PkWrite {
            op,
            key,
            image,
            version,
            columns,
        });
    }
    if pos != bytes.len() {
        return Err(malformed(format!(
            "{} bytes after the last row",
            bytes.len() - pos
        )));
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn write() -> impl Strategy<Value = PkWrite> {
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 2..40),
            proptest::collection::vec(any::<u8>(), 1..60),
            any::<Option<i64>>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 1..4)),
        )
            .prop_map(|(delete, key, image, version, columns)| PkWrite {
                op: if delete { PkOp::Delete } else { PkOp::Upsert },
                key,
                image: if delete { Vec::new() } else { image },
                version,
                columns: if delete { None } else { columns },
            })
    }

    proptest! {
        #[test]
        fn writes_round_trip_and_every_cut_is_an_error(
            writes in proptest::collection::vec(write(), 0..12)
        ) {
            let bytes = encode_writes(&writes);
            prop_assert_eq!(decode_writes(&bytes).expect("decode"), writes);
            for cut in 0..bytes.len() {
                prop_assert!(decode_writes(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn out_of_bound_counts_and_lengths_are_refused() {
        let mut huge = vec![OPS_FORMAT_V1];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_writes(&huge).is_err());
        let delete_with_image = encode_writes(&[PkWrite {
            op: PkOp::Delete,
            key: vec![1, 2],
            image: vec![1],
            version: None,
            columns: None,
        }]);
        assert!(decode_writes(&delete_with_image).is_err());
        let upsert_without_image = encode_writes(&[PkWrite {
            op: PkOp::Upsert,
            key: vec![1, 2],
            image: vec![],
            version: None,
            columns: None,
        }]);
        assert!(decode_writes(&upsert_without_image).is_err());
    }
}
