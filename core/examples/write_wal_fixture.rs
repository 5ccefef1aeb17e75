//! Writes the WAL format version 1 fixture (the chunks of `core/tests/fixtures/wal_v1.rs`) to
//! the path given:
//!
//! ```text
//! cargo run -p inlet-core --example write_wal_fixture -- core/tests/fixtures/wal-v1.bin
//! ```
//!
//! It refuses to overwrite an existing file: once a format version has shipped, its fixture is
//! frozen, and replacing it would hide a reader that no longer reads old objects. Before
//! writing, it decodes every chunk of the object back and compares it with what went in.

#[path = "../tests/fixtures/wal_v1.rs"]
mod wal_v1;

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::process::ExitCode;

use inlet_core::ids::{Bucket, PartitionId, SchemaId, StreamId, TableId, TimestampMicros};
use inlet_core::wal::{ChunkInput, decode_chunk, decode_object, encode_wal_object};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [path] = &args[..] else {
        eprintln!("usage: write_wal_fixture <path>  (the file must not exist)");
        return ExitCode::from(2);
    };
    match write_fixture(Path::new(path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write_fixture(path: &Path) -> Result<(), String> {
    let chunks = wal_v1::chunks();
    let inputs: Vec<ChunkInput<'_>> = chunks
        .iter()
        .map(|chunk| ChunkInput {
            stream: StreamId::new(
                TableId(chunk.table),
                PartitionId(chunk.partition),
                Bucket(chunk.bucket),
            ),
            schema_id: SchemaId(chunk.schema_id),
            batch: &chunk.batch,
            min_ts: TimestampMicros(chunk.min_ts),
            max_ts: TimestampMicros(chunk.max_ts),
        })
        .collect();
    let encoded = encode_wal_object(&inputs).map_err(|e| format!("encoding the fixture: {e}"))?;

    // Check before writing: every chunk decodes to the batch that went in.
    let footer =
        decode_object(&encoded.bytes).map_err(|e| format!("decoding the fixture back: {e}"))?;
    for (index, (meta, chunk)) in footer.chunks.iter().zip(&chunks).enumerate() {
        let start = usize::try_from(meta.chunk_offset).map_err(|e| e.to_string())?;
        let len = usize::try_from(meta.chunk_len()).map_err(|e| e.to_string())?;
        let decoded = decode_chunk(
            &encoded.bytes[start..start + len],
            meta.meta_len,
            meta.body_offset,
            meta.chunk_crc,
            chunk.batch.schema_ref(),
            None,
        )
        .map_err(|e| format!("decoding chunk {index} back: {e}"))?;
        if decoded != chunk.batch {
            return Err(format!("chunk {index} decodes to different rows"));
        }
    }

    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Err(format!(
                "{} exists; a fixture is never overwritten (delete it first only if its format \
                 version has not shipped)",
                path.display()
            ));
        }
        Err(e) => return Err(format!("creating {}: {e}", path.display())),
    };
    file.write_all(&encoded.bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;

    println!(
        "wrote {}: {} bytes, {} chunks, footer {} bytes at {}",
        path.display(),
        encoded.bytes.len(),
        footer.chunks.len(),
        encoded.trailer.footer_len,
        encoded.trailer.footer_offset
    );
    for (index, meta) in footer.chunks.iter().enumerate() {
        println!(
            "  chunk {index}: {} rows, {} columns, {} bytes (metadata {}, body {}) at {}",
            meta.row_count,
            meta.columns.len(),
            meta.chunk_len(),
            meta.meta_len,
            meta.body_len,
            meta.chunk_offset
        );
    }
    Ok(())
}
