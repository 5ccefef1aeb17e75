//! Primary-key tables: upserts against log appends of the same rows (same producers, batch
//! size and duration, so the ratio is the cost of keeping key state), point and batched
//! lookups of the keys written, and a changelog read and a snapshot read (the current rows)
//! beside a log read of the same rows.
//!
//! Upserts carry `update_fraction` of keys already written (updates, with before images in
//! the changelog) and new keys for the rest; the log table gets the same batches.
//!
//! Then both tables are tiered into their lake tables (`lake::tier_all`, one compactor
//! here): the log table's lake holds every row, the primary-key table's only the current
//! row of each key. A short run of upserts then updates keys already in the lake, and a
//! second tiering replaces their rows (position deletes). With the store in a local directory, DuckDB (from `INLET_BENCH_PYTHON`,
//! or `python3`, with the `duckdb` and `duckdb-extension-*` wheels `.ci/run` installs) scans
//! both lake tables by their metadata files, timed in its own process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use inlet_client::{Client, Producer, WriteKind};
use inlet_core::rng::SplitMix64;
use inlet_core::table::OPTION_LAKE_ENABLED;
use inlet_proto::v1 as pb;
use serde::Serialize;
use tokio::time::Instant;

use super::Settings;
use super::cost::StoreUsage;
use super::data::BatchPool;
use super::duckdb::{self, DuckdbScan};
use super::harness::Harness;
use super::lake;
use super::stats::{Latency, round};

/// Rows per append of the write runs.
const BATCH_ROWS: usize = 1_000;
/// Share of the upserted rows that update a key already written.
const UPDATE_FRACTION: f64 = 0.10;
/// Keys per call of the batched lookups.
const BATCHED_KEYS: usize = 1_000;
/// How long each lookup run lasts (shorter in a smoke run).
const LOOKUP_SECONDS: f64 = 3.0;
/// How long the upserts after the first tiering last (shorter in a smoke run): they update
/// keys already in the lake, so the second tiering writes position deletes.
const UPDATE_SECONDS: f64 = 1.5;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct PkReport {
    pub(crate) batch_rows: usize,
    pub(crate) linger_ms: f64,
    pub(crate) producers: usize,
    pub(crate) update_fraction: f64,
    /// The log table, same batches.
    pub(crate) append: WriteRun,
    pub(crate) upsert: WriteRun,
    /// Upsert MB/s over append MB/s (goal: at least 0.5).
    pub(crate) upsert_vs_append: f64,
    /// One key per call, one client after another call: hot key state.
    pub(crate) point_lookup: LookupRun,
    /// `BATCHED_KEYS` keys per call from `producers` clients at once.
    pub(crate) batched_lookup: LookupRun,
    /// The primary-key table's changelog from offset 0, and the log table's rows.
    pub(crate) changelog: ReadRun,
    /// The primary-key table's current rows: a snapshot read (one row per live key).
    pub(crate) snapshot: ReadRun,
    pub(crate) log_read: ReadRun,
    /// Tiering each table into its lake table, after the reads.
    pub(crate) log_tiering: TierRun,
    pub(crate) pk_tiering: TierRun,
    /// Upserts of keys already in the lake after the first tiering, then their tiering
    /// (each replaces a lake row: one position delete per key).
    pub(crate) pk_update: WriteRun,
    pub(crate) pk_update_tiering: TierRun,
    /// DuckDB scans of both lake tables, or why they did not run.
    pub(crate) duckdb: Result<DuckdbScans, String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct TierRun {
    /// Offsets (written rows) the rounds read.
    pub(crate) rows: u64,
    /// Arrow IPC bytes the producers sent for those rows.
    pub(crate) ipc_bytes: u64,
    pub(crate) rounds: usize,
    pub(crate) data_files: usize,
    pub(crate) seconds: f64,
    /// IPC MB tiered per second; rounds run one at a time and encode inline: per core.
    pub(crate) mb_per_s_per_core: f64,
    pub(crate) rows_per_s: f64,
    pub(crate) store: StoreUsage,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub(crate) struct DuckdbScans {
    pub(crate) log: DuckdbScan,
    pub(crate) pk: DuckdbScan,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct WriteRun {
    pub(crate) table: String,
    pub(crate) rows: u64,
    pub(crate) ipc_bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) rows_per_s: f64,
    pub(crate) ack_latency: Latency,
    pub(crate) store: StoreUsage,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct LookupRun {
    pub(crate) clients: usize,
    pub(crate) keys_per_call: usize,
    pub(crate) calls: u64,
    pub(crate) keys_found: u64,
    pub(crate) keys_per_s: f64,
    /// Per call.
    pub(crate) latency: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ReadRun {
    pub(crate) rows: u64,
    pub(crate) ipc_bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) mb_per_s: f64,
    pub(crate) rows_per_s: f64,
}

/// The key column of the wide rows: `c00`, an int64 row id.
fn key_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("c00", DataType::Int64, false)]))
}

