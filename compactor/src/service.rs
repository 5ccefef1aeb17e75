//! The compactor role: a loop that tiers every lake-enabled table into its Iceberg table and
//! collects WAL garbage, and the handle that starts, drives (in tests) and stops it.
//!
//! Per table, a compactor keeps a small state: the lease it holds, the committed lake table
//! version it verified or committed itself, when it last committed, and where the next round
//! starts. A table is tiered when its `lake.enabled` option is on, some bucket has committed
//! rows above its lake watermark, and its last round is at least `lake.freshness` ago (or that
//! round stopped at a per-round limit, leaving a backlog). A round first takes or renews the
//! table's lease; when the lease is new to this compactor (or another compactor held it since,
//! or a round of this compactor failed) it repairs the table first ([`crate::repair`]).
//! Several compactors may run: the lease gives each table to one at a time, and the index's
//! compare-and-swap makes a deposed one's commit fail.
//!
//! A table with a `retention` or `retention.bytes` option also has its old data files
//! expired by its rounds (see [`crate::round`]), at most once per `lake.freshness` interval. An idle table (no rows
//! above its watermarks) stays cheap: it is only worth a round, and its lease, when the
//! index's first lake file of some bucket is older than `now - retention`; that check, a few
//! index reads, is itself done at most once per freshness interval.
//!
//! Tables that are not tiered but have `retention` or `retention.bytes` have their oldest
//! WAL chunks expired by the index owner, asked once per WAL garbage collection interval just
//! before the collection runs ([`Compactor::expire_wal`]); the collector then deletes the WAL
//! objects nothing points into any more.
//!
//! A log table's rounds also rewrite its small lake files ([`crate::lake::compact`]); a
//! rewrite cut short by its byte budget makes the next round due at once, even without new
//! rows.
//!
//! A dropped table is purged once it was dropped more than `drop_grace` ago, in the same
//! interval: its lake table first if it was dropped with `purge` (every object under its
//! folder), then its index entries through the owner ([`Compactor::purge_dropped`]).
//!
//! Rounds of one compactor run one at a time (each bounded by the per-round limits), so the
//! Parquet encoding they do inline occupies at most one runtime thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use inlet_core::clock::Env;
use inlet_core::ids::{TableId, TimestampMicros};
use inlet_core::partition::MAX_PARTITIONS_ADDED_AT_ONCE;
use inlet_core::partition::auto::AutoPartition;
use inlet_core::table::TableInfo;
use inlet_index::{
    DroppedPartition, DroppedTable, IndexError, LakeCommit, LakeCommitError, LakeLease,
    table_streams,
};
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path as ObjectPath;

use inlet_index::LakeCatalog;
use inlet_reader::PagedCache;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{RoundError, WalGcError};
use crate::lake::{ExpiryRule, LakeStorage, LakeTable, lake_table_path};
use crate::options::CompactorOptions;
use crate::repair::{RepairReport, repair};
use crate::round::{CommittedRound, HeldLease, Round, RoundCommitted, Tiered, has_expired_files};
use crate::wal_gc::{WalGc, WalGcReport};

/// What happened to one table in a pass.
#[derive(Debug)]
pub struct TableRound {
    pub table: TableId,
    /// The repair run before the round, if one was.
    pub repair: Option<RepairReport>,
    pub outcome: Result<RoundOutcome, RoundError>,
}

/// What a round of one table did, when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoundOutcome {
    /// A snapshot was committed (rows tiered, files expired, or both).
    Committed(RoundCommitted),
    /// No bucket has committed rows above its watermark, and no data file had to expire.
    Idle,
    /// The table's last round is less than `lake.freshness` ago.
    NotDue,
    /// Another compactor holds the table's lease.
    LeasedElsewhere { holder: Option<LakeLease> },
    /// The table was dropped after the pass listed it; nothing was committed (a drop racing
    /// a pass is routine, not a failure).
    Dropped,
}

/// What one pass over the catalog did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// One entry per lake-enabled table.
    pub rounds: Vec<TableRound>,
}

