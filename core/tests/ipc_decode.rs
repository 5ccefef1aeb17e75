//! The decoder of Arrow IPC from outside: valid streams round-trip zero-copy, and each kind of
//! bad input gets an error that says what was wrong.

mod support;

use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Int64Array, NullArray, RecordBatch};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema};
use inlet_core::ipc::{
    IpcDecodeError, SchemaCache, batches_to_ipc, decode_schema, decode_stream,
    decode_stream_cached, schema_to_ipc,
};
use inlet_core::limits::{MAX_CACHED_SCHEMA_MESSAGE_BYTES, MAX_CACHED_SCHEMAS, MAX_REQUEST_ROWS};
use support::samples;

fn decode(bytes: &[u8]) -> Result<Vec<RecordBatch>, IpcDecodeError> {
    decode_stream(Buffer::from(bytes)).map(|stream| stream.batches)
}

fn int_stream(rows: i64) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter([(
        "id",
        Arc::new(Int64Array::from_iter_values(0..rows)) as ArrayRef,
    )])
    .expect("one column");
    batches_to_ipc(&batch.schema(), &[batch]).expect("encodes")
}

#[test]
fn every_sample_stream_round_trips() {
    for batch in samples::batches() {
        let bytes = batches_to_ipc(&batch.schema(), std::slice::from_ref(&batch)).expect("encodes");
        let stream = decode_stream(Buffer::from_vec(bytes)).expect("a valid stream decodes");
        assert_eq!(stream.schema, batch.schema());
        assert_eq!(stream.batches, vec![batch]);
    }
}

#[test]
fn a_schema_only_stream_and_one_without_end_marker_decode() {
    let schema = samples::batches()[1].schema();
    let bytes = schema_to_ipc(&schema).expect("encodes");
    assert_eq!(decode_schema(&bytes).expect("decodes"), schema);
    let stream = int_stream(3);
    // Drop the 8-byte end-of-stream marker: the stream simply ends after the last batch.
    let batches = decode(&stream[..stream.len() - 8]).expect("no end marker is fine");
    assert_eq!(batches[0].num_rows(), 3);
}

