//! The gRPC service: translates between the wire types of `inlet-proto` and the role
//! libraries, and maps every error to a gRPC status in one place ([`status`]).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use arrow_buffer::Buffer;
use futures::{Stream, StreamExt};
use inlet_core::clock::Env;
use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::{Offset, TimestampMicros};
use inlet_core::ipc::{batches_to_ipc, decode_schema, decode_stream};
use inlet_core::limits::MAX_APPEND_BYTES;
use inlet_core::table::{OPTION_LAKE_ENABLED, TableDescriptor};
use inlet_index::{DatabaseInfo, Index, ProducerRef, table_streams};
use inlet_proto::v1 as pb;
use inlet_proto::v1::inlet_server::Inlet;
use inlet_reader::{FetchRequest, Reader, StartPosition};
use inlet_wire::convert::table_message;
use inlet_writer::{AppendError, Writer};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::metrics::Metrics;

/// Maps an error to the gRPC status a client sees: the code says what the client can do,
/// the message says what went wrong.
pub fn status<E: HasKind + std::fmt::Display>(error: E) -> Status {
    let message = error.to_string();
    match error.kind() {
        ErrorKind::InvalidInput => Status::invalid_argument(message),
        ErrorKind::NotFound => Status::not_found(message),
        ErrorKind::AlreadyExists => Status::already_exists(message),
        ErrorKind::OutOfRange => Status::out_of_range(message),
        ErrorKind::Unavailable => Status::unavailable(message),
        ErrorKind::Fenced => Status::failed_precondition(message),
        ErrorKind::Conflict => Status::aborted(message),
        ErrorKind::Corruption => Status::data_loss(message),
        ErrorKind::Internal => Status::internal(message),
    }
}

/// The `inlet.v1.Inlet` service over the roles of this process.
#[derive(Clone, Debug)]
pub struct InletService {
    pub index: Index,
    pub writer: Writer,
    pub reader: Reader,
    pub metrics: Metrics,
    pub env: Env,
    /// `lake.enabled` for tables created without that option (`[lake] tables_default`).
    pub lake_by_default: bool,
}

fn database_info(info: DatabaseInfo) -> pb::DatabaseInfo {
    pb::DatabaseInfo {
        name: info.name,
        id: info.id.0,
        comment: info.comment,
        created_at_micros: info.created_at.0,
    }
}

fn table_path(path: Option<pb::TablePath>) -> Result<pb::TablePath, Status> {
    path.ok_or_else(|| Status::invalid_argument("request lacks the table path"))
}

fn start_position(start: Option<pb::StartPosition>) -> StartPosition {
    use pb::start_position::Position;
    match start.and_then(|s| s.position) {
        None | Some(Position::Earliest(_)) => StartPosition::Earliest,
        Some(Position::Latest(_)) => StartPosition::Latest,
        Some(Position::Offset(offset)) => StartPosition::Offset(Offset(offset)),
        Some(Position::TimestampMicros(ts)) => StartPosition::Timestamp(TimestampMicros(ts)),
    }
}

type FetchStream = Pin<Box<dyn Stream<Item = Result<pb::FetchResponse, Status>> + Send>>;

