"""What the server describes, as plain Python values: databases, tables with their Arrow
schema, per-bucket offsets, append results, lake status and the Iceberg REST catalog settings
of a table. Built from the wire messages here, once, for the sync and the asyncio clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import pyarrow as pa

from ._proto import inlet_pb2 as pb
from .arrow import schema_from_ipc, schema_to_ipc
from .errors import InvalidInput
from .positions import micros_datetime


def split_name(name: str) -> tuple[str, str]:
    """``"db.table"`` as (database, table); a bare name is in database ``default``, as in the
    CLI."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a table name must be a non-empty 'database.table' string, not {name!r}")
    database, dot, table = name.partition(".")
    return (database, table) if dot else ("default", name)


def table_path(database: str, table: str) -> pb.TablePath:
    return pb.TablePath(database=database, table=table)


@dataclass(frozen=True)
class Database:
    name: str
    id: int
    comment: str
    created_at: datetime | None

    @classmethod
    def from_pb(cls, info: pb.DatabaseInfo) -> "Database":
        return cls(info.name, info.id, info.comment, micros_datetime(info.created_at_micros))


@dataclass(frozen=True)
class BucketOffsets:
    """A bucket's readable range: ``earliest`` up to ``latest`` (the next offset to be written)."""

    bucket: int
    earliest: int
    latest: int


@dataclass(frozen=True)
class BucketRange:
    """Rows an append put in one bucket: offsets ``base_offset`` .. ``base_offset + rows - 1``,
    in the order the rows were sent, committed at ``committed_at``."""

    bucket: int
    base_offset: int
    rows: int
    committed_at: datetime | None

    @property
    def end_offset(self) -> int:
        """One past the last offset."""
        return self.base_offset + self.rows

    @classmethod
    def from_pb(cls, result: pb.BucketAppendResult) -> "BucketRange":
        return cls(
            result.bucket,
            result.base_offset,
            result.row_count,
            micros_datetime(result.commit_timestamp_micros),
        )


@dataclass(frozen=True)
class TableInfo:
    """A table as described by the server: ``buckets`` is empty when listed, filled with each
    bucket's offsets when described."""

    database: str
    name: str
    id: int
    schema: pa.Schema
    schema_id: int
    bucket_count: int
    bucket_key: list[str]
    options: dict[str, str]
    comment: str
    created_at: datetime | None
    buckets: list[BucketOffsets] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    """The primary-key columns; empty for a log table."""

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def is_primary_key_table(self) -> bool:
        """Written with upsert and delete (not append), read as a changelog."""
        return bool(self.primary_key)

    @property
    def lake_enabled(self) -> bool:
        return self.options.get("lake.enabled") == "true"

    @classmethod
    def from_pb(cls, info: pb.TableInfo, buckets: Any = ()) -> "TableInfo":
        descriptor = info.descriptor
        return cls(
            database=info.path.database,
            name=info.path.table,
            id=info.table_id,
            schema=schema_from_ipc(descriptor.schema_ipc),
            schema_id=info.schema_id,
            bucket_count=descriptor.bucket_count,
            bucket_key=list(descriptor.bucket_key),
            options=dict(descriptor.options),
            comment=descriptor.comment,
            created_at=micros_datetime(info.created_at_micros),
            buckets=[BucketOffsets(b.bucket, b.earliest_offset, b.latest_offset) for b in buckets],
            primary_key=list(descriptor.primary_key),
        )


