//! `inlet bench`: starts a real node in this process on a chosen store (optionally behind a
//! latency model of a real object store), drives it through the real gRPC client and
//! reports what it measured, as JSON and as tables:
//!
//! 1. produce throughput and ack latency for a matrix of batch sizes and lingers, with
//!    concurrent producers (`produce.rs`);
//! 2. end-to-end latency from an append to its rows in a follower (`follow.rs`);
//! 3. fetch throughput cold and hot, full and projected to 2 of 20 columns (`fetch.rs`);
//! 4. lake tiering: WAL to Parquet throughput of a compactor, sizes and requests (`lake.rs`);
//! 5. primary-key tables: upserts against appends of the same rows, point and batched
//!    lookups, the changelog read (`pk.rs`);
//! 6. throughout, object-store requests and bytes by purpose per GB, priced at S3 list
//!    prices (`cost.rs`), and peak RSS (`memory.rs`);
//! 7. only when asked for (`--sections cluster`): the roles in separate `inlet serve`
//!    processes on a local directory: fetch throughput through 1 and 2 reader processes, the
//!    index owner's requests and CPU per second while 0, 1 and 2 readers read, and
//!    append → visible latency from the writer process to a follower on a reader process
//!    next to the in-process figure (`cluster.rs`).
//!
//! Benchmarks report figures; they never pass or fail on a speed. `--smoke` is the short
//! run CI uses to check that a report is produced; `--sections` runs only some sections.
//!
//! # Where it sits
//! A library of its own, so the server crate stays the server. The `inlet` binary (in the
//! server crate, `inlet`) offers it as `inlet bench`: its CLI embeds [`BenchArgs`] and calls
//! [`run`]. That makes the server depend on this crate, so this crate cannot depend on the
//! server's node, configuration or store opener; it asks for them through [`Host`], which
//! the server implements (`inlet::bench::ServerHost`). The gRPC client it drives the node
//! with is `inlet-client`, the same one the CLI uses:
//!
//! ```text
//! inlet (server, the `inlet` binary) ──> inlet-bench ──> inlet-client, inlet-store,
//!        └──── implements inlet_bench::Host            inlet-index, inlet-compactor, ...
//! ```
//! The crate's own smoke test (`tests/smoke.rs`) hosts it on the server through a
//! dev-dependency, a cycle cargo allows for tests only.

mod cluster;
mod cost;
mod data;
mod duckdb;
mod fetch;
mod follow;
mod harness;
mod host;
mod lake;
mod latency;
mod memory;
mod pk;
mod produce;
mod report;
mod retention;
mod stats;
mod upkeep;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use inlet_core::limits::MAX_APPEND_BYTES;
use tokio::time::Instant;

use cost::{PRICES, StoreUsage};
use data::{BatchPool, RowShape, WIDE_COLUMNS};
use harness::Harness;
pub use host::{CacheDefaults, Host, NodeSettings, NodeUnderTest};
use latency::LatencyModel;
pub use latency::LatencyRange;
use memory::MemoryProbe;
use report::{REPORT_VERSION, Report, SettingsReport};

/// The database every benchmark table lives in; dropped (with its tables) at the start.
const DATABASE: &str = "bench";

/// What `--s3-model` stands for: a rough model of S3 Standard seen from the same region
/// (PUT 20-100 ms, GET 10-50 ms to the first byte, about 100 MB/s per connection). A
/// model, not a measurement: run on a real bucket (`--store s3://...`) for real figures.
const S3_PUT_LATENCY: LatencyRange = LatencyRange {
    min: Duration::from_millis(20),
    max: Duration::from_millis(100),
};
const S3_GET_LATENCY: LatencyRange = LatencyRange {
    min: Duration::from_millis(10),
    max: Duration::from_millis(50),
};
const S3_REQUEST_MB_PER_S: f64 = 100.0;

/// A section of the benchmark, as `--sections` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// The produce matrix.
    Produce,
    /// The end-to-end latency probe.
    #[value(name = "e2e")]
    EndToEnd,
    /// Fetch cold and hot.
    Fetch,
    /// Lake tiering.
    Lake,
    /// Primary-key tables: upserts against appends, lookups, changelog reads.
    Pk,
    /// Separate `inlet serve` processes: readers, the owner's load, cross-process latency.
    Cluster,
    /// WAL retention over time: ingested, indexed and stored bytes of a table with
    /// `retention.bytes`.
    Retention,
    /// Lake upkeep: a lake table's metadata and DuckDB's scan after many small rounds, with
    /// and without manifest merging and snapshot retention.
    Upkeep,
}

