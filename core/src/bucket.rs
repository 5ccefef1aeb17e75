//! Row → bucket routing with Iceberg's bucket transform (murmur3 x86 32-bit, seed 0, over
//! the value's Iceberg single-value bytes), so a lake table partitioned `bucket(N, key)`
//! lines up bucket-for-bucket with the log.
//!
//! A single-column key follows the Iceberg spec exactly. A key of several columns hashes the
//! concatenation of each column's bytes, each prefixed by its length as u32 little-endian
//! (`u32::MAX` for null), so `("a", "bc")` and `("ab", "c")` differ. A single null key goes
//! to bucket 0.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Int8Type, Int16Type, Int32Type, Int64Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

/// Whether values of this type can be part of a bucket key.
pub fn is_bucketable(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::FixedSizeBinary(_)
            | DataType::Decimal128(_, _)
    )
}

/// Murmur3 x86 32-bit with seed 0, as Iceberg's bucket transform uses it (the `murmur3`
/// crate, the one iceberg-rust uses, so both sides of the lake hash alike).
pub fn murmur3_32(data: &[u8]) -> u32 {
    let mut reader = data;
    murmur3::murmur3_32(&mut reader, 0).expect("reading from a byte slice cannot fail")
}

/// Iceberg's bucket for a hash: `(hash & i32::MAX) % buckets`.
fn bucket_of(hash: u32, bucket_count: u32) -> u32 {
    (hash & 0x7FFF_FFFF) % bucket_count
}

/// Appends the Iceberg single-value bytes of `array[row]` to `out`; returns false for null.
fn value_bytes(array: &ArrayRef, row: usize, out: &mut Vec<u8>) -> bool {
    if array.is_null(row) {
        return false;
    }
    let long = |v: i64, out: &mut Vec<u8>| out.extend_from_slice(&v.to_le_bytes());
    match array.data_type() {
        DataType::Int8 => long(array.as_primitive::<Int8Type>().value(row).into(), out),
        DataType::Int16 => long(array.as_primitive::<Int16Type>().value(row).into(), out),
        DataType::Int32 => long(array.as_primitive::<Int32Type>().value(row).into(), out),
        DataType::Int64 => long(array.as_primitive::<Int64Type>().value(row), out),
        DataType::UInt8 => long(array.as_primitive::<UInt8Type>().value(row).into(), out),
        DataType::UInt16 => long(array.as_primitive::<UInt16Type>().value(row).into(), out),
        DataType::UInt32 => long(array.as_primitive::<UInt32Type>().value(row).into(), out),
        DataType::Date32 => long(array.as_primitive::<Date32Type>().value(row).into(), out),
        DataType::Date64 => long(
            array
                .as_primitive::<Date64Type>()
                .value(row)
                .div_euclid(86_400_000),
            out,
        ),
        DataType::Time32(TimeUnit::Second) => long(
            i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000,
            out,
        ),
        DataType::Time32(_) => long(
            i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1_000,
            out,
        ),
        DataType::Time64(TimeUnit::Nanosecond) => long(
            array
                .as_primitive::<Time64NanosecondType>()
                .value(row)
                .div_euclid(1_000),
            out,
        ),
        DataType::Time64(_) => long(
            array.as_primitive::<Time64MicrosecondType>().value(row),
            out,
        ),
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .saturating_mul(1_000),
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value(row)
                    .div_euclid(1_000),
            };
            long(micros, out)
        }
        DataType::Utf8 => out.extend_from_slice(array.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => {
            out.extend_from_slice(array.as_string::<i64>().value(row).as_bytes())
        }
        DataType::Binary => out.extend_from_slice(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => out.extend_from_slice(array.as_binary::<i64>().value(row)),
        DataType::FixedSizeBinary(_) => {
            out.extend_from_slice(array.as_fixed_size_binary().value(row))
        }
        DataType::Decimal128(_, _) => {
            let unscaled = array.as_primitive::<Decimal128Type>().value(row);
            out.extend_from_slice(&minimal_be_bytes(unscaled));
        }
        // `validate` rejects other key types before any row is routed.
        other => unreachable!("bucket key of unsupported type {other}"),
    }
    true
}

