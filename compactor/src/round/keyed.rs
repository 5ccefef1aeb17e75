//! The write phase of a round of a primary-key table: the lake table holds each key's
//! current row, so engines reading it see the table as lookups do.
//!
//! Per bucket, from the lake watermark on (whole chunks, the same limits as a log table's
//! round): each chunk's rows with the after images of its change record
//! (`inlet_index::pk`) give every offset's row and what it did to its key. The round keeps
//! the newest outcome per key (its row, or deleted), then:
//!
//! 1. asks the index where each changed key's previous row is in the lake (`0x42` lake rows,
//!    written by the previous commits) and writes one position-delete file of those rows;
//! 2. writes the newest row of every key that still has one, in offset order, as data files
//!    (`_offset` is the offset that wrote the row, as a lookup reports it) — a row's position
//!    in its file follows from the files' row counts, in the order they were written;
//! 3. hands the commit each changed key's new lake row (or none), recorded in the same index
//!    batch as the metadata pointer, so the next round deletes exactly what this one wrote.
//!
//! A key deleted before its first tiering, or changed and deleted within one round, leaves
//! nothing in the lake. The chunks stay in the index: they and their change records are the
//! table's changelog, which the lake does not hold.

use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use arrow_select::interleave::interleave_record_batch;
use inlet_core::ids::{Bucket, Offset, StreamId};
use inlet_core::pk::PkCodecError;
use inlet_core::pk::evolve::decode_images;
use inlet_core::pk::key::KeyEncoder;
use inlet_core::table::read_schema;
use inlet_index::pk::{Change, LakeRow};
use inlet_index::{ChunkEntry, MAX_LAKE_ROWS_PER_CALL};
use inlet_reader::with_system_columns;

use super::{ChunkPages, NextChunk, Round, Written};
use crate::error::RoundError;
use crate::lake::LakeAppend;
use crate::options::Failpoint;

/// What a round's commit records per changed key: where its current row now is in the lake.
pub(crate) type KeyRows = Vec<(Bucket, Vec<u8>, Option<LakeRow>)>;

/// The newest outcome of one key in a round.
enum Newest {
    /// Row `row` of the round's batch `source` (whose `_offset` wrote it).
    Row {
        source: usize,
        row: usize,
    },
    Deleted,
}

/// One bucket's changes in a round: each chunk's rows as the key got them, and per key its
/// newest outcome.
struct KeyedBucket {
    stream: StreamId,
    /// Per chunk read: its rows, with the merge's after image where it made one.
    sources: Vec<RecordBatch>,
    /// Each changed key's newest outcome in the round, by encoded key.
    newest: HashMap<Vec<u8>, Newest>,
}

