//! End-to-end latency: from sending an append to seeing its rows in a follower (a `Fetch`
//! with `follow` from the latest offset) on another connection. Each append carries its send
//! time on the benchmark's monotonic clock; the follower subtracts it from its receive time,
//! so both ends read one clock. The probe ([`Probe`]) takes endpoints, so the cluster section
//! runs it with its producers on a writer process and its follower on a reader process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use inlet_core::ipc::batches_to_ipc;
use inlet_proto::v1 as pb;
use inlet_store::Purpose;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::Settings;
use super::cost::StoreUsage;
use super::data::{BatchPool, probe_batch, probe_schema};
use super::harness::Harness;
use super::produce::{self, RunLimits};
use super::stats::{Latency, round};
use inlet_client::{Client, Producer, decode_fetched, path, status_error};

/// How long the follower may lag behind the last acknowledged append before the run fails.
const FOLLOWER_GRACE: Duration = Duration::from_secs(30);

/// How long the follower's node may take to learn of the probe's new table.
const FOLLOWER_START_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Serialize)]
pub(crate) struct EndToEnd {
    pub(crate) table: String,
    pub(crate) linger_ms: f64,
    pub(crate) interval_ms: f64,
    pub(crate) producers: usize,
    pub(crate) rows_per_append: usize,
    pub(crate) appends: u64,
    pub(crate) appends_per_s: f64,
    /// Arrow IPC bytes appended.
    pub(crate) ipc_bytes: u64,
    /// Append sent → its rows received by the follower.
    pub(crate) latency: Latency,
    /// Append sent → acknowledged, for the same appends.
    pub(crate) ack_latency: Latency,
    /// Chunk GETs while following: zero when the writer's uploads feed the read cache.
    pub(crate) follower_chunk_gets: u64,
    /// Object-store traffic of the probe (producer and follower), per GB of `ipc_bytes`.
    pub(crate) store: StoreUsage,
    /// The probe again while other producers load the node, when that was asked for.
    pub(crate) under_load: Option<UnderLoad>,
}

/// The probe while producers of another table load the node at fractions of what it
/// sustains: a follower's latency where it matters, not only at a trickle.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UnderLoad {
    /// Rows per append of the load.
    pub(crate) load_batch_rows: usize,
    /// Producers of the saturating closed loop, and of the open-loop load at each level,
    /// each on its own connection.
    pub(crate) load_producers: usize,
    pub(crate) rate_producers: usize,
    /// What a closed loop of `load_producers` producers sustained on this node: the
    /// saturated throughput the levels are fractions of.
    pub(crate) saturated_mb_per_s: f64,
    pub(crate) levels: Vec<LoadLevel>,
}

/// The probe at one load level.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LoadLevel {
    /// Target load as a fraction of the saturated throughput.
    pub(crate) fraction: f64,
    pub(crate) target_mb_per_s: f64,
    /// What the load producers got acknowledged per second.
    pub(crate) achieved_mb_per_s: f64,
    /// The load's own append → ack latency.
    pub(crate) load_ack_latency: Latency,
    /// The probe's append sent → rows received by the follower.
    pub(crate) latency: Latency,
    pub(crate) ack_latency: Latency,
}

/// Rows per append of the load: a Kafka-sized append of the wide rows (~220 KB).
const LOAD_BATCH_ROWS: usize = 1_000;
/// Producers of the load; enough that a closed loop of them saturates the node.
const LOAD_PRODUCERS: usize = 64;
/// Producers of the open-loop load at a fraction of saturation: more than saturated it, so
/// that acks slowed by the load do not hold it under its target.
const RATE_PRODUCERS: usize = 2 * LOAD_PRODUCERS;
/// The load levels, as fractions of the saturated throughput.
const LOAD_FRACTIONS: [f64; 2] = [0.5, 0.9];

/// On a node started with `settings.e2e_linger`: `settings.producers` producers take turns
/// to append `settings.e2e_rows` rows every `settings.e2e_interval` (a producer whose
/// previous append is not yet acknowledged sends late) for `settings.e2e_duration`, and
/// one follower tails the table.
pub(crate) async fn run(
    harness: &Harness<'_>,
    settings: &Settings,
    database: &str,
    table: &str,
) -> anyhow::Result<EndToEnd> {
    let endpoint = harness.endpoint()?;
    let ends = Ends {
        producer: &endpoint,
        follower: &endpoint,
    };
    let probe = Probe::start(ends, settings, database, table).await?;
    let before = harness.snapshot();
    let probed = probe.run().await?;
    let store = StoreUsage::of(&harness.snapshot().since(&before), probed.ipc_bytes);
    let under_load = if settings.e2e_under_load {
        Some(run_under_load(harness, settings, database, table).await?)
    } else {
        None
    };
    Ok(EndToEnd {
        table: format!("{database}.{table}"),
        linger_ms: settings.e2e_linger.as_secs_f64() * 1000.0,
        interval_ms: settings.e2e_interval.as_secs_f64() * 1000.0,
        producers: settings.producers,
        rows_per_append: settings.e2e_rows,
        appends: probed.appends,
        appends_per_s: probed.appends_per_s,
        ipc_bytes: probed.ipc_bytes,
        latency: probed.latency,
        ack_latency: probed.ack_latency,
        follower_chunk_gets: store.requests(Purpose::ChunkGet),
        store,
        under_load,
    })
}