def create_table_request(
    database: str,
    table: str,
    schema: pa.Schema,
    buckets: int,
    bucket_key: list[str] | str | None,
    options: dict[str, Any] | None,
    comment: str,
    if_not_exists: bool,
    primary_key: list[str] | str | None = None,
) -> pb.CreateTableRequest:
    if not isinstance(schema, pa.Schema):
        raise InvalidInput(f"a table schema must be a pyarrow.Schema, not {type(schema).__name__}")
    if isinstance(bucket_key, str):
        bucket_key = [bucket_key]
    if isinstance(primary_key, str):
        primary_key = [primary_key]
    return pb.CreateTableRequest(
        path=table_path(database, table),
        descriptor=pb.TableDescriptor(
            schema_ipc=schema_to_ipc(schema),
            bucket_count=buckets,
            bucket_key=list(bucket_key or []),
            options={k: _option_value(v) for k, v in (options or {}).items()},
            comment=comment,
            primary_key=list(primary_key or []),
        ),
        if_not_exists=if_not_exists,
    )


def alter_table_request(
    database: str,
    table: str,
    options: dict[str, Any] | None,
    unset: list[str] | str | None,
    comment: str | None,
    add_columns: "pa.Schema | list[pa.Field] | None" = None,
    widen_columns: "pa.Schema | list[pa.Field] | None" = None,
    drop_columns: list[str] | str | None = None,
    rename_columns: dict[str, str] | None = None,
) -> pb.AlterTableRequest:
    """The wire form of an ALTER TABLE: options to set, options to remove (first), a new
    comment (``None`` keeps it), columns to add at the end, columns whose type widens,
    columns to drop (first) and columns to rename (``{old: new}``, after the drops)."""
    if isinstance(drop_columns, str):
        drop_columns = [drop_columns]
    if isinstance(unset, str):
        unset = [unset]
    request = pb.AlterTableRequest(
        path=table_path(database, table),
        set_options={k: _option_value(v) for k, v in (options or {}).items()},
        unset_options=list(unset or []),
        drop_columns=list(drop_columns or []),
        rename_columns=[
            pb.ColumnRename(**{"from": old, "to": new}) for old, new in (rename_columns or {}).items()
        ],
    )
    if add_columns:
        request.add_columns_ipc = schema_to_ipc(_as_schema(add_columns))
    if widen_columns:
        request.widen_columns_ipc = schema_to_ipc(_as_schema(widen_columns))
    if comment is not None:
        request.comment = comment
    return request


def _as_schema(columns: "pa.Schema | list[pa.Field]") -> "pa.Schema":
    return columns if isinstance(columns, pa.Schema) else pa.schema(columns)


def _option_value(value: Any) -> str:
    # Python's True would be "True"; the server expects "true".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class LookupResult(NamedTuple):
    """What :meth:`inlet.Table.lookup` returns; unpack it as ``rows, found = table.lookup(keys)``.

    ``rows`` holds one row per key found, in the order of the keys (missing keys are left
    out): the asked columns (all by default), then ``_offset`` (the changelog offset that
    wrote the row) and ``_bucket``. ``found[i]`` says whether the i-th key has a row, so
    ``rows`` lines up with the keys where ``found`` is true.
    """

    rows: pa.Table
    found: list[bool]

    @property
    def missing(self) -> list[int]:
        """Indexes of the keys without a row."""
        return [i for i, hit in enumerate(self.found) if not hit]


@dataclass(frozen=True)
class LakeBucketStatus:
    bucket: int
    watermark: int
    """Offsets below it are in the lake table."""
    next_offset: int
    earliest_offset: int
    lag_offsets: int
    """Rows committed but not yet in the lake."""
    lag_seconds: float
    """Age of the oldest row not yet in the lake (0 when none)."""


@dataclass(frozen=True)
class LakeStatus:
    """Lake tiering of one table: the last snapshot, live files, and per-bucket lag."""

    database: str
    table: str
    enabled: bool
    metadata_location: str
    snapshot_id: int
    last_commit: datetime | None
    file_count: int
    file_bytes: int
    file_rows: int
    buckets: list[LakeBucketStatus]

    @property
    def lag_offsets(self) -> int:
        return sum(b.lag_offsets for b in self.buckets)

    @classmethod
    def from_pb(cls, status: pb.LakeTableStatus) -> "LakeStatus":
        return cls(
            database=status.database,
            table=status.table,
            enabled=status.lake_enabled,
            metadata_location=status.metadata_location,
            snapshot_id=status.snapshot_id,
            last_commit=micros_datetime(status.last_commit_micros),
            file_count=status.file_count,
            file_bytes=status.file_bytes,
            file_rows=status.file_rows,
            buckets=[
                LakeBucketStatus(
                    b.bucket, b.watermark, b.next_offset, b.earliest_offset, b.lag_offsets,
                    b.lag_seconds,
                )
                for b in status.buckets
            ],
        )


