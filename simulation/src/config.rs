//! Everything a run does, drawn from its seed: the workload, the settings of the code under
//! test, the faults and the chaos schedule. The same seed always gives the same config.

use std::time::Duration;

use inlet_cache::CacheOptions;
use inlet_core::table::AggregateFn;
use inlet_store::FaultConfig;
use inlet_writer::WriterOptions;

use crate::data::COLUMNS;
use crate::rng::SimRng;

/// How hard a run is on the code: drawn from the seed unless forced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Latency only: the baseline.
    Calm,
    /// Store faults: errors, timeouts after writes, lost responses, storms.
    Faulty,
    /// Crashes, crash triggers and takeovers, with light store faults.
    Crashy,
    /// Everything at once.
    Chaotic,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Calm,
        Profile::Faulty,
        Profile::Crashy,
        Profile::Chaotic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Calm => "calm",
            Profile::Faulty => "faulty",
            Profile::Crashy => "crashy",
            Profile::Chaotic => "chaotic",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    fn store_faults(self) -> bool {
        matches!(self, Profile::Faulty | Profile::Chaotic)
    }

    fn crashes(self) -> bool {
        matches!(self, Profile::Crashy | Profile::Chaotic)
    }
}

/// How a run is asked for, besides its seed.
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// Forces the profile instead of drawing it from the seed.
    pub profile: Option<Profile>,
    /// Turns on `IndexOptions::ack_before_durable`: the bug the harness must catch.
    pub ack_before_durable: bool,
    /// Prints every trace event as it happens.
    pub verbose: bool,
}

#[derive(Clone, Debug)]
pub struct TableSpec {
    pub name: String,
    pub buckets: u32,
    /// Rows are routed by the `key` column; otherwise each append goes to one bucket,
    /// round-robin.
    pub keyed: bool,
    /// `lake.freshness` when the table has `lake.enabled=true` (its rows are tiered into
    /// the lake by the compactors), `None` otherwise.
    pub lake: Option<Duration>,
    /// `retention` of a table that is not tiered: its WAL chunks older than this expire
    /// (the compactors ask the index owner). Reads of it set `reset_to_earliest`.
    pub retention: Option<Duration>,
}

/// A table that lives only part of the run (`scratch::run`): created with the others,
/// written by one producer the model does not track, dropped at `drop_at`, and purged by
/// the compactors once the drop grace passed.
#[derive(Clone, Debug)]
pub struct ScratchSpec {
    pub buckets: u32,
    /// Tiered into the lake (freshness 500 ms).
    pub lake: bool,
    /// Dropped with `purge`: its lake table goes too.
    pub purge: bool,
    /// When it is dropped (simulated time since the start).
    pub drop_at: Duration,
    /// How long after a drop the compactors purge it (`CompactorOptions::drop_grace`).
    pub drop_grace: Duration,
    /// Partitioned by the `row` column (one partition per row number of an append, created
    /// by the appends): at `drop_at` half its partitions are dropped instead of the table,
    /// and it is never tiered.
    pub partitioned: bool,
}

/// A column change of one log table mid-run (`evolve`): `row` widened from int32 to int64,
/// or `flag` dropped and added again as a new column.
#[derive(Clone, Debug)]
pub struct ColumnChangeSpec {
    /// Index into `SimConfig::tables`.
    pub table: usize,
    /// When it is widened (simulated time since the start).
    pub at: Duration,
}

/// Lake upkeep in every round of the run: manifests merged at a count, snapshots kept.
#[derive(Clone, Copy, Debug)]
pub struct UpkeepSpec {
    /// `LakeWriteOptions::merge_manifests_at` (2-8; the default is 100, which no run reaches).
    pub merge_manifests_at: usize,
    /// `lake.snapshots.retained` of every lake table (1-4).
    pub snapshots_retained: usize,
    /// `lake.compaction.min_files` (0, off, in a quarter of runs; else 2-4: every file of a
    /// run is small next to the default target, so rounds rewrite often, with readers and
    /// followers reading the files they replace).
    pub compaction_min_files: usize,
}

