//! Union read, end to end: rows appended by a real writer, tiered into a real Iceberg table
//! by the compactor's lake writer and registered in the index with a lake commit (which
//! removes the tiered chunk entries), then fetched by a reader whose fresh cache gets every
//! byte from the store. A fetch below the lake watermark reads the lake's Parquet files and
//! continues in the WAL: every row once, in order, with the values, offsets and timestamps
//! the WAL held; only the projected columns' bytes; still after the tiered WAL objects are
//! deleted; also for a follower under which the chunks are trimmed; and a start by timestamp
//! below the watermark finds its row in the lake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, Int8Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures::StreamExt;
use inlet_cache::{CacheOptions, PagedCache};
use inlet_compactor::lake::{
    CompactionRule, LakeAppend, LakeRoot, LakeStorage, LakeTable, LakeWriteOptions, stage_rewrite,
};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId, TimestampMicros};
use inlet_core::table::{TableInfo, read_schema};
use inlet_index::{Index, LakeCommit, LakeCommitted, LakeFileEntry};
use inlet_reader::{BucketOffsets, FetchError, FetchRequest, FetchStream, Reader, StartPosition};
use inlet_store::{Gate, Op, ProbeStore, Served, matching};
use inlet_testkit as testkit;
use inlet_writer::Writer;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

/// Rows per append; each append is one WAL object holding one chunk.
const ROWS_PER_CHUNK: u64 = 500;
/// Appends in the setup, so offsets `0..CHUNKS * ROWS_PER_CHUNK`.
const CHUNKS: u64 = 8;
/// Rows per Parquet row group of the lake files, so a file has several.
const LAKE_ROW_GROUP_ROWS: usize = 300;
/// Small cache pages, so that a read costs the store about the bytes it needs.
const SMALL_PAGE: usize = 16 * 1024;
/// Longest a test waits for rows it expects.
const WAIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// A store that counts what readers GET and can hold one object's GET back.

/// GETs of lake data files and WAL objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counted {
    lake_gets: u64,
    lake_bytes: u64,
    /// The WAL objects GET, by path.
    wal_objects: BTreeSet<String>,
}

/// An in-memory store whose GETs the tests count and can hold back.
type Store = ProbeStore<InMemory>;

/// What the readers GET among `served`: lake data files and WAL objects (not HEADs).
fn counted(served: Vec<Served>) -> Counted {
    let mut counted = Counted::default();
    for served in served.iter().filter(|served| served.op == Op::Get) {
        let name = served.path.as_ref();
        if name.starts_with("lake/") && name.ends_with(".parquet") {
            counted.lake_gets += 1;
            counted.lake_bytes += served.bytes;
        } else if name.starts_with("wal/") {
            counted.wal_objects.insert(name.to_owned());
        }
    }
    counted
}

/// Holds the next GET of `path` until the returned gate is released.
fn hold_next_get(store: &Store, path: Path) -> Gate {
    store.hold_once(matching(move |op, location| {
        op == Op::Get && *location == path
    }))
}

// ---------------------------------------------------------------------------------------------
// The table and its rows.

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        // The lake stores it as Iceberg `int`: the reader casts it back.
        Field::new("level", DataType::Int8, true),
        Field::new("msg", DataType::Utf8, true),
    ]))
}

/// One row as a fetch returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    offset: i64,
    bucket: i32,
    timestamp: i64,
    id: i64,
    level: Option<i8>,
    msg: Option<String>,
}

/// A value that looks random, so `msg` does not compress away.
fn noise(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Rows `start..start + ROWS_PER_CHUNK` as appended; row `i` lands at offset `i`.
fn rows(start: u64) -> RecordBatch {
    let range = start..start + ROWS_PER_CHUNK;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            range.clone().map(|i| i as i64 * 7 + 3),
        )),
        Arc::new(Int8Array::from_iter(
            range
                .clone()
                .map(|i| (i % 11 != 0).then_some((i % 100) as i8 - 50)),
        )),
        Arc::new(StringArray::from_iter(range.map(|i| {
            (i % 13 != 0).then(|| {
                let noise: String = (0..6)
                    .map(|k| format!("{:016x}", noise(i * 8 + k)))
                    .collect();
                format!("row {i} {noise}")
            })
        }))),
    ];
    RecordBatch::try_new(schema(), columns).expect("valid batch")
}

