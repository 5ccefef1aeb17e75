//! End-to-end latency: from sending an append to seeing its rows in a follower (a `Fetch`
//! with `follow` from the latest offset) on another connection. Each append carries its send
//! time on the benchmark's monotonic clock; the follower subtracts it from its receive time,
//! so both ends read one clock. The probe ([`Probe`]) takes endpoints, so the cluster section
//! runs it with its producers on a writer process and its follower on a reader process.

use std::collections::HashMap;
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
use super::data::{probe_batch, probe_schema};
use super::harness::Harness;
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
}

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
