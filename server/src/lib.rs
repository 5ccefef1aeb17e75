//! The `inlet` binary as a library: configuration, the node that wires the roles it runs
//! into one process (and reaches the others through the store and the index owner), the
//! gRPC service, and the command-line client. `main.rs` only parses
//! arguments and calls in here, so tests run the very same code in-process.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod grpc;
pub mod http;
pub mod iceberg_rest;
pub mod lake_status;
pub mod metrics;
pub mod node;
pub mod quota;
pub mod roles;
pub mod routes;
pub mod store;

/// The gRPC client, a crate of its own so that `inlet-bench` can use it too.
pub use inlet_client as client;