/// Measures what a closed loop of [`LOAD_PRODUCERS`] sustains, then runs the probe (on a
/// table of its own per level) beside an open-loop load at each of [`LOAD_FRACTIONS`] of it.
async fn run_under_load(
    harness: &Harness<'_>,
    settings: &Settings,
    database: &str,
    table: &str,
) -> anyhow::Result<UnderLoad> {
    let pool = Arc::new(BatchPool::new(LOAD_BATCH_ROWS, settings.seed)?);
    eprintln!("bench: end to end: saturating with {LOAD_PRODUCERS} producers");
    // Capped like the produce runs: on memory:// every byte written stays in memory.
    let limits = RunLimits {
        producers: LOAD_PRODUCERS,
        duration: settings.e2e_duration,
        max_rows: settings.max_rows,
    };
    let saturated = produce::run(
        harness,
        database,
        &format!("{table}_saturate"),
        settings.buckets,
        pool.clone(),
        settings.e2e_linger,
        limits,
    )
    .await
    .context("the saturating run failed")?;
    let endpoint = harness.endpoint()?;
    let mut levels = Vec::new();
    for fraction in LOAD_FRACTIONS {
        let percent = (fraction * 100.0).round() as u32;
        let target = saturated.mb_per_s * fraction;
        eprintln!("bench: end to end: probe under a load of {target:.1} MB/s ({percent}%)");
        let load_table = format!("{table}_load{percent}");
        let mut client = Client::connect(&endpoint).await?;
        client
            .create_table(
                database,
                &load_table,
                &pool.schema,
                settings.buckets,
                Vec::new(),
                false,
            )
            .await
            .with_context(|| format!("cannot create table {database}.{load_table}"))?;
        let ends = Ends {
            producer: &endpoint,
            follower: &endpoint,
        };
        let probe =
            Probe::start(ends, settings, database, &format!("{table}_probe{percent}")).await?;
        let load = produce::at_rate(
            &endpoint,
            database,
            &load_table,
            pool.clone(),
            RATE_PRODUCERS,
            target * 1e6,
            settings.e2e_duration,
        );
        let (probed, load) = tokio::join!(probe.run(), load);
        let (probed, load) = (probed?, load?);
        levels.push(LoadLevel {
            fraction,
            target_mb_per_s: round(target, 2),
            achieved_mb_per_s: round(load.bytes as f64 / 1e6 / load.seconds, 2),
            load_ack_latency: Latency::of(load.latencies),
            latency: probed.latency,
            ack_latency: probed.ack_latency,
        });
    }
    Ok(UnderLoad {
        load_batch_rows: LOAD_BATCH_ROWS,
        load_producers: LOAD_PRODUCERS,
        rate_producers: RATE_PRODUCERS,
        saturated_mb_per_s: saturated.mb_per_s,
        levels,
    })
}

/// Where the probe's producers append and where its follower reads: one node, or a writer
/// and a reader of a cluster.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ends<'a> {
    pub(crate) producer: &'a str,
    pub(crate) follower: &'a str,
}

/// What one probe measured.
#[derive(Clone, Debug)]
pub(crate) struct Probed {
    pub(crate) appends: u64,
    pub(crate) appends_per_s: f64,
    pub(crate) ipc_bytes: u64,
    /// Append sent → its rows received by the follower.
    pub(crate) latency: Latency,
    /// Append sent → acknowledged.
    pub(crate) ack_latency: Latency,
}

type Follower = tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>;

/// A probe with its table created and its follower attached, ready to append.
pub(crate) struct Probe {
    settings: Settings,
    producer: String,
    database: String,
    table: String,
    base: Instant,
    follower: Follower,
    expected: watch::Sender<u64>,
}

