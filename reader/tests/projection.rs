//! Column pruning on object storage, end to end: WAL objects written by a real writer, read by a
//! reader with a fresh cache so every byte comes from the store. A fetch of 2 of 20 columns
//! GETs only those columns' bytes, returns exactly what a full fetch returns for them, and still
//! verifies every byte it decodes; a full fetch reads each chunk with one GET.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures::StreamExt;
use inlet_cache::{CacheOptions, PagedCache};
use inlet_core::limits::MAX_INDEXED_COLUMN_RANGES;
use inlet_core::wal::{WAL_TRAILER_LEN, decode_object, decode_trailer};
use inlet_index::Index;
use inlet_reader::{FetchError, FetchRequest, Reader, StartPosition};
use inlet_store::{Op, ProbeStore, Served};
use inlet_testkit as testkit;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Columns of the wide table: `c00` ... `c19`, Int64 at even positions, Utf8 at odd ones.
const COLUMNS: usize = 20;
/// Columns of a table too wide for its chunks' index entries to keep their column ranges.
const WIDER_THAN_INDEXED: usize = MAX_INDEXED_COLUMN_RANGES + 6;
/// Rows per append; each append becomes one WAL object holding one chunk of ~1 MiB.
const ROWS_PER_CHUNK: i64 = 4_000;
/// Appends, so objects (and chunks).
const CHUNKS: usize = 3;
/// The two columns the projected fetch asks for, in this order: a Utf8 with nulls and an Int64.
const PROJECTED: [&str; 2] = ["c12", "c03"];
/// Small pages, so that one chunk spans many of them.
const SMALL_PAGE: usize = 16 * 1024;

/// An in-memory store whose GETs the tests count.
type Store = ProbeStore<InMemory>;

/// GETs of `wal/` objects and the bytes they returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counted {
    gets: u64,
    bytes: u64,
}

/// The GETs of `wal/` objects (not HEADs) among `served`.
fn wal_gets(served: Vec<Served>) -> Counted {
    let wal = served
        .iter()
        .filter(|served| served.op == Op::Get && served.path.as_ref().starts_with("wal/"));
    wal.fold(Counted { gets: 0, bytes: 0 }, |counted, served| Counted {
        gets: counted.gets + 1,
        bytes: counted.bytes + served.bytes,
    })
}

fn schema() -> Arc<Schema> {
    schema_of_width(COLUMNS)
}

