//! The table model: what a table is, what makes a definition valid, and the system columns
//! every read carries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

use crate::bucket::is_bucketable;
use crate::column_defaults::{MAX_COLUMN_TEXT_BYTES, default_of, doc_of};
use crate::column_ids::{
    column_id, names_stable_until, numbered_afresh, position_of, with_added, without_column_id,
};
use crate::error::{ErrorKind, HasKind};
use crate::ids::{DatabaseId, SchemaId, TableId, TimestampMicros};
use crate::limits::{MAX_BUCKETS, MAX_COLUMNS, MAX_COMMENT_BYTES, MAX_NAME_LEN};
use crate::partition::auto::{
    AutoPartition, OPTION_PARTITION_AUTO, OPTION_PARTITION_PRECREATE, OPTION_PARTITION_RETAIN,
    OPTION_PARTITION_TIME_UNIT, TimeUnit as PartitionTimeUnit,
};
use crate::partition::{MAX_PARTITION_KEY_COLUMNS, Partitions, is_partition_type};

/// Column holding a row's bucket in reads and lake files.
pub const BUCKET_COLUMN: &str = "_bucket";
/// Column holding a row's offset within its bucket.
pub const OFFSET_COLUMN: &str = "_offset";
/// Column holding a row's commit time (microseconds, UTC).
pub const TIMESTAMP_COLUMN: &str = "_timestamp";
/// Column holding a primary-key table's change type in changelog reads: `+I`, `-U`, `+U`
/// or `-D`.
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";
/// Names users may not give their columns: the system columns.
pub const RESERVED_COLUMNS: [&str; 4] = [
    BUCKET_COLUMN,
    OFFSET_COLUMN,
    TIMESTAMP_COLUMN,
    CHANGE_TYPE_COLUMN,
];

/// Table option: `true` to tier the table into an Iceberg table in the same bucket.
pub const OPTION_LAKE_ENABLED: &str = "lake.enabled";
/// Table option: how often the compactor commits a lake snapshot (e.g. `30s`, `5m`). Also
/// how old the newest WAL rows may get before they are in the lake.
pub const OPTION_LAKE_FRESHNESS: &str = "lake.freshness";
/// Table option: how many snapshots the lake table keeps (each round adds one); older ones
/// leave its metadata, with their manifest lists, so the metadata stays small however long
/// the table lives. Time travel reaches that many rounds back.
pub const OPTION_LAKE_SNAPSHOTS_RETAINED: &str = "lake.snapshots.retained";
/// Default of [`OPTION_LAKE_SNAPSHOTS_RETAINED`]: 50 minutes of rounds at the default
/// freshness.
pub const DEFAULT_LAKE_SNAPSHOTS_RETAINED: usize = 100;
/// Most [`OPTION_LAKE_SNAPSHOTS_RETAINED`] allowed: the metadata file holds every kept
/// snapshot, and each round rewrites it.
pub const MAX_LAKE_SNAPSHOTS_RETAINED: usize = 10_000;
/// Table option: how long rows stay readable (e.g. `7d`). Older lake files are expired from
/// a lake table; older WAL chunks from a table that is not tiered.
pub const OPTION_RETENTION: &str = "retention";
/// Table option: how many bytes each bucket keeps at least (e.g. `10GiB`), of lake data files
/// in a lake table, of WAL chunks in a table that is not tiered: the oldest file or chunk
/// expires once the newer ones alone hold this much (as Kafka's `retention.bytes`).
pub const OPTION_RETENTION_BYTES: &str = "retention.bytes";

/// Table option of primary-key tables: how a row merges with its key's current row,
/// `last_row` (default), `first_row` or `versioned`.
pub const OPTION_MERGE_ENGINE: &str = "merge.engine";
/// Table option of `versioned` primary-key tables: the column whose value orders a key's
/// rows (non-null, an integer or a timestamp); a row not above the current one's is ignored.
pub const OPTION_MERGE_VERSION_COLUMN: &str = "merge.version-column";
/// Prefix of the table options of `aggregation` primary-key tables naming a column's
/// function: `merge.aggregate.<column>=sum` (see [`AggregateFn`]).
pub const OPTION_MERGE_AGGREGATE_PREFIX: &str = "merge.aggregate.";

/// Table options this version understands. Unknown keys are rejected rather than ignored,
/// so a typo never silently changes nothing.
pub const KNOWN_TABLE_OPTIONS: [&str; 11] = [
    OPTION_LAKE_ENABLED,
    OPTION_LAKE_FRESHNESS,
    OPTION_LAKE_SNAPSHOTS_RETAINED,
    OPTION_RETENTION,
    OPTION_RETENTION_BYTES,
    OPTION_MERGE_ENGINE,
    OPTION_MERGE_VERSION_COLUMN,
    OPTION_PARTITION_AUTO,
    OPTION_PARTITION_TIME_UNIT,
    OPTION_PARTITION_PRECREATE,
    OPTION_PARTITION_RETAIN,
];

/// The options `ALTER TABLE` may change ([`TableDescriptor::altered`]); the merge engine's
/// are fixed at creation, as are the schema, the keys and the bucket count.
pub const ALTERABLE_TABLE_OPTIONS: [&str; 7] = [
    OPTION_LAKE_ENABLED,
    OPTION_LAKE_FRESHNESS,
    OPTION_LAKE_SNAPSHOTS_RETAINED,
    OPTION_RETENTION,
    OPTION_RETENTION_BYTES,
    OPTION_PARTITION_PRECREATE,
    OPTION_PARTITION_RETAIN,
];

pub use crate::pk::merge::{AggregateFn, MergeEngine};

/// Default of [`OPTION_LAKE_FRESHNESS`].
pub const DEFAULT_LAKE_FRESHNESS: Duration = Duration::from_secs(30);
/// Bounds of [`OPTION_LAKE_FRESHNESS`]: shorter piles up snapshots and small files.
pub const MIN_LAKE_FRESHNESS: Duration = Duration::from_millis(100);
pub const MAX_LAKE_FRESHNESS: Duration = Duration::from_secs(24 * 3600);
/// Shortest [`OPTION_RETENTION`].
pub const MIN_RETENTION: Duration = Duration::from_secs(1);
/// Smallest [`OPTION_RETENTION_BYTES`]: one WAL chunk can be this large, and a smaller bound
/// would expire the chunk just written.
pub const MIN_RETENTION_BYTES: u64 = 1024 * 1024;

