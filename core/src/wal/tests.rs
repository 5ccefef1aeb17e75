use std::path::PathBuf;

use arrow_array::builder::{
    FixedSizeBinaryBuilder, FixedSizeListBuilder, Float32Builder, Int32Builder, Int64Builder,
    LargeListBuilder, ListBuilder, MapBuilder, StringBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal32Array, Decimal128Array,
    Decimal256Array, DictionaryArray, DurationNanosecondArray, Float64Array, Int8Array, Int32Array,
    Int64Array, IntervalMonthDayNanoArray, LargeBinaryArray, LargeStringArray, ListArray,
    NullArray, RecordBatchOptions, StringArray, StringViewArray, StructArray,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow_buffer::{IntervalMonthDayNano, NullBuffer, OffsetBuffer, i256};
use arrow_schema::{Fields, UnionFields, UnionMode};
use proptest::prelude::*;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::fixture_v1;
use super::*;
use crate::error::{ErrorKind, HasKind};
use crate::ids::{Bucket, PartitionId, SchemaId, StreamId, TableId, TimestampMicros};

/// SplitMix64: a tiny deterministic generator for cell values, seeded by proptest (which
/// shrinks the seed, the row count and the column kinds).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn string(&mut self) -> String {
        const ALPHABET: [char; 8] = ['a', 'b', 'z', '0', ' ', 'é', '€', '🦀'];
        let len = self.below(9);
        (0..len)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.below(12);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A column type the generators know how to fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int8,
    Int64,
    UInt32,
    Float64,
    Date32,
    TimestampUtc,
    Duration,
    Interval,
    Decimal128,
    Decimal256,
    FixedSizeBinary,
    Utf8,
    LargeUtf8,
    Binary,
    LargeBinary,
    ListOfInt32,
    LargeListOfUtf8,
    FixedSizeListOfFloat32,
    Struct,
    Map,
    ListOfStruct,
    StructWithList,
}

const ALL_KINDS: [Kind; 24] = [
    Kind::Null,
    Kind::Boolean,
    Kind::Int8,
    Kind::Int64,
    Kind::UInt32,
    Kind::Float64,
    Kind::Date32,
    Kind::TimestampUtc,
    Kind::Duration,
    Kind::Interval,
    Kind::Decimal128,
    Kind::Decimal256,
    Kind::FixedSizeBinary,
    Kind::Utf8,
    Kind::LargeUtf8,
    Kind::Binary,
    Kind::LargeBinary,
    Kind::ListOfInt32,
    Kind::LargeListOfUtf8,
    Kind::FixedSizeListOfFloat32,
    Kind::Struct,
    Kind::Map,
    Kind::ListOfStruct,
    Kind::StructWithList,
];

