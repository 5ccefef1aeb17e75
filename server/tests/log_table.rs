//! Log tables end to end through the real server and gRPC client: produce and consume,
//! projection, concurrent producers, restart, follow, and start positions.
//!
//! A conformance suite: every scenario is a plain async function run against each backend
//! (in-memory, local filesystem, and S3 through moto on loopback); see the bottom of the file.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::backend::Backend;
use common::*;
use inlet::node::Node;
use inlet_core::clock::{Clock, Env, SeededIdGen, SystemClock};
use inlet_core::ids::TimestampMicros;
use inlet_proto::v1 as pb;

/// A clock that moves only when the test says: commit timestamps are the sequencer's reading
/// of the injected clock, so a test that needs two commits apart in time moves it.
#[derive(Debug)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn starting_now() -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(SystemClock.now().0)))
    }

    fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).expect("a short step");
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> TimestampMicros {
        TimestampMicros(self.0.load(Ordering::SeqCst))
    }
}

async fn produce_then_consume_returns_every_row_at_its_acked_offset(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "events", 4, &["id"]).await;

    let mut acked: BTreeMap<(u32, u64), i64> = BTreeMap::new();
    for round in 0..10 {
        let ids: Vec<i64> = (round * 100..round * 100 + 100).collect();
        let input = batch(ids.clone());
        let results = client
            .append("db", "events", &schema(), std::slice::from_ref(&input))
            .await
            .expect("append succeeds");
        assert_eq!(results.iter().map(|r| r.row_count).sum::<u64>(), 100);
        // Rows of each bucket keep their order: map them back through the bucket transform.
        let buckets = inlet_core::bucket::bucket_rows(&input, &[0], 4);
        for result in results {
            let in_bucket: Vec<i64> = ids
                .iter()
                .zip(&buckets)
                .filter(|(_, b)| **b == result.bucket)
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(in_bucket.len() as u64, result.row_count);
            for (i, id) in in_bucket.into_iter().enumerate() {
                acked.insert((result.bucket, result.base_offset + i as u64), id);
            }
        }
    }

    let rows = read_all(&mut client, "db", "events").await;
    assert_eq!(rows.len(), 1000);
    let read: BTreeMap<(u32, u64), i64> = rows.iter().map(|r| ((r.0, r.1), r.2)).collect();
    assert_eq!(read, acked, "every acked row is read at its acked offset");
    for (_, _, id, name) in &rows {
        assert_eq!(name.as_deref(), Some(format!("name-{id}").as_str()));
    }
    // Offsets are dense per bucket.
    for bucket in 0..4u32 {
        let offsets: Vec<u64> = rows.iter().filter(|r| r.0 == bucket).map(|r| r.1).collect();
        assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
    }
    node.shutdown().await.expect("clean shutdown");
}

async fn projection_returns_only_the_asked_columns(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 1, &[]).await;
    client
        .append("db", "t", &schema(), &[batch(0..50)])
        .await
        .expect("append succeeds");

    let mut request = fetch_request("db", "t");
    request.columns = vec!["name".to_owned()];
    let batches = client.fetch_all(request).await.expect("fetch succeeds");
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["name", "_bucket", "_offset", "_timestamp"]);
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 50);

    let mut unknown = fetch_request("db", "t");
    unknown.columns = vec!["nope".to_owned()];
    let error = client.fetch_all(unknown).await.expect_err("unknown column");
    assert!(error.to_string().contains("no column `nope`"), "{error}");
    node.shutdown().await.expect("clean shutdown");
}