/// The rows of fetched batches, checking each batch has the schema of a full fetch.
fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let expected = read_schema(&schema(), &[0, 1, 2]);
    let mut out = Vec::new();
    for batch in batches {
        assert_eq!(batch.schema(), expected, "a full fetch's schema");
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let levels = batch.column(1).as_primitive::<Int8Type>();
        let msgs = batch.column(2).as_string::<i32>();
        let buckets = batch.column(3).as_primitive::<Int32Type>();
        let offsets = batch.column(4).as_primitive::<Int64Type>();
        let timestamps = batch.column(5).as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            out.push(Row {
                offset: offsets.value(i),
                bucket: buckets.value(i),
                timestamp: timestamps.value(i),
                id: ids.value(i),
                level: levels.is_valid(i).then(|| levels.value(i)),
                msg: msgs.is_valid(i).then(|| msgs.value(i).to_owned()),
            });
        }
    }
    out
}

/// Offsets of `rows`.
fn offsets(rows: &[Row]) -> Vec<i64> {
    rows.iter().map(|row| row.offset).collect()
}

// ---------------------------------------------------------------------------------------------
// Setup, fetches and tiering.

struct Setup {
    store: Arc<Store>,
    index: Index,
    writer: Writer,
    table: Arc<TableInfo>,
    stream: StreamId,
    /// Every row appended so far, as a full fetch from the WAL returned it before tiering.
    truth: Vec<Row>,
    lake: Lake,
}

/// The lake table and what the index knows of it.
struct Lake {
    root: LakeRoot,
    table: LakeTable,
    /// The metadata location of the last lake commit.
    committed: Option<String>,
    watermark: Offset,
}

/// A lake root name no other test of this process uses.
fn lake_root() -> LakeRoot {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    LakeRoot::memory(&format!("union-read-{}-{n}", std::process::id()))
}

impl Setup {
    /// Table `db.logs` (one bucket) with `CHUNKS` appends, and its (empty) lake table.
    async fn new() -> Self {
        let store = Arc::new(Store::new(InMemory::new()));
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        let index = testkit::index_with_table(dyn_store.clone(), "logs", schema()).await;
        let table = index.table("db", "logs").expect("table exists");
        let stream = StreamId::new(table.id, PartitionId(0), Bucket(0));
        let writer =
            testkit::start_writer(&index, dyn_store.clone(), testkit::quick_writer_options()).await;
        let root = lake_root();
        let storage = LakeStorage::new(root.clone(), dyn_store);
        let lake_table = LakeTable::create(&storage, &table, &Env::system())
            .await
            .expect("lake table");
        let mut setup = Self {
            store,
            index,
            writer,
            table,
            stream,
            truth: Vec::new(),
            lake: Lake {
                root,
                table: lake_table,
                committed: None,
                watermark: Offset(0),
            },
        };
        setup.append(CHUNKS).await;
        setup
    }

    /// Appends `chunks` more chunks, one WAL object each, and adds them to the truth.
    async fn append(&mut self, chunks: u64) {
        let from = self.truth.len() as u64;
        for chunk in 0..chunks {
            self.writer
                .append("db", "logs", &[rows(from + chunk * ROWS_PER_CHUNK)], None)
                .await
                .expect("append acked");
        }
        let added = self.fetch_all(StartPosition::Offset(Offset(from))).await;
        let to = from + chunks * ROWS_PER_CHUNK;
        assert!(
            offsets(&added) == (from as i64..to as i64).collect::<Vec<_>>(),
            "offsets {from}..{to} were appended"
        );
        self.truth.extend(added);
    }

    /// The offset after the last appended row.
    fn next(&self) -> u64 {
        self.truth.len() as u64
    }

    /// A reader with a fresh cache of `page_size` pages, so that every byte is read from the
    /// store, and the counts cleared.
    async fn reader(&self, page_size: usize) -> Reader {
        let options = CacheOptions {
            page_size,
            max_get_bytes: page_size.max(CacheOptions::default().max_get_bytes),
            ..CacheOptions::default()
        };
        let cache = PagedCache::open(self.store.clone(), options)
            .await
            .expect("cache opens");
        self.store.take();
        Reader::new(Arc::new(self.index.clone()), cache)
    }

