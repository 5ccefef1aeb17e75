//! Partitioned log tables end to end through the real server and gRPC client: rows route to
//! partition then bucket, partitions are created by the appends that first name them (or up
//! front), a fetch filtered to some partitions reads only their streams, and a follow of every
//! partition picks up partitions created after it started. Across processes: a writer node
//! creates partitions through the owner, and a reader node reads them at once, through the
//! CLI.

// The process test waits in real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::backend::Backend;
use common::process::{ok, run_cli, spawn_node};
use common::*;
use inlet::client::{Client, decode_fetched};
use inlet_proto::v1 as pb;

const DAYS: [&str; 3] = ["2026-12-07", "2026-12-08", "2026-12-09"];

/// `day: utf8 not null, id: int64 not null, payload: utf8`.
fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
    ]))
}

/// Rows `(day, id)` with a payload of `payload` bytes each.
fn events(rows: &[(&str, i64)], payload: usize) -> RecordBatch {
    let days: Vec<&str> = rows.iter().map(|(day, _)| *day).collect();
    let ids: Vec<i64> = rows.iter().map(|(_, id)| *id).collect();
    let payloads: Vec<String> = ids
        .iter()
        .map(|id| format!("{id:0>width$}", width = payload))
        .collect();
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(StringArray::from(days)),
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(payloads)),
        ],
    )
    .expect("valid batch")
}

async fn create_events(client: &mut Client, name: &str) -> pb::TableInfo {
    client.create_database("db", true).await.expect("database");
    let descriptor = pb::TableDescriptor {
        schema_ipc: inlet_core::ipc::schema_to_ipc(&events_schema()).expect("schema"),
        bucket_count: 2,
        bucket_key: vec!["id".to_owned()],
        partition_key: vec!["day".to_owned()],
        ..Default::default()
    };
    client
        .create_table_from("db", name, descriptor, false)
        .await
        .expect("partitioned table created")
}

/// Every row fetched by `request`: (partition id, bucket, offset) → (day, id), each
/// (partition, bucket) checked to be read in dense offset order.
async fn fetch_rows(
    client: &mut Client,
    request: pb::FetchRequest,
) -> anyhow::Result<BTreeMap<(u32, u32, u64), (String, i64)>> {
    let mut stream = client.fetch(request).await?;
    let mut rows = BTreeMap::new();
    let mut next: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    while let Some(response) = stream.message().await? {
        for batch in decode_fetched(&response)? {
            let days = batch.column_by_name("day").expect("day").as_string::<i32>();
            let ids = batch.column_by_name("id").expect("id");
            let buckets = batch.column_by_name("_bucket").expect("_bucket");
            let offsets = batch.column_by_name("_offset").expect("_offset");
            for i in 0..batch.num_rows() {
                let bucket = buckets.as_primitive::<Int32Type>().value(i) as u32;
                assert_eq!(bucket, response.bucket);
                let offset = offsets.as_primitive::<Int64Type>().value(i) as u64;
                let stream = (response.partition_id, bucket);
                let expected = next.insert(stream, offset + 1).unwrap_or(0);
                assert_eq!(
                    offset, expected,
                    "stream {stream:?} is read in offset order"
                );
                let id = ids.as_primitive::<Int64Type>().value(i);
                rows.insert(
                    (response.partition_id, bucket, offset),
                    (days.value(i).to_owned(), id),
                );
            }
        }
    }
    Ok(rows)
}

fn filtered(table: &str, partitions: &[&str]) -> pb::FetchRequest {
    pb::FetchRequest {
        partitions: partitions.iter().map(|p| p.to_string()).collect(),
        ..fetch_request("db", table)
    }
}

/// Bytes the node fetched from the store into its cache so far.
async fn bytes_fetched(client: &mut Client) -> u64 {
    client
        .raw()
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .cache_bytes_fetched
}

/// The error a fetch that must be refused ends with.
async fn refused(client: &mut Client, request: pb::FetchRequest) -> String {
    client
        .fetch_all(request)
        .await
        .expect_err("refused")
        .to_string()
}

/// The next batch of a follow: its partition and ids.
async fn next_ids(
    stream: &mut tonic::Streaming<pb::FetchResponse>,
) -> anyhow::Result<(u32, Vec<i64>)> {
    let response = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await??
        .ok_or_else(|| anyhow::anyhow!("the follow ended"))?;
    let ids: Vec<i64> = decode_fetched(&response)?
        .iter()
        .flat_map(|b| {
            b.column_by_name("id")
                .map(|c| c.as_primitive::<Int64Type>().values().to_vec())
                .unwrap_or_default()
        })
        .collect();
    Ok((response.partition_id, ids))
}

