//! Cache settings with their trade-offs and defaults; `inlet serve` loads them as its
//! `[cache]` section (file, `INLET_CACHE_*`, flags).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How big the pages and tiers of a [`crate::PagedCache`] are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheOptions {
    /// Size of one page: objects are cached in pages aligned to multiples of it. Larger =
    /// fewer GETs and entries per object, but a small read pulls (and caches) more bytes it
    /// may not need, and a column-pruned read saves store bytes only when a page is no
    /// bigger than one column's bytes in a chunk. Default 64 KiB (measured: 2 of 20 columns
    /// read 24% of the bytes at 64 KiB, 100% at 1 MiB; full reads stay one GET per chunk
    /// because adjacent missing pages are fetched together, up to `max_get_bytes`).
    pub page_size: usize,
    /// Largest single ranged GET when a read misses several adjacent pages; the pages are
    /// fetched together and then split. Larger = fewer GETs (S3 bills per request), smaller =
    /// more GETs in parallel (one S3 connection streams roughly 100 MB/s). Set it to
    /// `page_size` to fetch every page on its own. Rounded down to whole pages; at least one
    /// page. Default 8 MiB.
    pub max_get_bytes: usize,
    /// Memory tier budget in bytes, weighed by page bytes plus a small per-entry overhead.
    /// Larger = more hits, more RAM. Must hold at least one page. The budget is soft by the
    /// pages reads hold at that instant (foyer's LRU does not evict a page while it is being
    /// handed out). Default 256 MiB.
    pub memory_bytes: usize,
    /// Directory of the SSD tier. `None` keeps the cache in memory only. With a directory,
    /// pages evicted from memory are written there and read back instead of GET; the tier
    /// is recovered on restart (objects never change, so recovered pages stay valid).
    /// Default `None`.
    pub disk_dir: Option<PathBuf>,
    /// SSD tier capacity in bytes; unused without `disk_dir`. Larger = more hits, more disk.
    /// Must hold at least four disk blocks (a block is 16 MiB, or a page plus headroom for
    /// pages larger than that). Default 16 GiB.
    pub disk_bytes: usize,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            page_size: 64 * 1024,
            max_get_bytes: 8 * 1024 * 1024,
            memory_bytes: 256 * 1024 * 1024,
            disk_dir: None,
            disk_bytes: 16 * 1024 * 1024 * 1024,
        }
    }
}
