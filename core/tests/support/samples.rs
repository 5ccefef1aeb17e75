//! Valid inputs for the decoders of outside bytes: Arrow IPC streams and WAL objects built
//! from the WAL fixture's batches (nulls, nested types, slices, decimals, a Null column,
//! non-ASCII strings) plus the remaining nested types. Shared by the mutation suite and the
//! example that writes the fuzzers' seed corpora.

use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeBinaryBuilder, FixedSizeListBuilder, Int32Builder, MapBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::Schema;
use inlet_core::ids::{Bucket, PartitionId, SchemaId, StreamId, TableId, TimestampMicros};
use inlet_core::ipc::{batches_to_ipc, schema_to_ipc};
use inlet_core::wal::{ChunkInput, encode_wal_object};

#[path = "../fixtures/wal_v1.rs"]
mod wal_v1;

/// Batches that together cover every type family a table may hold.
pub fn batches() -> Vec<RecordBatch> {
    let mut batches: Vec<RecordBatch> = wal_v1::chunks().into_iter().map(|c| c.batch).collect();
    let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    map.keys().append_value("a");
    map.values().append_value(1);
    map.append(true).expect("keys and values match");
    map.append(false).expect("an empty null map");
    let mut fixed = FixedSizeListBuilder::new(Int32Builder::new(), 2);
    fixed.values().append_value(1);
    fixed.values().append_null();
    fixed.append(true);
    fixed.values().append_value(3);
    fixed.values().append_value(4);
    fixed.append(true);
    let mut binary = FixedSizeBinaryBuilder::new(3);
    binary.append_value(b"abc").expect("3 bytes");
    binary.append_null();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("map", Arc::new(map.finish())),
        ("pair", Arc::new(fixed.finish())),
        ("code", Arc::new(binary.finish())),
    ];
    batches.push(RecordBatch::try_from_iter(columns).expect("columns of equal length"));
    batches
}

/// One Arrow IPC stream per sample batch, one stream of a batch repeated and sliced, and a
/// schema-only stream.
pub fn ipc_streams() -> Vec<Vec<u8>> {
    let mut streams = Vec::new();
    for batch in batches() {
        let schema = batch.schema();
        streams.push(batches_to_ipc(&schema, std::slice::from_ref(&batch)).expect("encodes"));
        let parts = [batch.clone(), batch.slice(1, batch.num_rows() - 1)];
        streams.push(batches_to_ipc(&schema, &parts).expect("encodes"));
    }
    streams.push(
        schema_to_ipc(&Schema::new(batches()[1].schema().fields().clone())).expect("encodes"),
    );
    streams
}

/// A WAL object holding every sample batch as a chunk, with the schema of each chunk.
pub fn wal_object() -> (Vec<u8>, Vec<Arc<Schema>>) {
    let batches = batches();
    let inputs: Vec<ChunkInput<'_>> = batches
        .iter()
        .enumerate()
        .map(|(i, batch)| ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(i as u32)),
            schema_id: SchemaId(i as u32),
            batch,
            min_ts: TimestampMicros(1),
            max_ts: TimestampMicros(2),
        })
        .collect();
    let encoded = encode_wal_object(&inputs).expect("sample batches encode");
    let schemas = batches.iter().map(RecordBatch::schema).collect();
    (encoded.bytes.to_vec(), schemas)
}
