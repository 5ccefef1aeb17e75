//! The append decode path: any bytes as an Arrow IPC stream. Must return without panicking;
//! whatever decodes must be valid Arrow.
#![no_main]

use arrow_buffer::Buffer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(stream) = inlet_core::ipc::decode_stream_unguarded(&Buffer::from(data)) {
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
