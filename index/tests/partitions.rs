//! The partition registry against a real SlateDB on an in-memory store: partitions are
//! created idempotently, numbered without reuse, durable across reopen (a new owner sees
//! them), checked before anything is written, and chunks commit only to streams of live
//! partitions.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, PartitionId, SchemaId, StreamId, TableId, WalObjectId};
use inlet_core::partition::MAX_PARTITIONS_ADDED_AT_ONCE;
use inlet_core::table::TableDescriptor;
use inlet_index::{
    CatalogError, ChunkCommitRequest, ChunkRejected, CommitRequest, DropOptions, Index,
    IndexOptions, table_streams,
};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

async fn open(store: &Arc<dyn ObjectStore>) -> anyhow::Result<Index> {
    Ok(Index::open(store.clone(), IndexOptions::default(), Env::system()).await?)
}

/// `db.events` partitioned by `day` and `region`, two buckets per partition.
async fn create_table(index: &Index, partition_key: &[&str]) -> anyhow::Result<TableId> {
    index.create_database("db", "", true).await?;
    let descriptor = TableDescriptor {
        schema: Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ])),
        bucket_count: 2,
        bucket_key: vec![],
        partition_key: partition_key.iter().map(|c| c.to_string()).collect(),
        primary_key: vec![],
        comment: String::new(),
        options: Default::default(),
    };
    Ok(index
        .create_table("db", "events", descriptor, false)
        .await?
        .id)
}

fn values(day: &str, region: &str) -> Vec<String> {
    vec![day.to_owned(), region.to_owned()]
}

