//! Snapshot reads of primary-key tables: a bucket's current rows as of one offset, as `+I`
//! rows in key order, then (when following) its changelog from that offset on, as Fluss
//! starts a primary-key table's read from a snapshot. The snapshot's last batch of a bucket
//! (empty if the bucket has no rows) is marked [`SnapshotPart::Last`], so a consumer knows
//! where its position moves to `at`.
//!
//! The rows come from the key state through [`LogRead::scan_keys`]: one point of the index,
//! whose offset is known only within bounds (every commit below `low` is in it, every row in
//! it was written below `high`). The snapshot is made exact as of `at`, the larger of `high`
//! and the bucket's tail: the changelog `low..at` is read first, and each key it touches gets
//! its last outcome there (its row, or none when deleted). The scan's row of such a key is
//! replaced by that outcome; a key the changelog does not touch did not change between the
//! scan's point and `at`, so its scanned row is its row at `at`. Taking `at` at least the tail
//! makes a snapshot read-your-writes even from a replica that lags the owner.
//!
//! Memory: one page of the scan, and the changelog between the two tail reads around the
//! scan's point (plus a replica's lag), at most [`MAX_SNAPSHOT_CATCH_UP_ROWS`] rows.

use std::collections::{BTreeMap, btree_map};
use std::iter::Peekable;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_select::interleave::interleave_record_batch;
use futures::StreamExt;
use inlet_core::ids::{Offset, StreamId};
use inlet_core::limits::{FETCH_CHANNEL_DEPTH, MAX_FETCH_BATCH_ROWS};
use inlet_core::pk::PkCodecError;
use inlet_core::pk::evolve::decode_images;
use inlet_core::pk::key::KeyEncoder;
use inlet_core::table::{CHANGE_TYPE_COLUMN, changelog_read_schema};
use inlet_index::{KeyScan, ScannedKey, StreamTail};
use tokio::sync::mpsc;

use super::{FetchContext, FetchedBatch, Reached, SnapshotPart, read_wal};
use crate::changelog::ChangelogRead;
use crate::error::FetchError;

/// Most changelog rows a snapshot read replays on top of its scan. They are the rows
/// committed between two tail reads a few milliseconds apart (or within a replica's poll
/// interval), so far fewer in practice; a bucket written faster than this is refused, and the
/// read can be retried.
pub const MAX_SNAPSHOT_CATCH_UP_ROWS: usize = 1_000_000;

/// Sends the current rows of `stream` as of one offset to `sender`; returns that offset.
pub(super) async fn read_snapshot(
    context: &FetchContext,
    stream: StreamId,
    sender: &mpsc::Sender<Result<FetchedBatch, FetchError>>,
) -> Result<Reached, FetchError> {
    let scan = context.index.scan_keys(stream).await?;
    send_snapshot(context, stream, scan, sender).await
}

/// Sends the rows of `scan`, made exact as of the larger of its `high` and the tail.
async fn send_snapshot(
    context: &FetchContext,
    stream: StreamId,
    scan: KeyScan,
    sender: &mpsc::Sender<Result<FetchedBatch, FetchError>>,
) -> Result<Reached, FetchError> {
    let tail = context.index.tail(stream).await?;
    let at = scan.high.max(tail.next_offset);
    let changed = catch_up(
        context,
        stream,
        scan.low,
        &StreamTail {
            next_offset: at,
            ..tail
        },
    )
    .await?;
    let send = |batch: RecordBatch, part: SnapshotPart| async move {
        let fetched = FetchedBatch {
            partition: stream.partition,
            bucket: stream.bucket,
            batch,
            high_watermark: at,
            snapshot: part,
        };
        sender.send(Ok(fetched)).await.is_ok()
    };
    let mut held: Option<RecordBatch> = None;
    let mut pages = scan.pages;
    // The changed keys not sent yet, in key order.
    let mut pending = changed.outcomes.iter().peekable();
    loop {
        let page = pages.next().await.transpose()?;
        // The changed keys up to the page's last key go with it; all that remain with the
        // last page.
        let last = page
            .as_ref()
            .and_then(|page| page.last())
            .map(|row| &row.key);
        let rows = merged_rows(page.as_deref().unwrap_or_default(), &mut pending, last);
        if !rows.is_empty() {
            let batch = snapshot_rows(context, stream, &rows, &changed.batches)?;
            for start in (0..batch.num_rows()).step_by(MAX_FETCH_BATCH_ROWS) {
                let len = (batch.num_rows() - start).min(MAX_FETCH_BATCH_ROWS);
                // One batch is held back, to be sent as the last when no more come.
                if let Some(ready) = held.replace(batch.slice(start, len))
                    && !send(ready, SnapshotPart::Rows).await
                {
                    return Ok(Reached::Closed);
                }
            }
        }
        if page.is_none() {
            let last = held.unwrap_or_else(|| RecordBatch::new_empty(context.schema.clone()));
            if !send(last, SnapshotPart::Last).await {
                return Ok(Reached::Closed);
            }
            return Ok(Reached::At(at));
        }
    }
}

