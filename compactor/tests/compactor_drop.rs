//! Dropped tables are purged once the drop grace passed: a table dropped with `purge` loses
//! its lake table (every object under its folder) and every index entry; one dropped without
//! it keeps its lake folder in the bucket; either way its WAL objects go once no live table's
//! chunk is in them, while an object shared with a live table stays. A live table is never
//! purged, and a purge of an already purged table finds nothing to do.

mod compactor_support;

use std::time::Duration;

use anyhow::ensure;
use compactor_support::{Harness, stream};
use inlet_compactor::lake::lake_table_path;
use inlet_compactor::{Compactor, CompactorOptions, RoundOutcome};
use inlet_core::ids::WalObjectId;
use inlet_index::{DropOptions, IndexError, StreamTail, table_streams};
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

const MINUTE: Duration = Duration::from_secs(60);

async fn exists(h: &Harness, object: WalObjectId) -> anyhow::Result<bool> {
    match h.store.head(&ObjectPath::from(object.path())).await {
        Ok(_) => Ok(true),
        Err(slatedb::object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Objects under `folder` in the store.
async fn objects_under(store: &dyn ObjectStore, folder: &str) -> anyhow::Result<usize> {
    use futures::TryStreamExt;
    let listed: Vec<_> = store
        .list(Some(&ObjectPath::from(folder)))
        .try_collect()
        .await?;
    Ok(listed.len())
}

/// Runs the collector past both graces: what is unreferenced now is deleted.
async fn collect_past_graces(h: &Harness, compactor: &Compactor) -> anyhow::Result<usize> {
    let options = CompactorOptions::default();
    h.clock.advance(options.wal_upload_grace + MINUTE);
    compactor.collect_wal_garbage().await?;
    h.clock.advance(options.wal_read_grace + MINUTE);
    Ok(compactor.collect_wal_garbage().await?.deleted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tables_leave_nothing_but_what_they_were_asked_to_keep() -> anyhow::Result<()> {
    let h = Harness::new("drop-purge").await?;
    let purged = h.table("purged", 2, true).await?;
    let kept_lake = h.table("kept_lake", 1, true).await?;
    let plain = h.table("plain", 1, false).await?;
    let live = h.table("live", 1, false).await?;
    // `a`: only chunks of lake tables (tiered below); `b`: a dropped table's and the live
    // table's; `c`: only the chunk of a table that is never tiered, which only the purge
    // frees.
    let a = h
        .append(&[(&purged, 0, 10), (&purged, 1, 6), (&kept_lake, 0, 5)])
        .await?;
    let b = h.append(&[(&purged, 0, 4), (&live, 0, 3)]).await?;
    let c = h.append(&[(&plain, 0, 8)]).await?;
    let compactor = h.compactor(1, CompactorOptions::default());
    for table in [&purged, &kept_lake] {
        let round = compactor.tier_table(table.id).await;
        ensure!(
            matches!(round.outcome, Ok(RoundOutcome::Committed(_))),
            "{:?}",
            round.outcome
        );
    }
    let purged_folder = lake_table_path("db", "purged", purged.id);
    let kept_folder = lake_table_path("db", "kept_lake", kept_lake.id);
    let lake_store = h.lake.store().clone();
    ensure!(objects_under(lake_store.as_ref(), &purged_folder).await? > 0);
    let kept_objects = objects_under(lake_store.as_ref(), &kept_folder).await?;
    ensure!(kept_objects > 0);
    ensure!(h.index.table_entries(purged.id).await? > 0);
    // Before any drop: `a` is unreferenced once tiered; `c` is referenced.
    ensure!(
        collect_past_graces(&h, &compactor).await? == 1,
        "only a goes"
    );
    ensure!(!exists(&h, a).await? && exists(&h, c).await?);

    h.index
        .drop_table(
            "db",
            "purged",
            DropOptions {
                purge_lake: true,
                ..DropOptions::default()
            },
        )
        .await?;
    for name in ["kept_lake", "plain"] {
        h.index
            .drop_table("db", name, DropOptions::default())
            .await?;
    }
    let dropped = h.index.dropped_tables().await?;
    ensure!(dropped.len() == 3, "{dropped:?}");

    // Within the grace nothing goes.
    let report = compactor.purge_dropped().await;
    ensure!(report.due == 0 && report.purged == 0, "{report:?}");
    ensure!(h.index.table_entries(purged.id).await? > 0);

    h.clock
        .advance(CompactorOptions::default().drop_grace + MINUTE);
    let report = compactor.purge_dropped().await;
    ensure!(
        report.due == 3 && report.purged == 3 && report.errors.is_empty(),
        "{report:?}"
    );
    ensure!(report.lake_objects > 0, "{report:?}");
    for table in [&purged, &kept_lake, &plain] {
        ensure!(
            h.index.table_entries(table.id).await? == 0,
            "nothing of {} is left in the index",
            table.name
        );
        for stream in table_streams(table) {
            ensure!(h.index.tail(stream).await? == StreamTail::EMPTY);
        }
        ensure!(h.index.lake_table(table.id).await?.is_none());
    }
    ensure!(h.index.dropped_tables().await?.is_empty());
    ensure!(
        objects_under(lake_store.as_ref(), &purged_folder).await? == 0,
        "the purged lake table is gone"
    );
    ensure!(
        objects_under(lake_store.as_ref(), &kept_folder).await? == kept_objects,
        "a table dropped without purge keeps its lake table"
    );
    ensure!(
        h.index.tail(stream(&live, 0)).await?.next_offset.0 == 3,
        "the live table is untouched"
    );

    // The WAL: `c` goes now, `b` stays for the live table's chunk.
    ensure!(collect_past_graces(&h, &compactor).await? == 1);
    ensure!(!exists(&h, c).await? && exists(&h, b).await?);

    // A second pass finds nothing; a live table is refused.
    let report = compactor.purge_dropped().await;
    ensure!(report.due == 0, "{report:?}");
    match h.index.purge_table(live.id).await {
        Err(IndexError::Refused { reason }) => ensure!(reason.contains("live"), "{reason}"),
        other => anyhow::bail!("a live table must not be purged: {other:?}"),
    }
    ensure!(h.index.tail(stream(&live, 0)).await?.next_offset.0 == 3);
    Ok(())
}
