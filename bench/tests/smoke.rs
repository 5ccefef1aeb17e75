//! `inlet bench --smoke`, as CI runs it: the `inlet` command line parses it, and the bench
//! runs on `memory://` on the server's node (the host the `inlet` binary hands it), in this
//! process. It completes with every table and a well-formed JSON report whose figures make
//! sense. Never a timed pass/fail: speeds are only checked to be positive.

use clap::Parser;
use inlet::bench::ServerHost;
use inlet::cli::{Cli, Command};
use serde_json::Value;

fn number(value: &Value, path: &str) -> f64 {
    let mut at = value;
    for key in path.split('.') {
        at = match key.parse::<usize>() {
            Ok(i) => &at[i],
            Err(_) => &at[key],
        };
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("`{path}` is not a number in the report: {at}"))
}

fn positive(value: &Value, path: &str) {
    let x = number(value, path);
    assert!(x > 0.0, "`{path}` should be positive, is {x}");
}

#[tokio::test(flavor = "multi_thread")]
async fn smoke_run_writes_a_complete_report() {
    let cli = Cli::try_parse_from([
        "inlet",
        "bench",
        "--smoke",
        "--store",
        "memory://",
        "--e2e-under-load",
        "true",
    ])
    .expect("the flags CI passes");
    let Command::Bench(args) = cli.command else {
        panic!("`inlet bench` parsed as {:?}", cli.command);
    };
    let output = inlet_bench::measure(&args, &ServerHost)
        .await
        .expect("the smoke run completes");
    let tables = &output.tables;
    for section in [
        "PRODUCE",
        "END TO END",
        "FETCH",
        "LAKE TIERING",
        "PRIMARY KEY",
        "OBJECT-STORE",
        "MEMORY",
    ] {
        assert!(tables.contains(section), "no {section} table in:\n{tables}");
    }

    let text = &output.json;
    let report: Value = serde_json::from_str(text).expect("the report is valid JSON");
    assert_eq!(report["report"], "inlet-bench");
    assert_eq!(report["version"], 1);
    assert_eq!(report["settings"]["smoke"], true);
    assert_eq!(report["settings"]["store"], "memory://");
    assert!(report["prices"]["as_of"].is_string());
    assert_eq!(number(&report, "prices.put_copy_post_list_per_1000"), 0.005);
    assert_eq!(number(&report, "prices.get_head_per_1000"), 0.0004);

    // One produce run per (linger, batch size): 5ms x {100, 1000} in a smoke run.
    let produce = report["produce"].as_array().expect("produce runs");
    assert_eq!(produce.len(), 2);
    for (i, run) in produce.iter().enumerate() {
        for field in [
            "rows",
            "appends",
            "ipc_bytes",
            "mb_per_s",
            "rows_per_s",
            "ack_latency.p50_ms",
        ] {
            positive(run, field);
        }
        let latency = &run["ack_latency"];
        assert!(
            number(latency, "p50_ms") <= number(latency, "p99_ms"),
            "run {i}"
        );
        assert!(
            number(latency, "p99_ms") <= number(latency, "p999_ms"),
            "run {i}"
        );
        assert!(
            number(latency, "p999_ms") <= number(latency, "max_ms"),
            "run {i}"
        );
        // Every producer was served; the worst one's p99 is no better than the best one's.
        let fairness = &run["fairness"];
        positive(fairness, "min_appends");
        assert!(number(fairness, "min_appends") <= number(fairness, "max_appends"));
        assert!(number(fairness, "best_p99_ms") <= number(fairness, "worst_p99_ms"));
        // The WAL holds each row's bytes once, plus headers and footers: about 1.
        let stored = number(run, "wal_bytes_per_ipc_byte");
        assert!(
            (0.5..2.0).contains(&stored),
            "run {i}: {stored} WAL bytes per IPC byte"
        );
        // Every acknowledged row is in a WAL object: at least one PUT per run.
        let wal = run["store"]["by_purpose"]
            .as_array()
            .expect("purposes")
            .iter()
            .find(|p| p["purpose"] == "wal_put")
            .unwrap_or_else(|| panic!("run {i} made no wal_put requests"));
        positive(wal, "requests");
        positive(wal, "requests_per_gb");
        positive(&run["store"], "usd_per_gb");
    }
    positive(&report, "ingest.requests_per_gb");
    positive(&report, "ingest.usd_per_gb");

    let e2e = &report["end_to_end"];
    positive(e2e, "appends");
    positive(e2e, "latency.p50_ms");
    assert!(number(e2e, "latency.p50_ms") <= number(e2e, "latency.p99_ms"));
    // The writer puts what it uploaded into the read cache: a co-located tail never GETs.
    assert_eq!(number(e2e, "follower_chunk_gets"), 0.0);
    // The probe beside a load at 50% and 90% of what the node sustains.
    let under_load = &e2e["under_load"];
    positive(under_load, "saturated_mb_per_s");
    let levels = under_load["levels"].as_array().expect("load levels");
    assert_eq!(levels.len(), 2);
    for level in levels {
        positive(level, "achieved_mb_per_s");
        positive(level, "latency.p50_ms");
        assert!(number(level, "latency.p50_ms") <= number(level, "latency.p99_ms"));
    }
    assert!(tables.contains("under load"), "{tables}");

    let fetch = &report["fetch"];
    let rows = number(fetch, "rows");
    assert!(rows >= 20_000.0);
    let runs = fetch["runs"].as_array().expect("fetch runs");
    let kinds: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["read"].as_str().expect("read").to_owned(),
                r["cache"].as_str().expect("cache").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("full", "cold"),
            ("full", "hot"),
            ("projected", "cold"),
            ("projected", "hot"),
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
    for run in runs {
        assert_eq!(number(run, "rows"), rows, "every read returns every row");
        positive(run, "mb_per_s");
        positive(run, "rows_per_s");
    }
    let (full_cold, full_hot, projected_cold, projected_hot) =
        (&runs[0], &runs[1], &runs[2], &runs[3]);
    // Cold reads GET the chunks; the hot reads find them cached; the projection GETs fewer
    // bytes and returns fewer.
    positive(full_cold, "chunk_gets");
    positive(projected_cold, "chunk_gets");
    assert_eq!(number(full_hot, "chunk_gets"), 0.0);
    assert_eq!(number(projected_hot, "chunk_gets"), 0.0);
    assert!(
        number(projected_cold, "chunk_get_bytes") < number(full_cold, "chunk_get_bytes"),
        "a projected read GETs fewer bytes than a full one"
    );
    assert!(number(projected_cold, "ipc_bytes") < number(full_cold, "ipc_bytes"));
    for hit in fetch["cache"].as_array().expect("cache section") {
        assert_eq!(number(hit, "hot_hit_ratio"), 1.0);
        assert_eq!(number(hit, "hot_hit_ratio_by_get_bytes"), 1.0);
    }

    // Every produced row reaches the lake, as Parquet files written through the `lake`
    // purpose, from WAL chunks read back.
    let lake = &report["lake"];
    positive(lake, "rows");
    positive(lake, "ipc_bytes");
    positive(lake, "mb_per_s_per_core");
    positive(lake, "wal_bytes");
    positive(lake, "parquet_bytes");
    positive(lake, "parquet_files");
    positive(lake, "files_per_round");
    let rounds = lake["rounds"].as_array().expect("lake rounds");
    assert!(!rounds.is_empty());
    let tiered: f64 = rounds.iter().map(|r| number(r, "rows")).sum();
    assert_eq!(tiered, number(lake, "rows"));
    let purposes = lake["store"]["by_purpose"].as_array().expect("purposes");
    for purpose in ["lake", "chunk_get"] {
        let used = purposes
            .iter()
            .find(|p| p["purpose"] == purpose)
            .unwrap_or_else(|| panic!("the lake rounds made no {purpose} requests"));
        positive(used, "requests");
    }

    // Primary-key tables: both writes landed, lookups found the keys written, and the
    // changelog and the log read returned every row written (plus the -U rows of updates).
    let pk = &report["pk"];
    for path in [
        "append.rows",
        "upsert.rows",
        "upsert_vs_append",
        "point_lookup.calls",
        "point_lookup.keys_found",
        "batched_lookup.keys_found",
        "changelog.rows",
    ] {
        positive(pk, path);
    }
    assert_eq!(number(pk, "log_read.rows"), number(pk, "append.rows"));
    assert!(number(pk, "changelog.rows") >= number(pk, "upsert.rows"));
    assert_eq!(
        number(pk, "point_lookup.keys_found"),
        number(pk, "point_lookup.calls"),
        "every point lookup asks for a key that was written"
    );
    // Both tables tiered every offset written; the memory store is no place DuckDB can open,
    // and the report says so instead of a figure.
    assert_eq!(number(pk, "log_tiering.rows"), number(pk, "append.rows"));
    assert_eq!(number(pk, "pk_tiering.rows"), number(pk, "upsert.rows"));
    positive(pk, "pk_tiering.mb_per_s_per_core");
    assert_eq!(
        number(pk, "pk_update_tiering.rows"),
        number(pk, "pk_update.rows")
    );
    assert!(
        pk["duckdb"]["Err"]
            .as_str()
            .is_some_and(|reason| reason.contains("memory://")),
        "{}",
        pk["duckdb"]
    );

    if cfg!(target_os = "linux") {
        positive(&report, "memory.peak_rss_bytes");
    }
    positive(&report, "seconds");
}

