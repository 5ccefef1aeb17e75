//! The column types Inlet stores: one list, used by table validation, the WAL codec and the
//! Arrow IPC decoder for client input, so a type is accepted everywhere or nowhere.
//!
//! Excluded: dictionary, view (Utf8View, BinaryView, ListView), union and run-end-encoded
//! types, whose IPC buffers are not self-contained or not laid out per column (the WAL's
//! per-column byte ranges need both), and Decimal32/Decimal64, which the lake's Iceberg
//! conversion does not map.

use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// Whether `ALTER` may change a column of type `from` to `to` (a widening): every value of
/// `from` is a value of `to`, and Iceberg allows the promotion in place (int to long, float
/// to double, a decimal's precision raised at the same scale), so chunks and lake files
/// written before read under the new type with a cast, and nothing is rewritten. A narrower
/// signed integer widens to any wider one (Iceberg holds 8- and 16-bit integers as int).
pub fn widens(from: &DataType, to: &DataType) -> bool {
    let rank = |data_type: &DataType| match data_type {
        DataType::Int8 => Some(1),
        DataType::Int16 => Some(2),
        DataType::Int32 => Some(3),
        DataType::Int64 => Some(4),
        _ => None,
    };
    match (from, to) {
        (DataType::Float32, DataType::Float64) => true,
        (
            DataType::Decimal128(from_precision, from_scale),
            DataType::Decimal128(precision, scale),
        ) => scale == from_scale && precision > from_precision,
        _ => matches!((rank(from), rank(to)), (Some(from), Some(to)) if to > from),
    }
}

/// `column` as type `to` when its type [`widens`] to it (every value kept exactly); `None`
/// for any other pair of types.
pub fn widen(column: &ArrayRef, to: &DataType) -> Option<ArrayRef> {
    if !widens(column.data_type(), to) {
        return None;
    }
    arrow_cast::cast(column, to).ok()
}

/// Whether a column may have this type: the type itself and every nested child's.
pub fn is_supported(data_type: &DataType) -> bool {
    first_in(data_type, String::new(), &refusal).is_none()
}

/// The first column (or nested field, as a dotted path) of `schema` whose type Inlet does not
/// store, with that type.
pub fn first_unsupported(schema: &Schema) -> Option<(String, DataType)> {
    first_in_schema(schema, &refusal).map(|(path, data_type, ())| (path, data_type))
}

/// The first column (or nested field) of `schema` whose type the lake's Iceberg tables
/// cannot hold without changing values, with that type and why. A table with
/// `lake.enabled` refuses such a column when it is created or altered, instead of halting
/// tiering later; the compactor's Arrow-to-Iceberg conversion refuses the same types for
/// the same reasons ([`lake_refusal`]).
pub fn first_not_in_lake(schema: &Schema) -> Option<(String, DataType, &'static str)> {
    first_in_schema(schema, &lake_refusal)
}

/// Why Iceberg (format v2) cannot hold a value of this type itself, children aside; `None`
/// when it can.
pub fn lake_refusal(data_type: &DataType) -> Option<&'static str> {
    match data_type {
        DataType::UInt64 => {
            Some("Iceberg has no unsigned 64-bit integer; use int64 or decimal(20, 0)")
        }
        DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => {
            if *precision > 38 {
                Some("Iceberg decimals have at most 38 digits")
            } else if *scale < 0 {
                Some("Iceberg decimals have no negative scale")
            } else {
                None
            }
        }
        DataType::Time64(unit) if *unit != TimeUnit::Microsecond => {
            Some("Iceberg v2 times are microseconds; nanoseconds would be truncated")
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Some("Iceberg v2 timestamps are microseconds; nanoseconds would be truncated")
        }
        DataType::Null => Some("Iceberg has no null type"),
        DataType::Duration(_) | DataType::Interval(_) => {
            Some("Iceberg v2 has no duration or interval type")
        }
        DataType::Struct(fields) if fields.is_empty() => {
            Some("Parquet cannot store a struct without fields")
        }
        _ => None,
    }
}

/// Why Inlet does not store a value of this type itself, children aside.
fn refusal(data_type: &DataType) -> Option<()> {
    match data_type {
        DataType::FixedSizeList(_, size) | DataType::FixedSizeBinary(size) => {
            (*size <= 0).then_some(())
        }
        DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::BinaryView
        | DataType::Utf8View
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::Union(_, _)
        | DataType::Dictionary(_, _)
        | DataType::RunEndEncoded(_, _) => Some(()),
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Timestamp(_, _)
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_)
        | DataType::Interval(_)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _)
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::List(_)
        | DataType::LargeList(_)
        | DataType::Map(_, _)
        | DataType::Struct(_) => None,
    }
}

fn first_in_schema<R>(
    schema: &Schema,
    check: &dyn Fn(&DataType) -> Option<R>,
) -> Option<(String, DataType, R)> {
    schema
        .fields()
        .iter()
        .find_map(|field| first_in(field.data_type(), field.name().clone(), check))
}

/// The first type within `data_type` (itself, then its children depth first) that `check`
/// refuses, with its dotted path (`path` names `data_type` itself).
fn first_in<R>(
    data_type: &DataType,
    path: String,
    check: &dyn Fn(&DataType) -> Option<R>,
) -> Option<(String, DataType, R)> {
    if let Some(reason) = check(data_type) {
        return Some((path, data_type.clone(), reason));
    }
    let children: Vec<&Field> = match data_type {
        DataType::List(child)
        | DataType::LargeList(child)
        | DataType::FixedSizeList(child, _)
        | DataType::Map(child, _) => vec![child],
        DataType::Struct(fields) => fields.iter().map(AsRef::as_ref).collect(),
        _ => vec![],
    };
    children.into_iter().find_map(|child| {
        let path = if path.is_empty() {
            child.name().clone()
        } else {
            format!("{path}.{}", child.name())
        };
        first_in(child.data_type(), path, check)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn names_the_nested_path_of_an_unsupported_type() {
        let inner = Field::new("v", DataType::Utf8View, true);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "s",
                DataType::Struct(vec![Field::new("a", DataType::Int32, true), inner].into()),
                true,
            ),
        ]);
        assert_eq!(
            first_unsupported(&schema),
            Some(("s.v".to_owned(), DataType::Utf8View))
        );
    }

    #[test]
    fn one_list_for_tables_and_the_wal() {
        assert!(is_supported(&DataType::Decimal128(38, 2)));
        assert!(!is_supported(&DataType::Decimal64(18, 2)));
        assert!(!is_supported(&DataType::FixedSizeBinary(0)));
        let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true)));
        assert!(!is_supported(&list));
    }

    #[test]
    fn names_what_the_lake_cannot_hold_and_why() {
        let nanos = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("tags", DataType::new_list(nanos.clone(), true), true),
        ]);
        let (path, data_type, reason) = first_not_in_lake(&schema).expect("refused");
        assert_eq!((path.as_str(), data_type), ("tags.item", nanos));
        assert!(reason.contains("microseconds"), "{reason}");
        for held in [
            DataType::UInt32,
            DataType::Decimal128(38, 2),
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        ] {
            assert_eq!(lake_refusal(&held), None, "{held}");
        }
        for refused in [
            DataType::UInt64,
            DataType::Null,
            DataType::Decimal256(40, 2),
            DataType::Decimal128(10, -2),
            DataType::Time64(TimeUnit::Nanosecond),
            DataType::Duration(TimeUnit::Second),
        ] {
            assert!(lake_refusal(&refused).is_some(), "{refused}");
        }
    }
}
