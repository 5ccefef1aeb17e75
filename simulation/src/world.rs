//! The simulated world: one shared bucket, the processes that run Inlet's roles on it, the
//! chaos that crashes and replaces them, and the phases of a run.
//!
//! A *process* ([`Node`]) is what `inlet serve` runs: the index owner, a writer, a reader
//! with its read cache and a compactor (driven by [`crate::lake::drive`]), wired as
//! `server/src/node.rs` wires them, on a [`NodeStore`]
//! that dies with it. Clients (producers, followers, readers) talk to the current primary
//! process directly, without gRPC; a client that sees its process die treats its request's
//! outcome as unknown and goes to the next primary, as a gRPC client would after a dropped
//! connection.
//!
//! A run: set up the catalog with faults off; run the workload and the chaos schedule for
//! the configured time; stop new appends and chaos; heal the store and restart a clean
//! process, on which producers finish (retrying) the append they were on and followers catch
//! up to the tails; then a fresh auditor process reads back every stream, and the model
//! checks everything against that committed log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use inlet_cache::PagedCache;
use inlet_compactor::lake::{LakeRoot, LakeStorage, LakeWriteOptions};
use inlet_compactor::options::CompactionOptions;
use inlet_compactor::{Compactor, CompactorOptions, Failpoint, FailpointHook};
use inlet_core::clock::{Env, SeededIdGen};
use inlet_core::ids::TableId;
use inlet_core::table::{
    OPTION_LAKE_ENABLED, OPTION_LAKE_FRESHNESS, OPTION_LAKE_SNAPSHOTS_RETAINED, OPTION_RETENTION,
    TableDescriptor,
};
use inlet_index::index::ConfigureSlateDb;
use inlet_index::{CommitLog, Index, IndexOptions, LogRead};
use inlet_reader::{FetchRequest, Reader, StartPosition};
use inlet_store::{FaultControl, FaultStore, Purpose};
use inlet_wire::memory::serve_in_memory;
use inlet_wire::{IndexPortsService, Member, OwnerSource, RemoteIndex, RemoteOptions};
use inlet_writer::Writer;
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;
use slatedb_common::clock::SystemClock;
use tokio::task::JoinHandle;

use crate::clock::SimClock;
use crate::config::{SimConfig, TableSpec};
use crate::data::{COLUMNS, read_rows, table_schema};
use crate::evolve;
use crate::lake;
use crate::model::{FinalLog, LogRow, Model};
use crate::pk;
use crate::rng::{SimRng, hash};
use crate::scratch;
use crate::signal::Signal;
use crate::stamp::StampedStore;
use crate::store::{CrashTrigger, FailpointTrigger, NodeLife, NodeStore};
use crate::tails::OrderedTails;
use crate::trace::Trace;
use crate::workload;

/// The database every simulated table lives in.
pub const DATABASE: &str = "sim";

/// How long, in simulated time, producers may take to finish their last append once the
/// store is healed, and followers to catch up, before that counts as a liveness violation.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// How often the chaos task checks whether the primary's index stopped (a fatal error the
/// process would exit on, to be restarted by its supervisor).
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);

/// Runs of this process so far: part of each run's lake root name, which must be unique among
/// the runs alive at once (the lake storage registers stores by root URL, process-wide).
static RUNS: AtomicU64 = AtomicU64::new(0);

/// One simulated process: every role of `inlet serve`, on its own view of the bucket.
pub struct Node {
    pub id: u32,
    pub life: Arc<NodeLife>,
    pub index: Index,
    pub writer: Writer,
    pub reader: Reader,
    pub compactor: Arc<Compactor>,
}

/// Whether a new process's compactor runs on its own (every process of the run) or only when
/// the harness drives it (the end-of-run checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compaction {
    Background,
    Driven,
}

