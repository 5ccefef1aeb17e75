//! Retention end to end: tables with `retention = 1h` get rows at t0 and t0+50m, tiered in
//! separate rounds (separate data files); at t0+1h30m a round expires the t0 files. The
//! Iceberg scan then reads only the later rows, each bucket's earliest readable offset moved
//! to the first later offset, the index no longer lists the removed files, and the removed
//! Parquet files are gone from the store. A table with new rows expires after tiering them
//! (two snapshots in one round); an idle table is expired all the same; a table without
//! retention keeps everything. An expiry whose round crashed after the index commit leaves
//! its expired files behind, and the next round's repair deletes them.

mod compactor_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, ensure};
use arrow_schema::{DataType, Field, Schema};
use compactor_support::{Harness, LakeRow, stream};
use iceberg::spec::Operation;
use inlet_compactor::{
    CompactorOptions, Failpoint, FailpointHook, InjectedCrash, RoundCommitted, RoundError,
    RoundOutcome,
};
use inlet_core::ids::{Offset, TableId};
use inlet_core::table::{
    OPTION_LAKE_ENABLED, OPTION_LAKE_FRESHNESS, OPTION_RETENTION, OPTION_RETENTION_BYTES,
    TableDescriptor, TableInfo,
};
use inlet_index::LakeFileEntry;
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path as ObjectPath;

const MINUTE: Duration = Duration::from_secs(60);

/// Creates `db.<name>` with the harness's columns (`seq` int64, `msg` utf8), lake tiering on
/// (freshness 100 ms) and the given retention.
async fn table(
    h: &Harness,
    name: &str,
    buckets: u32,
    retention: Option<&str>,
) -> anyhow::Result<Arc<TableInfo>> {
    let mut options = BTreeMap::from([
        (OPTION_LAKE_ENABLED.to_owned(), "true".to_owned()),
        (OPTION_LAKE_FRESHNESS.to_owned(), "100ms".to_owned()),
    ]);
    if let Some(retention) = retention {
        options.insert(OPTION_RETENTION.to_owned(), retention.to_owned());
    }
    let descriptor = TableDescriptor {
        schema: Arc::new(Schema::new(vec![
            Field::new("seq", DataType::Int64, false),
            Field::new("msg", DataType::Utf8, true),
        ])),
        bucket_count: buckets,
        bucket_key: vec![],
        partition_key: vec![],
        primary_key: vec![],
        comment: String::new(),
        options,
    };
    Ok(h.index.create_table("db", name, descriptor, false).await?)
}

/// Every lake file entry of each bucket of `table`, in offset order.
async fn lake_files(
    h: &Harness,
    table: &TableInfo,
) -> anyhow::Result<BTreeMap<u32, Vec<LakeFileEntry>>> {
    let mut all = BTreeMap::new();
    for bucket in 0..table.descriptor.bucket_count {
        let mut files = h.index.lake_files(stream(table, bucket), Offset(0)).await?;
        let mut list = Vec::new();
        while let Some(file) = files.next().await? {
            list.push(file);
        }
        all.insert(bucket, list);
    }
    Ok(all)
}

/// Each bucket's earliest readable offset, from the index's stream tail.
async fn earliest(h: &Harness, table: &TableInfo) -> anyhow::Result<BTreeMap<u32, u64>> {
    let mut all = BTreeMap::new();
    for bucket in 0..table.descriptor.bucket_count {
        let tail = h.index.tail(stream(table, bucket)).await?;
        all.insert(bucket, tail.earliest_offset.0);
    }
    Ok(all)
}

