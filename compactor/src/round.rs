//! One tiering round of one table: committed WAL chunks above each bucket's lake watermark
//! become Parquet data files and one Iceberg snapshot, recorded in the index in one batch.
//!
//! 1. Per bucket, from the lake watermark (always a chunk boundary) up to the durable tail:
//!    read whole chunks, decode them, add `_bucket`, `_offset` and `_timestamp`, and write
//!    them with [`LakeAppend`]. A round reads at most `max_round_bytes` / `max_round_rows`,
//!    cut at a chunk boundary; buckets are visited round-robin across rounds so a backlog in
//!    one cannot starve the others.
//! 2. Stage the snapshot (manifest, manifest list, next metadata file).
//! 3. Commit to the index ([`Index::commit_lake`]): compare-and-swap of the metadata pointer
//!    from the version the round started on, under the round's lease (same epoch, renewed),
//!    moving the watermarks, recording one lake file entry per data file, trimming the chunk
//!    entries now below the watermarks.
//! 4. Only then publish the version hint.
//!
//! A commit refused for certain (conflict, fenced, invalid, table gone) deletes everything
//! the round wrote. An index error leaves the outcome unknown: nothing is deleted, and the
//! next repair decides from the index which files are referenced. Any other failure before
//! the commit deletes what was written, except an injected crash, which leaves it all behind
//! as a real crash would.
//!
//! **Retention.** When the table has a `retention` option and the service asks for it, the
//! round then expires ([`stage_expire`]) every data file whose rows are all older than
//! `now - retention`, as a second snapshot staged on the version the append just committed
//! (or on the base, when there were no new rows), committed the same way: compare-and-swap
//! under the same lease epoch, with the removed lake file entries and the buckets' new
//! earliest offsets in the same index batch. Only after that commit are the expired files
//! deleted; a refused commit deletes what the expiry wrote, an unknown outcome deletes
//! nothing, and a crash in between leaves the expired files to the next repair, for which
//! they are orphans. See `docs/lake-commit.md`.
//!
//! **Compaction.** Then, for a log table, when the index's lake file entries show a bucket
//! with enough small files ([`needs_compaction`]), the round rewrites them
//! ([`stage_rewrite`]) as a third snapshot on the current version, committed the same way:
//! the replaced files' entries removed and the new files' added in one index batch, no
//! watermark moving. What the new version frees is deleted after the commit; the replaced
//! files themselves stay until the last snapshot older than the rewrite is expired.

mod keyed;

use std::collections::BTreeMap;
use std::ops::Range;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use iceberg::spec::{DataFile, Literal, PrimitiveLiteral};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId, TimestampMicros};
use inlet_core::table::{OFFSET_COLUMN, TIMESTAMP_COLUMN, TableInfo, read_schema};
use inlet_index::{
    ChunkEntry, LakeCommit, LakeCommitError, LakeCommitted, LakeFileEntry, LakeLease, table_streams,
};
use inlet_reader::{ChunkError, ChunkRead, PagedCache, with_system_columns};

use crate::error::RoundError;
use crate::lake::{
    CompactionRule, ExpiryRule, LakeAppend, LakeError, LakeStorage, LakeTable, StagedAppend,
    StagedExpire, choose_groups, delete_all, stage_expire, stage_rewrite,
};
use crate::options::{CompactorOptions, Failpoint};
use inlet_index::{INDEX_PAGE_ENTRIES, LakeCatalog, all_lake_files};

/// What a committed round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundCommitted {
    /// The new current snapshot: the expiry's when the round expired files, else the
    /// append's.
    pub snapshot_id: i64,
    /// The new current metadata file.
    pub metadata_location: String,
    /// Rows tiered.
    pub rows: u64,
    /// WAL chunk bytes read.
    pub chunk_bytes: u64,
    /// Data files written.
    pub data_files: usize,
    /// The new watermark of each bucket that moved.
    pub watermarks: BTreeMap<Bucket, Offset>,
    /// Chunk entries the commit removed from the index.
    pub trimmed_chunks: usize,
    /// WAL objects those chunks were in.
    pub trimmed_objects: usize,
    /// The round stopped at a per-round limit: more committed rows wait above the
    /// watermarks, and the next round may start at once.
    pub backlog: bool,
    /// Data files retention removed from the table (0 when nothing expired).
    pub expired_files: usize,
    /// Rows in those files.
    pub expired_rows: u64,
    /// Bytes of those files.
    pub expired_bytes: u64,
    /// Snapshots the expiry removed from the metadata.
    pub expired_snapshots: usize,
    /// Snapshots the append removed beyond `lake.snapshots.retained`.
    pub retired_snapshots: usize,
    /// Data manifests the append merged into one (0 when it did not merge).
    pub merged_manifests: usize,
    /// The new earliest readable offset of each bucket retention moved forward.
    pub earliest: BTreeMap<Bucket, Offset>,
    /// Small data files compaction replaced (0 when it did not run).
    pub compacted_files: usize,
    /// The data files it replaced them with.
    pub compacted_into: usize,
    /// Compaction stopped at its byte budget: more small files wait.
    pub compaction_backlog: bool,
}

