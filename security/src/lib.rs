//! Inlet's security (issue 14): who may connect, and as whom.
//!
//! - [`acl`]: permissions: grants of read, write or admin on `database.table` patterns.
//! - [`tls`]: TLS on both listeners and on every gRPC connection.
//! - [`tokens`]: bearer tokens: how one is made (`inlet token create`), the tokens file that
//!   lists their hashes by principal, reloaded when it changes, and the check of a presented
//!   token.
//! - [`principal`]: the names that calls are made as, from a token or from a client
//!   certificate.
//! - [`credential`]: what a process presents when it calls an Inlet endpoint (a user's
//!   token, or a node's own), added to every call of a channel.

pub mod acl;
pub mod credential;
pub mod principal;
pub mod tls;
pub mod tokens;