async fn exists(h: &Harness, path: &str) -> anyhow::Result<bool> {
    match h.store.head(&ObjectPath::from(path)).await {
        Ok(_) => Ok(true),
        Err(slatedb::object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// The rows the lake must hold: each bucket's offsets `from..to` (`seq` = offset).
fn expected_rows(ranges: &[(u32, u64, u64)]) -> Vec<(i32, i64, i64)> {
    let mut rows: Vec<(i32, i64, i64)> = ranges
        .iter()
        .flat_map(|(bucket, from, to)| {
            (*from..*to).map(move |offset| (*bucket as i32, offset as i64, offset as i64))
        })
        .collect();
    rows.sort();
    rows
}

fn scanned(rows: &[LakeRow]) -> Vec<(i32, i64, i64)> {
    rows.iter().map(|r| (r.bucket, r.offset, r.seq)).collect()
}

fn outcome(pass: &inlet_compactor::PassReport, table: TableId) -> anyhow::Result<&RoundOutcome> {
    let Some(round) = pass.rounds.iter().find(|round| round.table == table) else {
        bail!("no round of table {}: {:?}", table.0, pass.rounds);
    };
    match &round.outcome {
        Ok(outcome) => Ok(outcome),
        Err(error) => bail!("round of table {} failed: {error}", table.0),
    }
}

fn committed(
    pass: &inlet_compactor::PassReport,
    table: TableId,
) -> anyhow::Result<&RoundCommitted> {
    match outcome(pass, table)? {
        RoundOutcome::Committed(round) => Ok(round),
        other => bail!("table {} did not commit: {other:?}", table.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expires_old_files_moves_earliest_and_deletes_them() -> anyhow::Result<()> {
    let h = Harness::new("retention-expiry").await?;
    let events = table(&h, "events", 2, Some("1h")).await?;
    let idle = table(&h, "idle", 1, Some("1h")).await?;
    let keep = table(&h, "keep", 1, None).await?;
    let compactor = h.compactor(1, CompactorOptions::default());

    // t0: first rows, tiered.
    h.append(&[
        (&events, 0, 5),
        (&events, 1, 3),
        (&idle, 0, 6),
        (&keep, 0, 4),
    ])
    .await?;
    let pass = compactor.run_once().await;
    ensure!(pass.errors().count() == 0, "{:?}", pass.rounds);
    ensure!(pass.committed().count() == 3, "{:?}", pass.rounds);
    let first_events = lake_files(&h, &events).await?;
    let first_idle = lake_files(&h, &idle).await?;
    ensure!(
        first_events.values().all(|files| files.len() == 1) && first_idle[&0].len() == 1,
        "one data file per bucket: {first_events:?} {first_idle:?}"
    );

    // t0+50m: more rows in separate files; nothing is an hour old yet.
    h.clock.advance(50 * MINUTE);
    h.append(&[(&events, 0, 4), (&events, 1, 2), (&keep, 0, 3)])
        .await?;
    let pass = compactor.run_once().await;
    ensure!(pass.errors().count() == 0, "{:?}", pass.rounds);
    for table in [&events, &keep] {
        let round = committed(&pass, table.id)?;
        ensure!(
            round.expired_files == 0 && round.earliest.is_empty(),
            "{round:?}"
        );
    }
    ensure!(
        matches!(outcome(&pass, idle.id)?, RoundOutcome::Idle),
        "{:?}",
        pass.rounds
    );
    ensure!(
        h.scan(&events).await?.len() == 14,
        "nothing expired before its time"
    );
    let second_events = lake_files(&h, &events).await?;

    // t0+1h30m: the t0 files are older than the retention. `events` gets new rows in bucket
    // 0 too: its round tiers them, then expires.
    h.clock.advance(40 * MINUTE);
    h.append(&[(&events, 0, 2)]).await?;
    let pass = compactor.run_once().await;
    ensure!(pass.errors().count() == 0, "{:?}", pass.rounds);

    let round = committed(&pass, events.id)?;
    ensure!(
        round.rows == 2 && round.data_files == 1,
        "tiered first: {round:?}"
    );
    ensure!(
        round.expired_files == 2 && round.expired_rows == 8,
        "the two t0 files, 5 + 3 rows: {round:?}"
    );
    let expired_bytes: u64 = first_events.values().flatten().map(|f| f.file_size).sum();
    ensure!(round.expired_bytes == expired_bytes, "{round:?}");
    ensure!(
        round
            .earliest
            .iter()
            .map(|(b, o)| (b.0, o.0))
            .collect::<Vec<_>>()
            == [(0, 5), (1, 3)],
        "{round:?}"
    );
    ensure!(
        round
            .watermarks
            .iter()
            .map(|(b, o)| (b.0, o.0))
            .collect::<Vec<_>>()
            == [(0, 11)],
        "the append moved bucket 0: {round:?}"
    );
    // Only the later rows are left, and every later row is.
    ensure!(
        scanned(&h.scan(&events).await?) == expected_rows(&[(0, 5, 11), (1, 3, 5)]),
        "{:?}",
        h.scan(&events).await?
    );
    ensure!(
        earliest(&h, &events).await? == BTreeMap::from([(0, 5), (1, 3)]),
        "{:?}",
        earliest(&h, &events).await?
    );
    for bucket in 0..2 {
        let watermark = h.index.lake_watermark(stream(&events, bucket)).await?;
        ensure!(
            watermark.offset.0 == [11, 5][bucket as usize],
            "expiry never moves a watermark: bucket {bucket} at {watermark:?}"
        );
    }
    // The index lists exactly the kept files, from the new earliest offset on.
    let files = lake_files(&h, &events).await?;
    let removed: BTreeSet<&str> = first_events
        .values()
        .flatten()
        .map(|f| f.path.as_str())
        .collect();
    for (bucket, files) in &files {
        ensure!(
            files.first().map(|f| f.base_offset.0) == Some([5, 3][*bucket as usize]),
            "bucket {bucket}: {files:?}"
        );
        ensure!(
            files.iter().all(|f| !removed.contains(f.path.as_str())),
            "bucket {bucket} still lists an expired file: {files:?}"
        );
        for file in files {
            ensure!(
                exists(&h, &file.path).await?,
                "kept file {} exists",
                file.path
            );
        }
    }
    let later: Vec<&LakeFileEntry> = second_events
        .values()
        .flatten()
        .filter(|f| !removed.contains(f.path.as_str()))
        .collect();
    ensure!(
        later.len() == 2
            && later
                .iter()
                .all(|f| files.values().flatten().any(|g| g.path == f.path)),
        "the t0+50m files are kept: {later:?}"
    );
    for path in &removed {
        ensure!(!exists(&h, path).await?, "expired file {path} deleted");
    }
    // The current snapshot is the expiry (a `delete`), with the earliest offsets in its
    // summary; every snapshot that reached an expired file is gone.
    let lake = h.lake_table(&events).await?.expect("committed");
    let snapshot = lake.metadata().current_snapshot().expect("a snapshot");
    ensure!(snapshot.snapshot_id() == round.snapshot_id, "{round:?}");
    ensure!(snapshot.summary().operation == Operation::Delete);
    let properties = &snapshot.summary().additional_properties;
    ensure!(
        properties.get("inlet.earliest.0").map(String::as_str) == Some("5")
            && properties.get("inlet.earliest.1").map(String::as_str) == Some("3"),
        "{properties:?}"
    );
    ensure!(
        lake.metadata().snapshots().count() == 1 && round.expired_snapshots == 3,
        "the three earlier snapshots all reach a t0 file: {round:?}"
    );

    // The idle table got no new rows and is expired all the same: nothing left.
    let round = committed(&pass, idle.id)?;
    ensure!(
        round.rows == 0 && round.expired_files == 1 && round.expired_rows == 6,
        "{round:?}"
    );
    ensure!(
        h.scan(&idle).await?.is_empty(),
        "{:?}",
        h.scan(&idle).await?
    );
    ensure!(earliest(&h, &idle).await? == BTreeMap::from([(0, 6)]));
    ensure!(lake_files(&h, &idle).await?[&0].is_empty());
    ensure!(!exists(&h, &first_idle[&0][0].path).await?);
    ensure!(h.index.lake_watermark(stream(&idle, 0)).await?.offset == Offset(6));

    // The table without retention keeps everything.
    ensure!(
        matches!(outcome(&pass, keep.id)?, RoundOutcome::Idle),
        "{:?}",
        pass.rounds
    );
    ensure!(scanned(&h.scan(&keep).await?) == expected_rows(&[(0, 0, 7)]));
    ensure!(earliest(&h, &keep).await? == BTreeMap::from([(0, 0)]));
    let kept = lake_files(&h, &keep).await?;
    ensure!(kept[&0].len() == 2 && kept[&0][0].base_offset == Offset(0));
    for file in &kept[&0] {
        ensure!(exists(&h, &file.path).await?);
    }

    // Nothing more is old enough: the next rounds are idle, and new rows still tier on the
    // expired table.
    h.clock.advance(Duration::from_millis(150));
    let pass = compactor.run_once().await;
    ensure!(
        pass.rounds
            .iter()
            .all(|r| matches!(r.outcome, Ok(RoundOutcome::Idle))),
        "{:?}",
        pass.rounds
    );
    h.append(&[(&idle, 0, 3)]).await?;
    h.clock.advance(Duration::from_millis(150));
    let pass = compactor.run_once().await;
    let round = committed(&pass, idle.id)?;
    ensure!(round.rows == 3 && round.expired_files == 0, "{round:?}");
    ensure!(scanned(&h.scan(&idle).await?) == expected_rows(&[(0, 6, 9)]));

    // At t0+2h+ the t0+50m files expire too; bucket 1 is left with no file at all.
    h.clock.advance(40 * MINUTE);
    let pass = compactor.run_once().await;
    let round = committed(&pass, events.id)?;
    ensure!(
        round.rows == 0 && round.expired_files == 2 && round.expired_rows == 6,
        "{round:?}"
    );
    ensure!(
        earliest(&h, &events).await? == BTreeMap::from([(0, 9), (1, 5)]),
        "{:?}",
        earliest(&h, &events).await?
    );
    ensure!(scanned(&h.scan(&events).await?) == expected_rows(&[(0, 9, 11)]));
    compactor.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_table_is_checked_for_expiry_at_most_once_per_freshness() -> anyhow::Result<()> {
    let h = Harness::new("retention-throttle").await?;
    // Freshness 100 ms, retention 1 s: the file expires 1 s after its rows.
    let table = table(&h, "events", 1, Some("1s")).await?;
    let compactor = h.compactor(1, CompactorOptions::default());
    h.append(&[(&table, 0, 4)]).await?;
    let pass = compactor.run_once().await;
    committed(&pass, table.id)?;

    // Due (freshness passed), idle, nothing old enough: the check counts as done.
    h.clock.advance(Duration::from_millis(950));
    let pass = compactor.run_once().await;
    ensure!(matches!(outcome(&pass, table.id)?, RoundOutcome::Idle));
    // Now the file is old enough, but the last check is under a freshness interval ago.
    h.clock.advance(Duration::from_millis(60));
    let pass = compactor.run_once().await;
    ensure!(
        matches!(outcome(&pass, table.id)?, RoundOutcome::Idle),
        "{:?}",
        pass.rounds
    );
    ensure!(h.scan(&table).await?.len() == 4, "not expired yet");
    h.clock.advance(Duration::from_millis(60));
    let pass = compactor.run_once().await;
    let round = committed(&pass, table.id)?;
    ensure!(
        round.expired_files == 1 && round.expired_rows == 4,
        "{round:?}"
    );
    ensure!(h.scan(&table).await?.is_empty());
    ensure!(earliest(&h, &table).await? == BTreeMap::from([(0, 4)]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_files_left_by_a_crash_after_the_commit_are_deleted_by_repair() -> anyhow::Result<()>
{
    let h = Harness::new("retention-crash").await?;
    let table = table(&h, "events", 2, Some("1h")).await?;
    let crash = Arc::new(AtomicBool::new(false));
    let armed = crash.clone();
    let compactor = h.compactor(
        1,
        CompactorOptions {
            failpoints: Some(FailpointHook::new(move |point| {
                if point == Failpoint::AfterIndexCommit && armed.load(Ordering::SeqCst) {
                    return Err(InjectedCrash {
                        reason: "after the expiry's index commit".to_owned(),
                    });
                }
                Ok(())
            })),
            ..CompactorOptions::default()
        },
    );
    h.append(&[(&table, 0, 5), (&table, 1, 3)]).await?;
    committed(&compactor.run_once().await, table.id)?;
    let files: Vec<String> = lake_files(&h, &table)
        .await?
        .into_values()
        .flatten()
        .map(|f| f.path)
        .collect();
    ensure!(files.len() == 2, "{files:?}");

    // The expiry commits in the index, then the round "crashes" before deleting anything.
    h.clock.advance(90 * MINUTE);
    crash.store(true, Ordering::SeqCst);
    let pass = compactor.run_once().await;
    let errors: Vec<_> = pass.errors().collect();
    ensure!(
        matches!(errors.as_slice(), [(_, RoundError::Crash(_))]),
        "{:?}",
        pass.rounds
    );
    crash.store(false, Ordering::SeqCst);
    ensure!(earliest(&h, &table).await? == BTreeMap::from([(0, 5), (1, 3)]));
    ensure!(lake_files(&h, &table).await?.values().all(Vec::is_empty));
    ensure!(h.scan(&table).await?.is_empty());
    for path in &files {
        ensure!(exists(&h, path).await?, "the crash left {path} behind");
    }

    // The next round repairs first: the expired files are unreferenced, so orphans.
    h.clock.advance(Duration::from_millis(150));
    let pass = compactor.run_once().await;
    ensure!(pass.errors().count() == 0, "{:?}", pass.rounds);
    let repair = pass.rounds[0]
        .repair
        .clone()
        .expect("repaired after the crash");
    ensure!(repair.orphans_deleted >= files.len(), "{repair:?}");
    for path in &files {
        ensure!(!exists(&h, path).await?, "repair deleted {path}");
    }
    ensure!(h.scan(&table).await?.is_empty());
    Ok(())
}

/// `retention.bytes` on a lake table: each bucket keeps at least the bound of its newest data
/// files; an older one leaves the lake table once the newer ones hold the bound without it,
/// and the earliest offset moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_bound_expires_the_oldest_lake_files() -> anyhow::Result<()> {
    let h = Harness::new("retention-bytes").await?;
    let descriptor_options = [
        (OPTION_LAKE_ENABLED, "true"),
        (OPTION_LAKE_FRESHNESS, "100ms"),
        (OPTION_RETENTION_BYTES, "1MiB"),
    ];
    let info = h
        .index
        .create_table(
            "db",
            "sized",
            TableDescriptor {
                schema: Arc::new(Schema::new(vec![
                    Field::new("seq", DataType::Int64, false),
                    Field::new("msg", DataType::Utf8, true),
                ])),
                bucket_count: 1,
                bucket_key: vec![],
                partition_key: vec![],
                primary_key: vec![],
                comment: String::new(),
                options: descriptor_options
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            false,
        )
        .await?;
    let compactor = h.compactor(1, CompactorOptions::default());
    let limit: u64 = 1 << 20;
    // Rounds of 50,000 rows (one file each) until the newer files hold the bound without
    // the oldest: that round expires it.
    const ROWS: u64 = 50_000;
    let mut rounds = 0;
    let files = loop {
        ensure!(rounds < 40, "no expiry after {rounds} rounds");
        h.append(&[(&info, 0, ROWS)]).await?;
        h.clock.advance(Duration::from_secs(1));
        let round = compactor.tier_table(info.id).await;
        ensure!(
            matches!(round.outcome, Ok(RoundOutcome::Committed(_))),
            "{:?}",
            round.outcome
        );
        rounds += 1;
        let files = lake_files(&h, &info).await?.remove(&0).unwrap_or_default();
        if files.len() < rounds {
            break files;
        }
        let newer: u64 = files[1..].iter().map(|f| f.file_size).sum();
        ensure!(
            newer < limit,
            "the newer files hold the bound, yet nothing expired"
        );
    };
    let kept: u64 = files.iter().map(|f| f.file_size).sum();
    ensure!(
        kept >= limit && kept - files[0].file_size < limit,
        "the bucket keeps at least the bound, and no file it could do without: {files:?}"
    );
    ensure!(
        earliest(&h, &info).await?[&0] == files[0].base_offset.0,
        "the earliest offset is the first kept file's"
    );
    let scanned = h.scan(&info).await?;
    ensure!(
        scanned.len() as u64 == ROWS * rounds as u64 - files[0].base_offset.0,
        "the lake table holds the kept files' rows only: {}",
        scanned.len()
    );
    Ok(())
}
