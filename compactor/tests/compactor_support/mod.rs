//! Shared harness of the compactor scenarios: a real index (SlateDB) over an in-memory
//! store, a lake storage over the same store, a manual clock that starts at the wall clock
//! (object `last_modified` times are wall-clock times) and moves only when a test says, and
//! helpers to append rows as the writer does (a WAL object uploaded, then committed) and to
//! read the lake back with iceberg-rust's scan.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures::TryStreamExt;
use iceberg::TableIdent;
use inlet_cache::{CacheOptions, PagedCache};
use inlet_compactor::lake::{LakeRoot, LakeStorage, LakeTable};
use inlet_compactor::{Compactor, CompactorOptions};
use inlet_core::clock::{Clock, Env, SeededIdGen, SystemClock};
use inlet_core::ids::{
    Bucket, Offset, PartitionId, StreamId, TableId, TimestampMicros, WalObjectId,
};
use inlet_core::table::{OPTION_LAKE_ENABLED, OPTION_LAKE_FRESHNESS, TableDescriptor, TableInfo};
use inlet_core::wal::{ChunkInput, encode_wal_object};
use inlet_index::{ChunkCommitRequest, CommitRequest, Index, table_streams};
use inlet_testkit as testkit;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

/// A clock that moves only when told; starts at the wall clock.
#[derive(Debug)]
pub struct ManualClock(pub AtomicI64);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(
            i64::try_from(by.as_micros()).expect("short"),
            Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> TimestampMicros {
        TimestampMicros(self.0.load(Ordering::SeqCst))
    }
}

pub struct Harness {
    pub store: Arc<dyn ObjectStore>,
    /// The page cache compactors read chunks through.
    pub cache: PagedCache,
    pub index: Index,
    pub lake: LakeStorage,
    pub clock: Arc<ManualClock>,
    pub env: Env,
    /// Rows appended so far per stream: the next row's `seq`, equal to its offset.
    appended: std::sync::Mutex<BTreeMap<StreamId, u64>>,
}

/// One row as read back from the lake.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LakeRow {
    pub bucket: i32,
    pub offset: i64,
    pub seq: i64,
    pub timestamp: i64,
}

