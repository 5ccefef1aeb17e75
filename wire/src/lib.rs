//! Inlet's index ports over gRPC: the one module that carries the index's ports
//! (`inlet_index::ports`) between processes, so writers, readers and compactors run apart
//! from the index owner.
//!
//! - [`server`]: the owner's `IndexPorts` service over its index, and cluster membership.
//! - [`client`]: [`RemoteIndex`], the ports of a role in another process.
//! - [`convert`]: every conversion between index types and messages, and the page limit.
//! - [`errors`]: index errors as gRPC statuses and back, exactly.
//! - [`memory`]: the same gRPC over in-memory pipes (the simulation).
//! - [`owner`]: finding the owner through the store (`cluster/owner.json`).
//! - [`reader_port`]: a reader's log-read port: history from the index replica, tails from
//!   the owner.
//!
//! `tests/conformance.rs` runs one suite against the in-process index and against
//! [`RemoteIndex`] over a real gRPC server on loopback: they must behave the same.

pub mod client;
pub mod convert;
pub mod errors;
pub mod memory;
pub mod owner;
pub mod reader_port;
pub mod server;

pub use client::{ClusterView, RemoteIndex, RemoteOptions};
pub use owner::{
    OwnerLink, OwnerRecord, OwnerSource, publish_owner, read_owner, wait_until_owner_fails,
};
pub use reader_port::ReaderPort;
pub use server::{IndexPortsService, Member};
