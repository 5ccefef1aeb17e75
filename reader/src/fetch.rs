//! Fetch: stream the rows of a table's buckets from a start position, optionally following.
//!
//! Each bucket is read by its own task that walks the stream from the start offset up to the
//! durable tail it last saw (a fetch that does not follow reads `FETCH_BUCKETS_IN_FLIGHT`
//! buckets at once, a follower all of them), reading chunks ahead of the one it sends. Offsets below the stream's lake watermark are read from the
//! lake's Parquet files (`lake.rs`); the rest by walking the chunk index, reading each chunk
//! through the page cache: the whole chunk in one range, or, when few columns of a wide chunk
//! are asked for, only the IPC metadata and those columns' byte ranges (`pruned.rs`),
//! checksums verified either way. The watermark may move while a task reads: the chunks it
//! covers leave the index, and a task that finds its next chunk gone re-reads the watermark
//! and continues from the lake. A follower then waits on
//! the index's commit notification for its stream, so new rows arrive as soon as they are
//! acknowledged, without polling the index. Offsets are checked to be dense on the way out.

use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::Stream;
use inlet_cache::PagedCache;
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId, TimestampMicros};
use inlet_core::limits::{FETCH_BUCKETS_IN_FLIGHT, FETCH_CHANNEL_DEPTH, MAX_FETCH_BATCH_ROWS};
use inlet_core::partition::UNPARTITIONED;
use inlet_core::table::{TableInfo, changelog_read_schema, read_schema};
use inlet_index::{ChunkCursor, ChunkEntry, LogRead, StreamTail};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::changelog::{self, ChangelogRead};
use crate::chunk::{ChunkError, ChunkRead, with_system_columns};
use crate::error::FetchError;

mod lake;
mod snapshot;

pub use snapshot::MAX_SNAPSHOT_CATCH_UP_ROWS;

/// How often a follow of every partition of a partitioned table lists the table again for
/// partitions created since: a new partition's first rows reach such a follower this much
/// later than rows of a partition it reads already.
pub const PARTITION_LISTING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The batches of a fetch, in offset order per bucket; ends with the first error.
pub type FetchStream = Pin<Box<dyn Stream<Item = Result<FetchedBatch, FetchError>> + Send>>;

/// Where a fetch starts in each bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPosition {
    /// The first readable offset.
    Earliest,
    /// The next offset to be written: only new rows.
    Latest,
    /// This offset; it must be readable or equal to the tail.
    Offset(Offset),
    /// The first row committed at or after this time.
    Timestamp(TimestampMicros),
    /// Primary-key tables: the current rows as of one offset per bucket (`+I` rows in key
    /// order), then the changelog from that offset (`snapshot.rs`).
    Snapshot,
}

/// What to fetch.
#[derive(Clone, Debug, PartialEq)]
pub struct FetchRequest {
    pub database: String,
    pub table: String,
    /// Partitioned tables: the partitions to read, by name; empty means all (and a follow
    /// picks up partitions created after it started).
    pub partitions: Vec<String>,
    /// Buckets to read (of each partition read); empty means all.
    pub buckets: Vec<u32>,
    pub start: StartPosition,
    /// Columns to return, in this order; empty means all.
    pub columns: Vec<String>,
    /// Keep reading rows as they are committed.
    pub follow: bool,
    /// Stop after this many rows in total.
    pub limit: Option<u64>,
    /// Primary-key tables: leave out the `-U` rows (before images of updates).
    pub omit_update_before: bool,
    /// A start offset below a bucket's earliest readable offset starts at the earliest
    /// instead of failing with [`FetchError::OffsetOutOfRange`].
    pub reset_to_earliest: bool,
}

/// Rows of one bucket, with the system columns `_bucket`, `_offset`, `_timestamp` last.
#[derive(Clone, Debug)]
pub struct FetchedBatch {
    pub partition: PartitionId,
    pub bucket: Bucket,
    pub batch: RecordBatch,
    /// The bucket's tail when this batch was read; in a snapshot, the offset it is as of.
    pub high_watermark: Offset,
    pub snapshot: SnapshotPart,
}

/// Whether a batch is part of a bucket's snapshot (`StartPosition::Snapshot`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotPart {
    /// Rows of the log or changelog, in offset order.
    #[default]
    None,
    /// Rows of the snapshot, in key order; more follow.
    Rows,
    /// The snapshot's last batch (possibly empty): the bucket's snapshot is complete, as of
    /// `high_watermark`, where the changelog continues.
    Last,
}

/// Offsets of one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketOffsets {
    pub partition: PartitionId,
    pub bucket: Bucket,
    pub earliest: Offset,
    pub latest: Offset,
    /// Bytes of WAL chunks the bucket holds ([`StreamTail::wal_bytes`]).
    pub wal_bytes: u64,
    /// The offset the asked position resolves to.
    pub resolved: Offset,
}

/// Serves fetches and offset lookups.
#[derive(Clone, Debug)]
pub struct Reader {
    index: Arc<dyn LogRead>,
    cache: PagedCache,
}

/// What every bucket task of one fetch shares.
pub(crate) struct FetchContext {
    pub(crate) index: Arc<dyn LogRead>,
    cache: PagedCache,
    pub(crate) table: Arc<TableInfo>,
    pub(crate) projection: Vec<usize>,
    pub(crate) schema: SchemaRef,
    follow: bool,
    /// A read that falls behind retention (its next offset expired meanwhile) goes on from
    /// the earliest offset instead of ending with [`FetchError::OffsetOutOfRange`].
    reset_to_earliest: bool,
    /// Primary-key tables: rows are read as the changelog (see `crate::changelog`).
    changelog: Option<ChangelogRead>,
}

