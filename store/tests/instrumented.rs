//! `InstrumentedStore` over `InMemory` (and a local directory for file bodies): requests,
//! errors, expected misses and bytes land on the right (purpose, operation), GET bytes are
//! counted as the body streams, and the Prometheus text carries them. A "no" from the store
//! (not found, a conditional write refused) is an expected miss, never an error.

use std::sync::Arc;

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use inlet_store::{
    FaultConfig, FaultStore, InstrumentedStore, Op, OpCounts, Purpose, StoreMetrics,
};
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    Attribute, Attributes, GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, UpdateVersion,
};

const WAL_A: &str = "wal/0000000000000000000000000000000a.wal";
const WAL_B: &str = "wal/0000000000000000000000000000000b.wal";

/// Counts with no expected misses.
fn counts(requests: u64, errors: u64, bytes_out: u64, bytes_in: u64) -> OpCounts {
    OpCounts {
        requests,
        errors,
        expected_misses: 0,
        bytes_out,
        bytes_in,
    }
}

/// `counts` with `expected_misses` of them answered "no".
fn missed(expected_misses: u64, counts: OpCounts) -> OpCounts {
    OpCounts {
        expected_misses,
        ..counts
    }
}

#[tokio::test]
async fn puts_and_gets_are_counted_by_purpose_with_their_bytes() -> Result<()> {
    let store = InstrumentedStore::new(InMemory::new());
    let (a, b) = (Path::from(WAL_A), Path::from(WAL_B));
    store.put(&a, PutPayload::from(vec![1u8; 1000])).await?;
    store.put(&b, PutPayload::from(vec![2u8; 500])).await?;
    store
        .put(
            &Path::from("index/manifest/1"),
            PutPayload::from(vec![3u8; 7]),
        )
        .await?;
    store
        .put(
            &Path::from("lake/t/data.parquet"),
            PutPayload::from(vec![4u8; 9]),
        )
        .await?;

    assert_eq!(store.get(&a).await?.bytes().await?.len(), 1000);
    assert_eq!(store.get_range(&b, 100..150).await?.len(), 50);
    assert_eq!(store.head(&a).await?.size, 1000);
    let parts = store.get_ranges(&a, &[0..10, 500..520]).await?;
    assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 30);
    let missing = store.get(&Path::from("wal/missing.wal")).await;
    assert!(matches!(
        missing,
        Err(slatedb::object_store::Error::NotFound { .. })
    ));

    let snap = store.snapshot();
    assert_eq!(snap.get(Purpose::WalPut, Op::Put), counts(2, 0, 1500, 0));
    assert_eq!(snap.get(Purpose::Index, Op::Put), counts(1, 0, 7, 0));
    assert_eq!(snap.get(Purpose::Lake, Op::Put), counts(1, 0, 9, 0));
    // The GET of a missing object is a request and an expected miss, not an error.
    assert_eq!(
        snap.get(Purpose::ChunkGet, Op::Get),
        missed(1, counts(3, 0, 0, 1050))
    );
    // A head sends no body (InMemory would, but nobody reads it, so nothing is counted).
    assert_eq!(snap.get(Purpose::ChunkGet, Op::Head), counts(1, 0, 0, 0));
    assert_eq!(
        snap.get(Purpose::ChunkGet, Op::GetRanges),
        counts(1, 0, 0, 30)
    );
    assert_eq!(
        snap.purpose(Purpose::ChunkGet),
        missed(1, counts(5, 0, 0, 1080))
    );
    assert_eq!(snap.op(Op::Put), counts(4, 0, 1516, 0));
    assert_eq!(snap.total(), missed(1, counts(9, 0, 1516, 1080)));
    assert_eq!(snap.entries().count(), 6);
    Ok(())
}

