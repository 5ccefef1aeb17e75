"""The synchronous client: :func:`connect` opens a :class:`Client`, which manages databases
and tables and hands out :class:`Table` handles to append to, scan, list and create
partitions of, and ask about the lake.

Every call goes over one gRPC channel (thread-safe; share the client between threads).
A failed call raises an :class:`inlet.InletError` subclass carrying the server's message.
"""

from __future__ import annotations

import queue
import threading
import time
from datetime import datetime
from typing import Any, Iterable, Iterator

import grpc
import grpc.experimental
import pyarrow as pa
from google.protobuf import json_format

from . import arrow
from ._connection import (
    APPEND_ATTEMPT_TIMEOUT_SECONDS,
    CALL_TIMEOUT_SECONDS,
    TLS,
    Backoff,
    Endpoint,
    new_producer_id,
    parse_endpoint,
)
from ._proto import inlet_pb2 as pb
from ._fetch import FETCH_METHOD, fetched_batches, parse_fetch_response
from ._proto import inlet_pb2_grpc as pb_grpc
from .errors import (
    OUTCOME_UNKNOWN_CODES,
    InletError,
    InvalidInput,
    InvalidKey,
    SchemaMismatch,
    Unavailable,
    from_rpc_error,
)
from .model import (
    BucketRange,
    Database,
    IcebergCatalog,
    LakeStatus,
    LookupResult,
    Partition,
    TableInfo,
    alter_table_request,
    create_partitions_request,
    create_table_request,
    offsets_of,
    offsets_request,
    partition_names,
    split_name,
    table_path,
)
from .positions import EARLIEST, Position, Start, StreamKey, start_message

# Fetched batches a multi-stream scan holds between its streams and the caller: a slow
# caller stalls the streams (and so the server's reads), it never grows memory.
MERGE_QUEUE_DEPTH = 8
# How often a stream thread blocked on a full merge queue checks whether the scan closed.
MERGE_POLL_SECONDS = 0.1

# The writes a Sender makes, and the RPC and `partial` flag of each (one AppendRequest shape
# for all of them).
APPEND, UPSERT, PARTIAL_UPSERT, DELETE = "append", "upsert", "partial upsert", "delete"
WRITE_METHODS = {
    APPEND: ("Append", False),
    UPSERT: ("Upsert", False),
    PARTIAL_UPSERT: ("Upsert", True),
    DELETE: ("Delete", False),
}


def connect(
    url: str = "http://127.0.0.1:7070",
    token: str | None = None,
    tls: TLS | bool | None = None,
    http_url: str | None = None,
) -> "Client":
    """Connects to an Inlet server.

    ``url`` is ``http://host:port`` (or ``https://`` for TLS, configured by ``tls``); ``token``
    is sent as a bearer token with every call. ``http_url`` is the server's HTTP listener,
    where its Iceberg REST catalog lives; by default the gRPC host with port + 1, as
    ``inlet serve`` listens by default (7070 and 7071). Nothing is sent until the first call.
    """
    return Client(parse_endpoint(url, token, tls), http_url)


def default_http_url(endpoint: Endpoint) -> str:
    """The HTTP listener beside ``endpoint``: port + 1, over TLS when gRPC is (a server with
    a TLS certificate serves both listeners with it)."""
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    scheme = "https" if endpoint.credentials is not None else "http"
    return f"{scheme}://{host}:{endpoint.port + 1}"


