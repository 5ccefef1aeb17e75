//! Fetch throughput: a wide table is loaded, then read from the earliest offset to the end,
//! in full and projected to 2 of its 20 columns, each first from a freshly started node (the
//! read cache is empty, so every chunk byte is a GET: cold) and then again on the same node
//! (hot). The hot read's chunk GETs against the cold read's give the cache hit ratio; the cold
//! reads side by side give what reading 2 columns instead of 20 saves when every byte is a GET
//! (under `--s3-model`, mostly round trips: the reader reads chunks ahead, so a cold read is
//! bound by latency and CPU rather than by one GET after another).

use anyhow::{Context, bail};
use inlet_proto::v1 as pb;
use inlet_store::Purpose;
use serde::Serialize;
use tokio::time::Instant;

use super::Settings;
use super::cost::StoreUsage;
use super::data::{BatchPool, PROJECTED, WIDE_COLUMNS};
use super::harness::Harness;
use super::produce;
use super::stats::round;
use inlet_client::{Client, decode_fetched, path, status_error};

#[derive(Clone, Debug, Serialize)]
pub(crate) struct FetchReport {
    pub(crate) table: String,
    pub(crate) rows: u64,
    pub(crate) columns: usize,
    pub(crate) projected_columns: Vec<&'static str>,
    pub(crate) load: Load,
    pub(crate) runs: Vec<FetchRun>,
    pub(crate) cache: Vec<CacheHit>,
    pub(crate) cache_method: &'static str,
    /// The cold reads side by side, when both ran.
    pub(crate) cold: Option<ColdReads>,
}

/// The cold projected read against the cold full read of the same rows: what a read of few
/// columns saves when every byte comes from the store.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ColdReads {
    /// Arrow IPC MB per second the full read returned.
    pub(crate) full_mb_per_s: f64,
    pub(crate) full_seconds: f64,
    pub(crate) projected_seconds: f64,
    /// `full_seconds / projected_seconds`: above 1 when the projected read is faster.
    pub(crate) projected_speedup: f64,
    pub(crate) full_chunk_gets: u64,
    pub(crate) projected_chunk_gets: u64,
    /// Projected chunk GET bytes / full chunk GET bytes.
    pub(crate) projected_get_bytes_ratio: f64,
}

impl ColdReads {
    fn of(runs: &[FetchRun]) -> Option<Self> {
        let cold = |read: &str| runs.iter().find(|r| r.read == read && r.cache == "cold");
        let (full, projected) = (cold("full")?, cold("projected")?);
        if projected.seconds <= 0.0 || full.chunk_get_bytes == 0 {
            return None;
        }
        Some(Self {
            full_mb_per_s: full.mb_per_s,
            full_seconds: full.seconds,
            projected_seconds: projected.seconds,
            projected_speedup: round(full.seconds / projected.seconds, 2),
            full_chunk_gets: full.chunk_gets,
            projected_chunk_gets: projected.chunk_gets,
            projected_get_bytes_ratio: round(
                projected.chunk_get_bytes as f64 / full.chunk_get_bytes as f64,
                4,
            ),
        })
    }
}

/// Loading the fetch table: what a bulk ingest with large appends costs.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Load {
    pub(crate) batch_rows: usize,
    pub(crate) linger_ms: f64,
    pub(crate) ipc_bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) store: StoreUsage,
}

/// One read of the whole table.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FetchRun {
    /// `full` or `projected`.
    pub(crate) read: &'static str,
    /// `cold` (fresh node, empty cache) or `hot` (the same read again).
    pub(crate) cache: &'static str,
    pub(crate) rows: u64,
    /// Arrow IPC bytes received (the asked columns plus `_bucket`, `_offset`, `_timestamp`).
    pub(crate) ipc_bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) rows_per_s: f64,
    pub(crate) chunk_gets: u64,
    pub(crate) chunk_get_bytes: u64,
    /// Page lookups of the node's read cache during the read (from `GetStatus`).
    pub(crate) cache_hits: u64,
    pub(crate) cache_misses: u64,
    /// `cache_hits / (cache_hits + cache_misses)`; 0 when there were no lookups.
    pub(crate) cache_hit_ratio: f64,
    /// Object-store traffic of the read, per GB of `ipc_bytes` returned.
    pub(crate) store: StoreUsage,
}

/// The hot read against the cold one.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct CacheHit {
    pub(crate) read: &'static str,
    pub(crate) cold_chunk_gets: u64,
    pub(crate) hot_chunk_gets: u64,
    pub(crate) cold_chunk_get_bytes: u64,
    pub(crate) hot_chunk_get_bytes: u64,
    /// The node's page hit ratio during the hot read.
    pub(crate) hot_hit_ratio: f64,
    /// 1 - hot chunk GET bytes / cold chunk GET bytes: the same figure from the store side.
    pub(crate) hot_hit_ratio_by_get_bytes: f64,
}

const CACHE_METHOD: &str = "hot_hit_ratio: the node's read-cache page hits / lookups during \
                            the hot read (GetStatus counters before and after); \
                            hot_hit_ratio_by_get_bytes: 1 - hot / cold chunk GET bytes, since \
                            the cold read GETs every page the hot read needs";

