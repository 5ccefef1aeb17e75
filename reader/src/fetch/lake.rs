//! Lake reads: the offsets of a stream below its lake watermark, read from the lake's Parquet
//! data files.
//!
//! When the compactor commits a round it moves the stream's watermark and removes the chunk
//! entries below it in the same index batch (their WAL objects are deleted after a grace
//! period), so from then on those offsets exist only in the lake. The lake file index lists,
//! per stream, each data file with its dense offset range `[base_offset, base_offset +
//! row_count)`; a file holds one bucket, sorted by `_offset`. Files are read only up to the
//! watermark: an entry above it belongs to a commit that may not be durable yet.
//!
//! A file is read through the page cache ([`CachedFile`], parquet's `AsyncFileReader` over
//! [`PagedCache`]), so hot lake reads cost no GET. Only the projected columns plus `_offset`
//! and `_timestamp` are read (a projection mask over the file's root columns, by name), and
//! only the row groups holding wanted offsets, the rows before the start skipped by a row
//! selection. What comes out is checked against the index entry (row count, first offset, and
//! every offset dense from there) and cast to the table's types where the lake stores another
//! Arrow type (e.g. Iceberg `int` for an `Int8` column), so a lake batch is identical in
//! schema to a WAL batch: the projected columns, then `_bucket`, `_offset`, `_timestamp`.
//!
//! Parquet decoding runs inline in the bucket's task, like WAL decoding.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, Int32Array, RecordBatch, new_null_array};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::DataType;
use futures::future::{BoxFuture, try_join_all};
use futures::{FutureExt, StreamExt};
use inlet_cache::{CacheError, PagedCache};
use inlet_core::column_ids::ColumnPositions;
use inlet_core::column_types::widens;
use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::{Offset, StreamId, TimestampMicros};
use inlet_core::limits::MAX_FETCH_BATCH_ROWS;
use inlet_core::table::{OFFSET_COLUMN, TIMESTAMP_COLUMN};
use inlet_index::{LakeFileCursor, LakeFileEntry, LogRead, StreamTail};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use slatedb::bytes::Bytes;
use slatedb::object_store::path::Path;
use tokio::sync::mpsc;

use super::{FetchContext, FetchedBatch, Reached};
use crate::chunk::pruned::{COALESCE_GAP_BYTES, coalesce, cut};
use crate::error::FetchError;

/// Bytes at the end of a lake file read with its first GET, to get the Parquet footer in one
/// request (a longer footer takes a second). Larger = fewer second GETs for files with many
/// row groups or columns, more bytes of the last column chunk read for nothing; a footer of
/// Iceberg's files is a few KiB for a handful of row groups. The page cache rounds the read
/// up to whole pages anyway.
const FOOTER_PREFETCH_BYTES: usize = 16 * 1024;

/// How often a reader that found chunk entries gone re-reads the lake watermark while the
/// lake commit that removed them becomes durable (see [`tiered`]).
const WATERMARK_POLL: Duration = Duration::from_millis(10);

/// How many times it re-reads it before it reports the missing offsets as corruption. The
/// window is one durable index write; 1000 polls (10 s) is far longer than any.
const WATERMARK_POLLS: u32 = 1000;

