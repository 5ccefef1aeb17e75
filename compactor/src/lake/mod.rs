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
pub use expire::{EARLIEST_PROPERTY_PREFIX, RemovedFile, StagedExpire, stage_expire};
pub use storage::{LAKE_DIR, LakePathError, LakeRoot, LakeStorage, LakeStorageFactory};
pub use table::{LakeTable, lake_schema, lake_table_path};
pub use writer::{LakeAppend, LakeWriteOptions, StagedAppend};
