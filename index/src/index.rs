//! The [`Index`] handle: catalog reads, offset-index reads and the sequencer that commits.
//!
//! Writes (catalog changes and chunk commits) go through one task, the sequencer, so offsets
//! are assigned by exactly one thread of control. It folds every commit waiting in its queue
//! into one SlateDB write batch, flushes it, waits until SlateDB reports it durable, and only
//! then updates the in-memory catalog and tails that readers see and replies to the writers.
//! Lake catalog changes (`lake.rs`), WAL retention (`retention.rs`) and the purge of dropped
//! tables (`purge.rs`) go through the same task.
//! If a write fails the sequencer cannot know what became durable, so it stops for good:
//! the process must reopen the index (a restart), which re-reads the durable state.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow_schema::Schema;
use inlet_core::clock::Env;
use inlet_core::ids::{
    Bucket, DatabaseId, Offset, PartitionId, SchemaId, StreamId, TableId, TimestampMicros,
    WalObjectId,
};
use inlet_core::ipc::{decode_schema, schema_to_ipc};
use inlet_core::limits::{COMMIT_QUEUE_DEPTH, MAX_COMMITS_PER_BATCH, MAX_INDEXED_COLUMN_RANGES};
use inlet_core::partition::{
    MAX_PARTITIONS_ADDED_AT_ONCE, MAX_PARTITIONS_PER_TABLE, MAX_STREAMS_PER_TABLE, Partition,
    Partitions, UNPARTITIONED, check_value_of_type, partition_name,
};
use inlet_core::pk::ops::PkWrite;
use inlet_core::table::{
    SchemaHistory, TableAlteration, TableDescriptor, TableInfo, validate_name,
};
use inlet_core::wal::{ChunkMeta, ColumnRange};
use inlet_security::acl::{Grant, Grants, MAX_GRANTS};
use slatedb::config::{
    CompactionWorkerOptions, CompactorOptions, DurabilityLevel, FlushOptions, FlushType,
    PutOptions, ReadOptions, ScanOptions, Ttl,
};
use slatedb::object_store::ObjectStore;
use slatedb::{Db, DbBuilder, DbIterator, WriteBatch};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{CatalogError, ChunkRejected, IndexError};
use crate::keys::{
    self, ChunkEntry, CodecError, LakeFileEntry, ProducedRange, ProducerState, StreamTail,
    chunk_key, counter_key, database_key, decode_u64, encode_u64, partition_key, producer_key,
    schema_key, table_key, table_name_key, tail_key, time_index_key,
};
use crate::records::{
    CATALOG_RECORD_VERSION, DatabaseRecord, GrantsRecord, LakeTableRecord, PartitionRecord,
    TableRecord, decode_record, encode_record,
};

mod key_cache;
pub(crate) mod kv;
pub mod lake;
pub mod purge;
pub mod retention;
mod sequencer;

pub(crate) use kv::KvRead;

use lake::{LakeChange, LakeReply, LakeView};
use sequencer::Sequencer;

