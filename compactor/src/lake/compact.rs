//! Small-file compaction of a log table's lake: each tiering round adds at least one data
//! file per bucket that moved (2,880 a day per bucket at a 30 s freshness), and engines pay
//! per file to open and plan. [`stage_rewrite`] rewrites runs of small files of a bucket into
//! files of about the target size, as one `replace` snapshot; the rows, their offsets and
//! timestamps do not change.
//!
//! - **Which files** ([`choose_groups`], shared with the index-side check a round makes
//!   before reading any manifest): per bucket, in offset order, runs of adjacent files each
//!   below a quarter of the target, bin-packed greedily up to the target, less any leading
//!   file larger than the rest of its group together (it waits until they outgrow it, so a
//!   row is rewritten a logarithmic number of times, not once per merge). Only groups of at
//!   least two files are rewritten, and only in a bucket with at least
//!   [`CompactionRule::min_files`] small files. A rewrite reads at most
//!   [`CompactionRule::max_bytes`] of input (but always one group), so it never starves
//!   tiering; what is left waits for the next round.
//! - **Rewrite**: a group's files are read whole and written through [`LakeAppend`] in its
//!   rewrite mode (same Parquet settings and partition as a round), starting at the group's
//!   first offset; [`LakeAppend::write`] checks the offsets stay dense.
//! - **The snapshot** (operation `replace`, parent the base snapshot): one data manifest with
//!   every live file of the base as EXISTING (snapshot ids and sequence numbers kept), the
//!   replaced ones as DELETED and the new ones as ADDED with the data sequence number of
//!   their group's oldest file, so any position delete that applied to the rows applies
//!   again. Delete manifests are carried. The summary keeps the base's watermarks and
//!   earliest offsets. Snapshots are retained as by a round ([`crate::lake::version`]): the
//!   replaced files stay for time travel, and for readers that looked them up in the index
//!   before the commit, until the last snapshot older than the rewrite is expired.
//!
//! The caller commits like a round (compare-and-swap of the metadata pointer, the replaced
//! files' index entries removed and the new ones added in the same batch) or abandons.

use std::collections::BTreeMap;
use std::ops::Range;

use iceberg::spec::{
    DataFile, ManifestContentType, ManifestFile, ManifestListWriter, Operation, Snapshot,
    SnapshotSummaryCollector, Summary,
};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::lake::error::LakeError;
use crate::lake::expire::{LiveFile, LiveFiles, RemovedFile, live_files};
use crate::lake::table::{LakeTable, WATERMARKS_PROPERTY};
use crate::lake::version::next_version;
use crate::lake::{EARLIEST_PROPERTY_PREFIX, LakeAppend, LakeWriteOptions, delete_all};

/// Rows per batch when a rewrite reads a data file back.
const REWRITE_BATCH_ROWS: usize = 64 * 1024;

/// Which files a compaction rewrites; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionRule {
    /// The size rewritten files aim at (the writer's `target_file_bytes`); a file below a
    /// quarter of it is small.
    pub target_bytes: u64,
    /// A bucket is compacted once it has this many small files; at least 2.
    pub min_files: usize,
    /// Input bytes one rewrite reads at most (always at least one group).
    pub max_bytes: u64,
}

impl CompactionRule {
    fn is_small(&self, size: u64) -> bool {
        size < self.target_bytes / 4
    }
}

