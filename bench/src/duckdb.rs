//! DuckDB scans of lake tables, timed in a Python process of their own (from
//! `INLET_BENCH_PYTHON`, or `python3`, with the `duckdb` and `duckdb-extension-*` wheels
//! `.ci/run` installs): `SELECT count(*), sum(c00)` over `iceberg_scan(<metadata file>)`,
//! best of three per table. Only a store in a local directory can be opened.

use std::time::Duration;

use inlet_core::ids::TableId;
use serde::Serialize;

use super::Settings;
use super::harness::Harness;

/// How long the scans of one call may take.
const SCAN_LIMIT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub(crate) struct DuckdbScan {
    /// Rows the lake table holds.
    pub(crate) rows: u64,
    /// `SELECT count(*), sum(c00)` over `iceberg_scan(<metadata file>)`, best of three.
    pub(crate) seconds: f64,
}

/// Scans the committed lake table of each of `tables`, in order; `Err` says why they could
/// not run (a store DuckDB cannot open, no lake metadata, no Python with DuckDB, a failed
/// scan).
pub(crate) async fn scan(
    harness: &Harness<'_>,
    settings: &Settings,
    tables: &[TableId],
) -> Result<Vec<DuckdbScan>, String> {
    if settings.store.contains("://") {
        return Err(format!(
            "the store `{}` is not a local directory DuckDB can open",
            settings.store
        ));
    }
    let index = harness.index().map_err(|e| e.to_string())?;
    let mut metadata = Vec::new();
    for table in tables {
        let location = index
            .lake_table(*table)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|record| record.metadata_location)
            .ok_or_else(|| format!("table {} has no lake metadata", table.0))?;
        metadata.push(
            location
                .strip_prefix("file://")
                .unwrap_or(&location)
                .to_owned(),
        );
    }
    let python = std::env::var("INLET_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = tokio::process::Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .args(&metadata)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCAN_LIMIT, output)
        .await
        .map_err(|_| format!("DuckDB did not finish within {SCAN_LIMIT:?}"))?
        .map_err(|e| format!("cannot run `{python}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "DuckDB failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("DuckDB's output is not the expected JSON: {e}"))
}

/// Times `SELECT count(*), sum(c00)` over `iceberg_scan` of each metadata file in argv, best
/// of three each; prints a JSON list. Extensions load from the pinned wheels' files, as
/// `server/tests/engines/read_lake.py` does.
const SCRIPT: &str = r#"
import importlib.util, json, pathlib, sys, time
import duckdb
con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
for name in ("avro", "httpfs", "iceberg"):
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    con.execute(f"LOAD '{root}/extensions/v{duckdb.__version__}/{name}.duckdb_extension'")
out = []
for metadata in sys.argv[1:]:
    best, rows = None, None
    for _ in range(3):
        started = time.monotonic()
        rows, _ = con.execute(f"SELECT count(*), sum(c00) FROM iceberg_scan('{metadata}')").fetchone()
        elapsed = time.monotonic() - started
        best = elapsed if best is None else min(best, elapsed)
    out.append({"rows": rows, "seconds": round(best, 4)})
print(json.dumps(out))
"#;
