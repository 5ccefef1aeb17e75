//! Where the index owner is, found through the store alone: the owner publishes its
//! advertised gRPC address and epoch in `cluster/owner.json` once it holds the index, and
//! every other node reads that record, connects, and reads it again when the owner stops
//! answering (after a takeover the record names the new owner). No other service is needed
//! to find each other.
//!
//! The record is a hint, not a lock: SlateDB's fencing decides who owns the index. A node
//! that reaches a fenced owner gets "fenced" errors and reads the record again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use inlet_index::IndexError;
use inlet_security::credential::Credential;
use inlet_security::tls::ClientTls;
pub use inlet_security::tls::endpoint_url;
use serde::{Deserialize, Serialize};
use slatedb::object_store::path::Path;
use slatedb::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tonic::transport::Channel;

/// Object that names the current index owner, beside `index/` in the store.
pub const OWNER_RECORD_PATH: &str = "cluster/owner.json";

/// Largest owner record read from the store; a bigger object is not one we wrote.
const MAX_OWNER_RECORD_BYTES: usize = 64 * 1024;

/// How long a connection attempt to the owner may take before the call fails (and the record
/// is read again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The published owner of the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// gRPC endpoint other nodes use, e.g. `http://10.0.0.5:7070`.
    pub endpoint: String,
    /// Increases with every owner that published itself: 1 for the first.
    pub epoch: u64,
    /// The owner's node id (random per process start).
    pub node_id: String,
    /// When the owner published this record, microseconds since the epoch.
    pub since_micros: i64,
}

/// The owner record in `store`, if any owner ever published one.
pub async fn read_owner(store: &dyn ObjectStore) -> Result<Option<OwnerRecord>, IndexError> {
    let path = Path::from(OWNER_RECORD_PATH);
    let bytes = match store.get(&path).await {
        Ok(result) => {
            if result.meta.size > MAX_OWNER_RECORD_BYTES as u64 {
                return Err(IndexError::Storage(format!(
                    "{OWNER_RECORD_PATH} is {} bytes; an owner record is at most \
                     {MAX_OWNER_RECORD_BYTES}",
                    result.meta.size
                )));
            }
            result
                .bytes()
                .await
                .map_err(|e| IndexError::Unavailable(format!("cannot read {path}: {e}")))?
        }
        Err(slatedb::object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return Err(IndexError::Unavailable(format!(
                "cannot read {OWNER_RECORD_PATH}: {e}"
            )));
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        IndexError::Storage(format!("{OWNER_RECORD_PATH} is not an owner record: {e}"))
    })
}

/// Publishes this process as the owner: called once it holds the index (SlateDB fenced any
/// previous owner), so the epoch it writes is above every earlier owner's.
pub async fn publish_owner(
    store: &dyn ObjectStore,
    endpoint: &str,
    node_id: &str,
    now_micros: i64,
) -> Result<OwnerRecord, IndexError> {
    let previous = read_owner(store).await?;
    let record = OwnerRecord {
        endpoint: endpoint_url(endpoint),
        epoch: previous.map_or(1, |p| p.epoch + 1),
        node_id: node_id.to_owned(),
        since_micros: now_micros,
    };
    let bytes = serde_json::to_vec_pretty(&record)
        .map_err(|e| IndexError::Storage(format!("cannot encode the owner record: {e}")))?;
    store
        .put(
            &Path::from(OWNER_RECORD_PATH),
            PutPayload::from(Bytes::from(bytes)),
        )
        .await
        .map_err(|e| IndexError::Unavailable(format!("cannot write {OWNER_RECORD_PATH}: {e}")))?;
    tracing::info!(endpoint = %record.endpoint, epoch = record.epoch, "published as index owner");
    Ok(record)
}

/// How a node finds the owner.
#[derive(Clone, Debug)]
pub enum OwnerSource {
    /// Always this endpoint (`inlet compactor --server`, tests).
    Fixed(String),
    /// The record in this store.
    Store(Arc<dyn ObjectStore>),
    /// This channel, already made (an in-memory transport, `memory.rs`).
    Channel(Channel),
}