impl Kind {
    /// `rows` values of this kind; `null_percent` of them (roughly) null.
    fn array(self, rows: usize, null_percent: u64, rng: &mut Rng) -> ArrayRef {
        let valid = |rng: &mut Rng| !rng.percent(null_percent);
        macro_rules! values {
            ($make:expr) => {
                (0..rows)
                    .map(|_| valid(rng).then(|| $make))
                    .collect::<Vec<_>>()
            };
        }
        match self {
            Kind::Null => Arc::new(NullArray::new(rows)),
            Kind::Boolean => Arc::new(BooleanArray::from(values!(rng.percent(50)))),
            Kind::Int8 => Arc::new(Int8Array::from(values!(rng.next() as i8))),
            Kind::Int64 => Arc::new(Int64Array::from(values!(rng.next() as i64))),
            Kind::UInt32 => Arc::new(UInt32Array::from(values!(rng.next() as u32))),
            Kind::Float64 => Arc::new(Float64Array::from(values!(rng.next() as f64 / 7.0))),
            Kind::Date32 => Arc::new(Date32Array::from(values!(rng.below(40_000) as i32))),
            Kind::TimestampUtc => Arc::new(
                TimestampMicrosecondArray::from(values!(rng.next() as i64 >> 12))
                    .with_timezone("UTC"),
            ),
            Kind::Duration => Arc::new(DurationNanosecondArray::from(values!(rng.next() as i64))),
            Kind::Interval => Arc::new(IntervalMonthDayNanoArray::from(values!(
                IntervalMonthDayNano::new(
                    rng.below(24) as i32,
                    rng.below(31) as i32,
                    rng.next() as i64
                )
            ))),
            Kind::Decimal128 => Arc::new(
                Decimal128Array::from(values!(i128::from(rng.next() as i64)))
                    .with_precision_and_scale(38, 3)
                    .unwrap(),
            ),
            Kind::Decimal256 => Arc::new(
                Decimal256Array::from(values!(i256::from_i128(i128::from(rng.next()))))
                    .with_precision_and_scale(76, 10)
                    .unwrap(),
            ),
            Kind::FixedSizeBinary => {
                let mut builder = FixedSizeBinaryBuilder::with_capacity(rows, 4);
                for _ in 0..rows {
                    if valid(rng) {
                        builder
                            .append_value(&rng.next().to_le_bytes()[..4])
                            .unwrap();
                    } else {
                        builder.append_null();
                    }
                }
                Arc::new(builder.finish())
            }
            Kind::Utf8 => Arc::new(StringArray::from(values!(rng.string()))),
            Kind::LargeUtf8 => Arc::new(LargeStringArray::from(values!(rng.string()))),
            Kind::Binary => {
                let values = values!(rng.bytes());
                Arc::new(BinaryArray::from_iter(values))
            }
            Kind::LargeBinary => {
                let values = values!(rng.bytes());
                Arc::new(LargeBinaryArray::from_iter(values))
            }
            Kind::ListOfInt32 => {
                let mut builder = ListBuilder::new(Int32Builder::new());
                for _ in 0..rows {
                    let is_valid = valid(rng);
                    if is_valid {
                        for _ in 0..rng.below(5) {
                            let value = valid(rng).then(|| rng.next() as i32);
                            builder.values().append_option(value);
                        }
                    }
                    builder.append(is_valid);
                }
                Arc::new(builder.finish())
            }
            Kind::LargeListOfUtf8 => {
                let mut builder = LargeListBuilder::new(StringBuilder::new());
                for _ in 0..rows {
                    let is_valid = valid(rng);
                    if is_valid {
                        for _ in 0..rng.below(4) {
                            let value = valid(rng).then(|| rng.string());
                            builder.values().append_option(value);
                        }
                    }
                    builder.append(is_valid);
                }
                Arc::new(builder.finish())
            }
            Kind::FixedSizeListOfFloat32 => {
                let mut builder = FixedSizeListBuilder::new(Float32Builder::new(), 3);
                for _ in 0..rows {
                    let is_valid = valid(rng);
                    for _ in 0..3 {
                        let value = valid(rng).then(|| rng.next() as f32);
                        builder.values().append_option(value);
                    }
                    builder.append(is_valid);
                }
                Arc::new(builder.finish())
            }
            Kind::Struct => Arc::new(Self::struct_array(rows, null_percent, rng)),
            Kind::Map => {
                let mut builder = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
                for _ in 0..rows {
                    let is_valid = valid(rng);
                    if is_valid {
                        for _ in 0..rng.below(4) {
                            builder.keys().append_value(rng.string());
                            let value = valid(rng).then(|| rng.next() as i64);
                            builder.values().append_option(value);
                        }
                    }
                    builder.append(is_valid).unwrap();
                }
                Arc::new(builder.finish())
            }
            Kind::ListOfStruct => {
                let lengths: Vec<usize> = (0..rows).map(|_| rng.below(4) as usize).collect();
                let values = Self::struct_array(lengths.iter().sum(), null_percent, rng);
                let nulls = Self::nulls(rows, null_percent, rng);
                let item = Arc::new(Field::new("item", values.data_type().clone(), true));
                Arc::new(
                    ListArray::try_new(
                        item,
                        OffsetBuffer::from_lengths(lengths),
                        Arc::new(values),
                        nulls,
                    )
                    .unwrap(),
                )
            }
            Kind::StructWithList => {
                let tags = Kind::ListOfInt32.array(rows, null_percent, rng);
                let count = Arc::new(Int64Array::from_iter_values(
                    (0..rows).map(|_| rng.next() as i64),
                ));
                let fields = Fields::from(vec![
                    Field::new("tags", tags.data_type().clone(), true),
                    Field::new("count", DataType::Int64, false),
                ]);
                let nulls = Self::nulls(rows, null_percent, rng);
                Arc::new(StructArray::try_new(fields, vec![tags, count], nulls).unwrap())
            }
        }
    }

    fn struct_array(rows: usize, null_percent: u64, rng: &mut Rng) -> StructArray {
        let a = Kind::Int64.array(rows, null_percent, rng);
        let b = Kind::Utf8.array(rows, null_percent, rng);
        let fields = Fields::from(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let nulls = Self::nulls(rows, null_percent, rng);
        StructArray::try_new(fields, vec![a, b], nulls).unwrap()
    }

    fn nulls(rows: usize, null_percent: u64, rng: &mut Rng) -> Option<NullBuffer> {
        let valid: Vec<bool> = (0..rows).map(|_| !rng.percent(null_percent)).collect();
        Some(NullBuffer::from(valid)).filter(|nulls| nulls.null_count() > 0)
    }
}

/// A batch with one column per kind; the share of nulls differs per column (none, some,
/// all), so validity buffers are sometimes empty and sometimes full.
fn batch_of(kinds: &[Kind], rows: usize, seed: u64) -> RecordBatch {
    let mut rng = Rng(seed);
    let columns: Vec<ArrayRef> = kinds
        .iter()
        .map(|kind| {
            let null_percent = [0, 0, 10, 50, 100][rng.below(5) as usize];
            kind.array(rows, null_percent, &mut rng)
        })
        .collect();
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| Field::new(format!("c{i}"), column.data_type().clone(), true))
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options).unwrap()
}

/// What one chunk of a generated object holds.
#[derive(Clone, Debug)]
struct ChunkSpec {
    stream: StreamId,
    schema_id: SchemaId,
    kinds: Vec<Kind>,
    rows: usize,
    seed: u64,
    /// Encode a slice of the batch, to exercise arrow-ipc's truncation of sliced arrays.
    slice: Option<(usize, usize)>,
    min_ts: i64,
    ts_span: i64,
}

impl ChunkSpec {
    fn batch(&self) -> RecordBatch {
        let batch = batch_of(&self.kinds, self.rows, self.seed);
        match self.slice {
            Some((offset, len)) if self.rows > 0 => {
                let offset = offset % self.rows;
                batch.slice(offset, len.min(self.rows - offset))
            }
            _ => batch,
        }
    }

