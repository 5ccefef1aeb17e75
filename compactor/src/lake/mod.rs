//! The lake: each lake-enabled Inlet table as an Iceberg (format v2) table under `lake/` in
//! the store, written with iceberg-rust. Layout in `docs/lake-layout.md`.
//!
//! - [`storage`]: iceberg's file I/O over our object store, and the URL mapping.
//! - [`table`]: the table layout (schema, field ids, partitioning, sort order, metadata files).
//! - [`writer`]: one tiering round, from Arrow rows to a staged commit.
//! - [`expire`]: retention, whole data files older than a cutoff out of the table.
//! - [`compact`]: small-file compaction, runs of small data files rewritten into large ones.
//! - [`version`]: the next version of a table, snapshot retention and what it frees.

pub mod compact;
pub mod error;
pub mod expire;
pub mod storage;
pub mod table;
pub(crate) mod version;
pub mod writer;

pub use compact::{CompactionRule, RewrittenGroup, StagedRewrite, choose_groups, stage_rewrite};
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

/// The manifests a manifest list names.
pub(crate) async fn read_manifest_list(
    file_io: &iceberg::io::FileIO,
    location: &str,
    format_version: iceberg::spec::FormatVersion,
) -> Result<Vec<iceberg::spec::ManifestFile>, LakeError> {
    let bytes = file_io.new_input(location)?.read().await?;
    Ok(
        iceberg::spec::ManifestList::parse_with_version(&bytes, format_version)?
            .consume_entries()
            .into_iter()
            .collect(),
    )
}

/// Deletes `files` (URLs); one already gone is not an error, so it can be retried.
pub(crate) async fn delete_all(
    file_io: &iceberg::io::FileIO,
    files: &[String],
) -> Result<(), LakeError> {
    for file in files {
        file_io.delete(file).await?;
    }
    Ok(())
}