impl InletService {
    /// The append itself; `append` wraps it with metrics.
    async fn append_inner(
        &self,
        request: pb::AppendRequest,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let path = table_path(request.path)?;
        if request.batches_ipc.len() > MAX_APPEND_BYTES {
            return Err(status(AppendError::TooLarge {
                bytes: request.batches_ipc.len(),
                limit: MAX_APPEND_BYTES,
            }));
        }
        // Look the table up first so an unknown table is reported as such, not as bad IPC.
        self.index
            .table(&path.database, &path.table)
            .map_err(status)?;
        let producer = (request.producer_id != 0).then_some(ProducerRef {
            id: request.producer_id,
            sequence: request.sequence,
        });
        // Decoded zero-copy from the request's own buffer, every length checked first.
        let batches = decode_stream(Buffer::from_vec(request.batches_ipc))
            .map_err(|e| status(AppendError::MalformedIpc(e.to_string())))?
            .batches;
        let span = tracing::debug_span!("append", database = %path.database, table = %path.table);
        let appended = self
            .writer
            .append(&path.database, &path.table, &batches, producer)
            .instrument(span)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AppendResponse {
            buckets: appended
                .into_iter()
                .map(|a| pb::BucketAppendResult {
                    bucket: a.bucket.0,
                    base_offset: a.base_offset.0,
                    row_count: a.row_count,
                    commit_timestamp_micros: a.commit_ts.0,
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl Inlet for InletService {
    async fn create_database(
        &self,
        request: Request<pb::CreateDatabaseRequest>,
    ) -> Result<Response<pb::CreateDatabaseResponse>, Status> {
        let request = request.into_inner();
        let info = self
            .index
            .create_database(&request.name, &request.comment, request.if_not_exists)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateDatabaseResponse {
            database: Some(database_info(info)),
        }))
    }

    async fn list_databases(
        &self,
        _request: Request<pb::ListDatabasesRequest>,
    ) -> Result<Response<pb::ListDatabasesResponse>, Status> {
        let databases = self
            .index
            .list_databases()
            .into_iter()
            .map(database_info)
            .collect();
        Ok(Response::new(pb::ListDatabasesResponse { databases }))
    }

    async fn get_database(
        &self,
        request: Request<pb::GetDatabaseRequest>,
    ) -> Result<Response<pb::GetDatabaseResponse>, Status> {
        let info = self
            .index
            .database(&request.into_inner().name)
            .map_err(status)?;
        Ok(Response::new(pb::GetDatabaseResponse {
            database: Some(database_info(info)),
        }))
    }

    async fn drop_database(
        &self,
        request: Request<pb::DropDatabaseRequest>,
    ) -> Result<Response<pb::DropDatabaseResponse>, Status> {
        let request = request.into_inner();
        self.index
            .drop_database(&request.name, request.if_exists, request.cascade)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DropDatabaseResponse {}))
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        let request = request.into_inner();
        let path = table_path(request.path)?;
        let descriptor = request
            .descriptor
            .ok_or_else(|| Status::invalid_argument("create table request lacks a descriptor"))?;
        let schema = decode_schema(&descriptor.schema_ipc).map_err(|e| {
            Status::invalid_argument(format!("table schema is not a valid arrow ipc schema: {e}"))
        })?;
        let descriptor = TableDescriptor {
            schema,
            bucket_count: descriptor.bucket_count,
            bucket_key: descriptor.bucket_key,
            partition_key: descriptor.partition_key,
            comment: descriptor.comment,
            options: descriptor.options.into_iter().collect::<BTreeMap<_, _>>(),
        };
        let mut descriptor = descriptor;
        descriptor
            .options
            .entry(OPTION_LAKE_ENABLED.to_owned())
            .or_insert_with(|| self.lake_by_default.to_string());
        let info = self
            .index
            .create_table(
                &path.database,
                &path.table,
                descriptor,
                request.if_not_exists,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateTableResponse {
            table: Some(table_message(&info)?),
        }))
    }