/// The groups of one bucket's files (in offset order: each file's offsets and size) a
/// compaction rewrites, as index ranges into `files`; empty when the bucket has fewer than
/// `rule.min_files` small files.
pub fn choose_groups(files: &[(Range<Offset>, u64)], rule: &CompactionRule) -> Vec<Range<usize>> {
    let small = files
        .iter()
        .filter(|(_, size)| rule.is_small(*size))
        .count();
    if small < rule.min_files.max(2) {
        return Vec::new();
    }
    let mut groups = Vec::new();
    let mut group: Option<(Range<usize>, u64)> = None;
    for (i, (offsets, size)) in files.iter().enumerate() {
        let joins = group.as_ref().is_some_and(|(range, bytes)| {
            rule.is_small(*size)
                && files[range.end - 1].0.end == offsets.start
                && bytes + size <= rule.target_bytes
        });
        if joins {
            let (range, bytes) = group.as_mut().expect("joins an open group");
            range.end = i + 1;
            *bytes += size;
            continue;
        }
        if let Some((range, _)) = group.take()
            && range.len() >= 2
        {
            groups.push(range);
        }
        if rule.is_small(*size) {
            group = Some((i..i + 1, *size));
        }
    }
    if let Some((range, _)) = group
        && range.len() >= 2
    {
        groups.push(range);
    }
    // A file larger than the rest of its group together waits until they outgrow it: merging
    // it now would rewrite its rows once per handful of new files. So each row is rewritten
    // about log2(target / round size) times on its way to the target, not once per merge.
    groups
        .into_iter()
        .filter_map(|mut range| {
            let size = |i: usize| files[i].1;
            let mut rest: u64 = (range.start + 1..range.end).map(size).sum();
            while range.len() >= 2 && size(range.start) > rest {
                range.start += 1;
                rest -= size(range.start);
            }
            (range.len() >= 2).then_some(range)
        })
        .collect()
}

/// One group of files a rewrite replaced by new ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewrittenGroup {
    pub bucket: Bucket,
    /// The offsets the group holds, before and after.
    pub offsets: Range<Offset>,
    /// The files replaced, in offset order.
    pub replaced: Vec<RemovedFile>,
    /// The new files, in offset order.
    pub files: Vec<DataFile>,
}

/// A staged (written, not committed) rewrite.
#[derive(Debug)]
pub struct StagedRewrite {
    /// The new version of the table.
    pub table: LakeTable,
    /// The metadata location this version was built on (compare-and-swap).
    pub base_metadata_location: String,
    /// The new snapshot (operation `replace`).
    pub snapshot_id: i64,
    /// What was rewritten, by bucket, then offset.
    pub groups: Vec<RewrittenGroup>,
    /// More groups were chosen than the byte budget let this rewrite take.
    pub more: bool,
    /// Every object the rewrite wrote, as URLs: delete them if the commit is abandoned.
    pub files_written: Vec<String>,
    /// The snapshots this version no longer has (beyond the retained count).
    pub expired_snapshot_ids: Vec<i64>,
    /// What the new version no longer reaches, as URLs; delete only after the commit.
    pub files_to_delete_after_commit: Vec<String>,
}

impl StagedRewrite {
    /// Deletes everything the rewrite wrote: for a commit that was refused. Never call it
    /// for a commit whose outcome is unknown.
    pub async fn abandon(self) -> Result<(), LakeError> {
        delete_all(&self.table.storage().file_io(), &self.files_written).await
    }

    /// Deletes [`StagedRewrite::files_to_delete_after_commit`]; only after the commit.
    pub async fn delete_unreached_files(&self) -> Result<(), LakeError> {
        delete_all(
            &self.table.storage().file_io(),
            &self.files_to_delete_after_commit,
        )
        .await
    }
}

/// Stages the rewrite of the small files of `base` that `rule` chooses (see the module
/// docs), keeping `retained` snapshots. `Ok(None)` when it chooses none: nothing was
/// written. On failure, deletes what it wrote (best effort).
pub async fn stage_rewrite(
    base: &LakeTable,
    rule: &CompactionRule,
    write: &LakeWriteOptions,
    retained: usize,
    env: &Env,
) -> Result<Option<StagedRewrite>, LakeError> {
    let Some(live) = live_files(base).await? else {
        return Ok(None);
    };
    let (chosen, more) = choose(&live, rule);
    if chosen.is_empty() {
        return Ok(None);
    }
    let mut append = LakeAppend::new(base, write, env)?
        .retaining_snapshots(retained)
        .for_rewrite();
    match rewrite(&mut append, &live, &chosen, more, env).await {
        Ok(staged) => Ok(Some(staged)),
        Err(error) => {
            if let Err(cleanup) = append.abort().await {
                tracing::warn!(%cleanup, "lake rewrite failed and left orphan files");
            }
            Err(error)
        }
    }
}

