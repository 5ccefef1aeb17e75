//! Table schemas from Arrow IPC (create table, and schemas read back from the index).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(schema) = inlet_core::ipc::decode_schema_unguarded(data) {
        // A decoded schema holds stored types only, so it must encode again.
        inlet_core::ipc::schema_to_ipc(&schema).expect("a decoded schema encodes");
    }
});
