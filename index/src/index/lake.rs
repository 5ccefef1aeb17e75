//! Inlet's lake catalog in the index: per table the Iceberg metadata pointer and the
//! compactor lease, per stream the lake watermark and the lake file index.
//!
//! A lake commit changes all of them in ONE SlateDB write batch, through the sequencer, with
//! a compare-and-swap on the metadata location the commit was built on and a check of the
//! compactor's lease. The same batch removes the chunk entries the new watermark covers:
//! from then on those offsets are read from the lake files. See `docs/lake-commit.md`.
//!
//! Readers see lake state only once it is durable, by the same rule as tails (`INDEX_READ`):
//! the sequencer puts the durable value into the published view before it writes a change,
//! and replaces it after the change is durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use inlet_core::table::TableInfo;

use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::{
    Bucket, Offset, PartitionId, StreamId, TableId, TimestampMicros, WalObjectId,
};
use slatedb::{DbIterator, WriteBatch};
use tokio::sync::oneshot;

use super::{Command, Index, KvRead, Sequencer, index_scan};
use crate::error::IndexError;
use crate::keys::{
    self, ChunkEntry, LakeFileEntry, LakeWatermark, chunk_key, lake_file_key, lake_table_key,
    lake_watermark_key, tail_key, time_index_key,
};
use crate::pk::{LakeRow, check_key, lake_row_key};
use crate::records::{
    CATALOG_RECORD_VERSION, LakeLease, LakeTableRecord, decode_record, encode_record,
};

/// One round of a compactor, to be recorded atomically.
#[derive(Clone, Debug, PartialEq)]
pub struct LakeCommit {
    pub table: TableId,
    /// The lease the round ran under; it must still be the table's current lease.
    pub lease: LakeLease,
    /// The metadata location the round was built on (compare-and-swap); `None` for the
    /// first commit of the table.
    pub expected_metadata_location: Option<String>,
    /// The new metadata location.
    pub metadata_location: String,
    /// The new current snapshot.
    pub snapshot_id: Option<i64>,
    /// New watermarks of the buckets that moved; never backwards, never past the tail.
    pub watermarks: BTreeMap<Bucket, Offset>,
    /// Data files the round added, per bucket.
    pub added_files: Vec<(Bucket, LakeFileEntry)>,
    /// Data files the round removed (retention, or files one replaces), per bucket by end
    /// offset; removed before `added_files` are recorded, so a replacement may end at the
    /// same offset as a file it replaces.
    pub removed_files: Vec<(Bucket, Offset)>,
    /// New earliest readable offsets (retention); never backwards, never past the watermark.
    pub earliest: BTreeMap<Bucket, Offset>,
    /// Primary-key tables: where each key the round changed now has its current row in the
    /// lake (`None`: the key has no row there any more), per bucket by encoded key.
    pub key_rows: Vec<(Bucket, Vec<u8>, Option<LakeRow>)>,
}

/// What a lake commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeCommitted {
    /// Index commit time.
    pub committed_at: TimestampMicros,
    /// Chunk entries removed because the new watermarks cover them.
    pub trimmed_chunks: usize,
    /// WAL objects those chunks were in: candidates for garbage collection.
    pub trimmed_objects: BTreeSet<WalObjectId>,
}

/// Why a lease or a lake commit was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum LakeCommitError {
    #[error("table {table} does not exist (dropped?)", table = table.0)]
    TableNotFound { table: TableId },
    #[error(
        "lake table {table} is leased by compactor {holder:?}; lease {epoch} of compactor {owner} is not current",
        table = table.0
    )]
    Fenced {
        table: TableId,
        owner: u64,
        epoch: u64,
        holder: Option<LakeLease>,
    },
    #[error(
        "lake commit of table {table} was built on {expected:?} but the current metadata is {current:?}",
        table = table.0
    )]
    Conflict {
        table: TableId,
        expected: Option<String>,
        current: Option<String>,
    },
    #[error("invalid lake commit for table {table}: {reason}", table = table.0)]
    Invalid { table: TableId, reason: String },
    #[error(transparent)]
    Index(#[from] IndexError),
}

