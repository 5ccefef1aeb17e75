//! Lake retention end to end, against an in-memory store and a local directory: three
//! tiering rounds with different `_timestamp`s, then an expiry with a cutoff between rounds 1
//! and 2. iceberg-rust's scan of the new snapshot reads exactly rounds 2 and 3; the expired
//! snapshots are gone from the metadata; round 1's files (and only what nothing references
//! any more) are listed for deletion, and deleting them leaves the table readable; the
//! earliest offsets, watermarks and totals are right; a second expiry with the same cutoff
//! does nothing; appending and expiring again after that still work.
//!
//! Set `INLET_TEST_LAKE_DIR` to an empty directory to keep the local-directory table there,
//! e.g. to read it with DuckDB or pyiceberg afterwards (rounds 3 and 4 are left: 38 rows).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::spec::{ManifestList, ManifestStatus, Operation};
use inlet_compactor::lake::{
    ExpiryRule, LakeAppend, LakeError, LakeRoot, LakeStorage, LakeTable, LakeWriteOptions,
    RemovedFile, StagedAppend, StagedExpire, stage_expire,
};
use inlet_core::clock::{Clock, Env, SeededIdGen};
use inlet_core::ids::{Bucket, DatabaseId, Offset, SchemaId, TableId, TimestampMicros};
use inlet_core::table::{TableDescriptor, TableInfo, read_schema};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;

/// A clock that reads a fixed time: the lake must take time from the injected clock.
#[derive(Debug)]
struct FixedClock(i64);

impl Clock for FixedClock {
    fn now(&self) -> TimestampMicros {
        TimestampMicros(self.0)
    }
}

const NOW_MICROS: i64 = 1_790_000_000_000_000;
const DAY_MICROS: i64 = 86_400_000_000;

/// The commit time of the rows of round `n` (1-based): round 1 three days ago, round 2 two
/// days ago, and so on; each row one microsecond after the previous offset.
fn round_time(n: i64) -> i64 {
    NOW_MICROS - (4 - n) * DAY_MICROS
}

fn env(seed: u64) -> Env {
    Env {
        clock: Arc::new(FixedClock(NOW_MICROS)),
        ids: Arc::new(SeededIdGen::new(seed)),
    }
}

fn table_info() -> TableInfo {
    TableInfo {
        id: TableId(9),
        database: "ops".into(),
        database_id: DatabaseId(1),
        name: "events".into(),
        schema_id: SchemaId(0),
        descriptor: TableDescriptor {
            schema: Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
            bucket_count: 4,
            bucket_key: vec!["id".into()],
            partition_key: vec![],
            primary_key: vec![],
            comment: String::new(),
            options: BTreeMap::new(),
        },
        created_at: TimestampMicros(NOW_MICROS),
    }
}

fn read_schema_of_table() -> SchemaRef {
    read_schema(&table_info().descriptor.schema, &[0])
}

/// One row as the test expects to read it back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    bucket: i32,
    offset: i64,
    id: i64,
    timestamp: i64,
}

fn row(bucket: u32, offset: u64, round: i64) -> Row {
    Row {
        bucket: bucket as i32,
        offset: offset as i64,
        id: i64::from(bucket) * 1_000_000 + offset as i64,
        timestamp: round_time(round) + offset as i64,
    }
}

/// What one round writes: bucket → offsets.
type Ranges = [(u32, Range<u64>)];

fn rows(ranges: &Ranges, round: i64) -> Vec<Row> {
    ranges
        .iter()
        .flat_map(|(bucket, offsets)| offsets.clone().map(move |o| row(*bucket, o, round)))
        .collect()
}

fn batch(bucket: u32, offsets: Range<u64>, round: i64) -> RecordBatch {
    let rows: Vec<Row> = offsets.map(|o| row(bucket, o, round)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.bucket))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.timestamp))
                .with_timezone("+00:00"),
        ),
    ];
    RecordBatch::try_new(read_schema_of_table(), columns).expect("matches the read schema")
}

/// Tiers `ranges` with the timestamps of round `round`, and "commits": the caller uses the
/// staged table as the next base and publishes the hint.
async fn round(
    table: &LakeTable,
    ranges: &Ranges,
    round: i64,
    env: &Env,
) -> Result<StagedAppend, LakeError> {
    let mut append = LakeAppend::new(table, &LakeWriteOptions::default(), env)?;
    for (bucket, offsets) in ranges {
        append
            .write_bucket(Bucket(*bucket), &[batch(*bucket, offsets.clone(), round)])
            .await?;
    }
    let staged = append.stage().await?;
    staged.table.publish_version_hint().await?;
    Ok(staged)
}