    /// Every column from `start` to the tail, through a fresh cache.
    async fn fetch_all(&self, start: StartPosition) -> Vec<Row> {
        let reader = self.reader(CacheOptions::default().page_size).await;
        let batches = collect(fetch(&reader, start, &[], false, None).await)
            .await
            .expect("fetch");
        rows_of(&batches)
    }

    /// The WAL object of each chunk in the index, by base offset.
    async fn chunk_objects(&self) -> BTreeMap<u64, Path> {
        let mut chunks = self
            .index
            .chunks(self.stream, Offset(0))
            .await
            .expect("chunk scan");
        let mut objects = BTreeMap::new();
        while let Some(entry) = chunks.next().await.expect("chunk entry") {
            objects.insert(entry.base_offset.0, Path::from(entry.object.path()));
        }
        objects
    }

    /// Tiers the offsets from the lake watermark up to `to`: writes them as one Parquet file
    /// of the lake table (several row groups) and commits it to the index with the new
    /// watermark, which removes the chunk entries wholly below it.
    async fn tier(&mut self, to: Offset) -> LakeCommitted {
        self.tier_with(to, LAKE_ROW_GROUP_ROWS).await
    }

    /// [`Setup::tier`] with row groups of `row_group_rows`.
    async fn tier_with(&mut self, to: Offset, row_group_rows: usize) -> LakeCommitted {
        let from = self.lake.watermark;
        let reader = self.reader(CacheOptions::default().page_size).await;
        let batches = collect(
            fetch(
                &reader,
                StartPosition::Offset(from),
                &[],
                false,
                Some(to.0 - from.0),
            )
            .await,
        )
        .await
        .expect("fetch rows to tier");
        let tiered = rows_of(&batches);
        assert_eq!(tiered.len() as u64, to.0 - from.0);

        let options = LakeWriteOptions {
            row_group_rows,
            ..LakeWriteOptions::default()
        };
        let mut append =
            LakeAppend::new(&self.lake.table, &options, &Env::system()).expect("lake round");
        append
            .write_bucket(Bucket(0), &batches)
            .await
            .expect("rows written");
        let staged = append.stage().await.expect("staged");
        assert_eq!(staged.data_files.len(), 1, "one file per round");
        let file = &staged.data_files[0];
        let entry = LakeFileEntry {
            path: self
                .lake
                .root
                .path_of(file.file_path())
                .expect("a lake path")
                .to_string(),
            base_offset: from,
            row_count: file.record_count(),
            file_size: file.file_size_in_bytes(),
            snapshot_id: staged.snapshot_id,
            min_ts: TimestampMicros(tiered.iter().map(|r| r.timestamp).min().expect("rows")),
            max_ts: TimestampMicros(tiered.iter().map(|r| r.timestamp).max().expect("rows")),
            schema_id: None,
        };
        let committed = self.commit(entry, staged.watermarks.clone(), &staged).await;
        self.lake.table = staged.table;
        self.lake.watermark = to;
        committed
    }

    async fn commit(
        &mut self,
        entry: LakeFileEntry,
        watermarks: BTreeMap<Bucket, Offset>,
        staged: &inlet_compactor::lake::StagedAppend,
    ) -> LakeCommitted {
        let lease = self
            .index
            .acquire_lake_lease(self.table.id, 1, Duration::from_secs(600))
            .await
            .expect("lease");
        let location = staged.table.metadata_location().to_owned();
        let committed = self
            .index
            .commit_lake(LakeCommit {
                table: self.table.id,
                lease,
                expected_metadata_location: self.lake.committed.clone(),
                metadata_location: location.clone(),
                snapshot_id: Some(staged.snapshot_id),
                watermarks,
                added_files: vec![(Bucket(0), entry)],
                removed_files: vec![],
                earliest: BTreeMap::new(),
                key_rows: Vec::new(),
            })
            .await
            .expect("lake commit");
        self.lake.committed = Some(location);
        committed
    }

    async fn close(self) {
        self.writer.close().await;
        self.index.close().await.expect("close");
    }
}

async fn fetch(
    reader: &Reader,
    start: StartPosition,
    columns: &[&str],
    follow: bool,
    limit: Option<u64>,
) -> FetchStream {
    reader
        .fetch(FetchRequest {
            database: "db".into(),
            table: "logs".into(),
            partitions: Vec::new(),
            buckets: vec![],
            start,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            follow,
            limit,
            omit_update_before: false,
            reset_to_earliest: false,
        })
        .await
        .expect("fetch starts")
}

