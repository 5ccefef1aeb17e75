//! WAL retention of tables that are not tiered, end to end through the compactor: by age
//! (`retention`) and by bytes per bucket (`retention.bytes`, which a bucket keeps at least,
//! as with Kafka). Expired chunks leave the chunk
//! index, each bucket's earliest offset moves to the first kept chunk and its WAL byte count
//! goes down, and the WAL objects nothing points into any more are deleted after the graces,
//! while an object shared with a table that keeps its chunks stays. What the owner expires
//! follows the table's options as they are when it expires, not a compactor's view of them.

mod compactor_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use arrow_schema::{DataType, Field, Schema};
use compactor_support::{Harness, stream};
use inlet_compactor::{Compactor, CompactorOptions, RoundOutcome};
use inlet_core::ids::{Offset, WalObjectId};
use inlet_core::table::{
    OPTION_RETENTION, OPTION_RETENTION_BYTES, TableAlteration, TableDescriptor, TableInfo,
};
use inlet_index::ChunkEntry;
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path as ObjectPath;

const MINUTE: Duration = Duration::from_secs(60);

/// Creates `db.<name>` with the harness's columns, not tiered, with these options.
async fn table(
    h: &Harness,
    name: &str,
    buckets: u32,
    options: &[(&str, &str)],
) -> anyhow::Result<Arc<TableInfo>> {
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
        options: options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    Ok(h.index.create_table("db", name, descriptor, false).await?)
}

