//! TLS on every listener (issue 14, item 1), with certificates made here by the test:
//! - a node with `[tls]` serves gRPC and HTTP (health, metrics, the REST catalog) over TLS
//!   only: clients that trust its CA work; a plaintext client, a client trusting only the
//!   system's roots, and one trusting another CA are refused, and change nothing;
//! - with `tls.client_ca` (mTLS) both listeners also refuse clients without a certificate or
//!   with one from another CA;
//! - a cluster of separate `inlet serve` processes speaks mTLS between its processes (the
//!   writer's commits, the reader's tails, forwarded requests) and the CLI reaches it with
//!   `--ca-cert`, `--client-cert` and `--client-key`.

mod common;

use std::process::Output;
use std::sync::Arc;

use common::process::{
    ORDERS_SCHEMA, ServerProcess, ok, orders_file, run_cli, spawn_node, wait_for_owner,
};
use common::*;
use inlet::client::Client;
use inlet::node::Node;
use inlet_core::clock::Env;
use inlet_proto::v1 as pb;
use inlet_security::credential::Credential;
use inlet_security::tls::{ClientTls, TlsSettings};
use inlet_testkit::pki::{CertFiles, TestPki};
use slatedb::object_store::memory::InMemory;

async fn start_tls(pki: &TestPki, mtls: bool) -> Node {
    let node = pki.issue("node");
    let mut config = test_config();
    config.tls = TlsSettings {
        cert: Some(node.cert),
        key: Some(node.key),
        client_ca: mtls.then(|| pki.ca().to_owned()),
        ca: Some(pki.ca().to_owned()),
    };
    Node::start_with_store(&config, Arc::new(InMemory::new()), Env::system())
        .await
        .expect("TLS node starts")
}

fn trusting(ca: &std::path::Path, client: Option<&CertFiles>) -> ClientTls {
    ClientTls::from_files(
        Some(ca),
        client.map(|c| c.cert.as_path()),
        client.map(|c| c.key.as_path()),
    )
    .expect("client TLS files")
}

/// Connects and tries to create database `intruder`: must fail, at the connection or at the
/// call. Returns the error's text.
async fn refused(endpoint: &str, tls: &ClientTls) -> String {
    let mut client = match Client::connect_with(endpoint, tls, Credential::none()).await {
        Ok(client) => client,
        Err(error) => return format!("{error:#}"),
    };
    match client.create_database("intruder", false).await {
        Ok(()) => panic!("{endpoint} accepted a client it must refuse"),
        Err(error) => format!("{error:#}"),
    }
}

/// Creates `db.events`, appends ids 0..10 and reads them back.
async fn round_trip(client: &mut Client) {
    create_table(client, "db", "events", 2, &["id"]).await;
    client
        .append("db", "events", &schema(), &[batch(0..10)])
        .await
        .expect("append over TLS");
    assert_eq!(read_all(client, "db", "events").await.len(), 10);
}

/// Nothing a refused client tried is there: one database, ten rows.
async fn unchanged(client: &mut Client) {
    let databases = client
        .raw()
        .list_databases(pb::ListDatabasesRequest {})
        .await
        .expect("list databases")
        .into_inner()
        .databases;
    let names: Vec<&str> = databases.iter().map(|d| d.name.as_str()).collect();
    assert!(!names.contains(&"intruder"), "{names:?}");
    assert_eq!(read_all(client, "db", "events").await.len(), 10);
}

