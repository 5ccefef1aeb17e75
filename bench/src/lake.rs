//! Lake tiering: a lake-enabled wide table is loaded on a node that runs no compactor, then a
//! compactor built here tiers it into its Iceberg table, round after round (each capped by
//! `max_round_bytes`) until no backlog is left. The rounds run one at a time and encode
//! Parquet inline, so their throughput is that of one core.
//!
//! Throughput is counted in the Arrow IPC bytes the producers sent (the append payloads),
//! which the rounds read back from the WAL and wrote as Parquet; the WAL chunk bytes the
//! rounds read and the Parquet bytes they wrote are reported beside it.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use inlet_cache::{CacheOptions, PagedCache};
use inlet_compactor::lake::{LakeRoot, LakeStorage};
use inlet_compactor::{Compactor, CompactorOptions, RoundOutcome};
use inlet_core::clock::Env;
use inlet_core::ids::Offset;
use inlet_core::table::{OPTION_LAKE_ENABLED, TableInfo};
use inlet_index::table_streams;
use inlet_store::StoreSnapshot;
use serde::Serialize;
use tokio::time::Instant;

use super::Settings;
use super::cost::StoreUsage;
use super::data::BatchPool;
use super::harness::Harness;
use super::produce;
use super::stats::round;

const TABLE: &str = "lake";

/// Rounds before the benchmark gives up on emptying the backlog: far more than the largest
/// sensible `--lake-mb` needs at 1 GiB per round.
const MAX_ROUNDS: usize = 10_000;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct LakeReport {
    pub(crate) table: String,
    pub(crate) buckets: u32,
    pub(crate) rows: u64,
    /// Arrow IPC bytes the producers sent into the table, all of which the rounds tiered.
    pub(crate) ipc_bytes: u64,
    /// Loading the table (produce), before any tiering.
    pub(crate) load_seconds: f64,
    pub(crate) load_batch_rows: usize,
    pub(crate) load_linger_ms: f64,
    /// All rounds, back to back; the first one also creates the Iceberg table.
    pub(crate) seconds: f64,
    /// Arrow IPC MB (10^6 bytes) tiered per second of rounds. Rounds run one at a time and
    /// encode inline: this is per core.
    pub(crate) mb_per_s_per_core: f64,
    pub(crate) rows_per_s: f64,
    /// WAL chunk bytes the rounds read.
    pub(crate) wal_bytes: u64,
    /// Bytes of the Parquet data files written (the index's lake file entries).
    pub(crate) parquet_bytes: u64,
    pub(crate) parquet_files: u64,
    /// `parquet_bytes / wal_bytes`.
    pub(crate) parquet_to_wal: f64,
    /// `parquet_bytes / ipc_bytes`.
    pub(crate) parquet_to_ipc: f64,
    pub(crate) files_per_round: f64,
    pub(crate) rounds: Vec<LakeRound>,
    /// Object-store traffic of the rounds (WAL reads, index, lake writes), per GB of
    /// `ipc_bytes` tiered.
    pub(crate) store: StoreUsage,
}

/// One committed round.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LakeRound {
    pub(crate) rows: u64,
    pub(crate) chunk_bytes: u64,
    pub(crate) data_files: usize,
    pub(crate) seconds: f64,
    pub(crate) backlog: bool,
}

/// What [`tier_all`] did.
pub(crate) struct Tiering {
    pub(crate) rounds: Vec<LakeRound>,
    /// All rounds, back to back.
    pub(crate) seconds: f64,
    /// The object-store traffic of the rounds.
    pub(crate) usage: StoreSnapshot,
}

/// A compactor driven by the benchmark on the node's index and store, with a read cache of
/// its own (it GETs every chunk, as a standalone compactor does).
pub(crate) async fn compactor(
    harness: &Harness<'_>,
    settings: &Settings,
    options: CompactorOptions,
) -> anyhow::Result<Compactor> {
    let index = harness.index()?.clone();
    let lake = lake_storage(harness, settings)?;
    let cache = PagedCache::open(harness.store().clone(), CacheOptions::default()).await?;
    Ok(Compactor::new(index, cache, lake, options, Env::system()))
}

/// The lake tables' storage: under the bench store's root, on its store.
pub(crate) fn lake_storage(
    harness: &Harness<'_>,
    settings: &Settings,
) -> anyhow::Result<LakeStorage> {
    let root = match harness.host().lake_root(&settings.store) {
        Ok(root) => root,
        // Unique within the process, which holds one benchmark.
        Err(_) if settings.store.starts_with("memory:") => LakeRoot::memory("inlet-bench-lake"),
        Err(error) => return Err(error.context("cannot place the lake tables")),
    };
    Ok(LakeStorage::new(root, harness.store().clone()))
}