/// How the index is opened. The settings are `inlet serve`'s `[index]` section (file,
/// `INLET_INDEX_*`, flags); the fields marked "injected" are not settings but what a caller
/// (the simulation) hands in, and are never read from a file.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexOptions {
    /// Injected: path of the SlateDB database inside the store.
    #[serde(skip)]
    pub path: String,
    /// SlateDB's background WAL flush interval. Commits flush explicitly, so this only
    /// bounds the latency of other writes; lower = more index PUTs when idle writes happen.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long an idle idempotent producer's state is kept. A retry after this long may
    /// append a duplicate; longer = more index entries for producers that went away.
    #[serde(with = "humantime_serde")]
    pub producer_ttl: Duration,
    /// Memory for SlateDB's cache of SST data blocks (chunk entries, tails, the catalog), so
    /// repeated index reads (every fetch walks the chunk index) do not GET blocks again.
    /// Larger = fewer index GETs for a large index. 0 turns the block and metadata caches
    /// off. Default 64 MiB.
    pub block_cache_bytes: u64,
    /// Memory for SlateDB's cache of SST metadata (indexes, filters). Default 16 MiB.
    pub meta_cache_bytes: u64,
    /// How much of the index's data blocks opening reads into the block cache, newest SSTs
    /// first (the index and filters of every SST are read too), so that the first reads of a
    /// node that just started skip an object-store round trip (see `warm.rs`). Capped at half
    /// of `block_cache_bytes`; 0 warms only indexes and filters. Larger = a longer open and
    /// more of an old index warm. Default 32 MiB.
    pub warm_bytes: u64,
    /// Memory for the sequencer's cache of key states of primary-key tables it made durable:
    /// an upsert of a cached key (an update of a recent or hot key) skips the key-state read,
    /// which costs the single sequencer a few microseconds per key. 0 turns it off. Default
    /// 64 MiB.
    pub key_state_cache_bytes: u64,
    /// How often a reader in a process without the index role polls the index replica (the
    /// owner's manifest and WAL) for history. An idle reader made ~20 object-store requests
    /// per second at 1 s (~$0.7/day at S3 GET prices), so the default is 5 s; tails do not
    /// wait for it (the owner pushes them), and a listing of rows newer than the replica is
    /// completed by the owner. Lower = fewer owner calls for fresh rows; higher = fewer
    /// requests. Default 5s.
    #[serde(with = "humantime_serde")]
    pub replica_poll_interval: Duration,
    /// How often the owner's SlateDB reads its manifest for changes made by others (its
    /// compactor's results, a new owner's fence), and how often its embedded compactor and
    /// compaction worker look for work. Each poll costs ~2 GETs (the record and its GC
    /// boundary): an idle owner made 3.2 GETs per second with SlateDB's defaults (1 s, 5 s,
    /// 5 s), 0.8 at 10 s; under `--s3-model` at 45 MB/s that is ~50 requests per GB ingested.
    /// A fence does not wait for it: a fenced owner's next index write fails. Longer =
    /// compactions start later and compacted SSTs replace L0 later in the owner's view (reads
    /// merge a few more L0 SSTs meanwhile; the index makes an L0 SST per 64 MiB or 4,096
    /// commits), and an idle fenced owner notices later. Default 10s.
    #[serde(with = "humantime_serde")]
    pub manifest_poll_interval: Duration,
    /// Injected: seed of SlateDB's random number generator (names of its files, jitter of
    /// its retries). `None` (the default) seeds it from the OS; the simulation fixes it so
    /// that a run replays exactly.
    #[serde(skip)]
    pub seed: Option<u64>,
    /// How often SlateDB retries a failed object-store request before the index write fails
    /// (which stops the sequencer until the index is reopened). `None` (the default) retries
    /// forever: a store outage stalls commits instead of failing them.
    pub object_store_max_retries: Option<u32>,
    /// Applied to SlateDB's builder last, just before the database opens. The simulation
    /// injects SlateDB's clock here (`DbBuilder::with_system_clock`), since naming SlateDB's
    /// clock trait needs a crate the index does not depend on. `None` (the default) in
    /// production. Injected.
    #[serde(skip)]
    pub configure_slatedb: Option<ConfigureSlateDb>,
    /// Only with the `testing` feature (the simulation). Re-introduces a bug on purpose:
    /// the sequencer publishes a commit and replies to the writer as soon as the batch is in
    /// SlateDB's memtable, before it is durable, so a crash can lose acknowledged rows and
    /// reuse their offsets. The simulation uses it to show that it catches that bug.
    /// Default false.
    #[cfg(feature = "testing")]
    #[serde(skip)]
    pub ack_before_durable: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            path: "index".to_owned(),
            flush_interval: Duration::from_millis(100),
            producer_ttl: Duration::from_secs(24 * 3600),
            block_cache_bytes: 64 * 1024 * 1024,
            meta_cache_bytes: 16 * 1024 * 1024,
            warm_bytes: 32 * 1024 * 1024,
            key_state_cache_bytes: 64 * 1024 * 1024,
            replica_poll_interval: Duration::from_secs(5),
            manifest_poll_interval: Duration::from_secs(10),
            seed: None,
            object_store_max_retries: None,
            configure_slatedb: None,
            #[cfg(feature = "testing")]
            ack_before_durable: false,
        }
    }
}

impl IndexOptions {
    /// How a reader process opens its replica of this index.
    pub fn replica(&self) -> crate::replica::ReplicaOptions {
        crate::replica::ReplicaOptions {
            path: self.path.clone(),
            poll_interval: self.replica_poll_interval,
            block_cache_bytes: self.block_cache_bytes,
            meta_cache_bytes: self.meta_cache_bytes,
            warm_bytes: self.warm_bytes,
        }
    }

    /// Whether the test-only bug of acking before durability is on (never without the
    /// `testing` feature).
    fn ack_before_durable(&self) -> bool {
        #[cfg(feature = "testing")]
        return self.ack_before_durable;
        #[cfg(not(feature = "testing"))]
        false
    }
}

/// Shards of SlateDB's caches. Fixed, not foyer's default of one per CPU, so that the
/// simulation replays the same on every machine.
const SLATEDB_CACHE_SHARDS: usize = 4;

/// SlateDB's block and metadata caches (foyer, in memory).
pub(crate) fn db_cache(block_bytes: u64, meta_bytes: u64) -> Arc<dyn slatedb::db_cache::DbCache> {
    use slatedb::db_cache::foyer::{FoyerCache, FoyerCacheOptions};
    let foyer = |max_capacity: u64| -> Arc<dyn slatedb::db_cache::DbCache> {
        Arc::new(FoyerCache::new_with_opts(FoyerCacheOptions {
            max_capacity: max_capacity.max(1),
            shards: SLATEDB_CACHE_SHARDS,
        }))
    };
    Arc::new(
        slatedb::db_cache::SplitCache::new()
            .with_block_cache(Some(foyer(block_bytes)))
            .with_meta_cache(Some(foyer(meta_bytes)))
            .build(),
    )
}

/// A change to SlateDB's builder, see [`IndexOptions::configure_slatedb`].
#[derive(Clone)]
pub struct ConfigureSlateDb(pub Arc<dyn Fn(DbBuilder<String>) -> DbBuilder<String> + Send + Sync>);

impl std::fmt::Debug for ConfigureSlateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigureSlateDb(..)")
    }
}

/// Identifies an idempotent append: the producer and its sequence number for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProducerRef {
    pub id: u64,
    pub sequence: u64,
}