pub struct World {
    pub cfg: SimConfig,
    pub clock: Arc<SimClock>,
    pub trace: Trace,
    store: Arc<dyn ObjectStore>,
    /// Where the lake is, as its metadata names it: the same for every process of the run.
    pub lake_root: LakeRoot,
    faults: FaultControl,
    model: Mutex<Model>,
    primary: Signal<Option<Arc<Node>>>,
    nodes: Mutex<Vec<Arc<Node>>>,
    next_node: AtomicU32,
    /// Set when producers must start no new append.
    pub stopping: Signal<bool>,
    /// Set, once producers are done, to the tail of every `[table][bucket]`: followers stop
    /// when they reach it.
    pub final_tails: Signal<Option<Vec<Vec<u64>>>>,
    /// The id of the table the run drops (`scratch.rs`), once created.
    pub scratch: Signal<Option<TableId>>,
    /// When `evolve::replace_flag` first asked to replace `flag` (commit time, µs), once it
    /// knows the change was made: rows committed before were written under the old column and
    /// must read null in the new one.
    pub flag_replaced_from: Signal<Option<i64>>,
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    pub digest: u64,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    pub acked_appends: usize,
    pub rows: u64,
    pub nodes: u32,
    pub simulated: Duration,
}

impl World {
    pub fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().expect("model lock poisoned")
    }

    pub fn violation(&self, text: String) {
        self.trace.event(format!("VIOLATION {text}"));
        self.model().violation(text);
    }

    /// Resolves once the run stops.
    pub async fn stopped(&self) {
        self.stopping.wait_for(|stop| stop.then_some(())).await;
    }

    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// The current primary process, waiting while there is none (a restart is under way).
    pub async fn primary(&self) -> Arc<Node> {
        self.primary
            .wait_for(|p| p.as_ref().filter(|n| !n.life.is_dead()).cloned())
            .await
    }

    fn set_primary(&self, node: Option<Arc<Node>>) {
        self.primary.set(node);
    }

    fn current(&self) -> Option<Arc<Node>> {
        self.primary.get()
    }

    /// Starts a process on the shared store, retrying until its index opens.
    pub(crate) async fn open_node(self: &Arc<Self>, compaction: Compaction) -> Arc<Node> {
        loop {
            let id = self.next_node.fetch_add(1, Ordering::SeqCst);
            let life = Arc::new(NodeLife::default());
            let store: Arc<dyn ObjectStore> =
                Arc::new(NodeStore::new(self.store.clone(), life.clone()));
            let env = Env {
                clock: self.clock.clone(),
                ids: Arc::new(SeededIdGen::new(hash(&[self.cfg.seed, u64::from(id), 1]))),
            };
            let clock: Arc<dyn SystemClock> = self.clock.clone();
            let options = IndexOptions {
                flush_interval: self.cfg.flush_interval,
                seed: Some(hash(&[self.cfg.seed, u64::from(id), 2])),
                object_store_max_retries: self.cfg.object_store_max_retries,
                configure_slatedb: Some(ConfigureSlateDb(Arc::new(move |builder| {
                    builder.with_system_clock(clock.clone())
                }))),
                ack_before_durable: self.cfg.ack_before_durable,
                ..IndexOptions::default()
            };
            self.trace.event(format!("node {id} opening"));
            // A process whose opening is abandoned (the run stops meanwhile) dies with it,
            // so none of the tasks it started keeps using the store.
            let dies_unless_opened = KillOnDrop(Some(life.clone()));
            let index = match Index::open(store.clone(), options, env.clone()).await {
                Ok(index) => index,
                Err(error) => {
                    drop(dies_unless_opened);
                    self.trace
                        .event(format!("node {id} failed to open its index: {error}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let cache = PagedCache::open(store.clone(), self.cfg.cache.clone())
                .await
                .expect("a memory-only cache with valid options opens");
            // The ports the writer and reader use: the index itself, or (as in a writer or
            // reader process) the index over the wire module on in-memory pipes.
            let (commit, read): (Arc<dyn CommitLog>, Arc<dyn LogRead>) = if self.cfg.remote_roles {
                let service = IndexPortsService::new(
                    index.clone(),
                    Member {
                        node_id: format!("node-{id}"),
                        endpoint: "in-memory".to_owned(),
                        roles: vec!["index".to_owned()],
                    },
                );
                let (channel, server) = serve_in_memory(service);
                let remote = RemoteIndex::connect(
                    OwnerSource::Channel(channel),
                    None,
                    RemoteOptions::default(),
                );
                // The wire dies with the process: its followers end, its calls fail.
                let (dying, wire) = (life.clone(), remote.clone());
                tokio::spawn(async move {
                    dying.dead().await;
                    wire.close();
                    server.abort();
                });
                (Arc::new(remote.clone()), Arc::new(remote))
            } else {
                (Arc::new(index.clone()), Arc::new(index.clone()))
            };
            let writer = Writer::start(
                commit,
                store.clone(),
                cache.clone(),
                self.cfg.writer.clone(),
                env,
            );
            // Every follower on a channel of its own (`tails`).
            let reader = Reader::new(Arc::new(OrderedTails::new(read)), cache.clone());
            let compactor = self.compactor(id, &index, cache, &life);
            dies_unless_opened.defuse();
            let node = Arc::new(Node {
                id,
                life,
                index,
                writer,
                reader,
                compactor,
            });
            self.model().node_opened(id, self.now());
            self.nodes
                .lock()
                .expect("nodes lock poisoned")
                .push(node.clone());
            self.trace.event(format!("node {id} open"));
            if compaction == Compaction::Background {
                let rng = SimRng::new(self.cfg.seed).fork("compactor", u64::from(id));
                tokio::spawn(lake::drive(self.clone(), node.clone(), rng));
            }
            return node;
        }
    }

    /// The compactor of process `id`, as `inlet serve` wires it, with its own id source (so
    /// the writer's ids stay what they were) and the failpoint hook of its process.
    fn compactor(
        &self,
        id: u32,
        index: &Index,
        cache: PagedCache,
        life: &Arc<NodeLife>,
    ) -> Arc<Compactor> {
        let spec = &self.cfg.compactor;
        let env = Env {
            clock: self.clock.clone(),
            ids: Arc::new(SeededIdGen::new(hash(&[self.cfg.seed, u64::from(id), 3]))),
        };
        let hook_life = life.clone();
        let options = CompactorOptions {
            // Only the harness's loop uses these two; see `lake::drive`.
            scan_interval: Duration::from_millis(spec.pass_every.0),
            wal_gc_interval: Duration::from_millis(spec.gc_every.0),
            lease_ttl: spec.lease_ttl,
            max_round_bytes: spec.max_round_bytes,
            max_round_rows: spec.max_round_rows,
            wal_upload_grace: spec.wal_upload_grace,
            wal_read_grace: spec.wal_read_grace,
            orphan_grace: spec.orphan_grace,
            write: LakeWriteOptions {
                merge_manifests_at: self.cfg.upkeep.merge_manifests_at,
                ..LakeWriteOptions::default()
            },
            compaction: CompactionOptions {
                min_files: self.cfg.upkeep.compaction_min_files,
                ..CompactionOptions::default()
            },
            drop_grace: self
                .cfg
                .scratch
                .as_ref()
                .map_or(CompactorOptions::default().drop_grace, |s| s.drop_grace),
            owner: Some(u64::from(id) + 1),
            failpoints: Some(FailpointHook::new(move |failpoint| {
                hook_life.at_failpoint(failpoint)
            })),
        };
        let lake = LakeStorage::new(self.lake_root.clone(), cache.store().clone());
        Arc::new(Compactor::new(index.clone(), cache, lake, options, env))
    }

    /// The lake as an outside reader opens it (through the run's store; the end-of-run checks
    /// use it once the store is healed).
    pub(crate) fn lake_storage(&self) -> LakeStorage {
        LakeStorage::new(self.lake_root.clone(), self.store.clone())
    }

    /// A compactor's error as the trace shows it: without the lake root, whose name differs
    /// between two runs of one seed.
    pub(crate) fn scrub(&self, text: impl ToString) -> String {
        text.to_string()
            .replace(&self.lake_root.url(), "memory://lake")
    }

    fn kill_all(&self) {
        let nodes = self.nodes.lock().expect("nodes lock poisoned").clone();
        for node in nodes {
            if node.life.kill() {
                self.trace.event(format!("node {} killed", node.id));
            }
        }
        self.set_primary(None);
    }

    /// Replaces a dead or sick primary after the configured restart delay; gives up when
    /// the run stops meanwhile (the final phase starts a clean process anyway).
    async fn restart(self: &Arc<Self>, rng: &mut SimRng) {
        self.set_primary(None);
        let (low, high) = self.cfg.chaos.restart_delay;
        let delay = rng.millis(low, high);
        let opened = async {
            tokio::time::sleep(delay).await;
            self.open_node(Compaction::Background).await
        };
        tokio::select! {
            biased;
            () = self.stopped() => {}
            node = opened => self.set_primary(Some(node)),
        }
    }
}

/// Kills a process when dropped, unless defused.
struct KillOnDrop(Option<Arc<NodeLife>>);

impl KillOnDrop {
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(life) = self.0.take() {
            life.kill();
        }
    }
}

/// Runs one simulated world to the end and checks it.
pub async fn run_world(cfg: SimConfig) -> Outcome {
    let clock = SimClock::start();
    let trace = Trace::new(clock.clone(), cfg.verbose);
    let root = SimRng::new(cfg.seed);
    let fault_store = FaultStore::new(
        StampedStore::new(InMemory::new(), clock.clone()),
        cfg.faults.clone(),
        root.fork("faults", 0).next_u64(),
    );
    let faults = fault_store.control();
    faults.set_enabled(false);
    let world = Arc::new(World {
        clock,
        trace,
        store: Arc::new(fault_store),
        lake_root: LakeRoot::memory(&format!(
            "sim-{:016x}-{:016x}",
            cfg.seed,
            RUNS.fetch_add(1, Ordering::SeqCst)
        )),
        faults,
        model: Mutex::default(),
        primary: Signal::new(None),
        nodes: Mutex::default(),
        next_node: AtomicU32::new(0),
        stopping: Signal::new(false),
        final_tails: Signal::new(None),
        scratch: Signal::new(None),
        flag_replaced_from: Signal::new(None),
        cfg,
    });
    world.trace.event(world.cfg.summary());

    let first = world.open_node(Compaction::Background).await;
    create_catalog(&world, &first).await;
    world.set_primary(Some(first));
    world.faults.set_enabled(true);
    world.trace.event("faults on");

    let chaos = tokio::spawn(chaos(world.clone(), root.fork("chaos", 0)));
    let producers: Vec<JoinHandle<()>> = (0..world.cfg.producers.len())
        .map(|i| tokio::spawn(workload::producer(world.clone(), i)))
        .collect();
    let followers: Vec<JoinHandle<()>> = (0..world.cfg.followers.len())
        .map(|i| tokio::spawn(workload::follower(world.clone(), i)))
        .collect();
    let mut readers: Vec<JoinHandle<()>> = (0..world.cfg.readers.len())
        .map(|i| tokio::spawn(workload::reader(world.clone(), i)))
        .collect();
    let pk_producers: Vec<JoinHandle<()>> = (0..world.cfg.pk.producers.len())
        .map(|i| tokio::spawn(pk::producer(world.clone(), i)))
        .collect();
    readers.extend(
        (0..world.cfg.pk.readers.len()).map(|i| tokio::spawn(pk::reader(world.clone(), i))),
    );
    let scratch = tokio::spawn(scratch::run(world.clone()));
    let widening = tokio::spawn(evolve::run(world.clone()));
    let replacement = tokio::spawn(evolve::replace_flag(world.clone()));

    tokio::time::sleep(world.cfg.duration).await;
    world.trace.event("stopping: no new appends, no more chaos");
    world.stopping.set(true);
    let _ = chaos.await;

    world.faults.set_enabled(false);
    world.trace.event("store healed");
    world.kill_all();
    let last = world.open_node(Compaction::Background).await;
    world.set_primary(Some(last.clone()));
    // It may be waiting for a live primary, as producers may.
    if tokio::time::timeout(DRAIN_LIMIT, scratch).await.is_err() {
        world.violation(format!(
            "liveness: the scratch writer did not stop within {DRAIN_LIMIT:?} after the store \
             healed"
        ));
    }
    for (change, handle) in [("widening", widening), ("replacement", replacement)] {
        if tokio::time::timeout(DRAIN_LIMIT, handle).await.is_err() {
            world.violation(format!(
                "liveness: the column {change} did not stop within {DRAIN_LIMIT:?} after the \
                 store healed"
            ));
        }
    }
    for (i, handle) in producers.into_iter().enumerate() {
        if tokio::time::timeout(DRAIN_LIMIT, handle).await.is_err() {
            world.violation(format!(
                "liveness: producer p{i} did not finish its append within {DRAIN_LIMIT:?} \
                 after the store healed"
            ));
        }
    }
    for (i, handle) in pk_producers.into_iter().enumerate() {
        if tokio::time::timeout(DRAIN_LIMIT, handle).await.is_err() {
            world.violation(format!(
                "liveness: producer kp{i} did not finish its write within {DRAIN_LIMIT:?} \
                 after the store healed"
            ));
        }
    }
    let tails = tails(&world, &last).await;
    world.trace.event(format!("tails after drain: {tails:?}"));
    world.final_tails.set(Some(tails));
    for (i, handle) in followers.into_iter().enumerate() {
        if tokio::time::timeout(DRAIN_LIMIT, handle).await.is_err() {
            world.violation(format!(
                "liveness: follower f{i} did not reach the tail within {DRAIN_LIMIT:?} after \
                 the store healed"
            ));
        }
    }
    for handle in readers {
        let _ = tokio::time::timeout(DRAIN_LIMIT, handle).await;
    }
    let counts = world.faults.counts();
    world.trace.event(format!(
        "faults injected: {} transient errors, {} timeouts after writes, {} dropped responses, \
         {} delayed requests",
        counts.transient_errors,
        counts.timeouts_after_write,
        counts.dropped_responses,
        counts.delayed_requests
    ));

    world.kill_all();
    let auditor = world.open_node(Compaction::Background).await;
    let log = audit(&world, &auditor).await;
    let keyed = pk::audit(&world, &auditor).await;
    scratch::drop_at_end(&world, &auditor).await;
    let audited_at = world.now();
    let rows: u64 = log
        .iter()
        .flatten()
        .map(|s| s.iter().flatten().count() as u64)
        .sum();
    world.trace.event(format!(
        "final log: {:?}",
        log.iter()
            .map(|t| t.iter().map(Vec::len).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    ));
    world.kill_all();
    // A run that already failed has shown what it can; reading it back again adds nothing.
    if world.model().violations().is_empty() {
        lake::settle(&world, &log, &keyed).await;
    }
    let online = world.model().violations().len();
    world.model().check(
        &log,
        world.cfg.max_payload,
        &world.cfg.tables,
        audited_at,
        world
            .cfg
            .flag_replacement
            .as_ref()
            .map(|spec| (spec.table, world.flag_replaced_from.get())),
    );
    world
        .model()
        .check_pk(&world.cfg.pk.tables, &keyed, world.cfg.max_payload);
    let violations = world.model().violations().to_vec();
    for violation in &violations[online..] {
        world.trace.event(format!("VIOLATION {violation}"));
    }
    let (acked, pk_acked) = {
        let model = world.model();
        (model.acked_count(), model.pk.acked_count())
    };
    world.trace.event(format!(
        "done: {acked} appends acked, {rows} rows, {} processes, {} violations{}",
        world.next_node.load(Ordering::SeqCst),
        violations.len(),
        // Only runs with primary-key tables say so: the others' traces stay as they were.
        if world.cfg.pk.tables.is_empty() {
            String::new()
        } else {
            format!(", {pk_acked} pk writes acked")
        }
    ));
    world.kill_all();
    Outcome {
        digest: world.trace.digest(),
        violations,
        trace: world.trace.lines(),
        acked_appends: world.model().acked_count(),
        rows,
        nodes: world.next_node.load(Ordering::SeqCst),
        simulated: world.now(),
    }
}

pub(crate) async fn create_catalog(world: &World, node: &Node) {
    node.index
        .create_database(DATABASE, "", true)
        .await
        .expect("the database is created while the store has no faults");
    let mut tables = Vec::new();
    for table in &world.cfg.tables {
        let descriptor = TableDescriptor {
            schema: table_schema(),
            bucket_count: table.buckets,
            bucket_key: if table.keyed {
                vec!["key".to_owned()]
            } else {
                Vec::new()
            },
            partition_key: Vec::new(),
            primary_key: Vec::new(),
            comment: String::new(),
            options: table_options(table),
        };
        tables.push((table.name.as_str(), descriptor));
    }
    for table in &world.cfg.pk.tables {
        tables.push((table.name.as_str(), pk::descriptor(table)));
    }
    if let Some(spec) = &world.cfg.scratch {
        tables.push((scratch::TABLE, scratch::descriptor(spec)));
    }
    for (name, mut descriptor) in tables {
        // Every lake table keeps the run's number of snapshots.
        if descriptor.options.contains_key(OPTION_LAKE_ENABLED) {
            descriptor.options.insert(
                OPTION_LAKE_SNAPSHOTS_RETAINED.to_owned(),
                world.cfg.upkeep.snapshots_retained.to_string(),
            );
        }
        let info = node
            .index
            .create_table(DATABASE, name, descriptor, true)
            .await
            .expect("tables are created while the store has no faults");
        if name == scratch::TABLE {
            world.scratch.set(Some(info.id));
        }
    }
    world.trace.event("catalog created");
}

/// The options of a log table as its spec draws them.
fn table_options(table: &TableSpec) -> BTreeMap<String, String> {
    let mut options = lake_options(table.lake);
    if let Some(retention) = table.retention {
        options.insert(
            OPTION_RETENTION.to_owned(),
            format!("{}ms", retention.as_millis()),
        );
    }
    options
}

/// The options of a table tiered with this `lake.freshness` (none: not tiered).
pub(crate) fn lake_options(freshness: Option<Duration>) -> BTreeMap<String, String> {
    match freshness {
        Some(freshness) => [
            (OPTION_LAKE_ENABLED.to_owned(), "true".to_owned()),
            (
                OPTION_LAKE_FRESHNESS.to_owned(),
                format!("{}ms", freshness.as_millis()),
            ),
        ]
        .into(),
        None => BTreeMap::new(),
    }
}

/// The tail of every `[table][bucket]` on `node`.
pub(crate) async fn tails(world: &World, node: &Node) -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for table in &world.cfg.tables {
        let offsets = node
            .reader
            .list_offsets(DATABASE, &table.name, &[], &[], StartPosition::Latest)
            .await
            .expect("offsets are listed while the store has no faults");
        out.push(offsets.iter().map(|o| o.latest.0).collect());
    }
    out
}

/// Reads back every stream from its first offset with every column. Offsets that WAL
/// retention expired (before or while the audit reads) are `None`; only tables with
/// `retention` may have them, and the model checks each was old enough to go.
pub(crate) async fn audit(world: &World, node: &Node) -> FinalLog {
    let all: Vec<usize> = (0..COLUMNS).collect();
    let tails = tails(world, node).await;
    let mut log = FinalLog::new();
    for (t, table) in world.cfg.tables.iter().enumerate() {
        let expires = table.retention.is_some();
        let mut streams: Vec<Vec<Option<LogRow>>> = vec![Vec::new(); table.buckets as usize];
        let request = FetchRequest {
            database: DATABASE.to_owned(),
            table: table.name.clone(),
            partitions: Vec::new(),
            buckets: Vec::new(),
            start: StartPosition::Earliest,
            columns: Vec::new(),
            follow: false,
            limit: None,
            omit_update_before: false,
            reset_to_earliest: expires,
        };
        match node.reader.fetch(request).await {
            Err(error) => world.violation(format!("audit: cannot read {}: {error}", table.name)),
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    let fetched = match item {
                        Ok(fetched) => fetched,
                        Err(error) => {
                            world.violation(format!(
                                "audit: reading {} failed: {error}",
                                table.name
                            ));
                            break;
                        }
                    };
                    let rows = match read_rows(&fetched.batch, &all) {
                        Ok(rows) => rows,
                        Err(error) => {
                            world.violation(format!("audit: {}: {error}", table.name));
                            break;
                        }
                    };
                    for row in rows {
                        let Some(stream) = streams.get_mut(row.bucket as usize) else {
                            world.violation(format!(
                                "audit: {} returned bucket {}",
                                table.name, row.bucket
                            ));
                            break;
                        };
                        if expires && row.offset > stream.len() as u64 {
                            // Expired: before the read started, or while it was behind.
                            stream.resize(row.offset as usize, None);
                        }
                        if row.offset != stream.len() as u64 {
                            world.violation(format!(
                                "audit: t{t}/b{} returned offset {} where {} was next",
                                row.bucket,
                                row.offset,
                                stream.len()
                            ));
                            break;
                        }
                        let Some((id, index)) = row.identity else {
                            unreachable!("the audit reads every column");
                        };
                        stream.push(Some(LogRow {
                            id,
                            row: index,
                            commit_ts: row.commit_ts,
                            fingerprints: row.fingerprints.try_into().expect("every column"),
                        }));
                    }
                }
            }
        }
        for (bucket, stream) in streams.iter_mut().enumerate() {
            let tail = tails[t][bucket];
            if expires && (stream.len() as u64) < tail {
                // Every row of the bucket may have expired: then nothing was read at all.
                let earliest = node
                    .reader
                    .list_offsets(
                        DATABASE,
                        &table.name,
                        &[],
                        &[bucket as u32],
                        StartPosition::Latest,
                    )
                    .await
                    .ok()
                    .and_then(|offsets| offsets.first().map(|o| o.earliest.0));
                if earliest.is_some_and(|earliest| earliest >= tail) {
                    stream.resize(tail as usize, None);
                }
            }
            if stream.len() as u64 != tail {
                world.violation(format!(
                    "audit: t{t}/b{bucket} has tail {tail} but {} rows were read from offset 0",
                    stream.len()
                ));
            }
        }
        log.push(streams);
    }
    log
}

