//! The lake table layout: how one Inlet table becomes one Iceberg table, and its metadata
//! files. `docs/lake-layout.md` describes the result; this file is the one place it is made.
//!
//! - Iceberg format v2. Columns: the table's columns, then `_bucket` (int), `_offset` (long)
//!   and `_timestamp` (timestamptz, microseconds), all three required.
//! - Field ids are assigned once, when the lake table is created ([`lake_schema`]), in
//!   Iceberg's own fresh-id order (each struct level first, then into nested types), so the
//!   ids we assign are exactly the ids `TableMetadataBuilder` (and Java or pyiceberg) would
//!   assign; creation checks they survived. From then on the ids live in the table metadata
//!   and are never recomputed: writers take them from [`LakeTable::write_schema`], which
//!   carries them as `PARQUET:field_id` Arrow field metadata, as iceberg-rust expects.
//! - Partitioned by identity(`_bucket`), so every data file holds one bucket (one stream), and
//!   sorted by `_offset` (sort order 1), so a file is one contiguous offset range.
//! - Metadata files are `<location>/metadata/<version:05>-<uuid>.metadata.json`, version 0 at
//!   creation and one more per commit. `version-hint.text` next to them names the latest
//!   committed one for path readers; it is written by [`LakeTable::publish_version_hint`],
//!   after the caller has committed that version, never before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::{DataType, FieldRef, Schema as ArrowSchema, SchemaRef, TimeUnit};
use bytes::Bytes;
use iceberg::spec::{
    FormatVersion, ListType, MapType, NestedField, NestedFieldRef, NullOrder, PrimitiveType,
    Schema, SortDirection, SortField, SortOrder, StructType, TableMetadata, TableMetadataBuilder,
    TableMetadataRef, Transform, Type, UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::{Runtime, TableIdent};
use inlet_core::clock::Env;
use inlet_core::column_defaults::doc_of;
use inlet_core::column_ids::column_id;
use inlet_core::column_types::lake_refusal;
use inlet_core::ids::{Bucket, Offset, SchemaId, TableId};
use inlet_core::table::{BUCKET_COLUMN, OFFSET_COLUMN, RESERVED_COLUMNS, TableInfo, system_fields};
use uuid::Uuid;

use crate::lake::error::{LakeError, LakeSchemaError};
use crate::lake::storage::{LAKE_DIR, LakeStorage};

/// The Iceberg format version of every lake table.
pub const LAKE_FORMAT_VERSION: FormatVersion = FormatVersion::V2;

/// The id of the lake tables' one sort order: ascending `_offset`.
pub const OFFSET_SORT_ORDER_ID: i64 = 1;

/// Snapshot summary property: JSON object from bucket (as a string) to the bucket's lake
/// watermark (the first offset not yet in the lake), for every bucket tiered so far.
pub const WATERMARKS_PROPERTY: &str = "inlet.watermarks";

/// Snapshot summary property prefix: `inlet.offsets.<bucket>` = `"<start>-<end>"`, the
/// half-open offset range `[start, end)` of the bucket that the snapshot added.
pub const OFFSETS_PROPERTY_PREFIX: &str = "inlet.offsets.";

/// Table property: the Inlet table id the lake table belongs to.
pub const TABLE_ID_PROPERTY: &str = "inlet.table-id";

/// Table property: the id of the Inlet table schema whose columns (by name) the lake schema
/// has, set when the lake table is created and each time its schema evolves. Column ids map
/// through it: a lake column is the Inlet column that had its name in that schema, so a
/// rename or a drop in Inlet finds the lake field it changes. A lake table created before
/// the property existed has the names of [`TableInfo::schema_before_renames`].
pub const SCHEMA_ID_PROPERTY: &str = "inlet.schema-id";

/// The file next to the metadata files naming the latest committed one, for path readers.
pub const VERSION_HINT_FILE: &str = "version-hint.text";

/// Suffix of metadata files.
const METADATA_SUFFIX: &str = ".metadata.json";

/// Where the lake table of an Inlet table lives, relative to the store root:
/// `lake/<database>/<table>-<table id>`. The id keeps a re-created table (same name, new id)
/// from ever sharing files with the dropped one, whose files are deleted by prefix later.
pub fn lake_table_path(database: &str, table: &str, id: TableId) -> String {
    format!("{LAKE_DIR}/{database}/{table}-{}", id.0)
}

/// The location of metadata version `version` of the table at `location`.
pub fn metadata_file_location(location: &str, version: u32, id: Uuid) -> String {
    format!("{location}/metadata/{version:05}-{id}{METADATA_SUFFIX}")
}

/// The version number of a metadata file location made by [`metadata_file_location`].
pub fn metadata_file_version(location: &str) -> Option<u32> {
    let name = location.rsplit('/').next()?.strip_suffix(METADATA_SUFFIX)?;
    let (version, id) = name.split_once('-')?;
    Uuid::parse_str(id).ok()?;
    version.parse().ok()
}

/// The Iceberg schema of the lake table of a table with columns `table_schema`: the table's
/// columns, then the system columns, with field ids in Iceberg's fresh-id order. Rejects the
/// column types Iceberg v2 cannot hold without changing values.
pub fn lake_schema(table_schema: &ArrowSchema) -> Result<Schema, LakeSchemaError> {
    if let Some(field) = table_schema
        .fields()
        .iter()
        .find(|f| RESERVED_COLUMNS.contains(&f.name().as_str()))
    {
        return Err(LakeSchemaError::ReservedColumn {
            column: field.name().clone(),
        });
    }
    let mut fields: Vec<FieldRef> = table_schema.fields().iter().cloned().collect();
    fields.extend(system_fields().into_iter().map(Arc::new));
    let mut ids = FieldIds { next: 1 };
    let fields = ids.struct_fields(&fields, "")?;
    Schema::builder()
        .with_schema_id(0)
        .with_fields(fields)
        .build()
        .map_err(|error| LakeSchemaError::Invalid {
            reason: error.message().to_owned(),
        })
}

/// How a lake schema evolves to a table's columns (see [`LakeTable::with_columns_of`]).
struct Evolution {
    /// The current schema's user columns the table still has, in the table's order: renamed
    /// and widened ones renamed and promoted (ids kept).
    columns: Vec<NestedFieldRef>,
    /// The current schema's system columns.
    system: Vec<NestedFieldRef>,
    /// The table's columns the lake schema lacks.
    missing: Vec<FieldRef>,
    /// Whether a column was renamed, promoted or dropped.
    changed: bool,
}

/// Whether a column stored as `from` is promoted to `to`, as Iceberg allows in place: int to
/// long, float to double, a decimal's precision raised at the same scale.
fn promotes(from: &Type, to: &Type) -> bool {
    let (Type::Primitive(from), Type::Primitive(to)) = (from, to) else {
        return false;
    };
    match (from, to) {
        (PrimitiveType::Int, PrimitiveType::Long)
        | (PrimitiveType::Float, PrimitiveType::Double) => true,
        (
            PrimitiveType::Decimal {
                precision: from_precision,
                scale: from_scale,
            },
            PrimitiveType::Decimal { precision, scale },
        ) => scale == from_scale && precision > from_precision,
        _ => false,
    }
}

/// Assigns field ids the way Iceberg assigns fresh ids: all fields of a struct first, then
/// into each nested type in order; a list's element, a map's key and value get theirs
/// when the list or map is visited.
struct FieldIds {
    next: i32,
}

impl FieldIds {
    fn next(&mut self) -> i32 {
        let id = self.next;
        self.next += 1;
        id
    }

    fn struct_fields(
        &mut self,
        fields: &[FieldRef],
        parent: &str,
    ) -> Result<Vec<NestedFieldRef>, LakeSchemaError> {
        let ids: Vec<i32> = fields.iter().map(|_| self.next()).collect();
        fields
            .iter()
            .zip(ids)
            .map(|(field, id)| {
                let path = if parent.is_empty() {
                    field.name().clone()
                } else {
                    format!("{parent}.{}", field.name())
                };
                let field_type = self.lake_type(field.data_type(), &path)?;
                let nested = NestedField::new(id, field.name(), field_type, !field.is_nullable());
                // The column's doc is the field's, for engines and catalogs that show it.
                Ok(Arc::new(match doc_of(field) {
                    Some(doc) => nested.with_doc(doc),
                    None => nested,
                }))
            })
            .collect()
    }

    /// The Iceberg type a column of `data_type` is stored as. Widening that keeps every value
    /// (small and unsigned integers, half floats, coarser time units, 256-bit decimals that
    /// fit, large strings) is allowed: the writer casts, a reader casts back. Anything that
    /// would change values is refused.
    fn lake_type(&mut self, data_type: &DataType, column: &str) -> Result<Type, LakeSchemaError> {
        let unsupported = |reason| LakeSchemaError::UnsupportedType {
            column: column.to_owned(),
            data_type: data_type.to_string(),
            reason,
        };
        let primitive = |p| Ok(Type::Primitive(p));
        // The one list of what the lake refuses, which table validation also uses.
        if let Some(reason) = lake_refusal(data_type) {
            return Err(unsupported(reason));
        }
        match data_type {
            DataType::Boolean => primitive(PrimitiveType::Boolean),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16 => primitive(PrimitiveType::Int),
            DataType::Int64 | DataType::UInt32 => primitive(PrimitiveType::Long),
            DataType::Float16 | DataType::Float32 => primitive(PrimitiveType::Float),
            DataType::Float64 => primitive(PrimitiveType::Double),
            DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => {
                let scale = u32::try_from(*scale)
                    .map_err(|_| unsupported("Iceberg decimals have no negative scale"))?;
                Type::decimal(u32::from(*precision), scale)
                    .map_err(|_| unsupported("not a valid Iceberg decimal"))
            }
            DataType::Date32 | DataType::Date64 => primitive(PrimitiveType::Date),
            DataType::Time32(_) | DataType::Time64(TimeUnit::Microsecond) => {
                primitive(PrimitiveType::Time)
            }
            DataType::Timestamp(_, None) => primitive(PrimitiveType::Timestamp),
            DataType::Timestamp(_, Some(_)) => primitive(PrimitiveType::Timestamptz),
            DataType::Utf8 | DataType::LargeUtf8 => primitive(PrimitiveType::String),
            DataType::Binary | DataType::LargeBinary => primitive(PrimitiveType::Binary),
            DataType::FixedSizeBinary(width) => {
                let width = u64::try_from(*width)
                    .map_err(|_| unsupported("negative fixed-size binary width"))?;
                primitive(PrimitiveType::Fixed(width))
            }
            DataType::List(element)
            | DataType::LargeList(element)
            | DataType::FixedSizeList(element, _) => {
                let id = self.next();
                let element_type =
                    self.lake_type(element.data_type(), &format!("{column}.element"))?;
                Ok(Type::List(ListType::new(Arc::new(
                    NestedField::list_element(id, element_type, !element.is_nullable()),
                ))))
            }
            DataType::Map(entries, _) => {
                let DataType::Struct(key_value) = entries.data_type() else {
                    return Err(unsupported("map entries are not a struct"));
                };
                let [key, value] = key_value.iter().collect::<Vec<_>>()[..] else {
                    return Err(unsupported("map entries are not a key and a value"));
                };
                let key_id = self.next();
                let key_type = self.lake_type(key.data_type(), &format!("{column}.key"))?;
                let value_id = self.next();
                let value_type = self.lake_type(value.data_type(), &format!("{column}.value"))?;
                Ok(Type::Map(MapType::new(
                    Arc::new(NestedField::map_key_element(key_id, key_type)),
                    Arc::new(NestedField::map_value_element(
                        value_id,
                        value_type,
                        !value.is_nullable(),
                    )),
                )))
            }
            DataType::Struct(fields) => {
                let fields: Vec<FieldRef> = fields.iter().cloned().collect();
                Ok(Type::Struct(StructType::new(
                    self.struct_fields(&fields, column)?,
                )))
            }
            _ => Err(unsupported("no Iceberg type for it")),
        }
    }
}

/// One Inlet table's lake table: its current metadata and where that metadata is. A value,
/// not a handle: committing produces a new `LakeTable`, this one keeps describing its version.
#[derive(Clone, Debug)]
pub struct LakeTable {
    storage: LakeStorage,
    ident: TableIdent,
    metadata: TableMetadataRef,
    metadata_location: String,
}

impl LakeTable {
    /// Creates the lake table of `table`: writes metadata version 0 (no snapshot) at
    /// `lake/<database>/<table>-<id>` under the store root. Does not write the version hint:
    /// call [`LakeTable::publish_version_hint`] once the caller recorded the table.
    pub async fn create(
        storage: &LakeStorage,
        table: &TableInfo,
        env: &Env,
    ) -> Result<Self, LakeError> {
        let mut schema = lake_schema(&table.descriptor.schema)?;
        if table.is_primary_key_table() {
            // The primary key as Iceberg identifier fields: engines that upsert by key
            // (Flink, Spark's MERGE) find it in the table, and nothing outside can add a
            // second row per key unknowingly. Key columns are required non-float primitives
            // (checked at creation), as identifier fields must be.
            let ids = table
                .descriptor
                .primary_key
                .iter()
                .map(|column| {
                    schema
                        .field_by_name(column)
                        .map(|field| field.id)
                        .ok_or_else(|| LakeSchemaError::Invalid {
                            reason: format!("primary-key column `{column}` is not in the schema"),
                        })
                })
                .collect::<Result<Vec<i32>, _>>()?;
            schema = schema
                .into_builder()
                .with_identifier_field_ids(ids)
                .build()
                .map_err(|error| LakeSchemaError::Invalid {
                    reason: error.message().to_owned(),
                })?;
        }
        let field_id = |name: &str| {
            schema
                .field_by_name(name)
                .map(|field| field.id)
                .expect("lake_schema adds the system columns")
        };
        let spec = UnboundPartitionSpec::builder()
            .add_partition_field(field_id(BUCKET_COLUMN), BUCKET_COLUMN, Transform::Identity)?
            .build();
        let sort_order = SortOrder::builder()
            .with_order_id(OFFSET_SORT_ORDER_ID)
            .with_sort_field(
                SortField::builder()
                    .source_id(field_id(OFFSET_COLUMN))
                    .transform(Transform::Identity)
                    .direction(SortDirection::Ascending)
                    .null_order(NullOrder::First)
                    .build(),
            )
            .build(&schema)?;
        let location = storage.url(&lake_table_path(&table.database, &table.name, table.id));
        let properties = HashMap::from([
            (TABLE_ID_PROPERTY.to_owned(), table.id.0.to_string()),
            (SCHEMA_ID_PROPERTY.to_owned(), table.schema_id.0.to_string()),
            (
                "write.parquet.compression-codec".to_owned(),
                "zstd".to_owned(),
            ),
        ]);
        let table_uuid = new_uuid(env);
        let metadata = TableMetadataBuilder::new(
            schema.clone(),
            spec,
            sort_order,
            location.clone(),
            LAKE_FORMAT_VERSION,
            properties,
        )?
        .assign_uuid(table_uuid)
        .build()?
        .metadata;
        if metadata.current_schema().as_struct() != schema.as_struct() {
            return Err(LakeError::invalid_metadata(
                &location,
                "iceberg reassigned the field ids of the lake schema",
            ));
        }
        if metadata.default_sort_order_id() != OFFSET_SORT_ORDER_ID {
            return Err(LakeError::invalid_metadata(
                &location,
                "iceberg renumbered the offset sort order",
            ));
        }
        let metadata = with_last_updated_ms(metadata, env.clock.now().0 / 1000, &location)?;

        let metadata_location = metadata_file_location(&location, 0, new_uuid(env));
        write_metadata(storage, &metadata, &metadata_location).await?;
        Ok(Self {
            storage: storage.clone(),
            ident: TableIdent::from_strs([table.database.as_str(), table.name.as_str()])?,
            metadata: Arc::new(metadata),
            metadata_location,
        })
    }

    /// Loads the lake table whose current metadata is at `metadata_location` (as recorded by
    /// the caller when it committed it).
    pub async fn load(
        storage: &LakeStorage,
        ident: TableIdent,
        metadata_location: &str,
    ) -> Result<Self, LakeError> {
        if metadata_file_version(metadata_location).is_none() {
            return Err(LakeError::invalid_metadata(
                metadata_location,
                "not a `<version>-<uuid>.metadata.json` file name",
            ));
        }
        let metadata = TableMetadata::read_from(&storage.file_io(), metadata_location).await?;
        Ok(Self {
            storage: storage.clone(),
            ident,
            metadata: Arc::new(metadata),
            metadata_location: metadata_location.to_owned(),
        })
    }

    /// A table at a new metadata version (after a commit was staged).
    pub(crate) fn with_metadata(&self, metadata: TableMetadata, metadata_location: String) -> Self {
        Self {
            storage: self.storage.clone(),
            ident: self.ident.clone(),
            metadata: Arc::new(metadata),
            metadata_location,
        }
    }

    /// This version evolved to the columns of `table_schema` (schema evolution): a new
    /// Iceberg schema, made current, with the current schema's fields (their ids kept), each
    /// column whose type ALTER widened promoted in place (int to long, float to double, a
    /// decimal's precision: the promotions Iceberg allows, so a data file written before
    /// reads under the new type), and each missing column as a new field with fresh ids from
    /// `last-column-id + 1`, placed before the system columns. Data files written before
    /// keep their schema id; engines resolve columns by field id and read the new ones as
    /// nulls. `None` when nothing changed. In memory, at the same metadata location: the next
    /// staged version built on it carries the new schema (and the compare-and-swap still
    /// expects this one).
    pub fn with_columns_of(&self, table: &TableInfo) -> Result<Option<LakeTable>, LakeError> {
        let evolved = self.evolved_metadata(table, None, self.metadata.last_updated_ms())?;
        Ok(evolved.map(|metadata| self.with_metadata(metadata, self.metadata_location.clone())))
    }

    /// This version's metadata evolved to `table_schema` (see
    /// [`with_columns_of`](Self::with_columns_of)), stamped `last_updated_ms`, logging
    /// `previous` as the metadata file before it when given; `None` when nothing changes.
    fn evolved_metadata(
        &self,
        table: &TableInfo,
        previous: Option<String>,
        last_updated_ms: i64,
    ) -> Result<Option<TableMetadata>, LakeError> {
        let Evolution {
            columns,
            system,
            missing,
            changed,
        } = self.evolution(table)?;
        if missing.is_empty() && !changed {
            return Ok(None);
        }
        // Ids are taken from the top: `lake_type` in `evolution` numbered nothing that stays.
        let mut ids = FieldIds {
            next: self.metadata.last_column_id() + 1,
        };
        let added = ids.struct_fields(&missing, "")?;
        let schema = Schema::builder()
            .with_schema_id(self.metadata.current_schema_id() + 1)
            .with_fields(columns.into_iter().chain(added).chain(system))
            .build()?;
        let evolved = (*self.metadata)
            .clone()
            .into_builder(previous)
            .add_current_schema(schema)?
            .set_properties(HashMap::from([(
                SCHEMA_ID_PROPERTY.to_owned(),
                table.schema_id.0.to_string(),
            )]))?
            .build()?
            .metadata;
        // The builder stamps the wall clock; the version keeps the injected clock's time (the
        // next snapshot is stamped from it).
        Ok(Some(with_last_updated_ms(
            evolved,
            last_updated_ms,
            &self.metadata_location,
        )?))
    }

    /// Whether the lake schema lacks a column of `table_schema` or a widening of one, as
    /// [`with_columns_of`](Self::with_columns_of) would stage, without building it (the
    /// compactor asks before each idle round). A schema it cannot read says yes: the round
    /// then reports why.
    pub(crate) fn lags_columns_of(&self, table: &TableInfo) -> bool {
        self.evolution(table)
            .map_or(true, |e| !e.missing.is_empty() || e.changed)
    }

    /// The table schema whose column names the lake schema has ([`SCHEMA_ID_PROPERTY`]).
    pub fn reflected_schema(&self, table: &TableInfo) -> SchemaId {
        self.metadata
            .properties()
            .get(SCHEMA_ID_PROPERTY)
            .and_then(|id| id.parse().ok())
            .map_or_else(|| table.schema_before_renames(), SchemaId)
    }

    /// The current schema's columns that `table` still has, in its order, renamed and
    /// promoted as it says, its system columns, and the columns of `table` it lacks. Columns
    /// are matched by [column id](inlet_core::column_ids) through the table schema the lake
    /// schema reflects.
    fn evolution(&self, table: &TableInfo) -> Result<Evolution, LakeError> {
        let reflected_id = self.reflected_schema(table);
        let Some(reflected) = table.schema_of(reflected_id) else {
            return Err(LakeError::SchemaAhead {
                location: self.metadata_location.clone(),
                schema_id: reflected_id.0,
                known: table.schema_id.0,
            });
        };
        let current = self.metadata.current_schema();
        let (system, lake_columns): (Vec<NestedFieldRef>, Vec<NestedFieldRef>) = current
            .as_struct()
            .fields()
            .iter()
            .cloned()
            .partition(|field| RESERVED_COLUMNS.contains(&field.name.as_str()));
        let mut by_id = HashMap::with_capacity(lake_columns.len());
        for field in lake_columns {
            let id = reflected
                .field_with_name(&field.name)
                .ok()
                .and_then(column_id)
                .ok_or_else(|| {
                    LakeError::invalid_metadata(
                        &self.metadata_location,
                        format!(
                            "lake column `{}` is not a column of table schema {}",
                            field.name, reflected_id.0
                        ),
                    )
                })?;
            by_id.insert(id, field);
        }
        let mut ids = FieldIds {
            next: self.metadata.last_column_id() + 1,
        };
        let mut changed = false;
        let mut columns = Vec::with_capacity(by_id.len());
        let mut missing = Vec::new();
        for column in table.descriptor.schema.fields() {
            let Some(field) = column_id(column).and_then(|id| by_id.remove(&id)) else {
                missing.push(column.clone());
                continue;
            };
            let mut kept = field.as_ref().clone();
            if kept.name != *column.name() {
                kept.name.clone_from(column.name());
                changed = true;
            }
            let wanted = ids.lake_type(column.data_type(), column.name())?;
            if promotes(&kept.field_type, &wanted) {
                kept.field_type = Box::new(wanted);
                changed = true;
            }
            columns.push(Arc::new(kept));
        }
        // What is left was dropped from the table: it leaves the current lake schema (older
        // schemas and the files written under them keep it).
        changed |= !by_id.is_empty();
        Ok(Evolution {
            columns,
            system,
            missing,
            changed,
        })
    }

    /// Writes the version of this table evolved to `table_schema`'s columns
    /// ([`with_columns_of`](Self::with_columns_of)) as a metadata file of its own, with no
    /// new snapshot: what a round commits when the table's columns changed but it has no
    /// rows to tier, so engines see the new schema before the next rows arrive. `None` when
    /// the lake schema is already the table's. The file is an orphan until the index
    /// commits it.
    pub(crate) async fn stage_schema(
        &self,
        table: &TableInfo,
        env: &Env,
    ) -> Result<Option<LakeTable>, LakeError> {
        let now_ms = env.clock.now().0 / 1000;
        let previous = Some(self.metadata_location.clone());
        let Some(next) = self.evolved_metadata(table, previous, now_ms)? else {
            return Ok(None);
        };
        let location =
            metadata_file_location(self.metadata.location(), self.version() + 1, new_uuid(env));
        write_metadata(&self.storage, &next, &location).await?;
        Ok(Some(self.with_metadata(next, location)))
    }

    /// The storage the table's files go through.
    pub fn storage(&self) -> &LakeStorage {
        &self.storage
    }

    /// `database.table` as an Iceberg identifier.
    pub fn ident(&self) -> &TableIdent {
        &self.ident
    }

    /// The table's metadata at this version.
    pub fn metadata(&self) -> &TableMetadata {
        &self.metadata
    }

    /// The URL of this version's metadata file.
    pub fn metadata_location(&self) -> &str {
        &self.metadata_location
    }

    /// This version's number (0 at creation, one more per commit).
    pub fn version(&self) -> u32 {
        metadata_file_version(&self.metadata_location)
            .expect("metadata locations are checked when a LakeTable is made")
    }

    /// The table's location URL.
    pub fn location(&self) -> &str {
        self.metadata.location()
    }

    /// The current snapshot's id; `None` before the first commit.
    pub fn snapshot_id(&self) -> Option<i64> {
        self.metadata.current_snapshot_id()
    }

    /// The Arrow schema data files are written with: the current Iceberg schema, with each
    /// field's id as `PARQUET:field_id` metadata.
    pub fn write_schema(&self) -> Result<SchemaRef, LakeError> {
        Ok(Arc::new(iceberg::arrow::schema_to_arrow_schema(
            self.metadata.current_schema(),
        )?))
    }

    /// The lake watermark of each bucket tiered so far (the first offset not in the lake),
    /// from the current snapshot's summary. Empty before the first commit.
    pub fn watermarks(&self) -> Result<BTreeMap<Bucket, Offset>, LakeError> {
        let Some(snapshot) = self.metadata.current_snapshot() else {
            return Ok(BTreeMap::new());
        };
        let Some(json) = snapshot
            .summary()
            .additional_properties
            .get(WATERMARKS_PROPERTY)
        else {
            return Err(LakeError::invalid_metadata(
                &self.metadata_location,
                format!(
                    "snapshot {} has no `{WATERMARKS_PROPERTY}`",
                    snapshot.snapshot_id()
                ),
            ));
        };
        parse_watermarks(json)
            .map_err(|reason| LakeError::invalid_metadata(&self.metadata_location, reason))
    }

    /// Points `metadata/version-hint.text` at this version, for engines that read the table
    /// by path. Call it only after this version was committed: a hint is a plain overwrite,
    /// the commit is elsewhere.
    pub async fn publish_version_hint(&self) -> Result<(), LakeError> {
        let name = self
            .metadata_location
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_suffix(METADATA_SUFFIX))
            .expect("metadata locations are checked when a LakeTable is made");
        let hint = format!("{}/metadata/{VERSION_HINT_FILE}", self.location());
        self.storage
            .file_io()
            .new_output(hint)?
            .write(Bytes::from(name.to_owned()))
            .await?;
        Ok(())
    }

    /// The table as iceberg-rust's (read-only) [`Table`], to scan it. Needs a tokio runtime.
    pub fn iceberg_table(&self) -> Result<Table, LakeError> {
        Ok(Table::builder()
            .metadata(self.metadata.clone())
            .metadata_location(self.metadata_location.clone())
            .identifier(self.ident.clone())
            .file_io(self.storage.file_io())
            .runtime(Runtime::try_current()?)
            .readonly(true)
            .build()?)
    }
}

