//! Lake upkeep over many small rounds (`--sections upkeep`, not in the default run: about a
//! minute and a half): two lake tables of one bucket get the same rounds, each one append
//! of `--fetch-batch-rows` wide rows then one tiering round (1,000 rounds; 40 with
//! `--smoke`). `no_upkeep` never merges manifests and keeps every snapshot, as every round
//! did before upkeep; `upkeep` has the defaults (manifests merged once there would be 100,
//! 100 snapshots kept, metadata files deleted once they leave the metadata log; a tenth of
//! each with `--smoke`) and small-file compaction.
//!
//! Per table: the rounds' time (the first and the last tenth apart, as the metadata grows),
//! the lake table's metadata (snapshots, manifests of the current snapshot, objects and
//! bytes under `metadata/`, the current metadata file's size) and, with the store in a
//! local directory, DuckDB's scan of it. Both tables get one data file per round; the one
//! with upkeep also has small-file compaction (runs of 16 small files, 4 with `--smoke`,
//! rewritten into one), so its current snapshot holds a few files where the other holds
//! one per round.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use futures::TryStreamExt;
use iceberg::spec::ManifestList;
use inlet_compactor::lake::{LakeStorage, LakeTable, LakeWriteOptions, lake_table_path};
use inlet_compactor::options::CompactionOptions;
use inlet_compactor::{CompactorOptions, RoundOutcome};
use inlet_core::table::{OPTION_LAKE_ENABLED, OPTION_LAKE_SNAPSHOTS_RETAINED};
use serde::Serialize;
use slatedb::object_store::ObjectMeta;
use slatedb::object_store::path::Path as ObjectPath;
use tokio::time::Instant;

use super::Settings;
use super::data::BatchPool;
use super::duckdb::{self, DuckdbScan};
use super::harness::Harness;
use super::lake::{compactor, lake_storage};
use super::stats::round;

const ROUNDS: usize = 1_000;
const SMOKE_ROUNDS: usize = 40;

/// One table's upkeep settings.
struct Variant {
    table: &'static str,
    merge_manifests_at: usize,
    snapshots_retained: usize,
    /// 0: no compaction.
    compaction_min_files: usize,
}

