//! TLS (issue 14, item 1): the one place that reads certificates.
//!
//! - [`TlsSettings`]: the `[tls]` section of `inlet serve` (`--tls-cert`, `--tls-key`,
//!   `--tls-client-ca`, `--tls-ca`), loaded once at start into a [`NodeTls`]: the server
//!   side of both listeners, and the client side of this node's calls to other nodes.
//! - [`ServerTls`]: the gRPC listener's tonic config and the HTTP listener's rustls config,
//!   from the same certificate and key, both requiring a client certificate signed by
//!   `client_ca` when it is set (mTLS).
//! - [`ClientTls`]: how a gRPC connection is made (clients, the CLI, and the roles' calls
//!   to each other): an `https://` endpoint gets TLS, verified against the given CA (or the
//!   system's roots), presenting a client certificate when one is given; `http://` stays
//!   plaintext.
//!
//! Every file is read and checked when the settings load, so a wrong path, a key that does
//! not match its certificate, or a file that holds no certificate stops `inlet serve` at
//! start with the setting and the path named, not at the first handshake.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::principal::Principal;

/// How long a listener waits for a client to finish its TLS handshake before it closes the
/// connection: a client that opens connections and stalls holds nothing beyond this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest PEM file read (a certificate chain or a CA bundle); a bigger file is not one.
pub const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

/// The `[tls]` section: with `cert` and `key`, every listener of the node (gRPC and HTTP)
/// speaks TLS only; with `client_ca` too, every client must present a certificate signed by
/// it. `ca` is what this node trusts when it calls other nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// This node's certificate chain (PEM), presented by both listeners, and to other
    /// nodes that ask for a client certificate. Needs `key`. Default none: plaintext.
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) that sign the client certificates the listeners accept:
    /// clients without one are refused in the handshake (mTLS). Needs `cert`. Default none:
    /// no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
    /// CA certificates (PEM) trusted when this node calls another node over `https://`
    /// (commits, notifications, forwarded requests, the compactor's index calls). Default:
    /// the system's roots.
    pub ca: Option<PathBuf>,
}

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {setting} {path}: {source}")]
    Read {
        setting: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{setting} {path} is {size} bytes; a PEM file is at most {MAX_PEM_BYTES}")]
    TooLarge {
        setting: &'static str,
        path: PathBuf,
        size: u64,
    },
    #[error("{setting} {path} holds no {expected}: {reason}")]
    Invalid {
        setting: &'static str,
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error("{given} is set but {missing} is not: {why}")]
    Incomplete {
        given: &'static str,
        missing: &'static str,
        why: &'static str,
    },
    #[error("the certificate {cert} and the key {key} cannot serve TLS: {reason}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("`{endpoint}` is not an endpoint: {reason}")]
    Endpoint { endpoint: String, reason: String },
}

/// The loaded settings of a node: how it listens and how it calls other nodes.
#[derive(Clone, Debug)]
pub struct NodeTls {
    /// `None`: the listeners are plaintext.
    pub server: Option<ServerTls>,
    /// The node's calls to other nodes.
    pub client: ClientTls,
}

impl NodeTls {
    /// The principal this node's certificate names (`tls.cert`), if any.
    pub fn principal(&self) -> Option<Principal> {
        let identity = self.client.identity.as_ref()?;
        Principal::of_certificate(identity.chain.ders.first()?)
    }

