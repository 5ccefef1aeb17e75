//! Why an append failed. Every variant that a client caused leaves nothing behind.

use std::time::Duration;

use inlet_core::error::{ErrorKind, HasKind};
use inlet_index::{CatalogError, ChunkRejected, IndexError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(
        "schema mismatch for table `{table}`: column `{column}` is {found}, expected {expected}"
    )]
    SchemaMismatch {
        table: String,
        column: String,
        found: String,
        expected: String,
    },
    #[error("table `{table}` has no column `{column}`")]
    UnknownColumn { table: String, column: String },
    #[error(
        "batch for table `{table}` has column `{column}` twice: as `{first}` and as `{second}` \
         (a name it had before a rename)"
    )]
    RenamedColumnTwice {
        table: String,
        column: String,
        first: String,
        second: String,
    },
    #[error("batch for table `{table}` lacks non-nullable column `{column}`")]
    MissingColumn { table: String, column: String },
    #[error("column `{column}` of table `{table}` is not nullable but {nulls} rows are null")]
    NullsInRequiredColumn {
        table: String,
        column: String,
        nulls: usize,
    },
    #[error(
        "append to `{table}` would grow to {bytes} bytes once its {rows} rows get nulls for the \
         missing columns, more than the {limit} allowed; send fewer rows per append"
    )]
    TooLargeWhenFilled {
        table: String,
        rows: usize,
        bytes: u64,
        limit: u64,
    },
    #[error("cannot {op} rows of table `{table}`: {reason}")]
    WrongOperation {
        table: String,
        op: &'static str,
        reason: String,
    },
    #[error("rows of table `{table}` have no partition: {reason}")]
    Partition {
        table: String,
        reason: inlet_core::partition::PartitionValueError,
    },
    #[error(transparent)]
    PrimaryKey(#[from] inlet_core::pk::PkCodecError),
    #[error("malformed arrow ipc: {0}")]
    MalformedIpc(String),
    #[error("append of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge { bytes: usize, limit: usize },
    #[error("writer overloaded: no buffer space for {bytes} bytes within {waited:?}; retry later")]
    Overloaded { bytes: usize, waited: Duration },
    #[error("wal upload failed: {0}")]
    Upload(String),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Rejected(#[from] ChunkRejected),
    #[error(
        "commit not durable within {waited:?}: the outcome is unknown; resend with the same \
         producer sequence to land it exactly once"
    )]
    CommitTimeout { waited: Duration },
    #[error("writer is shutting down")]
    ShuttingDown,
}

impl HasKind for AppendError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Catalog(e) => e.kind(),
            Self::SchemaMismatch { .. }
            | Self::UnknownColumn { .. }
            | Self::RenamedColumnTwice { .. }
            | Self::MissingColumn { .. }
            | Self::NullsInRequiredColumn { .. }
            | Self::MalformedIpc(_)
            | Self::WrongOperation { .. }
            | Self::Partition { .. }
            | Self::TooLarge { .. }
            | Self::TooLargeWhenFilled { .. } => ErrorKind::InvalidInput,
            Self::Overloaded { .. }
            | Self::Upload(_)
            | Self::CommitTimeout { .. }
            | Self::ShuttingDown => ErrorKind::Unavailable,
            Self::Index(e) => e.kind(),
            Self::PrimaryKey(e) => e.kind(),
            Self::Rejected(ChunkRejected::TableDropped { .. }) => ErrorKind::NotFound,
            Self::Rejected(ChunkRejected::StaleSequence { .. }) => ErrorKind::InvalidInput,
            // The writer builds ranges from the footer it wrote for the table's schema.
            Self::Rejected(ChunkRejected::ColumnRanges { .. }) => ErrorKind::Internal,
            // The writer encodes the key writes from the table it looked up.
            Self::Rejected(ChunkRejected::PrimaryKeyWrites { .. }) => ErrorKind::Internal,
            // The rows do not merge with the keys' current rows (an overflowing sum).
            Self::Rejected(ChunkRejected::MergeFailed { .. }) => ErrorKind::InvalidInput,
            Self::Rejected(_) => ErrorKind::Unavailable,
        }
    }
}
