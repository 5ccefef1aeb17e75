//! Purging dropped tables: once a table is dropped (its name freed, its record marked with
//! the drop time), a compactor waits out the drop grace, deletes its lake table if it was
//! dropped with `purge`, then asks the index owner to purge it here. The sequencer deletes
//! every index entry of the table, kind by kind in bounded batches (chunk and time-index
//! entries, lake files, key states, change records, lake rows, lake watermarks, tails,
//! schemas), and last its lake record and table record, after which nothing of the table is
//! left in the index. The WAL objects its chunks were in are then garbage to the WAL
//! collector once no other table's chunk is in them.
//!
//! Dropped partitions of a live table go the same way: after the grace, the entries of every
//! stream of the partition, then its record (the table record keeps the highest partition id
//! ever given, so the id is not given again).
//!
//! Idempotent-producer states (`0x20 | producer | table`) are not keyed by table first; they
//! expire by their own TTL.

use inlet_core::ids::{PartitionId, StreamId, TableId, TimestampMicros};
use inlet_core::partition::partition_name;
use slatedb::WriteBatch;
use tokio::sync::oneshot;

use super::{Command, Index, Sequencer, index_scan};
use crate::error::IndexError;
use crate::keys::{self, KeyPrefix, lake_table_key, table_key};
use crate::records::{PartitionRecord, TableRecord, decode_record};

/// Most index entries one purge call deletes, so a call is one bounded write batch and holds
/// the sequencer for a bounded time; [`Purged::done`] says whether to call again.
pub const MAX_ENTRIES_PURGED_PER_CALL: usize = 10_000;

/// The kinds of a table's entries a purge deletes, in this order, before its records.
const PURGED_KINDS: [KeyPrefix; 10] = [
    KeyPrefix::Chunk,
    KeyPrefix::TimeIndex,
    KeyPrefix::LakeFile,
    KeyPrefix::PkState,
    KeyPrefix::PkChange,
    KeyPrefix::PkLakeRow,
    KeyPrefix::LakeWatermark,
    KeyPrefix::StreamTail,
    KeyPrefix::Schema,
    KeyPrefix::Partition,
];

/// A dropped table whose entries are still in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedTable {
    pub id: TableId,
    pub database: String,
    pub name: String,
    pub dropped_at: TimestampMicros,
    /// Dropped with `purge`: its lake table is deleted too.
    pub purge_lake: bool,
}

/// A dropped partition of a live table whose entries are still in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedPartition {
    pub table: TableId,
    pub partition: PartitionId,
    /// The partition's values joined by `$`.
    pub name: String,
    pub dropped_at: TimestampMicros,
}

/// The kinds of a partition's entries a partition purge deletes, before its record: every
/// kind whose keys start with a stream.
const PARTITION_KINDS: [KeyPrefix; 8] = [
    KeyPrefix::Chunk,
    KeyPrefix::TimeIndex,
    KeyPrefix::LakeFile,
    KeyPrefix::PkState,
    KeyPrefix::PkChange,
    KeyPrefix::PkLakeRow,
    KeyPrefix::LakeWatermark,
    KeyPrefix::StreamTail,
];

/// What one purge call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Index entries deleted.
    pub entries: usize,
    /// Nothing of the table is left in the index.
    pub done: bool,
}

pub(super) type PurgeReply = oneshot::Sender<Result<Purged, IndexError>>;

impl Index {
    /// Every dropped table the index still holds entries of, as durable.
    pub async fn dropped_tables(&self) -> Result<Vec<DroppedTable>, IndexError> {
        let mut iter = self
            .shared
            .db
            .scan_with_options(
                vec![KeyPrefix::Table as u8]..vec![KeyPrefix::Table as u8 + 1],
                &index_scan(),
            )
            .await?;
        let mut dropped = Vec::new();
        while let Some(kv) = iter.next().await? {
            let record: TableRecord = decode_record(&kv.value)?;
            if let Some(at) = record.dropped_at_micros {
                dropped.push(DroppedTable {
                    id: TableId(record.id),
                    database: record.database,
                    name: record.name,
                    dropped_at: TimestampMicros(at),
                    purge_lake: record.purge_lake,
                });
            }
        }
        Ok(dropped)
    }