    /// The scheme of this node's endpoints: `https` when it listens with TLS.
    pub fn scheme(&self) -> &'static str {
        if self.server.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

impl TlsSettings {
    /// Reads and checks every file the settings name.
    pub fn load(&self) -> Result<NodeTls, TlsError> {
        let identity = Pem::identity_of(
            self.cert.as_deref(),
            self.key.as_deref(),
            ("tls.cert", "tls.key"),
        )?;
        let client_ca = self
            .client_ca
            .as_deref()
            .map(|path| Pem::certificates("tls.client_ca", path))
            .transpose()?;
        let ca = self
            .ca
            .as_deref()
            .map(|path| Pem::certificates("tls.ca", path))
            .transpose()?;
        let server = match (identity.clone(), client_ca) {
            (Some(identity), client_ca) => Some(ServerTls::new(identity, client_ca)?),
            (None, Some(_)) => {
                return Err(TlsError::Incomplete {
                    given: "tls.client_ca",
                    missing: "tls.cert",
                    why: "client certificates are checked only by a listener that speaks TLS",
                });
            }
            (None, None) => None,
        };
        Ok(NodeTls {
            server,
            client: ClientTls { ca, identity },
        })
    }
}

/// A PEM file, read with its size bounded and its contents checked.
#[derive(Clone)]
struct Pem {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key files are never printed, only where they came from.
        f.debug_struct("Pem").field("path", &self.path).finish()
    }
}

impl Pem {
    fn read(setting: &'static str, path: &Path) -> Result<Self, TlsError> {
        let read_error = |source| TlsError::Read {
            setting,
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_PEM_BYTES {
            return Err(TlsError::TooLarge {
                setting,
                path: path.to_owned(),
                size,
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        Ok(Self {
            path: path.to_owned(),
            bytes,
        })
    }

    /// A file of one or more certificates.
    fn certificates(setting: &'static str, path: &Path) -> Result<Certificates, TlsError> {
        let pem = Self::read(setting, path)?;
        let invalid = |reason: String| TlsError::Invalid {
            setting,
            path: path.to_owned(),
            expected: "PEM certificate",
            reason,
        };
        let ders = CertificateDer::pem_slice_iter(&pem.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        if ders.is_empty() {
            return Err(invalid("no `BEGIN CERTIFICATE` block".to_owned()));
        }
        Ok(Certificates { pem, ders })
    }

    /// A certificate chain and its key when both are given, none when neither is; `names`
    /// (of the certificate, of the key) say which one is missing.
    fn identity_of(
        cert: Option<&Path>,
        key: Option<&Path>,
        names: (&'static str, &'static str),
    ) -> Result<Option<Keyed>, TlsError> {
        let why = "a certificate is used only with its private key";
        match (cert, key) {
            (Some(cert), Some(key)) => Self::identity(cert, key).map(Some),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TlsError::Incomplete {
                given: names.0,
                missing: names.1,
                why,
            }),
            (None, Some(_)) => Err(TlsError::Incomplete {
                given: names.1,
                missing: names.0,
                why,
            }),
        }
    }

    /// A certificate chain and its private key.
    fn identity(cert: &Path, key: &Path) -> Result<Keyed, TlsError> {
        let chain = Self::certificates("tls.cert", cert)?;
        let key_pem = Self::read("tls.key", key)?;
        let key_der =
            PrivateKeyDer::from_pem_slice(&key_pem.bytes).map_err(|e| TlsError::Invalid {
                setting: "tls.key",
                path: key.to_owned(),
                expected: "PEM private key",
                reason: e.to_string(),
            })?;
        Ok(Keyed {
            chain,
            key: key_pem,
            key_der: Arc::new(key_der),
        })
    }
}

/// One or more certificates: the file as read, and each certificate decoded.
#[derive(Clone, Debug)]
struct Certificates {
    pem: Pem,
    ders: Vec<CertificateDer<'static>>,
}

impl Certificates {
    fn roots(&self, setting: &'static str) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for der in &self.ders {
            roots.add(der.clone()).map_err(|e| TlsError::Invalid {
                setting,
                path: self.pem.path.clone(),
                expected: "usable CA certificate",
                reason: e.to_string(),
            })?;
        }
        Ok(roots)
    }
}

/// A certificate chain with its private key.
#[derive(Clone)]
struct Keyed {
    chain: Certificates,
    key: Pem,
    key_der: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for Keyed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("cert", &self.chain.pem.path)
            .field("key", &self.key.path)
            .finish()
    }
}

impl Keyed {
    fn tonic_identity(&self) -> Identity {
        Identity::from_pem(&self.chain.pem.bytes, &self.key.bytes)
    }
}

/// The server side of both listeners.
#[derive(Clone, Debug)]
pub struct ServerTls {
    identity: Keyed,
    client_ca: Option<Certificates>,
    /// The HTTP listener's config, built (and so checked) at load.
    http: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    fn new(identity: Keyed, client_ca: Option<Certificates>) -> Result<Self, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Unusable {
                cert: identity.chain.pem.path.clone(),
                key: identity.key.path.clone(),
                reason: e.to_string(),
            })?;
        let builder = match &client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = ca.roots("tls.client_ca")?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Invalid {
                            setting: "tls.client_ca",
                            path: ca.pem.path.clone(),
                            expected: "usable CA certificate",
                            reason: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut http = builder
            .with_single_cert(identity.chain.ders.clone(), identity.key_der.clone_key())
            .map_err(|e| TlsError::Unusable {
                cert: identity.chain.pem.path.clone(),
                key: identity.key.path.clone(),
                reason: e.to_string(),
            })?;
        http.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            identity,
            client_ca,
            http: Arc::new(http),
        })
    }

    /// The gRPC listener's config.
    pub fn grpc(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(self.identity.tonic_identity())
            .timeout(HANDSHAKE_TIMEOUT);
        match &self.client_ca {
            Some(ca) => config.client_ca_root(Certificate::from_pem(&ca.pem.bytes)),
            None => config,
        }
    }

    /// The HTTP listener's config.
    pub fn http(&self) -> Arc<rustls::ServerConfig> {
        self.http.clone()
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.client_ca.is_some()
    }
}

