//! Inlet's index: the SlateDB database in the bucket that holds the catalog, the offset
//! index of every stream and the commit protocol that assigns offsets.
//!
//! One process at a time owns it (SlateDB fences older writers by epoch). The owner runs the
//! sequencer: a single task that turns uploaded WAL objects into dense per-stream offsets in
//! one durable write batch per group of commits, then publishes the new tails to readers.

pub mod error;
pub mod index;
pub mod keys;
pub mod pk;
pub mod ports;
pub mod records;
pub mod replica;
mod warm;

pub use error::{CatalogError, ChunkRejected, IndexError};
pub use index::lake::{LakeCommit, LakeCommitError, LakeCommitted, LakeFileScan};
pub use index::purge::{DroppedPartition, DroppedTable, MAX_ENTRIES_PURGED_PER_CALL, Purged};
pub use index::retention::{MAX_CHUNKS_EXPIRED_PER_CALL, WalExpired};
pub use index::{
    ChunkCommitRequest, ChunkScan, CommitReply, CommitRequest, CommittedChunk, DatabaseInfo,
    DropOptions, Index, IndexOptions, PendingCommit, ProducerRef, table_partitions, table_streams,
};
pub use keys::{ChunkEntry, LakeFileEntry, LakeWatermark, ProducedRange, StreamTail};
pub use ports::{
    ChunkCursor, CommitLog, INDEX_PAGE_ENTRIES, KEY_SCAN_PAGE_BYTES, KEY_SCAN_PAGE_ENTRIES,
    KeyScan, LakeCatalog, LakeFileCursor, LogRead, MAX_LAKE_ROWS_PER_CALL, PartitionCatalog,
    ScannedKey, all_lake_files,
};
pub use records::{LakeLease, LakeTableRecord};
pub use replica::{IndexReplica, ReplicaOptions};