impl Section {
    /// Every section, in the order they run.
    const ALL: [Section; 8] = [
        Section::Produce,
        Section::EndToEnd,
        Section::Fetch,
        Section::Lake,
        Section::Pk,
        Section::Retention,
        Section::Upkeep,
        Section::Cluster,
    ];

    /// The sections run without `--sections`: all but `cluster`, which adds about 40 s and
    /// starts processes of the running executable (the `inlet` binary under `inlet bench`),
    /// `retention`, which waits out the WAL collector's upload grace (about a minute), and
    /// `upkeep`, 2,000 small tiering rounds (about a minute and a half).
    const DEFAULT: [Section; 5] = [
        Section::Produce,
        Section::EndToEnd,
        Section::Fetch,
        Section::Lake,
        Section::Pk,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Produce => "produce",
            Section::EndToEnd => "e2e",
            Section::Fetch => "fetch",
            Section::Lake => "lake",
            Section::Pk => "pk",
            Section::Cluster => "cluster",
            Section::Retention => "retention",
            Section::Upkeep => "upkeep",
        }
    }
}

/// `inlet bench` flags. Every tunable left out takes its default, or its smoke default with
/// `--smoke`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Store: memory://, a directory, file:///path or s3://bucket/prefix (the `AWS_*`
    /// variables as for `serve`). Benchmark tables go to database `bench`, dropped first.
    #[arg(long, default_value = "memory://")]
    pub store: String,
    /// A short run (well under a minute in a debug build): 2 producers, batches of 100 and
    /// 1000 rows at linger 5ms, 1 s per run, 20,000 fetched rows. Explicit flags still win.
    #[arg(long)]
    pub smoke: bool,
    /// Also write the JSON report to this file; `-` prints it on stdout (the tables then go
    /// to stderr).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Concurrent producers, each on its own connection [default: 4; smoke: 2].
    #[arg(long)]
    pub producers: Option<usize>,
    /// Producer counts of the produce runs, every batch size under each linger with each
    /// [default: 4,64; smoke: --producers].
    #[arg(long, value_delimiter = ',')]
    pub produce_producers: Vec<usize>,
    /// Rows of the produce runs as one binary column of this many random bytes (as s2's and
    /// Kafka's benchmarks send) instead of the 20-column wide rows [default: wide rows].
    #[arg(long)]
    pub produce_row_bytes: Option<usize>,
    /// Buckets of each benchmark table [default: 4].
    #[arg(long)]
    pub buckets: Option<u32>,
    /// Rows per append, one produce run each [default: 100,1000,10000; smoke: 100,1000].
    #[arg(long, value_delimiter = ',')]
    pub batch_rows: Vec<usize>,
    /// Writer lingers, one node each, every batch size under each
    /// [default: 5ms,50ms,200ms; smoke: 5ms].
    #[arg(long, value_delimiter = ',', value_parser = parse_duration)]
    pub linger: Vec<Duration>,
    /// How long each produce run lasts [default: 5s; smoke: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Most rows each produce run sends, which bounds memory on memory://
    /// [default: 1000000; smoke: 20000].
    #[arg(long)]
    pub rows: Option<u64>,
    /// How long the end-to-end probe runs [default: 5s; smoke: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub e2e_duration: Option<Duration>,
    /// How often the end-to-end probe appends, its producers taking turns [default: 10ms].
    #[arg(long, value_parser = parse_duration)]
    pub e2e_interval: Option<Duration>,
    /// Writer linger during the end-to-end probe [default: 5ms].
    #[arg(long, value_parser = parse_duration)]
    pub e2e_linger: Option<Duration>,
    /// Also run the end-to-end probe beside a load of 1,000-row appends at 50% and 90% of
    /// what 64 producers sustain on the node (measured first) [default: true; smoke: false].
    #[arg(long)]
    pub e2e_under_load: Option<bool>,
    /// Rows per append of the end-to-end probe [default: 10].
    #[arg(long)]
    pub e2e_rows: Option<usize>,
    /// Rows of the fetch table (rounded up to whole appends); it should fit the read cache
    /// for a fully hot read [default: 500000; smoke: 20000].
    #[arg(long)]
    pub fetch_rows: Option<u64>,
    /// Rows per append when loading the fetch table, so rows per chunk [default: 10000;
    /// smoke: 2000].
    #[arg(long)]
    pub fetch_batch_rows: Option<usize>,
    /// Writer linger while loading the fetch table [default: 50ms].
    #[arg(long, value_parser = parse_duration)]
    pub fetch_linger: Option<Duration>,
    /// MB (10^6 bytes) of Arrow IPC loaded into the lake table and tiered, in appends of
    /// --fetch-batch-rows rows at --fetch-linger [default: 256; smoke: 2].
    #[arg(long)]
    pub lake_mb: Option<f64>,
    /// MB (10^6 bytes) of Arrow IPC the cluster section writes through its writer process
    /// and reads back through its reader processes, in appends of --fetch-batch-rows rows
    /// [default: 50; smoke: 2].
    #[arg(long)]
    pub cluster_mb: Option<f64>,
    /// How long each interval of the cluster section lasts (0, 1 and 2 readers reading
    /// while the owner's load is sampled) [default: 5s; smoke: 1s].
    #[arg(long, value_parser = parse_duration)]
    pub cluster_interval: Option<Duration>,
    /// Sections to run, in their fixed order [default: produce,e2e,fetch,lake; `cluster`
    /// (separate processes on a local temp directory, about 40 s) only when named].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub sections: Vec<Section>,
    /// Memory tier of the node's read cache, in MiB [default: the server default, 256].
    #[arg(long)]
    pub cache_mb: Option<usize>,
    /// Latency model: PUT latency, a range like 20ms..100ms or a fixed 50ms [default: none].
    #[arg(long, value_parser = LatencyRange::parse)]
    pub put_latency: Option<LatencyRange>,
    /// Latency model: GET latency to the first byte, e.g. 10ms..50ms [default: none].
    #[arg(long, value_parser = LatencyRange::parse)]
    pub get_latency: Option<LatencyRange>,
    /// Latency model: transfer rate of one request in MB/s, adding size / rate to each PUT
    /// and GET [default: none].
    #[arg(long)]
    pub request_mbps: Option<f64>,
    /// Shorthand for an S3-like model: --put-latency 20ms..100ms --get-latency 10ms..50ms
    /// --request-mbps 100 (each can still be set on its own).
    #[arg(long)]
    pub s3_model: bool,
    /// Seed of the data and of the latency draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `normal`, or `small` in a smoke run.