/// Reads the rows `from..until` of `stream` from the lake into `sender`, `until` being at most
/// the lake watermark. Returns where it stopped: `until`, or closed if the receiver is gone.
pub(super) async fn read_lake(
    context: &FetchContext,
    stream: StreamId,
    from: Offset,
    until: Offset,
    tail: &StreamTail,
    sender: &mpsc::Sender<Result<FetchedBatch, FetchError>>,
) -> Result<Reached, FetchError> {
    let mut next = from;
    let mut files = LakeFileCursor::new(context.index.clone(), stream, next);
    // The file that was gone when last read: found again in the index, it is lost.
    let mut gone: Option<String> = None;
    while next < until {
        let file = match files.next().await? {
            Some(file) if file.base_offset <= next => file,
            found => return Err(missing(&context.index, stream, next, until, found).await),
        };
        let end = file.end_offset().min(until);
        match read_file(context, stream, &file, next..end, tail, sender).await {
            Ok(Reached::At(reached)) => next = reached,
            Ok(Reached::Closed) => return Ok(Reached::Closed),
            // Replaced (or expired) since the cursor's page was read: the index names the
            // file that holds `next` now, or says it expired. The rows before `next` were
            // sent; the read resumes at `next`.
            Err(FetchError::LakeFileGone { path, .. }) if gone.as_deref() != Some(&path) => {
                gone = Some(path);
                files = LakeFileCursor::new(context.index.clone(), stream, next);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(Reached::At(next))
}

/// Why no lake file holds `next`, below the watermark `until`: retention removed it (the
/// stream's earliest offset moved past it), or the lake file index is corrupt.
async fn missing(
    index: &Arc<dyn LogRead>,
    stream: StreamId,
    next: Offset,
    until: Offset,
    found: Option<LakeFileEntry>,
) -> FetchError {
    let tail = match index.tail(stream).await {
        Ok(tail) => tail,
        Err(error) => return error.into(),
    };
    if next < tail.earliest_offset {
        return FetchError::OffsetOutOfRange {
            stream,
            offset: next,
            earliest: tail.earliest_offset,
            latest: tail.next_offset,
        };
    }
    let message = match found {
        Some(file) => format!(
            "offset {next} is below the lake watermark {until} but no lake file holds it: the \
             next file, {}, starts at {}",
            file.path, file.base_offset
        ),
        None => format!(
            "offset {next} is below the lake watermark {until} but the lake file index ends \
             before it"
        ),
    };
    FetchError::Corrupt { stream, message }
}

/// Whether `next`, which the chunk index no longer holds, was tiered into the lake: the
/// stream's lake watermark is past it. A lake commit removes chunk entries in the same index
/// batch that adds its files, and index scans see that batch before the watermark is
/// published (which happens once the batch is durable). So if a lake file holds `next`, that
/// commit is in flight: wait for its watermark rather than read past the published one.
pub(super) async fn tiered(
    index: &Arc<dyn LogRead>,
    stream: StreamId,
    next: Offset,
) -> Result<bool, FetchError> {
    if index.lake_watermark(stream).await?.offset > next {
        return Ok(true);
    }
    let mut files = LakeFileCursor::new(index.clone(), stream, next);
    let held = files.next().await?;
    if held.is_none_or(|file| file.base_offset > next) {
        return Ok(false);
    }
    wait_for_watermark(index, stream, next).await
}

/// Waits for the published lake watermark of `stream` to pass `offset`, which a lake file
/// entry already visible in the index holds: the commit that added it is becoming durable.
/// False if it did not within [`WATERMARK_POLLS`].
async fn wait_for_watermark(
    index: &Arc<dyn LogRead>,
    stream: StreamId,
    offset: Offset,
) -> Result<bool, FetchError> {
    for _ in 0..WATERMARK_POLLS {
        tokio::time::sleep(WATERMARK_POLL).await;
        if let Some(error) = index.stopped() {
            return Err(error.into());
        }
        if index.lake_watermark(stream).await?.offset > offset {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads the rows `rows` of one lake file into `sender`.
async fn read_file(
    context: &FetchContext,
    stream: StreamId,
    file: &LakeFileEntry,
    rows: Range<Offset>,
    tail: &StreamTail,
    sender: &mpsc::Sender<Result<FetchedBatch, FetchError>>,
) -> Result<Reached, FetchError> {
    let (path, input, metadata) = open(&context.cache, stream, file).await?;
    let table = &context.table;
    // The file names its columns as the table schema it was written under did: a column is
    // found under the name it had then (renamed since, or not there: added since, or a new
    // column of a dropped one's name), by column id.
    let written = file
        .schema_id
        .unwrap_or_else(|| table.schema_before_renames());
    let Some(written_schema) = table.schema_of(written) else {
        return Err(FetchError::SchemaChanged {
            stream,
            message: format!(
                "lake file {path} has the columns of schema {}, newer than schema {} this                  fetch started with",
                written.0, table.schema_id.0
            ),
        });
    };
    let mut roots = Vec::with_capacity(context.projection.len() + 2);
    // The file's name of each projected column, `None` if the file lacks it: those read as
    // nulls.
    let mut names: Vec<Option<&str>> = Vec::with_capacity(context.projection.len());
    let positions = ColumnPositions::of(written_schema);
    for &index in context.projection.iter() {
        let wanted = table.descriptor.schema.field(index);
        let name = positions
            .of_field(wanted)
            .map(|i| written_schema.field(i).name().as_str())
            .and_then(|name| Some((has_root(metadata.metadata(), name)?, name)));
        names.push(name.map(|(root, name)| {
            roots.push(root);
            name
        }));
    }
    for name in [OFFSET_COLUMN, TIMESTAMP_COLUMN] {
        roots.push(root_index(stream, &path, metadata.metadata(), name)?);
    }
    let mask = ProjectionMask::roots(metadata.parquet_schema(), roots);
    let group_rows: Vec<u64> = metadata
        .metadata()
        .row_groups()
        .iter()
        .map(|group| group.num_rows() as u64)
        .collect();
    let base = file.base_offset.0;
    let (groups, selection) = select_rows(&group_rows, rows.start.0 - base..rows.end.0 - base);
    let mut batches = ParquetRecordBatchStreamBuilder::new_with_metadata(input, metadata)
        .with_projection(mask)
        .with_row_groups(groups)
        .with_row_selection(selection)
        .with_batch_size(MAX_FETCH_BATCH_ROWS)
        .build()
        .map_err(|error| parquet_error(stream, &path, error))?;

    let mut next = rows.start;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|error| parquet_error(stream, &path, error))?;
        let end = next.0 + batch.num_rows() as u64;
        if end > rows.end.0 {
            return Err(corrupt(
                stream,
                &path,
                format!(
                    "asked for offsets {}..{}, it returned rows up to {end}",
                    rows.start, rows.end
                ),
            ));
        }
        let fetched = FetchedBatch {
            partition: stream.partition,
            bucket: stream.bucket,
            batch: conform(context, stream, &path, &batch, next, &names)?,
            high_watermark: tail.next_offset,
            snapshot: super::SnapshotPart::None,
        };
        if sender.send(Ok(fetched)).await.is_err() {
            return Ok(Reached::Closed);
        }
        next = Offset(end);
    }
    if next != rows.end {
        return Err(corrupt(
            stream,
            &path,
            format!(
                "asked for offsets {}..{}, it ended at {next}",
                rows.start, rows.end
            ),
        ));
    }
    Ok(Reached::At(next))
}

/// The first offset of `stream` below its lake watermark (and at or after `earliest`) whose
/// row was committed at or after `ts`, or `None` if no lake row is that late.
///
/// Exact: the lake file index's time ranges find the file, then the file's `_timestamp`
/// column (only that column, from the first row group whose statistics allow a late enough
/// row) gives the row.
pub(super) async fn offset_for_timestamp(
    index: &Arc<dyn LogRead>,
    cache: &PagedCache,
    stream: StreamId,
    ts: TimestampMicros,
    earliest: Offset,
) -> Result<Option<Offset>, FetchError> {
    let watermark = index.lake_watermark(stream).await?.offset;
    let mut files = LakeFileCursor::new(index.clone(), stream, earliest);
    // As in `read_lake`: a file gone under the lookup is looked up again, once.
    let mut gone: Option<String> = None;
    while let Some(file) = files.next().await? {
        if file.max_ts < ts {
            continue;
        }
        // A file above the published watermark belongs to a commit in flight, which already
        // trimmed the time index the caller read: wait until it is durable to use the file.
        if file.end_offset() > watermark
            && !wait_for_watermark(index, stream, Offset(file.end_offset().0 - 1)).await?
        {
            break;
        }
        let offset = if file.min_ts >= ts {
            file.base_offset
        } else {
            match first_row_at_or_after(cache, stream, &file, ts).await {
                Ok(offset) => offset,
                Err(FetchError::LakeFileGone { path, .. }) if gone.as_deref() != Some(&path) => {
                    gone = Some(path);
                    files = LakeFileCursor::new(index.clone(), stream, file.base_offset);
                    continue;
                }
                Err(error) => return Err(error),
            }
        };
        return Ok(Some(offset.max(earliest)));
    }
    Ok(None)
}

/// The offset of the first row of `file` whose `_timestamp` is at or after `ts`, which the
/// file's entry says it has (`max_ts >= ts`).
async fn first_row_at_or_after(
    cache: &PagedCache,
    stream: StreamId,
    file: &LakeFileEntry,
    ts: TimestampMicros,
) -> Result<Offset, FetchError> {
    let (path, input, metadata) = open(cache, stream, file).await?;
    let parquet = metadata.metadata().clone();
    let root = root_index(stream, &path, &parquet, TIMESTAMP_COLUMN)?;
    let leaf = parquet
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|column| column.path().parts() == [TIMESTAMP_COLUMN]);
    // Skip the row groups whose statistics say every row is earlier.
    let mut first_row = 0;
    let mut first_group = None;
    for (i, group) in parquet.row_groups().iter().enumerate() {
        let latest = leaf.and_then(|leaf| match group.column(leaf).statistics() {
            Some(Statistics::Int64(statistics)) => statistics.max_opt().copied(),
            _ => None,
        });
        if latest.is_none_or(|latest| latest >= ts.0) {
            first_group = Some(i);
            break;
        }
        first_row += group.num_rows() as u64;
    }
    let not_found = || {
        corrupt(
            stream,
            &path,
            format!(
                "no row is at or after {} but the lake file index says its latest is {}",
                ts.0, file.max_ts.0
            ),
        )
    };
    let first_group = first_group.ok_or_else(not_found)?;
    let mut batches = ParquetRecordBatchStreamBuilder::new_with_metadata(input, metadata)
        .with_projection(ProjectionMask::roots(
            parquet.file_metadata().schema_descr(),
            [root],
        ))
        .with_row_groups((first_group..parquet.num_row_groups()).collect())
        .with_batch_size(MAX_FETCH_BATCH_ROWS)
        .build()
        .map_err(|error| parquet_error(stream, &path, error))?;
    let mut position = first_row;
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|error| parquet_error(stream, &path, error))?;
        let Some(timestamps) = batch
            .column(0)
            .as_primitive_opt::<TimestampMicrosecondType>()
        else {
            return Err(corrupt(
                stream,
                &path,
                format!(
                    "`{TIMESTAMP_COLUMN}` is {}, expected microseconds",
                    batch.column(0).data_type()
                ),
            ));
        };
        if let Some(i) = timestamps.values().iter().position(|value| *value >= ts.0) {
            return Ok(Offset(file.base_offset.0 + position + i as u64));
        }
        position += batch.num_rows() as u64;
    }
    Err(not_found())
}

/// Opens a lake file: reads its footer through the cache and checks it against the index.
async fn open(
    cache: &PagedCache,
    stream: StreamId,
    file: &LakeFileEntry,
) -> Result<(Path, CachedFile, ArrowReaderMetadata), FetchError> {
    let path = Path::parse(&file.path).map_err(|error| FetchError::Corrupt {
        stream,
        message: format!(
            "the lake file index names `{}`, not an object path: {error}",
            file.path
        ),
    })?;
    let mut input = CachedFile {
        cache: cache.clone(),
        path: path.clone(),
        size: file.file_size,
    };
    let metadata = ArrowReaderMetadata::load_async(&mut input, ArrowReaderOptions::new())
        .await
        .map_err(|error| parquet_error(stream, &path, error))?;
    check_entry(stream, &path, file, metadata.metadata())?;
    Ok((path, input, metadata))
}

/// Checks a file's footer against its index entry: the row count, and the first offset where
/// the statistics give it (every offset read is checked too, in [`conform`]).
fn check_entry(
    stream: StreamId,
    path: &Path,
    file: &LakeFileEntry,
    metadata: &ParquetMetaData,
) -> Result<(), FetchError> {
    let rows = metadata.file_metadata().num_rows();
    if u64::try_from(rows).ok() != Some(file.row_count) {
        return Err(corrupt(
            stream,
            path,
            format!(
                "it has {rows} rows, the lake file index says {}",
                file.row_count
            ),
        ));
    }
    let leaf = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|column| column.path().parts() == [OFFSET_COLUMN]);
    let first = leaf.and_then(|leaf| {
        let group = metadata.row_groups().first()?;
        match group.column(leaf).statistics()? {
            Statistics::Int64(statistics) => statistics.min_opt().copied(),
            _ => None,
        }
    });
    if let Some(first) = first
        && u64::try_from(first).ok() != Some(file.base_offset.0)
    {
        return Err(corrupt(
            stream,
            path,
            format!(
                "its first offset is {first}, the lake file index says {}",
                file.base_offset
            ),
        ));
    }
    Ok(())
}