/// The tables: upkeep off, then upkeep with the defaults (a tenth of them in a smoke run,
/// whose 40 rounds would not reach them).
fn variants(smoke: bool) -> [Variant; 2] {
    let scale = if smoke { 10 } else { 1 };
    [
        Variant {
            table: "no_upkeep",
            merge_manifests_at: usize::MAX,
            snapshots_retained: inlet_core::table::MAX_LAKE_SNAPSHOTS_RETAINED,
            compaction_min_files: 0,
        },
        Variant {
            table: "upkeep",
            merge_manifests_at: LakeWriteOptions::default().merge_manifests_at / scale,
            snapshots_retained: inlet_core::table::DEFAULT_LAKE_SNAPSHOTS_RETAINED / scale,
            compaction_min_files: if smoke {
                4
            } else {
                CompactionOptions::default().min_files
            },
        },
    ]
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct UpkeepReport {
    pub(crate) rounds: usize,
    pub(crate) rows_per_round: usize,
    pub(crate) tables: Vec<UpkeepTable>,
    /// Why DuckDB did not scan, if it did not.
    pub(crate) duckdb_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct UpkeepTable {
    pub(crate) table: String,
    /// `None`: never merged.
    pub(crate) merge_manifests_at: Option<usize>,
    pub(crate) snapshots_retained: usize,
    /// Every round (append and tiering), back to back.
    pub(crate) seconds: f64,
    /// Mean milliseconds of a tiering round, over the first and the last tenth of them.
    pub(crate) first_rounds_ms: f64,
    pub(crate) last_rounds_ms: f64,
    /// Data files the rounds wrote.
    pub(crate) data_files: u64,
    /// Small files compaction replaced (`None`: off), and the data files the current
    /// snapshot holds.
    pub(crate) compaction_min_files: Option<usize>,
    pub(crate) compacted_files: u64,
    pub(crate) live_data_files: u64,
    pub(crate) snapshots: usize,
    /// Manifests the current snapshot lists.
    pub(crate) manifests: usize,
    /// Objects under the lake table's `metadata/`, and their bytes.
    pub(crate) metadata_objects: usize,
    pub(crate) metadata_mb: f64,
    /// The current metadata file's size.
    pub(crate) metadata_file_kb: f64,
    pub(crate) duckdb: Option<DuckdbScan>,
}

pub(crate) async fn run(
    harness: &mut Harness<'_>,
    settings: &Settings,
    database: &str,
) -> anyhow::Result<UpkeepReport> {
    harness.restart(settings.fetch_linger).await?;
    let pool = Arc::new(BatchPool::new(settings.fetch_batch_rows, settings.seed)?);
    let rounds = if settings.smoke { SMOKE_ROUNDS } else { ROUNDS };
    let mut client = harness.client().await?;
    let mut tables = Vec::new();
    let mut ids = Vec::new();
    for variant in &variants(settings.smoke) {
        eprintln!(
            "bench: upkeep: {rounds} rounds of {} rows into {database}.{}",
            pool.rows, variant.table
        );
        let options = BTreeMap::from([
            (OPTION_LAKE_ENABLED.to_owned(), "true".to_owned()),
            (
                OPTION_LAKE_SNAPSHOTS_RETAINED.to_owned(),
                variant.snapshots_retained.to_string(),
            ),
        ]);
        client
            .create_table_with_options(
                database,
                variant.table,
                &pool.schema,
                1,
                Vec::new(),
                options,
                false,
            )
            .await
            .with_context(|| format!("cannot create table {database}.{}", variant.table))?;
        let info = harness.index()?.table(database, variant.table)?;
        let compactor = compactor(
            harness,
            settings,
            CompactorOptions {
                write: LakeWriteOptions {
                    merge_manifests_at: variant.merge_manifests_at,
                    ..LakeWriteOptions::default()
                },
                compaction: CompactionOptions {
                    min_files: variant.compaction_min_files,
                    ..CompactionOptions::default()
                },
                ..CompactorOptions::default()
            },
        )
        .await?;
        let started = Instant::now();
        let mut round_ms = Vec::with_capacity(rounds);
        let mut data_files = 0;
        let mut compacted_files = 0;
        for n in 0..rounds {
            let (batch, _) = pool.get(n);
            client
                .append(
                    database,
                    variant.table,
                    &pool.schema,
                    std::slice::from_ref(batch),
                )
                .await?;
            let round_started = Instant::now();
            let tiered = compactor.tier_table(info.id).await;
            match tiered.outcome.context("a lake round failed")? {
                RoundOutcome::Committed(committed) => {
                    data_files += committed.data_files as u64;
                    compacted_files += committed.compacted_files as u64;
                }
                other => anyhow::bail!("round {n} did not commit: {other:?}"),
            }
            round_ms.push(round_started.elapsed().as_secs_f64() * 1e3);
        }
        let seconds = started.elapsed().as_secs_f64();
        compactor.stop().await;

        let lake = harness
            .index()?
            .lake_table(info.id)
            .await?
            .and_then(|record| record.metadata_location)
            .context("no lake metadata after the rounds")?;
        let metadata: Vec<ObjectMeta> = harness
            .store()
            .list(Some(&ObjectPath::from(format!(
                "{}/metadata",
                lake_table_path(database, variant.table, info.id)
            ))))
            .try_collect()
            .await?;
        let current = metadata
            .iter()
            .find(|object| lake.ends_with(object.location.as_ref()))
            .context("the current metadata file is not in the store")?;
        let storage = lake_storage(harness, settings)?;
        let (snapshots, manifests, live_data_files) =
            describe(&storage, database, variant.table, &lake).await?;
        let tenth = (rounds / 10).max(1);
        let mean = |ms: &[f64]| round(ms.iter().sum::<f64>() / ms.len().max(1) as f64, 1);
        tables.push(UpkeepTable {
            table: format!("{database}.{}", variant.table),
            merge_manifests_at: (variant.merge_manifests_at != usize::MAX)
                .then_some(variant.merge_manifests_at),
            snapshots_retained: variant.snapshots_retained,
            seconds: round(seconds, 2),
            first_rounds_ms: mean(&round_ms[..tenth]),
            last_rounds_ms: mean(&round_ms[rounds - tenth..]),
            data_files,
            compaction_min_files: (variant.compaction_min_files > 0)
                .then_some(variant.compaction_min_files),
            compacted_files,
            live_data_files,
            snapshots,
            manifests,
            metadata_objects: metadata.len(),
            metadata_mb: round(metadata.iter().map(|o| o.size).sum::<u64>() as f64 / 1e6, 2),
            metadata_file_kb: round(current.size as f64 / 1e3, 1),
            duckdb: None,
        });
        ids.push(info.id);
    }
    let duckdb_error = match duckdb::scan(harness, settings, &ids).await {
        Ok(scans) => {
            for (table, scan) in tables.iter_mut().zip(scans) {
                table.duckdb = Some(scan);
            }
            None
        }
        Err(reason) => {
            eprintln!("bench: upkeep: no DuckDB scans: {reason}");
            Some(reason)
        }
    };
    Ok(UpkeepReport {
        rounds,
        rows_per_round: pool.rows,
        tables,
        duckdb_error,
    })
}

/// The snapshots of lake table `database.table` at `metadata_location`, the manifests its
/// current snapshot lists, and the data files it holds (its summary's `total-data-files`).
async fn describe(
    storage: &LakeStorage,
    database: &str,
    table: &str,
    metadata_location: &str,
) -> anyhow::Result<(usize, usize, u64)> {
    let ident = iceberg::TableIdent::from_strs([database, table])?;
    let lake = LakeTable::load(storage, ident, metadata_location).await?;
    let metadata = lake.metadata();
    let manifests = match metadata.current_snapshot() {
        Some(snapshot) => {
            let file_io = lake.storage().file_io();
            let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
            ManifestList::parse_with_version(&bytes, metadata.format_version())?
                .entries()
                .len()
        }
        None => 0,
    };
    let live_data_files = metadata
        .current_snapshot()
        .and_then(|snapshot| {
            snapshot
                .summary()
                .additional_properties
                .get("total-data-files")
                .and_then(|count| count.parse().ok())
        })
        .unwrap_or(0);
    Ok((metadata.snapshots().count(), manifests, live_data_files))
}