fn pick<T>(smoke: bool, normal: T, small: T) -> T {
    if smoke { small } else { normal }
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(value).map_err(|e| e.to_string())
}

/// The flags with every default applied.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) store: String,
    pub(crate) smoke: bool,
    pub(crate) producers: usize,
    pub(crate) produce_producers: Vec<usize>,
    pub(crate) produce_rows: RowShape,
    pub(crate) buckets: u32,
    pub(crate) batch_rows: Vec<usize>,
    pub(crate) lingers: Vec<Duration>,
    pub(crate) duration: Duration,
    pub(crate) max_rows: u64,
    pub(crate) e2e_duration: Duration,
    pub(crate) e2e_interval: Duration,
    pub(crate) e2e_linger: Duration,
    pub(crate) e2e_rows: usize,
    pub(crate) e2e_under_load: bool,
    pub(crate) fetch_rows: u64,
    pub(crate) fetch_batch_rows: usize,
    pub(crate) fetch_linger: Duration,
    pub(crate) lake_bytes: u64,
    pub(crate) cluster_bytes: u64,
    pub(crate) cluster_interval: Duration,
    pub(crate) sections: Vec<Section>,
    pub(crate) cache_memory_bytes: usize,
    pub(crate) cache_page_size: usize,
    pub(crate) latency: LatencyModel,
    pub(crate) seed: u64,
}