impl HasKind for LakeCommitError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::TableNotFound { .. } => ErrorKind::NotFound,
            Self::Fenced { .. } => ErrorKind::Fenced,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::Invalid { .. } => ErrorKind::InvalidInput,
            Self::Index(error) => error.kind(),
        }
    }
}

/// A change the sequencer applies to the lake catalog.
pub(super) enum LakeChange {
    Lease {
        table: TableId,
        owner: u64,
        ttl: Duration,
    },
    Release {
        table: TableId,
        lease: LakeLease,
    },
    Commit(Box<LakeCommit>),
}

pub(super) enum LakeOutcome {
    Lease(LakeLease),
    Released,
    Committed(LakeCommitted),
}

pub(super) type LakeReply = oneshot::Sender<Result<LakeOutcome, LakeCommitError>>;

/// The durable lake state readers may see, per table and per stream.
#[derive(Default)]
pub(super) struct LakeView {
    pub(super) tables: HashMap<TableId, Option<LakeTableRecord>>,
    pub(super) watermarks: HashMap<StreamId, LakeWatermark>,
}

/// Iterates the lake files of one stream in offset order.
pub struct LakeFileScan {
    iter: DbIterator,
}

impl LakeFileScan {
    pub async fn next(&mut self) -> Result<Option<LakeFileEntry>, IndexError> {
        match self.iter.next().await? {
            Some(kv) => Ok(Some(LakeFileEntry::decode(&kv.value)?)),
            None => Ok(None),
        }
    }
}

impl Index {
    /// Takes (or renews) the right to commit `table`'s lake table for `ttl`. A compactor
    /// that is not the holder gets it only once the holder's lease expired, with a higher
    /// epoch, which fences every commit the old holder still has in flight.
    pub async fn acquire_lake_lease(
        &self,
        table: TableId,
        owner: u64,
        ttl: Duration,
    ) -> Result<LakeLease, LakeCommitError> {
        match self
            .lake_change(LakeChange::Lease { table, owner, ttl })
            .await?
        {
            LakeOutcome::Lease(lease) => Ok(lease),
            _ => unreachable!("a lease request replies with a lease"),
        }
    }

    /// Gives a lease up so another compactor can take the table at once.
    pub async fn release_lake_lease(
        &self,
        table: TableId,
        lease: LakeLease,
    ) -> Result<(), LakeCommitError> {
        self.lake_change(LakeChange::Release { table, lease })
            .await
            .map(|_| ())
    }

    /// Records a compactor round: see the module docs.
    pub async fn commit_lake(&self, commit: LakeCommit) -> Result<LakeCommitted, LakeCommitError> {
        match self
            .lake_change(LakeChange::Commit(Box::new(commit)))
            .await?
        {
            LakeOutcome::Committed(committed) => Ok(committed),
            _ => unreachable!("a lake commit replies with its outcome"),
        }
    }

    async fn lake_change(&self, change: LakeChange) -> Result<LakeOutcome, LakeCommitError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Lake { change, reply }).await?;
        receiver.await.map_err(|_| self.sequencer_gone())?
    }

    /// The durable lake record of `table`, if the table was ever tiered or leased.
    pub async fn lake_table(&self, table: TableId) -> Result<Option<LakeTableRecord>, IndexError> {
        if let Some(record) = self.shared.lake().tables.get(&table) {
            return Ok(record.clone());
        }
        let durable = read_lake_table(&self.shared.db, table).await?;
        // A value the sequencer published meanwhile wins over what we read: see the module docs.
        Ok(self
            .shared
            .lake()
            .tables
            .entry(table)
            .or_insert(durable)
            .clone())
    }

    /// The durable lake watermark of `stream`.
    pub async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        if let Some(watermark) = self.shared.lake().watermarks.get(&stream) {
            return Ok(*watermark);
        }
        let durable = read_lake_watermark(&self.shared.db, stream).await?;
        Ok(*self
            .shared
            .lake()
            .watermarks
            .entry(stream)
            .or_insert(durable))
    }

    /// The lake files of `stream` holding offsets at or after `from`, in offset order. Only
    /// files below the stream's [`Index::lake_watermark`] are durable; stop there.
    pub async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
    ) -> Result<LakeFileScan, IndexError> {
        let (start, end) = keys::lake_files_from(stream, from);
        let iter = self
            .shared
            .db
            .scan_with_options(start..end, &index_scan())
            .await?;
        Ok(LakeFileScan { iter })
    }

    /// Every WAL object some chunk entry still points into. An object not in this set that
    /// is older than any in-flight upload and unreferenced for longer than any read can be
    /// deleted.
    pub async fn live_wal_objects(&self) -> Result<BTreeSet<WalObjectId>, IndexError> {
        let (start, end) = keys::all_chunks();
        let mut iter = self
            .shared
            .db
            .scan_with_options(start..end, &index_scan())
            .await?;
        let mut live = BTreeSet::new();
        while let Some(kv) = iter.next().await? {
            live.insert(ChunkEntry::decode(&kv.value)?.object);
        }
        Ok(live)
    }
}

