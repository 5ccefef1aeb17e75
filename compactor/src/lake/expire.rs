//! Retention for lake tables: whole data files whose rows are all older than a cutoff leave
//! the table, and so do all older snapshots.
//!
//! [`stage_expire`] starts from one version of the lake table (the *base*) and stages the
//! next one, like [`crate::lake::LakeAppend`] and under the same commit protocol (the caller
//! swaps the metadata pointer with a compare-and-swap on
//! [`StagedExpire::base_metadata_location`], or [`StagedExpire::abandon`]s):
//!
//! - **Which files.** Per bucket, in offset order, the leading data files whose `_timestamp`
//!   upper bound (from the manifest entry) is before the cutoff ([`ExpiryRule::before`]), or
//!   without which the bucket's newer data files still hold [`ExpiryRule::max_bytes`] (so
//!   nothing within the newest `max_bytes` goes, as with Kafka's `retention.bytes`).
//!   Only a prefix goes, so what stays of a bucket is one contiguous offset range
//!   `[earliest, watermark)`: a file the rule keeps keeps every later file of its bucket,
//!   even an older one. Files leave whole; rows are never rewritten.
//! - **The new snapshot** (operation `delete`, parent the base snapshot): each manifest that
//!   lists a removed file is rewritten into one new manifest (per partition spec) with the
//!   removed files as DELETED and the others as EXISTING, keeping their snapshot ids and
//!   sequence numbers; every other manifest is carried over unchanged, except manifests
//!   with no live file left (an earlier expiry's DELETED entries), which are dropped. Scans
//!   (iceberg-rust, pyiceberg, Java) skip DELETED entries. The summary keeps the base's
//!   `inlet.watermarks` (expiry never moves a watermark), sets `inlet.earliest.<bucket>`
//!   for every bucket, and recounts the totals.
//! - **Expired snapshots.** Every older snapshot is removed from the metadata (with the refs
//!   and snapshot-log entries that point at it): each reaches a removed file or is older
//!   than one that does, and a snapshot history must stay a contiguous run of versions for
//!   a rewrite's replaced files to be freed when its last older snapshot goes
//!   ([`crate::lake::version`]).
//! - **After the commit** the caller deletes [`StagedExpire::files_to_delete_after_commit`]:
//!   the removed data files, the manifest lists and manifests of the expired snapshots
//!   that no remaining snapshot references, and the files of rewrites those snapshots were
//!   the last to reach. Never before: until the swap, the base is the
//!   table.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use iceberg::spec::{
    DataContentType, DataFile, Literal, ManifestContentType, ManifestEntryRef, ManifestFile,
    ManifestListWriter, ManifestWriterBuilder, Operation, PrimitiveLiteral, Snapshot, SnapshotRef,
    Summary, TableMetadata,
};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, TimestampMicros};
use inlet_core::table::{OFFSET_COLUMN, TIMESTAMP_COLUMN};

use crate::lake::error::LakeError;
use crate::lake::table::{LakeTable, WATERMARKS_PROPERTY, new_uuid};
use crate::lake::version::next_version;
use crate::lake::{delete_all, read_manifest_list};

/// Snapshot summary property prefix, set by expiry: `inlet.earliest.<bucket>` = the
/// bucket's earliest offset still in the lake (the first offset of its first data file, or
/// its watermark when no file is left), for every tiered bucket. Persisted: never rename.
pub const EARLIEST_PROPERTY_PREFIX: &str = "inlet.earliest.";

/// What an expiry removes from each bucket: its leading data files that are all older than
/// `before`, or that the bucket's newer files make up `max_bytes` without.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpiryRule {
    pub before: Option<TimestampMicros>,
    pub max_bytes: Option<u64>,
}

impl ExpiryRule {
    /// Files whose rows are all older than `before` expire.
    pub fn older_than(before: TimestampMicros) -> Self {
        Self {
            before: Some(before),
            max_bytes: None,
        }
    }
}

/// One data file an expiry removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemovedFile {
    pub bucket: Bucket,
    /// The file's URL, as the manifest names it.
    pub path: String,
    /// The file holds the offsets `[base_offset, end_offset)` of the bucket.
    pub base_offset: Offset,
    pub end_offset: Offset,
    pub record_count: u64,
    pub file_size: u64,
    /// The file's largest `_timestamp`: before the cutoff.
    pub max_timestamp: TimestampMicros,
}