/// How gRPC connections are made: plaintext to `http://` endpoints, TLS to `https://` ones.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// Trusted CAs; `None`: the system's roots.
    ca: Option<Certificates>,
    /// The client certificate presented when a server asks for one.
    identity: Option<Keyed>,
}

impl ClientTls {
    /// Plaintext endpoints, and `https://` ones verified against the system's roots with no
    /// client certificate.
    pub fn system() -> Self {
        Self::default()
    }

    /// A client's settings from its files (the CLI's `--ca-cert`, `--client-cert`,
    /// `--client-key`): any may be absent, but a certificate needs its key.
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let ca = ca
            .map(|path| Pem::certificates("the CA certificate", path))
            .transpose()?;
        let identity = Pem::identity_of(cert, key, ("the client certificate", "the client key"))?;
        Ok(Self { ca, identity })
    }

    /// An endpoint for `url` (`host:port` means `http://host:port`), with TLS when it is
    /// `https://`. The channel is not connected yet.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, TlsError> {
        let url = endpoint_url(url);
        let invalid = |reason: String| TlsError::Endpoint {
            endpoint: url.clone(),
            reason,
        };
        let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| invalid(e.to_string()))?;
        match endpoint.uri().scheme_str() {
            Some("http") => Ok(endpoint),
            Some("https") => endpoint
                .tls_config(self.tonic_config())
                .map_err(|e| invalid(e.to_string())),
            other => Err(invalid(format!(
                "the scheme is {other:?}; use http:// or https://"
            ))),
        }
    }

    fn tonic_config(&self) -> ClientTlsConfig {
        let config = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem.bytes)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        match &self.identity {
            Some(identity) => config.identity(identity.tonic_identity()),
            None => config,
        }
    }
}

/// An address as a gRPC endpoint URL: `host:port` gets `http://`.
pub fn endpoint_url(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

/// The crypto every TLS config here uses: aws-lc-rs, which the object-store client already
/// brings. Also installed as the process default, for tonic's server side, which asks for it.
fn provider() -> Arc<CryptoProvider> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // Another default installed first is as good (it can only be this one in this binary).
    let _ = CryptoProvider::install_default((*provider).clone());
    provider
}
