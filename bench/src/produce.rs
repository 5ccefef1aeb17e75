//! Produce throughput and ack latency: concurrent idempotent producers, each on its own
//! connection, send wide batches back to back (a closed loop: the next append leaves when
//! the previous one is acknowledged) for a fixed time or row count.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::Barrier;
use tokio::time::Instant;

use super::cost::StoreUsage;
use super::data::BatchPool;
use super::harness::Harness;
use super::stats::{Latency, round};
use inlet_client::{Client, Producer};
use inlet_store::Purpose;

/// One cell of the matrix: a batch size under a linger.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ProduceRun {
    pub(crate) table: String,
    pub(crate) batch_rows: usize,
    pub(crate) linger_ms: f64,
    pub(crate) producers: usize,
    pub(crate) appends: u64,
    pub(crate) rows: u64,
    /// Arrow IPC bytes sent in appends (what a producer pays to send).
    pub(crate) ipc_bytes: u64,
    pub(crate) seconds: f64,
    /// Arrow IPC MB (10^6 bytes) acknowledged per second.
    pub(crate) mb_per_s: f64,
    pub(crate) rows_per_s: f64,
    /// From sending an append to its acknowledgement (rows durable in the bucket).
    pub(crate) ack_latency: Latency,
    /// How evenly the producers were served.
    pub(crate) fairness: Fairness,
    /// WAL object bytes written per Arrow IPC byte acknowledged: what the store holds for
    /// the data before the lake (the index's own bytes are in `store`).
    pub(crate) wal_bytes_per_ipc_byte: f64,
    /// Object-store traffic of the run, per GB of `ipc_bytes`.
    pub(crate) store: StoreUsage,
}

/// How evenly the producers of one run were served: a starved producer shows as few appends
/// and a high p99 of its own, which the run's overall percentiles would hide.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Fairness {
    /// Fewest and most appends acknowledged to one producer.
    pub(crate) min_appends: u64,
    pub(crate) max_appends: u64,
    /// The lowest and the highest of the producers' own ack p99s, ms.
    pub(crate) best_p99_ms: f64,
    pub(crate) worst_p99_ms: f64,
}

impl Fairness {
    fn of(producers: &[Sent]) -> Self {
        if producers.is_empty() {
            return Self::default();
        }
        let p99s: Vec<f64> = producers
            .iter()
            .map(|sent| Latency::of(sent.latencies.clone()).p99_ms)
            .collect();
        let appends = producers.iter().map(|sent| sent.appends);
        Self {
            min_appends: appends.clone().min().unwrap_or(0),
            max_appends: appends.max().unwrap_or(0),
            best_p99_ms: p99s.iter().copied().fold(f64::INFINITY, f64::min),
            worst_p99_ms: p99s.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// What the producers of one run report back.
#[derive(Default)]
struct Sent {
    latencies: Vec<Duration>,
    appends: u64,
    rows: u64,
    bytes: u64,
}

impl Sent {
    /// Sends the pool's `n`th batch through `producer`, and counts it once acknowledged.
    async fn send(
        &mut self,
        producer: &mut Producer,
        pool: &BatchPool,
        n: usize,
    ) -> anyhow::Result<()> {
        let (batch, bytes) = pool.get(n);
        let sending = Instant::now();
        producer
            .send(&pool.schema, std::slice::from_ref(batch))
            .await?;
        self.latencies.push(sending.elapsed());
        self.appends += 1;
        self.rows += pool.rows as u64;
        self.bytes += bytes;
        Ok(())
    }

    /// Adds what another producer sent.
    fn add(&mut self, other: Sent) {
        self.latencies.extend(other.latencies);
        self.appends += other.appends;
        self.rows += other.rows;
        self.bytes += other.bytes;
    }
}

/// How one run is bounded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunLimits {
    pub(crate) producers: usize,
    pub(crate) duration: Duration,
    pub(crate) max_rows: u64,
}

/// Creates `database.table` and produces into it from `limits.producers` producers until
/// `limits.duration` passes or `limits.max_rows` rows were sent. Each producer first sends
/// one untimed append (connection set-up and the first flush are not measured).
pub(crate) async fn run(
    harness: &Harness<'_>,
    database: &str,
    table: &str,
    buckets: u32,
    pool: Arc<BatchPool>,
    linger: Duration,
    limits: RunLimits,
) -> anyhow::Result<ProduceRun> {
    let mut client = harness.client().await?;
    client
        .create_table(database, table, &pool.schema, buckets, Vec::new(), false)
        .await
        .with_context(|| format!("cannot create table {database}.{table}"))?;
    drop(client);

    let barrier = Arc::new(Barrier::new(limits.producers + 1));
    let budget = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(limits.producers);
    for p in 0..limits.producers {
        let client = harness.client().await?;
        let mut producer = Producer::new(client, database, table);
        let (pool, barrier, budget) = (pool.clone(), barrier.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            let warmup = producer
                .send(&pool.schema, std::slice::from_ref(pool.get(p).0))
                .await;
            // Wait at the barrier even on failure, so the others are not stranded.
            barrier.wait().await;
            warmup?;
            let start = Instant::now();
            let mut sent = Sent::default();
            let mut n = p + 1;
            while start.elapsed() < limits.duration {
                let rows = pool.rows as u64;
                if budget.fetch_add(rows, Ordering::Relaxed) >= limits.max_rows {
                    break;
                }
                sent.send(&mut producer, &pool, n).await?;
                n += 1;
            }
            anyhow::Ok(sent)
        }));
    }
    barrier.wait().await;
    let before = harness.snapshot();
    let start = Instant::now();
    let mut producers = Vec::with_capacity(tasks.len());
    for task in tasks {
        producers.push(task.await.context("a producer task panicked")??);
    }
    let seconds = start.elapsed().as_secs_f64();
    let fairness = Fairness::of(&producers);
    let mut total = Sent::default();
    for sent in producers {
        total.add(sent);
    }
    let delta = harness.snapshot().since(&before);
    let wal_bytes = delta.purpose(Purpose::WalPut).bytes_out;
    let store = StoreUsage::of(&delta, total.bytes);
    Ok(ProduceRun {
        table: format!("{database}.{table}"),
        batch_rows: pool.rows,
        linger_ms: linger.as_secs_f64() * 1000.0,
        producers: limits.producers,
        appends: total.appends,
        rows: total.rows,
        ipc_bytes: total.bytes,
        seconds: round(seconds, 3),
        mb_per_s: round(total.bytes as f64 / 1e6 / seconds, 2),
        rows_per_s: round(total.rows as f64 / seconds, 0),
        ack_latency: Latency::of(total.latencies),
        fairness,
        wal_bytes_per_ipc_byte: if total.bytes == 0 {
            0.0
        } else {
            round(wal_bytes as f64 / total.bytes as f64, 3)
        },
        store,
    })
}