/// Tiers everything committed to `info` into its lake table with a compactor built here, round
/// after round (each capped by `max_round_bytes`) until no backlog is left. The compactor has
/// a cache of its own: the rows were written by another node's writer, so this measures
/// tiering that GETs every chunk, as a standalone compactor does.
pub(crate) async fn tier_all(
    harness: &Harness<'_>,
    settings: &Settings,
    info: &TableInfo,
) -> anyhow::Result<Tiering> {
    let compactor = compactor(harness, settings, CompactorOptions::default()).await?;
    let before = harness.snapshot();
    let started = Instant::now();
    let mut rounds = Vec::new();
    let outcome = loop {
        if rounds.len() >= MAX_ROUNDS {
            break Err(anyhow::anyhow!(
                "the lake backlog is not empty after {MAX_ROUNDS} rounds"
            ));
        }
        let round_started = Instant::now();
        let tiered = compactor.tier_table(info.id).await;
        let seconds = round_started.elapsed().as_secs_f64();
        match tiered.outcome.context("a lake round failed") {
            Ok(RoundOutcome::Committed(committed)) => {
                rounds.push(LakeRound {
                    rows: committed.rows,
                    chunk_bytes: committed.chunk_bytes,
                    data_files: committed.data_files,
                    seconds: round(seconds, 3),
                    backlog: committed.backlog,
                });
                if !committed.backlog {
                    break Ok(());
                }
            }
            Ok(RoundOutcome::Idle) => break Ok(()),
            Ok(other) => {
                break Err(anyhow::anyhow!(
                    "unexpected outcome of a lake round: {other:?}"
                ));
            }
            Err(error) => break Err(error),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let usage = harness.snapshot().since(&before);
    compactor.stop().await;
    outcome?;
    Ok(Tiering {
        rounds,
        seconds,
        usage,
    })
}

/// Loads `settings.lake_bytes` of wide rows into a lake-enabled table, then tiers all of it.
pub(crate) async fn run(
    harness: &mut Harness<'_>,
    settings: &Settings,
    database: &str,
) -> anyhow::Result<LakeReport> {
    let linger = settings.fetch_linger;
    harness.restart(linger).await?;
    let pool = Arc::new(BatchPool::new(settings.fetch_batch_rows, settings.seed)?);
    let append_bytes = pool.bytes_per_row() * pool.rows as f64;
    let appends = (settings.lake_bytes as f64 / append_bytes).ceil().max(1.0) as u64;
    eprintln!(
        "bench: lake: loading {appends} appends of {} rows into {} buckets",
        pool.rows, settings.buckets
    );
    let options = BTreeMap::from([(OPTION_LAKE_ENABLED.to_owned(), "true".to_owned())]);
    let loading = Instant::now();
    let (ipc_bytes, _) = produce::load(
        harness,
        database,
        TABLE,
        settings.buckets,
        pool.clone(),
        settings.producers,
        appends,
        options,
    )
    .await
    .context("cannot load the lake table")?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let rows = appends * pool.rows as u64;

    let index = harness.index()?.clone();
    let info = index
        .table(database, TABLE)
        .with_context(|| format!("table {database}.{TABLE} is not in the catalog"))?;
    eprintln!("bench: lake: tiering {rows} rows");
    let Tiering {
        rounds,
        seconds,
        usage,
    } = tier_all(harness, settings, &info).await?;
    let store = StoreUsage::of(&usage, ipc_bytes);

    let tiered: u64 = rounds.iter().map(|r| r.rows).sum();
    if tiered != rows {
        bail!("the lake rounds tiered {tiered} rows, {rows} were produced");
    }
    let wal_bytes: u64 = rounds.iter().map(|r| r.chunk_bytes).sum();
    let (mut parquet_bytes, mut parquet_files) = (0, 0);
    for stream in table_streams(&info) {
        let mut files = index
            .lake_files(stream, Offset(0))
            .await
            .context("cannot list the lake files")?;
        while let Some(file) = files.next().await.context("cannot list the lake files")? {
            parquet_bytes += file.file_size;
            parquet_files += 1;
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(LakeReport {
        table: format!("{database}.{TABLE}"),
        buckets: settings.buckets,
        rows,
        ipc_bytes,
        load_seconds: round(load_seconds, 3),
        load_batch_rows: pool.rows,
        load_linger_ms: linger.as_secs_f64() * 1000.0,
        seconds: round(seconds, 3),
        mb_per_s_per_core: round(ipc_bytes as f64 / 1e6 / seconds, 2),
        rows_per_s: round(rows as f64 / seconds, 0),
        wal_bytes,
        parquet_bytes,
        parquet_files,
        parquet_to_wal: round(ratio(parquet_bytes, wal_bytes), 4),
        parquet_to_ipc: round(ratio(parquet_bytes, ipc_bytes), 4),
        files_per_round: round(ratio(parquet_files, rounds.len() as u64), 2),
        rounds,
        store,
    })
}
