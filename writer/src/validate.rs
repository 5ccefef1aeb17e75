//! Checks an appended batch against its table and conforms it to the table's schema:
//! columns are matched by name (any order; a name a column had before a rename finds it, a
//! dropped column is ignored), missing nullable columns become nulls, and every
//! defect is reported naming the table, the column and both types.

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array, make_array, new_null_array};
use arrow_data::BufferSpec;
use arrow_schema::{DataType, Field};
use arrow_select::take::take;
use inlet_core::column_defaults::{DEFAULT_KEY, default_of};
use inlet_core::limits::MAX_CONFORMED_APPEND_BYTES;
use inlet_core::table::{FormerColumn, TableInfo};

use crate::error::AppendError;

/// The bytes `batch`'s rows take. Not `get_array_memory_size`: that reports each buffer's
/// whole allocation, and a batch decoded zero-copy from one IPC message has every column in
/// that one allocation, so it counted the message once per buffer (20 columns: 40x), which
/// flushed every append alone and filled the writer's memory budget with phantom bytes.
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

/// Returns `batch` with exactly the table's columns, in the table's order and types.
pub fn conform(table: &TableInfo, batch: &RecordBatch) -> Result<RecordBatch, AppendError> {
    let schema = &table.descriptor.schema;
    let name = table.qualified_name();
    // Where each current column comes from in `batch`: its name, or a name it had before a
    // rename (a producer on an older schema). Columns since dropped are ignored.
    let mut sources: Vec<Option<usize>> = vec![None; schema.fields().len()];
    for (i, field) in batch.schema().fields().iter().enumerate() {
        let target = match schema.index_of(field.name()) {
            Ok(position) => position,
            Err(_) => match table.former_column(field.name()) {
                Some(FormerColumn::RenamedTo(position)) => position,
                Some(FormerColumn::Dropped) => continue,
                None => {
                    return Err(AppendError::UnknownColumn {
                        table: name,
                        column: field.name().clone(),
                    });
                }
            },
        };
        if let Some(other) = sources[target].replace(i) {
            return Err(AppendError::RenamedColumnTwice {
                table: name,
                column: schema.field(target).name().clone(),
                first: batch.schema().field(other).name().clone(),
                second: field.name().clone(),
            });
        }
    }
    let rows = batch.num_rows();
    // Filling missing columns allocates by row count, not by what the client sent: bound it
    // before allocating anything.
    let filled: u64 = schema
        .fields()
        .iter()
        .zip(&sources)
        .filter(|(_, source)| source.is_none())
        .map(|(field, _)| field)
        .map(|field| filled_bytes(field, rows as u64))
        .fold(batch_bytes(batch) as u64, u64::saturating_add);
    if filled > MAX_CONFORMED_APPEND_BYTES {
        return Err(AppendError::TooLargeWhenFilled {
            table: name,
            rows,
            bytes: filled,
            limit: MAX_CONFORMED_APPEND_BYTES,
        });
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, source) in schema.fields().iter().zip(sources) {
        let Some(column) = source.map(|i| batch.column(i)) else {
            // Checked when the table was created or altered, so it parses.
            let default = default_of(field).ok().flatten();
            columns.push(match default {
                Some(value) => repeated(&value, rows),
                None if field.is_nullable() => new_null_array(field.data_type(), rows),
                None => {
                    return Err(AppendError::MissingColumn {
                        table: name,
                        column: field.name().clone(),
                    });
                }
            });
            continue;
        };
        let column =
            conform_type(column, field.data_type()).ok_or_else(|| AppendError::SchemaMismatch {
                table: name.clone(),
                column: field.name().clone(),
                found: column.data_type().to_string(),
                expected: field.data_type().to_string(),
            })?;
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(AppendError::NullsInRequiredColumn {
                table: name,
                column: field.name().clone(),
                nulls: column.null_count(),
            });
        }
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| AppendError::SchemaMismatch {
        table: name,
        column: "*".to_owned(),
        found: e.to_string(),
        expected: schema.to_string(),
    })
}