async fn rows_route_to_partitions_and_a_filter_reads_only_their_streams(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    let created = create_events(&mut client, "events").await;
    assert!(created.partitions.is_empty(), "no partition before a write");

    // One append naming three days creates three partitions and routes each row to its own.
    let mixed: Vec<(&str, i64)> = (0..12).map(|i| (DAYS[i as usize % 3], i)).collect();
    let results = client
        .append("db", "events", &events_schema(), &[events(&mixed, 8)])
        .await
        .expect("append");
    let table = client.table("db", "events").await.expect("table");
    let ids: BTreeMap<String, u32> = table
        .info
        .partitions
        .iter()
        .map(|p| (p.name.clone(), p.id))
        .collect();
    assert_eq!(
        ids.keys().collect::<Vec<_>>(),
        DAYS.iter().collect::<Vec<_>>()
    );
    assert_eq!(
        ids.values().copied().collect::<BTreeSet<u32>>(),
        BTreeSet::from([1, 2, 3])
    );
    let acked: u64 = results.iter().map(|r| r.row_count).sum();
    assert_eq!(acked, 12);
    assert!(results.iter().all(|r| (1..=3).contains(&r.partition_id)));
    // Each partition has every bucket as a stream of its own.
    assert_eq!(table.buckets.len(), 3 * 2);

    // Each day then gets appends of its own, large enough to fill WAL objects of their own.
    let mut id = 100;
    for day in DAYS {
        for _ in 0..3 {
            let rows: Vec<(&str, i64)> = (id..id + 2000).map(|i| (day, i)).collect();
            id += 2000;
            client
                .append("db", "events", &events_schema(), &[events(&rows, 200)])
                .await
                .expect("append");
        }
    }

    // Every row is read back, in the partition its day names.
    let all = fetch_rows(&mut client, fetch_request("db", "events"))
        .await
        .expect("fetch");
    assert_eq!(all.len(), 12 + 3 * 3 * 2000);
    for ((partition, ..), (day, _)) in &all {
        assert_eq!(
            ids[day], *partition,
            "row of {day} in partition {partition}"
        );
    }

    // A filter reads its partitions only, in full.
    let one = fetch_rows(&mut client, filtered("events", &[DAYS[1]]))
        .await
        .expect("filtered fetch");
    let expected: BTreeMap<_, _> = all
        .iter()
        .filter(|(_, (day, _))| day == DAYS[1])
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    assert_eq!(one, expected);
    let two = fetch_rows(&mut client, filtered("events", &[DAYS[0], DAYS[2]]))
        .await
        .expect("filtered fetch");
    assert_eq!(one.len() + two.len(), all.len());

    // Unknown, repeated or misplaced filters are refused before anything is read.
    create_table(&mut client, "db", "plain", 1, &[]).await;
    let error = refused(&mut client, filtered("events", &["2027-01-01"])).await;
    assert!(error.contains("no partition `2027-01-01`"), "{error}");
    let error = refused(&mut client, filtered("events", &[DAYS[0], DAYS[0]])).await;
    assert!(error.contains("asked for twice"), "{error}");
    let error = refused(&mut client, filtered("plain", &[DAYS[0]])).await;
    assert!(error.contains("no partition key"), "{error}");

    // On a cold cache, reading one partition of three fetches about a third of the bytes a
    // read of all of them does: the other partitions' WAL objects are never read.
    node.shutdown().await.expect("shutdown");
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    let before = bytes_fetched(&mut client).await;
    let one_again = fetch_rows(&mut client, filtered("events", &[DAYS[1]]))
        .await
        .expect("filtered fetch");
    assert_eq!(one_again, one);
    let one_bytes = bytes_fetched(&mut client).await - before;
    node.shutdown().await.expect("shutdown");
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    let before = bytes_fetched(&mut client).await;
    fetch_rows(&mut client, fetch_request("db", "events"))
        .await
        .expect("fetch");
    let all_bytes = bytes_fetched(&mut client).await - before;
    assert!(
        one_bytes * 2 < all_bytes,
        "a read of one partition of three fetched {one_bytes} bytes, one of all {all_bytes}"
    );
    node.shutdown().await.expect("shutdown");
}