/// Loads the table and reads it four times (full and projected, cold and hot).
pub(crate) async fn run(
    harness: &mut Harness<'_>,
    settings: &Settings,
    database: &str,
) -> anyhow::Result<FetchReport> {
    let table = "fetch";
    harness.restart(settings.fetch_linger).await?;
    let pool = std::sync::Arc::new(BatchPool::new(settings.fetch_batch_rows, settings.seed)?);
    let appends = settings.fetch_rows.div_ceil(pool.rows as u64).max(1);
    let rows = appends * pool.rows as u64;
    eprintln!(
        "bench: fetch: loading {rows} rows ({} rows per append)",
        pool.rows
    );
    let start = Instant::now();
    let (ipc_bytes, store) = produce::load(
        harness,
        database,
        table,
        settings.buckets,
        pool.clone(),
        settings.producers,
        appends,
        Default::default(),
    )
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    let load = Load {
        batch_rows: pool.rows,
        linger_ms: settings.fetch_linger.as_secs_f64() * 1000.0,
        ipc_bytes,
        seconds: round(seconds, 3),
        mb_per_s: round(ipc_bytes as f64 / 1e6 / seconds, 2),
        store,
    };

    let mut runs = Vec::new();
    let mut cache = Vec::new();
    for (read, columns) in [("full", Vec::new()), ("projected", PROJECTED.to_vec())] {
        // A fresh node: its read cache is empty, and nothing else reads behind our back.
        harness.restart(settings.fetch_linger).await?;
        let cold = read_all(harness, database, table, read, "cold", &columns, rows).await?;
        let hot = read_all(harness, database, table, read, "hot", &columns, rows).await?;
        let ratio = if cold.chunk_get_bytes == 0 {
            1.0
        } else {
            1.0 - hot.chunk_get_bytes as f64 / cold.chunk_get_bytes as f64
        };
        cache.push(CacheHit {
            read,
            cold_chunk_gets: cold.chunk_gets,
            hot_chunk_gets: hot.chunk_gets,
            cold_chunk_get_bytes: cold.chunk_get_bytes,
            hot_chunk_get_bytes: hot.chunk_get_bytes,
            hot_hit_ratio: hot.cache_hit_ratio,
            hot_hit_ratio_by_get_bytes: round(ratio.clamp(0.0, 1.0), 4),
        });
        runs.push(cold);
        runs.push(hot);
    }
    Ok(FetchReport {
        table: format!("{database}.{table}"),
        rows,
        columns: WIDE_COLUMNS,
        projected_columns: PROJECTED.to_vec(),
        load,
        cache,
        cache_method: CACHE_METHOD,
        cold: ColdReads::of(&runs),
        runs,
    })
}

/// Reads the whole table once and checks every row came back.
async fn read_all(
    harness: &Harness<'_>,
    database: &str,
    table: &str,
    read: &'static str,
    cache: &'static str,
    columns: &[&str],
    expected_rows: u64,
) -> anyhow::Result<FetchRun> {
    eprintln!("bench: fetch: {read} read, {cache}");
    let mut client = harness.client().await?;
    let cache_before = cache_counters(&mut client).await?;
    let before = harness.snapshot();
    let start = Instant::now();
    let (rows, ipc_bytes) = read_table(&mut client, database, table, read, columns).await?;
    let seconds = start.elapsed().as_secs_f64();
    if rows != expected_rows {
        bail!("the {read} fetch returned {rows} rows, expected {expected_rows}");
    }
    let store = StoreUsage::of(&harness.snapshot().since(&before), ipc_bytes);
    let cache_after = cache_counters(&mut client).await?;
    let hits = cache_after.0.saturating_sub(cache_before.0);
    let misses = cache_after.1.saturating_sub(cache_before.1);
    let lookups = hits + misses;
    Ok(FetchRun {
        read,
        cache,
        rows,
        ipc_bytes,
        seconds: round(seconds, 3),
        mb_per_s: round(ipc_bytes as f64 / 1e6 / seconds, 2),
        rows_per_s: round(rows as f64 / seconds, 0),
        chunk_gets: store.requests(Purpose::ChunkGet),
        chunk_get_bytes: store.bytes_in(Purpose::ChunkGet),
        cache_hits: hits,
        cache_misses: misses,
        cache_hit_ratio: if lookups == 0 {
            0.0
        } else {
            round(hits as f64 / lookups as f64, 4)
        },
        store,
    })
}

/// Reads `database.table` from the earliest offset to the end, projected to `columns` (all
/// when empty), decoding every batch; returns the rows and the Arrow IPC bytes received.
/// `read` names the read in errors.
pub(crate) async fn read_table(
    client: &mut Client,
    database: &str,
    table: &str,
    read: &str,
    columns: &[&str],
) -> anyhow::Result<(u64, u64)> {
    let mut stream = client
        .fetch(pb::FetchRequest {
            path: Some(path(database, table)),
            start: Some(pb::StartPosition {
                position: Some(pb::start_position::Position::Earliest(true)),
            }),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .context("cannot start the fetch")?;
    // The asked columns (all when none) plus `_bucket`, `_offset` and `_timestamp`.
    let expected_columns = if columns.is_empty() {
        WIDE_COLUMNS
    } else {
        columns.len()
    } + 3;
    let (mut rows, mut ipc_bytes) = (0u64, 0u64);
    while let Some(response) = stream.message().await.map_err(status_error)? {
        ipc_bytes += response.batch_ipc.len() as u64;
        for batch in decode_fetched(&response)? {
            if batch.num_columns() != expected_columns {
                bail!("the {read} fetch returned {} columns", batch.num_columns());
            }
            rows += batch.num_rows() as u64;
        }
    }
    Ok((rows, ipc_bytes))
}

/// The node's read-cache (hits, misses) since it started.
async fn cache_counters(client: &mut Client) -> anyhow::Result<(u64, u64)> {
    let status = client
        .raw()
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(status_error)
        .context("cannot read the node's status")?
        .into_inner();
    Ok((status.cache_hits, status.cache_misses))
}
