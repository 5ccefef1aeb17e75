//! A row image: one whole row of a primary-key table as bytes, the value of its key in the
//! key state and the before image of an update or delete in the changelog. Decoded back into
//! Arrow columns of the table's schema for lookups and changelog reads.
//!
//! Layout: a format byte ([`ROW_FORMAT_V1`] for the table's first schema, id 0;
//! [`ROW_FORMAT_V2`] and the schema id as a u32 little-endian for a later one), then each
//! column of that schema in order:
//! - `Null` columns: nothing;
//! - otherwise a presence byte (0 null, 1 a value), and for a value:
//!   - fixed-width types (integers, floats, dates, times, timestamps, durations, intervals,
//!     decimals): the value's little-endian bytes as Arrow lays them out;
//!   - `Boolean`: one byte, 0 or 1;
//!   - strings and binaries: a u32 little-endian length, then the bytes;
//!   - fixed-size binaries: the bytes.
//!
//! An image names no types: it is read with the schema it names
//! ([`super::evolve`] reads one of an earlier schema under the current one).

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, FixedSizeBinaryBuilder, GenericBinaryBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, OffsetSizeTrait, RecordBatch, make_array, new_null_array};
use arrow_buffer::{BooleanBufferBuilder, MutableBuffer, NullBuffer};
use arrow_data::ArrayData;
use arrow_schema::{DataType, Schema, SchemaRef};

use super::{PkCodecError, take, take_u32};
use crate::ids::SchemaId;
use crate::limits::MAX_ROW_IMAGE_BYTES;

/// The first byte of an image written under the table's first schema (id 0).
pub const ROW_FORMAT_V1: u8 = 1;
/// The first byte of an image written under a later schema; the schema id follows.
pub const ROW_FORMAT_V2: u8 = 2;

/// Writes the format byte (and schema id) of an image of schema `schema_id`.
fn push_header(schema_id: SchemaId, out: &mut Vec<u8>) {
    if schema_id == SchemaId(0) {
        out.push(ROW_FORMAT_V1);
    } else {
        out.push(ROW_FORMAT_V2);
        out.extend_from_slice(&schema_id.0.to_le_bytes());
    }
}

/// The schema an image was written under, and where its first column starts.
pub fn image_header(image: &[u8]) -> Result<(SchemaId, usize), PkCodecError> {
    match image.first() {
        Some(&ROW_FORMAT_V1) => Ok((SchemaId(0), 1)),
        Some(&ROW_FORMAT_V2) => {
            let mut pos = 1;
            let id = take_u32(image, &mut pos, WHAT)?;
            Ok((SchemaId(id), pos))
        }
        other => Err(PkCodecError::Malformed {
            what: WHAT,
            reason: format!("format byte {other:?}, expected {ROW_FORMAT_V1} or {ROW_FORMAT_V2}"),
        }),
    }
}

/// Where the columns of `image`, which must be of schema `schema_id`, start.
fn columns_start(image: &[u8], schema_id: SchemaId) -> Result<usize, PkCodecError> {
    let (written, start) = image_header(image)?;
    if written != schema_id {
        return Err(PkCodecError::Malformed {
            what: WHAT,
            reason: format!(
                "an image of schema {} read as schema {}",
                written.0, schema_id.0
            ),
        });
    }
    Ok(start)
}

/// Bytes of one value of a fixed-width column type; `None` for the others.
pub fn fixed_width(data_type: &DataType) -> Option<usize> {
    match data_type {
        // Not table column types (see `column_types`).
        DataType::Decimal32(_, _) | DataType::Decimal64(_, _) => None,
        other => other.primitive_width(),
    }
}

enum Encoded<'a> {
    Null,
    Fixed { data: ArrayData, width: usize },
    Other(&'a ArrayRef),
}

/// Encodes the rows of a batch (every column of the table's schema `schema_id`, in order).
pub struct RowEncoder<'a> {
    batch: &'a RecordBatch,
    columns: Vec<Encoded<'a>>,
    schema_id: SchemaId,
}

