//! The paged cache against an instrumented in-memory store that counts GETs and bytes and can
//! hold GETs back: exact bytes across page boundaries, single flight, coalescing, hot reads,
//! eviction under a small budget, writer inserts, the SSD tier and errors.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use inlet_cache::{CacheError, CacheOptions, OpenError, PagedCache};
use inlet_core::error::{ErrorKind, HasKind};
use inlet_store::{Matcher, Op, ProbeStore, matching};
use proptest::prelude::*;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// An in-memory store whose GETs the tests count and hold at a gate.
type Store = ProbeStore<InMemory>;

fn new_store() -> Arc<Store> {
    Arc::new(Store::new(InMemory::new()))
}

/// Every GET, and every HEAD.
fn every_get() -> Matcher {
    matching(|op, _| matches!(op, Op::Get | Op::Head))
}

/// The GETs started so far, held ones included.
fn gets_started(store: &Store) -> u64 {
    let started = store.started();
    started
        .iter()
        .filter(|r| matches!(r.op, Op::Get | Op::Head))
        .count() as u64
}

/// The bytes the GETs served so far returned.
fn bytes_served(store: &Store) -> u64 {
    store.served().iter().map(|served| served.bytes).sum()
}

/// Bytes that differ at every offset (within 251), so a shifted slice never matches.
fn object_bytes(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn put(store: &Store, path: &Path, bytes: &Bytes) {
    store
        .put(path, PutPayload::from(bytes.clone()))
        .await
        .expect("put into the in-memory store");
}

/// Options with small pages; `memory_pages` full pages of `path` fit in memory.
fn options(page_size: usize, memory_pages: usize, path: &Path) -> CacheOptions {
    CacheOptions {
        page_size,
        max_get_bytes: 8 * page_size,
        memory_bytes: memory_pages * entry_weight(page_size, path),
        ..CacheOptions::default()
    }
}

/// What one full page of `path` weighs in the memory tier (page, path and a 128-byte
/// overhead), with a few bytes to spare.
fn entry_weight(page_size: usize, path: &Path) -> usize {
    page_size + path.as_ref().len() + 128 + 8
}

async fn open(store: &Arc<Store>, options: CacheOptions) -> PagedCache {
    let store: Arc<dyn ObjectStore> = store.clone();
    PagedCache::open(store, options).await.expect("cache opens")
}

#[derive(Clone, Debug)]
struct Case {
    len: usize,
    page_size: usize,
    max_get_pages: usize,
    memory_pages: usize,
    known_len: bool,
    reads: Vec<Range<u64>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0usize..3000,
        1usize..300,
        1usize..6,
        prop_oneof![1usize..4, 4usize..64, Just(10_000)],
        any::<bool>(),
    )
        .prop_flat_map(|(len, page_size, max_get_pages, memory_pages, known_len)| {
            let read = (0..=len as u64, 0..=len as u64)
                .prop_map(|(a, b)| if a <= b { a..b } else { b..a });
            proptest::collection::vec(read, 1..8).prop_map(move |reads| Case {
                len,
                page_size,
                max_get_pages,
                memory_pages,
                known_len,
                reads,
            })
        })
}

