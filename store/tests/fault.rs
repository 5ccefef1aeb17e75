//! `FaultStore`: a seed replays the same outcomes, a timeout after a write leaves the object
//! written (so put-if-absent then says it exists), faults keep to their purposes and kinds,
//! latency uses tokio time, and a disabled store passes everything through.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use inlet_store::{
    FaultConfig, FaultCounts, FaultKind, FaultStore, InjectedFault, InstrumentedStore, Op, Purpose,
};
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{Error, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::time::Instant;

const WAL_A: &str = "wal/0000000000000000000000000000000a.wal";

fn injected(error: &Error) -> Option<FaultKind> {
    InjectedFault::of(error).map(|fault| fault.kind)
}

fn create() -> PutOptions {
    PutOptions::from(PutMode::Create)
}

/// What one request did, comparable across runs.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Injected(FaultKind),
    Store(String),
}

fn outcome<T>(result: &Result<T, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(error) => match injected(error) {
            Some(kind) => Outcome::Injected(kind),
            None => Outcome::Store(error.to_string()),
        },
    }
}

/// A fixed mix of writes, reads, listings and deletes; returns each outcome with the tokio
/// time it finished at.
async fn workload(seed: u64) -> Result<(Vec<(Outcome, Duration)>, FaultCounts)> {
    let config = FaultConfig {
        transient_error: 0.2,
        timeout_after_write: 0.2,
        dropped_response: 0.2,
        min_latency: Duration::from_millis(1),
        max_latency: Duration::from_millis(50),
        ..FaultConfig::default()
    };
    let store = FaultStore::new(InMemory::new(), config, seed);
    let start = Instant::now();
    let mut trace = Vec::new();
    for i in 0..60u32 {
        let path = Path::from(format!("wal/{:032x}.wal", i % 7));
        let put = store
            .put_opts(&path, PutPayload::from(vec![i as u8; 64]), create())
            .await;
        trace.push((outcome(&put), start.elapsed()));
        let get = match store.get_range(&path, 0..16).await {
            Ok(bytes) => Ok(bytes.len()),
            Err(error) => Err(error),
        };
        trace.push((outcome(&get), start.elapsed()));
        if i % 5 == 0 {
            let listed: Result<Vec<_>, Error> =
                store.list(Some(&Path::from("wal"))).try_collect().await;
            trace.push((outcome(&listed), start.elapsed()));
        }
        if i % 3 == 0 {
            let deleted = store.delete(&path).await;
            trace.push((outcome(&deleted), start.elapsed()));
        }
    }
    Ok((trace, store.counts()))
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_outcomes() -> Result<()> {
    let (first, first_counts) = workload(42).await?;
    let (second, second_counts) = workload(42).await?;
    assert_eq!(first, second);
    assert_eq!(first_counts, second_counts);

    // The workload does exercise every fault, so the comparison means something.
    assert!(first_counts.transient_errors > 0, "{first_counts:?}");
    assert!(first_counts.timeouts_after_write > 0, "{first_counts:?}");
    assert!(first_counts.dropped_responses > 0, "{first_counts:?}");
    assert!(first_counts.delayed_requests > 0, "{first_counts:?}");

    let (other, _) = workload(43).await?;
    assert_ne!(first, other, "another seed should give another trace");
    Ok(())
}

#[tokio::test]
async fn timeout_after_write_leaves_the_object_and_a_retry_finds_it() -> Result<()> {
    let config = FaultConfig {
        timeout_after_write: 1.0,
        purposes: Some(vec![Purpose::WalPut]),
        ..FaultConfig::default()
    };
    let store = FaultStore::new(InMemory::new(), config, 7);
    let a = Path::from(WAL_A);

    let first = store
        .put_opts(&a, PutPayload::from_static(b"wal object"), create())
        .await;
    let error = first.expect_err("the put must report a timeout");
    let fault = InjectedFault::of(&error).expect("an injected fault");
    assert_eq!(
        (fault.kind, fault.op, fault.path.as_str()),
        (FaultKind::TimeoutAfterWrite, Op::Put, WAL_A)
    );
    assert_eq!(
        store.inner().get(&a).await?.bytes().await?.as_ref(),
        b"wal object"
    );

    // The retry of a put-if-absent is refused by the store: its error, not an injected one.
    let retry = store
        .put_opts(&a, PutPayload::from_static(b"wal object"), create())
        .await;
    assert!(
        matches!(retry, Err(Error::AlreadyExists { .. })),
        "{retry:?}"
    );

    // Other purposes are out of scope: index writes and WAL reads pass.
    store
        .put(
            &Path::from("index/manifest/1"),
            PutPayload::from_static(b"m"),
        )
        .await?;
    assert_eq!(store.get(&a).await?.bytes().await?.as_ref(), b"wal object");

    let counts = store.counts();
    assert_eq!(counts.timeouts_after_write, 1);
    assert_eq!(counts.transient_errors + counts.dropped_responses, 0);
    Ok(())
}

#[tokio::test]
async fn a_transient_error_never_reaches_the_store() -> Result<()> {
    let config = FaultConfig {
        transient_error: 1.0,
        ..FaultConfig::default()
    };
    let store = FaultStore::new(InstrumentedStore::new(InMemory::new()), config, 1);
    let a = Path::from(WAL_A);

    let put = store.put(&a, PutPayload::from_static(b"x")).await;
    assert_eq!(
        put.as_ref().err().and_then(injected),
        Some(FaultKind::TransientError)
    );
    assert!(matches!(
        store.inner().inner().head(&a).await,
        Err(Error::NotFound { .. })
    ));
    let listed: Result<Vec<_>, Error> = store.list(None).try_collect().await;
    assert_eq!(
        listed.as_ref().err().and_then(injected),
        Some(FaultKind::TransientError)
    );
    let upload = store.put_multipart(&a).await;
    assert_eq!(
        upload.as_ref().err().and_then(injected),
        Some(FaultKind::TransientError)
    );

    assert_eq!(
        store.inner().snapshot().total().requests,
        0,
        "nothing was sent"
    );
    assert_eq!(store.counts().transient_errors, 3);
    Ok(())
}

#[tokio::test]
async fn a_dropped_response_was_served_but_is_lost() -> Result<()> {
    let config = FaultConfig {
        dropped_response: 1.0,
        ..FaultConfig::default()
    };
    let store = FaultStore::new(InstrumentedStore::new(InMemory::new()), config, 1);
    let a = Path::from(WAL_A);
    store.put(&a, PutPayload::from_static(b"payload")).await?;

    let get = store.get(&a).await;
    assert_eq!(
        get.as_ref().err().and_then(injected),
        Some(FaultKind::DroppedResponse)
    );
    let ranges = store.get_ranges(&a, &[0..3, 4..6]).await;
    assert_eq!(
        ranges.as_ref().err().and_then(injected),
        Some(FaultKind::DroppedResponse)
    );
    let listed: Result<Vec<_>, Error> = store.list(Some(&Path::from("wal"))).try_collect().await;
    assert_eq!(
        listed.as_ref().err().and_then(injected),
        Some(FaultKind::DroppedResponse)
    );
    let missing = store.get(&Path::from("wal/missing.wal")).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "the store's own error wins"
    );

    let sent = store.inner().snapshot();
    assert_eq!(sent.get(Purpose::ChunkGet, Op::Get).requests, 2);
    assert_eq!(sent.get(Purpose::ChunkGet, Op::GetRanges).requests, 1);
    assert_eq!(sent.get(Purpose::WalList, Op::List).requests, 1);
    assert_eq!(store.counts().dropped_responses, 3);
    Ok(())
}

