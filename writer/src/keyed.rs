//! Writes to primary-key tables: which operation a write is, the rows a delete stores (its
//! keys), and what the index owner gets for each row of a routed batch (its key, image and
//! version, `inlet_core::pk`), computed here so the owner applies bytes and never decodes
//! Arrow.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch, make_array, new_null_array};
use arrow_schema::{DataType, TimeUnit};
use inlet_core::pk::key::KeyEncoder;
use inlet_core::pk::merge::column_mask;
use inlet_core::pk::ops::{PkOp, PkWrite};
use inlet_core::pk::row::RowEncoder;
use inlet_core::table::{MergeEngine, TableInfo};

use crate::error::AppendError;
use crate::validate::conform_type;

/// What a write asks of its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Rows appended to a log table.
    Append,
    /// Rows upserted into a primary-key table.
    Upsert,
    /// Rows of some columns (the batch's, which include the key) upserted into a primary-key
    /// table: the key's other columns keep their values (nulls for a new key).
    PartialUpsert,
    /// Keys deleted from a primary-key table.
    Delete,
}

impl WriteOp {
    fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::Upsert => "upsert",
            Self::PartialUpsert => "partially update",
            Self::Delete => "delete",
        }
    }

    /// Refuses an operation its table does not take: appends to primary-key tables, upserts
    /// and deletes to log tables.
    pub fn check(self, table: &TableInfo) -> Result<(), AppendError> {
        let keyed = table.is_primary_key_table();
        let reason = match (self, keyed) {
            (Self::Append, true) => format!(
                "it has a primary key ({}): write it with upsert and delete",
                table.descriptor.primary_key.join(", ")
            ),
            (Self::Upsert | Self::PartialUpsert | Self::Delete, false) => {
                "it is a log table (no primary key): write it with append".to_owned()
            }
            _ => return Ok(()),
        };
        Err(AppendError::WrongOperation {
            table: table.qualified_name(),
            op: self.name(),
            reason,
        })
    }
}

/// The rows a delete stores in the WAL: the batch's key columns (checked like an append's)
/// and, for the other columns, nulls or zeroes. A delete's changelog row is the deleted
/// row's before image, so those placeholders are never read back.
pub fn conform_delete(table: &TableInfo, batch: &RecordBatch) -> Result<RecordBatch, AppendError> {
    let schema = &table.descriptor.schema;
    let name = table.qualified_name();
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if !table.descriptor.primary_key.contains(field.name()) {
            columns.push(placeholder(field.data_type(), field.is_nullable(), rows));
            continue;
        }
        let column =
            batch
                .column_by_name(field.name())
                .ok_or_else(|| AppendError::MissingColumn {
                    table: name.clone(),
                    column: field.name().clone(),
                })?;
        let column =
            conform_type(column, field.data_type()).ok_or_else(|| AppendError::SchemaMismatch {
                table: name.clone(),
                column: field.name().clone(),
                found: column.data_type().to_string(),
                expected: field.data_type().to_string(),
            })?;
        if column.null_count() > 0 {
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

/// `rows` nulls, or zero values where the column may not hold nulls (flat types only: those
/// are the only types of primary-key tables, and their zeroed buffers are valid values).
fn placeholder(data_type: &DataType, nullable: bool, rows: usize) -> ArrayRef {
    let nulls = new_null_array(data_type, rows);
    if nullable {
        return nulls;
    }
    let data = nulls.to_data().into_builder().nulls(None);
    // Zeroed values and offsets are valid for every flat type.
    make_array(data.build().expect("zeroed flat array is valid"))
}

/// The column mask of a partial upsert of `batches`: the table's columns they carry, which
/// must be the same in every batch. Refused where the table's merge engine keeps rows whole.
pub fn partial_columns(
    table: &TableInfo,
    engine: &MergeEngine,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, AppendError> {
    let refuse = |reason: String| AppendError::WrongOperation {
        table: table.qualified_name(),
        op: WriteOp::PartialUpsert.name(),
        reason,
    };
    if !engine.allows_partial_updates() {
        return Err(refuse(format!(
            "its merge engine (`{}`) keeps rows whole; partial updates need `last_row` or \
             `aggregation`",
            engine.name()
        )));
    }
    let schema = &table.descriptor.schema;
    let mut columns: Option<Vec<usize>> = None;
    for batch in batches {
        let mut present: Vec<usize> = batch
            .schema()
            .fields()
            .iter()
            .filter_map(|field| schema.index_of(field.name()).ok())
            .collect();
        present.sort_unstable();
        match &columns {
            Some(first) if *first != present => {
                return Err(refuse(
                    "every batch of a partial update must carry the same columns".to_owned(),
                ));
            }
            _ => columns = Some(present),
        }
    }
    Ok(column_mask(
        schema.fields().len(),
        columns.unwrap_or_default(),
    ))
}

/// What the index owner gets for each row of `batch` (rows of `table` routed to one bucket,
/// in order); `mask` marks the columns of a partial upsert.
pub fn key_writes(
    table: &TableInfo,
    engine: &MergeEngine,
    op: WriteOp,
    mask: Option<&[u8]>,
    batch: &RecordBatch,
) -> Result<Vec<PkWrite>, AppendError> {
    let keys = KeyEncoder::new(batch, &table.key_encoding_indices())?;
    let upsert = matches!(op, WriteOp::Upsert | WriteOp::PartialUpsert);
    let images = if upsert {
        Some(RowEncoder::new(batch, table.schema_id)?)
    } else {
        None
    };
    let versions = match engine {
        MergeEngine::Versioned { column } if upsert => batch.column_by_name(column),
        _ => None,
    };
    let mut writes = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut key = Vec::new();
        keys.encode(row, &mut key)?;
        let mut image = Vec::new();
        if let Some(images) = &images {
            images.encode(row, &mut image)?;
        }
        writes.push(PkWrite {
            op: if images.is_some() {
                PkOp::Upsert
            } else {
                PkOp::Delete
            },
            key,
            image,
            version: versions.map(|column| version_of(column, row)),
            columns: mask.map(<[u8]>::to_vec),
        });
    }
    Ok(writes)
}

/// The version-column value of `row` as an i64 (the column is a non-null integer or
/// timestamp, checked when the table was created).
fn version_of(column: &ArrayRef, row: usize) -> i64 {
    match column.data_type() {
        DataType::Int8 => column.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => column.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => column.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row),
        DataType::UInt8 => column.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => column.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => column.as_primitive::<UInt32Type>().value(row).into(),
        DataType::Timestamp(TimeUnit::Second, _) => {
            column.as_primitive::<TimestampSecondType>().value(row)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            column.as_primitive::<TimestampMillisecondType>().value(row)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            column.as_primitive::<TimestampMicrosecondType>().value(row)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            column.as_primitive::<TimestampNanosecondType>().value(row)
        }
        other => unreachable!("version column of type {other}"),
    }
}