class Client:
    """A connection to one server. Use :func:`connect` to make one; close it (or use it as a
    context manager) to release the channel."""

    def __init__(self, endpoint: Endpoint, http_url: str | None = None):
        self.endpoint = endpoint
        self.http_url = (http_url or default_http_url(endpoint)).rstrip("/")
        # Fetch streams are read on the thread that iterates them rather than handed over
        # from grpcio's channel thread: the message is received and freed on one thread
        # (fewer wakeups, and glibc reuses its memory instead of mapping fresh pages for
        # every message: a collected 240 MB scan spends ~40% less client CPU).
        options = endpoint.options + [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]
        if endpoint.credentials is None:
            self._channel = grpc.insecure_channel(endpoint.target, options=options)
        else:
            self._channel = grpc.secure_channel(endpoint.target, endpoint.credentials, options=options)
        self._stub = pb_grpc.InletStub(self._channel)
        # Fetch with the zero-copy response reader instead of the generated one.
        self._fetch = self._channel.unary_stream(
            FETCH_METHOD,
            request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=parse_fetch_response,
        )

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any, timeout: float | None = CALL_TIMEOUT_SECONDS) -> Any:
        try:
            return getattr(self._stub, method)(
                request, timeout=timeout, metadata=self.endpoint.metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    # --- databases ---

    def create_database(self, name: str, comment: str = "", if_not_exists: bool = False) -> Database:
        response = self._call(
            "CreateDatabase",
            pb.CreateDatabaseRequest(name=name, comment=comment, if_not_exists=if_not_exists),
        )
        return Database.from_pb(response.database)

    def list_databases(self) -> list[Database]:
        response = self._call("ListDatabases", pb.ListDatabasesRequest())
        return [Database.from_pb(d) for d in response.databases]

    def get_database(self, name: str) -> Database:
        return Database.from_pb(self._call("GetDatabase", pb.GetDatabaseRequest(name=name)).database)

    def drop_database(
        self, name: str, if_exists: bool = False, cascade: bool = False, purge: bool = False
    ) -> None:
        request = pb.DropDatabaseRequest(
            name=name, if_exists=if_exists, cascade=cascade, purge=purge
        )
        self._call("DropDatabase", request)

    # --- tables ---

    def create_table(
        self,
        name: str,
        schema: pa.Schema,
        buckets: int = 1,
        bucket_key: list[str] | str | None = None,
        options: dict[str, Any] | None = None,
        comment: str = "",
        if_not_exists: bool = False,
        primary_key: list[str] | str | None = None,
        partition_key: list[str] | str | None = None,
    ) -> "Table":
        """Creates ``database.table`` (its database too, if missing) with the columns of
        ``schema``; rows are spread over ``buckets`` by ``bucket_key`` (Iceberg's bucket
        transform), or round-robin per append without one. ``options`` are table options
        such as ``{"lake.enabled": True, "lake.freshness": "10s", "retention": "7d"}``.

        ``primary_key`` (non-null columns) makes a primary-key table: written with
        :meth:`Table.upsert` and :meth:`Table.delete`, read by key with :meth:`Table.lookup`
        and scanned as its changelog. Its bucket key defaults to the primary key; its merge
        engine is the option ``merge.engine`` (``last_row`` by default, ``first_row``, or
        ``versioned`` with ``merge.version-column``).

        ``partition_key`` (up to 4 non-null integer, string, date or boolean columns) splits
        the rows into partitions by their values, each with ``buckets`` buckets: a partition
        is created by the first append of its values or by :meth:`Table.create_partitions`,
        and a scan can read only some (``partitions=``). A partitioned table cannot (yet)
        have a primary key or the lake enabled."""
        database, table = split_name(name)
        request = create_table_request(
            database, table, schema, buckets, bucket_key, options, comment, if_not_exists,
            primary_key, partition_key,
        )
        self.create_database(database, if_not_exists=True)
        self._call("CreateTable", request)
        return self.table(name)

    def list_tables(self, database: str = "default") -> list[TableInfo]:
        response = self._call("ListTables", pb.ListTablesRequest(database=database))
        return [TableInfo.from_pb(t) for t in response.tables]

    def describe_table(self, name: str) -> TableInfo:
        """The table's schema, buckets, options, partitions and each bucket's earliest and
        latest offset."""
        database, table = split_name(name)
        response = self._call("GetTable", pb.GetTableRequest(path=table_path(database, table)))
        return TableInfo.from_pb(response.table, response.buckets)

    def alter_table(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        unset: list[str] | str | None = None,
        comment: str | None = None,
        add_columns: "pa.Schema | list[pa.Field] | None" = None,
        widen_columns: "pa.Schema | list[pa.Field] | None" = None,
        drop_columns: list[str] | str | None = None,
        rename_columns: dict[str, str] | None = None,
    ) -> TableInfo:
        """Changes a table's options (``lake.enabled``, ``lake.freshness``,
        ``lake.snapshots.retained``, ``retention``, ``retention.bytes``; ``unset`` removes
        some first), its ``comment``, or adds columns at the end (``add_columns``: nullable
        ``pyarrow`` fields; rows written before read as null in them, and producers that
        send the old columns keep working), or widens columns' types (``widen_columns``:
        fields naming existing columns with their new types: int32 to int64, float32 to
        float64, a decimal's precision at the same scale; rows written before read under the
        new type, and producers that send the old type keep working), drops columns
        (``drop_columns``, first: rows written before keep their values but reads no longer
        return them) or renames them (``rename_columns={"old": "new"}``: rows written before
        read under the new name, and producers that send the old name keep working); a
        primary-key table's key columns and the columns its merge options name are fixed.
        Returns
        the table as it is now, with its new ``schema_id`` when columns changed.
        Turning the lake on tiers the table's history too. Other options and the keys are
        fixed at creation (:class:`InvalidInput`)."""
        database, table = split_name(name)
        response = self._call("AlterTable", alter_table_request(
                database, table, options, unset, comment, add_columns, widen_columns, drop_columns, rename_columns
            ))
        return TableInfo.from_pb(response.table)

    def drop_table(self, name: str, if_exists: bool = False, purge: bool = False) -> None:
        """Drops a table: its name is free at once; its WAL and index entries are deleted once
        the compactors' drop grace passed; its lake table (Iceberg folder) stays in the bucket
        unless ``purge``."""
        database, table = split_name(name)
        request = pb.DropTableRequest(
            path=table_path(database, table), if_exists=if_exists, purge=purge
        )
        self._call("DropTable", request)

    def table(self, name: str) -> "Table":
        """A handle on ``database.table`` (a bare name is in database ``default``). No call is
        made until it is used."""
        return Table(self, *split_name(name))

    # --- node ---

    def status(self) -> dict[str, Any]:
        """What the node is doing: roles, index ownership, object-store requests by purpose,
        cache and request counters (the ``GetStatus`` reply as a dict)."""
        response = self._call("GetStatus", pb.GetStatusRequest())
        return json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    def lake_status(self, database: str = "", table: str = "") -> list[LakeStatus]:
        """Lake tiering of every table (or one database's, or one table's)."""
        response = self._call("GetLakeStatus", pb.GetLakeStatusRequest(database=database, table=table))
        return [LakeStatus.from_pb(t) for t in response.tables]


class Table:
    """A table of a :class:`Client`: append rows (or upsert and delete them, in a
    primary-key table), scan them, look them up by key, describe it.

    Writes through :meth:`append`, :meth:`upsert` and :meth:`delete` are idempotent: the
    handle is one producer (a random id, and a sequence number per write), and a write whose
    outcome is unknown (the server restarted, the reply was lost) is resent with the same
    sequence, so it lands exactly once. For many small writes use :meth:`producer`, which
    batches them in the background.
    """

    def __init__(self, client: Client, database: str, name: str):
        self.client = client
        self.database = database
        self.name = name
        self._info: TableInfo | None = None
        self._sender = Sender(client, database, name)

    def __repr__(self) -> str:
        return f"<inlet.Table {self.full_name}>"

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.name}"

    @property
    def schema(self) -> pa.Schema:
        """The table's columns (fetched once, then cached by this handle)."""
        return self._described().schema

    @property
    def primary_key(self) -> list[str]:
        """The primary-key columns (empty for a log table; fetched once, then cached)."""
        return self._described().primary_key

    def _described(self) -> TableInfo:
        if self._info is None:
            self._info = self.describe()
        return self._info

    def describe(self) -> TableInfo:
        return self.client.describe_table(self.full_name)

    def alter(
        self,
        options: dict[str, Any] | None = None,
        unset: list[str] | str | None = None,
        comment: str | None = None,
        add_columns: "pa.Schema | list[pa.Field] | None" = None,
        widen_columns: "pa.Schema | list[pa.Field] | None" = None,
        drop_columns: list[str] | str | None = None,
        rename_columns: dict[str, str] | None = None,
    ) -> TableInfo:
        """See :meth:`Client.alter_table`. This handle's cached schema becomes the new one."""
        self._info = self.client.alter_table(
            self.full_name, options, unset, comment, add_columns, widen_columns, drop_columns, rename_columns
        )
        return self._info

    def drop(self, if_exists: bool = False, purge: bool = False) -> None:
        """Drops the table (see :meth:`Client.drop_table`)."""
        self.client.drop_table(self.full_name, if_exists=if_exists, purge=purge)

    def partitions(self) -> list[Partition]:
        """A partitioned table's partitions in id order, each with its readable ``rows`` and
        ``wal_bytes`` summed over its buckets (empty for a table without a partition key)."""
        return self.describe().partitions

    def create_partitions(self, partitions: Iterable[Any]) -> list[Partition]:
        """Creates partitions up front (appends create theirs too): one per element of
        ``partitions``, its values in partition-key order (a list, or a single value for a
        one-column key), as strings or ``int``, ``bool``, ``datetime.date``. Partitions that
        exist already are no error. Returns each one, in the order asked, sized as
        :meth:`partitions` sizes them.

        >>> table.create_partitions(["2026-12-07", "2026-12-08"])   # partition_key="day"
        >>> table.create_partitions([["2026-12-07", "eu"]])          # ["day", "region"]
        """
        request = create_partitions_request(self.database, self.name, partitions)
        created = self.client._call("CreatePartitions", request).partitions
        return _sized(created, self.describe())

    def append(self, data: Any) -> list[BucketRange]:
        """Appends a pyarrow Table or RecordBatch, a pandas DataFrame or a polars DataFrame;
        returns where the rows went (bucket, first offset, row count; in a partitioned table
        also the partition id, one range per partition and bucket). Columns are matched by
        name and converted to the table's types where nothing is lost; an input larger than
        one append (64 MiB, 1 Mi rows) is sent as several appends, in order."""
        return self._write(APPEND, self.conform(data))

    def upsert(self, data: Any, partial: bool = False) -> list[BucketRange]:
        """Primary-key tables: inserts each row, or merges it into its key's current row as
        the table's merge engine says (``last_row`` replaces it). Takes what :meth:`append`
        takes; returns the offsets the rows got in the changelog (every row gets one, also a
        row the merge engine ignores). A log table raises :class:`inlet.WrongOperation`.

        ``partial=True`` updates only the columns ``data`` carries (the key among them): each
        key's other columns keep their values (nulls for a new key, so they must be
        nullable). For the ``last_row`` and ``aggregation`` merge engines."""
        return self._write(PARTIAL_UPSERT if partial else UPSERT, self.conform(data))

    def delete(self, keys: Any) -> list[BucketRange]:
        """Primary-key tables: removes the current rows of ``keys``, rows holding at least
        the primary-key columns (other columns are not sent); deleting an absent key is no
        error and changes nothing. Returns the offsets the deletes got in the changelog."""
        return self._write(DELETE, self.conform_keys(data=keys))

    def _write(self, op: str, rows: pa.Table) -> list[BucketRange]:
        ranges: list[BucketRange] = []
        for piece in arrow.split_for_appends(rows):
            ranges.extend(self._sender.send(arrow.table_to_ipc(piece), op))
        return ranges

    def lookup(self, keys: Any, columns: list[str] | None = None) -> LookupResult:
        """Primary-key tables: the current rows of ``keys`` (a pyarrow Table or RecordBatch,
        pandas or polars DataFrame, or dict of the primary-key columns, e.g. ``{"id": [1, 2]}``).

        Returns ``(rows, found)``: ``rows`` a pyarrow Table of the keys that have a row, in
        the order of the keys, with ``columns`` (all by default) then ``_offset`` and
        ``_bucket``; ``found`` a list of bools, one per key. A lookup made after a write was
        acknowledged sees it, on any node."""
        request = pb.LookupRequest(
            path=table_path(self.database, self.name),
            keys_ipc=lookup_keys_ipc(self.conform_keys(keys, lookup=True), self.full_name),
            columns=_column_list(columns),
        )
        return lookup_result(self.client._call("Lookup", request))

    def conform(self, data: Any) -> pa.Table:
        """``data`` as a pyarrow Table in the table's types (what :meth:`append` sends). A
        mismatch with the cached schema is checked once more against the table as it is now,
        since another client may have altered it (widened a column) meanwhile."""
        data = arrow.to_arrow_table(data)
        try:
            return arrow.conform(data, self.schema, self.full_name)
        except SchemaMismatch:
            self._info = None
            return arrow.conform(data, self.schema, self.full_name)

    def conform_keys(self, data: Any, lookup: bool = False) -> pa.Table:
        """Keys for :meth:`delete` (``lookup=False``: only the primary-key columns are kept,
        when all are there) or :meth:`lookup` (sent as given, so the server names a column
        outside the key), in the table's types."""
        return keys_table(arrow.to_arrow_table(data), self.schema, self.primary_key, self.full_name, lookup)

    def producer(self, **settings: Any) -> "Producer":
        """A background-batching idempotent producer (appends, or upserts and deletes);
        see :class:`inlet.Producer`."""
        from .producer import Producer

        return Producer(self, **settings)

    def scan(
        self,
        columns: list[str] | None = None,
        start: Start = EARLIEST,
        buckets: Iterable[int] | None = None,
        follow: bool = False,
        limit: int | None = None,
        omit_update_before: bool = False,
        reset_to_earliest: bool = False,
        partitions: "Iterable[str | Partition] | str | None" = None,
    ) -> "Scan":
        """Reads rows from ``start`` (``"earliest"``, ``"latest"``, an offset applied to each
        bucket, a ``datetime``, or a saved :class:`Position`) to the end, or on and on with
        ``follow=True``. ``columns`` projects (the system columns ``_bucket``, ``_offset``,
        ``_timestamp`` always come last); ``buckets`` restricts the read. Rows already tiered
        into the lake are read from its Parquet files by the server, transparently.

        A partitioned table reads every partition (a follow also those created after it
        started), or only ``partitions``: names (the values joined by ``$``, e.g.
        ``"2026-12-07"`` or ``"2026-12-07$eu"``) or :class:`Partition` objects; ``buckets``
        then restricts each partition's buckets. An unknown name raises
        :class:`inlet.PartitionNotFound`; a table without a partition key refuses the filter
        (:class:`inlet.InvalidInput`). The scan's :attr:`~Scan.position` keys its streams
        ``(partition_id, bucket)``; resuming from it reads each partition's buckets from
        their own offsets (the partitions that exist when the resumed scan starts).

        A primary-key table reads as its changelog: each row ends with ``_change_type``
        (``+I`` insert, ``-U`` then ``+U`` for an update's before and after images, both at
        the update's offset, ``-D`` the deleted row); ``omit_update_before=True`` leaves out
        the ``-U`` rows. Log tables ignore it.

        A start offset that retention expired raises :class:`OffsetOutOfRange` naming the
        earliest readable offset, or with ``reset_to_earliest=True`` starts there."""
        return Scan(
            self, columns, start, buckets, follow, limit, omit_update_before, reset_to_earliest,
            partitions,
        )

    def offsets(
        self,
        at: str | datetime = "latest",
        buckets: Iterable[int] | None = None,
        partitions: "Iterable[str | Partition] | str | None" = None,
    ) -> dict[StreamKey, int]:
        """Each bucket's offset at ``at``: ``"earliest"``, ``"latest"`` (the next offset to be
        written) or the first row committed at or after a ``datetime``. A partitioned table
        keys them ``(partition_id, bucket)``, of every partition or only ``partitions``
        (names), as a :class:`Position` does: ``Position(table.offsets())`` starts a scan at
        the current end."""
        request = offsets_request(self.database, self.name, start_message(at), buckets, partitions)
        return offsets_of(self.client._call("ListOffsets", request))

    def lake_status(self) -> LakeStatus:
        """This table's lake tiering: watermark and lag per bucket, last snapshot, files."""
        return _one_lake_status(self.client.lake_status(self.database, self.name), self.full_name)

    def iceberg_catalog(self) -> IcebergCatalog:
        """The Iceberg REST catalog settings of this table, for pyiceberg or DuckDB."""
        return IcebergCatalog.of_server(self.client.http_url, self.client.endpoint, self.database, self.name)


