"""The exceptions the client raises, and the one function that maps a failed gRPC call to them.

The server says what a caller can do in the status code (its error kinds map to codes in one
place, `wire/src/errors.rs`) and what went wrong in the message, which names the table,
column or offset. Each code becomes one exception class; within a code, a few messages the
server words in a fixed way (``table `db.t` not found``, ``schema mismatch for table ...``)
pick a narrower subclass, so ``except inlet.TableNotFound`` works. The exception's text is the
server's message, never a dump of the gRPC status.
"""

from __future__ import annotations

import grpc


class InletError(Exception):
    """Base of every error this client raises.

    ``message`` is the server's (or the client's) one-line explanation; ``code`` is the gRPC
    status name (``"NOT_FOUND"``) when the error came from the server, else ``None``.
    """

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidInput(InletError):
    """The request is wrong; sending it again unchanged fails again."""


class SchemaMismatch(InvalidInput):
    """Rows do not fit the table: a column's type differs, is unknown, or is missing."""


class WrongOperation(InvalidInput):
    """The operation does not fit the table's kind: an append to a primary-key table, an
    upsert, delete or lookup on a log table (no primary key), a partial update under a merge
    engine that keeps rows whole. Nothing of it was written."""


class InvalidKey(InvalidInput):
    """Primary-key values the server cannot use: a lookup's keys of the wrong type or with
    columns outside the key, a null key column, a key too long to encode."""


class NotFound(InletError):
    """The named database, table, partition or bucket does not exist."""


class DatabaseNotFound(NotFound):
    """The database does not exist."""


class TableNotFound(NotFound):
    """The table does not exist (or was dropped)."""


class PartitionNotFound(NotFound):
    """A read named a partition the table does not have (``table `db.t` has no partition
    `2026-12-07```)."""


class AlreadyExists(InletError):
    """The database or table being created already exists."""


class OffsetOutOfRange(InletError):
    """A start offset outside the readable range of a bucket (expired, or past the tail)."""


class Unavailable(InletError):
    """The server cannot serve now (down, overloaded, store unreachable); retry later.

    For an append this also means the outcome is unknown: the rows may have landed. The
    client's idempotent appends retry these themselves; seeing one means retries ran out.
    """


class Fenced(InletError):
    """The node lost ownership of the index to a newer owner."""


class Conflict(InletError):
    """A compare-and-swap lost: state changed since it was read. Re-read and retry."""


class Corruption(InletError):
    """Stored data failed a checksum or could not be decoded."""


class InternalError(InletError):
    """A bug or unexpected state on the server (or a transport failure it reported as one)."""


class Unauthenticated(InletError):
    """The server refused the credentials (token) of this client."""


class PermissionDenied(InletError):
    """The credentials are valid but do not allow this request."""


class ProducerClosed(InletError):
    """The producer was closed; it sends nothing more."""


class BufferFull(InletError):
    """The producer's buffer stayed full for longer than its ``block_timeout``."""


_BY_CODE: dict[grpc.StatusCode, type[InletError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.OUT_OF_RANGE: OffsetOutOfRange,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: InvalidInput,
    grpc.StatusCode.FAILED_PRECONDITION: Fenced,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.DATA_LOSS: Corruption,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.CANCELLED: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNIMPLEMENTED: InternalError,
}

# Messages of the server worded in a fixed way (index/src/error.rs, writer/src/error.rs),
# checked in order within their code.
_BY_MESSAGE: dict[grpc.StatusCode, list[tuple[str, type[InletError]]]] = {
    grpc.StatusCode.NOT_FOUND: [
        # Before "table `", which the message starts with.
        ("has no partition `", PartitionNotFound),
        ("table `", TableNotFound),
        ("was dropped before", TableNotFound),
        ("database `", DatabaseNotFound),
    ],
    grpc.StatusCode.INVALID_ARGUMENT: [
        # writer/src/keyed.rs (WriteOp::check) and reader/src/error.rs
        ("cannot append rows of table", WrongOperation),
        ("cannot upsert rows of table", WrongOperation),
        ("cannot delete rows of table", WrongOperation),
        ("cannot partially update rows of table", WrongOperation),
        ("has no primary key: lookups need one", WrongOperation),
        # reader/src/error.rs, core/src/pk/mod.rs
        ("invalid lookup keys for table", InvalidKey),
        ("is null in row", InvalidKey),
        ("primary key of row", InvalidKey),
        ("schema mismatch", SchemaMismatch),
        ("has no column", SchemaMismatch),
        ("lacks non-nullable column", SchemaMismatch),
        ("is not nullable but", SchemaMismatch),
    ],
}

# Codes after which an append may or may not have landed, so an idempotent resend (same
# producer id and sequence) is the only safe way on. INTERNAL and UNKNOWN are included
# because a connection reset mid-request (a server restart) surfaces with them; the Rust
# client (`client/src/lib.rs`, `outcome_unknown`) retries the same set.
OUTCOME_UNKNOWN_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)


def from_rpc_error(error: grpc.RpcError) -> InletError:
    """The exception for a failed call: its class from the status code (and for a few codes
    the message), its text the server's message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else None
    message = details or f"the call failed with {code.name} and no message"
    cls = _BY_CODE.get(code, InletError)
    for needle, narrower in _BY_MESSAGE.get(code, []):
        if needle in message:
            cls = narrower
            break
    return cls(message, code.name)