/// What the chaos schedule does at one point in time.
#[derive(Clone, Copy, Debug)]
enum Action {
    Crash,
    Takeover,
    Trigger,
    CompactorCrash,
}

/// Crashes, takeovers, crash triggers and fault storms on a schedule drawn from the seed,
/// and a supervisor that restarts a primary that died or whose index stopped.
async fn chaos(world: Arc<World>, mut rng: SimRng) {
    let spec = world.cfg.chaos.clone();
    let span = world.cfg.duration.as_millis() as u64;
    let mut schedule: Vec<(Duration, Action)> = Vec::new();
    let at = |rng: &mut SimRng| Duration::from_millis(rng.between(span / 20, span * 9 / 10));
    for _ in 0..spec.crashes {
        schedule.push((at(&mut rng), Action::Crash));
    }
    for _ in 0..spec.takeovers {
        schedule.push((at(&mut rng), Action::Takeover));
    }
    for _ in 0..spec.triggers {
        schedule.push((at(&mut rng), Action::Trigger));
    }
    for _ in 0..spec.compactor_crashes {
        schedule.push((at(&mut rng), Action::CompactorCrash));
    }
    schedule.sort_by_key(|(time, _)| *time);
    let start = tokio::time::Instant::now() - world.now();
    // Storms run on their own, so that a storm always ends even while a restart waits for
    // it to end.
    let mut storms: Vec<(Duration, Duration)> = (0..spec.storms)
        .map(|_| (at(&mut rng), rng.millis(200, 3000)))
        .collect();
    storms.sort();
    let storm_world = world.clone();
    tokio::spawn(async move {
        for (at, length) in storms {
            tokio::time::sleep_until(start + at).await;
            if storm_world.stopping.get() {
                return;
            }
            storm_world.faults.set_config(storm_world.cfg.storm.clone());
            storm_world.trace.event("chaos: fault storm starts");
            tokio::time::sleep(length).await;
            storm_world
                .faults
                .set_config(storm_world.cfg.faults.clone());
            storm_world.trace.event("chaos: fault storm ends");
        }
    });
    let mut next = 0;
    loop {
        let Some(primary) = world.current() else {
            // Only a restart abandoned because the run stops leaves no primary.
            break;
        };
        let due = schedule.get(next).map(|(time, _)| start + *time);
        tokio::select! {
            biased;
            () = world.stopped() => break,
            () = primary.life.dead() => {
                world.trace.event(format!("node {} died; restarting", primary.id));
                world.restart(&mut rng).await;
            }
            () = sleep_until(due) => {
                let action = schedule[next].1;
                next += 1;
                act(&world, &mut rng, &primary, action).await;
            }
            () = tokio::time::sleep(SUPERVISE_EVERY) => {
                if let Some(error) = primary.index.stopped() {
                    world.trace.event(format!(
                        "node {}'s index stopped ({error}); restarting it", primary.id
                    ));
                    primary.life.kill();
                    world.restart(&mut rng).await;
                }
            }
        }
    }
    if let Some(primary) = world.current() {
        primary.life.arm(None);
        primary.life.arm_failpoint(None);
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

async fn act(world: &Arc<World>, rng: &mut SimRng, primary: &Arc<Node>, action: Action) {
    match action {
        Action::Crash => {
            primary.life.kill();
            world
                .trace
                .event(format!("chaos: crash node {}", primary.id));
            world.restart(rng).await;
        }
        Action::Takeover => {
            world.trace.event(format!(
                "chaos: a new process takes over from node {}, which keeps running",
                primary.id
            ));
            let node = tokio::select! {
                biased;
                () = world.stopped() => return,
                node = world.open_node(Compaction::Background) => node,
            };
            world.set_primary(Some(node.clone()));
            world.trace.event(format!(
                "node {} is primary; node {} is a zombie",
                node.id, primary.id
            ));
            let (low, high) = world.cfg.chaos.zombie_life;
            let life = rng.millis(low, high);
            let zombie = primary.clone();
            let world = world.clone();
            tokio::spawn(async move {
                tokio::time::sleep(life).await;
                if zombie.life.kill() {
                    world
                        .trace
                        .event(format!("zombie node {} killed", zombie.id));
                }
            });
        }
        Action::Trigger => {
            let purpose = *rng.pick(&[Purpose::WalPut, Purpose::Index]);
            let count = rng.between(1, 30) as u32;
            world.trace.event(format!(
                "chaos: node {} will crash when its write #{count} of {purpose} lands",
                primary.id
            ));
            primary.life.arm(Some(CrashTrigger { purpose, count }));
        }
        Action::CompactorCrash => {
            let failpoint = *rng.pick(&[
                Failpoint::AfterDataFiles,
                Failpoint::AfterMetadata,
                Failpoint::AfterIndexCommit,
            ]);
            let count = rng.between(1, 4) as u32;
            world.trace.event(format!(
                "chaos: node {} will crash when its compactor reaches {failpoint:?} #{count}",
                primary.id
            ));
            primary
                .life
                .arm_failpoint(Some(FailpointTrigger { failpoint, count }));
        }
    }
}
