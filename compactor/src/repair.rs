//! Crash repair of one lake table, run each time a compactor takes the table's lease (and
//! after any round of its own that failed), before it tiers anything.
//!
//! The index's metadata pointer is the truth; everything else under the table's folder is
//! made to agree with it:
//!
//! - the version hint is rewritten to name the committed version (a crash between the index
//!   commit and the hint leaves it one version behind);
//! - *orphans* are deleted: objects under the table location that the committed metadata
//!   does not reference (the current metadata file and its metadata log, every snapshot's
//!   manifest list, their manifests and live data files, the version hint) and that the index's
//!   lake file entries do not name, once older than the orphan grace. A round that crashed
//!   before its index commit is thereby rolled back; its rows are still in the WAL below
//!   the unchanged watermark and are tiered again. Data files a committed expiry removed
//!   (listed as DELETED in a manifest, gone from the index) are orphans too, so a crash
//!   before the expiry deleted them only delays their deletion. See `docs/lake-commit.md`;
//! - the index's watermarks are checked against the current snapshot's summary: they are
//!   written in one batch with the pointer, so a difference means corruption and tiering of
//!   the table halts.
//!
//! Deleting is safe against other compactors: only the lease holder commits, this compactor
//! holds the lease, and it read the pointer after taking it, so nothing it deletes can become
//! referenced later (a deposed holder's in-flight round is fenced at its commit).

use std::collections::BTreeSet;

use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::spec::ManifestList;
use inlet_core::clock::Env;
use inlet_core::ids::Offset;
use inlet_core::table::TableInfo;
use inlet_index::{LakeTableRecord, table_streams};

use inlet_index::{LakeCatalog, all_lake_files};
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

use crate::error::RoundError;
use crate::lake::table::VERSION_HINT_FILE;
use crate::lake::{LakeStorage, LakeTable, lake_table_path};

/// What a repair found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Objects under the table location the committed metadata references.
    pub referenced: usize,
    /// Unreferenced objects deleted.
    pub orphans_deleted: usize,
    /// Unreferenced objects kept because they are younger than the orphan grace.
    pub orphans_kept: usize,
    /// Whether the version hint was (re)written.
    pub version_hint_published: bool,
}

/// Repairs the lake table of `info` as described in the module docs. Returns the committed
/// table (`None` if the index has no metadata for it yet) and what was done. The caller must
/// hold the table's lease.
pub(crate) async fn repair(
    index: &dyn LakeCatalog,
    storage: &LakeStorage,
    info: &TableInfo,
    record: Option<&LakeTableRecord>,
    orphan_grace: std::time::Duration,
    env: &Env,
) -> Result<(Option<LakeTable>, RepairReport), RoundError> {
    let mut report = RepairReport::default();
    let location = ObjectPath::from(lake_table_path(&info.database, &info.name, info.id));
    let table = match record.and_then(|r| r.metadata_location.as_deref()) {
        Some(metadata_location) => {
            let ident = TableIdent::from_strs([info.database.as_str(), info.name.as_str()])?;
            Some(LakeTable::load(storage, ident, metadata_location).await?)
        }
        None => None,
    };
    let mut referenced = BTreeSet::new();
    if let Some(table) = &table {
        check_watermarks(index, info, table).await?;
        referenced = referenced_objects(index, storage, info, table).await?;
        table.publish_version_hint().await?;
        report.version_hint_published = true;
    }
    report.referenced = referenced.len();

    let now = env.clock.now().0;
    let grace = i64::try_from(orphan_grace.as_micros()).unwrap_or(i64::MAX);
    let store = storage.store();
    let listed: Vec<_> = store
        .list(Some(&location))
        .try_collect()
        .await
        .map_err(|e| RoundError::storage("list", &location, e))?;
    for object in listed {
        if referenced.contains(&object.location) {
            continue;
        }
        let age = now.saturating_sub(object.last_modified.timestamp_micros());
        if age < grace {
            report.orphans_kept += 1;
            continue;
        }
        match store.delete(&object.location).await {
            Ok(()) | Err(slatedb::object_store::Error::NotFound { .. }) => {
                report.orphans_deleted += 1;
            }
            Err(error) => return Err(RoundError::storage("delete", &object.location, error)),
        }
    }
    if report.orphans_deleted > 0 {
        tracing::info!(
            table = info.id.0,
            deleted = report.orphans_deleted,
            kept = report.orphans_kept,
            "lake table repaired: orphan files deleted"
        );
    }
    Ok((table, report))
}

/// Checks that the index's watermark of every bucket is the one the lake's current snapshot
/// records (0 for a bucket the lake has not seen).
pub(crate) async fn check_watermarks(
    index: &dyn LakeCatalog,
    info: &TableInfo,
    table: &LakeTable,
) -> Result<(), RoundError> {
    let lake = table.watermarks()?;
    for stream in table_streams(info) {
        let in_index = index.lake_watermark(stream).await?.offset;
        let in_lake = lake.get(&stream.bucket).copied().unwrap_or(Offset(0));
        if in_index != in_lake {
            // Another compactor may have committed between reading the pointer and the
            // watermarks (our lease ran out meanwhile): that is a lost lease, not divergence.
            let record = index.lake_table(info.id).await?;
            if let Some(record) = record
                && record.metadata_location.as_deref() != Some(table.metadata_location())
            {
                return Err(RoundError::LeaseLost {
                    table: info.id,
                    epoch: record.lease.map_or(0, |lease| lease.epoch),
                });
            }
            return Err(RoundError::Diverged {
                table: info.id,
                bucket: stream.bucket,
                index: in_index,
                lake: in_lake,
                metadata: table.metadata_location().to_owned(),
            });
        }
    }
    Ok(())
}

/// Every object the committed table references, as store paths: the current metadata file,
/// the metadata log, the version hint, every snapshot's manifest list, manifests and data
/// files, and the data files the index names for offset reads.
async fn referenced_objects(
    index: &dyn LakeCatalog,
    storage: &LakeStorage,
    info: &TableInfo,
    table: &LakeTable,
) -> Result<BTreeSet<ObjectPath>, RoundError> {
    let root = storage.root();
    let metadata = table.metadata();
    let file_io = storage.file_io();
    let mut urls: BTreeSet<String> = BTreeSet::new();
    urls.insert(table.metadata_location().to_owned());
    urls.insert(format!("{}/metadata/{VERSION_HINT_FILE}", table.location()));
    urls.extend(
        metadata
            .metadata_log()
            .iter()
            .map(|log| log.metadata_file.clone()),
    );
    let mut manifests = BTreeSet::new();
    for snapshot in crate::lake::snapshots_by_id(metadata) {
        urls.insert(snapshot.manifest_list().to_owned());
        let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
        let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
        for manifest in list.entries() {
            if manifests.insert(manifest.manifest_path.clone()) {
                let loaded = manifest.load_manifest(&file_io).await?;
                // A DELETED entry (retention) does not reference its file: once the expiry
                // is committed the file is an orphan, e.g. after a crash before its deletion.
                urls.extend(
                    loaded
                        .entries()
                        .iter()
                        .filter(|entry| entry.is_alive())
                        .map(|entry| entry.file_path().to_owned()),
                );
            }
        }
    }
    urls.extend(manifests);
    let mut paths = BTreeSet::new();
    for url in urls {
        paths.insert(root.path_of(&url)?);
    }
    for stream in table_streams(info) {
        for file in all_lake_files(index, stream, Offset(0)).await? {
            paths.insert(ObjectPath::from(file.path));
        }
    }
    Ok(paths)
}