impl FetchContext {
    /// The chunk reader of this fetch: its table and projection, through the cache.
    fn chunks(&self) -> ChunkRead<'_> {
        ChunkRead {
            cache: &self.cache,
            table: &self.table,
            projection: &self.projection,
        }
    }
}

impl Reader {
    /// A reader that gets every object byte through `cache` and finds it through `index`,
    /// the log-read port of the index owner (in this process, or remote).
    pub fn new(index: Arc<dyn LogRead>, cache: PagedCache) -> Self {
        Self { index, cache }
    }

    pub(crate) fn index(&self) -> &Arc<dyn LogRead> {
        &self.index
    }

    /// Starts a fetch. Everything the request names is checked before the first row is
    /// read; errors met while reading end the stream with that error.
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchStream, FetchError> {
        let (table, projection) = table_and_projection(
            &self.index,
            &request.database,
            &request.table,
            &request.columns,
        )
        .await?;
        let partitions = partitions_to_read(&self.index, &table, &request.partitions).await?;
        let streams = streams(&table, &partitions, &request.buckets)?;
        let starts: Vec<(StreamId, Start)> = if request.start == StartPosition::Snapshot {
            if !table.is_primary_key_table() {
                return Err(FetchError::SnapshotOfLogTable {
                    table: table.qualified_name(),
                });
            }
            streams.into_iter().map(|s| (s, Start::Snapshot)).collect()
        } else {
            // Every bucket's start at once: on a cold node each is an index read from the
            // store.
            let resolved = futures::future::try_join_all(streams.iter().map(|stream| async {
                match self.resolve(*stream, request.start).await {
                    Err(FetchError::OffsetOutOfRange {
                        offset, earliest, ..
                    }) if request.reset_to_earliest && offset < earliest => Ok(earliest),
                    resolved => resolved,
                }
            }))
            .await?;
            let offsets = resolved.into_iter().map(Start::Offset);
            streams.into_iter().zip(offsets).collect()
        };
        let (schema, changelog) = if table.is_primary_key_table() {
            (
                changelog_read_schema(&table.descriptor.schema, &projection),
                Some(ChangelogRead {
                    omit_update_before: request.omit_update_before,
                }),
            )
        } else {
            (read_schema(&table.descriptor.schema, &projection), None)
        };
        let context = Arc::new(FetchContext {
            index: self.index.clone(),
            cache: self.cache.clone(),
            table,
            projection,
            schema,
            follow: request.follow,
            reset_to_earliest: request.reset_to_earliest,
            changelog,
        });
        let (sender, receiver) = mpsc::channel(FETCH_CHANNEL_DEPTH);
        if request.follow {
            for (stream, start) in starts {
                let (context, sender) = (context.clone(), sender.clone());
                tokio::spawn(async move { read_stream(&context, stream, start, &sender).await });
            }
            // A follow of every partition reads the partitions created after it started too.
            if request.partitions.is_empty() && !context.table.descriptor.partition_key.is_empty() {
                let (reader, buckets) = (self.clone(), request.buckets.clone());
                tokio::spawn(async move {
                    reader
                        .follow_new_partitions(context, partitions, buckets, sender)
                        .await
                });
            }
        } else {
            // Buckets interleave in the output; each bucket's rows stay in offset order.
            tokio::spawn(async move {
                use futures::StreamExt;
                futures::stream::iter(starts)
                    .map(|(stream, start)| {
                        let (context, sender) = (context.clone(), sender.clone());
                        async move { read_stream(&context, stream, start, &sender).await }
                    })
                    .buffer_unordered(FETCH_BUCKETS_IN_FLIGHT)
                    // A bucket that failed or found the receiver gone ends the fetch.
                    .take_while(|open| std::future::ready(*open))
                    .for_each(|_| std::future::ready(()))
                    .await;
            });
        }
        Ok(Box::pin(limit_rows(
            ReceiverStream::new(receiver),
            request.limit,
        )))
    }

    /// Reads, from their earliest offset, the partitions of the table of `context` created
    /// after a follow listed `known`: the table is listed again every
    /// [`PARTITION_LISTING_INTERVAL`] until the follow ends.
    async fn follow_new_partitions(
        &self,
        context: Arc<FetchContext>,
        known: Vec<PartitionId>,
        buckets: Vec<u32>,
        sender: mpsc::Sender<Result<FetchedBatch, FetchError>>,
    ) {
        let mut known: std::collections::BTreeSet<PartitionId> = known.into_iter().collect();
        let (database, name) = (&context.table.database, &context.table.name);
        loop {
            tokio::select! {
                _ = sender.closed() => return,
                _ = tokio::time::sleep(PARTITION_LISTING_INTERVAL) => {}
            }
            let table = match self.index.table(database, name).await {
                Ok(table) => table,
                Err(error) => {
                    let _ = sender.send(Err(error.into())).await;
                    return;
                }
            };
            let new: Vec<PartitionId> = table
                .partitions
                .iter()
                .map(|partition| partition.id)
                .filter(|id| !known.contains(id))
                .collect();
            let started = async {
                for stream in streams(&table, &new, &buckets)? {
                    let start = self.resolve(stream, StartPosition::Earliest).await?;
                    let (context, sender) = (context.clone(), sender.clone());
                    tokio::spawn(async move {
                        read_stream(&context, stream, Start::Offset(start), &sender).await
                    });
                }
                Ok::<(), FetchError>(())
            };
            if let Err(error) = started.await {
                let _ = sender.send(Err(error)).await;
                return;
            }
            known.extend(new);
        }
    }

