//! The benchmark's report: one serializable value (the JSON report) and its rendering as
//! readable tables.

use std::fmt::Write as _;

use inlet_client::text::{table, write_table};
use inlet_store::Purpose;
use serde::Serialize;

use inlet_store::prices::RequestPrices;

use super::cluster::ClusterReport;
use super::cost::{GB, PRICES, StoreUsage};
use super::fetch::FetchReport;
use super::follow::{EndToEnd, UnderLoad};
use super::lake::LakeReport;
use super::latency::LatencyModelReport;
use super::memory::MemoryReport;
use super::pk::PkReport;
use super::produce::ProduceRun;
use super::retention::RetentionReport;
use super::upkeep::UpkeepReport;

/// Bumped when a field changes meaning or goes away (adding fields does not bump it).
pub(crate) const REPORT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    /// Always `inlet-bench`.
    pub(crate) report: &'static str,
    pub(crate) version: u32,
    pub(crate) settings: SettingsReport,
    pub(crate) prices: RequestPrices,
    /// Empty, and the sections below `null`, when `--sections` left them out.
    pub(crate) produce: Vec<ProduceRun>,
    /// Every produce run together (node starts and table creation included).
    pub(crate) ingest: Option<StoreUsage>,
    pub(crate) end_to_end: Option<EndToEnd>,
    pub(crate) fetch: Option<FetchReport>,
    pub(crate) lake: Option<LakeReport>,
    pub(crate) pk: Option<PkReport>,
    pub(crate) retention: Option<RetentionReport>,
    pub(crate) upkeep: Option<UpkeepReport>,
    pub(crate) cluster: Option<ClusterReport>,
    pub(crate) memory: MemoryReport,
    pub(crate) seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct SettingsReport {
    pub(crate) store: String,
    pub(crate) smoke: bool,
    /// `debug` or `release`.
    pub(crate) build: &'static str,
    pub(crate) cores: usize,
    pub(crate) producers: usize,
    pub(crate) produce_producers: Vec<usize>,
    /// Bytes of the one binary column of the produce runs' rows; none for wide rows.
    pub(crate) produce_row_bytes: Option<usize>,
    pub(crate) buckets: u32,
    pub(crate) columns: usize,
    /// Mean Arrow IPC bytes per row of the wide table (1,000-row batches).
    pub(crate) row_ipc_bytes: f64,
    pub(crate) batch_rows: Vec<usize>,
    pub(crate) linger_ms: Vec<f64>,
    pub(crate) run_seconds: f64,
    pub(crate) run_max_rows: u64,
    pub(crate) e2e_linger_ms: f64,
    pub(crate) e2e_seconds: f64,
    pub(crate) e2e_interval_ms: f64,
    pub(crate) e2e_rows_per_append: usize,
    pub(crate) e2e_under_load: bool,
    pub(crate) fetch_rows: u64,
    pub(crate) fetch_batch_rows: usize,
    pub(crate) fetch_linger_ms: f64,
    /// Arrow IPC bytes loaded into the lake table and tiered.
    pub(crate) lake_bytes: u64,
    /// Arrow IPC bytes the cluster section loads through its writer process.
    pub(crate) cluster_bytes: u64,
    /// Length of each of the cluster section's reading intervals.
    pub(crate) cluster_interval_seconds: f64,
    /// The sections run.
    pub(crate) sections: Vec<&'static str>,
    pub(crate) cache_memory_bytes: usize,
    pub(crate) cache_page_size: usize,
    pub(crate) latency_model: Option<LatencyModelReport>,
    pub(crate) latency_model_text: String,
    pub(crate) seed: u64,
}

const MIB: f64 = 1024.0 * 1024.0;

