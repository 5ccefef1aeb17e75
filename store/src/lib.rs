//! Inlet's object-store wrappers. Every crate takes an `Arc<dyn ObjectStore>`; these wrap one
//! without changing what it does:
//!
//! - [`InstrumentedStore`] counts requests and payload bytes per [`Purpose`] and [`Op`], so the
//!   cost of each purpose (WAL puts, chunk gets, the index, the lake) shows in the metrics
//!   ([`StoreSnapshot::render_prometheus`]) and in benchmarks ([`StoreSnapshot::since`]).
//! - [`FaultStore`] injects transient errors, timeouts after a write took effect, dropped
//!   responses and latency from a seeded generator, for tests and the simulation.
//! - [`ProbeStore`] logs the PUTs and GETs a test caused, holds chosen requests at a [`Gate`]
//!   and fails chosen ones by a [`Script`], so tests need no `ObjectStore` wrapper of their own.
//! - [`prices::S3_STANDARD`] prices those requests, for `inlet status` and benchmarks.
//!
//! The wrappers sit on the store opened on the root of the Inlet layout, so paths start with `wal/`,
//! `index/` or `lake/` (see [`Purpose::of`]). The object-store types are SlateDB's re-export,
//! so their version never drifts from the index's.

mod fault;
mod instrumented;
mod metrics;
pub mod prices;
mod probe;
mod purpose;

pub use fault::{
    FAULT_STORE_NAME, FaultConfig, FaultControl, FaultCounts, FaultKind, FaultStore, InjectedFault,
};
pub use instrumented::InstrumentedStore;
pub use metrics::{OpCounts, StoreMetrics, StoreSnapshot};
pub use probe::{
    Gate, Matcher, PROBE_STORE_NAME, ProbeControl, ProbeStore, Request, Script, Served, Step,
    matching,
};
pub use purpose::{Op, OpKind, Purpose};