/// A table's options, parsed and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableOptions {
    pub lake_enabled: bool,
    pub lake_freshness: Duration,
    /// `None`: rows are kept forever.
    pub retention: Option<Duration>,
    /// `None`: no bound on a bucket's bytes (lake data files, or WAL chunks when not tiered).
    pub retention_bytes: Option<u64>,
    /// Snapshots the lake table keeps, 1..=[`MAX_LAKE_SNAPSHOTS_RETAINED`].
    pub lake_snapshots_retained: usize,
}

impl TableOptions {
    /// Parses the option map of a table; unknown keys and bad values are errors naming them.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Self, DefinitionError> {
        if let Some(key) = options.keys().find(|key| {
            !KNOWN_TABLE_OPTIONS.contains(&key.as_str())
                && !key.starts_with(OPTION_MERGE_AGGREGATE_PREFIX)
        }) {
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
        let retention_bytes = match options.get(OPTION_RETENTION_BYTES) {
            None => None,
            Some(value) => {
                let bytes = parse_bytes(value)
                    .map_err(|reason| invalid(OPTION_RETENTION_BYTES, value, reason))?;
                if bytes < MIN_RETENTION_BYTES {
                    return Err(invalid(
                        OPTION_RETENTION_BYTES,
                        value,
                        format!("must be at least {MIN_RETENTION_BYTES} bytes (1MiB)"),
                    ));
                }
                Some(bytes)
            }
        };
        let lake_snapshots_retained = match options.get(OPTION_LAKE_SNAPSHOTS_RETAINED) {
            None => DEFAULT_LAKE_SNAPSHOTS_RETAINED,
            Some(value) => match value.trim().parse::<usize>() {
                Ok(count) if (1..=MAX_LAKE_SNAPSHOTS_RETAINED).contains(&count) => count,
                _ => {
                    return Err(invalid(
                        OPTION_LAKE_SNAPSHOTS_RETAINED,
                        value,
                        format!("expected a count from 1 to {MAX_LAKE_SNAPSHOTS_RETAINED}"),
                    ));
                }
            },
        };
        Ok(Self {
            lake_snapshots_retained,
            lake_enabled,
            lake_freshness: duration(
                OPTION_LAKE_FRESHNESS,
                MIN_LAKE_FRESHNESS,
                MAX_LAKE_FRESHNESS,
            )?
            .unwrap_or(DEFAULT_LAKE_FRESHNESS),
            retention,
            retention_bytes,
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

/// Parses a size written as a whole number and an optional unit: `B` (the default), `KiB`,
/// `MiB`, `GiB`, `TiB` (powers of 1024) or `KB`, `MB`, `GB`, `TB` (powers of 1000).
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a whole number followed by a unit, like `10GiB`".to_owned())?;
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown unit `{other}`; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
            ));
        }
    };
    number
        .checked_mul(unit_bytes)
        .ok_or_else(|| "size too large".to_owned())
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
    /// Empty for log tables; the key columns of a primary-key table.
    pub primary_key: Vec<String>,
    pub comment: String,
    pub options: BTreeMap<String, String>,
}

/// What `ALTER TABLE` changes: options removed, then options set, the comment, columns
/// added at the end of the schema, and columns whose type widens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableAlteration {
    pub set_options: BTreeMap<String, String>,
    pub unset_options: Vec<String>,
    /// A new comment; `None` keeps the current one.
    pub comment: Option<String>,
    /// Columns added after the existing ones, in this order; each must be nullable (rows
    /// written before have no value for it). A table whose columns change gets a new schema
    /// id; rows written under an earlier schema read with nulls in the added columns.
    pub add_columns: Vec<FieldRef>,
    /// Columns whose type becomes wider: each names an existing column with its new type,
    /// which the old one must [`widen`](crate::column_types::widens) to (int32 to int64,
    /// float32 to float64, a decimal's precision). The column keeps its name, position,
    /// nullability and metadata. Rows written before read under the new type; appends that
    /// still send the old type are widened as they arrive. A bucket key column may widen too:
    /// buckets hash integers as 64-bit and decimals by unscaled value (Iceberg's bucket
    /// transform), so a key's rows keep their bucket.
    pub widen_columns: Vec<FieldRef>,
    /// Columns renamed, `(from, to)`, applied in order after the drops. A column keeps its
    /// [id](crate::column_ids), so rows written before read under the new name; appends that
    /// still send the old name are read as the new one. A bucket key column may be renamed
    /// (the key follows it).
    pub rename_columns: Vec<(String, String)>,
    /// Columns dropped, applied first. Rows written before keep their values (reads no longer
    /// return them; the lake table drops the column from its current schema and engines reading
    /// an older snapshot still see it); appends that still send a dropped column have it
    /// ignored. A column added later under the same name is a new column: older rows read
    /// null in it. Key columns cannot be dropped.
    pub drop_columns: Vec<String>,
}

impl TableDescriptor {
    /// This descriptor with `alteration` applied, checked as a new table's would be. Only
    /// [`ALTERABLE_TABLE_OPTIONS`] and the comment change; naming another option (a merge
    /// option, or one that does not exist) is an error, and nothing changes.
    pub fn altered(&self, alteration: &TableAlteration) -> Result<Self, DefinitionError> {
        let named = alteration
            .set_options
            .keys()
            .chain(&alteration.unset_options);
        for key in named {
            if !ALTERABLE_TABLE_OPTIONS.contains(&key.as_str()) {
                let known = KNOWN_TABLE_OPTIONS.contains(&key.as_str())
                    || key.starts_with(OPTION_MERGE_AGGREGATE_PREFIX);
                return Err(match known {
                    true => DefinitionError::FixedOption { key: key.clone() },
                    false => DefinitionError::UnknownOption { key: key.clone() },
                });
            }
        }
        let mut next = self.clone();
        for key in &alteration.unset_options {
            next.options.remove(key);
        }
        next.options.extend(alteration.set_options.clone());
        if let Some(comment) = &alteration.comment {
            next.comment = comment.clone();
        }
        if !alteration.drop_columns.is_empty() || !alteration.rename_columns.is_empty() {
            next.schema = next.renamed_and_dropped(alteration)?;
        }
        if !alteration.add_columns.is_empty() {
            self.check_columns_can_be_added(&alteration.add_columns)?;
            next.schema = with_added(&next.schema, &alteration.add_columns);
        }
        if !alteration.widen_columns.is_empty() {
            next.schema = self.widened_schema(&next.schema, &alteration.widen_columns)?;
        }
        next.validate()?;
        Ok(next)
    }

