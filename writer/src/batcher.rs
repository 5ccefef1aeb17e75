//! The [`Writer`]: buffers appends per stream, flushes them as one WAL object per linger
//! interval (or size threshold), and acks each append once its rows are committed.
//!
//! Three stages, connected by bounded queues:
//! 1. `append` conforms and routes rows, takes buffer space (waiting when the writer holds
//!    `max_buffered_bytes`), and parks the caller on a reply channel;
//! 2. the flusher takes everything buffered at linger time and spawns its upload, queueing
//!    uploads in flush order (at most `max_inflight_uploads`);
//! 3. the committer takes uploads in that same order and submits each to the index, so rows
//!    of one stream keep their order even with several uploads in flight. When a commit is
//!    durable the parked appends get their offsets and their buffer space is released.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::{RecordBatch, UInt32Array};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;
use inlet_cache::PagedCache;
use inlet_core::bucket::bucket_rows;
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, PartitionId, SchemaId, StreamId, TimestampMicros};
use inlet_core::limits::MAX_APPEND_BYTES;
use inlet_core::partition::{UNPARTITIONED, partition_rows};
use inlet_core::pk::merge::MergeEngine;
use inlet_core::table::TableInfo;
use inlet_index::{ChunkRejected, CommitLog, CommitReply, IndexError, ProducerRef};
use slatedb::object_store::ObjectStore;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::AppendError;
use crate::keyed::{WriteOp, conform_delete, key_writes, partial_columns};
use crate::options::WriterOptions;
use crate::upload::{StreamChunk, upload};
use crate::validate::{batch_bytes, conform};
use inlet_core::pk::ops::PkWrite;

/// The offsets one append got in one bucket: `base_offset .. base_offset + row_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketAppend {
    pub partition: PartitionId,
    pub bucket: Bucket,
    pub base_offset: Offset,
    pub row_count: u64,
    pub commit_ts: TimestampMicros,
}

type AppendReply = Result<Vec<BucketAppend>, AppendError>;

/// Rows of one stream waiting for the next flush.
struct StreamBuffer {
    schema_id: SchemaId,
    batches: Vec<RecordBatch>,
    /// Primary-key tables: what the index owner applies for each buffered row, in order.
    key_writes: Option<Vec<PkWrite>>,
    rows: u64,
    first_append: TimestampMicros,
    last_append: TimestampMicros,
}

/// Which chunk of a flush rows go to: one per stream, plus one of its own for each
/// idempotent append, so the index owner can drop a retried append without touching others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChunkKey {
    pub(crate) stream: StreamId,
    pub(crate) producer: Option<ProducerRef>,
}