def _column_list(columns: list[str] | str | None) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    return list(columns or [])


def keys_table(data: pa.Table, schema: pa.Schema, primary_key: list[str], name: str, lookup: bool) -> pa.Table:
    """Keys of a delete or lookup in the table's types. A delete keeps only the key columns
    (the server ignores the others); a lookup's keys are sent as given, so the server can
    name a column outside the key. A table without a primary key is left to the server,
    which refuses the operation with its own message."""
    if primary_key and not lookup and all(k in data.column_names for k in primary_key):
        data = data.select(primary_key)
    try:
        return arrow.conform(data, schema, name)
    except SchemaMismatch as error:
        if not lookup:
            raise
        raise InvalidKey(f"invalid lookup keys for table `{name}`: {error.message}") from None


def lookup_keys_ipc(keys: pa.Table, name: str) -> bytes:
    if keys.nbytes > arrow.MAX_APPEND_BYTES or keys.num_rows > arrow.MAX_APPEND_ROWS:
        raise InvalidInput(
            f"a lookup in `{name}` of {keys.num_rows} keys ({keys.nbytes} bytes) exceeds one "
            f"request ({arrow.MAX_APPEND_ROWS} keys, {arrow.MAX_APPEND_BYTES} bytes): split it"
        )
    return arrow.table_to_ipc(keys)


