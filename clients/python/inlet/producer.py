"""The background-batching producer: :meth:`Producer.send` (or, for a primary-key table,
:meth:`Producer.upsert` and :meth:`Producer.delete`) queues rows and returns at once with a
future; a thread merges consecutive queued rows of one operation and schema into writes of
up to ``max_batch_bytes`` (waiting at most ``linger`` for more) and sends them one at a time
through an idempotent :class:`~inlet.client.Sender`, so a resend after a lost reply lands
exactly once and rows keep their order (an upsert and a later delete of a key stay in that
order). Memory is bounded: once ``max_buffered_bytes`` wait
unacknowledged, ``send`` blocks (up to ``block_timeout``, then raises :class:`BufferFull`).

The batching decisions (:class:`Batcher`) are shared with the asyncio producer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from . import arrow
from .client import APPEND, DELETE, PARTIAL_UPSERT, UPSERT, Sender, Table
from .errors import BufferFull, InletError, InvalidInput, ProducerClosed
from .model import BucketRange

# Defaults of the producer's settings; each is a keyword of Producer / AsyncProducer.
DEFAULT_LINGER_SECONDS = 0.005
DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024
DEFAULT_BLOCK_TIMEOUT_SECONDS = 30.0


@dataclass
class Part:
    """Rows of one send (or one slice of a large send) waiting in the buffer."""

    rows: pa.Table
    nbytes: int
    enqueued_at: float
    done: Any  # called with (ranges, error) once its write is answered
    op: str = APPEND  # the write: append, upsert, partial upsert or delete


@dataclass
class Batcher:
    """What to send next: consecutive parts of one operation and schema, at most
    ``max_batch_bytes`` (and one append's rows), once ``linger`` has passed since the oldest
    was queued or the batch is full or a flush is asked for."""

    linger: float
    max_batch_bytes: int
    parts: deque = field(default_factory=deque)
    queued_bytes: int = 0

    def add(self, part: Part) -> None:
        self.parts.append(part)
        self.queued_bytes += part.nbytes

    def wait_time(self, now: float, flushing: bool) -> float | None:
        """Seconds until a batch is due: 0 when one is, None when nothing is queued."""
        if not self.parts:
            return None
        if flushing or self.queued_bytes >= self.max_batch_bytes:
            return 0.0
        return max(0.0, self.parts[0].enqueued_at + self.linger - now)

    def take(self) -> list[Part]:
        first = self.parts.popleft()
        batch, nbytes, rows = [first], first.nbytes, first.rows.num_rows
        while self.parts:
            part = self.parts[0]
            if (
                part.op != first.op
                or not part.rows.schema.equals(first.rows.schema)
                or nbytes + part.nbytes > self.max_batch_bytes
                or rows + part.rows.num_rows > arrow.MAX_APPEND_ROWS
            ):
                break
            self.parts.popleft()
            batch.append(part)
            nbytes += part.nbytes
            rows += part.rows.num_rows
        self.queued_bytes -= nbytes
        return batch


def encode(batch: list[Part]) -> bytes:
    return arrow.table_to_ipc(pa.concat_tables([part.rows for part in batch]))


def ranges_of_parts(batch: list[Part], ranges: list[BucketRange]) -> list[list[BucketRange]]:
    """Each part's share of an append's result. An append that went to one bucket (a table
    without a bucket key, and in a partitioned table rows of one partition) puts the parts'
    rows one after another, so each part gets its own offsets; an append spread over
    buckets by a key (or over partitions) gives every part the whole result."""
    if len(ranges) != 1:
        return [list(ranges) for _ in batch]
    (whole,) = ranges
    shares, base = [], whole.base_offset
    for part in batch:
        rows = part.rows.num_rows
        shares.append([BucketRange(whole.bucket, base, rows, whole.committed_at, whole.partition_id)])
        base += rows
    return shares


def check_settings(linger: float, max_batch_bytes: int, max_buffered_bytes: int, block_timeout: float) -> None:
    if linger < 0:
        raise InvalidInput(f"linger must not be negative, got {linger}")
    if not 0 < max_batch_bytes <= arrow.MAX_APPEND_BYTES:
        raise InvalidInput(
            f"max_batch_bytes must be 1..={arrow.MAX_APPEND_BYTES} (one append), got {max_batch_bytes}"
        )
    if max_buffered_bytes < max_batch_bytes:
        raise InvalidInput(
            f"max_buffered_bytes ({max_buffered_bytes}) must be at least max_batch_bytes ({max_batch_bytes})"
        )
    if block_timeout < 0:
        raise InvalidInput(f"block_timeout must not be negative, got {block_timeout}")


class Joined:
    """The result of a send cut into several parts: ready when every part is answered."""

    def __init__(self, parts: int, finish: Any):
        self._left = parts
        self._ranges: list[BucketRange] = []
        self._error: BaseException | None = None
        self._finish = finish
        self._lock = threading.Lock()

    def part_done(self, ranges: list[BucketRange] | None, error: BaseException | None) -> None:
        with self._lock:
            if error is not None and self._error is None:
                self._error = error
            if ranges:
                self._ranges.extend(ranges)
            self._left -= 1
            if self._left:
                return
        self._finish(self._ranges, self._error)


class Producer:
    """Batches writes to one table in a background thread: appends to a log table
    (:meth:`send`), upserts and deletes to a primary-key table (:meth:`upsert`,
    :meth:`delete`), idempotent as :meth:`Table.append` is. Use as a context manager, or
    call :meth:`close` (which flushes).

    >>> with table.producer(linger=0.01) as producer:
    ...     for frame in frames:
    ...         producer.send(frame)          # returns a Future of the rows' BucketRanges
    ...     producer.flush()                  # every send so far is durable, or this raises
    """

    def __init__(
        self,
        table: Table,
        linger: float = DEFAULT_LINGER_SECONDS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT_SECONDS,
    ):
        check_settings(linger, max_batch_bytes, max_buffered_bytes, block_timeout)
        self.table = table
        table.schema  # noqa: B018 - fetched now, so a missing table fails here, not in send
        self.max_buffered_bytes = max_buffered_bytes
        self.block_timeout = block_timeout
        self._sender = Sender(table.client, table.database, table.name)
        self._batcher = Batcher(linger, max_batch_bytes)
        self._cond = threading.Condition()
        self._buffered_bytes = 0  # queued plus in flight
        self._parts_queued = 0  # parts of sends accepted
        self._parts_answered = 0  # parts whose append was answered (landed or failed)
        self._flushing = 0
        self._errors: list[InletError] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"inlet-producer-{table.full_name}", daemon=True)
        self._thread.start()

    @property
    def producer_id(self) -> int:
        return self._sender.producer_id

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, data: Any) -> "Future[list[BucketRange]]":
        """Queues rows (anything :meth:`Table.append` takes) and returns a future of where
        they went. Blocks while the buffer is full. Conversion errors raise here; server
        errors come through the future (and :meth:`flush`)."""
        return self._queue(APPEND, self.table.conform(data))

    def upsert(self, data: Any, partial: bool = False) -> "Future[list[BucketRange]]":
        """Queues upserts into a primary-key table (see :meth:`Table.upsert`, also for
        ``partial``); as :meth:`send`. Partial upserts are batched only with partial upserts
        of the same columns."""
        return self._queue(PARTIAL_UPSERT if partial else UPSERT, self.table.conform(data))

    def delete(self, keys: Any) -> "Future[list[BucketRange]]":
        """Queues deletes of keys from a primary-key table (see :meth:`Table.delete`); as
        :meth:`send`."""
        return self._queue(DELETE, self.table.conform_keys(keys))

    def _queue(self, op: str, rows: pa.Table) -> "Future[list[BucketRange]]":
        future: Future = Future()
        pieces = [p for p in arrow.split_for_appends(rows) if p.num_rows]
        if not pieces:
            future.set_result([])
            return future

        def finish(ranges: list[BucketRange], error: BaseException | None) -> None:
            if error is None:
                future.set_result(ranges)
            else:
                future.set_exception(error)

        joined = Joined(len(pieces), finish)
        with self._cond:
            for piece in pieces:
                self._admit(piece, joined.part_done, op)
            self._cond.notify_all()
        return future

    def _admit(self, rows: pa.Table, done: Any, op: str) -> None:
        """Queues one part, waiting for buffer space (called with the lock held)."""
        nbytes = max(1, rows.nbytes)
        deadline = time.monotonic() + self.block_timeout
        while not self._closed and self._buffered_bytes and self._buffered_bytes + nbytes > self.max_buffered_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BufferFull(
                    f"producer buffer of {self.max_buffered_bytes} bytes stayed full for "
                    f"{self.block_timeout}s ({self._buffered_bytes} bytes unacknowledged)"
                )
            self._cond.wait(left)
        if self._closed:
            raise ProducerClosed(f"producer of `{self.table.full_name}` is closed")
        self._buffered_bytes += nbytes
        self._parts_queued += 1
        self._batcher.add(Part(rows, nbytes, time.monotonic(), done, op))

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every send made before this call is answered; raises the first error
        any send met since the last flush (each failed future has its own)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._parts_queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._parts_answered < target:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(
                            f"flush: {target - self._parts_answered} appends still unanswered after {timeout}s"
                        )
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    def close(self, timeout: float | None = None) -> None:
        """Flushes, then stops the background thread. Later sends raise ProducerClosed."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    wait = self._batcher.wait_time(time.monotonic(), self._flushing > 0 or self._closed)
                    if wait == 0.0:
                        break
                    if wait is None and self._closed:
                        return
                    self._cond.wait(wait)
                batch = self._batcher.take()
            self._send(batch)

    def _send(self, batch: list[Part]) -> None:
        error: InletError | None = None
        try:
            ranges = self._sender.send(encode(batch), batch[0].op)
            shares = ranges_of_parts(batch, ranges)
        except InletError as failure:
            error, shares = failure, [None] * len(batch)
        except Exception as failure:  # a bug or an arrow error: fail the sends, keep running
            error = InletError(f"{batch[0].op} to `{self.table.full_name}` failed: {failure!r}")
            shares = [None] * len(batch)
        for part, share in zip(batch, shares):
            part.done(share, error)
        with self._cond:
            self._buffered_bytes -= sum(part.nbytes for part in batch)
            self._parts_answered += len(batch)
            if error is not None:
                self._errors.append(error)
            self._cond.notify_all()