/// The index of the file's root column `name`.
fn root_index(
    stream: StreamId,
    path: &Path,
    metadata: &ParquetMetaData,
    name: &str,
) -> Result<usize, FetchError> {
    has_root(metadata, name)
        .ok_or_else(|| corrupt(stream, path, format!("it has no column `{name}`")))
}

/// The index of the file's root column `name`, if it has one.
fn has_root(metadata: &ParquetMetaData, name: &str) -> Option<usize> {
    metadata
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .position(|field| field.name() == name)
}

/// The row groups holding the file rows `wanted` (positions in the file), and the selection
/// of exactly those rows within the groups.
fn select_rows(group_rows: &[u64], wanted: Range<u64>) -> (Vec<usize>, RowSelection) {
    let mut groups = Vec::new();
    let mut selectors = Vec::new();
    let mut start = 0;
    for (i, &len) in group_rows.iter().enumerate() {
        let end = start + len;
        if start < wanted.end && wanted.start < end {
            groups.push(i);
            let from = wanted.start.max(start) - start;
            let to = wanted.end.min(end) - start;
            if from > 0 {
                selectors.push(RowSelector::skip(from as usize));
            }
            selectors.push(RowSelector::select((to - from) as usize));
            if to < len {
                selectors.push(RowSelector::skip((len - to) as usize));
            }
        }
        start = end;
    }
    (groups, RowSelection::from(selectors))
}

