//! What a process presents when it calls an Inlet endpoint: a bearer token in every call's
//! `authorization` metadata, or nothing (TLS client certificates are presented by the
//! connection itself, [`crate::tls::ClientTls`]).

use std::fmt;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The metadata key of a call's credential.
pub const AUTHORIZATION: &str = "authorization";

/// A channel whose every call carries a [`Credential`].
pub type CredentialedChannel = InterceptedService<Channel, Credential>;

/// A bearer token to present, or none.
#[derive(Clone, Default)]
pub struct Credential {
    header: Option<MetadataValue<Ascii>>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token itself.
        let shown = if self.header.is_some() {
            "bearer token"
        } else {
            "none"
        };
        f.debug_tuple("Credential").field(&shown).finish()
    }
}

impl Credential {
    /// Present nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Present `token` as `authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("the token is empty".to_owned());
        }
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| "a token is printable ASCII".to_owned())?;
        Ok(Self {
            header: Some(header),
        })
    }

    /// Present the token in the file at `path` (its only content, surrounding whitespace
    /// ignored).
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        Self::bearer(&text).map_err(|e| format!("token file {}: {e}", path.display()))
    }

    /// `channel` with this credential on every call.
    pub fn on(&self, channel: Channel) -> CredentialedChannel {
        InterceptedService::new(channel, self.clone())
    }
}

impl Interceptor for Credential {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert(AUTHORIZATION, header.clone());
        }
        Ok(request)
    }
}
