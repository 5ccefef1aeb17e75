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
use slatedb::{CacheTarget, DbCacheManagerOps, VersionedManifest};

use crate::error::IndexError;

/// SSTs warmed at once.
const WARM_CONCURRENCY: usize = 8;

/// What the warm-up read, for the open's log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Warmed {
    /// SSTs whose index and filters were read.
    pub(crate) ssts: usize,
    /// Of those, SSTs whose data blocks were read too.
    pub(crate) data_ssts: usize,
    /// Their size (SlateDB's estimate).
    pub(crate) data_bytes: u64,
}

/// Warms `db`'s caches from `manifest`, reading data blocks of at most `data_budget` bytes.
/// A failed read fails the warm-up, which the caller reports and opens anyway: a cold cache
/// is slower, never wrong.
pub(crate) async fn warm<D>(
    db: &D,
    manifest: &VersionedManifest,
    data_budget: u64,
) -> Result<Warmed, IndexError>
where
    D: DbCacheManagerOps + Sync,
{
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