#[derive(Clone, Debug)]
pub struct ProducerSpec {
    pub id: u64,
    pub table: usize,
    pub max_rows: u32,
    pub think: (u64, u64),
    /// How long the client waits for an ack before it treats the outcome as unknown.
    pub timeout: Duration,
    /// Attempts per append before the producer gives up on it (its outcome stays unknown).
    pub attempts: u32,
}

#[derive(Clone, Debug)]
pub struct FollowerSpec {
    pub table: usize,
    pub bucket: u32,
    /// Table columns to fetch, in this order; empty fetches all.
    pub projection: Vec<usize>,
    /// Pause after each batch: a slow consumer.
    pub pause: Duration,
}

#[derive(Clone, Debug)]
pub struct ReaderSpec {
    pub interval: (u64, u64),
    /// Pause after each batch: a slow consumer.
    pub pause: Duration,
}

/// The merge engine of a primary-key table (`merge.engine`), as the simulation draws it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineSpec {
    LastRow,
    FirstRow,
    /// Versioned by the `seq` column (each producer's sequence numbers, so producers of one
    /// table interleave versions and rows of one append share theirs: equal is ignored).
    Versioned,
    /// Aggregation of `payload`, `score` and `flag` by these functions (the identity columns
    /// keep the default, `last_non_null_value`, so they name the newest write).
    Aggregation {
        payload: AggregateFn,
        score: AggregateFn,
        flag: AggregateFn,
    },
}

impl EngineSpec {
    pub fn name(&self) -> &'static str {
        match self {
            Self::LastRow => "last_row",
            Self::FirstRow => "first_row",
            Self::Versioned => "versioned",
            Self::Aggregation { .. } => "aggregation",
        }
    }

    /// Whether the engine takes partial updates (as `MergeEngine::allows_partial_updates`).
    pub fn allows_partial(&self) -> bool {
        matches!(self, Self::LastRow | Self::Aggregation { .. })
    }
}

/// A primary-key table: keyed by `key`, with a small key space so keys repeat.
#[derive(Clone, Debug)]
pub struct PkTableSpec {
    pub name: String,
    pub buckets: u32,
    pub engine: EngineSpec,
    /// Keys are `0..keys`.
    pub keys: u32,
    /// `lake.freshness` when the table is tiered (its lake table holds the current rows),
    /// `None` otherwise.
    pub lake: Option<Duration>,
}

/// A producer of upserts, partial upserts and deletes to one primary-key table.
#[derive(Clone, Debug)]
pub struct PkProducerSpec {
    pub id: u64,
    pub table: usize,
    pub max_rows: u32,
    pub think: (u64, u64),
    pub timeout: Duration,
    pub attempts: u32,
    /// Share of writes that are deletes, and of partial upserts (where the engine allows).
    pub deletes: f64,
    pub partials: f64,
}

/// A client of primary-key tables: lookups and changelog reads.
#[derive(Clone, Debug)]
pub struct PkReaderSpec {
    pub interval: (u64, u64),
    pub pause: Duration,
}

/// The primary-key part of a run: empty in most runs (see `PK_CHANCE`).
#[derive(Clone, Debug, Default)]
pub struct PkSpec {
    pub tables: Vec<PkTableSpec>,
    pub producers: Vec<PkProducerSpec>,
    pub readers: Vec<PkReaderSpec>,
}

/// The chance a run has primary-key tables. Below one, so the fixed suite's wall time stays
/// close to what it was (a run with them does more work).
pub const PK_CHANCE: f64 = 0.35;