pub(crate) async fn read_lake_table(
    db: &impl KvRead,
    table: TableId,
) -> Result<Option<LakeTableRecord>, IndexError> {
    match db.read(lake_table_key(table)).await? {
        Some(bytes) => Ok(Some(decode_record(&bytes)?)),
        None => Ok(None),
    }
}

pub(crate) async fn read_lake_watermark(
    db: &impl KvRead,
    stream: StreamId,
) -> Result<LakeWatermark, IndexError> {
    match db.read(lake_watermark_key(stream)).await? {
        Some(bytes) => Ok(LakeWatermark::decode(&bytes)?),
        None => Ok(LakeWatermark::EMPTY),
    }
}

impl Sequencer {
    pub(super) async fn apply_lake(
        &mut self,
        change: LakeChange,
    ) -> Result<LakeOutcome, LakeCommitError> {
        match change {
            LakeChange::Lease { table, owner, ttl } => {
                self.lease(table, owner, ttl).await.map(LakeOutcome::Lease)
            }
            LakeChange::Release { table, lease } => {
                let mut record = self.lake_record(table).await?;
                if record.lease != Some(lease) {
                    return Ok(LakeOutcome::Released);
                }
                // Expired rather than removed, so the next holder's epoch is higher still.
                record.lease = Some(LakeLease {
                    expires_at_micros: self.shared.env.clock.now().0,
                    ..lease
                });
                self.write_lake_record(table, record).await?;
                Ok(LakeOutcome::Released)
            }
            LakeChange::Commit(commit) => {
                self.commit_lake(*commit).await.map(LakeOutcome::Committed)
            }
        }
    }

    fn check_table(&self, table: TableId) -> Result<u32, LakeCommitError> {
        Ok(self.table_info(table)?.descriptor.bucket_count)
    }

    fn table_info(&self, table: TableId) -> Result<Arc<TableInfo>, LakeCommitError> {
        self.shared
            .catalog()
            .tables
            .get(&table)
            .cloned()
            .ok_or(LakeCommitError::TableNotFound { table })
    }

    async fn lease(
        &mut self,
        table: TableId,
        owner: u64,
        ttl: Duration,
    ) -> Result<LakeLease, LakeCommitError> {
        self.check_table(table)?;
        let now = self.shared.env.clock.now();
        let mut record = self.lake_record(table).await?;
        let ttl_micros = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let expires_at_micros = now.0.saturating_add(ttl_micros);
        let lease = match record.lease {
            Some(held) if held.owner == owner && now.0 < held.expires_at_micros => LakeLease {
                expires_at_micros,
                ..held
            },
            Some(held) if now.0 < held.expires_at_micros => {
                return Err(LakeCommitError::Fenced {
                    table,
                    owner,
                    epoch: held.epoch + 1,
                    holder: Some(held),
                });
            }
            previous => LakeLease {
                owner,
                epoch: previous.map_or(1, |held| held.epoch + 1),
                expires_at_micros,
            },
        };
        record.lease = Some(lease);
        self.write_lake_record(table, record).await?;
        Ok(lease)
    }

