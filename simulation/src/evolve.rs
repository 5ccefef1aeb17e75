//! A column widened mid-run (`config::WideningSpec`, half the runs): `row` (int32) of one log
//! table becomes int64 at `at` through ALTER on the primary, retried through faults and
//! crashes until the table has it. Producers keep sending int32 (writers widen it), so chunks
//! of both schemas are read by followers, readers, tiering, union reads and the audit, and
//! every read must decode `row` of either type as the same values (`data::value_at`, which
//! refuses an int64 that is not an int32's value).

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field};
use inlet_core::table::TableAlteration;

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
    tokio::time::sleep(spec.at.saturating_sub(world.now())).await;
    let table = world.cfg.tables[spec.table].name.clone();
    let alteration = TableAlteration {
        widen_columns: vec![Arc::new(Field::new(COLUMN, WIDER, false))],
        ..TableAlteration::default()
    };
    loop {
        if world.stopping.get() {
            return;
        }
        let node = world.primary().await;
        // After an unknown outcome the column may be wide already; widening it again would be
        // refused (int64 to int64 is no widening).
        let widened = node.index.table(DATABASE, &table).is_ok_and(|info| {
            info.descriptor
                .schema
                .field_with_name(COLUMN)
                .is_ok_and(|field| *field.data_type() == WIDER)
        });
        if widened {
            world
                .trace
                .event(format!("column `{COLUMN}` of {table} is {WIDER}"));
            return;
        }
        let call = node.index.alter_table(DATABASE, &table, alteration.clone());
        match on_node(&node, Some(ATTEMPT_TIMEOUT), call).await {
            Outcome::Done(info) => {
                world.trace.event(format!(
                    "column `{COLUMN}` of {table} widened to {WIDER} on node {} (schema {})",
                    node.id, info.schema_id.0
                ));
                return;
            }
            Outcome::Failed(error) => world.trace.event(format!(
                "widening `{COLUMN}` of {table} failed: {}",
                world.scrub(error)
            )),
            Outcome::TimedOut => world
                .trace
                .event(format!("widening `{COLUMN}` of {table} timed out")),
            Outcome::ProcessDied => world.trace.event(format!(
                "widening `{COLUMN}` of {table}: node {} died",
                node.id
            )),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
