"""Arrow on the wire: what users hand in (pyarrow, pandas, polars) becomes a pyarrow Table
conformed to the table's schema and then Arrow IPC stream bytes; what the server sends back
(one IPC stream per fetch response) becomes record batches without touching rows.

pandas and polars are optional: they are imported only when a value of theirs is seen or a
conversion to them is asked for.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.ipc as ipc

from .errors import InvalidInput, SchemaMismatch

# Largest Arrow IPC payload of one append (core::limits::MAX_APPEND_BYTES); bigger inputs
# are split into several appends.
MAX_APPEND_BYTES = 64 * 1024 * 1024
# Most rows one append may carry (core::limits::MAX_REQUEST_ROWS).
MAX_APPEND_ROWS = 1024 * 1024
# Largest gRPC message either side sends (core::limits::MAX_GRPC_MESSAGE_BYTES).
MAX_GRPC_MESSAGE_BYTES = MAX_APPEND_BYTES + 1024 * 1024

# The system columns every fetched batch ends with (core::table::system_fields).
SYSTEM_FIELDS = [
    pa.field("_bucket", pa.int32(), nullable=False),
    pa.field("_offset", pa.int64(), nullable=False),
    pa.field("_timestamp", pa.timestamp("us", tz="+00:00"), nullable=False),
]
# The column a primary-key table's changelog rows end with: `+I`, `-U`, `+U` or `-D`
# (core::table::CHANGE_TYPE_COLUMN).
CHANGE_TYPE_FIELD = pa.field("_change_type", pa.string(), nullable=False)


def to_arrow_table(data: Any) -> pa.Table:
    """A pyarrow Table from a pyarrow Table or RecordBatch, a pandas DataFrame, a polars
    DataFrame (the index of a pandas frame is not sent) or a dict of column name to values
    (``{"id": [1, 2]}``, handy for keys)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, dict):
        try:
            return pa.table(data)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as error:
            raise InvalidInput(f"cannot make Arrow columns of the dict: {error}") from None
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(data, polars.DataFrame):
        return data.to_arrow()
    raise InvalidInput(
        f"cannot append a {type(data).__module__}.{type(data).__name__}: expected a "
        "pyarrow.Table, pyarrow.RecordBatch, pandas.DataFrame, polars.DataFrame or a dict "
        "of columns"
    )


