//! Authentication (issue 14, item 2), against real nodes:
//! - with `auth.enabled` and a tokens file, a call without a token, with a wrong, expired or
//!   revoked (line deleted, file reloaded) token gets UNAUTHENTICATED with one message that
//!   names nothing that exists, and changes nothing; a listed token works;
//! - a user's token on the internal `IndexPorts` service, or a user naming another principal
//!   in `inlet-principal`, gets PERMISSION_DENIED naming the principal;
//! - HTTP: `/health` is open, `/metrics` and the REST catalog need a bearer token (401);
//! - client certificates name principals under mTLS (an internal one may call `IndexPorts`);
//! - a cluster of processes with auth: nodes call each other with their own token, forward
//!   a user's calls on the user's behalf, and `inlet token create` makes the tokens; a
//!   node without an internal credential refuses to start.

// The cluster test drives real processes, so it waits in real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::process::{
    INLET, ORDERS_SCHEMA, ServerProcess, free_port, ok, orders_file, run_cli, spawn_node,
    wait_for_owner,
};
use common::*;
use inlet::auth::{AuthSettings, ON_BEHALF_OF};
use inlet::client::Client;
use inlet::node::Node;
use inlet_core::clock::Env;
use inlet_proto::v1 as pb;
use inlet_proto::v1::index_ports_client::IndexPortsClient;
use inlet_security::credential::Credential;
use inlet_security::principal::Principal;
use inlet_security::tls::{ClientTls, TlsSettings};
use inlet_security::tokens::{NewToken, create};
use inlet_testkit::pki::TestPki;
use slatedb::object_store::memory::InMemory;
use tonic::Code;

const DEADLINE: Duration = Duration::from_secs(60);

fn token(name: &str, expires: Option<SystemTime>) -> NewToken {
    create(&Principal::new(name).expect("principal"), expires).expect("token")
}

async fn start(config: &inlet::config::Config) -> Node {
    Node::start_with_store(config, Arc::new(InMemory::new()), Env::system())
        .await
        .expect("node starts")
}

async fn client(node: &Node, tls: &ClientTls, credential: Credential) -> Client {
    Client::connect_with(&node.endpoint(), tls, credential)
        .await
        .expect("connects")
}

fn bearer(token: &NewToken) -> Credential {
    Credential::bearer(&token.token).expect("credential")
}

/// `IndexPorts.Alive` on `node` with `credential`.
async fn alive(node: &Node, tls: &ClientTls, credential: &Credential) -> Result<(), tonic::Status> {
    let channel = tls
        .endpoint(&node.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    IndexPortsClient::new(credential.on(channel))
        .alive(pb::AliveRequest {})
        .await
        .map(|_| ())
}

async fn databases(client: &mut Client) -> Result<Vec<String>, tonic::Status> {
    Ok(client
        .raw()
        .list_databases(pb::ListDatabasesRequest {})
        .await?
        .into_inner()
        .databases
        .into_iter()
        .map(|d| d.name)
        .collect())
}

/// The call was refused as unauthenticated, with the one message that names nothing.
fn unauthenticated(result: Result<Vec<String>, tonic::Status>) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("missing or invalid credentials"),
        "{status:?}"
    );
    for secret in ["alice", "bob", "carol", "db", "events"] {
        assert!(!status.message().contains(secret), "{status:?}");
    }
}

