//! The remote side: [`RemoteIndex`] implements the index's ports ([`CommitLog`], [`LogRead`],
//! [`LakeCatalog`]) for a role in another process than the owner, over the owner's
//! `IndexPorts` service.
//!
//! - Reads are idempotent: one the owner did not answer is retried against the owner found
//!   again (a takeover moves it) for up to [`RemoteOptions::read_retry`].
//! - Commits travel on one ordered stream, so a writer's commits are applied in the order it
//!   submitted them, as in process. A commit whose reply is lost (the stream broke) has an
//!   unknown outcome and is reported so; it is never resent here (the client resends
//!   idempotently).
//! - Tails are pushed: one `WatchStream` per followed stream, resumed after a takeover.
//! - The node keeps a `Join` open: it is a member while it runs, and every catalog change the
//!   owner makes durable drops the tables cached here.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inlet_core::ids::{Offset, PartitionId, StreamId, TableId, TimestampMicros, WalObjectId};
use inlet_core::limits::{COMMIT_QUEUE_DEPTH, MAX_GRPC_MESSAGE_BYTES};
use inlet_core::table::TableInfo;
use inlet_index::keys::CodecError;
use inlet_index::pk::{ChangeRecord, KeyState, LakeRow, check_key};
use inlet_index::records::decode_record;
use inlet_index::{
    CatalogError, ChunkEntry, ChunkRejected, CommitLog, CommitReply, CommitRequest,
    DroppedPartition, DroppedTable, IndexError, KEY_SCAN_PAGE_ENTRIES, KeyScan, LakeCatalog,
    LakeCommit, LakeCommitError, LakeCommitted, LakeFileEntry, LakeLease, LakeTableRecord,
    LakeWatermark, LogRead, PartitionCatalog, PendingCommit, Purged, ScannedKey, StreamTail,
    WalExpired,
};
use inlet_proto::v1 as pb;
use inlet_proto::v1::index_ports_client::IndexPortsClient;
use inlet_security::acl::Grants;
use inlet_security::credential::{Credential, CredentialedChannel};
use inlet_security::tls::ClientTls;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::convert::{
    commit_message, commit_reply_of, decode_entries, grant_of, lake_commit_message,
    lake_committed_of, lease_message, page_request, stream_ref, table_from_message, wal_expired_of,
    wal_object,
};
use crate::errors::{index_error, lake_error};
use crate::owner::{OwnerLink, OwnerSource};
use crate::server::Member;

/// How a remote port reaches the owner, and behaves when the owner does not answer.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// How long a read keeps trying to reach an owner (found again each time) before it fails
    /// as unavailable. Covers a takeover: a new owner needs a few seconds to open the index.
    pub read_retry: Duration,
    /// How an `https://` owner is reached (the node's `[tls]` client side).
    pub tls: ClientTls,
    /// What this node presents on its calls (`auth.token_file`).
    pub credential: Credential,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            read_retry: Duration::from_secs(10),
            tls: ClientTls::system(),
            credential: Credential::none(),
        }
    }
}

/// First and largest pause between attempts to reach the owner.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// What this node knows of the cluster, from its `Join`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Whether the `Join` stream to the owner is open now.
    pub connected: bool,
    /// The owner's endpoint while connected.
    pub owner: Option<String>,
    /// Every member, the owner included, as of the last event.
    pub members: Vec<Member>,
}

/// The index ports of an owner in another process.
#[derive(Clone, Debug)]
pub struct RemoteIndex {
    inner: Arc<Inner>,
    /// How long this handle's reads keep trying (see [`RemoteOptions::read_retry`]).
    read_retry: Duration,
}

#[derive(Debug)]
struct Inner {
    link: OwnerLink,
    /// Tables looked up by name; only kept while a `Join` tells us of catalog changes.
    tables: Mutex<HashMap<(String, String), Arc<TableInfo>>>,
    tails: Mutex<HashMap<StreamId, watch::Sender<StreamTail>>>,
    /// The permission grants; like `tables`, only kept while a `Join` tells us of changes.
    grants: Mutex<Option<Arc<Grants>>>,
    /// Counts [`Inner::forget_catalog`]: a cache filled from an answer older than the last
    /// count would keep what the catalog no longer says.
    catalog_generation: AtomicU64,
    commits: tokio::sync::Mutex<Option<Arc<CommitSession>>>,
    next_commit: AtomicU64,
    cluster: watch::Sender<ClusterView>,
    closed: watch::Sender<bool>,
}