impl PkSpec {
    /// Drawn from a stream of its own, after everything else, so a seed's log tables,
    /// producers, readers, settings, faults and chaos stay what they were before.
    fn draw(rng: &mut SimRng) -> Self {
        if !rng.chance(PK_CHANCE) {
            return Self::default();
        }
        let tables: Vec<PkTableSpec> = (0..rng.between(1, 2))
            .map(|i| {
                let engine = match rng.below(4) {
                    0 => EngineSpec::LastRow,
                    1 => EngineSpec::FirstRow,
                    2 => EngineSpec::Versioned,
                    _ => EngineSpec::Aggregation {
                        payload: *rng.pick(&[
                            AggregateFn::LastNonNullValue,
                            AggregateFn::FirstValue,
                            AggregateFn::Max,
                        ]),
                        score: *rng.pick(&[
                            AggregateFn::Sum,
                            AggregateFn::Sum,
                            AggregateFn::Max,
                            AggregateFn::Min,
                            AggregateFn::FirstNonNullValue,
                        ]),
                        flag: *rng.pick(&[
                            AggregateFn::BoolAnd,
                            AggregateFn::BoolOr,
                            AggregateFn::LastValue,
                        ]),
                    },
                };
                PkTableSpec {
                    name: format!("k{i}"),
                    buckets: rng.between(1, 3) as u32,
                    engine,
                    keys: rng.log_between(2, 40) as u32,
                    lake: rng
                        .chance(0.5)
                        .then(|| Duration::from_millis(rng.log_between(100, 3000))),
                }
            })
            .collect();
        let producers = (0..rng.between(1, 3))
            .map(|_| {
                let low = rng.log_between(5, 150);
                PkProducerSpec {
                    id: rng.next_u64() | 1,
                    table: rng.below(tables.len()),
                    max_rows: rng.log_between(1, 12) as u32,
                    think: (low, low * rng.between(1, 4)),
                    timeout: Duration::from_millis(rng.log_between(20, 4000)),
                    attempts: rng.log_between(1, 25) as u32,
                    deletes: rng.unit() * 0.3,
                    partials: rng.unit() * 0.4,
                }
            })
            .collect();
        let readers = (0..rng.between(1, 2))
            .map(|_| {
                let low = rng.log_between(50, 800);
                PkReaderSpec {
                    interval: (low, low * 2),
                    pause: pause(rng),
                }
            })
            .collect();
        Self {
            tables,
            producers,
            readers,
        }
    }
}

/// The chaos schedule's parameters.
#[derive(Clone, Debug)]
pub struct ChaosSpec {
    pub crashes: u32,
    pub takeovers: u32,
    pub triggers: u32,
    pub storms: u32,
    pub restart_delay: (u64, u64),
    pub zombie_life: (u64, u64),
    /// Compactor crashes at a failpoint of a round (`inlet_compactor::Failpoint`).
    pub compactor_crashes: u32,
}

/// How every process's compactor runs: the harness calls its `run_once` and
/// `collect_wal_garbage` itself, at intervals drawn from these ranges (ms).
#[derive(Clone, Debug)]
pub struct CompactorSpec {
    pub pass_every: (u64, u64),
    pub gc_every: (u64, u64),
    pub lease_ttl: Duration,
    pub wal_upload_grace: Duration,
    pub wal_read_grace: Duration,
    pub orphan_grace: Duration,
    pub max_round_bytes: u64,
    pub max_round_rows: u64,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub profile: Profile,
    pub ack_before_durable: bool,
    pub verbose: bool,
    /// Simulated time during which producers start appends and chaos happens.
    pub duration: Duration,
    pub tables: Vec<TableSpec>,
    /// A table dropped during the run, if any.
    pub scratch: Option<ScratchSpec>,
    pub widening: Option<ColumnChangeSpec>,
    /// `flag` of one log table dropped and added again in one ALTER: a new column, null in
    /// the rows written before (reads that started before the change see the old column).
    pub flag_replacement: Option<ColumnChangeSpec>,
    pub upkeep: UpkeepSpec,
    pub producers: Vec<ProducerSpec>,
    pub followers: Vec<FollowerSpec>,
    pub readers: Vec<ReaderSpec>,
    pub max_payload: u32,
    pub writer: WriterOptions,
    pub flush_interval: Duration,
    pub object_store_max_retries: Option<u32>,
    pub cache: CacheOptions,
    pub faults: FaultConfig,
    pub storm: FaultConfig,
    pub chaos: ChaosSpec,
    pub compactor: CompactorSpec,
    /// Whether each process's writer and reader reach its index over the wire module
    /// (`inlet-wire`, gRPC on in-memory pipes) as a writer or reader process would, instead
    /// of in process.
    pub remote_roles: bool,
    /// Primary-key tables and their clients, besides the log tables above.
    pub pk: PkSpec,
}