async fn partitions_created_up_front_and_by_idempotent_appends(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_events(&mut client, "events").await;
    let created = client
        .raw()
        .create_partitions(pb::CreatePartitionsRequest {
            path: Some(inlet::client::path("db", "events")),
            partitions: vec![
                pb::PartitionValues {
                    values: vec![DAYS[2].to_owned()],
                },
                pb::PartitionValues {
                    values: vec![DAYS[0].to_owned()],
                },
            ],
        })
        .await
        .expect("created up front")
        .into_inner()
        .partitions;
    let names: Vec<(u32, &str)> = created.iter().map(|p| (p.id, p.name.as_str())).collect();
    assert_eq!(names, [(1, DAYS[2]), (2, DAYS[0])]);
    let error = client
        .raw()
        .create_partitions(pb::CreatePartitionsRequest {
            path: Some(inlet::client::path("db", "events")),
            partitions: vec![pb::PartitionValues {
                values: vec!["a/b".to_owned()],
            }],
        })
        .await
        .expect_err("refused");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(error.message().contains("a/b"), "{error:?}");

    // An idempotent append across an existing and a new partition; its retry gets the same
    // partitions and offsets back and appends nothing.
    let rows = events(&[(DAYS[0], 1), (DAYS[1], 2), (DAYS[1], 3)], 8);
    let request = pb::AppendRequest {
        path: Some(inlet::client::path("db", "events")),
        batches_ipc: inlet_core::ipc::batches_to_ipc(&events_schema(), &[rows]).expect("ipc"),
        producer_id: 77,
        sequence: 1,
        partial: false,
    };
    let first = client
        .raw()
        .append(request.clone())
        .await
        .expect("append")
        .into_inner();
    let retried = client
        .raw()
        .append(request)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, retried);
    let partitions: BTreeSet<u32> = first.buckets.iter().map(|b| b.partition_id).collect();
    assert_eq!(partitions, BTreeSet::from([2, 3]));
    let all = fetch_rows(&mut client, fetch_request("db", "events"))
        .await
        .expect("fetch");
    assert_eq!(all.len(), 3, "the retry appended nothing");

    // A partition-key value that cannot name a partition refuses the whole append.
    let error = client
        .append(
            "db",
            "events",
            &events_schema(),
            &[events(&[(DAYS[0], 4), ("not a day", 5)], 8)],
        )
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("not a day"), "{error}");
    let table = client.table("db", "events").await.expect("table");
    assert_eq!(table.info.partitions.len(), 3);
    let all = fetch_rows(&mut client, fetch_request("db", "events"))
        .await
        .expect("fetch");
    assert_eq!(all.len(), 3, "nothing of the refused append is visible");
    node.shutdown().await.expect("shutdown");
}

/// Runs every scenario against one backend, one test per scenario.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            conformance!(@tests $make;
                rows_route_to_partitions_and_a_filter_reads_only_their_streams,
                partitions_created_up_front_and_by_idempotent_appends,
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

/// A follow of every partition reads partitions created after it started, from their first
/// row; a follow of one partition reads only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_of_every_partition_picks_up_new_partitions() -> anyhow::Result<()> {
    let node = start(Backend::memory().store()).await;
    let mut client = connect(&node).await;
    create_events(&mut client, "events").await;
    client
        .append(
            "db",
            "events",
            &events_schema(),
            &[events(&[(DAYS[0], 1)], 8)],
        )
        .await?;
    let follow = |partitions: &[&str]| pb::FetchRequest {
        follow: true,
        ..filtered("events", partitions)
    };
    let mut every = client.fetch(follow(&[])).await?;
    let mut first_only = client.fetch(follow(&[DAYS[0]])).await?;
    assert_eq!(next_ids(&mut every).await?, (1, vec![1]));
    assert_eq!(next_ids(&mut first_only).await?, (1, vec![1]));

    // A new day: its partition is created by this append, after both follows started.
    client
        .append(
            "db",
            "events",
            &events_schema(),
            &[events(&[(DAYS[1], 2)], 8)],
        )
        .await?;
    assert_eq!(next_ids(&mut every).await?, (2, vec![2]));
    client
        .append(
            "db",
            "events",
            &events_schema(),
            &[events(&[(DAYS[0], 3)], 8)],
        )
        .await?;
    assert_eq!(next_ids(&mut first_only).await?, (1, vec![3]));
    assert_eq!(next_ids(&mut every).await?, (1, vec![3]));
    drop((every, first_only));
    node.shutdown().await?;
    Ok(())
}