/// A batch read from a lake file as the fetch returns it: the projected columns (found under
/// `names`, null where the file has none) in the table's types, then `_bucket`, `_offset`
/// (checked dense from `first`), `_timestamp`.
fn conform(
    context: &FetchContext,
    stream: StreamId,
    path: &Path,
    batch: &RecordBatch,
    first: Offset,
    names: &[Option<&str>],
) -> Result<RecordBatch, FetchError> {
    let rows = batch.num_rows();
    let corrupt = |message: String| {
        corrupt(
            stream,
            path,
            format!("offsets {first}..{}: {message}", first.0 + rows as u64),
        )
    };
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| corrupt(format!("column `{name}` was not read")))
    };
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let cast = |name: &str, data_type: &DataType| -> Result<ArrayRef, FetchError> {
        let array = column(name)?;
        if array.data_type() == data_type {
            return Ok(array.clone());
        }
        cast_with_options(array, data_type, &options).map_err(|error| {
            // A file written after the column widened, read by a fetch that started before:
            // the table changed, the file is fine (as `ChunkRead::read_under` says of chunks).
            if widens(data_type, array.data_type()) {
                return FetchError::SchemaChanged {
                    stream,
                    message: format!(
                        "column `{name}` is {} in lake file {path} and {data_type} in the \
                         schema this fetch started with: {error}",
                        array.data_type()
                    ),
                };
            }
            corrupt(format!(
                "column `{name}` is {}, which does not cast to the table's {data_type}: {error}",
                array.data_type()
            ))
        })
    };

    let fields = context.schema.fields();
    let mut columns = Vec::with_capacity(fields.len());
    for (field, name) in fields.iter().zip(names) {
        columns.push(match name {
            Some(name) => cast(name, field.data_type())?,
            None => new_null_array(field.data_type(), rows),
        });
    }
    let offsets = column(OFFSET_COLUMN)?;
    let Some(values) = offsets.as_primitive_opt::<Int64Type>() else {
        return Err(corrupt(format!(
            "`{OFFSET_COLUMN}` is {}, expected Int64",
            offsets.data_type()
        )));
    };
    if values.null_count() > 0 {
        return Err(corrupt(format!("`{OFFSET_COLUMN}` has nulls")));
    }
    if let Some((i, offset)) = values
        .values()
        .iter()
        .enumerate()
        .find(|(i, offset)| u64::try_from(**offset).ok() != Some(first.0 + *i as u64))
    {
        return Err(corrupt(format!(
            "row {i} has offset {offset}, expected {}",
            first.0 + i as u64
        )));
    }
    columns.push(Arc::new(Int32Array::from(vec![
        stream.bucket.0 as i32;
        rows
    ])));
    columns.push(offsets.clone());
    let timestamp = fields
        .last()
        .expect("the read schema ends with `_timestamp`");
    columns.push(cast(TIMESTAMP_COLUMN, timestamp.data_type())?);
    RecordBatch::try_new(context.schema.clone(), columns)
        .map_err(|error| corrupt(format!("does not match the table schema: {error}")))
}

