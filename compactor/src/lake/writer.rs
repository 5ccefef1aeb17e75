//! The lake writer: one tiering round of one table, from Arrow rows to a staged Iceberg
//! commit.
//!
//! A [`LakeAppend`] starts from one version of the lake table (the *base*). Rows of each
//! bucket, sorted by offset and continuing exactly where the base's watermark for the bucket
//! left off, go into large Parquet data files through iceberg-rust's writer stack
//! (`ParquetWriterBuilder` under a `RollingFileWriter`, one partition = one bucket). Then
//! [`LakeAppend::stage`] writes the manifest, the manifest list and the next metadata file,
//! built directly from the base (no catalog, so nothing can rebase it): a fast-append
//! snapshot whose parent is the base's snapshot and whose summary records the offset range
//! each bucket gained and the new watermarks.
//!
//! Staging commits nothing. The caller commits by swapping the table's metadata pointer from
//! [`StagedAppend::base_metadata_location`] to the new location with a compare-and-swap, so two
//! compactors (or a retry) staging on the same base can never both land; the loser calls
//! [`StagedAppend::abandon`] to delete what it wrote. Every file a round writes is listed
//! ([`StagedAppend::files_written`]) so they can be recorded before the commit and deleted if
//! it is abandoned. Only after the commit may the caller publish the version hint.
//!
//! Parquet encoding runs inline in the calling task (iceberg-rust's `ParquetWriter` encodes
//! inside `write`); the caller bounds how many rounds run at once.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Int64Array, RecordBatch, StringArray, new_null_array};
use arrow_cast::{CastOptions, cast_with_options};
use arrow_schema::{DataType, SchemaRef};
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, Literal, ManifestContentType, ManifestFile,
    ManifestListWriter, ManifestWriter, ManifestWriterBuilder, NestedField, Operation,
    PartitionKey, PartitionSpecRef, PrimitiveType, Schema as IcebergSchema,
    SchemaRef as IcebergSchemaRef, Snapshot, SnapshotSummaryCollector, Struct, Summary, Type,
};
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator, LocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::{RollingFileWriter, RollingFileWriterBuilder};
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset};
use inlet_core::table::{BUCKET_COLUMN, OFFSET_COLUMN, TIMESTAMP_COLUMN};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use uuid::Uuid;

use crate::lake::error::LakeError;
use crate::lake::table::{
    LakeTable, OFFSET_SORT_ORDER_ID, OFFSETS_PROPERTY_PREFIX, WATERMARKS_PROPERTY,
    format_watermarks, new_uuid,
};
use crate::lake::version::next_version;
use crate::lake::{delete_all, read_manifest_list};

/// How a round writes its data files (`[lake.write]` in `inlet serve`'s settings).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeWriteOptions {
    /// A data file is closed and the next one started once it has grown past this size.
    /// Larger means fewer files and manifest entries for engines to plan, but more rows to
    /// rewrite per file later. Default 512 MiB (Iceberg's `write.target-file-size-bytes`).
    pub target_file_bytes: usize,
    /// Rows per Parquet row group at most; a row group is the unit engines read in parallel
    /// and the writer holds in memory. Default 1 Mi rows.
    pub row_group_rows: usize,
    /// Estimated bytes per row group at most, whichever limit comes first. Bounds the
    /// writer's memory for wide rows. Default 128 MiB.
    pub row_group_bytes: usize,
    /// zstd level: higher = smaller files, slower tiering. Default 1 (zstd's fastest level
    /// still beats snappy on size).
    pub zstd_level: i32,
    /// Once the base snapshot has this many data manifests, a round merges them and its own
    /// files into one manifest (Iceberg's `commit.manifest.min-count-to-merge`, default
    /// 100), so engines plan from one manifest, not one per round. At least 2.
    pub merge_manifests_at: usize,
}

impl Default for LakeWriteOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: 512 * 1024 * 1024,
            row_group_rows: 1024 * 1024,
            row_group_bytes: 128 * 1024 * 1024,
            zstd_level: 1,
            merge_manifests_at: 100,
        }
    }
}

type DataWriter =
    RollingFileWriter<ParquetWriterBuilder, RecordingLocations, DefaultFileNameGenerator>;

/// Generates data file locations the default way (`<location>/data/_bucket=<b>/<name>`) and
/// records each, so a round knows every object it may have created, even after a failure.
#[derive(Clone)]
struct RecordingLocations {
    inner: DefaultLocationGenerator,
    written: Arc<Mutex<Vec<String>>>,
}

