//! Small-file compaction of a lake table, against an in-memory store: twenty small rounds,
//! then a rewrite. iceberg-rust's scan reads exactly the same rows before and after; the new
//! snapshot is a `replace` with the small files DELETED and one file per bucket ADDED; the
//! watermarks do not move; the replaced files stay while an older snapshot reaches them and
//! are freed by the commit that expires the last one.

mod lake_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use iceberg::spec::{ManifestStatus, Operation};
use inlet_compactor::lake::{
    CompactionRule, LakeAppend, LakeRoot, LakeStorage, LakeTable, LakeWriteOptions, StagedRewrite,
    stage_rewrite,
};
use inlet_core::ids::{Bucket, Offset};
use lake_support::*;
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

/// Files of a few KiB are small next to this target.
const RULE: CompactionRule = CompactionRule {
    target_bytes: 1024 * 1024,
    min_files: 4,
    max_bytes: u64::MAX,
};

/// Twenty rounds: bucket 0 gains 10 rows a round, bucket 1 five; bucket 2 one round only.
async fn small_rounds(
    storage: &LakeStorage,
    env: &inlet_core::clock::Env,
) -> anyhow::Result<(LakeTable, Vec<Row>)> {
    let mut table = LakeTable::create(storage, &table_info(), env).await?;
    let mut expected = Vec::new();
    for n in 0..20u64 {
        let mut ranges = vec![(0, n * 10..n * 10 + 10), (1, n * 5..n * 5 + 5)];
        if n == 0 {
            ranges.push((2, 0..3));
        }
        expected.extend(rows(&ranges, 1));
        table = round(&table, &ranges, 1, env).await?.table;
    }
    expected.sort();
    Ok((table, expected))
}

/// The current snapshot's entries by status.
async fn statuses(table: &LakeTable) -> anyhow::Result<(usize, usize, usize)> {
    let (entries, _) = current_entries(table).await?;
    let count = |status| entries.iter().filter(|e| e.1 == status).count();
    Ok((
        count(ManifestStatus::Added),
        count(ManifestStatus::Existing),
        count(ManifestStatus::Deleted),
    ))
}

fn replaced_paths(staged: &StagedRewrite) -> BTreeSet<String> {
    staged
        .groups
        .iter()
        .flat_map(|group| group.replaced.iter().map(|file| file.path.clone()))
        .collect()
}