/// The groups to rewrite across buckets, within the byte budget: per bucket, index ranges
/// into its live files; and whether the budget left some.
fn choose(live: &LiveFiles, rule: &CompactionRule) -> (Vec<(Bucket, Range<usize>)>, bool) {
    let mut chosen = Vec::new();
    let mut bytes = 0u64;
    for (bucket, files) in &live.by_bucket {
        let shape: Vec<(Range<Offset>, u64)> = files
            .iter()
            .map(|file| (file.offsets.clone(), file.size))
            .collect();
        for group in choose_groups(&shape, rule) {
            let size: u64 = files[group.clone()].iter().map(|file| file.size).sum();
            if !chosen.is_empty() && bytes + size > rule.max_bytes {
                return (chosen, true);
            }
            bytes += size;
            chosen.push((*bucket, group));
        }
    }
    (chosen, false)
}

async fn rewrite(
    append: &mut LakeAppend,
    live: &LiveFiles,
    chosen: &[(Bucket, Range<usize>)],
    more: bool,
    env: &Env,
) -> Result<StagedRewrite, LakeError> {
    let base = append.base().clone();
    let file_io = base.storage().file_io();
    let mut groups = Vec::with_capacity(chosen.len());
    for (bucket, range) in chosen {
        let files = &live.by_bucket[bucket][range.clone()];
        let offsets = files[0].offsets.start..files[files.len() - 1].offsets.end;
        let before = append.start_run(*bucket, offsets.start).await?;
        for file in files {
            let path = file.entry.file_path();
            let bytes = file_io.new_input(path)?.read().await?;
            let unreadable = |error: parquet::errors::ParquetError| LakeError::UnreadableFile {
                path: path.to_owned(),
                reason: error.to_string(),
            };
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .map_err(unreadable)?
                .with_batch_size(REWRITE_BATCH_ROWS)
                .build()
                .map_err(unreadable)?;
            for batch in reader {
                let batch = batch.map_err(|error| LakeError::UnreadableFile {
                    path: path.to_owned(),
                    reason: error.to_string(),
                })?;
                append.write(*bucket, &batch).await?;
            }
        }
        if append.next_offset(*bucket) != offsets.end {
            return Err(LakeError::OffsetGap {
                bucket: *bucket,
                expected: offsets.end,
                found: append.next_offset(*bucket),
            });
        }
        append.finish_bucket(*bucket).await?;
        groups.push(RewrittenGroup {
            bucket: *bucket,
            offsets,
            replaced: files.iter().map(replaced_file).collect(),
            files: append.bucket_files(*bucket)[before..].to_vec(),
        });
    }
    stage(append, &base, live, groups, more, env).await
}

/// What a replaced file was.
fn replaced_file(file: &LiveFile) -> RemovedFile {
    RemovedFile {
        bucket: file.bucket,
        path: file.entry.file_path().to_owned(),
        base_offset: file.offsets.start,
        end_offset: file.offsets.end,
        record_count: file.entry.record_count(),
        file_size: file.size,
        max_timestamp: file.max_timestamp,
    }
}

