//! A read-only view of the index for processes that do not own it: SlateDB's `DbReader` on
//! the same store, following the owner's manifest and WAL without writing anything
//! (`FollowLatest`). Readers serve history from it, so the owner stays off their read path and
//! the history stays readable while no owner runs.
//!
//! What it sees lags the owner by up to `poll_interval` (and it never sees less than what was
//! durable when it last polled). `FollowLatest` takes no checkpoint, so the owner's garbage
//! collector may delete an SST file this view still names (after SlateDB's `min_age`, 5 min
//! by default); a read that fails that way is retried by the caller through the owner.

use std::sync::Arc;
use std::time::Duration;

use inlet_core::ids::{Offset, StreamId, TableId, TimestampMicros};
use inlet_core::table::TableInfo;
use slatedb::config::DbReaderOptions;
use slatedb::object_store::ObjectStore;
use slatedb::{DbReader, DbReaderMode};

use crate::error::{CatalogError, IndexError};
use crate::index::lake::{read_lake_table, read_lake_watermark};
use crate::index::{db_cache, durable_table, kv, read_tail};
use crate::keys::{self, ChunkEntry, LakeFileEntry, LakeWatermark, StreamTail};
use crate::records::LakeTableRecord;

/// How a replica is opened.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// Path of the SlateDB database inside the store (the owner's `IndexOptions::path`).
    pub path: String,
    /// How often the replica polls the owner's manifest and WAL: each poll costs a few
    /// object-store requests (a manifest listing and GET, WAL probes), about 10 when idle.
    pub poll_interval: Duration,
    /// Memory for cached SST blocks and metadata, as the owner's caches.
    pub block_cache_bytes: u64,
    pub meta_cache_bytes: u64,
    /// Data blocks read into the cache at open, as the owner's `warm_bytes`.
    pub warm_bytes: u64,
}

/// A read-only view of the index.
#[derive(Clone)]
pub struct IndexReplica {
    reader: Arc<DbReader>,
}

impl std::fmt::Debug for IndexReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReplica").finish_non_exhaustive()
    }
}

impl IndexReplica {
    /// Opens the replica; fails while no owner has created the index yet.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        options: &ReplicaOptions,
    ) -> Result<Self, IndexError> {
        let reader_options = DbReaderOptions {
            manifest_poll_interval: options.poll_interval,
            ..DbReaderOptions::default()
        };
        let mut builder = DbReader::builder(options.path.clone(), store)
            .with_reader_mode(DbReaderMode::FollowLatest)
            .with_options(reader_options);
        builder = match options.block_cache_bytes {
            0 => builder.with_db_cache_disabled(),
            bytes => builder.with_db_cache(db_cache(bytes, options.meta_cache_bytes), 0),
        };
        let reader = builder.build().await?;
        crate::warm::warm_caches(&reader, options.block_cache_bytes, options.warm_bytes).await;
        Ok(Self {
            reader: Arc::new(reader),
        })
    }

    /// Stops polling.
    pub async fn close(&self) -> Result<(), IndexError> {
        self.reader.close().await?;
        Ok(())
    }

    /// The live table `database.name`.
    pub async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        durable_table(self.reader.as_ref(), database, name).await
    }

    /// The stream's tail as of the last poll.
    pub async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        read_tail(self.reader.as_ref(), stream).await
    }

    /// Up to `max` chunk entries of `stream` holding offsets at or after `from`.
    pub async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        kv::list(
            self.reader.as_ref(),
            keys::chunks_from(stream, from),
            max,
            ChunkEntry::decode,
        )
        .await
    }

    /// The first offset committed at or after `ts`, within `tail`.
    pub async fn offset_for_timestamp(
        &self,
        stream: StreamId,
        ts: TimestampMicros,
        tail: StreamTail,
    ) -> Result<Offset, IndexError> {
        kv::offset_at(self.reader.as_ref(), stream, ts, tail).await
    }

    pub async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        read_lake_watermark(self.reader.as_ref(), stream).await
    }

    pub async fn lake_table(&self, table: TableId) -> Result<Option<LakeTableRecord>, IndexError> {
        read_lake_table(self.reader.as_ref(), table).await
    }

    /// The current row of each of `keys` (encoded primary keys of `stream`) as of the last
    /// poll.
    pub async fn lookup(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<crate::pk::KeyState>>, IndexError> {
        kv::key_states(self.reader.as_ref(), stream, keys).await
    }

    /// Up to `max` current rows of `stream` whose key starts with `prefix`, as of the last
    /// poll.
    pub async fn lookup_prefix(
        &self,
        stream: StreamId,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<crate::pk::KeyState>, IndexError> {
        kv::key_states_with_prefix(self.reader.as_ref(), stream, prefix, max).await
    }

    /// Every current row of `stream` as of the last poll, from one point of this view.
    pub async fn scan_keys(&self, stream: StreamId) -> Result<crate::ports::KeyScan, IndexError> {
        kv::scan_key_states(self.reader.as_ref(), stream).await
    }

    /// The change record of the primary-key chunk of `stream` ending at `end`, if this view
    /// has it.
    pub async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<crate::pk::ChangeRecord>, IndexError> {
        kv::change_record(self.reader.as_ref(), stream, end).await
    }

    /// Up to `max` lake file entries of `stream` holding offsets at or after `from`.
    pub async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        kv::list(
            self.reader.as_ref(),
            keys::lake_files_from(stream, from),
            max,
            LakeFileEntry::decode,
        )
        .await
    }
}
