//! The table model: what a table is, what makes a definition valid, and the system columns
//! every read carries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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

/// Table option: `true` to tier the table into an Iceberg table in the same bucket.
pub const OPTION_LAKE_ENABLED: &str = "lake.enabled";
/// Table option: how often the compactor commits a lake snapshot (e.g. `30s`, `5m`). Also
/// how old the newest WAL rows may get before they are in the lake.
pub const OPTION_LAKE_FRESHNESS: &str = "lake.freshness";
/// Table option: how long rows stay readable (e.g. `7d`); older lake files are expired.
pub const OPTION_RETENTION: &str = "retention";

/// Table options this version understands. Unknown keys are rejected rather than ignored,
/// so a typo never silently changes nothing.
pub const KNOWN_TABLE_OPTIONS: [&str; 3] =
    [OPTION_LAKE_ENABLED, OPTION_LAKE_FRESHNESS, OPTION_RETENTION];

/// Default of [`OPTION_LAKE_FRESHNESS`].
pub const DEFAULT_LAKE_FRESHNESS: Duration = Duration::from_secs(30);
/// Bounds of [`OPTION_LAKE_FRESHNESS`]: shorter piles up snapshots and small files.
pub const MIN_LAKE_FRESHNESS: Duration = Duration::from_millis(100);
pub const MAX_LAKE_FRESHNESS: Duration = Duration::from_secs(24 * 3600);
/// Shortest [`OPTION_RETENTION`].
pub const MIN_RETENTION: Duration = Duration::from_secs(1);

/// A table's options, parsed and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableOptions {
    pub lake_enabled: bool,
    pub lake_freshness: Duration,
    /// `None`: rows are kept forever.
    pub retention: Option<Duration>,
}

impl TableOptions {
    /// Parses the option map of a table; unknown keys and bad values are errors naming them.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Self, DefinitionError> {
        if let Some(key) = options
            .keys()
            .find(|key| !KNOWN_TABLE_OPTIONS.contains(&key.as_str()))
        {
            return Err(DefinitionError::UnknownOption { key: key.clone() });
        }
        let invalid = |key: &str, value: &str, reason: String| DefinitionError::InvalidOption {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let lake_enabled = match options.get(OPTION_LAKE_ENABLED).map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(invalid(
                    OPTION_LAKE_ENABLED,
                    other,
                    "expected `true` or `false`".to_owned(),
                ));
            }
        };
        let duration = |key: &str, min: Duration, max: Duration| -> Result<Option<Duration>, _> {
            let Some(value) = options.get(key) else {
                return Ok(None);
            };
            let parsed = parse_duration(value).map_err(|reason| invalid(key, value, reason))?;
            if parsed < min || parsed > max {
                return Err(invalid(
                    key,
                    value,
                    format!("must be between {min:?} and {max:?}"),
                ));
            }
            Ok(Some(parsed))
        };
        let retention = duration(OPTION_RETENTION, MIN_RETENTION, Duration::MAX)?;
        if let Some(value) = options.get(OPTION_RETENTION)
            && !lake_enabled
        {
            // Expiry works on whole lake files; the WAL of a table that is never tiered is
            // kept until the table is dropped.
            return Err(invalid(
                OPTION_RETENTION,
                value,
                format!("needs `{OPTION_LAKE_ENABLED}=true`: rows expire from the lake"),
            ));
        }
        Ok(Self {
            lake_enabled,
            lake_freshness: duration(
                OPTION_LAKE_FRESHNESS,
                MIN_LAKE_FRESHNESS,
                MAX_LAKE_FRESHNESS,
            )?
            .unwrap_or(DEFAULT_LAKE_FRESHNESS),
            retention,
        })
    }
}

/// Parses a duration written as a number and a unit: `ms`, `s`, `m`, `h` or `d` (`30s`,
/// `1500ms`, `7d`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| "missing unit (ms, s, m, h or d)".to_owned())?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a whole number followed by a unit, like `30s`".to_owned())?;
    let unit_millis: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit `{other}`; use ms, s, m, h or d")),
    };
    number
        .checked_mul(unit_millis)
        .map(Duration::from_millis)
        .ok_or_else(|| "duration too long".to_owned())
}

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

    /// The table's options, parsed. Checked when the table was created, so this only fails
    /// for a record written by a newer version.
    pub fn options(&self) -> Result<TableOptions, DefinitionError> {
        TableOptions::parse(&self.descriptor.options)
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
    #[error("table option `{key}` = `{value}` is invalid: {reason}")]
    InvalidOption {
        key: String,
        value: String,
        reason: String,
    },
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
            if !crate::column_types::is_supported(field.data_type()) {
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
        TableOptions::parse(&self.options)?;
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
    fn options_are_parsed_and_checked() {
        let parse = |pairs: &[(&str, &str)]| {
            TableOptions::parse(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let defaults = parse(&[]).expect("no options");
        assert!(!defaults.lake_enabled);
        assert_eq!(defaults.lake_freshness, DEFAULT_LAKE_FRESHNESS);
        assert_eq!(defaults.retention, None);

        let set = parse(&[
            (OPTION_LAKE_ENABLED, "true"),
            (OPTION_LAKE_FRESHNESS, "1500ms"),
            (OPTION_RETENTION, "7d"),
        ])
        .expect("valid options");
        assert!(set.lake_enabled);
        assert_eq!(set.lake_freshness, Duration::from_millis(1500));
        assert_eq!(set.retention, Some(Duration::from_secs(7 * 86_400)));

        for (key, value) in [
            (OPTION_LAKE_ENABLED, "yes"),
            (OPTION_LAKE_FRESHNESS, "30"),
            (OPTION_LAKE_FRESHNESS, "10ms"),
            (OPTION_LAKE_FRESHNESS, "3y"),
            (OPTION_RETENTION, "-1d"),
            // Valid alone only for a lake table.
            (OPTION_RETENTION, "7d"),
        ] {
            let pairs = if key == OPTION_RETENTION && value != "7d" {
                vec![(OPTION_LAKE_ENABLED, "true"), (key, value)]
            } else {
                vec![(key, value)]
            };
            match parse(&pairs) {
                Err(DefinitionError::InvalidOption {
                    key: k, value: v, ..
                }) => {
                    assert_eq!((k.as_str(), v.as_str()), (key, value));
                }
                other => panic!("{key}={value} gave {other:?}"),
            }
        }
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("99999999999999999999d").is_err());
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