async fn concurrent_producers_get_dense_unique_offsets(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 2, &[]).await;

    let mut tasks = Vec::new();
    for producer in 0..8i64 {
        let mut client = connect(&node).await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25i64 {
                let size = 1 + (producer * 7 + i * 3) % 40;
                let first = producer * 1_000_000 + i * 1000;
                let results = client
                    .append("db", "t", &schema(), &[batch(first..first + size)])
                    .await
                    .expect("append succeeds");
                assert_eq!(
                    results.len(),
                    1,
                    "an append without a key goes to one bucket"
                );
                acked.push((
                    results[0].bucket,
                    results[0].base_offset,
                    first,
                    size as u64,
                ));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("producer task"));
    }

    // Per bucket, the acked ranges tile 0..n with no gap and no overlap.
    for bucket in 0..2u32 {
        let mut ranges: Vec<(u64, u64)> = acked
            .iter()
            .filter(|a| a.0 == bucket)
            .map(|a| (a.1, a.1 + a.3))
            .collect();
        ranges.sort();
        let mut next = 0;
        for (start, end) in ranges {
            assert_eq!(start, next, "bucket {bucket}: gap or overlap at {start}");
            next = end;
        }
    }
    let rows = read_all(&mut client, "db", "t").await;
    let read: BTreeMap<(u32, u64), i64> = rows.iter().map(|r| ((r.0, r.1), r.2)).collect();
    let total: u64 = acked.iter().map(|a| a.3).sum();
    assert_eq!(read.len() as u64, total);
    for (bucket, base, first, size) in acked {
        for i in 0..size {
            assert_eq!(read.get(&(bucket, base + i)), Some(&(first + i as i64)));
        }
    }
    node.shutdown().await.expect("clean shutdown");
}

async fn acked_rows_survive_a_restart_on_the_same_store(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 3, &["id"]).await;
    for round in 0..5 {
        client
            .append("db", "t", &schema(), &[batch(round * 40..round * 40 + 40)])
            .await
            .expect("append succeeds");
    }
    let before = read_all(&mut client, "db", "t").await;
    assert_eq!(before.len(), 200);
    node.shutdown().await.expect("clean shutdown");

    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    let after = read_all(&mut client, "db", "t").await;
    assert_eq!(after, before, "same rows at the same offsets after restart");

    // New rows continue each bucket's offsets.
    let latest = latest_offsets(&mut client, "db", "t").await;
    let results = client
        .append("db", "t", &schema(), &[batch(1000..1030)])
        .await
        .expect("append after restart");
    for result in results {
        assert_eq!(result.base_offset, latest[result.bucket as usize]);
    }
    node.shutdown().await.expect("clean shutdown");
}

async fn follow_delivers_rows_appended_after_it_started(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 2, &["id"]).await;
    client
        .append("db", "t", &schema(), &[batch(0..10)])
        .await
        .expect("append succeeds");

    let mut request = fetch_request("db", "t");
    request.follow = true;
    request.start = Some(pb::StartPosition {
        position: Some(pb::start_position::Position::Latest(true)),
    });
    let mut stream = client.fetch(request).await.expect("follow starts");

    let mut producer = connect(&node).await;
    producer
        .append("db", "t", &schema(), &[batch(100..120)])
        .await
        .expect("append succeeds");

    let mut seen = Vec::new();
    while seen.len() < 20 {
        let response = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("follower receives the new rows")
            .expect("stream healthy")
            .expect("stream open");
        seen.extend(rows_of(
            &inlet::client::decode_fetched(&response).expect("decodes"),
        ));
    }
    let mut ids: Vec<i64> = seen.iter().map(|r| r.2).collect();
    ids.sort();
    assert_eq!(
        ids,
        (100..120).collect::<Vec<_>>(),
        "only rows after the start"
    );
    node.shutdown()
        .await
        .expect("clean shutdown ends the follower");
}

