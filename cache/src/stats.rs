//! Counters of what the cache did, for metrics and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the cache's counters since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Pages a read found in the cache, in memory or on the SSD tier.
    pub hits: u64,
    /// The part of `hits` that was served by the SSD tier.
    pub disk_hits: u64,
    /// Pages a read did not find: fetched by this read or by a concurrent one it waited on.
    pub misses: u64,
    /// Ranged GETs sent to the object store (failed ones included).
    pub get_requests: u64,
    /// Bytes received from the object store.
    pub bytes_fetched: u64,
    /// Pages a writer inserted with [`crate::PagedCache::insert_object`].
    pub inserted_pages: u64,
    /// Bytes the memory tier holds now, as weighed against `memory_bytes`.
    pub memory_bytes: u64,
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) disk_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) get_requests: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) inserted_pages: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, memory_bytes: u64) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            get_requests: self.get_requests.load(Ordering::Relaxed),
            bytes_fetched: self.bytes_fetched.load(Ordering::Relaxed),
            inserted_pages: self.inserted_pages.load(Ordering::Relaxed),
            memory_bytes,
        }
    }
}