/// `value` (one row) repeated `rows` times.
fn repeated(value: &ArrayRef, rows: usize) -> ArrayRef {
    let zeros = UInt32Array::from(vec![0u32; rows]);
    take(value.as_ref(), &zeros, None).expect("index 0 is within a one-row array")
}

/// An upper bound of what filling column `field` for `rows` rows allocates: its nulls, and
/// its default's bytes once per row (its text is at least as long as a string value of it).
fn filled_bytes(field: &Field, rows: u64) -> u64 {
    let nulls = null_array_bytes(field.data_type(), rows);
    let text = field.metadata().get(DEFAULT_KEY).map_or(0, String::len) as u64;
    nulls.saturating_add(rows.saturating_mul(text))
}

/// An upper bound of what `new_null_array(data_type, rows)` allocates: a validity bitmap, and
/// every fixed-width buffer (values, offsets) at full length, for the type and its children.
fn null_array_bytes(data_type: &DataType, rows: u64) -> u64 {
    let buffers = arrow_data::layout(data_type)
        .buffers
        .iter()
        .map(|spec| match spec {
            BufferSpec::FixedWidth { byte_width, .. } => {
                rows.saturating_add(1).saturating_mul(*byte_width as u64)
            }
            BufferSpec::BitMap => rows.div_ceil(8),
            BufferSpec::VariableWidth | BufferSpec::AlwaysNull => 0,
        })
        .fold(rows.div_ceil(8), u64::saturating_add);
    let children = match data_type {
        DataType::Struct(fields) => fields
            .iter()
            .map(|f| null_array_bytes(f.data_type(), rows))
            .fold(0, u64::saturating_add),
        DataType::FixedSizeList(child, size) => {
            null_array_bytes(child.data_type(), rows.saturating_mul(*size as u64))
        }
        // Variable-size lists and maps of nulls have empty children.
        _ => 0,
    };
    buffers.saturating_add(children)
}