fn commit_to(stream: StreamId) -> CommitRequest {
    CommitRequest {
        object: WalObjectId(u128::from(stream.partition.0) << 8 | u128::from(stream.bucket.0)),
        footer_offset: 0,
        footer_len: 0,
        chunks: vec![ChunkCommitRequest {
            stream,
            schema_id: SchemaId(0),
            chunk_offset: 16,
            chunk_len: 100,
            meta_len: 50,
            body_offset: 56,
            chunk_crc: 0,
            meta_crc: 0,
            row_count: 3,
            producer: None,
            columns: Vec::new(),
            pk_writes: None,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_created_once_numbered_for_good_and_survive_reopen() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await?;
    let table = create_table(&index, &["day", "region"]).await?;
    assert!(index.table("db", "events")?.partitions.is_empty());

    let (info, ids) = index
        .add_partitions(
            "db",
            "events",
            vec![values("2026-12-07", "eu"), values("2026-12-07", "us")],
        )
        .await?;
    assert_eq!(ids, [PartitionId(1), PartitionId(2)]);
    assert_eq!(info.partitions.len(), 2);
    // Idempotent: existing values get their id, a list naming one new partition twice
    // creates it once.
    let (info, ids) = index
        .add_partitions(
            "db",
            "events",
            vec![
                values("2026-12-07", "us"),
                values("2026-12-08", "eu"),
                values("2026-12-08", "eu"),
            ],
        )
        .await?;
    assert_eq!(ids, [PartitionId(2), PartitionId(3), PartitionId(3)]);
    assert_eq!(
        info.partitions.get(PartitionId(3)).map(|p| p.name()),
        Some("2026-12-08$eu".to_owned())
    );
    // Every bucket of every partition is a stream of the table.
    let streams: Vec<(u32, u32)> = table_streams(&info)
        .map(|s| (s.partition.0, s.bucket.0))
        .collect();
    assert_eq!(streams, [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]);

    // Chunks commit to live partitions' streams only.
    let live = StreamId::new(table, PartitionId(3), Bucket(1));
    let outcome = index.commit(commit_to(live)).await?;
    assert!(outcome[0].is_ok(), "{outcome:?}");
    for stream in [
        StreamId::new(table, PartitionId(0), Bucket(0)),
        StreamId::new(table, PartitionId(4), Bucket(0)),
    ] {
        let outcome = index.commit(commit_to(stream)).await?;
        assert!(
            matches!(&outcome[0], Err(ChunkRejected::NoSuchStream { .. })),
            "{stream}: {outcome:?}"
        );
    }
    index.close().await?;

    // A new owner on the same store sees the partitions, their rows, and numbers on.
    let index = open(&store).await?;
    let info = index.table("db", "events")?;
    let names: Vec<String> = info.partitions.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["2026-12-07$eu", "2026-12-07$us", "2026-12-08$eu"]);
    assert_eq!(index.tail(live).await?.next_offset.0, 3);
    let (_, ids) = index
        .add_partitions("db", "events", vec![values("2026-12-09", "eu")])
        .await?;
    assert_eq!(ids, [PartitionId(4)]);

    // Dropped and purged, the table leaves no entry behind: its partitions' records and
    // streams included.
    index
        .drop_table("db", "events", DropOptions::default())
        .await?;
    assert!(index.table_entries(table).await? > 0);
    while !index.purge_table(table).await?.done {}
    assert_eq!(index.table_entries(table).await?, 0);
    index.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_partitions_say_why_and_create_nothing() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await?;
    create_table(&index, &["day", "region"]).await?;
    index
        .add_partitions("db", "events", vec![values("2026-12-07", "eu")])
        .await?;

    let refused = |outcome: Result<_, CatalogError>, says: &str| match outcome {
        Err(CatalogError::PartitionsRefused { table, reason }) => {
            assert!(table.starts_with("db."), "{table}");
            assert!(reason.contains(says), "{reason:?} does not say {says:?}");
        }
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    };
    // A valid partition in the same request is not created either.
    refused(
        index
            .add_partitions(
                "db",
                "events",
                vec![values("2026-12-09", "eu"), vec!["2026-12-07".to_owned()]],
            )
            .await,
        "1 values",
    );
    refused(
        index
            .add_partitions("db", "events", vec![values("2026-12-09", "eu west")])
            .await,
        "contains ' '",
    );
    refused(
        index
            .add_partitions("db", "events", vec![values("..", "eu")])
            .await,
        "not allowed",
    );
    let many = (0..=MAX_PARTITIONS_ADDED_AT_ONCE)
        .map(|i| values(&format!("d{i}"), "eu"))
        .collect();
    refused(
        index.add_partitions("db", "events", many).await,
        "more than the limit",
    );
    assert_eq!(index.table("db", "events")?.partitions.len(), 1);
    refused(
        index
            .add_partitions("db", "events", vec![values("07-12-2026", "eu")])
            .await,
        "is not a Date32",
    );
    // Dropping a partition that does not exist is refused, unless asked to skip it; a live
    // partition is never purged.
    refused(
        index
            .drop_partitions("db", "events", vec![values("2026-12-09", "eu")], false)
            .await,
        "no partition `2026-12-09$eu`",
    );
    let (_, dropped) = index
        .drop_partitions("db", "events", vec![values("2026-12-09", "eu")], true)
        .await?;
    assert!(dropped.is_empty());
    let table = index.table("db", "events")?;
    let live = table.partitions.iter().next().map(|p| p.id);
    let live = live.ok_or_else(|| anyhow::anyhow!("a partition"))?;
    assert!(index.purge_partition(table.id, live).await.is_err());
    assert!(matches!(
        index.add_partitions("db", "nothing", vec![]).await,
        Err(CatalogError::TableNotFound { .. })
    ));

    // A table without a partition key has none to add.
    let descriptor = TableDescriptor {
        schema: Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
        bucket_count: 1,
        bucket_key: vec![],
        partition_key: vec![],
        primary_key: vec![],
        comment: String::new(),
        options: Default::default(),
    };
    index.create_table("db", "plain", descriptor, false).await?;
    refused(
        index
            .add_partitions("db", "plain", vec![vec!["x".to_owned()]])
            .await,
        "no partition key",
    );
    index.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_keys_are_checked_at_create() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await?;
    index.create_database("db", "", true).await?;
    let table =
        |partition_key: &[&str], nullable: bool, options: &[(&str, &str)]| TableDescriptor {
            schema: Arc::new(Schema::new(vec![
                Field::new("day", DataType::Date32, nullable),
                Field::new("score", DataType::Float64, false),
            ])),
            bucket_count: 1,
            bucket_key: vec![],
            partition_key: partition_key.iter().map(|c| c.to_string()).collect(),
            primary_key: vec![],
            comment: String::new(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
    let refused = [
        (table(&["nope"], false, &[]), "not a column"),
        (table(&["day", "day"], false, &[]), "twice"),
        (table(&["score"], false, &[]), "partition keys are integers"),
        (table(&["day"], true, &[]), "nullable"),
        (
            table(&["day"], false, &[("lake.enabled", "true")]),
            "tier into the lake",
        ),
    ];
    for (descriptor, says) in refused {
        let error = index
            .create_table("db", "t", descriptor, false)
            .await
            .expect_err("refused");
        assert!(
            error.to_string().contains(says),
            "{error} does not say {says:?}"
        );
    }
    index
        .create_table("db", "t", table(&["day"], false, &[]), false)
        .await?;
    index.close().await?;
    Ok(())
}
