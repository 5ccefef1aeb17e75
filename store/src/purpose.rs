//! What an object-store request is for, derived from its path and its operation.
//!
//! Cost per purpose is what the metrics and the benchmarks report (PUTs for the WAL, ranged
//! GETs for chunks, the index's own traffic, the lake), so the mapping from a request to its
//! purpose lives in one place: [`Purpose::of`]. Paths are relative to the root of the Inlet
//! layout (`wal/`, `index/`, `lake/`): wrap the store that is opened on that root, i.e. above
//! any `PrefixStore` that holds the bucket prefix.

use slatedb::object_store::path::Path;

/// What a request is for. The labels are part of the metrics interface: never rename them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Writing a WAL object (`wal/`): put, multipart upload, copy or rename into `wal/`.
    WalPut,
    /// Reading a WAL object (`wal/`): get, head or ranged gets of chunks and footers.
    ChunkGet,
    /// Deleting WAL objects (`wal/`): garbage collection.
    WalDelete,
    /// Listing WAL objects (`wal/`): garbage collection and recovery.
    WalList,
    /// The SlateDB index (`index/`), every operation.
    Index,
    /// The Iceberg tables (`lake/`), every operation.
    Lake,
    /// Anything else, including listings of the whole root.
    Other,
}

impl Purpose {
    /// Every purpose, in label order of the metrics.
    pub const ALL: [Purpose; 7] = [
        Purpose::WalPut,
        Purpose::ChunkGet,
        Purpose::WalDelete,
        Purpose::WalList,
        Purpose::Index,
        Purpose::Lake,
        Purpose::Other,
    ];

    /// The metrics label, e.g. `wal_put`.
    pub fn label(self) -> &'static str {
        match self {
            Purpose::WalPut => "wal_put",
            Purpose::ChunkGet => "chunk_get",
            Purpose::WalDelete => "wal_delete",
            Purpose::WalList => "wal_list",
            Purpose::Index => "index",
            Purpose::Lake => "lake",
            Purpose::Other => "other",
        }
    }

    /// The purpose of `op` on `location` (for a listing, `location` is the prefix; for a copy
    /// or rename, the destination). The only place this mapping is made.
    pub fn of(location: &Path, op: Op) -> Purpose {
        let top = location.as_ref().split('/').next().unwrap_or_default();
        match top {
            "wal" => match op.kind() {
                OpKind::Write => Purpose::WalPut,
                OpKind::Read => Purpose::ChunkGet,
                OpKind::Delete => Purpose::WalDelete,
                OpKind::List => Purpose::WalList,
            },
            "index" => Purpose::Index,
            "lake" => Purpose::Lake,
            _ => Purpose::Other,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One kind of object-store request, as [`crate::InstrumentedStore`] counts it. The labels are
/// part of the metrics interface: never rename them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `put_opts`.
    Put,
    /// `put_multipart_opts`: starting a multipart upload.
    PutMultipart,
    /// One part of a multipart upload.
    PutPart,
    /// Completing a multipart upload.
    CompleteMultipart,
    /// Aborting a multipart upload.
    AbortMultipart,
    /// `get_opts` without `head`.
    Get,
    /// `get_opts` with `head` (what `ObjectStoreExt::head` sends).
    Head,
    /// `get_ranges`: one call, which the store may serve with several GETs.
    GetRanges,
    /// One location of `delete_stream` (S3 batches up to 1000 into one request).
    Delete,
    /// `list` or `list_with_offset` (a store may page through several requests).
    List,
    /// `list_with_delimiter`.
    ListWithDelimiter,
    /// `copy_opts`.
    Copy,
    /// `rename_opts`.
    Rename,
}

/// Whether an operation reads, writes, deletes or lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    Read,
    Write,
    Delete,
    List,
}

impl Op {
    /// Every operation, in label order of the metrics.
    pub const ALL: [Op; 13] = [
        Op::Put,
        Op::PutMultipart,
        Op::PutPart,
        Op::CompleteMultipart,
        Op::AbortMultipart,
        Op::Get,
        Op::Head,
        Op::GetRanges,
        Op::Delete,
        Op::List,
        Op::ListWithDelimiter,
        Op::Copy,
        Op::Rename,
    ];

    /// The metrics label, e.g. `put`.
    pub fn label(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::PutMultipart => "put_multipart",
            Op::PutPart => "put_part",
            Op::CompleteMultipart => "complete_multipart",
            Op::AbortMultipart => "abort_multipart",
            Op::Get => "get",
            Op::Head => "head",
            Op::GetRanges => "get_ranges",
            Op::Delete => "delete",
            Op::List => "list",
            Op::ListWithDelimiter => "list_with_delimiter",
            Op::Copy => "copy",
            Op::Rename => "rename",
        }
    }

    /// Whether the operation reads, writes, deletes or lists.
    pub fn kind(self) -> OpKind {
        match self {
            Op::Put
            | Op::PutMultipart
            | Op::PutPart
            | Op::CompleteMultipart
            | Op::AbortMultipart
            | Op::Copy
            | Op::Rename => OpKind::Write,
            Op::Get | Op::Head | Op::GetRanges => OpKind::Read,
            Op::Delete => OpKind::Delete,
            Op::List | Op::ListWithDelimiter => OpKind::List,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_each_variant_at_its_index() {
        for (i, purpose) in Purpose::ALL.iter().enumerate() {
            assert_eq!(purpose.index(), i);
        }
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(op.index(), i);
        }
    }
}
