//! Authentication of every call (issue 14, item 2). With `auth.enabled`, every gRPC call and
//! every HTTP request but `/health` must come from a principal: a bearer token listed in
//! `auth.tokens_file`, or a client certificate verified by `tls.client_ca` (its common
//! name). Anything else gets UNAUTHENTICATED (401 on HTTP) with one fixed message that says
//! nothing about what exists.
//!
//! Internal principals (`auth.internal_principals`) are the nodes themselves: only they may
//! call the `IndexPorts` service (commits, tails, leases, lake commits), and only they may
//! name, in `inlet-principal`, the user a forwarded call is made for. A node calls other
//! nodes with its own credential (`auth.token_file`, or a `tls.cert` whose name is internal).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use inlet_core::clock::Clock;
use inlet_core::ids::TimestampMicros;
use inlet_security::acl::{Grants, Permission, Target};
use inlet_security::credential::{AUTHORIZATION, Credential};
use inlet_security::principal::Principal;
use inlet_security::tls::NodeTls;
use inlet_security::tokens::TokensFile;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;

use crate::iceberg_rest::error::RestError;

/// Metadata a node sets on a call it forwards: the principal the call is made for.
pub const ON_BEHALF_OF: &str = "inlet-principal";

/// What a refused caller is told, whatever the reason (no credential, an unknown, expired or
/// revoked token): nothing about which principals or tokens exist.
const UNAUTHENTICATED: &str = "missing or invalid credentials: send `authorization: Bearer \
                               <token>` or a client certificate the server trusts";

/// The `[auth]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Require a principal on every call. Default false: anyone who reaches the node may
    /// call anything.
    pub enabled: bool,
    /// The tokens file (`principal sha256:<hash> [expires=<time>]` per line, made by
    /// `inlet token create`), read again when it changes. Default none: no bearer tokens.
    pub tokens_file: Option<PathBuf>,
    /// The principals that are nodes of this cluster. Default `["inlet"]`.
    pub internal_principals: Vec<String>,
    /// A file holding this node's own token (of an internal principal), presented on its
    /// calls to other nodes. Not needed when its `tls.cert` names an internal principal.
    pub token_file: Option<PathBuf>,
    /// How often the tokens file is checked for changes. Default 2 s.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// Principals that may do anything, grants or not (the first grants are made by one).
    /// Default none.
    pub superusers: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            tokens_file: None,
            internal_principals: vec!["inlet".to_owned()],
            token_file: None,
            reload_interval: Duration::from_secs(2),
            superusers: Vec::new(),
        }
    }
}

/// The caller of a call, in its extensions once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// A node of this cluster.
    pub internal: bool,
    /// One of `auth.superusers`.
    pub superuser: bool,
}

/// What the caller of a call may do (issue 14, item 3).
#[derive(Clone, Debug)]
pub enum Access {
    /// Authentication is off, or the caller is a node or a superuser.
    Everything,
    /// What the grants give this principal.
    Granted {
        principal: Principal,
        grants: Arc<Grants>,
    },
}

impl Access {
    /// The principal whose grants decide what `caller` may do; none when nothing limits it
    /// (authentication is off, or it is a node or a superuser).
    pub fn limited_to(caller: Option<&Caller>) -> Option<Principal> {
        caller
            .filter(|caller| !caller.internal && !caller.superuser)
            .map(|caller| caller.principal.clone())
    }

    /// Refuses unless the caller holds `permission` on `target`: PERMISSION_DENIED naming
    /// the principal, the permission and the resource.
    pub fn require(&self, permission: Permission, target: Target<'_>) -> Result<(), Status> {
        match self {
            Access::Everything => Ok(()),
            Access::Granted { principal, grants } => {
                if grants.allows(principal, permission, target) {
                    Ok(())
                } else {
                    Err(Status::permission_denied(format!(
                        "principal `{principal}` lacks {permission} permission on {target}"
                    )))
                }
            }
        }
    }

    /// Refuses unless the caller holds one of `permissions` on `target`.
    pub fn require_any(
        &self,
        permissions: &[Permission],
        target: Target<'_>,
    ) -> Result<(), Status> {
        if permissions
            .iter()
            .any(|permission| self.require(*permission, target).is_ok())
        {
            return Ok(());
        }
        let names: Vec<String> = permissions.iter().map(Permission::to_string).collect();
        match self {
            Access::Everything => Ok(()),
            Access::Granted { principal, .. } => Err(Status::permission_denied(format!(
                "principal `{principal}` lacks {} permission on {target}",
                names.join(" or ")
            ))),
        }
    }