    async fn write_lake_record(
        &mut self,
        table: TableId,
        record: LakeTableRecord,
    ) -> Result<(), LakeCommitError> {
        let mut batch = WriteBatch::new();
        batch.put(lake_table_key(table), encode_record(&record));
        self.write_durably(batch).await?;
        self.shared
            .lake()
            .tables
            .insert(table, Some(record.clone()));
        self.lake_records.insert(table, record);
        Ok(())
    }

    /// The durable lake record of `table`, or an empty one; published for readers before
    /// anything is written for it.
    async fn lake_record(&mut self, table: TableId) -> Result<LakeTableRecord, IndexError> {
        if let Some(record) = self.lake_records.get(&table) {
            return Ok(record.clone());
        }
        let durable = read_lake_table(&self.shared.db, table).await?;
        self.shared
            .lake()
            .tables
            .entry(table)
            .or_insert_with(|| durable.clone());
        let record = durable.unwrap_or(LakeTableRecord {
            version: CATALOG_RECORD_VERSION,
            metadata_location: None,
            snapshot_id: None,
            lease: None,
            updated_at_micros: 0,
        });
        self.lake_records.insert(table, record.clone());
        Ok(record)
    }

    async fn watermark(&mut self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        if let Some(watermark) = self.lake_watermarks.get(&stream) {
            return Ok(*watermark);
        }
        let durable = read_lake_watermark(&self.shared.db, stream).await?;
        self.shared
            .lake()
            .watermarks
            .entry(stream)
            .or_insert(durable);
        self.lake_watermarks.insert(stream, durable);
        Ok(durable)
    }