#[tokio::test]
async fn only_listed_unexpired_tokens_authenticate_and_only_nodes_call_the_internal_service() {
    let dir = tempfile::tempdir().expect("dir");
    let alice = token("alice", None);
    let bob = token("bob", Some(SystemTime::now() - Duration::from_secs(1)));
    let carol = token("carol", None);
    let node_token = token("inlet", None);
    let tokens = dir.path().join("tokens");
    let lines = [&alice, &bob, &carol, &node_token].map(|t| t.line.clone());
    std::fs::write(&tokens, lines.join("\n") + "\n").expect("tokens file");
    let mut config = test_config();
    config.auth = AuthSettings {
        enabled: true,
        tokens_file: Some(tokens.clone()),
        reload_interval: Duration::from_millis(50),
        superusers: vec!["alice".to_owned(), "carol".to_owned()],
        ..AuthSettings::default()
    };
    let node = start(&config).await;
    let plain = ClientTls::system();

    let mut as_alice = client(&node, &plain, bearer(&alice)).await;
    create_table(&mut as_alice, "db", "events", 2, &["id"]).await;
    as_alice
        .append("db", "events", &schema(), &[batch(0..10)])
        .await
        .expect("alice appends");

    for credential in [
        Credential::none(),
        Credential::bearer("inlet_0000").expect("credential"),
        bearer(&bob),
    ] {
        let mut refused = client(&node, &plain, credential.clone()).await;
        unauthenticated(databases(&mut refused).await);
        let error = refused
            .create_database("intruder", false)
            .await
            .expect_err("refused");
        assert!(
            format!("{error:#}").contains("Unauthenticated"),
            "{error:#}"
        );
        let status = alive(&node, &plain, &credential)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }

    // Carol works until her line goes; the file is read again on its own.
    let mut as_carol = client(&node, &plain, bearer(&carol)).await;
    databases(&mut as_carol).await.expect("carol lists");
    let kept = [&alice, &bob, &node_token].map(|t| t.line.clone());
    std::fs::write(&tokens, kept.join("\n") + "\n").expect("revoke carol");
    let started = Instant::now();
    loop {
        match databases(&mut as_carol).await {
            Ok(_) => assert!(started.elapsed() < DEADLINE, "carol's token still works"),
            Err(status) => {
                unauthenticated(Err(status));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The internal service is for nodes; a user may not speak for another.
    let denied = alive(&node, &plain, &bearer(&alice))
        .await
        .expect_err("alice");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("`alice`"), "{denied:?}");
    alive(&node, &plain, &bearer(&node_token))
        .await
        .expect("a node's token calls IndexPorts");
    let mut request = tonic::Request::new(pb::ListDatabasesRequest {});
    request
        .metadata_mut()
        .insert(ON_BEHALF_OF, "inlet".parse().expect("ascii"));
    let denied = as_alice
        .raw()
        .list_databases(request)
        .await
        .expect_err("alice speaking for the node");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // HTTP: health is open, the rest needs a token.
    let http = node.http_addr().expect("http");
    let (status, _) = try_http_get(http, "/health").await.expect("health");
    assert!(status.contains("200"), "{status}");
    for path in ["/metrics", "/iceberg/v1/config"] {
        let (status, body) = try_http_get(http, path).await.expect(path);
        assert!(status.contains("401"), "{path}: {status}");
        assert!(body.contains("NotAuthorizedException"), "{body}");
        let header = format!("Authorization: Bearer {}", bob.token);
        let (status, _) = http_get_with(http, path, &[&header]).await.expect(path);
        assert!(status.contains("401"), "expired token on {path}: {status}");
        let header = format!("Authorization: Bearer {}", alice.token);
        let (status, _) = http_get_with(http, path, &[&header]).await.expect(path);
        assert!(status.contains("200"), "{path}: {status}");
    }

    assert_eq!(
        databases(&mut as_alice).await.expect("alice lists"),
        vec!["db".to_owned()],
        "a refused create changed nothing"
    );
    assert_eq!(read_all(&mut as_alice, "db", "events").await.len(), 10);
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn client_certificates_name_principals_under_mtls() {
    let pki = TestPki::new();
    let server = pki.issue("node");
    let mut config = test_config();
    config.tls = TlsSettings {
        cert: Some(server.cert),
        key: Some(server.key),
        client_ca: Some(pki.ca().to_owned()),
        ca: Some(pki.ca().to_owned()),
    };
    config.auth = AuthSettings {
        enabled: true,
        superusers: vec!["alice".to_owned()],
        ..AuthSettings::default()
    };
    let node = start(&config).await;
    let as_cert = |name: &str| {
        let files = pki.issue(name);
        ClientTls::from_files(Some(pki.ca()), Some(&files.cert), Some(&files.key)).expect("tls")
    };
    let alice = as_cert("alice");
    let mut as_alice = client(&node, &alice, Credential::none()).await;
    databases(&mut as_alice)
        .await
        .expect("alice by certificate");
    let denied = alive(&node, &alice, &Credential::none())
        .await
        .expect_err("alice on the internal service");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("`alice`"), "{denied:?}");
    alive(&node, &as_cert("inlet"), &Credential::none())
        .await
        .expect("a node's certificate calls IndexPorts");
    // The HTTP listener takes the certificate's principal too: the catalog needs no token.
    let files = pki.issue("analyst");
    let (status, body) = https_get(
        node.http_addr().expect("http"),
        "/iceberg/v1/namespaces",
        pki.ca(),
        Some((&files.cert, &files.key)),
    )
    .await
    .expect("catalog over mTLS");
    assert!(status.contains("200"), "{status} {body}");
    node.shutdown().await.expect("clean shutdown");
}

/// A node process with auth on, its own token in `token_file`.
fn serve(
    store: &Path,
    logs: &Path,
    tokens: &Path,
    name: &str,
    roles: &str,
    token_file: &Path,
) -> (ServerProcess, String) {
    let (process, listen) = spawn_node(store, logs, name, roles, |command| {
        command
            .env("INLET_AUTH_ENABLED", "true")
            .env("INLET_AUTH_TOKENS_FILE", tokens)
            .env("INLET_AUTH_TOKEN_FILE", token_file)
            .env("INLET_AUTH_SUPERUSERS", "[root]");
    });
    (process, format!("http://{listen}"))
}

fn inlet(server: &str, token: Option<&str>, args: &[&str]) -> Output {
    match token {
        Some(token) => run_cli(server, &[("INLET_TOKEN", token)], args),
        None => run_cli(server, &[], args),
    }
}

/// `inlet token create <principal>`: (token, line).
fn create_token(principal: &str) -> (String, String) {
    let printed = ok(inlet(
        "http://127.0.0.1:1",
        None,
        &["token", "create", principal],
    ));
    let field = |label: &str| {
        printed
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` in {printed}"))
            .trim()
            .to_owned()
    };
    (field("token:"), field("line:"))
}

/// Runs `args` as `token` until it succeeds (`want`) or is refused (`!want`): a grant or a
/// revocation reaches a node's cached grants with the catalog event after its ack.
fn eventually(server: &str, token: &str, args: &[&str], want: bool) -> Output {
    let started = Instant::now();
    loop {
        let output = inlet(server, Some(token), args);
        if output.status.success() == want {
            return output;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{args:?} still {}: {}",
            if want { "refused" } else { "allowed" },
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cluster_with_authentication_forwards_calls_and_enforces_grants_on_every_node() {
    let store = tempfile::tempdir().expect("store dir");
    let logs = tempfile::tempdir().expect("log dir");
    let (root, root_line) = create_token("root");
    let (user, user_line) = create_token("alice");
    let (node, node_line) = create_token("inlet");
    assert!(user_line.starts_with("alice sha256:"), "{user_line}");
    let tokens = logs.path().join("tokens");
    std::fs::write(&tokens, format!("{root_line}\n{user_line}\n{node_line}\n"))
        .expect("tokens file");
    let node_token = logs.path().join("node.token");
    std::fs::write(&node_token, format!("{node}\n")).expect("node token");

    // A worker without a credential of its own cannot call the owner: it does not start.
    let refused = Command::new(INLET)
        .args([
            "serve",
            "--roles",
            "writer",
            "--http-listen",
            "off",
            "--store",
        ])
        .arg(store.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("INLET_AUTH_ENABLED", "true")
        .env("INLET_AUTH_TOKENS_FILE", &tokens)
        .output()
        .expect("inlet runs");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("no internal credential"), "{said}");

    let (_owner, owner) = serve(
        store.path(),
        logs.path(),
        &tokens,
        "owner",
        "index",
        &node_token,
    );
    let (_worker, worker) = serve(
        store.path(),
        logs.path(),
        &tokens,
        "worker",
        "writer,reader",
        &node_token,
    );
    wait_for_owner(&owner, || inlet(&worker, Some(&root), &["status"]));

    // Created by the superuser through the worker (forwarded to the owner for root).
    ok(inlet(
        &worker,
        Some(&root),
        &["table", "create", "shop.orders", "--schema", ORDERS_SCHEMA],
    ));
    let input = orders_file(logs.path(), 20);
    let produce = [
        "produce",
        "shop.orders",
        "--file",
        input.to_str().expect("utf-8"),
    ];
    let consume = [
        "consume",
        "shop.orders",
        "--format",
        "json",
        "--columns",
        "id",
    ];

    // Alice holds nothing yet: the worker's writer refuses her, naming what she lacks.
    let denied = inlet(&worker, Some(&user), &produce);
    assert!(!denied.status.success());
    let said = String::from_utf8_lossy(&denied.stderr);
    assert!(
        said.contains("principal `alice` lacks")
            && said.contains("permission on table shop.orders")
            && said.contains("PermissionDenied"),
        "{said}"
    );
    let denied = inlet(
        &worker,
        Some(&user),
        &["acl", "grant", "alice", "admin", "*"],
    );
    assert!(!denied.status.success(), "alice granted herself admin");

    // Granted through the worker; the worker's writer and reader then let her in.
    for grant in [["alice", "write", "shop.orders"], ["alice", "read", "shop"]] {
        let mut args = vec!["acl", "grant"];
        args.extend(grant);
        let granted = ok(inlet(&worker, Some(&root), &args));
        assert!(granted.starts_with("granted: "), "{granted}");
    }
    let listed = ok(inlet(&owner, Some(&root), &["acl", "list"]));
    assert!(
        listed.contains("alice") && listed.contains("shop.orders"),
        "{listed}"
    );
    let produced = eventually(&worker, &user, &produce, true);
    assert_eq!(
        String::from_utf8_lossy(&produced.stdout).trim(),
        "produced 20 rows to shop.orders"
    );
    let consumed = ok(eventually(&worker, &user, &consume, true));
    assert_eq!(consumed.lines().count(), 20, "{consumed}");

    // Revoked: refused again on the worker, and the refused produce added nothing.
    ok(inlet(
        &worker,
        Some(&root),
        &["acl", "revoke", "alice", "write", "shop.orders"],
    ));
    eventually(&worker, &user, &produce, false);
    let consumed = ok(inlet(&worker, Some(&user), &consume));
    assert_eq!(consumed.lines().count(), 20, "{consumed}");

    for token in [None, Some("inlet_0000")] {
        let anonymous = inlet(&worker, token, &["db", "create", "intruder"]);
        assert!(!anonymous.status.success());
        let said = String::from_utf8_lossy(&anonymous.stderr);
        assert!(said.contains("missing or invalid credentials"), "{said}");
    }
    let databases = ok(inlet(&owner, Some(&root), &["db", "list"]));
    assert!(!databases.contains("intruder"), "{databases}");
}
