//! Every conversion between the index's types and their gRPC messages, both directions, and
//! the page limit of listings. Index records (tails, watermarks, chunk and lake file entries,
//! lake table records) travel in their persisted encodings, decoded by the index's own
//! versioned codecs, so there is one encoding of each, not two.

use inlet_core::pk::ops::{decode_writes, encode_writes};
use std::collections::{BTreeMap, BTreeSet};

use inlet_core::ids::{
    Bucket, DatabaseId, Offset, PartitionId, SchemaId, StreamId, TableId, TimestampMicros,
    WalObjectId,
};
use inlet_core::ipc::{decode_schema, schema_to_ipc};
use inlet_core::limits::MAX_INDEXED_COLUMN_RANGES;
use inlet_core::partition::{Partition, Partitions};
use inlet_core::table::{SchemaHistory, TableDescriptor, TableInfo};
use inlet_core::wal::ColumnRange;
use inlet_index::pk::LakeRow;
use inlet_index::{
    ChunkCommitRequest, ChunkRejected, CommitReply, CommitRequest, CommittedChunk, IndexError,
    LakeCommit, LakeCommitted, LakeFileEntry, LakeLease, ProducerRef, WalExpired,
};
use inlet_proto::v1 as pb;
use inlet_security::acl::Grant;
use tonic::Status;

/// Most entries one listing call (`ListChunks`, `ListLakeFiles`) returns, whatever it asks
/// for: bounds the reply (a chunk entry is ~90 bytes, so ~900 KB).
pub const MAX_INDEX_ENTRIES_PER_CALL: u32 = 10_000;

pub fn stream_ref(stream: StreamId) -> pb::StreamRef {
    pb::StreamRef {
        table_id: stream.table.0,
        bucket: stream.bucket.0,
        partition_id: stream.partition.0,
    }
}

pub fn stream_of(stream: Option<pb::StreamRef>) -> Result<StreamId, Status> {
    let stream = stream.ok_or_else(|| Status::invalid_argument("request lacks the stream"))?;
    Ok(StreamId::new(
        TableId(stream.table_id),
        PartitionId(stream.partition_id),
        Bucket(stream.bucket),
    ))
}

pub fn page_request(stream: StreamId, from: Offset, max: usize) -> pb::ListIndexEntriesRequest {
    pb::ListIndexEntriesRequest {
        stream: Some(stream_ref(stream)),
        from: from.0,
        max: u32::try_from(max).unwrap_or(u32::MAX),
    }
}

/// The stream, start offset and bounded page size of a listing request.
pub fn page_of(request: pb::ListIndexEntriesRequest) -> Result<(StreamId, Offset, usize), Status> {
    let stream = stream_of(request.stream)?;
    let max = request.max.clamp(1, MAX_INDEX_ENTRIES_PER_CALL) as usize;
    Ok((stream, Offset(request.from), max))
}

/// Decodes index entries sent in their persisted encoding.
pub fn decode_entries<T, E>(
    entries: pb::IndexEntries,
    decode: fn(&[u8]) -> Result<T, E>,
) -> Result<Vec<T>, IndexError>
where
    IndexError: From<E>,
{
    entries
        .entries
        .iter()
        .map(|bytes| decode(bytes).map_err(IndexError::from))
        .collect()
}

pub fn table_message(info: &TableInfo) -> Result<pb::TableInfo, Status> {
    let descriptor = &info.descriptor;
    let schema_ipc = schema_to_ipc(&descriptor.schema)
        .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))?;
    Ok(pb::TableInfo {
        path: Some(pb::TablePath {
            database: info.database.clone(),
            table: info.name.clone(),
        }),
        table_id: info.id.0,
        schema_id: info.schema_id.0,
        descriptor: Some(pb::TableDescriptor {
            schema_ipc,
            bucket_count: descriptor.bucket_count,
            bucket_key: descriptor.bucket_key.clone(),
            partition_key: descriptor.partition_key.clone(),
            primary_key: descriptor.primary_key.clone(),
            comment: descriptor.comment.clone(),
            options: descriptor.options.clone().into_iter().collect(),
        }),
        created_at_micros: info.created_at.0,
        database_id: info.database_id.0,
        previous_schemas: info
            .previous_schemas
            .iter()
            .map(|(id, schema)| {
                Ok(pb::SchemaVersion {
                    schema_id: id.0,
                    schema_ipc: schema_to_ipc(schema).map_err(|e| {
                        Status::internal(format!("cannot encode schema {}: {e}", id.0))
                    })?,
                })
            })
            .collect::<Result<_, Status>>()?,
        partitions: info.partitions.iter().map(partition_message).collect(),
        last_partition_id: info.partitions.last_id(),
    })
}