/// What an open-loop load sent.
pub(crate) struct RateLoad {
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) latencies: Vec<Duration>,
}

/// Sends the pool's batches to `database.table` at `endpoint` for `duration`, at
/// `bytes_per_second` spread over `producers` producers on their own connections: each sends
/// on its own schedule, whatever the acks (an append not yet acknowledged when its next turn
/// comes delays that producer, so an overloaded node is not sent more than it acks).
pub(crate) async fn at_rate(
    endpoint: &str,
    database: &str,
    table: &str,
    pool: Arc<BatchPool>,
    producers: usize,
    bytes_per_second: f64,
    duration: Duration,
) -> anyhow::Result<RateLoad> {
    let append_bytes = pool.bytes_per_row() * pool.rows as f64;
    let appends_per_second = (bytes_per_second / append_bytes).max(f64::MIN_POSITIVE);
    // Each producer sends every `period`; producer i starts i / producers into it.
    let period = Duration::from_secs_f64(producers as f64 / appends_per_second);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(producers);
    for p in 0..producers {
        let client = Client::connect(endpoint).await?;
        let mut producer = Producer::new(client, database, table);
        let pool = pool.clone();
        let first = start + period.mul_f64(p as f64 / producers as f64);
        let mut ticker = tokio::time::interval_at(first, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tasks.push(tokio::spawn(async move {
            let mut sent = Sent::default();
            let mut n = p;
            loop {
                ticker.tick().await;
                if start.elapsed() >= duration {
                    break;
                }
                sent.send(&mut producer, &pool, n).await?;
                n += 1;
            }
            anyhow::Ok(sent)
        }));
    }
    let mut total = Sent::default();
    for task in tasks {
        total.add(task.await.context("a load producer panicked")??);
    }
    Ok(RateLoad {
        bytes: total.bytes,
        seconds: start.elapsed().as_secs_f64(),
        latencies: total.latencies,
    })
}

/// Loads `appends` appends of the pool's batches into a new table (created with `options`)
/// as fast as `producers` producers can, for the fetch and lake phases; returns the IPC bytes
/// sent and the store traffic.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn load(
    harness: &Harness<'_>,
    database: &str,
    table: &str,
    buckets: u32,
    pool: Arc<BatchPool>,
    producers: usize,
    appends: u64,
    options: BTreeMap<String, String>,
) -> anyhow::Result<(u64, StoreUsage)> {
    let mut client: Client = harness.client().await?;
    client
        .create_table_with_options(
            database,
            table,
            &pool.schema,
            buckets,
            Vec::new(),
            options,
            false,
        )
        .await
        .with_context(|| format!("cannot create table {database}.{table}"))?;
    let before = harness.snapshot();
    let bytes = send_appends(
        &harness.endpoint()?,
        database,
        table,
        pool,
        producers,
        appends,
    )
    .await?;
    let store = StoreUsage::of(&harness.snapshot().since(&before), bytes);
    Ok((bytes, store))
}

/// Sends `appends` appends of the pool's batches to `database.table` on the node at
/// `endpoint` as fast as `producers` producers can, each on its own connection; returns the
/// IPC bytes sent.
pub(crate) async fn send_appends(
    endpoint: &str,
    database: &str,
    table: &str,
    pool: Arc<BatchPool>,
    producers: usize,
    appends: u64,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(producers);
    for _ in 0..producers {
        let mut producer = Producer::new(Client::connect(endpoint).await?, database, table);
        let (pool, next) = (pool.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut bytes = 0;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= appends {
                    break;
                }
                let (batch, size) = pool.get(n as usize);
                producer
                    .send(&pool.schema, std::slice::from_ref(batch))
                    .await?;
                bytes += size;
            }
            anyhow::Ok(bytes)
        }));
    }
    let mut bytes = 0;
    for task in tasks {
        bytes += task.await.context("a loading producer panicked")??;
    }
    Ok(bytes)
}