/// Runs `inlet bench --smoke` with `flags` and returns its JSON report, once its tables show
/// `title`.
async fn smoke_section(flags: &[&str], title: &str) -> Value {
    let argv = ["inlet", "bench", "--smoke"].iter().chain(flags);
    let cli = Cli::try_parse_from(argv).expect("valid flags");
    let Command::Bench(args) = cli.command else {
        panic!("`inlet bench` parsed as {:?}", cli.command);
    };
    let output = inlet_bench::measure(&args, &ServerHost)
        .await
        .unwrap_or_else(|error| panic!("`{flags:?}` did not complete: {error:#}"));
    assert!(output.tables.contains(title), "{}", output.tables);
    serde_json::from_str(&output.json).expect("the report is valid JSON")
}

/// `--sections retention` (not in the default run): the report samples the table's bytes
/// until the collector's upload grace passed, and at the end the store holds what the index
/// does: everything expired is deleted.
#[tokio::test(flavor = "multi_thread")]
async fn the_retention_section_reports_bytes_over_time() {
    let report = smoke_section(
        &[
            "--store",
            "memory://",
            "--sections",
            "retention",
            "--duration",
            "2s",
        ],
        "RETENTION",
    )
    .await;
    positive(&report, "retention.ingested_mb");
    let samples = report["retention"]["samples"].as_array().expect("samples");
    assert!(
        samples.len() > 40,
        "sampled past the upload grace: {samples:?}"
    );
    // A smoke run keeps 1 MiB per bucket: the load outgrows it, and the expired objects go.
    let last = samples.last().expect("a sample");
    let most = samples
        .iter()
        .map(|s| number(s, "stored_mb"))
        .fold(0.0, f64::max);
    let (stored, indexed) = (number(last, "stored_mb"), number(last, "indexed_mb"));
    assert!(most > stored + 1.0, "nothing was deleted: {samples:?}");
    assert!(
        (stored - indexed).abs() <= 0.2,
        "the store holds what the index does (and object footers): {last}"
    );
    positive(last, "indexed_mb");
}

