//! Primary-key tables' byte encodings, persisted in the index (so versioned, and never
//! changed in place: a new layout gets a new format byte):
//!
//! - [`key`]: a row's primary key as order-preserving bytes, bucket-key columns first, so the
//!   keys of one bucket-key value are one range (prefix lookups) and equal keys are equal
//!   bytes whatever the input's Arrow layout;
//! - [`row`]: a whole row of the table (its *image*): the value of a key in the key state,
//!   and the before image of an update or delete in the changelog;
//! - [`ops`]: what a writer sends the index owner for each row of a primary-key chunk (the
//!   operation, the key, the image), packed for the wire.
//!
//! Arrow's own row format (`arrow-row`) would do the first two, but its bytes are not
//! promised to stay the same across arrow releases, and these bytes live in the index for
//! as long as the table does.

pub mod evolve;
pub mod key;
pub mod merge;
pub mod ops;
pub mod row;

use arrow_schema::DataType;

/// Whether a primary-key column may have this type: types with an exact equality and a
/// total order (no floats: NaN and -0.0 make equal keys unequal bytes, or the reverse).
pub fn is_key_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Boolean) || crate::bucket::is_bucketable(data_type)
}

/// Whether a column of a primary-key table may have this type: the flat types that
/// [`row`] encodes. Nested types (lists, structs, maps) are not yet supported in
/// primary-key tables.
pub fn is_row_type(data_type: &DataType) -> bool {
    row::fixed_width(data_type).is_some()
        || matches!(
            data_type,
            DataType::Null
                | DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::FixedSizeBinary(_)
        )
}

/// Why primary-key bytes could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkCodecError {
    #[error("primary key of row {row} is {bytes} bytes encoded, more than the limit of {limit}")]
    KeyTooLong {
        row: usize,
        bytes: usize,
        limit: usize,
    },
    #[error("row {row} is {bytes} bytes encoded, more than the limit of {limit} for one row")]
    RowTooLarge {
        row: usize,
        bytes: usize,
        limit: usize,
    },
    #[error("primary-key column `{column}` is null in row {row}")]
    NullKey { column: String, row: usize },
    #[error("column type {data_type} cannot be encoded in a primary-key table")]
    UnsupportedType { data_type: String },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// An image written under a schema newer than the table this process knows: its catalog
    /// is behind an ALTER. Reading again (after the catalog caught up) reads it.
    #[error("a row image of schema {schema_id}, newer than schema {known} known here")]
    NewerSchema { schema_id: u32, known: u32 },
}

impl crate::error::HasKind for PkCodecError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::Malformed { .. } => crate::error::ErrorKind::Corruption,
            Self::NewerSchema { .. } => crate::error::ErrorKind::Unavailable,
            _ => crate::error::ErrorKind::InvalidInput,
        }
    }
}

/// Reads `len` bytes at `*pos` of `bytes`, or says what was cut short.
pub(crate) fn take<'a>(
    bytes: &'a [u8],
    pos: &mut usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], PkCodecError> {
    let end = pos.checked_add(len).filter(|end| *end <= bytes.len());
    let Some(end) = end else {
        return Err(PkCodecError::Malformed {
            what,
            reason: format!(
                "needs {len} bytes at {pos}, has {}",
                bytes.len().saturating_sub(*pos)
            ),
        });
    };
    let slice = &bytes[*pos..end];
    *pos = end;
    Ok(slice)
}

/// Reads a little-endian u32 at `*pos`.
pub(crate) fn take_u32(
    bytes: &[u8],
    pos: &mut usize,
    what: &'static str,
) -> Result<u32, PkCodecError> {
    let raw = take(bytes, pos, 4, what)?;
    Ok(u32::from_le_bytes(raw.try_into().expect("4 bytes")))
}