/// One chunk of an uploaded WAL object, to be given offsets.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkCommitRequest {
    pub stream: StreamId,
    pub schema_id: SchemaId,
    pub chunk_offset: u64,
    pub chunk_len: u64,
    pub meta_len: u32,
    pub body_offset: u32,
    pub chunk_crc: u32,
    pub meta_crc: u32,
    pub row_count: u32,
    /// Set for the chunks of an idempotent append; such chunks hold only that append.
    pub producer: Option<ProducerRef>,
    /// Body byte range of each column (from the object's footer), kept in the chunk's index
    /// entry so pruned reads need no footer; empty for tables wider than
    /// `MAX_INDEXED_COLUMN_RANGES`.
    pub columns: Vec<ColumnRange>,
    /// Primary-key chunks: each row's operation, key and image, in row order, applied to
    /// the key state by the sequencer (`crate::pk`). `None` for log chunks.
    pub pk_writes: Option<Arc<Vec<PkWrite>>>,
}

impl ChunkCommitRequest {
    /// The commit of the chunk the object's footer describes as `meta`, appended by
    /// `producer`. Column ranges are kept only up to `MAX_INDEXED_COLUMN_RANGES`: a wider
    /// table's ranges would weigh on every listing, and its pruned reads use the footer.
    pub fn from_meta(meta: &ChunkMeta, producer: Option<ProducerRef>) -> Self {
        let columns = if meta.columns.len() <= MAX_INDEXED_COLUMN_RANGES {
            meta.columns.clone()
        } else {
            Vec::new()
        };
        ChunkCommitRequest {
            stream: meta.stream,
            schema_id: meta.schema_id,
            chunk_offset: meta.chunk_offset,
            chunk_len: meta.chunk_len(),
            meta_len: meta.meta_len,
            body_offset: meta.body_offset,
            chunk_crc: meta.chunk_crc,
            meta_crc: meta.meta_crc,
            row_count: meta.row_count,
            producer,
            columns,
            pk_writes: None,
        }
    }
}

/// An uploaded WAL object whose chunks should be committed.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitRequest {
    pub object: WalObjectId,
    pub footer_offset: u64,
    pub footer_len: u32,
    pub chunks: Vec<ChunkCommitRequest>,
}

/// Where a committed chunk landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommittedChunk {
    pub base_offset: Offset,
    pub commit_ts: TimestampMicros,
}

/// A database as the catalog knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseInfo {
    pub id: DatabaseId,
    pub name: String,
    pub comment: String,
    pub created_at: TimestampMicros,
}

/// Per chunk of a commit request: its offsets, or why it was rejected.
pub type CommitReply = Result<Vec<Result<CommittedChunk, ChunkRejected>>, IndexError>;

enum Command {
    Commit {
        request: CommitRequest,
        reply: oneshot::Sender<CommitReply>,
    },
    Catalog {
        change: CatalogChange,
        reply: oneshot::Sender<Result<CatalogOutcome, CatalogError>>,
    },
    Lake {
        change: LakeChange,
        reply: LakeReply,
    },
    Retention {
        table: TableId,
        reply: retention::RetentionReply,
    },
    Purge {
        table: TableId,
        reply: purge::PurgeReply,
    },
    PurgePartition {
        table: TableId,
        partition: PartitionId,
        reply: purge::PurgeReply,
    },
}

/// How a table or database is dropped. A dropped table's name is free at once; its index
/// entries and WAL go once the compactors' drop grace passed (`purge.rs`); its lake table
/// stays in the bucket unless `purge_lake`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropOptions {
    /// Dropping what does not exist is not an error.
    pub if_exists: bool,
    /// A database is dropped with its tables; without it, a database with tables is not.
    pub cascade: bool,
    /// The lake tables (Iceberg folders) are deleted too.
    pub purge_lake: bool,
}

enum CatalogChange {
    CreateDatabase {
        name: String,
        comment: String,
        if_not_exists: bool,
    },
    DropDatabase {
        name: String,
        options: DropOptions,
    },
    CreateTable {
        database: String,
        name: String,
        descriptor: TableDescriptor,
        if_not_exists: bool,
    },
    DropTable {
        database: String,
        name: String,
        options: DropOptions,
    },
    AlterTable {
        database: String,
        name: String,
        alteration: TableAlteration,
    },
    /// Creates the partitions of a partitioned table with these values that it lacks.
    AddPartitions {
        database: String,
        name: String,
        values: Vec<Vec<String>>,
    },
    /// Drops the partitions with these values; with `if_exists`, values that name no
    /// partition are skipped.
    DropPartitions {
        database: String,
        name: String,
        values: Vec<Vec<String>>,
        if_exists: bool,
    },
    /// Adds (`add`) or removes a permission grant.
    Grant {
        grant: Grant,
        add: bool,
    },
}

enum CatalogOutcome {
    Database(DatabaseInfo),
    Table(Arc<TableInfo>),
    Dropped,
    /// Whether a grant change changed anything.
    Granted(bool),
    /// The table after partitions were added, and the id of each value list asked for.
    Partitions(Arc<TableInfo>, Vec<PartitionId>),
}

