"""A zero-copy reader of `FetchResponse` messages. The generated parser copies each response's
Arrow IPC bytes (often megabytes) into a new bytes object; this one returns a memoryview into
the message gRPC received, which pyarrow then reads in place. Fields are decoded by the
protobuf wire format: 1 `bucket` (varint), 2 `batch_ipc` (bytes), 3 `high_watermark`
(varint), 4 `snapshot` (varint: 0 none, 1 rows of a snapshot, 2 its last batch), 5
`partition_id` (varint: the partition of the batch's rows, 0 for a table without a partition
key); unknown fields are skipped, so a newer server's additions do not break it.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple

import pyarrow as pa

from .arrow import batches_from_ipc
from .errors import Corruption
from .positions import SnapshotMark

FETCH_METHOD = "/inlet.v1.Inlet/Fetch"


SNAPSHOT_ROWS = 1
SNAPSHOT_LAST = 2


class FetchResponse(NamedTuple):
    bucket: int
    batch_ipc: memoryview
    high_watermark: int
    snapshot: int = 0
    partition_id: int = 0


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise Corruption("malformed fetch response: truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def parse_fetch_response(message: bytes) -> FetchResponse:
    data = memoryview(message)
    bucket, ipc, watermark, snapshot, partition, pos = 0, data[:0], 0, 0, 0, 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            if field == 1:
                bucket = value
            elif field == 3:
                watermark = value
            elif field == 4:
                snapshot = value
            elif field == 5:
                partition = value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise Corruption(f"malformed fetch response: field {field} runs past the message end")
            if field == 2:
                ipc = data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise Corruption(f"malformed fetch response: wire type {wire} of field {field}")
    if pos != len(data):
        raise Corruption("malformed fetch response: a fixed-width field runs past the message end")
    return FetchResponse(bucket, ipc, watermark, snapshot, partition)


def fetched_batches(response: FetchResponse) -> Iterator[tuple[pa.RecordBatch, Any, int]]:
    """The record batches of one fetch response, each with its snapshot mark (``None``
    outside a snapshot; the last batch of a snapshot's last response is marked last) and
    the partition id of its rows (which the rows themselves do not carry)."""
    batches = list(batches_from_ipc(response.batch_ipc))
    for i, batch in enumerate(batches):
        mark = None
        if response.snapshot:
            last = response.snapshot == SNAPSHOT_LAST and i == len(batches) - 1
            mark = SnapshotMark(response.bucket, response.high_watermark, last, response.partition_id)
        yield batch, mark, response.partition_id