#[tokio::test]
async fn get_bytes_are_counted_as_the_body_streams() -> Result<()> {
    let store = InstrumentedStore::new(InMemory::new());
    let a = Path::from(WAL_A);
    store.put(&a, PutPayload::from(vec![1u8; 4096])).await?;

    let result = store.get(&a).await?;
    let before = store.snapshot().get(Purpose::ChunkGet, Op::Get);
    assert_eq!(
        before,
        counts(1, 0, 0, 0),
        "nothing received before the body is read"
    );
    let body: Vec<_> = result.into_stream().try_collect().await?;
    assert_eq!(body.iter().map(|b| b.len()).sum::<usize>(), 4096);
    assert_eq!(
        store.snapshot().get(Purpose::ChunkGet, Op::Get),
        counts(1, 0, 0, 4096)
    );

    // A body dropped unread counts its request and no bytes.
    drop(store.get(&a).await?);
    assert_eq!(
        store.snapshot().get(Purpose::ChunkGet, Op::Get),
        counts(2, 0, 0, 4096)
    );
    Ok(())
}

#[tokio::test]
async fn file_bodies_count_their_range() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = InstrumentedStore::new(LocalFileSystem::new_with_prefix(dir.path())?);
    let a = Path::from(WAL_A);
    store.put(&a, PutPayload::from(vec![1u8; 300])).await?;

    let result = store.get_opts(&a, Default::default()).await?;
    assert!(matches!(result.payload, GetResultPayload::File(..)));
    assert_eq!(result.bytes().await?.len(), 300);
    assert_eq!(store.get_range(&a, 10..110).await?.len(), 100);
    store.head(&a).await?;
    let snap = store.snapshot();
    assert_eq!(snap.get(Purpose::ChunkGet, Op::Get), counts(2, 0, 0, 400));
    assert_eq!(snap.get(Purpose::ChunkGet, Op::Head), counts(1, 0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn an_option_the_store_does_not_support_is_an_expected_miss() -> Result<()> {
    // SlateDB sends its conditional PUTs with an attribute first and, on a store without
    // attributes (the local filesystem), sends them again without: the first answer is part
    // of its protocol, not a failure.
    let dir = tempfile::tempdir()?;
    let store = InstrumentedStore::new(LocalFileSystem::new_with_prefix(dir.path())?);
    let manifest = Path::from("index/manifest/00000000000000000001.manifest");
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::Metadata("put-id".into()), "1".into());
    let with_attributes = PutOptions {
        mode: PutMode::Create,
        attributes,
        ..PutOptions::default()
    };
    let refused = store
        .put_opts(&manifest, PutPayload::from(vec![1u8; 8]), with_attributes)
        .await;
    assert!(matches!(
        refused,
        Err(slatedb::object_store::Error::NotImplemented { .. })
    ));
    store
        .put_opts(
            &manifest,
            PutPayload::from(vec![1u8; 8]),
            PutMode::Create.into(),
        )
        .await?;
    assert_eq!(
        store.snapshot().get(Purpose::Index, Op::Put),
        missed(1, counts(2, 0, 16, 0))
    );
    Ok(())
}

#[tokio::test]
async fn deletes_lists_copies_and_multipart_are_counted() -> Result<()> {
    let metrics = StoreMetrics::new();
    let store: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::with_metrics(
        InMemory::new(),
        metrics.clone(),
    ));
    let (a, b) = (Path::from(WAL_A), Path::from(WAL_B));

    let mut upload = store.put_multipart(&a).await?;
    upload.put_part(PutPayload::from(vec![0u8; 100])).await?;
    upload.put_part(PutPayload::from(vec![0u8; 60])).await?;
    upload.complete().await?;
    let mut aborted = store
        .put_multipart(&Path::from("lake/t/big.parquet"))
        .await?;
    aborted.put_part(PutPayload::from(vec![0u8; 5])).await?;
    aborted.abort().await?;

    store.copy(&a, &b).await?;
    store.rename(&b, &Path::from("wal/c.wal")).await?;
    let listed: Vec<_> = store.list(Some(&Path::from("wal"))).try_collect().await?;
    assert_eq!(listed.len(), 2);
    let listed: Vec<_> = store
        .list_with_offset(None, &Path::from(WAL_A))
        .try_collect()
        .await?;
    assert_eq!(listed.len(), 1);
    store.list_with_delimiter(Some(&Path::from("wal"))).await?;
    store.delete(&a).await?;
    let deleted: Vec<_> = store
        .delete_stream(
            futures::stream::iter([Ok(Path::from("wal/c.wal")), Ok(Path::from("x"))]).boxed(),
        )
        .try_collect()
        .await?;
    assert_eq!(deleted.len(), 2);

    let snap = metrics.snapshot();
    assert_eq!(
        snap.get(Purpose::WalPut, Op::PutMultipart),
        counts(1, 0, 0, 0)
    );
    assert_eq!(snap.get(Purpose::WalPut, Op::PutPart), counts(2, 0, 160, 0));
    assert_eq!(
        snap.get(Purpose::WalPut, Op::CompleteMultipart),
        counts(1, 0, 0, 0)
    );
    assert_eq!(snap.get(Purpose::Lake, Op::PutPart), counts(1, 0, 5, 0));
    assert_eq!(
        snap.get(Purpose::Lake, Op::AbortMultipart),
        counts(1, 0, 0, 0)
    );
    assert_eq!(snap.get(Purpose::WalPut, Op::Copy), counts(1, 0, 0, 0));
    assert_eq!(snap.get(Purpose::WalPut, Op::Rename), counts(1, 0, 0, 0));
    assert_eq!(snap.get(Purpose::WalList, Op::List), counts(1, 0, 0, 0));
    assert_eq!(snap.get(Purpose::Other, Op::List), counts(1, 0, 0, 0));
    assert_eq!(
        snap.get(Purpose::WalList, Op::ListWithDelimiter),
        counts(1, 0, 0, 0)
    );
    assert_eq!(snap.get(Purpose::WalDelete, Op::Delete), counts(2, 0, 0, 0));
    assert_eq!(snap.get(Purpose::Other, Op::Delete), counts(1, 0, 0, 0));

    // A copy of a missing object is a request and an expected miss.
    let failed = store
        .copy(&Path::from("wal/gone.wal"), &Path::from("wal/d.wal"))
        .await;
    assert!(failed.is_err());
    assert_eq!(
        metrics.snapshot().get(Purpose::WalPut, Op::Copy),
        missed(1, counts(2, 0, 0, 0))
    );
    Ok(())
}