impl Harness {
    /// A fresh store, index and lake storage; `name` must be unique in the test binary.
    pub async fn new(name: &str) -> anyhow::Result<Self> {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let clock = Arc::new(ManualClock(AtomicI64::new(SystemClock.now().0)));
        let env = Env {
            clock: clock.clone(),
            ids: Arc::new(SeededIdGen::new(name.len() as u64 * 7919 + 17)),
        };
        let index = testkit::open_index(store.clone(), env.clone()).await;
        let lake = LakeStorage::new(LakeRoot::memory(name), store.clone());
        let cache = PagedCache::open(store.clone(), CacheOptions::default()).await?;
        Ok(Self {
            store,
            cache,
            index,
            lake,
            clock,
            env,
            appended: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Creates table `db.<name>` with columns `seq` (int64) and `msg` (utf8), lake tiering
    /// on or off, freshness 100 ms.
    pub async fn table(
        &self,
        name: &str,
        buckets: u32,
        lake: bool,
    ) -> anyhow::Result<Arc<TableInfo>> {
        let mut options = BTreeMap::new();
        if lake {
            options.insert(OPTION_LAKE_ENABLED.to_owned(), "true".to_owned());
            options.insert(OPTION_LAKE_FRESHNESS.to_owned(), "100ms".to_owned());
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("seq", DataType::Int64, false),
            Field::new("msg", DataType::Utf8, true),
        ]));
        let descriptor = TableDescriptor {
            options,
            ..testkit::table_descriptor(schema, buckets)
        };
        Ok(self
            .index
            .create_table("db", name, descriptor, false)
            .await?)
    }

    pub fn compactor(&self, owner: u64, options: CompactorOptions) -> Compactor {
        Compactor::new(
            self.index.clone(),
            self.cache.clone(),
            self.lake.clone(),
            CompactorOptions {
                owner: Some(owner),
                ..options
            },
            self.env.clone(),
        )
    }

    /// Encodes and uploads one WAL object with one chunk per `(table, bucket, rows)`, without
    /// committing it. The rows' `seq` continue each stream's count (so `seq` = offset once
    /// committed in upload order).
    pub async fn upload(&self, chunks: &[(&TableInfo, u32, u64)]) -> anyhow::Result<CommitRequest> {
        let now = self.env.clock.now();
        let mut batches = Vec::new();
        {
            let mut appended = self.appended.lock().expect("lock");
            for (table, bucket, rows) in chunks {
                let stream = StreamId::new(table.id, PartitionId(0), Bucket(*bucket));
                let next = appended.entry(stream).or_insert(0);
                let seqs: Vec<i64> = (*next..*next + rows).map(|s| s as i64).collect();
                *next += rows;
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(Int64Array::from(seqs.clone())),
                    Arc::new(StringArray::from_iter(
                        seqs.iter().map(|s| (s % 3 != 0).then(|| format!("m{s}"))),
                    )),
                ];
                batches.push((
                    stream,
                    table.schema_id,
                    RecordBatch::try_new(table.descriptor.schema.clone(), columns)?,
                ));
            }
        }
        let inputs: Vec<ChunkInput<'_>> = batches
            .iter()
            .map(|(stream, schema_id, batch)| ChunkInput {
                stream: *stream,
                schema_id: *schema_id,
                batch,
                min_ts: now,
                max_ts: now,
            })
            .collect();
        let encoded = encode_wal_object(&inputs)?;
        let object = WalObjectId::new((now.0 / 1000) as u64, self.env.ids.next_u128());
        self.store
            .put(
                &ObjectPath::from(object.path()),
                encoded.bytes.clone().into(),
            )
            .await?;
        Ok(CommitRequest {
            object,
            footer_offset: encoded.trailer.footer_offset,
            footer_len: encoded.trailer.footer_len,
            chunks: encoded
                .footer
                .chunks
                .iter()
                .map(|meta| ChunkCommitRequest::from_meta(meta, None))
                .collect(),
        })
    }

    /// Uploads and commits one WAL object (see [`Harness::upload`]); returns its id.
    pub async fn append(&self, chunks: &[(&TableInfo, u32, u64)]) -> anyhow::Result<WalObjectId> {
        // The seq of each chunk's first row, which must become its base offset.
        let mut next = self.appended.lock().expect("lock").clone();
        let expected: Vec<u64> = chunks
            .iter()
            .map(|(table, bucket, rows)| {
                let at = next.entry(stream(table, *bucket)).or_insert(0);
                let base = *at;
                *at += rows;
                base
            })
            .collect();
        let request = self.upload(chunks).await?;
        let object = request.object;
        let reply = self.index.commit(request).await?;
        for (chunk, base) in reply.into_iter().zip(expected) {
            let committed = chunk?;
            ensure!(
                committed.base_offset.0 == base,
                "harness commits in order: base {} expected {base}",
                committed.base_offset
            );
        }
        Ok(object)
    }

    /// Rows appended so far to each bucket of `table`.
    pub fn appended(&self, table: &TableInfo) -> BTreeMap<u32, u64> {
        let appended = self.appended.lock().expect("lock");
        table_streams(table)
            .map(|s| (s.bucket.0, appended.get(&s).copied().unwrap_or(0)))
            .collect()
    }

    /// The committed lake table of `table`, as the index names it.
    pub async fn lake_table(&self, table: &TableInfo) -> anyhow::Result<Option<LakeTable>> {
        let Some(record) = self.index.lake_table(table.id).await? else {
            return Ok(None);
        };
        let Some(location) = record.metadata_location else {
            return Ok(None);
        };
        let ident = TableIdent::from_strs(["db", table.name.as_str()])?;
        Ok(Some(LakeTable::load(&self.lake, ident, &location).await?))
    }

