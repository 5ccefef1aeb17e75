//! The owner's side: the `IndexPorts` gRPC service over the owner's [`Index`]. Every read
//! comes from the index, every write (commits, leases, lake commits) goes through its
//! sequencer, so a remote role is ordered, fenced and compare-and-swapped exactly like one in
//! the owner's process. It also keeps the cluster's membership: the nodes with a `Join` open.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use inlet_core::ids::{Offset, PartitionId, TableId, TimestampMicros};
use inlet_core::limits::{
    COMMIT_QUEUE_DEPTH, MAX_GRPC_MESSAGE_BYTES, MAX_PREFIX_LOOKUP_ROWS, MAX_REQUEST_ROWS,
};
use inlet_core::table::TableInfo;
use inlet_index::{CatalogError, Index, LakeCatalog, MAX_LAKE_ROWS_PER_CALL, StreamTail};
use inlet_proto::v1 as pb;
use inlet_proto::v1::index_ports_server::{IndexPorts, IndexPortsServer};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{
    commit_of, commit_reply_message, grant_message, lake_commit_of, lake_committed_message,
    lease_message, lease_of, page_of, stream_of, table_message,
};
use crate::errors::to_status;

/// A node of the cluster as it joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    /// gRPC endpoint clients and nodes reach it on.
    pub endpoint: String,
    /// Roles it runs (`index`, `writer`, `reader`, `compactor`).
    pub roles: Vec<String>,
}

impl Member {
    pub fn message(&self) -> pb::NodeInfo {
        pb::NodeInfo {
            node_id: self.node_id.clone(),
            address: self.endpoint.clone(),
            roles: self.roles.clone(),
        }
    }

    pub fn of(message: pb::NodeInfo) -> Self {
        Self {
            node_id: message.node_id,
            endpoint: message.address,
            roles: message.roles,
        }
    }
}

/// The nodes with a `Join` open, by node id.
type Members = watch::Sender<BTreeMap<String, Member>>;

/// The `IndexPorts` service of the owner.
#[derive(Clone, Debug)]
pub struct IndexPortsService {
    index: Index,
    own_node_id: String,
    members: Arc<Members>,
}

type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl IndexPortsService {
    /// The service over `index`, with the owner itself (`own`) as the first member.
    pub fn new(index: Index, own: Member) -> Self {
        let own_node_id = own.node_id.clone();
        let members = BTreeMap::from([(own.node_id.clone(), own)]);
        Self {
            index,
            own_node_id,
            members: Arc::new(watch::Sender::new(members)),
        }
    }

    /// Every node of the cluster, the owner included.
    pub fn members(&self) -> Vec<Member> {
        self.members.borrow().values().cloned().collect()
    }

    /// The tonic server of this service, with Inlet's message size limits.
    pub fn into_server(self) -> IndexPortsServer<Self> {
        IndexPortsServer::new(self)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
    }

    fn event(&self, catalog_version: u64) -> pb::ClusterEvent {
        pb::ClusterEvent {
            catalog_version,
            members: self
                .members
                .borrow()
                .values()
                .map(Member::message)
                .collect(),
        }
    }
}

/// How often a `Join` stream checks that the index is still open, so that a node learns of a
/// stopped (fenced) owner and looks for the new one.
const JOIN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[tonic::async_trait]
impl IndexPorts for IndexPortsService {
    type JoinStream = Replies<pb::ClusterEvent>;
    type CommitStream = Replies<pb::WalCommitReply>;
    type WatchStreamStream = Replies<pb::StreamState>;
    type ScanKeysStream = Replies<pb::KeyScanPage>;

