//! `inlet serve` against a real S3-compatible server (moto on loopback): clear startup
//! errors for a missing bucket or an unreachable endpoint, and no local disk used at all.

// This test drives real processes, so it waits in real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::backend::{Backend, S3_ENDPOINT_VAR};
use common::process::{INLET, ServerProcess, free_port};

/// `inlet` with the AWS variables pointing at `endpoint`, run in `cwd` with `tmp` as TMPDIR.
fn inlet(endpoint: &str, cwd: &Path, tmp: &Path) -> Command {
    let mut command = Command::new(INLET);
    command
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    command
}

fn serve_fails(endpoint: &str, bucket: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let output: Output = inlet(endpoint, dir.path(), dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--store",
        ])
        .arg(format!("s3://{bucket}/inlet"))
        .output()
        .expect("inlet runs");
    assert!(!output.status.success(), "serve must fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one clear error line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    errors[0].to_owned()
}

fn endpoint() -> String {
    std::env::var(S3_ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!("{S3_ENDPOINT_VAR} is not set: run the tests with `bash .ci/run`")
    })
}

#[test]
fn a_missing_bucket_is_one_clear_startup_error() {
    let error = serve_fails(&endpoint(), "no-such-bucket-for-inlet");
    assert!(
        error.contains("s3://no-such-bucket-for-inlet/inlet"),
        "{error}"
    );
    assert!(error.contains("is not usable"), "{error}");
}

#[test]
fn an_unreachable_endpoint_is_one_clear_startup_error() {
    // Nothing listens on this port.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let error = serve_fails(&dead, "some-bucket");
    assert!(error.contains("s3://some-bucket/inlet"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_from_s3_writes_nothing_to_local_disk() {
    let Backend::S3 { endpoint, bucket } = Backend::s3("no_local_disk").await else {
        unreachable!("s3 backend");
    };
    let cwd = tempfile::tempdir().expect("temp dir");
    let tmp = tempfile::tempdir().expect("temp dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let server = format!("http://{listen}");
    let _serve = ServerProcess(
        inlet(&endpoint, cwd.path(), tmp.path())
            .args([
                "serve",
                "--listen",
                &listen,
                "--http-listen",
                "off",
                "--store",
            ])
            .arg(format!("s3://{bucket}/inlet"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    let client = |args: &[&str]| {
        inlet(&endpoint, cwd.path(), tmp.path())
            .args(args)
            .env("INLET_SERVER", &server)
            .output()
            .expect("inlet runs")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client(&["db", "list"]).status.success() {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok = |output: Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    };
    ok(client(&[
        "table",
        "create",
        "s.t",
        "--schema",
        "id:int64 not null, v:string",
    ]));
    let mut produce = inlet(&endpoint, cwd.path(), tmp.path())
        .args(["produce", "s.t"])
        .env("INLET_SERVER", &server)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("produce runs");
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().expect("stdin");
        for i in 0..100 {
            writeln!(stdin, r#"{{"id":{i},"v":"row-{i}"}}"#).expect("write");
        }
    }
    ok(produce.wait_with_output().expect("produce finishes"));
    let rows = ok(client(&["consume", "s.t", "--format", "json"]));
    assert_eq!(rows.lines().count(), 100);

    let written = |dir: &Path| std::fs::read_dir(dir).expect("list").count();
    assert_eq!(
        written(cwd.path()),
        0,
        "nothing under the working directory"
    );
    assert_eq!(written(tmp.path()), 0, "nothing under TMPDIR");
}