    /// Every row of the committed lake table, sorted, read with iceberg-rust's scan.
    pub async fn scan(&self, table: &TableInfo) -> anyhow::Result<Vec<LakeRow>> {
        let Some(lake) = self.lake_table(table).await? else {
            return Ok(Vec::new());
        };
        if lake.snapshot_id().is_none() {
            return Ok(Vec::new());
        }
        let batches: Vec<RecordBatch> = lake
            .iceberg_table()?
            .scan()
            .select_all()
            .build()?
            .to_arrow()
            .await?
            .try_collect()
            .await?;
        let mut rows = Vec::new();
        for batch in &batches {
            let column = |name: &str| batch.column_by_name(name).context(name.to_owned());
            let seq = column("seq")?.as_primitive::<Int64Type>();
            let bucket = column("_bucket")?.as_primitive::<Int32Type>();
            let offset = column("_offset")?.as_primitive::<Int64Type>();
            let ts = column("_timestamp")?.as_primitive::<TimestampMicrosecondType>();
            for i in 0..batch.num_rows() {
                rows.push(LakeRow {
                    bucket: bucket.value(i),
                    offset: offset.value(i),
                    seq: seq.value(i),
                    timestamp: ts.value(i),
                });
            }
        }
        rows.sort();
        Ok(rows)
    }

    /// Checks the lake holds each bucket's offsets `0..watermark` exactly once, with the row
    /// appended at that offset, and that the index's watermarks equal the snapshot's.
    /// Returns the watermarks.
    pub async fn check_lake(&self, table: &TableInfo) -> anyhow::Result<BTreeMap<u32, u64>> {
        let rows = self.scan(table).await?;
        let mut by_bucket: BTreeMap<u32, Vec<&LakeRow>> = BTreeMap::new();
        for row in &rows {
            by_bucket.entry(row.bucket as u32).or_default().push(row);
        }
        let lake_marks = match self.lake_table(table).await? {
            Some(lake) => lake.watermarks()?,
            None => BTreeMap::new(),
        };
        let mut marks = BTreeMap::new();
        for stream in table_streams(table) {
            let bucket = stream.bucket.0;
            let index_mark = self.index.lake_watermark(stream).await?.offset;
            let lake_mark = lake_marks.get(&stream.bucket).copied().unwrap_or(Offset(0));
            ensure!(
                index_mark == lake_mark,
                "bucket {bucket}: index watermark {index_mark} but snapshot says {lake_mark}"
            );
            let rows = by_bucket.remove(&bucket).unwrap_or_default();
            ensure!(
                rows.len() as u64 == index_mark.0,
                "bucket {bucket}: {} rows in the lake, watermark {index_mark}",
                rows.len()
            );
            for (i, row) in rows.iter().enumerate() {
                ensure!(
                    row.offset == i as i64 && row.seq == row.offset,
                    "bucket {bucket}: row {i} is {row:?} (duplicate, gap or wrong row)"
                );
            }
            marks.insert(bucket, index_mark.0);
        }
        ensure!(
            by_bucket.is_empty(),
            "rows of unknown buckets: {by_bucket:?}"
        );
        Ok(marks)
    }

    /// Paths of every object under `prefix`.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<BTreeSet<String>> {
        let listed: Vec<_> = self
            .store
            .list(Some(&ObjectPath::from(prefix)))
            .try_collect()
            .await?;
        Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// Chunk entries of `stream` still in the index.
    pub async fn chunk_count(&self, stream: StreamId) -> anyhow::Result<usize> {
        let mut chunks = self.index.chunks(stream, Offset(0)).await?;
        let mut n = 0;
        while chunks.next().await?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

pub fn stream(table: &TableInfo, bucket: u32) -> StreamId {
    StreamId::new(table.id, PartitionId(0), Bucket(bucket))
}

pub fn table_prefix(table: &TableInfo) -> String {
    format!("lake/db/{}-{}", table.name, table.id.0)
}

pub fn id(table: &TableInfo) -> TableId {
    table.id
}