/// Shortest big-endian two's-complement bytes of a decimal's unscaled value (Iceberg spec).
fn minimal_be_bytes(value: i128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < bytes.len() - 1 {
        let (byte, next) = (bytes[start], bytes[start + 1]);
        let redundant = (byte == 0x00 && next & 0x80 == 0) || (byte == 0xFF && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

/// The bucket of every row of `batch`, keyed on the columns at `key_columns`.
///
/// The caller has checked that every key column is [`is_bucketable`] and that
/// `bucket_count > 0`.
pub fn bucket_rows(batch: &RecordBatch, key_columns: &[usize], bucket_count: u32) -> Vec<u32> {
    let columns: Vec<&ArrayRef> = key_columns.iter().map(|i| batch.column(*i)).collect();
    let mut scratch = Vec::with_capacity(64);
    let mut value = Vec::with_capacity(32);
    (0..batch.num_rows())
        .map(|row| {
            scratch.clear();
            if let [single] = columns.as_slice() {
                if !value_bytes(single, row, &mut scratch) {
                    return 0;
                }
            } else {
                for column in &columns {
                    value.clear();
                    if value_bytes(column, row, &mut value) {
                        scratch.extend_from_slice(&(value.len() as u32).to_le_bytes());
                        scratch.extend_from_slice(&value);
                    } else {
                        scratch.extend_from_slice(&u32::MAX.to_le_bytes());
                    }
                }
            }
            bucket_of(murmur3_32(&scratch), bucket_count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        BinaryArray, Date32Array, Decimal128Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow_schema::{Field, Schema};

    use super::*;

    fn hash_of(array: ArrayRef) -> u32 {
        let mut out = Vec::new();
        assert!(value_bytes(&array, 0, &mut out));
        murmur3_32(&out)
    }

    /// The hash values listed in the Iceberg table spec, appendix B.
    #[test]
    fn matches_the_iceberg_spec_test_vectors() {
        assert_eq!(
            hash_of(Arc::new(Int32Array::from(vec![34]))) as i32,
            2017239379
        );
        assert_eq!(
            hash_of(Arc::new(Int64Array::from(vec![34i64]))) as i32,
            2017239379
        );
        assert_eq!(
            hash_of(Arc::new(Date32Array::from(vec![17486]))) as i32,
            -653330422
        );
        let decimal = Decimal128Array::from(vec![1420i128]).with_precision_and_scale(9, 2);
        assert_eq!(
            hash_of(Arc::new(decimal.expect("valid decimal"))) as i32,
            -500754589
        );
        assert_eq!(
            hash_of(Arc::new(TimestampMicrosecondArray::from(vec![
                1_510_871_468_000_000i64
            ]))) as i32,
            -2047944441
        );
        assert_eq!(
            hash_of(Arc::new(StringArray::from(vec!["iceberg"]))) as i32,
            1210000089
        );
        let binary = BinaryArray::from(vec![&[0u8, 1, 2, 3][..]]);
        assert_eq!(hash_of(Arc::new(binary)) as i32, -188683207);
    }

    #[test]
    fn rows_spread_over_buckets_and_nulls_go_to_zero() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let keys: Int64Array = (0..1000)
            .map(|i| if i == 0 { None } else { Some(i) })
            .collect();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(keys)]).expect("valid batch");
        let buckets = bucket_rows(&batch, &[0], 8);
        assert_eq!(buckets[0], 0);
        for bucket in 0..8 {
            let count = buckets.iter().filter(|b| **b == bucket).count();
            assert!(count > 60, "bucket {bucket} got only {count} of 1000 rows");
        }
        assert_eq!(
            bucket_rows(&batch, &[0], 8),
            buckets,
            "routing is deterministic"
        );
    }

    #[test]
    fn multi_column_keys_do_not_collide_on_concatenation() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8, false),
            Field::new("b", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "ab"])),
                Arc::new(StringArray::from(vec!["bc", "c"])),
            ],
        )
        .expect("valid batch");
        let buckets = bucket_rows(&batch, &[0, 1], 1 << 30);
        assert_ne!(buckets[0], buckets[1]);
    }
}
