//! What the producers write: every value of every row is a pure function of the producer id,
//! the sequence number of its append and the row's index in the append, so a retry resends
//! exactly the same rows and a checker can tell, from any row it reads, which append wrote it
//! and what every one of its columns must hold.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::rng::{Fnv, SimRng, hash};

/// Column indexes of the simulated tables' schema.
pub const PRODUCER: usize = 0;
pub const SEQ: usize = 1;
pub const ROW: usize = 2;
pub const KEY: usize = 3;
pub const PAYLOAD: usize = 4;
pub const SCORE: usize = 5;
pub const FLAG: usize = 6;
pub const COLUMNS: usize = 7;

/// The schema of every simulated table: identity columns, a bucket key and nullable
/// payload columns of several types and sizes.
pub fn table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("producer", DataType::Int64, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("row", DataType::Int32, false),
        Field::new("key", DataType::Int64, false),
        Field::new("payload", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
    ]))
}

pub fn column_name(column: usize) -> &'static str {
    ["producer", "seq", "row", "key", "payload", "score", "flag"][column]
}

/// Identifies one append of one producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppendId {
    pub producer: u64,
    pub seq: u64,
}

/// How an append is sent: rows, how they are split into batches, which nullable columns
/// the batches leave out (the writer fills them with nulls) and the column order.
#[derive(Clone, Debug)]
pub struct AppendShape {
    pub rows: u32,
    pub splits: Vec<u32>,
    pub omitted: Vec<usize>,
    pub order: Vec<usize>,
}

impl AppendShape {
    pub fn of(id: AppendId, max_rows: u32) -> Self {
        let mut rng = SimRng::new(hash(&[id.producer, id.seq, 0xA11]));
        let rows = rng.log_between(1, u64::from(max_rows.max(1))) as u32;
        let parts = rng.between(1, 3).min(u64::from(rows)) as u32;
        let mut cuts: Vec<u32> = (0..parts - 1)
            .map(|_| rng.between(1, u64::from(rows - 1)) as u32)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut splits = Vec::new();
        let mut last = 0;
        for cut in cuts.into_iter().chain([rows]) {
            splits.push(cut - last);
            last = cut;
        }
        let omitted = [PAYLOAD, SCORE, FLAG]
            .into_iter()
            .filter(|_| rng.chance(0.1))
            .collect();
        let mut order: Vec<usize> = (0..COLUMNS).collect();
        if rng.chance(0.3) {
            rng.shuffle(&mut order);
        }
        Self {
            rows,
            splits,
            omitted,
            order,
        }
    }
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int64(i64),
    Int32(i32),
    Utf8(Option<String>),
    Float64(Option<f64>),
    Boolean(Option<bool>),
}

impl Value {
    pub fn fingerprint(&self, column: usize) -> u64 {
        let mut fnv = Fnv::default();
        fnv.write_u64(column as u64);
        match self {
            Value::Int64(v) => fnv.write(&v.to_le_bytes()),
            Value::Int32(v) => fnv.write(&v.to_le_bytes()),
            Value::Utf8(None) | Value::Float64(None) | Value::Boolean(None) => fnv.write(b"null"),
            Value::Utf8(Some(s)) => {
                fnv.write(b"s");
                fnv.write(s.as_bytes());
            }
            Value::Float64(Some(f)) => {
                fnv.write(b"f");
                fnv.write(&f.to_bits().to_le_bytes());
            }
            Value::Boolean(Some(b)) => fnv.write(if *b { b"t" } else { b"F" }),
        }
        fnv.finish()
    }
}