/// A parked append: where its rows sit in the flush, and the buffer space it holds.
struct Waiter {
    reply: oneshot::Sender<AppendReply>,
    /// (chunk, first row within the chunk, row count)
    parts: Vec<(ChunkKey, u64, u64)>,
    _memory: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Pending {
    streams: BTreeMap<ChunkKey, StreamBuffer>,
    waiters: Vec<Waiter>,
    bytes: usize,
    closed: bool,
}

/// A flush whose upload is running.
struct InFlight {
    upload: JoinHandle<Result<inlet_index::CommitRequest, AppendError>>,
    waiters: Vec<Waiter>,
}

struct Inner {
    index: Arc<dyn CommitLog>,
    store: Arc<dyn ObjectStore>,
    cache: PagedCache,
    env: Env,
    options: WriterOptions,
    pending: Mutex<Pending>,
    /// Signalled when the first rows arrive in an empty buffer.
    data_ready: Notify,
    /// Signalled when the buffer passes `flush_bytes` or the writer closes.
    flush_now: Notify,
    /// Buffer space in KiB.
    memory: Arc<Semaphore>,
    round_robin: AtomicU32,
    committer: Mutex<Option<JoinHandle<()>>>,
}

/// Accepts appends for any table and turns them into committed, acknowledged rows.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

impl Writer {
    /// Starts a writer (its flusher and committer tasks) on the current runtime. Uploaded
    /// objects are put into `cache` for readers in the same process. `index` is the commit
    /// port of the index owner: in this process, or remote.
    pub fn start(
        index: Arc<dyn CommitLog>,
        store: Arc<dyn ObjectStore>,
        cache: PagedCache,
        options: WriterOptions,
        env: Env,
    ) -> Self {
        let memory = Arc::new(Semaphore::new(kib(options.max_buffered_bytes) as usize));
        let inner = Arc::new(Inner {
            index,
            store,
            cache,
            env,
            memory,
            round_robin: AtomicU32::new(0),
            pending: Mutex::new(Pending::default()),
            data_ready: Notify::new(),
            flush_now: Notify::new(),
            committer: Mutex::new(None),
            options,
        });
        let (uploads, queue) = mpsc::channel(inner.options.max_inflight_uploads.max(1));
        tokio::spawn(run_flusher(inner.clone(), uploads));
        let committer = tokio::spawn(run_committer(
            inner.index.clone(),
            queue,
            inner.options.commit_timeout,
        ));
        *inner.committer.lock().expect("committer lock poisoned") = Some(committer);
        Self { inner }
    }

    /// The live table `database.table`, as this writer's index port knows it.
    pub async fn table(&self, database: &str, table: &str) -> Result<Arc<TableInfo>, AppendError> {
        Ok(self.inner.index.table(database, table).await?)
    }

    /// Appends `batches` to `database.table`. Returns once the rows are durable in the index,
    /// with the offsets each bucket assigned. On error no row of the append is visible.
    ///
    /// With a `producer`, the append is idempotent: a retry with the same producer id and
    /// sequence number (after a lost reply, a timeout, a restart or a takeover) gets the
    /// original offsets back and appends nothing; an older sequence number is rejected.
    pub async fn append(
        &self,
        database: &str,
        table: &str,
        batches: &[RecordBatch],
        producer: Option<ProducerRef>,
    ) -> Result<Vec<BucketAppend>, AppendError> {
        self.write(database, table, WriteOp::Append, batches, producer)
            .await
    }

    /// Writes `batches` to `database.table` as `op` asks: appends to a log table, upserts
    /// or deletes (by key) to a primary-key table. Acked, idempotent and all-or-nothing as
    /// [`Writer::append`]; the offsets are the rows' offsets in the table's changelog.
    pub async fn write(
        &self,
        database: &str,
        table: &str,
        op: WriteOp,
        batches: &[RecordBatch],
        producer: Option<ProducerRef>,
    ) -> Result<Vec<BucketAppend>, AppendError> {
        // A fenced or failed index owner cannot commit: refuse before using the store.
        if let Some(error) = self.inner.index.stopped() {
            return Err(error.into());
        }
        let mut table = self.inner.index.table(database, table).await?;
        let Prepared {
            engine,
            mask,
            batch,
        } = match prepare(&table, op, batches) {
            // A column this process's table lacks (or a type wider than it has) may be an
            // ALTER whose catalog push has not arrived: the owner is asked before the batch
            // is refused.
            Err(AppendError::UnknownColumn { .. } | AppendError::SchemaMismatch { .. }) => {
                table = self
                    .inner
                    .index
                    .table_from_owner(database, &table.name)
                    .await?;
                prepare(&table, op, batches)?
            }
            prepared => prepared?,
        };
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        // A primary-key write also buffers each row's key and image until its commit.
        let bytes = batch_bytes(&batch) * if engine.is_some() { 2 } else { 1 };
        let limit = MAX_APPEND_BYTES.min(self.inner.options.max_buffered_bytes);
        if bytes > limit {
            return Err(AppendError::TooLarge { bytes, limit });
        }
        let waited = self.inner.options.overload_timeout;
        let memory = tokio::time::timeout(
            waited,
            self.inner.memory.clone().acquire_many_owned(kib(bytes)),
        )
        .await
        .map_err(|_| AppendError::Overloaded { bytes, waited })?
        .map_err(|_| AppendError::ShuttingDown)?;
        let partitioned = self.partitioned(&table, batch, op).await?;
        let mut routed = Vec::new();
        for (partition, batch) in partitioned {
            for (bucket, part) in self.route(&table, batch)? {
                let writes = engine
                    .as_ref()
                    .map(|engine| key_writes(&table, engine, op, mask.as_deref(), &part))
                    .transpose()?;
                routed.push((StreamId::new(table.id, partition, bucket), part, writes));
            }
        }
        // Deletes of keys only in partitions that do not exist change nothing.
        if routed.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, receiver) = oneshot::channel();
        self.buffer(&table, routed, producer, bytes, reply, memory)?;
        let written = receiver.await.map_err(|_| AppendError::ShuttingDown)?;
        // A partition dropped after this process's table listed it: its next append asks
        // the owner for the table, so a retry creates the partition anew.
        if let Err(AppendError::Rejected(ChunkRejected::NoSuchStream { .. })) = &written
            && !table.descriptor.partition_key.is_empty()
        {
            let _ = self
                .inner
                .index
                .table_from_owner(&table.database, &table.name)
                .await;
        }
        written
    }

