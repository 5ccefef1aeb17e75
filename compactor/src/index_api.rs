//! The compactor's remote index: the [`LakeCatalog`] port of an owner in another process, over
//! its `CompactorIndex` gRPC service.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use inlet_core::ids::{
    Bucket, DatabaseId, Offset, SchemaId, StreamId, TableId, TimestampMicros, WalObjectId,
};
use inlet_core::ipc::decode_schema;
use inlet_core::limits::MAX_GRPC_MESSAGE_BYTES;
use inlet_core::table::{TableDescriptor, TableInfo};
use inlet_index::keys::CodecError;
use inlet_index::records::decode_record;
use inlet_index::{
    ChunkEntry, IndexError, LakeCatalog, LakeCommit, LakeCommitError, LakeCommitted, LakeFileEntry,
    LakeLease, LakeTableRecord, LakeWatermark, StreamTail,
};
use inlet_proto::v1 as pb;
use inlet_proto::v1::compactor_index_client::CompactorIndexClient;
use tonic::transport::Channel;

/// The index of an owner in another process, over its `CompactorIndex` gRPC service.
#[derive(Clone, Debug)]
pub struct RemoteIndex {
    client: CompactorIndexClient<Channel>,
    endpoint: String,
}

impl RemoteIndex {
    /// Connects to the index owner at `endpoint` (e.g. `http://127.0.0.1:7070`).
    pub async fn connect(endpoint: &str) -> Result<Self, IndexError> {
        let channel = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| IndexError::Unavailable(format!("invalid index owner `{endpoint}`: {e}")))?
            .connect()
            .await
            .map_err(|e| {
                IndexError::Unavailable(format!(
                    "cannot connect to the index owner at {endpoint}: {e}"
                ))
            })?;
        let client = CompactorIndexClient::new(channel)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        Ok(Self {
            client,
            endpoint: endpoint.to_owned(),
        })
    }

    fn client(&self) -> CompactorIndexClient<Channel> {
        self.client.clone()
    }

    /// A failed call whose outcome the caller cannot know: the owner may have applied it.
    fn unknown(&self, status: &tonic::Status) -> IndexError {
        match status.code() {
            tonic::Code::FailedPrecondition => IndexError::Fenced,
            tonic::Code::DataLoss => IndexError::Storage(format!(
                "index owner {}: {}",
                self.endpoint,
                status.message()
            )),
            _ => IndexError::Unavailable(format!(
                "index owner {}: {}",
                self.endpoint,
                status.message()
            )),
        }
    }

    fn lake_error(&self, table: TableId, status: tonic::Status) -> LakeCommitError {
        let reason = status.message().to_owned();
        match status.code() {
            tonic::Code::Aborted => LakeCommitError::Conflict {
                table,
                expected: None,
                current: None,
            },
            tonic::Code::FailedPrecondition => LakeCommitError::Fenced {
                table,
                owner: 0,
                epoch: 0,
                holder: None,
            },
            tonic::Code::NotFound => LakeCommitError::TableNotFound { table },
            tonic::Code::InvalidArgument => LakeCommitError::Invalid { table, reason },
            _ => LakeCommitError::Index(self.unknown(&status)),
        }
    }
}

fn stream_ref(stream: StreamId) -> pb::StreamRef {
    pb::StreamRef {
        table_id: stream.table.0,
        bucket: stream.bucket.0,
    }
}

fn page_request(stream: StreamId, from: Offset, max: usize) -> pb::ListIndexEntriesRequest {
    pb::ListIndexEntriesRequest {
        stream: Some(stream_ref(stream)),
        from: from.0,
        max: u32::try_from(max).unwrap_or(u32::MAX),
    }
}

/// Decodes index entries sent in their persisted encoding.
fn decode_entries<T>(
    entries: pb::IndexEntries,
    decode: fn(&[u8]) -> Result<T, CodecError>,
) -> Result<Vec<T>, IndexError> {
    entries
        .entries
        .iter()
        .map(|bytes| decode(bytes).map_err(IndexError::from))
        .collect()
}

fn lease_message(lease: LakeLease) -> pb::LakeLease {
    pb::LakeLease {
        owner: lease.owner,
        epoch: lease.epoch,
        expires_at_micros: lease.expires_at_micros,
    }
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

fn wal_object(bytes: &[u8]) -> Result<WalObjectId, IndexError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| {
        IndexError::Storage(format!("a WAL object id of {} bytes, not 16", bytes.len()))
    })?;
    Ok(WalObjectId(u128::from_be_bytes(bytes)))
}