/// A staged (written, not committed) expiry: the new metadata version, what it removed and
/// what may be deleted once it is committed.
#[derive(Debug)]
pub struct StagedExpire {
    /// The new version of the table.
    pub table: LakeTable,
    /// The metadata location this version was built on: the value the commit must find
    /// (compare-and-swap) and replace with `table.metadata_location()`.
    pub base_metadata_location: String,
    /// The base's current snapshot, the new snapshot's parent (expired with the others).
    pub base_snapshot_id: i64,
    /// The new snapshot (operation `delete`).
    pub snapshot_id: i64,
    /// The snapshots removed from the metadata.
    pub expired_snapshot_ids: Vec<i64>,
    /// The data files removed, by bucket, then offset.
    pub removed: Vec<RemovedFile>,
    /// Every tiered bucket's earliest offset still in the lake after this snapshot; equal
    /// to its watermark when no data file of it is left.
    pub earliest: BTreeMap<Bucket, Offset>,
    /// Every object the expiry wrote (manifests, manifest list, metadata file), as URLs:
    /// record them before committing, delete them if the commit is abandoned.
    pub files_written: Vec<String>,
    /// What no snapshot of the new version reaches any more, as URLs: the removed data
    /// files, then the manifests, then the manifest lists of the expired snapshots. Delete
    /// them only after the commit.
    pub files_to_delete_after_commit: Vec<String>,
}

impl StagedExpire {
    /// Deletes everything the expiry wrote: for a commit that lost its compare-and-swap or
    /// was given up. Never call it for a commit whose outcome is unknown.
    pub async fn abandon(self) -> Result<(), LakeError> {
        delete_all(&self.table.storage().file_io(), &self.files_written).await
    }

    /// Deletes [`StagedExpire::files_to_delete_after_commit`]. Call it only after the commit;
    /// a file already gone is not an error, so it can be retried.
    pub async fn delete_expired_files(&self) -> Result<(), LakeError> {
        delete_all(
            &self.table.storage().file_io(),
            &self.files_to_delete_after_commit,
        )
        .await
    }
}

/// Stages the expiry of the data files of `base` that `rule` removes (see the module docs).
/// `Ok(None)` when it removes none (or the table has no snapshot): nothing was written. On
/// failure, deletes what it wrote (best effort).
pub async fn stage_expire(
    base: &LakeTable,
    rule: ExpiryRule,
    env: &Env,
) -> Result<Option<StagedExpire>, LakeError> {
    let mut written = Vec::new();
    match stage_files(base, rule, env, &mut written).await {
        Ok(staged) => Ok(staged),
        Err(error) => {
            if let Err(cleanup) = delete_all(&base.storage().file_io(), &written).await {
                tracing::warn!(%cleanup, "lake expiry failed and left orphan files");
            }
            Err(error)
        }
    }
}

/// A live data file of the base snapshot, with what its manifest entry says about it.
pub(crate) struct LiveFile {
    pub(crate) entry: ManifestEntryRef,
    pub(crate) bucket: Bucket,
    pub(crate) offsets: Range<Offset>,
    pub(crate) max_timestamp: TimestampMicros,
    pub(crate) size: u64,
}

/// One manifest of the base snapshot, loaded if it lists data files.
pub(crate) struct BaseManifest {
    pub(crate) file: ManifestFile,
    /// The entries of a data manifest; empty for delete manifests (carried as they are).
    pub(crate) entries: Vec<ManifestEntryRef>,
}

/// The current snapshot of a table, read from its manifests.
pub(crate) struct LiveFiles {
    pub(crate) snapshot: SnapshotRef,
    pub(crate) manifests: Vec<BaseManifest>,
    /// Every live data file, by bucket in offset order (checked not to overlap).
    pub(crate) by_bucket: BTreeMap<Bucket, Vec<LiveFile>>,
}

