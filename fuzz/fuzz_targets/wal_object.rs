//! The WAL object decoder: the object as a whole, then every chunk the footer names, decoded
//! with the checksum of the bytes at hand (so corrupt metadata and bodies reach the layout
//! checks and arrow instead of stopping at the checksum) under a sample schema chosen by the input's first byte.
#![no_main]

#[path = "../../core/tests/support/samples.rs"]
#[allow(dead_code)]
mod samples;

use std::sync::{Arc, OnceLock};

use arrow_schema::Schema;
use inlet_core::wal::{decode_chunk, decode_object, decode_projected};
use libfuzzer_sys::fuzz_target;

/// The schemas of the sample batches the seed objects hold (`cargo run -p inlet-core
/// --example fuzz_seeds`), so mutated chunks are decoded under schemas that nearly fit.
fn schemas() -> &'static [Arc<Schema>] {
    static SCHEMAS: OnceLock<Vec<Arc<Schema>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| samples::batches().iter().map(|b| b.schema()).collect())
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
