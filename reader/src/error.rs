//! Why a fetch or an offset lookup failed.

use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::{Offset, StreamId};
use inlet_index::{CatalogError, IndexError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("table `{table}` has no column `{column}`")]
    ColumnNotFound { table: String, column: String },
    #[error("column `{column}` of table `{table}` is asked for twice")]
    DuplicateColumn { table: String, column: String },
    #[error("bucket {bucket} of table `{table}` is asked for twice")]
    DuplicateBucket { table: String, bucket: u32 },
    #[error("table `{table}` has no partition `{partition}`")]
    PartitionNotFound { table: String, partition: String },
    #[error("partition `{partition}` of table `{table}` is asked for twice")]
    DuplicatePartition { table: String, partition: String },
    #[error("table `{table}` has no partition key, so no partitions to choose from")]
    NotPartitioned { table: String },
    #[error("table `{table}` has no bucket {bucket}: it has {bucket_count} buckets")]
    BucketNotFound {
        table: String,
        bucket: u32,
        bucket_count: u32,
    },
    #[error(
        "offset {offset} is out of range for {stream}: readable offsets are {earliest}..={latest}"
    )]
    OffsetOutOfRange {
        stream: StreamId,
        offset: Offset,
        earliest: Offset,
        latest: Offset,
    },
    #[error("table `{table}` has no primary key: lookups need one")]
    NotAPrimaryKeyTable { table: String },
    #[error(
        "table `{table}` has no primary key: a snapshot is the current rows of a primary-key \
         table; read a log table from `earliest` instead"
    )]
    SnapshotOfLogTable { table: String },
    #[error("a snapshot is where a fetch starts, not an offset of {stream}")]
    SnapshotIsNotAnOffset { stream: StreamId },
    #[error(
        "{stream} changed by more than {max} rows (offsets {from}..{to}) while its snapshot was \
         read; retry the read"
    )]
    SnapshotCatchUpTooLong {
        stream: StreamId,
        from: Offset,
        to: Offset,
        max: usize,
    },
    #[error("invalid lookup keys for table `{table}`: {reason}")]
    InvalidKeys { table: String, reason: String },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("cannot read {path}: {message}")]
    Storage { path: String, message: String },
    /// A lake file the index named was deleted before it was read: a rewrite replaced it, or
    /// retention expired it, after the reader looked it up. The read looks again.
    #[error(
        "lake file {path} of {stream} is gone: the compactor replaced or expired it while it \
         was read; retry the read"
    )]
    LakeFileGone { stream: StreamId, path: String },
    #[error("corrupt data in {stream}: {message}")]
    Corrupt { stream: StreamId, message: String },
    /// The table's schema changed (ALTER) while the fetch read it in a way its columns cannot
    /// carry; a fetch started again reads under the new schema.
    #[error("{stream} changed schema during the fetch: {message}; fetch again from here")]
    SchemaChanged { stream: StreamId, message: String },
}

impl HasKind for FetchError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Catalog(e) => e.kind(),
            Self::ColumnNotFound { .. }
            | Self::DuplicateColumn { .. }
            | Self::DuplicateBucket { .. }
            | Self::BucketNotFound { .. }
            | Self::DuplicatePartition { .. }
            | Self::NotPartitioned { .. }
            | Self::NotAPrimaryKeyTable { .. }
            | Self::SnapshotOfLogTable { .. }
            | Self::SnapshotIsNotAnOffset { .. }
            | Self::InvalidKeys { .. } => ErrorKind::InvalidInput,
            Self::PartitionNotFound { .. } => ErrorKind::NotFound,
            Self::SnapshotCatchUpTooLong { .. } => ErrorKind::Unavailable,
            Self::OffsetOutOfRange { .. } => ErrorKind::OutOfRange,
            Self::Index(e) => e.kind(),
            Self::Storage { .. } | Self::LakeFileGone { .. } | Self::SchemaChanged { .. } => {
                ErrorKind::Unavailable
            }
            Self::Corrupt { .. } => ErrorKind::Corruption,
        }
    }
}

impl From<crate::chunk::ChunkError> for FetchError {
    fn from(error: crate::chunk::ChunkError) -> Self {
        match error {
            crate::chunk::ChunkError::Storage { path, message } => Self::Storage { path, message },
            crate::chunk::ChunkError::Corrupt { stream, message } => {
                Self::Corrupt { stream, message }
            }
            crate::chunk::ChunkError::SchemaChanged { stream, message } => {
                Self::SchemaChanged { stream, message }
            }
            error @ crate::chunk::ChunkError::NewerSchema { stream, .. } => Self::SchemaChanged {
                stream,
                message: error.to_string(),
            },
        }
    }
}
