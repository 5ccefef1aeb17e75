//! The gRPC service: translates between the wire types of `inlet-proto` and the role
//! libraries, and maps every error to a gRPC status in one place ([`status`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_buffer::Buffer;
use arrow_schema::FieldRef;
use futures::{Stream, StreamExt};
use inlet_compactor::lake::LakeStorage;
use inlet_core::clock::Env;
use inlet_core::error::HasKind;
use inlet_core::ids::{Offset, TimestampMicros};
use inlet_core::ipc::{SchemaCache, batches_to_ipc, decode_schema, decode_stream_cached};
use inlet_core::limits::MAX_APPEND_BYTES;
use inlet_core::table::{OPTION_LAKE_ENABLED, TableAlteration, TableDescriptor};
use inlet_index::{DatabaseInfo, DropOptions, Index, ProducerRef, table_streams};
use inlet_proto::v1 as pb;
use inlet_proto::v1::inlet_client::InletClient;
use inlet_proto::v1::inlet_server::Inlet;
use inlet_reader::{FetchRequest, Reader, SnapshotPart, StartPosition};
use inlet_security::acl::{Permission, Target};
use inlet_security::credential::CredentialedChannel;
use inlet_wire::Member;
use inlet_wire::convert::{grant_message, grant_of, partition_message, table_message};
use inlet_writer::{AppendError, WriteOp, Writer};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::auth::{Access, Caller};
use crate::metrics::Metrics;
use crate::quota::{Direction, Quotas};
use crate::roles::Roles;
use crate::routes::{Cluster, Routes, forward};

/// Maps an error to the gRPC status a client sees: the code says what the client can do,
/// the message says what went wrong.
pub fn status<E: HasKind + std::fmt::Display>(error: E) -> Status {
    Status::new(inlet_wire::errors::code(error.kind()), error.to_string())
}

/// The `inlet.v1.Inlet` service over the roles of this process; what they do not cover is
/// forwarded (`routes.rs`).
#[derive(Clone, Debug)]
pub struct InletService {
    /// Set on the index owner: catalog and admin requests are served here.
    pub index: Option<Index>,
    pub writer: Option<Writer>,
    pub reader: Option<Reader>,
    pub roles: Roles,
    pub routes: Arc<Routes>,
    pub metrics: Metrics,
    pub env: Env,
    /// `lake.enabled` for tables created without that option (`[lake] tables_default`).
    pub lake_by_default: bool,
    /// Byte rates per principal and fetch streams per connection.
    pub quotas: Arc<Quotas>,
    /// Schemas of appends already parsed, so each producer's schema is parsed once.
    pub append_schemas: Arc<SchemaCache>,
    /// The lake tables, where the store has a URL outside engines open (not in memory):
    /// the lake status of primary-key tables reads their snapshot summaries.
    pub lake: Option<LakeStorage>,
}

fn database_info(info: DatabaseInfo) -> pb::DatabaseInfo {
    pb::DatabaseInfo {
        name: info.name,
        id: info.id.0,
        comment: info.comment,
        created_at_micros: info.created_at.0,
    }
}

/// The fields of an Arrow IPC schema message (`what` names them in the error); none when
/// the message is empty.
fn columns_of(ipc: &[u8], what: &str) -> Result<Vec<FieldRef>, Status> {
    if ipc.is_empty() {
        return Ok(Vec::new());
    }
    let schema = decode_schema(ipc).map_err(|e| {
        Status::invalid_argument(format!("{what} are not a valid arrow ipc schema: {e}"))
    })?;
    Ok(schema.fields().iter().cloned().collect())
}

/// A table as what a permission is checked on.
fn table_target(path: &pb::TablePath) -> Target<'_> {
    Target::Table {
        database: &path.database,
        table: &path.table,
    }
}

fn table_path(path: Option<pb::TablePath>) -> Result<pb::TablePath, Status> {
    path.ok_or_else(no_table_path)
}

