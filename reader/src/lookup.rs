//! Lookups of primary-key tables: the current rows of a batch of keys. Keys are routed to
//! their buckets as writes are, encoded as the index encodes them, and read from every
//! bucket's key state at once through the log-read port, which makes them read-your-writes
//! wherever this reader runs (`LogRead::lookup`).

use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use inlet_core::bucket::bucket_rows;
use inlet_core::column_ids::without_column_id;
use std::collections::BTreeMap;

use inlet_core::ids::{Bucket, PartitionId, StreamId};
use inlet_core::limits::{MAX_PREFIX_LOOKUP_ROWS, MAX_REQUEST_ROWS};
use inlet_core::partition::{UNPARTITIONED, partition_rows};
use inlet_core::pk::PkCodecError;
use inlet_core::pk::evolve::decode_images;
use inlet_core::pk::key::KeyEncoder;
use inlet_core::table::{BUCKET_COLUMN, OFFSET_COLUMN, TableInfo};

use crate::error::FetchError;
use crate::fetch::{Reader, table_and_projection};

/// The rows a lookup found.
#[derive(Debug)]
pub struct LookupResult {
    /// One row per key found, in the order of the keys: the asked columns (all when none
    /// were asked for), then `_offset` (the changelog offset that wrote the row) and
    /// `_bucket`.
    pub rows: RecordBatch,
    /// For each key (or prefix), in order: whether it has a current row.
    pub found: Vec<bool>,
    /// A prefix lookup stopped at its row limit.
    pub truncated: bool,
}

impl Reader {
    /// The current rows of `keys` (batches of the primary-key columns, by name) in
    /// `database.table`, with `columns` (none: all).
    pub async fn lookup(
        &self,
        database: &str,
        table: &str,
        keys: &[RecordBatch],
        columns: &[String],
    ) -> Result<LookupResult, FetchError> {
        let (table, projection) =
            table_and_projection(self.index(), database, table, columns).await?;
        if !table.is_primary_key_table() {
            return Err(FetchError::NotAPrimaryKeyTable {
                table: table.qualified_name(),
            });
        }
        let keys = key_batch(&table, &table.descriptor.primary_key, keys)?;
        let partitions = self.key_partitions(&table, &keys).await?;
        let encoding = column_indices(&keys, &table.key_encoding_indices(), &table);
        let bucketing = column_indices(&keys, &table.bucket_key_indices(), &table);
        let buckets = bucket_rows(&keys, &bucketing, table.descriptor.bucket_count);
        let encoder = KeyEncoder::new(&keys, &encoding).map_err(invalid_keys(&table))?;
        // Each stream's keys, with their positions in the request; a key of a partition that
        // does not exist has no row.
        let mut by_stream: BTreeMap<StreamId, (Vec<usize>, Vec<Vec<u8>>)> = BTreeMap::new();
        for (row, bucket) in buckets.iter().enumerate() {
            let Some(partition) = partitions[row] else {
                continue;
            };
            let mut key = Vec::new();
            encoder
                .encode(row, &mut key)
                .map_err(invalid_keys(&table))?;
            let stream = StreamId::new(table.id, partition, Bucket(*bucket));
            let (positions, stream_keys) = by_stream.entry(stream).or_default();
            positions.push(row);
            stream_keys.push(key);
        }
        let index = self.index();
        let states = futures::future::try_join_all(by_stream.iter().map(
            |(stream, (positions, stream_keys))| async move {
                let states = index.lookup(*stream, stream_keys).await?;
                Ok::<_, FetchError>((stream.bucket.0, positions, states))
            },
        ))
        .await?;
        let mut found: Vec<Option<(u32, inlet_index::pk::KeyState)>> = vec![None; keys.num_rows()];
        for (bucket, positions, bucket_states) in states {
            for (position, state) in positions.iter().zip(bucket_states) {
                found[*position] = state.map(|state| (bucket, state));
            }
        }
        let hits: Vec<(u32, &inlet_index::pk::KeyState)> = found
            .iter()
            .flatten()
            .map(|(bucket, state)| (*bucket, state))
            .collect();
        Ok(LookupResult {
            rows: found_rows(&table, &projection, &hits)?,
            found: found.iter().map(Option::is_some).collect(),
            truncated: false,
        })
    }