    /// Splits a batch by partition, keeping row order within each; partitions the table lacks
    /// are created first (by the owner, which every node then learns the new partitions from),
    /// except for deletes: a key of a partition that does not exist has no row to delete, so
    /// its rows are left out. The partitions are looked up in the owner's table when this
    /// one lacks them; `table` (the one the batch was conformed to) stays the one its chunks
    /// are written under, even if the owner's has a newer schema by now.
    async fn partitioned(
        &self,
        table: &TableInfo,
        batch: RecordBatch,
        op: WriteOp,
    ) -> Result<Vec<(PartitionId, RecordBatch)>, AppendError> {
        let key = &table.descriptor.partition_key;
        if key.is_empty() {
            return Ok(vec![(UNPARTITIONED, batch)]);
        }
        let mut groups = partition_rows(&batch, key).map_err(|reason| AppendError::Partition {
            table: table.qualified_name(),
            reason,
        })?;
        let missing: Vec<Vec<String>> = groups
            .iter()
            .filter(|(values, _)| table.partitions.find(values).is_none())
            .map(|(values, _)| values.clone())
            .collect();
        let (database, name) = (&table.database, &table.name);
        let partitions = match (missing.is_empty(), op) {
            (true, _) => table.partitions.clone(),
            // This process's table may lag the owner's: it is asked before keys are skipped.
            (false, WriteOp::Delete) => {
                let owners = self.inner.index.table_from_owner(database, name).await?;
                owners.partitions.clone()
            }
            (false, _) => {
                let (owners, _) = self
                    .inner
                    .index
                    .add_partitions(database, name, missing)
                    .await?;
                owners.partitions.clone()
            }
        };
        if op == WriteOp::Delete {
            groups.retain(|(values, _)| partitions.find(values).is_some());
        }
        let whole = groups.len() == 1 && groups[0].1.len() == batch.num_rows();
        groups
            .into_iter()
            .map(|(values, rows)| {
                let partition = partitions.find(&values).ok_or_else(|| {
                    AppendError::Index(IndexError::Storage(format!(
                        "the owner created no partition {values:?} of table {}",
                        table.qualified_name()
                    )))
                })?;
                let part = match whole {
                    true => batch.clone(),
                    false => take_record_batch(&batch, &UInt32Array::from(rows))
                        .map_err(|e| AppendError::MalformedIpc(e.to_string()))?,
                };
                Ok((partition, part))
            })
            .collect()
    }

