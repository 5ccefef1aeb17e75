//! Errors of index operations, each mapping to an outward [`ErrorKind`].

use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::StreamId;
use inlet_core::limits::MAX_INDEXED_COLUMN_RANGES;
use inlet_core::table::DefinitionError;

use crate::keys::{CodecError, ProducedRange};

/// Why the index could not serve a read or accept a write. Serializable so that a remote port
/// (`inlet-wire`) gives back exactly the error the owner's index gave.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum IndexError {
    #[error("index owner was fenced: another process took over the index")]
    Fenced,
    #[error("index owner stopped: {reason}")]
    Stopped { reason: String },
    #[error("index storage unavailable: {0}")]
    Unavailable(String),
    #[error("index storage error: {0}")]
    Storage(String),
    #[error("corrupt index record: {0}")]
    Corrupt(#[from] CodecError),
    #[error("refused: {reason}")]
    Refused { reason: String },
}

impl IndexError {
    pub(crate) fn from_slatedb(error: &slatedb::Error) -> Self {
        match error.kind() {
            slatedb::ErrorKind::Closed(slatedb::CloseReason::Fenced) => Self::Fenced,
            slatedb::ErrorKind::Closed(_) => Self::Stopped {
                reason: error.to_string(),
            },
            slatedb::ErrorKind::Unavailable => Self::Unavailable(error.to_string()),
            _ => Self::Storage(error.to_string()),
        }
    }
}

impl From<slatedb::Error> for IndexError {
    fn from(error: slatedb::Error) -> Self {
        Self::from_slatedb(&error)
    }
}

impl HasKind for IndexError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Fenced => ErrorKind::Fenced,
            Self::Stopped { .. } | Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Storage(_) => ErrorKind::Internal,
            Self::Corrupt(_) => ErrorKind::Corruption,
            Self::Refused { .. } => ErrorKind::InvalidInput,
        }
    }
}

/// Why a catalog change (create/drop of a database or table) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("database `{database}` not found")]
    DatabaseNotFound { database: String },
    #[error("table `{database}.{table}` not found")]
    TableNotFound { database: String, table: String },
    #[error("database `{database}` already exists")]
    DatabaseExists { database: String },
    #[error("table `{database}.{table}` already exists")]
    TableExists { database: String, table: String },
    #[error("database `{database}` still has {tables} tables; drop them or use cascade")]
    DatabaseNotEmpty { database: String, tables: usize },
    #[error("the cluster holds {grants} grants, the most it may ({max}): revoke some first")]
    TooManyGrants { grants: usize, max: usize },
    #[error("partitions of table `{table}` refused: {reason}")]
    PartitionsRefused { table: String, reason: String },
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl HasKind for CatalogError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::DatabaseNotFound { .. } | Self::TableNotFound { .. } => ErrorKind::NotFound,
            Self::DatabaseExists { .. } | Self::TableExists { .. } => ErrorKind::AlreadyExists,
            Self::DatabaseNotEmpty { .. }
            | Self::TooManyGrants { .. }
            | Self::PartitionsRefused { .. }
            | Self::Definition(_) => ErrorKind::InvalidInput,
            Self::Index(e) => e.kind(),
        }
    }
}

/// Why one chunk of a commit request was not committed (the rest of the request may be).
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ChunkRejected {
    #[error("table {table} was dropped before {stream} could be committed", table = stream.table.0)]
    TableDropped { stream: StreamId },
    #[error("schema of {stream} changed from {expected} to {current} before commit")]
    SchemaChanged {
        stream: StreamId,
        expected: u32,
        current: u32,
    },
    #[error("{stream} does not exist: table has {bucket_count} buckets")]
    NoSuchStream { stream: StreamId, bucket_count: u32 },
    #[error(
        "chunk of {stream} lists {found} column ranges; its table has {columns} columns (ranges \
         are listed for all of them, at most {MAX_INDEXED_COLUMN_RANGES}, or for none)"
    )]
    ColumnRanges {
        stream: StreamId,
        found: usize,
        columns: usize,
    },
    #[error("primary-key chunk of {stream} refused: {reason}")]
    PrimaryKeyWrites { stream: StreamId, reason: String },
    #[error(
        "the upsert at offset {offset} of table `{table}` (bucket {bucket}) cannot be merged \
         with its key's row: {reason}",
        bucket = stream.bucket.0
    )]
    MergeFailed {
        stream: StreamId,
        table: String,
        offset: u64,
        reason: String,
    },
    #[error("append {sequence} of producer {producer} was already committed")]
    Duplicate {
        stream: StreamId,
        producer: u64,
        sequence: u64,
        /// What the original append got, per bucket.
        ranges: Vec<ProducedRange>,
    },
    #[error(
        "append {sequence} of producer {producer} to table {table} is older than its last append {last}",
        table = stream.table.0
    )]
    StaleSequence {
        stream: StreamId,
        producer: u64,
        sequence: u64,
        last: u64,
    },
}
