//! The narrow ports through which each role reaches the index, instead of one large handle:
//!
//! - [`CommitLog`]: what a writer needs: table lookups and ordered commits of uploaded WAL
//!   objects.
//! - [`LogRead`]: what a reader needs: table lookups, durable tails and their notifications,
//!   the chunk and time indexes, lake watermarks and lake files.
//! - [`LakeCatalog`]: what the compactor needs: leases, lake commits and the listings that
//!   feed a round.
//!
//! [`Index`] implements all three in the owner's process; `inlet-wire`'s `RemoteIndex`
//! implements them in any other process, over gRPC to the owner. Both must behave the same:
//! `wire/tests/conformance.rs` runs one suite against both. Listings are paged (at most
//! `max` entries per call, see [`INDEX_PAGE_ENTRIES`]) so that a remote call has a bounded
//! reply; [`ChunkCursor`] and [`LakeFileCursor`] page through them for a caller.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use inlet_core::ids::{Offset, PartitionId, StreamId, TableId, TimestampMicros, WalObjectId};
use inlet_core::table::TableInfo;
use tokio::sync::watch;

use crate::error::{CatalogError, IndexError};
use crate::index::lake::{LakeCommit, LakeCommitError, LakeCommitted};
use crate::index::purge::{DroppedPartition, DroppedTable, Purged};
use crate::index::retention::WalExpired;
use crate::index::{CommitRequest, Index, PendingCommit};
use crate::keys::{ChunkEntry, LakeFileEntry, LakeWatermark, StreamTail};
use crate::pk::{ChangeRecord, KeyState, LakeRow};
use crate::records::{LakeLease, LakeTableRecord};

/// Entries one listing call of a port returns at most when a caller pages through a stream;
/// callers continue from the last entry's end offset.
pub const INDEX_PAGE_ENTRIES: usize = 1000;

/// Partitions created and dropped through the index owner: what writers (a partition made by
/// the first append of its values) and compactors (auto-partitioning) both ask.
#[async_trait::async_trait]
pub trait PartitionCatalog: Send + Sync + Debug {
    /// The partitions of partitioned table `database.name` with these values, created by the
    /// owner where they do not exist yet ([`Index::add_partitions`]): the table as the owner
    /// has it after, and each value list's partition id.
    async fn add_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError>;
    /// Drops the partitions of `database.name` with these values that exist
    /// ([`Index::drop_partitions`] with `if_exists`): the table after, and the ids dropped.
    async fn drop_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError>;
}

/// What a writer needs from the index.
#[async_trait::async_trait]
pub trait CommitLog: PartitionCatalog {
    /// Why commits cannot succeed now, when that is known without asking the owner (an owner
    /// in this process that was fenced or stopped). `None` says nothing about a remote owner.
    fn stopped(&self) -> Option<IndexError>;
    /// The live table `database.name`.
    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError>;
    /// The live table `database.name` as the index owner has it now, past any cache: what a
    /// request that names a column the cached table lacks asks before it is refused (an ALTER
    /// whose catalog push has not reached this process yet). The owner's own process has no
    /// cache, so by default this is [`table`](Self::table).
    async fn table_from_owner(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        self.table(database, name).await
    }
    /// Queues a commit and returns once it is queued. Commits are applied in the order they
    /// were queued, so a writer that submits in upload order keeps its rows in order while
    /// several commits are in flight.
    async fn submit_commit(&self, request: CommitRequest) -> Result<PendingCommit, IndexError>;
}