/// Parses the `inlet.watermarks` summary property.
pub(crate) fn parse_watermarks(json: &str) -> Result<BTreeMap<Bucket, Offset>, String> {
    let raw: BTreeMap<String, u64> = serde_json::from_str(json)
        .map_err(|error| format!("`{WATERMARKS_PROPERTY}` is not a JSON object: {error}"))?;
    raw.into_iter()
        .map(|(bucket, offset)| {
            let bucket = bucket
                .parse::<u32>()
                .map_err(|_| format!("`{WATERMARKS_PROPERTY}` names bucket `{bucket}`"))?;
            Ok((Bucket(bucket), Offset(offset)))
        })
        .collect()
}

/// Formats the `inlet.watermarks` summary property.
pub(crate) fn format_watermarks(watermarks: &BTreeMap<Bucket, Offset>) -> String {
    let raw: BTreeMap<String, u64> = watermarks
        .iter()
        .map(|(bucket, offset)| (bucket.0.to_string(), offset.0))
        .collect();
    serde_json::to_string(&raw).expect("a map of strings to numbers serializes")
}

/// A random (version 4) UUID from the injected id source.
pub(crate) fn new_uuid(env: &Env) -> Uuid {
    uuid::Builder::from_random_bytes(env.ids.next_u128().to_be_bytes()).into_uuid()
}

