//! WAL retention over time (`--sections retention`, not in the default run: it lasts about a
//! minute): one table that is not tiered and keeps `retention.bytes` per bucket is produced
//! into for `--duration` by one producer, while a compactor built here expires its WAL and
//! collects the WAL garbage every second; every second the benchmark samples what was
//! ingested, what the index holds (the buckets' WAL bytes) and what the store holds (the
//! objects under `wal/`), until the last expired object is deleted.
//!
//! The collector's upload grace is the writer's upload and commit deadlines plus a second,
//! the shortest that is safe (`lake.wal_upload_grace`): an object younger than that may be
//! uploaded and not committed yet, so it is never deleted, expired or not. The store
//! therefore holds the bound plus about one upload grace of ingest while the load lasts.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use inlet_compactor::CompactorOptions;
use inlet_index::table_streams;
use serde::Serialize;
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::object_store::{ObjectMeta, ObjectStore};
use tokio::time::Instant;

use super::Settings;
use super::data::BatchPool;
use super::harness::Harness;
use super::lake::compactor;
use super::stats::round;

const TABLE: &str = "retention";

/// The bound each bucket keeps (`retention.bytes`); the smallest allowed in a smoke run, so
/// its short load expires something.
const RETENTION_BYTES: u64 = 16 << 20;
const SMOKE_RETENTION_BYTES: u64 = inlet_core::table::MIN_RETENTION_BYTES;

/// How often the compactor runs and the benchmark samples.
const TICK: Duration = Duration::from_secs(1);

/// The collector's read grace: a second is far longer than any chunk read here.
const READ_GRACE: Duration = Duration::from_secs(1);

/// The writer deadlines of the node under test (`inlet_writer::WriterOptions` defaults:
/// 10 s to upload, 30 s to commit), which the upload grace must outlast.
const WRITER_DEADLINES: Duration = Duration::from_secs(40);

#[derive(Clone, Debug, Serialize)]
pub(crate) struct RetentionReport {
    pub(crate) table: String,
    pub(crate) buckets: u32,
    /// `retention.bytes` of the table: per bucket.
    pub(crate) retention_bytes: u64,
    pub(crate) upload_grace_s: f64,
    pub(crate) read_grace_s: f64,
    pub(crate) produce_seconds: f64,
    /// Arrow IPC MB (10^6 bytes) the producer sent.
    pub(crate) ingested_mb: f64,
    pub(crate) samples: Vec<RetentionSample>,
}

/// One sample, `t_s` seconds after the first append.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RetentionSample {
    pub(crate) t_s: f64,
    pub(crate) ingested_mb: f64,
    /// The buckets' WAL bytes as the index counts them (what `retention.bytes` bounds).
    pub(crate) indexed_mb: f64,
    /// Objects under `wal/` in the store, and their bytes.
    pub(crate) stored_objects: usize,
    pub(crate) stored_mb: f64,
}

pub(crate) async fn run(
    harness: &mut Harness<'_>,
    settings: &Settings,
    database: &str,
) -> anyhow::Result<RetentionReport> {
    harness.restart(settings.fetch_linger).await?;
    let pool = Arc::new(BatchPool::new(settings.fetch_batch_rows, settings.seed)?);
    let mut client = harness.client().await?;
    let bound = if settings.smoke {
        SMOKE_RETENTION_BYTES
    } else {
        RETENTION_BYTES
    };
    let options = BTreeMap::from([(
        inlet_core::table::OPTION_RETENTION_BYTES.to_owned(),
        format!("{bound}"),
    )]);
    let info = client
        .create_table_with_options(
            database,
            TABLE,
            &pool.schema,
            settings.buckets,
            Vec::new(),
            options,
            false,
        )
        .await
        .with_context(|| format!("cannot create table {database}.{TABLE}"))?;
    let table = harness.index()?.table(database, TABLE)?;
    let upload_grace = WRITER_DEADLINES + Duration::from_secs(1);
    let compactor = compactor(
        harness,
        settings,
        CompactorOptions {
            wal_upload_grace: upload_grace,
            wal_read_grace: READ_GRACE,
            ..CompactorOptions::default()
        },
    )
    .await?;
    eprintln!(
        "bench: retention: {} buckets keeping {} MiB each, produce {:?}, then until the \
         expired WAL is deleted (upload grace {upload_grace:?})",
        info.descriptor.map_or(0, |d| d.bucket_count),
        bound >> 20,
        settings.duration
    );

    let started = Instant::now();
    let produce_until = started + settings.duration;
    let ingested = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producer = {
        let (pool, ingested) = (pool.clone(), ingested.clone());
        let database = database.to_owned();
        tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < produce_until {
                let (batch, bytes) = pool.get(n);
                client
                    .append(&database, TABLE, &pool.schema, std::slice::from_ref(batch))
                    .await?;
                ingested.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                n += 1;
            }
            anyhow::Ok(())
        })
    };

    let store = harness.store().clone();
    // Earlier sections' WAL objects stay (nothing tiers or expires them): not counted.
    let earlier: HashSet<ObjectPath> = list_wal(store.as_ref())
        .await?
        .into_iter()
        .map(|object| object.location)
        .collect();
    let mb = |bytes: u64| round(bytes as f64 / 1e6, 1);
    let mut samples = Vec::new();
    // Past the load, until every expired object has outlived both graces.
    let sample_until = produce_until + upload_grace + READ_GRACE + 3 * TICK;
    while Instant::now() < sample_until {
        tokio::time::sleep(TICK).await;
        let expired = compactor.expire_wal().await;
        if let Some((_, error)) = expired.errors.first() {
            anyhow::bail!("wal retention failed: {error}");
        }
        compactor
            .collect_wal_garbage()
            .await
            .context("wal garbage collection failed")?;
        let mut indexed = 0;
        for stream in table_streams(&table) {
            indexed += harness.index()?.tail(stream).await?.wal_bytes;
        }
        let ours: Vec<ObjectMeta> = list_wal(store.as_ref())
            .await?
            .into_iter()
            .filter(|object| !earlier.contains(&object.location))
            .collect();
        let (stored_objects, stored) = (ours.len(), ours.iter().map(|o| o.size).sum());
        samples.push(RetentionSample {
            t_s: round(started.elapsed().as_secs_f64(), 1),
            ingested_mb: mb(ingested.load(std::sync::atomic::Ordering::Relaxed)),
            indexed_mb: mb(indexed),
            stored_objects,
            stored_mb: mb(stored),
        });
    }
    producer.await.context("the producer panicked")??;
    compactor.stop().await;
    Ok(RetentionReport {
        table: format!("{database}.{TABLE}"),
        buckets: settings.buckets,
        retention_bytes: bound,
        upload_grace_s: upload_grace.as_secs_f64(),
        read_grace_s: READ_GRACE.as_secs_f64(),
        produce_seconds: settings.duration.as_secs_f64(),
        ingested_mb: mb(ingested.load(std::sync::atomic::Ordering::Relaxed)),
        samples,
    })
}

/// The objects under `wal/`.
async fn list_wal(store: &dyn ObjectStore) -> anyhow::Result<Vec<ObjectMeta>> {
    store
        .list(Some(&ObjectPath::from("wal")))
        .try_collect()
        .await
        .context("cannot list the WAL")
}