pub fn partition_message(partition: &Partition) -> pb::PartitionInfo {
    pb::PartitionInfo {
        id: partition.id.0,
        values: partition.values.clone(),
        name: partition.name(),
        created_at_micros: partition.created_at.0,
    }
}

pub fn table_from_message(info: pb::TableInfo) -> Result<TableInfo, IndexError> {
    let bad = |what: String| IndexError::Storage(format!("table {}: {what}", info.table_id));
    let path = info.path.clone().ok_or_else(|| bad("no path".to_owned()))?;
    let descriptor = info
        .descriptor
        .clone()
        .ok_or_else(|| bad("no descriptor".to_owned()))?;
    let schema = decode_schema(&descriptor.schema_ipc).map_err(|e| bad(format!("schema: {e}")))?;
    let mut previous = std::collections::BTreeMap::new();
    for version in &info.previous_schemas {
        let schema = decode_schema(&version.schema_ipc)
            .map_err(|e| bad(format!("schema {}: {e}", version.schema_id)))?;
        previous.insert(SchemaId(version.schema_id), schema);
    }
    Ok(TableInfo {
        id: TableId(info.table_id),
        database: path.database,
        database_id: DatabaseId(info.database_id),
        name: path.table,
        schema_id: SchemaId(info.schema_id),
        descriptor: TableDescriptor {
            schema,
            bucket_count: descriptor.bucket_count,
            bucket_key: descriptor.bucket_key,
            partition_key: descriptor.partition_key,
            primary_key: descriptor.primary_key,
            comment: descriptor.comment,
            options: descriptor.options.into_iter().collect(),
        },
        created_at: TimestampMicros(info.created_at_micros),
        previous_schemas: SchemaHistory::new(previous),
        partitions: Partitions::new(
            info.partitions.into_iter().map(|partition| Partition {
                id: PartitionId(partition.id),
                values: partition.values,
                created_at: TimestampMicros(partition.created_at_micros),
            }),
            info.last_partition_id,
        ),
    })
}

pub fn wal_object_bytes(object: WalObjectId) -> Vec<u8> {
    object.0.to_be_bytes().to_vec()
}

pub fn wal_object(bytes: &[u8]) -> Result<WalObjectId, String> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| format!("a WAL object id of {} bytes, not 16", bytes.len()))?;
    Ok(WalObjectId(u128::from_be_bytes(bytes)))
}

