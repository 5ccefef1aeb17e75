//! Warming SlateDB's caches when the index opens (on the owner and on a reader's replica).
//!
//! A node that just started (a reader added to the fleet, an owner after a takeover) has
//! empty caches, so its first read of every index block is an object-store round trip, and
//! the first fetch pays two in a row: the index blocks that list the chunks, then the chunks.
//! Under S3 latency that first round trip was a third of a cold projected read (about 45 ms
//! of 117). Opening warms, newest SSTs first: the index and filters of every SST (small, and
//! what any read of the SST needs first), and the data blocks of whole SSTs while they fit
//! in [`IndexOptions::warm_bytes`](crate::IndexOptions::warm_bytes). So a recent index is
//! all in memory after a few large GETs, and a years-old one warms its newest part only.

use futures::{StreamExt, TryStreamExt};
use slatedb::{CacheTarget, DbCacheManagerOps, DbMetadataOps};

use crate::error::IndexError;

/// SSTs warmed at once.
const WARM_CONCURRENCY: usize = 8;

/// What the warm-up read, for the open's log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Warmed {
    /// SSTs whose index and filters were read.
    ssts: usize,
    /// Of those, SSTs whose data blocks were read too.
    data_ssts: usize,
    /// Their size (SlateDB's estimate).
    data_bytes: u64,
}

/// Warms the caches of `db` (the owner's database or a replica) as it opens: nothing
/// without a block cache, data blocks up to `warm_bytes` but at most half the cache. A
/// failure is logged, not returned: the index works with a cold cache, only slower.
pub(crate) async fn warm_caches<D>(db: &D, block_cache_bytes: u64, warm_bytes: u64)
where
    D: DbCacheManagerOps + DbMetadataOps + Sync,
{
    if block_cache_bytes == 0 {
        return;
    }
    let budget = warm_bytes.min(block_cache_bytes / 2);
    match warm(db, budget).await {
        Ok(warmed) => tracing::info!(
            ssts = warmed.ssts,
            data_ssts = warmed.data_ssts,
            data_bytes = warmed.data_bytes,
            "index caches warmed"
        ),
        Err(error) => tracing::warn!(%error, "cannot warm the index caches; reads start cold"),
    }
}

/// Warms `db`'s caches from its current manifest, reading data blocks of at most
/// `data_budget` bytes.
async fn warm<D>(db: &D, data_budget: u64) -> Result<Warmed, IndexError>
where
    D: DbCacheManagerOps + DbMetadataOps + Sync,
{
    let manifest = DbMetadataOps::manifest(db);
    let mut warmed = Warmed::default();
    let mut plan = Vec::new();
    // L0 newest first, then the sorted runs: the newest entries are what tails, listings
    // near the end of a stream and producer states read.
    for view in manifest.all_sst_views() {
        let size = view.sst.estimate_size();
        let mut targets = vec![CacheTarget::Index, CacheTarget::Filters];
        if warmed.data_bytes + size <= data_budget {
            warmed.data_bytes += size;
            warmed.data_ssts += 1;
            targets.push(CacheTarget::data::<&[u8], _>(..));
        }
        warmed.ssts += 1;
        plan.push((view.sst.id, targets));
    }
    futures::stream::iter(plan)
        .map(|(id, targets)| async move { db.warm_sst(id, &targets).await })
        .buffer_unordered(WARM_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(warmed)
}
