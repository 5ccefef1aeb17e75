//! Crash repair: a compactor crashes at each step of a round (Parquet written; staged
//! metadata written; index committed but version hint not), holding its lease. Another
//! compactor takes the table once the lease expires, repairs it and tiers on: no offset is
//! missing or duplicated, the version hint is put right, and the crashed round's files are
//! deleted once older than the orphan grace (and not before), while every file the committed
//! metadata references stays.

mod compactor_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::ensure;
use compactor_support::{Harness, stream, table_prefix};
use inlet_compactor::lake::LakeTable;
use inlet_compactor::{
    CompactorOptions, Failpoint, FailpointHook, InjectedCrash, RoundError, RoundOutcome,
};
use inlet_core::ids::Offset;
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path as ObjectPath;

const LEASE_TTL: Duration = Duration::from_secs(5);

fn options() -> CompactorOptions {
    CompactorOptions {
        lease_ttl: LEASE_TTL,
        ..CompactorOptions::default()
    }
}

/// A hook that crashes the first time the round reaches `point`.
fn crash_once_at(point: Failpoint) -> FailpointHook {
    let armed = Arc::new(AtomicBool::new(true));
    FailpointHook::new(move |reached| {
        if reached == point && armed.swap(false, Ordering::SeqCst) {
            Err(InjectedCrash {
                reason: format!("{reached:?}"),
            })
        } else {
            Ok(())
        }
    })
}