async fn start_positions_offset_timestamp_latest_and_limit(backend: Backend) {
    let clock = ManualClock::starting_now();
    let env = Env {
        clock: clock.clone(),
        ids: Arc::new(SeededIdGen::from_entropy(&SystemClock)),
    };
    let node = Node::start_with_store(&test_config(), backend.store(), env)
        .await
        .expect("node starts");
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 1, &[]).await;
    let first = client
        .append("db", "t", &schema(), &[batch(0..10)])
        .await
        .expect("append");
    // The second append commits a second later: a timestamp can tell the two apart.
    clock.advance(Duration::from_secs(1));
    let second = client
        .append("db", "t", &schema(), &[batch(10..20)])
        .await
        .expect("append");
    assert!(second[0].commit_timestamp_micros > first[0].commit_timestamp_micros);

    let from = |position| {
        let mut request = fetch_request("db", "t");
        request.start = Some(pb::StartPosition {
            position: Some(position),
        });
        request
    };
    use pb::start_position::Position;
    let rows = rows_of(
        &client
            .fetch_all(from(Position::Offset(15)))
            .await
            .expect("fetch"),
    );
    assert_eq!(
        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        (15..20).collect::<Vec<_>>()
    );

    let ts = second[0].commit_timestamp_micros;
    let rows = rows_of(
        &client
            .fetch_all(from(Position::TimestampMicros(ts)))
            .await
            .expect("fetch"),
    );
    assert_eq!(
        rows.first().map(|r| r.1),
        Some(10),
        "first row committed at or after ts"
    );

    let rows = rows_of(
        &client
            .fetch_all(from(Position::Latest(true)))
            .await
            .expect("fetch"),
    );
    assert!(rows.is_empty());

    let mut limited = from(Position::Offset(3));
    limited.limit = 4;
    let rows = rows_of(&client.fetch_all(limited).await.expect("fetch"));
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );

    let offsets = client
        .raw()
        .list_offsets(pb::ListOffsetsRequest {
            path: Some(inlet::client::path("db", "t")),
            buckets: vec![],
            partitions: vec![],
            position: Some(pb::StartPosition {
                position: Some(Position::TimestampMicros(ts)),
            }),
        })
        .await
        .expect("list offsets")
        .into_inner()
        .buckets;
    assert_eq!(offsets.len(), 1);
    assert_eq!(
        (offsets[0].earliest_offset, offsets[0].latest_offset),
        (0, 20)
    );
    assert_eq!(offsets[0].offset, 10);

    let error = client
        .fetch_all(from(Position::Offset(21)))
        .await
        .expect_err("beyond the tail");
    assert!(error.to_string().contains("out of range"), "{error}");
    node.shutdown().await.expect("clean shutdown");
}

/// Runs every scenario against one backend, one test per scenario.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            conformance!(@tests $make;
                produce_then_consume_returns_every_row_at_its_acked_offset,
                projection_returns_only_the_asked_columns,
                concurrent_producers_get_dense_unique_offsets,
                acked_rows_survive_a_restart_on_the_same_store,
                follow_delivers_rows_appended_after_it_started,
                start_positions_offset_timestamp_latest_and_limit,
            );
        }
    };
    (@tests $make:expr; $($scenario:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let make = $make;
                super::$scenario(make(stringify!($scenario)).await).await;
            }
        )*
    };
}

