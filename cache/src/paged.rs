//! [`PagedCache`]: serves byte ranges of immutable objects from cached pages and fetches the
//! missing ones with ranged GETs.
//!
//! Single flight comes from foyer: `get_or_fetch` lets one caller per page (the leader) look in
//! the SSD tier and then run the fetch, while every concurrent caller of that page waits for
//! the leader's result. Coalescing sits below it: a leader's fetch does not GET its page alone
//! but starts a *run*, one ranged GET over the adjacent pages of the same read that are
//! neither cached nor already being fetched, and registers the run under each of its pages.
//! The leaders of the other pages find the run and wait on it instead of issuing their own
//! GET, so a page's bytes are requested once even when overlapping reads race. A finished
//! run inserts all its pages into the cache before it unregisters, so a page is always either
//! cached or registered while it is being fetched.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    IoEngineConfig, NoopIoEngineConfig, PsyncIoEngineConfig, Source,
};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared, join_all};
use slatedb::object_store::path::Path;
use slatedb::object_store::{GetOptions, GetRange, ObjectStore};

use crate::error::{CacheError, CloseError, OpenError};
use crate::options::CacheOptions;
use crate::page::{MAX_PAGE_BYTES, Page, PageKey};
use crate::stats::{CacheStats, Counters};

/// Bytes charged per cached page on top of its bytes and path, for foyer's record, the key
/// and the `Bytes` handle. An estimate: it keeps many small pages from overrunning the budget.
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// foyer's default SSD block; a block must also hold the largest entry.
const MIN_DISK_BLOCK_BYTES: usize = 16 * 1024 * 1024;

/// Room for an entry's header and key next to a page in an SSD block.
const DISK_BLOCK_HEADROOM_BYTES: usize = 64 * 1024;

/// Fewest SSD blocks the tier must have: foyer writes one block while it reclaims another.
const MIN_DISK_BLOCKS: usize = 4;

/// Most memory shards; each holds at least `PAGES_PER_SHARD` pages, so small budgets get one
/// shard and evict in true LRU order.
const MAX_SHARDS: usize = 8;
const PAGES_PER_SHARD: usize = 32;

/// A paged read cache over an object store, for objects that never change once written.
/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct PagedCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    cache: HybridCache<PageKey, Page>,
    page_size: u64,
    max_get_pages: u64,
    /// Runs in flight, under each page they fetch.
    runs: Mutex<HashMap<PageKey, Run>>,
    counters: Counters,
}

/// One ranged GET over adjacent pages, shared by every page fetch that waits on it.
type Run = Shared<BoxFuture<'static, Result<Arc<RunPages>, CacheError>>>;

/// What a run got: its pages from `first` on, fewer than planned if the object ended early.
#[derive(Debug)]
struct RunPages {
    first: u64,
    pages: Vec<Page>,
    object_len: u64,
}

impl RunPages {
    fn get(&self, index: u64) -> Option<&Page> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.pages.get(at)
    }
}

/// One `get_range` call, shared by the fetches of its pages so that a fetch can coalesce its
/// neighbours.
struct Request {
    path: Path,
    object: Arc<str>,
    range: Range<u64>,
    pages: RangeInclusive<u64>,
    page_size: u64,
    object_len: Option<u64>,
}

impl Request {
    fn key(&self, index: u64) -> PageKey {
        PageKey {
            object: self.object.clone(),
            page_size: self.page_size,
            index,
        }
    }

    /// The error a waiter gets: the original one when the fetch failed with a [`CacheError`].
    fn error(&self, error: foyer::Error) -> CacheError {
        match error.downcast_ref::<CacheError>() {
            Some(error) => error.clone(),
            None => CacheError::Cache {
                path: self.path.clone(),
                range: self.range.clone(),
                source: error,
            },
        }
    }

    /// Checks the pages against each other and the object length before they are stitched:
    /// every page but the object's last is full, and the object does not end inside the
    /// requested range.
    fn check(&self, pages: &[Bytes]) -> Result<(), CacheError> {
        let last = *self.pages.end();
        for (index, page) in self.pages.clone().zip(pages) {
            let start = index * self.page_size;
            let len = page.len() as u64;
            if let Some(object_len) = self.object_len {
                let expected = self.page_size.min(object_len - start);
                if len != expected {
                    return Err(CacheError::PageMismatch {
                        path: self.path.clone(),
                        range: self.range.clone(),
                        page: index,
                        expected,
                        found: len,
                    });
                }
            }
            let needed = if index == last {
                self.range.end - start
            } else {
                self.page_size
            };
            if len < needed {
                return Err(CacheError::BeyondEnd {
                    path: self.path.clone(),
                    range: self.range.clone(),
                    len: start + len,
                });
            }
        }
        Ok(())
    }
}