impl LocationGenerator for RecordingLocations {
    fn generate_location(&self, partition_key: Option<&PartitionKey>, file_name: &str) -> String {
        let location = self.inner.generate_location(partition_key, file_name);
        record(&self.written, &location);
        location
    }
}

fn record(written: &Mutex<Vec<String>>, location: &str) {
    written
        .lock()
        .expect("written-files lock poisoned")
        .push(location.to_owned());
}

/// One bucket's progress in a round.
struct BucketRound {
    /// The base's watermark for the bucket: where this round started.
    start: Offset,
    /// The next offset the bucket expects.
    next: Offset,
    /// The open data files, if rows came since the bucket was last finished.
    writer: Option<DataWriter>,
    /// Closed data files.
    files: Vec<DataFile>,
}

/// One tiering round of one table: rows in, a staged commit out. See the module docs.
pub struct LakeAppend {
    base: LakeTable,
    env: Env,
    /// Names this round's files; from the injected id source, so runs replay.
    round_id: Uuid,
    write_schema: SchemaRef,
    bucket_index: usize,
    offset_index: usize,
    iceberg_schema: IcebergSchemaRef,
    spec: PartitionSpecRef,
    files: RollingFileWriterBuilder<
        ParquetWriterBuilder,
        RecordingLocations,
        DefaultFileNameGenerator,
    >,
    base_watermarks: BTreeMap<Bucket, Offset>,
    buckets: BTreeMap<Bucket, BucketRound>,
    written: Arc<Mutex<Vec<String>>>,
    /// Set when a write failed half-way: the round can only be aborted.
    failed: bool,
    /// Primary-key tables: rows' offsets ascend but need not be dense (a round writes each
    /// changed key's newest row, and position deletes of the rows they replace).
    sparse: bool,
    /// Position-delete files written so far ([`LakeAppend::delete_rows`]).
    delete_files: Vec<DataFile>,
    /// Parquet settings of data and delete files.
    properties: WriterProperties,
    /// Manifest merging ([`LakeWriteOptions::merge_manifests_at`]).
    merge_manifests_at: usize,
    /// Snapshots the round keeps, its own included ([`LakeAppend::retaining_snapshots`]).
    retained_snapshots: usize,
    /// Rewrites existing rows ([`LakeAppend::for_rewrite`]): runs start where
    /// [`LakeAppend::start_run`] says, and [`crate::lake::compact`] stages the snapshot.
    rewrite: bool,
}

/// A staged (written, not committed) append: the new metadata version and everything the
/// round wrote.
#[derive(Debug)]
pub struct StagedAppend {
    /// The new version of the table.
    pub table: LakeTable,
    /// The metadata location this version was built on: the value the commit must find
    /// (compare-and-swap) and replace with `table.metadata_location()`.
    pub base_metadata_location: String,
    /// The base's current snapshot, the new snapshot's parent.
    pub base_snapshot_id: Option<i64>,
    /// The new snapshot.
    pub snapshot_id: i64,
    /// Per bucket that moved: the offsets `[start, end)` this snapshot added.
    pub offsets: BTreeMap<Bucket, Range<Offset>>,
    /// Every bucket's watermark after this snapshot.
    pub watermarks: BTreeMap<Bucket, Offset>,
    /// The data files added, with their offset statistics.
    pub data_files: Vec<DataFile>,
    /// The position-delete files added (primary-key tables).
    pub delete_files: Vec<DataFile>,
    /// Every object the round wrote (data files, manifest, manifest list, metadata file), as
    /// URLs: record them before committing, delete them if the commit is abandoned.
    pub files_written: Vec<String>,
    /// The snapshots this version no longer has (beyond `retained_snapshots`).
    pub expired_snapshot_ids: Vec<i64>,
    /// Data manifests the round merged into one, if it merged.
    pub merged_manifests: usize,
    /// What the new version no longer reaches, as URLs: manifest lists of the expired
    /// snapshots, manifests no kept snapshot lists, metadata files that left the metadata
    /// log. Delete them only after the commit ([`StagedAppend::delete_unreached_files`]);
    /// until then the base is the table.
    pub files_to_delete_after_commit: Vec<String>,
}