    fn input<'a>(&self, batch: &'a RecordBatch) -> ChunkInput<'a> {
        ChunkInput {
            stream: self.stream,
            schema_id: self.schema_id,
            batch,
            min_ts: TimestampMicros(self.min_ts),
            max_ts: TimestampMicros(self.min_ts + self.ts_span),
        }
    }
}

fn chunk_spec(max_rows: usize, max_columns: usize) -> impl Strategy<Value = ChunkSpec> {
    (
        (0u64..2, 0u32..2, 0u32..3, 0u32..3),
        prop::collection::vec(prop::sample::select(ALL_KINDS.to_vec()), 0..=max_columns),
        0..=max_rows,
        any::<u64>(),
        prop::option::of((0usize..64, 0usize..64)),
        (0i64..1 << 52, 0i64..1 << 20),
    )
        .prop_map(
            |((table, partition, bucket, schema), kinds, rows, seed, slice, (min_ts, ts_span))| {
                ChunkSpec {
                    stream: StreamId::new(TableId(table), PartitionId(partition), Bucket(bucket)),
                    schema_id: SchemaId(schema),
                    kinds,
                    rows,
                    seed,
                    slice,
                    min_ts,
                    ts_span,
                }
            },
        )
}

fn encode_specs(specs: &[ChunkSpec]) -> (Vec<RecordBatch>, EncodedWal) {
    let batches: Vec<RecordBatch> = specs.iter().map(ChunkSpec::batch).collect();
    let inputs: Vec<ChunkInput<'_>> = specs
        .iter()
        .zip(&batches)
        .map(|(spec, batch)| spec.input(batch))
        .collect();
    let encoded = encode_wal_object(&inputs).unwrap();
    (batches, encoded)
}

/// The bytes of `chunk` within `object`.
fn chunk_bytes<'a>(object: &'a [u8], chunk: &ChunkMeta) -> &'a [u8] {
    &object[chunk.chunk_offset as usize..][..chunk.chunk_len() as usize]
}

fn decode_whole_chunk(
    object: &[u8],
    chunk: &ChunkMeta,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
) -> Result<RecordBatch, WalDecodeError> {
    decode_chunk(
        chunk_bytes(object, chunk),
        chunk.meta_len,
        chunk.body_offset,
        chunk.chunk_crc,
        schema,
        projection,
    )
}