#[tokio::test]
async fn refused_conditional_writes_are_expected_misses_and_failures_are_errors() -> Result<()> {
    let metrics = StoreMetrics::new();
    let faults = FaultStore::new(InMemory::new(), FaultConfig::default(), 7);
    let control = faults.control();
    let store = InstrumentedStore::with_metrics(faults, metrics.clone());
    let manifest = Path::from("index/manifest/00000000000000000001.manifest");

    // SlateDB's protocol: put-if-absent of a taken name, put-if-match of a stale version.
    let first = store
        .put_opts(
            &manifest,
            PutPayload::from(vec![1u8; 10]),
            PutMode::Create.into(),
        )
        .await?;
    let taken = store
        .put_opts(
            &manifest,
            PutPayload::from(vec![2u8; 10]),
            PutMode::Create.into(),
        )
        .await;
    assert!(matches!(
        taken,
        Err(slatedb::object_store::Error::AlreadyExists { .. })
    ));
    store
        .put_opts(
            &manifest,
            PutPayload::from(vec![3u8; 10]),
            PutMode::Update(UpdateVersion::from(first.clone())).into(),
        )
        .await?;
    let stale = store
        .put_opts(
            &manifest,
            PutPayload::from(vec![4u8; 10]),
            PutMode::Update(UpdateVersion::from(first.clone())).into(),
        )
        .await;
    assert!(matches!(
        stale,
        Err(slatedb::object_store::Error::Precondition { .. })
    ));
    assert_eq!(
        metrics.snapshot().get(Purpose::Index, Op::Put),
        missed(2, counts(4, 0, 40, 0))
    );

    // A request the store fails to answer is an error.
    control.set_config(FaultConfig {
        transient_error: 1.0,
        ..FaultConfig::default()
    });
    assert!(store.get(&manifest).await.is_err());
    assert!(
        store
            .put(&Path::from(WAL_A), PutPayload::from(vec![0u8; 5]))
            .await
            .is_err()
    );
    let snap = metrics.snapshot();
    assert_eq!(snap.get(Purpose::Index, Op::Get), counts(1, 1, 0, 0));
    assert_eq!(snap.get(Purpose::WalPut, Op::Put), counts(1, 1, 5, 0));
    assert_eq!(snap.total().errors, 2);
    assert_eq!(snap.total().expected_misses, 2);
    Ok(())
}

