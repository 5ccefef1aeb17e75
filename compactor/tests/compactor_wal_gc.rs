//! WAL garbage collection: an object is deleted only once no chunk entry points into it
//! (every chunk tiered and trimmed, or never committed), it is older than the upload grace,
//! and it has been seen unreferenced for the read grace. An object shared with a table that
//! keeps its chunks, or with a bucket not tiered yet, is never deleted.

mod compactor_support;

use std::time::Duration;

use anyhow::ensure;
use compactor_support::{Harness, stream};
use inlet_compactor::{CompactorOptions, RoundOutcome};
use inlet_core::ids::{Offset, WalObjectId};
use inlet_index::table_streams;
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path as ObjectPath;

async fn exists(h: &Harness, object: WalObjectId) -> anyhow::Result<bool> {
    match h.store.head(&ObjectPath::from(object.path())).await {
        Ok(_) => Ok(true),
        Err(slatedb::object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_objects_go_only_when_unreferenced_past_both_graces() -> anyhow::Result<()> {
    let h = Harness::new("wal-gc").await?;
    let lake = h.table("events", 2, true).await?;
    let plain = h.table("plain", 1, false).await?;
    // Tiered in three rounds of at most 10 rows: [a: b0], [b: b0], [a: b1].
    let a = h.append(&[(&lake, 0, 10), (&lake, 1, 10)]).await?;
    let b = h.append(&[(&lake, 0, 5), (&plain, 0, 5)]).await?;
    let never_committed = h.upload(&[(&lake, 1, 4)]).await?.object;
    let options = CompactorOptions {
        max_round_rows: 10,
        ..CompactorOptions::default()
    };
    let (upload, read) = (options.wal_upload_grace, options.wal_read_grace);
    let compactor = h.compactor(1, options);

    let gc = compactor.collect_wal_garbage().await?;
    ensure!(
        gc.listed == 3 && gc.live == 2 && gc.young == 1 && gc.deleted == 0,
        "{gc:?}"
    );

    // Round 1 trims a's bucket-0 chunk; a is still live through its bucket-1 chunk.
    let round = compactor.tier_table(lake.id).await;
    ensure!(
        matches!(&round.outcome, Ok(RoundOutcome::Committed(c)) if c.rows == 10 && c.backlog),
        "{:?}",
        round.outcome
    );
    h.clock.advance(upload + Duration::from_secs(1));
    let gc = compactor.collect_wal_garbage().await?;
    ensure!(gc.live == 2 && gc.waiting == 1 && gc.deleted == 0, "{gc:?}");
    h.clock.advance(read - Duration::from_secs(1));
    let gc = compactor.collect_wal_garbage().await?;
    ensure!(
        gc.waiting == 1 && gc.deleted == 0,
        "read grace not over: {gc:?}"
    );
    h.clock.advance(Duration::from_secs(2));
    let gc = compactor.collect_wal_garbage().await?;
    ensure!(gc.deleted == 1, "{gc:?}");
    ensure!(
        !exists(&h, never_committed).await?,
        "the uncommitted upload is gone"
    );
    ensure!(
        exists(&h, a).await? && exists(&h, b).await?,
        "live objects stay"
    );

    // Round 2 trims b's lake chunk (b stays: the plain table's chunk), round 3 a's last.
    for _ in 0..2 {
        let round = compactor.tier_table(lake.id).await;
        ensure!(
            matches!(round.outcome, Ok(RoundOutcome::Committed(_))),
            "{:?}",
            round.outcome
        );
    }
    // (The harness counted the uncommitted upload's rows too; they have no offsets.)
    let marks = h.check_lake(&lake).await?;
    ensure!(marks == [(0, 15), (1, 10)].into(), "{marks:?}");
    let gc = compactor.collect_wal_garbage().await?;
    ensure!(gc.live == 1 && gc.waiting == 1 && gc.deleted == 0, "{gc:?}");
    h.clock.advance(read + Duration::from_secs(1));
    let gc = compactor.collect_wal_garbage().await?;
    ensure!(gc.deleted == 1 && gc.live == 1, "{gc:?}");
    ensure!(
        !exists(&h, a).await?,
        "a is gone once all its chunks are tiered"
    );
    ensure!(
        exists(&h, b).await?,
        "b holds a live chunk of the plain table"
    );

    // Never an object a live chunk points into.
    h.clock.advance(upload + read);
    compactor.collect_wal_garbage().await?;
    compactor.collect_wal_garbage().await?;
    for table in [&lake, &plain] {
        for s in table_streams(table) {
            let mut chunks = h.index.chunks(s, Offset(0)).await?;
            while let Some(chunk) = chunks.next().await? {
                ensure!(
                    exists(&h, chunk.object).await?,
                    "{s}: {chunk:?} lost its object"
                );
            }
        }
    }
    ensure!(h.chunk_count(stream(&plain, 0)).await? == 1);
    ensure!(h.list("wal").await?.len() == 1, "only b is left");
    Ok(())
}