/// `--sections upkeep` (not in the default run): after the same rounds, the table with
/// upkeep keeps a tenth of the snapshots (in a smoke run), a bounded number of manifests
/// and metadata files, and a few data files (compaction), while the one without keeps one
/// of each per round; DuckDB reads every row of both from a local directory.
#[tokio::test(flavor = "multi_thread")]
async fn the_upkeep_section_bounds_the_lake_metadata() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().to_str().expect("a UTF-8 path").to_owned();
    let report = smoke_section(&["--store", &store, "--sections", "upkeep"], "LAKE UPKEEP").await;
    let upkeep = &report["upkeep"];
    let rounds = number(upkeep, "rounds");
    let rows = rounds * number(upkeep, "rows_per_round");
    let tables = upkeep["tables"].as_array().expect("tables");
    let (off, on) = (&tables[0], &tables[1]);
    assert_eq!(number(off, "snapshots"), rounds, "{off}");
    assert_eq!(number(off, "manifests"), rounds, "{off}");
    assert_eq!(number(on, "snapshots"), 10.0, "{on}");
    assert!(number(on, "manifests") < 10.0, "{on}");
    // At least the 30 retired snapshots' manifest lists are gone (and merged manifests).
    assert!(
        number(off, "metadata_objects") - number(on, "metadata_objects") >= rounds - 10.0,
        "{on} vs {off}"
    );
    assert!(number(on, "metadata_file_kb") < number(off, "metadata_file_kb"));
    // Compaction: the table without it holds one small file per round, the other a few.
    assert_eq!(number(off, "live_data_files"), rounds, "{off}");
    assert_eq!(number(off, "compacted_files"), 0.0, "{off}");
    assert!(number(on, "live_data_files") < 8.0, "{on}");
    assert!(number(on, "compacted_files") >= rounds - 8.0, "{on}");
    for table in [off, on] {
        assert_eq!(number(table, "data_files"), rounds, "{table}");
        assert_eq!(
            number(table, "duckdb.rows"),
            rows,
            "DuckDB reads every row: {table} ({})",
            upkeep["duckdb_error"]
        );
    }
}