fn no_table_path() -> Status {
    Status::invalid_argument("request lacks the table path")
}

fn start_position(start: Option<pb::StartPosition>) -> StartPosition {
    use pb::start_position::Position;
    match start.and_then(|s| s.position) {
        None | Some(Position::Earliest(_)) => StartPosition::Earliest,
        Some(Position::Latest(_)) => StartPosition::Latest,
        Some(Position::Offset(offset)) => StartPosition::Offset(Offset(offset)),
        Some(Position::TimestampMicros(ts)) => StartPosition::Timestamp(TimestampMicros(ts)),
        Some(Position::Snapshot(_)) => StartPosition::Snapshot,
    }
}

type FetchStream = Pin<Box<dyn Stream<Item = Result<pb::FetchResponse, Status>> + Send>>;

impl InletService {
    /// What the caller of `request` may do: everything with authentication off, for nodes
    /// and superusers; else what the grants give it (the owner's, or this node's cached copy).
    async fn access<T>(&self, request: &Request<T>) -> Result<Access, Status> {
        let Some(principal) = Access::limited_to(request.extensions().get::<Caller>()) else {
            return Ok(Access::Everything);
        };
        let grants = match (&self.index, self.routes.cluster()) {
            (Some(index), _) => index.grants(),
            (None, Cluster::Remote(remote)) => remote.grants().await.map_err(status)?,
            (None, Cluster::Owner(_)) => {
                return Err(Status::internal("a node without the index is the owner"));
            }
        };
        Ok(Access::Granted { principal, grants })
    }

