//! How an upserted row of a primary-key table merges with its key's current row: the merge
//! engines (a table option), the aggregation functions, and the merge of two row images
//! cell by cell, which the index owner runs for partial updates and the `aggregation` engine.
//! Pure functions of bytes and a schema, so the owner never decodes Arrow.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use arrow_schema::{DataType, Schema};

use super::row::{cells, join_cells};
use crate::ids::SchemaId;
use crate::table::{
    DefinitionError, OPTION_MERGE_AGGREGATE_PREFIX, OPTION_MERGE_ENGINE,
    OPTION_MERGE_VERSION_COLUMN,
};

/// How an upserted row of a primary-key table merges with its key's current row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeEngine {
    /// The new row replaces the current one.
    LastRow,
    /// The first row of a key stays; later upserts are ignored (deletes still delete).
    FirstRow,
    /// The row with the higher value in `column` wins; equal or lower is ignored.
    Versioned { column: String },
    /// Each column is the aggregate of the key's rows: `functions[i]` for column `i`
    /// (`None` for the primary-key columns).
    Aggregation { functions: Vec<Option<AggregateFn>> },
}

/// An aggregation function of the `aggregation` merge engine (names as Fluss's). Nulls are
/// skipped by every function but `last_value` and `first_value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateFn {
    Sum,
    Max,
    Min,
    LastValue,
    LastNonNullValue,
    FirstValue,
    FirstNonNullValue,
    BoolAnd,
    BoolOr,
}

impl AggregateFn {
    const ALL: [Self; 9] = [
        Self::Sum,
        Self::Max,
        Self::Min,
        Self::LastValue,
        Self::LastNonNullValue,
        Self::FirstValue,
        Self::FirstNonNullValue,
        Self::BoolAnd,
        Self::BoolOr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Max => "max",
            Self::Min => "min",
            Self::LastValue => "last_value",
            Self::LastNonNullValue => "last_non_null_value",
            Self::FirstValue => "first_value",
            Self::FirstNonNullValue => "first_non_null_value",
            Self::BoolAnd => "bool_and",
            Self::BoolOr => "bool_or",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the function is defined on this column type.
    pub fn applies_to(self, data_type: &DataType) -> bool {
        match self {
            Self::Sum => is_summable(data_type),
            Self::Max | Self::Min => ordering(data_type).is_some(),
            Self::BoolAnd | Self::BoolOr => matches!(data_type, DataType::Boolean),
            Self::LastValue
            | Self::LastNonNullValue
            | Self::FirstValue
            | Self::FirstNonNullValue => true,
        }
    }
}

fn is_summable(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
    )
}

/// How values of a type compare, as stored in a row image.
#[derive(Clone, Copy)]
enum Ordered {
    Signed,
    Unsigned,
    Float,
    Bytes,
}

fn ordering(data_type: &DataType) -> Option<Ordered> {
    Some(match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Timestamp(_, _)
        | DataType::Duration(_)
        | DataType::Decimal128(_, _) => Ordered::Signed,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            Ordered::Unsigned
        }
        DataType::Float32 | DataType::Float64 => Ordered::Float,
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::FixedSizeBinary(_) => Ordered::Bytes,
        _ => return None,
    })
}