/// The in-memory mirror of the durable catalog. Changed only by the sequencer, after the
/// change is durable.
#[derive(Default)]
struct Catalog {
    databases: BTreeMap<String, DatabaseInfo>,
    tables: HashMap<TableId, Arc<TableInfo>>,
    by_name: BTreeMap<(String, String), TableId>,
    /// Every permission grant.
    grants: Arc<Grants>,
}

impl Catalog {
    /// The live table `database.name`, or which of the two is missing.
    fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        self.by_name
            .get(&(database.to_owned(), name.to_owned()))
            .and_then(|id| self.tables.get(id).cloned())
            .ok_or_else(|| {
                if self.databases.contains_key(database) {
                    CatalogError::TableNotFound {
                        database: database.to_owned(),
                        table: name.to_owned(),
                    }
                } else {
                    CatalogError::DatabaseNotFound {
                        database: database.to_owned(),
                    }
                }
            })
    }
}

/// The live table `database.name` as `db` holds it durably (a replica has no sequencer to
/// mirror the catalog; it reads it, which is rare: only while the owner does not answer).
pub(crate) async fn durable_table(
    db: &impl KvRead,
    database: &str,
    name: &str,
) -> Result<Arc<TableInfo>, CatalogError> {
    let (catalog, _) = load_catalog(db).await?;
    catalog.table(database, name)
}

struct Shared {
    db: Db,
    env: Env,
    catalog: RwLock<Catalog>,
    /// Counts catalog changes made durable since open (successful creates and drops, including
    /// those that changed nothing), so remote roles know when cached tables may be stale.
    catalog_version: watch::Sender<u64>,
    /// Durable tail of every stream touched since open; followers subscribe to changes.
    tails: Mutex<HashMap<StreamId, watch::Sender<StreamTail>>>,
    /// Durable lake state (metadata pointers, watermarks) of tables and streams read since open.
    lake: Mutex<LakeView>,
    /// Set when the sequencer stopped; every later write fails with it.
    stopped: RwLock<Option<IndexError>>,
}

/// Handle to the index. Cheap to clone; all clones share one sequencer.
#[derive(Clone)]
pub struct Index {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").finish_non_exhaustive()
    }
}

// Index reads see SlateDB's memtable (durability level `Memory`); what a reader may see is
// bounded by the published durable tails instead: the sequencer makes a stream's tail sender
// exist (holding the durable tail) before it writes anything for that stream, so a reader
// never adopts a tail it read from a batch that is not yet durable, and it never reads past
// the tail it adopted. One rule, owned by the sequencer, rather than a storage-level filter.
const INDEX_READ: ReadOptions = ReadOptions {
    durability_filter: DurabilityLevel::Memory,
    dirty: false,
    cache_blocks: true,
    filter_context: None,
    tracing_options: None,
};

// Lookups of key state read only what is durable: the sequencer writes a group's key states
// before they are durable, and a lookup must never show a row whose commit could still fail.
// Every acknowledged commit is durable, so lookups still read their writes.
const DURABLE_READ: ReadOptions = ReadOptions {
    durability_filter: DurabilityLevel::Remote,
    ..INDEX_READ
};

fn index_scan() -> ScanOptions {
    ScanOptions {
        durability_filter: DurabilityLevel::Memory,
        read_ahead_bytes: 64 * 1024,
        cache_blocks: true,
        ..ScanOptions::default()
    }
}

/// SlateDB's embedded compactor, looking for work every `interval` instead of its 5 s (see
/// `IndexOptions::manifest_poll_interval`).
fn polling_every(compactor: CompactorOptions, interval: Duration) -> CompactorOptions {
    CompactorOptions {
        poll_interval: interval,
        worker: compactor.worker.map(|worker| CompactionWorkerOptions {
            compactions_poll_interval: interval,
            ..worker
        }),
        ..compactor
    }
}