/// Reads the whole table with iceberg-rust's scan.
async fn scan(table: &LakeTable) -> anyhow::Result<Vec<Row>> {
    let batches: Vec<RecordBatch> = table
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
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .with_context(|| format!("no `{name}`"))
        };
        let ids = column("id")?.as_primitive::<Int64Type>();
        let buckets = column("_bucket")?.as_primitive::<Int32Type>();
        let offsets = column("_offset")?.as_primitive::<Int64Type>();
        let timestamps = column("_timestamp")?.as_primitive::<TimestampMicrosecondType>();
        rows.extend((0..batch.num_rows()).map(|i| Row {
            bucket: buckets.value(i),
            offset: offsets.value(i),
            id: ids.value(i),
            timestamp: timestamps.value(i),
        }));
    }
    rows.sort();
    Ok(rows)
}

async fn list(store: &Arc<dyn ObjectStore>) -> anyhow::Result<BTreeSet<String>> {
    let listed: Vec<_> = store.list(None).try_collect().await?;
    Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
}

/// Store paths of URLs.
fn paths<'a>(
    root: &LakeRoot,
    urls: impl IntoIterator<Item = &'a String>,
) -> anyhow::Result<BTreeSet<String>> {
    urls.into_iter()
        .map(|url| Ok(root.path_of(url)?.to_string()))
        .collect()
}

/// The entries of the current snapshot: (file path, status, snapshot id, data sequence
/// number), and the manifest paths.
async fn current_entries(
    table: &LakeTable,
) -> anyhow::Result<(Vec<(String, ManifestStatus, i64, i64)>, BTreeSet<String>)> {
    let file_io = table.storage().file_io();
    let metadata = table.metadata();
    let snapshot = metadata.current_snapshot().context("a snapshot")?;
    let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
    let mut entries = Vec::new();
    let mut manifests = BTreeSet::new();
    for manifest in list.entries() {
        manifests.insert(manifest.manifest_path.clone());
        for entry in manifest.load_manifest(&file_io).await?.entries() {
            entries.push((
                entry.file_path().to_owned(),
                entry.status(),
                entry.snapshot_id().context("snapshot id")?,
                entry.sequence_number().context("sequence number")?,
            ));
        }
    }
    Ok((entries, manifests))
}

fn summary(table: &LakeTable) -> BTreeMap<String, String> {
    table
        .metadata()
        .current_snapshot()
        .map(|s| {
            s.summary()
                .additional_properties
                .clone()
                .into_iter()
                .collect()
        })
        .unwrap_or_default()
}

/// Files as (bucket, first offset, end offset).
fn removed_ranges(staged: &StagedExpire) -> BTreeSet<(u32, u64, u64)> {
    staged
        .removed
        .iter()
        .map(|f: &RemovedFile| (f.bucket.0, f.base_offset.0, f.end_offset.0))
        .collect()
}

fn ranges(ranges: &Ranges) -> BTreeSet<(u32, u64, u64)> {
    ranges
        .iter()
        .map(|(bucket, offsets)| (*bucket, offsets.start, offsets.end))
        .collect()
}

fn data_paths(staged: &StagedAppend) -> BTreeSet<String> {
    staged
        .data_files
        .iter()
        .map(|f| f.file_path().to_owned())
        .collect()
}

const ROUND_1: [(u32, Range<u64>); 3] = [(0, 0..50), (1, 0..20), (3, 0..5)];
const ROUND_2: [(u32, Range<u64>); 3] = [(0, 50..80), (1, 20..25), (2, 0..10)];
const ROUND_3: [(u32, Range<u64>); 2] = [(0, 80..100), (2, 10..15)];
const ROUND_4: [(u32, Range<u64>); 2] = [(0, 100..110), (3, 5..8)];