/// Decodes `projection` of `chunk` the way a column-pruning reader does: GET the metadata
/// and only the projected columns' ranges; every other body byte is `fill`.
fn decode_ranged(
    object: &[u8],
    chunk: &ChunkMeta,
    schema: &SchemaRef,
    projection: &[usize],
    fill: u8,
) -> Result<RecordBatch, WalDecodeError> {
    let chunk_bytes = chunk_bytes(object, chunk);
    let meta = &chunk_bytes[..chunk.meta_len as usize];
    let body = &chunk_bytes[chunk.body_offset as usize..];
    let mut sparse = vec![fill; body.len()];
    for &index in projection {
        let range = chunk.columns[index];
        let span = range.offset as usize..(range.offset + range.len) as usize;
        sparse[span.clone()].copy_from_slice(&body[span]);
    }
    decode_projected(
        meta,
        chunk.meta_crc,
        Buffer::from(sparse),
        &chunk.columns,
        schema,
        projection,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the writer puts in, a reader gets back exactly, through both the
    /// whole-object path and the ranged (trailer, then footer) path.
    #[test]
    fn objects_round_trip(specs in prop::collection::vec(chunk_spec(200, 6), 1..5)) {
        let (batches, encoded) = encode_specs(&specs);
        let bytes = &encoded.bytes[..];

        let footer = decode_object(bytes).unwrap();
        prop_assert_eq!(&footer, &encoded.footer);
        let trailer = decode_trailer(&bytes[bytes.len() - WAL_TRAILER_LEN..]).unwrap();
        prop_assert_eq!(trailer, encoded.trailer);
        let footer_bytes =
            &bytes[trailer.footer_offset as usize..][..trailer.footer_len as usize];
        prop_assert_eq!(&decode_footer(footer_bytes, &trailer).unwrap(), &footer);

        prop_assert_eq!(footer.chunks.len(), specs.len());
        for ((chunk, spec), batch) in footer.chunks.iter().zip(&specs).zip(&batches) {
            prop_assert_eq!(chunk.stream, spec.stream);
            prop_assert_eq!(chunk.schema_id, spec.schema_id);
            prop_assert_eq!(chunk.row_count as usize, batch.num_rows());
            prop_assert_eq!(chunk.min_ts, TimestampMicros(spec.min_ts));
            prop_assert_eq!(chunk.max_ts, TimestampMicros(spec.min_ts + spec.ts_span));
            prop_assert_eq!(chunk.columns.len(), batch.num_columns());
            prop_assert_eq!(chunk.chunk_offset % 8, 0);
            prop_assert_eq!((chunk.chunk_offset + u64::from(chunk.body_offset)) % 8, 0);
            let decoded = decode_whole_chunk(bytes, chunk, batch.schema_ref(), None).unwrap();
            prop_assert_eq!(&decoded, batch);
            assert_valid(&decoded);
        }
    }

    /// A reader that fetches only the projected columns' byte ranges decodes the same
    /// rows as one that fetches the whole chunk, whatever the unfetched bytes hold.
    #[test]
    fn projected_ranges_decode_like_the_whole_chunk(
        specs in prop::collection::vec(chunk_spec(200, 6), 1..4),
        projection_seed in any::<u64>(),
        fill in prop_oneof![Just(0u8), any::<u8>()],
    ) {
        let (batches, encoded) = encode_specs(&specs);
        let bytes = &encoded.bytes[..];
        let mut rng = Rng(projection_seed);
        for (chunk, batch) in encoded.footer.chunks.iter().zip(&batches) {
            // A random subset of the columns, in random order.
            let mut projection: Vec<usize> =
                (0..batch.num_columns()).filter(|_| rng.percent(50)).collect();
            for i in (1..projection.len()).rev() {
                projection.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let schema = batch.schema();
            let want = batch.project(&projection).unwrap();
            let ranged = decode_ranged(bytes, chunk, &schema, &projection, fill).unwrap();
            prop_assert_eq!(&ranged, &want);
            assert_valid(&ranged);
            let whole = decode_whole_chunk(bytes, chunk, &schema, Some(&projection)).unwrap();
            prop_assert_eq!(&whole, &want);
        }
    }
}

proptest! {
    // Every case flips every byte of its object, so keep objects and cases small.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every byte a checksum or magic covers is checked: flipping it makes decode_object,
    /// or decode_chunk of the chunk holding it, fail. Padding must be zero, so flips there
    /// fail too. Only the reserved fields of the header and the trailer are ignored, and
    /// flipping them changes nothing.
    #[test]
    fn every_flipped_byte_is_detected(
        specs in prop::collection::vec(chunk_spec(24, 4), 1..4),
        mask_seed in any::<u64>(),
    ) {
        let (_batches, encoded) = encode_specs(&specs);
        let original = &encoded.bytes[..];
        let trailer_reserved = original.len() - 12..original.len() - 8;
        let reserved = |position: usize| {
            (12..WAL_HEADER_LEN).contains(&position) || trailer_reserved.contains(&position)
        };
        let mut rng = Rng(mask_seed);
        let mut corrupt = original.to_vec();
        for position in 0..original.len() {
            let mask = (rng.below(255) + 1) as u8;
            corrupt[position] ^= mask;
            match decode_object(&corrupt) {
                Err(error) => prop_assert!(
                    !reserved(position),
                    "flip in the reserved field at {} rejected: {}", position, error
                ),
                Ok(footer) => {
                    // The footer is checksummed: if it decodes, it is the original.
                    prop_assert_eq!(&footer, &encoded.footer);
                    let holder = footer.chunks.iter().find(|chunk| {
                        (chunk.chunk_offset..chunk.chunk_offset + chunk.chunk_len())
                            .contains(&(position as u64))
                    });
                    for chunk in &footer.chunks {
                        let schema = specs_schema(&specs, &encoded, chunk);
                        let result = decode_whole_chunk(&corrupt, chunk, &schema, None);
                        if holder == Some(chunk) {
                            prop_assert!(
                                matches!(result, Err(WalDecodeError::ChunkChecksum { .. })),
                                "flip at {} in a chunk not detected", position
                            );
                        } else {
                            prop_assert!(result.is_ok());
                        }
                    }
                    prop_assert!(
                        holder.is_some() || reserved(position),
                        "flip at {} outside every chunk was not detected", position
                    );
                }
            }
            corrupt[position] ^= mask;
        }
    }

    /// Chunk metadata that is corrupt but carries a matching checksum (a writer bug, or an
    /// attacker) must give errors, never panics: arrow-ipc's reader trusts the metadata.
    #[test]
    fn corrupt_metadata_with_a_valid_checksum_never_panics(
        spec in chunk_spec(24, 5),
        mask_seed in any::<u64>(),
    ) {
        let (batches, encoded) = encode_specs(std::slice::from_ref(&spec));
        let chunk = &encoded.footer.chunks[0];
        let schema = batches[0].schema();
        let original = chunk_bytes(&encoded.bytes, chunk).to_vec();
        let projection: Vec<usize> = (0..schema.fields().len()).step_by(2).collect();
        let mut rng = Rng(mask_seed);
        for position in 0..chunk.meta_len as usize {
            let mut corrupt = original.clone();
            corrupt[position] ^= (rng.below(255) + 1) as u8;
            let crc = crc32c::crc32c(&corrupt);
            let body_offset = chunk.body_offset as usize;
            for projection in [None, Some(&projection[..])] {
                let _ = decode_chunk(
                    &corrupt, chunk.meta_len, chunk.body_offset, crc, &schema, projection,
                );
            }
            let meta = &corrupt[..chunk.meta_len as usize];
            let _ = decode_projected(
                meta,
                crc32c::crc32c(meta),
                Buffer::from(&corrupt[body_offset..]),
                &chunk.columns,
                &schema,
                &projection,
            );
        }
    }

    /// The same for footers: a footer that is corrupt but checksummed gives an error or a
    /// footer, never a panic or a huge allocation.
    #[test]
    fn corrupt_footer_with_a_valid_checksum_never_panics(
        spec in chunk_spec(8, 3),
        flips in prop::collection::vec((any::<usize>(), 1u8..=255), 1..4),
    ) {
        let (_batches, encoded) = encode_specs(std::slice::from_ref(&spec));
        let mut bytes = encoded.bytes.to_vec();
        let trailer = encoded.trailer;
        let footer_start = trailer.footer_offset as usize;
        let footer_end = footer_start + trailer.footer_len as usize;
        for (position, mask) in flips {
            bytes[footer_start + position % (footer_end - footer_start)] ^= mask;
        }
        let crc = crc32c::crc32c(&bytes[footer_start..footer_end]);
        bytes[footer_end + 12..footer_end + 16].copy_from_slice(&crc.to_le_bytes());
        let _ = decode_object(&bytes);
    }

    /// Arbitrary bytes are rejected without panicking.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_object(&bytes);
        if bytes.len() >= WAL_TRAILER_LEN {
            let mut bytes = bytes.clone();
            let end = bytes.len();
            bytes[end - 8..].copy_from_slice(&WAL_MAGIC);
            bytes[..8.min(end)].copy_from_slice(&WAL_MAGIC[..8.min(end)]);
            let _ = decode_object(&bytes);
        }
    }
}

/// The schema a flip test decodes `chunk` with: that of the spec at the same position.
fn specs_schema(specs: &[ChunkSpec], encoded: &EncodedWal, chunk: &ChunkMeta) -> SchemaRef {
    let index = encoded
        .footer
        .chunks
        .iter()
        .position(|c| c == chunk)
        .unwrap();
    specs[index].batch().schema()
}

/// Every supported type, nested ones included, gets a column range that holds all of its
/// buffers and nothing of its neighbours: decoding one column from its range alone, with
/// every other body byte garbage, gives that column back.
#[test]
fn every_supported_type_has_an_exact_column_range() {
    for rows in [0, 1, 37] {
        for seed in 0..4 {
            let batch = batch_of(&ALL_KINDS, rows, seed);
            let input = ChunkInput {
                stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
                schema_id: SchemaId(0),
                batch: &batch,
                min_ts: TimestampMicros(0),
                max_ts: TimestampMicros(0),
            };
            let encoded = encode_wal_object(&[input]).unwrap();
            let chunk = &encoded.footer.chunks[0];
            let mut previous_end = 0;
            for (index, range) in chunk.columns.iter().enumerate() {
                assert!(range.offset >= previous_end, "column {index} overlaps");
                previous_end = range.offset + range.len;
                let schema = batch.schema();
                for fill in [0x00, 0xA5, 0xFF] {
                    let got = decode_ranged(&encoded.bytes, chunk, &schema, &[index], fill)
                        .unwrap_or_else(|e| panic!("{:?} with {rows} rows: {e}", ALL_KINDS[index]));
                    assert_eq!(
                        got,
                        batch.project(&[index]).unwrap(),
                        "{:?}",
                        ALL_KINDS[index]
                    );
                }
            }
            assert!(previous_end <= chunk.body_len);
        }
    }
}

/// The buffer count per type is what arrow-ipc 58 writes with metadata version 5; in
/// particular a Null column has no buffers at all (version 4 gave it a validity buffer).
#[test]
fn buffer_counts_match_arrow_ipc() {
    let cases: [(Kind, usize); 8] = [
        (Kind::Null, 0),
        (Kind::Int64, 2),
        (Kind::Boolean, 2),
        (Kind::Utf8, 3),
        (Kind::ListOfInt32, 2 + 2),
        (Kind::FixedSizeListOfFloat32, 1 + 2),
        (Kind::Struct, 1 + 2 + 3),
        (Kind::Map, 2 + 1 + 3 + 2),
    ];
    for (kind, expected) in cases {
        let batch = batch_of(&[kind], 5, 1);
        let input = ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
            schema_id: SchemaId(0),
            batch: &batch,
            min_ts: TimestampMicros(0),
            max_ts: TimestampMicros(0),
        };
        let encoded = encode_wal_object(&[input]).unwrap();
        let chunk = &encoded.footer.chunks[0];
        let meta = &chunk_bytes(&encoded.bytes, chunk)[..chunk.meta_len as usize];
        let message = arrow_ipc::root_as_message(meta).unwrap();
        let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
        assert_eq!(buffers.len(), expected, "{kind:?}");
    }
}

