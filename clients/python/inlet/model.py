"""What the server describes, as plain Python values: databases, tables with their Arrow
schema, partitions, per-bucket offsets, append results, lake status and the Iceberg REST
catalog settings of a table. Built from the wire messages here, once, for the sync and the
asyncio clients, as are the requests both send with the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, NamedTuple

import pyarrow as pa

from ._proto import inlet_pb2 as pb
from .arrow import schema_from_ipc, schema_to_ipc
from .errors import InvalidInput, PartitionNotFound
from .positions import StreamKey, micros_datetime, stream_key


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
    """A bucket's readable range: ``earliest`` up to ``latest`` (the next offset to be written).
    In a partitioned table each partition has its own buckets: ``partition_id`` says whose
    (0 in a table without a partition key). ``wal_bytes`` are the WAL chunks it holds (not
    yet tiered into the lake or expired)."""

    bucket: int
    earliest: int
    latest: int
    partition_id: int = 0
    wal_bytes: int = 0

    @classmethod
    def from_pb(cls, offsets: pb.BucketOffsets) -> "BucketOffsets":
        return cls(
            offsets.bucket, offsets.earliest_offset, offsets.latest_offset, offsets.partition_id,
            offsets.wal_bytes,
        )


@dataclass(frozen=True)
class BucketRange:
    """Rows an append put in one bucket: offsets ``base_offset`` .. ``base_offset + rows - 1``,
    in the order the rows were sent, committed at ``committed_at``. In a partitioned table
    the bucket is one of partition ``partition_id`` (0 in a table without a partition key)."""

    bucket: int
    base_offset: int
    rows: int
    committed_at: datetime | None
    partition_id: int = 0

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
            result.partition_id,
        )


@dataclass(frozen=True)
class Partition:
    """One partition of a partitioned table: its rows hold ``values`` in the partition-key
    columns (as strings: integers in decimal, dates as ``YYYY-MM-DD``, booleans as
    ``true``/``false``). ``name`` is the values joined by ``$``, as a scan's ``partitions``
    names it; ``id`` counts from 1 in creation order and is never reused.

    ``rows`` (readable rows: each bucket's latest minus earliest offset) and ``wal_bytes``
    are summed over its buckets when the table is described; a listing leaves them 0."""

    id: int
    name: str
    values: list[str]
    created_at: datetime | None
    rows: int = 0
    wal_bytes: int = 0

    @classmethod
    def from_pb(cls, info: pb.PartitionInfo, buckets: Iterable[BucketOffsets] = ()) -> "Partition":
        """The partition, sized by those of ``buckets`` that are its own."""
        own = [b for b in buckets if b.partition_id == info.id]
        return cls(
            id=info.id,
            name=info.name,
            values=list(info.values),
            created_at=micros_datetime(info.created_at_micros),
            rows=sum(b.latest - b.earliest for b in own),
            wal_bytes=sum(b.wal_bytes for b in own),
        )


@dataclass(frozen=True)
class TableInfo:
    """A table as described by the server: ``buckets`` is empty when listed, filled with each
    bucket's offsets when described (in a partitioned table, each partition's buckets).
    ``partitions`` are a partitioned table's live partitions in id order, sized when
    described."""

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
    partition_key: list[str] = field(default_factory=list)
    """The partition-key columns; empty for a table without partitions."""
    partitions: list[Partition] = field(default_factory=list)
    last_partition_id: int = 0
    """The highest partition id the table ever gave (dropped partitions included)."""

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def is_primary_key_table(self) -> bool:
        """Written with upsert and delete (not append), read as a changelog."""
        return bool(self.primary_key)

    @property
    def is_partitioned(self) -> bool:
        """Whether rows are split into partitions by :attr:`partition_key`."""
        return bool(self.partition_key)

    def partition(self, name: str) -> Partition:
        """The partition named ``name`` (its values joined by ``$``)."""
        for partition in self.partitions:
            if partition.name == name:
                return partition
        raise PartitionNotFound(f"table `{self.full_name}` has no partition `{name}`")

    @property
    def lake_enabled(self) -> bool:
        return self.options.get("lake.enabled") == "true"

    @classmethod
    def from_pb(cls, info: pb.TableInfo, buckets: Any = ()) -> "TableInfo":
        descriptor = info.descriptor
        offsets = [BucketOffsets.from_pb(b) for b in buckets]
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
            buckets=offsets,
            primary_key=list(descriptor.primary_key),
            partition_key=list(descriptor.partition_key),
            partitions=[Partition.from_pb(p, offsets) for p in info.partitions],
            last_partition_id=info.last_partition_id,
        )


def offsets_of(response: pb.ListOffsetsResponse) -> dict[StreamKey, int]:
    """Each stream's offset of a ListOffsets reply: by bucket, or by ``(partition_id,
    bucket)`` in a partitioned table (the keys of a :class:`~inlet.Position`)."""
    return {stream_key(b.partition_id, b.bucket): b.offset for b in response.buckets}


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
    partition_key: list[str] | str | None = None,
) -> pb.CreateTableRequest:
    if not isinstance(schema, pa.Schema):
        raise InvalidInput(f"a table schema must be a pyarrow.Schema, not {type(schema).__name__}")
    if isinstance(bucket_key, str):
        bucket_key = [bucket_key]
    if isinstance(primary_key, str):
        primary_key = [primary_key]
    if isinstance(partition_key, str):
        partition_key = [partition_key]
    return pb.CreateTableRequest(
        path=table_path(database, table),
        descriptor=pb.TableDescriptor(
            schema_ipc=schema_to_ipc(schema),
            bucket_count=buckets,
            bucket_key=list(bucket_key or []),
            options={k: _option_value(v) for k, v in (options or {}).items()},
            comment=comment,
            primary_key=list(primary_key or []),
            partition_key=list(partition_key or []),
        ),
        if_not_exists=if_not_exists,
    )


def create_partitions_request(
    database: str, table: str, partitions: Iterable[Any]
) -> pb.CreatePartitionsRequest:
    """The wire form of a CreatePartitions: each element of ``partitions`` is the values of
    one partition in partition-key order (a list or tuple), or a single value for a
    one-column key. Values are strings as the server writes them, or Python values turned
    into them: ``int`` in decimal, ``bool`` as ``true``/``false``, ``datetime.date`` as
    ``YYYY-MM-DD``."""
    if isinstance(partitions, (str, bytes)):
        raise InvalidInput(
            f"partitions must be a list of partitions' values, e.g. [{partitions!r}], "
            f"not the single value {partitions!r}"
        )
    request = pb.CreatePartitionsRequest(path=table_path(database, table))
    for values in partitions:
        if not isinstance(values, (list, tuple)):
            values = [values]
        request.partitions.append(pb.PartitionValues(values=[_partition_value(v) for v in values]))
    return request


def _partition_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    raise InvalidInput(
        f"a partition value must be a string, an integer, a boolean or a datetime.date, "
        f"not {value!r}"
    )


def partition_names(partitions: "Iterable[str | Partition] | str | Partition | None") -> list[str] | None:
    """The partition names a read is restricted to (``None``: every partition): names, or
    :class:`Partition` objects, or one of either."""
    if partitions is None:
        return None
    if isinstance(partitions, (str, Partition)):
        partitions = [partitions]
    names = []
    for partition in partitions:
        if isinstance(partition, Partition):
            names.append(partition.name)
        elif isinstance(partition, str):
            names.append(partition)
        else:
            raise InvalidInput(
                f"partitions are named by strings (values joined by '$') or Partition "
                f"objects, not {partition!r}"
            )
    return names or None


def offsets_request(
    database: str,
    table: str,
    position: pb.StartPosition,
    buckets: Iterable[int] | None,
    partitions: "Iterable[str | Partition] | str | Partition | None",
) -> pb.ListOffsetsRequest:
    return pb.ListOffsetsRequest(
        path=table_path(database, table),
        buckets=list(buckets or []),
        position=position,
        partitions=partition_names(partitions) or [],
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