impl<'a> RowEncoder<'a> {
    /// Every column's type must be [`super::is_row_type`] (checked when the table was created).
    pub fn new(batch: &'a RecordBatch, schema_id: SchemaId) -> Result<Self, PkCodecError> {
        let columns = batch
            .columns()
            .iter()
            .map(|column| {
                let data_type = column.data_type();
                if !super::is_row_type(data_type) {
                    return Err(PkCodecError::UnsupportedType {
                        data_type: data_type.to_string(),
                    });
                }
                Ok(match (data_type, fixed_width(data_type)) {
                    (DataType::Null, _) => Encoded::Null,
                    (_, Some(width)) => Encoded::Fixed {
                        data: column.to_data(),
                        width,
                    },
                    _ => Encoded::Other(column),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            batch,
            columns,
            schema_id,
        })
    }

    /// Writes the image of `row` to `out` (cleared first).
    pub fn encode(&self, row: usize, out: &mut Vec<u8>) -> Result<(), PkCodecError> {
        out.clear();
        push_header(self.schema_id, out);
        for (encoded, column) in self.columns.iter().zip(self.batch.columns()) {
            if matches!(encoded, Encoded::Null) {
                continue;
            }
            if column.is_null(row) {
                out.push(0);
                continue;
            }
            out.push(1);
            match encoded {
                Encoded::Null => {}
                Encoded::Fixed { data, width } => {
                    let start = (data.offset() + row) * width;
                    out.extend_from_slice(&data.buffers()[0].as_slice()[start..start + width]);
                }
                Encoded::Other(array) => encode_variable(array, row, out),
            }
        }
        if out.len() > MAX_ROW_IMAGE_BYTES {
            return Err(PkCodecError::RowTooLarge {
                row,
                bytes: out.len(),
                limit: MAX_ROW_IMAGE_BYTES,
            });
        }
        Ok(())
    }
}

fn with_length(bytes: &[u8], out: &mut Vec<u8>) {
    // Shorter than MAX_ROW_IMAGE_BYTES or the image is refused, so the length fits.
    out.extend_from_slice(&(bytes.len().min(u32::MAX as usize) as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode_variable(array: &ArrayRef, row: usize, out: &mut Vec<u8>) {
    match array.data_type() {
        DataType::Boolean => out.push(u8::from(array.as_boolean().value(row))),
        DataType::Utf8 => with_length(array.as_string::<i32>().value(row).as_bytes(), out),
        DataType::LargeUtf8 => with_length(array.as_string::<i64>().value(row).as_bytes(), out),
        DataType::Binary => with_length(array.as_binary::<i32>().value(row), out),
        DataType::LargeBinary => with_length(array.as_binary::<i64>().value(row), out),
        DataType::FixedSizeBinary(_) => {
            out.extend_from_slice(array.as_fixed_size_binary().value(row))
        }
        // `RowEncoder::new` checked every column's type.
        other => unreachable!("row image of type {other}"),
    }
}

const WHAT: &str = "row image";

/// The cells of an image of schema `schema_id`: per column of `schema`, its value's bytes
/// (as the layout stores them, without a string's length), or `None` for null. Fails naming
/// the defect if the image does not match the schema.
pub fn cells<'a>(
    schema: &Schema,
    schema_id: SchemaId,
    image: &'a [u8],
) -> Result<Vec<Option<&'a [u8]>>, PkCodecError> {
    let mut pos = columns_start(image, schema_id)?;
    let mut out = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let data_type = field.data_type();
        if matches!(data_type, DataType::Null) || !present(image, &mut pos)? {
            out.push(None);
            continue;
        }
        let len = match (data_type, fixed_width(data_type)) {
            (_, Some(width)) => width,
            (DataType::Boolean, _) => 1,
            (DataType::FixedSizeBinary(width), _) => usize::try_from(*width).map_err(malformed)?,
            (
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary,
                _,
            ) => take_u32(image, &mut pos, WHAT)? as usize,
            (other, _) => {
                return Err(PkCodecError::UnsupportedType {
                    data_type: other.to_string(),
                });
            }
        };
        out.push(Some(take(image, &mut pos, len, WHAT)?));
    }
    if pos != image.len() {
        return Err(PkCodecError::Malformed {
            what: WHAT,
            reason: format!("{} bytes after the last column", image.len() - pos),
        });
    }
    Ok(out)
}

/// The image of `cells` (as [`cells`] returns them) under `schema`, the table's schema
/// `schema_id`.
pub fn join_cells(
    schema: &Schema,
    schema_id: SchemaId,
    cells: &[Option<&[u8]>],
) -> Result<Vec<u8>, PkCodecError> {
    let size: usize = cells.iter().map(|c| 5 + c.map_or(0, <[u8]>::len)).sum();
    let mut out = Vec::with_capacity(5 + size);
    push_header(schema_id, &mut out);
    for (field, cell) in schema.fields().iter().zip(cells) {
        let data_type = field.data_type();
        if matches!(data_type, DataType::Null) {
            continue;
        }
        let Some(value) = cell else {
            out.push(0);
            continue;
        };
        out.push(1);
        if matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
        ) {
            with_length(value, &mut out);
        } else {
            out.extend_from_slice(value);
        }
    }
    if out.len() > MAX_ROW_IMAGE_BYTES {
        return Err(PkCodecError::RowTooLarge {
            row: 0,
            bytes: out.len(),
            limit: MAX_ROW_IMAGE_BYTES,
        });
    }
    Ok(out)
}

/// Reads a presence byte: whether a value follows.
fn present(image: &[u8], pos: &mut usize) -> Result<bool, PkCodecError> {
    match take(image, pos, 1, WHAT)?[0] {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(PkCodecError::Malformed {
            what: WHAT,
            reason: format!("presence byte {other} at {}", *pos - 1),
        }),
    }
}

/// The rows of `images`, in order, as a batch of `schema`, the table's schema `schema_id`
/// (the one they were written under). Fails naming the defect if an image does not match
/// it.
pub fn decode_rows(
    schema: &SchemaRef,
    schema_id: SchemaId,
    images: &[&[u8]],
) -> Result<RecordBatch, PkCodecError> {
    let rows = images.len();
    let mut positions = images
        .iter()
        .map(|image| columns_start(image, schema_id))
        .collect::<Result<Vec<usize>, _>>()?;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let data_type = field.data_type();
        let mut cells = images.iter().zip(positions.iter_mut());
        let column: ArrayRef = match (data_type, fixed_width(data_type)) {
            (DataType::Null, _) => new_null_array(data_type, rows),
            (_, Some(width)) => {
                let mut values = MutableBuffer::new(width * rows);
                let mut valid = BooleanBufferBuilder::new(rows);
                for (image, pos) in cells {
                    let is_present = present(image, pos)?;
                    if is_present {
                        values.extend_from_slice(take(image, pos, width, WHAT)?);
                    } else {
                        values.extend_zeros(width);
                    }
                    valid.append(is_present);
                }
                let data = ArrayData::builder(data_type.clone())
                    .len(rows)
                    .add_buffer(values.into())
                    .nulls(Some(NullBuffer::new(valid.finish())))
                    .build()
                    .map_err(malformed)?;
                make_array(data)
            }
            (DataType::Boolean, _) => {
                let mut builder = BooleanBuilder::with_capacity(rows);
                for (image, pos) in cells {
                    if present(image, pos)? {
                        builder.append_value(take(image, pos, 1, WHAT)?[0] != 0);
                    } else {
                        builder.append_null();
                    }
                }
                Arc::new(builder.finish())
            }
            (DataType::Utf8 | DataType::Binary, _) => {
                decode_bytes::<i32>(data_type, &mut cells, rows)?
            }
            (DataType::LargeUtf8 | DataType::LargeBinary, _) => {
                decode_bytes::<i64>(data_type, &mut cells, rows)?
            }
            (DataType::FixedSizeBinary(width), _) => {
                let width_bytes = usize::try_from(*width).map_err(|_| malformed(width))?;
                let mut builder = FixedSizeBinaryBuilder::with_capacity(rows, *width);
                for (image, pos) in cells {
                    if present(image, pos)? {
                        builder
                            .append_value(take(image, pos, width_bytes, WHAT)?)
                            .map_err(malformed)?;
                    } else {
                        builder.append_null();
                    }
                }
                Arc::new(builder.finish())
            }
            (other, _) => {
                return Err(PkCodecError::UnsupportedType {
                    data_type: other.to_string(),
                });
            }
        };
        columns.push(column);
    }
    for (row, (image, pos)) in images.iter().zip(&positions).enumerate() {
        if *pos != image.len() {
            return Err(PkCodecError::Malformed {
                what: WHAT,
                reason: format!(
                    "image {row} has {} bytes after its last column",
                    image.len() - pos
                ),
            });
        }
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(malformed)
}

fn decode_bytes<'i, O: OffsetSizeTrait>(
    data_type: &DataType,
    cells: &mut impl Iterator<Item = (&'i &'i [u8], &'i mut usize)>,
    rows: usize,
) -> Result<ArrayRef, PkCodecError> {
    let mut builder = GenericBinaryBuilder::<O>::with_capacity(rows, 0);
    for (image, pos) in cells {
        if present(image, pos)? {
            let len = take_u32(image, pos, WHAT)? as usize;
            builder.append_value(take(image, pos, len, WHAT)?);
        } else {
            builder.append_null();
        }
    }
    let binary = builder.finish();
    // Strings are checked to be UTF-8 here (`build` validates the values).
    let data = binary
        .into_data()
        .into_builder()
        .data_type(data_type.clone())
        .build()
        .map_err(malformed)?;
    Ok(make_array(data))
}

fn malformed(error: impl std::fmt::Display) -> PkCodecError {
    PkCodecError::Malformed {
        what: WHAT,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{
        BooleanArray, Decimal128Array, FixedSizeBinaryArray, Float64Array, Int8Array,
        LargeStringArray, NullArray, StringArray, TimestampMicrosecondArray, UInt64Array,
    };
    use arrow_schema::{Field, Schema, TimeUnit};
    use proptest::prelude::*;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("i8", DataType::Int8, true),
            Field::new("u64", DataType::UInt64, false),
            Field::new("f", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("ls", DataType::LargeUtf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new("fb", DataType::FixedSizeBinary(3), true),
            Field::new("n", DataType::Null, true),
        ]))
    }

