//! Errors of lake operations, each mapping to an outward [`ErrorKind`].

use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::{Bucket, Offset};

use crate::lake::storage::LakePathError;

/// Why a table's columns cannot be laid out as an Iceberg table. Checked when the lake table
/// is created, so tiering never meets a column it cannot write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LakeSchemaError {
    #[error("column `{column}` has type {data_type}, which the lake cannot hold: {reason}")]
    UnsupportedType {
        column: String,
        data_type: String,
        reason: &'static str,
    },
    #[error("column name `{column}` is reserved for a system column")]
    ReservedColumn { column: String },
    #[error("the lake schema is invalid: {reason}")]
    Invalid { reason: String },
}

/// Why a lake operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    Schema(#[from] LakeSchemaError),
    #[error(transparent)]
    Path(#[from] LakePathError),
    /// A batch handed to the writer breaks the lake's invariants (a caller bug, or data
    /// corrupted on the way): nothing of it was written.
    #[error("invalid rows for bucket {bucket}: {reason}", bucket = bucket.0)]
    InvalidRows { bucket: Bucket, reason: String },
    /// The rows do not continue the bucket where the lake (or this round) left it.
    #[error(
        "bucket {bucket} rows start at offset {found}, but the lake continues at {expected}",
        bucket = bucket.0
    )]
    OffsetGap {
        bucket: Bucket,
        expected: Offset,
        found: Offset,
    },
    #[error("nothing to commit: no bucket moved in this round")]
    NothingToCommit,
    /// Lake metadata we wrote (or someone else did) does not say what it must.
    #[error("lake metadata `{location}` is invalid: {reason}")]
    InvalidMetadata { location: String, reason: String },
    /// A data file the table lists cannot be read back (a rewrite reads them).
    #[error("lake data file `{path}` cannot be read: {reason}")]
    UnreadableFile { path: String, reason: String },
    /// The lake table was evolved to a table schema newer than the one this round loaded (an
    /// ALTER and another compactor's round happened meanwhile). The next round loads it again.
    #[error(
        "lake metadata `{location}` has the columns of table schema {schema_id}, newer than \
         schema {known} this round knows; the next round retries"
    )]
    SchemaAhead {
        location: String,
        schema_id: u32,
        known: u32,
    },
    #[error("lake i/o or iceberg error: {0}")]
    Iceberg(#[from] iceberg::Error),
}

impl LakeError {
    pub(crate) fn invalid_metadata(location: &str, reason: impl ToString) -> Self {
        Self::InvalidMetadata {
            location: location.to_owned(),
            reason: reason.to_string(),
        }
    }
}

impl HasKind for LakeError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Schema(_) => ErrorKind::InvalidInput,
            Self::Path(_) | Self::InvalidRows { .. } | Self::OffsetGap { .. } => {
                ErrorKind::Internal
            }
            Self::NothingToCommit => ErrorKind::InvalidInput,
            Self::SchemaAhead { .. } => ErrorKind::Conflict,
            Self::InvalidMetadata { .. } | Self::UnreadableFile { .. } => ErrorKind::Corruption,
            Self::Iceberg(_) => ErrorKind::Unavailable,
        }
    }
}