async fn collect(mut stream: FetchStream) -> std::result::Result<Vec<RecordBatch>, FetchError> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?.batch);
    }
    Ok(batches)
}

/// Reads batches from a following fetch until it returned `rows` rows in total.
async fn take_rows(stream: &mut FetchStream, have: &mut Vec<RecordBatch>, rows: usize) {
    tokio::time::timeout(WAIT, async {
        while have.iter().map(RecordBatch::num_rows).sum::<usize>() < rows {
            let batch = stream
                .next()
                .await
                .expect("a following fetch does not end")
                .expect("follower reads");
            have.push(batch.batch);
        }
    })
    .await
    .expect("rows arrive");
}

fn wal_paths(committed: &LakeCommitted) -> BTreeSet<String> {
    committed
        .trimmed_objects
        .iter()
        .map(|object| object.path())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// Tiering to the middle of a chunk: the chunks wholly below the watermark leave the index,
/// and a fetch from 0 reads them from the lake, then the rest of the straddling chunk and the
/// later ones from the WAL, every row once with its values, offset and timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_from_zero_reads_the_lake_then_the_wal_every_row_once() {
    let mut setup = Setup::new().await;
    let watermark = Offset(4 * ROWS_PER_CHUNK + ROWS_PER_CHUNK / 2);
    let objects = setup.chunk_objects().await;
    let committed = setup.tier(watermark).await;
    assert_eq!(
        committed.trimmed_chunks, 4,
        "chunks 0..4 end at or below the watermark"
    );
    let trimmed = wal_paths(&committed);
    let below: BTreeSet<String> = objects
        .range(..4 * ROWS_PER_CHUNK)
        .map(|(_, path)| path.to_string())
        .collect();
    assert_eq!(trimmed, below);
    assert_eq!(
        setup
            .index
            .lake_watermark(setup.stream)
            .await
            .expect("watermark")
            .offset,
        watermark
    );

    let rows = setup.fetch_all(StartPosition::Earliest).await;
    let counted = counted(setup.store.take());
    assert_eq!(
        rows, setup.truth,
        "every row once, in order, as the WAL held it"
    );
    assert!(counted.lake_gets > 0, "the lake was read: {counted:?}");
    assert!(
        counted.wal_objects.is_disjoint(&trimmed),
        "no tiered WAL object was read: {counted:?}"
    );
    let untrimmed: BTreeSet<String> = objects
        .range(4 * ROWS_PER_CHUNK..)
        .map(|(_, path)| path.to_string())
        .collect();
    assert_eq!(counted.wal_objects, untrimmed, "the rest came from the WAL");

    // Starting inside the lake (mid row group, mid file) and stopping early.
    for start in [
        1,
        299,
        300,
        1234,
        watermark.0 - 1,
        watermark.0,
        watermark.0 + 1,
    ] {
        let rows = setup.fetch_all(StartPosition::Offset(Offset(start))).await;
        assert_eq!(rows, setup.truth[start as usize..], "from {start}");
    }
    let reader = setup.reader(SMALL_PAGE).await;
    let limited = collect(
        fetch(
            &reader,
            StartPosition::Offset(Offset(1000)),
            &[],
            false,
            Some(1500),
        )
        .await,
    )
    .await
    .expect("limited fetch");
    assert_eq!(rows_of(&limited), setup.truth[1000..2500]);

    // Offsets: the lake keeps the old offsets readable.
    let offsets = reader
        .list_offsets("db", "logs", &[], &[], StartPosition::Earliest)
        .await
        .expect("offsets");
    // The WAL bytes are those of the chunks above the watermark, which tiering left.
    let mut wal_bytes = 0;
    let mut chunks = setup
        .index
        .chunks(setup.stream, Offset(0))
        .await
        .expect("chunks");
    while let Some(chunk) = chunks.next().await.expect("chunk") {
        wal_bytes += chunk.chunk_len;
    }
    assert_eq!(
        offsets,
        vec![BucketOffsets {
            partition: PartitionId(0),
            bucket: Bucket(0),
            earliest: Offset(0),
            latest: Offset(setup.next()),
            wal_bytes,
            resolved: Offset(0),
        }]
    );
    setup.close().await;
}

