//! The `CompactorIndex` gRPC service: the index operations a compactor in another process
//! (`inlet compactor --server ...`) needs, served by the index owner. Reads come from the
//! owner's index; leases and lake commits go through its sequencer, so a remote compactor
//! is fenced and compare-and-swapped exactly like an in-process one.

use std::collections::BTreeMap;
use std::time::Duration;

use inlet_compactor::LakeCatalog;
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId, TableId};
use inlet_index::{Index, LakeCommit, LakeCommitError, LakeFileEntry, LakeLease};
use inlet_proto::v1 as pb;
use inlet_proto::v1::compactor_index_server::CompactorIndex;
use tonic::{Request, Response, Status};

use crate::grpc::{status, table_info};

/// Most entries one `ListChunks`/`ListLakeFiles` call returns.
pub const MAX_INDEX_ENTRIES_PER_CALL: u32 = 10_000;

#[derive(Clone, Debug)]
pub struct CompactorIndexService {
    pub index: Index,
}

fn stream_of(stream: Option<pb::StreamRef>) -> Result<StreamId, Status> {
    let stream = stream.ok_or_else(|| Status::invalid_argument("request lacks the stream"))?;
    Ok(StreamId::new(
        TableId(stream.table_id),
        PartitionId(0),
        Bucket(stream.bucket),
    ))
}

/// The stream, start offset and bounded page size of a listing request.
fn page_of(request: pb::ListIndexEntriesRequest) -> Result<(StreamId, Offset, usize), Status> {
    let stream = stream_of(request.stream)?;
    let max = request.max.clamp(1, MAX_INDEX_ENTRIES_PER_CALL) as usize;
    Ok((stream, Offset(request.from), max))
}

fn lease_of(lease: Option<pb::LakeLease>) -> Result<LakeLease, Status> {
    let lease = lease.ok_or_else(|| Status::invalid_argument("request lacks the lease"))?;
    Ok(LakeLease {
        owner: lease.owner,
        epoch: lease.epoch,
        expires_at_micros: lease.expires_at_micros,
    })
}

fn lease_message(lease: LakeLease) -> pb::LakeLease {
    pb::LakeLease {
        owner: lease.owner,
        epoch: lease.epoch,
        expires_at_micros: lease.expires_at_micros,
    }
}

fn offsets(entries: Vec<pb::BucketOffset>) -> BTreeMap<Bucket, Offset> {
    entries
        .into_iter()
        .map(|e| (Bucket(e.bucket), Offset(e.offset)))
        .collect()
}

/// Refusals keep their kind; an index error means the outcome is unknown to the caller
/// (the batch may be durable), so it is always UNAVAILABLE, never "fenced".
fn lake_status(error: LakeCommitError) -> Status {
    match error {
        LakeCommitError::Index(error) => Status::unavailable(error.to_string()),
        refused => status(refused),
    }
}

#[tonic::async_trait]
impl CompactorIndex for CompactorIndexService {
    async fn list_all_tables(
        &self,
        _request: Request<pb::ListAllTablesRequest>,
    ) -> Result<Response<pb::ListAllTablesResponse>, Status> {
        let mut tables = Vec::new();
        for database in self.index.list_databases() {
            for table in self.index.list_tables(&database.name).map_err(status)? {
                tables.push(table_info(&table)?);
            }
        }
        Ok(Response::new(pb::ListAllTablesResponse { tables }))
    }

    async fn get_stream_state(
        &self,
        request: Request<pb::StreamRef>,
    ) -> Result<Response<pb::StreamState>, Status> {
        let stream = stream_of(Some(request.into_inner()))?;
        let tail = self.index.tail(stream).await.map_err(status)?;
        let watermark = self.index.lake_watermark(stream).await.map_err(status)?;
        Ok(Response::new(pb::StreamState {
            tail: tail.encode(),
            watermark: watermark.encode(),
        }))
    }

