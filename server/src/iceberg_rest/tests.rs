use axum::http::StatusCode;
use slatedb::object_store::aws::AmazonS3Builder;

use super::error::RestError;
use super::file_io::s3_file_io_properties;
use super::handlers::database;
use super::*;

#[test]
fn s3_clients_get_the_nodes_endpoint_region_and_addressing_but_never_its_credentials() {
    let s3 = AmazonS3Builder::new()
        .with_endpoint("http://127.0.0.1:9000")
        .with_region("eu-west-3")
        .with_access_key_id("AK-node")
        .with_secret_access_key("SK-node")
        .with_token("ST-node");
    let properties = s3_file_io_properties(&s3);
    let expected = [
        ("client.region", "eu-west-3"),
        ("s3.endpoint", "http://127.0.0.1:9000"),
        ("s3.path-style-access", "true"),
        ("s3.region", "eu-west-3"),
    ];
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(properties, expected);
    let text = format!("{properties:?}");
    assert!(!text.contains("-node"), "a credential handed out: {text}");

    let hosted = AmazonS3Builder::new().with_virtual_hosted_style_request(true);
    let properties = s3_file_io_properties(&hosted);
    assert_eq!(properties["s3.path-style-access"], "false");
    assert_eq!(properties["s3.region"], "us-east-1");
    assert!(!properties.contains_key("s3.endpoint"));
    assert!(!properties.contains_key("s3.access-key-id"));
}

#[test]
fn local_stores_need_no_client_settings() {
    assert!(file_io_properties("/var/inlet").is_empty());
    assert!(file_io_properties("file:///var/inlet").is_empty());
}

#[test]
fn namespaces_have_one_level() {
    assert_eq!(database("db").ok(), Some("db"));
    assert!(matches!(
        database("db\u{1f}sub"),
        Err(RestError::NoSuchNamespace { namespace }) if namespace == "db.sub"
    ));
    assert!(database("").is_err());
}

#[test]
fn errors_are_the_specs_error_model() {
    let missing = RestError::NoSuchTable {
        namespace: "db".into(),
        table: "t".into(),
    };
    assert_eq!(
        missing.status_and_type(),
        (StatusCode::NOT_FOUND, "NoSuchTableException")
    );
    assert_eq!(
        RestError::ReadOnly.status_and_type().0,
        StatusCode::NOT_IMPLEMENTED
    );
}
