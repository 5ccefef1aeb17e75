"""Inlet's Python client: produce and consume Arrow, pandas and polars over gRPC.

>>> import inlet, pyarrow as pa
>>> client = inlet.connect("http://127.0.0.1:7070")
>>> orders = client.create_table("shop.orders", pa.schema([("id", pa.int64()), ("item", pa.string())]),
...                              buckets=4, bucket_key="id", if_not_exists=True)
>>> orders.append(pa.table({"id": [1, 2], "item": ["apple", "pear"]}))
>>> orders.scan(columns=["item"]).to_pandas()

The asyncio API is :mod:`inlet.aio` (``await inlet.aio.connect(...)``). See
docs/python-client.md for the whole API.
"""

from ._connection import TLS
from .client import Client, Scan, Table, connect
from .errors import (
    AlreadyExists,
    BufferFull,
    Conflict,
    Corruption,
    DatabaseNotFound,
    Fenced,
    InletError,
    InternalError,
    InvalidInput,
    InvalidKey,
    NotFound,
    OffsetOutOfRange,
    PartitionNotFound,
    PermissionDenied,
    ProducerClosed,
    SchemaMismatch,
    TableNotFound,
    Unauthenticated,
    Unavailable,
    WrongOperation,
)
from .model import (
    BucketOffsets,
    BucketRange,
    Database,
    IcebergCatalog,
    LakeBucketStatus,
    LakeStatus,
    LookupResult,
    Partition,
    TableInfo,
)
from .positions import EARLIEST, LATEST, SNAPSHOT, Position
from .producer import Producer

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists", "BucketOffsets", "BucketRange", "BufferFull", "Client", "Conflict",
    "Corruption", "Database", "DatabaseNotFound", "EARLIEST", "Fenced", "IcebergCatalog",
    "InletError", "InternalError", "InvalidInput", "InvalidKey", "LATEST", "LakeBucketStatus",
    "LakeStatus", "LookupResult", "NotFound", "OffsetOutOfRange", "Partition",
    "PartitionNotFound", "PermissionDenied",
    "Position", "Producer", "ProducerClosed", "SNAPSHOT", "Scan", "SchemaMismatch", "TLS", "Table",
    "TableInfo", "TableNotFound", "Unauthenticated", "Unavailable", "WrongOperation", "connect",
]