    /// Splits a batch by bucket, keeping row order within each bucket.
    fn route(
        &self,
        table: &TableInfo,
        batch: RecordBatch,
    ) -> Result<Vec<(Bucket, RecordBatch)>, AppendError> {
        let bucket_count = table.descriptor.bucket_count;
        let keys = table.bucket_key_indices();
        if keys.is_empty() {
            let next = self.inner.round_robin.fetch_add(1, Ordering::Relaxed);
            return Ok(vec![(Bucket(next % bucket_count), batch)]);
        }
        let buckets = bucket_rows(&batch, &keys, bucket_count);
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); bucket_count as usize];
        for (row, bucket) in buckets.iter().enumerate() {
            rows[*bucket as usize].push(row as u32);
        }
        rows.into_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(bucket, rows)| {
                let part = take_record_batch(&batch, &UInt32Array::from(rows))
                    .map_err(|e| AppendError::MalformedIpc(e.to_string()))?;
                Ok((Bucket(bucket as u32), part))
            })
            .collect()
    }

    fn buffer(
        &self,
        table: &TableInfo,
        routed: Vec<(StreamId, RecordBatch, Option<Vec<PkWrite>>)>,
        producer: Option<ProducerRef>,
        bytes: usize,
        reply: oneshot::Sender<AppendReply>,
        memory: OwnedSemaphorePermit,
    ) -> Result<(), AppendError> {
        let mut pending = self.inner.pending.lock().expect("pending lock poisoned");
        // Read under the lock so append times within a stream buffer never go backwards.
        let now = self.inner.env.clock.now();
        if pending.closed {
            return Err(AppendError::ShuttingDown);
        }
        // A copy of an idempotent append already waiting in this buffer (a retry racing
        // its original) shares the original's rows and answer instead of adding rows.
        if let Some(producer) = producer {
            let original = pending.waiters.iter().find_map(|waiter| {
                let same = waiter.parts.first()?.0;
                (same.producer == Some(producer) && same.stream.table == table.id)
                    .then(|| waiter.parts.clone())
            });
            if let Some(parts) = original {
                pending.waiters.push(Waiter {
                    reply,
                    parts,
                    _memory: memory,
                });
                return Ok(());
            }
        }
        let was_empty = pending.streams.is_empty();
        let mut parts = Vec::with_capacity(routed.len());
        for (stream, batch, writes) in routed {
            let key = ChunkKey { stream, producer };
            let buffer = pending.streams.entry(key).or_insert_with(|| StreamBuffer {
                schema_id: table.schema_id,
                batches: Vec::new(),
                key_writes: writes.as_ref().map(|_| Vec::new()),
                rows: 0,
                first_append: now,
                last_append: now,
            });
            let rows = batch.num_rows() as u64;
            parts.push((key, buffer.rows, rows));
            buffer.rows += rows;
            buffer.first_append = buffer.first_append.min(now);
            buffer.last_append = buffer.last_append.max(now);
            buffer.batches.push(batch);
            if let (Some(buffered), Some(writes)) = (&mut buffer.key_writes, writes) {
                buffered.extend(writes);
            }
        }
        pending.waiters.push(Waiter {
            reply,
            parts,
            _memory: memory,
        });
        pending.bytes += bytes;
        let full = pending.bytes >= self.inner.options.flush_bytes;
        drop(pending);
        if was_empty {
            self.inner.data_ready.notify_one();
        }
        if full {
            self.inner.flush_now.notify_one();
        }
        Ok(())
    }

    /// Flushes what is buffered, waits until every accepted append is answered, and stops.
    pub async fn close(&self) {
        self.inner
            .pending
            .lock()
            .expect("pending lock poisoned")
            .closed = true;
        self.inner.data_ready.notify_one();
        self.inner.flush_now.notify_one();
        let committer = self
            .inner
            .committer
            .lock()
            .expect("committer lock poisoned")
            .take();
        if let Some(committer) = committer {
            let _ = committer.await;
        }
    }
}