#[tokio::test]
async fn since_gives_the_requests_of_a_phase() -> Result<()> {
    let store = InstrumentedStore::new(InMemory::new());
    let a = Path::from(WAL_A);
    store.put(&a, PutPayload::from(vec![1u8; 10])).await?;
    let start = store.snapshot();
    store.get(&a).await?.bytes().await?;
    store.get(&a).await?.bytes().await?;
    let phase = store.snapshot().since(&start);
    assert_eq!(phase.get(Purpose::WalPut, Op::Put), OpCounts::default());
    assert_eq!(phase.get(Purpose::ChunkGet, Op::Get), counts(2, 0, 0, 20));
    assert_eq!(phase.total(), counts(2, 0, 0, 20));
    Ok(())
}

#[tokio::test]
async fn prometheus_text_has_help_type_and_one_sample_per_active_pair() -> Result<()> {
    let store = InstrumentedStore::new(InMemory::new());
    let a = Path::from(WAL_A);
    store.put(&a, PutPayload::from(vec![1u8; 123])).await?;
    store.put(&a, PutPayload::from(vec![1u8; 100])).await?;
    store.get_range(&a, 0..40).await?;

    let mut text = String::new();
    store.render_prometheus(&mut text);
    let expected = "\
# HELP inlet_object_store_requests_total Object-store requests sent, by purpose and operation.
# TYPE inlet_object_store_requests_total counter
inlet_object_store_requests_total{purpose=\"wal_put\",op=\"put\"} 2
inlet_object_store_requests_total{purpose=\"chunk_get\",op=\"get\"} 1
# HELP inlet_object_store_errors_total Object-store requests that failed, by purpose and operation (not found, refused conditional requests and unsupported options count as expected misses instead).
# TYPE inlet_object_store_errors_total counter
inlet_object_store_errors_total{purpose=\"wal_put\",op=\"put\"} 0
inlet_object_store_errors_total{purpose=\"chunk_get\",op=\"get\"} 0
# HELP inlet_object_store_expected_misses_total Object-store requests answered not found, already exists, precondition failed, not modified or not supported: expected answers to lookups and conditional requests, by purpose and operation.
# TYPE inlet_object_store_expected_misses_total counter
inlet_object_store_expected_misses_total{purpose=\"wal_put\",op=\"put\"} 0
inlet_object_store_expected_misses_total{purpose=\"chunk_get\",op=\"get\"} 0
# HELP inlet_object_store_bytes_total Object-store payload bytes, out = sent to the store, in = received from it.
# TYPE inlet_object_store_bytes_total counter
inlet_object_store_bytes_total{purpose=\"wal_put\",op=\"put\",direction=\"out\"} 223
inlet_object_store_bytes_total{purpose=\"wal_put\",op=\"put\",direction=\"in\"} 0
inlet_object_store_bytes_total{purpose=\"chunk_get\",op=\"get\",direction=\"out\"} 0
inlet_object_store_bytes_total{purpose=\"chunk_get\",op=\"get\",direction=\"in\"} 40
";
    assert_eq!(text, expected);

    // Empty counters still render the HELP and TYPE lines, and nothing else.
    let mut empty = String::new();
    StoreMetrics::new().render_prometheus(&mut empty);
    assert_eq!(empty.lines().count(), 8);
    assert!(empty.lines().all(|line| line.starts_with('#')));
    Ok(())
}