    async fn join(
        &self,
        request: Request<pb::NodeInfo>,
    ) -> Result<Response<Self::JoinStream>, Status> {
        let member = Member::of(request.into_inner());
        if member.node_id.is_empty() {
            return Err(Status::invalid_argument("a joining node needs a node id"));
        }
        let node_id = member.node_id.clone();
        self.members.send_modify(|members| {
            members.insert(node_id.clone(), member);
        });
        let (events, receiver) = mpsc::channel(8);
        let service = self.clone();
        tokio::spawn(async move {
            let mut catalog = service.index.catalog_changes();
            let mut members = service.members.subscribe();
            let mut check = tokio::time::interval(JOIN_CHECK_INTERVAL);
            'join: loop {
                let version = *catalog.borrow_and_update();
                members.borrow_and_update();
                if events.send(Ok(service.event(version))).await.is_err() {
                    break;
                }
                // Wait for a change worth telling, the node leaving, or the index stopping.
                loop {
                    tokio::select! {
                        biased;
                        _ = events.closed() => break 'join,
                        changed = catalog.changed() => match changed {
                            Ok(()) => break,
                            Err(_) => break 'join,
                        },
                        _ = members.changed() => break,
                        _ = check.tick() => {
                            if let Some(error) = service.index.stopped() {
                                let _ = events.send(Err(to_status(&error))).await;
                                break 'join;
                            }
                        }
                    }
                }
            }
            service.members.send_modify(|members| {
                members.remove(&node_id);
            });
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn alive(
        &self,
        _request: Request<pb::AliveRequest>,
    ) -> Result<Response<pb::AliveReply>, Status> {
        Ok(Response::new(pb::AliveReply {
            node_id: self.own_node_id.clone(),
            serving: self.index.stopped().is_none(),
        }))
    }

    async fn lookup_table(
        &self,
        request: Request<pb::TablePath>,
    ) -> Result<Response<pb::TableLookup>, Status> {
        let path = request.into_inner();
        let missing = |missing: pb::table_lookup::Missing| pb::TableLookup {
            table: None,
            missing: missing as i32,
        };
        Ok(Response::new(
            match self.index.table(&path.database, &path.table) {
                Ok(table) => pb::TableLookup {
                    table: Some(table_message(&table)?),
                    missing: pb::table_lookup::Missing::Nothing as i32,
                },
                Err(CatalogError::DatabaseNotFound { .. }) => {
                    missing(pb::table_lookup::Missing::Database)
                }
                Err(CatalogError::TableNotFound { .. }) => {
                    missing(pb::table_lookup::Missing::Table)
                }
                Err(other) => return Err(Status::internal(other.to_string())),
            },
        ))
    }

    async fn commit(
        &self,
        request: Request<Streaming<pb::WalCommit>>,
    ) -> Result<Response<Self::CommitStream>, Status> {
        let mut inbound = request.into_inner();
        let (replies, receiver) = mpsc::channel(COMMIT_QUEUE_DEPTH);
        let index = self.index.clone();
        tokio::spawn(async move {
            let mut waiting = tokio::task::JoinSet::new();
            // Requests are queued with the sequencer one after another, in stream order;
            // their replies are sent as each becomes durable.
            while let Ok(Some(message)) = inbound.message().await {
                let id = message.id;
                let request = match commit_of(message) {
                    Ok(request) => request,
                    Err(status) => {
                        let _ = replies.send(Err(status)).await;
                        break;
                    }
                };
                let reply = replies.clone();
                match index.submit_commit(request).await {
                    Ok(pending) => {
                        waiting.spawn(async move {
                            let outcome = pending.wait().await;
                            let _ = reply.send(Ok(commit_reply_message(id, &outcome))).await;
                        });
                    }
                    Err(error) => {
                        let _ = reply.send(Ok(commit_reply_message(id, &Err(error)))).await;
                    }
                }
                while waiting.try_join_next().is_some() {}
            }
            while waiting.join_next().await.is_some() {}
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn watch_stream(
        &self,
        request: Request<pb::StreamRef>,
    ) -> Result<Response<Self::WatchStreamStream>, Status> {
        let stream = stream_of(Some(request.into_inner()))?;
        let mut tails = self
            .index
            .subscribe(stream)
            .await
            .map_err(|e| to_status(&e))?;
        let (states, receiver) = mpsc::channel(4);
        let index = self.index.clone();
        tokio::spawn(async move {
            loop {
                let tail: StreamTail = *tails.borrow_and_update();
                let state = match index.lake_watermark(stream).await {
                    Ok(watermark) => Ok(pb::StreamState {
                        tail: tail.encode(),
                        watermark: watermark.encode(),
                    }),
                    Err(error) => Err(to_status(&error)),
                };
                let failed = state.is_err();
                if states.send(state).await.is_err() || failed {
                    return;
                }
                tokio::select! {
                    biased;
                    _ = states.closed() => return,
                    changed = tails.changed() => if changed.is_err() {
                        let error = index.stopped().unwrap_or(inlet_index::IndexError::Stopped {
                            reason: "index closed".to_owned(),
                        });
                        let _ = states.send(Err(to_status(&error))).await;
                        return;
                    },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn offset_for_timestamp(
        &self,
        request: Request<pb::OffsetForTimestampRequest>,
    ) -> Result<Response<pb::OffsetReply>, Status> {
        let request = request.into_inner();
        let stream = stream_of(request.stream)?;
        let offset: Offset = self
            .index
            .offset_for_timestamp(stream, TimestampMicros(request.timestamp_micros))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::OffsetReply { offset: offset.0 }))
    }

    async fn lookup_keys(
        &self,
        request: Request<pb::LookupKeysRequest>,
    ) -> Result<Response<pb::LookupKeysReply>, Status> {
        let request = request.into_inner();
        let stream = stream_of(request.stream)?;
        if request.keys.len() > MAX_REQUEST_ROWS {
            return Err(Status::invalid_argument(format!(
                "lookup of {} keys, more than the limit of {MAX_REQUEST_ROWS}",
                request.keys.len()
            )));
        }
        let states = self
            .index
            .lookup(stream, &request.keys)
            .await
            .map_err(|e| to_status(&e))?;
        let values = states
            .into_iter()
            .map(|state| pb::lookup_keys_reply::Value {
                state: state.map(|state| state.encode()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::LookupKeysReply { values }))
    }

    async fn lookup_prefix(
        &self,
        request: Request<pb::LookupPrefixRequest>,
    ) -> Result<Response<pb::LookupKeysReply>, Status> {
        let request = request.into_inner();
        let stream = stream_of(request.stream)?;
        let max = (request.max as usize).min(MAX_PREFIX_LOOKUP_ROWS);
        let states = self
            .index
            .lookup_prefix(stream, &request.prefix, max)
            .await
            .map_err(|e| to_status(&e))?;
        let values = states
            .into_iter()
            .map(|state| pb::lookup_keys_reply::Value {
                state: state.encode(),
            })
            .collect();
        Ok(Response::new(pb::LookupKeysReply { values }))
    }

    /// One iterator of the owner's database for the whole reply, so every page comes from
    /// the same point; the reply's flow control paces the scan.
    async fn scan_keys(
        &self,
        request: Request<pb::StreamRef>,
    ) -> Result<Response<Self::ScanKeysStream>, Status> {
        use futures::StreamExt;

        let stream = stream_of(Some(request.into_inner()))?;
        let scan = self
            .index
            .scan_keys(stream)
            .await
            .map_err(|e| to_status(&e))?;
        let bounds = pb::KeyScanPage {
            low: scan.low.0,
            high: scan.high.0,
            keys: Vec::new(),
            states: Vec::new(),
        };
        let pages = scan.pages.map(|page| match page {
            Ok(page) => {
                let (keys, states) = page
                    .into_iter()
                    .map(|row| (row.key, row.state.encode()))
                    .unzip();
                Ok(pb::KeyScanPage {
                    keys,
                    states,
                    ..pb::KeyScanPage::default()
                })
            }
            Err(error) => Err(to_status(&error)),
        });
        Ok(Response::new(Box::pin(
            futures::stream::once(std::future::ready(Ok(bounds))).chain(pages),
        )))
    }

    async fn get_change_record(
        &self,
        request: Request<pb::ChangeRecordRequest>,
    ) -> Result<Response<pb::ChangeRecordReply>, Status> {
        let request = request.into_inner();
        let stream = stream_of(request.stream)?;
        let record = self
            .index
            .change_record(stream, Offset(request.end_offset))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ChangeRecordReply {
            record: record.map(|record| record.encode()).unwrap_or_default(),
        }))
    }

    async fn list_all_tables(
        &self,
        _request: Request<pb::ListAllTablesRequest>,
    ) -> Result<Response<pb::ListAllTablesResponse>, Status> {
        let tables = LakeCatalog::tables(&self.index)
            .await
            .map_err(|e| to_status(&e))?;
        let tables = tables
            .iter()
            .map(|table| table_message(table))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListAllTablesResponse { tables }))
    }

    async fn get_stream_state(
        &self,
        request: Request<pb::StreamRef>,
    ) -> Result<Response<pb::StreamState>, Status> {
        let stream = stream_of(Some(request.into_inner()))?;
        let (tail, watermark) = self
            .index
            .stream_state(stream)
            .await
            .map_err(|e| to_status(&e))?;
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
            .map_err(|e| to_status(&e))?;
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
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::IndexEntries {
            entries: entries.iter().map(|entry| entry.encode()).collect(),
        }))
    }

    async fn get_lake_table(
        &self,
        request: Request<pb::TableRef>,
    ) -> Result<Response<pb::LakeTableRecordBytes>, Status> {
        let table = TableId(request.into_inner().table_id);
        let record = self
            .index
            .lake_table(table)
            .await
            .map_err(|e| to_status(&e))?;
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
            .map_err(|e| to_status(&e))?;
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
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ReleaseLakeLeaseResponse {}))
    }

    async fn commit_lake(
        &self,
        request: Request<pb::CommitLakeRequest>,
    ) -> Result<Response<pb::CommitLakeResponse>, Status> {
        let commit = lake_commit_of(request.into_inner())?;
        let committed = self
            .index
            .commit_lake(commit)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(lake_committed_message(&committed)))
    }