/// A projected lake read reads only the projected columns' bytes (plus `_offset` and
/// `_timestamp`), returns what the full read returns for them, and a second read of the same
/// rows is served by the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projected_lake_read_gets_only_the_projected_columns_bytes() {
    let mut setup = Setup::new().await;
    let tail = Offset(setup.next());
    // One row group: the columns' bytes are contiguous, as in files of real size, whose row
    // groups hold far more rows than this test has.
    let committed = setup.tier_with(tail, tail.0 as usize).await;
    assert_eq!(committed.trimmed_chunks, CHUNKS as usize);

    let reader = setup.reader(SMALL_PAGE).await;
    let full = collect(fetch(&reader, StartPosition::Earliest, &[], false, None).await)
        .await
        .expect("full fetch");
    let full_counted = counted(setup.store.take());
    assert_eq!(rows_of(&full), setup.truth);

    let reader = setup.reader(SMALL_PAGE).await;
    let projected = collect(fetch(&reader, StartPosition::Earliest, &["level"], false, None).await)
        .await
        .expect("projected fetch");
    let projected_counted = counted(setup.store.take());
    println!(
        "lake read of {} rows: all columns {} GETs / {} B, `level` only {} GETs / {} B",
        tail.0,
        full_counted.lake_gets,
        full_counted.lake_bytes,
        projected_counted.lake_gets,
        projected_counted.lake_bytes
    );
    assert!(
        full_counted.wal_objects.is_empty() && projected_counted.wal_objects.is_empty(),
        "everything is in the lake"
    );
    assert!(
        projected_counted.lake_bytes * 2 < full_counted.lake_bytes,
        "projected {projected_counted:?} vs full {full_counted:?}"
    );

    // The same schema as a WAL batch of that projection, and the same values.
    let expected_schema = read_schema(&schema(), &[1]);
    let mut levels = Vec::new();
    let mut offsets_read: Vec<i64> = Vec::new();
    for batch in &projected {
        assert_eq!(batch.schema(), expected_schema);
        let column = batch.column(0).as_primitive::<Int8Type>();
        levels.extend((0..column.len()).map(|i| column.is_valid(i).then(|| column.value(i))));
        offsets_read.extend(batch.column(2).as_primitive::<Int64Type>().values().iter());
    }
    assert_eq!(
        levels,
        setup.truth.iter().map(|row| row.level).collect::<Vec<_>>()
    );
    assert_eq!(offsets_read, offsets(&setup.truth));

    // Hot: the same read again through the same cache costs the store nothing.
    let again = collect(fetch(&reader, StartPosition::Earliest, &["level"], false, None).await)
        .await
        .expect("projected fetch again");
    assert_eq!(again, projected);
    assert_eq!(
        counted(setup.store.take()),
        Counted::default(),
        "served by the cache"
    );
    setup.close().await;
}

/// Once the tiered WAL objects are garbage-collected, a consumer starting at offset 0 still
/// gets every row: from the lake, then from the WAL objects that remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_from_zero_after_the_wal_was_garbage_collected_gets_every_row() {
    let mut setup = Setup::new().await;
    let first = setup.tier(Offset(3 * ROWS_PER_CHUNK)).await;
    let second = setup.tier(Offset(6 * ROWS_PER_CHUNK + 100)).await;
    let mut deleted = wal_paths(&first);
    deleted.extend(wal_paths(&second));
    assert_eq!(deleted.len(), 6);
    for path in &deleted {
        setup
            .store
            .inner()
            .delete(&Path::from(path.as_str()))
            .await
            .expect("delete WAL object");
    }

    let rows = setup.fetch_all(StartPosition::Earliest).await;
    assert_eq!(rows, setup.truth);
    let counted = counted(setup.store.take());
    assert!(counted.wal_objects.is_disjoint(&deleted));
    assert_eq!(counted.wal_objects.len(), 2, "chunks 6 and 7 are still WAL");

    // Across the boundary between the two lake files too.
    let rows = setup
        .fetch_all(StartPosition::Offset(Offset(3 * ROWS_PER_CHUNK - 7)))
        .await;
    assert_eq!(rows, setup.truth[3 * ROWS_PER_CHUNK as usize - 7..]);

    // Without its lake file, an offset below the watermark cannot be read: a storage error
    // naming the file, never rows from elsewhere.
    let mut files = setup
        .index
        .lake_files(setup.stream, Offset(0))
        .await
        .expect("lake files");
    let file = files.next().await.expect("scan").expect("the first file");
    setup
        .store
        .inner()
        .delete(&Path::from(file.path.as_str()))
        .await
        .expect("delete lake file");
    let reader = setup.reader(SMALL_PAGE).await;
    let error = collect(fetch(&reader, StartPosition::Earliest, &[], false, None).await)
        .await
        .expect_err("the lake file is gone");
    // The read looked the offset up again and found the same file: gone, named, retryable.
    assert!(matches!(error, FetchError::LakeFileGone { .. }), "{error}");
    assert!(error.to_string().contains(&file.path), "{error}");
    setup.close().await;
}

