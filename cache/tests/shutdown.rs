//! A cache read whose fetch is spawned on a runtime that is shutting down, or already gone,
//! returns an error instead of deadlocking. foyer 0.22.6 spawned the fetch while holding the
//! in-flight lock that the dropped task's destructor takes, so this exact sequence hung the
//! thread forever at 0% CPU (it hung `cargo test`); `vendor/foyer-memory` carries the fix.

// The hang would block the reading thread for good, so the test watches it from outside with
// a real-time timeout instead of blocking on it.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use inlet_cache::{CacheOptions, PagedCache};
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_read_after_the_cache_runtime_shut_down_fails_instead_of_hanging() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let path = Path::from("wal/object");
    // The cache is built on a runtime that then shuts down, as a test's or a node's does while
    // another task still holds the cache: foyer spawns fetches on the runtime it was built on.
    let building = runtime();
    let cache = building.block_on(async {
        store
            .put(&path, Bytes::from(vec![7u8; 4096]).into())
            .await
            .expect("put");
        PagedCache::open(Arc::clone(&store), CacheOptions::default())
            .await
            .expect("cache opens")
    });
    drop(building);

    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let result = runtime().block_on(cache.get_range(&path, 0..100, Some(4096)));
        let _ = done.send(result.map(|bytes| bytes.len()));
    });
    match outcome.recv_timeout(Duration::from_secs(30)) {
        // The fetch task was cancelled by the closed runtime: an error, reported at once.
        Ok(result) => assert!(result.is_err(), "{result:?}"),
        Err(_) => panic!("the cache read deadlocked when its fetch task was cancelled"),
    }
}
