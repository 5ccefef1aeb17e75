//! Reading committed WAL chunks: the one log-read path that fetches and the compactor share.
//!
//! A chunk is read through the page cache, so tiering right after a write reads what the
//! writer put there, and a fetch and a compactor reading the same chunk make one GET. The
//! whole chunk is read as one range, or, when few columns of a wide chunk are asked for, only
//! its IPC metadata and those columns' byte ranges ([`pruned`]); checksums are verified either
//! way, and the row count must be the one the index recorded. [`with_system_columns`] adds
//! `_bucket`, `_offset` and `_timestamp`, as both the fetch output and the lake table have them.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray, new_null_array,
};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{FieldRef, Schema, SchemaRef};
use inlet_cache::PagedCache;
use inlet_core::column_ids::ColumnPositions;
use inlet_core::column_types::widen;
use inlet_core::ids::{Offset, StreamId, TimestampMicros};
use inlet_core::table::{TableDescriptor, TableInfo};
use inlet_core::wal::{WAL_TRAILER_LEN, decode_chunk};
use inlet_index::ChunkEntry;
use slatedb::object_store::path::Path;

pub(crate) mod pruned;

/// Why a chunk could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChunkError {
    /// The store (through the cache) failed or returned the wrong number of bytes.
    #[error("object store read of {path} failed: {message}")]
    Storage { path: String, message: String },
    /// The bytes are not what the index says: a checksum, a layout or a row count differs.
    #[error("corrupt data in {stream}: {message}")]
    Corrupt { stream: StreamId, message: String },
    /// The chunk was written under a schema newer than every schema the read knows: the
    /// table changed (ALTER) after the read loaded it. The table as it is now decodes it.
    #[error(
        "chunk of {stream} has schema {schema_id}, newer than schema {known} this read started \
         with: the table changed since"
    )]
    NewerSchema {
        stream: StreamId,
        schema_id: u32,
        known: u32,
    },
    /// A chunk of a later schema does not fit the columns this read started with: a column
    /// widened since holds a value the read's narrower type cannot.
    #[error("{stream} changed schema during the read: {message}; read again from here")]
    SchemaChanged { stream: StreamId, message: String },
}

/// What reading the chunks of one table needs: the cache, the table (its schema decodes the
/// chunks) and the columns to decode, as indices into the table's schema.
#[derive(Clone, Copy, Debug)]
pub struct ChunkRead<'a> {
    pub cache: &'a PagedCache,
    pub table: &'a TableInfo,
    pub projection: &'a [usize],
}