@dataclass(frozen=True)
class IcebergCatalog:
    """How to reach a table through the Iceberg REST catalog the server serves on its HTTP
    listener (``/iceberg``): enough for pyiceberg or DuckDB to attach in one line.

    >>> cat = table.iceberg_catalog()
    >>> cat.load_table().scan().to_arrow()              # pyiceberg
    >>> duckdb_con.execute(cat.duckdb_attach_sql("lake"))  # then SELECT ... FROM lake.db.t
    """

    uri: str
    """The REST catalog's base URI, e.g. ``http://127.0.0.1:7071/iceberg``."""
    namespace: str
    table: str
    name: str = "inlet"
    token: str | None = None
    """The bearer token the catalog wants when the server has authentication on."""
    ca_file: str | None = None
    """The CA certificate (PEM) of an ``https://`` catalog. pyiceberg reads through
    requests, which lets ``REQUESTS_CA_BUNDLE`` override it: unset that variable."""

    @classmethod
    def of_server(cls, http_url: str, endpoint: Any, namespace: str, table: str) -> "IcebergCatalog":
        """The catalog of the server a client reaches at ``endpoint`` (its token and CA
        certificate come along), on its HTTP listener at ``http_url``."""
        ca_file = endpoint.tls.ca_file if endpoint.tls else None
        return cls(f"{http_url}/iceberg", namespace, table, token=endpoint.token, ca_file=ca_file)

    @property
    def identifier(self) -> str:
        """``namespace.table``, as pyiceberg's ``load_table`` takes it."""
        return f"{self.namespace}.{self.table}"

    @property
    def pyiceberg_properties(self) -> dict[str, Any]:
        """Keyword arguments of ``pyiceberg.catalog.rest.RestCatalog(name, **properties)``."""
        properties: dict[str, Any] = {"uri": self.uri}
        if self.token:
            properties["token"] = self.token
        if self.ca_file:
            properties["ssl"] = {"cabundle": self.ca_file}
        return properties

    def pyiceberg_catalog(self) -> Any:
        """A pyiceberg ``RestCatalog`` on this server (needs pyiceberg)."""
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(self.name, **self.pyiceberg_properties)

    def load_table(self) -> Any:
        """The pyiceberg table (needs pyiceberg)."""
        return self.pyiceberg_catalog().load_table(self.identifier)

    def duckdb_attach_sql(self, alias: str = "lake") -> str:
        """The DuckDB statements that attach the catalog as ``alias`` (needs DuckDB's
        iceberg extension), with the CA and the token when there are: one string for
        ``con.execute``. The table is then ``alias.namespace.table``."""
        if not alias.isidentifier():
            raise InvalidInput(f"a DuckDB catalog alias must be an identifier, not {alias!r}")
        def quote(text: str) -> str:
            return "'" + text.replace("'", "''") + "'"

        statements = []
        if self.ca_file:
            statements.append(f"SET ca_cert_file = {quote(self.ca_file)}")
        if self.token:
            statements.append(f"CREATE OR REPLACE SECRET {alias}_catalog (TYPE iceberg, TOKEN {quote(self.token)})")
            authorization = f"SECRET {alias}_catalog"
        else:
            authorization = "AUTHORIZATION_TYPE 'none'"
        statements.append(f"ATTACH '' AS {alias} (TYPE iceberg, ENDPOINT {quote(self.uri)}, {authorization})")
        return "; ".join(statements)