impl Probe {
    /// Creates `database.table` through `ends.producer` and starts the follower (from the
    /// latest offset) on `ends.follower`, retrying for a while: in a cluster that node may
    /// not know the new table yet (it learns of it from the owner's catalog notice).
    pub(crate) async fn start(
        ends: Ends<'_>,
        settings: &Settings,
        database: &str,
        table: &str,
    ) -> anyhow::Result<Self> {
        let mut client = Client::connect(ends.producer).await?;
        client
            .create_table(
                database,
                table,
                &probe_schema(),
                settings.buckets,
                Vec::new(),
                false,
            )
            .await
            .with_context(|| format!("cannot create table {database}.{table}"))?;

        let base = Instant::now();
        let mut follower_client = Client::connect(ends.follower).await?;
        let request = pb::FetchRequest {
            path: Some(path(database, table)),
            start: Some(pb::StartPosition {
                position: Some(pb::start_position::Position::Latest(true)),
            }),
            follow: true,
            ..Default::default()
        };
        let mut stream = loop {
            match follower_client.fetch(request.clone()).await {
                Ok(stream) => break stream,
                Err(_) if base.elapsed() < FOLLOWER_START_GRACE => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e).context("cannot start the follower"),
            }
        };
        let (expected_tx, mut expected) = watch::channel(u64::MAX);
        let follower = tokio::spawn(async move {
            let mut seen: HashMap<i64, Duration> = HashMap::new();
            while (seen.len() as u64) < *expected.borrow_and_update() {
                tokio::select! {
                    message = stream.message() => {
                        let Some(response) = message.map_err(status_error)? else {
                            bail!("the follow stream ended early");
                        };
                        let received = base.elapsed();
                        for batch in decode_fetched(&response)? {
                            let seqs = batch.column(0).as_primitive::<Int64Type>();
                            let sent = batch.column(1).as_primitive::<Int64Type>();
                            for (seq, sent) in seqs.values().iter().zip(sent.values()) {
                                let sent =
                                    Duration::from_nanos(u64::try_from(*sent).unwrap_or(0));
                                seen.entry(*seq).or_insert(received.saturating_sub(sent));
                            }
                        }
                    }
                    changed = expected.changed() => {
                        if changed.is_err() {
                            bail!("the producer stopped without saying how many appends it made");
                        }
                    }
                }
            }
            anyhow::Ok(seen.into_values().collect::<Vec<_>>())
        });
        Ok(Self {
            settings: settings.clone(),
            producer: ends.producer.to_owned(),
            database: database.to_owned(),
            table: table.to_owned(),
            base,
            follower,
            expected: expected_tx,
        })
    }

    /// Appends for `settings.e2e_duration` and waits until the follower saw every append.
    pub(crate) async fn run(self) -> anyhow::Result<Probed> {
        let Self {
            settings,
            producer: endpoint,
            database,
            table,
            base,
            follower,
            expected,
        } = self;
        let (interval, duration) = (settings.e2e_interval, settings.e2e_duration);
        let rows_per_append = settings.e2e_rows;
        let schema = probe_schema();
        // Producer i appends at start + i x interval, then every producers x interval, so the
        // appends leave one per interval while each producer waits for its previous ack.
        let producers = settings.producers;
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(producers);
        for i in 0..producers {
            let client = Client::connect(&endpoint).await?;
            let mut producer = Producer::new(client, &database, &table);
            let schema = schema.clone();
            let first = start + interval * i as u32;
            let mut ticker = tokio::time::interval_at(first, interval * producers as u32);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tasks.push(tokio::spawn(async move {
                let (mut acks, mut bytes) = (Vec::new(), 0u64);
                let mut seq = i as i64;
                while start.elapsed() < duration {
                    ticker.tick().await;
                    let sent = base.elapsed();
                    let nanos = i64::try_from(sent.as_nanos())
                        .context("the benchmark ran for centuries")?;
                    let batch = probe_batch(seq, nanos, rows_per_append);
                    let batches = std::slice::from_ref(&batch);
                    producer.send(&schema, batches).await?;
                    acks.push(base.elapsed().saturating_sub(sent));
                    bytes += batches_to_ipc(&schema, batches)?.len() as u64;
                    seq += producers as i64;
                }
                anyhow::Ok((acks, bytes))
            }));
        }
        let (mut acks, mut bytes) = (Vec::new(), 0u64);
        for task in tasks {
            let (task_acks, task_bytes) = task.await.context("a probe producer panicked")??;
            acks.extend(task_acks);
            bytes += task_bytes;
        }
        let seconds = start.elapsed().as_secs_f64();
        let appends = acks.len() as u64;
        expected.send_replace(appends);
        let latencies = tokio::time::timeout(FOLLOWER_GRACE, follower)
            .await
            .with_context(|| {
                format!("the follower did not see all {appends} appends within {FOLLOWER_GRACE:?}")
            })?
            .context("the follower task panicked")??;
        Ok(Probed {
            appends,
            appends_per_s: round(appends as f64 / seconds, 1),
            ipc_bytes: bytes,
            latency: Latency::of(latencies),
            ack_latency: Latency::of(acks),
        })
    }
}