    async fn commit_lake(&mut self, commit: LakeCommit) -> Result<LakeCommitted, LakeCommitError> {
        let table = commit.table;
        let info = self.table_info(table)?;
        let bucket_count = info.descriptor.bucket_count;
        let keyed = info.is_primary_key_table();
        let now = self.shared.env.clock.now();
        let mut record = self.lake_record(table).await?;
        match record.lease {
            Some(held)
                if held.owner == commit.lease.owner
                    && held.epoch == commit.lease.epoch
                    && now.0 < held.expires_at_micros => {}
            holder => {
                return Err(LakeCommitError::Fenced {
                    table,
                    owner: commit.lease.owner,
                    epoch: commit.lease.epoch,
                    holder,
                });
            }
        }
        if record.metadata_location != commit.expected_metadata_location {
            return Err(LakeCommitError::Conflict {
                table,
                expected: commit.expected_metadata_location,
                current: record.metadata_location,
            });
        }
        let invalid = |reason: String| LakeCommitError::Invalid { table, reason };
        let stream = |bucket: Bucket| -> Result<StreamId, LakeCommitError> {
            if bucket.0 >= bucket_count {
                return Err(invalid(format!(
                    "bucket {} does not exist: the table has {bucket_count} buckets",
                    bucket.0
                )));
            }
            Ok(StreamId::new(table, PartitionId(0), bucket))
        };

        // Decide everything first, then write one batch.
        let mut batch = WriteBatch::new();
        let mut watermarks: BTreeMap<StreamId, LakeWatermark> = BTreeMap::new();
        let mut tails = HashMap::new();
        for (bucket, offset) in &commit.watermarks {
            let stream = stream(*bucket)?;
            let current = self.watermark(stream).await?;
            let tail = self.tail(stream).await?;
            if *offset < current.offset || *offset > tail.next_offset {
                return Err(invalid(format!(
                    "watermark of bucket {} would move from {} to {offset}, the tail is {}",
                    bucket.0, current.offset, tail.next_offset
                )));
            }
            let moved = LakeWatermark {
                offset: *offset,
                updated_at: now,
            };
            batch.put(lake_watermark_key(stream), moved.encode());
            watermarks.insert(stream, moved);
        }
        for (bucket, offset) in &commit.earliest {
            let stream = stream(*bucket)?;
            let watermark = match watermarks.get(&stream) {
                Some(watermark) => *watermark,
                None => self.watermark(stream).await?,
            };
            let tail = self.tail(stream).await?;
            if *offset < tail.earliest_offset || *offset > watermark.offset {
                return Err(invalid(format!(
                    "earliest offset of bucket {} would move from {} to {offset}, the watermark is {}",
                    bucket.0, tail.earliest_offset, watermark.offset
                )));
            }
            let moved = keys::StreamTail {
                earliest_offset: *offset,
                ..tail
            };
            batch.put(tail_key(stream), moved.encode());
            tails.insert(stream, moved);
        }
        // Removed entries first: in one batch the last operation on a key wins, and a file
        // that replaces others (a rewrite of small files) ends where the last of them did.
        for (bucket, end) in &commit.removed_files {
            batch.delete(lake_file_key(stream(*bucket)?, *end));
        }
        for (bucket, file) in &commit.added_files {
            let stream = stream(*bucket)?;
            let watermark = match watermarks.get(&stream) {
                Some(watermark) => *watermark,
                None => self.watermark(stream).await?,
            };
            if file.end_offset() > watermark.offset || file.row_count == 0 {
                return Err(invalid(format!(
                    "file {} holds offsets {}..{} of bucket {}, above the watermark {}",
                    file.path,
                    file.base_offset,
                    file.end_offset(),
                    bucket.0,
                    watermark.offset
                )));
            }
            batch.put(lake_file_key(stream, file.end_offset()), file.encode());
        }
        if !keyed && !commit.key_rows.is_empty() {
            return Err(invalid("lake rows of keys for a log table".to_owned()));
        }
        for (bucket, key, row) in &commit.key_rows {
            let stream = stream(*bucket)?;
            check_key(key).map_err(|e| invalid(format!("lake row key: {e}")))?;
            let key = lake_row_key(stream, key);
            match row {
                Some(row) => batch.put(key, row.encode()),
                None => batch.delete(key),
            }
        }
        // The chunks the new watermarks cover are read from the lake from now on; not those
        // of a primary-key table, whose lake holds the current rows and not the changelog
        // (its chunks and change records stay the changelog's source).
        let mut trimmed_chunks = 0;
        let mut trimmed_objects = BTreeSet::new();
        for (stream, watermark) in watermarks.iter().filter(|_| !keyed) {
            let (start, end) = keys::chunks_below(*stream, watermark.offset);
            let mut iter = self
                .shared
                .db
                .scan_with_options(start..end, &index_scan())
                .await
                .map_err(IndexError::from)?;
            let mut trimmed_bytes = 0u64;
            while let Some(kv) = iter.next().await.map_err(IndexError::from)? {
                let entry = ChunkEntry::decode(&kv.value).map_err(IndexError::from)?;
                let end = entry.end_offset();
                batch.delete(chunk_key(*stream, end));
                batch.delete(time_index_key(*stream, entry.commit_ts, end));
                trimmed_chunks += 1;
                trimmed_bytes = trimmed_bytes.saturating_add(entry.chunk_len);
                trimmed_objects.insert(entry.object);
            }
            if trimmed_bytes > 0 {
                let tail = match tails.get(stream) {
                    Some(tail) => *tail,
                    None => self.tail(*stream).await?,
                };
                let moved = keys::StreamTail {
                    wal_bytes: tail.wal_bytes.saturating_sub(trimmed_bytes),
                    ..tail
                };
                batch.put(tail_key(*stream), moved.encode());
                tails.insert(*stream, moved);
            }
        }
        record.metadata_location = Some(commit.metadata_location);
        record.snapshot_id = commit.snapshot_id;
        record.updated_at_micros = now.0;
        batch.put(lake_table_key(table), encode_record(&record));

        self.write_durably(batch).await?;

        self.lake_records.insert(table, record.clone());
        self.lake_watermarks
            .extend(watermarks.iter().map(|(s, w)| (*s, *w)));
        {
            let mut view = self.shared.lake();
            view.tables.insert(table, Some(record));
            view.watermarks.extend(watermarks);
        }
        self.publish(tails);
        Ok(LakeCommitted {
            committed_at: now,
            trimmed_chunks,
            trimmed_objects,
        })
    }
}
