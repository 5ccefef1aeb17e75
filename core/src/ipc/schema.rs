//! An Arrow IPC schema message (a flatbuffer from outside) to an Arrow [`Schema`], for the
//! column types Inlet stores only ([`crate::column_types`]).
//!
//! arrow-ipc's own converter (`fb_to_schema`) panics on many malformed schemas (an unknown
//! bit width, a list without a child, a decimal of the wrong width...), so client input never
//! reaches it: every field is read here, every parameter checked, and anything unexpected is
//! an error naming the field (as a dotted path) and what is wrong with it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_ipc::{DateUnit, Endianness, IntervalUnit, Precision, TimeUnit, Type};
use arrow_schema::{
    DECIMAL128_MAX_PRECISION, DECIMAL256_MAX_PRECISION, DataType, Field, Fields,
    IntervalUnit as AI, Schema, TimeUnit as AT,
};

use crate::limits::MAX_TYPE_NESTING;

/// Converts a flatbuffer schema; an error says which field is wrong and why.
pub(crate) fn schema_from_fb(schema: arrow_ipc::Schema<'_>) -> Result<Schema, String> {
    if schema.endianness() != Endianness::Little {
        return Err("the schema is big-endian; inlet reads little-endian arrow only".to_owned());
    }
    let fields = match schema.fields() {
        Some(fields) => fields
            .iter()
            .map(|field| convert_field(field, "", 0))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    Ok(Schema::new_with_metadata(
        fields,
        metadata(schema.custom_metadata().into_iter().flatten()),
    ))
}

fn metadata<'a>(
    pairs: impl IntoIterator<Item = arrow_ipc::KeyValue<'a>>,
) -> HashMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|pair| {
            Some((
                pair.key()?.to_owned(),
                pair.value().unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

fn convert_field(field: arrow_ipc::Field<'_>, parent: &str, depth: usize) -> Result<Field, String> {
    let name = field.name().unwrap_or("");
    let path = if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    };
    if depth >= MAX_TYPE_NESTING {
        return Err(format!(
            "field `{path}` is nested deeper than {MAX_TYPE_NESTING} levels"
        ));
    }
    if field.dictionary().is_some() {
        return Err(format!(
            "field `{path}` is dictionary-encoded, which inlet does not store"
        ));
    }
    let data_type = convert_type(field, &path, depth)?;
    Ok(Field::new(name, data_type, field.nullable())
        .with_metadata(metadata(field.custom_metadata().into_iter().flatten())))
}

fn children(field: arrow_ipc::Field<'_>, path: &str, depth: usize) -> Result<Vec<Field>, String> {
    field
        .children()
        .into_iter()
        .flatten()
        .map(|child| convert_field(child, path, depth + 1))
        .collect()
}

/// The only child of a list-like field.
fn only_child(field: arrow_ipc::Field<'_>, path: &str, depth: usize) -> Result<Arc<Field>, String> {
    let mut children = children(field, path, depth)?;
    if children.len() != 1 {
        return Err(format!(
            "field `{path}` is a list with {} children, expected 1",
            children.len()
        ));
    }
    Ok(Arc::new(children.remove(0)))
}

fn convert_type(field: arrow_ipc::Field<'_>, path: &str, depth: usize) -> Result<DataType, String> {
    let bad = |what: String| format!("field `{path}`: {what}");
    let type_type = field.type_type();
    // `type_as_*` returns None when the union tag and the table disagree: treat as malformed.
    let missing = || bad(format!("type {type_type:?} has no parameters"));
    let time_unit = |unit: TimeUnit| match unit {
        TimeUnit::SECOND => Ok(AT::Second),
        TimeUnit::MILLISECOND => Ok(AT::Millisecond),
        TimeUnit::MICROSECOND => Ok(AT::Microsecond),
        TimeUnit::NANOSECOND => Ok(AT::Nanosecond),
        other => Err(bad(format!("unknown time unit {}", other.0))),
    };
    Ok(match type_type {
        Type::Null => DataType::Null,
        Type::Bool => DataType::Boolean,
        Type::Binary => DataType::Binary,
        Type::LargeBinary => DataType::LargeBinary,
        Type::Utf8 => DataType::Utf8,
        Type::LargeUtf8 => DataType::LargeUtf8,
        Type::Int => {
            let int = field.type_as_int().ok_or_else(missing)?;
            match (int.bitWidth(), int.is_signed()) {
                (8, true) => DataType::Int8,
                (16, true) => DataType::Int16,
                (32, true) => DataType::Int32,
                (64, true) => DataType::Int64,
                (8, false) => DataType::UInt8,
                (16, false) => DataType::UInt16,
                (32, false) => DataType::UInt32,
                (64, false) => DataType::UInt64,
                (width, _) => return Err(bad(format!("integer bit width {width}"))),
            }
        }
        Type::FloatingPoint => {
            match field
                .type_as_floating_point()
                .ok_or_else(missing)?
                .precision()
            {
                Precision::HALF => DataType::Float16,
                Precision::SINGLE => DataType::Float32,
                Precision::DOUBLE => DataType::Float64,
                other => return Err(bad(format!("unknown float precision {}", other.0))),
            }
        }
        Type::Decimal => {
            let decimal = field.type_as_decimal().ok_or_else(missing)?;
            let (precision, scale, width) =
                (decimal.precision(), decimal.scale(), decimal.bitWidth());
            let max = match width {
                128 => DECIMAL128_MAX_PRECISION,
                256 => DECIMAL256_MAX_PRECISION,
                _ => {
                    return Err(bad(format!(
                        "decimal bit width {width} (inlet stores 128- and 256-bit decimals)"
                    )));
                }
            };
            let valid_precision = u8::try_from(precision)
                .ok()
                .filter(|p| (1..=max).contains(p));
            let valid_scale = i8::try_from(scale)
                .ok()
                .filter(|s| i32::from(*s) <= precision);
            let (Some(p), Some(s)) = (valid_precision, valid_scale) else {
                return Err(bad(format!(
                    "decimal precision {precision} and scale {scale} (precision 1..={max}, \
                     scale at most the precision)"
                )));
            };
            if width == 128 {
                DataType::Decimal128(p, s)
            } else {
                DataType::Decimal256(p, s)
            }
        }
        Type::Date => match field.type_as_date().ok_or_else(missing)?.unit() {
            DateUnit::DAY => DataType::Date32,
            DateUnit::MILLISECOND => DataType::Date64,
            other => return Err(bad(format!("unknown date unit {}", other.0))),
        },
        Type::Time => {
            let time = field.type_as_time().ok_or_else(missing)?;
            match (time_unit(time.unit())?, time.bitWidth()) {
                (unit @ (AT::Second | AT::Millisecond), 32) => DataType::Time32(unit),
                (unit @ (AT::Microsecond | AT::Nanosecond), 64) => DataType::Time64(unit),
                (unit, width) => {
                    return Err(bad(format!("time in {unit:?} with bit width {width}")));
                }
            }
        }
        Type::Timestamp => {
            let timestamp = field.type_as_timestamp().ok_or_else(missing)?;
            DataType::Timestamp(
                time_unit(timestamp.unit())?,
                timestamp.timezone().map(Arc::from),
            )
        }
        Type::Duration => DataType::Duration(time_unit(
            field.type_as_duration().ok_or_else(missing)?.unit(),
        )?),
        Type::Interval => match field.type_as_interval().ok_or_else(missing)?.unit() {
            IntervalUnit::YEAR_MONTH => DataType::Interval(AI::YearMonth),
            IntervalUnit::DAY_TIME => DataType::Interval(AI::DayTime),
            IntervalUnit::MONTH_DAY_NANO => DataType::Interval(AI::MonthDayNano),
            other => return Err(bad(format!("unknown interval unit {}", other.0))),
        },
        Type::FixedSizeBinary => {
            let width = field
                .type_as_fixed_size_binary()
                .ok_or_else(missing)?
                .byteWidth();
            if width < 1 {
                return Err(bad(format!("fixed-size binary of width {width}")));
            }
            DataType::FixedSizeBinary(width)
        }
        Type::List => DataType::List(only_child(field, path, depth)?),
        Type::LargeList => DataType::LargeList(only_child(field, path, depth)?),
        Type::FixedSizeList => {
            let size = field
                .type_as_fixed_size_list()
                .ok_or_else(missing)?
                .listSize();
            if size < 1 {
                return Err(bad(format!("fixed-size list of size {size}")));
            }
            DataType::FixedSizeList(only_child(field, path, depth)?, size)
        }
        Type::Struct_ => DataType::Struct(Fields::from(children(field, path, depth)?)),
        Type::Map => {
            let keys_sorted = field.type_as_map().ok_or_else(missing)?.keysSorted();
            let entries = only_child(field, path, depth)?;
            match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 && !kv[0].is_nullable() => {}
                _ => {
                    return Err(bad(
                        "a map's child must be a struct of a non-null key and a value".to_owned(),
                    ));
                }
            }
            DataType::Map(entries, keys_sorted)
        }
        Type::Union
        | Type::RunEndEncoded
        | Type::BinaryView
        | Type::Utf8View
        | Type::ListView
        | Type::LargeListView => {
            return Err(bad(format!(
                "type {type_type:?} is not one inlet stores (no union, run-end or view types)"
            )));
        }
        other => return Err(bad(format!("unknown type id {}", other.0))),
    })
}
