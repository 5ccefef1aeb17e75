//! Changelog reads of primary-key tables. A primary-key chunk holds the rows as written
//! (the after images of upserts; keys and placeholders for deletes), and its change record
//! in the index says what each row did (`inlet_index::pk`). Together they give the
//! changelog: per row, in offset order, nothing (ignored by the merge engine), `+I` (the
//! chunk's row), `-U` (the before image from the record) then `+U` (the chunk's row), or
//! `-D` (the before image). Where the merge made a row of its own (a partial update, an
//! aggregation) the record holds it as the after image, used instead of the chunk's row.
//! The `-U` and `+U` of one update share its offset.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt32Array,
};
use arrow_select::concat::concat_batches;
use arrow_select::take::take;
use inlet_core::ids::StreamId;
use inlet_core::pk::PkCodecError;
use inlet_core::pk::evolve::decode_images;
use inlet_core::table::CHANGE_TYPE_COLUMN;
use inlet_index::ChunkEntry;
use inlet_index::pk::Change;

use crate::error::FetchError;
use crate::fetch::FetchContext;

/// Where to cut `batch` (changelog rows, or any fetched rows) to keep about `len` rows
/// from the start: `len`, or one more when row `len - 1` is a `-U`, so an update's `-U` and
/// `+U` always travel together (a consumer that stops or resumes at a batch boundary never
/// holds a before image without its after image).
pub(crate) fn cut(batch: &RecordBatch, len: usize) -> usize {
    if len == 0 || len >= batch.num_rows() {
        return len.min(batch.num_rows());
    }
    let before = batch.column_by_name(CHANGE_TYPE_COLUMN).and_then(|kinds| {
        kinds
            .as_string_opt::<i32>()
            .map(|k| k.value(len - 1) == "-U")
    });
    if before == Some(true) { len + 1 } else { len }
}

/// How a fetch reads a primary-key table's changelog.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChangelogRead {
    pub(crate) omit_update_before: bool,
}

impl ChangelogRead {
    /// The changelog rows of the chunk `entry`, whose projected rows are `batch`, from its
    /// row `skip` on, in the fetch's schema (with `_change_type`).
    pub(crate) async fn rows(
        &self,
        context: &FetchContext,
        stream: StreamId,
        entry: &ChunkEntry,
        batch: &RecordBatch,
        skip: usize,
    ) -> Result<RecordBatch, FetchError> {
        let corrupt = |message: String| FetchError::Corrupt { stream, message };
        let record = context
            .index
            .change_record(stream, entry.end_offset())
            .await?
            .ok_or_else(|| {
                corrupt(format!(
                    "primary-key chunk ending at offset {} has no change record",
                    entry.end_offset()
                ))
            })?;
        if record.changes.len() != batch.num_rows() {
            return Err(corrupt(format!(
                "change record of the chunk ending at offset {} lists {} rows, the chunk has {}",
                entry.end_offset(),
                record.changes.len(),
                batch.num_rows()
            )));
        }
        // Which row each output row takes (the chunk's rows first, then the record's images),
        // its offset and its change type.
        let rows = batch.num_rows();
        let mut images: Vec<&[u8]> = Vec::new();
        let mut picks: Vec<u32> = Vec::new();
        let mut offsets: Vec<i64> = Vec::new();
        let mut kinds: Vec<&'static str> = Vec::new();
        for (row, change) in record.changes.iter().enumerate().skip(skip) {
            let offset = (entry.base_offset.0 + row as u64) as i64;
            let (before, after) = match change {
                Change::Ignored => (None, None),
                Change::Insert { after } => (None, Some((after, "+I"))),
                Change::Update { after, .. } if self.omit_update_before => {
                    (None, Some((after, "+U")))
                }
                Change::Update { before, after } => (Some((before, "-U")), Some((after, "+U"))),
                Change::Delete { before } => (Some((before, "-D")), None),
            };
            if let Some((image, kind)) = before {
                picks.push((rows + images.len()) as u32);
                images.push(image);
                offsets.push(offset);
                kinds.push(kind);
            }
            if let Some((after, kind)) = after {
                // The row the key got: the chunk's, unless the merge made one of its own.
                match after {
                    Some(image) => {
                        picks.push((rows + images.len()) as u32);
                        images.push(image);
                    }
                    None => picks.push(row as u32),
                }
                offsets.push(offset);
                kinds.push(kind);
            }
        }
        let image_rows = decode_images(&context.table, &images).map_err(|e| match e {
            PkCodecError::NewerSchema { .. } => FetchError::SchemaChanged {
                stream,
                message: e.to_string(),
            },
            _ => corrupt(format!("a change record's image does not decode: {e}")),
        })?;
        let projected = image_rows
            .project(&context.projection)
            .map_err(|e| corrupt(format!("change record images: {e}")))?;
        let sources = concat_batches(&batch.schema(), [batch, &projected])
            .map_err(|e| corrupt(format!("change record images do not match the chunk: {e}")))?;
        let picks = UInt32Array::from(picks);
        let mut columns: Vec<ArrayRef> = sources
            .columns()
            .iter()
            .map(|column| take(column, &picks, None))
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let count = offsets.len();
        columns.push(Arc::new(Int32Array::from(vec![
            stream.bucket.0 as i32;
            count
        ])));
        columns.push(Arc::new(Int64Array::from(offsets)));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![entry.commit_ts.0; count]).with_timezone("+00:00"),
        ));
        columns.push(Arc::new(StringArray::from(kinds)));
        RecordBatch::try_new(context.schema.clone(), columns)
            .map_err(|e| corrupt(format!("changelog rows: {e}")))
    }
}