impl RemoteIndex {
    /// Ports of the owner found through `source`. With `member`, this node joins the cluster
    /// (it shows in every node's status, and cached tables follow catalog changes);
    /// without, it is a plain client that caches nothing.
    pub fn connect(source: OwnerSource, member: Option<Member>, options: RemoteOptions) -> Self {
        let inner = Arc::new(Inner {
            link: OwnerLink::new(source, options.tls, options.credential),
            tables: Mutex::new(HashMap::new()),
            tails: Mutex::new(HashMap::new()),
            grants: Mutex::new(None),
            catalog_generation: AtomicU64::new(0),
            commits: tokio::sync::Mutex::new(None),
            next_commit: AtomicU64::new(1),
            cluster: watch::Sender::new(ClusterView::default()),
            closed: watch::Sender::new(false),
        });
        if let Some(member) = member {
            tokio::spawn(run_join(Arc::downgrade(&inner), member));
        }
        Self {
            inner,
            read_retry: options.read_retry,
        }
    }

    /// Every permission grant: cached while this node hears of catalog changes, asked of the
    /// owner otherwise.
    pub async fn grants(&self) -> Result<Arc<Grants>, IndexError> {
        if let Some(grants) = self.inner.grants.lock().expect("grants lock").clone() {
            return Ok(grants);
        }
        let generation = self.inner.catalog_generation.load(Ordering::SeqCst);
        let reply = self
            .read(|mut client| async move { client.list_grants(pb::ListGrantsRequest {}).await })
            .await?;
        let grants = reply
            .grants
            .iter()
            .map(grant_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IndexError::Storage(format!("the owner sent a grant that is not: {e}")))?;
        let grants = Arc::new(Grants::new(grants));
        let mut cached = self.inner.grants.lock().expect("grants lock");
        // Not if the catalog changed while the owner answered: that answer may predate it.
        if self.caching() && self.inner.catalog_generation.load(Ordering::SeqCst) == generation {
            *cached = Some(grants.clone());
        }
        Ok(grants)
    }