    /// Whether the caller sees `database` in lists (holds anything in it).
    pub fn sees_database(&self, database: &str) -> bool {
        match self {
            Access::Everything => true,
            Access::Granted { principal, grants } => grants.sees_database(principal, database),
        }
    }

    /// Whether the caller sees `database.table` in lists (holds any permission on it).
    pub fn sees_table(&self, database: &str, table: &str) -> bool {
        self.require_any(
            &[Permission::Read, Permission::Write],
            Target::Table { database, table },
        )
        .is_ok()
    }
}

/// Checks the callers of both listeners. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    /// `None`: authentication is off.
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    tokens: Option<Arc<TokensFile>>,
    /// Whether verified client certificates name principals.
    certificates: bool,
    internal: BTreeSet<Principal>,
    superusers: BTreeSet<Principal>,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    /// Authentication as `settings` say, for a node with `tls`; also returns the credential
    /// the node presents to other nodes. `needs_credential`: whether this node calls other
    /// nodes (it does not run every role). While `stopped` is false the tokens file is
    /// checked for changes.
    pub fn start(
        settings: &AuthSettings,
        tls: &NodeTls,
        needs_credential: bool,
        clock: Arc<dyn Clock>,
        stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<(Self, Credential)> {
        let credential = match &settings.token_file {
            Some(path) => Credential::from_file(path).map_err(anyhow::Error::msg)?,
            None => Credential::none(),
        };
        if !settings.enabled {
            return Ok((Self::default(), credential));
        }
        let certificates = tls
            .server
            .as_ref()
            .is_some_and(|server| server.requires_client_certificates());
        if settings.tokens_file.is_none() && !certificates {
            anyhow::bail!(
                "auth.enabled needs a way to name callers: auth.tokens_file (bearer tokens) \
                 and/or tls.client_ca (client certificates)"
            );
        }
        let internal = principals(&settings.internal_principals, "auth.internal_principals")?;
        let superusers = principals(&settings.superusers, "auth.superusers")?;
        let own_principal = tls.principal();
        if needs_credential
            && settings.token_file.is_none()
            && !own_principal.as_ref().is_some_and(|p| internal.contains(p))
        {
            anyhow::bail!(
                "auth is on and this node calls other nodes, but has no internal credential: \
                 set auth.token_file to a token of one of auth.internal_principals ({}), or \
                 use a tls.cert whose name is one (its name: {})",
                names(&internal),
                own_principal.map_or("none".to_owned(), |p| p.to_string())
            );
        }
        let tokens = settings
            .tokens_file
            .as_deref()
            .map(|path| TokensFile::open(path).map(Arc::new))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        if let Some(tokens) = &tokens {
            tokio::spawn(reload(tokens.clone(), settings.reload_interval, stopped));
        }
        let inner = Inner {
            tokens,
            certificates,
            internal,
            superusers,
            clock,
        };
        Ok((
            Self {
                inner: Some(Arc::new(inner)),
            },
            credential,
        ))
    }

    /// The interceptor of the `Inlet` service: any principal; a call forwarded by a node is
    /// made as the principal the node names.
    pub fn users(&self) -> UsersOnly {
        UsersOnly(self.clone())
    }

    /// The interceptor of the internal services: internal principals only.
    pub fn nodes(&self) -> NodesOnly {
        NodesOnly(self.clone())
    }

    /// The HTTP listener's check, as an axum middleware: `/health` is open, everything else
    /// needs a bearer token (what Iceberg REST clients send) or, under mTLS, the verified
    /// client certificate of the connection. A refusal is the Iceberg REST error model.
    pub async fn http(State(auth): State<Authenticator>, request: Request, next: Next) -> Response {
        let Some(inner) = &auth.inner else {
            return next.run(request).await;
        };
        if request.uri().path() == "/health" {
            return next.run(request).await;
        }
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let certificate = request
            .extensions()
            .get::<Arc<axum_server::tls::TlsInfo>>()
            .and_then(|tls| tls.peer_certificates.first())
            .and_then(|der| Principal::of_certificate(&CertificateDer::from(der.as_slice())));
        match inner.caller(given, certificate) {
            Ok(caller) => {
                let mut request = request;
                request.extensions_mut().insert(caller);
                next.run(request).await
            }
            Err(status) => (
                [(header::WWW_AUTHENTICATE, "Bearer")],
                RestError::NotAuthorized(status.message().to_owned()),
            )
                .into_response(),
        }
    }
}

