//! A table the run drops (`config::ScratchSpec`, half the runs): created with the others,
//! written by one producer the model does not track (its rows never matter, only where they
//! are stored), dropped at `drop_at` on the primary (retried through faults and crashes until
//! the drop is acknowledged), and purged by every process's compactor once the drop grace
//! passed (`lake::drive` asks at each garbage collection), so purges race crashes, takeovers
//! and faults like any index write.
//!
//! At the end ([`check_purged`], in `lake::settle`, past the drop grace): nothing of the
//! table is left in the index, and nothing under its lake folder when it was dropped with
//! `purge`; the settle's WAL check that follows then requires its WAL objects to be gone
//! like any unreferenced object. The other tables' logs, read again after the purge and the
//! collection, must be what they were (`lake::compare`).
//!
//! A partitioned scratch table (`ScratchSpec::partitioned`) has its rows routed to one
//! partition per row number, which the appends create through the owner (racing crashes and
//! takeovers like any catalog change); at `drop_at` half its partitions are dropped instead
//! of the table, and at the end the dropped partitions must be purged (no record left, so no
//! entry of their streams: a partition's record goes last) while the other half stays live.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use inlet_compactor::lake::lake_table_path;
use inlet_core::table::TableDescriptor;
use inlet_index::DropOptions;
use slatedb::object_store::path::Path as ObjectPath;

use crate::config::ScratchSpec;
use crate::data::{AppendId, AppendShape, append_batches, table_schema};
use crate::rng::SimRng;
use crate::workload::{Outcome, on_node};
use crate::world::{DATABASE, Node, World, lake_options};

/// The scratch table's name.
pub const TABLE: &str = "scratch";

/// The producer id of its appends (never idempotent: no producer reference is sent).
const PRODUCER: u64 = 0x5C_A7C4;

/// How long one append or drop attempt may take before it counts as unknown.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Rows per scratch append: one partition per row number when partitioned.
const ROWS: u32 = 32;

/// A partitioned scratch table's partitions dropped at `drop_at`: row numbers below this.
const DROPPED_PARTITIONS: u32 = ROWS / 2;

/// The values of the partitions a partitioned scratch table drops.
fn dropped_partitions() -> Vec<Vec<String>> {
    (0..DROPPED_PARTITIONS)
        .map(|row| vec![row.to_string()])
        .collect()
}

pub fn descriptor(spec: &ScratchSpec) -> TableDescriptor {
    TableDescriptor {
        schema: table_schema(),
        bucket_count: spec.buckets,
        bucket_key: Vec::new(),
        partition_key: match spec.partitioned {
            true => vec!["row".to_owned()],
            false => Vec::new(),
        },
        primary_key: Vec::new(),
        comment: String::new(),
        options: lake_options(spec.lake.then_some(Duration::from_millis(500))),
    }
}

/// Writes the scratch table until its drop time, then drops it.
pub async fn run(world: Arc<World>) {
    let Some(spec) = world.cfg.scratch.clone() else {
        return;
    };
    let mut rng = SimRng::new(world.cfg.seed).fork("scratch-writer", 0);
    let mut seq = 0;
    while world.now() < spec.drop_at {
        tokio::time::sleep(rng.millis(20, 200)).await;
        if world.stopping.get() {
            return;
        }
        seq += 1;
        let id = AppendId {
            producer: PRODUCER,
            seq,
        };
        let batches = append_batches(id, &AppendShape::of(id, ROWS), world.cfg.max_payload);
        let node = world.primary().await;
        let call = node.writer.append(DATABASE, TABLE, &batches, None);
        // Acked or not, it makes no difference to what must be left after the purge.
        let _ = on_node(&node, Some(ATTEMPT_TIMEOUT), call).await;
    }
    drop_scratch(&world, &spec).await;
}

/// How the run drops the scratch table: a repeated drop of a dropped table is a no-op.
fn drop_options(spec: &ScratchSpec) -> DropOptions {
    DropOptions {
        if_exists: true,
        cascade: false,
        purge_lake: spec.purge,
    }
}