impl Round<'_> {
    /// Step 1 for a primary-key table: tiers each pending bucket's changes (see the module
    /// docs) into `append`, returning what was read and the lake row of each changed key.
    pub(super) async fn write_keyed(
        &mut self,
        append: &mut LakeAppend,
        pending: &[(StreamId, Offset, Offset)],
        cursor: u32,
    ) -> Result<(Written, KeyRows), RoundError> {
        let schema = &self.info.descriptor.schema;
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        let read_schema = read_schema(schema, &all);
        let mut written = Written::new(cursor);
        let mut key_rows = Vec::new();
        for (stream, from, tail) in pending {
            let mut bucket = KeyedBucket {
                stream: *stream,
                sources: Vec::new(),
                newest: HashMap::new(),
            };
            let mut chunks = ChunkPages::new(self.index, *stream, *from);
            let mut next = *from;
            let mut full = false;
            loop {
                let entry = match self
                    .next_chunk(&mut chunks, *stream, next, *tail, &written)
                    .await?
                {
                    NextChunk::Read(entry) => entry,
                    NextChunk::BucketDone => break,
                    NextChunk::RoundFull => {
                        full = true;
                        break;
                    }
                };
                let batch = self.read_chunk(*stream, &entry, &all, &read_schema).await?;
                self.add_chunk(&mut bucket, &entry, batch, &read_schema)
                    .await?;
                next = entry.end_offset();
                written.read(&entry);
                self.lease
                    .renew_if_due(self.index, self.info, self.options, self.env)
                    .await?;
            }
            if next > *from {
                self.write_bucket(append, bucket, next, &mut key_rows)
                    .await?;
            }
            if full {
                written.round_full(stream.bucket);
                break;
            }
        }
        self.failpoint(Failpoint::AfterDataFiles)?;
        Ok((written, key_rows))
    }

    /// Adds one chunk (`batch`: its rows with system columns) to `bucket`, with its change
    /// record: rows whose merge made an after image of its own take that image.
    async fn add_chunk(
        &self,
        bucket: &mut KeyedBucket,
        entry: &ChunkEntry,
        batch: RecordBatch,
        read_schema: &SchemaRef,
    ) -> Result<(), RoundError> {
        let stream = bucket.stream;
        let corrupt = |reason: String| RoundError::CorruptChunk {
            stream,
            offset: entry.base_offset,
            object: entry.object.path(),
            reason,
        };
        let record = self
            .index
            .change_record(stream, entry.end_offset())
            .await?
            .ok_or_else(|| corrupt("the primary-key chunk has no change record".to_owned()))?;
        if record.changes.len() != batch.num_rows() {
            return Err(corrupt(format!(
                "its change record lists {} rows, the chunk has {}",
                record.changes.len(),
                batch.num_rows()
            )));
        }
        let keys = KeyEncoder::new(&batch, &self.info.key_encoding_indices())
            .map_err(|e| corrupt(format!("primary key: {e}")))?;
        let source = bucket.sources.len();
        for (row, change) in record.changes.iter().enumerate() {
            let newest = match change {
                Change::Ignored => continue,
                Change::Insert { .. } | Change::Update { .. } => Newest::Row { source, row },
                Change::Delete { .. } => Newest::Deleted,
            };
            let mut key = Vec::new();
            keys.encode(row, &mut key)
                .map_err(|e| corrupt(format!("primary key of row {row}: {e}")))?;
            bucket.newest.insert(key, newest);
        }
        drop(keys);
        let images: Vec<&[u8]> = record
            .changes
            .iter()
            .filter_map(|change| match change {
                Change::Insert { after: Some(after) }
                | Change::Update {
                    after: Some(after), ..
                } => Some(after.as_slice()),
                _ => None,
            })
            .collect();
        let rows = if images.is_empty() {
            batch
        } else {
            // After images are of the schema the owner merged under: a later one than this
            // round's if the table was altered meanwhile (the next round loads it again).
            let decoded = decode_images(self.info, &images).map_err(|error| match error {
                PkCodecError::NewerSchema { .. } => RoundError::TableChanged {
                    stream,
                    reason: error.to_string(),
                },
                other => corrupt(format!(
                    "a change record's after image does not decode: {other}"
                )),
            })?;
            with_images(
                &self.info.descriptor.schema,
                &batch,
                &record.changes,
                decoded,
                read_schema,
                entry,
                stream,
            )
            .map_err(corrupt)?
        };
        bucket.sources.push(rows);
        Ok(())
    }

    /// Writes `bucket`'s newest rows and the position deletes of the rows they replace, and
    /// moves its watermark to `end`; adds each changed key's new lake row to `key_rows`.
    async fn write_bucket(
        &self,
        append: &mut LakeAppend,
        bucket: KeyedBucket,
        end: Offset,
        key_rows: &mut KeyRows,
    ) -> Result<(), RoundError> {
        let stream = bucket.stream;
        let mut changed: Vec<(Vec<u8>, Newest)> = bucket.newest.into_iter().collect();
        changed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut previous = Vec::with_capacity(changed.len());
        for page in changed.chunks(MAX_LAKE_ROWS_PER_CALL) {
            let keys: Vec<Vec<u8>> = page.iter().map(|(key, _)| key.clone()).collect();
            previous.extend(self.index.lake_rows(stream, &keys).await?);
        }
        let deletes: Vec<(String, u64)> = previous
            .iter()
            .flatten()
            .map(|row| (row.path.clone(), row.position))
            .collect();

        // The live rows in offset order: sources are in offset order, and rows within each.
        let mut live: Vec<(usize, usize, usize)> = changed
            .iter()
            .enumerate()
            .filter_map(|(i, (_, newest))| match newest {
                Newest::Row { source, row } => Some((*source, *row, i)),
                Newest::Deleted => None,
            })
            .collect();
        live.sort_unstable();
        let files_before = append.bucket_files(stream.bucket).len();
        if !live.is_empty() {
            let sources: Vec<&RecordBatch> = bucket.sources.iter().collect();
            let picks: Vec<(usize, usize)> = live.iter().map(|(s, r, _)| (*s, *r)).collect();
            let rows = interleave_record_batch(&sources, &picks).map_err(|e| {
                RoundError::CorruptChunk {
                    stream,
                    offset: end,
                    object: String::new(),
                    reason: format!("the newest rows of the round do not combine: {e}"),
                }
            })?;
            append.write(stream.bucket, &rows).await?;
        }
        append.advance(stream.bucket, end).await?;

        // Row i of the bucket's new rows is in the file whose rows span it.
        let files = &append.bucket_files(stream.bucket)[files_before..];
        let mut positions = Vec::with_capacity(live.len());
        for file in files {
            for position in 0..file.record_count() {
                positions.push(LakeRow {
                    path: file.file_path().to_owned(),
                    position,
                });
            }
        }
        if positions.len() != live.len() {
            return Err(RoundError::BadDataFile {
                table: self.info.id,
                path: files
                    .first()
                    .map(|f| f.file_path().to_owned())
                    .unwrap_or_default(),
                reason: format!(
                    "bucket {}: {} rows written, the data files hold {}",
                    stream.bucket.0,
                    live.len(),
                    positions.len()
                ),
            });
        }
        let mut rows: Vec<Option<LakeRow>> = vec![None; changed.len()];
        for ((_, _, key), position) in live.iter().zip(positions) {
            rows[*key] = Some(position);
        }
        append.delete_rows(stream.bucket, deletes).await?;
        for (((key, _), row), before) in changed.into_iter().zip(rows).zip(previous) {
            // A key that never reached the lake and has no row now has nothing to record.
            if row.is_some() || before.is_some() {
                key_rows.push((stream.bucket, key, row));
            }
        }
        Ok(())
    }
}