#[tokio::test]
async fn a_rewrite_keeps_every_row_and_frees_the_small_files_with_the_last_older_snapshot()
-> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-compact"), store.clone());
    let env = env(21);
    let (table, expected) = small_rounds(&storage, &env).await?;
    assert_eq!(scan(&table).await?, expected);
    let watermarks = table.watermarks()?;

    let staged = stage_rewrite(&table, &RULE, &LakeWriteOptions::default(), 100, &env)
        .await?
        .context("buckets 0 and 1 have twenty small files each")?;
    // Bucket 2 has one file: nothing to merge it with.
    let groups: Vec<(u32, u64, u64, usize, usize)> = staged
        .groups
        .iter()
        .map(|g| {
            (
                g.bucket.0,
                g.offsets.start.0,
                g.offsets.end.0,
                g.replaced.len(),
                g.files.len(),
            )
        })
        .collect();
    assert_eq!(groups, vec![(0, 0, 200, 20, 1), (1, 0, 100, 20, 1)]);
    staged.table.publish_version_hint().await?;

    // The same rows, offsets and timestamps; a replace snapshot; the watermarks unchanged.
    assert_eq!(scan(&staged.table).await?, expected);
    let snapshot = staged
        .table
        .metadata()
        .current_snapshot()
        .context("a snapshot")?;
    assert_eq!(snapshot.summary().operation, Operation::Replace);
    assert_eq!(snapshot.parent_snapshot_id(), table.snapshot_id());
    assert_eq!(staged.table.watermarks()?, watermarks);
    let summary = summary(&staged.table);
    assert_eq!(
        summary.get("total-data-files").map(String::as_str),
        Some("3")
    );
    assert_eq!(
        summary.get("deleted-data-files").map(String::as_str),
        Some("40")
    );
    assert_eq!(
        summary.get("total-records").map(String::as_str),
        Some("303")
    );
    // Two new files, bucket 2's kept, the forty replaced.
    assert_eq!(statuses(&staged.table).await?, (2, 1, 40));

    // Every older snapshot is kept, and with it the small files: time travel still reads them.
    assert!(staged.expired_snapshot_ids.is_empty());
    let replaced = replaced_paths(&staged);
    assert!(
        staged
            .files_to_delete_after_commit
            .iter()
            .all(|file| !replaced.contains(file)),
        "no replaced file is freed while a snapshot reaches it"
    );
    staged.delete_unreached_files().await?;
    assert_eq!(scan(&table).await?, expected);

    // Nothing small is left to merge.
    assert!(
        stage_rewrite(
            &staged.table,
            &RULE,
            &LakeWriteOptions::default(),
            100,
            &env
        )
        .await?
        .is_none()
    );

    // A round that keeps one snapshot expires every snapshot older than the rewrite: it
    // frees the replaced files.
    let mut append =
        LakeAppend::new(&staged.table, &LakeWriteOptions::default(), &env)?.retaining_snapshots(1);
    append
        .write_bucket(Bucket(0), &[batch(0, 200..210, 2)])
        .await?;
    let next = append.stage().await?;
    let freed: BTreeSet<String> = next
        .files_to_delete_after_commit
        .iter()
        .filter(|file| file.ends_with(".parquet"))
        .cloned()
        .collect();
    assert_eq!(freed, replaced);
    next.delete_unreached_files().await?;
    let mut all = expected.clone();
    all.extend(rows(&[(0, 200..210)], 2));
    all.sort();
    assert_eq!(scan(&next.table).await?, all);
    Ok(())
}

#[tokio::test]
async fn a_rewrite_that_keeps_one_snapshot_frees_its_files_itself() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-compact-one"), store.clone());
    let env = env(22);
    let (table, expected) = small_rounds(&storage, &env).await?;
    let staged = stage_rewrite(&table, &RULE, &LakeWriteOptions::default(), 1, &env)
        .await?
        .context("small files to merge")?;
    assert_eq!(staged.expired_snapshot_ids.len(), 20);
    let freed: BTreeSet<String> = staged
        .files_to_delete_after_commit
        .iter()
        .filter(|file| file.ends_with(".parquet"))
        .cloned()
        .collect();
    assert_eq!(freed, replaced_paths(&staged));
    staged.delete_unreached_files().await?;
    assert_eq!(scan(&staged.table).await?, expected);
    Ok(())
}

#[tokio::test]
async fn the_byte_budget_rewrites_one_group_at_least_and_leaves_the_rest() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-compact-budget"), store.clone());
    let env = env(23);
    let (table, expected) = small_rounds(&storage, &env).await?;
    let rule = CompactionRule {
        max_bytes: 1,
        ..RULE
    };
    let first = stage_rewrite(&table, &rule, &LakeWriteOptions::default(), 100, &env)
        .await?
        .context("one group")?;
    assert_eq!(first.groups.len(), 1);
    assert_eq!(first.groups[0].bucket, Bucket(0));
    let second = stage_rewrite(&first.table, &rule, &LakeWriteOptions::default(), 100, &env)
        .await?
        .context("bucket 1 is left")?;
    assert_eq!(second.groups.len(), 1);
    assert_eq!(second.groups[0].bucket, Bucket(1));
    assert_eq!(second.groups[0].offsets, Offset(0)..Offset(100));
    assert_eq!(scan(&second.table).await?, expected);
    assert_eq!(statuses(&second.table).await?, (1, 2, 20));
    Ok(())
}