impl PassReport {
    /// The committed rounds.
    pub fn committed(&self) -> impl Iterator<Item = (TableId, &RoundCommitted)> {
        self.rounds.iter().filter_map(|round| match &round.outcome {
            Ok(RoundOutcome::Committed(committed)) => Some((round.table, committed)),
            _ => None,
        })
    }

    /// The failed rounds.
    pub fn errors(&self) -> impl Iterator<Item = (TableId, &RoundError)> {
        self.rounds
            .iter()
            .filter_map(|round| round.outcome.as_ref().err().map(|e| (round.table, e)))
    }
}

/// What one WAL retention pass did.
#[derive(Debug, Default)]
pub struct WalRetentionReport {
    /// Tables with WAL retention options, asked to expire.
    pub tables: usize,
    /// Chunk entries expired, and their bytes.
    pub chunks: usize,
    pub bytes: u64,
    /// Tables whose expiry failed, with why (tried again next pass).
    pub errors: Vec<(TableId, IndexError)>,
}

/// What one pass over the dropped tables did.
#[derive(Debug, Default)]
pub struct PurgeReport {
    /// Dropped tables whose grace passed, and of them those now gone from the index.
    pub due: usize,
    pub purged: usize,
    /// Index entries deleted.
    pub entries: usize,
    /// Lake table objects deleted (tables dropped with `purge`).
    pub lake_objects: usize,
    /// Tables whose purge failed, with why (tried again next pass).
    pub errors: Vec<(TableId, String)>,
    /// Dropped partitions whose grace passed, and of them those now gone from the index.
    pub partitions_due: usize,
    pub partitions_purged: usize,
}

/// What one pass of auto-partitioning did.
#[derive(Debug, Default)]
pub struct PartitionUpkeepReport {
    /// Partitions created ahead of their period, and dropped past retention, by name.
    pub created: Vec<String>,
    pub dropped: Vec<String>,
    /// Tables whose upkeep failed, with why (tried again next pass).
    pub errors: Vec<(TableId, String)>,
}