async fn exists(h: &Harness, object: WalObjectId) -> anyhow::Result<bool> {
    match h.store.head(&ObjectPath::from(object.path())).await {
        Ok(_) => Ok(true),
        Err(slatedb::object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Every chunk entry of one bucket, in offset order.
async fn chunks(h: &Harness, table: &TableInfo, bucket: u32) -> anyhow::Result<Vec<ChunkEntry>> {
    let mut scan = h.index.chunks(stream(table, bucket), Offset(0)).await?;
    let mut all = Vec::new();
    while let Some(entry) = scan.next().await? {
        all.push(entry);
    }
    Ok(all)
}

/// Runs the collector past both graces: what is unreferenced now is deleted.
async fn collect_past_graces(h: &Harness, compactor: &Compactor) -> anyhow::Result<usize> {
    let options = CompactorOptions::default();
    compactor.collect_wal_garbage().await?;
    h.clock
        .advance(options.wal_upload_grace + options.wal_read_grace + MINUTE);
    Ok(compactor.collect_wal_garbage().await?.deleted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_chunks_expire_and_their_objects_go_once_nothing_points_into_them() -> anyhow::Result<()>
{
    let h = Harness::new("wal-retention-age").await?;
    let events = table(&h, "events", 2, &[(OPTION_RETENTION, "1h")]).await?;
    let kept = table(&h, "kept", 1, &[]).await?;
    let lake = h.table("lake", 1, true).await?;
    // t0: `a` holds events' first chunks and a chunk of a table that keeps everything; `b`
    // only events' chunks. t0 + 50 min: `c`.
    let a = h
        .append(&[(&events, 0, 10), (&events, 1, 10), (&kept, 0, 5)])
        .await?;
    let b = h.append(&[(&events, 0, 7), (&lake, 0, 4)]).await?;
    h.clock.advance(50 * MINUTE);
    let c = h.append(&[(&events, 0, 5), (&events, 1, 5)]).await?;
    let compactor = h.compactor(1, CompactorOptions::default());
    let bytes_before = h.index.tail(stream(&events, 0)).await?.wal_bytes;
    let b0 = chunks(&h, &events, 0).await?;
    ensure!(
        bytes_before == b0.iter().map(|c| c.chunk_len).sum::<u64>(),
        "the tail counts the bucket's chunk bytes: {bytes_before} vs {b0:?}"
    );

    // Nothing is an hour old yet.
    let report = compactor.expire_wal().await;
    ensure!(report.tables == 1 && report.chunks == 0, "{report:?}");

    // At t0 + 70 min the t0 chunks of `events` expire, and only they.
    h.clock.advance(20 * MINUTE);
    let report = compactor.expire_wal().await;
    ensure!(
        report.tables == 1 && report.chunks == 3 && report.errors.is_empty(),
        "{report:?}"
    );
    let (tail0, tail1) = (
        h.index.tail(stream(&events, 0)).await?,
        h.index.tail(stream(&events, 1)).await?,
    );
    ensure!(
        (tail0.earliest_offset, tail1.earliest_offset) == (Offset(17), Offset(10)),
        "earliest offsets move to the first kept chunk: {tail0:?} {tail1:?}"
    );
    ensure!(
        tail0.next_offset == Offset(22) && tail1.next_offset == Offset(15),
        "the tails' ends do not move"
    );
    let left = chunks(&h, &events, 0).await?;
    ensure!(
        left.len() == 1 && left[0].object == c && tail0.wal_bytes == left[0].chunk_len,
        "bucket 0 keeps c's chunk and counts only its bytes: {left:?} {tail0:?}"
    );
    ensure!(
        h.index.tail(stream(&kept, 0)).await?.earliest_offset == Offset(0),
        "a table without retention keeps everything"
    );
    ensure!(
        compactor.expire_wal().await.chunks == 0,
        "a second expiry finds nothing more"
    );

    // `b` is referenced by the lake table's chunk until it is tiered; `a` by `kept` for good.
    ensure!(
        collect_past_graces(&h, &compactor).await? == 0,
        "a and b are still referenced"
    );
    let round = compactor.tier_table(lake.id).await;
    ensure!(
        matches!(round.outcome, Ok(RoundOutcome::Committed(_))),
        "{:?}",
        round.outcome
    );
    ensure!(
        h.index.tail(stream(&lake, 0)).await?.wal_bytes == 0,
        "tiering trims the lake table's chunk bytes from its tail"
    );
    ensure!(collect_past_graces(&h, &compactor).await? == 1);
    ensure!(
        exists(&h, a).await? && !exists(&h, b).await? && exists(&h, c).await?,
        "only b is unreferenced"
    );

    // Later still, c's chunks expire too: the buckets are empty and c goes.
    h.clock.advance(2 * 60 * MINUTE);
    let report = compactor.expire_wal().await;
    ensure!(report.chunks == 2, "{report:?}");
    let tail0 = h.index.tail(stream(&events, 0)).await?;
    ensure!(
        tail0.earliest_offset == tail0.next_offset && tail0.wal_bytes == 0,
        "{tail0:?}"
    );
    ensure!(collect_past_graces(&h, &compactor).await? == 1);
    ensure!(!exists(&h, c).await? && exists(&h, a).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bucket_keeps_at_least_its_byte_bound_of_newest_chunks() -> anyhow::Result<()> {
    let h = Harness::new("wal-retention-bytes").await?;
    let limit: u64 = 1 << 20;
    let events = table(&h, "events", 1, &[(OPTION_RETENTION_BYTES, "1MiB")]).await?;
    // Ten chunks of 20,000 rows, a few hundred KiB each: about 4 MiB in all.
    for _ in 0..10 {
        h.append(&[(&events, 0, 20_000)]).await?;
    }
    let before = chunks(&h, &events, 0).await?;
    let total: u64 = before.iter().map(|c| c.chunk_len).sum();
    ensure!(
        total > 3 * limit,
        "the chunks are larger than the bound: {total}"
    );

    let compactor = h.compactor(1, CompactorOptions::default());
    let report = compactor.expire_wal().await;
    let kept = chunks(&h, &events, 0).await?;
    let kept_bytes: u64 = kept.iter().map(|c| c.chunk_len).sum();
    let tail = h.index.tail(stream(&events, 0)).await?;
    ensure!(
        report.chunks == before.len() - kept.len() && report.bytes == total - kept_bytes,
        "{report:?}"
    );
    ensure!(
        kept_bytes >= limit && tail.wal_bytes == kept_bytes,
        "the bucket keeps at least the bound: {kept_bytes} {tail:?}"
    );
    ensure!(
        kept_bytes - kept[0].chunk_len < limit,
        "and its oldest kept chunk could not go without dropping under it: {kept_bytes} - {}",
        kept[0].chunk_len
    );
    ensure!(
        tail.earliest_offset == kept[0].base_offset && kept == before[before.len() - kept.len()..],
        "the newest chunks are kept, from the earliest offset on"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_the_options_the_table_has_now() -> anyhow::Result<()> {
    let h = Harness::new("wal-retention-alter").await?;
    let events = table(&h, "events", 1, &[(OPTION_RETENTION, "1h")]).await?;
    h.append(&[(&events, 0, 10)]).await?;
    h.clock.advance(90 * MINUTE);
    // A compactor that listed the table before this ALTER still asks the owner, which
    // decides with the retention the table has now: 30 days.
    h.index
        .alter_table(
            "db",
            "events",
            TableAlteration {
                set_options: BTreeMap::from([(OPTION_RETENTION.to_owned(), "30d".to_owned())]),
                ..TableAlteration::default()
            },
        )
        .await?;
    let expired = h.index.expire_wal(events.id).await?;
    ensure!(expired.chunks == 0, "{expired:?}");
    // Shortened again, it expires.
    h.index
        .alter_table(
            "db",
            "events",
            TableAlteration {
                set_options: BTreeMap::from([(OPTION_RETENTION.to_owned(), "1h".to_owned())]),
                ..TableAlteration::default()
            },
        )
        .await?;
    let expired = h.index.expire_wal(events.id).await?;
    ensure!(expired.chunks == 1, "{expired:?}");
    ensure!(h.index.tail(stream(&events, 0)).await?.earliest_offset == Offset(10));
    Ok(())
}