    /// Earliest, latest and resolved offsets of the asked buckets (of the asked partitions:
    /// names, empty for all).
    pub async fn list_offsets(
        &self,
        database: &str,
        table: &str,
        partitions: &[String],
        buckets: &[u32],
        position: StartPosition,
    ) -> Result<Vec<BucketOffsets>, FetchError> {
        let table = self.index.table(database, table).await?;
        let partitions = partitions_to_read(&self.index, &table, partitions).await?;
        let mut out = Vec::new();
        for stream in streams(&table, &partitions, buckets)? {
            let tail = self.index.tail(stream).await?;
            out.push(BucketOffsets {
                partition: stream.partition,
                bucket: stream.bucket,
                earliest: tail.earliest_offset,
                latest: tail.next_offset,
                wal_bytes: tail.wal_bytes,
                resolved: self.resolve(stream, position).await?,
            });
        }
        Ok(out)
    }

    async fn resolve(&self, stream: StreamId, start: StartPosition) -> Result<Offset, FetchError> {
        let tail = self.index.tail(stream).await?;
        match start {
            StartPosition::Earliest => Ok(tail.earliest_offset),
            StartPosition::Latest => Ok(tail.next_offset),
            StartPosition::Offset(offset) => {
                if offset < tail.earliest_offset || offset > tail.next_offset {
                    return Err(FetchError::OffsetOutOfRange {
                        stream,
                        offset,
                        earliest: tail.earliest_offset,
                        latest: tail.next_offset,
                    });
                }
                Ok(offset)
            }
            StartPosition::Snapshot => Err(FetchError::SnapshotIsNotAnOffset { stream }),
            StartPosition::Timestamp(ts) => {
                // The time index is trimmed with the chunks the lake watermark covers, so rows
                // below it are found in the lake. The time index is read first: a lake commit
                // that trims it afterwards has put those rows in the lake by the time the lake
                // is looked at.
                let from_wal = self.index.offset_for_timestamp(stream, ts).await?;
                let from_lake = lake::offset_for_timestamp(
                    &self.index,
                    &self.cache,
                    stream,
                    ts,
                    tail.earliest_offset,
                )
                .await?;
                Ok(from_lake.map_or(from_wal, |offset| offset.min(from_wal)))
            }
        }
    }
}

/// The table `database.name` and the positions of `columns` in it. A column the table (as this
/// process has it) lacks may have just been added or renamed, the catalog push not here yet:
/// the owner is asked for the table before the column is refused.
pub(crate) async fn table_and_projection(
    index: &Arc<dyn LogRead>,
    database: &str,
    name: &str,
    columns: &[String],
) -> Result<(Arc<TableInfo>, Vec<usize>), FetchError> {
    let table = index.table(database, name).await?;
    match projection(&table, columns) {
        Err(FetchError::ColumnNotFound { .. }) => {
            let table = index.table_from_owner(database, name).await?;
            let projection = projection(&table, columns)?;
            Ok((table, projection))
        }
        found => Ok((table, found?)),
    }
}

pub(crate) fn projection(table: &TableInfo, columns: &[String]) -> Result<Vec<usize>, FetchError> {
    let schema = &table.descriptor.schema;
    if columns.is_empty() {
        return Ok((0..schema.fields().len()).collect());
    }
    let mut indices = Vec::with_capacity(columns.len());
    for column in columns {
        let index = schema
            .index_of(column)
            .map_err(|_| FetchError::ColumnNotFound {
                table: table.qualified_name(),
                column: column.clone(),
            })?;
        if indices.contains(&index) {
            return Err(FetchError::DuplicateColumn {
                table: table.qualified_name(),
                column: column.clone(),
            });
        }
        indices.push(index);
    }
    Ok(indices)
}