impl Index {
    /// Opens (or creates) the index in `store` and starts the sequencer. Opening fences any
    /// previous owner of the same index.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        options: IndexOptions,
        env: Env,
    ) -> Result<Self, IndexError> {
        let defaults = slatedb::Settings::default();
        let compactor = defaults
            .compactor_options
            .clone()
            .map(|compactor| polling_every(compactor, options.manifest_poll_interval));
        let settings = slatedb::Settings {
            flush_interval: Some(options.flush_interval),
            manifest_poll_interval: options.manifest_poll_interval,
            compactor_options: compactor,
            object_store_max_retries: options.object_store_max_retries,
            ..defaults
        };
        let mut builder = Db::builder(options.path.clone(), store).with_settings(settings);
        builder = match options.block_cache_bytes {
            0 => builder.with_db_cache_disabled(),
            block_bytes => {
                builder.with_db_cache(db_cache(block_bytes, options.meta_cache_bytes), 0)
            }
        };
        if let Some(seed) = options.seed {
            builder = builder.with_seed(seed);
        }
        if let Some(configure) = &options.configure_slatedb {
            builder = (configure.0)(builder);
        }
        let db = builder.build().await?;
        crate::warm::warm_caches(&db, options.block_cache_bytes, options.warm_bytes).await;
        let (catalog, counters) = load_catalog(&db).await?;
        tracing::info!(
            path = %options.path,
            databases = catalog.databases.len(),
            tables = catalog.tables.len(),
            "index opened"
        );
        let shared = Arc::new(Shared {
            db,
            env,
            catalog: RwLock::new(catalog),
            catalog_version: watch::Sender::new(0),
            tails: Mutex::new(HashMap::new()),
            lake: Mutex::new(LakeView::default()),
            stopped: RwLock::new(None),
        });
        let (commands, receiver) = mpsc::channel(COMMIT_QUEUE_DEPTH);
        let sequencer = Sequencer {
            shared: shared.clone(),
            tails: HashMap::new(),
            producers: HashMap::new(),
            lake_records: HashMap::new(),
            lake_watermarks: HashMap::new(),
            producer_ttl: options.producer_ttl,
            key_cache: key_cache::KeyStateCache::new(
                usize::try_from(options.key_state_cache_bytes).unwrap_or(usize::MAX),
            ),
            counters,
            ack_before_durable: options.ack_before_durable(),
        };
        tokio::spawn(sequencer.run(receiver));
        Ok(Self { shared, commands })
    }

    /// Stops accepting writes and closes the database cleanly.
    pub async fn close(&self) -> Result<(), IndexError> {
        self.shared.stop(IndexError::Stopped {
            reason: "index closed".to_owned(),
        });
        // Dropping the tail senders ends every follower.
        self.shared.tails().clear();
        self.shared.db.close().await?;
        Ok(())
    }

    /// Why the sequencer stopped, if it did.
    pub fn stopped(&self) -> Option<IndexError> {
        self.shared.stopped_error()
    }

    async fn send(&self, command: Command) -> Result<(), IndexError> {
        if let Some(error) = self.shared.stopped_error() {
            return Err(error);
        }
        self.commands.send(command).await.map_err(|_| {
            self.shared.stopped_error().unwrap_or(IndexError::Stopped {
                reason: "sequencer exited".to_owned(),
            })
        })
    }

    async fn change(&self, change: CatalogChange) -> Result<CatalogOutcome, CatalogError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Catalog { change, reply }).await?;
        receiver.await.map_err(|_| self.sequencer_gone())?
    }

    fn sequencer_gone(&self) -> IndexError {
        self.shared.stopped_error().unwrap_or(IndexError::Stopped {
            reason: "sequencer exited before replying".to_owned(),
        })
    }

    /// Commits the chunks of an uploaded WAL object. Returns, per chunk in request order,
    /// its offsets or why it was rejected; only after the assignment is durable.
    pub async fn commit(&self, request: CommitRequest) -> CommitReply {
        self.submit_commit(request).await?.wait().await
    }

    /// Queues a commit and returns once it is queued. Commits are applied in the order they
    /// were queued, so a writer that submits in upload order keeps its rows in order while
    /// several commits are in flight.
    pub async fn submit_commit(&self, request: CommitRequest) -> Result<PendingCommit, IndexError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Commit { request, reply }).await?;
        let shared = self.shared.clone();
        Ok(PendingCommit::new(receiver, move || {
            shared.stopped_error().unwrap_or(IndexError::Stopped {
                reason: "sequencer exited before replying".to_owned(),
            })
        }))
    }

    pub async fn create_database(
        &self,
        name: &str,
        comment: &str,
        if_not_exists: bool,
    ) -> Result<DatabaseInfo, CatalogError> {
        let change = CatalogChange::CreateDatabase {
            name: name.to_owned(),
            comment: comment.to_owned(),
            if_not_exists,
        };
        match self.change(change).await? {
            CatalogOutcome::Database(info) => Ok(info),
            _ => unreachable!("create database replies with a database"),
        }
    }

    /// Drops database `name` (with its tables when `options.cascade`). See [`DropOptions`].
    pub async fn drop_database(
        &self,
        name: &str,
        options: DropOptions,
    ) -> Result<(), CatalogError> {
        let change = CatalogChange::DropDatabase {
            name: name.to_owned(),
            options,
        };
        self.change(change).await.map(|_| ())
    }

    pub async fn create_table(
        &self,
        database: &str,
        name: &str,
        descriptor: TableDescriptor,
        if_not_exists: bool,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        let change = CatalogChange::CreateTable {
            database: database.to_owned(),
            name: name.to_owned(),
            descriptor,
            if_not_exists,
        };
        match self.change(change).await? {
            CatalogOutcome::Table(info) => Ok(info),
            _ => unreachable!("create table replies with a table"),
        }
    }

    /// Changes the options and comment of `database.name` (`TableDescriptor::altered`);
    /// returns the table as it is now. Every node sees the change: remote roles drop their
    /// cached tables on the catalog version it bumps.
    pub async fn alter_table(
        &self,
        database: &str,
        name: &str,
        alteration: TableAlteration,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        let change = CatalogChange::AlterTable {
            database: database.to_owned(),
            name: name.to_owned(),
            alteration,
        };
        match self.change(change).await? {
            CatalogOutcome::Table(info) => Ok(info),
            _ => unreachable!("alter table replies with a table"),
        }
    }

    /// The partitions of partitioned table `database.name` with these values (one list per
    /// partition, in partition-key order), created where they do not exist yet; returns the
    /// table as it is now and each list's partition id. Idempotent: values that name a
    /// partition get its id, so writers racing to create one get the same one. Every node
    /// learns of new partitions as of new tables (the catalog version moves).
    pub async fn add_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError> {
        let change = CatalogChange::AddPartitions {
            database: database.to_owned(),
            name: name.to_owned(),
            values,
        };
        match self.change(change).await? {
            CatalogOutcome::Partitions(table, ids) => Ok((table, ids)),
            _ => unreachable!("add partitions replies with partitions"),
        }
    }

    /// Drops the partitions of `database.name` with these values: they leave the table at
    /// once (reads no longer list them; appends of their values create new partitions with
    /// new ids), and their streams' index entries go once the compactors' drop grace passed
    /// ([`Index::purge_partition`]), their WAL objects then as garbage. Returns the table as
    /// it is now and the ids dropped. Without `if_exists`, values naming no partition refuse
    /// the whole request.
    pub async fn drop_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
        if_exists: bool,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError> {
        let change = CatalogChange::DropPartitions {
            database: database.to_owned(),
            name: name.to_owned(),
            values,
            if_exists,
        };
        match self.change(change).await? {
            CatalogOutcome::Partitions(table, ids) => Ok((table, ids)),
            _ => unreachable!("drop partitions replies with partitions"),
        }
    }

    /// Drops table `database.name`: its name is free at once; its data goes later (see
    /// [`DropOptions`] and `purge.rs`).
    pub async fn drop_table(
        &self,
        database: &str,
        name: &str,
        options: DropOptions,
    ) -> Result<(), CatalogError> {
        let change = CatalogChange::DropTable {
            database: database.to_owned(),
            name: name.to_owned(),
            options,
        };
        self.change(change).await.map(|_| ())
    }

    pub fn list_databases(&self) -> Vec<DatabaseInfo> {
        self.shared.catalog().databases.values().cloned().collect()
    }

    pub fn database(&self, name: &str) -> Result<DatabaseInfo, CatalogError> {
        self.shared
            .catalog()
            .databases
            .get(name)
            .cloned()
            .ok_or_else(|| CatalogError::DatabaseNotFound {
                database: name.to_owned(),
            })
    }

    pub fn list_tables(&self, database: &str) -> Result<Vec<Arc<TableInfo>>, CatalogError> {
        let catalog = self.shared.catalog();
        if !catalog.databases.contains_key(database) {
            return Err(CatalogError::DatabaseNotFound {
                database: database.to_owned(),
            });
        }
        Ok(catalog
            .by_name
            .range((database.to_owned(), String::new())..)
            .take_while(|((db, _), _)| db == database)
            .filter_map(|(_, id)| catalog.tables.get(id).cloned())
            .collect())
    }

    /// The live table `database.name`.
    pub fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        self.shared.catalog().table(database, name)
    }

    /// Adds a permission grant; false if it was there already.
    pub async fn grant(&self, grant: Grant) -> Result<bool, CatalogError> {
        self.change_grant(grant, true).await
    }

    /// Removes a permission grant; false if there was none such.
    pub async fn revoke(&self, grant: Grant) -> Result<bool, CatalogError> {
        self.change_grant(grant, false).await
    }

    async fn change_grant(&self, grant: Grant, add: bool) -> Result<bool, CatalogError> {
        match self.change(CatalogChange::Grant { grant, add }).await? {
            CatalogOutcome::Granted(changed) => Ok(changed),
            _ => unreachable!("a grant change replies with whether it changed anything"),
        }
    }

    /// Every permission grant, as durable.
    pub fn grants(&self) -> Arc<Grants> {
        self.shared.catalog().grants.clone()
    }

    /// A receiver of the catalog version: it changes after every catalog change that became
    /// durable, and its sender closes when the index closes.
    pub fn catalog_changes(&self) -> watch::Receiver<u64> {
        self.shared.catalog_version.subscribe()
    }

    /// The live table with this id, if it exists.
    pub fn table_by_id(&self, id: TableId) -> Option<Arc<TableInfo>> {
        self.shared.catalog().tables.get(&id).cloned()
    }

    /// The durable tail of a stream.
    pub async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        Ok(*self.subscribe(stream).await?.borrow())
    }

    /// A receiver that always holds the stream's durable tail and wakes on every commit.
    pub async fn subscribe(
        &self,
        stream: StreamId,
    ) -> Result<watch::Receiver<StreamTail>, IndexError> {
        if let Some(sender) = self.shared.tails().get(&stream) {
            return Ok(sender.subscribe());
        }
        let durable = read_tail(&self.shared.db, stream).await?;
        // If the sequencer wrote to this stream while we read, it created the sender first
        // (with the durable tail) and that sender wins over what we read.
        let mut tails = self.shared.tails();
        let sender = tails
            .entry(stream)
            .or_insert_with(|| watch::Sender::new(durable));
        Ok(sender.subscribe())
    }

    /// The committed chunks of `stream` that hold offsets at or after `from`, in order.
    /// The current row of each of `keys` (encoded primary keys of `stream`), durable ones
    /// only (see [`LogRead::lookup`](crate::LogRead::lookup)).
    pub async fn lookup(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<crate::pk::KeyState>>, IndexError> {
        if let Some(error) = self.stopped() {
            return Err(error);
        }
        kv::key_states(&self.shared.db, stream, keys).await
    }

    /// Up to `max` current rows of `stream` whose key starts with `prefix`, durable ones only.
    pub async fn lookup_prefix(
        &self,
        stream: StreamId,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<crate::pk::KeyState>, IndexError> {
        if let Some(error) = self.stopped() {
            return Err(error);
        }
        kv::key_states_with_prefix(&self.shared.db, stream, prefix, max).await
    }

    /// Every current row of `stream`, durable ones only, from one point of the database.
    pub async fn scan_keys(&self, stream: StreamId) -> Result<crate::ports::KeyScan, IndexError> {
        if let Some(error) = self.stopped() {
            return Err(error);
        }
        kv::scan_key_states(&self.shared.db, stream).await
    }

    /// Where the current rows of `keys` (encoded primary keys of `stream`) are in the lake
    /// table, as the last lake commit recorded them.
    pub async fn lake_rows(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<crate::pk::LakeRow>>, IndexError> {
        if let Some(error) = self.stopped() {
            return Err(error);
        }
        kv::lake_rows(&self.shared.db, stream, keys).await
    }

    /// The change record of the primary-key chunk of `stream` ending at `end`.
    pub async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<crate::pk::ChangeRecord>, IndexError> {
        kv::change_record(&self.shared.db, stream, end).await
    }

    pub async fn chunks(&self, stream: StreamId, from: Offset) -> Result<ChunkScan, IndexError> {
        let (start, end) = keys::chunks_from(stream, from);
        let iter = self
            .shared
            .db
            .scan_with_options(start..end, &index_scan())
            .await?;
        Ok(ChunkScan { iter })
    }

    /// The first offset of `stream` committed at or after `ts`, or the tail if none is.
    pub async fn offset_for_timestamp(
        &self,
        stream: StreamId,
        ts: TimestampMicros,
    ) -> Result<Offset, IndexError> {
        let tail = self.tail(stream).await?;
        kv::offset_at(&self.shared.db, stream, ts, tail).await
    }

    /// Up to `max` chunk entries of `stream` holding offsets at or after `from`, in order.
    pub(crate) async fn list_chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        kv::list(
            &self.shared.db,
            keys::chunks_from(stream, from),
            max,
            ChunkEntry::decode,
        )
        .await
    }

    /// Up to `max` lake file entries of `stream` holding offsets at or after `from`.
    pub(crate) async fn list_lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        kv::list(
            &self.shared.db,
            keys::lake_files_from(stream, from),
            max,
            LakeFileEntry::decode,
        )
        .await
    }
}