/// A column whose buffers are all empty (no rows, no nulls) or that has none (Null) gets
/// an empty range at its position, between its neighbours.
#[test]
fn columns_without_bytes_get_empty_ranges_in_place() {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("before", DataType::Utf8, true),
            Field::new("empty", DataType::Int64, true),
            Field::new("nothing", DataType::Null, true),
            Field::new("after", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(StringArray::from(Vec::<Option<&str>>::new())),
            Arc::new(Int64Array::from(Vec::<i64>::new())),
            Arc::new(NullArray::new(0)),
            Arc::new(StringArray::from(Vec::<Option<&str>>::new())),
        ],
    )
    .unwrap();
    let input = ChunkInput {
        stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
        schema_id: SchemaId(0),
        batch: &batch,
        min_ts: TimestampMicros(0),
        max_ts: TimestampMicros(0),
    };
    let encoded = encode_wal_object(&[input]).unwrap();
    let columns = &encoded.footer.chunks[0].columns;
    // An empty string column still has its single zero offset (4 bytes); its range runs
    // to its empty values buffer, which starts after the offsets' padding.
    assert_eq!(columns[0].offset, 0);
    assert!(columns[0].len >= 4);
    for empty in [&columns[1], &columns[2]] {
        assert_eq!(empty.len, 0);
        assert_eq!(empty.offset, columns[0].offset + columns[0].len);
        assert_eq!(empty.offset, columns[3].offset);
        assert_eq!(empty.crc32c, crc32c::crc32c(&[]));
    }
    assert!(columns[3].len >= 4);
    let schema = batch.schema();
    let decoded =
        decode_whole_chunk(&encoded.bytes, &encoded.footer.chunks[0], &schema, None).unwrap();
    assert_eq!(decoded, batch);
}

