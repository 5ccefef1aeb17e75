//! A compactor in its own process (`inlet compactor --server ...`): it reads the WAL from
//! the store, writes the lake, and has the index owner apply its leases and commits over
//! the `IndexPorts` gRPC service (`inlet-wire`). Shown here: it tiers every row once, a consumer from
//! offset 0 still gets every row after the WAL is gone, and racing the owner's own
//! compactor on the same table never duplicates or loses an offset in the lake.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use common::*;
use futures::TryStreamExt;
use inlet::node::Node;
use inlet::store::lake_root;
use inlet_cache::{CacheOptions, PagedCache};
use inlet_compactor::lake::LakeStorage;
use inlet_compactor::{Compactor, CompactorOptions};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId};
use inlet_index::table_streams;
use inlet_proto::v1 as pb;
use inlet_wire::RemoteIndex;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

const DATABASE: &str = "db";
const TABLE: &str = "events";
const BUCKETS: u32 = 3;
const DEADLINE: Duration = Duration::from_secs(60);

/// Short intervals, and WAL graces of zero: safe only while nothing is being appended (an
/// object uploaded but not yet committed would look unreferenced).
fn fast_options() -> CompactorOptions {
    CompactorOptions {
        scan_interval: Duration::from_millis(50),
        lease_ttl: Duration::from_secs(5),
        wal_gc_interval: Duration::from_millis(100),
        wal_upload_grace: Duration::ZERO,
        wal_read_grace: Duration::ZERO,
        ..CompactorOptions::default()
    }
}

async fn start_node(dir: &std::path::Path, compactor: bool) -> anyhow::Result<Node> {
    let mut config = test_config();
    config.store = dir.to_str().context("utf-8 dir")?.to_owned();
    config.lake.compactor = compactor;
    config.lake.tiering.scan_interval = Duration::from_millis(50);
    config.lake.tiering.lease_ttl = Duration::from_secs(5);
    Node::start(&config).await
}

/// A compactor like `inlet compactor` runs: its own store handle on the same directory, the
/// owner's index over gRPC.
async fn start_remote_compactor(
    node: &Node,
    dir: &std::path::Path,
    options: CompactorOptions,
) -> anyhow::Result<Compactor> {
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir)?);
    let root = lake_root(dir.to_str().context("utf-8 dir")?)?;
    let index = RemoteIndex::fixed(&node.endpoint());
    let cache = PagedCache::open(store.clone(), CacheOptions::default()).await?;
    Ok(Compactor::start(
        index,
        cache,
        LakeStorage::new(root, store),
        options,
        Env::system(),
    ))
}

async fn create_lake_table(node: &Node) -> anyhow::Result<()> {
    let mut client = connect(node).await;
    client.create_database(DATABASE, false).await?;
    client
        .create_table_with_options(
            DATABASE,
            TABLE,
            &schema(),
            BUCKETS,
            vec!["id".to_owned()],
            [
                ("lake.enabled".to_owned(), "true".to_owned()),
                ("lake.freshness".to_owned(), "100ms".to_owned()),
            ]
            .into(),
            false,
        )
        .await?;
    Ok(())
}