/// A queued commit; [`PendingCommit::wait`] resolves once it is durable (or failed).
pub struct PendingCommit {
    receiver: oneshot::Receiver<CommitReply>,
    /// Why no reply will come, when the replying side went away without one.
    gone: Box<dyn FnOnce() -> IndexError + Send>,
}

impl PendingCommit {
    /// A commit whose reply arrives on `receiver`; `gone` explains a sender dropped without
    /// replying (the owner's sequencer stopped, or the connection to a remote owner broke,
    /// which leaves the outcome unknown).
    pub fn new(
        receiver: oneshot::Receiver<CommitReply>,
        gone: impl FnOnce() -> IndexError + Send + 'static,
    ) -> Self {
        Self {
            receiver,
            gone: Box::new(gone),
        }
    }

    pub async fn wait(self) -> CommitReply {
        let Self { receiver, gone } = self;
        receiver.await.map_err(|_| gone())?
    }
}

/// Iterates committed chunk entries of one stream in offset order.
pub struct ChunkScan {
    iter: DbIterator,
}

impl ChunkScan {
    pub async fn next(&mut self) -> Result<Option<ChunkEntry>, IndexError> {
        match self.iter.next().await? {
            Some(kv) => Ok(Some(ChunkEntry::decode(&kv.value)?)),
            None => Ok(None),
        }
    }
}