/// The scenario, run against each store.
async fn three_rounds_then_expire(
    store: Arc<dyn ObjectStore>,
    root: LakeRoot,
) -> anyhow::Result<()> {
    let storage = LakeStorage::new(root.clone(), store.clone());
    let env = env(5);
    let created = LakeTable::create(&storage, &table_info(), &env).await?;
    assert!(
        stage_expire(
            &created,
            ExpiryRule::older_than(TimestampMicros(NOW_MICROS)),
            &env
        )
        .await?
        .is_none(),
        "a table without a snapshot has nothing to expire"
    );
    let first = round(&created, &ROUND_1, 1, &env).await?;
    let second = round(&first.table, &ROUND_2, 2, &env).await?;
    let third = round(&second.table, &ROUND_3, 3, &env).await?;
    let base = third.table.clone();
    let mut expected_rows = [rows(&ROUND_1, 1), rows(&ROUND_2, 2), rows(&ROUND_3, 3)].concat();
    expected_rows.sort();
    assert_eq!(scan(&base).await?, expected_rows);

    // Nothing is older than round 1's first row: nothing to expire, nothing written.
    let before = list(&store).await?;
    assert!(
        stage_expire(
            &base,
            ExpiryRule::older_than(TimestampMicros(round_time(1))),
            &env
        )
        .await?
        .is_none()
    );
    assert_eq!(list(&store).await?, before);

    let cutoff = TimestampMicros(round_time(2) - DAY_MICROS / 2);

    // A staged expiry that loses its commit deletes exactly what it wrote.
    let lost = stage_expire(&base, ExpiryRule::older_than(cutoff), &env)
        .await?
        .context("round 1 is old enough")?;
    assert!(!lost.files_written.is_empty());
    lost.abandon().await?;
    assert_eq!(list(&store).await?, before, "abandon deletes what it wrote");

    let staged = stage_expire(&base, ExpiryRule::older_than(cutoff), &env)
        .await?
        .context("round 1 is old enough")?;
    assert_eq!(staged.base_metadata_location, base.metadata_location());
    assert_eq!(staged.base_snapshot_id, third.snapshot_id);
    assert_eq!(staged.table.version(), base.version() + 1);
    assert_eq!(
        removed_ranges(&staged),
        ranges(&ROUND_1),
        "exactly round 1's files, by bucket and offsets"
    );
    let removed_paths: BTreeSet<String> = staged.removed.iter().map(|f| f.path.clone()).collect();
    assert_eq!(removed_paths, data_paths(&first));
    assert!(staged.removed.iter().all(|f| f.max_timestamp < cutoff));
    assert_eq!(
        staged.earliest,
        BTreeMap::from([
            (Bucket(0), Offset(50)),
            (Bucket(1), Offset(20)),
            (Bucket(2), Offset(0)),
            // Nothing of bucket 3 is left: its earliest is its watermark.
            (Bucket(3), Offset(5)),
        ])
    );

    // The new version: one snapshot, a `delete`, that reads rounds 2 and 3 only.
    let table = staged.table.clone();
    let metadata = table.metadata();
    assert_eq!(
        staged
            .expired_snapshot_ids
            .iter()
            .copied()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([first.snapshot_id, second.snapshot_id, third.snapshot_id])
    );
    let snapshot_ids: Vec<i64> = metadata.snapshots().map(|s| s.snapshot_id()).collect();
    assert_eq!(
        snapshot_ids,
        vec![staged.snapshot_id],
        "older snapshots expired"
    );
    assert_eq!(metadata.current_snapshot_id(), Some(staged.snapshot_id));
    let snapshot = metadata.current_snapshot().context("current snapshot")?;
    assert_eq!(snapshot.summary().operation, Operation::Delete);
    assert_eq!(snapshot.parent_snapshot_id(), Some(third.snapshot_id));
    assert_eq!(
        metadata.history().len(),
        1,
        "the snapshot log names the new one only"
    );
    assert_eq!(metadata.history()[0].snapshot_id, staged.snapshot_id);
    let json = serde_json::to_value(metadata)?;
    assert_eq!(
        json["refs"],
        serde_json::json!({"main": {"snapshot-id": staged.snapshot_id, "type": "branch"}})
    );
    assert_eq!(metadata.last_updated_ms(), NOW_MICROS / 1000);
    let mut kept_rows = [rows(&ROUND_2, 2), rows(&ROUND_3, 3)].concat();
    kept_rows.sort();
    assert_eq!(scan(&table).await?, kept_rows);
    // The base still reads as it was until the commit.
    assert_eq!(scan(&base).await?, expected_rows);

    // Watermarks do not move; the summary says what went and what is left.
    assert_eq!(table.watermarks()?, base.watermarks()?);
    let summary = summary(&table);
    for (key, value) in [
        ("inlet.watermarks", r#"{"0":100,"1":25,"2":15,"3":5}"#),
        ("inlet.earliest.0", "50"),
        ("inlet.earliest.1", "20"),
        ("inlet.earliest.2", "0"),
        ("inlet.earliest.3", "5"),
        ("deleted-data-files", "3"),
        ("deleted-records", "75"),
        ("total-data-files", "5"),
        ("total-records", "70"),
        ("changed-partition-count", "3"),
    ] {
        assert_eq!(summary.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert!(!summary.keys().any(|k| k.starts_with("inlet.offsets.")));

    // The manifests: round 1's entries DELETED by the new snapshot, the others live with
    // the snapshot and sequence number that added them.
    let (entries, manifests) = current_entries(&table).await?;
    let live: BTreeSet<(String, i64, i64)> = entries
        .iter()
        .filter(|e| e.1 != ManifestStatus::Deleted)
        .map(|e| (e.0.clone(), e.2, e.3))
        .collect();
    let expected_live: BTreeSet<(String, i64, i64)> = data_paths(&second)
        .into_iter()
        .map(|p| (p, second.snapshot_id, 2))
        .chain(
            data_paths(&third)
                .into_iter()
                .map(|p| (p, third.snapshot_id, 3)),
        )
        .collect();
    assert_eq!(live, expected_live);
    let deleted: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.1 == ManifestStatus::Deleted)
        .inspect(|e| assert_eq!((e.2, e.3), (staged.snapshot_id, 1), "{e:?}"))
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(deleted, removed_paths);

    // To delete after the commit: round 1's data files and manifest, and the three expired
    // manifest lists; nothing the new snapshot reaches.
    let lists: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|s| {
            s.table
                .metadata()
                .current_snapshot()
                .map(|s| s.manifest_list().to_owned())
                .context("a snapshot")
        })
        .collect::<anyhow::Result<_>>()?;
    let round_1_manifest = first
        .files_written
        .iter()
        .filter(|f| f.ends_with("-m0.avro"))
        .cloned();
    let expected_deletes: BTreeSet<String> = removed_paths
        .iter()
        .cloned()
        .chain(round_1_manifest)
        .chain(lists.iter().cloned())
        .collect();
    let to_delete: BTreeSet<String> = staged
        .files_to_delete_after_commit
        .iter()
        .cloned()
        .collect();
    assert_eq!(to_delete, expected_deletes);
    assert_eq!(to_delete.len(), staged.files_to_delete_after_commit.len());
    assert!(to_delete.iter().all(|f| !manifests.contains(f)));
    assert!(to_delete.iter().all(|f| !staged.files_written.contains(f)));
    let objects = list(&store).await?;
    for file in staged.files_written.iter().chain(&to_delete) {
        assert!(objects.contains(&root.path_of(file)?.to_string()), "{file}");
    }

    // Commit, then delete: the table stays whole, from memory and reloaded by its pointer.
    staged.table.publish_version_hint().await?;
    staged.delete_expired_files().await?;
    let objects = list(&store).await?;
    assert!(paths(&root, &to_delete)?.is_disjoint(&objects));
    assert_eq!(scan(&table).await?, kept_rows);
    let ident = TableIdent::from_strs(["ops", "events"])?;
    let reloaded = LakeTable::load(&storage, ident, table.metadata_location()).await?;
    assert_eq!(scan(&reloaded).await?, kept_rows);
    staged.delete_expired_files().await?;

    // Same cutoff again: nothing left to expire.
    assert!(
        stage_expire(&reloaded, ExpiryRule::older_than(cutoff), &env)
            .await?
            .is_none()
    );

    // Appending after the expiry continues every bucket at its watermark.
    let fourth = round(&reloaded, &ROUND_4, 4, &env).await?;
    assert_eq!(fourth.base_snapshot_id, Some(staged.snapshot_id));
    assert_eq!(
        fourth.watermarks,
        BTreeMap::from([
            (Bucket(0), Offset(110)),
            (Bucket(1), Offset(25)),
            (Bucket(2), Offset(15)),
            (Bucket(3), Offset(8)),
        ])
    );
    assert_eq!(
        summary_of(&fourth.table, "total-records").as_deref(),
        Some("83")
    );
    let mut with_fourth = [kept_rows.clone(), rows(&ROUND_4, 4)].concat();
    with_fourth.sort();
    assert_eq!(scan(&fourth.table).await?, with_fourth);

    // Expiring round 2 too: the first expiry's manifest (DELETED entries only) and its
    // snapshot go, round 4 stays.
    let later = stage_expire(
        &fourth.table,
        ExpiryRule::older_than(TimestampMicros(round_time(3) - 1)),
        &env,
    )
    .await?
    .context("round 2 is old enough")?;
    assert_eq!(removed_ranges(&later), ranges(&ROUND_2));
    assert_eq!(
        later.earliest,
        BTreeMap::from([
            (Bucket(0), Offset(80)),
            (Bucket(1), Offset(25)),
            (Bucket(2), Offset(10)),
            (Bucket(3), Offset(5)),
        ])
    );
    assert_eq!(
        later
            .expired_snapshot_ids
            .iter()
            .copied()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([staged.snapshot_id, fourth.snapshot_id])
    );
    let first_expiry_manifests: BTreeSet<String> = staged
        .files_written
        .iter()
        .filter(|f| f.ends_with(".avro") && !f.contains("/snap-"))
        .cloned()
        .collect();
    assert_eq!(first_expiry_manifests.len(), 1);
    let later_deletes: BTreeSet<String> =
        later.files_to_delete_after_commit.iter().cloned().collect();
    assert!(first_expiry_manifests.is_subset(&later_deletes));
    assert!(data_paths(&second).is_subset(&later_deletes));
    assert!(data_paths(&third).is_disjoint(&later_deletes));
    assert!(data_paths(&fourth).is_disjoint(&later_deletes));
    let (_, later_manifests) = current_entries(&later.table).await?;
    assert!(later_manifests.is_disjoint(&later_deletes));
    later.table.publish_version_hint().await?;
    later.delete_expired_files().await?;
    let mut expected = [rows(&ROUND_3, 3), rows(&ROUND_4, 4)].concat();
    expected.sort();
    assert_eq!(scan(&later.table).await?, expected);
    assert_eq!(
        summary_of(&later.table, "total-records").as_deref(),
        Some("38")
    );
    Ok(())
}

fn summary_of(table: &LakeTable, key: &str) -> Option<String> {
    summary(table).get(key).cloned()
}

#[tokio::test]
async fn expire_in_memory() -> anyhow::Result<()> {
    three_rounds_then_expire(
        Arc::new(InMemory::new()),
        LakeRoot::memory("lake-expire-three-rounds"),
    )
    .await
}

#[tokio::test]
async fn expire_in_a_local_directory() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = match std::env::var_os("INLET_TEST_LAKE_DIR") {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            std::path::PathBuf::from(dir)
        }
        None => temp.path().to_owned(),
    };
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&dir)?);
    three_rounds_then_expire(store, LakeRoot::local(&dir)?).await
}