/// The report as plain-text tables.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored throughout.
    let s = &report.settings;
    let _ = writeln!(
        out,
        "inlet bench: store {}, {} build, {} cores, {} buckets; {} producers ({} in the produce \
         runs); wide rows of {} columns, ~{:.0} B (Arrow IPC); produce rows: {}{}",
        s.store,
        s.build,
        s.cores,
        s.buckets,
        s.producers,
        s.produce_producers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        s.columns,
        s.row_ipc_bytes,
        s.produce_row_bytes.map_or_else(
            || "wide".to_owned(),
            |len| format!("one binary column of {len} bytes")
        ),
        if s.smoke { ", smoke run" } else { "" },
    );
    let _ = writeln!(out, "latency model: {}", s.latency_model_text);
    if !report.produce.is_empty() {
        render_produce(&mut out, report);
    }
    if let Some(e2e) = &report.end_to_end {
        render_end_to_end(&mut out, e2e);
    }
    if let Some(fetch) = &report.fetch {
        render_fetch(&mut out, fetch);
    }
    if let Some(lake) = &report.lake {
        render_lake(&mut out, lake);
    }
    if let Some(pk) = &report.pk {
        render_pk(&mut out, pk);
    }
    if let Some(retention) = &report.retention {
        render_retention(&mut out, retention);
    }
    if let Some(upkeep) = &report.upkeep {
        render_upkeep(&mut out, upkeep);
    }
    if let Some(cluster) = &report.cluster {
        render_cluster(&mut out, cluster);
    }
    render_cost(&mut out, report);
    render_memory(&mut out, &report.memory);
    let _ = writeln!(out, "\ntotal {:.1} s", report.seconds);
    out
}

fn render_produce(out: &mut String, report: &Report) {
    let s = &report.settings;
    let _ = writeln!(
        out,
        "\nPRODUCE: closed loop (each producer sends its next append when the last is acked), \
         {} s or {} rows per run; MB = 10^6 bytes of Arrow IPC; latencies in ms; per producer: \
         fewest-most appends and the worst producer's own ack p99; stored = WAL bytes per IPC \
         byte; rows: {}",
        s.run_seconds,
        s.run_max_rows,
        s.produce_row_bytes.map_or_else(
            || format!("{} columns", s.columns),
            |len| format!("one binary column of {len} bytes")
        )
    );
    let mut table = table(
        &[
            "linger",
            "prod",
            "batch",
            "appends",
            "rows/s",
            "MB/s",
            "ack p50",
            "ack p99",
            "ack p999",
            "ack max",
            "per prod appends",
            "worst prod p99",
            "stored",
            "WAL PUTs/GB",
            "index req/GB",
            "$/GB",
        ],
        &[],
    );
    for run in &report.produce {
        table.add_row([
            format!("{}ms", run.linger_ms),
            run.producers.to_string(),
            run.batch_rows.to_string(),
            run.appends.to_string(),
            format!("{:.0}", run.rows_per_s),
            format!("{:.2}", run.mb_per_s),
            format!("{:.2}", run.ack_latency.p50_ms),
            format!("{:.2}", run.ack_latency.p99_ms),
            format!("{:.2}", run.ack_latency.p999_ms),
            format!("{:.2}", run.ack_latency.max_ms),
            format!("{}-{}", run.fairness.min_appends, run.fairness.max_appends),
            format!("{:.2}", run.fairness.worst_p99_ms),
            format!("{:.3}", run.wal_bytes_per_ipc_byte),
            per_gb(&run.store, Purpose::WalPut),
            per_gb(&run.store, Purpose::Index),
            usd(run.store.usd_per_gb),
        ]);
    }
    write_table(out, &table);
}

fn render_end_to_end(out: &mut String, e2e: &EndToEnd) {
    let _ = writeln!(
        out,
        "\nEND TO END: append sent -> rows received by a follower (Fetch, follow from latest); \
         linger {}ms, {} rows every {}ms from {} producers taking turns; ms",
        e2e.linger_ms, e2e.rows_per_append, e2e.interval_ms, e2e.producers
    );
    let mut table = table(
        &[
            "appends",
            "appends/s",
            "p50",
            "p99",
            "p999",
            "max",
            "ack p50",
            "ack p99",
            "follower chunk GETs",
        ],
        &[],
    );
    table.add_row([
        e2e.appends.to_string(),
        format!("{:.1}", e2e.appends_per_s),
        format!("{:.2}", e2e.latency.p50_ms),
        format!("{:.2}", e2e.latency.p99_ms),
        format!("{:.2}", e2e.latency.p999_ms),
        format!("{:.2}", e2e.latency.max_ms),
        format!("{:.2}", e2e.ack_latency.p50_ms),
        format!("{:.2}", e2e.ack_latency.p99_ms),
        e2e.follower_chunk_gets.to_string(),
    ]);
    write_table(out, &table);
    if let Some(load) = &e2e.under_load {
        render_under_load(out, load);
    }
}