impl Shared {
    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().expect("catalog lock poisoned")
    }

    fn tails(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, watch::Sender<StreamTail>>> {
        self.tails.lock().expect("tails lock poisoned")
    }

    fn lake(&self) -> std::sync::MutexGuard<'_, LakeView> {
        self.lake.lock().expect("lake view lock poisoned")
    }

    fn stopped_error(&self) -> Option<IndexError> {
        self.stopped.read().expect("stop lock poisoned").clone()
    }

    fn stop(&self, error: IndexError) {
        let mut stopped = self.stopped.write().expect("stop lock poisoned");
        if stopped.is_none() {
            *stopped = Some(error);
        }
    }
}

pub(crate) async fn read_tail(
    db: &impl KvRead,
    stream: StreamId,
) -> Result<StreamTail, IndexError> {
    decode_tail(db.read(tail_key(stream)).await?)
}

/// The stream's tail as far as it is durable in the store (see `KvRead::read_durable`).
pub(crate) async fn read_durable_tail(
    db: &impl KvRead,
    stream: StreamId,
) -> Result<StreamTail, IndexError> {
    decode_tail(db.read_durable(tail_key(stream)).await?)
}

fn decode_tail(bytes: Option<bytes::Bytes>) -> Result<StreamTail, IndexError> {
    match bytes {
        Some(bytes) => Ok(StreamTail::decode(&bytes)?),
        None => Ok(StreamTail::EMPTY),
    }
}

/// Next ids to allocate, mirrored from the counter keys.
struct Counters {
    database: u64,
    table: u64,
}