/// The lease a round runs under, renewed as it goes. Renewal must keep the epoch: a new
/// epoch means the lease lapsed, another compactor may have repaired the table meanwhile
/// (deleting this round's files as orphans), so the round must not commit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeldLease {
    pub(crate) lease: LakeLease,
    /// Clock reading (µs) when the lease was last renewed.
    pub(crate) renewed_at: i64,
}

impl HeldLease {
    /// Renews the lease once a third of its time has passed; fails if it could not be renewed
    /// under the same epoch.
    pub(crate) async fn renew_if_due(
        &mut self,
        index: &dyn LakeCatalog,
        info: &TableInfo,
        options: &CompactorOptions,
        env: &Env,
    ) -> Result<(), RoundError> {
        let now = env.clock.now().0;
        let third = i64::try_from(options.lease_ttl.as_micros() / 3).unwrap_or(i64::MAX);
        if now.saturating_sub(self.renewed_at) < third {
            return Ok(());
        }
        self.renew(index, info, options, env).await
    }

    /// Renews the lease now; fails if it could not be renewed under the same epoch.
    pub(crate) async fn renew(
        &mut self,
        index: &dyn LakeCatalog,
        info: &TableInfo,
        options: &CompactorOptions,
        env: &Env,
    ) -> Result<(), RoundError> {
        let now = env.clock.now().0;
        let lost = RoundError::LeaseLost {
            table: info.id,
            epoch: self.lease.epoch,
        };
        match index
            .acquire_lake_lease(info.id, self.lease.owner, options.lease_ttl)
            .await
        {
            Ok(lease) if lease.epoch == self.lease.epoch => {
                self.lease = lease;
                self.renewed_at = now;
                Ok(())
            }
            Ok(_) | Err(LakeCommitError::Fenced { .. }) => Err(lost),
            Err(error) => Err(error.into()),
        }
    }
}

/// Everything one round needs.
pub(crate) struct Round<'a> {
    pub(crate) index: &'a dyn LakeCatalog,
    pub(crate) cache: &'a PagedCache,
    pub(crate) storage: &'a LakeStorage,
    pub(crate) options: &'a CompactorOptions,
    pub(crate) env: &'a Env,
    pub(crate) info: &'a TableInfo,
    pub(crate) lease: &'a mut HeldLease,
    /// The table's `lake.snapshots.retained`.
    pub(crate) snapshots_retained: usize,
}

/// A round's result other than an error.
pub(crate) enum Tiered {
    /// No bucket has committed rows above its watermark.
    Idle,
    Committed(Box<CommittedRound>),
}

/// A committed round: the report, the new table version, the bucket the next round starts at.
pub(crate) struct CommittedRound {
    pub(crate) report: RoundCommitted,
    pub(crate) table: LakeTable,
    pub(crate) next_cursor: u32,
    /// Some expired files could not be deleted after the commit: repair before the next
    /// round, for which they are orphans.
    pub(crate) repair_next: bool,
}

/// A committed expiry: the new version and what it removed.
struct Expired {
    table: LakeTable,
    snapshot_id: i64,
    files: usize,
    rows: u64,
    bytes: u64,
    snapshots: usize,
    earliest: BTreeMap<Bucket, Offset>,
    /// Deleting the expired files failed (they are orphans now).
    cleanup_failed: bool,
}

/// A committed rewrite of small files.
struct Compacted {
    table: LakeTable,
    snapshot_id: i64,
    /// Files replaced, and files written in their place.
    replaced: usize,
    written: usize,
    /// The byte budget left more to rewrite.
    more: bool,
    retired_snapshots: usize,
    /// Deleting what the rewrite freed failed (orphans now).
    cleanup_failed: bool,
}

/// What the write phase read.
struct Written {
    rows: u64,
    chunk_bytes: u64,
    backlog: bool,
    next_cursor: u32,
}

impl Written {
    /// Nothing read yet; a round that reads everything pending moves the cursor on by one.
    fn new(cursor: u32) -> Self {
        Self {
            rows: 0,
            chunk_bytes: 0,
            backlog: false,
            next_cursor: cursor.wrapping_add(1),
        }
    }

    fn read(&mut self, entry: &ChunkEntry) {
        self.rows += u64::from(entry.row_count);
        self.chunk_bytes += entry.chunk_len;
    }

    /// The round stopped at its limits in `bucket`: the next round starts after it, so a
    /// bucket with a steady backlog cannot starve the others.
    fn round_full(&mut self, bucket: Bucket) {
        self.backlog = true;
        self.next_cursor = bucket.0.wrapping_add(1);
    }
}

/// What [`Round::next_chunk`] found.
enum NextChunk {
    Read(ChunkEntry),
    /// The bucket has nothing more to tier in this round.
    BucketDone,
    /// The round reached its row or byte limit.
    RoundFull,
}