    /// Every dropped partition of a live table the index still holds the record of, as
    /// durable. (A dropped table's partitions go with the table.)
    pub async fn dropped_partitions(&self) -> Result<Vec<DroppedPartition>, IndexError> {
        let mut iter = self
            .shared
            .db
            .scan_with_options(
                vec![KeyPrefix::Partition as u8]..vec![KeyPrefix::Partition as u8 + 1],
                &index_scan(),
            )
            .await?;
        let live: std::collections::HashSet<TableId> =
            self.shared.catalog().tables.keys().copied().collect();
        let mut dropped = Vec::new();
        while let Some(kv) = iter.next().await? {
            let (table, partition) = keys::decode_partition_key(&kv.key)?;
            let record: PartitionRecord = decode_record(&kv.value)?;
            if let Some(at) = record.dropped_at_micros
                && live.contains(&table)
            {
                dropped.push(DroppedPartition {
                    table,
                    partition,
                    name: partition_name(&record.values),
                    dropped_at: TimestampMicros(at),
                });
            }
        }
        Ok(dropped)
    }

    /// How many index entries of one partition of `table` there are, of every kind a
    /// partition purge deletes, plus its record: what the purge brings to zero.
    pub async fn partition_entries(
        &self,
        table: TableId,
        partition: PartitionId,
    ) -> Result<usize, IndexError> {
        let kinds = PARTITION_KINDS.into_iter().chain([KeyPrefix::Partition]);
        let ranges: Vec<_> = kinds
            .map(|kind| keys::partition_range(kind, table, partition))
            .collect();
        self.entries_in(&ranges).await
    }

