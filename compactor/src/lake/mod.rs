//! The lake: each lake-enabled Inlet table as an Iceberg (format v2) table under `lake/` in
//! the store, written with iceberg-rust. Layout in `docs/lake-layout.md`.
//!
//! - [`storage`]: iceberg's file I/O over our object store, and the URL mapping.
//! - [`table`]: the table layout (schema, field ids, partitioning, sort order, metadata files).
//! - [`writer`]: one tiering round, from Arrow rows to a staged commit.
//! - [`expire`]: retention, whole data files older than a cutoff out of the table.

pub mod error;
pub mod expire;
pub mod storage;
pub mod table;
pub mod writer;

pub use error::{LakeError, LakeSchemaError};
pub use expire::{EARLIEST_PROPERTY_PREFIX, ExpiryRule, RemovedFile, StagedExpire, stage_expire};
pub use storage::{LAKE_DIR, LakePathError, LakeRoot, LakeStorage, LakeStorageFactory};
pub use table::{LakeTable, lake_schema, lake_table_path};
pub use writer::{LakeAppend, LakeWriteOptions, StagedAppend};

/// The table's snapshots by id. iceberg-rust keeps them in a `HashMap`, whose order differs
/// from process to process; reading manifest lists in that order would make which request
/// meets an injected fault differ between runs of one simulation seed.
pub(crate) fn snapshots_by_id(
    metadata: &iceberg::spec::TableMetadata,
) -> Vec<&iceberg::spec::SnapshotRef> {
    let mut snapshots: Vec<_> = metadata.snapshots().collect();
    snapshots.sort_by_key(|snapshot| snapshot.snapshot_id());
    snapshots
}