impl Round<'_> {
    /// Runs one round on `base` (the committed version), visiting buckets from `cursor`;
    /// then, with `expiry`, expires the data files it removes; then, with `compaction`,
    /// rewrites small files. Each step commits its own snapshot on the version the previous
    /// one committed; one that fails after an earlier step committed fails the round (what
    /// was committed stays, and the next round repairs first and tries again).
    pub(crate) async fn run(
        &mut self,
        base: &LakeTable,
        cursor: u32,
        expiry: Option<ExpiryRule>,
        compaction: Option<CompactionRule>,
    ) -> Result<Tiered, RoundError> {
        let mut round = self.append(base, cursor).await?;
        // A round with nothing tiered yet reports the later steps' snapshot and cursor.
        let unchanged = |table: &LakeTable| CommittedRound {
            report: RoundCommitted::default(),
            table: table.clone(),
            next_cursor: cursor,
            repair_next: false,
        };
        if let Some(rule) = expiry {
            let current = round.as_ref().map_or(base, |round| &round.table);
            if let Some(expired) = self.expire(current, rule).await? {
                let mut committed = round.unwrap_or_else(|| unchanged(base));
                committed.report = RoundCommitted {
                    snapshot_id: expired.snapshot_id,
                    metadata_location: expired.table.metadata_location().to_owned(),
                    expired_files: expired.files,
                    expired_rows: expired.rows,
                    expired_bytes: expired.bytes,
                    expired_snapshots: expired.snapshots,
                    earliest: expired.earliest,
                    ..committed.report
                };
                committed.repair_next |= expired.cleanup_failed;
                committed.table = expired.table;
                round = Some(committed);
            }
        }
        if let Some(rule) = compaction.filter(|_| !self.info.is_primary_key_table()) {
            let current = round.as_ref().map_or(base, |round| &round.table);
            if let Some(compacted) = self.compact(current, &rule).await? {
                let mut committed = round.unwrap_or_else(|| unchanged(base));
                committed.report = RoundCommitted {
                    snapshot_id: compacted.snapshot_id,
                    metadata_location: compacted.table.metadata_location().to_owned(),
                    compacted_files: compacted.replaced,
                    compacted_into: compacted.written,
                    compaction_backlog: compacted.more,
                    retired_snapshots: committed.report.retired_snapshots
                        + compacted.retired_snapshots,
                    ..committed.report
                };
                committed.repair_next |= compacted.cleanup_failed;
                committed.table = compacted.table;
                round = Some(committed);
            }
        }
        if round.is_none()
            && let Some(evolved) = self.evolve_schema(base).await?
        {
            let mut committed = unchanged(base);
            committed.report = RoundCommitted {
                snapshot_id: evolved.metadata().current_snapshot_id().unwrap_or_default(),
                metadata_location: evolved.metadata_location().to_owned(),
                ..committed.report
            };
            committed.table = evolved;
            round = Some(committed);
        }
        Ok(match round {
            Some(round) => Tiered::Committed(Box::new(round)),
            None => Tiered::Idle,
        })
    }

    /// A round that committed nothing, of a table whose columns changed (ALTER): commits the
    /// evolved lake schema as a version of its own, no snapshot, so engines see the new
    /// columns before the next rows. (A round with rows stages the same evolution in the
    /// version it commits.) `None` when the lake schema is the table's.
    async fn evolve_schema(&mut self, base: &LakeTable) -> Result<Option<LakeTable>, RoundError> {
        // A metadata file that failed to write, like one whose commit failed with an
        // unknown outcome, is left to the repair the next round runs first.
        let Some(evolved) = base.stage_schema(self.info, self.env).await? else {
            return Ok(None);
        };
        let commit = |lease| LakeCommit {
            table: self.info.id,
            lease,
            expected_metadata_location: Some(base.metadata_location().to_owned()),
            metadata_location: evolved.metadata_location().to_owned(),
            snapshot_id: base.metadata().current_snapshot_id(),
            watermarks: BTreeMap::new(),
            added_files: Vec::new(),
            removed_files: Vec::new(),
            earliest: BTreeMap::new(),
            key_rows: Vec::new(),
        };
        if let Err(failed) = self.commit_under_lease(commit, &evolved).await {
            if failed.abandon {
                let written = [evolved.metadata_location().to_owned()];
                discard(delete_all(&self.storage.file_io(), &written).await);
            }
            return Err(failed.error);
        }
        tracing::info!(
            table = self.info.id.0,
            schema = evolved.metadata().current_schema_id(),
            "lake schema evolved"
        );
        Ok(Some(evolved))
    }

    /// Steps 1 to 4: tiers the committed rows above the watermarks of `base` as one
    /// snapshot. `None` when no bucket has any.
    async fn append(
        &mut self,
        base: &LakeTable,
        cursor: u32,
    ) -> Result<Option<CommittedRound>, RoundError> {
        let watermarks = base.watermarks()?;
        let bucket_count = self.info.descriptor.bucket_count.max(1);
        let mut pending = Vec::new();
        for i in 0..bucket_count {
            let bucket = Bucket((cursor % bucket_count + i) % bucket_count);
            let stream = table_streams(self.info)
                .nth(bucket.0 as usize)
                .expect("bucket is below the bucket count");
            let from = watermarks.get(&bucket).copied().unwrap_or(Offset(0));
            let tail = self.index.tail(stream).await?.next_offset;
            if tail > from {
                pending.push((stream, from, tail));
            }
        }
        if pending.is_empty() {
            return Ok(None);
        }

        // Chunks of every schema are read under the current one; a column the lake table
        // lacks is added to its schema in the version this round stages.
        let evolved = base.with_columns_of(self.info)?;
        let base = evolved.as_ref().unwrap_or(base);
        let keyed = self.info.is_primary_key_table();
        let mut append = LakeAppend::new(base, &self.options.write, self.env)?
            .retaining_snapshots(self.snapshots_retained);
        if keyed {
            append = append.with_sparse_offsets();
        }
        let wrote = if keyed {
            self.write_keyed(&mut append, &pending, cursor).await
        } else {
            (self.write(&mut append, &pending, cursor).await).map(|written| (written, Vec::new()))
        };
        let (written, key_rows) = match wrote {
            Ok(wrote) => wrote,
            Err(error) => {
                if !matches!(error, RoundError::Crash(_)) {
                    discard(append.abort().await);
                }
                return Err(error);
            }
        };
        let staged = match append.stage().await {
            Ok(staged) => staged,
            Err(LakeError::NothingToCommit) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        self.failpoint(Failpoint::AfterMetadata)?;

        let (committed, table, cleanup_failed) = self.commit(staged, key_rows).await?;
        Ok(Some(CommittedRound {
            report: RoundCommitted {
                rows: written.rows,
                chunk_bytes: written.chunk_bytes,
                backlog: written.backlog,
                ..committed
            },
            table,
            next_cursor: written.next_cursor,
            repair_next: cleanup_failed,
        }))
    }

    /// Retention: stages the expiry of the data files of `base` that `rule` removes, commits
    /// it to the index (compare-and-swap on `base`, under the round's lease epoch), publishes
    /// the version hint, then deletes what the new version no longer reaches. `None` when
    /// the rule removes no file.
    async fn expire(
        &mut self,
        base: &LakeTable,
        rule: ExpiryRule,
    ) -> Result<Option<Expired>, RoundError> {
        // The index's lake file entries say, without reading any manifest, whether anything
        // expires.
        if !has_expired_files(self.index, self.info, rule).await? {
            return Ok(None);
        }
        let Some(staged) = stage_expire(base, rule, self.env).await? else {
            return Ok(None);
        };
        self.failpoint(Failpoint::AfterMetadata)?;
        let earliest = match self.earliest_moves(&staged).await {
            Ok(earliest) => earliest,
            Err(error) => {
                discard(staged.abandon().await);
                return Err(error);
            }
        };
        let removed_files = staged
            .removed
            .iter()
            .map(|file| (file.bucket, file.end_offset))
            .collect();
        let commit = |lease| LakeCommit {
            table: self.info.id,
            lease,
            expected_metadata_location: Some(staged.base_metadata_location.clone()),
            metadata_location: staged.table.metadata_location().to_owned(),
            snapshot_id: Some(staged.snapshot_id),
            watermarks: BTreeMap::new(),
            added_files: Vec::new(),
            removed_files,
            earliest: earliest.clone(),
            key_rows: Vec::new(),
        };
        if let Err(failed) = self.commit_under_lease(commit, &staged.table).await {
            // Only a refused commit may abandon: after an unknown outcome the base may no
            // longer be the table, and the expired files must stay until repair decides.
            if failed.abandon {
                discard(staged.abandon().await);
            }
            return Err(failed.error);
        }
        let cleanup_failed = self.deleted_after_commit(staged.delete_expired_files().await);
        let expired = expired_report(staged, earliest, cleanup_failed);
        tracing::debug!(
            table = self.info.id.0,
            snapshot = expired.snapshot_id,
            files = expired.files,
            rows = expired.rows,
            "lake expiry committed"
        );
        Ok(Some(expired))
    }

    /// Small-file compaction: stages the rewrite `rule` chooses on `base`, commits it to the
    /// index (compare-and-swap on `base`, under the round's lease epoch; the replaced files'
    /// entries removed and the new files' added in one batch, no watermark moving), publishes
    /// the version hint, then deletes what the new version no longer reaches. `None` when
    /// the index's lake file entries show nothing to rewrite.
    async fn compact(
        &mut self,
        base: &LakeTable,
        rule: &CompactionRule,
    ) -> Result<Option<Compacted>, RoundError> {
        if !needs_compaction(self.index, self.info, rule).await? {
            return Ok(None);
        }
        let Some(staged) = stage_rewrite(
            base,
            rule,
            &self.options.write,
            self.snapshots_retained,
            self.env,
        )
        .await?
        else {
            return Ok(None);
        };
        self.failpoint(Failpoint::AfterMetadata)?;
        let mut ranges: BTreeMap<Bucket, Vec<Range<Offset>>> = BTreeMap::new();
        for group in &staged.groups {
            ranges
                .entry(group.bucket)
                .or_default()
                .push(group.offsets.clone());
        }
        let files: Vec<DataFile> = staged
            .groups
            .iter()
            .flat_map(|group| group.files.iter().cloned())
            .collect();
        let added = match lake_file_entries(
            self.info,
            self.storage,
            &staged.table,
            staged.snapshot_id,
            &files,
            &ranges,
        ) {
            Ok(added) => added,
            Err(error) => {
                discard(staged.abandon().await);
                return Err(error);
            }
        };
        let removed_files = staged
            .groups
            .iter()
            .flat_map(|group| group.replaced.iter())
            .map(|file| (file.bucket, file.end_offset))
            .collect();
        let commit = |lease| LakeCommit {
            table: self.info.id,
            lease,
            expected_metadata_location: Some(staged.base_metadata_location.clone()),
            metadata_location: staged.table.metadata_location().to_owned(),
            snapshot_id: Some(staged.snapshot_id),
            watermarks: BTreeMap::new(),
            added_files: added,
            removed_files,
            earliest: BTreeMap::new(),
            key_rows: Vec::new(),
        };
        if let Err(failed) = self.commit_under_lease(commit, &staged.table).await {
            if failed.abandon {
                discard(staged.abandon().await);
            }
            return Err(failed.error);
        }
        let cleanup_failed = self.deleted_after_commit(staged.delete_unreached_files().await);
        let replaced = staged.groups.iter().map(|g| g.replaced.len()).sum();
        tracing::debug!(
            table = self.info.id.0,
            snapshot = staged.snapshot_id,
            replaced,
            written = files.len(),
            "lake small files rewritten"
        );
        Ok(Some(Compacted {
            snapshot_id: staged.snapshot_id,
            replaced,
            written: files.len(),
            more: staged.more,
            retired_snapshots: staged.expired_snapshot_ids.len(),
            cleanup_failed,
            table: staged.table,
        }))
    }

    /// The earliest offsets of `staged` that move a bucket's earliest readable offset
    /// forward; the index refuses any other. Checks every removed file is below its bucket's
    /// new earliest offset.
    async fn earliest_moves(
        &self,
        staged: &StagedExpire,
    ) -> Result<BTreeMap<Bucket, Offset>, RoundError> {
        for file in &staged.removed {
            let earliest = staged.earliest.get(&file.bucket).copied();
            if earliest.is_none_or(|earliest| file.end_offset > earliest) {
                return Err(RoundError::BadDataFile {
                    table: self.info.id,
                    path: file.path.clone(),
                    reason: format!(
                        "expired file of bucket {} ends at offset {}, the new earliest offset is {earliest:?}",
                        file.bucket.0, file.end_offset
                    ),
                });
            }
        }
        let mut moves = BTreeMap::new();
        for (bucket, offset) in &staged.earliest {
            let stream = StreamId::new(self.info.id, PartitionId(0), *bucket);
            if *offset > self.index.tail(stream).await?.earliest_offset {
                moves.insert(*bucket, *offset);
            }
        }
        Ok(moves)
    }

    /// Step 1: reads the pending chunks of each bucket into `append` and closes the data
    /// files.
    async fn write(
        &mut self,
        append: &mut LakeAppend,
        pending: &[(StreamId, Offset, Offset)],
        cursor: u32,
    ) -> Result<Written, RoundError> {
        let schema = &self.info.descriptor.schema;
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        let read_schema = read_schema(schema, &all);
        let mut written = Written::new(cursor);
        'buckets: for (stream, from, tail) in pending {
            let mut chunks = ChunkPages::new(self.index, *stream, *from);
            let mut next = *from;
            loop {
                let entry = match self
                    .next_chunk(&mut chunks, *stream, next, *tail, &written)
                    .await?
                {
                    NextChunk::Read(entry) => entry,
                    NextChunk::BucketDone => break,
                    NextChunk::RoundFull => {
                        append.finish_bucket(stream.bucket).await?;
                        written.round_full(stream.bucket);
                        break 'buckets;
                    }
                };
                let batch = self.read_chunk(*stream, &entry, &all, &read_schema).await?;
                append.write(stream.bucket, &batch).await?;
                next = entry.end_offset();
                written.read(&entry);
                self.lease
                    .renew_if_due(self.index, self.info, self.options, self.env)
                    .await?;
            }
            append.finish_bucket(stream.bucket).await?;
        }
        self.failpoint(Failpoint::AfterDataFiles)?;
        Ok(written)
    }

    /// The next committed chunk of `stream` to tier, continuing exactly at `next`: none once
    /// the bucket reaches `tail` (or a chunk not durable yet), nor once the round is full.
    async fn next_chunk(
        &self,
        chunks: &mut ChunkPages<'_>,
        stream: StreamId,
        next: Offset,
        tail: Offset,
        written: &Written,
    ) -> Result<NextChunk, RoundError> {
        if next >= tail {
            return Ok(NextChunk::BucketDone);
        }
        let Some(entry) = chunks.next().await? else {
            return Err(RoundError::ChunkGap {
                stream,
                expected: next,
                found: tail,
            });
        };
        if entry.base_offset != next {
            return Err(RoundError::ChunkGap {
                stream,
                expected: next,
                found: entry.base_offset,
            });
        }
        if entry.end_offset() > tail {
            // Not durable yet: the next round takes it.
            return Ok(NextChunk::BucketDone);
        }
        let over_rows = written.rows + u64::from(entry.row_count) > self.options.max_round_rows;
        let over_bytes = written.chunk_bytes + entry.chunk_len > self.options.max_round_bytes;
        if written.rows > 0 && (over_rows || over_bytes) {
            return Ok(NextChunk::RoundFull);
        }
        Ok(NextChunk::Read(entry))
    }

    /// Reads and decodes one whole chunk through the shared log-read path (the page cache,
    /// checksums, the index's row count) and adds the system columns.
    async fn read_chunk(
        &self,
        stream: StreamId,
        entry: &ChunkEntry,
        all: &[usize],
        read_schema: &SchemaRef,
    ) -> Result<RecordBatch, RoundError> {
        let object = entry.object.path();
        let read = ChunkRead {
            cache: self.cache,
            table: self.info,
            projection: all,
        };
        let chunk_error = |error: ChunkError| match error {
            ChunkError::Storage { path, message } => {
                RoundError::storage("ranged get", path, message)
            }
            ChunkError::Corrupt { message, .. } => RoundError::CorruptChunk {
                stream,
                offset: entry.base_offset,
                object: object.clone(),
                reason: message,
            },
            error @ (ChunkError::NewerSchema { .. } | ChunkError::SchemaChanged { .. }) => {
                RoundError::TableChanged {
                    stream,
                    reason: error.to_string(),
                }
            }
        };
        let batch = read.read(stream, entry).await.map_err(chunk_error)?;
        with_system_columns(
            read_schema,
            stream,
            &batch,
            entry.base_offset,
            entry.commit_ts,
        )
        .map_err(chunk_error)
    }

    /// Steps 3 and 4: commits `staged` to the index and publishes the version hint.
    async fn commit(
        &mut self,
        staged: StagedAppend,
        key_rows: keyed::KeyRows,
    ) -> Result<(RoundCommitted, LakeTable, bool), RoundError> {
        // A primary-key table's lake files hold sparse offsets and are not read by offset
        // (its changelog stays in the WAL): no lake file entries, the lake rows of its keys
        // instead.
        let files = if self.info.is_primary_key_table() {
            Ok(Vec::new())
        } else {
            let ranges = staged
                .offsets
                .iter()
                .map(|(bucket, range)| (*bucket, vec![range.clone()]))
                .collect();
            lake_file_entries(
                self.info,
                self.storage,
                &staged.table,
                staged.snapshot_id,
                &staged.data_files,
                &ranges,
            )
        };
        let files = match files {
            Ok(files) => files,
            Err(error) => {
                discard(staged.abandon().await);
                return Err(error);
            }
        };
        let watermarks: BTreeMap<Bucket, Offset> = staged
            .offsets
            .iter()
            .map(|(bucket, range)| (*bucket, range.end))
            .collect();
        let commit = |lease| LakeCommit {
            table: self.info.id,
            lease,
            expected_metadata_location: Some(staged.base_metadata_location.clone()),
            metadata_location: staged.table.metadata_location().to_owned(),
            snapshot_id: Some(staged.snapshot_id),
            watermarks: watermarks.clone(),
            added_files: files,
            // Retention commits its own snapshot (see `expire`).
            removed_files: Vec::new(),
            earliest: BTreeMap::new(),
            key_rows,
        };
        let committed = match self.commit_under_lease(commit, &staged.table).await {
            Ok(committed) => committed,
            Err(failed) => {
                if failed.abandon {
                    // Refused before anything was written: nothing references the files.
                    discard(staged.abandon().await);
                }
                return Err(failed.error);
            }
        };
        tracing::debug!(
            table = self.info.id.0,
            snapshot = staged.snapshot_id,
            files = staged.data_files.len(),
            trimmed = committed.trimmed_chunks,
            retired_snapshots = staged.expired_snapshot_ids.len(),
            merged_manifests = staged.merged_manifests,
            "lake round committed"
        );
        // What the new version no longer reaches; a failure leaves orphans for the repair
        // the next round runs first.
        let cleanup_failed = self.deleted_after_commit(staged.delete_unreached_files().await);
        Ok((
            RoundCommitted {
                snapshot_id: staged.snapshot_id,
                metadata_location: staged.table.metadata_location().to_owned(),
                rows: 0,
                chunk_bytes: 0,
                data_files: staged.data_files.len(),
                watermarks,
                trimmed_chunks: committed.trimmed_chunks,
                trimmed_objects: committed.trimmed_objects.len(),
                retired_snapshots: staged.expired_snapshot_ids.len(),
                merged_manifests: staged.merged_manifests,
                ..RoundCommitted::default()
            },
            staged.table,
            cleanup_failed,
        ))
    }

    /// Whether deleting what a committed version freed failed (`deleted`'s error is logged):
    /// what is left is an orphan, and the next round repairs first.
    fn deleted_after_commit(&self, deleted: Result<(), LakeError>) -> bool {
        match deleted {
            Ok(()) => false,
            Err(error) => {
                tracing::warn!(
                    table = self.info.id.0,
                    %error,
                    "files a lake commit freed not deleted; orphans remain for repair"
                );
                true
            }
        }
    }

    /// Crashes the round here if a test's failpoint hook says so (`testing` feature only).
    fn failpoint(&self, point: Failpoint) -> Result<(), RoundError> {
        #[cfg(feature = "testing")]
        if let Some(hook) = &self.options.failpoints {
            return (hook.0)(point).map_err(RoundError::from);
        }
        let _ = point;
        Ok(())
    }
}

