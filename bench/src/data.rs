//! The rows the benchmark writes: a 20-column table (the wide case that column pruning is
//! for) and a 2-column table for the end-to-end probe, filled from a seeded generator so two
//! runs with one seed send the same bytes.

use std::sync::Arc;

use anyhow::Context;
use arrow_array::{ArrayRef, BinaryArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use inlet_core::ipc::batches_to_ipc;
use inlet_core::rng::SplitMix64;

/// Columns of the wide table: `c00` (int64, not null, a row id), `c01`..`c09` int64,
/// `c10`..`c14` float64, `c15`..`c19` utf8 of 8 to 24 characters. About 220 bytes a row.
pub(crate) const WIDE_COLUMNS: usize = 20;

/// The two columns a projected fetch asks for: one int64 and one utf8, 2 of 20.
pub(crate) const PROJECTED: [&str; 2] = ["c00", "c15"];

/// Distinct batches generated per batch size and sent round-robin: enough that the bytes
/// are not one repeated buffer, few enough to generate quickly in a debug build.
const POOL_BATCHES: usize = 4;

pub(crate) fn wide_schema() -> SchemaRef {
    let fields = (0..WIDE_COLUMNS)
        .map(|i| {
            let name = format!("c{i:02}");
            match i {
                0 => Field::new(name, DataType::Int64, false),
                1..=9 => Field::new(name, DataType::Int64, true),
                10..=14 => Field::new(name, DataType::Float64, true),
                _ => Field::new(name, DataType::Utf8, true),
            }
        })
        .collect::<Vec<_>>();
    Arc::new(Schema::new(fields))
}

/// A wide batch of `rows` rows whose ids start at `first_id`.
pub(crate) fn wide_batch(rows: usize, first_id: i64, rng: &mut SplitMix64) -> RecordBatch {
    let schema = wide_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(WIDE_COLUMNS);
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..rows as i64).map(|i| first_id + i),
    )));
    for i in 1..=9u32 {
        // Column i holds values below 10^i: small counters up to wide identifiers.
        let bound = 10u64.pow(i);
        columns.push(Arc::new(Int64Array::from_iter_values(
            (0..rows).map(|_| (rng.next_u64() % bound) as i64),
        )));
    }
    for _ in 10..=14 {
        columns.push(Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|_| rng.next_f64() * 1000.0),
        )));
    }
    for _ in 15..WIDE_COLUMNS {
        let values: Vec<String> = (0..rows).map(|_| word(rng)).collect();
        columns.push(Arc::new(StringArray::from(values)));
    }
    RecordBatch::try_new(schema, columns).expect("columns match the wide schema")
}

fn word(rng: &mut SplitMix64) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let len = 8 + (rng.next_u64() % 17) as usize;
    (0..len)
        .map(|_| char::from(LETTERS[(rng.next_u64() % LETTERS.len() as u64) as usize]))
        .collect()
}

/// What the rows of a pool look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowShape {
    /// The 20-column wide rows ([`wide_schema`]).
    Wide,
    /// One non-null binary column `value` of this many random bytes: the record a Kafka-style
    /// benchmark (s2's `s2 bench`, for one) sends.
    Bytes(usize),
}

fn bytes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "value",
        DataType::Binary,
        false,
    )]))
}

/// A batch of `rows` values of `len` random bytes each.
fn bytes_batch(rows: usize, len: usize, rng: &mut SplitMix64) -> RecordBatch {
    let values: Vec<Vec<u8>> = (0..rows)
        .map(|_| (0..len).map(|_| rng.next_u64() as u8).collect())
        .collect();
    let array = BinaryArray::from_iter_values(values.iter());
    RecordBatch::try_new(bytes_schema(), vec![Arc::new(array)])
        .expect("the column matches the bytes schema")
}

/// A few distinct wide batches of one size, with their Arrow IPC sizes (what an append
/// carries), sent round-robin.
#[derive(Debug)]
pub(crate) struct BatchPool {
    pub(crate) schema: SchemaRef,
    pub(crate) rows: usize,
    batches: Vec<(RecordBatch, u64)>,
}

impl BatchPool {
    /// A pool of wide batches.
    pub(crate) fn new(rows: usize, seed: u64) -> anyhow::Result<Self> {
        Self::with_shape(rows, RowShape::Wide, seed)
    }

    pub(crate) fn with_shape(rows: usize, shape: RowShape, seed: u64) -> anyhow::Result<Self> {
        let schema = match shape {
            RowShape::Wide => wide_schema(),
            RowShape::Bytes(_) => bytes_schema(),
        };
        let mut rng = SplitMix64::new(seed ^ rows as u64);
        let mut batches = Vec::with_capacity(POOL_BATCHES);
        for i in 0..POOL_BATCHES {
            let batch = match shape {
                RowShape::Wide => wide_batch(rows, (i * rows) as i64, &mut rng),
                RowShape::Bytes(len) => bytes_batch(rows, len, &mut rng),
            };
            let ipc = batches_to_ipc(&schema, std::slice::from_ref(&batch))
                .context("cannot encode a benchmark batch")?;
            batches.push((batch, ipc.len() as u64));
        }
        Ok(Self {
            schema,
            rows,
            batches,
        })
    }

    /// The `n`th batch to send and its IPC bytes.
    pub(crate) fn get(&self, n: usize) -> (&RecordBatch, u64) {
        let (batch, bytes) = &self.batches[n % self.batches.len()];
        (batch, *bytes)
    }

    /// Mean IPC bytes per row.
    pub(crate) fn bytes_per_row(&self) -> f64 {
        let bytes: u64 = self.batches.iter().map(|(_, bytes)| bytes).sum();
        bytes as f64 / (self.batches.len() * self.rows) as f64
    }
}

/// The end-to-end probe table: `seq` and `sent_nanos`, the send time of the append on the
/// benchmark's monotonic clock, which the follower subtracts from its receive time.
pub(crate) fn probe_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("sent_nanos", DataType::Int64, false),
    ]))
}

pub(crate) fn probe_batch(seq: i64, sent_nanos: i64, rows: usize) -> RecordBatch {
    RecordBatch::try_new(
        probe_schema(),
        vec![
            Arc::new(Int64Array::from(vec![seq; rows])),
            Arc::new(Int64Array::from(vec![sent_nanos; rows])),
        ],
    )
    .expect("columns match the probe schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_batches_match_the_schema_and_pools_are_deterministic() {
        let a = BatchPool::new(100, 7).expect("pool");
        let b = BatchPool::new(100, 7).expect("pool");
        let (batch, bytes) = a.get(1);
        assert_eq!(batch.num_columns(), WIDE_COLUMNS);
        assert_eq!(batch.num_rows(), 100);
        assert_eq!(batch, b.get(1).0);
        assert_ne!(a.get(0).0, a.get(1).0);
        assert!(
            bytes > 100 * 150,
            "about 220 bytes a row, got {bytes} for 100"
        );
        for name in PROJECTED {
            assert!(a.schema.field_with_name(name).is_ok());
        }
    }

    #[test]
    fn byte_rows_are_one_column_of_that_many_bytes() {
        let pool = BatchPool::with_shape(10, RowShape::Bytes(1024), 7).expect("pool");
        let (batch, bytes) = pool.get(0);
        assert_eq!(batch.num_columns(), 1);
        let values = batch
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("binary");
        assert!(
            values
                .iter()
                .all(|value| value.map(<[u8]>::len) == Some(1024))
        );
        assert!(bytes > 10 * 1024, "{bytes} IPC bytes for 10 KiB of values");
        assert_ne!(pool.get(0).0, pool.get(1).0, "distinct batches");
    }
}