    /// The same ports, whose reads fail at once when the owner does not answer (for callers
    /// that have somewhere else to read from).
    pub fn without_retry(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            read_retry: Duration::ZERO,
        }
    }

    /// The stream's tail as last pushed by the owner, if this node follows the stream.
    pub fn known_tail(&self, stream: StreamId) -> Option<StreamTail> {
        let tails = self.inner.tails.lock().expect("tails lock");
        tails
            .get(&stream)
            .filter(|sender| !sender.is_closed())
            .map(|sender| *sender.borrow())
    }

    /// Follows the stream starting from `initial` (a tail known durable), without asking the
    /// owner first: for a node that cannot reach it now. The owner's pushes take over once it
    /// answers.
    pub fn subscribe_at(
        &self,
        stream: StreamId,
        initial: StreamTail,
    ) -> watch::Receiver<StreamTail> {
        let mut tails = self.inner.tails.lock().expect("tails lock");
        if let Some(sender) = tails.get(&stream)
            && !sender.is_closed()
        {
            return sender.subscribe();
        }
        let sender = watch::Sender::new(initial);
        let receiver = sender.subscribe();
        tails.insert(stream, sender.clone());
        tokio::spawn(run_watch(Arc::downgrade(&self.inner), stream, sender));
        receiver
    }

    /// Ports of the owner at `endpoint`, without joining (a standalone compactor, tools).
    pub fn fixed(endpoint: &str) -> Self {
        Self::connect(
            OwnerSource::Fixed(endpoint.to_owned()),
            None,
            RemoteOptions::default(),
        )
    }

    /// This node's view of the cluster, updated on every event from the owner.
    pub fn cluster(&self) -> watch::Receiver<ClusterView> {
        self.inner.cluster.subscribe()
    }

    /// The owner's endpoint, if it was found.
    pub fn owner_endpoint(&self) -> Option<String> {
        self.inner.link.endpoint()
    }

    /// The owner's endpoint and a channel to it (found through the store if needed), for
    /// requests a node forwards to the owner.
    pub async fn owner_channel(&self) -> Result<(String, Channel), IndexError> {
        self.inner.link.channel().await
    }

    /// Forgets the owner at `endpoint` after a forwarded request found it gone.
    pub fn forget_owner(&self, endpoint: &str) {
        self.inner.link.forget(endpoint);
    }

    /// Stops following tails (followers end) and leaves the cluster.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
        self.inner.tails.lock().expect("tails lock").clear();
    }

    async fn client(&self) -> Result<(String, IndexPortsClient<CredentialedChannel>), IndexError> {
        let (endpoint, channel) = self.inner.link.channel().await?;
        Ok((
            endpoint,
            ports_client(self.inner.link.credential().on(channel)),
        ))
    }

    /// Runs an idempotent read, retrying while the owner does not answer (see the module docs).
    async fn read<T, F, Fut>(&self, call: F) -> Result<T, IndexError>
    where
        F: Fn(IndexPortsClient<CredentialedChannel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + self.read_retry;
        let mut pause = RETRY_FIRST;
        loop {
            let error = match self.client().await {
                Ok((endpoint, client)) => match call(client).await {
                    Ok(response) => return Ok(response.into_inner()),
                    Err(status) => {
                        let error = index_error(&status, &endpoint);
                        if !owner_gone(&error) {
                            return Err(error);
                        }
                        self.inner.link.forget(&endpoint);
                        error
                    }
                },
                Err(error) => error,
            };
            if tokio::time::Instant::now() + pause > deadline || self.is_closed() {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Runs a call that must not be repeated here (its outcome matters); a failure without
    /// an answer makes the owner be found again for the next call.
    async fn once<T, F, Fut>(&self, call: F) -> Result<T, (String, tonic::Status)>
    where
        F: FnOnce(IndexPortsClient<CredentialedChannel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let (endpoint, client) = self
            .client()
            .await
            .map_err(|e| (String::new(), tonic::Status::unavailable(e.to_string())))?;
        match call(client).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => {
                if owner_gone(&index_error(&status, &endpoint)) {
                    self.inner.link.forget(&endpoint);
                }
                Err((endpoint, status))
            }
        }
    }

    fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    fn caching(&self) -> bool {
        self.inner.cluster.borrow().connected
    }

    /// The commit stream to the current owner, opened if there is none or it broke.
    async fn commit_session(&self) -> Result<Arc<CommitSession>, IndexError> {
        let mut current = self.inner.commits.lock().await;
        if let Some(session) = current.as_ref()
            && !session.is_dead()
        {
            return Ok(session.clone());
        }
        let (endpoint, mut client) = self.client().await?;
        let (requests, outbound) = mpsc::channel(COMMIT_QUEUE_DEPTH);
        let replies = match client.commit(ReceiverStream::new(outbound)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                let error = index_error(&status, &endpoint);
                if owner_gone(&error) {
                    self.inner.link.forget(&endpoint);
                }
                return Err(error);
            }
        };
        let session = Arc::new(CommitSession {
            endpoint,
            requests,
            state: Mutex::new(SessionState::default()),
        });
        tokio::spawn(run_commit_replies(
            session.clone(),
            replies,
            Arc::downgrade(&self.inner),
        ));
        *current = Some(session.clone());
        Ok(session)
    }
}

fn ports_client(channel: CredentialedChannel) -> IndexPortsClient<CredentialedChannel> {
    IndexPortsClient::new(channel)
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
}

/// Whether an error means this owner cannot serve us any more (unreachable, stopped, fenced),
/// so the owner must be found again.
fn owner_gone(error: &IndexError) -> bool {
    matches!(
        error,
        IndexError::Unavailable(_) | IndexError::Stopped { .. } | IndexError::Fenced
    )
}

/// One ordered commit stream to one owner.
#[derive(Debug)]
struct CommitSession {
    endpoint: String,
    requests: mpsc::Sender<pb::WalCommit>,
    state: Mutex<SessionState>,
}

#[derive(Debug, Default)]
struct SessionState {
    /// Replies not yet received, by request id.
    pending: HashMap<u64, Waiter>,
    /// The stream broke: every pending commit was answered "unknown".
    dead: bool,
}

impl CommitSession {
    fn is_dead(&self) -> bool {
        self.state.lock().expect("commit session lock").dead
    }

    fn lost(&self) -> IndexError {
        IndexError::Unavailable(format!(
            "the connection to index owner {} broke before the commit's reply; its outcome \
             is unknown",
            self.endpoint
        ))
    }
}

/// A commit waiting for its reply, and how many chunks it asked for.
#[derive(Debug)]
struct Waiter {
    reply: oneshot::Sender<CommitReply>,
    chunks: usize,
}

/// A reply must hold one outcome per chunk; anything else is a broken owner.
fn checked(reply: CommitReply, chunks: usize) -> CommitReply {
    match reply {
        Ok(outcomes) if outcomes.len() != chunks => Err(IndexError::Storage(format!(
            "the owner answered a commit of {chunks} chunks with {} outcomes",
            outcomes.len()
        ))),
        reply => reply,
    }
}

