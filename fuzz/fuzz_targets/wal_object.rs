//! The WAL object decoder: the object as a whole, then every chunk the footer names, decoded
//! with the checksum of the bytes at hand (so corrupt metadata and bodies reach the layout
//! checks and arrow instead of stopping at the checksum) under a schema chosen by the input.
#![no_main]

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use inlet_core::wal::{decode_chunk, decode_object, decode_projected};
use libfuzzer_sys::fuzz_target;

fn schemas() -> Vec<Arc<Schema>> {
    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    let strukt = Fields::from(vec![
        Field::new("code", DataType::Int32, true),
        Field::new("ok", DataType::Boolean, true),
    ]);
    vec![
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("tags", DataType::List(item), true),
        ])),
        Arc::new(Schema::new(vec![
            Field::new("attrs", DataType::Struct(strukt), true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("blob", DataType::LargeBinary, true),
            Field::new("nothing", DataType::Null, true),
        ])),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let Ok(footer) = decode_object(bytes) else {
        return;
    };
    let schemas = schemas();
    let schema = &schemas[usize::from(selector) % schemas.len()];
    for chunk in &footer.chunks {
        // decode_object placed every chunk inside the object.
        let start = chunk.chunk_offset as usize;
        let chunk_bytes = &bytes[start..start + chunk.chunk_len() as usize];
        let crc = crc32c::crc32c(chunk_bytes);
        let _ = decode_chunk(chunk_bytes, chunk.meta_len, chunk.body_offset, crc, schema, None);
        let _ = decode_chunk(chunk_bytes, chunk.meta_len, chunk.body_offset, crc, schema, Some(&[0]));
        let meta = &chunk_bytes[..(chunk.meta_len as usize).min(chunk_bytes.len())];
        let body_start = (chunk.body_offset as usize).min(chunk_bytes.len());
        let body = arrow_buffer::Buffer::from(&chunk_bytes[body_start..]);
        let _ = decode_projected(meta, crc32c::crc32c(meta), body, &chunk.columns, schema, &[0]);
    }
});
