//! The WAL object codec: the byte layout of one WAL object, which carries Arrow record batches
//! of many streams, and of the footer that lets a reader fetch one chunk, or only some columns
//! of one chunk, with ranged GETs.
//!
//! `docs/wal-format.md` describes the layout byte by byte; this module is its one
//! implementation. It is pure (bytes in, bytes out, no I/O). Every length read from an object
//! is checked against the bytes at hand before it is used, so a corrupt object yields a
//! [`WalDecodeError`], never a panic or an allocation larger than the input.

//!
//! The module is split by concern: `format` (constants and the footer's records), `encode`,
//! `footer` (trailer and footer decoding), `decode` (whole objects, chunks and projected
//! columns) and `error`. The Arrow IPC layout walker that both directions rely on lives in
//! `crate::ipc::layout`, shared with the decoder of client input.

mod decode;
mod encode;
mod error;
mod footer;
mod format;

pub use decode::{decode_chunk, decode_object, decode_projected};
pub use encode::encode_wal_object;
pub use error::{WalDecodeError, WalEncodeError};
pub use footer::{check_column_ranges, decode_footer, decode_trailer};
pub use format::{
    ChunkInput, ChunkMeta, ColumnRange, EncodedWal, Trailer, WAL_FORMAT_VERSION, WAL_HEADER_LEN,
    WAL_MAGIC, WAL_TRAILER_LEN, WalFooter,
};

/// The contents of the committed version 1 fixture, shared with the example that writes it.
#[cfg(test)]
#[path = "../../tests/fixtures/wal_v1.rs"]
mod fixture_v1;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests;