/// A running (or driven) compactor. See the module docs.
pub struct Compactor {
    inner: Arc<Inner>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

struct Inner {
    index: Arc<dyn LakeCatalog>,
    /// Chunk reads go through it; WAL garbage collection uses its store.
    cache: PagedCache,
    lake: LakeStorage,
    options: CompactorOptions,
    env: Env,
    owner: u64,
    tables: Mutex<HashMap<TableId, Arc<tokio::sync::Mutex<TableState>>>>,
    gc: tokio::sync::Mutex<WalGc>,
}

/// What this compactor knows about one table.
#[derive(Default)]
struct TableState {
    lease: Option<HeldLease>,
    /// The committed version, verified by repair or committed by this compactor under
    /// `lease`; `None` means "repair before the next round".
    table: Option<LakeTable>,
    /// Clock reading (µs) of the last committed round.
    last_commit_at: Option<i64>,
    /// The last round stopped at a per-round limit.
    backlog: bool,
    /// The bucket the next round starts at.
    cursor: u32,
    /// Clock reading (µs) when a round last looked for expired files (retention).
    last_expiry_at: Option<i64>,
    /// The last round's compaction stopped at its byte budget: the next round runs even
    /// without new rows.
    compaction_backlog: bool,
    /// Set when an error made tiering of the table unsafe; never cleared in this process.
    halted: Option<String>,
}

impl Compactor {
    /// A compactor without its loop: drive it with [`Compactor::run_once`],
    /// [`Compactor::tier_table`] and [`Compactor::collect_wal_garbage`]. `cache` reads the
    /// store at the root of the Inlet layout (`wal/`, `index/`, `lake/`): chunks are read
    /// through it (in a node, the cache the writer fills, so tiering right after a write does
    /// not GET), and WAL garbage is collected in its store; `lake` is the lake storage.
    pub fn new(
        index: impl LakeCatalog + 'static,
        cache: PagedCache,
        lake: LakeStorage,
        options: CompactorOptions,
        env: Env,
    ) -> Self {
        let owner = options.owner.unwrap_or_else(|| env.ids.next_u128() as u64);
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                index: Arc::new(index),
                cache,
                lake,
                options,
                env,
                owner,
                tables: Mutex::new(HashMap::new()),
                gc: tokio::sync::Mutex::new(WalGc::default()),
            }),
            shutdown,
            task: None,
        }
    }

    /// Starts a compactor and its loop: every `scan_interval` it tiers the due tables, and
    /// every `wal_gc_interval` it collects WAL garbage. Needs a tokio runtime.
    pub fn start(
        index: impl LakeCatalog + 'static,
        cache: PagedCache,
        lake: LakeStorage,
        options: CompactorOptions,
        env: Env,
    ) -> Self {
        let mut compactor = Self::new(index, cache, lake, options, env);
        let inner = compactor.inner.clone();
        let shutdown = compactor.shutdown.subscribe();
        compactor.task = Some(tokio::spawn(run_loop(inner, shutdown)));
        tracing::info!(owner = compactor.inner.owner, "compactor started");
        compactor
    }

    /// This compactor's id in table leases.
    pub fn owner(&self) -> u64 {
        self.inner.owner
    }

    /// Tiers every due lake-enabled table once (see the module docs).
    pub async fn run_once(&self) -> PassReport {
        self.inner.pass().await
    }

    /// One round of `table` now, whether or not its freshness interval has passed.
    pub async fn tier_table(&self, table: TableId) -> TableRound {
        match self.inner.index.table(table).await {
            Ok(Some(info)) => self.inner.table_round(&info, true).await,
            Err(error) => TableRound {
                table,
                repair: None,
                outcome: Err(error.into()),
            },
            Ok(None) => TableRound {
                table,
                repair: None,
                outcome: Err(RoundError::TableNotFound { table }),
            },
        }
    }

    /// One WAL garbage collection run (see [`crate::wal_gc`]).
    pub async fn collect_wal_garbage(&self) -> Result<WalGcReport, WalGcError> {
        self.inner.collect_wal_garbage().await
    }

    /// Deletes what is left of every table dropped more than `drop_grace` ago: its lake
    /// table first when it was dropped with `purge`, then its index entries (through the
    /// index owner, [`inlet_index::Index::purge_table`]); its WAL objects are then garbage.
    pub async fn purge_dropped(&self) -> PurgeReport {
        self.inner.purge_dropped().await
    }

    /// Auto-partitioning (`partition.auto`) at the injected clock's now: every
    /// auto-partitioned table gets the partitions of the current period and the next
    /// `partition.precreate`, and loses those more than `partition.retain` periods old (their
    /// rows go with them after the drop grace, [`Compactor::purge_dropped`]).
    pub async fn maintain_partitions(&self) -> PartitionUpkeepReport {
        self.inner.maintain_partitions().await
    }

    /// Asks the index to expire the WAL chunks of every table whose retention options no
    /// longer keep them (tables that are not tiered; [`inlet_index::Index::expire_wal`]).
    pub async fn expire_wal(&self) -> WalRetentionReport {
        self.inner.expire_wal().await
    }

    /// Stops the loop (after the round in progress), then gives up every lease this
    /// compactor holds so another can take its tables at once.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(%error, "compactor loop panicked");
        }
        let states: Vec<(TableId, Arc<tokio::sync::Mutex<TableState>>)> = self
            .inner
            .tables
            .lock()
            .expect("compactor table lock poisoned")
            .iter()
            .map(|(id, state)| (*id, state.clone()))
            .collect();
        for (table, state) in states {
            let mut state = state.lock().await;
            if let Some(held) = state.lease.take()
                && let Err(error) = self.inner.index.release_lake_lease(table, held.lease).await
            {
                tracing::warn!(table = table.0, %error, "lake lease not released");
            }
        }
        tracing::info!(owner = self.inner.owner, "compactor stopped");
    }
}

