//! The table model: what a table is, what makes a definition valid, and the system columns
//! every read carries.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::bucket::is_bucketable;
use crate::error::{ErrorKind, HasKind};
use crate::ids::{DatabaseId, SchemaId, TableId, TimestampMicros};
use crate::limits::{MAX_BUCKETS, MAX_COLUMNS, MAX_NAME_LEN};

/// Column holding a row's bucket in reads and lake files.
pub const BUCKET_COLUMN: &str = "_bucket";
/// Column holding a row's offset within its bucket.
pub const OFFSET_COLUMN: &str = "_offset";
/// Column holding a row's commit time (microseconds, UTC).
pub const TIMESTAMP_COLUMN: &str = "_timestamp";
/// Names users may not give their columns: the system columns, present and planned.
pub const RESERVED_COLUMNS: [&str; 4] = [
    BUCKET_COLUMN,
    OFFSET_COLUMN,
    TIMESTAMP_COLUMN,
    "_change_type",
];

/// Table options this version understands. Unknown keys are rejected rather than ignored,
/// so a typo never silently changes nothing.
pub const KNOWN_TABLE_OPTIONS: [&str; 0] = [];

/// The fields of the system columns appended to every fetched batch, in order.
pub fn system_fields() -> [Field; 3] {
    [
        Field::new(BUCKET_COLUMN, DataType::Int32, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
        Field::new(
            TIMESTAMP_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            false,
        ),
    ]
}

/// What a user asks for when creating a table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDescriptor {
    pub schema: SchemaRef,
    pub bucket_count: u32,
    pub bucket_key: Vec<String>,
    pub partition_key: Vec<String>,
    pub comment: String,
    pub options: BTreeMap<String, String>,
}

/// A table as the catalog knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TableInfo {
    pub id: TableId,
    pub database: String,
    pub database_id: DatabaseId,
    pub name: String,
    pub schema_id: SchemaId,
    pub descriptor: TableDescriptor,
    pub created_at: TimestampMicros,
}

impl TableInfo {
    /// Indices of the bucket key columns in the schema (validated at creation).
    pub fn bucket_key_indices(&self) -> Vec<usize> {
        self.descriptor
            .bucket_key
            .iter()
            .filter_map(|name| self.descriptor.schema.index_of(name).ok())
            .collect()
    }

    /// `database.table`, for messages.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }
}

/// Why a table or database definition was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DefinitionError {
    #[error("invalid {what} name `{name}`: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("table schema has no columns")]
    NoColumns,
    #[error("table schema has {count} columns, more than the limit of {limit}")]
    TooManyColumns { count: usize, limit: usize },
    #[error("duplicate column `{column}`")]
    DuplicateColumn { column: String },
    #[error("column name `{column}` is reserved for a system column")]
    ReservedColumn { column: String },
    #[error("column `{column}` has type {data_type}, which tables do not support")]
    UnsupportedType { column: String, data_type: String },
    #[error("bucket count {count} is out of range: must be 1..={limit}")]
    BucketCount { count: u32, limit: u32 },
    #[error("bucket key column `{column}` is not a column of the table")]
    UnknownBucketKey { column: String },
    #[error("bucket key column `{column}` has type {data_type}, which cannot be bucketed")]
    UnbucketableKey { column: String, data_type: String },
    #[error("bucket key lists column `{column}` twice")]
    DuplicateBucketKey { column: String },
    #[error("partitioned tables are not supported yet (partition key {columns:?})")]
    PartitionKeyUnsupported { columns: Vec<String> },
    #[error("unknown table option `{key}`")]
    UnknownOption { key: String },
}

impl HasKind for DefinitionError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// Checks a database, table or column name: 1..=255 bytes of ASCII letters, digits, `_`
/// and `-`, not starting with `-`.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), DefinitionError> {
    let invalid = |reason| DefinitionError::InvalidName {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("longer than 255 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "only ASCII letters, digits, `_` and `-` are allowed",
        ));
    }
    if name.starts_with('-') {
        return Err(invalid("must not start with `-`"));
    }
    Ok(())
}

/// Whether tables can hold columns of this type. View, dictionary, union and run-end
/// types are excluded: their IPC layout does not allow per-column byte ranges.
fn is_supported_type(data_type: &DataType) -> bool {
    match data_type {
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
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::FixedSizeBinary(_)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => true,
        DataType::List(child) | DataType::LargeList(child) | DataType::FixedSizeList(child, _) => {
            is_supported_type(child.data_type())
        }
        DataType::Map(entries, _) => is_supported_type(entries.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| is_supported_type(f.data_type())),
        _ => false,
    }
}