/// Separate processes: an owner, a writer node and a reader node. Appends through the writer
/// create partitions through the owner; the reader lists and reads them at once; the CLI
/// creates a table with a partition key, adds a partition up front, lists partitions with
/// their rows and consumes one partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_across_writer_and_reader_processes_and_the_cli() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("bucket");
    std::fs::create_dir_all(&store)?;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs)?;
    let (_owner, owner) = spawn_node(&store, &logs, "owner", "index", |_| {});
    let cli = |server: &str, args: &[&str]| run_cli(server, &[], args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cli(&owner, &["db", "list"]).status.success() {
        anyhow::ensure!(Instant::now() < deadline, "the owner did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_writer, writer) = spawn_node(&store, &logs, "writer", "writer", |_| {});
    let (_reader, reader) = spawn_node(&store, &logs, "reader", "reader", |_| {});
    ok(cli(
        &owner,
        &[
            "table",
            "create",
            "shop.visits",
            "--schema",
            "day:string not null, id:int64 not null, page:string",
            "--buckets",
            "2",
            "--bucket-key",
            "id",
            "--partition-key",
            "day",
        ],
    ));
    let lines: String = (0..30)
        .map(|i| {
            format!(
                "{{\"day\":\"{}\",\"id\":{i},\"page\":\"p{i}\"}}\n",
                DAYS[i % 3]
            )
        })
        .collect();
    let input = dir.path().join("visits.jsonl");
    std::fs::write(&input, lines)?;
    let input = input.to_str().expect("utf-8 path");
    // The writer node may still be finding the owner.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let produced = cli(&writer, &["produce", "shop.visits", "--file", input]);
        if produced.status.success() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "produce failed: {}",
            String::from_utf8_lossy(&produced.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The reader process reads the new partitions at once, with no wait for a catalog push.
    let consumed = ok(cli(
        &reader,
        &[
            "consume",
            "shop.visits",
            "--partitions",
            DAYS[1],
            "--format",
            "json",
        ],
    ));
    let ids: BTreeSet<i64> = consumed
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("json row");
            assert_eq!(row["day"], DAYS[1], "{line}");
            row["id"].as_i64().expect("id")
        })
        .collect();
    assert_eq!(ids, (0..30).filter(|i| i % 3 == 1).collect());

    let added = ok(cli(
        &reader,
        &["table", "partitions", "shop.visits", "--add", "2026-12-10"],
    ));
    assert!(added.contains("partition 2026-12-10 (id 4)"), "{added}");
    let listed = ok(cli(&reader, &["table", "partitions", "shop.visits"]));
    let rows: BTreeMap<&str, u64> = listed
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields[1], fields[3].parse().expect("rows"))
        })
        .collect();
    assert_eq!(
        rows,
        BTreeMap::from([
            (DAYS[0], 10),
            (DAYS[1], 10),
            (DAYS[2], 10),
            ("2026-12-10", 0)
        ]),
        "{listed}"
    );
    let described = ok(cli(&reader, &["table", "describe", "shop.visits"]));
    assert!(
        described.contains("partition key: day (4 partitions)"),
        "{described}"
    );

    // A dropped partition leaves the table at once: listings and reads no longer see it.
    let dropped = ok(cli(
        &writer,
        &["table", "partitions", "shop.visits", "--drop", DAYS[0]],
    ));
    assert!(dropped.contains("dropped 1 partitions"), "{dropped}");
    let listed = ok(cli(&reader, &["table", "partitions", "shop.visits"]));
    assert!(
        !listed.contains(DAYS[0]) && listed.contains(DAYS[1]),
        "{listed}"
    );
    let consumed = ok(cli(
        &reader,
        &["consume", "shop.visits", "--format", "json"],
    ));
    assert_eq!(consumed.lines().count(), 20, "{consumed}");
    let missing = cli(
        &reader,
        &["consume", "shop.visits", "--partitions", DAYS[0]],
    );
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no partition"),
        "{missing:?}"
    );
    Ok(())
}

/// `day: utf8 not null, id: int64 not null, v: int64`.
fn keyed_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn keyed(rows: &[(&str, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        keyed_schema(),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|(day, ..)| *day).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|(_, id, _)| *id).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|(.., v)| *v).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid batch")
}