/// Receives commit replies and hands each to its waiter; when the stream ends, every commit
/// still waiting learns that its outcome is unknown.
async fn run_commit_replies(
    session: Arc<CommitSession>,
    mut replies: tonic::Streaming<pb::WalCommitReply>,
    inner: std::sync::Weak<Inner>,
) {
    while let Ok(Some(reply)) = replies.message().await {
        let waiter = session
            .state
            .lock()
            .expect("commit session lock")
            .pending
            .remove(&reply.id);
        let reply = commit_reply_of(reply);
        if stale_tables(&reply)
            && let Some(inner) = inner.upgrade()
        {
            inner.forget_catalog();
        }
        if let Some(Waiter {
            reply: waiter,
            chunks,
        }) = waiter
        {
            let _ = waiter.send(checked(reply, chunks));
        }
    }
    let pending = {
        let mut state = session.state.lock().expect("commit session lock");
        state.dead = true;
        std::mem::take(&mut state.pending)
    };
    for (_, waiter) in pending {
        let _ = waiter.reply.send(Err(session.lost()));
    }
}

/// Whether a commit was refused because the writer's table was stale.
fn stale_tables(reply: &CommitReply) -> bool {
    reply.as_ref().is_ok_and(|outcomes| {
        outcomes.iter().any(|outcome| {
            matches!(
                outcome,
                Err(ChunkRejected::TableDropped { .. } | ChunkRejected::SchemaChanged { .. })
            )
        })
    })
}

impl Inner {
    /// Drops what this node cached of the catalog (tables, grants): it changed, or this node
    /// can no longer hear when it does.
    fn forget_catalog(&self) {
        let mut grants = self.grants.lock().expect("grants lock");
        self.catalog_generation.fetch_add(1, Ordering::SeqCst);
        *grants = None;
        self.tables.lock().expect("tables lock").clear();
    }
}