impl PagedCache {
    /// Opens a cache over `store`: memory only, or memory plus an SSD tier when
    /// `options.disk_dir` is set (recovering what an earlier process left there).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        options: CacheOptions,
    ) -> Result<Self, OpenError> {
        let invalid = |option, reason: String| OpenError::InvalidOption { option, reason };
        if options.page_size == 0 || options.page_size > MAX_PAGE_BYTES {
            return Err(invalid(
                "page_size",
                format!("{} is not in 1..={MAX_PAGE_BYTES}", options.page_size),
            ));
        }
        if options.max_get_bytes < options.page_size {
            return Err(invalid(
                "max_get_bytes",
                format!(
                    "{} is smaller than one page ({})",
                    options.max_get_bytes, options.page_size
                ),
            ));
        }
        let entry_bytes = options.page_size + ENTRY_OVERHEAD_BYTES;
        if options.memory_bytes < entry_bytes {
            return Err(invalid(
                "memory_bytes",
                format!(
                    "{} cannot hold one page ({entry_bytes} bytes with overhead)",
                    options.memory_bytes
                ),
            ));
        }
        let shards = (options.memory_bytes / entry_bytes / PAGES_PER_SHARD).clamp(1, MAX_SHARDS);

        let builder = HybridCacheBuilder::new()
            .with_name("inlet-cache")
            .memory(options.memory_bytes)
            .with_shards(shards)
            .with_weighter(|key: &PageKey, page: &Page| {
                key.object.len() + page.0.len() + ENTRY_OVERHEAD_BYTES
            })
            .storage();
        let builder = match &options.disk_dir {
            None => {
                let noop: Box<dyn IoEngineConfig> = Box::new(NoopIoEngineConfig);
                builder.with_io_engine_config(noop)
            }
            Some(dir) => {
                let block = MIN_DISK_BLOCK_BYTES.max(options.page_size + DISK_BLOCK_HEADROOM_BYTES);
                if options.disk_bytes < MIN_DISK_BLOCKS * block {
                    return Err(invalid(
                        "disk_bytes",
                        format!(
                            "{} is less than {MIN_DISK_BLOCKS} disk blocks of {block} bytes",
                            options.disk_bytes
                        ),
                    ));
                }
                let device = FsDeviceBuilder::new(dir)
                    .with_capacity(options.disk_bytes)
                    .build()
                    .map_err(|source| OpenError::Disk {
                        dir: dir.clone(),
                        source,
                    })?;
                builder
                    .with_io_engine_config(PsyncIoEngineConfig::new())
                    .with_engine_config(BlockEngineConfig::new(device).with_block_size(block))
            }
        };
        let cache = builder
            .build()
            .await
            .map_err(|source| match &options.disk_dir {
                Some(dir) => OpenError::Disk {
                    dir: dir.clone(),
                    source,
                },
                None => OpenError::Cache(source),
            })?;

        let page_size = options.page_size as u64;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                cache,
                page_size,
                max_get_pages: (options.max_get_bytes / options.page_size) as u64,
                runs: Mutex::new(HashMap::new()),
                counters: Counters::default(),
            }),
        })
    }

    /// The bytes `range` of the object at `path`, from cached pages, fetching the missing pages
    /// with ranged GETs. `object_len` is the object's length when the caller knows it (then a
    /// range past it fails at once and every page is checked against it); without it, a short
    /// page marks the object's end.
    pub async fn get_range(
        &self,
        path: &Path,
        range: Range<u64>,
        object_len: Option<u64>,
    ) -> Result<Bytes, CacheError> {
        if range.start > range.end {
            return Err(CacheError::InvalidRange {
                path: path.clone(),
                range,
            });
        }
        if let Some(len) = object_len
            && range.end > len
        {
            return Err(CacheError::BeyondEnd {
                path: path.clone(),
                range,
                len,
            });
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }

        let inner = &self.inner;
        let page_size = inner.page_size;
        let pages = range.start / page_size..=(range.end - 1) / page_size;
        let request = Arc::new(Request {
            path: path.clone(),
            object: path.as_ref().into(),
            range: range.clone(),
            pages: pages.clone(),
            page_size,
            object_len,
        });

        // Ask for every page before awaiting any, so that the fetches of this read can find
        // each other and coalesce.
        let mut loads = Vec::new();
        for index in pages.clone() {
            let load = inner.cache.get_or_fetch(&request.key(index), || {
                Inner::fetch_page(inner.clone(), request.clone(), index)
            });
            let waits = load.need_await();
            if !waits {
                Counters::add(&inner.counters.hits, 1);
            }
            // Take the bytes and drop the entry as soon as the page is there: foyer's LRU pins
            // entries while they are held, and a pinned entry cannot be evicted.
            loads.push(load.map(move |result| {
                result.map(|entry| (waits, entry.source(), entry.value().0.clone()))
            }));
        }

        let mut bytes = Vec::with_capacity(loads.len());
        for result in join_all(loads).await {
            let (waited, source, page) = result.map_err(|e| request.error(e))?;
            if waited {
                // A page that was fetched (by us or a read we waited on) is `Outer`; one read
                // back from the SSD tier, or its write buffer, is `Disk` or `Memory`.
                if source == Source::Outer {
                    Counters::add(&inner.counters.misses, 1);
                } else {
                    Counters::add(&inner.counters.hits, 1);
                    Counters::add(&inner.counters.disk_hits, 1);
                }
            }
            bytes.push(page);
        }
        request.check(&bytes)?;

        let first = *pages.start();
        let last = *pages.end();
        let from = (range.start - first * page_size) as usize;
        let to = (range.end - last * page_size) as usize;
        if let [page] = bytes.as_slice() {
            return Ok(page.slice(from..to));
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        let n = bytes.len();
        for (i, page) in bytes.iter().enumerate() {
            let start = if i == 0 { from } else { 0 };
            let end = if i == n - 1 { to } else { page.len() };
            out.extend_from_slice(&page[start..end]);
        }
        Ok(out.freeze())
    }

    /// Caches an object a writer just uploaded, split into pages, so that a reader in the same
    /// process never GETs it. `bytes` must be the whole object.
    pub fn insert_object(&self, path: &Path, bytes: Bytes) {
        let inner = &self.inner;
        let object: Arc<str> = path.as_ref().into();
        let mut pages = 0;
        for (index, chunk) in bytes.chunks(inner.page_size as usize).enumerate() {
            let key = PageKey {
                object: object.clone(),
                page_size: inner.page_size,
                index: index as u64,
            };
            inner.cache.insert(key, Page(Bytes::copy_from_slice(chunk)));
            pages += 1;
        }
        Counters::add(&inner.counters.inserted_pages, pages);
    }

    /// The counters since the cache was opened.
    pub fn stats(&self) -> CacheStats {
        let inner = &self.inner;
        inner.counters.snapshot(inner.cache.memory().usage() as u64)
    }

    /// The store this cache reads through, for the writes, lists and deletes of its users.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The page size the cache was opened with.
    pub fn page_size(&self) -> u64 {
        self.inner.page_size
    }

    /// Flushes the memory tier to the SSD tier (if any) and waits for pending SSD writes.
    /// Dropping the last clone closes the cache in the background instead.
    pub async fn close(&self) -> Result<(), CloseError> {
        self.inner.cache.close().await.map_err(CloseError)
    }
}