/// Takes the buffer at each linger deadline (or when full) and starts its upload.
async fn run_flusher(inner: Arc<Inner>, uploads: mpsc::Sender<InFlight>) {
    loop {
        inner.data_ready.notified().await;
        let closed = inner.pending.lock().expect("pending lock poisoned").closed;
        if !closed {
            // Biased, size trigger first: a trigger already pending was set by rows this
            // flush takes, so it is spent here; picked second it would stay stored in
            // `flush_now` and cut the next buffer's linger short. Biased also keeps tokio's
            // generator out of the choice, so the simulation replays which one won.
            tokio::select! {
                biased;
                _ = inner.flush_now.notified() => {}
                _ = tokio::time::sleep(inner.options.linger) => {}
            }
        }
        // Take the buffer but leave `closed` in place, so no append slips in after the
        // final flush.
        let (streams, waiters, closed) = {
            let mut pending = inner.pending.lock().expect("pending lock poisoned");
            pending.bytes = 0;
            (
                std::mem::take(&mut pending.streams),
                std::mem::take(&mut pending.waiters),
                pending.closed,
            )
        };
        if !streams.is_empty() {
            let chunks = into_chunks(streams);
            match chunks {
                Ok(chunks) => {
                    let store = inner.store.clone();
                    let cache = inner.cache.clone();
                    let env = inner.env.clone();
                    let retry = inner.options.upload_retry();
                    let upload =
                        tokio::spawn(
                            async move { upload(&store, &cache, &env, &chunks, retry).await },
                        );
                    if uploads.send(InFlight { upload, waiters }).await.is_err() {
                        return;
                    }
                }
                Err(error) => fail_all(waiters, error),
            }
        }
        if closed {
            return;
        }
    }
}

fn into_chunks(streams: BTreeMap<ChunkKey, StreamBuffer>) -> Result<Vec<StreamChunk>, AppendError> {
    streams
        .into_iter()
        .map(|(key, buffer)| {
            let schema = buffer.batches[0].schema();
            let batch = concat_batches(&schema, &buffer.batches)
                .map_err(|e| AppendError::Upload(format!("cannot assemble chunk: {e}")))?;
            Ok(StreamChunk {
                key,
                schema_id: buffer.schema_id,
                batch,
                key_writes: buffer.key_writes.map(Arc::new),
                first_append: buffer.first_append,
                last_append: buffer.last_append,
            })
        })
        .collect()
}

/// Submits finished uploads to the index in flush order and answers their appends.
async fn run_committer(
    index: Arc<dyn CommitLog>,
    mut queue: mpsc::Receiver<InFlight>,
    commit_timeout: std::time::Duration,
) {
    let mut acks = tokio::task::JoinSet::new();
    while let Some(InFlight { upload, waiters }) = queue.recv().await {
        let request = match upload.await {
            Ok(Ok(request)) => request,
            Ok(Err(error)) => {
                tracing::warn!(%error, "wal upload failed; its appends fail");
                fail_all(waiters, error);
                continue;
            }
            Err(join) => {
                fail_all(
                    waiters,
                    AppendError::Upload(format!("upload task failed: {join}")),
                );
                continue;
            }
        };
        let keys: Vec<ChunkKey> = request
            .chunks
            .iter()
            .map(|c| ChunkKey {
                stream: c.stream,
                producer: c.producer,
            })
            .collect();
        match index.submit_commit(request).await {
            Ok(pending) => {
                acks.spawn(async move {
                    // A commit the index cannot make durable (its store is down) must not
                    // hold clients forever: past the deadline they learn the outcome is
                    // unknown and resend (idempotently) later.
                    match tokio::time::timeout(commit_timeout, pending.wait()).await {
                        Ok(reply) => answer(waiters, &keys, reply),
                        Err(_) => fail_all(
                            waiters,
                            AppendError::CommitTimeout {
                                waited: commit_timeout,
                            },
                        ),
                    }
                });
            }
            Err(error) => fail_all(waiters, error.into()),
        }
        while acks.try_join_next().is_some() {}
    }
    while acks.join_next().await.is_some() {}
}