    /// Grants (`add`) or revokes a permission at the owner: admin on `*.*` only.
    async fn change_grant(
        &self,
        request: Request<pb::GrantRequest>,
        add: bool,
    ) -> Result<Response<pb::GrantResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    if add {
                        owner.grant(r).await
                    } else {
                        owner.revoke(r).await
                    }
                })
                .await;
        };
        self.access(&request)
            .await?
            .require(Permission::Admin, Target::Everything)?;
        let message = request
            .into_inner()
            .grant
            .ok_or_else(|| Status::invalid_argument("the request names no grant"))?;
        let grant = grant_of(&message).map_err(Status::invalid_argument)?;
        let changed = if add {
            index.grant(grant).await
        } else {
            index.revoke(grant).await
        }
        .map_err(status)?;
        Ok(Response::new(pb::GrantResponse { changed }))
    }

    /// Forwards a catalog or admin request to the index owner.
    async fn to_owner<T, R, F, Fut>(
        &self,
        request: Request<T>,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(InletClient<CredentialedChannel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let request = forward(request, "index")?;
        let (endpoint, owner) = self.routes.owner().await?;
        let result = call(owner, request).await;
        if let Err(failure) = &result
            && failure.code() == tonic::Code::Unavailable
        {
            self.routes.owner_failed(&endpoint);
        }
        result
    }

    /// Forwards a request to a node that runs `role`.
    async fn to_role<T, R, F, Fut>(
        &self,
        request: Request<T>,
        role: &str,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(InletClient<CredentialedChannel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let request = forward(request, role)?;
        let (_, node) = self.routes.with_role(role)?;
        call(node, request).await
    }

    /// Serves an append, upsert or delete here, or forwards it to a writer.
    async fn write(
        &self,
        request: Request<pb::AppendRequest>,
        op: WriteOp,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        let Some(writer) = &self.writer else {
            return self
                .to_role(request, "writer", |mut node, r| async move {
                    match op {
                        WriteOp::Append => node.append(r).await,
                        WriteOp::Upsert | WriteOp::PartialUpsert => node.upsert(r).await,
                        WriteOp::Delete => node.delete(r).await,
                    }
                })
                .await;
        };
        let access = self.access(&request).await?;
        let path = request.get_ref().path.as_ref().ok_or_else(no_table_path)?;
        access.require(Permission::Write, table_target(path))?;
        let bytes = request.get_ref().batches_ipc.len() as u64;
        if let Some(who) = self.quotas.charged(Direction::Produce, &request) {
            self.quotas.throttle(Direction::Produce, &who, bytes).await;
        }
        let started = tokio::time::Instant::now();
        let request = request.into_inner();
        let op = match (op, request.partial) {
            (op, false) => op,
            (WriteOp::Upsert, true) => WriteOp::PartialUpsert,
            (op, true) => {
                return Err(Status::invalid_argument(format!(
                    "`partial` applies to upserts, not to {op:?}"
                )));
            }
        };
        let bytes = request.batches_ipc.len() as u64;
        let result = Self::write_inner(writer, &self.append_schemas, op, request).await;
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

    /// The write itself (append, upsert or delete); `write` wraps it with metrics.
    async fn write_inner(
        writer: &Writer,
        schemas: &SchemaCache,
        op: WriteOp,
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
        writer
            .table(&path.database, &path.table)
            .await
            .map_err(status)?;
        let producer = (request.producer_id != 0).then_some(ProducerRef {
            id: request.producer_id,
            sequence: request.sequence,
        });
        // Decoded zero-copy from the request's own buffer, every length checked first.
        let batches = decode_stream_cached(Buffer::from_vec(request.batches_ipc), schemas)
            .map_err(|e| status(AppendError::MalformedIpc(e.to_string())))?
            .batches;
        let span =
            tracing::debug_span!("write", ?op, database = %path.database, table = %path.table);
        let appended = writer
            .write(&path.database, &path.table, op, &batches, producer)
            .instrument(span)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AppendResponse {
            buckets: appended
                .into_iter()
                .map(|a| pb::BucketAppendResult {
                    partition_id: a.partition.0,
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
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.create_database(r).await
                })
                .await;
        };
        self.access(&request)
            .await?
            .require(Permission::Admin, Target::Database(&request.get_ref().name))?;
        let request = request.into_inner();
        let info = index
            .create_database(&request.name, &request.comment, request.if_not_exists)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateDatabaseResponse {
            database: Some(database_info(info)),
        }))
    }

    async fn list_databases(
        &self,
        request: Request<pb::ListDatabasesRequest>,
    ) -> Result<Response<pb::ListDatabasesResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.list_databases(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let databases = index
            .list_databases()
            .into_iter()
            .filter(|database| access.sees_database(&database.name))
            .map(database_info)
            .collect();
        Ok(Response::new(pb::ListDatabasesResponse { databases }))
    }

    async fn get_database(
        &self,
        request: Request<pb::GetDatabaseRequest>,
    ) -> Result<Response<pb::GetDatabaseResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.get_database(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let name = request.into_inner().name;
        if !access.sees_database(&name) {
            access.require(Permission::Read, Target::Database(&name))?;
        }
        let info = index.database(&name).map_err(status)?;
        Ok(Response::new(pb::GetDatabaseResponse {
            database: Some(database_info(info)),
        }))
    }

    async fn drop_database(
        &self,
        request: Request<pb::DropDatabaseRequest>,
    ) -> Result<Response<pb::DropDatabaseResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.drop_database(r).await
                })
                .await;
        };
        self.access(&request)
            .await?
            .require(Permission::Admin, Target::Database(&request.get_ref().name))?;
        let request = request.into_inner();
        let options = DropOptions {
            if_exists: request.if_exists,
            cascade: request.cascade,
            purge_lake: request.purge,
        };
        index
            .drop_database(&request.name, options)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DropDatabaseResponse {}))
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.create_table(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Admin, table_target(&path))?;
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
            primary_key: descriptor.primary_key,
            comment: descriptor.comment,
            options: descriptor.options.into_iter().collect::<BTreeMap<_, _>>(),
        };
        let mut descriptor = descriptor;
        descriptor
            .options
            .entry(OPTION_LAKE_ENABLED.to_owned())
            .or_insert_with(|| self.lake_by_default.to_string());
        let info = index
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
        let Some(index) = &self.index else {
            return self
                .to_owner(
                    request,
                    |mut owner, r| async move { owner.list_tables(r).await },
                )
                .await;
        };
        let access = self.access(&request).await?;
        let tables = index
            .list_tables(&request.into_inner().database)
            .map_err(status)?
            .iter()
            .filter(|t| access.sees_table(&t.database, &t.name))
            .map(|t| table_message(t))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListTablesResponse { tables }))
    }

    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<pb::GetTableResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(
                    request,
                    |mut owner, r| async move { owner.get_table(r).await },
                )
                .await;
        };
        let access = self.access(&request).await?;
        let path = table_path(request.into_inner().path)?;
        // Producers need the schema as much as consumers do.
        access.require_any(&[Permission::Read, Permission::Write], table_target(&path))?;
        let info = index.table(&path.database, &path.table).map_err(status)?;
        let mut buckets = Vec::new();
        for stream in table_streams(&info) {
            let tail = index.tail(stream).await.map_err(status)?;
            buckets.push(pb::BucketOffsets {
                partition_id: stream.partition.0,
                bucket: stream.bucket.0,
                earliest_offset: tail.earliest_offset.0,
                latest_offset: tail.next_offset.0,
                offset: tail.next_offset.0,
                wal_bytes: tail.wal_bytes,
            });
        }
        Ok(Response::new(pb::GetTableResponse {
            table: Some(table_message(&info)?),
            buckets,
        }))
    }

    async fn create_partitions(
        &self,
        request: Request<pb::CreatePartitionsRequest>,
    ) -> Result<Response<pb::CreatePartitionsResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.create_partitions(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Admin, table_target(&path))?;
        let values = request.partitions.into_iter().map(|p| p.values).collect();
        let (table, ids) = index
            .add_partitions(&path.database, &path.table, values)
            .await
            .map_err(status)?;
        let partitions = ids
            .iter()
            .map(|id| {
                table
                    .partitions
                    .get(*id)
                    .map(partition_message)
                    .ok_or_else(|| {
                        Status::internal(format!(
                            "partition {} was created but is not listed",
                            id.0
                        ))
                    })
            })
            .collect::<Result<_, Status>>()?;
        Ok(Response::new(pb::CreatePartitionsResponse { partitions }))
    }

    async fn drop_partitions(
        &self,
        request: Request<pb::DropPartitionsRequest>,
    ) -> Result<Response<pb::DropPartitionsResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.drop_partitions(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Admin, table_target(&path))?;
        let values = request.partitions.into_iter().map(|p| p.values).collect();
        let (_, dropped) = index
            .drop_partitions(&path.database, &path.table, values, request.if_exists)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DropPartitionsResponse {
            dropped_ids: dropped.iter().map(|id| id.0).collect(),
        }))
    }

    async fn alter_table(
        &self,
        request: Request<pb::AlterTableRequest>,
    ) -> Result<Response<pb::AlterTableResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(
                    request,
                    |mut owner, r| async move { owner.alter_table(r).await },
                )
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Admin, table_target(&path))?;
        let alteration = TableAlteration {
            set_options: request.set_options.into_iter().collect(),
            unset_options: request.unset_options,
            comment: request.comment,
            add_columns: columns_of(&request.add_columns_ipc, "columns to add")?,
            widen_columns: columns_of(&request.widen_columns_ipc, "columns to widen")?,
            rename_columns: request
                .rename_columns
                .into_iter()
                .map(|rename| (rename.from, rename.to))
                .collect(),
            drop_columns: request.drop_columns,
        };
        let info = index
            .alter_table(&path.database, &path.table, alteration)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::AlterTableResponse {
            table: Some(table_message(&info)?),
        }))
    }

    async fn drop_table(
        &self,
        request: Request<pb::DropTableRequest>,
    ) -> Result<Response<pb::DropTableResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(
                    request,
                    |mut owner, r| async move { owner.drop_table(r).await },
                )
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Admin, table_target(&path))?;
        let options = DropOptions {
            if_exists: request.if_exists,
            cascade: false,
            purge_lake: request.purge,
        };
        index
            .drop_table(&path.database, &path.table, options)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DropTableResponse {}))
    }

    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        self.write(request, WriteOp::Append).await
    }

    async fn upsert(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        self.write(request, WriteOp::Upsert).await
    }

    async fn delete(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        self.write(request, WriteOp::Delete).await
    }

    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        let Some(reader) = &self.reader else {
            return self
                .to_role(request, "reader", |mut node, r| async move {
                    node.lookup(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Read, table_target(&path))?;
        if request.keys_ipc.len() > MAX_APPEND_BYTES {
            return Err(Status::invalid_argument(format!(
                "lookup keys of {} bytes exceed the limit of {MAX_APPEND_BYTES} bytes",
                request.keys_ipc.len()
            )));
        }
        let keys = decode_stream_cached(Buffer::from_vec(request.keys_ipc), &self.append_schemas)
            .map_err(|e| {
                Status::invalid_argument(format!("lookup keys are not valid arrow ipc: {e}"))
            })?
            .batches;
        let found = if request.prefix {
            reader
                .lookup_prefix(
                    &path.database,
                    &path.table,
                    &keys,
                    &request.columns,
                    request.limit as usize,
                )
                .await
        } else {
            reader
                .lookup(&path.database, &path.table, &keys, &request.columns)
                .await
        }
        .map_err(status)?;
        let rows_ipc = batches_to_ipc(&found.rows.schema(), &[found.rows])
            .map_err(|e| Status::internal(format!("cannot encode lookup rows: {e}")))?;
        if rows_ipc.len() > MAX_APPEND_BYTES {
            return Err(Status::resource_exhausted(format!(
                "lookup result of {} bytes exceeds the limit of {MAX_APPEND_BYTES} bytes: ask \
                 for fewer keys or columns",
                rows_ipc.len()
            )));
        }
        Ok(Response::new(pb::LookupResponse {
            rows_ipc,
            found: found.found,
            truncated: found.truncated,
        }))
    }

    type FetchStream = FetchStream;

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let Some(reader) = &self.reader else {
            let response = self
                .to_role(request, "reader", |mut node, r| async move {
                    node.fetch(r).await
                })
                .await?;
            let (metadata, stream, extensions) = response.into_parts();
            let stream: FetchStream = Box::pin(stream);
            return Ok(Response::from_parts(metadata, stream, extensions));
        };
        let access = self.access(&request).await?;
        let slot = self.quotas.open_fetch(request.remote_addr())?;
        let charged = self.quotas.charged(Direction::Fetch, &request);
        let started = tokio::time::Instant::now();
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Read, table_target(&path))?;
        let fetch = FetchRequest {
            database: path.database,
            table: path.table,
            partitions: request.partitions,
            buckets: request.buckets,
            start: start_position(request.start),
            columns: request.columns,
            follow: request.follow,
            limit: (request.limit > 0).then_some(request.limit),
            omit_update_before: request.omit_update_before,
            reset_to_earliest: request.reset_to_earliest,
        };
        let batches = reader.fetch(fetch).await.map_err(status)?;
        let requests = self.metrics.requests.clone();
        let quotas = self.quotas.clone();
        let mut first = true;
        let responses = batches.map(move |item| {
            // The stream holds its connection's fetch slot until it ends.
            let _slot = &slot;
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
            Ok::<_, Status>(pb::FetchResponse {
                partition_id: fetched.partition.0,
                bucket: fetched.bucket.0,
                batch_ipc,
                high_watermark: fetched.high_watermark.0,
                snapshot: match fetched.snapshot {
                    SnapshotPart::None => pb::SnapshotPart::None,
                    SnapshotPart::Rows => pb::SnapshotPart::Rows,
                    SnapshotPart::Last => pb::SnapshotPart::Last,
                } as i32,
            })
        });
        // Each batch waits for the principal's fetch rate before it is sent.
        let responses = responses.then(move |response| {
            let throttle = charged.clone().map(|who| (quotas.clone(), who));
            async move {
                if let (Ok(batch), Some((quotas, who))) = (&response, throttle) {
                    let bytes = batch.batch_ipc.len() as u64;
                    quotas.throttle(Direction::Fetch, &who, bytes).await;
                }
                response
            }
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
        let cluster = self.routes.cluster();
        let (index_owner, index_status) = match &self.index {
            Some(index) => match index.stopped() {
                None => (true, "owner".to_owned()),
                Some(reason) => (false, reason.to_string()),
            },
            None => (false, "not the owner (no index role)".to_owned()),
        };
        Ok(Response::new(pb::GetStatusResponse {
            index_owner,
            index_status,
            roles: self.roles.names().into_iter().map(str::to_owned).collect(),
            owner_endpoint: match &self.index {
                Some(_) => self.routes.own_endpoint().to_owned(),
                None => cluster.owner_endpoint().unwrap_or_default(),
            },
            members: cluster.members().iter().map(Member::message).collect(),
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
        let Some(index) = &self.index else {
            return self
                .to_owner(request, |mut owner, r| async move {
                    owner.get_lake_status(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let databases = if request.database.is_empty() {
            index.list_databases().into_iter().map(|d| d.name).collect()
        } else {
            vec![request.database.clone()]
        };
        let mut tables = Vec::new();
        for database in databases {
            if request.table.is_empty() {
                tables.extend(index.list_tables(&database).map_err(status)?);
            } else {
                tables.push(index.table(&database, &request.table).map_err(status)?);
            }
        }
        let now = self.env.clock.now();
        let mut out = Vec::with_capacity(tables.len());
        for table in tables {
            if !request.table.is_empty() {
                access.require(
                    Permission::Read,
                    Target::Table {
                        database: &table.database,
                        table: &table.name,
                    },
                )?;
            } else if !access.sees_table(&table.database, &table.name) {
                continue;
            }
            out.push(
                crate::lake_status::table_lake_status(index, self.lake.as_ref(), &table, now)
                    .await
                    .map_err(status)?,
            );
        }
        Ok(Response::new(pb::GetLakeStatusResponse { tables: out }))
    }

    async fn grant(
        &self,
        request: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::GrantResponse>, Status> {
        self.change_grant(request, true).await
    }

    async fn revoke(
        &self,
        request: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::GrantResponse>, Status> {
        self.change_grant(request, false).await
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let Some(index) = &self.index else {
            return self
                .to_owner(
                    request,
                    |mut owner, r| async move { owner.list_grants(r).await },
                )
                .await;
        };
        self.access(&request)
            .await?
            .require(Permission::Admin, Target::Everything)?;
        Ok(Response::new(pb::ListGrantsResponse {
            grants: index.grants().iter().map(grant_message).collect(),
        }))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let Some(reader) = &self.reader else {
            return self
                .to_role(request, "reader", |mut node, r| async move {
                    node.list_offsets(r).await
                })
                .await;
        };
        let access = self.access(&request).await?;
        let request = request.into_inner();
        let path = table_path(request.path)?;
        access.require(Permission::Read, table_target(&path))?;
        let offsets = reader
            .list_offsets(
                &path.database,
                &path.table,
                &request.partitions,
                &request.buckets,
                start_position(request.position),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListOffsetsResponse {
            buckets: offsets
                .into_iter()
                .map(|o| pb::BucketOffsets {
                    partition_id: o.partition.0,
                    bucket: o.bucket.0,
                    earliest_offset: o.earliest.0,
                    latest_offset: o.latest.0,
                    offset: o.resolved.0,
                    wal_bytes: o.wal_bytes,
                })
                .collect(),
        }))
    }
}