/// The pool's `n`th batch with its ids replaced: new ids from `next_id`, and
/// `UPDATE_FRACTION` of the rows ids already handed out.
fn keyed_batch(
    pool: &BatchPool,
    n: usize,
    next_id: &AtomicU64,
    rng: &mut SplitMix64,
) -> anyhow::Result<(RecordBatch, u64)> {
    let (batch, bytes) = pool.get(n);
    let rows = batch.num_rows();
    let updates = (rows as f64 * UPDATE_FRACTION) as usize;
    let first = next_id.fetch_add((rows - updates) as u64, Ordering::Relaxed);
    let ids = (0..rows).map(|i| {
        if i < updates && first > 0 {
            (rng.next_u64() % first) as i64
        } else {
            (first + (i - updates.min(i)) as u64) as i64
        }
    });
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[0] = Arc::new(Int64Array::from_iter_values(ids));
    let keyed = RecordBatch::try_new(batch.schema(), columns).context("keyed batch")?;
    Ok((keyed, bytes))
}

/// How a write or lookup run is sized.
#[derive(Clone, Copy)]
struct Load {
    /// Producers, or lookup clients.
    clients: usize,
    duration: Duration,
    max_rows: u64,
    seed: u64,
}

/// Writes to `table` as `kind` from `load.clients` producers for `load.duration` or
/// `load.max_rows` rows; returns the run and the keys handed out.
async fn write_run(
    harness: &Harness<'_>,
    database: &str,
    table: &str,
    kind: WriteKind,
    pool: Arc<BatchPool>,
    load: Load,
) -> anyhow::Result<(WriteRun, u64)> {
    let Load {
        clients: producers,
        duration,
        max_rows,
        seed,
    } = load;
    let next_id = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(0));
    let before = harness.snapshot();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(producers);
    for p in 0..producers {
        let mut producer = Producer::new(harness.client().await?, database, table).writing(kind);
        let (pool, next_id, budget) = (pool.clone(), next_id.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(seed ^ p as u64);
            let (mut latencies, mut rows, mut bytes) = (Vec::new(), 0u64, 0u64);
            let mut n = p;
            while start.elapsed() < duration
                && budget.fetch_add(pool.rows as u64, Ordering::Relaxed) < max_rows
            {
                let (batch, size) = keyed_batch(&pool, n, &next_id, &mut rng)?;
                let sending = Instant::now();
                producer
                    .send(&pool.schema, std::slice::from_ref(&batch))
                    .await?;
                latencies.push(sending.elapsed());
                rows += batch.num_rows() as u64;
                bytes += size;
                n += producers;
            }
            anyhow::Ok((latencies, rows, bytes))
        }));
    }
    let (mut latencies, mut rows, mut bytes) = (Vec::new(), 0u64, 0u64);
    for task in tasks {
        let (l, r, b) = task.await.context("a producer task panicked")??;
        latencies.extend(l);
        rows += r;
        bytes += b;
    }
    let seconds = start.elapsed().as_secs_f64();
    let store = StoreUsage::of(&harness.snapshot().since(&before), bytes);
    let run = WriteRun {
        table: format!("{database}.{table}"),
        rows,
        ipc_bytes: bytes,
        seconds: round(seconds, 3),
        mb_per_s: round(bytes as f64 / 1e6 / seconds, 2),
        rows_per_s: round(rows as f64 / seconds, 0),
        ack_latency: Latency::of(latencies),
        store,
    };
    Ok((run, next_id.load(Ordering::Relaxed)))
}

