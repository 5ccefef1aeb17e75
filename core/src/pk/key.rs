//! A row's primary key as order-preserving bytes: a format byte, then each key column in key
//! order (the bucket key's columns first, then the rest of the primary key), so that
//! comparing two keys' bytes compares their values column by column, and the keys sharing a
//! bucket-key value are one byte range.
//!
//! Per column (key columns are never null):
//! - `Boolean`: one byte, 0 or 1;
//! - signed integers, dates, times, timestamps, decimals: big-endian with the sign bit
//!   flipped, at the type's width;
//! - unsigned integers: big-endian at the type's width;
//! - strings and binaries: the bytes with each 0x00 written as 0x00 0xFF, then 0x00 0x01,
//!   so a value sorts before every longer value it prefixes;
//! - fixed-size binaries: the bytes.
//!
//! Values compare within one column type only: a table's key types never change.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

use super::PkCodecError;
use crate::limits::MAX_PRIMARY_KEY_BYTES;

/// The first byte of every key of this layout.
pub const KEY_FORMAT_V1: u8 = 1;

/// Encodes the keys of a batch's rows.
pub struct KeyEncoder<'a> {
    columns: Vec<(&'a ArrayRef, &'a str)>,
}

impl<'a> KeyEncoder<'a> {
    /// The encoder of `batch`'s rows keyed on the columns at `key_columns`, in key order.
    /// Every key column must be [`super::is_key_type`] (checked when the table was created).
    pub fn new(batch: &'a RecordBatch, key_columns: &[usize]) -> Result<Self, PkCodecError> {
        let schema = batch.schema_ref();
        let columns = key_columns
            .iter()
            .map(|i| {
                let column = batch.column(*i);
                if !super::is_key_type(column.data_type()) {
                    return Err(PkCodecError::UnsupportedType {
                        data_type: column.data_type().to_string(),
                    });
                }
                Ok((column, schema.field(*i).name().as_str()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { columns })
    }

    /// Appends the key of `row` to `out` (cleared first).
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<(), PkCodecError> {
        out.clear();
        out.push(KEY_FORMAT_V1);
        for (column, name) in &self.columns {
            if column.is_null(row) {
                return Err(PkCodecError::NullKey {
                    column: (*name).to_owned(),
                    row,
                });
            }
            encode_value(column, row, out);
        }
        if out.len() > MAX_PRIMARY_KEY_BYTES {
            return Err(PkCodecError::KeyTooLong {
                row,
                bytes: out.len(),
                limit: MAX_PRIMARY_KEY_BYTES,
            });
        }
        Ok(())
    }
}

fn signed<const N: usize>(be: [u8; N], out: &mut Vec<u8>) {
    out.push(be[0] ^ 0x80);
    out.extend_from_slice(&be[1..]);
}

fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for byte in bytes {
        out.push(*byte);
        if *byte == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

fn encode_value(array: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    match array.data_type() {
        DataType::Boolean => out.push(u8::from(array.as_boolean().value(row))),
        DataType::Int8 => signed(
            array.as_primitive::<Int8Type>().value(row).to_be_bytes(),
            out,
        ),
        DataType::Int16 => signed(
            array.as_primitive::<Int16Type>().value(row).to_be_bytes(),
            out,
        ),
        DataType::Int32 => signed(
            array.as_primitive::<Int32Type>().value(row).to_be_bytes(),
            out,
        ),
        DataType::Int64 => signed(
            array.as_primitive::<Int64Type>().value(row).to_be_bytes(),
            out,
        ),
        DataType::UInt8 => out.push(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => {
            out.extend_from_slice(&array.as_primitive::<UInt16Type>().value(row).to_be_bytes())
        }
        DataType::UInt32 => {
            out.extend_from_slice(&array.as_primitive::<UInt32Type>().value(row).to_be_bytes())
        }
        DataType::Date32 => signed(
            array.as_primitive::<Date32Type>().value(row).to_be_bytes(),
            out,
        ),
        DataType::Date64 => signed(
            array.as_primitive::<Date64Type>().value(row).to_be_bytes(),
            out,
        ),
        DataType::Time32(TimeUnit::Second) => signed(
            array
                .as_primitive::<Time32SecondType>()
                .value(row)
                .to_be_bytes(),
            out,
        ),
        DataType::Time32(_) => signed(
            array
                .as_primitive::<Time32MillisecondType>()
                .value(row)
                .to_be_bytes(),
            out,
        ),
        DataType::Time64(TimeUnit::Nanosecond) => signed(
            array
                .as_primitive::<Time64NanosecondType>()
                .value(row)
                .to_be_bytes(),
            out,
        ),
        DataType::Time64(_) => signed(
            array
                .as_primitive::<Time64MicrosecondType>()
                .value(row)
                .to_be_bytes(),
            out,
        ),
        DataType::Timestamp(unit, _) => {
            let value = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            signed(value.to_be_bytes(), out)
        }
        DataType::Decimal128(_, _) => signed(
            array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_be_bytes(),
            out,
        ),
        DataType::Utf8 => escaped(array.as_string::<i32>().value(row).as_bytes(), out),
        DataType::LargeUtf8 => escaped(array.as_string::<i64>().value(row).as_bytes(), out),
        DataType::Binary => escaped(array.as_binary::<i32>().value(row), out),
        DataType::LargeBinary => escaped(array.as_binary::<i64>().value(row), out),
        DataType::FixedSizeBinary(_) => {
            out.extend_from_slice(array.as_fixed_size_binary().value(row))
        }
        // `KeyEncoder::new` checked every key column's type.
        other => unreachable!("primary-key column of type {other}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BinaryArray, BooleanArray, Int32Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use proptest::prelude::*;

    use super::*;

    fn keys(columns: Vec<ArrayRef>) -> Vec<Vec<u8>> {
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
        let indices: Vec<usize> = (0..batch.num_columns()).collect();
        let encoder = KeyEncoder::new(&batch, &indices).expect("encoder");
        (0..batch.num_rows())
            .map(|row| {
                let mut out = Vec::new();
                encoder.encode(row, &mut out).expect("key");
                out
            })
            .collect()
    }

    proptest! {
        #[test]
        fn integer_and_string_keys_sort_as_their_values(
            rows in proptest::collection::vec((any::<i64>(), any::<i32>(), ".{0,6}", proptest::collection::vec(any::<u8>(), 0..6)), 1..40)
        ) {
            let encoded = keys(vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2.clone()))),
                Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.3.clone()))),
            ]);
            for i in 0..rows.len() {
                for j in 0..rows.len() {
                    let values = (rows[i].0, rows[i].1, rows[i].2.as_bytes(), &rows[i].3)
                        .cmp(&(rows[j].0, rows[j].1, rows[j].2.as_bytes(), &rows[j].3));
                    prop_assert_eq!(encoded[i].cmp(&encoded[j]), values);
                }
            }
        }
    }