    /// This descriptor's schema with `alteration`'s columns dropped, then its renames made
    /// (the bucket key follows a renamed column), if this table may make them.
    fn renamed_and_dropped(
        &mut self,
        alteration: &TableAlteration,
    ) -> Result<SchemaRef, DefinitionError> {
        let mut fields: Vec<FieldRef> = self.schema.fields().iter().cloned().collect();
        let position = |fields: &[FieldRef], name: &str| {
            fields
                .iter()
                .position(|field| field.name() == name)
                .ok_or_else(|| DefinitionError::UnknownColumn {
                    column: name.to_owned(),
                })
        };
        for name in &alteration.drop_columns {
            let role = self.fixed_role(name).or_else(|| {
                self.bucket_key
                    .contains(name)
                    .then_some("in the bucket key")
            });
            if let Some(role) = role {
                return Err(DefinitionError::FixedColumn {
                    column: name.clone(),
                    role,
                    change: "dropped",
                });
            }
            fields.remove(position(&fields, name)?);
        }
        for (from, to) in &alteration.rename_columns {
            if let Some(role) = self.fixed_role(from) {
                return Err(DefinitionError::FixedColumn {
                    column: from.clone(),
                    role,
                    change: "renamed",
                });
            }
            let at = position(&fields, from)?;
            validate_name("column", to)?;
            if fields.iter().any(|field| field.name() == to) {
                return Err(DefinitionError::DuplicateColumn { column: to.clone() });
            }
            fields[at] = Arc::new(fields[at].as_ref().clone().with_name(to.clone()));
            for key in &mut self.bucket_key {
                if key == from {
                    key.clone_from(to);
                }
            }
        }
        Ok(Arc::new(Schema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        )))
    }

    /// `schema` with each of `widened`'s columns given its new type, if every change is a
    /// widening this table may make.
    fn widened_schema(
        &self,
        schema: &SchemaRef,
        widened: &[FieldRef],
    ) -> Result<SchemaRef, DefinitionError> {
        let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
        for change in widened {
            let name = change.name();
            // A key's bytes hold its columns at their types: a wider one would make another
            // key of the same value.
            if self.primary_key.contains(name) {
                return Err(DefinitionError::FixedColumn {
                    column: name.clone(),
                    role: "in the primary key",
                    change: "widened",
                });
            }
            let Some(position) = fields.iter().position(|field| field.name() == name) else {
                return Err(DefinitionError::UnknownColumn {
                    column: name.clone(),
                });
            };
            let current = fields[position].data_type();
            if !crate::column_types::widens(current, change.data_type()) {
                return Err(DefinitionError::NotAWidening {
                    column: name.clone(),
                    from: current.to_string(),
                    to: change.data_type().to_string(),
                });
            }
            fields[position] = Arc::new(
                fields[position]
                    .as_ref()
                    .clone()
                    .with_data_type(change.data_type().clone()),
            );
        }
        Ok(Arc::new(Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        )))
    }

    /// Why `added` cannot be added to this table, if it cannot.
    /// The columns themselves (names, types, duplicates) are checked with the whole schema.
    fn check_columns_can_be_added(&self, added: &[FieldRef]) -> Result<(), DefinitionError> {
        if let Some(field) = added.iter().find(|field| !field.is_nullable()) {
            return Err(DefinitionError::AddedColumnNotNullable {
                column: field.name().clone(),
            });
        }
        Ok(())
    }

    /// Why column `name` keeps its name and stays, if it must: the partition key or the
    /// primary key names it, or a merge option does (renaming it would leave the option
    /// naming nothing).
    fn fixed_role(&self, name: &str) -> Option<&'static str> {
        // A partition's name holds the column's values: renamed or dropped, rows would have
        // no partition.
        if self.partition_key.iter().any(|key| key == name) {
            return Some("in the partition key");
        }
        if self.primary_key.iter().any(|key| key == name) {
            return Some("in the primary key");
        }
        if self
            .options
            .get(OPTION_MERGE_VERSION_COLUMN)
            .map(String::as_str)
            == Some(name)
        {
            return Some("the `merge.version-column`");
        }
        let aggregated = format!("{OPTION_MERGE_AGGREGATE_PREFIX}{name}");
        self.options
            .contains_key(&aggregated)
            .then_some("named by a `merge.aggregate.` option")
    }
}

/// A table as the catalog knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TableInfo {
    pub id: TableId,
    pub database: String,
    pub database_id: DatabaseId,
    pub name: String,
    /// The id of `descriptor.schema`; each change of the columns gets the next one.
    pub schema_id: SchemaId,
    pub descriptor: TableDescriptor,
    pub created_at: TimestampMicros,
    /// The schemas before the current one, by id.
    pub previous_schemas: SchemaHistory,
    /// A partitioned table's live partitions; empty for a table without a partition key.
    pub partitions: Partitions,
}

/// What a column name of an earlier schema is now ([`TableInfo::former_column`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormerColumn {
    /// Renamed: the position of the column in the current schema.
    RenamedTo(usize),
    Dropped,
}

/// The schemas a table had before its current one, by id: chunks written under an earlier
/// schema are decoded with it. Empty for a table whose columns never changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchemaHistory(Arc<BTreeMap<SchemaId, SchemaRef>>);

impl SchemaHistory {
    pub fn new(schemas: BTreeMap<SchemaId, SchemaRef>) -> Self {
        Self(Arc::new(schemas))
    }

    /// This history with `schema` as version `id` added.
    pub fn with(&self, id: SchemaId, schema: SchemaRef) -> Self {
        let mut schemas = (*self.0).clone();
        schemas.insert(id, schema);
        Self::new(schemas)
    }

    pub fn iter(&self) -> impl Iterator<Item = (SchemaId, &SchemaRef)> {
        self.0.iter().map(|(id, schema)| (*id, schema))
    }
}

impl TableInfo {
    /// The schema of version `id`: the current one or an earlier one; `None` for an id the
    /// table never had.
    pub fn schema_of(&self, id: SchemaId) -> Option<&SchemaRef> {
        if id == self.schema_id {
            return Some(&self.descriptor.schema);
        }
        self.previous_schemas.0.get(&id)
    }

    /// Every schema the table has had, by id, the current one last.
    pub fn schemas(&self) -> impl Iterator<Item = (SchemaId, &SchemaRef)> {
        self.previous_schemas
            .iter()
            .chain([(self.schema_id, &self.descriptor.schema)])
    }

    /// The schema whose column names data written without a schema of its own (lake files
    /// tiered before columns could be renamed or dropped) uses: the newest up to which no
    /// column was renamed or dropped ([`crate::column_ids::names_stable_until`]).
    pub fn schema_before_renames(&self) -> SchemaId {
        names_stable_until(self.schemas()).unwrap_or(self.schema_id)
    }