/// Every value of row `row` of append `id`.
pub fn row_values(id: AppendId, shape: &AppendShape, row: u32, max_payload: u32) -> [Value; 7] {
    let mut rng = SimRng::new(hash(&[id.producer, id.seq, u64::from(row), 0xB0B]));
    let key = (rng.next_u64() % 1000) as i64;
    let omitted = |column| shape.omitted.contains(&column);
    let payload = if omitted(PAYLOAD) || rng.chance(0.1) {
        None
    } else {
        let len = rng.between(0, u64::from(max_payload)) as usize;
        let seed = rng.next_u64();
        Some(
            (0..len)
                .map(|i| char::from(b'a' + ((seed >> (i % 60)) as u8 ^ i as u8) % 26))
                .collect(),
        )
    };
    let score = if omitted(SCORE) || rng.chance(0.2) {
        None
    } else {
        Some((rng.next_u64() % 1_000_000) as f64 / 7.0)
    };
    let flag = if omitted(FLAG) || rng.chance(0.3) {
        None
    } else {
        Some(rng.chance(0.5))
    };
    [
        Value::Int64(id.producer as i64),
        Value::Int64(id.seq as i64),
        Value::Int32(row as i32),
        Value::Int64(key),
        Value::Utf8(payload),
        Value::Float64(score),
        Value::Boolean(flag),
    ]
}

/// Fingerprints of every column of a row, by column index.
pub fn row_fingerprints(values: &[Value; 7]) -> [u64; 7] {
    std::array::from_fn(|column| values[column].fingerprint(column))
}

/// The batches an append sends, exactly as every retry of it sends them.
pub fn append_batches(id: AppendId, shape: &AppendShape, max_payload: u32) -> Vec<RecordBatch> {
    let schema = table_schema();
    let columns: Vec<usize> = shape
        .order
        .iter()
        .copied()
        .filter(|c| !shape.omitted.contains(c))
        .collect();
    let fields: Vec<Field> = columns.iter().map(|c| schema.field(*c).clone()).collect();
    let batch_schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::with_capacity(shape.splits.len());
    let mut first = 0;
    for rows in &shape.splits {
        let values: Vec<[Value; 7]> = (first..first + rows)
            .map(|row| row_values(id, shape, row, max_payload))
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|column| column_array(*column, &values))
            .collect();
        batches.push(
            RecordBatch::try_new(batch_schema.clone(), arrays).expect("append batch is valid"),
        );
        first += rows;
    }
    batches
}

pub(crate) fn column_array(column: usize, rows: &[[Value; 7]]) -> ArrayRef {
    let values = rows.iter().map(|row| &row[column]);
    match column {
        PRODUCER | SEQ | KEY => Arc::new(Int64Array::from_iter_values(values.map(|v| match v {
            Value::Int64(v) => *v,
            _ => unreachable!("int64 column"),
        }))),
        ROW => Arc::new(Int32Array::from_iter_values(values.map(|v| match v {
            Value::Int32(v) => *v,
            _ => unreachable!("int32 column"),
        }))),
        PAYLOAD => Arc::new(StringArray::from_iter(values.map(|v| match v {
            Value::Utf8(v) => v.clone(),
            _ => unreachable!("utf8 column"),
        }))),
        SCORE => Arc::new(Float64Array::from_iter(values.map(|v| match v {
            Value::Float64(v) => *v,
            _ => unreachable!("float64 column"),
        }))),
        _ => Arc::new(BooleanArray::from_iter(values.map(|v| match v {
            Value::Boolean(v) => *v,
            _ => unreachable!("boolean column"),
        }))),
    }
}

/// One row as a fetch returned it.
#[derive(Clone, Debug)]
pub struct ReadRow {
    pub bucket: u32,
    pub offset: u64,
    pub commit_ts: i64,
    /// Fingerprint of each projected column, in projection order.
    pub fingerprints: Vec<u64>,
    /// The producer, sequence and row index, when the projection has those columns.
    pub identity: Option<(AppendId, u32)>,
}