/// Drops the scratch table on the primary until a drop is acknowledged (a repeated drop of a
/// dropped table is a no-op: `if_exists`), or the run stops (`lake::settle` drops it then).
pub(crate) async fn drop_scratch(world: &World, spec: &ScratchSpec) {
    let options = drop_options(spec);
    loop {
        if world.stopping.get() {
            return;
        }
        let node = world.primary().await;
        let call = async {
            match spec.partitioned {
                true => node
                    .index
                    .drop_partitions(DATABASE, TABLE, dropped_partitions(), true)
                    .await
                    .map(|_| ()),
                false => node.index.drop_table(DATABASE, TABLE, options).await,
            }
        };
        match on_node(&node, Some(ATTEMPT_TIMEOUT), call).await {
            Outcome::Done(()) => {
                world.trace.event(match spec.partitioned {
                    true => format!("scratch partitions dropped on node {}", node.id),
                    false => format!(
                        "scratch table dropped on node {} (purge {})",
                        node.id, spec.purge
                    ),
                });
                return;
            }
            Outcome::Failed(error) => {
                world.trace.event(format!(
                    "dropping the scratch table failed: {}",
                    world.scrub(error)
                ));
            }
            Outcome::TimedOut => world.trace.event("dropping the scratch table timed out"),
            Outcome::ProcessDied => world
                .trace
                .event(format!("dropping the scratch table: node {} died", node.id)),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Drops the scratch table if the run stopped before it could, on `node` (the store healed).
pub(crate) async fn drop_at_end(world: &World, node: &Node) {
    let Some(spec) = &world.cfg.scratch else {
        return;
    };
    let options = drop_options(spec);
    let dropped = match spec.partitioned {
        true => node
            .index
            .drop_partitions(DATABASE, TABLE, dropped_partitions(), true)
            .await
            .map(|_| ()),
        false => node.index.drop_table(DATABASE, TABLE, options).await,
    };
    if let Err(error) = dropped {
        world.violation(format!(
            "scratch: the table cannot be dropped once the store healed: {}",
            world.scrub(error)
        ));
    }
}

/// Past the drop grace: purges what is left on `node` (the background compactors may have
/// done it already), then nothing of the scratch table may be in the index, nor, dropped with
/// `purge`, under its lake folder.
pub(crate) async fn check_purged(world: &World, node: &Node) {
    let (Some(spec), Some(id)) = (&world.cfg.scratch, world.scratch.get()) else {
        return;
    };
    let report = node.compactor.purge_dropped().await;
    world.trace.event(format!(
        "scratch purge: {} due, {} purged, {} index entries, {} lake objects",
        report.due, report.purged, report.entries, report.lake_objects
    ));
    for (table, error) in &report.errors {
        world.violation(format!(
            "scratch: the purge of table {} failed once the store healed: {}",
            table.0,
            world.scrub(error)
        ));
    }
    if spec.partitioned {
        check_partitions_purged(world, node).await;
        return;
    }
    match node.index.table_entries(id).await {
        Ok(0) => {}
        Ok(left) => world.violation(format!(
            "scratch: {left} index entries of the dropped table are left past the drop grace"
        )),
        Err(error) => world.violation(format!(
            "scratch: its index entries cannot be counted: {}",
            world.scrub(error)
        )),
    }
    match node.index.dropped_tables().await {
        Ok(dropped) if dropped.is_empty() => {}
        Ok(dropped) => world.violation(format!(
            "scratch: dropped tables are still listed past the drop grace: {dropped:?}"
        )),
        Err(error) => world.violation(format!(
            "scratch: dropped tables cannot be listed: {}",
            world.scrub(error)
        )),
    }
    if spec.purge {
        let folder = ObjectPath::from(lake_table_path(DATABASE, TABLE, id));
        let lake = world.lake_storage();
        let listed: Result<Vec<_>, _> = lake.store().list(Some(&folder)).try_collect().await;
        match listed {
            Ok(objects) if objects.is_empty() => {}
            Ok(objects) => world.violation(format!(
                "scratch: {} objects are left in the lake folder of the table dropped with \
                 purge, e.g. {}",
                objects.len(),
                objects[0].location
            )),
            Err(error) => world.violation(format!(
                "scratch: its lake folder cannot be listed: {}",
                world.scrub(error)
            )),
        }
    }
}

/// A partitioned scratch table past the drop grace: no dropped partition is left to purge
/// and none of the dropped values is a live partition (the drop at the end dropped again any
/// an append in flight across the first drop created anew).
async fn check_partitions_purged(world: &World, node: &Node) {
    match node.index.dropped_partitions().await {
        Ok(left) if left.is_empty() => {}
        Ok(left) => world.violation(format!(
            "scratch: dropped partitions are still in the index past the drop grace: {left:?}"
        )),
        Err(error) => world.violation(format!(
            "scratch: dropped partitions cannot be listed: {}",
            world.scrub(error)
        )),
    }
    let table = match node.index.table(DATABASE, TABLE) {
        Ok(table) => table,
        Err(error) => {
            world.violation(format!(
                "scratch: the partitioned table is gone: {}",
                world.scrub(error)
            ));
            return;
        }
    };
    let live: Vec<u32> = table
        .partitions
        .iter()
        .filter_map(|partition| partition.values.first()?.parse().ok())
        .collect();
    if let Some(row) = live.iter().find(|row| **row < DROPPED_PARTITIONS) {
        world.violation(format!(
            "scratch: partition {row} was dropped but is live: {live:?}"
        ));
    }
    if let Some(row) = live.iter().find(|row| **row >= ROWS) {
        world.violation(format!(
            "scratch: partition {row} is live, but no append has a row {row}: {live:?}"
        ));
    }
    world.trace.event(format!(
        "scratch partitions: {} live after the purge",
        live.len()
    ));
}
