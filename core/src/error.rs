//! The outward error kinds. Each operation has its own error type with variants carrying the
//! ids that explain them; each maps to one of these kinds, and the server maps kinds to gRPC
//! codes in one function.

/// What a caller can do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong; retrying it unchanged fails again.
    InvalidInput,
    /// The named database, table or bucket does not exist.
    NotFound,
    /// The thing being created already exists.
    AlreadyExists,
    /// An offset outside the stream's readable range.
    OutOfRange,
    /// Temporarily unable to serve (overloaded, store unreachable); retry later.
    Unavailable,
    /// This process lost ownership (a newer index owner took over); it will not recover.
    Fenced,
    /// A compare-and-swap lost: the state changed since the caller read it. Re-read, retry.
    Conflict,
    /// Stored data failed a checksum or could not be decoded.
    Corruption,
    /// A bug or an unexpected state.
    Internal,
}

/// Errors that can say which kind they are.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}