def conform(data: pa.Table, schema: pa.Schema, table_name: str) -> pa.Table:
    """``data`` with each column that the table also has cast to the table's type, when the
    cast loses nothing (pandas and polars pick their own string, integer and timestamp types,
    e.g. large_string or string_view for utf8). Columns the table lacks and missing columns
    are left for the server to judge, so its message names them. Metadata is dropped: the
    server ignores it and it would only make every append larger."""
    columns = []
    fields = []
    for name, column in zip(data.column_names, data.columns):
        index = schema.get_field_index(name)
        if index < 0 or column.type == schema.field(index).type:
            columns.append(column)
            fields.append(data.schema.field(name).with_metadata(None))
            continue
        target = schema.field(index)
        # A column of Arrow's null type (an empty list, pandas' all-None object column) has
        # no values to lose: it becomes nulls of the table's type.
        if not pa.types.is_null(column.type) and _family(column.type) != _family(target.type):
            raise SchemaMismatch(
                f"schema mismatch for table `{table_name}`: column `{name}` is "
                f"{column.type}, expected {target.type}"
            )
        try:
            column = column.cast(target.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise SchemaMismatch(
                f"schema mismatch for table `{table_name}`: column `{name}` is "
                f"{column.type}, expected {target.type}, and it does not convert without "
                f"loss ({error})"
            ) from None
        columns.append(column)
        fields.append(pa.field(name, target.type, nullable=data.schema.field(name).nullable))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _family(data_type: pa.DataType) -> str:
    """The kind of a type, within which :func:`conform` converts (string widths and views,
    integer and float widths, timestamp units and zones, list kinds...) and across which it
    refuses (an integer column is not turned into strings)."""
    t = pa.types
    checks = [
        ("string", t.is_string(data_type) or t.is_large_string(data_type) or t.is_string_view(data_type)),
        ("binary", t.is_binary(data_type) or t.is_large_binary(data_type) or t.is_binary_view(data_type)),
        ("integer", t.is_integer(data_type)),
        ("float", t.is_floating(data_type)),
        ("decimal", t.is_decimal(data_type)),
        ("timestamp", t.is_timestamp(data_type)),
        ("date", t.is_date(data_type)),
        ("time", t.is_time(data_type)),
        ("list", t.is_list(data_type) or t.is_large_list(data_type) or t.is_list_view(data_type)
         or t.is_large_list_view(data_type) or t.is_fixed_size_list(data_type)),
    ]
    for family, matches in checks:
        if matches:
            return family
    return str(data_type.id)


def split_for_appends(data: pa.Table) -> list[pa.Table]:
    """``data`` cut into slices that each fit one append (rows and IPC bytes), in order.
    Buffer sizes estimate the IPC size from above for slices of a column, so each slice
    gets a share of the rows proportional to the limit."""
    rows = data.num_rows
    if rows == 0:
        return []
    bytes_per_row = max(1.0, data.nbytes / rows)
    # Leave room for the schema message and per-batch framing.
    per_slice = int(min(MAX_APPEND_ROWS, (MAX_APPEND_BYTES * 0.9) // bytes_per_row))
    if per_slice < 1:
        raise InvalidInput(
            f"one row of {bytes_per_row:.0f} bytes exceeds the append limit of "
            f"{MAX_APPEND_BYTES} bytes"
        )
    return [data.slice(start, per_slice) for start in range(0, rows, per_slice)]


def table_to_ipc(data: pa.Table) -> bytes:
    """Arrow IPC stream bytes (schema, batches, end of stream) of ``data``."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return sink.getvalue().to_pybytes()


def schema_to_ipc(schema: pa.Schema) -> bytes:
    """An Arrow IPC stream holding only ``schema``: how a table's columns travel on create."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema):
        pass
    return sink.getvalue().to_pybytes()


def schema_from_ipc(data: bytes) -> pa.Schema:
    """The schema of an Arrow IPC stream."""
    return ipc.open_stream(pa.py_buffer(data)).schema


def batches_from_ipc(data: Any) -> Iterator[pa.RecordBatch]:
    """The record batches of one fetched IPC stream. ``data`` is wrapped, not copied: the
    batches' buffers point into it."""
    reader = ipc.open_stream(pa.py_buffer(data))
    return iter(reader)


def take_up_to(batch: pa.RecordBatch, remaining: int) -> tuple[pa.RecordBatch, int]:
    """The first ``remaining`` rows of a scan with a limit, and how many rows are left to
    take after them. An update's ``-U`` and ``+U`` rows (same offset) stay together: a cut
    right after a ``-U`` takes its ``+U`` too (one row over the limit; it opens the next
    batch when this one ends with the ``-U``), so a scan's position never lands between
    them. The scan asks the server for one row more than its limit, so the ``+U`` is there."""
    rows = batch.num_rows
    take = min(remaining, rows)
    if take < rows and _update_before_at(batch, take - 1):
        take += 1
    left = remaining - take
    if take == rows and left == 0 and _update_before_at(batch, rows - 1):
        left = 1
    return (batch if take == rows else batch.slice(0, take)), left


def _update_before_at(batch: pa.RecordBatch, row: int) -> bool:
    index = batch.schema.get_field_index(CHANGE_TYPE_FIELD.name)
    return row >= 0 and index >= 0 and batch.column(index)[row].as_py() == "-U"


def fetched_schema(schema: pa.Schema, columns: list[str] | None, changelog: bool = False) -> pa.Schema:
    """The schema of fetched rows: the asked columns (all when none) then the system columns
    (and ``_change_type`` for a primary-key table's changelog), for an empty result, which
    carries no batch to read it from."""
    fields = [schema.field(name) for name in columns] if columns else list(schema)
    return pa.schema(fields + SYSTEM_FIELDS + ([CHANGE_TYPE_FIELD] if changelog else []))


def table_from_ipc(data: Any) -> pa.Table:
    """Every batch of one IPC stream as a Table (the schema's, when it holds no batch)."""
    return ipc.open_stream(pa.py_buffer(data)).read_all()


def to_pandas(data: pa.Table) -> Any:
    """``data`` as a pandas DataFrame (needs pandas: pip install 'inlet-client[pandas]')."""
    _require("pandas")
    return data.to_pandas()


def to_polars(data: pa.Table) -> Any:
    """``data`` as a polars DataFrame (needs polars: pip install 'inlet-client[polars]')."""
    polars = _require("polars")
    return polars.from_arrow(data)


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(
            f"this conversion needs {module}: pip install 'inlet-client[{module}]'"
        ) from None