    /// Every current row of `database.table` whose bucket key equals one of the values in
    /// `prefixes` (batches of the bucket-key columns, which the primary key starts with), in
    /// key order per value, with `columns` (none: all); at most `limit` rows
    /// (`MAX_PREFIX_LOOKUP_ROWS` at most, and 0 means that), then `truncated`. `found` says
    /// per value whether it matched a row.
    pub async fn lookup_prefix(
        &self,
        database: &str,
        table: &str,
        prefixes: &[RecordBatch],
        columns: &[String],
        limit: usize,
    ) -> Result<LookupResult, FetchError> {
        let (table, projection) =
            table_and_projection(self.index(), database, table, columns).await?;
        if !table.is_primary_key_table() {
            return Err(FetchError::NotAPrimaryKeyTable {
                table: table.qualified_name(),
            });
        }
        let values = key_batch(&table, &table.descriptor.bucket_key, prefixes)?;
        let all: Vec<usize> = (0..values.num_columns()).collect();
        let buckets = bucket_rows(&values, &all, table.descriptor.bucket_count);
        let encoder = KeyEncoder::new(&values, &all).map_err(invalid_keys(&table))?;
        let limit = if limit == 0 {
            MAX_PREFIX_LOOKUP_ROWS
        } else {
            limit.min(MAX_PREFIX_LOOKUP_ROWS)
        };
        // A bucket key without the partition columns names no partition: every partition's
        // stream of the bucket is looked in, in partition order (the owner's listing, so a
        // partition an acked upsert just created is not missed).
        // (Only the owner's partitions are taken: the rows decode with the table the
        // projection was made for.)
        let partitions = match table.descriptor.partition_key.is_empty() {
            true => vec![UNPARTITIONED],
            false => {
                let owners = self
                    .index()
                    .table_from_owner(&table.database, &table.name)
                    .await?;
                inlet_index::table_partitions(&owners)
            }
        };
        let mut hits: Vec<(u32, inlet_index::pk::KeyState)> = Vec::new();
        let mut found = Vec::with_capacity(values.num_rows());
        let mut truncated = false;
        'values: for (row, bucket) in buckets.iter().enumerate() {
            let mut prefix = Vec::new();
            encoder
                .encode(row, &mut prefix)
                .map_err(invalid_keys(&table))?;
            let mut matched = false;
            for partition in &partitions {
                let stream = StreamId::new(table.id, *partition, Bucket(*bucket));
                // One more than fits, to know whether the limit cut the answer.
                let room = limit - hits.len();
                let mut states = self
                    .index()
                    .lookup_prefix(stream, &prefix, room + 1)
                    .await?;
                if states.len() > room {
                    states.truncate(room);
                    truncated = true;
                }
                matched |= !states.is_empty();
                hits.extend(states.into_iter().map(|state| (*bucket, state)));
                if truncated {
                    found.push(matched);
                    found.resize(values.num_rows(), false);
                    break 'values;
                }
            }
            found.push(matched);
        }
        let hits: Vec<(u32, &inlet_index::pk::KeyState)> = hits
            .iter()
            .map(|(bucket, state)| (*bucket, state))
            .collect();
        Ok(LookupResult {
            rows: found_rows(&table, &projection, &hits)?,
            found,
            truncated,
        })
    }
}

impl Reader {
    /// The partition of each key of a partitioned table (`None`: no such partition, so no
    /// row): a partition this process's table lacks may have been created by an acked
    /// upsert, so the owner is asked before a key misses.
    async fn key_partitions(
        &self,
        table: &TableInfo,
        keys: &RecordBatch,
    ) -> Result<Vec<Option<PartitionId>>, FetchError> {
        let columns = &table.descriptor.partition_key;
        if columns.is_empty() {
            return Ok(vec![Some(UNPARTITIONED); keys.num_rows()]);
        }
        let groups = partition_rows(keys, columns).map_err(|e| FetchError::InvalidKeys {
            table: table.qualified_name(),
            reason: e.to_string(),
        })?;
        let known = groups
            .iter()
            .all(|(values, _)| table.partitions.find(values).is_some());
        let partitions = match known {
            true => table.partitions.clone(),
            false => {
                let owners = self
                    .index()
                    .table_from_owner(&table.database, &table.name)
                    .await?;
                owners.partitions.clone()
            }
        };
        let mut of_key = vec![None; keys.num_rows()];
        for (values, rows) in &groups {
            let partition = partitions.find(values);
            for row in rows {
                of_key[*row as usize] = partition;
            }
        }
        Ok(of_key)
    }
}