async fn check_case(case: Case) -> anyhow::Result<()> {
    let store = new_store();
    let path = Path::from("wal/prop.wal");
    let source = object_bytes(case.len);
    put(&store, &path, &source).await;
    let options = CacheOptions {
        max_get_bytes: case.max_get_pages * case.page_size,
        ..options(case.page_size, case.memory_pages, &path)
    };
    let cache = open(&store, options.clone()).await;
    let object_len = case.known_len.then_some(case.len as u64);

    // All reads at once (overlapping fetches), then again one by one (hot or evicted pages).
    let concurrent = join_all(
        case.reads
            .iter()
            .map(|range| cache.get_range(&path, range.clone(), object_len)),
    )
    .await;
    for (range, got) in case.reads.iter().zip(concurrent) {
        let want = source.slice(range.start as usize..range.end as usize);
        anyhow::ensure!(got? == want, "concurrent read of {range:?} differs");
    }
    for range in &case.reads {
        let want = source.slice(range.start as usize..range.end as usize);
        let got = cache.get_range(&path, range.clone(), object_len).await?;
        anyhow::ensure!(got == want, "read of {range:?} differs");
    }

    let stats = cache.stats();
    anyhow::ensure!(stats.get_requests == gets_started(&store), "{stats:?}");
    anyhow::ensure!(stats.bytes_fetched == bytes_served(&store), "{stats:?}");
    anyhow::ensure!(
        stats.memory_bytes <= options.memory_bytes as u64,
        "memory tier holds {} bytes over its {} budget",
        stats.memory_bytes,
        options.memory_bytes
    );
    if case.memory_pages == 10_000 {
        // Nothing is evicted, so no page is ever fetched twice, even by racing reads.
        anyhow::ensure!(
            bytes_served(&store) <= case.len as u64,
            "fetched {} bytes of a {}-byte object",
            bytes_served(&store),
            case.len
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ranges_across_page_boundaries_return_exact_bytes(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let result = runtime.block_on(check_case(case));
        prop_assert!(result.is_ok(), "{:?}", result);
    }
}

#[tokio::test]
async fn concurrent_misses_of_one_page_make_one_get() {
    let store = new_store();
    let path = Path::from("wal/1.wal");
    let source = object_bytes(10_000);
    put(&store, &path, &source).await;
    let cache = open(&store, options(4096, 16, &path)).await;

    let gate = store.hold(every_get());
    // `join_all` polls every read once before anything else runs, so all 16 have asked for
    // the page by the time the held GET is released.
    let reads = join_all((0..16).map(|i| cache.get_range(&path, 100 + i..200 + i, None)));
    let release = async {
        gate.wait_for_held(1).await;
        gate.release();
    };
    let (results, ()) = tokio::join!(reads, release);

    for (i, got) in (0..16).zip(results) {
        let got = got.expect("read succeeds");
        assert_eq!(got, source.slice(100 + i..200 + i));
    }
    assert_eq!(
        gets_started(&store),
        1,
        "16 concurrent misses of one page make one GET"
    );
    let stats = cache.stats();
    assert_eq!(
        stats.misses, 16,
        "all 16 reads missed, so they really overlapped"
    );
    assert_eq!(stats.hits, 0);
    assert_eq!(stats.get_requests, 1);
    assert_eq!(stats.bytes_fetched, 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_misses_from_many_tasks_make_one_get() {
    let store = new_store();
    let path = Path::from("wal/1.wal");
    let source = object_bytes(10_000);
    put(&store, &path, &source).await;
    let cache = open(&store, options(4096, 16, &path)).await;

    let gate = store.hold(every_get());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            let path = path.clone();
            tokio::spawn(async move { cache.get_range(&path, 5000..6000, None).await })
        })
        .collect();
    gate.wait_for_held(1).await;
    gate.release();
    for task in tasks {
        let got = task.await.expect("task").expect("read succeeds");
        assert_eq!(got, source.slice(5000..6000));
    }
    assert_eq!(gets_started(&store), 1);
    let stats = cache.stats();
    assert_eq!(stats.hits + stats.misses, 16);
}

#[tokio::test]
async fn adjacent_missing_pages_are_fetched_with_one_get() {
    let store = new_store();
    let path = Path::from("wal/2.wal");
    let source = object_bytes(8 * 1000);
    put(&store, &path, &source).await;

    let cache = open(&store, options(1000, 64, &path)).await;
    let got = cache.get_range(&path, 10..7990, Some(8000)).await;
    assert_eq!(got.expect("read"), source.slice(10..7990));
    assert_eq!(
        gets_started(&store),
        1,
        "8 adjacent pages within max_get_bytes: one GET"
    );

    // With GETs of at most two pages the same read takes four.
    let store = new_store();
    put(&store, &path, &source).await;
    let options = CacheOptions {
        max_get_bytes: 2000,
        ..options(1000, 64, &path)
    };
    let cache = open(&store, options).await;
    let got = cache.get_range(&path, 10..7990, Some(8000)).await;
    assert_eq!(got.expect("read"), source.slice(10..7990));
    assert_eq!(gets_started(&store), 4);
    assert_eq!(bytes_served(&store), 8000);
}

#[tokio::test]
async fn overlapping_concurrent_reads_fetch_each_page_once() {
    let store = new_store();
    let path = Path::from("wal/3.wal");
    let source = object_bytes(36 * 100);
    put(&store, &path, &source).await;
    let cache = open(&store, options(100, 1000, &path)).await;

    let gate = store.hold(every_get());
    let ranges: Vec<Range<u64>> = (0..12).map(|i| i * 250..i * 250 + 700).collect();
    let reads = join_all(
        ranges
            .iter()
            .map(|range| cache.get_range(&path, range.clone(), None)),
    );
    let release = async {
        gate.wait_for_held(1).await;
        gate.release();
    };
    let (results, ()) = tokio::join!(reads, release);
    for (range, got) in ranges.iter().zip(results) {
        let want = source.slice(range.start as usize..range.end as usize);
        assert_eq!(got.expect("read"), want);
    }
    // The reads cover bytes 0..3450: pages 0..=34.
    assert_eq!(
        bytes_served(&store),
        3500,
        "every page was fetched exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_parallel_reads_fetch_each_page_once() {
    let store = new_store();
    let path = Path::from("wal/3.wal");
    let source = object_bytes(64 * 100);
    put(&store, &path, &source).await;
    let cache = open(&store, options(100, 1000, &path)).await;

    let ranges: Vec<Range<u64>> = (0..32u64)
        .map(|i| (i * 137) % 5000..(i * 137) % 5000 + 50 + i * 40)
        .collect();
    let tasks: Vec<_> = ranges
        .iter()
        .map(|range| {
            let (cache, path, range) = (cache.clone(), path.clone(), range.clone());
            tokio::spawn(async move { cache.get_range(&path, range, None).await })
        })
        .collect();
    for (range, task) in ranges.iter().zip(tasks) {
        let want = source.slice(range.start as usize..range.end as usize);
        assert_eq!(task.await.expect("task").expect("read"), want);
    }
    let pages: std::collections::BTreeSet<u64> = ranges
        .iter()
        .flat_map(|range| range.start / 100..=(range.end - 1) / 100)
        .collect();
    assert_eq!(
        bytes_served(&store),
        pages.len() as u64 * 100,
        "every page touched was fetched exactly once"
    );
    assert_eq!(cache.stats().bytes_fetched, bytes_served(&store));
}

#[tokio::test]
async fn a_hot_range_is_read_without_a_get() {
    let store = new_store();
    let path = Path::from("wal/4.wal");
    let source = object_bytes(10_000);
    put(&store, &path, &source).await;
    let cache = open(&store, options(4096, 16, &path)).await;

    let first = cache.get_range(&path, 3000..9000, Some(10_000)).await;
    assert_eq!(first.expect("cold read"), source.slice(3000..9000));
    let gets = gets_started(&store);
    assert!(gets >= 1);

    let second = cache.get_range(&path, 3000..9000, Some(10_000)).await;
    assert_eq!(second.expect("hot read"), source.slice(3000..9000));
    let inner = cache.get_range(&path, 4100..4200, Some(10_000)).await;
    assert_eq!(inner.expect("hot sub-range"), source.slice(4100..4200));
    assert_eq!(gets_started(&store), gets, "hot reads make no GET");
    let stats = cache.stats();
    assert_eq!(stats.misses, 3);
    assert_eq!(stats.hits, 4);
}

#[tokio::test]
async fn a_small_memory_budget_evicts_and_stays_bounded() {
    let store = new_store();
    let path = Path::from("wal/5.wal");
    let page = 4096;
    let source = object_bytes(16 * page);
    put(&store, &path, &source).await;
    let options = options(page, 4, &path);
    let budget = options.memory_bytes as u64;
    let cache = open(&store, options).await;

    for i in 0..16u64 {
        let range = i * page as u64..(i + 1) * page as u64;
        let got = cache.get_range(&path, range.clone(), None).await;
        assert_eq!(
            got.expect("read"),
            source.slice(range.start as usize..range.end as usize)
        );
        assert!(cache.stats().memory_bytes <= budget);
    }
    assert_eq!(gets_started(&store), 16);
    assert!(
        cache.stats().memory_bytes >= 3 * page as u64,
        "the budget is used"
    );

    let again = cache.get_range(&path, 0..page as u64, None).await;
    assert_eq!(again.expect("re-read"), source.slice(0..page));
    assert_eq!(
        gets_started(&store),
        17,
        "the first page was evicted, so it is fetched again"
    );
    assert!(cache.stats().memory_bytes <= budget);

    let hot = cache
        .get_range(&path, 15 * page as u64..16 * page as u64, None)
        .await;
    assert_eq!(
        hot.expect("recent page"),
        source.slice(15 * page..16 * page)
    );
    assert_eq!(gets_started(&store), 17, "the most recent pages stay");
}

#[tokio::test]
async fn an_inserted_object_is_read_without_a_get() {
    let store = new_store();
    let path = Path::from("wal/6.wal");
    let source = object_bytes(10_000);
    put(&store, &path, &source).await;
    let cache = open(&store, options(4096, 16, &path)).await;

    cache.insert_object(&path, source.clone());
    assert_eq!(cache.stats().inserted_pages, 3);
    for range in [0..10_000u64, 4000..4200, 9000..10_000, 8191..8193] {
        let got = cache.get_range(&path, range.clone(), Some(10_000)).await;
        assert_eq!(
            got.expect("read"),
            source.slice(range.start as usize..range.end as usize)
        );
    }
    let got = cache.get_range(&path, 9000..10_000, None).await;
    assert_eq!(
        got.expect("read, length unknown"),
        source.slice(9000..10_000)
    );
    assert_eq!(
        gets_started(&store),
        0,
        "a co-located reader never GETs what the writer inserted"
    );
}

#[tokio::test]
async fn an_insert_completes_reads_waiting_on_a_get() {
    let store = new_store();
    let path = Path::from("wal/7.wal");
    let source = object_bytes(5000);
    put(&store, &path, &source).await;
    let cache = open(&store, options(4096, 16, &path)).await;

    let gate = store.hold(every_get());
    let read = cache.get_range(&path, 0..5000, Some(5000));
    let insert = async {
        gate.wait_for_held(1).await;
        cache.insert_object(&path, source.clone());
        gate.release();
    };
    let (got, ()) = tokio::join!(read, insert);
    assert_eq!(got.expect("read"), source);
}

#[tokio::test]
async fn the_disk_tier_serves_pages_evicted_from_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = new_store();
    let path = Path::from("wal/8.wal");
    let page = 4096;
    let source = object_bytes(16 * page);
    put(&store, &path, &source).await;
    let options = CacheOptions {
        disk_dir: Some(dir.path().to_path_buf()),
        disk_bytes: 64 * 1024 * 1024,
        ..options(page, 4, &path)
    };
    let cache = open(&store, options).await;

    for i in 0..16u64 {
        let range = i * page as u64..(i + 1) * page as u64;
        cache.get_range(&path, range, None).await.expect("read");
    }
    assert_eq!(gets_started(&store), 16);

    let again = cache.get_range(&path, 0..page as u64, None).await;
    assert_eq!(again.expect("re-read"), source.slice(0..page));
    assert_eq!(
        gets_started(&store),
        16,
        "the evicted page came back from disk, not the store"
    );
    assert_eq!(cache.stats().disk_hits, 1);
    cache.close().await.expect("close");
}

#[tokio::test]
async fn an_unknown_length_is_learned_from_a_short_page() {
    let store = new_store();
    let path = Path::from("wal/9.wal");
    let source = object_bytes(5000);
    put(&store, &path, &source).await;
    let cache = open(&store, options(4096, 16, &path)).await;

    let tail = cache.get_range(&path, 4000..5000, None).await;
    assert_eq!(tail.expect("read to the end"), source.slice(4000..5000));

    // The cached short page shows the object ends at 5000.
    let past = cache.get_range(&path, 4500..5001, None).await;
    match past {
        Err(CacheError::BeyondEnd { len: 5000, .. }) => {}
        other => panic!("expected BeyondEnd at 5000, got {other:?}"),
    }
    let gets = gets_started(&store);

    // With the length given, a read past it fails without a GET.
    let error = cache
        .get_range(&path, 4500..6000, Some(5000))
        .await
        .expect_err("past the end");
    assert_eq!(error.kind(), ErrorKind::OutOfRange);
    assert_eq!(
        error.to_string(),
        "range 4500..6000 of object `wal/9.wal` ends past the object's end at 5000 bytes"
    );
    assert_eq!(gets_started(&store), gets);
}

#[tokio::test]
async fn a_wrong_length_is_refused_as_corruption() {
    let store = new_store();
    let path = Path::from("wal/10.wal");
    let source = object_bytes(5000);
    put(&store, &path, &source).await;
    let cache = open(&store, options(4096, 16, &path)).await;

    let error = cache
        .get_range(&path, 0..100, Some(6000))
        .await
        .expect_err("the object is 5000 bytes");
    assert!(
        matches!(
            error,
            CacheError::LengthMismatch {
                expected: 6000,
                found: 5000,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Corruption);

    // Once the page is cached, a caller with a wrong length is refused from the page itself.
    cache
        .get_range(&path, 0..100, Some(5000))
        .await
        .expect("read");
    let error = cache
        .get_range(&path, 0..100, Some(4000))
        .await
        .expect_err("a full page in a 4000-byte object");
    assert!(
        matches!(error, CacheError::PageMismatch { page: 0, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_failed_get_names_the_object_and_is_not_cached() {
    let store = new_store();
    let path = Path::from("wal/11.wal");
    let cache = open(&store, options(4096, 16, &path)).await;

    let error = cache
        .get_range(&path, 10..20, None)
        .await
        .expect_err("no such object");
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(
        error.to_string(),
        "get of bytes 0..4096 of object `wal/11.wal` failed"
    );

    let source = object_bytes(100);
    put(&store, &path, &source).await;
    let got = cache.get_range(&path, 10..20, None).await;
    assert_eq!(got.expect("the object exists now"), source.slice(10..20));
    assert_eq!(gets_started(&store), 2);
}

#[tokio::test]
async fn empty_and_inverted_ranges() {
    let store = new_store();
    let path = Path::from("wal/12.wal");
    let cache = open(&store, options(4096, 16, &path)).await;

    let empty = cache.get_range(&path, 7..7, None).await;
    assert!(empty.expect("empty range").is_empty());
    #[expect(clippy::reversed_empty_ranges)]
    let inverted = cache.get_range(&path, 8..7, None).await;
    assert!(matches!(inverted, Err(CacheError::InvalidRange { .. })));
    assert_eq!(gets_started(&store), 0);
}

#[tokio::test]
async fn invalid_options_are_refused() {
    let store = new_store();
    let path = Path::from("x");
    for (options, option) in [
        (
            CacheOptions {
                page_size: 0,
                ..CacheOptions::default()
            },
            "page_size",
        ),
        (
            CacheOptions {
                max_get_bytes: 1024,
                ..CacheOptions::default()
            },
            "max_get_bytes",
        ),
        (
            CacheOptions {
                memory_bytes: 1024,
                ..options(4096, 1, &path)
            },
            "memory_bytes",
        ),
        (
            CacheOptions {
                disk_dir: Some("/nonexistent/inlet-cache".into()),
                disk_bytes: 1024 * 1024,
                ..CacheOptions::default()
            },
            "disk_bytes",
        ),
    ] {
        let store: Arc<dyn ObjectStore> = store.clone();
        match PagedCache::open(store, options).await {
            Err(OpenError::InvalidOption { option: found, .. }) => assert_eq!(found, option),
            other => panic!("expected {option} to be refused, got {other:?}"),
        }
    }
}