/// The column with exactly the expected type, or `None` when the types differ. Nested types
/// that differ only in child field names (`item` vs `element`) are relabelled, not rejected,
/// and a column of a type the expected one widens (a producer that still sends a column's
/// type from before `ALTER` widened it) is widened.
pub(crate) fn conform_type(column: &ArrayRef, expected: &DataType) -> Option<ArrayRef> {
    if column.data_type() == expected {
        return Some(column.clone());
    }
    if !column.data_type().equals_datatype(expected) {
        return inlet_core::column_types::widen(column, expected);
    }
    let data = column
        .to_data()
        .into_builder()
        .data_type(expected.clone())
        .build()
        .ok()?;
    Some(make_array(data))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow_array::{Float64Array, Int32Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use inlet_core::ids::{DatabaseId, SchemaId, TableId, TimestampMicros};
    use std::collections::HashMap;

    use inlet_core::table::{SchemaHistory, TableAlteration, TableDescriptor};

    use super::*;

    #[test]
    fn a_batch_decoded_from_one_ipc_message_counts_its_bytes_once() {
        let columns: Vec<(String, ArrayRef)> = (0..20)
            .map(|i| {
                let values: ArrayRef = Arc::new(Int64Array::from_iter_values(0..10_000));
                (format!("c{i}"), values)
            })
            .collect();
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let ipc = inlet_core::ipc::batches_to_ipc(&batch.schema(), &[batch]).expect("ipc");
        let decoded = inlet_core::ipc::decode_stream(arrow_buffer::Buffer::from_vec(ipc.clone()))
            .expect("decodes")
            .batches
            .remove(0);
        let values = 20 * 10_000 * 8;
        assert_eq!(batch_bytes(&decoded), values);
        // What arrow's own figure says of the same batch: each column's whole allocation.
        assert!(decoded.get_array_memory_size() >= 20 * ipc.len());
    }

    fn table() -> TableInfo {
        TableInfo {
            id: TableId(1),
            database: "db".into(),
            database_id: DatabaseId(1),
            name: "t".into(),
            schema_id: SchemaId(0),
            descriptor: TableDescriptor {
                schema: Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, false),
                    Field::new("name", DataType::Utf8, true),
                ])),
                bucket_count: 1,
                bucket_key: vec![],
                partition_key: vec![],
                primary_key: vec![],
                comment: String::new(),
                options: BTreeMap::new(),
            },
            created_at: TimestampMicros(0),
            previous_schemas: Default::default(),
            partitions: Default::default(),
        }
    }

    fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("valid test batch")
    }

    #[test]
    fn reorders_columns_and_fills_missing_nullable_ones() {
        let input = batch(
            vec![Field::new("id", DataType::Int64, false)],
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        );
        let out = conform(&table(), &input).expect("conforms");
        assert_eq!(out.schema(), table().descriptor.schema);
        assert_eq!(out.column(1).null_count(), 2);
    }

    #[test]
    fn an_old_name_finds_its_renamed_column_and_a_dropped_column_is_ignored() {
        let before = table();
        let before = TableInfo {
            descriptor: before.descriptor.clone().with_defaults(),
            ..before
        };
        let after = before
            .descriptor
            .altered(&TableAlteration {
                drop_columns: vec!["name".to_owned()],
                rename_columns: vec![("id".to_owned(), "key".to_owned())],
                ..TableAlteration::default()
            })
            .expect("altered");
        let table = TableInfo {
            schema_id: SchemaId(1),
            descriptor: after,
            previous_schemas: SchemaHistory::default()
                .with(SchemaId(0), before.descriptor.schema.clone()),
            ..before
        };
        // A producer still on schema 0.
        let old = batch(
            vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("id", DataType::Int64, false),
            ],
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        );
        let out = conform(&table, &old).expect("conforms");
        assert_eq!(out.schema(), table.descriptor.schema);
        assert_eq!(
            out.column(0).as_ref(),
            &Int64Array::from(vec![1, 2]) as &dyn Array
        );
        // Both names of one column is an error naming both.
        let both = batch(
            vec![
                Field::new("key", DataType::Int64, false),
                Field::new("id", DataType::Int64, false),
            ],
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(Int64Array::from(vec![1])),
            ],
        );
        let error = conform(&table, &both).expect_err("one column twice");
        assert!(
            matches!(error, AppendError::RenamedColumnTwice { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("`key` twice"), "{error}");
        // A name the table never had is still unknown.
        let unknown = batch(
            vec![Field::new("nope", DataType::Int64, true)],
            vec![Arc::new(Int64Array::from(vec![1]))],
        );
        assert!(matches!(
            conform(&table, &unknown),
            Err(AppendError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn a_column_left_out_gets_its_default_and_only_an_undefaulted_required_one_is_missing() {
        let mut table = table();
        let defaulted = |field: Field, text: &str| {
            Arc::new(
                field.with_metadata(HashMap::from([(DEFAULT_KEY.to_owned(), text.to_owned())])),
            )
        };
        table.descriptor.schema = Arc::new(Schema::new(vec![
            Arc::new(Field::new("id", DataType::Int64, false)),
            defaulted(Field::new("name", DataType::Utf8, true), "nobody"),
            defaulted(Field::new("tier", DataType::Int32, false), "3"),
        ]));
        table.descriptor.validate().expect("valid defaults");
        let input = batch(
            vec![Field::new("id", DataType::Int64, false)],
            vec![Arc::new(Int64Array::from(vec![1, 2]))],
        );
        let out = conform(&table, &input).expect("conforms");
        assert_eq!(
            out.column(1).as_ref(),
            &StringArray::from(vec!["nobody", "nobody"]) as &dyn Array
        );
        assert_eq!(
            out.column(2).as_ref(),
            &Int32Array::from(vec![3, 3]) as &dyn Array
        );
        // A value sent is kept, a null sent is a null.
        let sent = batch(
            vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, true),
            ],
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec![None::<&str>])),
            ],
        );
        let out = conform(&table, &sent).expect("conforms");
        assert!(out.column(1).is_null(0));
        // A default that is no value of its column is refused when the table is defined.
        let mut bad = table.descriptor.clone();
        bad.schema = Arc::new(Schema::new(vec![defaulted(
            Field::new("tier", DataType::Int32, true),
            "gold",
        )]));
        let refused = bad.validate().expect_err("not an int32");
        assert!(
            refused.to_string().contains("`gold` is no Int32 value"),
            "{refused}"
        );
    }

    #[test]
    fn names_the_column_and_both_types_on_mismatch() {
        let input = batch(
            vec![Field::new("id", DataType::Float64, false)],
            vec![Arc::new(Float64Array::from(vec![1.0]))],
        );
        let error = conform(&table(), &input).expect_err("float64 is not int64");
        assert_eq!(
            error.to_string(),
            "schema mismatch for table `db.t`: column `id` is Float64, expected Int64"
        );
    }

    #[test]
    fn a_narrower_type_the_column_widens_is_widened() {
        // What a producer still sends after ALTER widened `id` from int32 to int64.
        let input = batch(
            vec![Field::new("id", DataType::Int32, false)],
            vec![Arc::new(Int32Array::from(vec![1, i32::MAX]))],
        );
        let out = conform(&table(), &input).expect("int32 widens to int64");
        assert_eq!(out.schema(), table().descriptor.schema);
        assert_eq!(
            out.column(0).as_ref(),
            &Int64Array::from(vec![1, i64::from(i32::MAX)]) as &dyn Array
        );
    }

    #[test]
    fn rejects_unknown_missing_and_null_required_columns() {
        let unknown = batch(
            vec![
                Field::new("id", DataType::Int64, false),
                Field::new("extra", DataType::Utf8, true),
            ],
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        );
        assert!(matches!(
            conform(&table(), &unknown),
            Err(AppendError::UnknownColumn { .. })
        ));
        let missing = batch(
            vec![Field::new("name", DataType::Utf8, true)],
            vec![Arc::new(StringArray::from(vec!["x"]))],
        );
        assert!(matches!(
            conform(&table(), &missing),
            Err(AppendError::MissingColumn { .. })
        ));
        let nulls = batch(
            vec![Field::new("id", DataType::Int64, true)],
            vec![Arc::new(Int64Array::from(vec![Some(1), None]))],
        );
        assert!(matches!(
            conform(&table(), &nulls),
            Err(AppendError::NullsInRequiredColumn { nulls: 1, .. })
        ));
    }

    /// A narrow append to a wide table grows when its missing columns are filled with
    /// nulls: past the bound it is refused before anything is allocated, and below it the
    /// same shape conforms.
    #[test]
    fn an_append_that_would_grow_past_the_bound_when_filled_is_refused() {
        let mut wide = table();
        let mut fields = vec![Field::new("id", DataType::Int64, false)];
        fields.extend(
            (0..40).map(|i| Field::new(format!("d{i}"), DataType::Decimal256(76, 0), true)),
        );
        wide.descriptor.schema = Arc::new(Schema::new(fields));
        let ids = |rows: i64| {
            batch(
                vec![Field::new("id", DataType::Int64, false)],
                vec![Arc::new(Int64Array::from_iter_values(0..rows))],
            )
        };
        // 40 columns of 32-byte decimals: 1,280 bytes a row once filled.
        let error = conform(&wide, &ids(400_000)).expect_err("~512 MB once filled");
        let AppendError::TooLargeWhenFilled {
            rows, bytes, limit, ..
        } = error
        else {
            panic!("unexpected error {error}");
        };
        assert_eq!(rows, 400_000);
        assert!(
            bytes > limit && limit == MAX_CONFORMED_APPEND_BYTES,
            "{bytes} {limit}"
        );
        let small = conform(&wide, &ids(1_000)).expect("1.3 MB once filled");
        assert_eq!(small.num_columns(), 41);
        assert_eq!(small.column(40).null_count(), 1_000);
    }
}