/// Looks up random keys below `keys` in `table` from `load.clients` clients, `per_call` keys
/// per call, for `load.duration`.
async fn lookup_run(
    endpoint: &str,
    table: (&str, &str),
    keys: u64,
    per_call: usize,
    load: Load,
) -> anyhow::Result<LookupRun> {
    let ((database, table), clients, seconds, seed) =
        (table, load.clients, load.duration.as_secs_f64(), load.seed);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut client = Client::connect(endpoint).await?;
        let (database, table) = (database.to_owned(), table.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(seed ^ (0x100 + c as u64));
            let (mut latencies, mut found) = (Vec::new(), 0u64);
            while start.elapsed().as_secs_f64() < seconds {
                let ids = (0..per_call).map(|_| (rng.next_u64() % keys.max(1)) as i64);
                let batch = RecordBatch::try_new(
                    key_schema(),
                    vec![Arc::new(Int64Array::from_iter_values(ids))],
                )?;
                let calling = Instant::now();
                let (_, hits) = client.lookup(&database, &table, &batch, &[]).await?;
                latencies.push(calling.elapsed());
                found += hits.iter().filter(|hit| **hit).count() as u64;
            }
            anyhow::Ok((latencies, found))
        }));
    }
    let (mut latencies, mut found) = (Vec::new(), 0u64);
    for task in tasks {
        let (l, f) = task.await.context("a lookup task panicked")??;
        latencies.extend(l);
        found += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let calls = latencies.len() as u64;
    Ok(LookupRun {
        clients,
        keys_per_call: per_call,
        calls,
        keys_found: found,
        keys_per_s: round((calls * per_call as u64) as f64 / elapsed, 0),
        latency: Latency::of(latencies),
    })
}

