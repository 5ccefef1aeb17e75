//! A real `inlet serve` process takes a corpus of malformed appends (mutated Arrow IPC:
//! flipped bits, huge and negative length fields, truncations, splices; plus the exact
//! huge-length case that once aborted the server) and then a valid one: every bad append
//! gets INVALID_ARGUMENT, the valid one lands, the process is still alive, its peak RSS
//! stays bounded, and the table holds exactly the valid rows.

// This test drives a real process, so it waits in real time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "../../core/tests/support/mutate.rs"]
mod mutate;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_buffer::Buffer;
use common::process::{INLET, ServerProcess, free_port};
use common::{batch, create_table, read_all, schema};
use inlet::client::{Client, path};
use inlet_core::ipc::{batches_to_ipc, decode_stream};
use inlet_core::rng::SplitMix64;
use inlet_proto::v1 as pb;
use tonic::Code;

/// Malformed appends sent; each is a few hundred bytes to a few KiB.
const BAD_APPENDS: usize = 1_500;

/// How much the server's peak RSS may grow while it rejects the corpus. A bounded decoder
/// needs a few MiB for a few KiB of input; one unchecked length field needed petabytes.
const RSS_GROWTH_LIMIT_KIB: u64 = 128 * 1024;

/// Peak resident set size of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// The corpus: the exact shape of the append that aborted the server (a body length of
/// ~2^51), then seeded mutations of valid appends that the decoder rejects.
fn corpus() -> Vec<Vec<u8>> {
    let valid: Vec<Vec<u8>> = [1..4, 0..50, 100..400]
        .into_iter()
        .map(|ids| batches_to_ipc(&schema(), &[batch(ids)]).expect("encodes"))
        .collect();
    let mut huge_body = valid[0].clone();
    let schema_len = 8 + i32::from_le_bytes(huge_body[4..8].try_into().expect("4 bytes")) as usize;
    // The record batch message's metadata starts after the schema message; its bodyLength
    // (an i64 field of the flatbuffer) is the first 8-byte value equal to the body's size.
    let batch_meta_len = i32::from_le_bytes(
        huge_body[schema_len + 4..schema_len + 8]
            .try_into()
            .expect("4"),
    );
    let meta = schema_len + 8..schema_len + 8 + batch_meta_len as usize;
    let body_len = (huge_body.len() - meta.end - 8) as i64;
    let at = huge_body[meta.clone()]
        .windows(8)
        .position(|w| w == body_len.to_le_bytes())
        .expect("body length in the metadata")
        + meta.start;
    huge_body[at..at + 8].copy_from_slice(&2_251_799_813_686_608i64.to_le_bytes());

    let mut corpus = vec![huge_body];
    let mut rng = SplitMix64::new(0xbad_a99e);
    while corpus.len() < BAD_APPENDS {
        let input = &valid[corpus.len() % valid.len()];
        let mutated = mutate::mutate(input, &mut rng);
        // Keep what is malformed as Arrow IPC: a mutation that still decodes could be a
        // valid append, and then the table would rightly hold its rows.
        if decode_stream(Buffer::from(mutated.as_slice())).is_err() {
            corpus.push(mutated);
        }
    }
    corpus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_appends_are_rejected_and_the_server_lives_on() {
    let data = tempfile::tempdir().expect("temp dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut server = ServerProcess(
        Command::new(INLET)
            .args(["serve", "--listen", &listen, "--http-listen", &http])
            .args(["--compactor", "false", "--store"])
            .arg(data.path().join("bucket"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    let endpoint = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        match Client::connect(&endpoint).await {
            Ok(client) => break client,
            Err(error) => assert!(Instant::now() < deadline, "server did not come up: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    create_table(&mut client, "db", "t", 2, &["id"]).await;
    client
        .append("db", "t", &schema(), &[batch(0..10)])
        .await
        .expect("a valid append before the corpus");
    let rss_before = peak_rss_kib(server.0.id());

    let corpus = corpus();
    for (case, ipc) in corpus.iter().enumerate() {
        let status = client
            .raw()
            .append(pb::AppendRequest {
                path: Some(path("db", "t")),
                batches_ipc: ipc.clone(),
                ..Default::default()
            })
            .await
            .expect_err("a malformed append must fail");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "case {case} ({} bytes): {status:?}",
            ipc.len()
        );
        assert!(
            status.message().starts_with("malformed arrow ipc: "),
            "case {case}: {}",
            status.message()
        );
    }
    assert!(
        server.0.try_wait().expect("process status").is_none(),
        "the server exited"
    );
    let rss_after = peak_rss_kib(server.0.id());
    println!(
        "peak RSS {rss_before} KiB before, {rss_after} KiB after {} malformed appends",
        corpus.len()
    );
    assert!(
        rss_after - rss_before <= RSS_GROWTH_LIMIT_KIB,
        "peak RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    client
        .append("db", "t", &schema(), &[batch(10..20)])
        .await
        .expect("a valid append after the corpus");
    let mut ids: Vec<i64> = read_all(&mut client, "db", "t")
        .await
        .into_iter()
        .map(|(_, _, id, _)| id)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
}