/// Whether `rule` removes some file (by the index's lake file entries, which agree with the
/// lake table's manifests): some bucket's first file holds only rows older than
/// `rule.before`, or its other files hold `rule.max_bytes` without it.
pub(crate) async fn has_expired_files(
    index: &dyn LakeCatalog,
    info: &TableInfo,
    rule: ExpiryRule,
) -> Result<bool, RoundError> {
    for stream in table_streams(info) {
        if let Some(before) = rule.before {
            let files = index.lake_files(stream, Offset(0), 1).await?;
            if files.first().is_some_and(|first| first.max_ts < before) {
                return Ok(true);
            }
        }
        if let Some(max) = rule.max_bytes {
            // The first file goes when the others hold the bound without it.
            let mut others: u64 = 0;
            let mut from = Offset(0);
            loop {
                let page = index.lake_files(stream, from, INDEX_PAGE_ENTRIES).await?;
                let skip = usize::from(from == Offset(0));
                others += page.iter().skip(skip).map(|f| f.file_size).sum::<u64>();
                if !page.is_empty() && others >= max {
                    return Ok(true);
                }
                match page.last() {
                    Some(last) if page.len() == INDEX_PAGE_ENTRIES => from = last.end_offset(),
                    _ => break,
                }
            }
        }
    }
    Ok(false)
}

