//! Encodes one flush into a WAL object and uploads it under a fresh unique name with
//! put-if-absent. The object holds no offsets: it becomes data only when the index commits
//! it, and an object that is never committed is garbage.

use std::sync::Arc;

use arrow_array::RecordBatch;
use inlet_cache::PagedCache;
use inlet_core::clock::Env;
use inlet_core::ids::{SchemaId, TimestampMicros, WalObjectId};
use inlet_core::wal::{ChunkInput, encode_wal_object};
use inlet_index::{ChunkCommitRequest, CommitRequest};
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::batcher::ChunkKey;
use crate::error::AppendError;

/// One stream's rows in a flush.
pub(crate) struct StreamChunk {
    pub(crate) key: ChunkKey,
    pub(crate) schema_id: SchemaId,
    pub(crate) batch: RecordBatch,
    pub(crate) first_append: TimestampMicros,
    pub(crate) last_append: TimestampMicros,
}

/// Encodes and uploads the chunks; returns the commit request describing the object. The
/// uploaded bytes go into the read cache, so a co-located tail read never GETs them.
pub(crate) async fn upload(
    store: &Arc<dyn ObjectStore>,
    cache: &PagedCache,
    env: &Env,
    chunks: &[StreamChunk],
    attempts: u32,
) -> Result<CommitRequest, AppendError> {
    let inputs: Vec<ChunkInput<'_>> = chunks
        .iter()
        .map(|chunk| ChunkInput {
            stream: chunk.key.stream,
            schema_id: chunk.schema_id,
            batch: &chunk.batch,
            min_ts: chunk.first_append,
            max_ts: chunk.last_append,
        })
        .collect();
    let encoded = encode_wal_object(&inputs)
        .map_err(|e| AppendError::Upload(format!("cannot encode wal object: {e}")))?;
    let millis = u64::try_from(env.clock.now().0 / 1000).unwrap_or(0);
    let object = WalObjectId::new(millis, env.ids.next_u128());
    let path = Path::from(object.path());
    let size = encoded.bytes.len();
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let payload = PutPayload::from_bytes(encoded.bytes.clone());
        match store.put_opts(&path, payload, options.clone()).await {
            Ok(_) => break,
            // The name is fresh and random: if it exists after a failed attempt, that attempt
            // wrote it (its reply was lost), so the upload is done.
            Err(slatedb::object_store::Error::AlreadyExists { .. }) if attempt > 1 => break,
            Err(error) if attempt < attempts => {
                tracing::warn!(%object, attempt, %error, "wal upload failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            Err(error) => {
                return Err(AppendError::Upload(format!(
                    "put of wal object {} ({size} bytes) failed after {attempt} attempts: {error}",
                    object.path()
                )));
            }
        }
    }
    tracing::debug!(%object, size, chunks = chunks.len(), "wal object uploaded");
    cache.insert_object(&path, encoded.bytes.clone());
    Ok(CommitRequest {
        object,
        footer_offset: encoded.trailer.footer_offset,
        footer_len: encoded.trailer.footer_len,
        chunks: encoded
            .footer
            .chunks
            .iter()
            // The footer lists chunks in input order; each keeps its append's producer.
            .zip(chunks)
            .map(|(meta, chunk)| ChunkCommitRequest {
                stream: meta.stream,
                schema_id: meta.schema_id,
                chunk_offset: meta.chunk_offset,
                chunk_len: meta.chunk_len(),
                meta_len: meta.meta_len,
                body_offset: meta.body_offset,
                chunk_crc: meta.chunk_crc,
                meta_crc: meta.meta_crc,
                row_count: meta.row_count,
                producer: chunk.key.producer,
            })
            .collect(),
    })
}