/// The found rows as the reply batch: the projected columns, then `_offset` and `_bucket`.
fn found_rows(
    table: &TableInfo,
    projection: &[usize],
    hits: &[(u32, &inlet_index::pk::KeyState)],
) -> Result<RecordBatch, FetchError> {
    let images: Vec<&[u8]> = hits.iter().map(|(_, s)| s.image.as_slice()).collect();
    let rows = decode_images(table, &images).map_err(|e| {
        let message = format!(
            "key state of table {} does not decode: {e}",
            table.qualified_name()
        );
        FetchError::Index(match e {
            // Written after an ALTER this reader's catalog has not caught up with yet.
            PkCodecError::NewerSchema { .. } => inlet_index::IndexError::Unavailable(message),
            _ => inlet_index::IndexError::Storage(message),
        })
    })?;
    let mut fields: Vec<Field> = projection
        .iter()
        .map(|i| without_column_id(table.descriptor.schema.field(*i)))
        .collect();
    let mut output: Vec<ArrayRef> = projection.iter().map(|i| rows.column(*i).clone()).collect();
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    output.push(Arc::new(Int64Array::from_iter_values(
        hits.iter().map(|(_, s)| s.offset.0 as i64),
    )));
    fields.push(Field::new(BUCKET_COLUMN, DataType::Int32, false));
    output.push(Arc::new(Int32Array::from_iter_values(
        hits.iter().map(|(bucket, _)| *bucket as i32),
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), output).map_err(|e| {
        FetchError::Index(inlet_index::IndexError::Storage(format!(
            "lookup rows of table {}: {e}",
            table.qualified_name()
        )))
    })
}

fn invalid_keys(table: &TableInfo) -> impl Fn(inlet_core::pk::PkCodecError) -> FetchError + '_ {
    move |e| FetchError::InvalidKeys {
        table: table.qualified_name(),
        reason: e.to_string(),
    }
}

/// The `columns` (the primary key's, or the bucket key's, in that order) of `batches`,
/// checked: each by name, of the column's type, without nulls; no other columns.
fn key_batch(
    table: &TableInfo,
    columns: &[String],
    batches: &[RecordBatch],
) -> Result<RecordBatch, FetchError> {
    let invalid = |reason: String| FetchError::InvalidKeys {
        table: table.qualified_name(),
        reason,
    };
    let schema = &table.descriptor.schema;
    let fields: Vec<Field> = columns
        .iter()
        .filter_map(|name| schema.field_with_name(name).ok().cloned())
        .collect();
    let key_schema = Arc::new(Schema::new(fields));
    let mut parts = Vec::with_capacity(batches.len());
    let mut rows = 0usize;
    for batch in batches {
        if let Some(extra) = batch
            .schema()
            .fields()
            .iter()
            .find(|f| key_schema.field_with_name(f.name()).is_err())
        {
            return Err(invalid(format!(
                "column `{}` is not a key column here (expected: {})",
                extra.name(),
                columns.join(", ")
            )));
        }
        let mut columns = Vec::with_capacity(key_schema.fields().len());
        for field in key_schema.fields() {
            let column = batch
                .column_by_name(field.name())
                .ok_or_else(|| invalid(format!("key column `{}` is missing", field.name())))?;
            if column.data_type() != field.data_type() {
                return Err(invalid(format!(
                    "key column `{}` is {}, expected {}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                )));
            }
            if column.null_count() > 0 {
                return Err(invalid(format!("key column `{}` has nulls", field.name())));
            }
            columns.push(column.clone());
        }
        rows += batch.num_rows();
        if rows > MAX_REQUEST_ROWS {
            return Err(invalid(format!(
                "more than {MAX_REQUEST_ROWS} keys in one lookup; split it"
            )));
        }
        parts.push(
            RecordBatch::try_new(key_schema.clone(), columns)
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    arrow_select::concat::concat_batches(&key_schema, &parts).map_err(|e| invalid(e.to_string()))
}

/// Where the table's columns at `table_indices` are in the key batch.
fn column_indices(keys: &RecordBatch, table_indices: &[usize], table: &TableInfo) -> Vec<usize> {
    table_indices
        .iter()
        .filter_map(|i| {
            keys.schema()
                .index_of(table.descriptor.schema.field(*i).name())
                .ok()
        })
        .collect()
}
