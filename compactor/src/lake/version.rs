//! The next version of a lake table: every staged operation (a tiering round's append, a
//! retention expiry, a small-file rewrite) ends here. [`next_version`] makes the new
//! snapshot current, keeps the newest `retained` snapshots, writes the next metadata file,
//! and says what the new version no longer reaches, to be deleted once it is committed:
//!
//! - the manifest lists of the expired snapshots;
//! - manifests no kept snapshot lists. A manifest is listed by every snapshot from the one
//!   that wrote it until one that merged or dropped it, never again after, so one the oldest
//!   kept snapshot does not list is reached by no kept snapshot;
//! - data files a rewrite (`replace` snapshot) took out of the table, once no kept snapshot
//!   reaches them. A rewrite `R` lists the files it replaced as DELETED in the manifest it
//!   wrote; every snapshot older than `R` reaches them, and none from `R` on. So they are
//!   freed by the commit that expires the last snapshot older than `R`: the one after which
//!   the oldest snapshot's sequence number is at least `R`'s while it was lower before.
//!   Until then they stay for time travel (and for readers that looked them up in the index
//!   before the rewrite);
//! - metadata files that left the metadata log (iceberg keeps the newest
//!   `write.metadata.previous-versions-max`, 100 by default).

use std::collections::BTreeSet;

use iceberg::io::FileIO;
use iceberg::spec::{
    MAIN_BRANCH, ManifestContentType, ManifestFile, ManifestStatus, Operation, Snapshot,
};
use inlet_core::clock::Env;

use crate::lake::error::LakeError;
use crate::lake::read_manifest_list;
use crate::lake::table::{LakeTable, metadata_file_location, new_uuid, write_metadata};

/// The version [`next_version`] wrote.
pub(crate) struct NextVersion {
    pub(crate) table: LakeTable,
    /// The snapshots it no longer has.
    pub(crate) expired_snapshot_ids: Vec<i64>,
    /// What it no longer reaches, as URLs (see the module docs): delete only after the commit.
    pub(crate) unreached: Vec<String>,
}

/// Writes the version of `base` whose current snapshot is `snapshot` (its manifest list,
/// naming `manifests`, already written), keeping the newest `retained` snapshots (at least
/// the new one). `written` records the metadata file before it is written.
pub(crate) async fn next_version(
    base: &LakeTable,
    snapshot: Snapshot,
    manifests: &[ManifestFile],
    retained: usize,
    env: &Env,
    written: &mut (dyn FnMut(&str) + Send),
) -> Result<NextVersion, LakeError> {
    let metadata = base.metadata();
    let file_io = base.storage().file_io();
    let format = metadata.format_version();
    let snapshot_id = snapshot.snapshot_id();
    let mut by_sequence: Vec<&Snapshot> = metadata.snapshots().map(|s| s.as_ref()).collect();
    by_sequence.sort_by_key(|snapshot| snapshot.sequence_number());
    let expired_count = (by_sequence.len() + 1).saturating_sub(retained.max(1));
    let (expired, kept) = by_sequence.split_at(expired_count);
    let expired_snapshot_ids: Vec<i64> = expired.iter().map(|s| s.snapshot_id()).collect();
    let oldest_before = by_sequence.first().map(|s| s.sequence_number());
    let oldest_after = kept
        .first()
        .map_or(snapshot.sequence_number(), |s| s.sequence_number());

    let mut unreached = Vec::new();
    if !expired.is_empty() {
        let still_listed: BTreeSet<String> = match kept.first() {
            Some(oldest) => read_manifest_list(&file_io, oldest.manifest_list(), format)
                .await?
                .into_iter()
                .map(|file| file.manifest_path)
                .collect(),
            None => manifests.iter().map(|m| m.manifest_path.clone()).collect(),
        };
        let mut manifests_unreached = BTreeSet::new();
        for old in expired {
            for file in read_manifest_list(&file_io, old.manifest_list(), format).await? {
                if !still_listed.contains(&file.manifest_path) {
                    manifests_unreached.insert(file.manifest_path);
                }
            }
            unreached.push(old.manifest_list().to_owned());
        }
        unreached.extend(manifests_unreached);
    }
    // Rewrites whose replaced files the last snapshot older than them just left.
    if let Some(oldest_before) = oldest_before {
        for rewrite in by_sequence.iter().copied().chain([&snapshot]).filter(|s| {
            s.summary().operation == Operation::Replace
                && s.sequence_number() > oldest_before
                && s.sequence_number() <= oldest_after
        }) {
            let listed = if rewrite.snapshot_id() == snapshot_id {
                manifests.to_vec()
            } else {
                read_manifest_list(&file_io, rewrite.manifest_list(), format).await?
            };
            unreached.extend(replaced_by(&file_io, rewrite.snapshot_id(), &listed).await?);
        }
    }

    let next = metadata
        .clone()
        .into_builder(Some(base.metadata_location().to_owned()))
        .set_branch_snapshot(snapshot, MAIN_BRANCH)?
        .remove_snapshots(&expired_snapshot_ids)
        .build()?
        .metadata;
    if next.current_snapshot_id() != Some(snapshot_id) || next.snapshots().count() != kept.len() + 1
    {
        return Err(LakeError::invalid_metadata(
            base.metadata_location(),
            format!(
                "iceberg kept {} snapshots, not the {} retained, or lost the new one",
                next.snapshots().count(),
                kept.len() + 1
            ),
        ));
    }
    let logged: BTreeSet<&str> = next
        .metadata_log()
        .iter()
        .map(|entry| entry.metadata_file.as_str())
        .collect();
    unreached.extend(
        metadata
            .metadata_log()
            .iter()
            .map(|entry| entry.metadata_file.as_str())
            .filter(|file| !logged.contains(file))
            .map(str::to_owned),
    );
    let location = metadata_file_location(metadata.location(), base.version() + 1, new_uuid(env));
    written(&location);
    write_metadata(base.storage(), &next, &location).await?;
    Ok(NextVersion {
        table: base.with_metadata(next, location),
        expired_snapshot_ids,
        unreached,
    })
}

/// The data files the rewrite `snapshot_id` replaced: the DELETED entries of the data
/// manifests it wrote, among `manifests` (its manifest list).
async fn replaced_by(
    file_io: &FileIO,
    snapshot_id: i64,
    manifests: &[ManifestFile],
) -> Result<Vec<String>, LakeError> {
    let mut files = Vec::new();
    for manifest in manifests
        .iter()
        .filter(|m| m.content == ManifestContentType::Data && m.added_snapshot_id == snapshot_id)
    {
        let (entries, _) = manifest.load_manifest(file_io).await?.into_parts();
        files.extend(
            entries
                .iter()
                .filter(|entry| {
                    entry.status() == ManifestStatus::Deleted
                        && entry.snapshot_id() == Some(snapshot_id)
                })
                .map(|entry| entry.file_path().to_owned()),
        );
    }
    Ok(files)
}