impl ChunkRead<'_> {
    /// Reads one chunk through the cache, verifies its checksums and decodes the projected
    /// columns. A projection of few columns of a wide chunk GETs only those columns' bytes
    /// (see [`pruned`]); any other read GETs the whole chunk as one range.
    pub async fn read(
        &self,
        stream: StreamId,
        entry: &ChunkEntry,
    ) -> Result<RecordBatch, ChunkError> {
        if entry.schema_id == self.table.schema_id {
            return self.read_current(stream, entry).await;
        }
        let Some(schema) = self.table.schema_of(entry.schema_id) else {
            if entry.schema_id > self.table.schema_id {
                return Err(ChunkError::NewerSchema {
                    stream,
                    schema_id: entry.schema_id.0,
                    known: self.table.schema_id.0,
                });
            }
            return Err(ChunkError::Corrupt {
                stream,
                message: format!(
                    "chunk has schema {}, which table {} never had (its schema is {})",
                    entry.schema_id.0,
                    self.table.qualified_name(),
                    self.table.schema_id.0
                ),
            });
        };
        self.read_under(stream, entry, schema).await
    }

    /// Reads a chunk written under `schema`, another version of the table's (an earlier
    /// one, or a later one a read that started before an ALTER meets), and gives it this
    /// read's columns: decoded with its own schema, then nulls where it has no such column,
    /// widened where ALTER widened the column since it was written, and narrowed back where
    /// the column widened after this read started (an error if a value does not fit).
    pub async fn read_under(
        &self,
        stream: StreamId,
        entry: &ChunkEntry,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, ChunkError> {
        let current = &self.table.descriptor.schema;
        let positions = ColumnPositions::of(schema);
        let projection: Vec<usize> = self
            .projection
            .iter()
            .filter_map(|&i| positions.of_field(current.field(i)))
            .collect();
        let other = TableInfo {
            schema_id: entry.schema_id,
            descriptor: TableDescriptor {
                schema: schema.clone(),
                ..self.table.descriptor.clone()
            },
            ..self.table.clone()
        };
        let read = ChunkRead {
            cache: self.cache,
            table: &other,
            projection: &projection,
        };
        let batch = read.read_current(stream, entry).await?;
        let rows = batch.num_rows();
        let fields: Vec<FieldRef> = self
            .projection
            .iter()
            .map(|&i| current.fields()[i].clone())
            .collect();
        let narrowing = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        let mut columns = Vec::with_capacity(fields.len());
        let decoded = batch.schema();
        let decoded = ColumnPositions::of(&decoded);
        for field in &fields {
            let wanted = field.data_type();
            // By column id: a renamed column is found under its old name, a column added
            // after a drop of its name is not found in the older chunk.
            let column = decoded.of_field(field).map(|i| batch.column(i));
            columns.push(match column {
                None => new_null_array(wanted, rows),
                Some(column) if column.data_type() == wanted => column.clone(),
                Some(column) => match widen(column, wanted) {
                    Some(widened) => widened,
                    None => cast_with_options(column, wanted, &narrowing).map_err(|e| {
                        ChunkError::SchemaChanged {
                            stream,
                            message: format!(
                                "column `{}` is {} in schema {} and {wanted} in schema {} this \
                                 read started with: {e}",
                                field.name(),
                                column.data_type(),
                                entry.schema_id.0,
                                self.table.schema_id.0
                            ),
                        }
                    })?,
                },
            });
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| {
            ChunkError::Corrupt {
                stream,
                message: format!(
                    "chunk of schema {} does not fit schema {}: {e}",
                    entry.schema_id.0, self.table.schema_id.0
                ),
            }
        })
    }

    /// [`ChunkRead::read`] of a chunk written under the table's schema.
    async fn read_current(
        &self,
        stream: StreamId,
        entry: &ChunkEntry,
    ) -> Result<RecordBatch, ChunkError> {
        let path = Path::from(entry.object.path());
        let object_len = entry.footer_offset + u64::from(entry.footer_len) + WAL_TRAILER_LEN as u64;
        let batch = match pruned::read_pruned(self, stream, entry, &path, object_len).await? {
            Some(batch) => batch,
            None => self.read_whole(stream, entry, &path, object_len).await?,
        };
        if batch.num_rows() != entry.row_count as usize {
            return Err(ChunkError::Corrupt {
                stream,
                message: format!(
                    "chunk of {path} has {} rows, the index says {}",
                    batch.num_rows(),
                    entry.row_count
                ),
            });
        }
        Ok(batch)
    }

    /// Reads the whole chunk with one range, verifies its checksum and decodes the projection.
    async fn read_whole(
        &self,
        stream: StreamId,
        entry: &ChunkEntry,
        path: &Path,
        object_len: u64,
    ) -> Result<RecordBatch, ChunkError> {
        let range = entry.chunk_offset..entry.chunk_offset + entry.chunk_len;
        let bytes = self
            .cache
            .get_range(path, range, Some(object_len))
            .await
            .map_err(|e| ChunkError::Storage {
                path: path.to_string(),
                message: e.to_string(),
            })?;
        decode_chunk(
            &bytes,
            entry.meta_len,
            entry.body_offset,
            entry.chunk_crc,
            &self.table.descriptor.schema,
            Some(self.projection),
        )
        .map_err(|e| ChunkError::Corrupt {
            stream,
            message: format!(
                "chunk at {}..{} of {path}: {e}",
                entry.base_offset,
                entry.end_offset()
            ),
        })
    }
}

/// `batch` (rows of `stream` from offset `base`, committed at `commit_ts`) with the system
/// columns `_bucket`, `_offset` and `_timestamp` appended, as `schema` (the decoded columns
/// followed by those three) describes it.
pub fn with_system_columns(
    schema: &SchemaRef,
    stream: StreamId,
    batch: &RecordBatch,
    base: Offset,
    commit_ts: TimestampMicros,
) -> Result<RecordBatch, ChunkError> {
    let corrupt = |message: String| ChunkError::Corrupt { stream, message };
    let rows = batch.num_rows();
    let bucket = i32::try_from(stream.bucket.0)
        .map_err(|_| corrupt(format!("bucket {} does not fit `_bucket`", stream.bucket.0)))?;
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(Int32Array::from(vec![bucket; rows])));
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..rows as u64).map(|i| (base.0 + i) as i64),
    )));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![commit_ts.0; rows]).with_timezone("+00:00"),
    ));
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
        corrupt(format!(
            "decoded chunk does not match the table schema: {e}"
        ))
    })
}