    type Row = (
        Option<i8>,
        u64,
        Option<f64>,
        Option<bool>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i128>,
        Option<[u8; 3]>,
    );

    fn batch(rows: &[Row]) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from_iter(rows.iter().map(|r| r.0))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.3))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.4.clone()))),
            Arc::new(LargeStringArray::from_iter(
                rows.iter().map(|r| r.5.clone()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.6))
                    .with_timezone("+00:00"),
            ),
            Arc::new(
                Decimal128Array::from_iter(rows.iter().map(|r| r.7))
                    .with_precision_and_scale(10, 2)
                    .expect("decimal type"),
            ),
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(rows.iter().map(|r| r.8), 3)
                    .expect("fixed binary"),
            ),
            Arc::new(NullArray::new(rows.len())),
        ];
        RecordBatch::try_new(schema(), columns).expect("batch")
    }

    fn images(batch: &RecordBatch) -> Vec<Vec<u8>> {
        let encoder = RowEncoder::new(batch, SchemaId(0)).expect("encoder");
        (0..batch.num_rows())
            .map(|row| {
                let mut out = Vec::new();
                encoder.encode(row, &mut out).expect("image");
                out
            })
            .collect()
    }

    proptest! {
        #[test]
        fn cells_join_back_to_the_image(rows in proptest::collection::vec(any::<Row>(), 1..10)) {
            for image in images(&batch(&rows)) {
                let split = cells(&schema(), SchemaId(0), &image).expect("cells");
                prop_assert_eq!(split.len(), schema().fields().len());
                prop_assert_eq!(join_cells(&schema(), SchemaId(0), &split).expect("join"), image);
            }
        }

        #[test]
        fn images_decode_to_the_rows_they_encode(
            rows in proptest::collection::vec(any::<Row>(), 0..20),
            offset in 0usize..3,
        ) {
            let input = batch(&rows);
            // A sliced batch encodes the rows it shows, not its buffers' first rows.
            let offset = offset.min(rows.len());
            let sliced = input.slice(offset, rows.len() - offset);
            let images = images(&sliced);
            let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
            let decoded = decode_rows(&schema(), SchemaId(0), &refs).expect("decode");
            prop_assert_eq!(decoded, sliced);
        }
    }

    #[test]
    fn an_image_of_a_later_schema_names_it_and_reads_only_as_it() {
        let rows = [(
            Some(1),
            2,
            None,
            None,
            Some("x".into()),
            None,
            None,
            None,
            None,
        )];
        let input = batch(&rows);
        let encoder = RowEncoder::new(&input, SchemaId(7)).expect("encoder");
        let mut image = Vec::new();
        encoder.encode(0, &mut image).expect("image");
        assert_eq!(image[0], ROW_FORMAT_V2);
        assert_eq!(image_header(&image), Ok((SchemaId(7), 5)));
        assert_eq!(
            decode_rows(&schema(), SchemaId(7), &[&image]).expect("decodes"),
            input
        );
        let split = cells(&schema(), SchemaId(7), &image).expect("cells");
        assert_eq!(
            join_cells(&schema(), SchemaId(7), &split).expect("join"),
            image
        );
        // Read as another schema, it is refused, not misread.
        assert!(decode_rows(&schema(), SchemaId(0), &[&image]).is_err());
        assert!(cells(&schema(), SchemaId(6), &image).is_err());
        // The first schema's images keep the version 1 layout.
        let first = images(&input).remove(0);
        assert_eq!(first[0], ROW_FORMAT_V1);
        assert_eq!(first[1..], image[5..]);
        for cut in 0..5 {
            assert!(image_header(&image[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn damaged_images_are_errors_not_panics() {
        let input = batch(&[(
            Some(1),
            2,
            None,
            Some(true),
            Some("héllo".into()),
            None,
            Some(5),
            Some(12345),
            Some(*b"abc"),
        )]);
        let image = images(&input).remove(0);
        for cut in 0..image.len() {
            assert!(
                decode_rows(&schema(), SchemaId(0), &[&image[..cut]]).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = image.clone();
        longer.push(0);
        assert!(decode_rows(&schema(), SchemaId(0), &[&longer]).is_err());
        // A null in the non-nullable column.
        let mut nulled = image.clone();
        nulled[3] = 0;
        assert!(decode_rows(&schema(), SchemaId(0), &[&nulled]).is_err());
        // Bytes that are not UTF-8 in a string column.
        let at = image
            .windows(6)
            .position(|w| w == "héllo".as_bytes())
            .expect("string bytes");
        let mut bad = image.clone();
        bad[at + 1] = 0xFF;
        assert!(decode_rows(&schema(), SchemaId(0), &[&bad]).is_err());
    }
}
