//! Errors across the wire: the owner turns an index error into a gRPC status whose code
//! follows the error's kind and whose `inlet-error-bin` metadata holds the error itself as
//! JSON; the remote port turns it back into exactly that error. A status without it (the
//! owner is unreachable, the call was cut, a proxy answered) means the outcome is unknown.

use inlet_core::error::{ErrorKind, HasKind};
use inlet_index::{IndexError, LakeCommitError};
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::convert::{from_json, json};

/// Metadata key of the JSON error a failed call carries.
const ERROR_METADATA: &str = "inlet-error-bin";

/// The gRPC code of an error kind (the same mapping the public API uses).
pub fn code(kind: ErrorKind) -> tonic::Code {
    match kind {
        ErrorKind::InvalidInput => tonic::Code::InvalidArgument,
        ErrorKind::NotFound => tonic::Code::NotFound,
        ErrorKind::AlreadyExists => tonic::Code::AlreadyExists,
        ErrorKind::OutOfRange => tonic::Code::OutOfRange,
        ErrorKind::Unavailable => tonic::Code::Unavailable,
        ErrorKind::Fenced => tonic::Code::FailedPrecondition,
        ErrorKind::Conflict => tonic::Code::Aborted,
        ErrorKind::Corruption => tonic::Code::DataLoss,
        ErrorKind::Internal => tonic::Code::Internal,
    }
}

/// The status the owner answers an index or lake error with.
pub fn to_status<E>(error: &E) -> Status
where
    E: HasKind + std::fmt::Display + serde::Serialize,
{
    let mut status = Status::new(code(error.kind()), error.to_string());
    status
        .metadata_mut()
        .insert_bin(ERROR_METADATA, MetadataValue::from_bytes(&json(error)));
    status
}

/// The error a remote call to the owner at `owner` failed with.
pub fn index_error(status: &Status, owner: &str) -> IndexError {
    match carried::<IndexError>(status) {
        Some(error) => error,
        None => unknown(status, owner),
    }
}

/// The refusal or error a remote lease or lake commit failed with.
pub fn lake_error(status: &Status, owner: &str) -> LakeCommitError {
    match carried::<LakeCommitError>(status) {
        Some(error) => error,
        None => LakeCommitError::Index(unknown(status, owner)),
    }
}

/// A failure the owner did not describe: the call may or may not have been applied.
pub fn unknown(status: &Status, owner: &str) -> IndexError {
    IndexError::Unavailable(format!(
        "index owner {owner} did not answer ({:?}: {}); the outcome is unknown",
        status.code(),
        status.message()
    ))
}

fn carried<T: serde::de::DeserializeOwned>(status: &Status) -> Option<T> {
    let value = status.metadata().get_bin(ERROR_METADATA)?;
    let bytes = value.to_bytes().ok()?;
    from_json(&bytes).ok()
}
