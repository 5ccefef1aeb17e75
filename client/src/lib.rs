//! A small client over the generated gRPC stub, used by the CLI, the tests and `inlet bench`:
//! it turns statuses into one-line errors and Arrow values into IPC bytes. A crate of its own
//! (the server re-exports it as `inlet::client`) so that `inlet-bench` can drive a node
//! through it without depending on the server crate, which depends on the bench.

pub mod text;

use std::time::Duration;

use anyhow::{Context, anyhow};
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::SchemaRef;
use inlet_core::clock::{IdGen, SeededIdGen, SystemClock};
use inlet_core::ipc::{batches_to_ipc, decode_schema, decode_stream, schema_to_ipc};
use inlet_core::limits::MAX_GRPC_MESSAGE_BYTES;
use inlet_proto::v1 as pb;
use inlet_proto::v1::inlet_client::InletClient;
use inlet_security::credential::{Credential, CredentialedChannel};
use inlet_security::tls::ClientTls;

/// A connected client.
#[derive(Clone, Debug)]
pub struct Client {
    inner: InletClient<CredentialedChannel>,
}

/// An error and its causes on one line: a refused TLS handshake says why only in its source
/// (an unknown CA, a missing client certificate).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    with_causes(error.to_string(), error.source())
}

/// `text` followed by each cause its text does not already contain (wrappers often repeat
/// their cause's text in their own).
fn with_causes(mut text: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The one-line message of a failed call, with the causes of a transport failure (a TLS
/// alert from the server says why it refused the connection).
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let text = with_causes(
        status.message().to_owned(),
        std::error::Error::source(&status),
    );
    anyhow!("{text} ({:?})", status.code())
}

/// A table's description as the server returns it.
#[derive(Clone, Debug)]
pub struct Table {
    pub info: pb::TableInfo,
    pub schema: SchemaRef,
    pub buckets: Vec<pb::BucketOffsets>,
}

impl Client {
    /// Connects to `endpoint` (`http://host:port`, or `host:port`), or to an `https://` one
    /// verified against the system's roots.
    pub async fn connect(endpoint: &str) -> anyhow::Result<Self> {
        Self::connect_with(endpoint, &ClientTls::system(), Credential::none()).await
    }

    /// Connects with `tls` (to an `https://` endpoint: verified against its CA, presenting
    /// its client certificate when the server asks for one), presenting `credential` on
    /// every call.
    pub async fn connect_with(
        endpoint: &str,
        tls: &ClientTls,
        credential: Credential,
    ) -> anyhow::Result<Self> {
        let channel = tls
            .endpoint(endpoint)?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| anyhow!("cannot connect to inlet at {endpoint}: {}", error_chain(&e)))?;
        let inner = InletClient::new(credential.on(channel))
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        Ok(Self { inner })
    }

    /// The raw generated client, for calls this wrapper does not cover.
    pub fn raw(&mut self) -> &mut InletClient<CredentialedChannel> {
        &mut self.inner
    }

    pub async fn create_database(&mut self, name: &str, if_not_exists: bool) -> anyhow::Result<()> {
        self.inner
            .create_database(pb::CreateDatabaseRequest {
                name: name.to_owned(),
                comment: String::new(),
                if_not_exists,
            })
            .await
            .map_err(status_error)?;
        Ok(())
    }

    pub async fn create_table(
        &mut self,
        database: &str,
        table: &str,
        schema: &arrow_schema::Schema,
        bucket_count: u32,
        bucket_key: Vec<String>,
        if_not_exists: bool,
    ) -> anyhow::Result<pb::TableInfo> {
        let options = std::collections::BTreeMap::new();
        self.create_table_with_options(
            database,
            table,
            schema,
            bucket_count,
            bucket_key,
            options,
            if_not_exists,
        )
        .await
    }

    /// Creates a table with table options (`lake.enabled`, `lake.freshness`, `retention`).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_table_with_options(
        &mut self,
        database: &str,
        table: &str,
        schema: &arrow_schema::Schema,
        bucket_count: u32,
        bucket_key: Vec<String>,
        options: std::collections::BTreeMap<String, String>,
        if_not_exists: bool,
    ) -> anyhow::Result<pb::TableInfo> {
        // A log table is a table with no primary key.
        self.create_primary_key_table(
            database,
            table,
            schema,
            bucket_count,
            Vec::new(),
            bucket_key,
            options,
            if_not_exists,
        )
        .await
    }

    pub async fn table(&mut self, database: &str, table: &str) -> anyhow::Result<Table> {
        let response = self
            .inner
            .get_table(pb::GetTableRequest {
                path: Some(path(database, table)),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        let info = response
            .table
            .ok_or_else(|| anyhow!("server returned no table"))?;
        let schema_ipc = info
            .descriptor
            .as_ref()
            .map(|d| d.schema_ipc.as_slice())
            .unwrap_or_default();
        let schema = decode_schema(schema_ipc).context("server sent an unreadable schema")?;
        Ok(Table {
            info,
            schema,
            buckets: response.buckets,
        })
    }

    /// Appends batches; returns the offsets per bucket.
    pub async fn append(
        &mut self,
        database: &str,
        table: &str,
        schema: &arrow_schema::Schema,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Vec<pb::BucketAppendResult>> {
        self.write(WriteKind::Append, database, table, schema, batches)
            .await
    }

    /// Creates a primary-key table (`primary_key` non-empty; empty: a log table), bucketed
    /// by `bucket_key` or, when empty, by the primary key; `options` as for any table, plus
    /// `merge.*`.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_primary_key_table(
        &mut self,
        database: &str,
        table: &str,
        schema: &arrow_schema::Schema,
        bucket_count: u32,
        primary_key: Vec<String>,
        bucket_key: Vec<String>,
        options: std::collections::BTreeMap<String, String>,
        if_not_exists: bool,
    ) -> anyhow::Result<pb::TableInfo> {
        let descriptor = pb::TableDescriptor {
            schema_ipc: schema_to_ipc(schema)?,
            bucket_count,
            bucket_key,
            primary_key,
            options: options.into_iter().collect(),
            ..Default::default()
        };
        self.create_table_from(database, table, descriptor, if_not_exists)
            .await
    }

    /// Creates a table as `descriptor` describes it (any kind: log, primary-key,
    /// partitioned).
    pub async fn create_table_from(
        &mut self,
        database: &str,
        table: &str,
        descriptor: pb::TableDescriptor,
        if_not_exists: bool,
    ) -> anyhow::Result<pb::TableInfo> {
        let response = self
            .inner
            .create_table(pb::CreateTableRequest {
                path: Some(path(database, table)),
                descriptor: Some(descriptor),
                if_not_exists,
            })
            .await
            .map_err(status_error)?;
        response
            .into_inner()
            .table
            .ok_or_else(|| anyhow!("server returned no table"))
    }

    /// Upserts rows into a primary-key table; returns their changelog offsets per bucket.
    pub async fn upsert(
        &mut self,
        database: &str,
        table: &str,
        schema: &arrow_schema::Schema,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Vec<pb::BucketAppendResult>> {
        self.write(WriteKind::Upsert, database, table, schema, batches)
            .await
    }

    /// Deletes the keys of `batches` (their primary-key columns) from a primary-key table.
    pub async fn delete(
        &mut self,
        database: &str,
        table: &str,
        schema: &arrow_schema::Schema,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Vec<pb::BucketAppendResult>> {
        self.write(WriteKind::Delete, database, table, schema, batches)
            .await
    }

    /// Appends, upserts or deletes `batches`, as `kind` says, without idempotence.
    pub async fn write(
        &mut self,
        kind: WriteKind,
        database: &str,
        table: &str,
        schema: &arrow_schema::Schema,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Vec<pb::BucketAppendResult>> {
        let request = pb::AppendRequest {
            path: Some(path(database, table)),
            batches_ipc: batches_to_ipc(schema, batches)?,
            ..Default::default()
        };
        Ok(kind
            .call(&mut self.inner, request)
            .await
            .map_err(status_error)?
            .into_inner()
            .buckets)
    }

    /// The current rows of the keys in `keys` (a batch of the primary-key columns), with
    /// `columns` (none: all); returns the rows found and, per key, whether it was.
    pub async fn lookup(
        &mut self,
        database: &str,
        table: &str,
        keys: &RecordBatch,
        columns: &[&str],
    ) -> anyhow::Result<(RecordBatch, Vec<bool>)> {
        let request = pb::LookupRequest {
            path: Some(path(database, table)),
            keys_ipc: batches_to_ipc(&keys.schema(), std::slice::from_ref(keys))?,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        };
        let (rows, found, _) = self.lookup_request(request).await?;
        Ok((rows, found))
    }

    /// Every current row whose bucket key equals one of the values in `prefixes` (a batch of
    /// the bucket-key columns), at most `limit` (0: the server's limit); returns the rows,
    /// per value whether it matched, and whether the limit cut the answer.
    pub async fn lookup_prefix(
        &mut self,
        database: &str,
        table: &str,
        prefixes: &RecordBatch,
        columns: &[&str],
        limit: u32,
    ) -> anyhow::Result<(RecordBatch, Vec<bool>, bool)> {
        let request = pb::LookupRequest {
            path: Some(path(database, table)),
            keys_ipc: batches_to_ipc(&prefixes.schema(), std::slice::from_ref(prefixes))?,
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            prefix: true,
            limit,
        };
        self.lookup_request(request).await
    }

    async fn lookup_request(
        &mut self,
        request: pb::LookupRequest,
    ) -> anyhow::Result<(RecordBatch, Vec<bool>, bool)> {
        let response = self
            .inner
            .lookup(request)
            .await
            .map_err(status_error)?
            .into_inner();
        let stream = decode_stream(Buffer::from(response.rows_ipc.as_slice()))
            .context("server sent unreadable arrow ipc")?;
        let schema = stream.schema.clone();
        let rows = arrow_select::concat::concat_batches(&schema, &stream.batches)?;
        Ok((rows, response.found, response.truncated))
    }

    /// Starts a fetch; the stream yields (bucket, batch) pairs.
    pub async fn fetch(
        &mut self,
        request: pb::FetchRequest,
    ) -> anyhow::Result<tonic::Streaming<pb::FetchResponse>> {
        Ok(self
            .inner
            .fetch(request)
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// Fetches to the end (no follow) and returns every batch.
    pub async fn fetch_all(
        &mut self,
        request: pb::FetchRequest,
    ) -> anyhow::Result<Vec<RecordBatch>> {
        let mut stream = self.fetch(request).await?;
        let mut batches = Vec::new();
        while let Some(response) = stream.message().await.map_err(status_error)? {
            batches.extend(decode_fetched(&response)?);
        }
        Ok(batches)
    }
}

/// Which write RPC a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Append,
    Upsert,
    /// An upsert of the batches' columns only (`AppendRequest.partial`).
    PartialUpsert,
    Delete,
}

impl WriteKind {
    async fn call(
        self,
        client: &mut InletClient<CredentialedChannel>,
        request: pb::AppendRequest,
    ) -> Result<tonic::Response<pb::AppendResponse>, tonic::Status> {
        match self {
            Self::Append => client.append(request).await,
            Self::Upsert => client.upsert(request).await,
            Self::PartialUpsert => {
                let request = pb::AppendRequest {
                    partial: true,
                    ..request
                };
                client.upsert(request).await
            }
            Self::Delete => client.delete(request).await,
        }
    }
}

/// An idempotent producer for one table: every append carries the producer id and the next
/// sequence number, and an append whose outcome is unknown (unavailable, timed out, the
/// connection dropped) is retried with the same sequence number, so it lands exactly once.
#[derive(Debug)]
pub struct Producer {
    client: Client,
    path: pb::TablePath,
    id: u64,
    next_sequence: u64,
    max_attempts: u32,
    backoff: Duration,
    kind: WriteKind,
}

impl Producer {
    /// A producer with a fresh random id (ids only need to be unique among producers).
    pub fn new(client: Client, database: &str, table: &str) -> Self {
        let ids = SeededIdGen::from_entropy(&SystemClock);
        let id = (ids.next_u128() as u64).max(1);
        Self::with_id(client, database, table, id)
    }

    pub fn with_id(client: Client, database: &str, table: &str, id: u64) -> Self {
        Self {
            client,
            path: path(database, table),
            id,
            next_sequence: 1,
            max_attempts: 5,
            backoff: Duration::from_millis(100),
            kind: WriteKind::Append,
        }
    }

    /// This producer's writes go to `kind` (upserts or deletes for a primary-key table).
    pub fn writing(mut self, kind: WriteKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Appends batches exactly once, retrying while the outcome is unknown.
    pub async fn send(
        &mut self,
        schema: &arrow_schema::Schema,
        batches: &[RecordBatch],
    ) -> anyhow::Result<Vec<pb::BucketAppendResult>> {
        let request = pb::AppendRequest {
            path: Some(self.path.clone()),
            batches_ipc: batches_to_ipc(schema, batches)?,
            producer_id: self.id,
            sequence: self.next_sequence,
            partial: self.kind == WriteKind::PartialUpsert,
        };
        // Whatever happens, the next append gets a new sequence number: new rows must never
        // be mistaken for a retry of this append (which may have landed).
        self.next_sequence += 1;
        let mut attempt = 1;
        loop {
            match self
                .kind
                .call(&mut self.client.inner, request.clone())
                .await
            {
                Ok(response) => return Ok(response.into_inner().buckets),
                Err(status) if outcome_unknown(status.code()) && attempt < self.max_attempts => {
                    tracing::warn!(attempt, error = %status.message(), "append failed; retrying");
                    tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                Err(status) => return Err(status_error(status)),
            }
        }
    }
}

/// Codes after which an append may or may not have landed: safe to retry idempotently.
/// `Internal` is included because a connection reset mid-request (e.g. during a server
/// restart) surfaces as an h2 protocol error with that code.
fn outcome_unknown(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::Cancelled
            | tonic::Code::Aborted
    )
}

/// The batches of one fetch response.
pub fn decode_fetched(response: &pb::FetchResponse) -> anyhow::Result<Vec<RecordBatch>> {
    let stream = decode_stream(Buffer::from(response.batch_ipc.as_slice()))
        .context("server sent unreadable arrow ipc")?;
    Ok(stream.batches)
}

pub fn path(database: &str, table: &str) -> pb::TablePath {
    pb::TablePath {
        database: database.to_owned(),
        table: table.to_owned(),
    }
}