fn render_under_load(out: &mut String, load: &UnderLoad) {
    let _ = writeln!(
        out,
        "under load: the same probe beside {}-row appends from {} producers at fractions of the \
         {:.1} MB/s {} producers sustain in a closed loop; ms",
        load.load_batch_rows, load.rate_producers, load.saturated_mb_per_s, load.load_producers
    );
    let mut table = table(
        &[
            "load",
            "target MB/s",
            "achieved MB/s",
            "load ack p50",
            "load ack p99",
            "p50",
            "p99",
            "p999",
            "ack p99",
        ],
        &[],
    );
    for level in &load.levels {
        table.add_row([
            format!("{:.0}%", level.fraction * 100.0),
            format!("{:.1}", level.target_mb_per_s),
            format!("{:.1}", level.achieved_mb_per_s),
            format!("{:.2}", level.load_ack_latency.p50_ms),
            format!("{:.2}", level.load_ack_latency.p99_ms),
            format!("{:.2}", level.latency.p50_ms),
            format!("{:.2}", level.latency.p99_ms),
            format!("{:.2}", level.latency.p999_ms),
            format!("{:.2}", level.ack_latency.p99_ms),
        ]);
    }
    write_table(out, &table);
}

fn render_retention(out: &mut String, retention: &RetentionReport) {
    let _ = writeln!(
        out,
        "\nRETENTION: {} ({} buckets, retention.bytes {} MiB each), one producer for {:.0} s \
         ({:.1} MB); the WAL collector's upload grace {:.0} s, read grace {:.0} s",
        retention.table,
        retention.buckets,
        retention.retention_bytes >> 20,
        retention.produce_seconds,
        retention.ingested_mb,
        retention.upload_grace_s,
        retention.read_grace_s
    );
    let mut samples = table(
        &[
            "t (s)",
            "ingested MB",
            "indexed MB",
            "stored MB",
            "stored objects",
        ],
        &[],
    );
    // Steady stretches collapse to their first sample (the JSON report has every one).
    let mut last_objects = None;
    for (i, sample) in retention.samples.iter().enumerate() {
        let last = i + 1 == retention.samples.len();
        if last_objects == Some(sample.stored_objects) && !last {
            continue;
        }
        last_objects = Some(sample.stored_objects);
        samples.add_row([
            format!("{:.1}", sample.t_s),
            format!("{:.1}", sample.ingested_mb),
            format!("{:.1}", sample.indexed_mb),
            format!("{:.1}", sample.stored_mb),
            sample.stored_objects.to_string(),
        ]);
    }
    write_table(out, &samples);
}

fn render_upkeep(out: &mut String, upkeep: &UpkeepReport) {
    let _ = writeln!(
        out,
        "\nLAKE UPKEEP: {} rounds of {} rows into each table (one append, one tiering round); \
         each round writes one data file, compaction rewrites runs of small ones",
        upkeep.rounds, upkeep.rows_per_round
    );
    let mut tables = table(
        &[
            "table",
            "merge at",
            "snapshots kept",
            "compact at",
            "rounds s",
            "first ms/round",
            "last ms/round",
            "snapshots",
            "manifests",
            "metadata objects",
            "metadata MB",
            "metadata.json KB",
            "data files",
            "compacted",
            "DuckDB scan s",
        ],
        &[0],
    );
    for t in &upkeep.tables {
        tables.add_row([
            t.table.clone(),
            t.merge_manifests_at
                .map_or_else(|| "never".to_owned(), |at| at.to_string()),
            t.snapshots_retained.to_string(),
            t.compaction_min_files
                .map_or_else(|| "never".to_owned(), |at| at.to_string()),
            format!("{:.1}", t.seconds),
            format!("{:.1}", t.first_rounds_ms),
            format!("{:.1}", t.last_rounds_ms),
            t.snapshots.to_string(),
            t.manifests.to_string(),
            t.metadata_objects.to_string(),
            format!("{:.2}", t.metadata_mb),
            format!("{:.1}", t.metadata_file_kb),
            t.live_data_files.to_string(),
            t.compacted_files.to_string(),
            t.duckdb
                .as_ref()
                .map_or_else(|| "-".to_owned(), |scan| format!("{:.3}", scan.seconds)),
        ]);
    }
    write_table(out, &tables);
    if let Some(reason) = &upkeep.duckdb_error {
        let _ = writeln!(out, "DuckDB did not scan: {reason}");
    }
}