/// Sets `last-updated-ms`. `TableMetadataBuilder::build` stamps new metadata with the wall
/// clock and has no setter; the simulation's clock must win, or the first snapshot (stamped
/// from our clock) could be refused as "older than the last update".
fn with_last_updated_ms(
    metadata: TableMetadata,
    unix_ms: i64,
    location: &str,
) -> Result<TableMetadata, LakeError> {
    let mut json =
        serde_json::to_value(&metadata).map_err(|e| LakeError::invalid_metadata(location, e))?;
    json["last-updated-ms"] = unix_ms.into();
    serde_json::from_value(json).map_err(|e| LakeError::invalid_metadata(location, e))
}

/// Writes a metadata file (uncompressed JSON).
pub(crate) async fn write_metadata(
    storage: &LakeStorage,
    metadata: &TableMetadata,
    location: &str,
) -> Result<(), LakeError> {
    let json =
        serde_json::to_vec(metadata).map_err(|e| LakeError::invalid_metadata(location, e))?;
    storage
        .file_io()
        .new_output(location)?
        .write(Bytes::from(json))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow_schema::{Field, Fields};

    use super::*;

    fn ids(schema: &Schema) -> Vec<(String, i32)> {
        let mut ids: Vec<(String, i32)> = schema
            .field_id_to_name_map()
            .iter()
            .map(|(id, name)| (name.clone(), *id))
            .collect();
        ids.sort_by_key(|(_, id)| *id);
        ids
    }

    #[test]
    fn ids_follow_icebergs_fresh_id_order_with_system_columns_after_the_table() {
        let point = Fields::from(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("y", DataType::Float64, true),
        ]);
        let schema = ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
            Field::new("at", DataType::Struct(point), true),
            Field::new("n", DataType::Int8, true),
        ]);
        let lake = lake_schema(&schema).expect("supported");
        let expected = [
            ("id", 1),
            ("tags", 2),
            ("at", 3),
            ("n", 4),
            ("_bucket", 5),
            ("_offset", 6),
            ("_timestamp", 7),
            ("tags.element", 8),
            ("at.x", 9),
            ("at.y", 10),
        ];
        let expected: Vec<(String, i32)> =
            expected.iter().map(|(n, i)| (n.to_string(), *i)).collect();
        assert_eq!(ids(&lake), expected);

        // Iceberg's own fresh assignment (what TableMetadataBuilder::new does) agrees.
        let auto = iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&ArrowSchema::new(
            lake_arrow_fields(&schema),
        ))
        .expect("iceberg converts it");
        assert_eq!(ids(&auto), expected);

        let types = |name: &str| lake.field_by_name(name).map(|f| (*f.field_type).clone());
        assert_eq!(types("n"), Some(Type::Primitive(PrimitiveType::Int)));
        assert_eq!(
            types("_timestamp"),
            Some(Type::Primitive(PrimitiveType::Timestamptz))
        );
        assert!(lake.field_by_name("_offset").is_some_and(|f| f.required));
        assert!(lake.field_by_name("tags").is_some_and(|f| !f.required));
    }

    /// The table's fields plus the system fields, with types iceberg's converter accepts
    /// as they are (it knows no half floats or 32-bit times, which we widen ourselves).
    fn lake_arrow_fields(schema: &ArrowSchema) -> Vec<Field> {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(system_fields());
        fields
    }

    #[test]
    fn lossy_and_typeless_columns_are_refused_by_name() {
        let refused = |data_type: DataType| {
            let schema = ArrowSchema::new(vec![
                Field::new("ok", DataType::Utf8, true),
                Field::new("bad", data_type, true),
            ]);
            lake_schema(&schema)
        };
        for data_type in [
            DataType::UInt64,
            DataType::Null,
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            DataType::Time64(TimeUnit::Nanosecond),
            DataType::Duration(TimeUnit::Second),
            DataType::Decimal256(60, 2),
        ] {
            assert!(
                matches!(
                    refused(data_type.clone()),
                    Err(LakeSchemaError::UnsupportedType { ref column, .. }) if column == "bad"
                ),
                "{data_type}"
            );
        }
        let nested = refused(DataType::new_list(DataType::UInt64, true));
        assert!(
            matches!(nested, Err(LakeSchemaError::UnsupportedType { ref column, .. }) if column == "bad.element"),
            "{nested:?}"
        );
        for data_type in [
            DataType::UInt32,
            DataType::Float16,
            DataType::Date64,
            DataType::Time32(TimeUnit::Millisecond),
            DataType::Timestamp(TimeUnit::Millisecond, Some("Europe/Paris".into())),
            DataType::LargeUtf8,
            DataType::Decimal256(38, 2),
        ] {
            assert!(refused(data_type.clone()).is_ok(), "{data_type}");
        }
        let reserved = ArrowSchema::new(vec![Field::new("_offset", DataType::Int64, false)]);
        assert!(matches!(
            lake_schema(&reserved),
            Err(LakeSchemaError::ReservedColumn { .. })
        ));
    }

    #[test]
    fn metadata_file_names_carry_their_version() {
        let id = Uuid::from_u128(0x1234);
        let location = metadata_file_location("s3://b/p/lake/db/t-1", 7, id);
        assert_eq!(
            location,
            "s3://b/p/lake/db/t-1/metadata/00007-00000000-0000-0000-0000-000000001234.metadata.json"
        );
        assert_eq!(metadata_file_version(&location), Some(7));
        assert_eq!(
            metadata_file_version("s3://b/t/metadata/v7.metadata.json"),
            None
        );
        assert_eq!(
            lake_table_path("shop", "orders", TableId(12)),
            "lake/shop/orders-12"
        );
    }

    #[test]
    fn watermarks_round_trip_and_reject_garbage() {
        let marks = BTreeMap::from([(Bucket(0), Offset(10)), (Bucket(12), Offset(0))]);
        let json = format_watermarks(&marks);
        assert_eq!(json, r#"{"0":10,"12":0}"#);
        assert_eq!(parse_watermarks(&json), Ok(marks));
        assert!(parse_watermarks(r#"{"x":1}"#).is_err());
        assert!(parse_watermarks(r#"{"1":-1}"#).is_err());
        assert!(parse_watermarks("[]").is_err());
    }
}