#[test]
fn a_huge_metadata_length_is_truncation_not_an_allocation() {
    let mut bytes = int_stream(3);
    // The schema message's length field, just after the continuation marker.
    bytes[4..8].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
    let error = decode(&bytes).expect_err("the length exceeds the stream");
    assert!(
        matches!(
            error,
            IpcDecodeError::Truncated {
                what: "message metadata",
                offset: 0,
                needed: 0x7FFF_FFF0,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("needs 2147483632 bytes but only"),
        "{error}"
    );
}

#[test]
fn a_cut_body_and_trailing_bytes_are_named() {
    let bytes = int_stream(100);
    let error = decode(&bytes[..bytes.len() - 100]).expect_err("truncated");
    assert!(
        matches!(
            error,
            IpcDecodeError::Truncated {
                what: "message body",
                ..
            }
        ),
        "{error}"
    );

    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk");
    let error = decode(&trailing).expect_err("bytes after the end marker");
    assert!(
        matches!(error, IpcDecodeError::TrailingBytes { count: 4, .. }),
        "{error}"
    );

    assert!(matches!(decode(&[]), Err(IpcDecodeError::Empty)));
    let error = decode(&[0xFF, 0xFF, 0xFF, 0xFF, 1]).expect_err("a cut length prefix");
    assert!(
        matches!(
            error,
            IpcDecodeError::Truncated {
                what: "message length",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn dictionaries_and_second_schemas_are_refused() {
    let dictionary: DictionaryArray<Int32Type> = vec!["a", "b"].into_iter().collect();
    let batch = RecordBatch::try_from_iter([("d", Arc::new(dictionary) as ArrayRef)]).expect("ok");
    let bytes = batches_to_ipc(&batch.schema(), &[batch]).expect("encodes");
    let error = decode(&bytes).expect_err("dictionary-encoded");
    assert!(
        error
            .to_string()
            .contains("field `d` is dictionary-encoded"),
        "{error}"
    );

    let schema_only = schema_to_ipc(&Schema::new(vec![Field::new("id", DataType::Int64, false)]))
        .expect("encodes");
    let mut twice = schema_only[..schema_only.len() - 8].to_vec();
    twice.extend_from_slice(&schema_only);
    let error = decode(&twice).expect_err("two schemas");
    assert!(
        matches!(
            error,
            IpcDecodeError::UnexpectedMessage {
                expected: "a record batch",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn rows_without_bytes_are_bounded() {
    // A Null column has no buffers: a tiny request could declare any number of rows.
    let rows = MAX_REQUEST_ROWS + 1;
    let batch = RecordBatch::try_from_iter([("n", Arc::new(NullArray::new(rows)) as ArrayRef)])
        .expect("one column");
    let bytes = batches_to_ipc(&batch.schema(), &[batch]).expect("encodes");
    assert!(bytes.len() < 1024, "{} bytes", bytes.len());
    let error = decode(&bytes).expect_err("too many rows");
    assert!(
        matches!(error, IpcDecodeError::TooManyRows { .. }),
        "{error}"
    );
}

#[test]
fn a_forged_buffer_is_a_named_error_not_a_panic() {
    let mut bytes = int_stream(4);
    // The record batch's metadata lists its buffers as (offset, length) pairs of i64; the
    // values buffer of 4 int64s is 32 bytes long. Make it claim 2^40 bytes.
    let needle = 32i64.to_le_bytes();
    let schema_end = 8 + i32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    let at = bytes[schema_end..]
        .windows(8)
        .position(|w| w == needle)
        .expect("the buffer length is in the metadata")
        + schema_end;
    bytes[at..at + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
    let error = decode(&bytes).expect_err("the buffer is outside the body");
    assert!(
        matches!(error, IpcDecodeError::Batch { index: 0, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("outside the"), "{error}");
}

/// A one-row stream of one Int64 column named `name`.
fn named_stream(name: &str) -> Vec<u8> {
    let batch =
        RecordBatch::try_from_iter([(name, Arc::new(Int64Array::from(vec![7])) as ArrayRef)])
            .expect("one column");
    batches_to_ipc(&batch.schema(), &[batch]).expect("encodes")
}

#[test]
fn the_schema_cache_parses_each_schema_once_and_changes_nothing() {
    let schemas = SchemaCache::new();
    for batch in samples::batches() {
        let bytes = batches_to_ipc(&batch.schema(), std::slice::from_ref(&batch)).expect("encodes");
        let first =
            decode_stream_cached(Buffer::from(bytes.as_slice()), &schemas).expect("decodes");
        let second = decode_stream_cached(Buffer::from_vec(bytes), &schemas).expect("decodes");
        assert_eq!(first.batches, vec![batch.clone()]);
        assert_eq!(second.batches, vec![batch]);
        assert!(
            Arc::ptr_eq(&first.schema, &second.schema),
            "the second decode takes the first's parsed schema"
        );
    }
    assert_eq!(schemas.len(), samples::batches().len());

    // A bad schema is refused the same way, and not cached.
    let mut bad = named_stream("x");
    let before = schemas.len();
    bad[12..16].copy_from_slice(&[0xFF; 4]);
    let plain = decode(&bad).expect_err("corrupt schema");
    let cached = decode_stream_cached(Buffer::from_vec(bad), &schemas).expect_err("corrupt schema");
    assert_eq!(plain.to_string(), cached.to_string());
    assert_eq!(schemas.len(), before);

    // A cached schema does not excuse a bad batch after it.
    let good = named_stream("x");
    decode_stream_cached(Buffer::from(good.as_slice()), &schemas).expect("decodes");
    let cut = &good[..good.len() - 8 - 4];
    let error = decode_stream_cached(Buffer::from(cut), &schemas).expect_err("cut body");
    assert_eq!(
        error.to_string(),
        decode(cut).expect_err("cut body").to_string()
    );
}

#[test]
fn the_schema_cache_is_bounded() {
    let schemas = SchemaCache::new();
    for i in 0..MAX_CACHED_SCHEMAS * 3 + 1 {
        decode_stream_cached(Buffer::from_vec(named_stream(&format!("c{i}"))), &schemas)
            .expect("decodes");
        assert!(
            schemas.len() <= MAX_CACHED_SCHEMAS,
            "{} cached",
            schemas.len()
        );
    }
    // A schema message over the size bound decodes but is not kept.
    let long_name = "n".repeat(MAX_CACHED_SCHEMA_MESSAGE_BYTES);
    let schemas = SchemaCache::new();
    let stream = decode_stream_cached(Buffer::from_vec(named_stream(&long_name)), &schemas)
        .expect("decodes");
    assert_eq!(stream.schema.field(0).name(), &long_name);
    assert!(schemas.is_empty());
}
