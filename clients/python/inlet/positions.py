"""Where a read starts, and where a consumer is: the start positions a scan accepts
(``"earliest"``, ``"latest"``, ``"snapshot"`` for primary-key tables, an offset, a
``datetime``) and :class:`Position`, the next offset of each bucket, which a consumer saves
and resumes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple, Union

import pyarrow as pa

from ._proto import inlet_pb2 as pb
from .errors import InvalidInput

EARLIEST = "earliest"
LATEST = "latest"
#: Primary-key tables: each bucket's current rows as of one offset, then (following) the
#: changelog from there.
SNAPSHOT = "snapshot"


class SnapshotMark(NamedTuple):
    """A fetched batch of a bucket's snapshot: the offset the snapshot is as of, and whether
    the batch is its last."""

    bucket: int
    at: int
    last: bool


@dataclass
class Position:
    """The next offset to read in each bucket: what a consumer saves to resume where it left
    off. Buckets it does not name start from the scan's ``start``.

    >>> pos = Position({0: 120, 3: 7})
    >>> Position.from_json(pos.to_json()) == pos
    True
    """

    offsets: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"offsets": {str(b): o for b, o in sorted(self.offsets.items())}})

    @classmethod
    def from_json(cls, text: str) -> "Position":
        try:
            raw = json.loads(text)["offsets"]
            offsets = {int(bucket): int(offset) for bucket, offset in raw.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidInput(f"not a saved position: {error!r} in {text[:200]!r}") from None
        if any(b < 0 or o < 0 for b, o in offsets.items()):
            raise InvalidInput(f"a saved position has a negative bucket or offset: {offsets}")
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

    def advance(self, batch: pa.RecordBatch, snapshot: SnapshotMark | None = None) -> None:
        """Moves past the rows of a fetched batch (one bucket's consecutive offsets). A
        changelog batch that ends with an update's ``-U`` moves only up to that offset, so a
        resume reads the update again rather than miss its ``+U``. Rows of a snapshot (in
        key order) do not move it until the snapshot's last batch, which moves it to the
        offset the snapshot is as of: a consumer stopped within a snapshot reads it again."""
        if snapshot is not None:
            if snapshot.last:
                self.offsets[snapshot.bucket] = snapshot.at
            return
        if batch.num_rows == 0:
            return
        bucket = batch.column("_bucket")[0].as_py()
        last = batch.column("_offset")[batch.num_rows - 1].as_py()
        kinds = batch.schema.get_field_index("_change_type")
        if kinds >= 0 and batch.column(kinds)[batch.num_rows - 1].as_py() == "-U":
            self.offsets[bucket] = last
        else:
            self.offsets[bucket] = last + 1


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