impl LakeAppend {
    /// Starts a round on `base`, the version of the table the commit will replace.
    pub fn new(base: &LakeTable, options: &LakeWriteOptions, env: &Env) -> Result<Self, LakeError> {
        let metadata = base.metadata();
        let write_schema = base.write_schema()?;
        let index = |name: &str| {
            write_schema.index_of(name).map_err(|_| {
                LakeError::invalid_metadata(
                    base.metadata_location(),
                    format!("the lake schema has no `{name}` column"),
                )
            })
        };
        let (bucket_index, offset_index) = (index(BUCKET_COLUMN)?, index(OFFSET_COLUMN)?);
        index(TIMESTAMP_COLUMN)?;

        let offset_leaf = write_schema.fields()[..offset_index]
            .iter()
            .map(|field| leaf_columns(field.data_type()))
            .sum::<usize>();
        let zstd = ZstdLevel::try_new(options.zstd_level).map_err(|error| {
            iceberg::Error::new(
                iceberg::ErrorKind::DataInvalid,
                format!("invalid zstd level {}: {error}", options.zstd_level),
            )
        })?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(zstd))
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(options.row_group_bytes.max(1)))
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: i32::try_from(offset_leaf).expect("at most 2^31 leaf columns"),
                descending: false,
                nulls_first: false,
            }]))
            .build();

        let round_id = new_uuid(env);
        let written = Arc::new(Mutex::new(Vec::new()));
        let locations = RecordingLocations {
            inner: DefaultLocationGenerator::new(metadata)?,
            written: written.clone(),
        };
        let names =
            DefaultFileNameGenerator::new(round_id.to_string(), None, DataFileFormat::Parquet);
        let iceberg_schema = metadata.current_schema().clone();
        let files = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(properties.clone(), iceberg_schema.clone()),
            options.target_file_bytes,
            base.storage().file_io(),
            locations,
            names,
        );
        Ok(Self {
            base: base.clone(),
            env: env.clone(),
            round_id,
            write_schema,
            bucket_index,
            offset_index,
            iceberg_schema,
            spec: metadata.default_partition_spec().clone(),
            files,
            base_watermarks: base.watermarks()?,
            buckets: BTreeMap::new(),
            written,
            failed: false,
            sparse: false,
            delete_files: Vec::new(),
            properties,
            merge_manifests_at: options.merge_manifests_at,
            retained_snapshots: inlet_core::table::DEFAULT_LAKE_SNAPSHOTS_RETAINED,
            rewrite: false,
        })
    }

    /// Makes this a rewrite of rows the table already has: each run of a bucket starts at
    /// [`LakeAppend::start_run`] instead of the watermark, and no watermark moves. Staged by
    /// [`crate::lake::compact`], not [`LakeAppend::stage`].
    pub(crate) fn for_rewrite(mut self) -> Self {
        self.rewrite = true;
        self
    }

    /// Rewrite mode: closes `bucket`'s open file and continues the bucket at `at` (at or
    /// after where its previous run ended); returns how many files the bucket has closed.
    pub(crate) async fn start_run(
        &mut self,
        bucket: Bucket,
        at: Offset,
    ) -> Result<usize, LakeError> {
        if !self.rewrite {
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                "a run can only start at a chosen offset in a rewrite",
            )
            .into());
        }
        self.finish_bucket(bucket).await?;
        let round = self.buckets.entry(bucket).or_insert_with(|| BucketRound {
            start: at,
            next: at,
            writer: None,
            files: Vec::new(),
        });
        if at < round.next {
            return Err(LakeError::OffsetGap {
                bucket,
                expected: round.next,
                found: at,
            });
        }
        round.next = at;
        Ok(round.files.len())
    }

    /// The version this round started from.
    pub(crate) fn base(&self) -> &LakeTable {
        &self.base
    }

    /// Records `file` as written by this round (deleted if it is abandoned).
    pub(crate) fn record_written(&self, file: &str) {
        record(&self.written, file);
    }

    /// [`LakeAppend::record_written`] as a function of its own, for code that holds it
    /// across awaits.
    pub(crate) fn recorder(&self) -> impl FnMut(&str) + Send + 'static {
        let written = self.written.clone();
        move |file| record(&written, file)
    }

    /// How many snapshots the round keeps, its own included.
    pub(crate) fn retained_snapshots(&self) -> usize {
        self.retained_snapshots
    }

    /// Takes rows whose offsets ascend with gaps (a primary-key table's round writes only the
    /// newest row of each changed key); [`LakeAppend::advance`] then moves the watermark past
    /// the offsets that left no row.
    pub fn with_sparse_offsets(mut self) -> Self {
        self.sparse = true;
        self
    }

    /// Keeps the newest `count` snapshots (at least 1), this round's included: older ones
    /// leave the metadata, with their manifest lists and the manifests no kept snapshot
    /// reaches (the table's `lake.snapshots.retained`; default 100).
    pub fn retaining_snapshots(mut self, count: usize) -> Self {
        self.retained_snapshots = count.max(1);
        self
    }

    /// The offset `bucket` continues at: the base's watermark, moved by this round's rows.
    pub fn next_offset(&self, bucket: Bucket) -> Offset {
        match self.buckets.get(&bucket) {
            Some(round) => round.next,
            None => self
                .base_watermarks
                .get(&bucket)
                .copied()
                .unwrap_or(Offset(0)),
        }
    }

    /// Writes rows of `bucket`: the table's columns (by name; missing nullable columns are
    /// nulls) and `_bucket`, `_offset`, `_timestamp`, sorted by offset, dense, starting at
    /// [`LakeAppend::next_offset`]. Rows accumulate in the bucket's open data file until it
    /// reaches the target size or the bucket is finished.
    pub async fn write(&mut self, bucket: Bucket, batch: &RecordBatch) -> Result<(), LakeError> {
        self.check_usable()?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(&self.write_schema, batch)
            .map_err(|reason| LakeError::InvalidRows { bucket, reason })?;
        let next = self.next_offset(bucket);
        let end = check_rows(
            bucket,
            next,
            &batch,
            self.bucket_index,
            self.offset_index,
            self.sparse,
        )?;
        let partition = self.partition_key(bucket)?;
        let round = self.buckets.entry(bucket).or_insert_with(|| BucketRound {
            start: next,
            next,
            writer: None,
            files: Vec::new(),
        });
        let writer = round.writer.get_or_insert_with(|| self.files.build());
        if let Err(error) = writer.write(&Some(partition), &batch).await {
            self.failed = true;
            return Err(error.into());
        }
        round.next = end;
        Ok(())
    }

    /// Closes `bucket`'s open data file, if any.
    pub async fn finish_bucket(&mut self, bucket: Bucket) -> Result<(), LakeError> {
        self.check_usable()?;
        let Some(writer) = self.buckets.get_mut(&bucket).and_then(|r| r.writer.take()) else {
            return Ok(());
        };
        let partition = self.partition_key(bucket)?;
        let builders = match writer.close().await {
            Ok(builders) => builders,
            Err(error) => {
                self.failed = true;
                return Err(error.into());
            }
        };
        let mut files = Vec::with_capacity(builders.len());
        for mut builder in builders {
            let file = builder
                .content(DataContentType::Data)
                .partition(partition.data().clone())
                .partition_spec_id(self.spec.spec_id())
                .sort_order_id(
                    i32::try_from(OFFSET_SORT_ORDER_ID).expect("the sort order id is small"),
                )
                .build()
                .map_err(|error| {
                    iceberg::Error::new(
                        iceberg::ErrorKind::Unexpected,
                        format!("data file of bucket {} is incomplete: {error}", bucket.0),
                    )
                })?;
            files.push(file);
        }
        self.buckets
            .get_mut(&bucket)
            .expect("the bucket had a writer")
            .files
            .extend(files);
        Ok(())
    }

    /// Writes `batches` of `bucket` (see [`LakeAppend::write`]) and finishes the bucket.
    pub async fn write_bucket(
        &mut self,
        bucket: Bucket,
        batches: &[RecordBatch],
    ) -> Result<(), LakeError> {
        for batch in batches {
            self.write(bucket, batch).await?;
        }
        self.finish_bucket(bucket).await
    }

    /// The data files of `bucket` closed so far in this round, in the order their rows were
    /// written: a file's rows follow the previous file's.
    pub fn bucket_files(&self, bucket: Bucket) -> &[DataFile] {
        self.buckets
            .get(&bucket)
            .map_or(&[][..], |round| round.files.as_slice())
    }

    /// Writes a position-delete file of `bucket`: each `(data file URL, row position)` names a
    /// row of an earlier snapshot's data file that this snapshot deletes. Nothing for none.
    pub async fn delete_rows(
        &mut self,
        bucket: Bucket,
        mut rows: Vec<(String, u64)>,
    ) -> Result<(), LakeError> {
        self.check_usable()?;
        if rows.is_empty() {
            return Ok(());
        }
        // Iceberg's order for position deletes: by file, then position.
        rows.sort_unstable();
        rows.dedup();
        let schema = position_delete_schema()?;
        let arrow = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema)?);
        let positions = rows
            .iter()
            .map(|(_, position)| i64::try_from(*position))
            .collect::<Result<Vec<i64>, _>>()
            .map_err(|_| LakeError::InvalidRows {
                bucket,
                reason: "a row position beyond i64".to_owned(),
            })?;
        let batch = RecordBatch::try_new(
            arrow,
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(path, _)| path),
                )),
                Arc::new(Int64Array::from(positions)),
            ],
        )
        .map_err(|error| LakeError::InvalidRows {
            bucket,
            reason: format!("position deletes: {error}"),
        })?;
        let partition = self.partition_key(bucket)?;
        let path = format!(
            "{}/data/{}={}/{}-deletes-{}.parquet",
            self.base.location(),
            BUCKET_COLUMN,
            bucket.0,
            self.round_id,
            self.delete_files.len()
        );
        record(&self.written, &path);
        let output = self.base.storage().file_io().new_output(&path)?;
        let mut writer = ParquetWriterBuilder::new(self.properties.clone(), Arc::new(schema))
            .build(output)
            .await?;
        let closed = async {
            writer.write(&batch).await?;
            writer.close().await
        }
        .await;
        let builders = match closed {
            Ok(builders) => builders,
            Err(error) => {
                self.failed = true;
                return Err(error.into());
            }
        };
        for mut builder in builders {
            let file = builder
                .content(DataContentType::PositionDeletes)
                .partition(partition.data().clone())
                .partition_spec_id(self.spec.spec_id())
                .build()
                .map_err(|error| {
                    iceberg::Error::new(
                        iceberg::ErrorKind::Unexpected,
                        format!("delete file of bucket {} is incomplete: {error}", bucket.0),
                    )
                })?;
            self.delete_files.push(file);
        }
        Ok(())
    }

    /// Moves `bucket`'s watermark to `to` without rows, for offsets that leave nothing in the
    /// lake (never for log tables, whose every offset is a row).
    pub async fn advance(&mut self, bucket: Bucket, to: Offset) -> Result<(), LakeError> {
        self.check_usable()?;
        let next = self.next_offset(bucket);
        if to < next {
            return Err(LakeError::OffsetGap {
                bucket,
                expected: next,
                found: to,
            });
        }
        self.finish_bucket(bucket).await?;
        let round = self.buckets.entry(bucket).or_insert_with(|| BucketRound {
            start: next,
            next,
            writer: None,
            files: Vec::new(),
        });
        round.next = to;
        Ok(())
    }

    /// Every object this round has written so far, as URLs.
    pub fn files_written(&self) -> Vec<String> {
        self.written
            .lock()
            .expect("written-files lock poisoned")
            .clone()
    }

    /// Abandons the round, deleting everything it wrote.
    pub async fn abort(self) -> Result<(), LakeError> {
        delete_all(&self.base.storage().file_io(), &self.files_written()).await
    }

    /// Finishes every bucket and writes the manifest, manifest list and next metadata file;
    /// see the module docs. On failure, deletes what the round wrote (best effort: what
    /// cannot be deleted is an orphan for garbage collection) and returns the error.
    pub async fn stage(mut self) -> Result<StagedAppend, LakeError> {
        match self.stage_files().await {
            Ok(staged) => Ok(staged),
            Err(error) => {
                if let Err(cleanup) =
                    delete_all(&self.base.storage().file_io(), &self.files_written()).await
                {
                    tracing::warn!(%cleanup, "lake round failed and left orphan files");
                }
                Err(error)
            }
        }
    }

    async fn stage_files(&mut self) -> Result<StagedAppend, LakeError> {
        self.check_usable()?;
        if self.rewrite {
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                "a rewrite is staged as a replace snapshot, not an append",
            )
            .into());
        }
        let buckets: Vec<Bucket> = self.buckets.keys().copied().collect();
        for bucket in buckets {
            self.finish_bucket(bucket).await?;
        }
        let offsets: BTreeMap<Bucket, Range<Offset>> = self
            .buckets
            .iter()
            .filter(|(_, round)| round.next > round.start)
            .map(|(bucket, round)| (*bucket, round.start..round.next))
            .collect();
        if offsets.is_empty() {
            return Err(LakeError::NothingToCommit);
        }
        let mut watermarks = self.base_watermarks.clone();
        watermarks.extend(offsets.iter().map(|(bucket, range)| (*bucket, range.end)));
        let data_files: Vec<DataFile> = self
            .buckets
            .values()
            .flat_map(|round| round.files.iter().cloned())
            .collect();

        let base = self.base.metadata();
        let location = base.location().to_owned();
        let file_io = self.base.storage().file_io();
        let snapshot_id = self.new_snapshot_id();
        let parent = base.current_snapshot_id();
        let sequence_number = base.next_sequence_number();

        // Manifests: the base snapshot's, carried over as they are (fast append), plus one
        // for this round's data files and one for its position-delete files; once a kind
        // would have `merge_manifests_at` manifests, its carried manifests and this round's
        // files of that kind become one manifest instead.
        let format = base.format_version();
        let carried = match base.current_snapshot() {
            Some(snapshot) => {
                read_manifest_list(&file_io, snapshot.manifest_list(), format).await?
            }
            None => Vec::new(),
        };
        let mut manifests = Vec::new();
        let mut merged_manifests = 0;
        let round_files: [(&str, &Vec<DataFile>, ManifestContentType); 2] = [
            ("m0", &data_files, ManifestContentType::Data),
            ("m1", &self.delete_files, ManifestContentType::Deletes),
        ];
        for (name, files, content) in round_files {
            let of_content: Vec<&ManifestFile> = carried
                .iter()
                .filter(|file| file.content == content)
                .collect();
            let count = of_content.len() + usize::from(!files.is_empty());
            let deletes = content == ManifestContentType::Deletes;
            if count >= self.merge_manifests_at.max(2) {
                // One manifest of the kind: the carried entries as EXISTING (their snapshot
                // ids and sequence numbers kept, so position deletes apply as before), then
                // this round's files as ADDED.
                let mut writer = self.manifest_writer(name, snapshot_id, deletes)?;
                for file in of_content {
                    merged_manifests += 1;
                    let (entries, _) = file.load_manifest(&file_io).await?.into_parts();
                    for entry in entries.iter().filter(|entry| entry.is_alive()) {
                        let missing = |what: &str| {
                            LakeError::invalid_metadata(
                                self.base.metadata_location(),
                                format!("file `{}` has no {what}", entry.file_path()),
                            )
                        };
                        writer.add_existing_file(
                            entry.data_file().clone(),
                            entry.snapshot_id().ok_or_else(|| missing("snapshot id"))?,
                            entry
                                .sequence_number()
                                .ok_or_else(|| missing("sequence number"))?,
                            entry.file_sequence_number,
                        )?;
                    }
                }
                for file in files {
                    writer.add_file(file.clone(), sequence_number)?;
                }
                manifests.push(writer.write_manifest_file().await?);
                continue;
            }
            manifests.extend(of_content.into_iter().cloned());
            if !files.is_empty() {
                let mut writer = self.manifest_writer(name, snapshot_id, deletes)?;
                for file in files {
                    writer.add_file(file.clone(), sequence_number)?;
                }
                manifests.push(writer.write_manifest_file().await?);
            }
        }
        let manifest_list = format!(
            "{location}/metadata/snap-{snapshot_id}-0-{}.avro",
            self.round_id
        );
        record(&self.written, &manifest_list);
        let mut list = ManifestListWriter::v2(
            file_io.new_output(&manifest_list)?.writer().await?,
            snapshot_id,
            parent,
            sequence_number,
        );
        list.add_manifests(manifests.iter().cloned())?;
        list.close().await?;

        let summary = self.summary(&data_files, &offsets, &watermarks);
        let timestamp_ms = (self.env.clock.now().0 / 1000).max(base.last_updated_ms());
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(parent)
            .with_sequence_number(sequence_number)
            .with_timestamp_ms(timestamp_ms)
            .with_manifest_list(manifest_list)
            .with_summary(summary)
            .with_schema_id(base.current_schema_id())
            .build();
        let version = next_version(
            &self.base,
            snapshot,
            &manifests,
            self.retained_snapshots,
            &self.env,
            &mut self.recorder(),
        )
        .await?;

        Ok(StagedAppend {
            table: version.table,
            base_metadata_location: self.base.metadata_location().to_owned(),
            base_snapshot_id: parent,
            snapshot_id,
            offsets,
            watermarks,
            data_files,
            delete_files: self.delete_files.clone(),
            files_written: self.files_written(),
            expired_snapshot_ids: version.expired_snapshot_ids,
            merged_manifests,
            files_to_delete_after_commit: version.unreached,
        })
    }

    /// A writer of one manifest of this round (`deletes`: of position-delete files, else of
    /// data files), at `<table>/metadata/<round uuid>-<name>.avro`, recorded as written.
    pub(crate) fn manifest_writer(
        &self,
        name: &str,
        snapshot_id: i64,
        deletes: bool,
    ) -> Result<ManifestWriter, LakeError> {
        let path = format!(
            "{}/metadata/{}-{name}.avro",
            self.base.location(),
            self.round_id
        );
        record(&self.written, &path);
        let builder = ManifestWriterBuilder::new(
            self.base.storage().file_io().new_output(&path)?,
            Some(snapshot_id),
            self.iceberg_schema.clone(),
            self.spec.as_ref().clone(),
        );
        Ok(if deletes {
            builder.build_v2_deletes()
        } else {
            builder.build_v2_data()
        })
    }

    /// The snapshot summary: iceberg's file and record counts (totals carried from the base
    /// snapshot), then Inlet's offsets and watermarks.
    fn summary(
        &self,
        data_files: &[DataFile],
        offsets: &BTreeMap<Bucket, Range<Offset>>,
        watermarks: &BTreeMap<Bucket, Offset>,
    ) -> Summary {
        let mut collector = SnapshotSummaryCollector::default();
        for file in data_files.iter().chain(&self.delete_files) {
            collector.add_file(file, self.iceberg_schema.clone(), self.spec.clone());
        }
        let mut properties = collector.build();
        let previous = self
            .base
            .metadata()
            .current_snapshot()
            .map(|snapshot| &snapshot.summary().additional_properties);
        for (total, added) in [
            ("total-data-files", "added-data-files"),
            ("total-records", "added-records"),
            ("total-files-size", "added-files-size"),
            ("total-delete-files", "added-delete-files"),
            ("total-position-deletes", "added-position-deletes"),
            ("total-equality-deletes", "added-equality-deletes"),
        ] {
            let added = properties
                .get(added)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            // Like iceberg: a total the previous snapshot lacks is not made up.
            let previous_total = match previous {
                None => Some(0),
                Some(previous) => previous.get(total).and_then(|v| v.parse::<u64>().ok()),
            };
            if let Some(previous_total) = previous_total {
                properties.insert(total.to_owned(), (previous_total + added).to_string());
            }
        }
        for (bucket, range) in offsets {
            properties.insert(
                format!("{OFFSETS_PROPERTY_PREFIX}{}", bucket.0),
                format!("{}-{}", range.start.0, range.end.0),
            );
        }
        properties.insert(
            WATERMARKS_PROPERTY.to_owned(),
            format_watermarks(watermarks),
        );
        Summary {
            // Row-level deletes make a snapshot an overwrite (as Spark's merge-on-read
            // commits are): engines must not treat it as adding rows only.
            operation: if self.delete_files.is_empty() {
                Operation::Append
            } else {
                Operation::Overwrite
            },
            additional_properties: properties.into_iter().collect(),
        }
    }

    /// A positive snapshot id, from the injected id source, unused in the table.
    pub(crate) fn new_snapshot_id(&self) -> i64 {
        loop {
            let id = i64::try_from(self.env.ids.next_u128() as u64 >> 1)
                .expect("a 63-bit value fits an i64");
            if id != 0 && self.base.metadata().snapshot_by_id(id).is_none() {
                return id;
            }
        }
    }

    fn partition_key(&self, bucket: Bucket) -> Result<PartitionKey, LakeError> {
        let value = i32::try_from(bucket.0).map_err(|_| LakeError::InvalidRows {
            bucket,
            reason: "bucket number out of range".to_owned(),
        })?;
        Ok(PartitionKey::new(
            self.spec.as_ref().clone(),
            self.iceberg_schema.clone(),
            Struct::from_iter([Some(Literal::int(value))]),
        ))
    }

    fn check_usable(&self) -> Result<(), LakeError> {
        if self.failed {
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                "an earlier write of this lake round failed; abort the round",
            )
            .into());
        }
        Ok(())
    }
}