impl Setup {
    /// The table tiered into two lake files (offsets up to chunk 2, then up to chunk 5), and
    /// their entries.
    async fn in_two_lake_files() -> (Self, Vec<LakeFileEntry>) {
        let mut setup = Setup::new().await;
        setup.tier(Offset(2 * ROWS_PER_CHUNK)).await;
        setup.tier(Offset(5 * ROWS_PER_CHUNK)).await;
        let files = setup.lake_file_entries().await;
        assert_eq!(files.len(), 2);
        (setup, files)
    }

    /// Once `gate` holds the GET of `what`, rewrites every lake file into one (deleting the
    /// old ones), then lets the GET go.
    async fn rewrite_under(&mut self, gate: Gate, what: &str) {
        tokio::time::timeout(WAIT, gate.wait_for_held(1))
            .await
            .unwrap_or_else(|_| panic!("{what}"));
        self.rewrite_into_one_file().await;
        gate.release();
    }

    /// The lake file entries of the bucket, in offset order.
    async fn lake_file_entries(&self) -> Vec<LakeFileEntry> {
        inlet_index::all_lake_files(&self.index, self.stream, Offset(0))
            .await
            .expect("lake files")
    }

    /// Rewrites every lake file into one (a small-file compaction that keeps one snapshot),
    /// commits it to the index, and deletes the files it replaced, as the compactor does.
    async fn rewrite_into_one_file(&mut self) {
        let old = self.lake_file_entries().await;
        let rule = CompactionRule {
            target_bytes: 1 << 30,
            min_files: 2,
            max_bytes: u64::MAX,
        };
        let staged = stage_rewrite(
            &self.lake.table,
            &rule,
            &LakeWriteOptions::default(),
            1,
            &Env::system(),
        )
        .await
        .expect("rewrite staged")
        .expect("small files to rewrite");
        let [group] = staged.groups.as_slice() else {
            panic!("one group: {:?}", staged.groups);
        };
        assert_eq!(group.replaced.len(), old.len());
        let [file] = group.files.as_slice() else {
            panic!("one new file: {:?}", group.files);
        };
        let rewritten = &self.truth[..self.lake.watermark.0 as usize];
        let entry = LakeFileEntry {
            path: self
                .lake
                .root
                .path_of(file.file_path())
                .expect("a lake path")
                .to_string(),
            base_offset: Offset(0),
            row_count: file.record_count(),
            file_size: file.file_size_in_bytes(),
            snapshot_id: staged.snapshot_id,
            min_ts: TimestampMicros(rewritten.iter().map(|r| r.timestamp).min().expect("rows")),
            max_ts: TimestampMicros(rewritten.iter().map(|r| r.timestamp).max().expect("rows")),
            schema_id: None,
        };
        let lease = self
            .index
            .acquire_lake_lease(self.table.id, 1, Duration::from_secs(600))
            .await
            .expect("lease");
        let location = staged.table.metadata_location().to_owned();
        self.index
            .commit_lake(LakeCommit {
                table: self.table.id,
                lease,
                expected_metadata_location: self.lake.committed.clone(),
                metadata_location: location.clone(),
                snapshot_id: Some(staged.snapshot_id),
                watermarks: BTreeMap::new(),
                added_files: vec![(Bucket(0), entry)],
                removed_files: old.iter().map(|f| (Bucket(0), f.end_offset())).collect(),
                earliest: BTreeMap::new(),
                key_rows: Vec::new(),
            })
            .await
            .expect("rewrite committed");
        staged
            .delete_unreached_files()
            .await
            .expect("replaced files deleted");
        for file in &old {
            assert!(
                self.store
                    .inner()
                    .head(&Path::from(file.path.as_str()))
                    .await
                    .is_err(),
                "{} is deleted",
                file.path
            );
        }
        self.lake.committed = Some(location);
        self.lake.table = staged.table;
    }
}