    async fn expire_wal(
        &self,
        request: Request<pb::TableRef>,
    ) -> Result<Response<pb::ExpireWalResponse>, Status> {
        let expired = self
            .index
            .expire_wal(TableId(request.into_inner().table_id))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(crate::convert::wal_expired_message(&expired)))
    }

    async fn list_dropped_tables(
        &self,
        _request: Request<pb::ListDroppedTablesRequest>,
    ) -> Result<Response<pb::ListDroppedTablesResponse>, Status> {
        let dropped = self
            .index
            .dropped_tables()
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListDroppedTablesResponse {
            tables: dropped
                .into_iter()
                .map(|t| pb::DroppedTable {
                    table_id: t.id.0,
                    database: t.database,
                    name: t.name,
                    dropped_at_micros: t.dropped_at.0,
                    purge_lake: t.purge_lake,
                })
                .collect(),
        }))
    }

    async fn purge_table(
        &self,
        request: Request<pb::TableRef>,
    ) -> Result<Response<pb::PurgeTableResponse>, Status> {
        let purged = self
            .index
            .purge_table(TableId(request.into_inner().table_id))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::PurgeTableResponse {
            entries: purged.entries as u64,
            done: purged.done,
        }))
    }

    async fn list_live_wal_objects(
        &self,
        _request: Request<pb::ListLiveWalObjectsRequest>,
    ) -> Result<Response<pb::ListLiveWalObjectsResponse>, Status> {
        let live = self
            .index
            .live_wal_objects()
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListLiveWalObjectsResponse {
            objects: live
                .iter()
                .map(|object| crate::convert::wal_object_bytes(*object))
                .collect(),
        }))
    }

    async fn add_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::AddPartitionsReply>, Status> {
        let request = request.into_inner();
        let path = request
            .path
            .ok_or_else(|| Status::invalid_argument("request lacks the table path"))?;
        let values = request.partitions.into_iter().map(|p| p.values).collect();
        partitions_reply(
            self.index
                .add_partitions(&path.database, &path.table, values)
                .await,
        )
    }

    async fn drop_partitions(
        &self,
        request: Request<pb::DropPartitionsRequest>,
    ) -> Result<Response<pb::AddPartitionsReply>, Status> {
        let request = request.into_inner();
        let path = request
            .path
            .ok_or_else(|| Status::invalid_argument("request lacks the table path"))?;
        let values = request.partitions.into_iter().map(|p| p.values).collect();
        partitions_reply(
            self.index
                .drop_partitions(&path.database, &path.table, values, request.if_exists)
                .await,
        )
    }

    async fn list_dropped_partitions(
        &self,
        _request: Request<pb::ListDroppedPartitionsRequest>,
    ) -> Result<Response<pb::ListDroppedPartitionsResponse>, Status> {
        let dropped = self
            .index
            .dropped_partitions()
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListDroppedPartitionsResponse {
            partitions: dropped
                .into_iter()
                .map(|p| pb::DroppedPartition {
                    table_id: p.table.0,
                    partition_id: p.partition.0,
                    name: p.name,
                    dropped_at_micros: p.dropped_at.0,
                })
                .collect(),
        }))
    }

    async fn purge_partition(
        &self,
        request: Request<pb::PartitionRef>,
    ) -> Result<Response<pb::PurgeTableResponse>, Status> {
        let request = request.into_inner();
        let purged = self
            .index
            .purge_partition(TableId(request.table_id), PartitionId(request.partition_id))
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::PurgeTableResponse {
            entries: purged.entries as u64,
            done: purged.done,
        }))
    }

    async fn list_grants(
        &self,
        _request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let grants = self.index.grants();
        Ok(Response::new(pb::ListGrantsResponse {
            grants: grants.iter().map(grant_message).collect(),
        }))
    }

    async fn lookup_lake_rows(
        &self,
        request: Request<pb::LookupKeysRequest>,
    ) -> Result<Response<pb::LookupKeysReply>, Status> {
        let request = request.into_inner();
        let stream = stream_of(request.stream)?;
        if request.keys.len() > MAX_LAKE_ROWS_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "lake-row lookup of {} keys, more than the limit of {MAX_LAKE_ROWS_PER_CALL}",
                request.keys.len()
            )));
        }
        let rows = self
            .index
            .lake_rows(stream, &request.keys)
            .await
            .map_err(|e| to_status(&e))?;
        let values = rows
            .into_iter()
            .map(|row| pb::lookup_keys_reply::Value {
                state: row.map(|row| row.encode()).unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::LookupKeysReply { values }))
    }
}

