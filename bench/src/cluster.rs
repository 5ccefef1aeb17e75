//! The cluster section (`--sections cluster`; not in the default set): the roles in separate
//! `inlet serve` processes on one store, as README "Running a cluster" runs them, and what
//! that shows:
//!
//! 1. fetch throughput through 1 and then 2 reader processes (aggregate), full-table reads
//!    back to back, plus one cold read;
//! 2. the index owner's load while 0, 1 and 2 readers read: its object-store requests per
//!    second (its `GetStatus` counters) and its CPU time per second (`/proc/<pid>/stat`). The
//!    owner moves no payload bytes and readers read history from their own index replica, so
//!    this should not grow with the readers' traffic;
//! 3. append → visible latency with the producers on the writer process and the follower on
//!    a reader process, next to the same probe (`follow.rs`) on one in-process node on a
//!    local directory (the goal: within 10 ms of it).
//!
//! The processes are the binary hosting the bench ([`Host::inlet_binary`]), on a fresh local
//! directory under the system temp dir (the latency model and `--store` do not apply: the
//! processes share a store through the filesystem), each on a free 127.0.0.1 port with no
//! HTTP listener: one owner (`--roles index`), one writer (`--roles writer`, linger
//! `--e2e-linger`) and two readers (`--roles reader`, read cache `--cache-mb`). A guard kills
//! and reaps them and removes the directory however the section ends.
//!
//! Off by default because it adds about 40 s to a run and starts processes of the running
//! executable, which is the `inlet` binary only when the bench runs as `inlet bench`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use inlet_client::{Client, path, status_error};
use inlet_proto::v1 as pb;
use inlet_store::Purpose;
use serde::Serialize;
use tokio::time::Instant;

use super::Settings;
use super::data::BatchPool;
use super::fetch::read_table;
use super::follow::{self, EndToEnd, Ends, Probe};
use super::harness::Harness;
use super::host::{Host, NodeSettings};
use super::produce::send_appends;
use super::stats::{Latency, round};

/// Reader processes; the intervals run with 0 up to this many reading.
const READERS: usize = 2;

/// How long a process may take to answer and the cluster to see all its members.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`: USER_HZ, which Linux
/// fixes at 100 for user space on every mainstream architecture (the bench does not link
/// libc to ask `sysconf(_SC_CLK_TCK)`).
const USER_HZ: f64 = 100.0;

const CPU_METHOD: &str = "utime + stime of the process from /proc/<pid>/stat (all its \
                          threads), assuming USER_HZ = 100 ticks per second, so 10 ms \
                          resolution; null where /proc is not available";

const TABLE_FETCH: &str = "cluster_fetch";
const TABLE_PROBE: &str = "cluster_e2e";
const TABLE_PROBE_IN_PROCESS: &str = "cluster_e2e_in_process";

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ClusterReport {
    /// The store directory, removed when the section ends.
    pub(crate) store: String,
    pub(crate) readers: usize,
    pub(crate) writer_linger_ms: f64,
    pub(crate) load: ClusterLoad,
    /// The first read of the table, through one reader with an empty read cache.
    pub(crate) cold_read: ColdRead,
    /// 0, 1 and 2 readers reading back to back for `interval_seconds` each.
    pub(crate) intervals: Vec<ReadInterval>,
    pub(crate) latency: ClusterLatency,
    pub(crate) cpu_method: &'static str,
}

/// The fetch table, written through the writer process.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ClusterLoad {
    pub(crate) table: String,
    pub(crate) rows: u64,
    pub(crate) batch_rows: usize,
    pub(crate) ipc_bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) mb_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ColdRead {
    pub(crate) rows: u64,
    pub(crate) ipc_bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) mb_per_s: f64,
    /// The reader's chunk GETs during the read (its `GetStatus` counters).
    pub(crate) reader_chunk_gets: u64,
}