impl SimConfig {
    pub fn from_seed(seed: u64, options: &SimOptions) -> Self {
        let root = SimRng::new(seed);
        let mut rng = root.fork("config", 0);
        let profile = options.profile.unwrap_or_else(|| *rng.pick(&Profile::ALL));

        let mut tables: Vec<TableSpec> = (0..rng.between(1, 3))
            .map(|i| TableSpec {
                name: format!("t{i}"),
                buckets: rng.between(1, 4) as u32,
                keyed: rng.chance(0.5),
                lake: None,
                retention: None,
            })
            .collect();
        let mut lake = root.fork("lake", 0);
        for table in &mut tables {
            if lake.chance(0.6) {
                table.lake = Some(lake.millis(500, 3000));
            }
        }
        let max_payload = rng.log_between(8, 600) as u32;
        let producers = (0..rng.between(2, 6))
            .map(|i| {
                let mut p = root.fork("producer-spec", i);
                let low = p.log_between(2, 100);
                ProducerSpec {
                    id: p.next_u64() | 1,
                    table: p.below(tables.len()),
                    max_rows: p.log_between(1, 64) as u32,
                    think: (low, low * p.between(1, 4)),
                    timeout: Duration::from_millis(p.log_between(20, 4000)),
                    attempts: p.log_between(1, 25) as u32,
                }
            })
            .collect();
        // Followers: the first is drawn as when a run had at most one (so every other setting
        // of a seed stays what it was), up to three more from a stream of their own, each on
        // that first one's stream (which they then share) or on any other. Both cases are
        // deterministic: the sequencer wakes streams in order (`Sequencer::publish`), and
        // every follower waits on a channel of its own (`tails::OrderedTails`).
        let tailed = rng.below(tables.len());
        let tailed = (tailed, rng.below(tables[tailed].buckets as usize) as u32);
        let mut followers: Vec<FollowerSpec> = (0..rng.between(0, 1))
            .map(|_| FollowerSpec {
                table: tailed.0,
                bucket: tailed.1,
                projection: projection(&mut rng),
                pause: pause(&mut rng),
            })
            .collect();
        let mut more = root.fork("followers", 0);
        for _ in 0..more.between(0, 3) {
            let (table, bucket) = if more.chance(0.5) {
                tailed
            } else {
                let table = more.below(tables.len());
                (table, more.below(tables[table].buckets as usize) as u32)
            };
            followers.push(FollowerSpec {
                table,
                bucket,
                projection: projection(&mut more),
                pause: pause(&mut more),
            });
        }
        let readers = (0..rng.between(1, 3))
            .map(|_| {
                let low = rng.log_between(100, 1500);
                ReaderSpec {
                    interval: (low, low * 2),
                    pause: pause(&mut rng),
                }
            })
            .collect();

        let max_buffered = rng.log_between(256 << 10, 8 << 20) as usize;
        // Mostly a size trigger around what a linger interval gathers here (an append is
        // about 1-5 KiB in memory), so flushes by size race the linger timer
        // (deterministically: the flusher's `select!` is biased); otherwise none, so only
        // the timer flushes. From a stream of its own, so every other setting of a seed
        // stays what it was before size triggers were drawn.
        // From a stream of its own, so every other setting of a seed stays what it was.
        let remote_roles = root.fork("remote-roles", 0).chance(0.5);
        let mut flush = root.fork("flush-bytes", 0);
        let flush_bytes = if flush.chance(0.75) {
            flush.log_between(512, 16 << 10) as usize
        } else {
            max_buffered + (8 << 10)
        };
        let writer = WriterOptions {
            linger: Duration::from_millis(rng.log_between(1, 250)),
            flush_bytes,
            max_buffered_bytes: max_buffered,
            overload_timeout: Duration::from_millis(rng.log_between(50, 5000)),
            max_inflight_uploads: rng.between(1, 4) as usize,
            upload_attempts: rng.between(1, 5) as u32,
            upload_timeout: Duration::from_millis(rng.log_between(100, 10_000)),
            upload_min_backoff: Duration::from_millis(rng.log_between(1, 100)),
            upload_max_backoff: Duration::from_millis(rng.log_between(100, 2_000)),
            ..WriterOptions::default()
        };
        let page_size = *rng.pick(&[512usize, 4096, 16 << 10, 64 << 10]);
        let cache = CacheOptions {
            page_size,
            max_get_bytes: page_size * rng.log_between(1, 64) as usize,
            memory_bytes: (page_size + 512) * rng.log_between(2, 2048) as usize,
            ..CacheOptions::default()
        };

        let max_latency = rng.log_between(1, 150);
        let mut faults = FaultConfig {
            min_latency: Duration::from_millis(rng.between(0, max_latency / 4)),
            max_latency: Duration::from_millis(max_latency),
            ..FaultConfig::default()
        };
        if profile.store_faults() {
            faults.transient_error = rng.unit() * 0.04;
            faults.timeout_after_write = rng.unit() * 0.04;
            faults.dropped_response = rng.unit() * 0.04;
        } else if profile.crashes() {
            faults.transient_error = rng.unit() * 0.01;
            faults.timeout_after_write = rng.unit() * 0.01;
            faults.dropped_response = rng.unit() * 0.01;
        }
        let storm = FaultConfig {
            transient_error: 0.2 + rng.unit() * 0.4,
            timeout_after_write: 0.1 + rng.unit() * 0.3,
            dropped_response: 0.1 + rng.unit() * 0.3,
            min_latency: faults.min_latency,
            max_latency: faults.max_latency * 4,
            purposes: None,
        };
        let chaos = ChaosSpec {
            crashes: if profile.crashes() {
                rng.between(1, 3) as u32
            } else {
                0
            },
            takeovers: if profile.crashes() {
                rng.between(0, 2) as u32
            } else {
                0
            },
            triggers: if profile.crashes() {
                rng.between(0, 3) as u32
            } else {
                0
            },
            storms: if profile.store_faults() {
                rng.between(0, 2) as u32
            } else {
                0
            },
            restart_delay: (0, rng.log_between(1, 2000)),
            zombie_life: (rng.log_between(10, 500), rng.log_between(500, 4000)),
            compactor_crashes: if profile.crashes() && tables.iter().any(|t| t.lake.is_some()) {
                lake.between(0, 3) as u32
            } else {
                0
            },
        };
        // In the order they were drawn before the compactor came, so every other setting of
        // a seed stays what it was.
        let duration = Duration::from_millis(rng.between(4_000, 12_000));
        let flush_interval = Duration::from_millis(rng.log_between(5, 400));
        // From a stream of its own, so every other setting of a seed stays what it was: half
        // the tables that are not tiered keep their WAL for 1-12 s (runs last 4-12 s, then
        // drain), so expiry happens while producers, readers and faults are at work.
        let mut retention = root.fork("retention", 0);
        for table in tables.iter_mut().filter(|t| t.lake.is_none()) {
            if retention.chance(0.5) {
                table.retention = Some(retention.millis(1000, 12_000));
            }
        }
        // From a stream of its own too: half the runs drop a table of their own mid-run.
        let mut scratch = root.fork("scratch", 0);
        let scratch = scratch.chance(0.5).then(|| {
            let mut spec = ScratchSpec {
                buckets: scratch.between(1, 3) as u32,
                lake: scratch.chance(0.5),
                purge: scratch.chance(0.5),
                drop_at: scratch.millis(500, duration.as_millis() as u64),
                drop_grace: scratch.millis(500, 5_000),
                partitioned: scratch.chance(0.5),
            };
            // Partitioned tables do not tier yet.
            spec.lake &= !spec.partitioned;
            spec
        });
        // Half the runs widen a column of a log table mid-run, from a stream of their own.
        let mut widening = root.fork("widening", 0);
        let widening = widening.chance(0.5).then(|| ColumnChangeSpec {
            table: widening.below(tables.len()),
            at: widening.millis(200, duration.as_millis() as u64),
        });
        // Half replace `flag` of a log table by a new column of the same name, from another.
        let mut replacement = root.fork("flag-replacement", 0);
        let flag_replacement = replacement.chance(0.5).then(|| ColumnChangeSpec {
            table: replacement.below(tables.len()),
            at: replacement.millis(200, duration.as_millis() as u64),
        });
        // And lake upkeep from its own.
        let mut upkeep = root.fork("upkeep", 0);
        let upkeep = UpkeepSpec {
            merge_manifests_at: upkeep.between(2, 8) as usize,
            snapshots_retained: upkeep.between(1, 4) as usize,
            compaction_min_files: {
                let mut compaction = root.fork("compaction", 0);
                if compaction.between(0, 3) == 0 {
                    0
                } else {
                    compaction.between(2, 4) as usize
                }
            },
        };
        let compactor = compactor_spec(&mut lake, &writer, &faults, flush_interval);
        Self {
            seed,
            profile,
            ack_before_durable: options.ack_before_durable,
            verbose: options.verbose,
            duration,
            tables,
            scratch,
            widening,
            flag_replacement,
            upkeep,
            producers,
            followers,
            readers,
            max_payload,
            writer,
            flush_interval,
            object_store_max_retries: rng.chance(0.5).then(|| rng.between(2, 8) as u32),
            cache,
            faults,
            storm,
            chaos,
            compactor,
            remote_roles,
            pk: PkSpec::draw(&mut root.fork("pk", 0)),
        }
    }