impl StagedAppend {
    /// Deletes everything the round wrote: for a commit that lost its compare-and-swap or
    /// was given up. Never call it for a commit whose outcome is unknown.
    pub async fn abandon(self) -> Result<(), LakeError> {
        delete_all(&self.table.storage().file_io(), &self.files_written).await
    }

    /// Deletes [`StagedAppend::files_to_delete_after_commit`]. Call it only after the
    /// commit; a file already gone is not an error, so it can be retried.
    pub async fn delete_unreached_files(&self) -> Result<(), LakeError> {
        delete_all(
            &self.table.storage().file_io(),
            &self.files_to_delete_after_commit,
        )
        .await
    }
}

/// The number of Parquet leaf columns a column of `data_type` has.
fn leaf_columns(data_type: &DataType) -> usize {
    match data_type {
        DataType::Struct(fields) => fields.iter().map(|f| leaf_columns(f.data_type())).sum(),
        DataType::List(element)
        | DataType::LargeList(element)
        | DataType::FixedSizeList(element, _)
        | DataType::Map(element, _) => leaf_columns(element.data_type()),
        _ => 1,
    }
}

/// The batch with exactly the columns of `schema`: taken by field id from a batch read back
/// from a lake file (whose names are those of the schema it was written under: a column
/// renamed since has its old name there), by name from a table's rows, cast where the lake
/// stores a wider type (failing, never nulling, on overflow), nulls for missing nullable
/// columns.
fn conform(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, String> {
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let field_id = |field: &arrow_schema::Field| {
        field
            .metadata()
            .get(PARQUET_FIELD_ID_META_KEY)
            .and_then(|id| id.parse::<i32>().ok())
    };
    let batch_schema = batch.schema();
    let by_id: HashMap<i32, usize> = batch_schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((field_id(f)?, i)))
        .collect();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let found = match by_id.is_empty() {
            false => field_id(field)
                .and_then(|id| by_id.get(&id))
                .map(|&i| batch.column(i)),
            true => batch.column_by_name(field.name()),
        };
        let column = match found {
            Some(column) => column.clone(),
            None if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
            None => return Err(format!("required column `{}` is missing", field.name())),
        };
        let column = if column.data_type() == field.data_type() {
            column
        } else {
            cast_with_options(&column, field.data_type(), &options).map_err(|error| {
                format!(
                    "column `{}` of type {} cannot be stored as {}: {error}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                )
            })?
        };
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(format!("required column `{}` has nulls", field.name()));
        }
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|error| error.to_string())
}

