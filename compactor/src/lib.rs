//! Inlet's compactor: turns the WAL into Apache Iceberg tables in the same bucket, so engines
//! query old data directly (see `../shared/DESIGN.md`, "Compactor and the lake").
//!
//! - [`lake`]: the lake writer: the storage adapter that puts Iceberg files in our object
//!   store, the lake table layout, and the writer that turns a round of rows into Parquet
//!   files and a staged Iceberg commit.
//! - [`service`]: the compactor role, [`Compactor`]: the loop over lake-enabled tables.
//! - [`round`]: one tiering round of one table, committed to the index's lake catalog.
//! - [`repair`]: crash repair when a compactor takes a table's lease.
//! - [`wal_gc`]: deletion of WAL objects no chunk entry points into.
//! - [`options`]: the settings, with their defaults and trade-offs.
//!
//! The commit protocol is described in `docs/lake-commit.md`.

pub mod error;
pub mod lake;
pub mod options;
pub mod repair;
pub mod round;
pub mod service;
pub mod wal_gc;

pub use error::{RoundError, WalGcError};
pub use inlet_index::{LakeCatalog, all_lake_files};
pub use options::{CompactorOptions, Failpoint, FailpointHook, InjectedCrash};
pub use repair::RepairReport;
pub use round::RoundCommitted;
pub use service::{
    Compactor, PartitionUpkeepReport, PassReport, PurgeReport, RoundOutcome, TableRound,
    WalRetentionReport,
};
pub use wal_gc::WalGcReport;