/// What a reader needs from the index.
#[async_trait::async_trait]
pub trait LogRead: Send + Sync + Debug {
    /// Why notifications ended, once a [`LogRead::subscribe`] receiver reports its sender
    /// closed (the owner in this process stopped, or this port was closed).
    fn stopped(&self) -> Option<IndexError>;
    /// The live table `database.name`.
    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError>;
    /// The live table `database.name` as the index owner has it now, past any cache: what a
    /// request that names a column the cached table lacks asks before it is refused (an ALTER
    /// whose catalog push has not reached this process yet). The owner's own process has no
    /// cache, so by default this is [`table`](Self::table).
    async fn table_from_owner(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        self.table(database, name).await
    }
    /// The durable tail of a stream.
    async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError>;
    /// A receiver that always holds the stream's durable tail and wakes on every commit.
    async fn subscribe(&self, stream: StreamId) -> Result<watch::Receiver<StreamTail>, IndexError>;
    /// Up to `max` committed chunk entries of `stream` holding offsets at or after `from`, in
    /// offset order.
    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError>;
    /// The first offset of `stream` committed at or after `ts`, or the tail if none is.
    async fn offset_for_timestamp(
        &self,
        stream: StreamId,
        ts: TimestampMicros,
    ) -> Result<Offset, IndexError>;
    /// The durable lake watermark of `stream`.
    async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError>;
    /// Up to `max` lake file entries of `stream` holding offsets at or after `from`. Only
    /// files below the stream's watermark are durable; callers stop there.
    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError>;
    /// The current row of each of `keys` (encoded primary keys of `stream`), in order; `None`
    /// for a key without one. At least as new as every commit acknowledged before the call
    /// (read-your-writes), and never newer than what is durable.
    async fn lookup(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<KeyState>>, IndexError>;
    /// Up to `max` current rows of `stream` whose primary key starts with `prefix` (an
    /// encoded bucket-key value), in key order; read-your-writes as [`LogRead::lookup`].
    async fn lookup_prefix(
        &self,
        stream: StreamId,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<KeyState>, IndexError>;
    /// The change record of the primary-key chunk of `stream` ending at `end`, committed with
    /// the chunk's entry (so wherever the entry was listed, the record exists).
    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<ChangeRecord>, IndexError>;
    /// Every current row of `stream` (a primary-key table's bucket), in key order, read from
    /// one point of the index: a snapshot scan's base (`inlet_reader::snapshot`).
    async fn scan_keys(&self, stream: StreamId) -> Result<KeyScan, IndexError>;
}

/// Entries one page of a [`KeyScan`] holds at most, and the bytes after which a page ends
/// (it can pass them by one row: a key and an image are at most 1 MiB and 4 KiB).
pub const KEY_SCAN_PAGE_ENTRIES: usize = 1000;
pub const KEY_SCAN_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The current rows of one stream, as one point of the index holds them. Which commit that
/// point is, is known within bounds: every commit below `low` is in it, and every row in it
/// was written below `high` (`low <= high`; both are tails of the stream read just before
/// and just after the point was taken). A reader makes the scan exact as of an offset by
/// replaying the changelog from `low` on (`inlet_reader::snapshot`).
pub struct KeyScan {
    pub low: Offset,
    pub high: Offset,
    /// The rows in key order, in pages of at most [`KEY_SCAN_PAGE_ENTRIES`] rows and about
    /// [`KEY_SCAN_PAGE_BYTES`]; all pages come from the same point.
    pub pages: futures::stream::BoxStream<'static, Result<Vec<ScannedKey>, IndexError>>,
}

impl Debug for KeyScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyScan")
            .field("low", &self.low)
            .field("high", &self.high)
            .finish_non_exhaustive()
    }
}

/// One current row of a [`KeyScan`]: its encoded primary key and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedKey {
    pub key: Vec<u8>,
    pub state: KeyState,
}

/// What the compactor needs from the index. Leases and lake commits are applied by the
/// owner's sequencer wherever the compactor runs, so fencing and the compare-and-swap are the
/// same in process and remote.
#[async_trait::async_trait]
pub trait LakeCatalog: PartitionCatalog {
    /// Every live table.
    async fn tables(&self) -> Result<Vec<Arc<TableInfo>>, IndexError>;
    /// The live table with this id.
    async fn table(&self, table: TableId) -> Result<Option<Arc<TableInfo>>, IndexError>;
    /// A stream's durable tail and lake watermark, read together (one call to a remote owner).
    async fn stream_state(
        &self,
        stream: StreamId,
    ) -> Result<(StreamTail, LakeWatermark), IndexError>;
    async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        Ok(self.stream_state(stream).await?.0)
    }
    async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        Ok(self.stream_state(stream).await?.1)
    }
    /// Up to `max` chunk entries of `stream` holding offsets at or after `from`, in order.
    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError>;
    /// Up to `max` lake file entries of `stream` holding offsets at or after `from`.
    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError>;
    async fn lake_table(&self, table: TableId) -> Result<Option<LakeTableRecord>, IndexError>;
    async fn acquire_lake_lease(
        &self,
        table: TableId,
        owner: u64,
        ttl: Duration,
    ) -> Result<LakeLease, LakeCommitError>;
    async fn release_lake_lease(
        &self,
        table: TableId,
        lease: LakeLease,
    ) -> Result<(), LakeCommitError>;
    async fn commit_lake(&self, commit: LakeCommit) -> Result<LakeCommitted, LakeCommitError>;
    /// Expires the WAL chunks `table`'s retention no longer keeps ([`Index::expire_wal`]).
    async fn expire_wal(&self, table: TableId) -> Result<WalExpired, IndexError>;
    /// Dropped tables the index still holds entries of ([`Index::dropped_tables`]).
    async fn dropped_tables(&self) -> Result<Vec<DroppedTable>, IndexError>;
    /// Deletes a bounded batch of a dropped table's entries ([`Index::purge_table`]).
    async fn purge_table(&self, table: TableId) -> Result<Purged, IndexError>;
    /// Dropped partitions the index still holds entries of ([`Index::dropped_partitions`]).
    async fn dropped_partitions(&self) -> Result<Vec<DroppedPartition>, IndexError>;
    /// Deletes a bounded batch of a dropped partition's entries
    /// ([`Index::purge_partition`]).
    async fn purge_partition(
        &self,
        table: TableId,
        partition: PartitionId,
    ) -> Result<Purged, IndexError>;
    async fn live_wal_objects(&self) -> Result<BTreeSet<WalObjectId>, IndexError>;
    /// The change record of the primary-key chunk of `stream` ending at `end` (as
    /// [`LogRead::change_record`]): a lake round of a primary-key table reads the changelog.
    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<ChangeRecord>, IndexError>;
    /// Where the current rows of `keys` (encoded primary keys of `stream`) are in the lake
    /// table, as the last lake commit recorded them (`LakeCommit::key_rows`); at most
    /// [`MAX_LAKE_ROWS_PER_CALL`] keys.
    async fn lake_rows(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<LakeRow>>, IndexError>;
}

