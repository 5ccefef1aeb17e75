//! Read-ahead across chunks, end to end: a fetch of many WAL chunks, each its own object, read
//! through a fresh cache so every chunk is a GET. The reads of the chunks after the one being
//! sent are under way before that one arrives, yet rows come back exactly in offset order, full
//! or projected, from any start; and a chunk that cannot be read ends the fetch with its error
//! right after the rows before it, never with rows of the chunks read ahead of it.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures::{FutureExt, StreamExt};
use inlet_cache::{CacheOptions, PagedCache};
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId};
use inlet_index::{Index, LogRead};
use inlet_reader::{FetchError, FetchRequest, FetchStream, Reader, StartPosition};
use inlet_store::{Op, ProbeStore, Step, matching};
use inlet_testkit as testkit;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Columns of the table: int64 at even positions (`c0` is 100 times the row's offset), utf8
/// at odd ones.
const COLUMNS: usize = 8;
/// Rows per append; each append becomes one WAL object holding one chunk.
const ROWS_PER_CHUNK: i64 = 2_000;
/// Appends, so objects and chunks: more than a read keeps in flight, so the read-ahead window
/// slides over the whole table.
const CHUNKS: i64 = 40;
/// The columns a projected fetch asks for, in this order: far enough apart in the chunk that
/// they are fetched as two ranges, not one.
const PROJECTED: [&str; 2] = ["c7", "c0"];
/// Small pages, so that a chunk spans many and a projected read is pruned.
const PAGE: usize = 4 * 1024;
/// Chunks a fetch must have asked the store for before the first one is answered: the first
/// and at least this many minus one after it.
const AHEAD: u64 = 4;
/// Bounds each wait of a test on the store, so that a read that never asks does not hang the
/// test; the figure is a limit, not a measurement.
const WAIT: Duration = Duration::from_secs(60);

type Store = ProbeStore<InMemory>;

fn schema() -> Arc<Schema> {
    let fields = (0..COLUMNS).map(|j| {
        let data_type = if j % 2 == 0 {
            DataType::Int64
        } else {
            DataType::Utf8
        };
        Field::new(format!("c{j}"), data_type, false)
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// Rows `start..start + ROWS_PER_CHUNK`; column `cj` of row `i` is `i * 100 + j` or a string
/// naming both.
fn rows(start: i64) -> RecordBatch {
    let columns = (0..COLUMNS as i64).map(|j| -> ArrayRef {
        let values = start..start + ROWS_PER_CHUNK;
        if j % 2 == 0 {
            Arc::new(Int64Array::from_iter_values(values.map(|i| i * 100 + j)))
        } else {
            Arc::new(StringArray::from_iter_values(
                values.map(|i| format!("row {i} column {j}")),
            ))
        }
    });
    RecordBatch::try_new(schema(), columns.collect()).expect("valid batch")
}

/// An index with table `db.t` (one bucket) holding `CHUNKS` appends, each its own WAL object.
async fn setup(store: Arc<Store>) -> Index {
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    let index = testkit::index_with_table(dyn_store.clone(), "t", schema()).await;
    let writer = testkit::start_writer(&index, dyn_store, testkit::quick_writer_options()).await;
    for chunk in 0..CHUNKS {
        writer
            .append("db", "t", &[rows(chunk * ROWS_PER_CHUNK)], None)
            .await
            .expect("append acked");
    }
    writer.close().await;
    store.take();
    index
}

/// The path of the WAL object holding `offset` of the table's only stream.
async fn object_of(index: &Index, offset: i64) -> Path {
    let table = index.table("db", "t").expect("table");
    let stream = StreamId::new(table.id, PartitionId(0), Bucket(0));
    let entries = LogRead::chunks(index, stream, Offset(offset as u64), 1)
        .await
        .expect("chunk entries");
    let entry = entries.first().expect("a chunk holds the offset");
    assert!(entry.base_offset.0 <= offset as u64 && (offset as u64) < entry.end_offset().0);
    Path::from(entry.object.path())
}

/// Starts a fetch of `columns` (empty: all) from `start` through a fresh cache, so every chunk
/// byte is read from the store.
async fn start_fetch(
    index: &Index,
    store: &Arc<Store>,
    columns: &[&str],
    start: i64,
) -> FetchStream {
    let options = CacheOptions {
        page_size: PAGE,
        ..CacheOptions::default()
    };
    let cache = PagedCache::open(store.clone(), options)
        .await
        .expect("cache opens");
    let reader = Reader::new(Arc::new(index.clone()), cache);
    reader
        .fetch(FetchRequest {
            database: "db".into(),
            table: "t".into(),
            partitions: Vec::new(),
            buckets: vec![],
            start: StartPosition::Offset(Offset(start as u64)),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            follow: false,
            limit: None,
            omit_update_before: false,
            reset_to_earliest: false,
        })
        .await
        .expect("fetch starts")
}

/// Everything the stream returns: its batches, then the error it ended with, if any.
async fn drain(mut stream: FetchStream) -> (Vec<RecordBatch>, Option<FetchError>) {
    let mut batches = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(fetched) => batches.push(fetched.batch),
            Err(error) => {
                assert!(stream.next().await.is_none(), "an error ends the stream");
                return (batches, Some(error));
            }
        }
    }
    (batches, None)
}

fn int64s(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|batch| {
            let column = batch.column_by_name(column).expect("column");
            let values = column.as_any().downcast_ref::<Int64Array>().expect("int64");
            values.values().to_vec()
        })
        .collect()
}

/// Every batch checked against the rows that were appended: exactly `offsets`, in order, each
/// row holding what [`rows`] put there for it.
fn assert_rows(batches: &[RecordBatch], columns: &[&str], offsets: std::ops::Range<i64>) {
    let expected: Vec<i64> = offsets.collect();
    assert_eq!(int64s(batches, "_offset"), expected, "offsets in order");
    let c0: Vec<i64> = expected.iter().map(|offset| offset * 100).collect();
    assert_eq!(int64s(batches, "c0"), c0, "the rows of those offsets");
    let names: Vec<String> = if columns.is_empty() {
        (0..COLUMNS).map(|j| format!("c{j}")).collect()
    } else {
        columns.iter().map(|c| (*c).to_owned()).collect()
    };
    for batch in batches {
        let offsets = int64s(std::slice::from_ref(batch), "_offset");
        let first = *offsets.first().expect("no empty batch");
        let names_found: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let mut expected_names: Vec<&str> = names.iter().map(String::as_str).collect();
        expected_names.extend(["_bucket", "_offset", "_timestamp"]);
        assert_eq!(names_found, expected_names);
        let chunk_rows = rows(first - first % ROWS_PER_CHUNK);
        let within = (first % ROWS_PER_CHUNK) as usize;
        let appended = chunk_rows.slice(within, batch.num_rows());
        for name in &names {
            assert_eq!(
                batch.column_by_name(name).expect("asked column"),
                appended.column_by_name(name).expect("appended column"),
                "column {name} from offset {first}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_chunks_come_back_in_offset_order_full_and_projected() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    let end = CHUNKS * ROWS_PER_CHUNK;
    // From the start, from inside a chunk, and from inside the last one.
    for start in [0, 3 * ROWS_PER_CHUNK + 17, end - 1] {
        for columns in [&[][..], &PROJECTED[..]] {
            let (batches, error) = drain(start_fetch(&index, &store, columns, start).await).await;
            assert!(error.is_none(), "{error:?}");
            assert_rows(&batches, columns, start..end);
        }
    }

    // The projected reads were pruned: fewer store bytes than the full read of the same rows.
    let wal_bytes = |store: &Store| {
        store
            .take()
            .iter()
            .filter(|served| served.op == Op::Get && served.path.as_ref().starts_with("wal/"))
            .map(|served| served.bytes)
            .sum::<u64>()
    };
    store.take();
    drain(start_fetch(&index, &store, &[], 0).await).await;
    let full = wal_bytes(&store);
    drain(start_fetch(&index, &store, &PROJECTED, 0).await).await;
    let projected = wal_bytes(&store);
    assert!(projected * 2 < full, "projected {projected} vs full {full}");
    index.close().await.expect("close");
}

/// While the store holds the first chunk's GET, the fetch asks for the chunks after it: it
/// has not waited for the first before asking for the next. Once released, the rows are in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_asks_for_later_chunks_before_the_first_arrives() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    let first = object_of(&index, 0).await;
    let wal_get = |op: Op, path: &Path| op == Op::Get && path.as_ref().starts_with("wal/");
    for columns in [&[][..], &PROJECTED[..]] {
        store.take();
        let first_gate = {
            let first = first.clone();
            store.hold(matching(move |op, path| {
                wal_get(op, path) && *path == first
            }))
        };
        let later_gate = {
            let first = first.clone();
            store.hold(matching(move |op, path| {
                wal_get(op, path) && *path != first
            }))
        };
        let mut stream = start_fetch(&index, &store, columns, 0).await;
        // A pruned chunk read is several GETs, so count the objects (one chunk each) asked for.
        let objects_asked = || {
            store
                .started()
                .into_iter()
                .filter(|request| wal_get(request.op, &request.path))
                .map(|request| request.path)
                .collect::<std::collections::BTreeSet<Path>>()
        };
        tokio::time::timeout(WAIT, async {
            first_gate.wait_for_held(1).await;
            while (objects_asked().len() as u64) < AHEAD {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the fetch asks for later chunks while the first is held; asked: {:?}",
                objects_asked()
            )
        });
        assert!(
            stream.next().now_or_never().is_none(),
            "nothing can be returned before the first chunk is read"
        );

        first_gate.release();
        later_gate.release();
        let (batches, error) = drain(stream).await;
        assert!(error.is_none(), "{error:?}");
        assert_rows(&batches, columns, 0..CHUNKS * ROWS_PER_CHUNK);
    }
    index.close().await.expect("close");
}

/// A chunk that cannot be read (refused by the store, or corrupt) ends the fetch with its
/// error after exactly the rows before it, although the chunks after it were read ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_chunk_ends_the_fetch_after_the_rows_before_it() {
    let store = Arc::new(Store::new(InMemory::new()));
    let index = setup(store.clone()).await;
    let bad = 5 * ROWS_PER_CHUNK;
    let object = object_of(&index, bad).await;

    let refused = {
        let object = object.clone();
        store.script(
            matching(move |op, path| op == Op::Get && *path == object),
            [],
            Step::Refuse,
        )
    };
    for columns in [&[][..], &PROJECTED[..]] {
        let (batches, error) = drain(start_fetch(&index, &store, columns, 0).await).await;
        assert_rows(&batches, columns, 0..bad);
        let error = error.expect("the refused chunk fails the fetch");
        assert!(matches!(error, FetchError::Storage { .. }), "{error}");
        assert!(error.to_string().contains(object.as_ref()), "{error}");
    }
    refused.stop();

    // Flip a byte in the middle of the chunk: both reads verify what they decode.
    let bytes = store
        .inner()
        .get(&object)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let mut bytes = bytes.to_vec();
    let body = bytes.len() / 2;
    bytes[body] ^= 0x40;
    store
        .inner()
        .put(&object, PutPayload::from(bytes))
        .await
        .expect("put");
    let (batches, error) = drain(start_fetch(&index, &store, &[], 0).await).await;
    assert_rows(&batches, &[], 0..bad);
    let error = error.expect("the corrupt chunk fails the fetch");
    assert!(matches!(error, FetchError::Corrupt { .. }), "{error}");
    index.close().await.expect("close");
}