#[test]
fn unsupported_types_are_rejected_by_name() {
    let dictionary: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
    let view = StringViewArray::from(vec!["a", "b", "c"]);
    let list_of_dictionary = {
        let item = Arc::new(Field::new("item", dictionary.data_type().clone(), true));
        ListArray::try_new(
            item,
            OffsetBuffer::from_lengths([3]),
            Arc::new(dictionary.clone()),
            None,
        )
        .unwrap()
    };
    let union = arrow_array::UnionArray::try_new(
        UnionFields::try_new(vec![0], vec![Field::new("i", DataType::Int32, true)]).unwrap(),
        vec![0i8, 0, 0].into(),
        None,
        vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
    )
    .unwrap();
    // Tables cannot hold Decimal32 (the lake does not map it), so neither does the WAL.
    let decimal32 = Decimal32Array::from(vec![1, 2, 3])
        .with_precision_and_scale(9, 2)
        .unwrap();
    let cases: Vec<(ArrayRef, &str)> = vec![
        (Arc::new(decimal32), "col"),
        (Arc::new(dictionary), "col"),
        (Arc::new(view), "col"),
        (Arc::new(list_of_dictionary), "col.item"),
        (Arc::new(union), "col"),
    ];
    for (array, path) in cases {
        let data_type = array.data_type().clone();
        let schema = Schema::new(vec![Field::new("col", data_type.clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![array]).unwrap();
        let input = ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
            schema_id: SchemaId(0),
            batch: &batch,
            min_ts: TimestampMicros(0),
            max_ts: TimestampMicros(0),
        };
        let error = encode_wal_object(&[input]).unwrap_err();
        let WalEncodeError::UnsupportedType { column, .. } = &error else {
            panic!("{data_type}: unexpected error {error}");
        };
        assert_eq!(column, path, "{data_type}");
        assert!(
            error
                .to_string()
                .starts_with("unsupported type for wal column")
        );
    }
    assert!(matches!(UnionMode::Sparse, UnionMode::Sparse));
}

#[test]
fn encoding_rejects_empty_objects_and_inverted_time_ranges() {
    let error = encode_wal_object(&[]).unwrap_err();
    assert!(matches!(error, WalEncodeError::NoChunks));
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    let batch = batch_of(&[Kind::Int64], 3, 0);
    let input = ChunkInput {
        stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
        schema_id: SchemaId(0),
        batch: &batch,
        min_ts: TimestampMicros(10),
        max_ts: TimestampMicros(9),
    };
    assert!(matches!(
        encode_wal_object(&[input]),
        Err(WalEncodeError::InvalidTimeRange { .. })
    ));
}

#[test]
fn decoding_rejects_foreign_and_future_objects() {
    let batch = batch_of(&[Kind::Int64, Kind::Utf8], 3, 0);
    let input = ChunkInput {
        stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
        schema_id: SchemaId(0),
        batch: &batch,
        min_ts: TimestampMicros(0),
        max_ts: TimestampMicros(0),
    };
    let encoded = encode_wal_object(&[input]).unwrap();
    let bytes = encoded.bytes.to_vec();

    let error = decode_object(&bytes[..39]).unwrap_err();
    assert_eq!(error.to_string(), "wal object too short: 39 bytes");

    let mut future = bytes.clone();
    future[8..10].copy_from_slice(&2u16.to_le_bytes());
    let error = decode_object(&future).unwrap_err();
    assert_eq!(error.to_string(), "unsupported wal format version 2");

    let mut compressed = bytes.clone();
    compressed[10] = 1;
    let error = decode_object(&compressed).unwrap_err();
    assert_eq!(error.to_string(), "unsupported wal flags 0x0001");

    let mut foreign = bytes.clone();
    foreign[0] = b'X';
    assert!(matches!(
        decode_object(&foreign),
        Err(WalDecodeError::BadMagic { location: "header" })
    ));

    // The trailer carries the version and flags too, for readers that fetch only the tail.
    let trailer_start = bytes.len() - WAL_TRAILER_LEN;
    let trailer = &bytes[trailer_start..];
    assert_eq!(decode_trailer(trailer).unwrap(), encoded.trailer);
    assert_eq!(encoded.trailer.version, WAL_FORMAT_VERSION);
    assert_eq!(encoded.trailer.flags, 0);
    assert!(matches!(
        decode_trailer(&bytes[bytes.len() - 31..]),
        Err(WalDecodeError::TrailerLength { len: 31 })
    ));
    let mut bad_magic = trailer.to_vec();
    bad_magic[31] ^= 1;
    assert_eq!(
        decode_trailer(&bad_magic).unwrap_err().to_string(),
        "bad wal magic in the trailer"
    );
    let mut future = bytes.clone();
    future[trailer_start + 16..trailer_start + 18].copy_from_slice(&2u16.to_le_bytes());
    for error in [
        decode_trailer(&future[trailer_start..]).unwrap_err(),
        decode_object(&future).unwrap_err(),
    ] {
        assert_eq!(error.to_string(), "unsupported wal format version 2");
        assert_eq!(error.kind(), ErrorKind::Corruption);
    }
    let mut compressed = bytes.clone();
    compressed[trailer_start + 18] = 1;
    for error in [
        decode_trailer(&compressed[trailer_start..]).unwrap_err(),
        decode_object(&compressed).unwrap_err(),
    ] {
        assert_eq!(error.to_string(), "unsupported wal flags 0x0001");
    }
    let mut reserved = bytes.clone();
    reserved[trailer_start + 20..trailer_start + 24].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(decode_object(&reserved).unwrap(), encoded.footer);

    let chunk = &encoded.footer.chunks[0];
    let schema = batch.schema();
    let mut corrupt = bytes.clone();
    corrupt[chunk.chunk_offset as usize + chunk.body_offset as usize] ^= 0x10;
    let error = decode_whole_chunk(&corrupt, chunk, &schema, None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("wal chunk checksum mismatch: expected 0x"),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::Corruption);
}

#[test]
fn decoding_checks_projections_and_column_ranges() {
    let batch = batch_of(&[Kind::Int64, Kind::Utf8, Kind::Struct], 10, 3);
    let input = ChunkInput {
        stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
        schema_id: SchemaId(0),
        batch: &batch,
        min_ts: TimestampMicros(0),
        max_ts: TimestampMicros(0),
    };
    let encoded = encode_wal_object(&[input]).unwrap();
    let chunk = &encoded.footer.chunks[0];
    let schema = batch.schema();
    let bytes = &encoded.bytes[..];

    assert!(matches!(
        decode_whole_chunk(bytes, chunk, &schema, Some(&[3])),
        Err(WalDecodeError::ProjectionOutOfRange {
            index: 3,
            column_count: 3
        })
    ));
    assert!(matches!(
        decode_whole_chunk(bytes, chunk, &schema, Some(&[1, 1])),
        Err(WalDecodeError::DuplicateProjection { index: 1 })
    ));

    // A column range that got the wrong bytes is caught by its checksum.
    let chunk_bytes = chunk_bytes(bytes, chunk);
    let meta = &chunk_bytes[..chunk.meta_len as usize];
    let mut body = chunk_bytes[chunk.body_offset as usize..].to_vec();
    body[chunk.columns[1].offset as usize] ^= 1;
    let error = decode_projected(
        meta,
        chunk.meta_crc,
        Buffer::from(body.clone()),
        &chunk.columns,
        &schema,
        &[1],
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("wal column `c1` checksum mismatch"),
        "{error}"
    );
    // ...and the same bytes are never looked at when the column is not projected.
    let projected = decode_projected(
        meta,
        chunk.meta_crc,
        Buffer::from(body),
        &chunk.columns,
        &schema,
        &[2, 0],
    )
    .unwrap();
    assert_eq!(projected, batch.project(&[2, 0]).unwrap());

    // Metadata that got a flipped byte is caught by its own checksum, whatever the byte.
    let body = Buffer::from(&chunk_bytes[chunk.body_offset as usize..]);
    for position in 0..meta.len() {
        let mut corrupt = meta.to_vec();
        corrupt[position] ^= 0x04;
        let error = decode_projected(
            &corrupt,
            chunk.meta_crc,
            body.clone(),
            &chunk.columns,
            &schema,
            &[0],
        )
        .unwrap_err();
        assert!(
            matches!(error, WalDecodeError::MetaChecksum { expected, .. }
                if expected == chunk.meta_crc),
            "flip at {position}: {error}"
        );
        assert_eq!(error.kind(), ErrorKind::Corruption);
    }
    assert_eq!(chunk.meta_crc, crc32c::crc32c(meta));

    // Column ranges that disagree with the metadata are rejected.
    let mut columns = chunk.columns.clone();
    columns[2].offset += 8;
    assert!(matches!(
        decode_projected(meta, chunk.meta_crc, body.clone(), &columns, &schema, &[0]),
        Err(WalDecodeError::ColumnRangeMismatch { .. })
    ));
    assert!(matches!(
        decode_projected(meta, chunk.meta_crc, body, &columns[..2], &schema, &[0]),
        Err(WalDecodeError::ColumnCount {
            expected: 3,
            found: 2
        })
    ));
}

/// Panics unless every column of `batch` passes Arrow's full validation (buffer sizes and
/// alignment, offsets, UTF-8, null counts).
fn assert_valid(batch: &RecordBatch) {
    for column in batch.columns() {
        column.to_data().validate_full().unwrap();
    }
}

/// Buffers are padded to 8 bytes, not arrow-ipc's default 64, so a 16-byte decimal can
/// start at an offset that is a multiple of 8 only. arrow-ipc's reader copies such a buffer
/// into an aligned one instead of rejecting it, and so it does for a body that
/// `decode_projected` gets at any address: the decoded batch is equal, aligned and valid.
#[test]
fn buffers_padded_to_8_bytes_decode_aligned_and_valid() {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("small", DataType::Int8, false),
            Field::new("price", DataType::Decimal128(38, 3), false),
            Field::new("wide", DataType::Decimal256(76, 10), false),
        ])),
        vec![
            Arc::new(Int8Array::from(vec![1, 2, 3])),
            Arc::new(
                Decimal128Array::from(vec![1, i128::MAX / 7, -3])
                    .with_precision_and_scale(38, 3)
                    .unwrap(),
            ),
            Arc::new(
                Decimal256Array::from(vec![i256::from_i128(7), i256::MAX, i256::MINUS_ONE])
                    .with_precision_and_scale(76, 10)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    let input = ChunkInput {
        stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
        schema_id: SchemaId(0),
        batch: &batch,
        min_ts: TimestampMicros(0),
        max_ts: TimestampMicros(0),
    };
    let encoded = encode_wal_object(&[input]).unwrap();
    let chunk = &encoded.footer.chunks[0];
    let bytes = chunk_bytes(&encoded.bytes, chunk);
    let meta = &bytes[..chunk.meta_len as usize];
    let body = &bytes[chunk.body_offset as usize..];

    // 3 bytes of Int8 padded to 8, then 48 and 96 bytes of decimals: 152 bytes, where
    // 64-byte padding made 256. Both decimal buffers start 8 bytes off a 16-byte boundary.
    assert_eq!(chunk.body_len, 8 + 48 + 96);
    let message = arrow_ipc::root_as_message(meta).unwrap();
    let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
    let offsets: Vec<i64> = buffers.iter().map(|b| b.offset()).collect();
    assert_eq!(offsets, vec![0, 0, 8, 8, 56, 56]);

    let check = |decoded: &RecordBatch| {
        assert_eq!(decoded, &batch);
        assert_valid(decoded);
        let price = decoded.column(1).as_any().downcast_ref::<Decimal128Array>();
        let price = price.unwrap().values().inner().as_ptr();
        assert_eq!(price.align_offset(std::mem::align_of::<i128>()), 0);
        let wide = decoded.column(2).as_any().downcast_ref::<Decimal256Array>();
        let wide = wide.unwrap().values().inner().as_ptr();
        assert_eq!(wide.align_offset(std::mem::align_of::<i256>()), 0);
    };
    check(&decode_whole_chunk(&encoded.bytes, chunk, &batch.schema(), None).unwrap());
    for shift in [0, 1, 8] {
        // Buffer::from(&[u8]) allocates at least 16-aligned; slicing shifts the start.
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(body);
        let shifted = Buffer::from(&shifted[..]).slice(shift);
        assert_eq!(shifted.as_ptr() as usize % 16, shift);
        let decoded = decode_projected(
            meta,
            chunk.meta_crc,
            shifted,
            &chunk.columns,
            &batch.schema(),
            &[0, 1, 2],
        )
        .unwrap();
        check(&decoded);
    }
}

/// Objects written by format version 1 stay readable, with the same contents: the
/// committed fixture (written by `examples/write_wal_fixture.rs` from the chunks of
/// `tests/fixtures/wal_v1.rs`) decodes to exactly those chunks, whole and column by
/// column, every checksum verified.
#[test]
fn wal_v1_fixture_still_decodes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal-v1.bin");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"INLETWAL");
    assert_eq!(&bytes[8..12], &[1, 0, 0, 0]); // version 1, no flags
    let trailer = decode_trailer(&bytes[bytes.len() - WAL_TRAILER_LEN..]).unwrap();
    assert_eq!((trailer.version, trailer.flags), (1, 0));

    let footer = decode_object(&bytes).unwrap();
    let coordinates: Vec<_> = footer
        .chunks
        .iter()
        .map(|chunk| {
            let s = chunk.stream;
            (
                s.table.0,
                s.partition.0,
                s.bucket.0,
                chunk.schema_id.0,
                chunk.row_count,
            )
        })
        .collect();
    assert_eq!(
        coordinates,
        vec![(1, 0, 0, 0, 3), (1, 0, 1, 1, 2), (2, 3, 7, 0, 1)]
    );
    assert_eq!(footer.chunks[2].min_ts, TimestampMicros(-5));
    assert_eq!(footer.chunks[2].max_ts, TimestampMicros(7));

    let expected = fixture_v1::chunks();
    assert_eq!(footer.chunks.len(), expected.len());
    for (chunk, want) in footer.chunks.iter().zip(&expected) {
        let stream = StreamId::new(
            TableId(want.table),
            PartitionId(want.partition),
            Bucket(want.bucket),
        );
        assert_eq!(chunk.stream, stream);
        assert_eq!(chunk.schema_id, SchemaId(want.schema_id));
        assert_eq!(chunk.min_ts, TimestampMicros(want.min_ts));
        assert_eq!(chunk.max_ts, TimestampMicros(want.max_ts));
        let schema = want.batch.schema();
        let whole = decode_whole_chunk(&bytes, chunk, &schema, None).unwrap();
        assert_eq!(whole, want.batch);
        assert_valid(&whole);
        for column in 0..want.batch.num_columns() {
            let got = decode_ranged(&bytes, chunk, &schema, &[column], 0).unwrap();
            assert_eq!(got, want.batch.project(&[column]).unwrap());
        }
    }
    let names = expected[0].batch.column_by_name("name").unwrap();
    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(names.value(2), "grace €");
}