    /// What an append's column `name`, which the current schema lacks, stands for, as the
    /// newest earlier schema that had such a column says; `None` if none had.
    pub fn former_column(&self, name: &str) -> Option<FormerColumn> {
        let newest = self.previous_schemas.0.values().rev();
        let field = newest
            .filter_map(|old| old.field_with_name(name).ok())
            .next()?;
        Some(
            match column_id(field).and_then(|id| position_of(&self.descriptor.schema, id)) {
                Some(position) => FormerColumn::RenamedTo(position),
                None => FormerColumn::Dropped,
            },
        )
    }

    /// Indices of the bucket key columns in the schema (validated at creation).
    pub fn bucket_key_indices(&self) -> Vec<usize> {
        self.descriptor
            .bucket_key
            .iter()
            .filter_map(|name| self.descriptor.schema.index_of(name).ok())
            .collect()
    }

    /// Whether the table has a primary key (is written with upserts and deletes).
    pub fn is_primary_key_table(&self) -> bool {
        !self.descriptor.primary_key.is_empty()
    }

    /// Indices of the columns of the primary key's encoding ([`crate::pk::key`]), in key
    /// order: the bucket key's columns, then the rest of the primary key.
    pub fn key_encoding_indices(&self) -> Vec<usize> {
        let descriptor = &self.descriptor;
        descriptor
            .bucket_key
            .iter()
            .chain(
                descriptor
                    .primary_key
                    .iter()
                    .filter(|column| !descriptor.bucket_key.contains(column)),
            )
            .filter_map(|name| descriptor.schema.index_of(name).ok())
            .collect()
    }