#[tokio::test]
async fn a_delete_that_times_out_has_deleted() -> Result<()> {
    let config = FaultConfig {
        timeout_after_write: 1.0,
        purposes: Some(vec![Purpose::WalDelete]),
        ..FaultConfig::default()
    };
    let store = FaultStore::new(InMemory::new(), config, 1);
    let a = Path::from(WAL_A);
    store.put(&a, PutPayload::from_static(b"x")).await?;

    let deleted = store.delete(&a).await;
    assert_eq!(
        deleted.as_ref().err().and_then(injected),
        Some(FaultKind::TimeoutAfterWrite)
    );
    assert!(matches!(
        store.inner().head(&a).await,
        Err(Error::NotFound { .. })
    ));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn latency_is_slept_on_tokio_time() -> Result<()> {
    let config = FaultConfig {
        min_latency: Duration::from_millis(100),
        max_latency: Duration::from_millis(100),
        ..FaultConfig::default()
    };
    let store = FaultStore::new(InMemory::new(), config, 1);
    let start = Instant::now();
    store
        .put(&Path::from(WAL_A), PutPayload::from_static(b"x"))
        .await?;
    store.get(&Path::from(WAL_A)).await?.bytes().await?;
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    let counts = store.counts();
    assert_eq!(
        (counts.delayed_requests, counts.added_latency),
        (2, Duration::from_millis(200))
    );
    Ok(())
}

#[tokio::test]
async fn a_disabled_store_passes_everything_through() -> Result<()> {
    let config = FaultConfig {
        transient_error: 1.0,
        timeout_after_write: 1.0,
        dropped_response: 1.0,
        min_latency: Duration::from_secs(3600),
        max_latency: Duration::from_secs(3600),
        purposes: None,
    };
    let faulty = FaultStore::new(InMemory::new(), config, 1);
    let control = faulty.control();
    control.set_enabled(false);
    let store: Arc<dyn ObjectStore> = Arc::new(faulty);
    let (a, b, c) = (
        Path::from(WAL_A),
        Path::from("wal/b.wal"),
        Path::from("lake/c"),
    );

    store
        .put_opts(&a, PutPayload::from_static(b"hello"), create())
        .await?;
    let mut upload = store.put_multipart(&b).await?;
    upload.put_part(PutPayload::from_static(b"multi")).await?;
    upload.put_part(PutPayload::from_static(b"part")).await?;
    upload.complete().await?;
    assert_eq!(store.get(&a).await?.bytes().await?.as_ref(), b"hello");
    assert_eq!(store.get(&b).await?.bytes().await?.as_ref(), b"multipart");
    assert_eq!(store.get_range(&a, 1..3).await?.as_ref(), b"el");
    assert_eq!(store.get_ranges(&a, &[0..1, 4..5]).await?.concat(), b"ho");
    assert_eq!(store.head(&a).await?.size, 5);
    store.copy(&a, &c).await?;
    store.rename(&c, &Path::from("lake/d")).await?;
    let listed: Vec<_> = store.list(None).try_collect().await?;
    assert_eq!(listed.len(), 3);
    let listed: Vec<_> = store.list_with_offset(None, &a).try_collect().await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        store.list_with_delimiter(None).await?.common_prefixes.len(),
        2
    );
    let deleted: Vec<_> = store
        .delete_stream(futures::stream::iter([Ok(a.clone()), Ok(b.clone())]).boxed())
        .try_collect()
        .await?;
    assert_eq!(deleted, [a.clone(), b]);
    assert_eq!(control.counts(), FaultCounts::default());

    // Enabled again, the same store fails (without the hour of latency: heal the config too).
    control.set_config(FaultConfig {
        transient_error: 1.0,
        ..FaultConfig::default()
    });
    control.set_enabled(true);
    let put = store.put(&a, PutPayload::from_static(b"x")).await;
    assert_eq!(
        put.as_ref().err().and_then(injected),
        Some(FaultKind::TransientError)
    );
    assert!(control.is_enabled());
    Ok(())
}

#[tokio::test]
async fn the_wrappers_stack_over_a_shared_dyn_store() -> Result<()> {
    let base: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let instrumented = InstrumentedStore::new(Arc::clone(&base));
    let metrics = instrumented.metrics().clone();
    let store: Arc<dyn ObjectStore> =
        Arc::new(FaultStore::new(instrumented, FaultConfig::default(), 9));
    assert_eq!(store.to_string(), "FaultStore(InstrumentedStore(InMemory))");

    store
        .put(&Path::from(WAL_A), PutPayload::from_static(b"abc"))
        .await?;
    assert_eq!(
        base.get(&Path::from(WAL_A)).await?.bytes().await?.as_ref(),
        b"abc"
    );
    assert_eq!(
        metrics.snapshot().get(Purpose::WalPut, Op::Put).bytes_out,
        3
    );
    Ok(())
}