    /// One line naming what the run does.
    pub fn summary(&self) -> String {
        let w = &self.writer;
        format!(
            "seed={} profile={} duration={:?} tables={} producers={} followers=({}) readers={} \
             linger={:?} flush_bytes={} max_buffered={} uploads={}x{} flush_interval={:?} \
             slatedb_retries={:?} page={} cache={} faults=({:.3},{:.3},{:.3},{:?}..{:?}) \
             chaos=(crashes={},takeovers={},triggers={},storms={},compactor_crashes={}) \
             lake=({}) compactor=(pass={:?}ms gc={:?}ms lease={:?} graces={:?}/{:?}/{:?} \
             round<={}B/{}rows merge_manifests_at={} snapshots_retained={} \
             compaction_min_files={}) \
             ack_before_durable={} remote_roles={}{}{}",
            self.seed,
            self.profile.name(),
            self.duration,
            self.tables
                .iter()
                .map(|t| format!("{}:{}{}", t.name, t.buckets, if t.keyed { "k" } else { "" }))
                .collect::<Vec<_>>()
                .join(","),
            self.producers.len(),
            self.followers
                .iter()
                .map(|f| format!("t{}/b{}", f.table, f.bucket))
                .collect::<Vec<_>>()
                .join(","),
            self.readers.len(),
            w.linger,
            w.flush_bytes,
            w.max_buffered_bytes,
            w.max_inflight_uploads,
            w.upload_attempts,
            self.flush_interval,
            self.object_store_max_retries,
            self.cache.page_size,
            self.cache.memory_bytes,
            self.faults.transient_error,
            self.faults.timeout_after_write,
            self.faults.dropped_response,
            self.faults.min_latency,
            self.faults.max_latency,
            self.chaos.crashes,
            self.chaos.takeovers,
            self.chaos.triggers,
            self.chaos.storms,
            self.chaos.compactor_crashes,
            self.tables
                .iter()
                .map(|t| match t.lake {
                    Some(freshness) => format!("{}:{freshness:?}", t.name),
                    None => match t.retention {
                        Some(retention) => format!("{}:off,retention={retention:?}", t.name),
                        None => format!("{}:off", t.name),
                    },
                })
                .collect::<Vec<_>>()
                .join(","),
            self.compactor.pass_every,
            self.compactor.gc_every,
            self.compactor.lease_ttl,
            self.compactor.wal_upload_grace,
            self.compactor.wal_read_grace,
            self.compactor.orphan_grace,
            self.compactor.max_round_bytes,
            self.compactor.max_round_rows,
            self.upkeep.merge_manifests_at,
            self.upkeep.snapshots_retained,
            self.upkeep.compaction_min_files,
            self.ack_before_durable,
            self.remote_roles,
            // Only runs with a scratch table say so.
            self.scratch.as_ref().map_or_else(String::new, |s| format!(
                " scratch=({} buckets, lake={}, purge={}, dropped at {:?}, grace {:?}{})",
                s.buckets,
                s.lake,
                s.purge,
                s.drop_at,
                s.drop_grace,
                if s.partitioned { ", partitioned" } else { "" }
            )),
            // Only runs with primary-key tables say so: the others' traces stay as they were.
            if self.pk.tables.is_empty() {
                String::new()
            } else {
                format!(
                    " pk=({})",
                    self.pk
                        .tables
                        .iter()
                        .map(|t| format!(
                            "{}:{}:{}keys:{:?}:lake={:?}",
                            t.name, t.buckets, t.keys, t.engine, t.lake
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            },
        )
    }
}

/// A random projection: all columns (empty), or a non-empty subset in random order.
pub fn projection(rng: &mut SimRng) -> Vec<usize> {
    if rng.chance(0.3) {
        return Vec::new();
    }
    let mut columns: Vec<usize> = (0..COLUMNS).collect();
    rng.shuffle(&mut columns);
    columns.truncate(rng.between(1, COLUMNS as u64) as usize);
    columns
}

/// The compactors' settings. The WAL upload grace must exceed the longest time from a WAL
/// object landing to its commit: the committer commits uploads in flush order, so an object
/// can wait for an earlier upload's every attempt (timeout plus backoff each), then for the
/// index commits of the uploads in flight (a flush interval and a few store round trips
/// each); anything shorter would let garbage collection delete an object about to be
/// committed, a misconfiguration rather than a bug. The read grace covers the longest read of
/// a looked-up chunk (slow consumers pause at most 50 ms a batch); the orphan grace is longer
/// than a lease, as `docs/lake-commit.md` requires.
fn compactor_spec(
    rng: &mut SimRng,
    writer: &WriterOptions,
    faults: &FaultConfig,
    flush_interval: Duration,
) -> CompactorSpec {
    // A request never takes longer than a storm's latency, 4 times the run's maximum.
    let attempt = writer.upload_timeout.min(faults.max_latency * 4);
    // A sleep between attempts is at most twice `upload_max_backoff` (its jitter adds up to
    // its own length).
    let upload = (attempt + writer.upload_max_backoff * 2) * writer.upload_attempts;
    let lease_ttl = rng.millis(1_000, 8_000);
    let low = rng.log_between(100, 1_000);
    let gc_low = rng.log_between(200, 3_000);
    CompactorSpec {
        pass_every: (low, low * 2),
        gc_every: (gc_low, gc_low * 2),
        lease_ttl,
        wal_upload_grace: upload
            + (flush_interval + Duration::from_secs(1)) * writer.max_inflight_uploads as u32
            + rng.millis(1_000, 3_000),
        wal_read_grace: rng.millis(1_000, 5_000),
        orphan_grace: lease_ttl + rng.millis(1_000, 10_000),
        max_round_bytes: rng.log_between(64 << 10, 64 << 20),
        max_round_rows: rng.log_between(512, 1 << 20),
    }
}

fn pause(rng: &mut SimRng) -> Duration {
    if rng.chance(0.3) {
        rng.millis(1, 50)
    } else {
        Duration::ZERO
    }
}