/// The partitions a read of `names` (empty: all) covers: a partition an acked append just
/// created may not have reached this process's catalog yet, so a listing of a partitioned
/// table asks the owner (past any cache). Only its partitions are taken: the read decodes
/// with `table`, which its projection was made for.
pub(crate) async fn partitions_to_read(
    index: &Arc<dyn LogRead>,
    table: &TableInfo,
    names: &[String],
) -> Result<Vec<PartitionId>, FetchError> {
    if table.descriptor.partition_key.is_empty() {
        if !names.is_empty() {
            return Err(FetchError::NotPartitioned {
                table: table.qualified_name(),
            });
        }
        return Ok(vec![UNPARTITIONED]);
    }
    let find = |table: &TableInfo, name: &str| {
        table
            .partitions
            .iter()
            .find(|partition| partition.name() == name)
            .map(|partition| partition.id)
    };
    let complete = !names.is_empty() && names.iter().all(|name| find(table, name).is_some());
    let owners;
    let listed = match complete {
        true => table,
        false => {
            owners = index.table_from_owner(&table.database, &table.name).await?;
            owners.as_ref()
        }
    };
    if names.is_empty() {
        return Ok(listed
            .partitions
            .iter()
            .map(|partition| partition.id)
            .collect());
    }
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let id = find(listed, name).ok_or_else(|| FetchError::PartitionNotFound {
            table: table.qualified_name(),
            partition: name.clone(),
        })?;
        // Each stream is read by a task of its own: a repeated partition would multiply work.
        if ids.contains(&id) {
            return Err(FetchError::DuplicatePartition {
                table: table.qualified_name(),
                partition: name.clone(),
            });
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The streams of `buckets` (empty: all) of each of `partitions`.
fn streams(
    table: &TableInfo,
    partitions: &[PartitionId],
    buckets: &[u32],
) -> Result<Vec<StreamId>, FetchError> {
    let buckets = checked_buckets(table, buckets)?;
    Ok(partitions
        .iter()
        .flat_map(|&partition| {
            buckets
                .iter()
                .map(move |&bucket| StreamId::new(table.id, partition, Bucket(bucket)))
        })
        .collect())
}

/// `buckets`, each a bucket of the table and listed once; all of them when empty.
fn checked_buckets(table: &TableInfo, buckets: &[u32]) -> Result<Vec<u32>, FetchError> {
    let bucket_count = table.descriptor.bucket_count;
    if buckets.is_empty() {
        return Ok((0..bucket_count).collect());
    }
    // Each listed bucket is read by a task of its own: a repeated bucket would multiply one
    // request's work, so the list holds each bucket at most once (at most bucket_count).
    let mut seen = vec![false; bucket_count as usize];
    buckets
        .iter()
        .map(|&bucket| {
            let Some(seen) = seen.get_mut(bucket as usize) else {
                return Err(FetchError::BucketNotFound {
                    table: table.qualified_name(),
                    bucket,
                    bucket_count,
                });
            };
            if std::mem::replace(seen, true) {
                return Err(FetchError::DuplicateBucket {
                    table: table.qualified_name(),
                    bucket,
                });
            }
            Ok(bucket)
        })
        .collect()
}

/// Where one bucket's read starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    Offset(Offset),
    /// The current rows, then the changelog from the offset they are as of.
    Snapshot,
}

/// Reads one stream into `sender`. Returns false when the fetch ended (receiver gone or an
/// error was sent), true when a non-following read reached the tail.
async fn read_stream(
    context: &FetchContext,
    stream: StreamId,
    start: Start,
    sender: &mpsc::Sender<Result<FetchedBatch, FetchError>>,
) -> bool {
    let read = async {
        let start = match start {
            Start::Offset(offset) => offset,
            Start::Snapshot => match snapshot::read_snapshot(context, stream, sender).await? {
                Reached::At(offset) if context.follow => offset,
                // Without follow, the snapshot is the whole read.
                Reached::At(_) => return Ok(true),
                Reached::Closed => return Ok(false),
            },
        };
        read_stream_inner(context, stream, start, sender).await
    };
    match read.await {
        Ok(open) => open,
        Err(error) => {
            let _ = sender.send(Err(error)).await;
            false
        }
    }
}

/// Where one part of a bucket's read stopped.
enum Reached {
    /// Every row before this offset was sent.
    At(Offset),
    /// The receiver is gone.
    Closed,
}

async fn read_stream_inner(
    context: &FetchContext,
    stream: StreamId,
    start: Offset,
    sender: &mpsc::Sender<Result<FetchedBatch, FetchError>>,
) -> Result<bool, FetchError> {
    let mut tails = context.index.subscribe(stream).await?;
    let mut next = start;
    loop {
        let tail: StreamTail = *tails.borrow_and_update();
        while next < tail.next_offset {
            // A primary-key table's lake holds its current rows, not its changelog: the
            // changelog is read from the WAL at every offset (tiering trims none of its
            // chunks).
            let watermark = match context.changelog {
                Some(_) => Offset(0),
                None => context.index.lake_watermark(stream).await?.offset,
            };
            let reached = if next < watermark {
                lake::read_lake(context, stream, next, watermark, &tail, sender).await
            } else {
                read_wal(context, stream, next, &tail, sender).await
            };
            match reached {
                Ok(Reached::At(reached)) => next = reached,
                Ok(Reached::Closed) => return Ok(false),
                // Retention expired the next rows while this read was behind.
                Err(FetchError::OffsetOutOfRange {
                    offset, earliest, ..
                }) if context.reset_to_earliest && offset < earliest => next = earliest,
                Err(error) => return Err(error),
            }
        }
        if !context.follow {
            return Ok(true);
        }
        tokio::select! {
            changed = tails.changed() => {
                if changed.is_err() {
                    return Err(FetchError::Index(context.index.stopped().unwrap_or(
                        inlet_index::IndexError::Stopped { reason: "index closed".to_owned() },
                    )));
                }
            }
            _ = sender.closed() => return Ok(false),
        }
    }
}

/// Reads the chunks of `stream` from `from` up to `tail` into `sender`. Stops early where the
/// chunk holding the next offset is gone because a lake commit tiered it meanwhile: the
/// caller continues from the lake.
///
/// Reads ahead: while one chunk is sliced and sent, the reads of the next ones (up to
/// [`READ_AHEAD_CHUNKS`] chunks and [`READ_AHEAD_BYTES`]) are under way, so their GETs wait
/// out the store's latency together instead of one after another. Whatever finishes first,
/// chunks are sent in offset order, and an error (a failed read, an index error, a gap) ends
/// the read where it stands in that order, after every row before it was sent.
async fn read_wal(
    context: &FetchContext,
    stream: StreamId,
    from: Offset,
    tail: &StreamTail,
    sender: &mpsc::Sender<Result<FetchedBatch, FetchError>>,
) -> Result<Reached, FetchError> {
    use futures::StreamExt;

    let plan = WalPlan {
        cursor: ChunkCursor::new(context.index.clone(), stream, from),
        next: from,
        end: tail.next_offset,
        budget: Arc::new(tokio::sync::Semaphore::new(READ_AHEAD_BYTES as usize)),
    };
    let reads = futures::stream::unfold(Some(plan), WalPlan::next)
        .map(|planned| read_planned(context, stream, planned))
        .buffered(READ_AHEAD_CHUNKS);
    let mut reads = std::pin::pin!(reads);
    let mut next = from;
    while let Some(read) = reads.next().await {
        let (entry, batch, _budget) = match read? {
            Planned::Chunk(entry, (batch, budget)) => (entry, batch, budget),
            Planned::Missing(found) => {
                if lake::tiered(&context.index, stream, next).await? {
                    return Ok(Reached::At(next));
                }
                if let Some(earliest) = expired(&context.index, stream, next).await? {
                    return Err(FetchError::OffsetOutOfRange {
                        stream,
                        offset: next,
                        earliest: earliest.earliest_offset,
                        latest: earliest.next_offset,
                    });
                }
                return Err(FetchError::Corrupt {
                    stream,
                    message: match found {
                        Some(entry) => format!(
                            "offset gap: expected a chunk holding {next}, found one starting \
                             at {}",
                            entry.base_offset
                        ),
                        None => format!(
                            "chunk index ends before offset {next}, but the tail is {}",
                            tail.next_offset
                        ),
                    },
                });
            }
        };
        let skip = (next.0 - entry.base_offset.0) as usize;
        if let Some(changelog) = &context.changelog {
            let rows = changelog
                .rows(context, stream, &entry, &batch, skip)
                .await?;
            let mut position = 0;
            while position < rows.num_rows() {
                let rest = rows.slice(position, rows.num_rows() - position);
                let len = changelog::cut(&rest, MAX_FETCH_BATCH_ROWS);
                let fetched = FetchedBatch {
                    partition: stream.partition,
                    bucket: stream.bucket,
                    batch: rest.slice(0, len),
                    high_watermark: tail.next_offset,
                    snapshot: SnapshotPart::None,
                };
                if sender.send(Ok(fetched)).await.is_err() {
                    return Ok(Reached::Closed);
                }
                position += len;
            }
            next = entry.end_offset();
            continue;
        }
        let mut position = skip;
        while position < batch.num_rows() {
            let len = (batch.num_rows() - position).min(MAX_FETCH_BATCH_ROWS);
            let piece = with_system_columns(
                &context.schema,
                stream,
                &batch.slice(position, len),
                Offset(entry.base_offset.0 + position as u64),
                entry.commit_ts,
            )?;
            let fetched = FetchedBatch {
                partition: stream.partition,
                bucket: stream.bucket,
                batch: piece,
                high_watermark: tail.next_offset,
                snapshot: SnapshotPart::None,
            };
            if sender.send(Ok(fetched)).await.is_err() {
                return Ok(Reached::Closed);
            }
            position += len;
        }
        next = entry.end_offset();
    }
    Ok(Reached::At(next))
}

/// Most chunks of one bucket's read whose reads run ahead of the chunk being sent. A chunk
/// read waits out the store's first-byte latency (10-50 ms on S3) once for a whole chunk,
/// twice for a pruned one (footer, then columns), whatever its size, so the chunks in flight
/// needed are throughput × round trip / chunk size: with the writer's 8 MiB objects shared by
/// several buckets, chunks are often 1-2 MB, and 16 of them cover a 50 ms round trip at
/// 300-600 MB/s. More would mostly add concurrent GETs per bucket.
const READ_AHEAD_CHUNKS: usize = 16;

/// How often a read that found its next chunk gone re-reads the tail, and how many times,
/// before it reports the gap as corruption rather than expiry (see [`expired`]). The window
/// is one durable index write reaching the reader's tails; 10 s is far longer.
const EXPIRY_POLL: std::time::Duration = std::time::Duration::from_millis(10);
const EXPIRY_POLLS: u32 = 1000;

/// Most bytes of the chunks of one bucket's read that are being read or waiting to be sent,
/// the one being sent included, counted as whole chunks (a pruned read fetches less), so
/// memory stays bounded whatever the chunk sizes; a chunk larger than this is read alone. It
/// must cover bandwidth × round trip to keep the read busy: 32 MiB at ~50 ms per GET is ~600
/// MB/s per bucket.
const READ_AHEAD_BYTES: u32 = 32 * 1024 * 1024;

/// Whether retention expired `next`, whose chunk the chunk index no longer holds: the tail
/// (re-read until its earliest offset passes `next`, for a reader whose chunk index is
/// ahead of its tails) then starts above it. `None` if it does not within
/// [`EXPIRY_POLLS`]: the chunk index is missing offsets it should hold.
async fn expired(
    index: &Arc<dyn LogRead>,
    stream: StreamId,
    next: Offset,
) -> Result<Option<StreamTail>, FetchError> {
    for poll in 0..=EXPIRY_POLLS {
        if poll > 0 {
            tokio::time::sleep(EXPIRY_POLL).await;
        }
        if let Some(error) = index.stopped() {
            return Err(error.into());
        }
        let tail = index.tail(stream).await?;
        if next < tail.earliest_offset {
            return Ok(Some(tail));
        }
    }
    Ok(None)
}

/// What a WAL read finds for its next offset: the chunk holding it, with `T` (its share of
/// the read-ahead budget, then its rows too once read), or no such chunk (then the chunk
/// after the gap, if any).
enum Planned<T> {
    Chunk(inlet_index::ChunkEntry, T),
    Missing(Option<inlet_index::ChunkEntry>),
}

/// Where a WAL read's planning stands: the chunks holding `next..end`, from the index.
struct WalPlan {
    cursor: ChunkCursor,
    next: Offset,
    end: Offset,
    /// Bytes of the chunks planned and not yet sent may not exceed [`READ_AHEAD_BYTES`].
    budget: Arc<tokio::sync::Semaphore>,
}

impl WalPlan {
    /// The chunk holding the next offset, once its bytes fit in the budget; then the plan
    /// for the offsets after it. Ends at `end`, and after a gap or an error.
    async fn next(
        plan: Option<Self>,
    ) -> Option<(
        Result<Planned<tokio::sync::OwnedSemaphorePermit>, FetchError>,
        Option<Self>,
    )> {
        let mut plan = plan?;
        if plan.next >= plan.end {
            return None;
        }
        let entry = match plan.cursor.next().await {
            Ok(Some(entry)) if entry.base_offset <= plan.next => entry,
            Ok(found) => return Some((Ok(Planned::Missing(found)), None)),
            Err(error) => return Some((Err(error.into()), None)),
        };
        let bytes = entry.chunk_len.min(u64::from(READ_AHEAD_BYTES)) as u32;
        let permit = plan
            .budget
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the budget is never closed");
        plan.next = entry.end_offset();
        Some((Ok(Planned::Chunk(entry, permit)), Some(plan)))
    }
}

/// Reads a planned chunk, keeping its share of the budget with its rows.
async fn read_planned(
    context: &FetchContext,
    stream: StreamId,
    planned: Result<Planned<tokio::sync::OwnedSemaphorePermit>, FetchError>,
) -> Result<Planned<(RecordBatch, tokio::sync::OwnedSemaphorePermit)>, FetchError> {
    Ok(match planned? {
        Planned::Chunk(entry, permit) => {
            let batch = match context.chunks().read(stream, &entry).await {
                Err(ChunkError::NewerSchema { .. }) => {
                    read_newer_schema(context, stream, &entry).await?
                }
                read => read?,
            };
            Planned::Chunk(entry, (batch, permit))
        }
        Planned::Missing(found) => Planned::Missing(found),
    })
}

/// Reads a chunk written under a schema newer than the fetch's (the table was altered after
/// the fetch started, as a follower meets): its schema comes from the table as it is now,
/// and its rows keep the columns and types the fetch started with.
async fn read_newer_schema(
    context: &FetchContext,
    stream: StreamId,
    entry: &ChunkEntry,
) -> Result<RecordBatch, FetchError> {
    let table = &context.table;
    let now = context.index.table(&table.database, &table.name).await?;
    let Some(schema) = now
        .schema_of(entry.schema_id)
        .filter(|_| now.id == table.id)
    else {
        // A replica whose catalog has not caught up yet, or a table of the same name.
        return Err(FetchError::SchemaChanged {
            stream,
            message: format!(
                "chunk at offset {} has schema {}, which the catalog does not hold yet",
                entry.base_offset, entry.schema_id.0
            ),
        });
    };
    Ok(context.chunks().read_under(stream, entry, schema).await?)
}

/// Ends the stream after `limit` rows, slicing the last batch. Once the limit is reached
/// the inner stream is not polled again, so a following fetch ends at once.
fn limit_rows(
    inner: impl Stream<Item = Result<FetchedBatch, FetchError>> + Unpin,
    limit: Option<u64>,
) -> impl Stream<Item = Result<FetchedBatch, FetchError>> {
    use futures::StreamExt;
    let remaining = limit.unwrap_or(u64::MAX);
    futures::stream::unfold((inner, remaining), |(mut inner, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let item = inner.next().await?;
        let mut left = remaining;
        let item = item.map(|mut fetched| {
            let rows = fetched.batch.num_rows() as u64;
            if rows > left {
                // A changelog's update is never cut between its -U and its +U: the limit
                // may be passed by that one row.
                let len = changelog::cut(&fetched.batch, left as usize);
                fetched.batch = fetched.batch.slice(0, len);
            }
            left -= rows.min(left);
            fetched
        });
        if item.is_err() {
            left = 0;
        }
        Some((item, (inner, left)))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use inlet_cache::CacheOptions;
    use inlet_core::clock::Env;
    use inlet_core::table::TableDescriptor;
    use inlet_index::{Index, IndexOptions, LakeCommit, LakeFileEntry};
    use inlet_writer::{Writer, WriterOptions};
    use slatedb::object_store::ObjectStore;
    use slatedb::object_store::memory::InMemory;

    use super::*;

    const ROWS: i64 = 10;

    /// Reads `from` to the tail with [`read_wal`]; returns where it stopped and the offsets
    /// it sent.
    async fn wal(context: &FetchContext, stream: StreamId, from: u64) -> (Offset, Vec<i64>) {
        let tail = context.index.tail(stream).await.expect("tail");
        let (sender, mut receiver) = mpsc::channel(16);
        let reached = read_wal(context, stream, Offset(from), &tail, &sender)
            .await
            .expect("a WAL read does not fail");
        drop(sender);
        let mut offsets = Vec::new();
        while let Some(fetched) = receiver.recv().await {
            let batch = fetched.expect("batch").batch;
            let column = batch.column_by_name("_offset").expect("_offset");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("i64");
            offsets.extend(column.values().iter());
        }
        match reached {
            Reached::At(offset) => (offset, offsets),
            Reached::Closed => panic!("the receiver is open"),
        }
    }

    /// The chunk a WAL read scans for can be gone because a lake commit tiered it after the
    /// read looked at the watermark: the read hands the offset back (to be read from the
    /// lake) instead of reporting a gap as corruption. Then retention expires the tiered
    /// rows, and a fetch from below the earliest offset fails or, asked to, starts there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wal_read_of_a_tiered_chunk_goes_back_to_the_lake() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let index = Index::open(store.clone(), IndexOptions::default(), Env::system())
            .await
            .expect("index opens");
        index
            .create_database("db", "", false)
            .await
            .expect("database");
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let descriptor = TableDescriptor {
            schema: schema.clone(),
            bucket_count: 1,
            bucket_key: vec![],
            partition_key: vec![],
            primary_key: vec![],
            comment: String::new(),
            options: Default::default(),
        };
        index
            .create_table("db", "t", descriptor, false)
            .await
            .expect("table");
        let cache = PagedCache::open(store.clone(), CacheOptions::default())
            .await
            .expect("cache opens");
        let options = WriterOptions {
            linger: Duration::from_millis(1),
            ..WriterOptions::default()
        };
        let writer = Writer::start(
            Arc::new(index.clone()),
            store,
            cache.clone(),
            options,
            Env::system(),
        );
        for chunk in 0..3 {
            let values = Int64Array::from_iter_values(chunk * ROWS..(chunk + 1) * ROWS);
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).expect("batch");
            writer
                .append("db", "t", &[batch], None)
                .await
                .expect("append acked");
        }
        let table = index.table("db", "t").expect("table");
        let stream = StreamId::new(table.id, PartitionId(0), Bucket(0));
        let context = FetchContext {
            index: Arc::new(index.clone()),
            cache,
            schema: read_schema(&table.descriptor.schema, &[0]),
            table: table.clone(),
            projection: vec![0],
            follow: false,
            reset_to_earliest: false,
            changelog: None,
        };
        assert_eq!(
            wal(&context, stream, 5).await,
            (Offset(30), (5..30).collect())
        );

        // Tier the first two chunks (the file need not exist: the WAL read never opens it).
        let lease = index
            .acquire_lake_lease(table.id, 1, Duration::from_secs(600))
            .await
            .expect("lease");
        let file = LakeFileEntry {
            path: "lake/db/t/data/_bucket=0/f.parquet".to_owned(),
            base_offset: Offset(0),
            row_count: 2 * ROWS as u64,
            file_size: 1,
            snapshot_id: 1,
            min_ts: TimestampMicros(0),
            max_ts: TimestampMicros(0),
            schema_id: None,
        };
        let committed = index
            .commit_lake(LakeCommit {
                table: table.id,
                lease,
                expected_metadata_location: None,
                metadata_location: "memory://t/lake/db/t/metadata/00001.metadata.json".to_owned(),
                snapshot_id: Some(1),
                watermarks: BTreeMap::from([(Bucket(0), Offset(2 * ROWS as u64))]),
                added_files: vec![(Bucket(0), file)],
                removed_files: vec![],
                earliest: BTreeMap::new(),
                key_rows: Vec::new(),
            })
            .await
            .expect("lake commit");
        assert_eq!(committed.trimmed_chunks, 2);

        // Below the watermark: nothing read, the offset handed back.
        assert_eq!(wal(&context, stream, 5).await, (Offset(5), vec![]));
        assert_eq!(wal(&context, stream, 0).await, (Offset(0), vec![]));
        // From the watermark on: the WAL.
        assert_eq!(
            wal(&context, stream, 20).await,
            (Offset(30), (20..30).collect())
        );

        // Retention expires the tiered rows: a fetch from below the earliest offset fails
        // naming it, unless it asked to start at the earliest instead.
        let lease = index
            .acquire_lake_lease(table.id, 1, Duration::from_secs(600))
            .await
            .expect("lease");
        index
            .commit_lake(LakeCommit {
                table: table.id,
                lease,
                expected_metadata_location: Some(
                    "memory://t/lake/db/t/metadata/00001.metadata.json".to_owned(),
                ),
                metadata_location: "memory://t/lake/db/t/metadata/00002.metadata.json".to_owned(),
                snapshot_id: Some(2),
                watermarks: BTreeMap::new(),
                added_files: vec![],
                removed_files: vec![(Bucket(0), Offset(2 * ROWS as u64))],
                earliest: BTreeMap::from([(Bucket(0), Offset(2 * ROWS as u64))]),
                key_rows: Vec::new(),
            })
            .await
            .expect("retention commit");
        let reader = Reader::new(Arc::new(index.clone()), context.cache.clone());
        let request = FetchRequest {
            database: "db".to_owned(),
            table: "t".to_owned(),
            partitions: Vec::new(),
            buckets: vec![],
            start: StartPosition::Offset(Offset(5)),
            columns: vec![],
            follow: false,
            limit: None,
            omit_update_before: false,
            reset_to_earliest: false,
        };
        let refused = match reader.fetch(request.clone()).await {
            Err(error) => error,
            Ok(_) => panic!("a fetch below the earliest offset is refused"),
        };
        assert!(
            matches!(
                refused,
                FetchError::OffsetOutOfRange {
                    offset: Offset(5),
                    earliest: Offset(20),
                    ..
                }
            ),
            "{refused}"
        );
        let mut reset = reader
            .fetch(FetchRequest {
                reset_to_earliest: true,
                ..request
            })
            .await
            .expect("a reset fetch starts at the earliest offset");
        let mut offsets: Vec<i64> = Vec::new();
        while let Some(fetched) = futures::StreamExt::next(&mut reset).await {
            let batch = fetched.expect("batch").batch;
            let column = batch.column_by_name("_offset").expect("_offset");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("i64");
            offsets.extend(column.values().iter());
        }
        assert_eq!(offsets, (20..30).collect::<Vec<i64>>());
        writer.close().await;
        index.close().await.expect("close");
    }

    /// A clock the retention test moves by hand.
    #[derive(Debug)]
    struct HandClock(std::sync::atomic::AtomicI64);

    impl inlet_core::clock::Clock for HandClock {
        fn now(&self) -> inlet_core::ids::TimestampMicros {
            inlet_core::ids::TimestampMicros(self.0.load(std::sync::atomic::Ordering::SeqCst))
        }
    }

    /// A read whose next rows WAL retention expired while it was behind: it ends with "out of
    /// range, earliest is N" (naming the offset it needed), or, when the fetch asked to reset,
    /// goes on from the earliest offset without a gap in what it sends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_behind_wal_retention_is_out_of_range_or_resets() {
        let clock = Arc::new(HandClock(std::sync::atomic::AtomicI64::new(1_000_000_000)));
        let env = Env {
            clock: clock.clone(),
            ..Env::system()
        };
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let index = Index::open(store.clone(), IndexOptions::default(), env.clone())
            .await
            .expect("index opens");
        index
            .create_database("db", "", false)
            .await
            .expect("database");
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let descriptor = TableDescriptor {
            schema: schema.clone(),
            bucket_count: 1,
            bucket_key: vec![],
            partition_key: vec![],
            primary_key: vec![],
            comment: String::new(),
            options: BTreeMap::from([("retention".to_owned(), "1h".to_owned())]),
        };
        index
            .create_table("db", "t", descriptor, false)
            .await
            .expect("a table that is not tiered takes `retention`");
        let cache = PagedCache::open(store.clone(), CacheOptions::default())
            .await
            .expect("cache opens");
        let options = WriterOptions {
            linger: Duration::from_millis(1),
            ..WriterOptions::default()
        };
        let writer = Writer::start(
            Arc::new(index.clone()),
            store,
            cache.clone(),
            options,
            env.clone(),
        );
        let minutes = |m: i64| {
            clock
                .0
                .fetch_add(m * 60_000_000, std::sync::atomic::Ordering::SeqCst)
        };
        // Chunks [0, 10) and [10, 20) at t0, [20, 30) at t0 + 50 min.
        for chunk in 0..3 {
            if chunk == 2 {
                minutes(50);
            }
            let values = Int64Array::from_iter_values(chunk * ROWS..(chunk + 1) * ROWS);
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).expect("batch");
            writer
                .append("db", "t", &[batch], None)
                .await
                .expect("append acked");
        }
        let table = index.table("db", "t").expect("table");
        let stream = StreamId::new(table.id, PartitionId(0), Bucket(0));
        let mut context = FetchContext {
            index: Arc::new(index.clone()),
            cache,
            schema: read_schema(&table.descriptor.schema, &[0]),
            table: table.clone(),
            projection: vec![0],
            follow: false,
            reset_to_earliest: false,
            changelog: None,
        };
        // At t0 + 70 min the two chunks of t0 are older than the hour the table keeps.
        minutes(20);
        let expired = index.expire_wal(table.id).await.expect("expiry");
        assert_eq!((expired.chunks, expired.more), (2, false), "{expired:?}");
        let tail = index.tail(stream).await.expect("tail");
        assert_eq!(tail.earliest_offset, Offset(20));

        let (sender, mut receiver) = mpsc::channel(16);
        match read_wal(&context, stream, Offset(5), &tail, &sender).await {
            Err(FetchError::OffsetOutOfRange {
                offset, earliest, ..
            }) => assert_eq!((offset, earliest), (Offset(5), Offset(20))),
            Err(other) => panic!("expected out of range, got {other}"),
            Ok(_) => panic!("a read of expired offsets must not succeed"),
        }
        drop(sender);
        assert!(receiver.recv().await.is_none(), "nothing was sent");

        context.reset_to_earliest = true;
        let (sender, mut receiver) = mpsc::channel(16);
        let open = read_stream_inner(&context, stream, Offset(5), &sender)
            .await
            .expect("a reset read goes on");
        assert!(open);
        drop(sender);
        let mut offsets: Vec<i64> = Vec::new();
        while let Some(fetched) = receiver.recv().await {
            let batch = fetched.expect("batch").batch;
            let column = batch.column_by_name("_offset").expect("_offset");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("i64");
            offsets.extend(column.values().iter());
        }
        assert_eq!(offsets, (20..30).collect::<Vec<i64>>());
        writer.close().await;
        index.close().await.expect("close");
    }
}