async fn run_loop(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(inner.options.scan_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let gc_every = micros(inner.options.wal_gc_interval);
    let mut last_gc: Option<i64> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        let pass = inner.pass().await;
        for (table, error) in pass.errors() {
            if !matches!(error, RoundError::Halted { .. }) && !error.halts() {
                tracing::warn!(table = table.0, %error, "lake round failed");
            }
        }
        let now = inner.env.clock.now().0;
        if last_gc.is_none_or(|at| now.saturating_sub(at) >= gc_every) {
            last_gc = Some(now);
            // Partitions past retention, dropped tables and partitions, and expired chunks
            // first, so their objects start their read grace in this run.
            inner.maintain_partitions().await;
            inner.purge_dropped().await;
            inner.expire_wal().await;
            if let Err(error) = inner.collect_wal_garbage().await {
                tracing::warn!(%error, "wal garbage collection failed");
            }
        }
    }
}

fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl Inner {
    async fn purge_dropped(&self) -> PurgeReport {
        let mut report = PurgeReport::default();
        let dropped = match self.index.dropped_tables().await {
            Ok(dropped) => dropped,
            Err(error) => {
                tracing::warn!(%error, "compactor cannot list dropped tables");
                return report;
            }
        };
        let now = self.env.clock.now().0;
        let grace = micros(self.options.drop_grace);
        for table in dropped {
            if now.saturating_sub(table.dropped_at.0) < grace {
                continue;
            }
            report.due += 1;
            match self.purge(&table).await {
                Ok((entries, lake_objects)) => {
                    report.purged += 1;
                    report.entries += entries;
                    report.lake_objects += lake_objects;
                    tracing::info!(
                        table = table.id.0,
                        name = %format!("{}.{}", table.database, table.name),
                        entries,
                        lake_objects,
                        "dropped table purged"
                    );
                }
                Err(error) => {
                    tracing::warn!(table = table.id.0, %error, "purge of a dropped table failed");
                    report.errors.push((table.id, error));
                }
            }
        }
        let partitions = match self.index.dropped_partitions().await {
            Ok(dropped) => dropped,
            Err(error) => {
                tracing::warn!(%error, "compactor cannot list dropped partitions");
                return report;
            }
        };
        for dropped in partitions {
            if now.saturating_sub(dropped.dropped_at.0) < grace {
                continue;
            }
            report.partitions_due += 1;
            match self.purge_partition(&dropped).await {
                Ok(entries) => {
                    report.partitions_purged += 1;
                    report.entries += entries;
                    tracing::info!(
                        table = dropped.table.0,
                        partition = %dropped.name,
                        entries,
                        "dropped partition purged"
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        table = dropped.table.0,
                        partition = %dropped.name,
                        %error,
                        "purge of a dropped partition failed"
                    );
                    report.errors.push((dropped.table, error));
                }
            }
        }
        report
    }

    /// Deletes the index entries of one dropped partition, a bounded batch per call; its
    /// WAL objects are then garbage once nothing else is in them. Returns the entries deleted.
    async fn purge_partition(&self, dropped: &DroppedPartition) -> Result<usize, String> {
        let mut entries = 0;
        loop {
            let purged = self
                .index
                .purge_partition(dropped.table, dropped.partition)
                .await
                .map_err(|e| e.to_string())?;
            entries += purged.entries;
            if purged.done {
                return Ok(entries);
            }
        }
    }

    async fn maintain_partitions(&self) -> PartitionUpkeepReport {
        let mut report = PartitionUpkeepReport::default();
        let tables = match self.index.tables().await {
            Ok(tables) => tables,
            Err(error) => {
                tracing::warn!(%error, "compactor cannot list tables for auto-partitioning");
                return report;
            }
        };
        let now = self.env.clock.now();
        for table in tables {
            let auto = match AutoPartition::parse(&table.descriptor.options) {
                Ok(Some(auto)) => auto,
                Ok(None) => continue,
                Err((key, value, reason)) => {
                    let error = format!("option `{key}` = `{value}`: {reason}");
                    report.errors.push((table.id, error));
                    continue;
                }
            };
            let (database, name) = (&table.database, &table.name);
            let missing: Vec<Vec<String>> = auto
                .wanted(now)
                .into_iter()
                .map(|name| vec![name])
                .filter(|values| table.partitions.find(values).is_none())
                .collect();
            if !missing.is_empty() {
                match self
                    .index
                    .add_partitions(database, name, missing.clone())
                    .await
                {
                    Ok(_) => report.created.extend(missing.into_iter().flatten()),
                    Err(error) => report.errors.push((table.id, error.to_string())),
                }
            }
            let expired: Vec<Vec<String>> = table
                .partitions
                .iter()
                .filter(|partition| auto.expired(&partition.name(), now))
                .map(|partition| partition.values.clone())
                .collect();
            // One bounded request at a time: a table that was off for long may have many.
            for chunk in expired.chunks(MAX_PARTITIONS_ADDED_AT_ONCE) {
                match self
                    .index
                    .drop_partitions(database, name, chunk.to_vec())
                    .await
                {
                    Ok(_) => report.dropped.extend(chunk.iter().flatten().cloned()),
                    Err(error) => report.errors.push((table.id, error.to_string())),
                }
            }
        }
        if !report.created.is_empty() || !report.dropped.is_empty() {
            tracing::info!(
                created = ?report.created,
                dropped = ?report.dropped,
                "auto-partitioning"
            );
        }
        for (table, error) in &report.errors {
            tracing::warn!(table = table.0, %error, "auto-partitioning failed");
        }
        report
    }

    /// Purges one dropped table: its lake table (if asked), then its index entries, whose
    /// records go last so a failure anywhere leaves it listed as dropped for the next pass.
    /// Returns the index entries and lake objects deleted.
    async fn purge(&self, table: &DroppedTable) -> Result<(usize, usize), String> {
        let mut lake_objects = 0;
        if table.purge_lake {
            let folder = ObjectPath::from(lake_table_path(&table.database, &table.name, table.id));
            let store = self.lake.store();
            let listed: Vec<_> = store
                .list(Some(&folder))
                .try_collect()
                .await
                .map_err(|e| format!("list of `{folder}` failed: {e}"))?;
            for object in listed {
                match store.delete(&object.location).await {
                    Ok(()) | Err(slatedb::object_store::Error::NotFound { .. }) => {
                        lake_objects += 1;
                    }
                    Err(error) => {
                        return Err(format!("delete of `{}` failed: {error}", object.location));
                    }
                }
            }
        }
        let mut entries = 0;
        // Each call is bounded; a large table (many chunks or keys) takes several.
        loop {
            let purged = self
                .index
                .purge_table(table.id)
                .await
                .map_err(|e| e.to_string())?;
            entries += purged.entries;
            if purged.done {
                return Ok((entries, lake_objects));
            }
        }
    }

    async fn expire_wal(&self) -> WalRetentionReport {
        let mut report = WalRetentionReport::default();
        let tables = match self.index.tables().await {
            Ok(tables) => tables,
            Err(error) => {
                tracing::warn!(%error, "compactor cannot list tables for wal retention");
                return report;
            }
        };
        let expiring = tables.iter().filter(|info| {
            !info.is_primary_key_table()
                && info.options().is_ok_and(|options| {
                    !options.lake_enabled
                        && (options.retention.is_some() || options.retention_bytes.is_some())
                })
        });
        for info in expiring {
            report.tables += 1;
            // Each call is bounded; a long backlog (retention just turned on) takes several.
            loop {
                match self.index.expire_wal(info.id).await {
                    Ok(expired) => {
                        report.chunks += expired.chunks;
                        report.bytes += expired.bytes;
                        if !expired.more {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(table = info.id.0, %error, "wal retention failed");
                        report.errors.push((info.id, error));
                        break;
                    }
                }
            }
        }
        report
    }

    async fn pass(&self) -> PassReport {
        let mut report = PassReport::default();
        let mut present = Vec::new();
        let tables = match self.index.tables().await {
            Ok(tables) => tables,
            Err(error) => {
                // Try again next pass; keep what is known about every table meanwhile.
                tracing::warn!(%error, "compactor cannot list tables");
                return report;
            }
        };
        for info in tables {
            present.push(info.id);
            match info.options() {
                Ok(options) if options.lake_enabled => {
                    let mut round = self.table_round(&info, false).await;
                    if round.outcome.as_ref().is_err_and(RoundError::table_dropped) {
                        round.outcome = Ok(RoundOutcome::Dropped);
                    }
                    report.rounds.push(round);
                }
                Ok(_) => {}
                Err(source) => report.rounds.push(TableRound {
                    table: info.id,
                    repair: None,
                    outcome: Err(RoundError::Options {
                        table: info.id,
                        source,
                    }),
                }),
            }
        }
        // Forget dropped tables.
        self.tables
            .lock()
            .expect("compactor table lock poisoned")
            .retain(|id, _| present.contains(id));
        report
    }

    fn state(&self, table: TableId) -> Arc<tokio::sync::Mutex<TableState>> {
        self.tables
            .lock()
            .expect("compactor table lock poisoned")
            .entry(table)
            .or_default()
            .clone()
    }

    async fn table_round(&self, info: &TableInfo, force: bool) -> TableRound {
        let state = self.state(info.id);
        let mut state = state.lock().await;
        let mut repaired = None;
        let outcome = self.round(info, &mut state, force, &mut repaired).await;
        if let Err(error) = &outcome {
            // Whatever failed, trust nothing cached: the next round repairs first.
            state.table = None;
            if matches!(error, RoundError::LeaseLost { .. }) {
                state.lease = None;
            }
            if error.halts() && state.halted.is_none() {
                tracing::error!(table = info.id.0, %error, "lake tiering of the table halted");
                state.halted = Some(error.to_string());
            }
        }
        TableRound {
            table: info.id,
            repair: repaired,
            outcome,
        }
    }

    async fn round(
        &self,
        info: &TableInfo,
        state: &mut TableState,
        force: bool,
        repaired: &mut Option<RepairReport>,
    ) -> Result<RoundOutcome, RoundError> {
        if let Some(reason) = &state.halted {
            return Err(RoundError::Halted {
                table: info.id,
                reason: reason.clone(),
            });
        }
        let options = info.options().map_err(|source| RoundError::Options {
            table: info.id,
            source,
        })?;
        let now = self.env.clock.now().0;
        let due = force
            || state.backlog
            || state.compaction_backlog
            || state
                .last_commit_at
                .is_none_or(|at| now.saturating_sub(at) >= micros(options.lake_freshness));
        if !due {
            return Ok(RoundOutcome::NotDue);
        }
        // Retention: files older than `now - retention`, and beyond `retention.bytes` per
        // bucket, expire, at most once per freshness interval (backlog rounds follow each
        // other at once).
        let expiry = (options.retention.is_some() || options.retention_bytes.is_some())
            .then(|| ExpiryRule {
                before: options
                    .retention
                    .map(|retention| TimestampMicros(now.saturating_sub(micros(retention)))),
                max_bytes: options.retention_bytes,
            })
            .filter(|_| {
                force
                    || state
                        .last_expiry_at
                        .is_none_or(|at| now.saturating_sub(at) >= micros(options.lake_freshness))
            });
        // A table this compactor has not verified yet is repaired even when idle, so a crash
        // of another compactor is cleaned up without waiting for new rows.
        // A table whose columns changed since its lake schema was written is not idle: its
        // round commits the evolved schema (`Round::evolve_schema`).
        if state
            .table
            .as_ref()
            .is_some_and(|table| !table.lags_columns_of(info))
            && !state.compaction_backlog
            && !self.has_rows_above_watermarks(info).await?
        {
            let expire = match expiry {
                Some(rule) => has_expired_files(self.index.as_ref(), info, rule).await?,
                None => false,
            };
            if !expire {
                if expiry.is_some() {
                    state.last_expiry_at = Some(now);
                }
                state.backlog = false;
                return Ok(RoundOutcome::Idle);
            }
        }

        let lease = match self
            .index
            .acquire_lake_lease(info.id, self.owner, self.options.lease_ttl)
            .await
        {
            Ok(lease) => lease,
            Err(LakeCommitError::Fenced { holder, .. }) => {
                state.lease = None;
                state.table = None;
                return Ok(RoundOutcome::LeasedElsewhere { holder });
            }
            Err(LakeCommitError::TableNotFound { table }) => {
                return Err(RoundError::TableNotFound { table });
            }
            Err(error) => return Err(error.into()),
        };
        // Only if this compactor held every epoch since its last verified state is that
        // state still the truth; otherwise another holder may have committed or crashed.
        let continuous = state.lease.is_some_and(|held| {
            lease.epoch == held.lease.epoch || lease.epoch == held.lease.epoch + 1
        });
        if !continuous {
            state.table = None;
        }
        state.lease = Some(HeldLease {
            lease,
            renewed_at: now,
        });
        let held = state.lease.as_mut().expect("just set");

        let base = match state.table.take() {
            Some(table) => table,
            None => {
                let record = self.index.lake_table(info.id).await?;
                let (table, report) = repair(
                    self.index.as_ref(),
                    &self.lake,
                    info,
                    record.as_ref(),
                    self.options.orphan_grace,
                    &self.env,
                )
                .await?;
                *repaired = Some(report);
                match table {
                    Some(table) => table,
                    None => self.create(info, held).await?,
                }
            }
        };
        let mut round = Round {
            index: self.index.as_ref(),
            cache: &self.cache,
            storage: &self.lake,
            options: &self.options,
            env: &self.env,
            info,
            lease: held,
            snapshots_retained: options.lake_snapshots_retained,
        };
        let compaction = self
            .options
            .compaction
            .rule(self.options.write.target_file_bytes);
        let tiered = round.run(&base, state.cursor, expiry, compaction).await?;
        if expiry.is_some() {
            state.last_expiry_at = Some(now);
        }
        match tiered {
            Tiered::Idle => {
                state.table = Some(base);
                state.backlog = false;
                state.compaction_backlog = false;
                Ok(RoundOutcome::Idle)
            }
            Tiered::Committed(round) => {
                let CommittedRound {
                    report,
                    table,
                    next_cursor,
                    repair_next,
                } = *round;
                // Expired files left behind are orphans: the next round repairs first.
                state.table = (!repair_next).then_some(table);
                state.cursor = next_cursor;
                state.backlog = report.backlog;
                state.compaction_backlog = report.compaction_backlog;
                state.last_commit_at = Some(self.env.clock.now().0);
                Ok(RoundOutcome::Committed(report))
            }
        }
    }

    /// Whether some bucket of the table has durable rows above its lake watermark.
    async fn has_rows_above_watermarks(&self, info: &TableInfo) -> Result<bool, RoundError> {
        for stream in table_streams(info) {
            let (tail, watermark) = self.index.stream_state(stream).await?;
            if tail.next_offset > watermark.offset {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Creates the lake table (metadata version 0) and records it in the index.
    async fn create(&self, info: &TableInfo, held: &HeldLease) -> Result<LakeTable, RoundError> {
        let table = LakeTable::create(&self.lake, info, &self.env).await?;
        let commit = LakeCommit {
            table: info.id,
            lease: held.lease,
            expected_metadata_location: None,
            metadata_location: table.metadata_location().to_owned(),
            snapshot_id: None,
            watermarks: Default::default(),
            added_files: Vec::new(),
            removed_files: Vec::new(),
            earliest: Default::default(),
            key_rows: Vec::new(),
        };
        match self.index.commit_lake(commit).await {
            Ok(_) => {}
            Err(error @ LakeCommitError::Index(_)) => return Err(error.into()),
            Err(error) => {
                let file_io = self.lake.file_io();
                if let Err(cleanup) = file_io.delete(table.metadata_location()).await {
                    tracing::warn!(%cleanup, "lake table creation left an orphan");
                }
                return Err(error.into());
            }
        }
        if let Err(error) = table.publish_version_hint().await {
            tracing::warn!(table = info.id.0, %error, "version hint not published");
        }
        tracing::info!(
            table = info.id.0,
            location = table.location(),
            "lake table created"
        );
        Ok(table)
    }

    async fn collect_wal_garbage(&self) -> Result<WalGcReport, WalGcError> {
        let mut gc = self.gc.lock().await;
        gc.run(
            self.index.as_ref(),
            self.cache.store(),
            &self.options,
            &self.env,
        )
        .await
    }
}