fn render_pk(out: &mut String, pk: &PkReport) {
    let _ = writeln!(
        out,
        "\nPRIMARY KEY: {} producers, {} rows per append, linger {}ms, {:.0}% of upserted rows \
         update a key already written; the log table gets the same batches",
        pk.producers,
        pk.batch_rows,
        pk.linger_ms,
        pk.update_fraction * 100.0
    );
    let mut writes = table(
        &[
            "write",
            "rows/s",
            "MB/s",
            "ack p50",
            "ack p99",
            "index reqs/GB",
        ],
        &[0],
    );
    for (name, run) in [("append (log)", &pk.append), ("upsert", &pk.upsert)] {
        writes.add_row([
            name.to_owned(),
            format!("{:.0}", run.rows_per_s),
            format!("{:.1}", run.mb_per_s),
            format!("{:.1}", run.ack_latency.p50_ms),
            format!("{:.1}", run.ack_latency.p99_ms),
            format!(
                "{:.0}",
                run.store.requests(Purpose::Index) as f64 / (run.ipc_bytes as f64 / GB).max(1e-9)
            ),
        ]);
    }
    write_table(out, &writes);
    let _ = writeln!(out, "upsert / append MB/s: {:.2}", pk.upsert_vs_append);
    let mut lookups = table(
        &[
            "lookup",
            "clients",
            "keys/call",
            "calls",
            "keys/s",
            "p50 ms",
            "p99 ms",
        ],
        &[0],
    );
    for (name, run) in [("point", &pk.point_lookup), ("batched", &pk.batched_lookup)] {
        lookups.add_row([
            name.to_owned(),
            run.clients.to_string(),
            run.keys_per_call.to_string(),
            run.calls.to_string(),
            format!("{:.0}", run.keys_per_s),
            format!("{:.3}", run.latency.p50_ms),
            format!("{:.3}", run.latency.p99_ms),
        ]);
    }
    write_table(out, &lookups);
    let mut reads = table(&["read (hot)", "rows", "rows/s", "MB/s"], &[0]);
    for (name, run) in [
        ("changelog", &pk.changelog),
        ("snapshot (current rows)", &pk.snapshot),
        ("log table", &pk.log_read),
    ] {
        reads.add_row([
            name.to_owned(),
            run.rows.to_string(),
            format!("{:.0}", run.rows_per_s),
            format!("{:.1}", run.mb_per_s),
        ]);
    }
    write_table(out, &reads);
    let mut tiering = table(
        &[
            "tiering (1 core)",
            "rows",
            "rounds",
            "files",
            "rows/s",
            "MB/s",
            "lake reqs/GB",
        ],
        &[0],
    );
    for (name, run) in [
        ("log table", &pk.log_tiering),
        ("primary key", &pk.pk_tiering),
        ("pk updates", &pk.pk_update_tiering),
    ] {
        tiering.add_row([
            name.to_owned(),
            run.rows.to_string(),
            run.rounds.to_string(),
            run.data_files.to_string(),
            format!("{:.0}", run.rows_per_s),
            format!("{:.1}", run.mb_per_s_per_core),
            format!(
                "{:.0}",
                run.store.requests(Purpose::Lake) as f64 / (run.ipc_bytes as f64 / GB).max(1e-9)
            ),
        ]);
    }
    write_table(out, &tiering);
    match &pk.duckdb {
        Ok(scans) => {
            let mut duckdb = table(&["DuckDB lake scan", "rows", "seconds"], &[0]);
            for (name, scan) in [("log table", &scans.log), ("primary key", &scans.pk)] {
                duckdb.add_row([
                    name.to_owned(),
                    scan.rows.to_string(),
                    format!("{:.3}", scan.seconds),
                ]);
            }
            write_table(out, &duckdb);
        }
        Err(reason) => {
            let _ = writeln!(out, "DuckDB lake scans: not run ({reason})");
        }
    }
}

