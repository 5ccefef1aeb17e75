//! Columns changed mid-run through ALTER on the primary, each retried through faults and
//! crashes until the table has the change:
//!
//! - **Widening** (`config::SimConfig::widening`, half the runs): `row` (int32) of one log
//!   table becomes int64. Producers keep sending int32 (writers widen it), so chunks of both
//!   schemas are read by followers, readers, tiering, union reads and the audit, and every
//!   read must decode `row` of either type as the same values (`data::value_at`, which
//!   refuses an int64 that is not an int32's value).
//! - **Replacement** (`config::SimConfig::flag_replacement`, half the runs): `flag` of one log
//!   table is dropped and added again in one ALTER, so the name stays and the column is a new
//!   one (a new column id). Producers keep sending `flag`, which lands in the new column.
//!   Rows written before read null in it, from the WAL and from the lake alike, while a read
//!   that started before the change keeps the old column (and reads null in rows written
//!   after). The audit requires null in every row committed before the first attempt
//!   (`World::flag_replaced_from`: those were written under the old column) and takes the
//!   value sent or null in the later ones (a writer may not have seen the change yet);
//!   readers' rows may have either, and the lake check still requires WAL and lake reads to
//!   agree exactly.

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field};
use inlet_core::column_ids::column_id;
use inlet_core::table::{TableAlteration, TableInfo};

use crate::clock::SIM_EPOCH_MICROS;
use crate::data::{FLAG, column_name};
use crate::workload::{Outcome, on_node};
use crate::world::{DATABASE, World};

/// How long one ALTER attempt may take before it counts as unknown.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The widened column and its new type.
const COLUMN: &str = "row";
const WIDER: DataType = DataType::Int64;

/// Widens the column at the drawn time, on the primary, until the table has it or the run
/// stops.
pub async fn run(world: Arc<World>) {
    let Some(spec) = world.cfg.widening.clone() else {
        return;
    };
    let alteration = TableAlteration {
        widen_columns: vec![Arc::new(Field::new(COLUMN, WIDER, false))],
        ..TableAlteration::default()
    };
    // After an unknown outcome the column may be wide already; widening it again would be
    // refused (int64 to int64 is no widening).
    let done = |info: &TableInfo| {
        info.descriptor
            .schema
            .field_with_name(COLUMN)
            .is_ok_and(|field| *field.data_type() == WIDER)
    };
    let what = format!("widening `{COLUMN}` to {WIDER}");
    alter_until(&world, spec.table, spec.at, &what, alteration, done).await;
}

/// Drops `flag` and adds it again (a new column of the same name) at the drawn time, on the
/// primary, until the table has the new column or the run stops.
pub async fn replace_flag(world: Arc<World>) {
    let Some(spec) = world.cfg.flag_replacement.clone() else {
        return;
    };
    let name = column_name(FLAG);
    let alteration = TableAlteration {
        drop_columns: vec![name.to_owned()],
        add_columns: vec![Arc::new(Field::new(name, DataType::Boolean, true))],
        ..TableAlteration::default()
    };
    // The table is created with its columns numbered 1, 2, ...: `flag` is the seventh. After
    // an unknown outcome it may be new already; replacing it again would lose nothing but
    // would not be the one change the model allows for.
    let done = |info: &TableInfo| {
        info.descriptor
            .schema
            .field_with_name(name)
            .is_ok_and(|field| column_id(field).is_some_and(|id| id.0 as usize != FLAG + 1))
    };
    let what = format!("replacing `{name}` by a new column");
    if let Some(first) = alter_until(&world, spec.table, spec.at, &what, alteration, done).await {
        let micros = SIM_EPOCH_MICROS + first.as_micros() as i64;
        world.flag_replaced_from.set(Some(micros));
    }
}

/// Applies `alteration` to log table `table` at simulated time `at`, on the primary, until
/// the table is `done` or the run stops; traces each attempt as `what`. Returns when the
/// first attempt was made, if the change is known to have been made.
async fn alter_until(
    world: &Arc<World>,
    table: usize,
    at: Duration,
    what: &str,
    alteration: TableAlteration,
    done: impl Fn(&TableInfo) -> bool,
) -> Option<Duration> {
    tokio::time::sleep(at.saturating_sub(world.now())).await;
    let table = world.cfg.tables[table].name.clone();
    let first = world.now();
    loop {
        if world.stopping.get() {
            return None;
        }
        let node = world.primary().await;
        if node
            .index
            .table(DATABASE, &table)
            .is_ok_and(|info| done(&info))
        {
            world.trace.event(format!("{what} of {table}: done"));
            return Some(first);
        }
        let call = node.index.alter_table(DATABASE, &table, alteration.clone());
        match on_node(&node, Some(ATTEMPT_TIMEOUT), call).await {
            Outcome::Done(info) => {
                world.trace.event(format!(
                    "{what} of {table} on node {} (schema {})",
                    node.id, info.schema_id.0
                ));
                return Some(first);
            }
            Outcome::Failed(error) => world
                .trace
                .event(format!("{what} of {table} failed: {}", world.scrub(error))),
            Outcome::TimedOut => world.trace.event(format!("{what} of {table} timed out")),
            Outcome::ProcessDied => world
                .trace
                .event(format!("{what} of {table}: node {} died", node.id)),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
