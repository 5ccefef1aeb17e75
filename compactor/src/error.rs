//! Errors of the compactor's operations (a tiering round, crash repair, WAL garbage
//! collection), each mapping to an outward [`ErrorKind`].

use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::{Bucket, Offset, StreamId, TableId};
use inlet_core::table::DefinitionError;
use inlet_index::{IndexError, LakeCommitError};

use crate::lake::{LakeError, LakePathError};
use crate::options::InjectedCrash;

/// Why a round of one table (including the repair that precedes a table's first round under
/// a lease) did not commit.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("table {table} does not exist (dropped?)", table = table.0)]
    TableNotFound { table: TableId },
    #[error("options of table {table} are invalid: {source}", table = table.0)]
    Options {
        table: TableId,
        source: DefinitionError,
    },
    /// Another compactor took the table's lease while the round ran; nothing was committed.
    #[error("lease of lake table {table} was lost during the round (epoch {epoch})", table = table.0)]
    LeaseLost { table: TableId, epoch: u64 },
    /// Lake metadata and the index disagree about what the lake holds. The table is not
    /// tiered again by this compactor until a human looks.
    #[error(
        "lake table {table} diverged from the index: bucket {bucket} has watermark {index} in the index but {lake} in metadata `{metadata}`",
        table = table.0, bucket = bucket.0
    )]
    Diverged {
        table: TableId,
        bucket: Bucket,
        index: Offset,
        lake: Offset,
        metadata: String,
    },
    /// A chunk does not continue its stream where the round expected (a chunk straddles the
    /// watermark, or offsets are missing from the index).
    #[error("{stream}: expected a chunk starting at offset {expected}, found {found}")]
    ChunkGap {
        stream: StreamId,
        expected: Offset,
        found: Offset,
    },
    /// A chunk of the round was written under a schema newer than the table the round
    /// loaded: the table was altered meanwhile. The next round loads it again.
    #[error("{stream}: the table changed during the round ({reason}); the next round retries")]
    TableChanged { stream: StreamId, reason: String },
    #[error("{stream}: chunk at offset {offset} of `{object}` is corrupt: {reason}")]
    CorruptChunk {
        stream: StreamId,
        offset: Offset,
        object: String,
        reason: String,
    },
    /// A data file the round wrote does not describe what the round gave it.
    #[error("data file `{path}` of lake table {table} is inconsistent: {reason}", table = table.0)]
    BadDataFile {
        table: TableId,
        path: String,
        reason: String,
    },
    #[error("object store {op} of `{path}` failed: {message}")]
    Storage {
        op: &'static str,
        path: String,
        message: String,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    LakePath(#[from] LakePathError),
    #[error(transparent)]
    Commit(#[from] LakeCommitError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Crash(#[from] InjectedCrash),
    /// An earlier error stopped tiering of this table in this compactor.
    #[error("tiering of lake table {table} is halted: {reason}", table = table.0)]
    Halted { table: TableId, reason: String },
}

impl RoundError {
    pub(crate) fn storage(op: &'static str, path: impl ToString, error: impl ToString) -> Self {
        Self::Storage {
            op,
            path: path.to_string(),
            message: error.to_string(),
        }
    }

    /// Whether the table no longer exists (dropped while the round ran, or before).
    pub fn table_dropped(&self) -> bool {
        matches!(
            self,
            Self::TableNotFound { .. } | Self::Commit(LakeCommitError::TableNotFound { .. })
        )
    }

    /// Whether tiering of the table must stop: the lake and the index disagree, or data is
    /// corrupt. Retrying would not help and could make things worse.
    pub fn halts(&self) -> bool {
        matches!(
            self,
            Self::Diverged { .. }
                | Self::CorruptChunk { .. }
                | Self::BadDataFile { .. }
                | Self::Lake(LakeError::Schema(_))
        ) || self.kind() == ErrorKind::Corruption
    }
}

impl From<iceberg::Error> for RoundError {
    fn from(error: iceberg::Error) -> Self {
        Self::Lake(LakeError::Iceberg(error))
    }
}

impl HasKind for RoundError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TableNotFound { .. } => ErrorKind::NotFound,
            Self::TableChanged { .. } => ErrorKind::Conflict,
            Self::Options { .. } => ErrorKind::InvalidInput,
            Self::LeaseLost { .. } => ErrorKind::Fenced,
            Self::Diverged { .. } | Self::CorruptChunk { .. } | Self::BadDataFile { .. } => {
                ErrorKind::Corruption
            }
            Self::ChunkGap { .. } | Self::Halted { .. } => ErrorKind::Internal,
            Self::Storage { .. } | Self::Crash(_) => ErrorKind::Unavailable,
            Self::Lake(error) => error.kind(),
            Self::LakePath(_) => ErrorKind::Internal,
            Self::Commit(error) => error.kind(),
            Self::Index(error) => error.kind(),
        }
    }
}

/// Why a WAL garbage collection run stopped early (what it deleted before stays deleted).
#[derive(Debug, thiserror::Error)]
pub enum WalGcError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("object store {op} of `{path}` failed: {message}")]
    Storage {
        op: &'static str,
        path: String,
        message: String,
    },
}

impl HasKind for WalGcError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Index(error) => error.kind(),
            Self::Storage { .. } => ErrorKind::Unavailable,
        }
    }
}