impl MergeEngine {
    /// The engine the options of a primary-key table name, checked against its schema.
    pub fn parse(
        options: &BTreeMap<String, String>,
        schema: &Schema,
        primary_key: &[String],
    ) -> Result<Self, DefinitionError> {
        let invalid = |key: &str, value: &str, reason: String| DefinitionError::InvalidOption {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let engine = options.get(OPTION_MERGE_ENGINE).map(String::as_str);
        let only_for = |key: &str, value: &str, engine: &str| {
            invalid(
                key,
                value,
                format!("only for `{OPTION_MERGE_ENGINE}={engine}`"),
            )
        };
        if engine != Some("versioned")
            && let Some(column) = options.get(OPTION_MERGE_VERSION_COLUMN)
        {
            return Err(only_for(OPTION_MERGE_VERSION_COLUMN, column, "versioned"));
        }
        let aggregates: Vec<(&str, &String)> = options
            .iter()
            .filter_map(|(key, value)| {
                key.strip_prefix(OPTION_MERGE_AGGREGATE_PREFIX)
                    .map(|column| (column, value))
            })
            .collect();
        if engine != Some("aggregation")
            && let Some((column, value)) = aggregates.first()
        {
            return Err(only_for(
                &format!("{OPTION_MERGE_AGGREGATE_PREFIX}{column}"),
                value,
                "aggregation",
            ));
        }
        match engine {
            None | Some("last_row") => Ok(Self::LastRow),
            Some("first_row") => Ok(Self::FirstRow),
            Some("versioned") => {
                let Some(column) = options.get(OPTION_MERGE_VERSION_COLUMN) else {
                    return Err(invalid(
                        OPTION_MERGE_ENGINE,
                        "versioned",
                        format!("needs `{OPTION_MERGE_VERSION_COLUMN}` naming the version column"),
                    ));
                };
                let field = schema.field_with_name(column).map_err(|_| {
                    invalid(
                        OPTION_MERGE_VERSION_COLUMN,
                        column,
                        "not a column of the table".to_owned(),
                    )
                })?;
                let orderable = matches!(
                    field.data_type(),
                    DataType::Int8
                        | DataType::Int16
                        | DataType::Int32
                        | DataType::Int64
                        | DataType::UInt8
                        | DataType::UInt16
                        | DataType::UInt32
                        | DataType::Timestamp(_, _)
                );
                if !orderable || field.is_nullable() {
                    return Err(invalid(
                        OPTION_MERGE_VERSION_COLUMN,
                        column,
                        format!(
                            "must be a non-null integer or timestamp column, is {}{}",
                            field.data_type(),
                            if field.is_nullable() {
                                " (nullable)"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                Ok(Self::Versioned {
                    column: column.clone(),
                })
            }
            Some("aggregation") => {
                let mut functions: Vec<Option<AggregateFn>> = schema
                    .fields()
                    .iter()
                    .map(|field| {
                        (!primary_key.contains(field.name()))
                            .then_some(AggregateFn::LastNonNullValue)
                    })
                    .collect();
                for (column, value) in aggregates {
                    let key = format!("{OPTION_MERGE_AGGREGATE_PREFIX}{column}");
                    let index = schema.index_of(column).map_err(|_| {
                        invalid(&key, value, "not a column of the table".to_owned())
                    })?;
                    if primary_key.iter().any(|k| k == column) {
                        return Err(invalid(
                            &key,
                            value,
                            "a primary-key column is not aggregated".to_owned(),
                        ));
                    }
                    let function = AggregateFn::parse(value).ok_or_else(|| {
                        invalid(
                            &key,
                            value,
                            format!(
                                "unknown function; one of {}",
                                AggregateFn::ALL.map(AggregateFn::name).join(", ")
                            ),
                        )
                    })?;
                    let data_type = schema.field(index).data_type();
                    if !function.applies_to(data_type) {
                        return Err(invalid(
                            &key,
                            value,
                            format!("`{value}` does not apply to a column of type {data_type}"),
                        ));
                    }
                    functions[index] = Some(function);
                }
                Ok(Self::Aggregation { functions })
            }
            Some(other) => Err(invalid(
                OPTION_MERGE_ENGINE,
                other,
                "expected `last_row`, `first_row`, `versioned` or `aggregation`".to_owned(),
            )),
        }
    }

    /// The engine's name, as the `merge.engine` option spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LastRow => "last_row",
            Self::FirstRow => "first_row",
            Self::Versioned { .. } => "versioned",
            Self::Aggregation { .. } => "aggregation",
        }
    }

    /// Whether upserts may update some columns only (partial updates): with `last_row` and
    /// `aggregation`; a first row or a versioned row is a whole row.
    pub fn allows_partial_updates(&self) -> bool {
        matches!(self, Self::LastRow | Self::Aggregation { .. })
    }
}

/// Why two rows could not be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("column `{column}`: {reason}")]
    Column { column: String, reason: String },
    #[error(transparent)]
    Image(#[from] super::PkCodecError),
}

/// Whether column `i` is set in a partial update's column mask (bit `i % 8` of byte `i / 8`).
pub fn mask_has(mask: &[u8], column: usize) -> bool {
    mask.get(column / 8)
        .is_some_and(|byte| byte & (1 << (column % 8)) != 0)
}

/// The mask of a partial update of `columns` among `column_count` columns.
pub fn column_mask(column_count: usize, columns: impl IntoIterator<Item = usize>) -> Vec<u8> {
    let mut mask = vec![0u8; column_count.div_ceil(8)];
    for column in columns {
        mask[column / 8] |= 1 << (column % 8);
    }
    mask
}

/// The image a key gets when `new` is upserted over `current` (images of `schema`, the
/// table's schema `schema_id`) by an
/// update of the columns in `mask` (all when `None`) under `engine`. For `last_row` and
/// `aggregation` only: the others never produce a new image.
pub fn merge_images(
    (schema, schema_id): (&Schema, SchemaId),
    engine: &MergeEngine,
    mask: Option<&[u8]>,
    current: &[u8],
    new: &[u8],
) -> Result<Vec<u8>, MergeError> {
    let old_cells = cells(schema, schema_id, current)?;
    let new_cells = cells(schema, schema_id, new)?;
    let mut merged: Vec<Option<Cow<'_, [u8]>>> = Vec::with_capacity(old_cells.len());
    for (i, (old, new)) in old_cells.into_iter().zip(new_cells).enumerate() {
        if mask.is_some_and(|mask| !mask_has(mask, i)) {
            merged.push(old.map(Cow::Borrowed));
            continue;
        }
        let function = match engine {
            MergeEngine::Aggregation { functions } => functions.get(i).copied().flatten(),
            _ => None,
        };
        let field = schema.field(i);
        let cell = match function {
            None => new.map(Cow::Borrowed),
            Some(function) => {
                aggregate(field.data_type(), function, old, new).map_err(|reason| {
                    MergeError::Column {
                        column: field.name().clone(),
                        reason,
                    }
                })?
            }
        };
        merged.push(cell);
    }
    let borrowed: Vec<Option<&[u8]>> = merged.iter().map(|c| c.as_deref()).collect();
    Ok(join_cells(schema, schema_id, &borrowed)?)
}

/// One cell of an aggregate: `function` of the current value `old` and the new `new`.
fn aggregate<'a>(
    data_type: &DataType,
    function: AggregateFn,
    old: Option<&'a [u8]>,
    new: Option<&'a [u8]>,
) -> Result<Option<Cow<'a, [u8]>>, String> {
    let (old, new) = match function {
        AggregateFn::LastValue => return Ok(new.map(Cow::Borrowed)),
        AggregateFn::FirstValue => return Ok(old.map(Cow::Borrowed)),
        AggregateFn::LastNonNullValue => return Ok(new.or(old).map(Cow::Borrowed)),
        AggregateFn::FirstNonNullValue => return Ok(old.or(new).map(Cow::Borrowed)),
        _ => match (old, new) {
            (Some(old), Some(new)) => (old, new),
            (one, other) => return Ok(one.or(other).map(Cow::Borrowed)),
        },
    };
    Ok(Some(match function {
        AggregateFn::Sum => Cow::Owned(sum(data_type, old, new)?),
        AggregateFn::Max | AggregateFn::Min => {
            let order = compare(data_type, old, new)?;
            let keep_old = match function {
                AggregateFn::Max => order != Ordering::Less,
                _ => order != Ordering::Greater,
            };
            Cow::Borrowed(if keep_old { old } else { new })
        }
        AggregateFn::BoolAnd => Cow::Owned(vec![u8::from(old[0] != 0 && new[0] != 0)]),
        AggregateFn::BoolOr => Cow::Owned(vec![u8::from(old[0] != 0 || new[0] != 0)]),
        _ => unreachable!("handled above"),
    }))
}

fn bytes<const N: usize>(cell: &[u8]) -> Result<[u8; N], String> {
    cell.try_into()
        .map_err(|_| format!("a value of {} bytes where {N} were expected", cell.len()))
}

fn sum(data_type: &DataType, a: &[u8], b: &[u8]) -> Result<Vec<u8>, String> {
    let overflow = || format!("the sum overflows {data_type}");
    macro_rules! checked {
        ($t:ty, $n:literal) => {{
            let (a, b) = (
                <$t>::from_le_bytes(bytes::<$n>(a)?),
                <$t>::from_le_bytes(bytes::<$n>(b)?),
            );
            a.checked_add(b)
                .ok_or_else(overflow)?
                .to_le_bytes()
                .to_vec()
        }};
    }
    Ok(match data_type {
        DataType::Int8 => checked!(i8, 1),
        DataType::Int16 => checked!(i16, 2),
        DataType::Int32 => checked!(i32, 4),
        DataType::Int64 => checked!(i64, 8),
        DataType::UInt8 => checked!(u8, 1),
        DataType::UInt16 => checked!(u16, 2),
        DataType::UInt32 => checked!(u32, 4),
        DataType::UInt64 => checked!(u64, 8),
        DataType::Float32 => (f32::from_le_bytes(bytes(a)?) + f32::from_le_bytes(bytes(b)?))
            .to_le_bytes()
            .to_vec(),
        DataType::Float64 => (f64::from_le_bytes(bytes(a)?) + f64::from_le_bytes(bytes(b)?))
            .to_le_bytes()
            .to_vec(),
        DataType::Decimal128(precision, _) => {
            let total = i128::from_le_bytes(bytes(a)?)
                .checked_add(i128::from_le_bytes(bytes(b)?))
                .ok_or_else(overflow)?;
            let limit = 10i128
                .checked_pow(u32::from(*precision))
                .unwrap_or(i128::MAX);
            if total.unsigned_abs() >= limit.unsigned_abs() {
                return Err(format!(
                    "the sum {total} (unscaled) exceeds the precision of {data_type}"
                ));
            }
            total.to_le_bytes().to_vec()
        }
        other => return Err(format!("sum is not defined on {other}")),
    })
}

fn compare(data_type: &DataType, a: &[u8], b: &[u8]) -> Result<Ordering, String> {
    let signed = |cell: &[u8]| -> Result<i128, String> {
        Ok(match cell.len() {
            1 => i128::from(i8::from_le_bytes(bytes(cell)?)),
            2 => i128::from(i16::from_le_bytes(bytes(cell)?)),
            4 => i128::from(i32::from_le_bytes(bytes(cell)?)),
            8 => i128::from(i64::from_le_bytes(bytes(cell)?)),
            16 => i128::from_le_bytes(bytes(cell)?),
            n => return Err(format!("a signed value of {n} bytes")),
        })
    };
    let unsigned = |cell: &[u8]| -> Result<u64, String> {
        let mut wide = [0u8; 8];
        if cell.len() > 8 {
            return Err(format!("an unsigned value of {} bytes", cell.len()));
        }
        wide[..cell.len()].copy_from_slice(cell);
        Ok(u64::from_le_bytes(wide))
    };
    let float = |cell: &[u8]| -> Result<f64, String> {
        Ok(match cell.len() {
            4 => f64::from(f32::from_le_bytes(bytes(cell)?)),
            8 => f64::from_le_bytes(bytes(cell)?),
            n => return Err(format!("a float of {n} bytes")),
        })
    };
    match ordering(data_type) {
        Some(Ordered::Signed) => Ok(signed(a)?.cmp(&signed(b)?)),
        Some(Ordered::Unsigned) => Ok(unsigned(a)?.cmp(&unsigned(b)?)),
        Some(Ordered::Float) => Ok(float(a)?.total_cmp(&float(b)?)),
        Some(Ordered::Bytes) => Ok(a.cmp(b)),
        None => Err(format!("max and min are not defined on {data_type}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
        StringArray,
    };
    use arrow_schema::Field;

    use super::*;
    use crate::pk::row::{RowEncoder, decode_rows};

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("total", DataType::Int32, true),
            Field::new("high", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("all", DataType::Boolean, true),
            Field::new("amount", DataType::Decimal128(4, 1), true),
        ]))
    }

    type Row = (
        i64,
        Option<i32>,
        Option<f64>,
        Option<&'static str>,
        Option<bool>,
        Option<i128>,
    );

    fn image(row: Row) -> Vec<u8> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![row.0])),
            Arc::new(Int32Array::from(vec![row.1])),
            Arc::new(Float64Array::from(vec![row.2])),
            Arc::new(StringArray::from(vec![row.3])),
            Arc::new(BooleanArray::from(vec![row.4])),
            Arc::new(
                Decimal128Array::from(vec![row.5])
                    .with_precision_and_scale(4, 1)
                    .expect("decimal"),
            ),
        ];
        let batch = RecordBatch::try_new(schema(), columns).expect("batch");
        let mut out = Vec::new();
        RowEncoder::new(&batch, SchemaId(0))
            .expect("encoder")
            .encode(0, &mut out)
            .expect("image");
        out
    }

    fn engine(pairs: &[(&str, &str)]) -> Result<MergeEngine, DefinitionError> {
        let mut options: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| {
                (
                    format!("{OPTION_MERGE_AGGREGATE_PREFIX}{k}"),
                    (*v).to_owned(),
                )
            })
            .collect();
        options.insert(OPTION_MERGE_ENGINE.into(), "aggregation".into());
        MergeEngine::parse(&options, &schema(), &["id".to_owned()])
    }

    #[test]
    fn aggregates_combine_cell_by_cell_and_skip_nulls() {
        let aggregation = engine(&[
            ("total", "sum"),
            ("high", "max"),
            ("name", "first_non_null_value"),
            ("all", "bool_and"),
            ("amount", "sum"),
        ])
        .expect("valid aggregation");
        let merged = merge_images(
            (&schema(), SchemaId(0)),
            &aggregation,
            None,
            &image((1, Some(5), Some(2.5), None, Some(true), Some(15))),
            &image((1, Some(7), Some(-1.0), Some("b"), Some(false), Some(20))),
        )
        .expect("merge");
        assert_eq!(
            merged,
            image((1, Some(12), Some(2.5), Some("b"), Some(false), Some(35)))
        );
        // Nulls are skipped: the current values stay.
        let merged = merge_images(
            (&schema(), SchemaId(0)),
            &aggregation,
            None,
            &image((1, Some(5), Some(2.5), Some("a"), Some(true), Some(15))),
            &image((1, None, None, Some("z"), None, None)),
        )
        .expect("merge");
        assert_eq!(
            merged,
            image((1, Some(5), Some(2.5), Some("a"), Some(true), Some(15)))
        );
        let decoded = decode_rows(&schema(), SchemaId(0), &[&merged]).expect("a valid image");
        assert_eq!(decoded.num_rows(), 1);
    }

    #[test]
    fn partial_updates_keep_the_columns_outside_the_mask() {
        let mask = column_mask(6, [0, 3]);
        let merged = merge_images(
            (&schema(), SchemaId(0)),
            &MergeEngine::LastRow,
            Some(&mask),
            &image((1, Some(5), Some(2.5), Some("a"), Some(true), Some(15))),
            &image((1, None, None, Some("b"), None, None)),
        )
        .expect("merge");
        assert_eq!(
            merged,
            image((1, Some(5), Some(2.5), Some("b"), Some(true), Some(15)))
        );
    }

    #[test]
    fn overflows_and_misfit_functions_are_errors_naming_the_column() {
        let aggregation = engine(&[("total", "sum"), ("amount", "sum")]).expect("valid");
        let error = merge_images(
            (&schema(), SchemaId(0)),
            &aggregation,
            None,
            &image((1, Some(i32::MAX), None, None, None, None)),
            &image((1, Some(1), None, None, None, None)),
        )
        .expect_err("i32 overflow");
        assert!(error.to_string().contains("column `total`"), "{error}");
        let error = merge_images(
            (&schema(), SchemaId(0)),
            &aggregation,
            None,
            &image((1, None, None, None, None, Some(9_000))),
            &image((1, None, None, None, None, Some(1_000))),
        )
        .expect_err("beyond the decimal's precision");
        assert!(error.to_string().contains("column `amount`"), "{error}");
        for (column, function) in [
            ("name", "sum"),
            ("total", "bool_or"),
            ("id", "max"),
            ("nope", "max"),
            ("total", "median"),
        ] {
            assert!(
                matches!(
                    engine(&[(column, function)]),
                    Err(DefinitionError::InvalidOption { .. })
                ),
                "{column}={function}"
            );
        }
    }
}