/// Writes the `replace` snapshot's manifest, manifest list and metadata file.
async fn stage(
    append: &mut LakeAppend,
    base: &LakeTable,
    live: &LiveFiles,
    groups: Vec<RewrittenGroup>,
    more: bool,
    env: &Env,
) -> Result<StagedRewrite, LakeError> {
    let metadata = base.metadata();
    let invalid = |reason: String| LakeError::invalid_metadata(base.metadata_location(), reason);
    let snapshot_id = append.new_snapshot_id();
    let sequence_number = metadata.next_sequence_number();
    let file_io = base.storage().file_io();

    // The data sequence number of each replaced file, and per group the oldest.
    let replaced: BTreeMap<&str, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, group)| group.replaced.iter().map(move |f| (f.path.as_str(), i)))
        .collect();
    let mut group_sequence = vec![i64::MAX; groups.len()];
    let mut writer = append.manifest_writer("m0", snapshot_id, false)?;
    let mut carried: Vec<ManifestFile> = Vec::new();
    for manifest in &live.manifests {
        if manifest.file.content == ManifestContentType::Deletes {
            carried.push(manifest.file.clone());
            continue;
        }
        for entry in manifest.entries.iter().filter(|entry| entry.is_alive()) {
            let missing =
                |what: &str| invalid(format!("file `{}` has no {what}", entry.file_path()));
            let data_sequence = entry
                .sequence_number()
                .ok_or_else(|| missing("sequence number"))?;
            match replaced.get(entry.file_path()) {
                Some(group) => {
                    group_sequence[*group] = group_sequence[*group].min(data_sequence);
                    writer.add_delete_file(
                        entry.data_file().clone(),
                        data_sequence,
                        entry.file_sequence_number,
                    )?;
                }
                None => writer.add_existing_file(
                    entry.data_file().clone(),
                    entry.snapshot_id().ok_or_else(|| missing("snapshot id"))?,
                    data_sequence,
                    entry.file_sequence_number,
                )?,
            }
        }
    }
    if let Some(group) = group_sequence.iter().position(|s| *s == i64::MAX) {
        return Err(invalid(format!(
            "the files chosen for bucket {} are not in the current snapshot",
            groups[group].bucket.0
        )));
    }
    for (group, data_sequence) in groups.iter().zip(&group_sequence) {
        for file in &group.files {
            writer.add_file(file.clone(), *data_sequence)?;
        }
    }
    let mut manifests = vec![writer.write_manifest_file().await?];
    manifests.extend(carried);

    let manifest_list = format!(
        "{}/metadata/snap-{snapshot_id}-0-{}.avro",
        metadata.location(),
        crate::lake::table::new_uuid(env)
    );
    append.record_written(&manifest_list);
    let mut list = ManifestListWriter::v2(
        file_io.new_output(&manifest_list)?.writer().await?,
        snapshot_id,
        Some(live.snapshot.snapshot_id()),
        sequence_number,
    );
    list.add_manifests(manifests.iter().cloned())?;
    list.close().await?;

    let timestamp_ms = (env.clock.now().0 / 1000).max(metadata.last_updated_ms());
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(Some(live.snapshot.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(timestamp_ms)
        .with_manifest_list(manifest_list)
        .with_summary(summary(base, live, &groups)?)
        .with_schema_id(metadata.current_schema_id())
        .build();
    let retained = append.retained_snapshots();
    let version = next_version(
        base,
        snapshot,
        &manifests,
        retained,
        env,
        &mut append.recorder(),
    )
    .await?;
    Ok(StagedRewrite {
        table: version.table,
        base_metadata_location: base.metadata_location().to_owned(),
        snapshot_id,
        groups,
        more,
        files_written: append.files_written(),
        expired_snapshot_ids: version.expired_snapshot_ids,
        files_to_delete_after_commit: version.unreached,
    })
}

/// The summary: iceberg's counts of what was added and deleted, the totals carried from the
/// base and corrected, and the base's watermarks and earliest offsets.
fn summary(
    base: &LakeTable,
    live: &LiveFiles,
    groups: &[RewrittenGroup],
) -> Result<Summary, LakeError> {
    let metadata = base.metadata();
    let mut collector = SnapshotSummaryCollector::default();
    for file in groups.iter().flat_map(|group| &group.files) {
        collector.add_file(
            file,
            metadata.current_schema().clone(),
            metadata.default_partition_spec().clone(),
        );
    }
    let mut properties = collector.build();
    let replaced = groups.iter().flat_map(|group| &group.replaced);
    let (count, rows, bytes) = replaced.fold((0u64, 0u64, 0u64), |(c, r, b), file| {
        (c + 1, r + file.record_count, b + file.file_size)
    });
    properties.insert("deleted-data-files".to_owned(), count.to_string());
    properties.insert("deleted-records".to_owned(), rows.to_string());
    properties.insert("removed-files-size".to_owned(), bytes.to_string());
    let previous = &live.snapshot.summary().additional_properties;
    let added = |name: &str| -> u64 {
        properties
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let totals = [
        ("total-data-files", added("added-data-files"), count),
        ("total-records", added("added-records"), rows),
        ("total-files-size", added("added-files-size"), bytes),
    ];
    for (total, plus, minus) in totals {
        if let Some(value) = previous.get(total).and_then(|v| v.parse::<u64>().ok()) {
            properties.insert(
                total.to_owned(),
                (value + plus).saturating_sub(minus).to_string(),
            );
        }
    }
    for (name, value) in previous {
        let carried = name == WATERMARKS_PROPERTY
            || name.starts_with(EARLIEST_PROPERTY_PREFIX)
            || matches!(
                name.as_str(),
                "total-delete-files" | "total-position-deletes" | "total-equality-deletes"
            );
        if carried {
            properties.insert(name.clone(), value.clone());
        }
    }
    if !properties.contains_key(WATERMARKS_PROPERTY) {
        return Err(LakeError::invalid_metadata(
            base.metadata_location(),
            format!("the current snapshot has no `{WATERMARKS_PROPERTY}`"),
        ));
    }
    Ok(Summary {
        operation: Operation::Replace,
        additional_properties: properties.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: CompactionRule = CompactionRule {
        target_bytes: 100,
        min_files: 3,
        max_bytes: u64::MAX,
    };

    /// Files of the given sizes, adjacent unless a size is negative (a gap before it).
    fn files(sizes: &[i64]) -> Vec<(Range<Offset>, u64)> {
        let mut next = 0;
        sizes
            .iter()
            .map(|size| {
                if *size < 0 {
                    next += 5;
                }
                let range = Offset(next)..Offset(next + 10);
                next += 10;
                (range, size.unsigned_abs())
            })
            .collect()
    }

    #[test]
    fn groups_are_runs_of_adjacent_small_files_packed_up_to_the_target() {
        // Small means below 25 bytes.
        assert_eq!(
            choose_groups(&files(&[10, 10, 10, 30, 10, 10, -10, 10]), &RULE),
            vec![0..3, 4..6, 6..8]
        );
        // Bin-packed: 20 + 20 + 20 + 20 + 20 = 100 fits, the sixth starts a new group.
        assert_eq!(
            choose_groups(&files(&[20, 20, 20, 20, 20, 20, 20]), &RULE),
            vec![0..5, 5..7]
        );
        // A lone small file between large ones is not a group.
        assert_eq!(
            choose_groups(&files(&[10, 50, 10, 50, 10, 10]), &RULE),
            vec![4..6]
        );
    }

    #[test]
    fn a_file_larger_than_the_rest_of_its_group_waits_for_them() {
        let rule = CompactionRule {
            target_bytes: 1000,
            ..RULE
        };
        // 160 is more than the 40 after it: only the four new files merge.
        assert_eq!(
            choose_groups(&files(&[160, 10, 10, 10, 10]), &rule),
            vec![1..5]
        );
        // Once the rest add up to it, it merges with them.
        assert_eq!(
            choose_groups(&files(&[160, 80, 40, 20, 10, 10]), &rule),
            vec![0..6]
        );
        // Trimming can leave too little to merge.
        assert!(choose_groups(&files(&[160, 100, 20, 10]), &rule).is_empty());
    }

    #[test]
    fn a_bucket_with_few_small_files_is_left_alone() {
        assert!(choose_groups(&files(&[10, 10, 50, 50]), &RULE).is_empty());
        assert!(choose_groups(&[], &RULE).is_empty());
        // `min_files` below 2 still needs two files to merge.
        let one = CompactionRule {
            min_files: 0,
            ..RULE
        };
        assert!(choose_groups(&files(&[10]), &one).is_empty());
        assert_eq!(choose_groups(&files(&[10, 10]), &one), vec![0..2]);
    }
}
