//! Permissions (issue 14, item 3) on a node with authentication on: a superuser grants
//! `read`, `write` and `admin` on `database.table` patterns; every call is checked against
//! them, a denied call gets PERMISSION_DENIED naming the principal, the permission and the
//! resource and changes nothing, lists (databases, tables, the REST catalog) show only what
//! the principal holds anything on, and only admins of `*.*` manage grants.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use inlet::auth::AuthSettings;
use inlet::client::{Client, path};
use inlet::node::Node;
use inlet_core::clock::Env;
use inlet_proto::v1 as pb;
use inlet_security::credential::Credential;
use inlet_security::principal::Principal;
use inlet_security::tls::ClientTls;
use inlet_security::tokens::{NewToken, create};
use slatedb::object_store::memory::InMemory;
use tonic::Code;

fn token(name: &str) -> NewToken {
    create(&Principal::new(name).expect("principal"), None).expect("token")
}

async fn as_user(node: &Node, token: &NewToken) -> Client {
    Client::connect_with(
        &node.endpoint(),
        &ClientTls::system(),
        Credential::bearer(&token.token).expect("credential"),
    )
    .await
    .expect("connects")
}

fn grant(grantee: &str, permission: &str, resource: &str) -> pb::GrantRequest {
    pb::GrantRequest {
        grant: Some(pb::AccessGrant {
            grantee: grantee.to_owned(),
            permission: permission.to_owned(),
            resource: resource.to_owned(),
        }),
    }
}

/// The call was denied, naming the principal, the permission and the resource.
fn denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, said: &str) {
    let status = result.expect_err("denied");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(said), "{said}: {status:?}");
}

async fn tables(client: &mut Client, database: &str) -> Vec<String> {
    let mut names: Vec<String> = client
        .raw()
        .list_tables(pb::ListTablesRequest {
            database: database.to_owned(),
        })
        .await
        .expect("list tables")
        .into_inner()
        .tables
        .into_iter()
        .map(|t| t.path.expect("path").table)
        .collect();
    names.sort();
    names
}

async fn databases(client: &mut Client) -> Vec<String> {
    client
        .raw()
        .list_databases(pb::ListDatabasesRequest {})
        .await
        .expect("list databases")
        .into_inner()
        .databases
        .into_iter()
        .map(|d| d.name)
        .collect()
}