/// Reads the manifests of `base`'s current snapshot; `None` without a snapshot.
pub(crate) async fn live_files(base: &LakeTable) -> Result<Option<LiveFiles>, LakeError> {
    let metadata = base.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(None);
    };
    let invalid = |reason: String| LakeError::invalid_metadata(base.metadata_location(), reason);
    let file_io = base.storage().file_io();
    let schema = metadata.current_schema().clone();
    let field_id = |name: &str| {
        schema
            .field_by_name(name)
            .map(|field| field.id)
            .ok_or_else(|| invalid(format!("the lake schema has no `{name}` column")))
    };
    let (offset_id, timestamp_id) = (field_id(OFFSET_COLUMN)?, field_id(TIMESTAMP_COLUMN)?);

    // Every live data file of the base snapshot, by bucket in offset order.
    let base_list = read_manifest_list(
        &file_io,
        snapshot.manifest_list(),
        metadata.format_version(),
    )
    .await?;
    let mut manifests = Vec::with_capacity(base_list.len());
    let mut live: BTreeMap<Bucket, Vec<LiveFile>> = BTreeMap::new();
    for file in base_list {
        let entries = match file.content {
            ManifestContentType::Deletes => Vec::new(),
            ManifestContentType::Data => {
                let (entries, _) = file.load_manifest(&file_io).await?.into_parts();
                for entry in entries.iter().filter(|entry| entry.is_alive()) {
                    let data_file = entry.data_file();
                    if data_file.content_type() != DataContentType::Data {
                        return Err(invalid(format!(
                            "data manifest `{}` lists delete file `{}`",
                            file.manifest_path,
                            data_file.file_path()
                        )));
                    }
                    let (bucket, offsets, max_timestamp) =
                        describe(data_file, offset_id, timestamp_id).map_err(&invalid)?;
                    live.entry(bucket).or_default().push(LiveFile {
                        entry: entry.clone(),
                        bucket,
                        offsets,
                        max_timestamp,
                        size: data_file.file_size_in_bytes(),
                    });
                }
                entries
            }
        };
        manifests.push(BaseManifest { file, entries });
    }
    for (bucket, files) in &mut live {
        files.sort_by_key(|file| file.offsets.start);
        if let Some(pair) = files
            .windows(2)
            .find(|pair| pair[0].offsets.end > pair[1].offsets.start)
        {
            return Err(invalid(format!(
                "data files `{}` and `{}` of bucket {} overlap",
                pair[0].entry.file_path(),
                pair[1].entry.file_path(),
                bucket.0
            )));
        }
    }

    Ok(Some(LiveFiles {
        snapshot: snapshot.clone(),
        manifests,
        by_bucket: live,
    }))
}