impl TableDescriptor {
    /// Checks the definition; on success the table can be created as described.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        let fields = self.schema.fields();
        if fields.is_empty() {
            return Err(DefinitionError::NoColumns);
        }
        if fields.len() > MAX_COLUMNS {
            return Err(DefinitionError::TooManyColumns {
                count: fields.len(),
                limit: MAX_COLUMNS,
            });
        }
        for (i, field) in fields.iter().enumerate() {
            validate_name("column", field.name())?;
            if RESERVED_COLUMNS.contains(&field.name().as_str()) {
                return Err(DefinitionError::ReservedColumn {
                    column: field.name().clone(),
                });
            }
            if fields[..i].iter().any(|f| f.name() == field.name()) {
                return Err(DefinitionError::DuplicateColumn {
                    column: field.name().clone(),
                });
            }
            if !is_supported_type(field.data_type()) {
                return Err(DefinitionError::UnsupportedType {
                    column: field.name().clone(),
                    data_type: field.data_type().to_string(),
                });
            }
        }
        if self.bucket_count == 0 || self.bucket_count > MAX_BUCKETS {
            return Err(DefinitionError::BucketCount {
                count: self.bucket_count,
                limit: MAX_BUCKETS,
            });
        }
        for (i, column) in self.bucket_key.iter().enumerate() {
            let field = self.schema.field_with_name(column).map_err(|_| {
                DefinitionError::UnknownBucketKey {
                    column: column.clone(),
                }
            })?;
            if !is_bucketable(field.data_type()) {
                return Err(DefinitionError::UnbucketableKey {
                    column: column.clone(),
                    data_type: field.data_type().to_string(),
                });
            }
            if self.bucket_key[..i].contains(column) {
                return Err(DefinitionError::DuplicateBucketKey {
                    column: column.clone(),
                });
            }
        }
        if !self.partition_key.is_empty() {
            return Err(DefinitionError::PartitionKeyUnsupported {
                columns: self.partition_key.clone(),
            });
        }
        if let Some(key) = self
            .options
            .keys()
            .find(|key| !KNOWN_TABLE_OPTIONS.contains(&key.as_str()))
        {
            return Err(DefinitionError::UnknownOption { key: key.clone() });
        }
        Ok(())
    }
}

/// The schema of fetched batches: the projected table columns, then the system columns.
pub fn read_schema(table_schema: &Schema, projection: &[usize]) -> SchemaRef {
    let mut fields: Vec<Field> = projection
        .iter()
        .map(|i| table_schema.field(*i).clone())
        .collect();
    fields.extend(system_fields());
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(fields: Vec<Field>) -> TableDescriptor {
        TableDescriptor {
            schema: Arc::new(Schema::new(fields)),
            bucket_count: 4,
            bucket_key: vec![],
            partition_key: vec![],
            comment: String::new(),
            options: BTreeMap::new(),
        }
    }

    #[test]
    fn accepts_a_plain_table_and_rejects_each_defect() {
        let ok = descriptor(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        assert_eq!(ok.validate(), Ok(()));

        let mut keyed = ok.clone();
        keyed.bucket_key = vec!["id".into()];
        assert_eq!(keyed.validate(), Ok(()));
        keyed.bucket_key = vec!["nope".into()];
        assert!(matches!(
            keyed.validate(),
            Err(DefinitionError::UnknownBucketKey { .. })
        ));

        let mut zero = ok.clone();
        zero.bucket_count = 0;
        assert!(matches!(
            zero.validate(),
            Err(DefinitionError::BucketCount { .. })
        ));

        let dup = descriptor(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("a", DataType::Utf8, true),
        ]);
        assert!(matches!(
            dup.validate(),
            Err(DefinitionError::DuplicateColumn { .. })
        ));

        let reserved = descriptor(vec![Field::new("_offset", DataType::Int64, false)]);
        assert!(matches!(
            reserved.validate(),
            Err(DefinitionError::ReservedColumn { .. })
        ));

        let view = descriptor(vec![Field::new("s", DataType::Utf8View, false)]);
        assert!(matches!(
            view.validate(),
            Err(DefinitionError::UnsupportedType { .. })
        ));

        assert_eq!(
            descriptor(vec![]).validate(),
            Err(DefinitionError::NoColumns)
        );

        let mut float_key = descriptor(vec![Field::new("f", DataType::Float64, false)]);
        float_key.bucket_key = vec!["f".into()];
        assert!(matches!(
            float_key.validate(),
            Err(DefinitionError::UnbucketableKey { .. })
        ));

        let mut option = ok.clone();
        option.options.insert("colour".into(), "blue".into());
        assert!(matches!(
            option.validate(),
            Err(DefinitionError::UnknownOption { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("table", "events_2024-v1").is_ok());
        assert!(validate_name("table", "").is_err());
        assert!(validate_name("table", "a b").is_err());
        assert!(validate_name("table", "-x").is_err());
        assert!(validate_name("table", &"x".repeat(256)).is_err());
    }
}