/// Keys one [`LakeCatalog::lake_rows`] call asks about at most (one request to a remote
/// owner; a round asks in pages of this size).
pub const MAX_LAKE_ROWS_PER_CALL: usize = 8192;

/// An index entry that covers a range of offsets, listed in pages.
trait Paged: Sized {
    fn end(&self) -> Offset;
}

impl Paged for ChunkEntry {
    fn end(&self) -> Offset {
        self.end_offset()
    }
}

impl Paged for LakeFileEntry {
    fn end(&self) -> Offset {
        self.end_offset()
    }
}

/// Pages through one stream's listing: holds the current page and where the next starts.
struct PageState<T> {
    stream: StreamId,
    next: Offset,
    page: VecDeque<T>,
    /// The last page was short, so the listing has no more entries.
    exhausted: bool,
}

impl<T: Paged> PageState<T> {
    fn new(stream: StreamId, from: Offset) -> Self {
        Self {
            stream,
            next: from,
            page: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The next entry, listing another page with `list` when the current one is used up.
    async fn next<F, Fut>(&mut self, list: F) -> Result<Option<T>, IndexError>
    where
        F: FnOnce(StreamId, Offset) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, IndexError>>,
    {
        if self.page.is_empty() && !self.exhausted {
            let page = list(self.stream, self.next).await?;
            self.exhausted = page.len() < INDEX_PAGE_ENTRIES;
            if let Some(last) = page.last() {
                self.next = last.end();
            }
            self.page = page.into();
        }
        Ok(self.page.pop_front())
    }
}

/// The chunk entries of one stream from an offset on, in offset order, paged from a
/// [`LogRead`].
pub struct ChunkCursor {
    port: Arc<dyn LogRead>,
    state: PageState<ChunkEntry>,
}

impl ChunkCursor {
    pub fn new(port: Arc<dyn LogRead>, stream: StreamId, from: Offset) -> Self {
        Self {
            port,
            state: PageState::new(stream, from),
        }
    }

    pub async fn next(&mut self) -> Result<Option<ChunkEntry>, IndexError> {
        let port = &self.port;
        self.state
            .next(|stream, from| port.chunks(stream, from, INDEX_PAGE_ENTRIES))
            .await
    }
}

/// The lake file entries of one stream from an offset on, in offset order, paged from a
/// [`LogRead`].
pub struct LakeFileCursor {
    port: Arc<dyn LogRead>,
    state: PageState<LakeFileEntry>,
}

impl LakeFileCursor {
    pub fn new(port: Arc<dyn LogRead>, stream: StreamId, from: Offset) -> Self {
        Self {
            port,
            state: PageState::new(stream, from),
        }
    }

    pub async fn next(&mut self) -> Result<Option<LakeFileEntry>, IndexError> {
        let port = &self.port;
        self.state
            .next(|stream, from| port.lake_files(stream, from, INDEX_PAGE_ENTRIES))
            .await
    }
}

/// Every lake file entry of `stream` from `from` on, paging through `catalog`.
pub async fn all_lake_files(
    catalog: &dyn LakeCatalog,
    stream: StreamId,
    from: Offset,
) -> Result<Vec<LakeFileEntry>, IndexError> {
    let mut state = PageState::new(stream, from);
    let mut out = Vec::new();
    while let Some(entry) = state
        .next(|stream, from| catalog.lake_files(stream, from, INDEX_PAGE_ENTRIES))
        .await?
    {
        out.push(entry);
    }
    Ok(out)
}

#[async_trait::async_trait]
impl PartitionCatalog for Index {
    async fn add_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError> {
        Index::add_partitions(self, database, name, values).await
    }

    async fn drop_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError> {
        Index::drop_partitions(self, database, name, values, true).await
    }
}

#[async_trait::async_trait]
impl CommitLog for Index {
    fn stopped(&self) -> Option<IndexError> {
        Index::stopped(self)
    }

    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        Index::table(self, database, name)
    }

    async fn submit_commit(&self, request: CommitRequest) -> Result<PendingCommit, IndexError> {
        Index::submit_commit(self, request).await
    }
}

#[async_trait::async_trait]
impl LogRead for Index {
    fn stopped(&self) -> Option<IndexError> {
        Index::stopped(self)
    }

    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        Index::table(self, database, name)
    }

