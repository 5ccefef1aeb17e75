//! A real node on a store that misbehaves: for each kind of fault (transient errors, timeouts
//! after the write took effect, dropped responses, latency), injected into the WAL's requests
//! (object puts and chunk gets) or into the index's (SlateDB's objects under `index/`),
//! concurrent idempotent producers and readers run, the store heals, and the result is
//! checked against a model built from the acknowledgements the producers received — not
//! from what the server says about itself:
//!
//! - every idempotent append is eventually acknowledged (its producer resends an append
//!   whose outcome is unknown under the same sequence number until it is), and each
//!   acknowledged row is readable at the offset it was acknowledged with;
//! - every visible row belongs to an acknowledged append, at the offsets of that
//!   acknowledgement: nothing unacknowledged is visible, nothing is duplicated, even for
//!   appends that failed first and were resent. The one exception is a plain append (no
//!   producer id, sent once) that returned an error: its outcome is unknown, so it may be
//!   visible, but only whole, once, and contiguous in each bucket;
//! - each bucket's offsets are dense and unique from 0;
//! - what a concurrent reader saw was never taken back: every (bucket, offset) a reader
//!   ever saw holds the same row at the end;
//! - it all still holds after a clean restart.
//!
//! If the index owner stops because an index write failed (it cannot know what became
//! durable), the test restarts the node on the healed store, as an operator would, and
//! requires nothing acknowledged to be lost.
//!
//! Each test has a seed that drives the injected faults, the node's ids and the workload;
//! it is printed and can be replayed with `INLET_FAULT_SEED=<seed>`. Thread scheduling still
//! decides the order of requests, so a replay reproduces the same mix of faults, not the
//! same interleaving.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use inlet::client::{Client, Producer};
use inlet::config::Config;
use inlet::node::Node;
use inlet_core::clock::{Env, SeededIdGen, SystemClock};
use inlet_store::{FaultConfig, FaultControl, FaultStore, Purpose};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const PRODUCERS: u64 = 4;
const APPENDS_PER_PRODUCER: u64 = 30;
const READERS: usize = 2;
const BUCKETS: u32 = 4;
/// Longest time faults stay on; they go off earlier once 80% of the appends are acked and
/// `MIN_FAULT_PHASE` has passed (so readers, too, meet the faults).
const FAULT_PHASE: Duration = Duration::from_secs(4);
const MIN_FAULT_PHASE: Duration = Duration::from_millis(1500);
/// Liveness bound only (a hang becomes a failure with a message); never a timing check.
const DEADLINE: Duration = Duration::from_secs(90);

/// Which requests get faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// WAL object puts and chunk gets.
    Wal,
    /// SlateDB's own objects under `index/`.
    Index,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    TransientError,
    TimeoutAfterWrite,
    DroppedResponse,
    Latency,
}

fn fault_config(fault: Fault, scope: Scope) -> FaultConfig {
    let purposes = match scope {
        Scope::Wal => vec![Purpose::WalPut, Purpose::ChunkGet],
        Scope::Index => vec![Purpose::Index],
    };
    let mut config = FaultConfig {
        purposes: Some(purposes),
        ..FaultConfig::default()
    };
    match fault {
        // Most WAL puts fail: some uploads exhaust their attempts, so producers
        // see failed appends and resend them. SlateDB retries each of its requests with a
        // 100 ms-1 s backoff, so the index gets a lower rate to keep the test short.
        Fault::TransientError => {
            config.transient_error = if scope == Scope::Wal { 0.6 } else { 0.25 }
        }
        Fault::TimeoutAfterWrite => config.timeout_after_write = 0.3,
        Fault::DroppedResponse => config.dropped_response = 0.3,
        Fault::Latency => {
            config.min_latency = Duration::from_millis(1);
            config.max_latency = Duration::from_millis(40);
        }
    }
    config
}