/// Reads `table` from `position` (earliest, or a snapshot) to its end; counts the Arrow IPC
/// bytes received.
async fn read_run(
    client: &mut Client,
    database: &str,
    table: &str,
    position: pb::start_position::Position,
) -> anyhow::Result<ReadRun> {
    let start = Instant::now();
    let mut stream = client
        .fetch(pb::FetchRequest {
            path: Some(inlet_client::path(database, table)),
            start: Some(pb::StartPosition {
                position: Some(position),
            }),
            ..Default::default()
        })
        .await?;
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(response) = stream.message().await.map_err(inlet_client::status_error)? {
        bytes += response.batch_ipc.len() as u64;
        rows += inlet_client::decode_fetched(&response)?
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum::<u64>();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(ReadRun {
        rows,
        ipc_bytes: bytes,
        seconds: round(seconds, 3),
        mb_per_s: round(bytes as f64 / 1e6 / seconds, 1),
        rows_per_s: round(rows as f64 / seconds, 0),
    })
}

pub(crate) async fn run(
    harness: &mut Harness<'_>,
    settings: &Settings,
    database: &str,
) -> anyhow::Result<PkReport> {
    // The produce runs' first linger (`--linger`, 5 ms by default): a closed loop of appends
    // waits it out on every append.
    let linger = settings
        .lingers
        .first()
        .copied()
        .unwrap_or(Duration::from_millis(5));
    harness.restart(linger).await?;
    let pool = Arc::new(BatchPool::new(BATCH_ROWS, settings.seed)?);
    let mut client = harness.client().await?;
    let key = vec!["c00".to_owned()];
    let lake = BTreeMap::from([(OPTION_LAKE_ENABLED.to_owned(), "true".to_owned())]);
    client
        .create_table_with_options(
            database,
            "pk_log",
            &pool.schema,
            settings.buckets,
            key.clone(),
            lake.clone(),
            false,
        )
        .await
        .context("cannot create the log table")?;
    client
        .create_primary_key_table(
            database,
            "pk_keyed",
            &pool.schema,
            settings.buckets,
            key,
            Vec::new(),
            lake,
            false,
        )
        .await
        .context("cannot create the primary-key table")?;
    let producers = settings.producers;
    let load = Load {
        clients: producers,
        duration: settings.duration,
        max_rows: settings.max_rows,
        seed: settings.seed,
    };
    eprintln!("bench: pk: appends to a log table, {producers} producers");
    let (append, _) = write_run(
        harness,
        database,
        "pk_log",
        WriteKind::Append,
        pool.clone(),
        load,
    )
    .await
    .context("the append run failed")?;
    eprintln!("bench: pk: upserts to a primary-key table");
    let (upsert, keys) = write_run(
        harness,
        database,
        "pk_keyed",
        WriteKind::Upsert,
        pool.clone(),
        load,
    )
    .await
    .context("the upsert run failed")?;
    let lookups = Load {
        duration: Duration::from_secs_f64(if settings.smoke { 0.3 } else { LOOKUP_SECONDS }),
        ..load
    };
    let endpoint = harness.endpoint()?;
    let table = (database, "pk_keyed");
    eprintln!("bench: pk: lookups of {keys} keys");
    let point_lookup = lookup_run(
        &endpoint,
        table,
        keys,
        1,
        Load {
            clients: 1,
            ..lookups
        },
    )
    .await
    .context("the point lookups failed")?;
    let batched_lookup = lookup_run(&endpoint, table, keys, BATCHED_KEYS, lookups)
        .await
        .context("the batched lookups failed")?;
    eprintln!("bench: pk: changelog, snapshot and log reads");
    let earliest = pb::start_position::Position::Earliest(true);
    let changelog = read_run(&mut client, database, "pk_keyed", earliest).await?;
    let snapshot = read_run(
        &mut client,
        database,
        "pk_keyed",
        pb::start_position::Position::Snapshot(true),
    )
    .await?;
    let log_read = read_run(&mut client, database, "pk_log", earliest).await?;
    eprintln!("bench: pk: tiering both tables into the lake");
    let log_tiering = tier_run(harness, settings, database, "pk_log", append.ipc_bytes).await?;
    let pk_tiering = tier_run(harness, settings, database, "pk_keyed", upsert.ipc_bytes).await?;
    eprintln!("bench: pk: updates of keys in the lake, then tiering them");
    // Ids restart at 0: every row updates a key the first tiering wrote.
    let updates = Load {
        duration: Duration::from_secs_f64(if settings.smoke { 0.2 } else { UPDATE_SECONDS }),
        ..load
    };
    let (pk_update, _) = write_run(
        harness,
        database,
        "pk_keyed",
        WriteKind::Upsert,
        pool,
        updates,
    )
    .await
    .context("the update run failed")?;
    let pk_update_tiering =
        tier_run(harness, settings, database, "pk_keyed", pk_update.ipc_bytes).await?;
    let duckdb = duckdb_scans(harness, settings, database).await;
    if let Err(reason) = &duckdb {
        eprintln!("bench: pk: no DuckDB scans: {reason}");
    }
    Ok(PkReport {
        batch_rows: BATCH_ROWS,
        linger_ms: round(linger.as_secs_f64() * 1000.0, 1),
        producers,
        update_fraction: UPDATE_FRACTION,
        upsert_vs_append: if append.mb_per_s > 0.0 {
            round(upsert.mb_per_s / append.mb_per_s, 2)
        } else {
            0.0
        },
        append,
        upsert,
        point_lookup,
        batched_lookup,
        changelog,
        snapshot,
        log_read,
        log_tiering,
        pk_tiering,
        pk_update,
        pk_update_tiering,
        duckdb,
    })
}

/// Tiers everything written to `table` (whose producers sent `ipc_bytes`) into its lake.
async fn tier_run(
    harness: &Harness<'_>,
    settings: &Settings,
    database: &str,
    table: &str,
    ipc_bytes: u64,
) -> anyhow::Result<TierRun> {
    let info = harness
        .index()?
        .table(database, table)
        .with_context(|| format!("table {database}.{table} is not in the catalog"))?;
    let tiering = lake::tier_all(harness, settings, &info).await?;
    let rows: u64 = tiering.rounds.iter().map(|r| r.rows).sum();
    let seconds = tiering.seconds;
    Ok(TierRun {
        rows,
        ipc_bytes,
        rounds: tiering.rounds.len(),
        data_files: tiering.rounds.iter().map(|r| r.data_files).sum(),
        seconds: round(seconds, 3),
        mb_per_s_per_core: round(ipc_bytes as f64 / 1e6 / seconds, 2),
        rows_per_s: round(rows as f64 / seconds, 0),
        store: StoreUsage::of(&tiering.usage, ipc_bytes),
    })
}

/// The DuckDB scans of both lake tables (see the module docs); `Err` says why they could not
/// run (a store DuckDB cannot open, no Python with DuckDB, a failed scan).
async fn duckdb_scans(
    harness: &Harness<'_>,
    settings: &Settings,
    database: &str,
) -> Result<DuckdbScans, String> {
    let index = harness.index().map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    for table in ["pk_log", "pk_keyed"] {
        ids.push(index.table(database, table).map_err(|e| e.to_string())?.id);
    }
    let mut scans = duckdb::scan(harness, settings, &ids).await?.into_iter();
    match (scans.next(), scans.next()) {
        (Some(log), Some(pk)) => Ok(DuckdbScans { log, pk }),
        _ => Err("DuckDB returned fewer scans than tables".to_owned()),
    }
}
