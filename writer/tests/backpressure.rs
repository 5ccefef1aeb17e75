//! The writer under a misbehaving store: memory held by unacknowledged appends is bounded
//! (producers wait, then get "overloaded"), and a failed WAL upload acks nobody and leaves
//! nothing visible.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use futures::StreamExt;
use inlet_cache::{CacheOptions, PagedCache};
use inlet_index::Index;
use inlet_reader::{FetchRequest, Reader, StartPosition};
use inlet_store::{Matcher, Op, ProbeStore, Step, matching};
use inlet_testkit as testkit;
use inlet_writer::{AppendError, Writer, WriterOptions};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

/// An in-memory store whose WAL PUTs the tests hold back or make fail.
type Store = ProbeStore<InMemory>;

fn wal_puts() -> Matcher {
    matching(|op, path| op == Op::Put && path.as_ref().starts_with("wal/"))
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

fn rows(range: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(Int64Array::from_iter_values(range))],
    )
    .expect("valid batch")
}

async fn setup(store: Arc<Store>, options: WriterOptions) -> (Index, Writer) {
    let store: Arc<dyn ObjectStore> = store;
    let index = testkit::index_with_table(store.clone(), "t", schema()).await;
    let writer = testkit::start_writer(&index, store, options).await;
    (index, writer)
}

async fn read_values(index: &Index, store: Arc<Store>) -> Vec<i64> {
    // A fresh cache: read what is in the store, not what the writer cached.
    let cache = PagedCache::open(store, CacheOptions::default())
        .await
        .expect("cache opens");
    let reader = Reader::new(Arc::new(index.clone()), cache);
    let mut stream = reader
        .fetch(FetchRequest {
            database: "db".into(),
            table: "t".into(),
            partitions: Vec::new(),
            buckets: vec![],
            start: StartPosition::Earliest,
            columns: vec!["v".into()],
            follow: false,
            limit: None,
            omit_update_before: false,
            reset_to_earliest: false,
        })
        .await
        .expect("fetch starts");
    let mut values = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.expect("fetch succeeds").batch;
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64");
        values.extend(column.values().iter().copied());
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_wait_then_get_overloaded_when_the_buffer_is_full() {
    let store = Arc::new(Store::new(InMemory::new()));
    let held = store.hold(wal_puts());
    let options = WriterOptions {
        linger: Duration::from_millis(1),
        max_buffered_bytes: 256 * 1024,
        overload_timeout: Duration::from_millis(300),
        ..WriterOptions::default()
    };
    let (index, writer) = setup(store.clone(), options).await;

    // ~80 KiB of rows: accepted, parked behind the held upload. Once its WAL PUT reached the
    // store, the rows' buffer space is taken until the ack.
    let first = {
        let writer = writer.clone();
        tokio::spawn(async move { writer.append("db", "t", &[rows(0..10_000)], None).await })
    };
    tokio::time::timeout(Duration::from_secs(30), held.wait_for_held(1))
        .await
        .expect("the first append's upload reaches the store");
    assert!(!first.is_finished(), "no ack while the upload is held");

    // ~240 KiB more does not fit: the producer waits, then is told the writer is overloaded.
    let error = writer
        .append("db", "t", &[rows(10_000..40_000)], None)
        .await
        .expect_err("buffer is full");
    assert!(matches!(error, AppendError::Overloaded { .. }), "{error}");
    assert!(error.to_string().contains("overloaded"), "{error}");
    assert!(
        !first.is_finished(),
        "still no ack after the overload timeout: the upload is held"
    );

    held.release();
    let acked = first.await.expect("task").expect("first append acked");
    assert_eq!((acked[0].base_offset.0, acked[0].row_count), (0, 10_000));

    // Space is back once the first append is acked; the rejected one left nothing behind.
    let next = writer
        .append("db", "t", &[rows(50_000..50_010)], None)
        .await
        .expect("space is released after the ack");
    assert_eq!(next[0].base_offset.0, 10_000);
    let values = read_values(&index, store).await;
    assert_eq!(values.len(), 10_010);
    assert!(values.iter().all(|v| *v < 10_000 || *v >= 50_000));
    writer.close().await;
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_acks_nobody_and_shows_nothing() {
    let store = Arc::new(Store::new(InMemory::new()));
    let failing = store.script(wal_puts(), [], Step::FailBefore);
    let options = WriterOptions {
        linger: Duration::from_millis(1),
        upload_attempts: 2,
        ..WriterOptions::default()
    };
    let (index, writer) = setup(store.clone(), options).await;

    let error = writer
        .append("db", "t", &[rows(0..100)], None)
        .await
        .expect_err("upload fails");
    assert!(matches!(error, AppendError::Upload(_)), "{error}");
    assert!(error.to_string().contains("after 2 attempts"), "{error}");
    assert!(read_values(&index, store.clone()).await.is_empty());

    failing.stop();
    let acked = writer
        .append("db", "t", &[rows(100..150)], None)
        .await
        .expect("append after the store heals");
    assert_eq!(
        acked[0].base_offset.0, 0,
        "the failed append took no offsets"
    );
    assert_eq!(
        read_values(&index, store).await,
        (100..150).collect::<Vec<_>>()
    );
    writer.close().await;
    index.close().await.expect("close");
}
