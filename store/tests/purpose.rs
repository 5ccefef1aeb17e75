//! The purpose of a request from its path and operation: the one mapping the metrics and the
//! fault scopes rely on.

use inlet_store::{Op, OpKind, Purpose};
use slatedb::object_store::path::Path;

fn purpose(path: &str, op: Op) -> Purpose {
    Purpose::of(&Path::from(path), op)
}

#[test]
fn wal_paths_split_by_operation() {
    let wal = "wal/0000000000000000000000000000002a.wal";
    for op in [
        Op::Put,
        Op::PutMultipart,
        Op::PutPart,
        Op::CompleteMultipart,
        Op::AbortMultipart,
        Op::Copy,
        Op::Rename,
    ] {
        assert_eq!(purpose(wal, op), Purpose::WalPut, "{op}");
    }
    for op in [Op::Get, Op::Head, Op::GetRanges] {
        assert_eq!(purpose(wal, op), Purpose::ChunkGet, "{op}");
    }
    assert_eq!(purpose(wal, Op::Delete), Purpose::WalDelete);
    assert_eq!(purpose("wal", Op::List), Purpose::WalList);
    assert_eq!(purpose("wal/", Op::ListWithDelimiter), Purpose::WalList);
}

#[test]
fn index_and_lake_paths_are_one_purpose_for_every_operation() {
    for op in Op::ALL {
        // SlateDB's own WAL lives under `index/wal/`: it is index traffic, not WAL traffic.
        assert_eq!(
            purpose("index/wal/00000000000000000001.sst", op),
            Purpose::Index
        );
        assert_eq!(
            purpose("index/manifest/00000000000000000001.manifest", op),
            Purpose::Index
        );
        assert_eq!(purpose("index", op), Purpose::Index);
        assert_eq!(
            purpose("lake/db/orders/data/00000-0.parquet", op),
            Purpose::Lake
        );
        assert_eq!(
            purpose("lake/db/orders/metadata/v1.metadata.json", op),
            Purpose::Lake
        );
    }
}

#[test]
fn anything_else_is_other() {
    for op in Op::ALL {
        // The root itself (a listing without prefix), look-alike names, a prefix not stripped.
        assert_eq!(Purpose::of(&Path::default(), op), Purpose::Other, "{op}");
        assert_eq!(purpose("walrus/x", op), Purpose::Other, "{op}");
        assert_eq!(purpose("wal.txt", op), Purpose::Other, "{op}");
        assert_eq!(purpose("indexes/x", op), Purpose::Other, "{op}");
        assert_eq!(purpose("prefix/wal/x.wal", op), Purpose::Other, "{op}");
    }
}

#[test]
fn labels_are_the_metric_labels() {
    let purposes: Vec<&str> = Purpose::ALL.iter().map(|p| p.label()).collect();
    assert_eq!(
        purposes,
        [
            "wal_put",
            "chunk_get",
            "wal_delete",
            "wal_list",
            "index",
            "lake",
            "other"
        ]
    );
    let ops: Vec<&str> = Op::ALL.iter().map(|op| op.label()).collect();
    assert_eq!(
        ops,
        [
            "put",
            "put_multipart",
            "put_part",
            "complete_multipart",
            "abort_multipart",
            "get",
            "head",
            "get_ranges",
            "delete",
            "list",
            "list_with_delimiter",
            "copy",
            "rename"
        ]
    );
    assert_eq!(Op::Head.kind(), OpKind::Read);
    assert_eq!(Op::Rename.kind(), OpKind::Write);
}