/// The chunk's rows (`batch`, with system columns) with each row whose change carries its
/// own after image (`images`, in row order) replaced by that image.
fn with_images(
    table_schema: &SchemaRef,
    batch: &RecordBatch,
    changes: &[Change],
    decoded: RecordBatch,
    read_schema: &SchemaRef,
    entry: &ChunkEntry,
    stream: StreamId,
) -> Result<RecordBatch, String> {
    let chunk_rows = batch
        .project(&(0..table_schema.fields().len()).collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    let decoded = RecordBatch::try_new(chunk_rows.schema(), decoded.columns().to_vec())
        .map_err(|e| format!("after images do not match the chunk: {e}"))?;
    let mut image = 0;
    let picks: Vec<(usize, usize)> = changes
        .iter()
        .enumerate()
        .map(|(row, change)| match change {
            Change::Insert { after: Some(_) } | Change::Update { after: Some(_), .. } => {
                image += 1;
                (1, image - 1)
            }
            _ => (0, row),
        })
        .collect();
    let merged = interleave_record_batch(&[&chunk_rows, &decoded], &picks)
        .map_err(|e| format!("after images do not combine with the chunk's rows: {e}"))?;
    with_system_columns(
        read_schema,
        stream,
        &merged,
        entry.base_offset,
        entry.commit_ts,
    )
    .map_err(|e| e.to_string())
}