/// A small-file rewrite replaces the lake files a read looked up, and the replaced files are
/// deleted (a table that keeps one snapshot frees them at once), between the read's lookup
/// and its GET: the read looks the offset up again and reads the new file, every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_lake_files_are_replaced_under_it_reads_the_new_file() {
    let (mut setup, old) = Setup::in_two_lake_files().await;
    let gate = hold_next_get(&setup.store, Path::from(old[0].path.as_str()));
    let reader = setup.reader(SMALL_PAGE).await;
    let read = tokio::spawn(async move {
        collect(fetch(&reader, StartPosition::Earliest, &[], false, None).await).await
    });
    setup
        .rewrite_under(gate, "the read GETs the first lake file")
        .await;

    let batches = tokio::time::timeout(WAIT, read)
        .await
        .expect("the read ends")
        .expect("the read task")
        .expect("the read finds the new file");
    assert_eq!(rows_of(&batches), setup.truth, "every row once, in order");
    setup.close().await;
}

/// The same under a start by timestamp: the lookup of the row in the lake file finds the file
/// gone, looks again, and finds the row in the new file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_by_timestamp_whose_lake_file_is_replaced_under_it_finds_the_row() {
    let (mut setup, old) = Setup::in_two_lake_files().await;
    // A row inside the second file, not at its start.
    let offset = 3 * ROWS_PER_CHUNK as usize;
    let ts = setup.truth[offset].timestamp;
    assert!(setup.truth[offset - 1].timestamp < ts);
    let gate = hold_next_get(&setup.store, Path::from(old[1].path.as_str()));
    let reader = setup.reader(SMALL_PAGE).await;
    let resolve = tokio::spawn(async move {
        reader
            .list_offsets(
                "db",
                "logs",
                &[],
                &[],
                StartPosition::Timestamp(TimestampMicros(ts)),
            )
            .await
    });
    setup
        .rewrite_under(gate, "the lookup GETs the second lake file")
        .await;

    let offsets = tokio::time::timeout(WAIT, resolve)
        .await
        .expect("the lookup ends")
        .expect("the lookup task")
        .expect("the lookup finds the new file");
    assert_eq!(offsets[0].resolved, Offset(offset as u64));
    setup.close().await;
}

/// A lake file that does not hold what its index entry says is corruption, named by path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_file_that_disagrees_with_its_entry_is_corruption() {
    let mut setup = Setup::new().await;
    let to = Offset(2 * ROWS_PER_CHUNK);
    let reader = setup.reader(CacheOptions::default().page_size).await;
    let batches = collect(fetch(&reader, StartPosition::Earliest, &[], false, Some(to.0)).await)
        .await
        .expect("rows to tier");
    let mut append = LakeAppend::new(
        &setup.lake.table,
        &LakeWriteOptions::default(),
        &Env::system(),
    )
    .expect("lake round");
    append
        .write_bucket(Bucket(0), &batches)
        .await
        .expect("rows written");
    let staged = append.stage().await.expect("staged");
    let file = &staged.data_files[0];
    // The entry claims one row fewer than the file has.
    let entry = LakeFileEntry {
        path: setup
            .lake
            .root
            .path_of(file.file_path())
            .expect("a lake path")
            .to_string(),
        base_offset: Offset(0),
        row_count: file.record_count() - 1,
        file_size: file.file_size_in_bytes(),
        snapshot_id: staged.snapshot_id,
        min_ts: TimestampMicros(0),
        max_ts: TimestampMicros(i64::MAX),
        schema_id: None,
    };
    let path = entry.path.clone();
    setup
        .commit(entry, BTreeMap::from([(Bucket(0), to)]), &staged)
        .await;

    let reader = setup.reader(SMALL_PAGE).await;
    let error = collect(fetch(&reader, StartPosition::Earliest, &[], false, None).await)
        .await
        .expect_err("the entry does not match the file");
    assert!(matches!(error, FetchError::Corrupt { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&path), "names the file: {message}");
    assert!(message.contains("1000 rows"), "{message}");
    setup.close().await;
}