/// Keeps this node's `Join` open while the port lives, finding the owner again whenever the
/// stream ends.
async fn run_join(inner: std::sync::Weak<Inner>, member: Member) {
    let mut pause = RETRY_FIRST;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let mut closed = strong.closed.subscribe();
        if *closed.borrow() {
            return;
        }
        let remote = RemoteIndex {
            inner: strong,
            read_retry: Duration::ZERO,
        };
        let joined = match remote.client().await {
            Ok((endpoint, mut client)) => match client.join(member.message()).await {
                Ok(events) => Some((endpoint, events.into_inner())),
                Err(status) => {
                    remote.inner.link.forget(&endpoint);
                    tracing::debug!(%endpoint, %status, "cannot join the cluster");
                    None
                }
            },
            Err(error) => {
                tracing::debug!(%error, "no index owner to join");
                None
            }
        };
        if let Some((endpoint, mut events)) = joined {
            pause = RETRY_FIRST;
            loop {
                tokio::select! {
                    biased;
                    _ = closed.wait_for(|closed| *closed) => return,
                    event = events.message() => match event {
                        Ok(Some(event)) => {
                            remote.inner.forget_catalog();
                            remote.inner.cluster.send_replace(ClusterView {
                                connected: true,
                                owner: Some(endpoint.clone()),
                                members: event.members.into_iter().map(Member::of).collect(),
                            });
                        }
                        Ok(None) | Err(_) => break,
                    },
                }
            }
            tracing::info!(%endpoint, "lost the index owner; looking for it again");
            remote.inner.link.forget(&endpoint);
            remote.inner.forget_catalog();
            remote
                .inner
                .cluster
                .send_modify(|view| *view = ClusterView::default());
        }
        drop(remote);
        tokio::select! {
            biased;
            _ = closed.wait_for(|closed| *closed) => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Follows one stream's state from the owner into `sender` while anyone subscribes, resuming
/// with the owner found again after a failure. The tail never moves backwards.
async fn run_watch(
    inner: std::sync::Weak<Inner>,
    stream: StreamId,
    sender: watch::Sender<StreamTail>,
) {
    let mut pause = RETRY_FIRST;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let remote = RemoteIndex {
            inner: strong,
            read_retry: Duration::ZERO,
        };
        let watched = match remote.client().await {
            Ok((endpoint, mut client)) => match client.watch_stream(stream_ref(stream)).await {
                Ok(states) => Some((endpoint, states.into_inner())),
                Err(status) => {
                    remote.inner.link.forget(&endpoint);
                    tracing::debug!(%endpoint, %status, "cannot watch a stream");
                    None
                }
            },
            Err(_) => None,
        };
        drop(remote);
        if let Some((endpoint, mut states)) = watched {
            loop {
                tokio::select! {
                    biased;
                    _ = sender.closed() => return,
                    state = states.message() => match state {
                        Ok(Some(state)) => {
                            pause = RETRY_FIRST;
                            if let Ok(tail) = StreamTail::decode(&state.tail) {
                                sender.send_if_modified(|current| {
                                    let newer = tail.next_offset >= current.next_offset
                                        && tail != *current;
                                    if newer {
                                        *current = tail;
                                    }
                                    newer
                                });
                            }
                        }
                        Ok(None) | Err(_) => break,
                    },
                }
            }
            if let Some(strong) = inner.upgrade() {
                strong.link.forget(&endpoint);
            }
        }
        tokio::select! {
            biased;
            _ = sender.closed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

#[async_trait::async_trait]
impl PartitionCatalog for RemoteIndex {
    async fn add_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError> {
        change_remote_partitions(self, database, name, values, false).await
    }

    async fn drop_partitions(
        &self,
        database: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError> {
        change_remote_partitions(self, database, name, values, true).await
    }
}

#[async_trait::async_trait]
impl CommitLog for RemoteIndex {
    fn stopped(&self) -> Option<IndexError> {
        self.is_closed().then(|| IndexError::Stopped {
            reason: "remote index port closed".to_owned(),
        })
    }

    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        remote_table(self, database, name).await
    }

    async fn table_from_owner(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        owner_table(self, database, name).await
    }

    async fn submit_commit(&self, request: CommitRequest) -> Result<PendingCommit, IndexError> {
        if let Some(error) = CommitLog::stopped(self) {
            return Err(error);
        }
        let session = self.commit_session().await?;
        let id = self.inner.next_commit.fetch_add(1, Ordering::Relaxed);
        let (reply, receiver) = oneshot::channel();
        {
            let mut state = session.state.lock().expect("commit session lock");
            if state.dead {
                return Err(session.lost());
            }
            let chunks = request.chunks.len();
            state.pending.insert(id, Waiter { reply, chunks });
        }
        if session
            .requests
            .send(commit_message(id, &request))
            .await
            .is_err()
        {
            session
                .state
                .lock()
                .expect("commit session lock")
                .pending
                .remove(&id);
            return Err(session.lost());
        }
        let lost = session.lost();
        Ok(PendingCommit::new(receiver, move || lost))
    }
}

/// Asks the owner for the partitions of `database.name` with `values`, creating the missing
/// ones, or with `drop` to drop those that exist. Retried like a read: adding partitions that
/// exist, or dropping those that do not, changes nothing.
async fn change_remote_partitions(
    remote: &RemoteIndex,
    database: &str,
    name: &str,
    values: Vec<Vec<String>>,
    drop: bool,
) -> Result<(Arc<TableInfo>, Vec<PartitionId>), CatalogError> {
    let request = pb::CreatePartitionsRequest {
        path: Some(pb::TablePath {
            database: database.to_owned(),
            table: name.to_owned(),
        }),
        partitions: values
            .into_iter()
            .map(|values| pb::PartitionValues { values })
            .collect(),
    };
    let reply = match drop {
        false => {
            remote
                .read(|mut client| {
                    let request = request.clone();
                    async move { client.add_partitions(request).await }
                })
                .await?
        }
        true => {
            let request = pb::DropPartitionsRequest {
                path: request.path,
                partitions: request.partitions,
                if_exists: true,
            };
            remote
                .read(|mut client| {
                    let request = request.clone();
                    async move { client.drop_partitions(request).await }
                })
                .await?
        }
    };
    // The cached table lacks the new partitions; the next use asks the owner.
    remote
        .inner
        .tables
        .lock()
        .expect("tables lock")
        .remove(&(database.to_owned(), name.to_owned()));
    let missing = reply.missing();
    match (reply.table, missing) {
        (Some(table), _) => Ok((
            Arc::new(table_from_message(table)?),
            reply.ids.into_iter().map(PartitionId).collect(),
        )),
        (None, pb::table_lookup::Missing::Database) => Err(CatalogError::DatabaseNotFound {
            database: database.to_owned(),
        }),
        (None, pb::table_lookup::Missing::Table) => Err(CatalogError::TableNotFound {
            database: database.to_owned(),
            table: name.to_owned(),
        }),
        (None, pb::table_lookup::Missing::Nothing) => Err(CatalogError::PartitionsRefused {
            table: format!("{database}.{name}"),
            reason: reply.refused,
        }),
    }
}

/// [`remote_table`] past the cache: the cached `database.name` is dropped first, so the owner
/// is asked (and its answer cached).
async fn owner_table(
    remote: &RemoteIndex,
    database: &str,
    name: &str,
) -> Result<Arc<TableInfo>, CatalogError> {
    let key = (database.to_owned(), name.to_owned());
    remote
        .inner
        .tables
        .lock()
        .expect("tables lock")
        .remove(&key);
    remote_table(remote, database, name).await
}

async fn remote_table(
    remote: &RemoteIndex,
    database: &str,
    name: &str,
) -> Result<Arc<TableInfo>, CatalogError> {
    let key = (database.to_owned(), name.to_owned());
    if let Some(table) = remote.inner.tables.lock().expect("tables lock").get(&key) {
        return Ok(table.clone());
    }
    let caching = remote.caching();
    let path = pb::TablePath {
        database: database.to_owned(),
        table: name.to_owned(),
    };
    let lookup = remote
        .read(|mut client| {
            let path = path.clone();
            async move { client.lookup_table(path).await }
        })
        .await?;
    let missing = lookup.missing();
    match (lookup.table, missing) {
        (Some(table), _) => {
            let table = Arc::new(table_from_message(table)?);
            if caching {
                remote
                    .inner
                    .tables
                    .lock()
                    .expect("tables lock")
                    .insert(key, table.clone());
            }
            Ok(table)
        }
        (None, pb::table_lookup::Missing::Database) => Err(CatalogError::DatabaseNotFound {
            database: database.to_owned(),
        }),
        (None, _) => Err(CatalogError::TableNotFound {
            database: database.to_owned(),
            table: name.to_owned(),
        }),
    }
}

#[async_trait::async_trait]
impl LogRead for RemoteIndex {
    fn stopped(&self) -> Option<IndexError> {
        CommitLog::stopped(self)
    }

    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        remote_table(self, database, name).await
    }

    async fn table_from_owner(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        owner_table(self, database, name).await
    }

    async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        if let Some(tail) = self.known_tail(stream) {
            return Ok(tail);
        }
        Ok(LakeCatalog::stream_state(self, stream).await?.0)
    }

    async fn subscribe(&self, stream: StreamId) -> Result<watch::Receiver<StreamTail>, IndexError> {
        if let Some(error) = LogRead::stopped(self) {
            return Err(error);
        }
        if let Some(sender) = self.inner.tails.lock().expect("tails lock").get(&stream)
            && !sender.is_closed()
        {
            return Ok(sender.subscribe());
        }
        // Start from the owner's current tail, so a subscriber never sees less than what was
        // durable when it subscribed.
        let (tail, _) = LakeCatalog::stream_state(self, stream).await?;
        Ok(self.subscribe_at(stream, tail))
    }

    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        LakeCatalog::chunks(self, stream, from, max).await
    }

    async fn offset_for_timestamp(
        &self,
        stream: StreamId,
        ts: TimestampMicros,
    ) -> Result<Offset, IndexError> {
        let request = pb::OffsetForTimestampRequest {
            stream: Some(stream_ref(stream)),
            timestamp_micros: ts.0,
        };
        let reply = self
            .read(|mut client| async move { client.offset_for_timestamp(request).await })
            .await?;
        Ok(Offset(reply.offset))
    }

    async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        Ok(LakeCatalog::stream_state(self, stream).await?.1)
    }

    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        LakeCatalog::lake_files(self, stream, from, max).await
    }

    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<ChangeRecord>, IndexError> {
        let request = pb::ChangeRecordRequest {
            stream: Some(stream_ref(stream)),
            end_offset: end.0,
        };
        let reply = self
            .read(|mut client| async move { client.get_change_record(request).await })
            .await?;
        if reply.record.is_empty() {
            return Ok(None);
        }
        Ok(Some(ChangeRecord::decode(&reply.record)?))
    }

    async fn lookup_prefix(
        &self,
        stream: StreamId,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<KeyState>, IndexError> {
        let request = pb::LookupPrefixRequest {
            stream: Some(stream_ref(stream)),
            prefix: prefix.to_vec(),
            max: u32::try_from(max).unwrap_or(u32::MAX),
        };
        let reply = self
            .read(|mut client| {
                let request = request.clone();
                async move { client.lookup_prefix(request).await }
            })
            .await?;
        if reply.values.len() > max {
            return Err(IndexError::Storage(format!(
                "owner answered a prefix lookup of at most {max} rows with {}",
                reply.values.len()
            )));
        }
        reply
            .values
            .iter()
            .map(|value| Ok(KeyState::decode(&value.state)?))
            .collect()
    }

    /// One reply stream of the owner: one iterator of its database, so one point.
    async fn scan_keys(&self, stream: StreamId) -> Result<KeyScan, IndexError> {
        use futures::StreamExt;

        let mut replies = self
            .read(|mut client| async move { client.scan_keys(stream_ref(stream)).await })
            .await?;
        let failed = |status: tonic::Status| index_error(&status, "the index owner");
        let bounds = replies.message().await.map_err(failed)?.ok_or_else(|| {
            IndexError::Storage("the owner ended a key scan before its bounds".to_owned())
        })?;
        if bounds.low > bounds.high {
            return Err(IndexError::Storage(format!(
                "the owner's key scan of {stream} has bounds {}..{}",
                bounds.low, bounds.high
            )));
        }
        let pages = replies.map(move |reply| {
            let page = reply.map_err(failed)?;
            if page.keys.len() != page.states.len() || page.keys.len() > KEY_SCAN_PAGE_ENTRIES {
                return Err(IndexError::Storage(format!(
                    "the owner's key scan page of {stream} has {} keys and {} states (at most \
                     {KEY_SCAN_PAGE_ENTRIES})",
                    page.keys.len(),
                    page.states.len()
                )));
            }
            page.keys
                .into_iter()
                .zip(page.states)
                .map(|(key, state)| {
                    check_key(&key)?;
                    Ok(ScannedKey {
                        key,
                        state: KeyState::decode(&state)?,
                    })
                })
                .collect()
        });
        Ok(KeyScan {
            low: Offset(bounds.low),
            high: Offset(bounds.high),
            pages: Box::pin(pages),
        })
    }

    /// Asks the owner, which reads what is durable.
    async fn lookup(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<KeyState>>, IndexError> {
        self.ask_per_key(
            stream,
            keys,
            "lookup",
            |mut client, request| async move { client.lookup_keys(request).await },
            KeyState::decode,
        )
        .await
    }
}

impl RemoteIndex {
    /// Asks the owner about each of `keys` of `stream` with `call` (an RPC taking a
    /// `LookupKeysRequest` and answering one value per key, in order; empty for none), and
    /// decodes each value; `what` names the request in the error when the owner answered
    /// another count.
    async fn ask_per_key<T, F, Fut>(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
        what: &str,
        call: F,
        decode: impl Fn(&[u8]) -> Result<T, CodecError>,
    ) -> Result<Vec<Option<T>>, IndexError>
    where
        F: Fn(IndexPortsClient<CredentialedChannel>, pb::LookupKeysRequest) -> Fut,
        Fut: std::future::Future<
                Output = Result<tonic::Response<pb::LookupKeysReply>, tonic::Status>,
            >,
    {
        let request = pb::LookupKeysRequest {
            stream: Some(stream_ref(stream)),
            keys: keys.to_vec(),
        };
        let reply = self.read(|client| call(client, request.clone())).await?;
        decode_per_key(reply, keys.len(), what, decode)
    }
}

/// The value per requested key of `reply`, decoded (see [`RemoteIndex::ask_per_key`]).
fn decode_per_key<T>(
    reply: pb::LookupKeysReply,
    keys: usize,
    what: &str,
    decode: impl Fn(&[u8]) -> Result<T, CodecError>,
) -> Result<Vec<Option<T>>, IndexError> {
    if reply.values.len() != keys {
        return Err(IndexError::Storage(format!(
            "owner answered a {what} of {keys} keys with {} values",
            reply.values.len()
        )));
    }
    reply
        .values
        .into_iter()
        .map(|value| {
            if value.state.is_empty() {
                Ok(None)
            } else {
                Ok(Some(decode(&value.state)?))
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl LakeCatalog for RemoteIndex {
    async fn tables(&self) -> Result<Vec<Arc<TableInfo>>, IndexError> {
        let response =
            self.read(|mut client| async move {
                client.list_all_tables(pb::ListAllTablesRequest {}).await
            })
            .await?;
        response
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
            .read(|mut client| async move { client.get_stream_state(stream_ref(stream)).await })
            .await?;
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
        let entries =
            self.read(|mut client| async move {
                client.list_chunks(page_request(stream, from, max)).await
            })
            .await?;
        decode_entries(entries, ChunkEntry::decode)
    }

    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        let entries = self
            .read(|mut client| async move {
                client
                    .list_lake_files(page_request(stream, from, max))
                    .await
            })
            .await?;
        decode_entries(entries, LakeFileEntry::decode)
    }

    async fn lake_table(&self, table: TableId) -> Result<Option<LakeTableRecord>, IndexError> {
        let record = self
            .read(|mut client| async move {
                client
                    .get_lake_table(pb::TableRef { table_id: table.0 })
                    .await
            })
            .await?
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
        let request = pb::AcquireLakeLeaseRequest {
            table_id: table.0,
            owner,
            ttl_micros: u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX),
        };
        let lease = self
            .once(|mut client| async move { client.acquire_lake_lease(request).await })
            .await
            .map_err(|(endpoint, status)| lake_error(&status, &endpoint))?;
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
        let request = pb::ReleaseLakeLeaseRequest {
            table_id: table.0,
            lease: Some(lease_message(lease)),
        };
        self.once(|mut client| async move { client.release_lake_lease(request).await })
            .await
            .map_err(|(endpoint, status)| lake_error(&status, &endpoint))?;
        Ok(())
    }

    async fn commit_lake(&self, commit: LakeCommit) -> Result<LakeCommitted, LakeCommitError> {
        let request = lake_commit_message(&commit);
        let response = self
            .once(|mut client| async move { client.commit_lake(request).await })
            .await
            .map_err(|(endpoint, status)| lake_error(&status, &endpoint))?;
        Ok(lake_committed_of(response)?)
    }

    async fn expire_wal(&self, table: TableId) -> Result<WalExpired, IndexError> {
        // Idempotent: a repeated call expires only what is due then.
        let response = self
            .read(|mut client| async move {
                client.expire_wal(pb::TableRef { table_id: table.0 }).await
            })
            .await?;
        wal_expired_of(response)
    }

    async fn dropped_tables(&self) -> Result<Vec<DroppedTable>, IndexError> {
        let response = self
            .read(|mut client| async move {
                client
                    .list_dropped_tables(pb::ListDroppedTablesRequest {})
                    .await
            })
            .await?;
        Ok(response
            .tables
            .into_iter()
            .map(|t| DroppedTable {
                id: TableId(t.table_id),
                database: t.database,
                name: t.name,
                dropped_at: TimestampMicros(t.dropped_at_micros),
                purge_lake: t.purge_lake,
            })
            .collect())
    }

    async fn dropped_partitions(&self) -> Result<Vec<DroppedPartition>, IndexError> {
        let response = self
            .read(|mut client| async move {
                client
                    .list_dropped_partitions(pb::ListDroppedPartitionsRequest {})
                    .await
            })
            .await?;
        Ok(response
            .partitions
            .into_iter()
            .map(|p| DroppedPartition {
                table: TableId(p.table_id),
                partition: PartitionId(p.partition_id),
                name: p.name,
                dropped_at: TimestampMicros(p.dropped_at_micros),
            })
            .collect())
    }

    async fn purge_partition(
        &self,
        table: TableId,
        partition: PartitionId,
    ) -> Result<Purged, IndexError> {
        // Idempotent: a repeated call deletes what is left then.
        let request = pb::PartitionRef {
            table_id: table.0,
            partition_id: partition.0,
        };
        let response = self
            .read(|mut client| async move { client.purge_partition(request).await })
            .await?;
        Ok(Purged {
            entries: usize::try_from(response.entries).unwrap_or(usize::MAX),
            done: response.done,
        })
    }

    async fn purge_table(&self, table: TableId) -> Result<Purged, IndexError> {
        // Idempotent: a repeated call deletes what is left then.
        let response = self
            .read(|mut client| async move {
                client.purge_table(pb::TableRef { table_id: table.0 }).await
            })
            .await?;
        Ok(Purged {
            entries: usize::try_from(response.entries).unwrap_or(usize::MAX),
            done: response.done,
        })
    }

    async fn live_wal_objects(&self) -> Result<BTreeSet<WalObjectId>, IndexError> {
        let response = self
            .read(|mut client| async move {
                client
                    .list_live_wal_objects(pb::ListLiveWalObjectsRequest {})
                    .await
            })
            .await?;
        response
            .objects
            .iter()
            .map(|bytes| wal_object(bytes).map_err(IndexError::Storage))
            .collect()
    }

    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<ChangeRecord>, IndexError> {
        LogRead::change_record(self, stream, end).await
    }

    async fn lake_rows(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<LakeRow>>, IndexError> {
        self.ask_per_key(
            stream,
            keys,
            "lake-row lookup",
            |mut client, request| async move { client.lookup_lake_rows(request).await },
            LakeRow::decode,
        )
        .await
    }
}