impl Settings {
    fn of(args: &BenchArgs, cache: CacheDefaults) -> anyhow::Result<Self> {
        let smoke = args.smoke;
        let ms = Duration::from_millis;
        let batch_rows = if args.batch_rows.is_empty() {
            pick(smoke, vec![100, 1_000, 10_000], vec![100, 1_000])
        } else {
            args.batch_rows.clone()
        };
        let lingers = if args.linger.is_empty() {
            pick(smoke, vec![ms(5), ms(50), ms(200)], vec![ms(5)])
        } else {
            args.linger.clone()
        };
        let latency = LatencyModel {
            put: args.put_latency.or(args.s3_model.then_some(S3_PUT_LATENCY)),
            get: args.get_latency.or(args.s3_model.then_some(S3_GET_LATENCY)),
            bytes_per_second: args
                .request_mbps
                .or(args.s3_model.then_some(S3_REQUEST_MB_PER_S))
                .map(|mbps| mbps * 1e6),
        };
        let producers = args.producers.unwrap_or(pick(smoke, 4, 2));
        let produce_producers = if !args.produce_producers.is_empty() {
            args.produce_producers.clone()
        } else if smoke {
            vec![producers]
        } else {
            vec![4, 64]
        };
        let settings = Self {
            store: args.store.clone(),
            smoke,
            producers,
            produce_producers,
            produce_rows: args
                .produce_row_bytes
                .map_or(RowShape::Wide, RowShape::Bytes),
            buckets: args.buckets.unwrap_or(4),
            batch_rows,
            lingers,
            duration: args.duration.unwrap_or(pick(smoke, ms(5_000), ms(1_000))),
            max_rows: args.rows.unwrap_or(pick(smoke, 1_000_000, 20_000)),
            e2e_duration: args
                .e2e_duration
                .unwrap_or(pick(smoke, ms(5_000), ms(1_000))),
            e2e_interval: args.e2e_interval.unwrap_or(ms(10)),
            e2e_linger: args.e2e_linger.unwrap_or(ms(5)),
            e2e_rows: args.e2e_rows.unwrap_or(10),
            e2e_under_load: args.e2e_under_load.unwrap_or(!smoke),
            fetch_rows: args.fetch_rows.unwrap_or(pick(smoke, 500_000, 20_000)),
            fetch_batch_rows: args.fetch_batch_rows.unwrap_or(pick(smoke, 10_000, 2_000)),
            fetch_linger: args.fetch_linger.unwrap_or(ms(50)),
            lake_bytes: (args.lake_mb.unwrap_or(pick(smoke, 256.0, 2.0)) * 1e6) as u64,
            cluster_bytes: (args.cluster_mb.unwrap_or(pick(smoke, 50.0, 2.0)) * 1e6) as u64,
            cluster_interval: args
                .cluster_interval
                .unwrap_or(pick(smoke, ms(5_000), ms(1_000))),
            sections: if args.sections.is_empty() {
                Section::DEFAULT.to_vec()
            } else {
                Section::ALL
                    .into_iter()
                    .filter(|s| args.sections.contains(s))
                    .collect()
            },
            cache_memory_bytes: args
                .cache_mb
                .map_or(cache.memory_bytes, |mb| mb * 1024 * 1024),
            cache_page_size: cache.page_size,
            latency,
            seed: args.seed,
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.producers == 0 || self.produce_producers.contains(&0) {
            bail!("--producers and --produce-producers must be at least 1");
        }
        if self.buckets == 0 {
            bail!("--buckets must be at least 1");
        }
        if self.e2e_rows == 0 || self.fetch_batch_rows == 0 || self.fetch_rows == 0 {
            bail!("--e2e-rows, --fetch-rows and --fetch-batch-rows must be at least 1");
        }
        if self.lake_bytes == 0 {
            bail!("--lake-mb must be above zero");
        }
        if self.cluster_bytes == 0 {
            bail!("--cluster-mb must be above zero");
        }
        if self.cluster_interval.is_zero() {
            bail!("--cluster-interval must be above zero");
        }
        if self.e2e_interval.is_zero() {
            bail!("--e2e-interval must be above zero");
        }
        if let Some(rate) = self.latency.bytes_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            bail!("--request-mbps must be a positive number");
        }
        // A wide row is about 220 bytes of Arrow IPC; keep one append well inside the limit.
        let most_rows = MAX_APPEND_BYTES / 512;
        for &rows in self.batch_rows.iter().chain([&self.fetch_batch_rows]) {
            if rows == 0 || rows > most_rows {
                bail!("rows per append must be between 1 and {most_rows}, got {rows}");
            }
        }
        if let RowShape::Bytes(len) = self.produce_rows {
            if len == 0 {
                bail!("--produce-row-bytes must be at least 1");
            }
            // A whole append must stay well inside the limit.
            if let Some(&rows) = self
                .batch_rows
                .iter()
                .find(|&&rows| rows.saturating_mul(len) > MAX_APPEND_BYTES / 2)
            {
                bail!(
                    "appends of {rows} rows of {len} bytes exceed half the \
                     {MAX_APPEND_BYTES}-byte append limit"
                );
            }
        }
        Ok(())
    }