async fn hint(h: &Harness, prefix: &str) -> anyhow::Result<String> {
    let bytes = h
        .store
        .get(&ObjectPath::from(format!(
            "{prefix}/metadata/version-hint.text"
        )))
        .await?
        .bytes()
        .await?;
    Ok(String::from_utf8(bytes.to_vec())?)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `path` (an object under the table) is referenced by `lake`'s committed metadata,
/// judged by name: metadata files in the log, manifest lists of live snapshots, manifests
/// of the rounds those name, data files the index lists.
fn referenced(lake: &LakeTable, data_files: &BTreeSet<String>, path: &str) -> bool {
    let name = file_name(path);
    let metadata = lake.metadata();
    let lists: Vec<String> = metadata
        .snapshots()
        .map(|s| file_name(s.manifest_list()).to_owned())
        .collect();
    if name.ends_with(".metadata.json") {
        file_name(lake.metadata_location()) == name
            || metadata
                .metadata_log()
                .iter()
                .any(|log| file_name(&log.metadata_file) == name)
    } else if let Some(round) = name.strip_suffix("-m0.avro") {
        lists
            .iter()
            .any(|list| list.ends_with(&format!("{round}.avro")))
    } else if name.starts_with("snap-") {
        lists.iter().any(|list| list == name)
    } else if name.ends_with(".parquet") {
        data_files.contains(path)
    } else {
        name == "version-hint.text"
    }
}

async fn crash_and_repair(point: Failpoint, name: &str) -> anyhow::Result<()> {
    let h = Harness::new(name).await?;
    let table = h.table("events", 2, true).await?;
    let prefix = table_prefix(&table);
    for i in 0..3 {
        h.append(&[(&table, 0, 4 + i), (&table, 1, 9)]).await?;
    }

    // The crash.
    let crashing = h.compactor(
        1,
        CompactorOptions {
            failpoints: Some(crash_once_at(point)),
            ..options()
        },
    );
    let pass = crashing.run_once().await;
    ensure!(
        matches!(pass.rounds[0].outcome, Err(RoundError::Crash(_))),
        "{point:?}: {:?}",
        pass.rounds
    );
    drop(crashing); // a crash: the lease is not released
    let left = h.list(&prefix).await?;
    let record = h.index.lake_table(table.id).await?.expect("created");
    let current = record.metadata_location.clone().expect("created");
    let parquet = left.iter().filter(|p| p.ends_with(".parquet")).count();
    ensure!(parquet >= 2, "{point:?}: data files were written: {left:?}");
    match point {
        Failpoint::AfterDataFiles | Failpoint::AfterMetadata => {
            ensure!(file_name(&current).starts_with("00000-"), "{current}");
            for bucket in 0..2 {
                let s = stream(&table, bucket);
                ensure!(h.index.lake_watermark(s).await?.offset == Offset(0));
                ensure!(h.chunk_count(s).await? == 3, "chunks stay until a commit");
            }
            let staged = left.iter().any(|p| file_name(p).starts_with("00001-"));
            ensure!(
                staged == (point == Failpoint::AfterMetadata),
                "{point:?}: staged metadata {left:?}"
            );
        }
        Failpoint::AfterIndexCommit => {
            ensure!(file_name(&current).starts_with("00001-"), "{current}");
            ensure!(
                hint(&h, &prefix).await?.starts_with("00000-"),
                "the hint still names the previous version"
            );
        }
    }

    // Another compactor: the lease is still held, then it expires and the table is repaired.
    let next = h.compactor(2, options());
    let pass = next.run_once().await;
    ensure!(
        matches!(
            pass.rounds[0].outcome,
            Ok(RoundOutcome::LeasedElsewhere { .. })
        ),
        "{:?}",
        pass.rounds
    );
    h.clock.advance(LEASE_TTL + Duration::from_secs(1));
    let pass = next.run_once().await;
    let round = &pass.rounds[0];
    let repair = round.repair.clone().expect("a new holder repairs");
    ensure!(repair.version_hint_published, "{repair:?}");
    ensure!(
        repair.orphans_deleted == 0,
        "younger than the grace: {repair:?}"
    );
    match point {
        Failpoint::AfterDataFiles | Failpoint::AfterMetadata => {
            ensure!(repair.orphans_kept >= parquet, "{point:?}: {repair:?}");
            ensure!(
                matches!(round.outcome, Ok(RoundOutcome::Committed(_))),
                "{:?}",
                round.outcome
            );
        }
        Failpoint::AfterIndexCommit => {
            ensure!(repair.orphans_kept == 0, "nothing orphaned: {repair:?}");
            ensure!(
                matches!(round.outcome, Ok(RoundOutcome::Idle)),
                "{:?}",
                round.outcome
            );
        }
    }
    let marks = h.check_lake(&table).await?;
    ensure!(marks == h.appended(&table), "{point:?}: {marks:?}");
    let lake = h.lake_table(&table).await?.expect("committed");
    ensure!(
        lake.metadata_location()
            .ends_with(&format!("{}.metadata.json", hint(&h, &prefix).await?)),
        "the hint names the committed version"
    );
    h.append(&[(&table, 0, 3), (&table, 1, 1)]).await?;
    h.clock.advance(Duration::from_millis(200));
    let pass = next.run_once().await;
    ensure!(pass.committed().count() == 1, "{:?}", pass.rounds);
    next.stop().await;

    // Past the orphan grace, the next holder deletes the crashed round's files.
    h.clock
        .advance(CompactorOptions::default().orphan_grace + Duration::from_secs(1));
    let last = h.compactor(3, options());
    let pass = last.run_once().await;
    let repair = pass.rounds[0].repair.clone().expect("a new holder repairs");
    ensure!(repair.orphans_kept == 0, "{repair:?}");
    let expect_orphans = point != Failpoint::AfterIndexCommit;
    ensure!(
        (repair.orphans_deleted > 0) == expect_orphans,
        "{point:?}: {repair:?}"
    );
    let lake = h.lake_table(&table).await?.expect("committed");
    let mut data_files = BTreeSet::new();
    for bucket in 0..2 {
        let mut files = h
            .index
            .lake_files(stream(&table, bucket), Offset(0))
            .await?;
        while let Some(file) = files.next().await? {
            data_files.insert(file.path);
        }
    }
    let now = h.list(&prefix).await?;
    for path in &left {
        ensure!(
            now.contains(path) == referenced(&lake, &data_files, path),
            "{point:?}: `{path}` left by the crash is {} but {}",
            if now.contains(path) {
                "still there"
            } else {
                "gone"
            },
            if referenced(&lake, &data_files, path) {
                "referenced"
            } else {
                "an orphan"
            },
        );
    }
    for path in &now {
        ensure!(
            referenced(&lake, &data_files, path),
            "{point:?}: unreferenced `{path}` survived repair"
        );
    }
    let marks = h.check_lake(&table).await?;
    ensure!(marks == h.appended(&table), "{point:?}: {marks:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_data_files_is_rolled_back_and_retiered() -> anyhow::Result<()> {
    crash_and_repair(Failpoint::AfterDataFiles, "crash-data").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_staged_metadata_is_rolled_back_and_retiered() -> anyhow::Result<()> {
    crash_and_repair(Failpoint::AfterMetadata, "crash-metadata").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_index_commit_keeps_the_round_and_fixes_the_hint() -> anyhow::Result<()> {
    crash_and_repair(Failpoint::AfterIndexCommit, "crash-commit").await
}
