"""Where a read starts, and where a consumer is: the start positions a scan accepts
(``"earliest"``, ``"latest"``, ``"snapshot"`` for primary-key tables, an offset, a
``datetime``) and :class:`Position`, the next offset of each stream (a bucket, or a partition's
bucket in a partitioned table), which a consumer saves and resumes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple, Tuple, Union

import pyarrow as pa

from ._proto import inlet_pb2 as pb
from .errors import InvalidInput

EARLIEST = "earliest"
LATEST = "latest"
#: Primary-key tables: each bucket's current rows as of one offset, then (following) the
#: changelog from there.
SNAPSHOT = "snapshot"


#: A stream of a table, as :class:`Position` and :meth:`inlet.Table.offsets` key it: the
#: bucket number in a table without a partition key, ``(partition_id, bucket)`` in a
#: partitioned one.
StreamKey = Union[int, Tuple[int, int]]


def stream_key(partition_id: int, bucket: int) -> StreamKey:
    """The key of a stream: ``bucket`` for partition 0 (the only partition of a table without
    a partition key), else ``(partition_id, bucket)``."""
    return bucket if partition_id == 0 else (partition_id, bucket)


class SnapshotMark(NamedTuple):
    """A fetched batch of a bucket's snapshot: the offset the snapshot is as of, and whether
    the batch is its last."""

    bucket: int
    at: int
    last: bool
    partition_id: int = 0


@dataclass
class Position:
    """The next offset to read in each stream: what a consumer saves to resume where it left
    off. Streams it does not name start from the earliest offset.

    A table without a partition key has one stream per bucket, keyed by the bucket number;
    a partitioned table one per partition and bucket, keyed ``(partition_id, bucket)`` (in
    JSON ``"partition_id/bucket"``). A position holds keys of one kind.

    >>> pos = Position({0: 120, 3: 7})
    >>> Position.from_json(pos.to_json()) == pos
    True
    >>> Position({(1, 0): 5, (2, 3): 9}).to_json()
    '{"offsets": {"1/0": 5, "2/3": 9}}'
    """

    offsets: dict[StreamKey, int] = field(default_factory=dict)

    @property
    def partitioned(self) -> bool:
        """Whether the position names partitions' streams (``(partition_id, bucket)`` keys)."""
        return any(isinstance(key, tuple) for key in self.offsets)

    def partition_offsets(self, partition_id: int) -> dict[int, int]:
        """The next offset of each bucket of one partition (partition 0: of an unpartitioned
        table)."""
        if partition_id == 0:
            return {k: o for k, o in self.offsets.items() if not isinstance(k, tuple)}
        return {k[1]: o for k, o in self.offsets.items() if isinstance(k, tuple) and k[0] == partition_id}

    def to_json(self) -> str:
        def text(key: StreamKey) -> str:
            return f"{key[0]}/{key[1]}" if isinstance(key, tuple) else str(key)

        ordered = sorted(self.offsets.items(), key=lambda item: _sort_key(item[0]))
        return json.dumps({"offsets": {text(key): o for key, o in ordered}})

    @classmethod
    def from_json(cls, text: str) -> "Position":
        try:
            raw = json.loads(text)["offsets"]
            offsets = {_parse_key(key): int(offset) for key, offset in raw.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidInput(f"not a saved position: {error!r} in {text[:200]!r}") from None
        numbers = [n for key in offsets for n in (key if isinstance(key, tuple) else (key,))]
        if any(n < 0 for n in numbers) or any(o < 0 for o in offsets.values()):
            raise InvalidInput(f"a saved position has a negative bucket or offset: {offsets}")
        if any(isinstance(key, tuple) and key[0] == 0 for key in offsets):
            raise InvalidInput(
                f"a saved position names partition 0 (partition ids start at 1): {offsets}"
            )
        kinds = {isinstance(key, tuple) for key in offsets}
        if len(kinds) > 1:
            raise InvalidInput(
                "a saved position mixes buckets of an unpartitioned table with partitions' "
                f"buckets (\"partition/bucket\"): {offsets}"
            )
        return cls(offsets)

    def save(self, path: str) -> None:
        """Writes the position to ``path`` atomically (a temporary file renamed over it)."""
        import os

        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> "Position":
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())

    def advance(
        self, batch: pa.RecordBatch, snapshot: SnapshotMark | None = None, partition_id: int = 0
    ) -> None:
        """Moves past the rows of a fetched batch (one stream's consecutive offsets: a bucket
        of partition ``partition_id``, the fetch response's, which the rows do not carry). A
        changelog batch that ends with an update's ``-U`` moves only up to that offset, so a
        resume reads the update again rather than miss its ``+U``. Rows of a snapshot (in
        key order) do not move it until the snapshot's last batch, which moves it to the
        offset the snapshot is as of: a consumer stopped within a snapshot reads it again."""
        if snapshot is not None:
            if snapshot.last:
                self.offsets[stream_key(snapshot.partition_id, snapshot.bucket)] = snapshot.at
            return
        if batch.num_rows == 0:
            return
        key = stream_key(partition_id, batch.column("_bucket")[0].as_py())
        last = batch.column("_offset")[batch.num_rows - 1].as_py()
        kinds = batch.schema.get_field_index("_change_type")
        if kinds >= 0 and batch.column(kinds)[batch.num_rows - 1].as_py() == "-U":
            self.offsets[key] = last
        else:
            self.offsets[key] = last + 1


def _parse_key(text: str) -> StreamKey:
    partition, slash, bucket = text.partition("/")
    return (int(partition), int(bucket)) if slash else int(text)


def _sort_key(key: StreamKey) -> tuple[int, int]:
    return key if isinstance(key, tuple) else (0, key)


Start = Union[str, int, datetime, Position]


def start_message(start: Start) -> pb.StartPosition:
    """The wire form of a single start position (a :class:`Position` is resolved per bucket
    by the scan, not here)."""
    if start == EARLIEST:
        return pb.StartPosition(earliest=True)
    if start == LATEST:
        return pb.StartPosition(latest=True)
    if start == SNAPSHOT:
        return pb.StartPosition(snapshot=True)
    if isinstance(start, bool):
        raise InvalidInput(
            f"start must be 'earliest', 'latest', 'snapshot', an offset or a datetime, not {start!r}"
        )
    if isinstance(start, int):
        if start < 0:
            raise InvalidInput(f"start offset must not be negative, got {start}")
        return pb.StartPosition(offset=start)
    if isinstance(start, datetime):
        return pb.StartPosition(timestamp_micros=datetime_micros(start))
    raise InvalidInput(
        f"start must be 'earliest', 'latest', 'snapshot', an offset, a datetime or a Position, "
        f"not {start!r}"
    )


def datetime_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def micros_datetime(micros: int) -> datetime | None:
    """The UTC datetime of a microsecond timestamp; ``None`` for 0 (the server's "none")."""
    if micros == 0:
        return None
    return datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc)