impl fmt::Debug for PagedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagedCache")
            .field("page_size", &self.inner.page_size)
            .field("max_get_pages", &self.inner.max_get_pages)
            .field("hybrid", &self.inner.cache.is_hybrid())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Inner {
    /// The fetch of one page, run by foyer for the page's leader after the SSD tier missed.
    async fn fetch_page(
        self: Arc<Self>,
        request: Arc<Request>,
        index: u64,
    ) -> Result<Page, CacheError> {
        let key = request.key(index);
        let run = {
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            // A run that finished after foyer chose this leader has inserted the page already.
            if let Some(entry) = self.cache.memory().get(&key) {
                return Ok(entry.value().clone());
            }
            match runs.get(&key) {
                Some(run) => run.clone(),
                None => self.start_run(&mut runs, &request, index),
            }
        };
        let got = run.await?;
        got.get(index)
            .cloned()
            .ok_or_else(|| CacheError::BeyondEnd {
                path: request.path.clone(),
                range: request.range.clone(),
                len: got.object_len,
            })
    }

    /// Starts a run from `index` over the adjacent pages of `request` that are neither cached
    /// nor in another run, up to `max_get_pages`, and registers it under each of them. Called
    /// with `runs` locked, which the run needs to unregister: it cannot finish before it is
    /// registered.
    fn start_run(
        self: &Arc<Self>,
        runs: &mut HashMap<PageKey, Run>,
        request: &Request,
        index: u64,
    ) -> Run {
        let free = |i: u64| {
            let key = request.key(i);
            !runs.contains_key(&key) && !self.cache.contains(&key)
        };
        let (mut lo, mut hi) = (index, index);
        while hi - lo + 1 < self.max_get_pages && hi < *request.pages.end() && free(hi + 1) {
            hi += 1;
        }
        while hi - lo + 1 < self.max_get_pages && lo > *request.pages.start() && free(lo - 1) {
            lo -= 1;
        }
        let pages = lo..hi + 1;

        let path = request.path.clone();
        let range = lo * self.page_size..(hi + 1) * self.page_size;
        let task = tokio::spawn(self.clone().run(
            request.path.clone(),
            request.object.clone(),
            pages.clone(),
            request.object_len,
        ));
        let run = async move {
            match task.await {
                Ok(result) => result,
                Err(e) => Err(CacheError::Aborted {
                    path,
                    range,
                    reason: e.to_string(),
                }),
            }
        }
        .boxed()
        .shared();
        for i in pages {
            runs.insert(request.key(i), run.clone());
        }
        run
    }

    /// GETs `pages`, inserts them into the cache, then unregisters the run.
    async fn run(
        self: Arc<Self>,
        path: Path,
        object: Arc<str>,
        pages: Range<u64>,
        object_len: Option<u64>,
    ) -> Result<Arc<RunPages>, CacheError> {
        let key = |index| PageKey {
            object: object.clone(),
            page_size: self.page_size,
            index,
        };
        let result = self.get_pages(&path, pages.clone(), object_len).await;
        if let Ok(got) = &result {
            for (index, page) in (got.first..).zip(&got.pages) {
                self.cache.insert(key(index), page.clone());
            }
        }
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        for index in pages {
            runs.remove(&key(index));
        }
        result
    }

    /// One ranged GET over `pages`, checked against what was asked, split into pages that each
    /// own their bytes.
    async fn get_pages(
        &self,
        path: &Path,
        pages: Range<u64>,
        object_len: Option<u64>,
    ) -> Result<Arc<RunPages>, CacheError> {
        let start = pages.start * self.page_size;
        let mut end = pages.end * self.page_size;
        if let Some(len) = object_len {
            end = end.min(len);
        }
        let range = start..end;
        let get_error = |source| CacheError::Get {
            path: path.clone(),
            range: range.clone(),
            source: Arc::new(source),
        };
        let bad_response = |expected: String, found: String| CacheError::BadResponse {
            path: path.clone(),
            range: range.clone(),
            expected,
            found,
        };

        Counters::add(&self.counters.get_requests, 1);
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(path, options)
            .await
            .map_err(get_error)?;
        let size = got.meta.size;
        if let Some(len) = object_len
            && len != size
        {
            return Err(CacheError::LengthMismatch {
                path: path.clone(),
                range,
                expected: len,
                found: size,
            });
        }
        if start >= size {
            return Err(CacheError::BeyondEnd {
                path: path.clone(),
                range,
                len: size,
            });
        }
        let expected = start..end.min(size);
        if got.range != expected {
            return Err(bad_response(
                format!("bytes {expected:?}"),
                format!("bytes {:?}", got.range),
            ));
        }
        let bytes = got.bytes().await.map_err(get_error)?;
        Counters::add(&self.counters.bytes_fetched, bytes.len() as u64);
        if bytes.len() as u64 != expected.end - expected.start {
            return Err(bad_response(
                format!("{} bytes", expected.end - expected.start),
                format!("{} bytes", bytes.len()),
            ));
        }

        Ok(Arc::new(RunPages {
            first: pages.start,
            pages: bytes
                .chunks(self.page_size as usize)
                .map(|chunk| Page(Bytes::copy_from_slice(chunk)))
                .collect(),
            object_len: size,
        }))
    }
}