impl Inner {
    /// The principal of a bearer token in `authorization` (`Bearer <token>`), or of a
    /// verified client certificate.
    fn caller(
        &self,
        authorization: Option<&str>,
        certificate: Option<Principal>,
    ) -> Result<Caller, Status> {
        let principal = match (authorization, &self.tokens) {
            (Some(value), Some(tokens)) => {
                let token = value
                    .strip_prefix("Bearer ")
                    .ok_or_else(|| Status::unauthenticated(UNAUTHENTICATED))?;
                let now = system_time(self.clock.now());
                match tokens.tokens().authenticate(token.trim(), now) {
                    Ok(principal) => principal.clone(),
                    Err(refusal) => {
                        tracing::info!(?refusal, "refused a bearer token");
                        return Err(Status::unauthenticated(UNAUTHENTICATED));
                    }
                }
            }
            _ => certificate
                .filter(|_| self.certificates)
                .ok_or_else(|| Status::unauthenticated(UNAUTHENTICATED))?,
        };
        Ok(self.named(principal))
    }

    /// `principal` as a caller: internal, a superuser, or neither.
    fn named(&self, principal: Principal) -> Caller {
        Caller {
            internal: self.internal.contains(&principal),
            superuser: self.superusers.contains(&principal),
            principal,
        }
    }

    fn grpc_caller(&self, request: &tonic::Request<()>) -> Result<Caller, Status> {
        let certificate = request
            .peer_certs()
            .and_then(|chain| chain.first().and_then(Principal::of_certificate));
        self.caller(authorization(request.metadata()), certificate)
    }
}

/// A clock reading as the time tokens expire at.
pub fn system_time(now: TimestampMicros) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(u64::try_from(now.0).unwrap_or(0))
}

fn authorization(metadata: &MetadataMap) -> Option<&str> {
    metadata.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// The principals a setting lists, each checked.
fn principals(names: &[String], setting: &str) -> anyhow::Result<BTreeSet<Principal>> {
    names
        .iter()
        .map(|name| Principal::new(name).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()
        .with_context(|| format!("in {setting}"))
}

fn names(principals: &BTreeSet<Principal>) -> String {
    principals
        .iter()
        .map(Principal::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the `Inlet` service's callers.
#[derive(Clone, Debug)]
pub struct UsersOnly(Authenticator);

impl Interceptor for UsersOnly {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let Some(inner) = self.0.inner.clone() else {
            return Ok(request);
        };
        let caller = inner.grpc_caller(&request)?;
        let on_behalf_of = request
            .metadata()
            .get(ON_BEHALF_OF)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let caller = match on_behalf_of {
            None => caller,
            Some(name) if caller.internal => {
                let principal = Principal::new(&name).map_err(|e| {
                    Status::invalid_argument(format!("{ON_BEHALF_OF} is not a principal: {e}"))
                })?;
                inner.named(principal)
            }
            Some(_) => {
                return Err(Status::permission_denied(format!(
                    "principal `{}` may not set {ON_BEHALF_OF}: only nodes forward calls",
                    caller.principal
                )));
            }
        };
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Checks the internal services' callers.
#[derive(Clone, Debug)]
pub struct NodesOnly(Authenticator);

impl Interceptor for NodesOnly {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let Some(inner) = self.0.inner.clone() else {
            return Ok(request);
        };
        let caller = inner.grpc_caller(&request)?;
        if !caller.internal {
            return Err(Status::permission_denied(format!(
                "principal `{}` may not call the internal IndexPorts service: it is for the \
                 nodes of the cluster (auth.internal_principals)",
                caller.principal
            )));
        }
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Reads the tokens file again every `interval` until the node stops.
async fn reload(tokens: Arc<TokensFile>, interval: Duration, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        match tokens.reload() {
            Ok(true) => tracing::info!(
                file = %tokens.path().display(),
                tokens = tokens.tokens().len(),
                "tokens file reloaded"
            ),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "tokens file not reloaded; the tokens in force stay")
            }
        }
    }
}
