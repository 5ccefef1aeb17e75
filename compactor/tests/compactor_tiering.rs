//! Tiering end to end: rows appended to several buckets (WAL objects committed to a real
//! index) become exactly those rows in the Iceberg table, read back with iceberg-rust's scan;
//! a second round adds the new rows and nothing twice; the index's watermarks, lake file
//! entries and chunk entries follow; freshness, idleness, per-round limits and the
//! `lake.enabled` option decide when a round runs.

mod compactor_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::ensure;
use compactor_support::{Harness, stream, table_prefix};
use iceberg::spec::{ManifestContentType, ManifestList};
use inlet_compactor::lake::LakeWriteOptions;
use inlet_compactor::options::CompactionOptions;
use inlet_compactor::{CompactorOptions, RoundOutcome};
use inlet_core::ids::Offset;
use inlet_core::table::{OPTION_LAKE_SNAPSHOTS_RETAINED, TableAlteration};
use inlet_index::all_lake_files;
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path as ObjectPath;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_tier_every_committed_row_once_and_trim_the_index() -> anyhow::Result<()> {
    let h = Harness::new("tiering-rounds").await?;
    let table = h.table("events", 3, true).await?;
    let plain = h.table("plain", 1, false).await?;
    for i in 0..4u64 {
        h.append(&[(&table, 0, 7 + i), (&table, 1, 3), (&table, 2, 11 * i + 1)])
            .await?;
    }
    h.append(&[(&plain, 0, 5)]).await?;
    let first_total: u64 = h.appended(&table).values().sum();
    let compactor = h.compactor(1, CompactorOptions::default());

    let pass = compactor.run_once().await;
    ensure!(pass.errors().count() == 0, "{:?}", pass.rounds);
    ensure!(
        pass.rounds.len() == 1,
        "only the lake table is tiered: {:?}",
        pass.rounds
    );
    let committed: Vec<_> = pass.committed().collect();
    ensure!(committed.len() == 1, "{:?}", pass.rounds);
    let (_, round) = committed[0];
    ensure!(round.rows == first_total && !round.backlog, "{round:?}");
    ensure!(
        round.trimmed_chunks == 12,
        "4 objects x 3 buckets trimmed: {round:?}"
    );

    let marks = h.check_lake(&table).await?;
    ensure!(
        marks == h.appended(&table),
        "{marks:?} vs {:?}",
        h.appended(&table)
    );
    for bucket in 0..3 {
        let s = stream(&table, bucket);
        ensure!(
            h.chunk_count(s).await? == 0,
            "bucket {bucket} chunks trimmed"
        );
        // The lake file entries tile the bucket, name existing files of the snapshot.
        let mut files = h.index.lake_files(s, Offset(0)).await?;
        let mut next = 0;
        while let Some(file) = files.next().await? {
            ensure!(file.base_offset.0 == next, "{file:?} starts at {next}");
            ensure!(file.snapshot_id == round.snapshot_id, "{file:?}");
            ensure!(file.min_ts <= file.max_ts && file.min_ts.0 > 0, "{file:?}");
            let head = h.store.head(&ObjectPath::from(file.path.clone())).await?;
            ensure!(head.size == file.file_size, "{file:?} size {}", head.size);
            next = file.end_offset().0;
        }
        ensure!(
            next == marks[&bucket],
            "bucket {bucket} files end at {next}"
        );
    }
    ensure!(
        h.chunk_count(stream(&plain, 0)).await? == 1,
        "a table without lake tiering keeps its chunks"
    );
    ensure!(
        h.list(&table_prefix(&plain)).await?.is_empty(),
        "no lake table for a table without lake tiering"
    );
    // The version hint names the committed metadata.
    let lake = h.lake_table(&table).await?.expect("committed");
    let hint = h
        .store
        .get(&ObjectPath::from(format!(
            "{}/metadata/version-hint.text",
            table_prefix(&table)
        )))
        .await?
        .bytes()
        .await?;
    ensure!(
        lake.metadata_location().ends_with(&format!(
            "{}.metadata.json",
            String::from_utf8(hint.to_vec())?
        )),
        "hint names {}",
        lake.metadata_location()
    );

    // New rows within the freshness interval: not due.
    for _ in 0..3 {
        h.append(&[(&table, 0, 5), (&table, 2, 2)]).await?;
    }
    let pass = compactor.run_once().await;
    ensure!(
        matches!(pass.rounds[0].outcome, Ok(RoundOutcome::NotDue)),
        "{:?}",
        pass.rounds
    );
    h.clock.advance(Duration::from_millis(150));
    let pass = compactor.run_once().await;
    let committed: Vec<_> = pass.committed().collect();
    ensure!(committed.len() == 1, "{:?}", pass.rounds);
    ensure!(committed[0].1.rows == 21, "{:?}", committed[0].1);
    ensure!(
        committed[0]
            .1
            .watermarks
            .keys()
            .map(|b| b.0)
            .collect::<Vec<_>>()
            == vec![0, 2],
        "only moved buckets get watermarks: {:?}",
        committed[0].1
    );
    let marks = h.check_lake(&table).await?;
    ensure!(marks == h.appended(&table), "{marks:?}");
    ensure!(
        h.scan(&table).await?.len() as u64 == first_total + 21,
        "both rounds, nothing twice"
    );
    let lake = h.lake_table(&table).await?.expect("committed");
    ensure!(lake.metadata().snapshots().count() == 2, "two snapshots");
    // Due again, but nothing new: idle, no snapshot.
    h.clock.advance(Duration::from_millis(150));
    let pass = compactor.run_once().await;
    ensure!(
        matches!(pass.rounds[0].outcome, Ok(RoundOutcome::Idle)),
        "{:?}",
        pass.rounds
    );
    compactor.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_stops_at_a_chunk_boundary_and_the_backlog_continues_at_once() -> anyhow::Result<()>
{
    let h = Harness::new("tiering-limits").await?;
    let table = h.table("events", 2, true).await?;
    for _ in 0..5 {
        h.append(&[(&table, 0, 10), (&table, 1, 10)]).await?;
    }
    let compactor = h.compactor(
        1,
        CompactorOptions {
            max_round_rows: 25,
            ..CompactorOptions::default()
        },
    );
    let mut rounds = Vec::new();
    loop {
        let pass = compactor.run_once().await;
        ensure!(pass.errors().count() == 0, "{:?}", pass.rounds);
        match &pass.rounds[0].outcome {
            Ok(RoundOutcome::Committed(round)) => {
                // Whole chunks only, at most the limit.
                ensure!(round.rows == 20, "{round:?}");
                for mark in round.watermarks.values() {
                    ensure!(mark.0 % 10 == 0, "watermark on a chunk boundary: {round:?}");
                }
                rounds.push(round.clone());
            }
            // After the round that cleared the backlog, freshness applies again.
            Ok(RoundOutcome::NotDue) => break,
            other => anyhow::bail!("unexpected {other:?}"),
        }
        h.check_lake(&table).await?;
        ensure!(rounds.len() <= 5, "{rounds:?}");
    }
    // No clock movement was needed: a backlog is due again at once.
    ensure!(rounds.len() == 5, "{rounds:?}");
    ensure!(
        rounds[..4].iter().all(|r| r.backlog) && !rounds[4].backlog,
        "{rounds:?}"
    );
    let marks = h.check_lake(&table).await?;
    ensure!(marks == h.appended(&table), "{marks:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_started_loop_tiers_and_stop_releases_the_lease() -> anyhow::Result<()> {
    let h = Harness::new("tiering-loop").await?;
    let table = h.table("events", 2, true).await?;
    h.append(&[(&table, 0, 6), (&table, 1, 4)]).await?;
    let compactor = inlet_compactor::Compactor::start(
        h.index.clone(),
        h.cache.clone(),
        h.lake.clone(),
        CompactorOptions {
            scan_interval: Duration::from_millis(10),
            owner: Some(9),
            ..CompactorOptions::default()
        },
        h.env.clone(),
    );
    let mut tiered = false;
    for _ in 0..500 {
        if h.index.lake_watermark(stream(&table, 1)).await?.offset == Offset(4) {
            tiered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(tiered, "the loop tiered the table");
    compactor.stop().await;
    ensure!(h.check_lake(&table).await? == h.appended(&table));
    let lease = h.index.lake_table(table.id).await?.and_then(|r| r.lease);
    ensure!(
        lease.is_some_and(|l| l.owner == 9
            && l.expires_at_micros <= h.clock.0.load(std::sync::atomic::Ordering::SeqCst)),
        "stop released the lease: {lease:?}"
    );
    Ok(())
}

/// The names (last path segment) of the manifest lists and manifests the kept snapshots of
/// `lake` reach, and how many data manifests its current snapshot lists.
async fn reachable_metadata(
    lake: &inlet_compactor::lake::LakeTable,
) -> anyhow::Result<(BTreeSet<String>, usize)> {
    let file_io = lake.storage().file_io();
    let metadata = lake.metadata();
    let name = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
    let mut reached = BTreeSet::new();
    let mut current_data_manifests = 0;
    for snapshot in metadata.snapshots() {
        reached.insert(name(snapshot.manifest_list()));
        let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
        let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
        for manifest in list.entries() {
            reached.insert(name(&manifest.manifest_path));
            if Some(snapshot.snapshot_id()) == metadata.current_snapshot_id()
                && manifest.content == ManifestContentType::Data
            {
                current_data_manifests += 1;
            }
        }
    }
    Ok((reached, current_data_manifests))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_keep_the_retained_snapshots_and_merge_manifests() -> anyhow::Result<()> {
    let h = Harness::new("tiering-upkeep").await?;
    h.table("upkeep", 2, true).await?;
    let table = retain_snapshots(&h, "upkeep", 3).await?;
    let options = CompactorOptions {
        write: LakeWriteOptions {
            merge_manifests_at: 4,
            ..LakeWriteOptions::default()
        },
        ..CompactorOptions::default()
    };
    let compactor = h.compactor(1, options);
    let mut merged = 0;
    for round in 1..=12usize {
        h.append(&[(&table, 0, 5), (&table, 1, round as u64)])
            .await?;
        let tiered = compactor.tier_table(table.id).await;
        let Ok(RoundOutcome::Committed(committed)) = &tiered.outcome else {
            anyhow::bail!("round {round}: {tiered:?}");
        };
        merged += committed.merged_manifests;
        ensure!(
            committed.retired_snapshots == usize::from(round > 3),
            "round {round} retires one snapshot once 3 are kept: {committed:?}"
        );
        // Every row once, in order, whatever was merged or retired.
        ensure!(h.check_lake(&table).await? == h.appended(&table));
        let lake = h.lake_table(&table).await?.expect("committed");
        ensure!(
            lake.metadata().snapshots().count() == round.min(3),
            "round {round}: {} snapshots",
            lake.metadata().snapshots().count()
        );
        // Nothing under metadata/ but what the kept snapshots reach and the metadata files.
        let (reached, data_manifests) = reachable_metadata(&lake).await?;
        ensure!(
            data_manifests < 4,
            "round {round}: {data_manifests} data manifests, merged at 4"
        );
        let avro: BTreeSet<String> = h
            .list(&format!("{}/metadata", table_prefix(&table)))
            .await?
            .into_iter()
            .filter(|path| path.ends_with(".avro"))
            .map(|path| path.rsplit('/').next().unwrap_or_default().to_owned())
            .collect();
        ensure!(
            avro == reached,
            "round {round}: unreached manifests or lists left: {:?}; missing: {:?}",
            avro.difference(&reached).collect::<Vec<_>>(),
            reached.difference(&avro).collect::<Vec<_>>()
        );
    }
    ensure!(merged >= 8, "12 rounds merged their manifests: {merged}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_files_that_leave_the_metadata_log_are_deleted() -> anyhow::Result<()> {
    let h = Harness::new("tiering-metadata-log").await?;
    let table = h.table("long_lived", 1, true).await?;
    let compactor = h.compactor(1, CompactorOptions::default());
    // Iceberg keeps the newest 100 entries (`write.metadata.previous-versions-max`).
    let rounds = 103;
    for round in 1..=rounds {
        h.append(&[(&table, 0, 1)]).await?;
        let tiered = compactor.tier_table(table.id).await;
        ensure!(
            matches!(tiered.outcome, Ok(RoundOutcome::Committed(_))),
            "round {round}: {tiered:?}"
        );
    }
    let lake = h.lake_table(&table).await?.expect("committed");
    let log: BTreeSet<String> = lake
        .metadata()
        .metadata_log()
        .iter()
        .map(|entry| {
            entry
                .metadata_file
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .chain([lake
            .metadata_location()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()])
        .collect();
    ensure!(
        log.len() == 101,
        "the log holds 100 versions: {}",
        log.len()
    );
    let files: BTreeSet<String> = h
        .list(&format!("{}/metadata", table_prefix(&table)))
        .await?
        .into_iter()
        .filter(|path| path.ends_with(".metadata.json"))
        .map(|path| path.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    ensure!(
        files == log,
        "{} metadata files for {rounds} rounds, not the {} logged",
        files.len(),
        log.len()
    );
    ensure!(h.check_lake(&table).await? == h.appended(&table));
    Ok(())
}

/// Sets `lake.snapshots.retained` of table `db.<table>`.
async fn retain_snapshots(
    h: &Harness,
    table: &str,
    count: usize,
) -> anyhow::Result<std::sync::Arc<inlet_core::table::TableInfo>> {
    Ok(h.index
        .alter_table(
            "db",
            table,
            TableAlteration {
                set_options: BTreeMap::from([(
                    OPTION_LAKE_SNAPSHOTS_RETAINED.to_owned(),
                    count.to_string(),
                )]),
                ..TableAlteration::default()
            },
        )
        .await?)
}

/// The data files (last path segment) the kept snapshots of `lake` reach.
async fn reachable_data_files(
    lake: &inlet_compactor::lake::LakeTable,
) -> anyhow::Result<BTreeSet<String>> {
    let file_io = lake.storage().file_io();
    let mut files = BTreeSet::new();
    for snapshot in lake.metadata().snapshots() {
        let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
        let list = ManifestList::parse_with_version(&bytes, lake.metadata().format_version())?;
        for manifest in list.entries() {
            for entry in manifest.load_manifest(&file_io).await?.entries() {
                if entry.is_alive() {
                    files.insert(
                        entry
                            .file_path()
                            .rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        }
    }
    Ok(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_compact_small_files_and_free_them_with_the_snapshots_that_reach_them()
-> anyhow::Result<()> {
    let h = Harness::new("tiering-compaction").await?;
    let table = h.table("chatty", 2, true).await?;
    retain_snapshots(&h, "chatty", 3).await?;
    let options = CompactorOptions {
        compaction: CompactionOptions {
            min_files: 4,
            ..CompactionOptions::default()
        },
        ..CompactorOptions::default()
    };
    let compactor = h.compactor(1, options);
    let mut compacted = 0;
    for round in 1..=14u64 {
        h.append(&[(&table, 0, 5), (&table, 1, round)]).await?;
        let tiered = compactor.tier_table(table.id).await;
        let Ok(RoundOutcome::Committed(committed)) = &tiered.outcome else {
            anyhow::bail!("round {round}: {tiered:?}");
        };
        compacted += committed.compacted_files;
        // Every row once, in order, whatever was rewritten.
        ensure!(h.check_lake(&table).await? == h.appended(&table));
        for bucket in 0..2 {
            // The index's files tile the bucket from 0 to its watermark, and small files
            // never pile up past the threshold.
            let files = all_lake_files(&h.index, stream(&table, bucket), Offset(0)).await?;
            let mut next = Offset(0);
            for file in &files {
                ensure!(file.base_offset == next, "round {round}: {files:?}");
                next = file.end_offset();
            }
            let watermark = h.index.lake_watermark(stream(&table, bucket)).await?.offset;
            ensure!(next == watermark, "round {round}: {files:?} vs {watermark}");
            ensure!(files.len() < 4, "round {round}: {} files", files.len());
        }
        // Nothing under data/ but what a kept snapshot reaches.
        let lake = h.lake_table(&table).await?.expect("committed");
        let reached = reachable_data_files(&lake).await?;
        let stored: BTreeSet<String> = h
            .list(&format!("{}/data", table_prefix(&table)))
            .await?
            .into_iter()
            .map(|path| path.rsplit('/').next().unwrap_or_default().to_owned())
            .collect();
        ensure!(
            stored == reached,
            "round {round}: unreached data files left: {:?}; missing: {:?}",
            stored.difference(&reached).collect::<Vec<_>>(),
            reached.difference(&stored).collect::<Vec<_>>()
        );
    }
    ensure!(
        compacted >= 16,
        "14 rounds compacted small files: {compacted}"
    );
    Ok(())
}
