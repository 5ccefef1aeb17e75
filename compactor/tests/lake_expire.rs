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
use iceberg::TableIdent;
use iceberg::spec::{ManifestStatus, Operation};
use inlet_compactor::lake::{
    ExpiryRule, LakeRoot, LakeStorage, LakeTable, RemovedFile, StagedAppend, StagedExpire,
    stage_expire,
};
use inlet_core::ids::{Bucket, Offset, TimestampMicros};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;

mod lake_support;

use lake_support::*;

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