/// Gives each parked append its offsets, or the error of its commit.
fn answer(waiters: Vec<Waiter>, keys: &[ChunkKey], reply: CommitReply) {
    let outcomes = match reply {
        Ok(outcomes) => outcomes,
        Err(error) => return fail_all(waiters, error.into()),
    };
    let by_key: BTreeMap<ChunkKey, _> = keys.iter().copied().zip(outcomes).collect();
    for waiter in waiters {
        // A retried idempotent append gets what the original got, for all its buckets.
        let duplicate = waiter
            .parts
            .iter()
            .find_map(|(key, _, _)| match by_key.get(key) {
                Some(Err(ChunkRejected::Duplicate { ranges, .. })) => Some(ranges),
                _ => None,
            });
        if let Some(ranges) = duplicate {
            let original = ranges
                .iter()
                .map(|range| BucketAppend {
                    partition: range.partition,
                    bucket: range.bucket,
                    base_offset: range.base_offset,
                    row_count: u64::from(range.row_count),
                    commit_ts: range.commit_ts,
                })
                .collect();
            let _ = waiter.reply.send(Ok(original));
            continue;
        }
        let result = waiter
            .parts
            .iter()
            .map(|(key, start, rows)| match by_key.get(key) {
                Some(Ok(committed)) => Ok(BucketAppend {
                    partition: key.stream.partition,
                    bucket: key.stream.bucket,
                    base_offset: Offset(committed.base_offset.0 + start),
                    row_count: *rows,
                    commit_ts: committed.commit_ts,
                }),
                Some(Err(rejected)) => Err(AppendError::Rejected(rejected.clone())),
                None => Err(AppendError::Index(IndexError::Storage(format!(
                    "commit reply lacks {}",
                    key.stream
                )))),
            })
            .collect();
        let _ = waiter.reply.send(result);
    }
}

fn fail_all(waiters: Vec<Waiter>, error: AppendError) {
    for waiter in waiters {
        let _ = waiter.reply.send(Err(error.clone()));
    }
}

/// A write checked against its table ([`prepare`]).
struct Prepared {
    /// The table's merge engine, for primary-key writes.
    engine: Option<MergeEngine>,
    /// The columns of a partial update.
    mask: Option<Vec<u8>>,
    /// The rows conformed to the table's schema, in one batch.
    batch: RecordBatch,
}

/// A write of `batches` to `table` as `op`, checked and conformed.
fn prepare(
    table: &TableInfo,
    op: WriteOp,
    batches: &[RecordBatch],
) -> Result<Prepared, AppendError> {
    op.check(table)?;
    let engine = match op {
        WriteOp::Append => None,
        WriteOp::Upsert | WriteOp::PartialUpsert | WriteOp::Delete => {
            Some(table.merge_engine().map_err(|e| {
                AppendError::Index(IndexError::Storage(format!(
                    "table {}: {e}",
                    table.qualified_name()
                )))
            })?)
        }
    };
    let mask = match (&engine, op) {
        (Some(engine), WriteOp::PartialUpsert) => Some(partial_columns(table, engine, batches)?),
        _ => None,
    };
    let conformed = batches
        .iter()
        .map(|batch| match op {
            WriteOp::Delete => conform_delete(table, batch),
            WriteOp::Append | WriteOp::Upsert | WriteOp::PartialUpsert => conform(table, batch),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let batch = concat_batches(&table.descriptor.schema, &conformed)
        .map_err(|e| AppendError::MalformedIpc(e.to_string()))?;
    Ok(Prepared {
        engine,
        mask,
        batch,
    })
}