/// The rows of one scanned page in key order, with the changed keys up to `last` (all that
/// remain when `last` is `None`, after the last page): a changed key's outcome replaces its
/// scanned row, and a deleted key has none.
fn merged_rows<'p>(
    scanned: &'p [ScannedKey],
    pending: &mut Peekable<btree_map::Iter<'_, Vec<u8>, Outcome>>,
    last: Option<&Vec<u8>>,
) -> Vec<Row<'p>> {
    let mut rows = Vec::with_capacity(scanned.len());
    let mut scanned = scanned.iter().peekable();
    loop {
        let changed = pending
            .peek()
            .filter(|(key, _)| last.is_none_or(|last| *key <= last));
        match (scanned.peek(), changed) {
            (Some(row), Some((key, _))) if row.key < **key => {
                rows.extend(scanned.next().map(Row::Scanned));
            }
            (_, Some(_)) => {
                let Some((key, outcome)) = pending.next() else {
                    break;
                };
                if scanned.peek().is_some_and(|row| row.key == *key) {
                    scanned.next();
                }
                rows.extend(outcome.map(Row::Changed));
            }
            (Some(_), None) => rows.extend(scanned.next().map(Row::Scanned)),
            (None, None) => break,
        }
    }
    rows
}

/// One row of a snapshot: scanned from the key state, or the changelog row (batch, row)
/// that last wrote the key.
enum Row<'a> {
    Scanned(&'a ScannedKey),
    Changed((usize, usize)),
}

/// What the changelog `low..tail` did to the keys it touched.
struct CatchUp {
    /// The changelog rows as snapshot rows (the asked columns, the system columns, `+I`).
    batches: Vec<RecordBatch>,
    /// Per encoded key, its last outcome.
    outcomes: BTreeMap<Vec<u8>, Outcome>,
}

/// What the changelog last did to a key: the (batch, row) of its new row, or `None` when it
/// was deleted.
type Outcome = Option<(usize, usize)>;

async fn catch_up(
    context: &FetchContext,
    stream: StreamId,
    low: Offset,
    tail: &StreamTail,
) -> Result<CatchUp, FetchError> {
    let mut caught = CatchUp {
        batches: Vec::new(),
        outcomes: BTreeMap::new(),
    };
    if low >= tail.next_offset {
        return Ok(caught);
    }
    let table = &context.table;
    let all: Vec<usize> = (0..table.descriptor.schema.fields().len()).collect();
    let full = FetchContext {
        index: context.index.clone(),
        cache: context.cache.clone(),
        table: table.clone(),
        schema: changelog_read_schema(&table.descriptor.schema, &all),
        projection: all,
        follow: false,
        // Primary-key tables have no retention: an expired offset here is an error.
        reset_to_earliest: false,
        changelog: Some(ChangelogRead {
            omit_update_before: true,
        }),
    };
    let (rows, mut received) = mpsc::channel(FETCH_CHANNEL_DEPTH);
    let read = async move {
        let reached = read_wal(&full, stream, low, tail, &rows).await;
        drop(rows);
        reached
    };
    let collect = async {
        let mut count = 0;
        while let Some(fetched) = received.recv().await {
            let batch = fetched?.batch;
            count += batch.num_rows();
            if count > MAX_SNAPSHOT_CATCH_UP_ROWS {
                return Err(FetchError::SnapshotCatchUpTooLong {
                    stream,
                    from: low,
                    to: tail.next_offset,
                    max: MAX_SNAPSHOT_CATCH_UP_ROWS,
                });
            }
            caught.batches.push(batch);
        }
        Ok(())
    };
    let (reached, collected) = tokio::join!(read, collect);
    collected?;
    match reached? {
        Reached::At(end) if end == tail.next_offset => {}
        Reached::At(end) => {
            return Err(FetchError::Corrupt {
                stream,
                message: format!(
                    "the changelog of a primary-key table ends at {end}, before its tail {}",
                    tail.next_offset
                ),
            });
        }
        // The collector stops receiving only with an error, returned above.
        Reached::Closed => {
            return Err(FetchError::Corrupt {
                stream,
                message: "the changelog read of a snapshot ended early".to_owned(),
            });
        }
    }
    let key_columns = table.key_encoding_indices();
    for (index, batch) in caught.batches.iter().enumerate() {
        let kinds = batch
            .column_by_name(CHANGE_TYPE_COLUMN)
            .and_then(|kinds| kinds.as_string_opt::<i32>())
            .ok_or_else(|| FetchError::Corrupt {
                stream,
                message: "changelog rows without their change type".to_owned(),
            })?;
        let encoder = KeyEncoder::new(batch, &key_columns).map_err(|e| FetchError::Corrupt {
            stream,
            message: format!("changelog rows do not encode their keys: {e}"),
        })?;
        for row in 0..batch.num_rows() {
            let mut key = Vec::new();
            encoder
                .encode(row, &mut key)
                .map_err(|e| FetchError::Corrupt {
                    stream,
                    message: format!("a changelog row does not encode its key: {e}"),
                })?;
            let outcome = (kinds.value(row) != "-D").then_some((index, row));
            caught.outcomes.insert(key, outcome);
        }
    }
    // As snapshot rows: the asked columns and the system columns, every row `+I`.
    let width = table.descriptor.schema.fields().len();
    let keep: Vec<usize> = context
        .projection
        .iter()
        .copied()
        .chain(width..width + 3)
        .collect();
    let corrupt = |e: arrow_schema::ArrowError| FetchError::Corrupt {
        stream,
        message: format!("changelog rows as snapshot rows: {e}"),
    };
    for batch in &mut caught.batches {
        let mut columns = batch.project(&keep).map_err(corrupt)?.columns().to_vec();
        columns.push(Arc::new(StringArray::from(vec!["+I"; batch.num_rows()])));
        *batch = RecordBatch::try_new(context.schema.clone(), columns).map_err(corrupt)?;
    }
    Ok(caught)
}

