//! Arrow IPC: how schemas and batches travel in the API and how schemas are stored in the
//! index (the Arrow IPC stream format, a stable cross-language encoding).
//!
//! Encoding uses arrow-ipc's writer. Decoding bytes from outside never uses arrow-ipc's
//! readers directly: `decode` frames and checks every message first (see there why).

mod decode;
mod error;
pub(crate) mod layout;
mod schema;

use arrow_array::RecordBatch;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, Schema};

pub use decode::{
    IpcStream, SchemaCache, decode_schema, decode_schema_unguarded, decode_stream,
    decode_stream_cached, decode_stream_cached_unguarded, decode_stream_unguarded,
};
pub use error::IpcDecodeError;

/// Encodes a schema as an Arrow IPC stream with no batches.
pub fn schema_to_ipc(schema: &Schema) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    writer.finish()?;
    writer.into_inner()
}

/// Encodes batches (which share `schema`) as one Arrow IPC stream.
pub fn batches_to_ipc(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    writer.into_inner()
}