/// Checks the system columns of a conformed batch: every row in `bucket`, offsets from `next`
/// on, dense (or only ascending when `sparse`). Returns the offset after the last row.
fn check_rows(
    bucket: Bucket,
    next: Offset,
    batch: &RecordBatch,
    bucket_index: usize,
    offset_index: usize,
    sparse: bool,
) -> Result<Offset, LakeError> {
    let invalid = |reason: String| LakeError::InvalidRows { bucket, reason };
    let buckets = batch.column(bucket_index).as_primitive::<Int32Type>();
    if let Some(other) = buckets
        .values()
        .iter()
        .find(|b| u32::try_from(**b).ok() != Some(bucket.0))
    {
        return Err(invalid(format!("a row of bucket {other} is among them")));
    }
    let offsets = batch.column(offset_index).as_primitive::<Int64Type>();
    let first = offsets.value(0);
    let found = Offset(u64::try_from(first).unwrap_or(0));
    let starts_right = if sparse {
        first >= 0 && found >= next
    } else {
        found == next && first >= 0
    };
    if !starts_right {
        return Err(LakeError::OffsetGap {
            bucket,
            expected: next,
            found,
        });
    }
    let misplaced = offsets.values().windows(2).position(|pair| {
        if sparse {
            pair[1] <= pair[0]
        } else {
            pair[1] != pair[0] + 1
        }
    });
    if let Some(i) = misplaced {
        let (what, expected) = if sparse {
            ("do not ascend", format!("above {}", offsets.value(i)))
        } else {
            ("are not dense", (offsets.value(i) + 1).to_string())
        };
        return Err(invalid(format!(
            "offsets {what}: row {} has offset {}, expected {expected}",
            i + 1,
            offsets.value(i + 1)
        )));
    }
    let last = offsets.value(offsets.len() - 1);
    Ok(Offset(last as u64 + 1))
}

/// Field ids Iceberg reserves for position-delete files' columns.
const DELETE_FILE_PATH_FIELD_ID: i32 = 2_147_483_546;
const DELETE_POS_FIELD_ID: i32 = 2_147_483_545;

/// The schema of position-delete files (Iceberg spec, "Position Delete Files").
fn position_delete_schema() -> Result<IcebergSchema, LakeError> {
    Ok(IcebergSchema::builder()
        .with_fields(vec![
            NestedField::required(
                DELETE_FILE_PATH_FIELD_ID,
                "file_path",
                Type::Primitive(PrimitiveType::String),
            )
            .into(),
            NestedField::required(
                DELETE_POS_FIELD_ID,
                "pos",
                Type::Primitive(PrimitiveType::Long),
            )
            .into(),
        ])
        .build()?)
}