/// One interval with `readers` reader processes each serving one client that reads the
/// whole table again and again (Arrow IPC bytes counted as received, not decoded).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ReadInterval {
    pub(crate) readers: usize,
    pub(crate) seconds: f64,
    /// Whole-table reads completed (a read cut off by the end of the interval counts its
    /// bytes, not itself).
    pub(crate) reads: u64,
    pub(crate) ipc_bytes: u64,
    /// Aggregate over the readers.
    pub(crate) mb_per_s: f64,
    pub(crate) owner_requests: u64,
    pub(crate) owner_requests_per_s: f64,
    /// The owner's requests by purpose (`index`, `wal_put`, `chunk_get`, ...).
    pub(crate) owner_requests_by_purpose: BTreeMap<String, u64>,
    pub(crate) owner_cpu_ms_per_s: Option<f64>,
    /// Both reader processes together, reading or not.
    pub(crate) reader_requests_per_s: f64,
    pub(crate) reader_cpu_ms_per_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct ClusterLatency {
    /// Producers on the writer process, the follower on a reader process.
    pub(crate) multi_process: LatencyRun,
    /// The same probe on one in-process node on a local directory.
    pub(crate) in_process: LatencyRun,
    /// Multi-process minus in-process.
    pub(crate) p50_difference_ms: f64,
    pub(crate) p99_difference_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct LatencyRun {
    pub(crate) table: String,
    pub(crate) appends: u64,
    pub(crate) appends_per_s: f64,
    /// Append sent → its rows received by the follower.
    pub(crate) latency: Latency,
    /// Append sent → acknowledged.
    pub(crate) ack_latency: Latency,
    /// Chunk GETs of the follower's node while following.
    pub(crate) follower_chunk_gets: u64,
}

impl From<EndToEnd> for LatencyRun {
    fn from(e2e: EndToEnd) -> Self {
        Self {
            table: e2e.table,
            appends: e2e.appends,
            appends_per_s: e2e.appends_per_s,
            latency: e2e.latency,
            ack_latency: e2e.ack_latency,
            follower_chunk_gets: e2e.follower_chunk_gets,
        }
    }
}

/// Runs the section; `database` is created on the section's own store.
pub(crate) async fn run(
    host: &dyn Host,
    settings: &Settings,
    database: &str,
) -> anyhow::Result<ClusterReport> {
    let binary = host.inlet_binary()?;
    let mut cluster = Cluster::new(binary)?;

    eprintln!("bench: cluster: the end-to-end probe on one in-process node");
    let in_process = in_process_probe(host, settings, &cluster.dir, database).await?;

    let store = cluster.dir.join("store");
    std::fs::create_dir_all(&store)
        .with_context(|| format!("cannot create {}", store.display()))?;
    let store = store
        .to_str()
        .context("the temp dir is not UTF-8")?
        .to_owned();
    eprintln!("bench: cluster: starting an owner, a writer and {READERS} readers on {store}");
    let linger = humantime_serde::re::humantime::format_duration(settings.e2e_linger).to_string();
    let cache_bytes = settings.cache_memory_bytes.to_string();
    let owner = cluster.spawn("owner", "index", &store, &[], &[])?;
    cluster.wait_up(owner).await?;
    let writer = cluster.spawn("writer", "writer", &store, &["--linger", &linger], &[])?;
    let mut readers = Vec::with_capacity(READERS);
    for i in 0..READERS {
        let env = [("INLET_CACHE_MEMORY_BYTES", cache_bytes.as_str())];
        readers.push(cluster.spawn(&format!("reader{i}"), "reader", &store, &[], &env)?);
    }
    for node in std::iter::once(writer).chain(readers.iter().copied()) {
        cluster.wait_up(node).await?;
    }
    cluster.wait_members(2 + READERS).await?;

    let (load, expected_rows) = load(&cluster, settings, writer, database).await?;
    let cold_read = cold_read(&cluster, readers[0], database, expected_rows).await?;
    // The other reader reads the table once too, so every interval reads from warm caches
    // and caught-up replicas.
    for &reader in &readers[1..] {
        let mut client = Client::connect(cluster.endpoint(reader)).await?;
        let (rows, _) = read_table(&mut client, database, TABLE_FETCH, "warm-up", &[]).await?;
        ensure!(
            rows == expected_rows,
            "the warm-up read returned {rows} rows, expected {expected_rows}"
        );
    }

    let mut intervals = Vec::with_capacity(READERS + 1);
    for active in 0..=READERS {
        eprintln!(
            "bench: cluster: {active} readers reading for {:?}",
            settings.cluster_interval
        );
        intervals.push(
            read_interval(
                &cluster,
                owner,
                &readers,
                active,
                settings.cluster_interval,
                database,
            )
            .await?,
        );
    }

    eprintln!("bench: cluster: the end-to-end probe, writer process -> reader process");
    let multi_process = multi_process_probe(&cluster, settings, writer, readers[0], database)
        .await
        .context("the multi-process end-to-end probe failed")?;
    let latency = ClusterLatency {
        p50_difference_ms: round(multi_process.latency.p50_ms - in_process.latency.p50_ms, 3),
        p99_difference_ms: round(multi_process.latency.p99_ms - in_process.latency.p99_ms, 3),
        multi_process,
        in_process,
    };
    let report = ClusterReport {
        store,
        readers: READERS,
        writer_linger_ms: settings.e2e_linger.as_secs_f64() * 1000.0,
        load,
        cold_read,
        intervals,
        latency,
        cpu_method: CPU_METHOD,
    };
    cluster.stop();
    Ok(report)
}

/// The end-to-end probe on one in-process node (the bench's usual node) on a local
/// directory of the section's temp dir.
async fn in_process_probe(
    host: &dyn Host,
    settings: &Settings,
    dir: &Path,
    database: &str,
) -> anyhow::Result<LatencyRun> {
    let store = dir.join("in-process");
    std::fs::create_dir_all(&store)
        .with_context(|| format!("cannot create {}", store.display()))?;
    let url = store
        .to_str()
        .context("the temp dir is not UTF-8")?
        .to_owned();
    let node = NodeSettings {
        store: url.clone(),
        linger: settings.e2e_linger,
        cache_memory_bytes: settings.cache_memory_bytes,
    };
    let mut harness = Harness::new(host, host.open_store(&url)?, node);
    harness.restart(settings.e2e_linger).await?;
    harness
        .client()
        .await?
        .create_database(database, true)
        .await?;
    let e2e = follow::run(&harness, settings, database, TABLE_PROBE_IN_PROCESS)
        .await
        .context("the in-process end-to-end probe failed")?;
    harness.stop().await?;
    Ok(e2e.into())
}

/// Writes `--cluster-mb` of wide rows through the writer; returns the load and the rows.
async fn load(
    cluster: &Cluster,
    settings: &Settings,
    writer: NodeId,
    database: &str,
) -> anyhow::Result<(ClusterLoad, u64)> {
    let endpoint = cluster.endpoint(writer);
    let pool = Arc::new(BatchPool::new(settings.fetch_batch_rows, settings.seed)?);
    let append_bytes = pool.bytes_per_row() * pool.rows as f64;
    let appends = (settings.cluster_bytes as f64 / append_bytes)
        .ceil()
        .max(1.0) as u64;
    let rows = appends * pool.rows as u64;
    eprintln!(
        "bench: cluster: loading {rows} rows ({} rows per append) through the writer",
        pool.rows
    );
    let mut client = Client::connect(endpoint).await?;
    client.create_database(database, true).await?;
    client
        .create_table(
            database,
            TABLE_FETCH,
            &pool.schema,
            settings.buckets,
            Vec::new(),
            false,
        )
        .await
        .with_context(|| format!("cannot create table {database}.{TABLE_FETCH}"))?;
    let start = Instant::now();
    let ipc_bytes = send_appends(
        endpoint,
        database,
        TABLE_FETCH,
        pool.clone(),
        settings.producers,
        appends,
    )
    .await
    .context("cannot load the cluster's fetch table")?;
    let seconds = start.elapsed().as_secs_f64();
    let load = ClusterLoad {
        table: format!("{database}.{TABLE_FETCH}"),
        rows,
        batch_rows: pool.rows,
        ipc_bytes,
        seconds: round(seconds, 3),
        mb_per_s: round(ipc_bytes as f64 / 1e6 / seconds, 2),
    };
    Ok((load, rows))
}

/// The first read of the table through `reader`, decoded and counted.
async fn cold_read(
    cluster: &Cluster,
    reader: NodeId,
    database: &str,
    expected_rows: u64,
) -> anyhow::Result<ColdRead> {
    eprintln!("bench: cluster: a cold full read through one reader");
    let mut client = Client::connect(cluster.endpoint(reader)).await?;
    let before = Counters::of(&status(&mut client).await?);
    let start = Instant::now();
    let (rows, ipc_bytes) = read_table(&mut client, database, TABLE_FETCH, "cold", &[]).await?;
    let seconds = start.elapsed().as_secs_f64();
    ensure!(
        rows == expected_rows,
        "the cold read returned {rows} rows, expected {expected_rows}"
    );
    let after = Counters::of(&status(&mut client).await?);
    Ok(ColdRead {
        rows,
        ipc_bytes,
        seconds: round(seconds, 3),
        mb_per_s: round(ipc_bytes as f64 / 1e6 / seconds, 2),
        reader_chunk_gets: after.chunk_gets.saturating_sub(before.chunk_gets),
    })
}

/// `active` readers (the first ones) read the table back to back for `length` while the
/// owner's and the readers' counters and CPU time are sampled around it.
async fn read_interval(
    cluster: &Cluster,
    owner: NodeId,
    readers: &[NodeId],
    active: usize,
    length: Duration,
    database: &str,
) -> anyhow::Result<ReadInterval> {
    let mut owner_client = Client::connect(cluster.endpoint(owner)).await?;
    let mut reader_clients = Vec::with_capacity(readers.len());
    for &reader in readers {
        reader_clients.push(Client::connect(cluster.endpoint(reader)).await?);
    }
    let sample = |clients: Vec<Client>| async move {
        let mut counters = Vec::with_capacity(clients.len());
        for mut client in clients {
            counters.push(Counters::of(&status(&mut client).await?));
        }
        anyhow::Ok(counters)
    };

    let owner_before = Counters::of(&status(&mut owner_client).await?);
    let readers_before = sample(reader_clients.clone()).await?;
    let owner_cpu_before = cluster.cpu_time(owner);
    let reader_cpu_before = cluster.cpu_time_of(readers);
    let start = Instant::now();
    let until = start + length;
    let mut tasks = Vec::with_capacity(active);
    for &reader in &readers[..active] {
        let endpoint = cluster.endpoint(reader).to_owned();
        let database = database.to_owned();
        tasks.push(tokio::spawn(async move {
            read_until(&endpoint, &database, until).await
        }));
    }
    tokio::time::sleep_until(until).await;
    let (mut reads, mut ipc_bytes) = (0, 0);
    for task in tasks {
        let (task_reads, task_bytes) = task.await.context("a reading task panicked")??;
        reads += task_reads;
        ipc_bytes += task_bytes;
    }
    let seconds = start.elapsed().as_secs_f64();
    let owner_cpu = cluster.cpu_time(owner).zip(owner_cpu_before);
    let reader_cpu = cluster.cpu_time_of(readers).zip(reader_cpu_before);
    let owner_after = Counters::of(&status(&mut owner_client).await?);
    let readers_after = sample(reader_clients).await?;

    let owner_requests = owner_after.requests.saturating_sub(owner_before.requests);
    let reader_requests: u64 = readers_after
        .iter()
        .zip(&readers_before)
        .map(|(after, before)| after.requests.saturating_sub(before.requests))
        .sum();
    let per_s = |x: f64| round(x / seconds, 2);
    let cpu_ms_per_s = |(after, before): (Duration, Duration)| {
        per_s(after.saturating_sub(before).as_secs_f64() * 1000.0)
    };
    Ok(ReadInterval {
        readers: active,
        seconds: round(seconds, 3),
        reads,
        ipc_bytes,
        mb_per_s: round(ipc_bytes as f64 / 1e6 / seconds, 2),
        owner_requests,
        owner_requests_per_s: per_s(owner_requests as f64),
        owner_requests_by_purpose: owner_after.since(&owner_before),
        owner_cpu_ms_per_s: owner_cpu.map(cpu_ms_per_s),
        reader_requests_per_s: per_s(reader_requests as f64),
        reader_cpu_ms_per_s: reader_cpu.map(cpu_ms_per_s),
    })
}

/// Reads the whole table again and again until `until`; returns the reads completed and the
/// Arrow IPC bytes received (those of a read cut off at `until` included).
async fn read_until(endpoint: &str, database: &str, until: Instant) -> anyhow::Result<(u64, u64)> {
    let mut client = Client::connect(endpoint).await?;
    let (mut reads, mut bytes) = (0u64, 0u64);
    while Instant::now() < until {
        let mut stream = client
            .fetch(pb::FetchRequest {
                path: Some(path(database, TABLE_FETCH)),
                start: Some(pb::StartPosition {
                    position: Some(pb::start_position::Position::Earliest(true)),
                }),
                ..Default::default()
            })
            .await
            .context("cannot start a read")?;
        loop {
            let Ok(message) = tokio::time::timeout_at(until, stream.message()).await else {
                return Ok((reads, bytes));
            };
            match message.map_err(status_error)? {
                Some(response) => bytes += response.batch_ipc.len() as u64,
                None => {
                    reads += 1;
                    break;
                }
            }
        }
    }
    Ok((reads, bytes))
}

/// The probe with its producers on the writer and its follower on `reader`.
async fn multi_process_probe(
    cluster: &Cluster,
    settings: &Settings,
    writer: NodeId,
    reader: NodeId,
    database: &str,
) -> anyhow::Result<LatencyRun> {
    let ends = Ends {
        producer: cluster.endpoint(writer),
        follower: cluster.endpoint(reader),
    };
    let probe = Probe::start(ends, settings, database, TABLE_PROBE).await?;
    let mut reader_client = Client::connect(cluster.endpoint(reader)).await?;
    let before = Counters::of(&status(&mut reader_client).await?);
    let probed = probe.run().await?;
    let after = Counters::of(&status(&mut reader_client).await?);
    Ok(LatencyRun {
        table: format!("{database}.{TABLE_PROBE}"),
        appends: probed.appends,
        appends_per_s: probed.appends_per_s,
        latency: probed.latency,
        ack_latency: probed.ack_latency,
        follower_chunk_gets: after.chunk_gets.saturating_sub(before.chunk_gets),
    })
}

async fn status(client: &mut Client) -> anyhow::Result<pb::GetStatusResponse> {
    Ok(client
        .raw()
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(status_error)
        .context("cannot read a node's status")?
        .into_inner())
}

/// A node's object-store request counters since it started (from `GetStatus`).
#[derive(Clone, Debug, Default)]
struct Counters {
    requests: u64,
    chunk_gets: u64,
    by_purpose: BTreeMap<String, u64>,
}

impl Counters {
    fn of(status: &pb::GetStatusResponse) -> Self {
        let mut counters = Self::default();
        for usage in &status.store {
            counters.requests += usage.requests;
            *counters
                .by_purpose
                .entry(usage.purpose.clone())
                .or_default() += usage.requests;
            if usage.purpose == Purpose::ChunkGet.label() {
                counters.chunk_gets += usage.requests;
            }
        }
        counters
    }

    /// Requests by purpose since `before`, the purposes that made none left out.
    fn since(&self, before: &Self) -> BTreeMap<String, u64> {
        self.by_purpose
            .iter()
            .map(|(purpose, n)| {
                let earlier = before.by_purpose.get(purpose).copied().unwrap_or(0);
                (purpose.clone(), n.saturating_sub(earlier))
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// An index into [`Cluster::nodes`].
#[derive(Clone, Copy, Debug)]
struct NodeId(usize);

struct Node {
    name: String,
    child: Child,
    endpoint: String,
    log: PathBuf,
}

/// The section's temp dir and its processes: dropping it kills and reaps every process and
/// removes the directory, however the section ends.
struct Cluster {
    binary: PathBuf,
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Cluster {
    /// A fresh directory named after this process (a leftover of an earlier process with the
    /// same id is removed first).
    fn new(binary: PathBuf) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("inlet-bench-cluster-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the leftover {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            binary,
            dir,
            nodes: Vec::new(),
        })
    }

    /// Starts `inlet serve --roles <roles>` on a free loopback port, logging to
    /// `<dir>/<name>.log`.
    fn spawn(
        &mut self,
        name: &str,
        roles: &str,
        store: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<NodeId> {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let log = self.dir.join(format!("{name}.log"));
        let log_file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(&self.binary)
            .args(["serve", "--roles", roles, "--listen", &listen])
            .args(["--http-listen", "off", "--store", store])
            .args(extra)
            .envs(env.iter().copied())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {} serve", self.binary.display()))?;
        self.nodes.push(Node {
            name: name.to_owned(),
            child,
            endpoint: format!("http://{listen}"),
            log,
        });
        Ok(NodeId(self.nodes.len() - 1))
    }

    fn endpoint(&self, node: NodeId) -> &str {
        &self.nodes[node.0].endpoint
    }

    /// Waits until the node answers `GetStatus`; fails with its log if it exits first.
    async fn wait_up(&mut self, id: NodeId) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let node = &mut self.nodes[id.0];
            if let Some(exit) = node.child.try_wait()? {
                bail!(
                    "the {} process exited ({exit}) before it answered:\n{}",
                    node.name,
                    log_tail(&node.log)
                );
            }
            if let Ok(mut client) = Client::connect(&node.endpoint).await
                && status(&mut client).await.is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > START_DEADLINE {
                bail!(
                    "the {} process did not answer within {START_DEADLINE:?}:\n{}",
                    node.name,
                    log_tail(&node.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every node knows the owner and sees `members` members.
    async fn wait_members(&self, members: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        for node in &self.nodes {
            let mut client = Client::connect(&node.endpoint).await?;
            loop {
                let status = status(&mut client).await?;
                if status.members.len() == members && !status.owner_endpoint.is_empty() {
                    break;
                }
                if started.elapsed() > START_DEADLINE {
                    bail!(
                        "the {} process did not see {members} members within \
                         {START_DEADLINE:?}: it sees {} and owner `{}`",
                        node.name,
                        status.members.len(),
                        status.owner_endpoint
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The process's CPU time so far, if `/proc` has it.
    fn cpu_time(&self, node: NodeId) -> Option<Duration> {
        cpu_time(self.nodes[node.0].child.id())
    }

    fn cpu_time_of(&self, nodes: &[NodeId]) -> Option<Duration> {
        nodes.iter().map(|&node| self.cpu_time(node)).sum()
    }

    /// Kills and reaps every process and removes the directory.
    fn stop(&mut self) {
        for node in &mut self.nodes {
            // Already exited is fine: the wait below reaps it either way.
            let _ = node.child.kill();
        }
        for node in &mut self.nodes {
            let _ = node.child.wait();
        }
        self.nodes.clear();
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            eprintln!("bench: cluster: cannot remove {}: {e}", self.dir.display());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free local port")?;
    Ok(listener.local_addr()?.port())
}

/// The last lines of a process's log, for an error.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// User plus system CPU time of process `pid` (all its threads), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state): utime is field 14, 11 further on.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_past_the_command_name() {
        let stat = "4242 (inlet (a) b) S 1 4242 4242 0 -1 4194560 1950 0 0 0 137 58 0 0 20 0 \
                    9 0 12345 123456789 4567 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(137 + 58));
        assert_eq!(parse_cpu_ticks("4242 (inlet) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(cpu_time(std::process::id()).is_some());
        }
    }
}