/// The reply to a partition change: the table and ids, which part of the path is missing, or
/// why the owner refused; index errors travel as the status, as every port's do.
fn partitions_reply(
    outcome: Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError>,
) -> Result<Response<pb::AddPartitionsReply>, Status> {
    let unanswered = |missing: pb::table_lookup::Missing, refused: String| pb::AddPartitionsReply {
        table: None,
        ids: Vec::new(),
        refused,
        missing: missing as i32,
    };
    let reply = match outcome {
        Ok((table, ids)) => pb::AddPartitionsReply {
            table: Some(table_message(&table)?),
            ids: ids.iter().map(|id| id.0).collect(),
            refused: String::new(),
            missing: pb::table_lookup::Missing::Nothing as i32,
        },
        Err(CatalogError::Index(error)) => return Err(to_status(&error)),
        Err(CatalogError::DatabaseNotFound { .. }) => {
            unanswered(pb::table_lookup::Missing::Database, String::new())
        }
        Err(CatalogError::TableNotFound { .. }) => {
            unanswered(pb::table_lookup::Missing::Table, String::new())
        }
        Err(CatalogError::PartitionsRefused { reason, .. }) => {
            unanswered(pb::table_lookup::Missing::Nothing, reason)
        }
        Err(other) => unanswered(pb::table_lookup::Missing::Nothing, other.to_string()),
    };
    Ok(Response::new(reply))
}