#[tokio::test]
async fn expiry_never_leaves_a_hole_in_a_bucket() -> anyhow::Result<()> {
    // Bucket 0's first file is newer than the cutoff and its second older (timestamps out of
    // offset order): both stay, so the bucket keeps one contiguous range. Bucket 1's old file
    // goes.
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-expire-prefix"), store);
    let env = env(6);
    let table = LakeTable::create(&storage, &table_info(), &env).await?;
    let newer = round(&table, &[(0, 0..10)], 3, &env).await?;
    let older = round(&newer.table, &[(0, 10..20), (1, 0..4)], 1, &env).await?;
    let staged = stage_expire(
        &older.table,
        ExpiryRule::older_than(TimestampMicros(round_time(2))),
        &env,
    )
    .await?
    .context("bucket 1 is old enough")?;
    assert_eq!(removed_ranges(&staged), BTreeSet::from([(1, 0, 4)]));
    assert_eq!(
        staged.earliest,
        BTreeMap::from([(Bucket(0), Offset(0)), (Bucket(1), Offset(4))])
    );
    let mut expected = [rows(&[(0, 0..10)], 3), rows(&[(0, 10..20)], 1)].concat();
    expected.sort();
    assert_eq!(scan(&staged.table).await?, expected);

    // Every older snapshot expired: the history stays one contiguous run of versions (see
    // `lake::version`), so a rewrite's replaced files can never be stranded behind it.
    assert_eq!(
        staged.expired_snapshot_ids,
        vec![newer.snapshot_id, older.snapshot_id]
    );
    let snapshots: BTreeSet<i64> = staged
        .table
        .metadata()
        .snapshots()
        .map(|s| s.snapshot_id())
        .collect();
    assert_eq!(snapshots, BTreeSet::from([staged.snapshot_id]));
    let list = |staged: &StagedAppend| -> anyhow::Result<String> {
        Ok(staged
            .table
            .metadata()
            .current_snapshot()
            .context("a snapshot")?
            .manifest_list()
            .to_owned())
    };
    let older_manifest = older
        .files_written
        .iter()
        .find(|f| f.ends_with("-m0.avro"))
        .context("a manifest")?
        .clone();
    let removed: Vec<String> = staged.removed.iter().map(|f| f.path.clone()).collect();
    // Bucket 0's first manifest is carried into the new snapshot; the one that listed the
    // removed file was rewritten.
    assert_eq!(
        staged.files_to_delete_after_commit,
        [removed, vec![list(&newer)?, list(&older)?, older_manifest]].concat(),
        "data files, then manifest lists, then manifests"
    );
    staged.delete_expired_files().await?;
    assert_eq!(scan(&staged.table).await?, expected);
    Ok(())
}

