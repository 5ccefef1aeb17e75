//! `inlet bench --sections cluster` through the real binary, with tiny sizes: it starts an
//! owner, a writer and two readers as separate `inlet serve` processes, and reports figures
//! for every case (0, 1 and 2 readers reading; the cross-process and in-process latency
//! probes). Never a timed pass/fail: speeds are only checked to be there and positive.
//! Also shown: the owner serves none of the readers' chunk bytes, a reader apart from the
//! writer GETs the chunks it follows, and the section leaves no process and no directory.

use std::time::Duration;

use serde_json::Value;

const INLET: &str = env!("CARGO_BIN_EXE_inlet");

/// The whole run, process starts included (debug build).
const DEADLINE: Duration = Duration::from_secs(120);

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {value}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_section_reports_every_case_and_cleans_up() {
    let out = tempfile::tempdir().expect("temp dir");
    let report_path = out.path().join("report.json");
    let mut bench = tokio::process::Command::new(INLET);
    bench
        .args(["bench", "--smoke", "--sections", "cluster"])
        .args(["--cluster-mb", "1", "--cluster-interval", "300ms"])
        .args(["--e2e-duration", "500ms", "--json"])
        .arg(&report_path)
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, bench.output())
        .await
        .expect("the bench finishes within its deadline")
        .expect("inlet bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "inlet bench failed:\n{stderr}");
    let tables = String::from_utf8_lossy(&output.stdout);
    assert!(tables.contains("CLUSTER"), "no CLUSTER table in:\n{tables}");

    let text = std::fs::read_to_string(&report_path).expect("the JSON report");
    let report: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        report["settings"]["sections"],
        serde_json::json!(["cluster"])
    );
    let cluster = &report["cluster"];
    assert_eq!(cluster["readers"], 2);

    let rows = number(&cluster["load"], "rows");
    assert!(rows > 0.0);
    assert_eq!(number(&cluster["cold_read"], "rows"), rows);
    assert!(number(&cluster["cold_read"], "mb_per_s") > 0.0);

    let intervals = cluster["intervals"].as_array().expect("intervals");
    let readers: Vec<u64> = intervals
        .iter()
        .map(|i| i["readers"].as_u64().expect("readers"))
        .collect();
    assert_eq!(readers, [0, 1, 2]);
    for interval in intervals {
        for key in [
            "owner_requests_per_s",
            "reader_requests_per_s",
            "owner_cpu_ms_per_s",
            "reader_cpu_ms_per_s",
        ] {
            assert!(number(interval, key) >= 0.0, "{key} in {interval}");
        }
        // The owner moves no payload bytes: readers never have it GET chunks for them.
        let purposes = interval["owner_requests_by_purpose"]
            .as_object()
            .expect("purposes");
        assert!(!purposes.contains_key("chunk_get"), "{interval}");
        if interval["readers"] == 0 {
            assert_eq!(number(interval, "ipc_bytes"), 0.0);
        } else {
            assert!(number(interval, "ipc_bytes") > 0.0, "{interval}");
            assert!(number(interval, "mb_per_s") > 0.0, "{interval}");
        }
    }

    let latency = &cluster["latency"];
    for placement in ["multi_process", "in_process"] {
        let run = &latency[placement];
        let appends = number(run, "appends");
        assert!(appends > 0.0, "{placement}: {run}");
        assert_eq!(number(&run["latency"], "samples"), appends, "{placement}");
        assert!(
            number(&run["latency"], "p50_ms") <= number(&run["latency"], "p99_ms"),
            "{placement}"
        );
    }
    // A follower on the writer's own node reads from the cache the writer fills; one on a
    // reader process GETs what it follows from the store.
    assert_eq!(number(&latency["in_process"], "follower_chunk_gets"), 0.0);
    assert!(number(&latency["multi_process"], "follower_chunk_gets") > 0.0);
    assert!(number(latency, "p50_difference_ms").is_finite());

    // Every process is gone and the store directory removed.
    let store = cluster["store"].as_str().expect("store path");
    assert!(
        !std::path::Path::new(store).exists(),
        "{store} is left behind"
    );
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !cmdline.contains(store),
                "a cluster process still runs: {cmdline}"
            );
        }
    }
}