    /// Deletes up to [`MAX_ENTRIES_PURGED_PER_CALL`] index entries of dropped partition
    /// `partition` of `table`, its record last; a live partition is refused.
    pub async fn purge_partition(
        &self,
        table: TableId,
        partition: PartitionId,
    ) -> Result<Purged, IndexError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::PurgePartition {
            table,
            partition,
            reply,
        })
        .await?;
        receiver.await.map_err(|_| self.sequencer_gone())?
    }

    /// How many index entries of `table` there are, of every kind a purge deletes, plus its
    /// lake record and table record: what a purge brings to zero.
    pub async fn table_entries(&self, table: TableId) -> Result<usize, IndexError> {
        let ranges = PURGED_KINDS.map(|kind| keys::table_range(kind, table));
        let mut count = self.entries_in(&ranges).await?;
        for key in [lake_table_key(table), table_key(table)] {
            if self.shared.db.get(&key).await?.is_some() {
                count += 1;
            }
        }
        Ok(count)
    }

    /// How many entries the index holds in `ranges`.
    async fn entries_in(&self, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<usize, IndexError> {
        let mut count = 0;
        for (start, end) in ranges {
            let mut iter = self
                .shared
                .db
                .scan_with_options(start.clone()..end.clone(), &index_scan())
                .await?;
            while iter.next().await?.is_some() {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Deletes up to [`MAX_ENTRIES_PURGED_PER_CALL`] index entries of dropped table `table`
    /// (see the module docs); a live table is refused.
    pub async fn purge_table(&self, table: TableId) -> Result<Purged, IndexError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Purge { table, reply }).await?;
        receiver.await.map_err(|_| self.sequencer_gone())?
    }
}

impl Sequencer {
    /// Adds to `batch` the deletion of every entry in `ranges`, counting them in `purged`,
    /// until [`MAX_ENTRIES_PURGED_PER_CALL`] are; false when it stopped there with entries
    /// left.
    async fn delete_in(
        &self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        batch: &mut WriteBatch,
        purged: &mut Purged,
    ) -> Result<bool, IndexError> {
        for (start, end) in ranges {
            let mut iter = self
                .shared
                .db
                .scan_with_options(start.clone()..end.clone(), &index_scan())
                .await?;
            while let Some(kv) = iter.next().await? {
                if purged.entries == MAX_ENTRIES_PURGED_PER_CALL {
                    return Ok(false);
                }
                batch.delete(kv.key.as_ref());
                purged.entries += 1;
            }
        }
        Ok(true)
    }

    /// Forgets what is cached of purged streams (`gone`): they are never used again.
    fn forget_streams(&mut self, gone: impl Fn(&StreamId) -> bool) {
        self.tails.retain(|stream, _| !gone(stream));
        self.lake_watermarks.retain(|stream, _| !gone(stream));
        self.shared.tails().retain(|stream, _| !gone(stream));
        self.shared
            .lake()
            .watermarks
            .retain(|stream, _| !gone(stream));
    }

    pub(super) async fn purge_partition(
        &mut self,
        table: TableId,
        partition: PartitionId,
    ) -> Result<Purged, IndexError> {
        let record_key = keys::partition_key(table, partition);
        let Some(bytes) = self.shared.db.get(&record_key).await? else {
            return Ok(Purged {
                entries: 0,
                done: true,
            });
        };
        let record: PartitionRecord = decode_record(&bytes)?;
        if record.dropped_at_micros.is_none() {
            return Err(IndexError::Refused {
                reason: format!(
                    "partition {} (`{}`) of table {} is live: only dropped partitions are purged",
                    partition.0,
                    partition_name(&record.values),
                    table.0
                ),
            });
        }
        let mut batch = WriteBatch::new();
        let mut purged = Purged::default();
        let ranges = PARTITION_KINDS.map(|kind| keys::partition_range(kind, table, partition));
        if !self.delete_in(&ranges, &mut batch, &mut purged).await? {
            self.write_durably(batch).await?;
            return Ok(purged);
        }
        // The record goes last, so a crash before this leaves the partition listed as
        // dropped, to be purged again.
        batch.delete(record_key);
        self.write_durably(batch).await?;
        purged.done = true;
        self.forget_streams(|stream| stream.table == table && stream.partition == partition);
        tracing::info!(
            table = table.0,
            partition = partition.0,
            name = %partition_name(&record.values),
            entries = purged.entries,
            "dropped partition purged from the index"
        );
        Ok(purged)
    }

    pub(super) async fn purge_table(&mut self, table: TableId) -> Result<Purged, IndexError> {
        if let Some(live) = self.shared.catalog().tables.get(&table) {
            return Err(IndexError::Refused {
                reason: format!(
                    "table {} ({}) is live: only dropped tables are purged",
                    table.0,
                    live.qualified_name()
                ),
            });
        }
        let Some(bytes) = self.shared.db.get(&table_key(table)).await? else {
            return Ok(Purged {
                entries: 0,
                done: true,
            });
        };
        let record: TableRecord = decode_record(&bytes)?;
        if record.dropped_at_micros.is_none() {
            return Err(IndexError::Refused {
                reason: format!(
                    "table {} ({}.{}) has no drop time: only dropped tables are purged",
                    table.0, record.database, record.name
                ),
            });
        }

        let mut batch = WriteBatch::new();
        let mut purged = Purged::default();
        let ranges = PURGED_KINDS.map(|kind| keys::table_range(kind, table));
        if !self.delete_in(&ranges, &mut batch, &mut purged).await? {
            self.write_durably(batch).await?;
            return Ok(purged);
        }
        // Nothing else of the table is left: its records go last, so a crash before this
        // leaves it listed as dropped, to be purged again.
        batch.delete(lake_table_key(table));
        batch.delete(table_key(table));
        self.write_durably(batch).await?;
        purged.done = true;

        self.forget_streams(|stream| stream.table == table);
        self.lake_records.remove(&table);
        self.shared.lake().tables.remove(&table);
        tracing::info!(
            table = table.0,
            name = %format!("{}.{}", record.database, record.name),
            entries = purged.entries,
            "dropped table purged from the index"
        );
        Ok(purged)
    }
}
