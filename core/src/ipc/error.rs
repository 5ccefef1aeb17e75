//! Why Arrow IPC bytes from outside could not be decoded. Every variant is the sender's fault
//! and says what was wrong and where.

use arrow_schema::ArrowError;

use crate::error::{ErrorKind, HasKind};

/// Why an Arrow IPC stream could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum IpcDecodeError {
    /// No bytes at all, or only an end-of-stream marker: a stream starts with its schema.
    #[error("the arrow ipc stream is empty: it must start with a schema message")]
    Empty,
    /// A length read from the stream points past its end.
    #[error(
        "truncated arrow ipc stream: the {what} at byte {offset} needs {needed} bytes but only \
         {remaining} remain"
    )]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: u64,
        remaining: usize,
    },
    /// A length read from the stream is negative.
    #[error("arrow ipc {what} at byte {offset} has a negative length {len}")]
    NegativeLength {
        what: &'static str,
        offset: usize,
        len: i64,
    },
    /// The metadata of a message is not a valid Arrow IPC message flatbuffer.
    #[error("arrow ipc message at byte {offset} is not a valid message: {detail}")]
    NotAMessage { offset: usize, detail: String },
    /// A message of a kind that cannot appear here (a second schema, a dictionary, a tensor).
    #[error("arrow ipc message at byte {offset} is a {found}, expected {expected}")]
    UnexpectedMessage {
        offset: usize,
        found: String,
        expected: &'static str,
    },
    /// Bytes follow the end-of-stream marker.
    #[error("{count} bytes follow the end-of-stream marker at byte {offset}")]
    TrailingBytes { offset: usize, count: usize },
    /// The schema is malformed or has a type Inlet does not store.
    #[error("invalid arrow ipc schema: {detail}")]
    Schema { detail: String },
    /// A record batch's metadata contradicts the schema or its body.
    #[error("arrow ipc record batch {index} is malformed: {detail}")]
    Batch { index: usize, detail: String },
    /// Arrow's validation rejected a record batch (offsets past their values, bad UTF-8...).
    #[error("arrow ipc record batch {index} is invalid: {source}")]
    Arrow {
        index: usize,
        #[source]
        source: ArrowError,
    },
    /// The stream carries more rows than one request may.
    #[error("the arrow ipc stream carries more than {limit} rows (at least {rows}); split it")]
    TooManyRows { rows: u64, limit: usize },
    /// Arrow's decoder panicked on the input: caught at the decode boundary, so the input is
    /// rejected and the process goes on. Each such input is a bug to report upstream.
    #[error("arrow's decoder failed on malformed input: {detail}")]
    DecoderPanic { detail: String },
}

impl HasKind for IpcDecodeError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}
