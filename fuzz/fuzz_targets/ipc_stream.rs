//! The append decode path: any bytes as an Arrow IPC stream. Must return without panicking;
//! whatever decodes must be valid Arrow. Decoding through the schema cache (the server's
//! path), twice so the second takes the cached schema, gives exactly what decoding without
//! it gives.
#![no_main]

use arrow_buffer::Buffer;
use inlet_core::ipc::{SchemaCache, decode_stream_cached_unguarded, decode_stream_unguarded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Buffer::from(data);
    let plain = decode_stream_unguarded(&bytes);
    if let Ok(stream) = &plain {
        for batch in &stream.batches {
            for column in batch.columns() {
                column
                    .to_data()
                    .validate_full()
                    .expect("decoded arrays are valid");
            }
        }
    }
    let schemas = SchemaCache::new();
    for _ in 0..2 {
        let cached = decode_stream_cached_unguarded(&bytes, &schemas);
        match (&plain, &cached) {
            (Ok(plain), Ok(cached)) => {
                assert_eq!(plain.schema, cached.schema);
                assert_eq!(plain.batches, cached.batches);
            }
            (Err(plain), Err(cached)) => assert_eq!(plain.to_string(), cached.to_string()),
            _ => panic!("cached decode differs: {plain:?} vs {cached:?}"),
        }
    }
});