    fn runs(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }

    fn report(&self, row_ipc_bytes: f64) -> SettingsReport {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        SettingsReport {
            store: self.store.clone(),
            smoke: self.smoke,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            producers: self.producers,
            produce_producers: self.produce_producers.clone(),
            produce_row_bytes: match self.produce_rows {
                RowShape::Wide => None,
                RowShape::Bytes(len) => Some(len),
            },
            buckets: self.buckets,
            columns: WIDE_COLUMNS,
            row_ipc_bytes: stats::round(row_ipc_bytes, 1),
            batch_rows: self.batch_rows.clone(),
            linger_ms: self.lingers.iter().map(|d| ms(*d)).collect(),
            run_seconds: self.duration.as_secs_f64(),
            run_max_rows: self.max_rows,
            e2e_linger_ms: ms(self.e2e_linger),
            e2e_seconds: self.e2e_duration.as_secs_f64(),
            e2e_interval_ms: ms(self.e2e_interval),
            e2e_rows_per_append: self.e2e_rows,
            e2e_under_load: self.e2e_under_load,
            fetch_rows: self.fetch_rows,
            fetch_batch_rows: self.fetch_batch_rows,
            fetch_linger_ms: ms(self.fetch_linger),
            lake_bytes: self.lake_bytes,
            cluster_bytes: self.cluster_bytes,
            cluster_interval_seconds: self.cluster_interval.as_secs_f64(),
            sections: self.sections.iter().map(|s| s.label()).collect(),
            cache_memory_bytes: self.cache_memory_bytes,
            cache_page_size: self.cache_page_size,
            latency_model: self.latency.report(),
            latency_model_text: self.latency.to_string(),
            seed: self.seed,
        }
    }
}

/// What a run measured: its report as the tables `inlet bench` prints and as JSON.
#[derive(Clone, Debug)]
pub struct Output {
    pub tables: String,
    pub json: String,
}

/// Runs the benchmark on a node of `host` and prints its report: the tables on stdout and
/// the JSON to the `--json` file, or with `--json -` the JSON on stdout and the tables on
/// stderr. Progress goes to stderr.
pub async fn run(args: &BenchArgs, host: &dyn Host) -> anyhow::Result<()> {
    let Output { tables, json } = measure(args, host).await?;
    match &args.json {
        Some(path) if path.as_os_str() == "-" => {
            eprint!("{tables}");
            println!("{json}");
        }
        Some(path) => {
            tokio::fs::write(path, format!("{json}\n"))
                .await
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            print!("{tables}");
        }
        None => print!("{tables}"),
    }
    Ok(())
}

/// Runs the benchmark on a node of `host` and returns its report, printing only progress
/// (on stderr); `args.json` is not looked at.
pub async fn measure(args: &BenchArgs, host: &dyn Host) -> anyhow::Result<Output> {
    let settings = Settings::of(args, host.default_cache())?;
    let report = run_sections(&settings, host).await?;
    Ok(Output {
        tables: report::render(&report),
        json: serde_json::to_string_pretty(&report).context("cannot encode the report")?,
    })
}

