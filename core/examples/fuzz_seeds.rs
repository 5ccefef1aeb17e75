//! Writes the seed corpora of the fuzz targets in `fuzz/` from the valid samples the mutation
//! suite starts from: Arrow IPC streams and schemas, and a WAL object (prefixed with the byte
//! that picks the schema its chunks are decoded with).
//!
//! ```text
//! cargo run -p inlet-core --example fuzz_seeds
//! ```

#[path = "../tests/support/samples.rs"]
#[allow(dead_code, unreachable_pub)]
mod samples;

use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus folder");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn main() {
    for (i, stream) in samples::ipc_streams().iter().enumerate() {
        write("ipc_stream", &format!("sample-{i}"), stream);
        write("ipc_schema", &format!("sample-{i}"), stream);
    }
    let (object, _) = samples::wal_object();
    for selector in 0u8..samples::batches().len() as u8 {
        let mut seed = vec![selector];
        seed.extend_from_slice(&object);
        write("wal_object", &format!("sample-{selector}"), &seed);
    }
    println!("wrote the seed corpora under fuzz/corpus/");
}