#[tokio::test]
async fn grants_decide_every_call_and_what_lists_show() {
    let dir = tempfile::tempdir().expect("dir");
    let [root, alice, bob, carol] = ["root", "alice", "bob", "carol"].map(token);
    let lines = [&root, &alice, &bob, &carol].map(|t| t.line.clone());
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, lines.join("\n") + "\n").expect("tokens file");
    let mut config = test_config();
    config.auth = AuthSettings {
        enabled: true,
        tokens_file: Some(tokens),
        superusers: vec!["root".to_owned()],
        reload_interval: Duration::from_secs(60),
        ..AuthSettings::default()
    };
    let node = Node::start_with_store(&config, Arc::new(InMemory::new()), Env::system())
        .await
        .expect("node starts");
    let mut root_client = as_user(&node, &root).await;
    create_table(&mut root_client, "shop", "orders", 2, &["id"]).await;
    create_table(&mut root_client, "shop", "clicks", 2, &["id"]).await;
    create_table(&mut root_client, "hr", "salaries", 2, &["id"]).await;
    for request in [
        grant("alice", "read", "shop.orders"),
        grant("bob", "write", "shop.*"),
        grant("*", "read", "shop.clicks"),
    ] {
        let reply = root_client.raw().grant(request).await.expect("grant");
        assert!(reply.into_inner().changed);
    }
    let again = root_client
        .raw()
        .grant(grant("alice", "read", "shop.orders"))
        .await
        .expect("grant again");
    assert!(
        !again.into_inner().changed,
        "a grant held already changes nothing"
    );

    let (mut alice_client, mut bob_client, mut carol_client) = (
        as_user(&node, &alice).await,
        as_user(&node, &bob).await,
        as_user(&node, &carol).await,
    );

    // Writes: bob may, alice may not, and her refused append adds nothing.
    let refused = alice_client
        .append("shop", "orders", &schema(), &[batch(0..5)])
        .await
        .expect_err("alice may not write");
    let said = format!("{refused:#}");
    assert!(
        said.contains("principal `alice` lacks write permission on table shop.orders")
            && said.contains("PermissionDenied"),
        "{said}"
    );
    bob_client
        .append("shop", "orders", &schema(), &[batch(0..10)])
        .await
        .expect("bob writes");

    // Reads: alice may, bob may not (write does not include read).
    assert_eq!(
        read_all(&mut alice_client, "shop", "orders").await.len(),
        10
    );
    let mut bob_fetch = bob_client
        .raw()
        .fetch(fetch_request("shop", "orders"))
        .await
        .map(|_| ());
    if bob_fetch.is_ok() {
        bob_fetch = Err(tonic::Status::ok("the fetch opened"));
    }
    denied(
        bob_fetch,
        "principal `bob` lacks read permission on table shop.orders",
    );
    denied(
        bob_client
            .raw()
            .list_offsets(pb::ListOffsetsRequest {
                path: Some(path("shop", "orders")),
                ..Default::default()
            })
            .await,
        "lacks read permission",
    );
    denied(
        carol_client
            .raw()
            .get_table(pb::GetTableRequest {
                path: Some(path("hr", "salaries")),
            })
            .await,
        "principal `carol` lacks read or write permission on table hr.salaries",
    );
    // Creating or dropping partitions is admin, as creating tables is (an append creates the
    // partitions its rows name with write alone).
    let values = vec![pb::PartitionValues {
        values: vec!["x".to_owned()],
    }];
    denied(
        bob_client
            .raw()
            .create_partitions(pb::CreatePartitionsRequest {
                path: Some(path("shop", "orders")),
                partitions: values.clone(),
            })
            .await,
        "principal `bob` lacks admin permission on table shop.orders",
    );
    denied(
        bob_client
            .raw()
            .drop_partitions(pb::DropPartitionsRequest {
                path: Some(path("shop", "orders")),
                partitions: values,
                if_exists: true,
            })
            .await,
        "principal `bob` lacks admin permission on table shop.orders",
    );

    // Lookups of a primary-key table need read too: bob may upsert, not look up.
    root_client
        .create_primary_key_table(
            "shop",
            "stock",
            &schema(),
            2,
            vec!["id".to_owned()],
            vec![],
            std::collections::BTreeMap::new(),
            false,
        )
        .await
        .expect("primary-key table");
    bob_client
        .upsert("shop", "stock", &schema(), &[batch(0..3)])
        .await
        .expect("bob upserts");
    let keys = batch(0..3).project(&[0]).expect("key column");
    let refused = bob_client
        .lookup("shop", "stock", &keys, &[])
        .await
        .expect_err("bob may not look up");
    let said = format!("{refused:#}");
    assert!(
        said.contains("principal `bob` lacks read permission on table shop.stock")
            && said.contains("PermissionDenied"),
        "{said}"
    );
    let (_, found) = root_client
        .lookup("shop", "stock", &keys, &[])
        .await
        .expect("root looks up");
    assert_eq!(found, [true, true, true]);

    // Lists show what each holds anything on; `*` grants reach everyone.
    assert_eq!(
        tables(&mut alice_client, "shop").await,
        ["clicks", "orders"]
    );
    assert_eq!(
        tables(&mut bob_client, "shop").await,
        ["clicks", "orders", "stock"]
    );
    assert_eq!(tables(&mut carol_client, "shop").await, ["clicks"]);
    assert!(tables(&mut carol_client, "hr").await.is_empty());
    assert_eq!(databases(&mut carol_client).await, ["shop"]);
    let mut all = databases(&mut root_client).await;
    all.sort();
    assert_eq!(all, ["hr", "shop"]);

    // Admin: creating, dropping and granting need it; the refusals change nothing.
    denied(
        alice_client
            .raw()
            .drop_table(pb::DropTableRequest {
                path: Some(path("shop", "orders")),
                ..Default::default()
            })
            .await,
        "principal `alice` lacks admin permission on table shop.orders",
    );
    denied(
        alice_client
            .raw()
            .create_database(pb::CreateDatabaseRequest {
                name: "mine".to_owned(),
                ..Default::default()
            })
            .await,
        "lacks admin permission on database mine",
    );
    denied(
        alice_client.raw().grant(grant("alice", "admin", "*")).await,
        "principal `alice` lacks admin permission on every database",
    );
    denied(
        alice_client
            .raw()
            .list_grants(pb::ListGrantsRequest {})
            .await,
        "lacks admin permission on every database",
    );
    assert_eq!(read_all(&mut root_client, "shop", "orders").await.len(), 10);
    assert!(
        !databases(&mut root_client)
            .await
            .contains(&"mine".to_owned())
    );
    let grants = root_client
        .raw()
        .list_grants(pb::ListGrantsRequest {})
        .await
        .expect("root lists")
        .into_inner()
        .grants;
    assert_eq!(grants.len(), 3, "{grants:?}");

    // The REST catalog filters the same way (403 where a table may not be read).
    let http = node.http_addr().expect("http");
    let with = |t: &NewToken| format!("Authorization: Bearer {}", t.token);
    let (_, body) = http_get_with(http, "/iceberg/v1/namespaces", &[&with(&carol)])
        .await
        .expect("namespaces");
    assert!(body.contains("shop") && !body.contains("hr"), "{body}");
    let (status, body) = http_get_with(
        http,
        "/iceberg/v1/namespaces/hr/tables/salaries",
        &[&with(&carol)],
    )
    .await
    .expect("load");
    assert!(status.contains("403"), "{status} {body}");
    assert!(
        body.contains("ForbiddenException") && body.contains("carol"),
        "{body}"
    );
    let (status, _) = http_get_with(
        http,
        "/iceberg/v1/namespaces/hr/tables/salaries",
        &[&with(&root)],
    )
    .await
    .expect("load");
    assert!(
        status.contains("404"),
        "root may read it; it has no lake table: {status}"
    );

    // Revoked: alice can no longer read.
    let revoked = root_client
        .raw()
        .revoke(grant("alice", "read", "shop.orders"))
        .await
        .expect("revoke");
    assert!(revoked.into_inner().changed);
    let mut alice_fetch = alice_client
        .raw()
        .fetch(fetch_request("shop", "orders"))
        .await
        .map(|_| ());
    if alice_fetch.is_ok() {
        alice_fetch = Err(tonic::Status::ok("the fetch opened"));
    }
    denied(alice_fetch, "principal `alice` lacks read permission");
    node.shutdown().await.expect("clean shutdown");
}