/// Whether `rule` rewrites some bucket's files (by the index's lake file entries, which
/// agree with the lake table's manifests).
pub(crate) async fn needs_compaction(
    index: &dyn LakeCatalog,
    info: &TableInfo,
    rule: &CompactionRule,
) -> Result<bool, RoundError> {
    for stream in table_streams(info) {
        let files: Vec<(Range<Offset>, u64)> = all_lake_files(index, stream, Offset(0))
            .await?
            .into_iter()
            .map(|file| (file.base_offset..file.end_offset(), file.file_size))
            .collect();
        if !choose_groups(&files, rule).is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The report of a committed expiry.
fn expired_report(
    staged: StagedExpire,
    earliest: BTreeMap<Bucket, Offset>,
    cleanup_failed: bool,
) -> Expired {
    Expired {
        snapshot_id: staged.snapshot_id,
        files: staged.removed.len(),
        rows: staged.removed.iter().map(|file| file.record_count).sum(),
        bytes: staged.removed.iter().map(|file| file.file_size).sum(),
        snapshots: staged.expired_snapshot_ids.len(),
        earliest,
        cleanup_failed,
        table: staged.table,
    }
}

/// Logs a failed cleanup: what it could not delete is an orphan for the next repair.
/// Why [`Round::commit_under_lease`] did not commit, and whether the round's staged files may
/// be deleted: only when the index refused the commit, never when its outcome is unknown.
struct CommitFailed {
    error: RoundError,
    abandon: bool,
}

impl Round<'_> {
    /// Steps shared by every commit of a round: renew the lease (it must keep the epoch the
    /// round started with), commit what `commit` builds under it, then publish the version
    /// hint of `version`. A hint that cannot be written is only logged: the pointer in the
    /// index is the truth, and the next repair rewrites the hint.
    async fn commit_under_lease(
        &mut self,
        commit: impl FnOnce(LakeLease) -> LakeCommit,
        version: &LakeTable,
    ) -> Result<LakeCommitted, CommitFailed> {
        if let Err(error) = self
            .lease
            .renew(self.index, self.info, self.options, self.env)
            .await
        {
            let abandon = matches!(error, RoundError::LeaseLost { .. });
            return Err(CommitFailed { error, abandon });
        }
        let committed = match self.index.commit_lake(commit(self.lease.lease)).await {
            Ok(committed) => committed,
            // Unknown outcome: the batch may be durable. Delete nothing.
            Err(error @ LakeCommitError::Index(_)) => {
                return Err(CommitFailed {
                    error: error.into(),
                    abandon: false,
                });
            }
            Err(error) => {
                return Err(CommitFailed {
                    error: error.into(),
                    abandon: true,
                });
            }
        };
        self.failpoint(Failpoint::AfterIndexCommit)
            .map_err(|error| CommitFailed {
                error,
                abandon: false,
            })?;
        if let Err(error) = version.publish_version_hint().await {
            tracing::warn!(table = self.info.id.0, %error, "version hint not published");
        }
        Ok(committed)
    }
}

fn discard(result: Result<(), LakeError>) {
    if let Err(error) = result {
        tracing::warn!(%error, "lake round cleanup failed; orphans remain for repair");
    }
}

/// One lake file entry per data file `files` of the snapshot `snapshot_id` of `table`, from
/// the files' partition and column bounds. Checks that each bucket's files tile exactly the
/// offset ranges `ranges` gives it (in order), and no other bucket has files.
fn lake_file_entries(
    info: &TableInfo,
    storage: &LakeStorage,
    table: &LakeTable,
    snapshot_id: i64,
    files: &[DataFile],
    ranges: &BTreeMap<Bucket, Vec<Range<Offset>>>,
) -> Result<Vec<(Bucket, LakeFileEntry)>, RoundError> {
    let schema = table.metadata().current_schema();
    // Reads find each column under the name it has in the table schema the lake schema
    // reflects (the files were written with the lake schema's names).
    let schema_id = Some(table.reflected_schema(info));
    let field_id = |name: &str| {
        schema
            .field_by_name(name)
            .map(|f| f.id)
            .ok_or_else(|| LakeError::InvalidMetadata {
                location: table.metadata_location().to_owned(),
                reason: format!("the lake schema has no `{name}` column"),
            })
    };
    let (offset_id, ts_id) = (field_id(OFFSET_COLUMN)?, field_id(TIMESTAMP_COLUMN)?);
    let mut entries: Vec<(Bucket, LakeFileEntry)> = Vec::with_capacity(files.len());
    for file in files {
        let bad = |reason: String| RoundError::BadDataFile {
            table: info.id,
            path: file.file_path().to_owned(),
            reason,
        };
        let bucket =
            match file.partition().fields() {
                [Some(Literal::Primitive(PrimitiveLiteral::Int(b)))] => u32::try_from(*b)
                    .map(Bucket)
                    .map_err(|_| bad(format!("partition `_bucket` = {b}")))?,
                other => {
                    return Err(bad(format!(
                        "partition is {other:?}, expected one `_bucket`"
                    )));
                }
            };
        let (first, last) = (
            bound(file, offset_id, true).ok_or_else(|| bad("no `_offset` lower bound".into()))?,
            bound(file, offset_id, false).ok_or_else(|| bad("no `_offset` upper bound".into()))?,
        );
        let rows = file.record_count();
        if rows == 0 || last < first || (last - first) as u64 + 1 != rows {
            return Err(bad(format!(
                "{rows} rows but `_offset` bounds {first}..={last}: offsets are not dense"
            )));
        }
        let min_ts = bound(file, ts_id, true).ok_or_else(|| bad("no `_timestamp` bound".into()))?;
        let max_ts =
            bound(file, ts_id, false).ok_or_else(|| bad("no `_timestamp` bound".into()))?;
        let path = storage.root().path_of(file.file_path())?;
        entries.push((
            bucket,
            LakeFileEntry {
                path: path.to_string(),
                base_offset: Offset(
                    u64::try_from(first).map_err(|_| bad("negative offset".into()))?,
                ),
                row_count: rows,
                file_size: file.file_size_in_bytes(),
                snapshot_id,
                min_ts: TimestampMicros(min_ts),
                max_ts: TimestampMicros(max_ts),
                schema_id,
            },
        ));
    }
    entries.sort_by_key(|(bucket, file)| (*bucket, file.base_offset));
    let bad_tiling = |path: &str, reason: String| RoundError::BadDataFile {
        table: info.id,
        path: path.to_owned(),
        reason,
    };
    for (bucket, expected) in ranges {
        let mut files = entries.iter().filter(|(b, _)| b == bucket).peekable();
        for range in expected {
            let mut next = range.start;
            while next < range.end {
                let Some((_, file)) = files.next() else {
                    return Err(bad_tiling(
                        table.metadata_location(),
                        format!(
                            "bucket {} files end at offset {next}, expected up to {}",
                            bucket.0, range.end
                        ),
                    ));
                };
                if file.base_offset != next {
                    return Err(bad_tiling(
                        &file.path,
                        format!(
                            "bucket {} file starts at offset {}, expected {next}",
                            bucket.0, file.base_offset
                        ),
                    ));
                }
                next = file.end_offset();
            }
            if next != range.end {
                return Err(bad_tiling(
                    table.metadata_location(),
                    format!(
                        "bucket {} files end at offset {next}, expected {}",
                        bucket.0, range.end
                    ),
                ));
            }
        }
        if let Some((_, file)) = files.next() {
            return Err(bad_tiling(
                &file.path,
                format!(
                    "bucket {} file at offset {} is beyond the offsets written",
                    bucket.0, file.base_offset
                ),
            ));
        }
    }
    if let Some((bucket, file)) = entries.iter().find(|(b, _)| !ranges.contains_key(b)) {
        return Err(bad_tiling(
            &file.path,
            format!("bucket {} was not written", bucket.0),
        ));
    }
    Ok(entries)
}

/// A file's lower (or upper) bound of an integer or timestamp column.
fn bound(file: &DataFile, field_id: i32, lower: bool) -> Option<i64> {
    let bounds = if lower {
        file.lower_bounds()
    } else {
        file.upper_bounds()
    };
    match bounds.get(&field_id)?.literal() {
        PrimitiveLiteral::Long(value) => Some(*value),
        PrimitiveLiteral::Int(value) => Some(i64::from(*value)),
        _ => None,
    }
}

/// The chunk entries of one stream from an offset on, fetched a page at a time.
struct ChunkPages<'a> {
    index: &'a dyn LakeCatalog,
    stream: StreamId,
    next: Offset,
    page: std::collections::VecDeque<ChunkEntry>,
    done: bool,
}

impl<'a> ChunkPages<'a> {
    fn new(index: &'a dyn LakeCatalog, stream: StreamId, from: Offset) -> Self {
        Self {
            index,
            stream,
            next: from,
            page: std::collections::VecDeque::new(),
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<ChunkEntry>, inlet_index::IndexError> {
        if self.page.is_empty() && !self.done {
            let page = self
                .index
                .chunks(self.stream, self.next, INDEX_PAGE_ENTRIES)
                .await?;
            self.done = page.len() < INDEX_PAGE_ENTRIES;
            self.page.extend(page);
        }
        let entry = self.page.pop_front();
        if let Some(entry) = &entry {
            self.next = entry.end_offset();
        }
        Ok(entry)
    }
}