conformance!(memory, |_: &str| async { Backend::memory() });
conformance!(local, |_: &str| async { Backend::local() });
conformance!(s3, |name: &'static str| Backend::s3(name));

/// A follower that started before an ALTER keeps the columns it started with: rows written
/// after a column was added come without it, rows written after a column widened come
/// narrowed back while their values fit, and a value that does not fit ends the follow with a
/// clear, retryable error. A fetch started then reads every row under the new schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_keeps_its_columns_across_an_alter() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    let node = start(Arc::new(slatedb::object_store::memory::InMemory::new())).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 1, &["id"]).await;
    let alter = |add: Option<Field>, widen: Option<Field>| {
        let ipc = |field: Option<Field>| {
            field.map_or_else(Vec::new, |field| {
                inlet_core::ipc::schema_to_ipc(&Schema::new(vec![field])).expect("ipc")
            })
        };
        pb::AlterTableRequest {
            path: Some(inlet::client::path("db", "t")),
            add_columns_ipc: ipc(add),
            widen_columns_ipc: ipc(widen),
            ..Default::default()
        }
    };
    // Rows with ids `ids` and their rank in `rank`'s type (`note` too when given).
    let rows = |ids: std::ops::Range<i64>, rank: ArrayRef, note: bool| {
        let mut fields = vec![
            Field::new("id", DataType::Int64, false),
            Field::new("rank", rank.data_type().clone(), true),
        ];
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from_iter_values(ids.clone())), rank];
        if note {
            fields.push(Field::new("note", DataType::Utf8, true));
            columns.push(Arc::new(StringArray::from_iter_values(
                ids.map(|id| format!("n{id}")),
            )));
        }
        let schema = Arc::new(Schema::new(fields));
        (
            schema.clone(),
            RecordBatch::try_new(schema, columns).expect("batch"),
        )
    };
    let int32 = |values: &[i32]| -> ArrayRef { Arc::new(Int32Array::from(values.to_vec())) };
    let int64 = |values: &[i64]| -> ArrayRef { Arc::new(Int64Array::from(values.to_vec())) };

    client
        .raw()
        .alter_table(alter(Some(Field::new("rank", DataType::Int32, true)), None))
        .await
        .expect("rank added");
    let (schema, first) = rows(0..2, int32(&[10, 11]), false);
    client
        .append("db", "t", &schema, &[first])
        .await
        .expect("append");
    let mut follow = fetch_request("db", "t");
    follow.follow = true;
    let mut stream = client.clone().fetch(follow).await.expect("follow starts");
    let mut next_rows = async || -> Result<RecordBatch, tonic::Status> {
        let response = stream.message().await?.expect("the follow is open");
        Ok(inlet::client::decode_fetched(&response)
            .expect("decodes")
            .remove(0))
    };
    let got = next_rows().await.expect("rows");
    assert_eq!(
        got.schema()
            .field_with_name("rank")
            .expect("rank")
            .data_type(),
        &DataType::Int32
    );

    // A column added: the follower's rows come without it.
    client
        .raw()
        .alter_table(alter(Some(Field::new("note", DataType::Utf8, true)), None))
        .await
        .expect("note added");
    let (schema, noted) = rows(2..4, int32(&[12, 13]), true);
    client
        .append("db", "t", &schema, &[noted])
        .await
        .expect("append");
    let got = next_rows().await.expect("rows");
    assert!(
        got.schema().field_with_name("note").is_err(),
        "{:?}",
        got.schema()
    );
    assert_eq!(
        got.column_by_name("rank")
            .expect("rank")
            .as_primitive::<Int32Type>()
            .values(),
        &[12, 13]
    );

    // The column widened: values that fit come back in the follower's type.
    client
        .raw()
        .alter_table(alter(None, Some(Field::new("rank", DataType::Int64, true))))
        .await
        .expect("rank widened");
    let (schema, wide) = rows(4..6, int64(&[14, 15]), true);
    client
        .append("db", "t", &schema, &[wide])
        .await
        .expect("append");
    let got = next_rows().await.expect("rows");
    assert_eq!(
        got.column_by_name("rank")
            .expect("rank")
            .as_primitive::<Int32Type>()
            .values(),
        &[14, 15]
    );

    // One that does not fit ends the follow, saying why and what to do.
    let (schema, huge) = rows(6..7, int64(&[1 << 40]), true);
    client
        .append("db", "t", &schema, &[huge])
        .await
        .expect("append");
    let error = next_rows().await.expect_err("the follow ends");
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error:?}");
    assert!(
        error.message().contains("changed schema during the fetch"),
        "{error:?}"
    );
    assert!(error.message().contains("`rank` is Int64"), "{error:?}");

    // A fetch started now reads every row under the new schema.
    let batches = client
        .fetch_all(fetch_request("db", "t"))
        .await
        .expect("fetch");
    let ranks: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("rank")
                .expect("rank")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ranks, vec![10, 11, 12, 13, 14, 15, 1 << 40]);
    node.shutdown().await.expect("shutdown");
}