/// A connection to the current owner, found again after it fails.
#[derive(Debug)]
pub struct OwnerLink {
    source: OwnerSource,
    /// How the owner's `https://` endpoint is reached.
    tls: ClientTls,
    /// What this node presents on its calls to the owner.
    credential: Credential,
    current: Mutex<Option<(String, Channel)>>,
}

impl OwnerLink {
    pub fn new(source: OwnerSource, tls: ClientTls, credential: Credential) -> Self {
        Self {
            source,
            tls,
            credential,
            current: Mutex::new(None),
        }
    }

    /// The owner's endpoint and a channel to it, finding the owner first if needed. The
    /// channel connects lazily: a dead owner shows up as the call's error.
    pub async fn channel(&self) -> Result<(String, Channel), IndexError> {
        if let Some(current) = self.current.lock().expect("owner link lock").clone() {
            return Ok(current);
        }
        let endpoint = match &self.source {
            OwnerSource::Channel(channel) => {
                return Ok(("in-memory".to_owned(), channel.clone()));
            }
            OwnerSource::Fixed(endpoint) => endpoint_url(endpoint),
            OwnerSource::Store(store) => match read_owner(store.as_ref()).await? {
                Some(record) => record.endpoint,
                None => {
                    return Err(IndexError::Unavailable(format!(
                        "no index owner has published itself in the store yet \
                         ({OWNER_RECORD_PATH} is missing): start a node with the index role"
                    )));
                }
            },
        };
        let channel = self
            .tls
            .endpoint(&endpoint)
            .map_err(|e| IndexError::Unavailable(format!("index owner: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        let mut current = self.current.lock().expect("owner link lock");
        let current = current.get_or_insert((endpoint, channel));
        Ok(current.clone())
    }

    /// What this node presents on its calls to the owner.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The endpoint in use, if the owner was found.
    pub fn endpoint(&self) -> Option<String> {
        self.current
            .lock()
            .expect("owner link lock")
            .as_ref()
            .map(|(endpoint, _)| endpoint.clone())
    }

    /// Forgets the owner at `endpoint` after a call to it failed without an answer, so the
    /// next call finds the owner again.
    pub fn forget(&self, endpoint: &str) {
        let mut current = self.current.lock().expect("owner link lock");
        if current.as_ref().is_some_and(|(e, _)| e == endpoint) {
            *current = None;
        }
    }
}

/// How often a standby asks the owner whether it is alive.
pub const STANDBY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Checks in a row the owner must fail (not answer, or answer that it stopped) before a
/// standby takes over: one lost packet must not depose a healthy owner. A standby that takes
/// over a live owner anyway (a partition) is safe: SlateDB fences the old one.
pub const TAKEOVER_AFTER_FAILED_CHECKS: u32 = 3;

/// A standby's wait: returns once no owner has published itself, or the published owner has
/// failed [`TAKEOVER_AFTER_FAILED_CHECKS`] checks in a row. The caller then opens the index,
/// which fences whatever owner might still run.
pub async fn wait_until_owner_fails(
    store: &dyn ObjectStore,
    tls: &ClientTls,
    credential: &Credential,
) -> Result<(), IndexError> {
    let mut failed = 0;
    loop {
        let Some(record) = read_owner(store).await? else {
            return Ok(());
        };
        match owner_alive(&record.endpoint, tls, credential).await {
            Ok(()) => {
                if failed > 0 {
                    tracing::info!(endpoint = %record.endpoint, "the index owner answers again");
                }
                failed = 0;
            }
            Err(reason) => {
                failed += 1;
                tracing::warn!(endpoint = %record.endpoint, %reason, failed, "the index owner failed a check");
                if failed >= TAKEOVER_AFTER_FAILED_CHECKS {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(STANDBY_CHECK_INTERVAL).await;
    }
}

/// Whether the owner at `endpoint` answers and still holds the index.
async fn owner_alive(
    endpoint: &str,
    tls: &ClientTls,
    credential: &Credential,
) -> Result<(), String> {
    let channel = tls
        .endpoint(endpoint)
        .map_err(|e| e.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let reply = inlet_proto::v1::index_ports_client::IndexPortsClient::new(credential.on(channel))
        .alive(inlet_proto::v1::AliveRequest {})
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?
        .into_inner();
    if reply.serving {
        Ok(())
    } else {
        Err(format!("owner {} stopped serving", reply.node_id))
    }
}