    async fn list_chunks(
        &self,
        request: Request<pb::ListIndexEntriesRequest>,
    ) -> Result<Response<pb::IndexEntries>, Status> {
        let (stream, from, max) = page_of(request.into_inner())?;
        let entries = LakeCatalog::chunks(&self.index, stream, from, max)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::IndexEntries {
            entries: entries.iter().map(|entry| entry.encode()).collect(),
        }))
    }

    async fn list_lake_files(
        &self,
        request: Request<pb::ListIndexEntriesRequest>,
    ) -> Result<Response<pb::IndexEntries>, Status> {
        let (stream, from, max) = page_of(request.into_inner())?;
        let entries = LakeCatalog::lake_files(&self.index, stream, from, max)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::IndexEntries {
            entries: entries.iter().map(|entry| entry.encode()).collect(),
        }))
    }

    async fn get_lake_table(
        &self,
        request: Request<pb::TableRef>,
    ) -> Result<Response<pb::LakeTableRecordBytes>, Status> {
        let table = TableId(request.into_inner().table_id);
        let record = self.index.lake_table(table).await.map_err(status)?;
        Ok(Response::new(pb::LakeTableRecordBytes {
            record: record
                .map(|record| inlet_index::records::encode_record(&record))
                .unwrap_or_default(),
        }))
    }

    async fn acquire_lake_lease(
        &self,
        request: Request<pb::AcquireLakeLeaseRequest>,
    ) -> Result<Response<pb::LakeLease>, Status> {
        let request = request.into_inner();
        let lease = self
            .index
            .acquire_lake_lease(
                TableId(request.table_id),
                request.owner,
                Duration::from_micros(request.ttl_micros),
            )
            .await
            .map_err(lake_status)?;
        Ok(Response::new(lease_message(lease)))
    }

    async fn release_lake_lease(
        &self,
        request: Request<pb::ReleaseLakeLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLakeLeaseResponse>, Status> {
        let request = request.into_inner();
        self.index
            .release_lake_lease(TableId(request.table_id), lease_of(request.lease)?)
            .await
            .map_err(lake_status)?;
        Ok(Response::new(pb::ReleaseLakeLeaseResponse {}))
    }

    async fn commit_lake(
        &self,
        request: Request<pb::CommitLakeRequest>,
    ) -> Result<Response<pb::CommitLakeResponse>, Status> {
        let request = request.into_inner();
        let mut added_files = Vec::with_capacity(request.added_files.len());
        for added in request.added_files {
            let entry = LakeFileEntry::decode(&added.entry).map_err(|e| {
                Status::invalid_argument(format!("added lake file of bucket {}: {e}", added.bucket))
            })?;
            added_files.push((Bucket(added.bucket), entry));
        }
        let commit = LakeCommit {
            table: TableId(request.table_id),
            lease: lease_of(request.lease)?,
            expected_metadata_location: request.expected_metadata_location,
            metadata_location: request.metadata_location,
            snapshot_id: request.snapshot_id,
            watermarks: offsets(request.watermarks),
            added_files,
            removed_files: offsets(request.removed_files).into_iter().collect(),
            earliest: offsets(request.earliest),
        };
        let committed = self.index.commit_lake(commit).await.map_err(lake_status)?;
        Ok(Response::new(pb::CommitLakeResponse {
            committed_at_micros: committed.committed_at.0,
            trimmed_chunks: committed.trimmed_chunks as u64,
            trimmed_objects: committed
                .trimmed_objects
                .iter()
                .map(|object| object.0.to_be_bytes().to_vec())
                .collect(),
        }))
    }

    async fn list_live_wal_objects(
        &self,
        _request: Request<pb::ListLiveWalObjectsRequest>,
    ) -> Result<Response<pb::ListLiveWalObjectsResponse>, Status> {
        let live = self.index.live_wal_objects().await.map_err(status)?;
        Ok(Response::new(pb::ListLiveWalObjectsResponse {
            objects: live
                .iter()
                .map(|object| object.0.to_be_bytes().to_vec())
                .collect(),
        }))
    }
}