    /// The merge engine of a primary-key table. Checked when the table was created.
    pub fn merge_engine(&self) -> Result<MergeEngine, DefinitionError> {
        MergeEngine::parse(
            &self.descriptor.options,
            &self.descriptor.schema,
            &self.descriptor.primary_key,
        )
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
    #[error("table comment of {len} bytes is longer than the limit of {limit}")]
    CommentTooLong { len: usize, limit: usize },
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
    #[error(
        "column `{column}` has type {data_type}, which the lake cannot hold ({reason}); \
         change the type or create the table without `lake.enabled`"
    )]
    NotInLake {
        column: String,
        data_type: String,
        reason: &'static str,
    },
    #[error("bucket count {count} is out of range: must be 1..={limit}")]
    BucketCount { count: u32, limit: u32 },
    #[error("bucket key column `{column}` is not a column of the table")]
    UnknownBucketKey { column: String },
    #[error("bucket key column `{column}` has type {data_type}, which cannot be bucketed")]
    UnbucketableKey { column: String, data_type: String },
    #[error("bucket key lists column `{column}` twice")]
    DuplicateBucketKey { column: String },
    #[error("partition key column `{column}` is not a column of the table")]
    UnknownPartitionKey { column: String },
    #[error("partition key lists column `{column}` twice")]
    DuplicatePartitionKey { column: String },
    #[error(
        "partition key column `{column}` has type {data_type}; partition keys are integers, \
         strings, dates or booleans"
    )]
    UnsupportedPartitionKeyType { column: String, data_type: String },
    #[error("partition key column `{column}` is nullable; partition columns must be not null")]
    NullablePartitionKey { column: String },
    #[error("a partition key of {count} columns is more than the limit of {limit}")]
    TooManyPartitionKeyColumns { count: usize, limit: usize },
    #[error(
        "partition key column `{column}` is not in the primary key {primary_key:?}: a key's \
         rows must all be in one partition"
    )]
    PartitionKeyOutsidePrimaryKey {
        column: String,
        primary_key: Vec<String>,
    },
    #[error("partitioned tables cannot {what} yet (partition key {columns:?})")]
    PartitionedTableUnsupported {
        what: &'static str,
        columns: Vec<String>,
    },
    #[error(
        "added column `{column}` is not nullable: rows written before have no value for it, \
         so an added column must be nullable"
    )]
    AddedColumnNotNullable { column: String },
    #[error("column `{column}` is not a column of the table")]
    UnknownColumn { column: String },
    #[error("column `{column}` is refused: {reason}")]
    InvalidColumnText { column: String, reason: String },
    #[error("column `{column}` is {role}, so it cannot be {change}")]
    FixedColumn {
        column: String,
        role: &'static str,
        change: &'static str,
    },
    #[error(
        "column `{column}` cannot change from {from} to {to}: a type may only widen (int32 to \
         int64, float32 to float64, a decimal's precision at the same scale)"
    )]
    NotAWidening {
        column: String,
        from: String,
        to: String,
    },

    #[error("primary-key column `{column}` is not a column of the table")]
    UnknownPrimaryKey { column: String },
    #[error("primary key lists column `{column}` twice")]
    DuplicatePrimaryKey { column: String },
    #[error("primary-key column `{column}` is nullable; key columns must be declared not null")]
    NullablePrimaryKey { column: String },
    #[error(
        "primary-key column `{column}` has type {data_type}; keys must be integers, strings, \
         binaries, booleans, dates, times, timestamps or decimals"
    )]
    UnsupportedKeyType { column: String, data_type: String },
    #[error(
        "column `{column}` has type {data_type}, which primary-key tables do not support yet \
         (nested types)"
    )]
    UnsupportedPrimaryKeyTableType { column: String, data_type: String },
    #[error(
        "bucket key column `{column}` is not in the primary key {primary_key:?}: a key's rows \
         must all go to one bucket"
    )]
    BucketKeyOutsidePrimaryKey {
        column: String,
        primary_key: Vec<String>,
    },
    #[error("{what} only applies to primary-key tables; this table has no primary key")]
    NotAPrimaryKeyTable { what: String },
    #[error(
        "`{option}` is not supported for primary-key tables: their rows are the current state of \
         each key, which must not expire"
    )]
    PrimaryKeyRetentionUnsupported { option: &'static str },
    #[error("unknown table option `{key}`")]
    UnknownOption { key: String },
    #[error(
        "table option `{key}` is fixed when the table is created; ALTER TABLE changes \
         {alterable} and the comment",
        alterable = ALTERABLE_TABLE_OPTIONS.map(|option| format!("`{option}`")).join(", ")
    )]
    FixedOption { key: String },
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
        if self.comment.len() > MAX_COMMENT_BYTES {
            return Err(DefinitionError::CommentTooLong {
                len: self.comment.len(),
                limit: MAX_COMMENT_BYTES,
            });
        }
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
            let invalid = |reason: String| DefinitionError::InvalidColumnText {
                column: field.name().clone(),
                reason,
            };
            if let Some(doc) = doc_of(field)
                && doc.len() > MAX_COLUMN_TEXT_BYTES
            {
                return Err(invalid(format!(
                    "its doc is {} bytes, more than the limit of {MAX_COLUMN_TEXT_BYTES}",
                    doc.len()
                )));
            }
            default_of(field).map_err(|reason| invalid(format!("its default: {reason}")))?;
        }
        if self.bucket_count == 0 || self.bucket_count > MAX_BUCKETS {
            return Err(DefinitionError::BucketCount {
                count: self.bucket_count,
                limit: MAX_BUCKETS,
            });
        }
        // The primary key first: a primary-key table's bucket key defaults to it, and a bad
        // key should be named as such, not as a bad bucket key.
        let options = TableOptions::parse(&self.options)?;
        if options.lake_enabled
            && let Some((column, data_type, reason)) =
                crate::column_types::first_not_in_lake(&self.schema)
        {
            return Err(DefinitionError::NotInLake {
                column,
                data_type: data_type.to_string(),
                reason,
            });
        }
        self.validate_primary_key(&options)?;
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
        self.validate_partition_key(&options)?;
        Ok(())
    }

    fn validate_partition_key(&self, options: &TableOptions) -> Result<(), DefinitionError> {
        let columns = &self.partition_key;
        let auto = AutoPartition::parse(&self.options).map_err(|(key, value, reason)| {
            DefinitionError::InvalidOption {
                key: key.to_owned(),
                value,
                reason,
            }
        })?;
        if columns.is_empty() {
            return match auto {
                Some(_) => Err(DefinitionError::InvalidOption {
                    key: OPTION_PARTITION_AUTO.to_owned(),
                    value: "true".to_owned(),
                    reason: "the table has no partition key".to_owned(),
                }),
                None => Ok(()),
            };
        }
        if columns.len() > MAX_PARTITION_KEY_COLUMNS {
            return Err(DefinitionError::TooManyPartitionKeyColumns {
                count: columns.len(),
                limit: MAX_PARTITION_KEY_COLUMNS,
            });
        }
        for (i, column) in columns.iter().enumerate() {
            let field = self.schema.field_with_name(column).map_err(|_| {
                DefinitionError::UnknownPartitionKey {
                    column: column.clone(),
                }
            })?;
            if columns[..i].contains(column) {
                return Err(DefinitionError::DuplicatePartitionKey {
                    column: column.clone(),
                });
            }
            if !is_partition_type(field.data_type()) {
                return Err(DefinitionError::UnsupportedPartitionKeyType {
                    column: column.clone(),
                    data_type: field.data_type().to_string(),
                });
            }
            if field.is_nullable() {
                return Err(DefinitionError::NullablePartitionKey {
                    column: column.clone(),
                });
            }
        }
        let unsupported = |what| DefinitionError::PartitionedTableUnsupported {
            what,
            columns: columns.clone(),
        };
        // A key's rows must all be in one partition, so the key holds the partition's values.
        if let Some(column) = columns
            .iter()
            .find(|column| !self.primary_key.is_empty() && !self.primary_key.contains(column))
        {
            return Err(DefinitionError::PartitionKeyOutsidePrimaryKey {
                column: column.clone(),
                primary_key: self.primary_key.clone(),
            });
        }
        if options.lake_enabled {
            return Err(unsupported("tier into the lake (`lake.enabled`)"));
        }
        if let Some(auto) = auto {
            let refuse = |reason: String| DefinitionError::InvalidOption {
                key: OPTION_PARTITION_AUTO.to_owned(),
                value: "true".to_owned(),
                reason,
            };
            let [column] = columns.as_slice() else {
                return Err(refuse(format!(
                    "auto-partitioning needs a partition key of one column, not {columns:?}"
                )));
            };
            let data_type = self
                .schema
                .field_with_name(column)
                .map(|field| field.data_type().clone())
                .unwrap_or(DataType::Null);
            let fits = match data_type {
                DataType::Utf8 | DataType::LargeUtf8 => true,
                DataType::Date32 => auto.unit == PartitionTimeUnit::Day,
                _ => false,
            };
            if !fits {
                return Err(refuse(format!(
                    "partition column `{column}` is {data_type}: auto-partitioning needs a \
                     string column (or a date column for `day` partitions)"
                )));
            }
        }
        Ok(())
    }

    /// The definition as created: a primary-key table without a bucket key is bucketed by
    /// its primary key less the partition key (the key's columns that vary within a
    /// partition; all of them when it has no others).
    /// Its columns are numbered 1, 2, ... ([`crate::column_ids`]).
    pub fn with_defaults(mut self) -> Self {
        if self.bucket_key.is_empty() {
            let within: Vec<String> = self
                .primary_key
                .iter()
                .filter(|column| !self.partition_key.contains(column))
                .cloned()
                .collect();
            self.bucket_key = match within.is_empty() {
                true => self.primary_key.clone(),
                false => within,
            };
        }
        self.schema = numbered_afresh(&self.schema);
        self
    }

    fn validate_primary_key(&self, options: &TableOptions) -> Result<(), DefinitionError> {
        let has_merge_options = self.options.keys().find(|key| {
            [OPTION_MERGE_ENGINE, OPTION_MERGE_VERSION_COLUMN].contains(&key.as_str())
                || key.starts_with(OPTION_MERGE_AGGREGATE_PREFIX)
        });
        if self.primary_key.is_empty() {
            return match has_merge_options {
                Some(key) => Err(DefinitionError::NotAPrimaryKeyTable {
                    what: format!("table option `{key}`"),
                }),
                None => Ok(()),
            };
        }
        for (i, column) in self.primary_key.iter().enumerate() {
            let field = self.schema.field_with_name(column).map_err(|_| {
                DefinitionError::UnknownPrimaryKey {
                    column: column.clone(),
                }
            })?;
            if self.primary_key[..i].contains(column) {
                return Err(DefinitionError::DuplicatePrimaryKey {
                    column: column.clone(),
                });
            }
            if field.is_nullable() {
                return Err(DefinitionError::NullablePrimaryKey {
                    column: column.clone(),
                });
            }
            if !crate::pk::is_key_type(field.data_type()) {
                return Err(DefinitionError::UnsupportedKeyType {
                    column: column.clone(),
                    data_type: field.data_type().to_string(),
                });
            }
        }
        if let Some(field) = self
            .schema
            .fields()
            .iter()
            .find(|field| !crate::pk::is_row_type(field.data_type()))
        {
            return Err(DefinitionError::UnsupportedPrimaryKeyTableType {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        }
        if let Some(column) = self
            .bucket_key
            .iter()
            .find(|column| !self.primary_key.contains(column))
        {
            return Err(DefinitionError::BucketKeyOutsidePrimaryKey {
                column: column.clone(),
                primary_key: self.primary_key.clone(),
            });
        }
        if options.retention.is_some() {
            return Err(DefinitionError::PrimaryKeyRetentionUnsupported {
                option: OPTION_RETENTION,
            });
        }
        if options.retention_bytes.is_some() {
            return Err(DefinitionError::PrimaryKeyRetentionUnsupported {
                option: OPTION_RETENTION_BYTES,
            });
        }
        MergeEngine::parse(&self.options, &self.schema, &self.primary_key)?;
        Ok(())
    }
}

/// The schema of fetched batches: the projected table columns (without their
/// [ids](crate::column_ids)), then the system columns.
pub fn read_schema(table_schema: &Schema, projection: &[usize]) -> SchemaRef {
    let mut fields: Vec<Field> = projection
        .iter()
        .map(|i| without_column_id(table_schema.field(*i)))
        .collect();
    fields.extend(system_fields());
    Arc::new(Schema::new(fields))
}

/// The schema of a primary-key table's changelog reads: [`read_schema`], then
/// [`CHANGE_TYPE_COLUMN`].
pub fn changelog_read_schema(table_schema: &Schema, projection: &[usize]) -> SchemaRef {
    let mut fields: Vec<Field> = read_schema(table_schema, projection)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(CHANGE_TYPE_COLUMN, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column_ids::{ColumnId, last_column_id};

    fn table_info(descriptor: TableDescriptor) -> TableInfo {
        TableInfo {
            id: TableId(1),
            database: "d".into(),
            database_id: DatabaseId(1),
            name: "t".into(),
            schema_id: SchemaId(0),
            descriptor,
            created_at: TimestampMicros(0),
            previous_schemas: Default::default(),
            partitions: Default::default(),
        }
    }

    fn descriptor(fields: Vec<Field>) -> TableDescriptor {
        TableDescriptor {
            schema: Arc::new(Schema::new(fields)),
            bucket_count: 4,
            bucket_key: vec![],
            partition_key: vec![],
            primary_key: vec![],
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
            (OPTION_RETENTION_BYTES, "10 parsecs"),
            (OPTION_RETENTION_BYTES, "1KiB"),
            (OPTION_RETENTION_BYTES, "99999999999TiB"),
        ] {
            let pairs = vec![(key, value)];
            match parse(&pairs) {
                Err(DefinitionError::InvalidOption {
                    key: k, value: v, ..
                }) => {
                    assert_eq!((k.as_str(), v.as_str()), (key, value));
                }
                other => panic!("{key}={value} gave {other:?}"),
            }
        }
        // Retention of a table that is not tiered expires its WAL.
        let wal = parse(&[(OPTION_RETENTION, "7d"), (OPTION_RETENTION_BYTES, "10GiB")])
            .expect("WAL retention");
        assert_eq!(wal.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(wal.retention_bytes, Some(10 << 30));
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("3MB"), Ok(3_000_000));
        assert_eq!(parse_bytes("2 MiB"), Ok(2 << 20));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn a_lake_table_refuses_a_column_the_lake_cannot_hold_at_create_and_alter() {
        let plain = descriptor(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("count", DataType::UInt64, true),
        ]);
        assert_eq!(plain.validate(), Ok(()));
        let mut lake = plain.clone();
        lake.options
            .insert(OPTION_LAKE_ENABLED.to_owned(), "true".to_owned());
        let refused = lake.validate().expect_err("uint64 is refused in the lake");
        assert!(
            matches!(&refused, DefinitionError::NotInLake { column, .. } if column == "count"),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("decimal(20, 0)"), "{refused}");
        // Turning the lake on later is refused the same way, and changes nothing.
        let alteration = TableAlteration {
            set_options: BTreeMap::from([(OPTION_LAKE_ENABLED.to_owned(), "true".to_owned())]),
            ..TableAlteration::default()
        };
        assert_eq!(plain.altered(&alteration), Err(refused));
    }

    #[test]
    fn columns_are_added_nullable_at_the_end_and_only_where_supported() {
        let table = descriptor(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        let add = |fields: Vec<Field>| TableAlteration {
            add_columns: fields.into_iter().map(Arc::new).collect(),
            ..TableAlteration::default()
        };
        let added = table
            .altered(&add(vec![
                Field::new("score", DataType::Float64, true),
                Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
            ]))
            .expect("nullable columns are added");
        let names: Vec<&str> = added
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "name", "score", "tags"]);
        assert_eq!(added.schema.field(0), table.schema.field(0));

        let refused = |fields: Vec<Field>, on: &TableDescriptor| {
            on.altered(&add(fields)).expect_err("refused")
        };
        assert_eq!(
            refused(vec![Field::new("score", DataType::Float64, false)], &table),
            DefinitionError::AddedColumnNotNullable {
                column: "score".to_owned()
            }
        );
        assert_eq!(
            refused(vec![Field::new("name", DataType::Utf8, true)], &table),
            DefinitionError::DuplicateColumn {
                column: "name".to_owned()
            }
        );
        assert_eq!(
            refused(vec![Field::new("_offset", DataType::Int64, true)], &table),
            DefinitionError::ReservedColumn {
                column: "_offset".to_owned()
            }
        );
        let mut keyed = table.clone();
        keyed.primary_key = vec!["id".to_owned()];
        let keyed = keyed.with_defaults();
        // A primary-key table takes flat columns; nested ones it cannot hold at all.
        assert!(
            keyed
                .altered(&add(vec![Field::new("score", DataType::Float64, true)]))
                .is_ok()
        );
        assert!(matches!(
            refused(
                vec![Field::new(
                    "tags",
                    DataType::new_list(DataType::Utf8, true),
                    true
                )],
                &keyed
            ),
            DefinitionError::UnsupportedPrimaryKeyTableType { .. }
        ));
        // A lake table takes columns the lake can hold, and refuses one it cannot.
        let mut lake = table.clone();
        lake.options
            .insert(OPTION_LAKE_ENABLED.to_owned(), "true".to_owned());
        assert!(
            lake.altered(&add(vec![Field::new("score", DataType::Float64, true)]))
                .is_ok()
        );
        assert!(matches!(
            refused(vec![Field::new("count", DataType::UInt64, true)], &lake),
            DefinitionError::NotInLake { .. }
        ));
    }

    #[test]
    fn columns_are_renamed_and_dropped_keeping_ids_and_never_reusing_them() {
        let mut table = descriptor(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]);
        table.bucket_key = vec!["id".to_owned()];
        let table = table.with_defaults();
        let ids = |d: &TableDescriptor| -> Vec<(String, u32)> {
            d.schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), column_id(f).map_or(0, |id| id.0)))
                .collect()
        };
        assert_eq!(
            ids(&table),
            [("id".into(), 1), ("name".into(), 2), ("score".into(), 3)]
        );
        let alter = |drop: &[&str], rename: &[(&str, &str)], add: &[&str]| TableAlteration {
            drop_columns: drop.iter().map(|c| (*c).to_owned()).collect(),
            rename_columns: rename
                .iter()
                .map(|(from, to)| ((*from).to_owned(), (*to).to_owned()))
                .collect(),
            add_columns: add
                .iter()
                .map(|c| Arc::new(Field::new(*c, DataType::Utf8, true)))
                .collect(),
            ..TableAlteration::default()
        };
        // Drops first, then renames, then adds: `name` goes, `score` takes a new name, and a
        // new `name` is a new column with a new id.
        let changed = table
            .altered(&alter(&["name"], &[("score", "points")], &["name"]))
            .expect("altered");
        assert_eq!(
            ids(&changed),
            [("id".into(), 1), ("points".into(), 3), ("name".into(), 4)]
        );
        assert_eq!(last_column_id(&changed.schema), ColumnId(4));
        // Dropping the newest column does not free its id.
        let dropped = changed
            .altered(&alter(&["name"], &[], &[]))
            .expect("dropped");
        let again = dropped
            .altered(&alter(&[], &[], &["extra"]))
            .expect("added");
        assert_eq!(ids(&again)[2], ("extra".into(), 5));
        // The bucket key follows a rename and cannot be dropped.
        let renamed = table
            .altered(&alter(&[], &[("id", "key")], &[]))
            .expect("renamed");
        assert_eq!(renamed.bucket_key, ["key"]);
        assert_eq!(
            table.altered(&alter(&["id"], &[], &[])),
            Err(DefinitionError::FixedColumn {
                column: "id".to_owned(),
                role: "in the bucket key",
                change: "dropped",
            })
        );
        assert_eq!(
            table.altered(&alter(&["nope"], &[], &[])),
            Err(DefinitionError::UnknownColumn {
                column: "nope".to_owned()
            })
        );
        assert_eq!(
            table.altered(&alter(&[], &[("name", "score")], &[])),
            Err(DefinitionError::DuplicateColumn {
                column: "score".to_owned()
            })
        );
        assert!(matches!(
            table.altered(&alter(&[], &[("name", "_offset")], &[])),
            Err(DefinitionError::ReservedColumn { .. })
        ));
        assert!(matches!(
            table.altered(&alter(&[], &[("name", "bad name")], &[])),
            Err(DefinitionError::InvalidName { .. })
        ));
        assert_eq!(
            table.altered(&alter(&["id", "name", "score"], &[], &[])),
            Err(DefinitionError::FixedColumn {
                column: "id".to_owned(),
                role: "in the bucket key",
                change: "dropped",
            })
        );
        // A primary-key table renames and drops the other columns, not its key's nor those
        // its merge options name.
        let mut keyed = table.clone();
        keyed.primary_key = vec!["id".to_owned()];
        keyed.options = BTreeMap::from([
            (OPTION_MERGE_ENGINE.to_owned(), "aggregation".to_owned()),
            (
                format!("{OPTION_MERGE_AGGREGATE_PREFIX}score"),
                "sum".to_owned(),
            ),
        ]);
        keyed.validate().expect("a valid aggregation table");
        let renamed = keyed
            .altered(&alter(&[], &[("name", "label")], &["extra"]))
            .expect("renamed");
        assert_eq!(
            ids(&renamed),
            [
                ("id".into(), 1),
                ("label".into(), 2),
                ("score".into(), 3),
                ("extra".into(), 4)
            ]
        );
        for (change, refused) in [
            (
                alter(&["id"], &[], &[]),
                ("id", "in the primary key", "dropped"),
            ),
            (
                alter(&[], &[("id", "key")], &[]),
                ("id", "in the primary key", "renamed"),
            ),
            (
                alter(&["score"], &[], &[]),
                ("score", "named by a `merge.aggregate.` option", "dropped"),
            ),
        ] {
            assert_eq!(
                keyed.altered(&change),
                Err(DefinitionError::FixedColumn {
                    column: refused.0.to_owned(),
                    role: refused.1,
                    change: refused.2,
                })
            );
        }
    }

    #[test]
    fn an_append_column_of_an_earlier_schema_is_found_renamed_or_dropped() {
        let table = descriptor(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ])
        .with_defaults();
        let altered = table
            .altered(&TableAlteration {
                drop_columns: vec!["b".to_owned()],
                rename_columns: vec![("a".to_owned(), "z".to_owned())],
                ..TableAlteration::default()
            })
            .expect("altered");
        let info = TableInfo {
            schema_id: SchemaId(1),
            descriptor: altered,
            previous_schemas: SchemaHistory::default().with(SchemaId(0), table.schema.clone()),
            partitions: Default::default(),
            ..table_info(table.clone())
        };
        assert_eq!(info.former_column("a"), Some(FormerColumn::RenamedTo(0)));
        assert_eq!(info.former_column("b"), Some(FormerColumn::Dropped));
        assert_eq!(info.former_column("c"), None);
        assert_eq!(info.schema_before_renames(), SchemaId(0));
        assert_eq!(info.schemas().count(), 2);
    }

    #[test]
    fn columns_widen_in_place_and_only_to_wider_types() {
        let mut table = descriptor(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("score", DataType::Float32, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("name", DataType::Utf8, true),
        ]);
        table.bucket_key = vec!["id".to_owned()];
        let widen = |fields: Vec<Field>| TableAlteration {
            widen_columns: fields.into_iter().map(Arc::new).collect(),
            ..TableAlteration::default()
        };
        let widened = table
            .altered(&widen(vec![
                // The nullability asked for is ignored: the column keeps its own.
                Field::new("id", DataType::Int64, true),
                Field::new("score", DataType::Float64, true),
                Field::new("price", DataType::Decimal128(18, 2), true),
            ]))
            .expect("widenings are allowed, the bucket key's too");
        let fields: Vec<(String, DataType, bool)> = widened
            .schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("id".to_owned(), DataType::Int64, false),
                ("score".to_owned(), DataType::Float64, true),
                ("price".to_owned(), DataType::Decimal128(18, 2), true),
                ("name".to_owned(), DataType::Utf8, true),
            ]
        );
        let refused = |field: Field| {
            table
                .altered(&widen(vec![field]))
                .expect_err("not a widening")
        };
        for (field, from) in [
            (Field::new("id", DataType::Int16, false), "Int32"),
            (Field::new("id", DataType::Int32, false), "Int32"),
            (Field::new("score", DataType::Int64, true), "Float32"),
            (
                Field::new("price", DataType::Decimal128(18, 3), true),
                "Decimal128(10, 2)",
            ),
            (Field::new("name", DataType::LargeUtf8, true), "Utf8"),
        ] {
            let to = field.data_type().to_string();
            let column = field.name().clone();
            assert_eq!(
                refused(field),
                DefinitionError::NotAWidening {
                    column,
                    from: from.to_owned(),
                    to
                }
            );
        }
        assert_eq!(
            refused(Field::new("missing", DataType::Int64, true)),
            DefinitionError::UnknownColumn {
                column: "missing".to_owned()
            }
        );
        let mut keyed = table.clone();
        keyed.primary_key = vec!["id".to_owned()];
        let keyed = keyed.with_defaults();
        assert!(
            keyed
                .altered(&widen(vec![Field::new("score", DataType::Float64, true)]))
                .is_ok()
        );
        assert_eq!(
            keyed.altered(&widen(vec![Field::new("id", DataType::Int64, false)])),
            Err(DefinitionError::FixedColumn {
                column: "id".to_owned(),
                role: "in the primary key",
                change: "widened",
            })
        );
    }

    #[test]
    fn widening_keeps_every_value_and_the_bucket_of_every_key() {
        use arrow_array::{Array, ArrayRef, Int32Array, Int64Array};
        let narrow: ArrayRef = Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(7)]));
        let wide = crate::column_types::widen(&narrow, &DataType::Int64).expect("widens");
        let wide = wide.as_any().downcast_ref::<Int64Array>().expect("int64");
        assert_eq!(
            wide,
            &Int64Array::from(vec![Some(i32::MIN as i64), None, Some(7)])
        );
        assert!(crate::column_types::widen(&narrow, &DataType::Int16).is_none());
        // Buckets hash integers as 64-bit: a widened key keeps its bucket.
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int32, true)]));
        let batch = arrow_array::RecordBatch::try_new(schema, vec![narrow.clone()]).expect("batch");
        let wide_batch = arrow_array::RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
            vec![Arc::new(wide.clone())],
        )
        .expect("batch");
        assert_eq!(
            crate::bucket::bucket_rows(&batch, &[0], 16),
            crate::bucket::bucket_rows(&wide_batch, &[0], 16)
        );
    }

    #[test]
    fn primary_keys_are_checked_and_default_the_bucket_key() {
        let pk = |columns: &[&str]| {
            let mut table = descriptor(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("region", DataType::Utf8, false),
                Field::new("score", DataType::Float64, false),
                Field::new("note", DataType::Utf8, true),
                Field::new("ver", DataType::Int64, false),
            ]);
            table.primary_key = columns.iter().map(|c| (*c).to_owned()).collect();
            table
        };
        let ok = pk(&["region", "id"]).with_defaults();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.bucket_key, vec!["region".to_owned(), "id".to_owned()]);
        let mut by_region = pk(&["id", "region"]);
        by_region.bucket_key = vec!["region".into()];
        assert_eq!(by_region.validate(), Ok(()));
        let info = table_info(by_region.clone());
        // Bucket-key columns first, then the rest of the key.
        assert_eq!(info.key_encoding_indices(), vec![1, 0]);

        let mut outside = pk(&["id"]);
        outside.bucket_key = vec!["region".into()];
        for (table, expected) in [
            (pk(&["nope"]), "is not a column"),
            (pk(&["id", "id"]), "twice"),
            (pk(&["note"]), "nullable"),
            (pk(&["score"]), "keys must be"),
            (outside, "not in the primary key"),
        ] {
            let error = table.validate().expect_err(expected).to_string();
            assert!(error.contains(expected), "{error}");
        }
        let mut nested = pk(&["id"]);
        let mut fields: Vec<Field> = nested
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ));
        nested.schema = Arc::new(Schema::new(fields));
        assert!(matches!(
            nested.validate(),
            Err(DefinitionError::UnsupportedPrimaryKeyTableType { .. })
        ));

        let with = |table: &TableDescriptor, pairs: &[(&str, &str)]| {
            let mut table = table.clone();
            for (k, v) in pairs {
                table.options.insert((*k).into(), (*v).into());
            }
            table.validate()
        };
        let id = pk(&["id"]);
        assert_eq!(with(&id, &[(OPTION_MERGE_ENGINE, "first_row")]), Ok(()));
        assert_eq!(
            with(
                &id,
                &[
                    (OPTION_MERGE_ENGINE, "versioned"),
                    (OPTION_MERGE_VERSION_COLUMN, "ver")
                ]
            ),
            Ok(())
        );
        for pairs in [
            vec![(OPTION_MERGE_ENGINE, "newest")],
            vec![(OPTION_MERGE_ENGINE, "versioned")],
            vec![
                (OPTION_MERGE_ENGINE, "versioned"),
                (OPTION_MERGE_VERSION_COLUMN, "note"),
            ],
            vec![(OPTION_MERGE_VERSION_COLUMN, "ver")],
        ] {
            assert!(
                matches!(
                    with(&id, &pairs),
                    Err(DefinitionError::InvalidOption { .. })
                ),
                "{pairs:?}"
            );
        }
        assert!(with(&id, &[(OPTION_LAKE_ENABLED, "true")]).is_ok());
        assert!(matches!(
            with(
                &id,
                &[(OPTION_LAKE_ENABLED, "true"), (OPTION_RETENTION, "7d")]
            ),
            Err(DefinitionError::PrimaryKeyRetentionUnsupported { .. })
        ));
        assert!(matches!(
            with(&id, &[(OPTION_RETENTION_BYTES, "1GiB")]),
            Err(DefinitionError::PrimaryKeyRetentionUnsupported {
                option: OPTION_RETENTION_BYTES
            })
        ));
        let log = descriptor(vec![Field::new("id", DataType::Int64, false)]);
        assert!(matches!(
            with(&log, &[(OPTION_MERGE_ENGINE, "first_row")]),
            Err(DefinitionError::NotAPrimaryKeyTable { .. })
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