#[tokio::test]
async fn a_tls_node_serves_only_clients_that_trust_its_certificate() {
    let pki = TestPki::new();
    let node = start_tls(&pki, false).await;
    let endpoint = node.endpoint();
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let mut client = Client::connect_with(&endpoint, &trusting(pki.ca(), None), Credential::none())
        .await
        .expect("a client that trusts the CA connects");
    round_trip(&mut client).await;

    let plaintext = refused(&format!("http://{}", node.addr()), &ClientTls::system()).await;
    let system_roots = refused(&endpoint, &ClientTls::system()).await;
    assert!(system_roots.contains("UnknownIssuer"), "{system_roots}");
    let other_ca = refused(&endpoint, &trusting(pki.other_ca(), None)).await;
    assert!(other_ca.contains("UnknownIssuer"), "{other_ca}");
    assert!(plaintext.contains("transport error"), "{plaintext}");
    unchanged(&mut client).await;

    let http = node.http_addr().expect("http listener");
    for path in ["/health", "/metrics", "/iceberg/v1/config"] {
        let (status, body) = https_get(http, path, pki.ca(), None)
            .await
            .unwrap_or_else(|e| panic!("GET {path} over TLS: {e}"));
        assert!(status.contains("200"), "{path}: {status} {body}");
    }
    let plain = try_http_get(http, "/health").await;
    assert!(
        !plain
            .as_ref()
            .is_ok_and(|(status, _)| status.contains("200")),
        "plaintext HTTP answered: {plain:?}"
    );
    let untrusted = https_get(http, "/health", pki.other_ca(), None).await;
    assert!(
        untrusted
            .as_ref()
            .is_err_and(|e| e.contains("UnknownIssuer")),
        "{untrusted:?}"
    );
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_mtls_node_refuses_clients_without_a_certificate_from_its_ca() {
    let pki = TestPki::new();
    let node = start_tls(&pki, true).await;
    let endpoint = node.endpoint();
    let member = pki.issue("client");
    let stranger = pki.issue_by_other("client");
    let mut client = Client::connect_with(
        &endpoint,
        &trusting(pki.ca(), Some(&member)),
        Credential::none(),
    )
    .await
    .expect("a client with a certificate from the CA connects");
    round_trip(&mut client).await;

    // Refused in the handshake. The client's error names the server's alert
    // (CertificateRequired, UnknownCA) when it reads it before it sees the connection close
    // (TLS 1.3 clients finish their side of the handshake first): a race, so only the
    // transport failure is certain.
    for tls in [
        trusting(pki.ca(), None),
        trusting(pki.ca(), Some(&stranger)),
    ] {
        let error = refused(&endpoint, &tls).await;
        assert!(error.contains("transport error"), "{error}");
    }
    refused(&format!("http://{}", node.addr()), &ClientTls::system()).await;
    unchanged(&mut client).await;

    let http = node.http_addr().expect("http listener");
    let (status, body) = https_get(http, "/health", pki.ca(), Some((&member.cert, &member.key)))
        .await
        .expect("GET /health with a client certificate");
    assert!(status.contains("200"), "{status} {body}");
    for client in [
        None,
        Some((stranger.cert.as_path(), stranger.key.as_path())),
    ] {
        let refused = https_get(http, "/health", pki.ca(), client).await;
        assert!(refused.is_err(), "{client:?}: {refused:?}");
    }
    node.shutdown().await.expect("clean shutdown");
}

/// A node process of the cluster: its own certificate, mTLS on, trusting the test CA.
fn serve(
    pki: &TestPki,
    store: &std::path::Path,
    logs: &std::path::Path,
    name: &str,
    roles: &str,
) -> (ServerProcess, String) {
    let cert = pki.issue(name);
    let (process, listen) = spawn_node(store, logs, name, roles, |command| {
        command
            .arg("--tls-cert")
            .arg(&cert.cert)
            .arg("--tls-key")
            .arg(&cert.key)
            .arg("--tls-client-ca")
            .arg(pki.ca())
            .arg("--tls-ca")
            .arg(pki.ca());
    });
    (process, format!("https://{listen}"))
}

/// The CLI against `server` with the given TLS flags.
fn inlet(server: &str, tls: &[&std::ffi::OsStr], args: &[&str]) -> Output {
    let args = args
        .iter()
        .map(std::ffi::OsStr::new)
        .chain(tls.iter().copied());
    run_cli(server, &[], args)
}

#[test]
fn a_cluster_speaks_mtls_between_its_processes_and_to_the_cli() {
    let pki = TestPki::new();
    let store = tempfile::tempdir().expect("store dir");
    let logs = tempfile::tempdir().expect("log dir");
    let (_owner, owner) = serve(&pki, store.path(), logs.path(), "owner", "index");
    let (_worker, worker) = serve(&pki, store.path(), logs.path(), "worker", "writer,reader");
    let user = pki.issue("user");
    let tls = [
        "--ca-cert".as_ref(),
        pki.ca().as_os_str(),
        "--client-cert".as_ref(),
        user.cert.as_os_str(),
        "--client-key".as_ref(),
        user.key.as_os_str(),
    ];
    // Up once the worker answers over mTLS and has found the owner.
    wait_for_owner(&owner, || inlet(&worker, &tls, &["status"]));
    let record =
        std::fs::read_to_string(store.path().join("cluster/owner.json")).expect("owner record");
    assert!(record.contains(&owner), "{record}");

    // Created through the worker (forwarded to the owner), produced through its writer
    // (committed at the owner), consumed through its reader (tails from the owner).
    ok(inlet(
        &worker,
        &tls,
        &["table", "create", "shop.orders", "--schema", ORDERS_SCHEMA],
    ));
    let input = orders_file(logs.path(), 20);
    let produced = ok(inlet(
        &worker,
        &tls,
        &[
            "produce",
            "shop.orders",
            "--file",
            input.to_str().expect("utf-8"),
        ],
    ));
    assert_eq!(produced.trim(), "produced 20 rows to shop.orders");
    let consumed = ok(inlet(
        &worker,
        &tls,
        &[
            "consume",
            "shop.orders",
            "--format",
            "json",
            "--columns",
            "id",
        ],
    ));
    assert_eq!(consumed.lines().count(), 20, "{consumed}");

    // Without a client certificate, and in plaintext: one clear line, nothing done.
    let anonymous = inlet(&worker, &tls[..2], &["db", "create", "intruder"]);
    assert!(!anonymous.status.success());
    let said = String::from_utf8_lossy(&anonymous.stderr);
    assert!(said.contains("transport error"), "{said}");
    let plaintext = inlet(
        &worker.replace("https://", "http://"),
        &[],
        &["db", "create", "intruder"],
    );
    assert!(!plaintext.status.success());
    let databases = ok(inlet(&owner, &tls, &["db", "list"]));
    assert!(!databases.contains("intruder"), "{databases}");
}