def lookup_result(response: pb.LookupResponse) -> LookupResult:
    return LookupResult(arrow.table_from_ipc(response.rows_ipc), list(response.found))


def _sized(created: Iterable[pb.PartitionInfo], table: TableInfo) -> list[Partition]:
    """The partitions a CreatePartitions answered with, as ``table`` (described after it)
    sizes them; one it does not list (dropped meanwhile) is unsized."""
    by_id = {p.id: p for p in table.partitions}
    return [by_id.get(info.id) or Partition.from_pb(info) for info in created]


def _one_lake_status(statuses: list[LakeStatus], name: str) -> LakeStatus:
    if len(statuses) != 1:
        raise InletError(f"the server described {len(statuses)} lake tables for `{name}`, expected 1")
    return statuses[0]


class Sender:
    """One idempotent producer of one table: every write (append, upsert or delete: one
    sequence for all three, as the server keeps one state per producer and table) carries
    the producer id and the next sequence number; a write whose outcome is unknown is
    resent with the same number until it is answered or
    :data:`~inlet._connection.APPEND_RETRY_SECONDS` pass. The server dedups only a
    producer's latest sequence, so writes go one at a time (a lock), in order."""

    def __init__(self, client: Client, database: str, table: str):
        self._client = client
        self._path = table_path(database, table)
        self._lock = threading.Lock()
        self.producer_id = new_producer_id()
        self._next_sequence = 1

    def send(self, batches_ipc: bytes, op: str = APPEND) -> list[BucketRange]:
        method, partial = WRITE_METHODS[op]
        with self._lock:
            request = pb.AppendRequest(
                path=self._path,
                batches_ipc=batches_ipc,
                partial=partial,
                producer_id=self.producer_id,
                sequence=self._next_sequence,
            )
            # Whatever happens, the next append gets a new number: new rows must never be
            # taken for a resend of this append, which may have landed.
            self._next_sequence += 1
            backoff = Backoff(time.monotonic())
            while True:
                try:
                    response = getattr(self._client._stub, method)(
                        request,
                        timeout=APPEND_ATTEMPT_TIMEOUT_SECONDS,
                        metadata=self._client.endpoint.metadata,
                    )
                    return [BucketRange.from_pb(r) for r in response.buckets]
                except grpc.RpcError as error:
                    if error.code() not in OUTCOME_UNKNOWN_CODES:
                        raise from_rpc_error(error) from None
                    delay = backoff.next_delay(time.monotonic())
                    if delay is None:
                        raise Unavailable(
                            f"{op} {request.sequence} of producer {self.producer_id} to "
                            f"`{self._path.database}.{self._path.table}` still has an unknown "
                            f"outcome after retrying: {error.details()}",
                            error.code().name,
                        ) from None
                    time.sleep(delay)