/// `columns` columns named `c00`, `c01`...
fn schema_of_width(columns: usize) -> Arc<Schema> {
    let fields = (0..columns).map(|j| {
        let data_type = if j % 2 == 0 {
            DataType::Int64
        } else {
            DataType::Utf8
        };
        Field::new(format!("c{j:02}"), data_type, true)
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// Rows `start..start + ROWS_PER_CHUNK` of `width` columns; every column differs, and some
/// have nulls.
fn rows_of_width(start: i64, width: usize) -> RecordBatch {
    let columns = (0..width as i64).map(|j| -> ArrayRef {
        let values = start..start + ROWS_PER_CHUNK;
        let null = move |i: i64| j % 3 == 0 && i % (j + 5) == 0;
        if j % 2 == 0 {
            Arc::new(Int64Array::from_iter(
                values.map(|i| (!null(i)).then_some(i * 1_000 + j)),
            ))
        } else {
            Arc::new(StringArray::from_iter(values.map(|i| {
                (!null(i)).then(|| format!("row {i} col {j} {}", "x".repeat((i % 13) as usize)))
            })))
        }
    });
    RecordBatch::try_new(schema_of_width(width), columns.collect()).expect("valid batch")
}

/// An index with table `db.t` (one bucket) holding `CHUNKS` appends, each its own WAL object.
async fn setup(store: Arc<Store>) -> Index {
    setup_of_width(store, COLUMNS).await
}

/// [`setup`] with a table of `width` columns.
async fn setup_of_width(store: Arc<Store>, width: usize) -> Index {
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    let index = testkit::index_with_table(dyn_store.clone(), "t", schema_of_width(width)).await;
    let writer = testkit::start_writer(&index, dyn_store, testkit::quick_writer_options()).await;
    for chunk in 0..CHUNKS as i64 {
        writer
            .append(
                "db",
                "t",
                &[rows_of_width(chunk * ROWS_PER_CHUNK, width)],
                None,
            )
            .await
            .expect("append acked");
    }
    writer.close().await;
    assert_eq!(
        wal_objects(&store).await.len(),
        CHUNKS,
        "one object per append"
    );
    store.take();
    index
}

/// Fetches `columns` (empty: all) of the whole table through a fresh cache with `page_size`,
/// so that every byte is read from the store; returns the batches and what the store served.
async fn fetch(
    index: &Index,
    store: &Arc<Store>,
    page_size: usize,
    columns: &[&str],
) -> (std::result::Result<Vec<RecordBatch>, FetchError>, Counted) {
    let options = CacheOptions {
        page_size,
        max_get_bytes: page_size.max(CacheOptions::default().max_get_bytes),
        ..CacheOptions::default()
    };
    let cache = PagedCache::open(store.clone(), options)
        .await
        .expect("cache opens");
    store.take();
    let reader = Reader::new(Arc::new(index.clone()), cache);
    let mut stream = reader
        .fetch(FetchRequest {
            database: "db".into(),
            table: "t".into(),
            partitions: Vec::new(),
            buckets: vec![],
            start: StartPosition::Earliest,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            follow: false,
            limit: None,
            omit_update_before: false,
            reset_to_earliest: false,
        })
        .await
        .expect("fetch starts");
    let mut batches = Vec::new();
    let mut result = Ok(());
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(fetched) => batches.push(fetched.batch),
            Err(error) => result = Err(error),
        }
    }
    (result.map(|()| batches), wal_gets(store.take()))
}

/// The full fetch's batches cut down to the projected columns plus the system columns, which
/// is what the projected fetch must return.
fn project_full(full: &[RecordBatch]) -> Vec<RecordBatch> {
    full.iter()
        .map(|batch| {
            let schema = batch.schema();
            let names = PROJECTED
                .iter()
                .copied()
                .chain(["_bucket", "_offset", "_timestamp"]);
            let indices: Vec<usize> = names
                .map(|name| schema.index_of(name).expect("column in the full fetch"))
                .collect();
            batch
                .project(&indices)
                .expect("projection of the full fetch")
        })
        .collect()
}

fn rows_of(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

async fn wal_objects(store: &Store) -> Vec<Path> {
    let prefix = Path::from("wal");
    let mut paths: Vec<Path> = store
        .inner()
        .list(Some(&prefix))
        .map(|meta| meta.expect("list").location)
        .collect()
        .await;
    paths.sort();
    paths
}

/// Flips one byte of the footer of every WAL object (so reading the footer fails its crc).
async fn corrupt_footers(store: &Store) {
    for path in wal_objects(store).await {
        let bytes = store.inner().get(&path).await.expect("get");
        let mut bytes = bytes.bytes().await.expect("bytes").to_vec();
        let trailer = decode_trailer(&bytes[bytes.len() - WAL_TRAILER_LEN..]).expect("trailer");
        bytes[(trailer.footer_offset + u64::from(trailer.footer_len) / 2) as usize] ^= 0x40;
        store
            .inner()
            .put(&path, PutPayload::from(bytes))
            .await
            .expect("put");
    }
}

/// Flips one byte in the middle of `column`'s bytes in the chunk of every WAL object.
async fn corrupt_column(store: &Store, column: &str) {
    let index = schema().index_of(column).expect("column");
    for path in wal_objects(store).await {
        let bytes = store
            .inner()
            .get(&path)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let footer = decode_object(&bytes).expect("object decodes before corruption");
        let mut bytes = bytes.to_vec();
        for chunk in &footer.chunks {
            let range = chunk.columns[index];
            assert!(range.len > 0, "column {column} has bytes");
            let at =
                chunk.chunk_offset + u64::from(chunk.body_offset) + range.offset + range.len / 2;
            bytes[at as usize] ^= 0x40;
        }
        store
            .inner()
            .put(&path, PutPayload::from(bytes))
            .await
            .expect("put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projected_fetch_gets_only_the_projected_columns_bytes() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;

    let (full, full_counted) = fetch(&index, &store, SMALL_PAGE, &[]).await;
    let full = full.expect("full fetch");
    let (projected, projected_counted) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    let projected = projected.expect("projected fetch");
    println!(
        "page {SMALL_PAGE} B, {CHUNKS} chunks of {ROWS_PER_CHUNK} rows x {COLUMNS} columns: \
         full fetch {} GETs / {} B, projected ({} columns) {} GETs / {} B",
        full_counted.gets,
        full_counted.bytes,
        PROJECTED.len(),
        projected_counted.gets,
        projected_counted.bytes
    );

    // The same values, offsets and timestamps as the full fetch, in the asked column order.
    assert_eq!(rows_of(&full), CHUNKS * ROWS_PER_CHUNK as usize);
    assert_eq!(projected, project_full(&full));
    let offsets: Vec<i64> = projected
        .iter()
        .flat_map(|batch| {
            let column = batch.column_by_name("_offset").expect("_offset");
            let column = column.as_any().downcast_ref::<Int64Array>().expect("i64");
            column.values().to_vec()
        })
        .collect();
    assert_eq!(
        offsets,
        (0..CHUNKS as i64 * ROWS_PER_CHUNK).collect::<Vec<_>>()
    );

    // A full read is one GET per chunk; the projected one reads under half the bytes.
    assert_eq!(full_counted.gets, CHUNKS as u64);
    assert!(
        projected_counted.bytes * 2 < full_counted.bytes,
        "projected {projected_counted:?} vs full {full_counted:?}"
    );
    // The columns' ranges (the chunk's index entry lists them, so no footer): more GETs than
    // the full read, but not one per column.
    assert!(projected_counted.gets > full_counted.gets);
    assert!(projected_counted.gets <= (CHUNKS * (1 + PROJECTED.len())) as u64);
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projected_fetch_takes_the_column_ranges_from_the_index_not_the_footer() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    let (before, _) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    let before = before.expect("projected fetch");
    corrupt_footers(&store).await;

    let (after, _) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    assert_eq!(after.expect("projected fetch reads no footer"), before);
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_too_wide_for_indexed_ranges_prunes_through_the_footer() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup_of_width(store.clone(), WIDER_THAN_INDEXED).await;

    let (full, full_counted) = fetch(&index, &store, SMALL_PAGE, &[]).await;
    let full = full.expect("full fetch");
    let (projected, projected_counted) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    assert_eq!(projected.expect("projected fetch"), project_full(&full));
    assert!(
        projected_counted.bytes * 2 < full_counted.bytes,
        "pruned: projected {projected_counted:?} vs full {full_counted:?}"
    );

    // The ranges come from the footer, so a damaged footer fails the pruned read, by name.
    corrupt_footers(&store).await;
    let (projected, _) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    let error = projected.expect_err("damaged footer detected");
    assert!(matches!(error, FetchError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("footer"), "{error}");
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_read_uses_one_get_per_chunk_and_large_pages_are_never_pruned() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    let page_larger_than_object = 4 * 1024 * 1024;

    let (full, full_counted) = fetch(&index, &store, page_larger_than_object, &[]).await;
    let full = full.expect("full fetch");
    assert_eq!(full_counted.gets, CHUNKS as u64, "{full_counted:?}");

    // A chunk inside one page cannot be read in fewer pages: no footer read, no ranges, the
    // same single GET per chunk and the same bytes.
    let (projected, projected_counted) =
        fetch(&index, &store, page_larger_than_object, &PROJECTED).await;
    assert_eq!(projected.expect("projected fetch"), project_full(&full));
    assert_eq!(projected_counted, full_counted);
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_projected_column_fails_the_projected_fetch() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    corrupt_column(&store, PROJECTED[0]).await;

    let (projected, _) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    let error = projected.expect_err("corrupt column detected");
    assert!(matches!(error, FetchError::Corrupt { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("column `c12` checksum mismatch"),
        "{message}"
    );
    assert!(message.contains("wal/"), "names the object: {message}");

    let (full, _) = fetch(&index, &store, SMALL_PAGE, &[]).await;
    let error = full.expect_err("corrupt chunk detected");
    assert!(
        error.to_string().contains("chunk checksum mismatch"),
        "{error}"
    );
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projected_fetch_never_reads_unprojected_bytes() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    let (before, _) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    let before = before.expect("projected fetch");
    corrupt_column(&store, "c05").await;

    // c05 is neither fetched nor decoded by the projected read (the whole-chunk read, which
    // verifies the chunk's checksum, sees the damage).
    let (after, _) = fetch(&index, &store, SMALL_PAGE, &PROJECTED).await;
    assert_eq!(after.expect("projected fetch ignores c05"), before);
    let (full, _) = fetch(&index, &store, SMALL_PAGE, &[]).await;
    let error = full.expect_err("corrupt chunk detected");
    assert!(
        error.to_string().contains("chunk checksum mismatch"),
        "{error}"
    );
    index.close().await.expect("close");
}

/// Reports what full and projected fetches GET from the store for a range of page sizes (run
/// with `--nocapture` to see the table). Whatever the page size, pruning never costs more
/// store bytes than the whole-chunk read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_bytes_by_page_size() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    println!("page size | full GETs | full bytes | projected GETs | projected bytes | ratio");
    for page_size in [4, 16, 64, 128, 256, 512, 1024, 4096].map(|kib| kib * 1024) {
        let (full, full_counted) = fetch(&index, &store, page_size, &[]).await;
        let (projected, projected_counted) = fetch(&index, &store, page_size, &PROJECTED).await;
        assert_eq!(
            projected.expect("projected fetch"),
            project_full(&full.expect("full fetch"))
        );
        println!(
            "{:>6} KiB | {:>9} | {:>10} | {:>14} | {:>15} | {:.2}",
            page_size / 1024,
            full_counted.gets,
            full_counted.bytes,
            projected_counted.gets,
            projected_counted.bytes,
            projected_counted.bytes as f64 / full_counted.bytes as f64
        );
        assert_eq!(full_counted.gets, CHUNKS as u64);
        assert!(
            projected_counted.bytes <= full_counted.bytes,
            "page {page_size}: projected {projected_counted:?} vs full {full_counted:?}"
        );
    }
    index.close().await.expect("close");
}
