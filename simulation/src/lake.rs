//! The compactor in the simulation: every process runs one, driven by the harness's own task
//! ([`drive`]), and the end of a run tiers everything, collects the WAL and reads the log back
//! through the lake ([`settle`]).
//!
//! The harness calls `Compactor::run_once` and `Compactor::collect_wal_garbage` itself rather
//! than `Compactor::start`: its loop waits on its ticker and its shutdown signal with an
//! unbiased `select!`, and its pass and garbage-collection reports would not reach the trace.
//! A process that dies takes its compactor with it, wherever the compactor was (a failpoint
//! trigger kills the process in the middle of a round, see `store::FailpointTrigger`).

use std::sync::Arc;
use std::time::Duration;

use inlet_compactor::{
    PassReport, PurgeReport, RoundError, RoundOutcome, TableRound, WalGcReport, WalRetentionReport,
};
use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::TableId;
use inlet_core::table::TableInfo;
use inlet_index::table_streams;

use inlet_compactor::LakeCatalog;

use crate::model::FinalLog;
use crate::model::pk::PkFinal;
use crate::rng::SimRng;
use crate::scratch;
use crate::world::{Compaction, DATABASE, Node, World, audit};

/// How long, in simulated time, the end-of-run tiering may take (leases of dead compactors
/// expire meanwhile) before that counts as a liveness violation.
const TIERING_LIMIT: Duration = Duration::from_secs(300);

/// How often the end-of-run tiering retries a table another (dead) compactor still leases.
const LEASE_POLL: Duration = Duration::from_millis(100);

/// Runs `node`'s compactor until the process dies: a pass over the lake tables every
/// `pass_every`, WAL garbage collection every `gc_every` (both drawn per wait).
pub(crate) async fn drive(world: Arc<World>, node: Arc<Node>, mut rng: SimRng) {
    let spec = world.cfg.compactor.clone();
    let mut gc_due = world.now() + rng.millis(spec.gc_every.0, spec.gc_every.1);
    loop {
        let work = async {
            tokio::time::sleep(rng.millis(spec.pass_every.0, spec.pass_every.1)).await;
            let pass = node.compactor.run_once().await;
            record_pass(&world, &node, &pass);
            if world.now() >= gc_due {
                gc_due = world.now() + rng.millis(spec.gc_every.0, spec.gc_every.1);
                // As the compactor's own loop does: dropped tables, WAL retention, then the
                // collection.
                let purged = node.compactor.purge_dropped().await;
                record_purge(&world, &node, &purged);
                let expired = node.compactor.expire_wal().await;
                record_retention(&world, &node, &expired);
                let gc = node.compactor.collect_wal_garbage().await;
                record_gc(&world, &node, &gc);
            }
        };
        tokio::select! {
            biased;
            () = node.life.dead() => return,
            () = work => {}
        }
    }
}

fn record_pass(world: &World, node: &Node, pass: &PassReport) {
    for round in &pass.rounds {
        record_round(world, node, round);
    }
}

/// Traces what a round did; an error that means the lake and the index disagree, or that the
/// compactor met data it cannot read, is a violation.
fn record_round(world: &World, node: &Node, round: &TableRound) {
    let (id, table) = (node.id, round.table.0);
    if let Some(repair) = &round.repair
        && (repair.orphans_deleted > 0 || repair.orphans_kept > 0)
    {
        world.trace.event(format!(
            "node {id} compactor: table {table} repaired: {} referenced, {} orphans deleted, {} \
             kept",
            repair.referenced, repair.orphans_deleted, repair.orphans_kept
        ));
    }
    match &round.outcome {
        Ok(RoundOutcome::Committed(c)) => world.trace.event(format!(
            "node {id} compactor: table {table} committed {} rows ({} chunk bytes) in {} files, \
             watermarks {:?}, {} chunks of {} WAL objects trimmed, {} manifests merged, {} \
             snapshots retired, {} small files compacted into {}{}",
            c.rows,
            c.chunk_bytes,
            c.data_files,
            c.watermarks
                .iter()
                .map(|(b, o)| (b.0, o.0))
                .collect::<Vec<_>>(),
            c.trimmed_chunks,
            c.trimmed_objects,
            c.merged_manifests,
            c.retired_snapshots,
            c.compacted_files,
            c.compacted_into,
            if c.backlog || c.compaction_backlog {
                ", backlog"
            } else {
                ""
            }
        )),
        Ok(_) => {}
        // The crash already killed the process: nobody sees this error.
        Err(RoundError::Crash(_)) => {}
        Err(error) => {
            let text = world.scrub(error);
            world.trace.event(format!(
                "node {id} compactor: table {table} round failed: {text}"
            ));
            if suspicious(error) {
                world.violation(format!(
                    "lake: node {id}'s compactor failed on table {table}: {text}"
                ));
            }
        }
    }
}