fn seed(default: u64) -> u64 {
    let seed = std::env::var("INLET_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("fault seed {seed} (replay with INLET_FAULT_SEED={seed})");
    seed
}

/// SplitMix64, for the workload's sizes and ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The ids of append `sequence` of producer `producer`: they say which append a row is from.
fn append_ids(seed: u64, producer: u64, sequence: u64) -> Vec<i64> {
    let rows = 1 + mix(seed ^ (producer << 32) ^ sequence) % 40;
    let first = ((producer + 1) * 1_000_000_000 + sequence * 10_000) as i64;
    (first..first + rows as i64).collect()
}

/// The (producer, sequence) an id was appended by.
fn append_of(id: i64) -> (u64, u64) {
    let id = id as u64;
    (id / 1_000_000_000 - 1, id % 1_000_000_000 / 10_000)
}

/// One acknowledged append, as its producer received it.
#[derive(Clone, Debug)]
struct Acked {
    ids: Vec<i64>,
    /// (bucket, base offset, rows)
    ranges: Vec<(u32, u64, u64)>,
    /// Sends of this append that returned an error before the one that acked it.
    failed_sends: u32,
}

/// What the clients observed: the model the result is checked against.
#[derive(Debug, Default)]
struct Model {
    acked: BTreeMap<(u64, u64), Acked>,
    /// Plain (not idempotent) appends that returned an error and were not sent again: their
    /// outcome is unknown, so each may be visible — but only whole, and only once.
    unknown: BTreeMap<(u64, u64), Vec<i64>>,
    /// Every row a reader saw: (bucket, offset) → id.
    observed: HashMap<(u32, u64), i64>,
    failed_sends: u64,
    reads_ok: u64,
    reads_failed: u64,
    /// One message of each distinct failure, for the report.
    errors: BTreeMap<String, u64>,
}

impl Model {
    fn note_error(&mut self, what: &str, error: &anyhow::Error) {
        // Keep the kind of error, not the object it names.
        let text = error.to_string();
        let end = ["wal/", "index/"]
            .iter()
            .filter_map(|path| text.find(path))
            .min()
            .unwrap_or(text.len())
            .min(100);
        let short = &text[..text.floor_char_boundary(end)];
        *self.errors.entry(format!("{what}: {short}")).or_default() += 1;
    }
}

type Shared = Arc<Mutex<Model>>;

fn lock(model: &Shared) -> std::sync::MutexGuard<'_, Model> {
    model.lock().expect("model lock")
}

/// The node and the faulty store under it; the node restarts on the same address.
struct Cluster {
    store: Arc<dyn ObjectStore>,
    faults: FaultControl,
    config: Config,
    node: Option<Node>,
    seed: u64,
    restarts: u64,
}

impl Cluster {
    async fn start(seed: u64, scope: Scope) -> Self {
        let store = FaultStore::new(InMemory::new(), FaultConfig::default(), seed);
        let faults = store.control();
        faults.set_enabled(false);
        let mut config = test_config();
        if scope == Scope::Wal {
            // A cache that holds a few pages, so readers GET chunks from the store (and meet
            // its faults) rather than finding what the writer uploaded in memory.
            config.cache.page_size = 4096;
            config.cache.memory_bytes = 16 * (4096 + 256);
        }
        let mut cluster = Self {
            store: Arc::new(store),
            faults,
            config,
            node: None,
            seed,
            restarts: 0,
        };
        cluster.boot().await;
        let addr = cluster.node.as_ref().expect("node started").addr();
        cluster.config.listen = addr;
        cluster
    }

