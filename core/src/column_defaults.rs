//! A column's doc and write default, kept as Arrow field metadata like its
//! [id](crate::column_ids), so they travel with every stored and sent schema:
//!
//! - [`DOC_KEY`] (`inlet.doc`): what the column means, shown by `table describe` and given to
//!   the lake field as its Iceberg `doc`.
//! - [`DEFAULT_KEY`] (`inlet.default`): the value, written as text (`42`, `true`,
//!   `2026-12-07`, `unknown`), that an append which leaves the column out gets in it instead
//!   of null: Iceberg's `write-default`. Rows written before the column existed stay null,
//!   as Iceberg v2 engines read them (an `initial-default` needs Iceberg v3), so Inlet and
//!   every engine agree on every row. A column with a default may be declared not null:
//!   appends may still leave it out.
//!
//! Defaults are for flat columns (numbers, booleans, strings, binaries, dates, times,
//! timestamps, decimals); the text must cast to the column's type without loss, checked when
//! the table is created or altered.

use arrow_array::{ArrayRef, StringArray};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, Field};

/// Field metadata key of a column's doc.
pub const DOC_KEY: &str = "inlet.doc";
/// Field metadata key of a column's write default, as text.
pub const DEFAULT_KEY: &str = "inlet.default";
/// Longest doc or default text, in bytes: both are in every schema the catalog keeps.
pub const MAX_COLUMN_TEXT_BYTES: usize = 1024;

/// The doc of `field`, if it has one.
pub fn doc_of(field: &Field) -> Option<&str> {
    field.metadata().get(DOC_KEY).map(String::as_str)
}

/// The write default of `field` as a one-row array of its type; `None` when it has none.
/// Fails, saying why, when the text is too long, the type takes no default, or the text is
/// no value of the type.
pub fn default_of(field: &Field) -> Result<Option<ArrayRef>, String> {
    let Some(text) = field.metadata().get(DEFAULT_KEY) else {
        return Ok(None);
    };
    if text.len() > MAX_COLUMN_TEXT_BYTES {
        return Err(format!(
            "{} bytes, more than the limit of {MAX_COLUMN_TEXT_BYTES}",
            text.len()
        ));
    }
    if !takes_default(field.data_type()) {
        return Err(format!(
            "columns of type {} take no default",
            field.data_type()
        ));
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let value = StringArray::from(vec![text.as_str()]);
    cast_with_options(&value, field.data_type(), &options)
        .map(Some)
        .map_err(|error| format!("`{text}` is no {} value: {error}", field.data_type()))
}

/// Whether a column of `data_type` may have a default: the flat types a text casts to.
fn takes_default(data_type: &DataType) -> bool {
    data_type.is_primitive()
        || matches!(
            data_type,
            DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Binary
                | DataType::LargeBinary
        )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Int32Type};

    use super::*;

    fn with_default(data_type: DataType, text: &str) -> Field {
        Field::new("c", data_type, true)
            .with_metadata(HashMap::from([(DEFAULT_KEY.to_owned(), text.to_owned())]))
    }

    #[test]
    fn defaults_parse_as_their_column_type_or_are_refused_saying_why() {
        let int = default_of(&with_default(DataType::Int32, "42"))
            .expect("parses")
            .expect("a default");
        assert_eq!(int.as_primitive::<Int32Type>().value(0), 42);
        let date = default_of(&with_default(DataType::Date32, "2026-12-07"))
            .expect("parses")
            .expect("a default");
        assert_eq!(date.as_primitive::<Date32Type>().value(0), 20_794);
        let text = default_of(&with_default(DataType::Utf8, "unknown"))
            .expect("parses")
            .expect("a default");
        assert_eq!(text.as_string::<i32>().value(0), "unknown");
        assert_eq!(
            default_of(&Field::new("c", DataType::Int32, true)),
            Ok(None)
        );

        let not_a_number = default_of(&with_default(DataType::Int32, "many")).expect_err("no");
        assert!(
            not_a_number.contains("`many` is no Int32 value"),
            "{not_a_number}"
        );
        let too_big = default_of(&with_default(DataType::Int8, "300")).expect_err("no");
        assert!(too_big.contains("Int8"), "{too_big}");
        let nested = DataType::new_list(DataType::Int32, true);
        let list = default_of(&with_default(nested, "[1]")).expect_err("no");
        assert!(list.contains("take no default"), "{list}");
        let long = "x".repeat(MAX_COLUMN_TEXT_BYTES + 1);
        assert!(default_of(&with_default(DataType::Utf8, &long)).is_err());
    }
}
