//! The column types Inlet stores: one list, used by table validation, the WAL codec and the
//! Arrow IPC decoder for client input, so a type is accepted everywhere or nowhere.
//!
//! Excluded: dictionary, view (Utf8View, BinaryView, ListView), union and run-end-encoded
//! types, whose IPC buffers are not self-contained or not laid out per column (the WAL's
//! per-column byte ranges need both), and Decimal32/Decimal64, which the lake's Iceberg
//! conversion does not map.

use arrow_schema::{DataType, Field, Schema};

/// Whether a column may have this type: the type itself and every nested child's.
pub fn is_supported(data_type: &DataType) -> bool {
    unsupported_in(data_type, String::new()).is_none()
}

/// The first column (or nested field, as a dotted path) of `schema` whose type Inlet does not
/// store, with that type.
pub fn first_unsupported(schema: &Schema) -> Option<(String, DataType)> {
    schema
        .fields()
        .iter()
        .find_map(|field| unsupported_in(field.data_type(), field.name().clone()))
}

/// The first unsupported type within `data_type` (itself or a child), with its dotted path
/// (`path` names `data_type` itself).
fn unsupported_in(data_type: &DataType, path: String) -> Option<(String, DataType)> {
    let children: Vec<&Field> = match data_type {
        DataType::List(child) | DataType::LargeList(child) | DataType::Map(child, _) => {
            vec![child]
        }
        DataType::FixedSizeList(child, size) if *size > 0 => vec![child],
        DataType::Struct(fields) => fields.iter().map(AsRef::as_ref).collect(),
        DataType::FixedSizeBinary(size) if *size > 0 => vec![],
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
        | DataType::LargeUtf8 => vec![],
        DataType::FixedSizeList(_, _)
        | DataType::FixedSizeBinary(_)
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::BinaryView
        | DataType::Utf8View
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::Union(_, _)
        | DataType::Dictionary(_, _)
        | DataType::RunEndEncoded(_, _) => return Some((path, data_type.clone())),
    };
    children.into_iter().find_map(|child| {
        let path = if path.is_empty() {
            child.name().clone()
        } else {
            format!("{path}.{}", child.name())
        };
        unsupported_in(child.data_type(), path)
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
}