    async fn boot(&mut self) {
        // Each incarnation draws its own ids, so no two name a WAL object alike.
        let env = Env {
            clock: Arc::new(SystemClock),
            ids: Arc::new(SeededIdGen::new(mix(self.seed ^ self.restarts))),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Node::start_with_store(&self.config, self.store.clone(), env.clone()).await {
                Ok(node) => {
                    self.node = Some(node);
                    return;
                }
                // The old incarnation's port may take a moment to be free again.
                Err(error) if Instant::now() < deadline => {
                    eprintln!("node start failed, retrying: {error:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("node does not start: {error:#}"),
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    /// Stops the node (one whose index owner stopped may not close cleanly) and starts a
    /// new one on the same store and address.
    async fn restart(&mut self) {
        let started = Instant::now();
        if let Some(node) = self.node.take()
            && let Err(error) = node.shutdown().await
        {
            eprintln!("shutdown of the stopped node: {error:#}");
        }
        let stopped = started.elapsed();
        self.restarts += 1;
        self.boot().await;
        eprintln!(
            "restarted: stopped in {stopped:.1?}, up again after {:.1?}",
            started.elapsed()
        );
    }

    async fn shutdown(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.expect("clean shutdown");
        }
    }
}

async fn connect_to(endpoint: &str, deadline: Instant) -> Client {
    loop {
        match Client::connect(endpoint).await {
            Ok(client) => return client,
            Err(error) => {
                assert!(Instant::now() < deadline, "cannot connect: {error:#}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Appends `APPENDS_PER_PRODUCER` batches through an idempotent producer, resending each
/// until it is acknowledged. `send` itself retries an append whose outcome is unknown a few
/// times; an error it returns still leaves the outcome unknown (the index owner may have
/// stopped after the rows became durable, the connection may have dropped after the
/// commit), so the same append goes again, under the same sequence number, until it is
/// acknowledged.
async fn produce(endpoint: String, seed: u64, producer: u64, model: Shared, deadline: Instant) {
    let client = connect_to(&endpoint, deadline).await;
    let id = mix(seed ^ 0xA11CE ^ producer) | 1;
    let mut sender = Producer::with_id(client, "db", "t", id);
    for sequence in 1..=APPENDS_PER_PRODUCER {
        let ids = append_ids(seed, producer, sequence);
        let rows = batch(ids.iter().copied());
        let mut failed_sends = 0;
        loop {
            match sender.send(&schema(), std::slice::from_ref(&rows)).await {
                Ok(results) => {
                    let ranges = results
                        .iter()
                        .map(|r| (r.bucket, r.base_offset, r.row_count))
                        .collect();
                    let acked = Acked {
                        ids,
                        ranges,
                        failed_sends,
                    };
                    let previous = lock(&model).acked.insert((producer, sequence), acked);
                    assert!(previous.is_none(), "append acked twice");
                    break;
                }
                Err(error) => {
                    let message = error.to_string();
                    // Rejections for what the append is would mean the producer protocol
                    // broke (e.g. a stale sequence): no resend can fix that.
                    assert!(
                        !message.contains("(InvalidArgument)") && !message.contains("(NotFound)"),
                        "producer {producer} append {sequence} rejected: {message}"
                    );
                    assert!(
                        Instant::now() < deadline,
                        "producer {producer} append {sequence} never acked: {message}"
                    );
                    failed_sends += 1;
                    {
                        let mut model = lock(&model);
                        model.failed_sends += 1;
                        model.note_error("append", &error);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Appends `APPENDS_PER_PRODUCER` batches without a producer id, once each: an append that
/// fails is not sent again, and its outcome stays unknown. (One that could not even connect,
/// while the node restarts, was never sent: it waits and goes again.)
async fn produce_plain(
    endpoint: String,
    seed: u64,
    producer: u64,
    model: Shared,
    deadline: Instant,
) {
    let mut client = connect_to(&endpoint, deadline).await;
    for sequence in 1..=APPENDS_PER_PRODUCER {
        let ids = append_ids(seed, producer, sequence);
        let rows = batch(ids.iter().copied());
        let mut result = client
            .append("db", "t", &schema(), std::slice::from_ref(&rows))
            .await;
        while let Err(error) = &result
            && error.to_string().contains("tcp connect error")
        {
            assert!(Instant::now() < deadline, "node never came back: {error}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            result = client
                .append("db", "t", &schema(), std::slice::from_ref(&rows))
                .await;
        }
        match result {
            Ok(results) => {
                let ranges = results
                    .iter()
                    .map(|r| (r.bucket, r.base_offset, r.row_count))
                    .collect();
                let acked = Acked {
                    ids,
                    ranges,
                    failed_sends: 0,
                };
                lock(&model).acked.insert((producer, sequence), acked);
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    !message.contains("(InvalidArgument)") && !message.contains("(NotFound)"),
                    "plain append {sequence} rejected: {message}"
                );
                let mut model = lock(&model);
                model.unknown.insert((producer, sequence), ids);
                model.note_error("plain append", &error);
            }
        }
    }
}

/// Rows of one read by (bucket, offset), checked dense from 0 per bucket and free of
/// duplicate ids.
fn positions(rows: &[Row]) -> BTreeMap<(u32, u64), i64> {
    let mut by_position = BTreeMap::new();
    let mut ids = HashMap::new();
    for (bucket, offset, id, _) in rows {
        let earlier = by_position.insert((*bucket, *offset), *id);
        assert!(
            earlier.is_none(),
            "bucket {bucket} offset {offset} read twice"
        );
        if let Some(other) = ids.insert(*id, (*bucket, *offset)) {
            panic!("row {id} is visible twice: at {other:?} and at ({bucket}, {offset})");
        }
    }
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    for (bucket, offset) in by_position.keys() {
        let expected = next.entry(*bucket).or_default();
        assert_eq!(*offset, *expected, "bucket {bucket}: offsets not dense");
        *expected += 1;
    }
    by_position
}

/// Reads the whole table again and again while the producers run; every successful read
/// must be a consistent prefix of the final table. Failed reads are allowed (a chunk GET or
/// an index read may fail), corrupt ones are not.
async fn read_repeatedly(endpoint: String, model: Shared, stop: Arc<AtomicBool>) {
    // The channel reconnects by itself when the node restarts.
    let mut client = connect_to(&endpoint, Instant::now() + DEADLINE).await;
    while !stop.load(Ordering::SeqCst) {
        match client.fetch_all(fetch_request("db", "t")).await {
            Ok(batches) => {
                let seen = positions(&rows_of(&batches));
                let mut model = lock(&model);
                model.reads_ok += 1;
                for (position, id) in seen {
                    let earlier = *model.observed.entry(position).or_insert(id);
                    assert_eq!(earlier, id, "{position:?} changed between two reads");
                }
            }
            Err(error) => {
                let message = error.to_string();
                assert!(
                    !message.contains("(DataLoss)"),
                    "a read saw corrupt data: {message}"
                );
                let mut model = lock(&model);
                model.reads_failed += 1;
                model.note_error("read", &error);
            }
        }
        // Reading the whole table through a cache that misses costs CPU the producers need.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The table as it is now must be exactly what the producers were told, plus nothing.
/// Returns how many plain appends whose outcome was unknown are visible.
async fn check_against_model(endpoint: &str, model: &Model, deadline: Instant) -> usize {
    let mut client = connect_to(endpoint, deadline).await;
    let rows = read_all(&mut client, "db", "t").await;
    let table = positions(&rows);

    // Every acked row is where its ack said, and the ack covers the whole append.
    let mut covered: HashMap<(u32, u64), (u64, u64)> = HashMap::new();
    for (&(producer, sequence), acked) in &model.acked {
        let mut found = Vec::new();
        for &(bucket, base, count) in &acked.ranges {
            let mut previous = None;
            for offset in base..base + count {
                let Some(&id) = table.get(&(bucket, offset)) else {
                    panic!(
                        "append {sequence} of producer {producer} was acked at bucket {bucket} \
                         offsets {base}..{} but offset {offset} is not readable",
                        base + count
                    );
                };
                assert_eq!(
                    append_of(id),
                    (producer, sequence),
                    "bucket {bucket} offset {offset} holds row {id}, not one of append \
                     {sequence} of producer {producer} that was acked there"
                );
                assert!(previous < Some(id), "rows of one append out of order");
                previous = Some(id);
                let other = covered.insert((bucket, offset), (producer, sequence));
                assert!(
                    other.is_none(),
                    "two acks name bucket {bucket} offset {offset}"
                );
                found.push(id);
            }
        }
        found.sort_unstable();
        assert_eq!(
            found, acked.ids,
            "append {sequence} of producer {producer}: acked rows differ from those sent"
        );
    }
    // A plain append whose outcome is unknown is visible whole, in order, or not at all.
    let by_id: HashMap<i64, (u32, u64)> = table.iter().map(|(p, id)| (*id, *p)).collect();
    let mut visible_unknown = 0;
    for (&(producer, sequence), ids) in &model.unknown {
        let visible: Vec<(u32, u64)> = ids.iter().filter_map(|id| by_id.get(id)).copied().collect();
        if visible.is_empty() {
            continue;
        }
        visible_unknown += 1;
        assert_eq!(
            visible.len(),
            ids.len(),
            "plain append {sequence} of producer {producer} is partly visible"
        );
        let mut per_bucket: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for &(bucket, offset) in &visible {
            per_bucket.entry(bucket).or_default().push(offset);
            let other = covered.insert((bucket, offset), (producer, sequence));
            assert!(
                other.is_none(),
                "bucket {bucket} offset {offset} claimed twice"
            );
        }
        for (bucket, offsets) in per_bucket {
            let contiguous = offsets.windows(2).all(|w| w[1] == w[0] + 1);
            assert!(
                contiguous,
                "plain append {sequence} split in bucket {bucket}"
            );
        }
    }
    // Nothing else is visible: no row of an append that was never acked, no copy.
    for (position, id) in &table {
        assert!(
            covered.contains_key(position),
            "row {id} at {position:?} is visible but no append was acked there"
        );
    }
    assert_eq!(covered.len(), table.len());
    // What readers saw along the way was never taken back.
    for (position, id) in &model.observed {
        assert_eq!(
            table.get(position),
            Some(id),
            "a reader saw row {id} at {position:?}, which is gone now"
        );
    }
    // The tails the server reports agree with the rows.
    let latest = latest_offsets(&mut client, "db", "t").await;
    for (bucket, latest) in latest.iter().enumerate() {
        let rows = table.keys().filter(|(b, _)| *b == bucket as u32).count() as u64;
        assert_eq!(*latest, rows, "bucket {bucket}: tail and rows disagree");
    }
    visible_unknown
}

/// Whether the index owner still commits; it stops for good after a failed index write.
async fn index_owner_alive(endpoint: &str, deadline: Instant) -> Result<(), String> {
    let mut client = connect_to(endpoint, deadline).await;
    client
        .create_database("probe", true)
        .await
        .map_err(|e| e.to_string())
}

async fn run(fault: Fault, scope: Scope, default_seed: u64) {
    let seed = seed(default_seed);
    let deadline = Instant::now() + DEADLINE;
    let mut cluster = Cluster::start(seed, scope).await;
    let endpoint = cluster.endpoint();
    {
        let mut client = connect_to(&endpoint, deadline).await;
        create_table(&mut client, "db", "t", BUCKETS, &["id"]).await;
    }
    cluster.faults.set_config(fault_config(fault, scope));
    cluster.faults.set_enabled(true);
    let started = Instant::now();

    let model: Shared = Arc::default();
    let mut producers: Vec<JoinHandle<()>> = (0..PRODUCERS)
        .map(|producer| {
            let endpoint = endpoint.clone();
            tokio::spawn(produce(endpoint, seed, producer, model.clone(), deadline))
        })
        .collect();
    producers.push(tokio::spawn(produce_plain(
        endpoint.clone(),
        seed,
        PRODUCERS,
        model.clone(),
        deadline,
    )));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<JoinHandle<()>> = (0..READERS)
        .map(|_| {
            tokio::spawn(read_repeatedly(
                endpoint.clone(),
                model.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let total = (PRODUCERS + 1) * APPENDS_PER_PRODUCER;
    let acked = |model: &Shared| lock(model).acked.len() as u64;
    // Under faults: the workload runs, and the node restarts halfway, so the index is also
    // opened (its manifest, WAL and fence written and read) while its requests fail.
    while acked(&model) < total * 2 / 5 && started.elapsed() < FAULT_PHASE / 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.restart().await;
    while (acked(&model) < total * 4 / 5 || started.elapsed() < MIN_FAULT_PHASE)
        && started.elapsed() < FAULT_PHASE
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.faults.set_enabled(false);
    let faults = cluster.faults.counts();
    let acked_under_faults = acked(&model);
    let healed_after = started.elapsed();

    // Healed. An index owner that stopped on a failed write stays stopped until restarted.
    let mut stops = Vec::new();
    while producers.iter().any(|p| !p.is_finished()) {
        assert!(Instant::now() < deadline, "producers did not finish");
        if let Err(error) = index_owner_alive(&endpoint, deadline).await
            && (error.contains("stopped")
                || error.contains("index storage")
                || error.contains("fenced"))
        {
            eprintln!("index owner stopped ({error}); restarting the node");
            stops.push(error);
            cluster.restart().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for producer in producers {
        producer.await.expect("producer task");
    }
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.expect("reader task");
    }

    let model = std::mem::take(&mut *lock(&model));
    let retried = model.acked.values().filter(|a| a.failed_sends > 0).count();
    eprintln!(
        "{fault:?} on {scope:?}: {faults:?}; {} appends acked ({acked_under_faults} under \
         faults, {retried} after failed sends, {} failed sends), {} plain appends failed; reads {} ok, {} failed; \
         restarts {} (index owner stopped {} times); healed after {healed_after:.1?}, \
         done after {:.1?}",
        model.acked.len(),
        model.failed_sends,
        model.unknown.len(),
        model.reads_ok,
        model.reads_failed,
        cluster.restarts,
        stops.len(),
        started.elapsed(),
    );
    for (error, count) in &model.errors {
        eprintln!("  {count} × {error}");
    }
    let plain_unknown = model.unknown.len() as u64;
    assert_eq!(
        model.acked.len() as u64,
        total - plain_unknown,
        "every idempotent append acked"
    );
    let visible_unknown = check_against_model(&endpoint, &model, deadline).await;
    eprintln!("  plain appends that failed but are visible: {visible_unknown}");

    // Nothing acknowledged depends on this process: a restart finds the same rows.
    cluster.restart().await;
    let after_restart = check_against_model(&endpoint, &model, deadline).await;
    assert_eq!(after_restart, visible_unknown);

    // The faults did happen (a test whose faults never fire shows nothing).
    let fired = match fault {
        Fault::TransientError => faults.transient_errors,
        Fault::TimeoutAfterWrite => faults.timeouts_after_write,
        Fault::DroppedResponse => faults.dropped_responses,
        Fault::Latency => faults.delayed_requests,
    };
    assert!(fired > 0, "no {fault:?} was injected: {faults:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_transient_errors() {
    run(Fault::TransientError, Scope::Wal, 0xFA01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_timeouts_after_write() {
    run(Fault::TimeoutAfterWrite, Scope::Wal, 0xFA02).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_dropped_responses() {
    run(Fault::DroppedResponse, Scope::Wal, 0xFA03).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_latency() {
    run(Fault::Latency, Scope::Wal, 0xFA04).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_transient_errors() {
    run(Fault::TransientError, Scope::Index, 0xFA05).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_timeouts_after_write() {
    run(Fault::TimeoutAfterWrite, Scope::Index, 0xFA06).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_dropped_responses() {
    run(Fault::DroppedResponse, Scope::Index, 0xFA07).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_latency() {
    run(Fault::Latency, Scope::Index, 0xFA08).await;
}

fn request(
    ids: std::ops::Range<i64>,
    producer: u64,
    sequence: u64,
) -> inlet_proto::v1::AppendRequest {
    inlet_proto::v1::AppendRequest {
        path: Some(inlet::client::path("db", "t")),
        batches_ipc: inlet_core::ipc::batches_to_ipc(&schema(), &[batch(ids)]).expect("ipc"),
        producer_id: producer,
        sequence,
        ..Default::default()
    }
}

/// A store that refuses every WAL put: each upload gives up after its attempts, and the
/// append fails with a clear, retryable error instead of waiting; nothing becomes visible and
/// no offset is taken. Once the store is back, the resent idempotent append lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_wal_store_fails_appends_clearly_and_shows_nothing() {
    let seed = seed(0xFA09);
    let deadline = Instant::now() + DEADLINE;
    let cluster = Cluster::start(seed, Scope::Wal).await;
    let endpoint = cluster.endpoint();
    let mut client = connect_to(&endpoint, deadline).await;
    create_table(&mut client, "db", "t", 2, &["id"]).await;
    cluster.faults.set_config(FaultConfig {
        transient_error: 1.0,
        purposes: Some(vec![Purpose::WalPut]),
        ..FaultConfig::default()
    });
    cluster.faults.set_enabled(true);

    let error = client
        .append("db", "t", &schema(), &[batch(0..10)])
        .await
        .expect_err("no wal object can be written");
    let message = error.to_string();
    assert!(message.contains("wal upload failed"), "{message}");
    assert!(message.contains("after 5 attempts"), "{message}");
    assert!(message.contains("(Unavailable)"), "{message}");
    let status = client
        .raw()
        .append(request(100..120, 5, 1))
        .await
        .expect_err("the idempotent append fails too");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // Each upload made exactly its five attempts, no more.
    assert_eq!(cluster.faults.counts().transient_errors, 10);
    assert!(read_all(&mut client, "db", "t").await.is_empty());
    assert_eq!(latest_offsets(&mut client, "db", "t").await, vec![0, 0]);

    cluster.faults.set_enabled(false);
    let landed = client
        .raw()
        .append(request(100..120, 5, 1))
        .await
        .expect("the resend lands once the store is back")
        .into_inner();
    let again = client
        .raw()
        .append(request(100..120, 5, 1))
        .await
        .expect("and a second resend")
        .into_inner();
    assert_eq!(again, landed, "the second resend gets the same offsets");
    let rows = read_all(&mut client, "db", "t").await;
    let mut ids: Vec<i64> = rows.iter().map(|r| r.2).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (100..120).collect::<Vec<_>>(),
        "only the resent rows, once"
    );
    positions(&rows);
    let from_zero = landed.buckets.iter().map(|b| b.base_offset).max();
    assert_eq!(from_zero, Some(0), "the failed appends took no offsets");
    cluster.shutdown().await;
}

/// A store that refuses every index request: SlateDB retries its requests without bound
/// (the default), so commits wait — nothing is acked while nothing can be made durable —
/// and they complete once the store is back, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_index_store_acks_nothing_and_recovers_without_a_restart() {
    let seed = seed(0xFA0A);
    let deadline = Instant::now() + DEADLINE;
    let cluster = Cluster::start(seed, Scope::Index).await;
    let endpoint = cluster.endpoint();
    let mut client = connect_to(&endpoint, deadline).await;
    create_table(&mut client, "db", "t", 2, &["id"]).await;
    cluster.faults.set_config(FaultConfig {
        transient_error: 1.0,
        purposes: Some(vec![Purpose::Index]),
        ..FaultConfig::default()
    });
    cluster.faults.set_enabled(true);

    let mut sender = Producer::with_id(connect_to(&endpoint, deadline).await, "db", "t", 9);
    let mut sending =
        tokio::spawn(async move { (sender.send(&schema(), &[batch(0..25)]).await, sender) });
    // While no index write can land, the append must not be acked.
    let early = tokio::time::timeout(Duration::from_millis(1500), &mut sending).await;
    if let Ok(finished) = early {
        let (result, _) = finished.expect("send task");
        assert!(result.is_err(), "acked while the index could not write");
    }
    assert!(cluster.faults.counts().transient_errors > 0);
    cluster.faults.set_enabled(false);
    let (result, mut sender) = sending.await.expect("send task");
    let acked = match result {
        Ok(acked) => acked,
        // Had the commit been given up on, the resend would answer for it.
        Err(_) => sender
            .send(&schema(), &[batch(0..25)])
            .await
            .expect("the resend is acked"),
    };
    let rows = read_all(&mut client, "db", "t").await;
    let table = positions(&rows);
    assert_eq!(table.len(), 25, "the rows landed once");
    for result in &acked {
        for offset in result.base_offset..result.base_offset + result.row_count {
            assert!(table.contains_key(&(result.bucket, offset)));
        }
    }
    // The index owner kept running: it still commits.
    index_owner_alive(&endpoint, deadline)
        .await
        .expect("the index owner did not stop");
    cluster.shutdown().await;
}
