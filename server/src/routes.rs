//! Where a request goes that this node does not serve itself. Every node answers the whole
//! `Inlet` service, so clients and load balancers need one address: catalog and admin
//! requests go to the index owner, appends to a node with the writer role, fetches and offset
//! lookups to a node with the reader role (round robin over the members the owner reports).
//! A forwarded request carries [`FORWARDED`]; a node that receives one it cannot serve
//! answers FAILED_PRECONDITION instead of forwarding again, so requests never loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use inlet_core::limits::MAX_GRPC_MESSAGE_BYTES;
use inlet_proto::v1::inlet_client::InletClient;
use inlet_security::credential::{AUTHORIZATION, Credential, CredentialedChannel};
use inlet_security::tls::ClientTls;
use inlet_wire::{IndexPortsService, Member, RemoteIndex};
use tonic::Status;

use crate::auth::{Caller, ON_BEHALF_OF};
use tonic::transport::Channel;

/// Metadata key set on a request one node forwards to another.
pub const FORWARDED: &str = "inlet-forwarded";

/// How this node learns the cluster: it is the owner, or it asks one.
#[derive(Clone, Debug)]
pub enum Cluster {
    Owner(IndexPortsService),
    Remote(RemoteIndex),
}

impl Cluster {
    /// Every member, the owner included, as this node knows them.
    pub fn members(&self) -> Vec<Member> {
        match self {
            Cluster::Owner(service) => service.members(),
            Cluster::Remote(remote) => remote.cluster().borrow().members.clone(),
        }
    }

    /// The owner's endpoint, if known.
    pub fn owner_endpoint(&self) -> Option<String> {
        match self {
            Cluster::Owner(_) => None,
            Cluster::Remote(remote) => remote.owner_endpoint(),
        }
    }
}

/// Connections to the other nodes, and the choice among them.
#[derive(Debug)]
pub struct Routes {
    cluster: Cluster,
    /// This node's own endpoint, never a forwarding target.
    own_endpoint: String,
    /// How other members' `https://` endpoints are reached.
    tls: ClientTls,
    /// What this node presents on the calls it forwards.
    credential: Credential,
    channels: Mutex<HashMap<String, Channel>>,
    next: AtomicUsize,
}

impl Routes {
    pub fn new(
        cluster: Cluster,
        own_endpoint: String,
        tls: ClientTls,
        credential: Credential,
    ) -> Self {
        Self {
            cluster,
            own_endpoint,
            tls,
            credential,
            channels: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
        }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// This node's endpoint.
    pub fn own_endpoint(&self) -> &str {
        &self.own_endpoint
    }

    /// A client of the index owner, for catalog and admin requests.
    pub async fn owner(&self) -> Result<(String, InletClient<CredentialedChannel>), Status> {
        match &self.cluster {
            Cluster::Owner(_) => Err(Status::internal(
                "the index owner forwarded a request to itself",
            )),
            Cluster::Remote(remote) => {
                let (endpoint, channel) = remote
                    .owner_channel()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                Ok((endpoint, inlet_client(self.credential.on(channel))))
            }
        }
    }

    /// After a forwarded request found the owner gone, find it again next time.
    pub fn owner_failed(&self, endpoint: &str) {
        if let Cluster::Remote(remote) = &self.cluster {
            remote.forget_owner(endpoint);
        }
    }

    /// A client of a node running `role`, chosen round robin among the members.
    pub fn with_role(
        &self,
        role: &str,
    ) -> Result<(String, InletClient<CredentialedChannel>), Status> {
        let members = self.cluster.members();
        let candidates: Vec<&Member> = members
            .iter()
            .filter(|m| m.roles.iter().any(|r| r == role) && m.endpoint != self.own_endpoint)
            .collect();
        if candidates.is_empty() {
            let known: Vec<String> = members
                .iter()
                .map(|m| format!("{} ({})", m.endpoint, m.roles.join(",")))
                .collect();
            return Err(Status::failed_precondition(format!(
                "this node does not run the {role} role and no node that does has joined the \
                 cluster (members: {})",
                if known.is_empty() {
                    "none known".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        let member = candidates[self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()];
        let channel = self.channel(&member.endpoint)?;
        Ok((
            member.endpoint.clone(),
            inlet_client(self.credential.on(channel)),
        ))
    }

    fn channel(&self, endpoint: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().expect("channels lock");
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let channel = self
            .tls
            .endpoint(endpoint)
            .map_err(|e| Status::internal(format!("member endpoint: {e}")))?
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(endpoint.to_owned(), channel.clone());
        Ok(channel)
    }
}

fn inlet_client(channel: CredentialedChannel) -> InletClient<CredentialedChannel> {
    InletClient::new(channel)
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
}

/// Marks `request` as forwarded, or refuses it if it already was: this node was chosen for a
/// role it does not run (the membership it was chosen from is stale). The caller's own
/// credential stays here: the node presents its own, and names the caller in
/// [`ON_BEHALF_OF`] when it authenticated one.
pub fn forward<T>(mut request: tonic::Request<T>, role: &str) -> Result<tonic::Request<T>, Status> {
    if request.metadata().contains_key(FORWARDED) {
        return Err(Status::failed_precondition(format!(
            "this node does not run the {role} role (a forwarded request reached it)"
        )));
    }
    let caller = request.extensions().get::<Caller>().cloned();
    let metadata = request.metadata_mut();
    metadata.insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    metadata.remove(AUTHORIZATION);
    metadata.remove(ON_BEHALF_OF);
    if let Some(caller) = caller {
        let name = caller
            .principal
            .as_str()
            .parse()
            .map_err(|_| Status::internal("a checked principal is ASCII"))?;
        metadata.insert(ON_BEHALF_OF, name);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_forwarded_once_and_refused_the_second_time() {
        let once = forward(tonic::Request::new(()), "writer").expect("first hop");
        assert!(once.metadata().contains_key(FORWARDED));
        let twice = forward(once, "writer").expect_err("second hop");
        assert_eq!(twice.code(), tonic::Code::FailedPrecondition);
        assert!(
            twice.message().contains("writer role"),
            "{}",
            twice.message()
        );
    }
}