    async fn list_tables(
        &self,
        request: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        let tables = self
            .index
            .list_tables(&request.into_inner().database)
            .map_err(status)?
            .iter()
            .map(|t| table_message(t))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListTablesResponse { tables }))
    }

    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<pb::GetTableResponse>, Status> {
        let path = table_path(request.into_inner().path)?;
        let info = self
            .index
            .table(&path.database, &path.table)
            .map_err(status)?;
        let mut buckets = Vec::new();
        for stream in table_streams(&info) {
            let tail = self.index.tail(stream).await.map_err(status)?;
            buckets.push(pb::BucketOffsets {
                bucket: stream.bucket.0,
                earliest_offset: tail.earliest_offset.0,
                latest_offset: tail.next_offset.0,
                offset: tail.next_offset.0,
            });
        }
        Ok(Response::new(pb::GetTableResponse {
            table: Some(table_message(&info)?),
            buckets,
        }))
    }

    async fn drop_table(
        &self,
        request: Request<pb::DropTableRequest>,
    ) -> Result<Response<pb::DropTableResponse>, Status> {
        let request = request.into_inner();
        let path = table_path(request.path)?;
        self.index
            .drop_table(&path.database, &path.table, request.if_exists)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DropTableResponse {}))
    }

    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let started = tokio::time::Instant::now();
        let request = request.into_inner();
        let bytes = request.batches_ipc.len() as u64;
        let result = self.append_inner(request).await;
        let requests = &self.metrics.requests;
        match &result {
            Ok(response) => {
                requests.append_latency.observe(started.elapsed());
                let rows: u64 = response.get_ref().buckets.iter().map(|b| b.row_count).sum();
                requests.appended_rows.fetch_add(rows, Ordering::Relaxed);
                requests.appended_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                requests.append_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    type FetchStream = FetchStream;

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let started = tokio::time::Instant::now();
        let request = request.into_inner();
        let path = table_path(request.path)?;
        let fetch = FetchRequest {
            database: path.database,
            table: path.table,
            buckets: request.buckets,
            start: start_position(request.start),
            columns: request.columns,
            follow: request.follow,
            limit: (request.limit > 0).then_some(request.limit),
        };
        let batches = self.reader.fetch(fetch).await.map_err(status)?;
        let requests = self.metrics.requests.clone();
        let mut first = true;
        let responses = batches.map(move |item| {
            let fetched = item.map_err(status)?;
            if std::mem::take(&mut first) {
                requests
                    .fetch_first_batch_latency
                    .observe(started.elapsed());
            }
            let rows = fetched.batch.num_rows() as u64;
            let batch_ipc = batches_to_ipc(&fetched.batch.schema(), &[fetched.batch])
                .map_err(|e| Status::internal(format!("cannot encode batch: {e}")))?;
            requests.fetched_rows.fetch_add(rows, Ordering::Relaxed);
            requests
                .fetched_bytes
                .fetch_add(batch_ipc.len() as u64, Ordering::Relaxed);
            Ok(pb::FetchResponse {
                bucket: fetched.bucket.0,
                batch_ipc,
                high_watermark: fetched.high_watermark.0,
            })
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let store = self.metrics.store.snapshot();
        let cache = self.metrics.cache.stats();
        let requests = &self.metrics.requests;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Ok(Response::new(pb::GetStatusResponse {
            index_owner: self.index.stopped().is_none(),
            index_status: self
                .index
                .stopped()
                .map_or_else(|| "owner".to_owned(), |reason| reason.to_string()),
            store: store
                .entries()
                .map(|(purpose, op, counts)| pb::StoreUsage {
                    purpose: purpose.label().to_owned(),
                    op: op.label().to_owned(),
                    requests: counts.requests,
                    errors: counts.errors,
                    expected_misses: counts.expected_misses,
                    bytes_in: counts.bytes_in,
                    bytes_out: counts.bytes_out,
                })
                .collect(),
            cache_hits: cache.hits,
            cache_misses: cache.misses,
            cache_bytes_fetched: cache.bytes_fetched,
            cache_memory_bytes: cache.memory_bytes,
            appended_rows: load(&requests.appended_rows),
            appended_bytes: load(&requests.appended_bytes),
            fetched_rows: load(&requests.fetched_rows),
            fetched_bytes: load(&requests.fetched_bytes),
        }))
    }

    async fn get_lake_status(
        &self,
        request: Request<pb::GetLakeStatusRequest>,
    ) -> Result<Response<pb::GetLakeStatusResponse>, Status> {
        let request = request.into_inner();
        let databases = if request.database.is_empty() {
            self.index
                .list_databases()
                .into_iter()
                .map(|d| d.name)
                .collect()
        } else {
            vec![request.database.clone()]
        };
        let mut tables = Vec::new();
        for database in databases {
            if request.table.is_empty() {
                tables.extend(self.index.list_tables(&database).map_err(status)?);
            } else {
                tables.push(
                    self.index
                        .table(&database, &request.table)
                        .map_err(status)?,
                );
            }
        }
        let now = self.env.clock.now();
        let mut out = Vec::with_capacity(tables.len());
        for table in tables {
            out.push(
                crate::lake_status::table_lake_status(&self.index, &table, now)
                    .await
                    .map_err(status)?,
            );
        }
        Ok(Response::new(pb::GetLakeStatusResponse { tables: out }))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let request = request.into_inner();
        let path = table_path(request.path)?;
        let offsets = self
            .reader
            .list_offsets(
                &path.database,
                &path.table,
                &request.buckets,
                start_position(request.position),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListOffsetsResponse {
            buckets: offsets
                .into_iter()
                .map(|o| pb::BucketOffsets {
                    bucket: o.bucket.0,
                    earliest_offset: o.earliest.0,
                    latest_offset: o.latest.0,
                    offset: o.resolved.0,
                })
                .collect(),
        }))
    }
}