/// Errors no store fault, crash or lost lease explains.
fn suspicious(error: &RoundError) -> bool {
    !matches!(error, RoundError::Halted { .. })
        && (error.halts()
            || matches!(error, RoundError::ChunkGap { .. })
            || matches!(
                error.kind(),
                ErrorKind::Corruption
                    | ErrorKind::Internal
                    | ErrorKind::InvalidInput
                    | ErrorKind::NotFound
            ))
}

fn record_purge(world: &World, node: &Node, report: &PurgeReport) {
    if report.purged > 0 {
        world.trace.event(format!(
            "node {} purged {} dropped tables: {} index entries, {} lake objects",
            node.id, report.purged, report.entries, report.lake_objects
        ));
    }
    for (table, error) in &report.errors {
        world.trace.event(format!(
            "node {} purge of table {} failed: {}",
            node.id,
            table.0,
            world.scrub(error)
        ));
    }
}

fn record_retention(world: &World, node: &Node, report: &WalRetentionReport) {
    if report.chunks > 0 {
        world.trace.event(format!(
            "node {} wal retention: {} chunks ({} bytes) of {} tables expired",
            node.id, report.chunks, report.bytes, report.tables
        ));
    }
    for (table, error) in &report.errors {
        world.trace.event(format!(
            "node {} wal retention of table {} failed: {}",
            node.id,
            table.0,
            world.scrub(error)
        ));
    }
}

fn record_gc(world: &World, node: &Node, gc: &Result<WalGcReport, inlet_compactor::WalGcError>) {
    match gc {
        Ok(report) if report.deleted > 0 => world.trace.event(format!(
            "node {} wal gc: {} listed, {} live, {} young, {} waiting, {} deleted",
            node.id, report.listed, report.live, report.young, report.waiting, report.deleted
        )),
        Ok(_) => {}
        Err(error) => world.trace.event(format!(
            "node {} wal gc failed: {}",
            node.id,
            world.scrub(error)
        )),
    }
}

/// A lake-enabled table at the end of a run.
pub(crate) struct LakeTableRef {
    /// How the trace names it: `t<i>` for log tables, its name for primary-key tables.
    pub(crate) label: String,
    pub(crate) info: Arc<TableInfo>,
    /// The primary-key table's index in `cfg.pk.tables`; `None` for a log table.
    pub(crate) keyed: Option<usize>,
    /// Each bucket's durable tail when the end-of-run tiering started.
    pub(crate) tails: Vec<u64>,
}

/// The lake-enabled tables, log tables then primary-key tables, with their tails.
async fn lake_tables(world: &World, node: &Node) -> Vec<LakeTableRef> {
    let infos = node
        .index
        .tables()
        .await
        .expect("tables are listed while the store has no faults");
    let log = world
        .cfg
        .tables
        .iter()
        .enumerate()
        .filter(|(_, table)| table.lake.is_some())
        .map(|(t, table)| (format!("t{t}"), &table.name, None));
    let keyed = world
        .cfg
        .pk
        .tables
        .iter()
        .enumerate()
        .filter(|(_, table)| table.lake.is_some())
        .map(|(k, table)| (table.name.clone(), &table.name, Some(k)));
    let mut out = Vec::new();
    for (label, name, keyed) in log.chain(keyed) {
        let Some(info) = infos
            .iter()
            .find(|i| i.database == DATABASE && &i.name == name)
        else {
            continue;
        };
        let mut tails = Vec::new();
        for stream in table_streams(info) {
            let tail = node
                .index
                .tail(stream)
                .await
                .expect("tails are read while the store has no faults");
            tails.push(tail.next_offset.0);
        }
        out.push(LakeTableRef {
            label,
            info: info.clone(),
            keyed,
            tails,
        });
    }
    out
}

/// Whether every bucket of the table has its lake watermark at its tail; a watermark above
/// the tail is a violation.
async fn tiered(world: &World, node: &Node, table: &LakeTableRef) -> bool {
    let mut done = true;
    for stream in table_streams(&table.info) {
        let watermark = node
            .index
            .lake_watermark(stream)
            .await
            .expect("watermarks are read while the store has no faults")
            .offset
            .0;
        let tail = table.tails[stream.bucket.0 as usize];
        if watermark > tail {
            world.violation(format!(
                "lake: {}/b{} has lake watermark {watermark} above its tail {tail}",
                table.label, stream.bucket.0
            ));
        }
        done &= watermark >= tail;
    }
    done
}