/// A follower that started at 0 keeps reading, every row once and in order, while a lake
/// commit removes the chunks under it: the commit lands while it is blocked reading a WAL
/// object, rows appended meanwhile are tiered too (so it must read them from the lake), and
/// it goes on to rows appended after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_keeps_reading_while_a_lake_commit_trims_chunks_under_it() {
    let mut setup = Setup::new().await;
    let objects = setup.chunk_objects().await;
    let gate = hold_next_get(&setup.store, objects[&(2 * ROWS_PER_CHUNK)].clone());

    let reader = setup.reader(SMALL_PAGE).await;
    let mut follower = fetch(&reader, StartPosition::Offset(Offset(0)), &[], true, None).await;
    let mut batches = Vec::new();
    take_rows(&mut follower, &mut batches, 2 * ROWS_PER_CHUNK as usize).await;
    tokio::time::timeout(WAIT, gate.wait_for_held(1))
        .await
        .expect("the follower reads chunk 2");

    // While it waits for chunk 2: more rows, then everything is tiered.
    setup.append(4).await;
    let tail = Offset(setup.next());
    let committed = setup.tier(tail).await;
    assert_eq!(committed.trimmed_chunks, (CHUNKS + 4) as usize);
    gate.release();

    take_rows(&mut follower, &mut batches, tail.0 as usize).await;
    assert!(
        counted(setup.store.take()).lake_gets > 0,
        "rows appended after the follower last saw the tail were read from the lake"
    );

    // Later rows come from the WAL, after the tiered objects are gone.
    for path in wal_paths(&committed) {
        setup
            .store
            .inner()
            .delete(&Path::from(path.as_str()))
            .await
            .expect("delete WAL object");
    }
    setup.append(1).await;
    take_rows(&mut follower, &mut batches, setup.next() as usize).await;
    assert_eq!(rows_of(&batches), setup.truth, "every row once, in order");
    drop(follower);
    setup.close().await;
}

/// A start by timestamp below the lake watermark finds the first row committed at or after
/// it in the lake, exactly, though the time index no longer holds those chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_by_timestamp_below_the_watermark_finds_the_row_in_the_lake() {
    let mut setup = Setup::new().await;
    // The commit time of each chunk, from the rows.
    let chunk_ts: Vec<i64> = (0..CHUNKS)
        .map(|chunk| setup.truth[(chunk * ROWS_PER_CHUNK) as usize].timestamp)
        .collect();
    assert!(
        chunk_ts.windows(2).all(|pair| pair[0] < pair[1]),
        "appends commit one after another: {chunk_ts:?}"
    );
    let watermark = Offset(4 * ROWS_PER_CHUNK + ROWS_PER_CHUNK / 2);
    setup.tier(watermark).await;

    let reader = setup.reader(SMALL_PAGE).await;
    let resolve = async |ts: i64| {
        let offsets = reader
            .list_offsets(
                "db",
                "logs",
                &[],
                &[],
                StartPosition::Timestamp(TimestampMicros(ts)),
            )
            .await
            .expect("offsets");
        offsets[0].resolved.0
    };
    let chunk = |c: u64| c * ROWS_PER_CHUNK;
    // Inside the lake file, not at its start: the row is found within the file.
    assert_eq!(resolve(chunk_ts[2]).await, chunk(2));
    assert_eq!(resolve(chunk_ts[2] + 1).await, chunk(3));
    assert_eq!(resolve(chunk_ts[1] - 1).await, chunk(1));
    // Before everything: the first row.
    assert_eq!(resolve(chunk_ts[0] - 1_000_000).await, 0);
    // The chunk that straddles the watermark starts in the lake.
    assert_eq!(resolve(chunk_ts[4]).await, chunk(4));
    assert_eq!(resolve(chunk_ts[3] + 1).await, chunk(4));
    // Above the watermark: the time index.
    assert_eq!(resolve(chunk_ts[5]).await, chunk(5));
    assert_eq!(resolve(chunk_ts[7] + 1).await, setup.next());

    // A fetch from that time starts at that row.
    let rows = setup
        .fetch_all(StartPosition::Timestamp(TimestampMicros(chunk_ts[2])))
        .await;
    assert_eq!(rows, setup.truth[chunk(2) as usize..]);
    setup.close().await;
}
