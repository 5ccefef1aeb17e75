//! The Iceberg FileIO properties handed to clients with every table: how to open the files.

use std::collections::BTreeMap;

use slatedb::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

/// The Iceberg FileIO properties a client needs to find the files of the store at `location`
/// (a store URL as `inlet serve` takes it): for `s3://` the endpoint, region and addressing
/// style the node itself uses (the same `AWS_*` variables `open_store` reads); nothing for a
/// local directory, whose `file://` URLs clients open directly.
///
/// Never the node's credentials (issue 14): whoever reads the catalog is not thereby allowed
/// to read, let alone write, the whole bucket with the node's keys. Clients bring their own
/// store credentials (DuckDB's S3 secret, pyiceberg's `s3.access-key-id` properties), which
/// may be read-only and limited to the lake's prefix.
pub fn file_io_properties(location: &str) -> BTreeMap<String, String> {
    if !location.starts_with("s3://") {
        return BTreeMap::new();
    }
    s3_file_io_properties(&AmazonS3Builder::from_env())
}

/// The Iceberg FileIO properties naming where `s3` is, without its credentials.
pub(super) fn s3_file_io_properties(s3: &AmazonS3Builder) -> BTreeMap<String, String> {
    let value = |key| s3.get_config_value(&key).filter(|v| !v.is_empty());
    // object_store's own defaults: us-east-1, path-style requests.
    let region = value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned());
    let virtual_hosted = value(AmazonS3ConfigKey::VirtualHostedStyleRequest)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let properties = [
        (
            "s3.endpoint",
            value(AmazonS3ConfigKey::S3Endpoint).or_else(|| value(AmazonS3ConfigKey::Endpoint)),
        ),
        ("s3.region", Some(region.clone())),
        // pyiceberg takes the region from `client.region` where `s3.region` is not read.
        ("client.region", Some(region)),
        ("s3.path-style-access", Some((!virtual_hosted).to_string())),
    ];
    properties
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
        .collect()
}