pub fn commit_message(id: u64, request: &CommitRequest) -> pb::WalCommit {
    pb::WalCommit {
        id,
        object: wal_object_bytes(request.object),
        footer_offset: request.footer_offset,
        footer_len: request.footer_len,
        chunks: request
            .chunks
            .iter()
            .map(|chunk| pb::ChunkCommit {
                stream: Some(stream_ref(chunk.stream)),
                schema_id: chunk.schema_id.0,
                chunk_offset: chunk.chunk_offset,
                chunk_len: chunk.chunk_len,
                meta_len: chunk.meta_len,
                body_offset: chunk.body_offset,
                chunk_crc: chunk.chunk_crc,
                meta_crc: chunk.meta_crc,
                row_count: chunk.row_count,
                producer_id: chunk.producer.map_or(0, |p| p.id),
                producer_sequence: chunk.producer.map_or(0, |p| p.sequence),
                columns: chunk
                    .columns
                    .iter()
                    .map(|column| pb::ColumnRange {
                        offset: column.offset,
                        len: column.len,
                        crc32c: column.crc32c,
                    })
                    .collect(),
                pk_writes: chunk
                    .pk_writes
                    .as_ref()
                    .map(|writes| encode_writes(writes))
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

pub fn commit_of(message: pb::WalCommit) -> Result<CommitRequest, Status> {
    let object = wal_object(&message.object).map_err(Status::invalid_argument)?;
    let mut chunks = Vec::with_capacity(message.chunks.len());
    for chunk in message.chunks {
        if chunk.columns.len() > MAX_INDEXED_COLUMN_RANGES {
            return Err(Status::invalid_argument(format!(
                "a chunk commit lists {} column ranges, at most {MAX_INDEXED_COLUMN_RANGES} are kept",
                chunk.columns.len()
            )));
        }
        // The writes come from another process: decoded with every bound checked.
        let pk_writes = if chunk.pk_writes.is_empty() {
            None
        } else {
            let writes = decode_writes(&chunk.pk_writes)
                .map_err(|e| Status::invalid_argument(format!("chunk commit: {e}")))?;
            Some(std::sync::Arc::new(writes))
        };
        chunks.push(ChunkCommitRequest {
            pk_writes,
            stream: stream_of(chunk.stream)?,
            schema_id: SchemaId(chunk.schema_id),
            chunk_offset: chunk.chunk_offset,
            chunk_len: chunk.chunk_len,
            meta_len: chunk.meta_len,
            body_offset: chunk.body_offset,
            chunk_crc: chunk.chunk_crc,
            meta_crc: chunk.meta_crc,
            row_count: chunk.row_count,
            producer: (chunk.producer_id != 0).then_some(ProducerRef {
                id: chunk.producer_id,
                sequence: chunk.producer_sequence,
            }),
            columns: chunk
                .columns
                .into_iter()
                .map(|column| ColumnRange {
                    offset: column.offset,
                    len: column.len,
                    crc32c: column.crc32c,
                })
                .collect(),
        });
    }
    Ok(CommitRequest {
        object,
        footer_offset: message.footer_offset,
        footer_len: message.footer_len,
        chunks,
    })
}

pub fn commit_reply_message(id: u64, reply: &CommitReply) -> pb::WalCommitReply {
    match reply {
        Err(error) => pb::WalCommitReply {
            id,
            failure_json: json(error),
            chunks: Vec::new(),
        },
        Ok(outcomes) => pb::WalCommitReply {
            id,
            failure_json: Vec::new(),
            chunks: outcomes
                .iter()
                .map(|outcome| pb::ChunkOutcome {
                    outcome: Some(match outcome {
                        Ok(committed) => {
                            pb::chunk_outcome::Outcome::Committed(pb::chunk_outcome::Committed {
                                base_offset: committed.base_offset.0,
                                commit_ts_micros: committed.commit_ts.0,
                            })
                        }
                        Err(rejected) => pb::chunk_outcome::Outcome::RejectedJson(json(rejected)),
                    }),
                })
                .collect(),
        },
    }
}

pub fn commit_reply_of(message: pb::WalCommitReply) -> CommitReply {
    if !message.failure_json.is_empty() {
        return Err(from_json::<IndexError>(&message.failure_json)
            .unwrap_or_else(|e| IndexError::Storage(format!("undecodable commit failure: {e}"))));
    }
    let outcomes = message
        .chunks
        .into_iter()
        .map(|chunk| match chunk.outcome {
            Some(pb::chunk_outcome::Outcome::Committed(committed)) => Ok(Ok(CommittedChunk {
                base_offset: Offset(committed.base_offset),
                commit_ts: TimestampMicros(committed.commit_ts_micros),
            })),
            Some(pb::chunk_outcome::Outcome::RejectedJson(bytes)) => {
                from_json::<ChunkRejected>(&bytes)
                    .map(Err)
                    .map_err(|e| IndexError::Storage(format!("undecodable chunk refusal: {e}")))
            }
            None => Err(IndexError::Storage(
                "a commit reply without an outcome for a chunk".to_owned(),
            )),
        })
        .collect::<Result<Vec<_>, IndexError>>()?;
    Ok(outcomes)
}

pub fn lease_message(lease: LakeLease) -> pb::LakeLease {
    pb::LakeLease {
        owner: lease.owner,
        epoch: lease.epoch,
        expires_at_micros: lease.expires_at_micros,
    }
}

pub fn lease_of(lease: Option<pb::LakeLease>) -> Result<LakeLease, Status> {
    let lease = lease.ok_or_else(|| Status::invalid_argument("request lacks the lease"))?;
    Ok(LakeLease {
        owner: lease.owner,
        epoch: lease.epoch,
        expires_at_micros: lease.expires_at_micros,
    })
}

fn bucket_offsets(offsets: &BTreeMap<Bucket, Offset>) -> Vec<pb::BucketOffset> {
    offsets
        .iter()
        .map(|(bucket, offset)| pb::BucketOffset {
            bucket: bucket.0,
            offset: offset.0,
        })
        .collect()
}

fn offsets(entries: Vec<pb::BucketOffset>) -> BTreeMap<Bucket, Offset> {
    entries
        .into_iter()
        .map(|e| (Bucket(e.bucket), Offset(e.offset)))
        .collect()
}

pub fn lake_commit_message(commit: &LakeCommit) -> pb::CommitLakeRequest {
    pb::CommitLakeRequest {
        table_id: commit.table.0,
        lease: Some(lease_message(commit.lease)),
        expected_metadata_location: commit.expected_metadata_location.clone(),
        metadata_location: commit.metadata_location.clone(),
        snapshot_id: commit.snapshot_id,
        watermarks: bucket_offsets(&commit.watermarks),
        added_files: commit
            .added_files
            .iter()
            .map(|(bucket, entry)| pb::LakeFileAdded {
                bucket: bucket.0,
                entry: entry.encode(),
            })
            .collect(),
        removed_files: commit
            .removed_files
            .iter()
            .map(|(bucket, end)| pb::BucketOffset {
                bucket: bucket.0,
                offset: end.0,
            })
            .collect(),
        earliest: bucket_offsets(&commit.earliest),
        key_rows: commit
            .key_rows
            .iter()
            .map(|(bucket, key, row)| pb::LakeKeyRow {
                bucket: bucket.0,
                key: key.clone(),
                row: row.as_ref().map(LakeRow::encode).unwrap_or_default(),
            })
            .collect(),
    }
}

pub fn lake_commit_of(request: pb::CommitLakeRequest) -> Result<LakeCommit, Status> {
    let mut added_files = Vec::with_capacity(request.added_files.len());
    for added in request.added_files {
        let entry = LakeFileEntry::decode(&added.entry).map_err(|e| {
            Status::invalid_argument(format!("added lake file of bucket {}: {e}", added.bucket))
        })?;
        added_files.push((Bucket(added.bucket), entry));
    }
    let mut key_rows = Vec::with_capacity(request.key_rows.len());
    for changed in request.key_rows {
        let row = if changed.row.is_empty() {
            None
        } else {
            Some(LakeRow::decode(&changed.row).map_err(|e| {
                Status::invalid_argument(format!("lake row of bucket {}: {e}", changed.bucket))
            })?)
        };
        key_rows.push((Bucket(changed.bucket), changed.key, row));
    }
    Ok(LakeCommit {
        table: TableId(request.table_id),
        lease: lease_of(request.lease)?,
        expected_metadata_location: request.expected_metadata_location,
        metadata_location: request.metadata_location,
        snapshot_id: request.snapshot_id,
        watermarks: offsets(request.watermarks),
        added_files,
        removed_files: offsets(request.removed_files).into_iter().collect(),
        earliest: offsets(request.earliest),
        key_rows,
    })
}

pub fn lake_committed_message(committed: &LakeCommitted) -> pb::CommitLakeResponse {
    pb::CommitLakeResponse {
        committed_at_micros: committed.committed_at.0,
        trimmed_chunks: committed.trimmed_chunks as u64,
        trimmed_objects: committed
            .trimmed_objects
            .iter()
            .map(|object| wal_object_bytes(*object))
            .collect(),
    }
}

pub fn lake_committed_of(response: pb::CommitLakeResponse) -> Result<LakeCommitted, IndexError> {
    let mut trimmed_objects = BTreeSet::new();
    for object in &response.trimmed_objects {
        trimmed_objects.insert(wal_object(object).map_err(IndexError::Storage)?);
    }
    Ok(LakeCommitted {
        committed_at: TimestampMicros(response.committed_at_micros),
        trimmed_chunks: usize::try_from(response.trimmed_chunks).unwrap_or(usize::MAX),
        trimmed_objects,
    })
}

pub fn wal_expired_message(expired: &WalExpired) -> pb::ExpireWalResponse {
    pb::ExpireWalResponse {
        chunks: expired.chunks as u64,
        bytes: expired.bytes,
        objects: expired
            .objects
            .iter()
            .map(|object| wal_object_bytes(*object))
            .collect(),
        more: expired.more,
    }
}

pub fn wal_expired_of(response: pb::ExpireWalResponse) -> Result<WalExpired, IndexError> {
    let objects = response
        .objects
        .iter()
        .map(|object| wal_object(object).map_err(IndexError::Storage))
        .collect::<Result<_, _>>()?;
    Ok(WalExpired {
        chunks: usize::try_from(response.chunks).unwrap_or(usize::MAX),
        bytes: response.bytes,
        objects,
        more: response.more,
    })
}

/// A value as JSON bytes (errors and refusals, which are rare and carry free text). The
/// index's error types always serialize; were one not to, the receiver reports the empty
/// value as undecodable rather than this side failing.
pub fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// A permission grant as sent.
pub fn grant_message(grant: &Grant) -> pb::AccessGrant {
    pb::AccessGrant {
        grantee: grant.grantee.to_string(),
        permission: grant.permission.to_string(),
        resource: grant.resource.to_string(),
    }
}

/// A permission grant as received; an error names the field that is wrong.
pub fn grant_of(message: &pb::AccessGrant) -> Result<Grant, String> {
    Ok(Grant {
        grantee: message.grantee.parse()?,
        permission: message.permission.parse()?,
        resource: message.resource.parse()?,
    })
}