/// Decodes a fetched batch whose first columns are `projection` (table column indexes)
/// followed by `_bucket`, `_offset`, `_timestamp`.
pub fn read_rows(batch: &RecordBatch, projection: &[usize]) -> Result<Vec<ReadRow>, String> {
    let expected = projection.len() + 3;
    if batch.num_columns() != expected {
        return Err(format!(
            "fetched batch has {} columns, expected {expected}",
            batch.num_columns()
        ));
    }
    let schema = batch.schema();
    for (position, column) in projection.iter().enumerate() {
        if schema.field(position).name() != column_name(*column) {
            return Err(format!(
                "column {position} of a fetched batch is `{}`, expected `{}`",
                schema.field(position).name(),
                column_name(*column)
            ));
        }
    }
    let system = projection.len();
    let buckets = downcast::<Int32Array>(batch, system)?;
    let offsets = downcast::<Int64Array>(batch, system + 1)?;
    let times = downcast::<TimestampMicrosecondArray>(batch, system + 2)?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut fingerprints = Vec::with_capacity(projection.len());
        let mut identity = [None, None, None];
        for (position, column) in projection.iter().enumerate() {
            let value = value_at(batch.column(position), *column, i)?;
            if let (Value::Int64(v), PRODUCER | SEQ) = (&value, *column) {
                identity[*column] = Some(*v as u64);
            }
            if let (Value::Int32(v), ROW) = (&value, *column) {
                identity[ROW] = Some(*v as u64);
            }
            fingerprints.push(value.fingerprint(*column));
        }
        let identity = match identity {
            [Some(producer), Some(seq), Some(row)] => {
                Some((AppendId { producer, seq }, row as u32))
            }
            _ => None,
        };
        rows.push(ReadRow {
            bucket: buckets.value(i) as u32,
            offset: offsets.value(i) as u64,
            commit_ts: times.value(i),
            fingerprints,
            identity,
        });
    }
    Ok(rows)
}

fn downcast<T: 'static>(batch: &RecordBatch, index: usize) -> Result<&T, String> {
    batch
        .column(index)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("column {index} of a fetched batch has an unexpected type"))
}

pub(crate) fn value_at(array: &ArrayRef, column: usize, i: usize) -> Result<Value, String> {
    let wrong = || {
        format!(
            "column `{}` has type {}",
            column_name(column),
            array.data_type()
        )
    };
    let null = array.is_null(i);
    Ok(match column {
        PRODUCER | SEQ | KEY => Value::Int64(
            array
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(wrong)?
                .value(i),
        ),
        // Int64 once the run widened the column (`evolve`): the same values.
        ROW => Value::Int32(match array.as_any().downcast_ref::<Int64Array>() {
            Some(wide) => i32::try_from(wide.value(i)).map_err(|_| {
                format!(
                    "column `row` holds {}, which no int32 written to it was",
                    wide.value(i)
                )
            })?,
            None => array
                .as_any()
                .downcast_ref::<Int32Array>()
                .ok_or_else(wrong)?
                .value(i),
        }),
        PAYLOAD => {
            let a = array
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(wrong)?;
            Value::Utf8((!null).then(|| a.value(i).to_owned()))
        }
        SCORE => {
            let a = array
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(wrong)?;
            Value::Float64((!null).then(|| a.value(i)))
        }
        _ => {
            let a = array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(wrong)?;
            Value::Boolean((!null).then(|| a.value(i)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_reproducible_and_split_exactly() {
        let id = AppendId {
            producer: 7,
            seq: 3,
        };
        for max_rows in [1, 5, 64] {
            let shape = AppendShape::of(id, max_rows);
            assert_eq!(shape.splits.iter().sum::<u32>(), shape.rows);
            assert!(shape.splits.iter().all(|rows| *rows > 0));
            let a = append_batches(id, &shape, 100);
            let b = append_batches(id, &AppendShape::of(id, max_rows), 100);
            assert_eq!(a, b);
            assert_eq!(
                a.iter().map(|b| b.num_rows() as u32).sum::<u32>(),
                shape.rows
            );
        }
    }
}