/// Keys `(day, id)` as a batch of the key columns.
fn keys(keys: &[(&str, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("day", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                keys.iter().map(|(day, _)| *day).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                keys.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid keys")
}

/// `(day, id, v)` of each row of `batch`.
fn keyed_rows(batch: &RecordBatch) -> Vec<(String, i64, i64)> {
    let days = batch.column_by_name("day").expect("day").as_string::<i32>();
    let ids = batch.column_by_name("id").expect("id");
    let vs = batch.column_by_name("v").expect("v");
    (0..batch.num_rows())
        .map(|i| {
            (
                days.value(i).to_owned(),
                ids.as_primitive::<Int64Type>().value(i),
                vs.as_primitive::<Int64Type>().value(i),
            )
        })
        .collect()
}

/// A partitioned primary-key table: the key holds the partition columns (a key's rows stay
/// in one partition), the bucket key defaults to the rest of the key, and upserts, deletes,
/// lookups (point and by bucket key across partitions), the changelog and snapshots work per
/// partition; a delete of a key in a partition that does not exist creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_primary_key_table_keeps_each_keys_rows_in_its_partition()
-> anyhow::Result<()> {
    let node = start(Backend::memory().store()).await;
    let mut client = connect(&node).await;
    client.create_database("db", true).await?;
    let descriptor = |primary_key: &[&str]| pb::TableDescriptor {
        schema_ipc: inlet_core::ipc::schema_to_ipc(&keyed_schema()).expect("schema"),
        bucket_count: 2,
        partition_key: vec!["day".to_owned()],
        primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let refused = client
        .create_table_from("db", "bad", descriptor(&["id"]), false)
        .await
        .expect_err("the key lacks the partition column");
    assert!(
        refused.to_string().contains("not in the primary key"),
        "{refused}"
    );
    let created = client
        .create_table_from("db", "state", descriptor(&["day", "id"]), false)
        .await?;
    assert_eq!(
        created.descriptor.map(|d| d.bucket_key),
        Some(vec!["id".to_owned()]),
        "the bucket key is the key less the partition columns"
    );

    let schema = keyed_schema();
    client
        .upsert(
            "db",
            "state",
            &schema,
            &[keyed(&[
                (DAYS[0], 1, 10),
                (DAYS[0], 2, 20),
                (DAYS[1], 1, 100),
            ])],
        )
        .await?;
    client
        .upsert("db", "state", &schema, &[keyed(&[(DAYS[0], 1, 11)])])
        .await?;
    client
        .delete(
            "db",
            "state",
            &schema,
            &[keyed(&[(DAYS[0], 2, 0), (DAYS[2], 9, 0)])],
        )
        .await?;
    let table = client.table("db", "state").await?;
    let names: Vec<&str> = table
        .info
        .partitions
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, [DAYS[0], DAYS[1]], "a delete creates no partition");

    let (rows, found) = client
        .lookup(
            "db",
            "state",
            &keys(&[(DAYS[0], 1), (DAYS[1], 1), (DAYS[0], 2), (DAYS[2], 1)]),
            &[],
        )
        .await?;
    assert_eq!(found, [true, true, false, false]);
    assert_eq!(
        keyed_rows(&rows),
        [(DAYS[0].to_owned(), 1, 11), (DAYS[1].to_owned(), 1, 100)]
    );
    // By bucket key alone: id 1 in every partition.
    let ids = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )?;
    let (rows, found, truncated) = client.lookup_prefix("db", "state", &ids, &[], 0).await?;
    assert_eq!((found, truncated), (vec![true], false));
    let mut by_id = keyed_rows(&rows);
    by_id.sort();
    assert_eq!(
        by_id,
        [(DAYS[0].to_owned(), 1, 11), (DAYS[1].to_owned(), 1, 100)]
    );

    // The changelog of one partition, and its snapshot.
    let batches = client.fetch_all(filtered("state", &[DAYS[0]])).await?;
    let changes: Vec<(String, i64)> = batches
        .iter()
        .flat_map(|b| {
            let kinds = b
                .column_by_name("_change_type")
                .expect("_change_type")
                .as_string::<i32>();
            let ids = b
                .column_by_name("id")
                .expect("id")
                .as_primitive::<Int64Type>();
            (0..b.num_rows())
                .map(|i| (kinds.value(i).to_owned(), ids.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut kinds: Vec<&str> = changes.iter().map(|(kind, _)| kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["+I", "+I", "+U", "-D", "-U"], "{changes:?}");
    let snapshot = pb::FetchRequest {
        start: Some(pb::StartPosition {
            position: Some(pb::start_position::Position::Snapshot(true)),
        }),
        ..filtered("state", &[DAYS[1]])
    };
    let rows: Vec<_> = client
        .fetch_all(snapshot)
        .await?
        .iter()
        .flat_map(keyed_rows)
        .collect();
    assert_eq!(rows, [(DAYS[1].to_owned(), 1, 100)]);
    node.shutdown().await?;
    Ok(())
}