fn render_fetch(out: &mut String, fetch: &FetchReport) {
    let load = &fetch.load;
    let _ = writeln!(
        out,
        "\nFETCH: {} rows, {:.1} MB of Arrow IPC, {} columns (projected: {}); cold = fresh \
         node, empty cache; hot = the same read again",
        fetch.rows,
        load.ipc_bytes as f64 / 1e6,
        fetch.columns,
        fetch.projected_columns.join(", "),
    );
    let _ = writeln!(
        out,
        "load: {:.2} s ({:.1} MB/s), {} rows per append, linger {}ms",
        load.seconds, load.mb_per_s, load.batch_rows, load.linger_ms
    );
    let mut table = table(
        &[
            "read",
            "cache",
            "rows/s",
            "MB/s",
            "seconds",
            "MB out",
            "chunk GETs",
            "chunk GET MB",
            "index reqs",
            "$/GB out",
        ],
        &[],
    );
    for run in &fetch.runs {
        table.add_row([
            run.read.to_string(),
            run.cache.to_string(),
            format!("{:.0}", run.rows_per_s),
            format!("{:.1}", run.mb_per_s),
            format!("{:.3}", run.seconds),
            format!("{:.1}", run.ipc_bytes as f64 / 1e6),
            run.chunk_gets.to_string(),
            format!("{:.2}", run.chunk_get_bytes as f64 / 1e6),
            run.store.requests(Purpose::Index).to_string(),
            usd(run.store.usd_per_gb),
        ]);
    }
    write_table(out, &table);
    let ratios: Vec<String> = fetch
        .cache
        .iter()
        .map(|c| {
            format!(
                "{} {:.1}% ({:.1}% by GET bytes)",
                c.read,
                c.hot_hit_ratio * 100.0,
                c.hot_hit_ratio_by_get_bytes * 100.0
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "cache hit ratio of the hot reads, pages (node counters) and by 1 - hot / cold chunk \
         GET bytes: {}",
        ratios.join(", ")
    );
    if let Some(cold) = &fetch.cold {
        let _ = writeln!(
            out,
            "cold reads: full {:.1} MB/s ({:.3} s, {} chunk GETs); {} of {} columns {:.3} s ({} \
             chunk GETs, {:.1}% of the full read's GET bytes): {:.2}x the full read's speed",
            cold.full_mb_per_s,
            cold.full_seconds,
            cold.full_chunk_gets,
            fetch.projected_columns.len(),
            fetch.columns,
            cold.projected_seconds,
            cold.projected_chunk_gets,
            cold.projected_get_bytes_ratio * 100.0,
            cold.projected_speedup,
        );
    }
}

fn render_lake(out: &mut String, lake: &LakeReport) {
    let _ = writeln!(
        out,
        "\nLAKE TIERING: {} rows, {:.1} MB of Arrow IPC (the append payloads) in {} buckets, \
         loaded in {:.2} s ({} rows per append, linger {}ms) by a node without a compactor, \
         then tiered by one compactor, rounds back to back (one core) until no backlog",
        lake.rows,
        lake.ipc_bytes as f64 / 1e6,
        lake.buckets,
        lake.load_seconds,
        lake.load_batch_rows,
        lake.load_linger_ms,
    );
    let mut table = table(
        &[
            "rounds",
            "seconds",
            "rows/s",
            "MB/s/core",
            "WAL MB",
            "files",
            "Parquet MB",
            "PQ/WAL",
            "PQ/Arrow IPC",
            "files/round",
        ],
        &[],
    );
    table.add_row([
        lake.rounds.len().to_string(),
        format!("{:.3}", lake.seconds),
        format!("{:.0}", lake.rows_per_s),
        format!("{:.2}", lake.mb_per_s_per_core),
        format!("{:.2}", lake.wal_bytes as f64 / 1e6),
        lake.parquet_files.to_string(),
        format!("{:.2}", lake.parquet_bytes as f64 / 1e6),
        format!("{:.3}", lake.parquet_to_wal),
        format!("{:.3}", lake.parquet_to_ipc),
        format!("{:.2}", lake.files_per_round),
    ]);
    write_table(out, &table);
    let requests: Vec<String> = lake
        .store
        .by_purpose
        .iter()
        .map(|p| {
            let ops: Vec<String> = p.ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
            format!(
                "{} {} ({}; {:.2} MB out, {:.2} MB in)",
                p.purpose,
                p.requests,
                ops.join(", "),
                p.bytes_out as f64 / 1e6,
                p.bytes_in as f64 / 1e6
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "object-store requests of the rounds: {}",
        requests.join("; ")
    );
}

fn render_cluster(out: &mut String, cluster: &ClusterReport) {
    let load = &cluster.load;
    let _ = writeln!(
        out,
        "\nCLUSTER: separate `inlet serve` processes on one local directory: an owner (--roles \
         index), a writer (--roles writer, linger {}ms), {} readers (--roles reader); MB = 10^6 \
         bytes of Arrow IPC",
        cluster.writer_linger_ms, cluster.readers
    );
    let _ = writeln!(
        out,
        "load through the writer: {} rows, {:.1} MB in {:.2} s ({:.1} MB/s); first (cold) \
         full read through one reader: {:.1} MB/s ({:.3} s, {} chunk GETs)",
        load.rows,
        load.ipc_bytes as f64 / 1e6,
        load.seconds,
        load.mb_per_s,
        cluster.cold_read.mb_per_s,
        cluster.cold_read.seconds,
        cluster.cold_read.reader_chunk_gets,
    );
    let _ = writeln!(
        out,
        "readers reading: each reader serves one client reading the whole table back to back \
         (warm caches); the owner's load is its GetStatus store counters and /proc CPU time"
    );
    let mut reads = table(
        &[
            "readers",
            "seconds",
            "reads",
            "MB/s",
            "owner req/s",
            "owner CPU ms/s",
            "reader req/s",
            "reader CPU ms/s",
            "owner requests by purpose",
        ],
        &[8],
    );
    if let Some(column) = reads.column_mut(8) {
        column.set_padding((1, 1));
    }
    let cpu = |ms: Option<f64>| ms.map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.1}"));
    for interval in &cluster.intervals {
        let purposes: Vec<String> = interval
            .owner_requests_by_purpose
            .iter()
            .map(|(purpose, n)| format!("{purpose} {n}"))
            .collect();
        reads.add_row([
            interval.readers.to_string(),
            format!("{:.2}", interval.seconds),
            interval.reads.to_string(),
            format!("{:.1}", interval.mb_per_s),
            format!("{:.2}", interval.owner_requests_per_s),
            cpu(interval.owner_cpu_ms_per_s),
            format!("{:.2}", interval.reader_requests_per_s),
            cpu(interval.reader_cpu_ms_per_s),
            if purposes.is_empty() {
                "-".to_owned()
            } else {
                purposes.join(", ")
            },
        ]);
    }
    write_table(out, &reads);

    let latency = &cluster.latency;
    let _ = writeln!(
        out,
        "append sent -> rows received by a follower (from latest); ms"
    );
    let mut probes = table(
        &[
            "placement",
            "appends",
            "appends/s",
            "p50",
            "p99",
            "p999",
            "max",
            "ack p50",
            "ack p99",
            "follower chunk GETs",
        ],
        &[0],
    );
    for (placement, run) in [
        ("writer -> reader process", &latency.multi_process),
        ("one in-process node", &latency.in_process),
    ] {
        probes.add_row([
            placement.to_owned(),
            run.appends.to_string(),
            format!("{:.1}", run.appends_per_s),
            format!("{:.2}", run.latency.p50_ms),
            format!("{:.2}", run.latency.p99_ms),
            format!("{:.2}", run.latency.p999_ms),
            format!("{:.2}", run.latency.max_ms),
            format!("{:.2}", run.ack_latency.p50_ms),
            format!("{:.2}", run.ack_latency.p99_ms),
            run.follower_chunk_gets.to_string(),
        ]);
    }
    write_table(out, &probes);
    let _ = writeln!(
        out,
        "multi-process minus in-process: p50 {:+.2} ms, p99 {:+.2} ms (goal: within 10 ms)",
        latency.p50_difference_ms, latency.p99_difference_ms
    );
}

fn render_cost(out: &mut String, report: &Report) {
    let p = &report.prices;
    let _ = writeln!(
        out,
        "\nOBJECT-STORE REQUESTS AND COST per GB (10^9 bytes of Arrow IPC ingested or returned), \
         at assumed S3 Standard list prices as of {}: PUT/COPY/POST/LIST ${} per 1,000, \
         GET/HEAD ${} per 1,000, DELETE free; storage and transfer not included",
        p.as_of, p.put_copy_post_list_per_1000, p.get_head_per_1000
    );
    let mut table = table(
        &[
            "phase",
            "GB",
            "requests",
            "req/GB",
            "$/GB",
            "requests per GB by purpose",
        ],
        &[0, 5],
    );
    // The free-text column stands two spaces off the figures.
    if let Some(column) = table.column_mut(5) {
        column.set_padding((1, 1));
    }
    let mut row = |name: &str, usage: &StoreUsage| {
        let purposes: Vec<String> = usage
            .by_purpose
            .iter()
            .map(|p| match p.requests_per_gb {
                Some(per_gb) => format!("{} {per_gb:.0}", p.purpose),
                None => format!("{} {}", p.purpose, p.requests),
            })
            .collect();
        table.add_row([
            name.to_owned(),
            format!("{:.4}", usage.basis_bytes as f64 / GB),
            usage.requests.to_string(),
            usage
                .requests_per_gb
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.0}")),
            usd(usage.usd_per_gb),
            purposes.join(", "),
        ]);
    };
    if let Some(ingest) = &report.ingest {
        row("ingest: all produce runs", ingest);
    }
    if let Some(fetch) = &report.fetch {
        row("ingest: fetch table load", &fetch.load.store);
    }
    if let Some(e2e) = &report.end_to_end {
        row("ingest: end-to-end probe", &e2e.store);
    }
    if let Some(fetch) = &report.fetch {
        for run in &fetch.runs {
            row(&format!("read: {} {}", run.read, run.cache), &run.store);
        }
    }
    if let Some(lake) = &report.lake {
        row("lake: tiering rounds", &lake.store);
    }
    write_table(out, &table);
    let _ = writeln!(out, "prices: {}", PRICES.source);
}

fn render_memory(out: &mut String, memory: &MemoryReport) {
    let mib = |bytes: Option<u64>| {
        bytes.map_or_else(
            || "n/a".to_owned(),
            |b| format!("{:.0} MiB", b as f64 / MIB),
        )
    };
    let phases: Vec<String> = memory
        .phases
        .iter()
        .map(|p| format!("{} {}", p.phase, mib(p.peak_rss_bytes)))
        .collect();
    let _ = writeln!(
        out,
        "\nMEMORY: peak RSS {} (phase peaks{}: {}); {}",
        mib(memory.peak_rss_bytes),
        if memory.peak_reset_per_phase {
            ""
        } else {
            ", cumulative"
        },
        phases.join(", "),
        memory.note
    );
}

fn per_gb(usage: &StoreUsage, purpose: Purpose) -> String {
    usage
        .purpose(purpose)
        .and_then(|p| p.requests_per_gb)
        .map_or_else(|| "0".to_owned(), |x| format!("{x:.0}"))
}

fn usd(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |x| format!("{x:.4}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_plain_columns_with_figures_right_aligned() {
        let mut t = table(&["phase", "GB", "by purpose"], &[0, 2]);
        t.add_row(["ingest", "0.0079", "wal_put 10493"]);
        t.add_row(["read: full cold", "12.5", "-"]);
        let mut out = String::new();
        write_table(&mut out, &t);
        assert_eq!(
            out,
            "phase               GB by purpose\n\
             ingest          0.0079 wal_put 10493\n\
             read: full cold   12.5 -\n"
        );
    }
}