async fn run_sections(settings: &Settings, host: &dyn Host) -> anyhow::Result<Report> {
    let started = Instant::now();
    let note = if settings.store.starts_with("memory:") {
        "includes the memory:// store, which holds every object written in this process"
    } else {
        "the node and the benchmark's clients in one process"
    };
    let mut memory = MemoryProbe::start(note).await;
    let store = host.open_store(&settings.store)?;
    let store = settings.latency.wrap(store, settings.seed);
    // Each node: loopback, no HTTP and no compactor (see `Host::start_node`).
    let node = NodeSettings {
        store: settings.store.clone(),
        linger: settings.e2e_linger,
        cache_memory_bytes: settings.cache_memory_bytes,
    };
    let mut harness = Harness::new(host, store, node);

    // A clean database: a directory or bucket may hold an earlier run's tables.
    harness.restart(settings.e2e_linger).await?;
    let mut client = harness.client().await?;
    client
        .raw()
        .drop_database(inlet_proto::v1::DropDatabaseRequest {
            name: DATABASE.to_owned(),
            if_exists: true,
            cascade: true,
            purge: true,
        })
        .await
        .map_err(inlet_client::status_error)
        .context("cannot drop the benchmark database of an earlier run")?;
    client.create_database(DATABASE, false).await?;
    drop(client);

    let mut produce = Vec::new();
    let mut ingest = None;
    if settings.runs(Section::Produce) {
        let produce_start = harness.snapshot();
        let mut pools = Vec::new();
        for &rows in &settings.batch_rows {
            pools.push(Arc::new(BatchPool::with_shape(
                rows,
                settings.produce_rows,
                settings.seed,
            )?));
        }
        for &linger in &settings.lingers {
            harness.restart(linger).await?;
            for &producers in &settings.produce_producers {
                for pool in &pools {
                    let table = format!(
                        "produce_l{}_b{}_p{producers}",
                        linger.as_millis(),
                        pool.rows
                    );
                    eprintln!(
                        "bench: produce: linger {linger:?}, {} rows per append, {producers} \
                         producers",
                        pool.rows
                    );
                    let limits = produce::RunLimits {
                        producers,
                        duration: settings.duration,
                        max_rows: settings.max_rows,
                    };
                    let run = produce::run(
                        &harness,
                        DATABASE,
                        &table,
                        settings.buckets,
                        pool.clone(),
                        linger,
                        limits,
                    )
                    .await
                    .with_context(|| format!("produce run {table} failed"))?;
                    produce.push(run);
                }
            }
        }
        let ingested = produce.iter().map(|run| run.ipc_bytes).sum();
        ingest = Some(StoreUsage::of(
            &harness.snapshot().since(&produce_start),
            ingested,
        ));
        memory.phase_done("produce").await;
    }

    let mut end_to_end = None;
    if settings.runs(Section::EndToEnd) {
        eprintln!("bench: end to end: linger {:?}", settings.e2e_linger);
        harness.restart(settings.e2e_linger).await?;
        end_to_end = Some(
            follow::run(&harness, settings, DATABASE, "e2e")
                .await
                .context("end-to-end run failed")?,
        );
        memory.phase_done("end_to_end").await;
    }

    let mut fetch = None;
    if settings.runs(Section::Fetch) {
        fetch = Some(
            fetch::run(&mut harness, settings, DATABASE)
                .await
                .context("fetch runs failed")?,
        );
        memory.phase_done("fetch").await;
    }

    let mut lake = None;
    if settings.runs(Section::Lake) {
        lake = Some(
            lake::run(&mut harness, settings, DATABASE)
                .await
                .context("lake tiering failed")?,
        );
        memory.phase_done("lake").await;
    }
    let mut pk = None;
    if settings.runs(Section::Pk) {
        pk = Some(
            pk::run(&mut harness, settings, DATABASE)
                .await
                .context("the primary-key section failed")?,
        );
        memory.phase_done("pk").await;
    }
    let mut retention = None;
    if settings.runs(Section::Retention) {
        retention = Some(
            retention::run(&mut harness, settings, DATABASE)
                .await
                .context("the retention section failed")?,
        );
        memory.phase_done("retention").await;
    }
    let mut upkeep = None;
    if settings.runs(Section::Upkeep) {
        upkeep = Some(
            upkeep::run(&mut harness, settings, DATABASE)
                .await
                .context("the upkeep section failed")?,
        );
        memory.phase_done("upkeep").await;
    }
    // The cluster section runs processes of its own; the in-process node would only idle.
    harness.stop().await?;

    let mut cluster = None;
    if settings.runs(Section::Cluster) {
        cluster = Some(
            cluster::run(host, settings, DATABASE)
                .await
                .context("the cluster section failed")?,
        );
        memory.phase_done("cluster").await;
    }

    let row_ipc_bytes = BatchPool::new(1_000, settings.seed)?.bytes_per_row();
    Ok(Report {
        report: "inlet-bench",
        version: REPORT_VERSION,
        settings: settings.report(row_ipc_bytes),
        prices: PRICES,
        produce,
        ingest,
        end_to_end,
        fetch,
        lake,
        pk,
        retention,
        upkeep,
        cluster,
        memory: memory.finish().await,
        seconds: stats::round(started.elapsed().as_secs_f64(), 2),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn settings(args: &[&str]) -> anyhow::Result<Settings> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))?;
        let cache = CacheDefaults {
            memory_bytes: 256 << 20,
            page_size: 1 << 20,
        };
        Settings::of(&cli.bench, cache)
    }

    #[test]
    fn smoke_defaults_yield_to_explicit_flags() {
        let smoke = settings(&["--smoke", "--producers", "3"]).expect("valid flags");
        assert_eq!(smoke.producers, 3);
        assert_eq!(smoke.produce_producers, vec![3]);
        assert!(!smoke.e2e_under_load);
        assert_eq!(smoke.batch_rows, vec![100, 1_000]);
        assert_eq!(smoke.lingers, vec![Duration::from_millis(5)]);
        assert!(smoke.latency.is_off());

        let full = settings(&[
            "--linger",
            "1ms,250ms",
            "--s3-model",
            "--get-latency",
            "5ms",
        ])
        .expect("valid flags");
        assert_eq!(full.lingers.len(), 2);
        assert_eq!(full.produce_producers, vec![4, 64]);
        assert!(full.e2e_under_load);
        assert_eq!(full.batch_rows, vec![100, 1_000, 10_000]);
        assert_eq!(full.latency.put, Some(S3_PUT_LATENCY));
        assert_eq!(
            full.latency.get.map(|g| g.max),
            Some(Duration::from_millis(5))
        );
        assert_eq!(full.latency.bytes_per_second, Some(100e6));

        assert_eq!(full.sections, Section::DEFAULT);
        assert_eq!(full.cluster_bytes, 50_000_000);
        assert_eq!(full.lake_bytes, 256_000_000);
        assert_eq!(smoke.lake_bytes, 2_000_000);

        // Sections run in their fixed order, whatever order they are named in.
        let some = settings(&["--sections", "lake,produce", "--lake-mb", "0.5"]).expect("valid");
        assert_eq!(some.sections, [Section::Produce, Section::Lake]);
        assert_eq!(some.lake_bytes, 500_000);
        let cluster =
            settings(&["--sections", "cluster", "--cluster-interval", "2s"]).expect("valid");
        assert_eq!(cluster.sections, [Section::Cluster]);
        assert_eq!(cluster.cluster_interval, Duration::from_secs(2));
        assert!(settings(&["--cluster-mb", "0"]).is_err());

        assert!(settings(&["--sections", "tiering"]).is_err());
        assert!(settings(&["--lake-mb", "0"]).is_err());
        assert!(settings(&["--producers", "0"]).is_err());
        assert!(settings(&["--produce-producers", "4,0"]).is_err());
        let bytes = settings(&["--produce-row-bytes", "1024"]).expect("valid");
        assert_eq!(bytes.produce_rows, RowShape::Bytes(1024));
        assert_eq!(full.produce_rows, RowShape::Wide);
        assert!(settings(&["--produce-row-bytes", "0"]).is_err());
        assert!(settings(&["--produce-row-bytes", "4096", "--batch-rows", "100000"]).is_err());
        let producers = settings(&["--smoke", "--produce-producers", "1,8"]).expect("valid");
        assert_eq!(producers.produce_producers, vec![1, 8]);
        assert!(settings(&["--batch-rows", "10000000"]).is_err());
        assert!(settings(&["--put-latency", "9ms..1ms"]).is_err());
    }
}
