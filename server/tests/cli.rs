//! The built `inlet` binary end to end: serve, create a table, produce a JSON-lines file,
//! consume it back and compare; and one-line errors with a non-zero exit.

// This test drives a real process, so it waits in real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{INLET, ServerProcess, free_port, ok, run_cli};

fn inlet(server: &str, args: &[&str]) -> Output {
    run_cli(server, &[], args)
}

#[test]
fn serve_create_produce_consume_round_trip() {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let http = format!("127.0.0.1:{}", free_port());
    let server = format!("http://{listen}");
    let _serve = ServerProcess(
        Command::new(INLET)
            .args([
                "serve",
                "--listen",
                &listen,
                "--http-listen",
                &http,
                "--store",
            ])
            .arg(data.path().join("bucket"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while inlet(&server, &["db", "list"]).status.code() != Some(0) {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }

    ok(inlet(
        &server,
        &[
            "table",
            "create",
            "shop.orders",
            "--schema",
            "id:int64 not null, item:string, qty:int32",
            "--buckets",
            "2",
            "--bucket-key",
            "id",
        ],
    ));
    let lines: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"id":{i},"item":"item-{i}","qty":{}}}"#, i % 7))
        .collect();
    let input = data.path().join("orders.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let produced = ok(inlet(
        &server,
        &[
            "produce",
            "shop.orders",
            "--file",
            input.to_str().expect("utf-8 path"),
        ],
    ));
    assert_eq!(produced.trim(), "produced 50 rows to shop.orders");

    let consumed = ok(inlet(
        &server,
        &[
            "consume",
            "shop.orders",
            "--format",
            "json",
            "--columns",
            "id,item,qty",
        ],
    ));
    let mut rows: Vec<serde_json::Value> = consumed
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    rows.sort_by_key(|row| row["id"].as_i64());
    assert_eq!(rows.len(), 50);
    for (i, row) in rows.iter().enumerate() {
        let expected: serde_json::Value =
            serde_json::from_str(&lines[i]).expect("input line is json");
        for column in ["id", "item", "qty"] {
            assert_eq!(row[column], expected[column], "row {i} column {column}");
        }
        assert!(row["_offset"].is_u64() && row["_timestamp"].is_string());
    }

    let limited = ok(inlet(
        &server,
        &[
            "consume",
            "shop.orders",
            "--format",
            "json",
            "--limit",
            "3",
            "--buckets",
            "0",
        ],
    ));
    assert_eq!(limited.lines().count(), 3);

    let status = ok(inlet(&server, &["status"]));
    assert!(status.contains("index: owner"), "{status}");
    assert!(status.contains("wal_put"), "{status}");
    assert!(status.contains("estimated request cost"), "{status}");

    let describe = ok(inlet(&server, &["table", "describe", "shop.orders"]));
    assert!(describe.contains("bucket key: id"), "{describe}");
    assert!(describe.contains("wal_bytes"), "{describe}");

    // ALTER: options and comment change, `describe` shows them; a fixed option is refused.
    let altered = ok(inlet(
        &server,
        &[
            "table",
            "alter",
            "shop.orders",
            "--set",
            "lake.freshness=5m",
            "--comment",
            "web orders",
        ],
    ));
    assert!(altered.contains("lake.freshness=5m"), "{altered}");
    let describe = ok(inlet(&server, &["table", "describe", "shop.orders"]));
    assert!(describe.contains("lake.freshness=5m"), "{describe}");
    assert!(describe.contains("comment: web orders"), "{describe}");
    let fixed = inlet(
        &server,
        &[
            "table",
            "alter",
            "shop.orders",
            "--set",
            "merge.engine=first_row",
        ],
    );
    assert!(!fixed.status.success());
    let stderr = String::from_utf8_lossy(&fixed.stderr);
    assert!(
        stderr.contains("fixed when the table is created"),
        "{stderr}"
    );

    // A column added at the end: a new schema id, `describe` lists it, rows written before
    // read as null in it.
    let added = ok(inlet(
        &server,
        &[
            "table",
            "alter",
            "shop.orders",
            "--add-columns",
            "note:string",
        ],
    ));
    assert!(added.contains("(schema 1)"), "{added}");
    let describe = ok(inlet(&server, &["table", "describe", "shop.orders"]));
    assert!(describe.contains("note"), "{describe}");
    let first = ok(inlet(
        &server,
        &["consume", "shop.orders", "--format", "json", "--limit", "1"],
    ));
    let row: serde_json::Value =
        serde_json::from_str(first.lines().next().expect("a row")).expect("json line");
    // JSON lines leave nulls out.
    assert!(
        row.get("note").is_none() && row["item"].is_string(),
        "{row}"
    );
    let table = ok(inlet(
        &server,
        &[
            "consume",
            "shop.orders",
            "--format",
            "table",
            "--limit",
            "1",
        ],
    ));
    assert!(table.contains("note"), "the added column is read: {table}");

    // A column widened: the next schema id, `describe` shows the new type, and a narrowing
    // is refused with the types named.
    let widened = ok(inlet(
        &server,
        &[
            "table",
            "alter",
            "shop.orders",
            "--widen-columns",
            "qty:int64",
        ],
    ));
    assert!(widened.contains("(schema 2)"), "{widened}");
    let describe = ok(inlet(&server, &["table", "describe", "shop.orders"]));
    assert!(
        describe
            .lines()
            .any(|l| l.contains("qty") && l.contains("Int64")),
        "{describe}"
    );
    let narrowed = inlet(
        &server,
        &[
            "table",
            "alter",
            "shop.orders",
            "--widen-columns",
            "qty:int32",
        ],
    );
    assert!(!narrowed.status.success());
    let stderr = String::from_utf8_lossy(&narrowed.stderr);
    assert!(
        stderr.contains("cannot change from Int64 to Int32"),
        "{stderr}"
    );

    // A column renamed and one dropped: the next schema id, `describe` lists the new name
    // and not the dropped column, and rows written before read under the new name.
    let changed = ok(inlet(
        &server,
        &[
            "table",
            "alter",
            "shop.orders",
            "--rename-column",
            "item:product",
            "--drop-columns",
            "note",
        ],
    ));
    assert!(changed.contains("(schema 3)"), "{changed}");
    let describe = ok(inlet(&server, &["table", "describe", "shop.orders"]));
    assert!(
        describe.contains("product") && !describe.contains("note") && !describe.contains("item"),
        "{describe}"
    );
    let first = ok(inlet(
        &server,
        &["consume", "shop.orders", "--format", "json", "--limit", "1"],
    ));
    let row: serde_json::Value =
        serde_json::from_str(first.lines().next().expect("a row")).expect("json line");
    assert!(
        row["product"].is_string() && row.get("item").is_none(),
        "{row}"
    );
    let bad_rename = inlet(
        &server,
        &[
            "table",
            "alter",
            "shop.orders",
            "--rename-column",
            "product",
        ],
    );
    assert!(!bad_rename.status.success());
    let stderr = String::from_utf8_lossy(&bad_rename.stderr);
    assert!(stderr.contains("expected old:new"), "{stderr}");

    // Errors: one line, non-zero exit.
    let missing = inlet(&server, &["consume", "shop.nope"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("table `shop.nope` not found"), "{stderr}");

    let bad_line = data.path().join("bad.jsonl");
    std::fs::write(&bad_line, "{\"id\":\"not a number\"}\n").expect("write");
    let bad = inlet(
        &server,
        &[
            "produce",
            "shop.orders",
            "--file",
            bad_line.to_str().expect("utf-8 path"),
        ],
    );
    assert!(!bad.status.success());
    let count = ok(inlet(
        &server,
        &["consume", "shop.orders", "--format", "json"],
    ));
    assert_eq!(count.lines().count(), 50, "a rejected file adds nothing");

    // Lake tiering from the command line: a table option turns it on, `lake status` shows
    // the compactor (running inside serve) catching up, and bad options are one-line errors.
    let bad_option = inlet(
        &server,
        &[
            "table",
            "create",
            "shop.bad",
            "--schema",
            "id:int64",
            "--option",
            "lake.enabled=maybe",
        ],
    );
    assert!(!bad_option.status.success());
    let stderr = String::from_utf8_lossy(&bad_option.stderr);
    assert!(
        stderr.contains("lake.enabled") && stderr.contains("maybe"),
        "{stderr}"
    );
    ok(inlet(
        &server,
        &[
            "table",
            "create",
            "shop.clicks",
            "--schema",
            "id:int64 not null, item:string, qty:int32",
            "--buckets",
            "2",
            "--option",
            "lake.enabled=true",
            "--option",
            "lake.freshness=100ms",
        ],
    ));
    ok(inlet(
        &server,
        &[
            "produce",
            "shop.clicks",
            "--file",
            input.to_str().expect("utf-8 path"),
        ],
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = ok(inlet(&server, &["lake", "status", "shop.clicks"]));
        if status.contains("lake on") && status.contains("50 rows") {
            assert!(status.contains("metadata: file://"), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "not tiered in time:\n{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = ok(inlet(&server, &["lake", "status"]));
    assert!(
        all.contains("shop.orders: lake off") && all.contains("shop.clicks: lake on"),
        "{all}"
    );

    // Dropped with `--purge`: the name is gone at once (its data after the drop grace).
    let dropped = ok(inlet(&server, &["table", "drop", "shop.clicks", "--purge"]));
    assert!(dropped.contains("dropped table shop.clicks"), "{dropped}");
    let gone = inlet(&server, &["table", "describe", "shop.clicks"]);
    assert!(!gone.status.success());
    let all = ok(inlet(&server, &["lake", "status"]));
    assert!(!all.contains("shop.clicks"), "{all}");
}
