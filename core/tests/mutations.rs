//! The seeded mutation suite: every decoder of outside or stored bytes in inlet-core is fed
//! tens of thousands of mutated valid inputs and must return (an error or a value) without
//! panicking and without allocating more than a small multiple of its input. It runs in CI
//! in seconds; the fuzz targets in `fuzz/` search the same ground for millions of runs.
//!
//! The panic-guarded entry points would turn a panic into an error, so this suite calls the
//! unguarded ones: a panic here is the failure it is, reported with its seed and case.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow_buffer::Buffer;
use inlet_core::ipc::{decode_schema_unguarded, decode_stream_unguarded};
use inlet_core::rng::SplitMix64;
use inlet_core::wal::{decode_chunk, decode_object};
use support::alloc::{PeakAlloc, peak_during};
use support::{mutate::mutate, samples};

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Cases per decoder; each takes microseconds.
const CASES: u64 = 20_000;

/// What a decode may allocate beyond its input: a small multiple of the input (a copy of
/// each misaligned buffer, the decoded arrays' headers) plus fixed bookkeeping.
fn allocation_bound(input_len: usize) -> usize {
    4 * input_len + 256 * 1024
}

fn run(name: &str, seed: u64, inputs: &[Vec<u8>], decode: impl Fn(&[u8])) {
    let mut rng = SplitMix64::new(seed);
    for case in 0..CASES {
        let input = &inputs[(case % inputs.len() as u64) as usize];
        let mutated = mutate(input, &mut rng);
        let (outcome, peak) = peak_during(|| catch_unwind(AssertUnwindSafe(|| decode(&mutated))));
        assert!(
            outcome.is_ok(),
            "{name}: case {case} of seed {seed:#x} panicked on {} bytes",
            mutated.len()
        );
        assert!(
            peak <= allocation_bound(mutated.len()),
            "{name}: case {case} of seed {seed:#x} allocated {peak} bytes for a {}-byte input",
            mutated.len()
        );
    }
}

#[test]
fn mutated_ipc_streams_never_panic_or_over_allocate() {
    let streams = samples::ipc_streams();
    run("ipc stream", 0x1eed, &streams, |bytes| {
        let buffer = Buffer::from(bytes);
        if let Ok(stream) = decode_stream_unguarded(&buffer) {
            // Whatever decodes is valid Arrow: deep validation must not fail or panic.
            for batch in &stream.batches {
                for column in batch.columns() {
                    column
                        .to_data()
                        .validate_full()
                        .expect("decoded arrays are valid");
                }
            }
        }
    });
    run("ipc schema", 0x5c4e, &streams, |bytes| {
        let _ = decode_schema_unguarded(bytes);
    });
}

/// A WAL object is checksummed, so random mutations mostly test the checksums; this suite
/// also decodes every chunk with the checksum of its mutated bytes, which sends corrupt
/// metadata and bodies through the layout checks and arrow.
#[test]
fn mutated_wal_objects_never_panic_or_over_allocate() {
    let (object, schemas) = samples::wal_object();
    run(
        "wal object",
        0x3a1,
        std::slice::from_ref(&object),
        |bytes| {
            let _ = decode_object(bytes);
            let Ok(footer) = decode_object(&object) else {
                return;
            };
            for (chunk, schema) in footer.chunks.iter().zip(&schemas) {
                let start = (chunk.chunk_offset as usize).min(bytes.len());
                let end = (start + chunk.chunk_len() as usize).min(bytes.len());
                let chunk_bytes = &bytes[start..end];
                let _ = decode_chunk(
                    chunk_bytes,
                    chunk.meta_len,
                    chunk.body_offset,
                    crc32c::crc32c(chunk_bytes),
                    schema,
                    None,
                );
            }
        },
    );
}

#[test]
fn mutated_primary_key_writes_and_row_images_never_panic_or_over_allocate() {
    use std::sync::Arc;

    use arrow_array::{BooleanArray, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use inlet_core::ids::SchemaId;
    use inlet_core::pk::ops::{PkOp, PkWrite, decode_writes, encode_writes};
    use inlet_core::pk::row::{RowEncoder, decode_rows};

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("ann"), None, Some("")])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ],
    )
    .expect("batch");
    // Images of the first schema (version 1) and of a later one (version 2, with its id).
    let mut images: Vec<Vec<u8>> = Vec::new();
    for schema_id in [SchemaId(0), SchemaId(3)] {
        let encoder = RowEncoder::new(&batch, schema_id).expect("encoder");
        for row in 0..batch.num_rows() {
            let mut out = Vec::new();
            encoder.encode(row, &mut out).expect("image");
            images.push(out);
        }
    }
    run("row image", 0x1a9e, &images, |bytes| {
        let _ = decode_rows(&schema, SchemaId(0), &[bytes]);
        let _ = decode_rows(&schema, SchemaId(3), &[bytes]);
    });
    let writes: Vec<PkWrite> = images
        .iter()
        .enumerate()
        .map(|(i, image)| PkWrite {
            op: if i == 1 { PkOp::Delete } else { PkOp::Upsert },
            key: vec![1, i as u8],
            image: if i == 1 { Vec::new() } else { image.clone() },
            version: (i == 2).then_some(7),
            columns: (i == 0).then(|| vec![0b101]),
        })
        .collect();
    run(
        "primary-key writes",
        0x0b5,
        &[encode_writes(&writes)],
        |bytes| {
            // Canonical: whatever decodes encodes back to the same bytes.
            if let Ok(decoded) = decode_writes(bytes) {
                assert_eq!(encode_writes(&decoded), bytes);
            }
        },
    );
}
