"""Every error class: raised with the server's own message, never a gRPC status dump. Those a
test can provoke are provoked against the server; the rest (a fenced owner, corrupt data...)
are checked through the one mapping function with the codes the server sends for them."""

import grpc
import grpc.aio
import pyarrow as pa
import pytest

import inlet
from inlet.errors import from_rpc_error

from conftest import free_port


def no_dump(error: Exception) -> None:
    text = str(error)
    assert "StatusCode" not in text and "debug_error_string" not in text and "<_" not in text, text


def test_not_found_errors(client, db):
    with pytest.raises(inlet.DatabaseNotFound) as raised:
        client.get_database(db)
    assert str(raised.value) == f"database `{db}` not found"
    assert isinstance(raised.value, inlet.NotFound)
    with pytest.raises(inlet.DatabaseNotFound):
        client.table(f"{db}.missing").describe()
    client.create_database(db)
    with pytest.raises(inlet.TableNotFound) as raised:
        client.table(f"{db}.missing").append(pa.table({"x": [1]}))
    assert str(raised.value) == f"table `{db}.missing` not found"
    assert raised.value.code == "NOT_FOUND"
    no_dump(raised.value)
    with pytest.raises(inlet.TableNotFound):
        client.table(f"{db}.missing").scan().to_arrow()


def test_already_exists(client, db):
    client.create_table(f"{db}.t", pa.schema([("x", pa.int64())]))
    with pytest.raises(inlet.AlreadyExists) as raised:
        client.create_table(f"{db}.t", pa.schema([("x", pa.int64())]))
    assert str(raised.value) == f"table `{db}.t` already exists"
    client.create_table(f"{db}.t", pa.schema([("x", pa.int64())]), if_not_exists=True)


def test_schema_mismatch_from_the_client_and_the_server(client, db):
    table = client.create_table(f"{db}.t", pa.schema([pa.field("x", pa.int64(), nullable=False), ("s", pa.string())]))
    # Refused before sending: an integer column is not turned into strings.
    with pytest.raises(inlet.SchemaMismatch, match="column `s` is int64, expected string"):
        table.append(pa.table({"x": [1], "s": [2]}))
    # A lossy conversion is refused too.
    with pytest.raises(inlet.SchemaMismatch, match="column `x` is double, expected int64"):
        table.append(pa.table({"x": [1.5]}))
    # Refused by the server: a column the table does not have, a missing required column.
    with pytest.raises(inlet.SchemaMismatch, match="has no column `extra`") as raised:
        table.append(pa.table({"x": [1], "extra": [1]}))
    assert raised.value.code == "INVALID_ARGUMENT"
    with pytest.raises(inlet.SchemaMismatch, match="lacks non-nullable column `x`"):
        table.append(pa.table({"s": ["a"]}))
    with pytest.raises(inlet.SchemaMismatch, match="has no column `nope`"):
        table.scan(columns=["nope"]).to_arrow()
    assert table.scan().to_arrow().num_rows == 0, "a refused append left rows behind"


def test_invalid_input(client, db):
    with pytest.raises(inlet.InvalidInput, match="bucket count 0"):
        client.create_table(f"{db}.t", pa.schema([("x", pa.int64())]), buckets=0)
    with pytest.raises(inlet.InvalidInput, match="retention.bytes"):
        client.create_table(
            f"{db}.u", pa.schema([("x", pa.int64())]), options={"retention.bytes": "1KiB"}
        )
    with pytest.raises(inlet.InvalidInput, match="cannot append a builtins.list"):
        client.table(f"{db}.t").append([1, 2])
    with pytest.raises(inlet.InvalidInput, match="must start with http"):
        inlet.connect("ftp://127.0.0.1:1")


def test_offset_out_of_range(client, db):
    table = client.create_table(f"{db}.t", pa.schema([("x", pa.int64())]))
    table.append(pa.table({"x": [1, 2]}))
    with pytest.raises(inlet.OffsetOutOfRange, match="readable offsets are 0..=2"):
        table.scan(start=10).to_arrow()


def test_unavailable_when_no_server_listens():
    with inlet.connect(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(inlet.Unavailable) as raised:
            client.list_databases()
    assert raised.value.code == "UNAVAILABLE"
    no_dump(raised.value)


@pytest.mark.parametrize(
    ("code", "message", "cls"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, "index owner was fenced: another process took over the index", inlet.Fenced),
        (grpc.StatusCode.ABORTED, "lost the compare-and-swap", inlet.Conflict),
        (grpc.StatusCode.DATA_LOSS, "corrupt data in stream 1/0: bad crc", inlet.Corruption),
        (grpc.StatusCode.INTERNAL, "cannot encode batch: x", inlet.InternalError),
        (grpc.StatusCode.UNAUTHENTICATED, "bad token", inlet.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, "not allowed", inlet.PermissionDenied),
        (grpc.StatusCode.UNAVAILABLE, "writer overloaded: retry later", inlet.Unavailable),
        (grpc.StatusCode.NOT_FOUND, "table `a.b` not found", inlet.TableNotFound),
        (grpc.StatusCode.NOT_FOUND, "database `a` not found", inlet.DatabaseNotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, "schema mismatch for table `a.b`: column `c` is Utf8, expected Int64", inlet.SchemaMismatch),
        (grpc.StatusCode.INVALID_ARGUMENT, "bucket count 0 is out of range", inlet.InvalidInput),
        (grpc.StatusCode.INVALID_ARGUMENT, "cannot append rows of table `a.b`: it has a primary key (id): write it with upsert and delete", inlet.WrongOperation),
        (grpc.StatusCode.INVALID_ARGUMENT, "cannot upsert rows of table `a.b`: it is a log table (no primary key): write it with append", inlet.WrongOperation),
        (grpc.StatusCode.INVALID_ARGUMENT, "table `a.b` has no primary key: lookups need one", inlet.WrongOperation),
        (grpc.StatusCode.INVALID_ARGUMENT, "cannot partially update rows of table `a.b`: its merge engine (FirstRow) keeps rows whole; partial updates need `last_row` or `aggregation`", inlet.WrongOperation),
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid lookup keys for table `a.b`: key column `id` has nulls", inlet.InvalidKey),
        (grpc.StatusCode.OUT_OF_RANGE, "offset 9 is out of range", inlet.OffsetOutOfRange),
        (grpc.StatusCode.ALREADY_EXISTS, "database `a` already exists", inlet.AlreadyExists),
    ],
)
def test_status_codes_map_to_classes(code, message, cls):
    status = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=message)
    error = from_rpc_error(status)
    assert type(error) is cls
    assert str(error) == message and error.code == code.name
    assert isinstance(error, inlet.InletError)