    #[test]
    fn a_value_sorts_before_the_values_it_prefixes_even_with_zero_bytes() {
        let encoded = keys(vec![Arc::new(BinaryArray::from_iter_values([
            b"a".as_slice(),
            b"a\0",
            b"a\0\0",
            b"ab",
            b"",
        ]))]);
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![
                encoded[4].clone(),
                encoded[0].clone(),
                encoded[1].clone(),
                encoded[2].clone(),
                encoded[3].clone()
            ]
        );
    }

    #[test]
    fn null_keys_long_keys_and_float_keys_are_refused() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("s", DataType::Utf8, true),
                Field::new("f", DataType::Float64, true),
                Field::new("b", DataType::Boolean, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![None, Some(1)])),
                Arc::new(StringArray::from(vec![
                    "x".to_owned(),
                    "y".repeat(MAX_PRIMARY_KEY_BYTES),
                ])),
                Arc::new(arrow_array::Float64Array::from(vec![1.0, 2.0])),
                Arc::new(BooleanArray::from(vec![true, false])),
            ],
        )
        .expect("batch");
        let mut out = Vec::new();
        let encoder = KeyEncoder::new(&batch, &[0, 3]).expect("encoder");
        assert_eq!(
            encoder.encode(0, &mut out),
            Err(PkCodecError::NullKey {
                column: "id".into(),
                row: 0
            })
        );
        encoder.encode(1, &mut out).expect("a valid key");
        assert_eq!(out, vec![KEY_FORMAT_V1, 0x80, 0, 0, 0, 0, 0, 0, 1, 0]);
        let long = KeyEncoder::new(&batch, &[1]).expect("encoder");
        assert!(matches!(
            long.encode(1, &mut out),
            Err(PkCodecError::KeyTooLong { row: 1, .. })
        ));
        assert!(matches!(
            KeyEncoder::new(&batch, &[2]),
            Err(PkCodecError::UnsupportedType { .. })
        ));
    }
}