/// One forced round of `table` on `node`, retried while a dead compactor's lease lasts.
async fn round_when_leased(world: &World, node: &Node, table: TableId) -> Option<TableRound> {
    let deadline = world.now() + TIERING_LIMIT;
    loop {
        let round = node.compactor.tier_table(table).await;
        if !matches!(round.outcome, Ok(RoundOutcome::LeasedElsewhere { .. })) {
            return Some(round);
        }
        if world.now() >= deadline {
            world.violation(format!(
                "liveness: table {} stayed leased by another compactor for {TIERING_LIMIT:?}",
                table.0
            ));
            return None;
        }
        tokio::time::sleep(LEASE_POLL).await;
    }
}

/// The end of a run, after the first audit, with every process dead and the store healed.
/// Each step runs on a fresh process, and simulated time passes while no process is alive
/// (a live one would tick its index's timers all along, for nothing):
///
/// 1. once the leases of the dead compactors expired, a process tiers every lake table up to
///    its tail;
/// 2. once the WAL upload grace has passed, garbage collection (run again after the read
///    grace) leaves exactly the WAL objects some chunk entry still points into (none when
///    every table is in the lake);
/// 3. once the orphan grace has passed, crash repair by a new lease holder (the process of
///    step 2) leaves no orphan behind, and a repair by the next holder finds nothing to
///    delete;
/// 4. that last process reads every stream from offset 0 again, lake tables now wholly from
///    the lake with their WAL objects deleted: it must read exactly the log of the first
///    audit.
pub(crate) async fn settle(world: &Arc<World>, first: &FinalLog, keyed: &PkFinal) {
    let spec = world.cfg.compactor.clone();
    let margin = Duration::from_secs(1);
    world
        .trace
        .event("tiering every lake table to its tail, then collecting the WAL");
    tokio::time::sleep(spec.lease_ttl + margin).await;
    let node = world.open_node(Compaction::Driven).await;
    let tables = lake_tables(world, &node).await;
    for table in &tables {
        let t = &table.label;
        loop {
            if tiered(world, &node, table).await {
                break;
            }
            let Some(round) = round_when_leased(world, &node, table.info.id).await else {
                break;
            };
            record_round(world, &node, &round);
            match &round.outcome {
                Err(error) => {
                    world.violation(format!(
                        "lake: {t} cannot be tiered to its tail once the store healed: {}",
                        world.scrub(error)
                    ));
                    break;
                }
                Ok(RoundOutcome::Idle) => {
                    world.violation(format!(
                        "lake: {t} is below its tail {:?}, yet a round finds nothing to tier",
                        table.tails
                    ));
                    break;
                }
                Ok(_) => {}
            }
        }
        if let Some(k) = table.keyed {
            check_current_rows(world, &node, table, k, keyed).await;
        }
    }
    node.life.kill();

    // Past the upload grace of every WAL object, the orphan grace of every lake file and
    // the lease of the tiering process.
    // Past the drop grace too, of a table dropped at the end of the run.
    let wait = spec
        .wal_upload_grace
        .max(spec.orphan_grace)
        .max(spec.lease_ttl)
        .max(
            world
                .cfg
                .scratch
                .as_ref()
                .map_or(Duration::ZERO, |s| s.drop_grace),
        );
    tokio::time::sleep(wait + margin).await;
    let mut node = world.open_node(Compaction::Driven).await;
    // Nothing of the dropped table is left in the index; its WAL objects are then
    // unreferenced, which the collection below must delete.
    scratch::check_purged(world, &node).await;
    let mut last = None;
    for pass in 0..3 {
        if pass == 1 {
            tokio::time::sleep(spec.wal_read_grace + margin).await;
        }
        match node.compactor.collect_wal_garbage().await {
            Ok(report) => {
                world.trace.event(format!(
                    "wal gc {pass}: {} listed, {} live, {} young, {} waiting, {} deleted",
                    report.listed, report.live, report.young, report.waiting, report.deleted
                ));
                last = Some(report);
            }
            Err(error) => world.violation(format!(
                "lake: wal garbage collection failed once the store healed: {}",
                world.scrub(error)
            )),
        }
    }
    if let Some(report) = last {
        if report.listed != report.live {
            world.violation(format!(
                "lake: past every grace the WAL holds {} objects no chunk points into",
                report.listed - report.live
            ));
        }
        // A partitioned scratch table stays live, untiered, with its rows in the WAL.
        let scratch_lives = world.cfg.scratch.as_ref().is_some_and(|s| s.partitioned);
        if world.cfg.tables.iter().all(|t| t.lake.is_some())
            && world.cfg.pk.tables.is_empty()
            && !scratch_lives
            && report.listed > 0
        {
            world.violation(format!(
                "lake: every table is tiered to its tail, yet the WAL holds {} objects",
                report.listed
            ));
        }
    }

    for attempt in 0..2 {
        if attempt > 0 {
            node.life.kill();
            tokio::time::sleep(spec.lease_ttl + margin).await;
            node = world.open_node(Compaction::Driven).await;
        }
        for table in &tables {
            let t = &table.label;
            let Some(round) = round_when_leased(world, &node, table.info.id).await else {
                continue;
            };
            record_round(world, &node, &round);
            let Some(repair) = &round.repair else {
                world.violation(format!(
                    "lake: a new compactor's first round of {t} did not repair it"
                ));
                continue;
            };
            world.trace.event(format!(
                "repair {attempt} of {t}: {} referenced, {} orphans deleted, {} kept",
                repair.referenced, repair.orphans_deleted, repair.orphans_kept
            ));
            if repair.orphans_kept > 0 || (attempt > 0 && repair.orphans_deleted > 0) {
                world.violation(format!(
                    "lake: repair {attempt} of {t} past the orphan grace found {} orphans to \
                     delete and kept {}",
                    repair.orphans_deleted, repair.orphans_kept
                ));
            }
        }
    }

    world
        .trace
        .event("reading every stream from offset 0 again, through the lake");
    for table in &tables {
        if !tiered(world, &node, table).await {
            world.violation(format!(
                "lake: {} is no longer tiered to its tail",
                table.label
            ));
        }
    }
    let again = audit(world, &node).await;
    compare(world, first, &again);
    node.life.kill();
}