class _ScanOptions:
    """What a scan and an async scan share: the read's options, its position, and the
    fetches it makes (see :class:`Scan`)."""

    def __init__(
        self,
        table: Any,
        columns: list[str] | None,
        start: Start,
        buckets: Iterable[int] | None,
        follow: bool,
        limit: int | None,
        omit_update_before: bool = False,
        reset_to_earliest: bool = False,
        partitions: "Iterable[str | Partition] | str | None" = None,
    ):
        if isinstance(columns, str):
            columns = [columns]
        if limit is not None and limit < 0:
            raise InvalidInput(f"limit must not be negative, got {limit}")
        self.table = table
        self.columns = list(columns) if columns else None
        self.follow = follow
        self.limit = limit
        self.omit_update_before = omit_update_before
        self.reset_to_earliest = reset_to_earliest
        self.buckets = sorted(set(buckets)) if buckets is not None else None
        self.partitions = partition_names(partitions)
        self.position = Position(dict(start.offsets)) if isinstance(start, Position) else Position()
        self._calls: list[Any] = []
        self._received: list[int] = []
        self._started = False

    @property
    def bytes_received(self) -> int:
        """Arrow IPC bytes this scan has received so far (what its fetches carried)."""
        return sum(self._received)

    def _needs_description(self, start: Start) -> bool:
        """Whether planning `start` needs the table described (a position: resumed on every
        bucket, of every partition the table has)."""
        return isinstance(start, Position)

    def _plan(self, start: Start, table: TableInfo | None) -> list[pb.FetchRequest]:
        """One fetch per distinct start: one in all, except when resuming a position whose
        streams are at different offsets. `table` is given when :meth:`_needs_description`
        says so."""
        path = table_path(self.table.database, self.table.name)
        base = dict(
            # One row more than the limit: an update's +U after a -U the limit ends on.
            path=path, columns=self.columns or [], follow=self.follow,
            limit=0 if self.limit is None else self.limit + 1,
            omit_update_before=self.omit_update_before,
            reset_to_earliest=self.reset_to_earliest,
        )
        if not isinstance(start, Position):
            return [pb.FetchRequest(
                buckets=self.buckets or [], partitions=self.partitions or [],
                start=start_message(start), **base,
            )]
        assert table is not None
        wanted = self.buckets if self.buckets is not None else list(range(table.bucket_count))
        if table.is_partitioned:
            return self._plan_partitions(start, table, wanted, base)
        if start.partitioned:
            raise InvalidInput(
                f"the position names partitions' buckets (\"partition/bucket\") but table "
                f"`{table.full_name}` has no partition key: it was saved from another table"
            )
        groups: dict[Any, list[int]] = {}
        for bucket in wanted:
            groups.setdefault(start.offsets.get(bucket, EARLIEST), []).append(bucket)
        return [
            pb.FetchRequest(
                buckets=group, partitions=self.partitions or [], start=start_message(at), **base
            )
            for at, group in groups.items()
        ]

    def _plan_partitions(
        self, start: Position, table: TableInfo, wanted: list[int], base: dict[str, Any]
    ) -> list[pb.FetchRequest]:
        """The fetches resuming `start` in a partitioned table: each (partition, bucket)
        stream from its own offset, or the earliest when the position does not name it.
        Streams at the same start share a fetch: partitions whose buckets start alike share
        one (so a position that names none of the partitions reads with a single fetch of
        every partition, which a follow extends to partitions created later; a resumed
        follow otherwise reads only the partitions that exist when it starts)."""
        if start.offsets and not start.partitioned:
            raise InvalidInput(
                f"the position names buckets of an unpartitioned table but table "
                f"`{table.full_name}` is partitioned (by {', '.join(table.partition_key)}): it "
                f"was saved from another table"
            )
        ids = {p.name: p.id for p in table.partitions}
        names = self.partitions if self.partitions is not None else list(ids)
        if not any(start.partition_offsets(ids[n]) for n in names if n in ids):
            return [pb.FetchRequest(
                buckets=self.buckets or [], partitions=self.partitions or [],
                start=start_message(EARLIEST), **base,
            )]
        # (start, buckets) -> the partitions whose buckets start there; an unknown name
        # starts at the earliest, and the server says it does not exist.
        groups: dict[tuple[Any, tuple[int, ...]], list[str]] = {}
        for name in names:
            offsets = start.partition_offsets(ids[name]) if name in ids else {}
            starts: dict[Any, list[int]] = {}
            for bucket in wanted:
                starts.setdefault(offsets.get(bucket, EARLIEST), []).append(bucket)
            for at, buckets in starts.items():
                groups.setdefault((at, tuple(buckets)), []).append(name)
        return [
            pb.FetchRequest(buckets=list(buckets), partitions=group, start=start_message(at), **base)
            for (at, buckets), group in groups.items()
        ]