/// The size of the data file `staged` wrote for `bucket`.
fn file_size(staged: &StagedAppend, bucket: u32) -> anyhow::Result<u64> {
    staged
        .data_files
        .iter()
        .find(|f| f.file_path().contains(&format!("_bucket={bucket}/")))
        .map(|f| f.file_size_in_bytes())
        .context("a data file of the bucket")
}

#[tokio::test]
async fn a_byte_bound_keeps_at_least_that_much_of_each_buckets_newest_files() -> anyhow::Result<()>
{
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-expire-bytes"), store);
    let env = env(7);
    let table = LakeTable::create(&storage, &table_info(), &env).await?;
    let first = round(&table, &[(0, 0..10), (1, 0..5)], 1, &env).await?;
    let second = round(&first.table, &[(0, 10..20)], 2, &env).await?;
    let third = round(&second.table, &[(0, 20..30)], 3, &env).await?;
    let newest = file_size(&third, 0)?;
    let newest_two = file_size(&second, 0)? + newest;
    let bound = |max: u64| ExpiryRule {
        before: None,
        max_bytes: Some(max),
    };

    // Bucket 0's two newest files hold the bound without its first: the first goes.
    // Bucket 1's one file stays (nothing newer holds the bound).
    let staged = stage_expire(&third.table, bound(newest_two), &env)
        .await?
        .context("bucket 0 holds the bound without its first file")?;
    assert_eq!(removed_ranges(&staged), BTreeSet::from([(0, 0, 10)]));
    assert_eq!(
        staged.earliest,
        BTreeMap::from([(Bucket(0), Offset(10)), (Bucket(1), Offset(0))])
    );
    let mut expected = [
        rows(&[(1, 0..5)], 1),
        rows(&[(0, 10..20)], 2),
        rows(&[(0, 20..30)], 3),
    ]
    .concat();
    expected.sort();
    assert_eq!(scan(&staged.table).await?, expected);
    staged.abandon().await?;

    // A bound the newest file alone holds: all but the newest go, never the newest.
    let staged = stage_expire(&third.table, bound(newest), &env)
        .await?
        .context("bucket 0's newest file holds the bound")?;
    assert_eq!(
        removed_ranges(&staged),
        BTreeSet::from([(0, 0, 10), (0, 10, 20)])
    );
    staged.abandon().await?;

    // A byte more than the newer files hold: nothing within the bound goes.
    assert!(
        stage_expire(&third.table, bound(newest_two + 1), &env)
            .await?
            .is_none()
    );
    // With an age cutoff too, either rule removes.
    let both = ExpiryRule {
        before: Some(TimestampMicros(round_time(2))),
        max_bytes: Some(newest_two + 1),
    };
    let staged = stage_expire(&third.table, both, &env)
        .await?
        .context("round 1 is old enough")?;
    assert_eq!(
        removed_ranges(&staged),
        BTreeSet::from([(0, 0, 10), (1, 0, 5)])
    );
    Ok(())
}