/// `rows` as fetched rows: the asked columns, `_bucket`, `_offset` (the offset that wrote the
/// row), `_timestamp` (its commit time), and `_change_type` `+I`.
fn snapshot_rows(
    context: &FetchContext,
    stream: StreamId,
    rows: &[Row<'_>],
    changed: &[RecordBatch],
) -> Result<RecordBatch, FetchError> {
    let corrupt = |message: String| FetchError::Corrupt { stream, message };
    let scanned: Vec<&ScannedKey> = rows
        .iter()
        .filter_map(|row| match row {
            Row::Scanned(scanned) => Some(*scanned),
            Row::Changed(_) => None,
        })
        .collect();
    let images: Vec<&[u8]> = scanned
        .iter()
        .map(|row| row.state.image.as_slice())
        .collect();
    let decoded = decode_images(&context.table, &images).map_err(|e| match e {
        PkCodecError::NewerSchema { .. } => FetchError::SchemaChanged {
            stream,
            message: e.to_string(),
        },
        _ => corrupt(format!("a key state does not decode: {e}")),
    })?;
    let mut columns: Vec<ArrayRef> = context
        .projection
        .iter()
        .map(|i| decoded.column(*i).clone())
        .collect();
    columns.push(Arc::new(Int32Array::from(vec![
        stream.bucket.0 as i32;
        scanned.len()
    ])));
    columns.push(Arc::new(Int64Array::from_iter_values(
        scanned.iter().map(|row| row.state.offset.0 as i64),
    )));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from_iter_values(
            scanned.iter().map(|row| row.state.committed.0),
        )
        .with_timezone("+00:00"),
    ));
    columns.push(Arc::new(StringArray::from(vec!["+I"; scanned.len()])));
    let from_state = RecordBatch::try_new(context.schema.clone(), columns)
        .map_err(|e| corrupt(format!("snapshot rows: {e}")))?;
    let mut next_scanned = 0;
    let picks: Vec<(usize, usize)> = rows
        .iter()
        .map(|row| match row {
            Row::Scanned(_) => {
                next_scanned += 1;
                (0, next_scanned - 1)
            }
            Row::Changed((batch, row)) => (batch + 1, *row),
        })
        .collect();
    let sources: Vec<&RecordBatch> = std::iter::once(&from_state).chain(changed).collect();
    interleave_record_batch(&sources, &picks).map_err(|e| corrupt(format!("snapshot rows: {e}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::types::Int64Type;
    use arrow_schema::{DataType, Field, Schema};
    use inlet_cache::{CacheOptions, PagedCache};
    use inlet_core::clock::Env;
    use inlet_core::ids::{Bucket, PartitionId};
    use inlet_core::table::changelog_read_schema;
    use inlet_writer::WriteOp;
    use slatedb::object_store::ObjectStore;
    use slatedb::object_store::memory::InMemory;

    use super::*;

    /// id → (v, offset that wrote it), as a snapshot read sent them, checking they are `+I`
    /// rows in key order.
    fn received(
        mut batches: mpsc::Receiver<Result<FetchedBatch, FetchError>>,
    ) -> Vec<(i64, i64, i64)> {
        let mut rows = Vec::new();
        let mut parts = Vec::new();
        while let Ok(fetched) = batches.try_recv() {
            let fetched = fetched.expect("batch");
            parts.push(fetched.snapshot);
            let batch = fetched.batch;
            let column = |name: &str| batch.column_by_name(name).expect(name).clone();
            let (ids, vs, offsets, kinds) = (
                column("id"),
                column("v"),
                column("_offset"),
                column("_change_type"),
            );
            for i in 0..batch.num_rows() {
                assert_eq!(kinds.as_string::<i32>().value(i), "+I");
                rows.push((
                    ids.as_primitive::<Int64Type>().value(i),
                    vs.as_primitive::<Int64Type>().value(i),
                    offsets.as_primitive::<Int64Type>().value(i),
                ));
            }
        }
        assert_eq!(
            parts.pop(),
            Some(SnapshotPart::Last),
            "the last batch says so"
        );
        assert!(
            parts.iter().all(|part| *part == SnapshotPart::Rows),
            "{parts:?}"
        );
        rows
    }

    /// A scan taken before later writes (as a lagging replica's, or one whose point the
    /// owner moved past between its tail reads) is made exact as of the tail by the
    /// changelog above it: updated keys carry their new rows, deleted keys are gone, keys
    /// inserted after the scan are there, each in key order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scan_behind_the_tail_is_caught_up_by_the_changelog() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let index = inlet_testkit::open_index(store.clone(), Env::system()).await;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let mut descriptor = inlet_testkit::table_descriptor(schema.clone(), 1);
        descriptor.primary_key = vec!["id".into()];
        let table = inlet_testkit::create_table(&index, "t", descriptor).await;
        let writer = inlet_testkit::start_writer(
            &index,
            store.clone(),
            inlet_testkit::quick_writer_options(),
        )
        .await;
        let write = |op: WriteOp, ids: Vec<i64>, v: i64| {
            let writer = &writer;
            let columns: Vec<ArrayRef> = match op {
                WriteOp::Delete => vec![Arc::new(Int64Array::from(ids))],
                _ => {
                    let vs = vec![v; ids.len()];
                    vec![
                        Arc::new(Int64Array::from(ids)),
                        Arc::new(Int64Array::from(vs)),
                    ]
                }
            };
            let schema = match op {
                WriteOp::Delete => Arc::new(schema.project(&[0]).expect("key column")),
                _ => schema.clone(),
            };
            async move {
                let batch = RecordBatch::try_new(schema, columns).expect("batch");
                writer
                    .write("db", "t", op, &[batch], None)
                    .await
                    .expect("write acked");
            }
        };
        // Offsets 0..6: keys 0..6 at v=1. The scan's point is here.
        write(WriteOp::Upsert, (0..6).collect(), 1).await;
        let stream = StreamId::new(table.id, PartitionId(0), Bucket(0));
        let scan = index.scan_keys(stream).await.expect("scan");
        assert_eq!((scan.low, scan.high), (Offset(6), Offset(6)));
        // Offsets 6..8: keys 1 and 4 updated; 8..10: keys 2 and 9 deleted (9 is absent);
        // 10..12: keys 7 and 1 upserted (7 is new, 1 updated again).
        write(WriteOp::Upsert, vec![1, 4], 2).await;
        write(WriteOp::Delete, vec![2, 9], 0).await;
        write(WriteOp::Upsert, vec![7, 1], 3).await;

        let cache = PagedCache::open(store.clone(), CacheOptions::default())
            .await
            .expect("cache");
        let projection: Vec<usize> = vec![0, 1];
        let context = FetchContext {
            index: Arc::new(index.clone()),
            cache,
            schema: changelog_read_schema(&table.descriptor.schema, &projection),
            table: table.clone(),
            projection,
            follow: false,
            reset_to_earliest: false,
            changelog: Some(ChangelogRead {
                omit_update_before: false,
            }),
        };
        let (sender, batches) = mpsc::channel(64);
        let reached = send_snapshot(&context, stream, scan, &sender)
            .await
            .expect("snapshot");
        assert!(matches!(reached, Reached::At(Offset(12))), "as of the tail");
        drop(sender);
        let rows = received(batches);
        let expected: Vec<(i64, i64, i64)> = vec![
            (0, 1, 0),
            (1, 3, 11),
            (3, 1, 3),
            (4, 2, 7),
            (5, 1, 5),
            (7, 3, 10),
        ];
        assert_eq!(rows, expected);
        let by_key: BTreeMap<i64, i64> = rows.iter().map(|(id, v, _)| (*id, *v)).collect();
        assert_eq!(by_key.len(), rows.len(), "each key once");
        writer.close().await;
        index.close().await.expect("close");
    }
}
