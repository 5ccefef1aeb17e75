//! The index's key and value codecs (stored bytes: a corrupt index must be an error, never a
//! panic). Whatever decodes must encode back to the same bytes: the codecs are canonical.
#![no_main]

use inlet_index::keys::{
    ChunkEntry, LakeFileEntry, LakeWatermark, ProducerState, StreamTail, decode_chunk_key,
    decode_u64,
};
use inlet_index::pk::{ChangeRecord, KeyState, LakeRow};
use inlet_index::records::{
    DatabaseRecord, LakeTableRecord, TableRecord, decode_record,
};
use libfuzzer_sys::fuzz_target;

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use inlet_core::ids::SchemaId;
use inlet_core::pk::row::{decode_rows, image_header};

/// A schema of every kind of row image cell: fixed-width, boolean, string, binary.
static ROW_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("flag", DataType::Boolean, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("blob", DataType::LargeBinary, true),
        Field::new("code", DataType::FixedSizeBinary(3), true),
    ]))
});

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = ProducerState::decode(data) {
        assert_eq!(value.encode(), data);
    }
    if let Ok(value) = StreamTail::decode(data) {
        assert_eq!(value.encode(), data);
    }
    if let Ok(value) = ChunkEntry::decode(data) {
        assert_eq!(value.encode(), data);
        let _ = value.end_offset();
    }
    if let Ok(value) = LakeWatermark::decode(data) {
        assert_eq!(value.encode(), data);
    }
    if let Ok(value) = LakeFileEntry::decode(data) {
        assert_eq!(value.encode(), data);
        let _ = value.end_offset();
    }
    if let Ok(value) = KeyState::decode(data) {
        // A version-1 state (no commit time) is written back as version 2.
        let encoded = value.encode();
        if data[0] == 1 {
            assert_eq!(KeyState::decode(&encoded).ok().as_ref(), Some(&value));
        } else {
            assert_eq!(encoded, data);
        }
    }
    if let Ok(value) = ChangeRecord::decode(data) {
        assert_eq!(value.encode(), data);
    }
    if let Ok(value) = LakeRow::decode(data) {
        assert_eq!(value.encode(), data);
    }
    if let Ok(value) = inlet_core::pk::ops::decode_writes(data) {
        assert_eq!(inlet_core::pk::ops::encode_writes(&value), data);
    }
    // Row images (the rows of key states and change records), as an image of the table's
    // first schema and of a later one.
    let _ = image_header(data);
    for schema_id in [SchemaId(0), SchemaId(1)] {
        let _ = decode_rows(&ROW_SCHEMA, schema_id, &[data]);
    }
    if let Ok(value) = decode_u64(data) {
        assert_eq!(value.to_be_bytes(), data);
    }
    let _ = decode_chunk_key(data);
    let _ = decode_record::<DatabaseRecord>(data);
    let _ = decode_record::<TableRecord>(data);
    let _ = decode_record::<LakeTableRecord>(data);
});