/// The log read after tiering and garbage collection must be the log read before, but for
/// offsets WAL retention expired in between (a prefix, in tables with retention); nothing
/// expired comes back.
fn compare(world: &World, before: &FinalLog, after: &FinalLog) {
    for (t, (before, after)) in before.iter().zip(after).enumerate() {
        let expires = world
            .cfg
            .tables
            .get(t)
            .is_some_and(|s| s.retention.is_some());
        for (b, (before, after)) in before.iter().zip(after).enumerate() {
            if before.len() != after.len() {
                world.violation(format!(
                    "lake: t{t}/b{b} read {} rows from offset 0 after tiering and WAL garbage \
                     collection, {} before",
                    after.len(),
                    before.len()
                ));
            }
            let differs = before.iter().zip(after).position(|pair| match pair {
                (Some(x), Some(y)) => {
                    x.id != y.id
                        || x.row != y.row
                        || x.commit_ts != y.commit_ts
                        || x.fingerprints != y.fingerprints
                }
                (Some(_), None) => !expires,
                (None, Some(_)) => true,
                (None, None) => false,
            });
            if let Some(offset) = differs {
                world.violation(format!(
                    "lake: t{t}/b{b} offset {offset} reads {:?} after tiering and WAL garbage \
                     collection, {:?} before",
                    after[offset], before[offset]
                ));
            }
        }
    }
}

/// A primary-key table tiered to its tail must hold in its lake table exactly the rows the
/// final lookups returned: one row per live key, with the `_offset` (and bucket) of the write
/// that made it and the same values, and no row of a deleted key. Read with iceberg-rust's
/// scan, which applies the position deletes as DuckDB and pyiceberg do.
async fn check_current_rows(
    world: &World,
    node: &Node,
    table: &LakeTableRef,
    k: usize,
    keyed: &PkFinal,
) {
    let name = &table.label;
    let lake = match crate::pk::lake_rows(world, node, &table.info).await {
        Ok(lake) => lake,
        Err(error) => {
            world.violation(format!(
                "lake: cannot read the lake table of {name}: {}",
                world.scrub(error)
            ));
            return;
        }
    };
    let Some(lookups) = keyed.lookups.get(k) else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (key, found) in &lake {
        if !seen.insert(*key) {
            world.violation(format!("lake: {name} holds key {key} twice"));
        }
        let expected = usize::try_from(*key)
            .ok()
            .and_then(|i| lookups.get(i))
            .cloned()
            .flatten();
        if expected.as_ref() != Some(found) {
            world.violation(format!(
                "lake: {name} holds {found:?} for key {key}, the final lookup found {expected:?}"
            ));
        }
    }
    for (key, found) in lookups.iter().enumerate() {
        if found.is_some() && !seen.contains(&(key as i64)) {
            world.violation(format!(
                "lake: {name} has no row for key {key}, the final lookup found {found:?}"
            ));
        }
    }
    world.trace.event(format!(
        "lake of {name}: {} current rows, as the final lookups",
        lake.len()
    ));
}
