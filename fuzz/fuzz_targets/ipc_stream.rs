//! The append decode path: any bytes as an Arrow IPC stream. Must return without panicking;
//! whatever decodes must be valid Arrow. Decoding through the schema cache (the server's
//! path), twice so the second takes the cached schema, gives exactly what decoding without
//! it gives. Every decoded column is also taken as a partition key, as a writer routes rows
//! of a partitioned table: its values become partition names or a clear error.
#![no_main]

use arrow_buffer::Buffer;
use inlet_core::ipc::{SchemaCache, decode_stream_cached_unguarded, decode_stream_unguarded};
use inlet_core::partition::{check_value, partition_rows};
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
            for field in batch.schema().fields() {
                let key = [field.name().clone()];
                if let Ok(groups) = partition_rows(batch, &key) {
                    let rows: usize = groups.iter().map(|(_, rows)| rows.len()).sum();
                    assert_eq!(rows, batch.num_rows(), "every row is in one partition");
                    for (values, _) in groups {
                        check_value(&values[0]).expect("a routed value names a partition");
                    }
                }
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