fn table_from_message(info: pb::TableInfo) -> Result<TableInfo, IndexError> {
    let bad = |what: String| IndexError::Storage(format!("table {}: {what}", info.table_id));
    let path = info.path.clone().ok_or_else(|| bad("no path".to_owned()))?;
    let descriptor = info
        .descriptor
        .clone()
        .ok_or_else(|| bad("no descriptor".to_owned()))?;
    let schema = decode_schema(&descriptor.schema_ipc).map_err(|e| bad(format!("schema: {e}")))?;
    Ok(TableInfo {
        id: TableId(info.table_id),
        database: path.database,
        // Not sent; the compactor never uses it.
        database_id: DatabaseId(0),
        name: path.table,
        schema_id: SchemaId(info.schema_id),
        descriptor: TableDescriptor {
            schema,
            bucket_count: descriptor.bucket_count,
            bucket_key: descriptor.bucket_key,
            partition_key: descriptor.partition_key,
            comment: descriptor.comment,
            options: descriptor.options.into_iter().collect(),
        },
        created_at: TimestampMicros(info.created_at_micros),
    })
}

#[async_trait::async_trait]
impl LakeCatalog for RemoteIndex {
    async fn tables(&self) -> Result<Vec<Arc<TableInfo>>, IndexError> {
        let response = self
            .client()
            .list_all_tables(pb::ListAllTablesRequest {})
            .await
            .map_err(|s| self.unknown(&s))?;
        response
            .into_inner()
            .tables
            .into_iter()
            .map(|info| table_from_message(info).map(Arc::new))
            .collect()
    }

    async fn table(&self, table: TableId) -> Result<Option<Arc<TableInfo>>, IndexError> {
        Ok(self.tables().await?.into_iter().find(|t| t.id == table))
    }

    async fn stream_state(
        &self,
        stream: StreamId,
    ) -> Result<(StreamTail, LakeWatermark), IndexError> {
        let state = self
            .client()
            .get_stream_state(stream_ref(stream))
            .await
            .map_err(|s| self.unknown(&s))?
            .into_inner();
        Ok((
            StreamTail::decode(&state.tail)?,
            LakeWatermark::decode(&state.watermark)?,
        ))
    }

    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        let entries = self
            .client()
            .list_chunks(page_request(stream, from, max))
            .await
            .map_err(|s| self.unknown(&s))?;
        decode_entries(entries.into_inner(), ChunkEntry::decode)
    }

    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        let entries = self
            .client()
            .list_lake_files(page_request(stream, from, max))
            .await
            .map_err(|s| self.unknown(&s))?;
        decode_entries(entries.into_inner(), LakeFileEntry::decode)
    }

    async fn lake_table(&self, table: TableId) -> Result<Option<LakeTableRecord>, IndexError> {
        let record = self
            .client()
            .get_lake_table(pb::TableRef { table_id: table.0 })
            .await
            .map_err(|s| self.unknown(&s))?
            .into_inner()
            .record;
        if record.is_empty() {
            return Ok(None);
        }
        Ok(Some(decode_record(&record)?))
    }

    async fn acquire_lake_lease(
        &self,
        table: TableId,
        owner: u64,
        ttl: Duration,
    ) -> Result<LakeLease, LakeCommitError> {
        let lease = self
            .client()
            .acquire_lake_lease(pb::AcquireLakeLeaseRequest {
                table_id: table.0,
                owner,
                ttl_micros: u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX),
            })
            .await
            .map_err(|s| self.lake_error(table, s))?
            .into_inner();
        Ok(LakeLease {
            owner: lease.owner,
            epoch: lease.epoch,
            expires_at_micros: lease.expires_at_micros,
        })
    }

    async fn release_lake_lease(
        &self,
        table: TableId,
        lease: LakeLease,
    ) -> Result<(), LakeCommitError> {
        self.client()
            .release_lake_lease(pb::ReleaseLakeLeaseRequest {
                table_id: table.0,
                lease: Some(lease_message(lease)),
            })
            .await
            .map_err(|s| self.lake_error(table, s))?;
        Ok(())
    }

    async fn commit_lake(&self, commit: LakeCommit) -> Result<LakeCommitted, LakeCommitError> {
        let table = commit.table;
        let request = pb::CommitLakeRequest {
            table_id: table.0,
            lease: Some(lease_message(commit.lease)),
            expected_metadata_location: commit.expected_metadata_location,
            metadata_location: commit.metadata_location,
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
        };
        let response = self
            .client()
            .commit_lake(request)
            .await
            .map_err(|s| self.lake_error(table, s))?
            .into_inner();
        let mut trimmed_objects = BTreeSet::new();
        for object in &response.trimmed_objects {
            trimmed_objects.insert(wal_object(object)?);
        }
        Ok(LakeCommitted {
            committed_at: TimestampMicros(response.committed_at_micros),
            trimmed_chunks: usize::try_from(response.trimmed_chunks).unwrap_or(usize::MAX),
            trimmed_objects,
        })
    }

    async fn live_wal_objects(&self) -> Result<BTreeSet<WalObjectId>, IndexError> {
        let response = self
            .client()
            .list_live_wal_objects(pb::ListLiveWalObjectsRequest {})
            .await
            .map_err(|s| self.unknown(&s))?
            .into_inner();
        response
            .objects
            .iter()
            .map(|bytes| wal_object(bytes))
            .collect()
    }
}