fn corrupt(stream: StreamId, path: &Path, message: String) -> FetchError {
    FetchError::Corrupt {
        stream,
        message: format!("lake file {path}: {message}"),
    }
}

/// A failed Parquet read: a storage error if the cache failed to get the bytes, otherwise
/// the file is not what the index says.
fn parquet_error(stream: StreamId, path: &Path, error: ParquetError) -> FetchError {
    if let ParquetError::External(source) = &error
        && let Some(error) = source.downcast_ref::<CacheError>()
    {
        if error.kind() == ErrorKind::NotFound {
            return FetchError::LakeFileGone {
                stream,
                path: path.to_string(),
            };
        }
        return FetchError::Storage {
            path: path.to_string(),
            message: error.to_string(),
        };
    }
    corrupt(stream, path, error.to_string())
}

/// One lake file as parquet's async input, read through the page cache. Its size comes from
/// the lake file index, so the footer is read without a HEAD.
struct CachedFile {
    cache: PagedCache,
    path: Path,
    size: u64,
}

impl CachedFile {
    async fn get(&self, range: Range<u64>) -> Result<Bytes, ParquetError> {
        let bytes = self
            .cache
            .get_range(&self.path, range.clone(), Some(self.size))
            .await
            .map_err(|error| ParquetError::External(Box::new(error)))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(ParquetError::EOF(format!(
                "read of bytes {range:?} returned {} bytes",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

impl AsyncFileReader for CachedFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.get(range).await }.boxed()
    }

    /// The ranges of one row group's column chunks; near ones are read with one cache read,
    /// the rest concurrently.
    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let max_gap = COALESCE_GAP_BYTES.max(self.cache.page_size());
            let this = &*self;
            let fetched =
                try_join_all(coalesce(ranges.clone(), max_gap).into_iter().map(
                    |range| async move {
                        Ok::<_, ParquetError>((range.clone(), this.get(range).await?))
                    },
                ))
                .await?;
            Ok(ranges.iter().map(|range| cut(&fetched, range)).collect())
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                .with_prefetch_hint(Some(FOOTER_PREFETCH_BYTES))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selectors(selection: RowSelection) -> Vec<RowSelector> {
        selection.into()
    }

    #[test]
    fn select_rows_reads_only_the_groups_and_rows_wanted() {
        let groups = [10, 10, 10];
        // Everything.
        let (chosen, selection) = select_rows(&groups, 0..30);
        assert_eq!(chosen, vec![0, 1, 2]);
        assert_eq!(selection.row_count(), 30);
        assert_eq!(selection.skipped_row_count(), 0);
        // From the middle of the second group: the first is not read at all.
        let (chosen, selection) = select_rows(&groups, 15..30);
        assert_eq!(chosen, vec![1, 2]);
        assert_eq!(
            selectors(selection),
            vec![RowSelector::skip(5), RowSelector::select(15)]
        );
        // Inside one group, bounded on both sides.
        let (chosen, selection) = select_rows(&groups, 12..17);
        assert_eq!(chosen, vec![1]);
        assert_eq!(
            selectors(selection),
            vec![
                RowSelector::skip(2),
                RowSelector::select(5),
                RowSelector::skip(3)
            ]
        );
        // Exactly one group boundary to the next.
        let (chosen, selection) = select_rows(&groups, 10..20);
        assert_eq!(chosen, vec![1]);
        assert_eq!(selectors(selection), vec![RowSelector::select(10)]);
        // Nothing wanted: nothing read.
        let (chosen, _) = select_rows(&groups, 30..30);
        assert!(chosen.is_empty());
    }
}