class Scan(_ScanOptions):
    """Rows of one read, as record batches. Iterate it for batches as they arrive (with
    ``follow=True`` it never ends by itself: break out or call :meth:`close`), or collect it
    with :meth:`to_arrow`, :meth:`to_pandas`, :meth:`to_polars`.

    :attr:`position` is the next offset of each stream (bucket, or partition and bucket)
    read so far; save it and pass it as ``start`` to resume. Each batch holds rows of one
    stream in offset order.
    """

    def __init__(
        self,
        table: Table,
        columns: list[str] | None,
        start: Start,
        buckets: Iterable[int] | None,
        follow: bool,
        limit: int | None,
        omit_update_before: bool = False,
        reset_to_earliest: bool = False,
        partitions: "Iterable[str | Partition] | str | None" = None,
    ):
        super().__init__(
            table, columns, start, buckets, follow, limit, omit_update_before, reset_to_earliest,
            partitions,
        )
        described = self.table.describe() if self._needs_description(start) else None
        self._requests = self._plan(start, described)
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._started:
            raise InvalidInput("a scan is read once; call table.scan(...) again to read again")
        self._started = True
        return self._batches()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        remaining = self.limit
        try:
            if remaining == 0:
                return
            for batch, mark, partition in self._responses():
                if remaining is not None:
                    rows = batch.num_rows
                    batch, remaining = arrow.take_up_to(batch, remaining)
                    if mark is not None and batch.num_rows < rows:
                        mark = mark._replace(last=False)  # the snapshot was cut short
                self.position.advance(batch, mark, partition)
                if batch.num_rows == 0 and mark is not None:
                    continue  # an empty snapshot's end only moves the position
                yield batch
                if remaining is not None and remaining <= 0:
                    return
        finally:
            self.close()

    def _responses(self) -> Iterator[tuple[pa.RecordBatch, Any, int]]:
        metadata = self.table.client.endpoint.metadata
        fetch = self.table.client._fetch
        calls = [fetch(request, metadata=metadata) for request in self._requests]
        self._calls = calls
        self._received = [0] * len(calls)
        if len(calls) == 1:
            yield from _decoded(calls[0], self._closed, self._received, 0)
            return
        yield from self._merged(calls)

    def _merged(self, calls: list[Any]) -> Iterator[tuple[pa.RecordBatch, Any, int]]:
        """Batches of several fetches in arrival order, through a bounded queue."""
        items: queue.Queue = queue.Queue(MERGE_QUEUE_DEPTH)
        done = object()

        def pump(index: int, call: Any) -> None:
            try:
                for fetched in _decoded(call, self._closed, self._received, index):
                    if not _put(items, fetched, self._closed):
                        return
                _put(items, done, self._closed)
            except BaseException as error:  # handed to the reading thread
                _put(items, error, self._closed)

        threads = [threading.Thread(target=pump, args=(i, c), daemon=True) for i, c in enumerate(calls)]
        for thread in threads:
            thread.start()
        finished = 0
        while finished < len(calls):
            item = items.get()
            if item is done:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item

    def close(self) -> None:
        """Stops the read (cancels its fetches); iteration ends."""
        self._closed.set()
        for call in self._calls:
            call.cancel()

    def __enter__(self) -> "Scan":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def to_arrow(self) -> pa.Table:
        """Every row of the read as one pyarrow Table (not with ``follow=True``)."""
        if self.follow:
            raise InvalidInput("a following scan never ends; iterate it instead of collecting it")
        batches = list(self)
        if not batches:
            return arrow.fetched_schema(
                self.table.schema, self.columns, bool(self.table.primary_key)
            ).empty_table()
        return pa.Table.from_batches(batches)

    def to_pandas(self) -> Any:
        return arrow.to_pandas(self.to_arrow())

    def to_polars(self) -> Any:
        return arrow.to_polars(self.to_arrow())


def _put(items: queue.Queue, item: Any, closed: threading.Event) -> bool:
    """Puts ``item`` unless the scan closes first; whether it was put."""
    while not closed.is_set():
        try:
            items.put(item, timeout=MERGE_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def _decoded(
    call: Any, closed: threading.Event, received: list[int], index: int
) -> Iterator[tuple[pa.RecordBatch, Any, int]]:
    """The record batches of one fetch's responses with their snapshot marks and partition
    ids, counting their bytes in ``received[index]``. A call cancelled because the scan was
    closed just ends."""
    try:
        for response in call:
            received[index] += len(response.batch_ipc)
            yield from fetched_batches(response)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.CANCELLED and closed.is_set():
            return
        raise from_rpc_error(error) from None