async fn stage_files(
    base: &LakeTable,
    rule: ExpiryRule,
    env: &Env,
    written: &mut Vec<String>,
) -> Result<Option<StagedExpire>, LakeError> {
    let Some(LiveFiles {
        snapshot,
        manifests,
        by_bucket: live,
    }) = live_files(base).await?
    else {
        return Ok(None);
    };
    let metadata = base.metadata();
    let invalid = |reason: String| LakeError::invalid_metadata(base.metadata_location(), reason);
    let file_io = base.storage().file_io();
    let schema = metadata.current_schema().clone();

    // The leading files of each bucket the rule removes.
    let mut removed: BTreeMap<String, &LiveFile> = BTreeMap::new();
    let mut kept: Vec<&LiveFile> = Vec::new();
    for files in live.values() {
        let mut remaining: u64 = files.iter().map(|file| file.size).sum();
        let old = files
            .iter()
            .take_while(|file| {
                let expires = rule
                    .before
                    .is_some_and(|before| file.max_timestamp < before)
                    || rule
                        .max_bytes
                        .is_some_and(|max| remaining.saturating_sub(file.size) >= max);
                if expires {
                    remaining = remaining.saturating_sub(file.size);
                }
                expires
            })
            .count();
        removed.extend(
            files[..old]
                .iter()
                .map(|file| (file.entry.file_path().to_owned(), file)),
        );
        kept.extend(&files[old..]);
    }
    if removed.is_empty() {
        return Ok(None);
    }

    let watermarks = base.watermarks()?;
    let mut earliest = BTreeMap::new();
    let buckets: BTreeSet<Bucket> = watermarks.keys().chain(live.keys()).copied().collect();
    for bucket in buckets {
        let Some(watermark) = watermarks.get(&bucket).copied() else {
            return Err(invalid(format!(
                "bucket {} has data files but no watermark",
                bucket.0
            )));
        };
        let files = live.get(&bucket).map(Vec::as_slice).unwrap_or_default();
        if let Some(last) = files.last()
            && last.offsets.end > watermark
        {
            return Err(invalid(format!(
                "data file `{}` of bucket {} ends at offset {}, past the watermark {}",
                last.entry.file_path(),
                bucket.0,
                last.offsets.end.0,
                watermark.0
            )));
        }
        let first_kept = files
            .iter()
            .find(|file| !removed.contains_key(file.entry.file_path()));
        earliest.insert(
            bucket,
            first_kept.map_or(watermark, |file| file.offsets.start),
        );
    }

    let round_id = new_uuid(env);
    let snapshot_id = new_snapshot_id(metadata, env);
    let sequence_number = metadata.next_sequence_number();
    let location = metadata.location().to_owned();

    // Manifests: those listing a removed file are rewritten, per partition spec, into one
    // new manifest; the others are carried over unless nothing in them is live.
    let mut rewrite: BTreeMap<i32, Vec<&BaseManifest>> = BTreeMap::new();
    let mut carried = Vec::new();
    for manifest in &manifests {
        if manifest
            .entries
            .iter()
            .any(|entry| entry.is_alive() && removed.contains_key(entry.file_path()))
        {
            rewrite
                .entry(manifest.file.partition_spec_id)
                .or_default()
                .push(manifest);
        } else if manifest.file.content == ManifestContentType::Deletes
            || manifest.entries.iter().any(|entry| entry.is_alive())
        {
            carried.push(manifest.file.clone());
        }
    }
    let mut new_manifests = Vec::new();
    for (index, (spec_id, group)) in rewrite.iter().enumerate() {
        let spec = metadata
            .partition_spec_by_id(*spec_id)
            .ok_or_else(|| invalid(format!("no partition spec {spec_id}")))?;
        let path = format!("{location}/metadata/{round_id}-m{index}.avro");
        written.push(path.clone());
        let mut writer = ManifestWriterBuilder::new(
            file_io.new_output(&path)?,
            Some(snapshot_id),
            schema.clone(),
            spec.as_ref().clone(),
        )
        .build_v2_data();
        for entry in group
            .iter()
            .flat_map(|manifest| &manifest.entries)
            .filter(|entry| entry.is_alive())
        {
            let sequence_number = entry.sequence_number().ok_or_else(|| {
                invalid(format!(
                    "data file `{}` has no sequence number",
                    entry.file_path()
                ))
            })?;
            if removed.contains_key(entry.file_path()) {
                writer.add_delete_file(
                    entry.data_file().clone(),
                    sequence_number,
                    entry.file_sequence_number,
                )?;
            } else {
                let added_by = entry.snapshot_id().ok_or_else(|| {
                    invalid(format!(
                        "data file `{}` has no snapshot id",
                        entry.file_path()
                    ))
                })?;
                writer.add_existing_file(
                    entry.data_file().clone(),
                    added_by,
                    sequence_number,
                    entry.file_sequence_number,
                )?;
            }
        }
        new_manifests.push(writer.write_manifest_file().await?);
    }

    let manifest_list = format!("{location}/metadata/snap-{snapshot_id}-0-{round_id}.avro");
    written.push(manifest_list.clone());
    let mut list = ManifestListWriter::v2(
        file_io.new_output(&manifest_list)?.writer().await?,
        snapshot_id,
        Some(snapshot.snapshot_id()),
        sequence_number,
    );
    let new_manifests_listed: Vec<ManifestFile> =
        new_manifests.iter().chain(&carried).cloned().collect();
    list.add_manifests(new_manifests_listed.iter().cloned())?;
    list.close().await?;

    let removed_files: Vec<RemovedFile> = live
        .values()
        .flatten()
        .filter(|file| removed.contains_key(file.entry.file_path()))
        .map(|file| RemovedFile {
            bucket: file.bucket,
            path: file.entry.file_path().to_owned(),
            base_offset: file.offsets.start,
            end_offset: file.offsets.end,
            record_count: file.entry.record_count(),
            file_size: file.entry.file_size_in_bytes(),
            max_timestamp: file.max_timestamp,
        })
        .collect();
    let summary = summary(base, &removed_files, &kept, &earliest)?;
    let timestamp_ms = (env.clock.now().0 / 1000).max(metadata.last_updated_ms());
    let new_snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(Some(snapshot.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(timestamp_ms)
        .with_manifest_list(manifest_list)
        .with_summary(summary)
        .with_schema_id(metadata.current_schema_id())
        .build();
    // Every older snapshot goes: each reaches a removed file or is older than one that does
    // (a replaced file of a rewrite among them is freed with them).
    let mut record = |file: &str| written.push(file.to_owned());
    let version = next_version(
        base,
        new_snapshot,
        &new_manifests_listed,
        1,
        env,
        &mut record,
    )
    .await?;
    let files_to_delete_after_commit = removed_files
        .iter()
        .map(|file| file.path.clone())
        .chain(version.unreached)
        .collect();

    Ok(Some(StagedExpire {
        table: version.table,
        base_metadata_location: base.metadata_location().to_owned(),
        base_snapshot_id: snapshot.snapshot_id(),
        snapshot_id,
        expired_snapshot_ids: version.expired_snapshot_ids,
        removed: removed_files,
        earliest,
        files_written: written.clone(),
        files_to_delete_after_commit,
    }))
}

/// The bucket, offsets `[start, end)` and largest `_timestamp` of a data file, from its
/// partition and column bounds. Checks the offsets are as dense as the file is long.
fn describe(
    file: &DataFile,
    offset_id: i32,
    timestamp_id: i32,
) -> Result<(Bucket, Range<Offset>, TimestampMicros), String> {
    let path = file.file_path();
    let bucket = match file.partition().fields() {
        [Some(Literal::Primitive(PrimitiveLiteral::Int(bucket)))] => u32::try_from(*bucket).ok(),
        _ => None,
    }
    .ok_or_else(|| format!("data file `{path}` has no bucket partition value"))?;
    let long =
        |bounds: &std::collections::HashMap<i32, iceberg::spec::Datum>, id, what| match bounds
            .get(&id)
            .map(|datum| datum.literal())
        {
            Some(PrimitiveLiteral::Long(value)) => Ok(*value),
            _ => Err(format!("data file `{path}` has no {what} bound")),
        };
    let first = long(file.lower_bounds(), offset_id, "`_offset` lower")?;
    let last = long(file.upper_bounds(), offset_id, "`_offset` upper")?;
    let max_timestamp = long(file.upper_bounds(), timestamp_id, "`_timestamp` upper")?;
    let (Ok(first), Ok(last)) = (u64::try_from(first), u64::try_from(last)) else {
        return Err(format!("data file `{path}` has negative offsets"));
    };
    if last < first || last - first + 1 != file.record_count() {
        return Err(format!(
            "data file `{path}` holds {} rows but offsets {first} to {last}",
            file.record_count()
        ));
    }
    Ok((
        Bucket(bucket),
        Offset(first)..Offset(last + 1),
        TimestampMicros(max_timestamp),
    ))
}

/// The snapshot summary: iceberg's counts of what was deleted (the property names of
/// iceberg's `SnapshotSummaryCollector`), the totals recounted from the files kept (delete-file totals carried from the base), the base's watermarks and every
/// bucket's earliest offset.
fn summary(
    base: &LakeTable,
    removed: &[RemovedFile],
    kept: &[&LiveFile],
    earliest: &BTreeMap<Bucket, Offset>,
) -> Result<Summary, LakeError> {
    let previous = &base
        .metadata()
        .current_snapshot()
        .expect("an expiry starts from a snapshot")
        .summary()
        .additional_properties;
    let mut properties = BTreeMap::new();
    properties.insert("deleted-data-files".to_owned(), removed.len().to_string());
    properties.insert(
        "deleted-records".to_owned(),
        removed
            .iter()
            .map(|f| f.record_count)
            .sum::<u64>()
            .to_string(),
    );
    properties.insert(
        "removed-files-size".to_owned(),
        removed.iter().map(|f| f.file_size).sum::<u64>().to_string(),
    );
    let changed: BTreeSet<Bucket> = removed.iter().map(|file| file.bucket).collect();
    properties.insert(
        "changed-partition-count".to_owned(),
        changed.len().to_string(),
    );
    properties.insert("total-data-files".to_owned(), kept.len().to_string());
    properties.insert(
        "total-records".to_owned(),
        kept.iter()
            .map(|f| f.entry.record_count())
            .sum::<u64>()
            .to_string(),
    );
    properties.insert(
        "total-files-size".to_owned(),
        kept.iter()
            .map(|f| f.entry.file_size_in_bytes())
            .sum::<u64>()
            .to_string(),
    );
    for total in [
        "total-delete-files",
        "total-position-deletes",
        "total-equality-deletes",
    ] {
        if let Some(value) = previous.get(total) {
            properties.insert(total.to_owned(), value.clone());
        }
    }
    let Some(watermarks) = previous.get(WATERMARKS_PROPERTY) else {
        return Err(LakeError::invalid_metadata(
            base.metadata_location(),
            format!("the current snapshot has no `{WATERMARKS_PROPERTY}`"),
        ));
    };
    properties.insert(WATERMARKS_PROPERTY.to_owned(), watermarks.clone());
    for (bucket, offset) in earliest {
        properties.insert(
            format!("{EARLIEST_PROPERTY_PREFIX}{}", bucket.0),
            offset.0.to_string(),
        );
    }
    Ok(Summary {
        operation: Operation::Delete,
        additional_properties: properties.into_iter().collect(),
    })
}

/// A positive snapshot id, from the injected id source, unused in the table.
fn new_snapshot_id(metadata: &TableMetadata, env: &Env) -> i64 {
    loop {
        let id =
            i64::try_from(env.ids.next_u128() as u64 >> 1).expect("a 63-bit value fits an i64");
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}