const DATABASE_COUNTER: &str = "database";
const TABLE_COUNTER: &str = "table";

async fn load_catalog(db: &impl KvRead) -> Result<(Catalog, Counters), IndexError> {
    let mut catalog = Catalog::default();
    let (start, end) = keys::database_range();
    let mut iter = db.range(start, end).await?;
    while let Some(kv) = iter.next().await? {
        let record: DatabaseRecord = decode_record(&kv.value)?;
        catalog.databases.insert(
            record.name.clone(),
            DatabaseInfo {
                id: DatabaseId(record.id),
                name: record.name,
                comment: record.comment,
                created_at: TimestampMicros(record.created_at_micros),
            },
        );
    }
    let mut iter = db
        .range(
            vec![keys::KeyPrefix::Table as u8],
            vec![keys::KeyPrefix::Table as u8 + 1],
        )
        .await?;
    while let Some(kv) = iter.next().await? {
        let record: TableRecord = decode_record(&kv.value)?;
        if record.dropped_at_micros.is_some() {
            continue;
        }
        // Every version of the columns: chunks written under an earlier one decode with it.
        let mut schemas = BTreeMap::new();
        for version in 0..=record.schema_id {
            let schema_bytes = db
                .read(schema_key(TableId(record.id), SchemaId(version)))
                .await?
                .ok_or_else(|| {
                    CodecError::Json(format!(
                        "schema {version} of table {} is missing",
                        record.id
                    ))
                })?;
            let schema = decode_schema(&schema_bytes).map_err(|e| {
                CodecError::Json(format!("schema {version} of table {}: {e}", record.id))
            })?;
            schemas.insert(SchemaId(version), schema);
        }
        // Schemas stored before columns had ids are numbered as they load.
        let mut schemas = inlet_core::column_ids::number_history(schemas);
        let schema = schemas
            .remove(&SchemaId(record.schema_id))
            .expect("the current schema was read");
        let mut info = table_info(&record, schema, SchemaHistory::new(schemas));
        if !info.descriptor.partition_key.is_empty() {
            info.partitions = load_partitions(db, info.id, record.last_partition_id).await?;
        }
        catalog
            .by_name
            .insert((info.database.clone(), info.name.clone()), info.id);
        catalog.tables.insert(info.id, Arc::new(info));
    }
    if let Some(bytes) = db.read(keys::grants_key()).await? {
        let record: GrantsRecord = decode_record(&bytes)?;
        catalog.grants = Arc::new(record.grants);
    }
    let counter = |name: &'static str| async move {
        match db.read(counter_key(name)).await? {
            Some(bytes) => Ok::<u64, IndexError>(decode_u64(&bytes)?),
            None => Ok(1),
        }
    };
    let counters = Counters {
        database: counter(DATABASE_COUNTER).await?,
        table: counter(TABLE_COUNTER).await?,
    };
    Ok((catalog, counters))
}

/// The live partitions of partitioned table `table`.
async fn load_partitions(
    db: &impl KvRead,
    table: TableId,
    last_id: u32,
) -> Result<Partitions, IndexError> {
    let (start, end) = keys::table_range(keys::KeyPrefix::Partition, table);
    let mut iter = db.range(start, end).await?;
    let mut live = Vec::new();
    let mut last_id = last_id;
    while let Some(kv) = iter.next().await? {
        let (_, id) = keys::decode_partition_key(&kv.key)?;
        last_id = last_id.max(id.0);
        let record: PartitionRecord = decode_record(&kv.value)?;
        if record.dropped_at_micros.is_none() {
            live.push(Partition {
                id,
                values: record.values,
                created_at: TimestampMicros(record.created_at_micros),
            });
        }
    }
    Ok(Partitions::new(live, last_id))
}

fn table_info(
    record: &TableRecord,
    schema: Arc<Schema>,
    previous_schemas: SchemaHistory,
) -> TableInfo {
    TableInfo {
        id: TableId(record.id),
        database: record.database.clone(),
        database_id: DatabaseId(record.database_id),
        name: record.name.clone(),
        schema_id: SchemaId(record.schema_id),
        descriptor: TableDescriptor {
            schema,
            bucket_count: record.bucket_count,
            bucket_key: record.bucket_key.clone(),
            partition_key: record.partition_key.clone(),
            primary_key: record.primary_key.clone(),
            comment: record.comment.clone(),
            options: record.options.clone(),
        },
        created_at: TimestampMicros(record.created_at_micros),
        previous_schemas,
        partitions: Partitions::default(),
    }
}

/// The partitions of a table that hold its streams: its live partitions, or for a table
/// without a partition key its one partition.
pub fn table_partitions(table: &TableInfo) -> Vec<PartitionId> {
    if table.descriptor.partition_key.is_empty() {
        return vec![UNPARTITIONED];
    }
    table
        .partitions
        .iter()
        .map(|partition| partition.id)
        .collect()
}

/// Streams of a table: every bucket of every partition, in partition then bucket order.
pub fn table_streams(table: &TableInfo) -> impl Iterator<Item = StreamId> + '_ {
    table_partitions(table)
        .into_iter()
        .flat_map(move |partition| {
            (0..table.descriptor.bucket_count)
                .map(move |b| StreamId::new(table.id, partition, Bucket(b)))
        })
}