/// Waits until every bucket's watermark reaches its tail and the tails sum to `rows`.
async fn wait_tiered(node: &Node, rows: u64) -> anyhow::Result<()> {
    let info = node
        .index()
        .expect("the node owns the index")
        .table(DATABASE, TABLE)?;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (mut tiered, mut committed) = (0, 0);
        for stream in table_streams(&info) {
            tiered += node
                .index()
                .expect("the node owns the index")
                .lake_watermark(stream)
                .await?
                .offset
                .0;
            committed += node
                .index()
                .expect("the node owns the index")
                .tail(stream)
                .await?
                .next_offset
                .0;
        }
        if tiered == rows && committed == rows {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{tiered} of {rows} rows tiered within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lake file entries of every bucket tile `[0, watermark)` exactly: no offset twice,
/// none missing.
async fn check_lake_files_tile(node: &Node) -> anyhow::Result<u64> {
    let info = node
        .index()
        .expect("the node owns the index")
        .table(DATABASE, TABLE)?;
    let mut total = 0;
    for bucket in 0..BUCKETS {
        let stream = StreamId::new(info.id, PartitionId(0), Bucket(bucket));
        let watermark = node
            .index()
            .expect("the node owns the index")
            .lake_watermark(stream)
            .await?
            .offset;
        let mut files = node
            .index()
            .expect("the node owns the index")
            .lake_files(stream, Offset(0))
            .await?;
        let mut next = Offset(0);
        while let Some(file) = files.next().await? {
            ensure!(
                file.base_offset == next,
                "bucket {bucket}: a lake file starts at {} where {next} was expected",
                file.base_offset
            );
            next = file.end_offset();
        }
        ensure!(
            next == watermark,
            "bucket {bucket}: files end at {next}, watermark {watermark}"
        );
        total += watermark.0;
    }
    Ok(total)
}

async fn wal_objects(dir: &std::path::Path) -> anyhow::Result<usize> {
    let store = LocalFileSystem::new_with_prefix(dir)?;
    let objects: Vec<_> = store.list(Some(&Path::from("wal"))).try_collect().await?;
    Ok(objects.len())
}

async fn read_ids(node: &Node) -> anyhow::Result<Vec<i64>> {
    let mut client = connect(node).await;
    let mut ids: Vec<i64> = read_all(&mut client, DATABASE, TABLE)
        .await
        .into_iter()
        .map(|row| row.2)
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compactor_in_another_process_tiers_through_the_owner() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = start_node(dir.path(), false).await?;
    create_lake_table(&node).await?;
    let mut client = connect(&node).await;
    client
        .append(DATABASE, TABLE, &schema(), &[batch(0..200)])
        .await?;
    client
        .append(DATABASE, TABLE, &schema(), &[batch(200..300)])
        .await?;

    // Every append is acknowledged before the compactor starts, so zero WAL graces are safe.
    let compactor = start_remote_compactor(&node, dir.path(), fast_options()).await?;
    wait_tiered(&node, 300).await?;
    ensure!(check_lake_files_tile(&node).await? == 300);

    // Its WAL garbage collection runs through the owner too: the WAL goes, the rows stay.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while wal_objects(dir.path()).await? > 0 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the WAL was not collected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(read_ids(&node).await? == (0..300).collect::<Vec<_>>());

    let status = client
        .raw()
        .get_lake_status(pb::GetLakeStatusRequest {
            database: DATABASE.to_owned(),
            table: TABLE.to_owned(),
        })
        .await?
        .into_inner();
    ensure!(status.tables[0].file_rows == 300, "{status:?}");

    compactor.stop().await;
    node.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_and_an_in_process_compactor_racing_never_duplicate_offsets() -> anyhow::Result<()>
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir()?;
    let node = start_node(dir.path(), true).await?;
    create_lake_table(&node).await?;
    // Appends run while both compactors do: the WAL graces keep their safe defaults.
    let options = CompactorOptions {
        scan_interval: Duration::from_millis(50),
        lease_ttl: Duration::from_secs(5),
        ..CompactorOptions::default()
    };
    let remote = start_remote_compactor(&node, dir.path(), options).await?;
    let mut client = connect(&node).await;
    let mut rows = 0;
    for round in 0..8 {
        let ids = rows..rows + 50;
        client
            .append(DATABASE, TABLE, &schema(), &[batch(ids)])
            .await?;
        rows += 50;
        if round % 2 == 1 {
            wait_tiered(&node, rows as u64).await?;
            ensure!(check_lake_files_tile(&node).await? == rows as u64);
        }
    }
    let ids = read_ids(&node).await?;
    ensure!(
        ids == (0..rows).collect::<Vec<_>>(),
        "read back {} rows",
        ids.len()
    );
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    ensure!(distinct.len() == ids.len());
    remote.stop().await;
    node.shutdown().await
}

/// A primary-key table tiered by a compactor in another process: the change records and the
/// lake rows of keys go over the `IndexPorts` service too. Two rounds: the second updates
/// and deletes keys the first tiered, so its snapshot deletes their old rows by position;
/// the current snapshot then counts exactly the live keys (rows written minus rows deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compactor_in_another_process_tiers_a_primary_key_table() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = start_node(dir.path(), false).await?;
    let mut client = connect(&node).await;
    client.create_database(DATABASE, false).await?;
    client
        .create_primary_key_table(
            DATABASE,
            TABLE,
            &schema(),
            BUCKETS,
            vec!["id".to_owned()],
            Vec::new(),
            [
                ("lake.enabled".to_owned(), "true".to_owned()),
                ("lake.freshness".to_owned(), "100ms".to_owned()),
            ]
            .into(),
            false,
        )
        .await?;
    let compactor = start_remote_compactor(&node, dir.path(), fast_options()).await?;
    client
        .upsert(DATABASE, TABLE, &schema(), &[batch(0..200)])
        .await?;
    wait_tiered(&node, 200).await?;
    ensure!(lake_summary(&node, dir.path()).await? == (200, 0));
    // The primary key is the lake schema's identifier field (`id`, field id 1).
    let metadata = lake_metadata(&node, dir.path()).await?;
    let schemas = metadata["schemas"].as_array().context("schemas")?;
    ensure!(
        schemas
            .iter()
            .all(|s| s["identifier-field-ids"] == serde_json::json!([1])),
        "{schemas:?}"
    );

    client
        .upsert(DATABASE, TABLE, &schema(), &[batch(100..250)])
        .await?;
    client
        .delete(DATABASE, TABLE, &schema(), &[batch(0..50)])
        .await?;
    wait_tiered(&node, 400).await?;
    // Keys 100..250 written again (150 rows), the old rows of 100..200 and 0..50 deleted.
    ensure!(lake_summary(&node, dir.path()).await? == (350, 150));

    // Tiering trims none of a primary-key table's chunks: the changelog is still whole.
    let changes: usize = client
        .fetch_all(fetch_request(DATABASE, TABLE))
        .await?
        .iter()
        .map(|batch| batch.num_rows())
        .sum();
    // +I of 0..250, -U/+U of 100..200, -D of 0..50.
    ensure!(changes == 250 + 2 * 100 + 50, "{changes} changes");

    compactor.stop().await;
    node.shutdown().await
}

/// The lake table's current metadata file, as JSON.
async fn lake_metadata(node: &Node, dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let index = node.index().expect("the node owns the index");
    let info = index.table(DATABASE, TABLE)?;
    let location = index
        .lake_table(info.id)
        .await?
        .and_then(|record| record.metadata_location)
        .context("the table has lake metadata")?;
    let root = lake_root(dir.to_str().context("utf-8 dir")?)?;
    let store = LocalFileSystem::new_with_prefix(dir)?;
    let bytes = store.get(&root.path_of(&location)?).await?.bytes().await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// `(total-records, total-position-deletes)` of the lake table's current snapshot.
async fn lake_summary(node: &Node, dir: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let metadata = lake_metadata(node, dir).await?;
    let current = metadata["current-snapshot-id"]
        .as_i64()
        .context("a snapshot")?;
    let snapshot = metadata["snapshots"]
        .as_array()
        .context("snapshots")?
        .iter()
        .find(|s| s["snapshot-id"].as_i64() == Some(current))
        .context("the current snapshot")?;
    let total = |name: &str| -> anyhow::Result<u64> {
        Ok(snapshot["summary"][name]
            .as_str()
            .with_context(|| format!("{name} in {snapshot}"))?
            .parse()?)
    };
    Ok((total("total-records")?, total("total-position-deletes")?))
}