    async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        Index::tail(self, stream).await
    }

    async fn subscribe(&self, stream: StreamId) -> Result<watch::Receiver<StreamTail>, IndexError> {
        Index::subscribe(self, stream).await
    }

    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        self.list_chunks(stream, from, max).await
    }

    async fn offset_for_timestamp(
        &self,
        stream: StreamId,
        ts: TimestampMicros,
    ) -> Result<Offset, IndexError> {
        Index::offset_for_timestamp(self, stream, ts).await
    }

    async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        Index::lake_watermark(self, stream).await
    }

    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        self.list_lake_files(stream, from, max).await
    }

    async fn lookup(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<KeyState>>, IndexError> {
        Index::lookup(self, stream, keys).await
    }

    async fn lookup_prefix(
        &self,
        stream: StreamId,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<KeyState>, IndexError> {
        Index::lookup_prefix(self, stream, prefix, max).await
    }

    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<ChangeRecord>, IndexError> {
        Index::change_record(self, stream, end).await
    }

    async fn scan_keys(&self, stream: StreamId) -> Result<KeyScan, IndexError> {
        Index::scan_keys(self, stream).await
    }
}

#[async_trait::async_trait]
impl LakeCatalog for Index {
    async fn tables(&self) -> Result<Vec<Arc<TableInfo>>, IndexError> {
        let mut tables = Vec::new();
        for database in self.list_databases() {
            // A database dropped between the two calls has no tables left to tier.
            if let Ok(list) = self.list_tables(&database.name) {
                tables.extend(list);
            }
        }
        Ok(tables)
    }

    async fn table(&self, table: TableId) -> Result<Option<Arc<TableInfo>>, IndexError> {
        Ok(self.table_by_id(table))
    }

    async fn stream_state(
        &self,
        stream: StreamId,
    ) -> Result<(StreamTail, LakeWatermark), IndexError> {
        Ok((
            Index::tail(self, stream).await?,
            Index::lake_watermark(self, stream).await?,
        ))
    }

    async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        Index::tail(self, stream).await
    }

    async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        Index::lake_watermark(self, stream).await
    }

    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        self.list_chunks(stream, from, max).await
    }

    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        self.list_lake_files(stream, from, max).await
    }

    async fn lake_table(&self, table: TableId) -> Result<Option<LakeTableRecord>, IndexError> {
        Index::lake_table(self, table).await
    }

    async fn acquire_lake_lease(
        &self,
        table: TableId,
        owner: u64,
        ttl: Duration,
    ) -> Result<LakeLease, LakeCommitError> {
        Index::acquire_lake_lease(self, table, owner, ttl).await
    }

    async fn release_lake_lease(
        &self,
        table: TableId,
        lease: LakeLease,
    ) -> Result<(), LakeCommitError> {
        Index::release_lake_lease(self, table, lease).await
    }

    async fn commit_lake(&self, commit: LakeCommit) -> Result<LakeCommitted, LakeCommitError> {
        Index::commit_lake(self, commit).await
    }

    async fn expire_wal(&self, table: TableId) -> Result<WalExpired, IndexError> {
        Index::expire_wal(self, table).await
    }
    async fn dropped_tables(&self) -> Result<Vec<DroppedTable>, IndexError> {
        Index::dropped_tables(self).await
    }
    async fn purge_table(&self, table: TableId) -> Result<Purged, IndexError> {
        Index::purge_table(self, table).await
    }

    async fn dropped_partitions(&self) -> Result<Vec<DroppedPartition>, IndexError> {
        Index::dropped_partitions(self).await
    }

    async fn purge_partition(
        &self,
        table: TableId,
        partition: PartitionId,
    ) -> Result<Purged, IndexError> {
        Index::purge_partition(self, table, partition).await
    }
    async fn live_wal_objects(&self) -> Result<BTreeSet<WalObjectId>, IndexError> {
        Index::live_wal_objects(self).await
    }

    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<ChangeRecord>, IndexError> {
        Index::change_record(self, stream, end).await
    }

    async fn lake_rows(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<LakeRow>>, IndexError> {
        Index::lake_rows(self, stream, keys).await
    }
}
