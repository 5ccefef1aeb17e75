"""The asyncio client, on grpc.aio: the same operations as the sync client, as coroutines.

>>> client = inlet.aio.connect("http://127.0.0.1:7070")
>>> table = await client.create_table("shop.clicks", schema, if_not_exists=True)
>>> await table.append(frame)
>>> async for batch in table.scan(start="latest", follow=True): ...
>>> async with table.producer() as producer:
...     await producer.send(frame)     # returns once queued; await the result for offsets

Request building, Arrow conversion, errors and batching decisions are shared with the sync
client; only the waiting differs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, AsyncIterator, Iterable

import grpc
import grpc.aio
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
from .client import (
    APPEND,
    DELETE,
    MERGE_QUEUE_DEPTH,
    PARTIAL_UPSERT,
    UPSERT,
    WRITE_METHODS,
    _column_list,
    _ScanOptions,
    _one_lake_status,
    _sized,
    default_http_url,
    keys_table,
    lookup_keys_ipc,
    lookup_result,
)
from .errors import (
    OUTCOME_UNKNOWN_CODES,
    BufferFull,
    InletError,
    InvalidInput,
    ProducerClosed,
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
    split_name,
    table_path,
)
from .positions import EARLIEST, Position, Start, StreamKey, start_message
from .producer import (
    DEFAULT_BLOCK_TIMEOUT_SECONDS,
    DEFAULT_LINGER_SECONDS,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BUFFERED_BYTES,
    Batcher,
    Part,
    check_settings,
    encode,
    ranges_of_parts,
)


def connect(
    url: str = "http://127.0.0.1:7070",
    token: str | None = None,
    tls: TLS | bool | None = None,
    http_url: str | None = None,
) -> "AsyncClient":
    """Like :func:`inlet.connect`, for asyncio. Call it inside the event loop that uses it."""
    return AsyncClient(parse_endpoint(url, token, tls), http_url)


class AsyncClient:
    def __init__(self, endpoint: Endpoint, http_url: str | None = None):
        self.endpoint = endpoint
        self.http_url = (http_url or default_http_url(endpoint)).rstrip("/")
        if endpoint.credentials is None:
            self._channel = grpc.aio.insecure_channel(endpoint.target, options=endpoint.options)
        else:
            self._channel = grpc.aio.secure_channel(
                endpoint.target, endpoint.credentials, options=endpoint.options
            )
        self._stub = pb_grpc.InletStub(self._channel)
        self._fetch = self._channel.unary_stream(
            FETCH_METHOD,
            request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=parse_fetch_response,
        )

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request: Any, timeout: float | None = CALL_TIMEOUT_SECONDS) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, timeout=timeout, metadata=self.endpoint.metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def create_database(self, name: str, comment: str = "", if_not_exists: bool = False) -> Database:
        response = await self._call(
            "CreateDatabase",
            pb.CreateDatabaseRequest(name=name, comment=comment, if_not_exists=if_not_exists),
        )
        return Database.from_pb(response.database)

    async def list_databases(self) -> list[Database]:
        response = await self._call("ListDatabases", pb.ListDatabasesRequest())
        return [Database.from_pb(d) for d in response.databases]

    async def get_database(self, name: str) -> Database:
        response = await self._call("GetDatabase", pb.GetDatabaseRequest(name=name))
        return Database.from_pb(response.database)

    async def drop_database(
        self, name: str, if_exists: bool = False, cascade: bool = False, purge: bool = False
    ) -> None:
        request = pb.DropDatabaseRequest(
            name=name, if_exists=if_exists, cascade=cascade, purge=purge
        )
        await self._call("DropDatabase", request)

    async def create_table(
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
    ) -> "AsyncTable":
        """See :meth:`inlet.Client.create_table`."""
        database, table = split_name(name)
        request = create_table_request(
            database, table, schema, buckets, bucket_key, options, comment, if_not_exists,
            primary_key, partition_key,
        )
        await self.create_database(database, if_not_exists=True)
        await self._call("CreateTable", request)
        return self.table(name)

    async def list_tables(self, database: str = "default") -> list[TableInfo]:
        response = await self._call("ListTables", pb.ListTablesRequest(database=database))
        return [TableInfo.from_pb(t) for t in response.tables]

    async def describe_table(self, name: str) -> TableInfo:
        database, table = split_name(name)
        response = await self._call("GetTable", pb.GetTableRequest(path=table_path(database, table)))
        return TableInfo.from_pb(response.table, response.buckets)

    async def alter_table(
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
        """See :meth:`inlet.Client.alter_table`."""
        database, table = split_name(name)
        response = await self._call(
            "AlterTable", alter_table_request(
                database, table, options, unset, comment, add_columns, widen_columns, drop_columns, rename_columns
            )
        )
        return TableInfo.from_pb(response.table)

    async def drop_table(self, name: str, if_exists: bool = False, purge: bool = False) -> None:
        """Drops a table (see :meth:`inlet.Client.drop_table`)."""
        database, table = split_name(name)
        request = pb.DropTableRequest(
            path=table_path(database, table), if_exists=if_exists, purge=purge
        )
        await self._call("DropTable", request)

    def table(self, name: str) -> "AsyncTable":
        return AsyncTable(self, *split_name(name))

    async def status(self) -> dict[str, Any]:
        response = await self._call("GetStatus", pb.GetStatusRequest())
        return json_format.MessageToDict(
            response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    async def lake_status(self, database: str = "", table: str = "") -> list[LakeStatus]:
        response = await self._call(
            "GetLakeStatus", pb.GetLakeStatusRequest(database=database, table=table)
        )
        return [LakeStatus.from_pb(t) for t in response.tables]


class AsyncTable:
    """See :class:`inlet.Table`; the same methods, as coroutines (``scan`` returns an
    :class:`AsyncScan` to ``async for`` over or to ``await .to_arrow()``)."""

    def __init__(self, client: AsyncClient, database: str, name: str):
        self.client = client
        self.database = database
        self.name = name
        self._info: TableInfo | None = None
        self._sender = AsyncSender(client, database, name)

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.name}"

    async def schema(self) -> pa.Schema:
        return (await self._described()).schema

    async def primary_key(self) -> list[str]:
        return (await self._described()).primary_key

    async def _described(self) -> TableInfo:
        if self._info is None:
            self._info = await self.describe()
        return self._info

    async def describe(self) -> TableInfo:
        return await self.client.describe_table(self.full_name)

    async def alter(
        self,
        options: dict[str, Any] | None = None,
        unset: list[str] | str | None = None,
        comment: str | None = None,
        add_columns: "pa.Schema | list[pa.Field] | None" = None,
        widen_columns: "pa.Schema | list[pa.Field] | None" = None,
        drop_columns: list[str] | str | None = None,
        rename_columns: dict[str, str] | None = None,
    ) -> TableInfo:
        self._info = await self.client.alter_table(
            self.full_name, options, unset, comment, add_columns, widen_columns, drop_columns, rename_columns
        )
        return self._info

    async def drop(self, if_exists: bool = False, purge: bool = False) -> None:
        """Drops the table (see :meth:`Client.drop_table`)."""
        await self.client.drop_table(self.full_name, if_exists=if_exists, purge=purge)

    async def partitions(self) -> list[Partition]:
        """See :meth:`inlet.Table.partitions`."""
        return (await self.describe()).partitions

    async def create_partitions(self, partitions: Iterable[Any]) -> list[Partition]:
        """See :meth:`inlet.Table.create_partitions`."""
        request = create_partitions_request(self.database, self.name, partitions)
        created = (await self.client._call("CreatePartitions", request)).partitions
        return _sized(created, await self.describe())

    async def conform(self, data: Any) -> pa.Table:
        """See :meth:`inlet.Table.conform`."""
        data = arrow.to_arrow_table(data)
        try:
            return arrow.conform(data, await self.schema(), self.full_name)
        except SchemaMismatch:
            self._info = None
            return arrow.conform(data, await self.schema(), self.full_name)

    async def conform_keys(self, data: Any, lookup: bool = False) -> pa.Table:
        info = await self._described()
        return keys_table(arrow.to_arrow_table(data), info.schema, info.primary_key, self.full_name, lookup)

    async def append(self, data: Any) -> list[BucketRange]:
        return await self._write(APPEND, await self.conform(data))

    async def upsert(self, data: Any, partial: bool = False) -> list[BucketRange]:
        """See :meth:`inlet.Table.upsert`."""
        return await self._write(PARTIAL_UPSERT if partial else UPSERT, await self.conform(data))

    async def delete(self, keys: Any) -> list[BucketRange]:
        """See :meth:`inlet.Table.delete`."""
        return await self._write(DELETE, await self.conform_keys(keys))

    async def _write(self, op: str, rows: pa.Table) -> list[BucketRange]:
        ranges: list[BucketRange] = []
        for piece in arrow.split_for_appends(rows):
            ranges.extend(await self._sender.send(arrow.table_to_ipc(piece), op))
        return ranges

    async def lookup(self, keys: Any, columns: list[str] | None = None) -> LookupResult:
        """See :meth:`inlet.Table.lookup`: ``rows, found = await table.lookup(keys)``."""
        request = pb.LookupRequest(
            path=table_path(self.database, self.name),
            keys_ipc=lookup_keys_ipc(await self.conform_keys(keys, lookup=True), self.full_name),
            columns=_column_list(columns),
        )
        return lookup_result(await self.client._call("Lookup", request))

    def producer(self, **settings: Any) -> "AsyncProducer":
        return AsyncProducer(self, **settings)

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
    ) -> "AsyncScan":
        """See :meth:`inlet.Table.scan`."""
        return AsyncScan(
            self, columns, start, buckets, follow, limit, omit_update_before, reset_to_earliest,
            partitions,
        )

    async def offsets(
        self,
        at: str | datetime = "latest",
        buckets: Iterable[int] | None = None,
        partitions: "Iterable[str | Partition] | str | None" = None,
    ) -> dict[StreamKey, int]:
        """See :meth:`inlet.Table.offsets`."""
        request = offsets_request(self.database, self.name, start_message(at), buckets, partitions)
        return offsets_of(await self.client._call("ListOffsets", request))

    async def lake_status(self) -> LakeStatus:
        return _one_lake_status(await self.client.lake_status(self.database, self.name), self.full_name)

    def iceberg_catalog(self) -> IcebergCatalog:
        return IcebergCatalog.of_server(self.client.http_url, self.client.endpoint, self.database, self.name)


class AsyncSender:
    """See :class:`inlet.client.Sender`: one idempotent producer, one append at a time."""

    def __init__(self, client: AsyncClient, database: str, table: str):
        self._client = client
        self._path = table_path(database, table)
        self._lock = asyncio.Lock()
        self.producer_id = new_producer_id()
        self._next_sequence = 1

    async def send(self, batches_ipc: bytes, op: str = APPEND) -> list[BucketRange]:
        method, partial = WRITE_METHODS[op]
        async with self._lock:
            request = pb.AppendRequest(
                path=self._path,
                batches_ipc=batches_ipc,
                partial=partial,
                producer_id=self.producer_id,
                sequence=self._next_sequence,
            )
            self._next_sequence += 1
            backoff = Backoff(time.monotonic())
            while True:
                try:
                    response = await getattr(self._client._stub, method)(
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
                    await asyncio.sleep(delay)


class AsyncScan(_ScanOptions):
    """See :class:`inlet.Scan`: ``async for batch in scan``, or ``await scan.to_arrow()``."""

    def __init__(
        self,
        table: AsyncTable,
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
        self._start = start

    async def _requests(self) -> list[pb.FetchRequest]:
        start = self._start
        described = None
        if self._needs_description(start):
            described = await self.table.describe()
        return self._plan(start, described)

    def __aiter__(self) -> AsyncIterator[pa.RecordBatch]:
        if self._started:
            raise InvalidInput("a scan is read once; call table.scan(...) again to read again")
        self._started = True
        return self._batches()

    async def _batches(self) -> AsyncIterator[pa.RecordBatch]:
        remaining = self.limit
        try:
            if remaining == 0:
                return
            async for batch, mark, partition in self._responses():
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

    async def _responses(self) -> AsyncIterator[tuple[pa.RecordBatch, Any, int]]:
        metadata = self.table.client.endpoint.metadata
        fetch = self.table.client._fetch
        self._calls = [fetch(request, metadata=metadata) for request in await self._requests()]
        self._received = [0] * len(self._calls)
        if len(self._calls) == 1:
            async for fetched in _decoded(self._calls[0], self._received, 0):
                yield fetched
            return
        items: asyncio.Queue = asyncio.Queue(MERGE_QUEUE_DEPTH)
        done = object()

        async def pump(index: int, call: Any) -> None:
            try:
                async for fetched in _decoded(call, self._received, index):
                    await items.put(fetched)
                await items.put(done)
            except Exception as error:  # handed to the reading task; cancellation is not
                await items.put(error)

        tasks = [asyncio.ensure_future(pump(i, call)) for i, call in enumerate(self._calls)]
        try:
            finished = 0
            while finished < len(tasks):
                item = await items.get()
                if item is done:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()

    def close(self) -> None:
        for call in self._calls:
            call.cancel()

    async def to_arrow(self) -> pa.Table:
        if self.follow:
            raise InvalidInput("a following scan never ends; iterate it instead of collecting it")
        batches = [batch async for batch in self]
        if not batches:
            return arrow.fetched_schema(
                await self.table.schema(), self.columns, bool(await self.table.primary_key())
            ).empty_table()
        return pa.Table.from_batches(batches)

    async def to_pandas(self) -> Any:
        return arrow.to_pandas(await self.to_arrow())

    async def to_polars(self) -> Any:
        return arrow.to_polars(await self.to_arrow())


async def _decoded(
    call: Any, received: list[int], index: int
) -> AsyncIterator[tuple[pa.RecordBatch, Any, int]]:
    try:
        async for response in call:
            received[index] += len(response.batch_ipc)
            for fetched in fetched_batches(response):
                yield fetched
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.CANCELLED and call.cancelled():
            return
        raise from_rpc_error(error) from None


class AsyncProducer:
    """See :class:`inlet.Producer`. ``await send(data)`` waits only for buffer space and
    returns an awaitable of the rows' BucketRanges; ``await flush()`` waits for every send."""

    def __init__(
        self,
        table: AsyncTable,
        linger: float = DEFAULT_LINGER_SECONDS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT_SECONDS,
    ):
        check_settings(linger, max_batch_bytes, max_buffered_bytes, block_timeout)
        self.table = table
        self.max_buffered_bytes = max_buffered_bytes
        self.block_timeout = block_timeout
        self._sender = AsyncSender(table.client, table.database, table.name)
        self._batcher = Batcher(linger, max_batch_bytes)
        self._cond = asyncio.Condition()
        self._buffered_bytes = 0
        self._parts_queued = 0
        self._parts_answered = 0
        self._flushing = 0
        self._errors: list[InletError] = []
        self._closed = False
        self._task = asyncio.ensure_future(self._run())

    @property
    def producer_id(self) -> int:
        return self._sender.producer_id

    async def __aenter__(self) -> "AsyncProducer":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def send(self, data: Any) -> "asyncio.Future[list[BucketRange]]":
        """Queues appends; see :meth:`inlet.Producer.send`."""
        return await self._queue(APPEND, await self.table.conform(data))

    async def upsert(self, data: Any, partial: bool = False) -> "asyncio.Future[list[BucketRange]]":
        """Queues upserts into a primary-key table; see :meth:`inlet.Producer.upsert`."""
        return await self._queue(PARTIAL_UPSERT if partial else UPSERT, await self.table.conform(data))

    async def delete(self, keys: Any) -> "asyncio.Future[list[BucketRange]]":
        """Queues deletes from a primary-key table; see :meth:`inlet.Producer.delete`."""
        return await self._queue(DELETE, await self.table.conform_keys(keys))

    async def _queue(self, op: str, rows: pa.Table) -> "asyncio.Future[list[BucketRange]]":
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        pieces = [p for p in arrow.split_for_appends(rows) if p.num_rows]
        if not pieces:
            future.set_result([])
            return future
        left = [len(pieces)]
        collected: list[BucketRange] = []
        failure: list[BaseException] = []

        def part_done(ranges: list[BucketRange] | None, error: BaseException | None) -> None:
            if error is not None:
                failure.append(error)
            if ranges:
                collected.extend(ranges)
            left[0] -= 1
            if left[0] == 0 and not future.done():
                if failure:
                    future.set_exception(failure[0])
                else:
                    future.set_result(collected)

        async with self._cond:
            for piece in pieces:
                await self._admit(piece, part_done, op)
            self._cond.notify_all()
        return future

    async def _admit(self, rows: pa.Table, done: Any, op: str) -> None:
        nbytes = max(1, rows.nbytes)
        deadline = time.monotonic() + self.block_timeout
        while not self._closed and self._buffered_bytes and self._buffered_bytes + nbytes > self.max_buffered_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BufferFull(
                    f"producer buffer of {self.max_buffered_bytes} bytes stayed full for "
                    f"{self.block_timeout}s ({self._buffered_bytes} bytes unacknowledged)"
                )
            try:
                await asyncio.wait_for(self._cond.wait(), left)
            except asyncio.TimeoutError:
                pass
        if self._closed:
            raise ProducerClosed(f"producer of `{self.table.full_name}` is closed")
        self._buffered_bytes += nbytes
        self._parts_queued += 1
        self._batcher.add(Part(rows, nbytes, time.monotonic(), done, op))

    async def flush(self) -> None:
        async with self._cond:
            target = self._parts_queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                await self._cond.wait_for(lambda: self._parts_answered >= target)
            finally:
                self._flushing -= 1
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            async with self._cond:
                self._closed = True
                self._cond.notify_all()
            await self._task

    async def _run(self) -> None:
        while True:
            async with self._cond:
                while True:
                    wait = self._batcher.wait_time(time.monotonic(), self._flushing > 0 or self._closed)
                    if wait == 0.0:
                        break
                    if wait is None and self._closed:
                        return
                    try:
                        await asyncio.wait_for(self._cond.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                batch = self._batcher.take()
            await self._send(batch)

    async def _send(self, batch: list[Part]) -> None:
        error: InletError | None = None
        try:
            shares = ranges_of_parts(batch, await self._sender.send(encode(batch), batch[0].op))
        except InletError as failure:
            error, shares = failure, [None] * len(batch)
        except Exception as failure:
            error = InletError(f"{batch[0].op} to `{self.table.full_name}` failed: {failure!r}")
            shares = [None] * len(batch)
        for part, share in zip(batch, shares):
            part.done(share, error)
        async with self._cond:
            self._buffered_bytes -= sum(part.nbytes for part in batch)
            self._parts_answered += len(batch)
            if error is not None:
                self._errors.append(error)
            self._cond.notify_all()
