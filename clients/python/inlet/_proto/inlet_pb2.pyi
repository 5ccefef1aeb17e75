from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SnapshotPart(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SNAPSHOT_PART_NONE: _ClassVar[SnapshotPart]
    SNAPSHOT_PART_ROWS: _ClassVar[SnapshotPart]
    SNAPSHOT_PART_LAST: _ClassVar[SnapshotPart]
SNAPSHOT_PART_NONE: SnapshotPart
SNAPSHOT_PART_ROWS: SnapshotPart
SNAPSHOT_PART_LAST: SnapshotPart

class AccessGrant(_message.Message):
    __slots__ = ("grantee", "permission", "resource")
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    grantee: str
    permission: str
    resource: str
    def __init__(self, grantee: _Optional[str] = ..., permission: _Optional[str] = ..., resource: _Optional[str] = ...) -> None: ...

class GrantRequest(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: AccessGrant
    def __init__(self, grant: _Optional[_Union[AccessGrant, _Mapping]] = ...) -> None: ...

class GrantResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    def __init__(self, changed: _Optional[bool] = ...) -> None: ...

class ListGrantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGrantsResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[AccessGrant]
    def __init__(self, grants: _Optional[_Iterable[_Union[AccessGrant, _Mapping]]] = ...) -> None: ...

class TablePath(_message.Message):
    __slots__ = ("database", "table")
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    database: str
    table: str
    def __init__(self, database: _Optional[str] = ..., table: _Optional[str] = ...) -> None: ...

class DatabaseInfo(_message.Message):
    __slots__ = ("name", "id", "comment", "created_at_micros")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: int
    comment: str
    created_at_micros: int
    def __init__(self, name: _Optional[str] = ..., id: _Optional[int] = ..., comment: _Optional[str] = ..., created_at_micros: _Optional[int] = ...) -> None: ...

class CreateDatabaseRequest(_message.Message):
    __slots__ = ("name", "comment", "if_not_exists")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    IF_NOT_EXISTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    comment: str
    if_not_exists: bool
    def __init__(self, name: _Optional[str] = ..., comment: _Optional[str] = ..., if_not_exists: _Optional[bool] = ...) -> None: ...

class CreateDatabaseResponse(_message.Message):
    __slots__ = ("database",)
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    database: DatabaseInfo
    def __init__(self, database: _Optional[_Union[DatabaseInfo, _Mapping]] = ...) -> None: ...

class ListDatabasesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDatabasesResponse(_message.Message):
    __slots__ = ("databases",)
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    databases: _containers.RepeatedCompositeFieldContainer[DatabaseInfo]
    def __init__(self, databases: _Optional[_Iterable[_Union[DatabaseInfo, _Mapping]]] = ...) -> None: ...

class GetDatabaseRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetDatabaseResponse(_message.Message):
    __slots__ = ("database",)
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    database: DatabaseInfo
    def __init__(self, database: _Optional[_Union[DatabaseInfo, _Mapping]] = ...) -> None: ...

class DropDatabaseRequest(_message.Message):
    __slots__ = ("name", "if_exists", "cascade", "purge")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    CASCADE_FIELD_NUMBER: _ClassVar[int]
    PURGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    if_exists: bool
    cascade: bool
    purge: bool
    def __init__(self, name: _Optional[str] = ..., if_exists: _Optional[bool] = ..., cascade: _Optional[bool] = ..., purge: _Optional[bool] = ...) -> None: ...

class DropDatabaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TableDescriptor(_message.Message):
    __slots__ = ("schema_ipc", "bucket_count", "bucket_key", "partition_key", "comment", "options", "primary_key")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCHEMA_IPC_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNT_FIELD_NUMBER: _ClassVar[int]
    BUCKET_KEY_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_KEY_FIELD_NUMBER: _ClassVar[int]
    schema_ipc: bytes
    bucket_count: int
    bucket_key: _containers.RepeatedScalarFieldContainer[str]
    partition_key: _containers.RepeatedScalarFieldContainer[str]
    comment: str
    options: _containers.ScalarMap[str, str]
    primary_key: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, schema_ipc: _Optional[bytes] = ..., bucket_count: _Optional[int] = ..., bucket_key: _Optional[_Iterable[str]] = ..., partition_key: _Optional[_Iterable[str]] = ..., comment: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., primary_key: _Optional[_Iterable[str]] = ...) -> None: ...

class TableInfo(_message.Message):
    __slots__ = ("path", "table_id", "schema_id", "descriptor", "created_at_micros", "database_id", "previous_schemas", "partitions", "last_partition_id")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    table_id: int
    schema_id: int
    descriptor: TableDescriptor
    created_at_micros: int
    database_id: int
    previous_schemas: _containers.RepeatedCompositeFieldContainer[SchemaVersion]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionInfo]
    last_partition_id: int
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., table_id: _Optional[int] = ..., schema_id: _Optional[int] = ..., descriptor: _Optional[_Union[TableDescriptor, _Mapping]] = ..., created_at_micros: _Optional[int] = ..., database_id: _Optional[int] = ..., previous_schemas: _Optional[_Iterable[_Union[SchemaVersion, _Mapping]]] = ..., partitions: _Optional[_Iterable[_Union[PartitionInfo, _Mapping]]] = ..., last_partition_id: _Optional[int] = ...) -> None: ...

class PartitionInfo(_message.Message):
    __slots__ = ("id", "values", "name", "created_at_micros")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    id: int
    values: _containers.RepeatedScalarFieldContainer[str]
    name: str
    created_at_micros: int
    def __init__(self, id: _Optional[int] = ..., values: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., created_at_micros: _Optional[int] = ...) -> None: ...

class PartitionValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class CreatePartitionsRequest(_message.Message):
    __slots__ = ("path", "partitions")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionValues]
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., partitions: _Optional[_Iterable[_Union[PartitionValues, _Mapping]]] = ...) -> None: ...

class CreatePartitionsResponse(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionInfo]
    def __init__(self, partitions: _Optional[_Iterable[_Union[PartitionInfo, _Mapping]]] = ...) -> None: ...

class DropPartitionsRequest(_message.Message):
    __slots__ = ("path", "partitions", "if_exists")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionValues]
    if_exists: bool
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., partitions: _Optional[_Iterable[_Union[PartitionValues, _Mapping]]] = ..., if_exists: _Optional[bool] = ...) -> None: ...

class DropPartitionsResponse(_message.Message):
    __slots__ = ("dropped_ids",)
    DROPPED_IDS_FIELD_NUMBER: _ClassVar[int]
    dropped_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dropped_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SchemaVersion(_message.Message):
    __slots__ = ("schema_id", "schema_ipc")
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_IPC_FIELD_NUMBER: _ClassVar[int]
    schema_id: int
    schema_ipc: bytes
    def __init__(self, schema_id: _Optional[int] = ..., schema_ipc: _Optional[bytes] = ...) -> None: ...

class CreateTableRequest(_message.Message):
    __slots__ = ("path", "descriptor", "if_not_exists")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    IF_NOT_EXISTS_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    descriptor: TableDescriptor
    if_not_exists: bool
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., descriptor: _Optional[_Union[TableDescriptor, _Mapping]] = ..., if_not_exists: _Optional[bool] = ...) -> None: ...

class CreateTableResponse(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: TableInfo
    def __init__(self, table: _Optional[_Union[TableInfo, _Mapping]] = ...) -> None: ...

class ListTablesRequest(_message.Message):
    __slots__ = ("database",)
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    database: str
    def __init__(self, database: _Optional[str] = ...) -> None: ...

class ListTablesResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[TableInfo]
    def __init__(self, tables: _Optional[_Iterable[_Union[TableInfo, _Mapping]]] = ...) -> None: ...

class GetTableRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ...) -> None: ...

class GetTableResponse(_message.Message):
    __slots__ = ("table", "buckets")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    table: TableInfo
    buckets: _containers.RepeatedCompositeFieldContainer[BucketOffsets]
    def __init__(self, table: _Optional[_Union[TableInfo, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[BucketOffsets, _Mapping]]] = ...) -> None: ...

class DropTableRequest(_message.Message):
    __slots__ = ("path", "if_exists", "purge")
    PATH_FIELD_NUMBER: _ClassVar[int]
    IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    PURGE_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    if_exists: bool
    purge: bool
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., if_exists: _Optional[bool] = ..., purge: _Optional[bool] = ...) -> None: ...

class DropTableResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AlterTableRequest(_message.Message):
    __slots__ = ("path", "set_options", "unset_options", "comment", "add_columns_ipc", "widen_columns_ipc", "drop_columns", "rename_columns")
    class SetOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    SET_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    UNSET_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    ADD_COLUMNS_IPC_FIELD_NUMBER: _ClassVar[int]
    WIDEN_COLUMNS_IPC_FIELD_NUMBER: _ClassVar[int]
    DROP_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    RENAME_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    set_options: _containers.ScalarMap[str, str]
    unset_options: _containers.RepeatedScalarFieldContainer[str]
    comment: str
    add_columns_ipc: bytes
    widen_columns_ipc: bytes
    drop_columns: _containers.RepeatedScalarFieldContainer[str]
    rename_columns: _containers.RepeatedCompositeFieldContainer[ColumnRename]
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., set_options: _Optional[_Mapping[str, str]] = ..., unset_options: _Optional[_Iterable[str]] = ..., comment: _Optional[str] = ..., add_columns_ipc: _Optional[bytes] = ..., widen_columns_ipc: _Optional[bytes] = ..., drop_columns: _Optional[_Iterable[str]] = ..., rename_columns: _Optional[_Iterable[_Union[ColumnRename, _Mapping]]] = ...) -> None: ...

class ColumnRename(_message.Message):
    __slots__ = ("to",)
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    to: str
    def __init__(self, to: _Optional[str] = ..., **kwargs) -> None: ...

class AlterTableResponse(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: TableInfo
    def __init__(self, table: _Optional[_Union[TableInfo, _Mapping]] = ...) -> None: ...

class AppendRequest(_message.Message):
    __slots__ = ("path", "batches_ipc", "producer_id", "sequence", "partial")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BATCHES_IPC_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    batches_ipc: bytes
    producer_id: int
    sequence: int
    partial: bool
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., batches_ipc: _Optional[bytes] = ..., producer_id: _Optional[int] = ..., sequence: _Optional[int] = ..., partial: _Optional[bool] = ...) -> None: ...

class BucketAppendResult(_message.Message):
    __slots__ = ("bucket", "partition_id", "base_offset", "row_count", "commit_timestamp_micros")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TIMESTAMP_MICROS_FIELD_NUMBER: _ClassVar[int]
    bucket: int
    partition_id: int
    base_offset: int
    row_count: int
    commit_timestamp_micros: int
    def __init__(self, bucket: _Optional[int] = ..., partition_id: _Optional[int] = ..., base_offset: _Optional[int] = ..., row_count: _Optional[int] = ..., commit_timestamp_micros: _Optional[int] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("buckets",)
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[BucketAppendResult]
    def __init__(self, buckets: _Optional[_Iterable[_Union[BucketAppendResult, _Mapping]]] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("path", "keys_ipc", "columns", "prefix", "limit")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KEYS_IPC_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    keys_ipc: bytes
    columns: _containers.RepeatedScalarFieldContainer[str]
    prefix: bool
    limit: int
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., keys_ipc: _Optional[bytes] = ..., columns: _Optional[_Iterable[str]] = ..., prefix: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("rows_ipc", "found", "truncated")
    ROWS_IPC_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    rows_ipc: bytes
    found: _containers.RepeatedScalarFieldContainer[bool]
    truncated: bool
    def __init__(self, rows_ipc: _Optional[bytes] = ..., found: _Optional[_Iterable[bool]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class StartPosition(_message.Message):
    __slots__ = ("earliest", "latest", "offset", "timestamp_micros", "snapshot")
    EARLIEST_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MICROS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    earliest: bool
    latest: bool
    offset: int
    timestamp_micros: int
    snapshot: bool
    def __init__(self, earliest: _Optional[bool] = ..., latest: _Optional[bool] = ..., offset: _Optional[int] = ..., timestamp_micros: _Optional[int] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("path", "buckets", "partitions", "start", "columns", "follow", "limit", "omit_update_before", "reset_to_earliest")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OMIT_UPDATE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    RESET_TO_EARLIEST_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    buckets: _containers.RepeatedScalarFieldContainer[int]
    partitions: _containers.RepeatedScalarFieldContainer[str]
    start: StartPosition
    columns: _containers.RepeatedScalarFieldContainer[str]
    follow: bool
    limit: int
    omit_update_before: bool
    reset_to_earliest: bool
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., buckets: _Optional[_Iterable[int]] = ..., partitions: _Optional[_Iterable[str]] = ..., start: _Optional[_Union[StartPosition, _Mapping]] = ..., columns: _Optional[_Iterable[str]] = ..., follow: _Optional[bool] = ..., limit: _Optional[int] = ..., omit_update_before: _Optional[bool] = ..., reset_to_earliest: _Optional[bool] = ...) -> None: ...

class FetchResponse(_message.Message):
    __slots__ = ("bucket", "partition_id", "batch_ipc", "high_watermark", "snapshot")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_IPC_FIELD_NUMBER: _ClassVar[int]
    HIGH_WATERMARK_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    bucket: int
    partition_id: int
    batch_ipc: bytes
    high_watermark: int
    snapshot: SnapshotPart
    def __init__(self, bucket: _Optional[int] = ..., partition_id: _Optional[int] = ..., batch_ipc: _Optional[bytes] = ..., high_watermark: _Optional[int] = ..., snapshot: _Optional[_Union[SnapshotPart, str]] = ...) -> None: ...

class ListOffsetsRequest(_message.Message):
    __slots__ = ("path", "buckets", "position", "partitions")
    PATH_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    path: TablePath
    buckets: _containers.RepeatedScalarFieldContainer[int]
    position: StartPosition
    partitions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, path: _Optional[_Union[TablePath, _Mapping]] = ..., buckets: _Optional[_Iterable[int]] = ..., position: _Optional[_Union[StartPosition, _Mapping]] = ..., partitions: _Optional[_Iterable[str]] = ...) -> None: ...

class BucketOffsets(_message.Message):
    __slots__ = ("bucket", "partition_id", "earliest_offset", "latest_offset", "offset", "wal_bytes")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LATEST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    bucket: int
    partition_id: int
    earliest_offset: int
    latest_offset: int
    offset: int
    wal_bytes: int
    def __init__(self, bucket: _Optional[int] = ..., partition_id: _Optional[int] = ..., earliest_offset: _Optional[int] = ..., latest_offset: _Optional[int] = ..., offset: _Optional[int] = ..., wal_bytes: _Optional[int] = ...) -> None: ...

class ListOffsetsResponse(_message.Message):
    __slots__ = ("buckets",)
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[BucketOffsets]
    def __init__(self, buckets: _Optional[_Iterable[_Union[BucketOffsets, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoreUsage(_message.Message):
    __slots__ = ("purpose", "op", "requests", "errors", "bytes_in", "bytes_out", "expected_misses")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_FIELD_NUMBER: _ClassVar[int]
    BYTES_OUT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MISSES_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    op: str
    requests: int
    errors: int
    bytes_in: int
    bytes_out: int
    expected_misses: int
    def __init__(self, purpose: _Optional[str] = ..., op: _Optional[str] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., bytes_in: _Optional[int] = ..., bytes_out: _Optional[int] = ..., expected_misses: _Optional[int] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("index_owner", "index_status", "store", "cache_hits", "cache_misses", "cache_bytes_fetched", "cache_memory_bytes", "appended_rows", "appended_bytes", "fetched_rows", "fetched_bytes", "roles", "owner_endpoint", "members")
    INDEX_OWNER_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATUS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_MISSES_FIELD_NUMBER: _ClassVar[int]
    CACHE_BYTES_FETCHED_FIELD_NUMBER: _ClassVar[int]
    CACHE_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    APPENDED_ROWS_FIELD_NUMBER: _ClassVar[int]
    APPENDED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FETCHED_ROWS_FIELD_NUMBER: _ClassVar[int]
    FETCHED_BYTES_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    OWNER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    index_owner: bool
    index_status: str
    store: _containers.RepeatedCompositeFieldContainer[StoreUsage]
    cache_hits: int
    cache_misses: int
    cache_bytes_fetched: int
    cache_memory_bytes: int
    appended_rows: int
    appended_bytes: int
    fetched_rows: int
    fetched_bytes: int
    roles: _containers.RepeatedScalarFieldContainer[str]
    owner_endpoint: str
    members: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, index_owner: _Optional[bool] = ..., index_status: _Optional[str] = ..., store: _Optional[_Iterable[_Union[StoreUsage, _Mapping]]] = ..., cache_hits: _Optional[int] = ..., cache_misses: _Optional[int] = ..., cache_bytes_fetched: _Optional[int] = ..., cache_memory_bytes: _Optional[int] = ..., appended_rows: _Optional[int] = ..., appended_bytes: _Optional[int] = ..., fetched_rows: _Optional[int] = ..., fetched_bytes: _Optional[int] = ..., roles: _Optional[_Iterable[str]] = ..., owner_endpoint: _Optional[str] = ..., members: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class GetLakeStatusRequest(_message.Message):
    __slots__ = ("database", "table")
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    database: str
    table: str
    def __init__(self, database: _Optional[str] = ..., table: _Optional[str] = ...) -> None: ...

class LakeBucketStatus(_message.Message):
    __slots__ = ("bucket", "watermark", "next_offset", "earliest_offset", "lag_offsets", "lag_seconds")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAG_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    bucket: int
    watermark: int
    next_offset: int
    earliest_offset: int
    lag_offsets: int
    lag_seconds: float
    def __init__(self, bucket: _Optional[int] = ..., watermark: _Optional[int] = ..., next_offset: _Optional[int] = ..., earliest_offset: _Optional[int] = ..., lag_offsets: _Optional[int] = ..., lag_seconds: _Optional[float] = ...) -> None: ...

class LakeTableStatus(_message.Message):
    __slots__ = ("database", "table", "lake_enabled", "metadata_location", "snapshot_id", "last_commit_micros", "file_count", "file_bytes", "file_rows", "buckets")
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    LAKE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    METADATA_LOCATION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMIT_MICROS_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_ROWS_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    database: str
    table: str
    lake_enabled: bool
    metadata_location: str
    snapshot_id: int
    last_commit_micros: int
    file_count: int
    file_bytes: int
    file_rows: int
    buckets: _containers.RepeatedCompositeFieldContainer[LakeBucketStatus]
    def __init__(self, database: _Optional[str] = ..., table: _Optional[str] = ..., lake_enabled: _Optional[bool] = ..., metadata_location: _Optional[str] = ..., snapshot_id: _Optional[int] = ..., last_commit_micros: _Optional[int] = ..., file_count: _Optional[int] = ..., file_bytes: _Optional[int] = ..., file_rows: _Optional[int] = ..., buckets: _Optional[_Iterable[_Union[LakeBucketStatus, _Mapping]]] = ...) -> None: ...

class GetLakeStatusResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[LakeTableStatus]
    def __init__(self, tables: _Optional[_Iterable[_Union[LakeTableStatus, _Mapping]]] = ...) -> None: ...

class ListDroppedPartitionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DroppedPartition(_message.Message):
    __slots__ = ("table_id", "partition_id", "name", "dropped_at_micros")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DROPPED_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    partition_id: int
    name: str
    dropped_at_micros: int
    def __init__(self, table_id: _Optional[int] = ..., partition_id: _Optional[int] = ..., name: _Optional[str] = ..., dropped_at_micros: _Optional[int] = ...) -> None: ...

class ListDroppedPartitionsResponse(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[DroppedPartition]
    def __init__(self, partitions: _Optional[_Iterable[_Union[DroppedPartition, _Mapping]]] = ...) -> None: ...

class PartitionRef(_message.Message):
    __slots__ = ("table_id", "partition_id")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    partition_id: int
    def __init__(self, table_id: _Optional[int] = ..., partition_id: _Optional[int] = ...) -> None: ...

class AddPartitionsReply(_message.Message):
    __slots__ = ("table", "ids", "refused", "missing")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    table: TableInfo
    ids: _containers.RepeatedScalarFieldContainer[int]
    refused: str
    missing: TableLookup.Missing
    def __init__(self, table: _Optional[_Union[TableInfo, _Mapping]] = ..., ids: _Optional[_Iterable[int]] = ..., refused: _Optional[str] = ..., missing: _Optional[_Union[TableLookup.Missing, str]] = ...) -> None: ...

class ListAllTablesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAllTablesResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[TableInfo]
    def __init__(self, tables: _Optional[_Iterable[_Union[TableInfo, _Mapping]]] = ...) -> None: ...

class TableRef(_message.Message):
    __slots__ = ("table_id",)
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    def __init__(self, table_id: _Optional[int] = ...) -> None: ...

class StreamRef(_message.Message):
    __slots__ = ("table_id", "bucket", "partition_id")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PARTITION_ID_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    bucket: int
    partition_id: int
    def __init__(self, table_id: _Optional[int] = ..., bucket: _Optional[int] = ..., partition_id: _Optional[int] = ...) -> None: ...

class StreamState(_message.Message):
    __slots__ = ("tail", "watermark")
    TAIL_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    tail: bytes
    watermark: bytes
    def __init__(self, tail: _Optional[bytes] = ..., watermark: _Optional[bytes] = ...) -> None: ...

class ListIndexEntriesRequest(_message.Message):
    __slots__ = ("stream", "max")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    stream: StreamRef
    max: int
    def __init__(self, stream: _Optional[_Union[StreamRef, _Mapping]] = ..., max: _Optional[int] = ..., **kwargs) -> None: ...

class IndexEntries(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, entries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class LakeTableRecordBytes(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: bytes
    def __init__(self, record: _Optional[bytes] = ...) -> None: ...

class LakeLease(_message.Message):
    __slots__ = ("owner", "epoch", "expires_at_micros")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    owner: int
    epoch: int
    expires_at_micros: int
    def __init__(self, owner: _Optional[int] = ..., epoch: _Optional[int] = ..., expires_at_micros: _Optional[int] = ...) -> None: ...

class AcquireLakeLeaseRequest(_message.Message):
    __slots__ = ("table_id", "owner", "ttl_micros")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TTL_MICROS_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    owner: int
    ttl_micros: int
    def __init__(self, table_id: _Optional[int] = ..., owner: _Optional[int] = ..., ttl_micros: _Optional[int] = ...) -> None: ...

class ReleaseLakeLeaseRequest(_message.Message):
    __slots__ = ("table_id", "lease")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    lease: LakeLease
    def __init__(self, table_id: _Optional[int] = ..., lease: _Optional[_Union[LakeLease, _Mapping]] = ...) -> None: ...

class ReleaseLakeLeaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BucketOffset(_message.Message):
    __slots__ = ("bucket", "offset")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    bucket: int
    offset: int
    def __init__(self, bucket: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class LakeFileAdded(_message.Message):
    __slots__ = ("bucket", "entry")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    bucket: int
    entry: bytes
    def __init__(self, bucket: _Optional[int] = ..., entry: _Optional[bytes] = ...) -> None: ...

class CommitLakeRequest(_message.Message):
    __slots__ = ("table_id", "lease", "expected_metadata_location", "metadata_location", "snapshot_id", "watermarks", "added_files", "removed_files", "earliest", "key_rows")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_METADATA_LOCATION_FIELD_NUMBER: _ClassVar[int]
    METADATA_LOCATION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    WATERMARKS_FIELD_NUMBER: _ClassVar[int]
    ADDED_FILES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FILES_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_FIELD_NUMBER: _ClassVar[int]
    KEY_ROWS_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    lease: LakeLease
    expected_metadata_location: str
    metadata_location: str
    snapshot_id: int
    watermarks: _containers.RepeatedCompositeFieldContainer[BucketOffset]
    added_files: _containers.RepeatedCompositeFieldContainer[LakeFileAdded]
    removed_files: _containers.RepeatedCompositeFieldContainer[BucketOffset]
    earliest: _containers.RepeatedCompositeFieldContainer[BucketOffset]
    key_rows: _containers.RepeatedCompositeFieldContainer[LakeKeyRow]
    def __init__(self, table_id: _Optional[int] = ..., lease: _Optional[_Union[LakeLease, _Mapping]] = ..., expected_metadata_location: _Optional[str] = ..., metadata_location: _Optional[str] = ..., snapshot_id: _Optional[int] = ..., watermarks: _Optional[_Iterable[_Union[BucketOffset, _Mapping]]] = ..., added_files: _Optional[_Iterable[_Union[LakeFileAdded, _Mapping]]] = ..., removed_files: _Optional[_Iterable[_Union[BucketOffset, _Mapping]]] = ..., earliest: _Optional[_Iterable[_Union[BucketOffset, _Mapping]]] = ..., key_rows: _Optional[_Iterable[_Union[LakeKeyRow, _Mapping]]] = ...) -> None: ...

class LakeKeyRow(_message.Message):
    __slots__ = ("bucket", "key", "row")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    bucket: int
    key: bytes
    row: bytes
    def __init__(self, bucket: _Optional[int] = ..., key: _Optional[bytes] = ..., row: _Optional[bytes] = ...) -> None: ...

class CommitLakeResponse(_message.Message):
    __slots__ = ("committed_at_micros", "trimmed_chunks", "trimmed_objects")
    COMMITTED_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    committed_at_micros: int
    trimmed_chunks: int
    trimmed_objects: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, committed_at_micros: _Optional[int] = ..., trimmed_chunks: _Optional[int] = ..., trimmed_objects: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ExpireWalResponse(_message.Message):
    __slots__ = ("chunks", "bytes", "objects", "more")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    chunks: int
    bytes: int
    objects: _containers.RepeatedScalarFieldContainer[bytes]
    more: bool
    def __init__(self, chunks: _Optional[int] = ..., bytes: _Optional[int] = ..., objects: _Optional[_Iterable[bytes]] = ..., more: _Optional[bool] = ...) -> None: ...

class ListDroppedTablesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DroppedTable(_message.Message):
    __slots__ = ("table_id", "database", "name", "dropped_at_micros", "purge_lake")
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DROPPED_AT_MICROS_FIELD_NUMBER: _ClassVar[int]
    PURGE_LAKE_FIELD_NUMBER: _ClassVar[int]
    table_id: int
    database: str
    name: str
    dropped_at_micros: int
    purge_lake: bool
    def __init__(self, table_id: _Optional[int] = ..., database: _Optional[str] = ..., name: _Optional[str] = ..., dropped_at_micros: _Optional[int] = ..., purge_lake: _Optional[bool] = ...) -> None: ...

class ListDroppedTablesResponse(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[DroppedTable]
    def __init__(self, tables: _Optional[_Iterable[_Union[DroppedTable, _Mapping]]] = ...) -> None: ...

class PurgeTableResponse(_message.Message):
    __slots__ = ("entries", "done")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    entries: int
    done: bool
    def __init__(self, entries: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class ListLiveWalObjectsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLiveWalObjectsResponse(_message.Message):
    __slots__ = ("objects",)
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, objects: _Optional[_Iterable[bytes]] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "address", "roles")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterEvent(_message.Message):
    __slots__ = ("catalog_version", "members")
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    catalog_version: int
    members: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, catalog_version: _Optional[int] = ..., members: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class TableLookup(_message.Message):
    __slots__ = ("table", "missing")
    class Missing(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NOTHING: _ClassVar[TableLookup.Missing]
        DATABASE: _ClassVar[TableLookup.Missing]
        TABLE: _ClassVar[TableLookup.Missing]
    NOTHING: TableLookup.Missing
    DATABASE: TableLookup.Missing
    TABLE: TableLookup.Missing
    TABLE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    table: TableInfo
    missing: TableLookup.Missing
    def __init__(self, table: _Optional[_Union[TableInfo, _Mapping]] = ..., missing: _Optional[_Union[TableLookup.Missing, str]] = ...) -> None: ...

class ChunkCommit(_message.Message):
    __slots__ = ("stream", "schema_id", "chunk_offset", "chunk_len", "meta_len", "body_offset", "chunk_crc", "meta_crc", "row_count", "producer_id", "producer_sequence", "columns", "pk_writes")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_LEN_FIELD_NUMBER: _ClassVar[int]
    META_LEN_FIELD_NUMBER: _ClassVar[int]
    BODY_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_CRC_FIELD_NUMBER: _ClassVar[int]
    META_CRC_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PK_WRITES_FIELD_NUMBER: _ClassVar[int]
    stream: StreamRef
    schema_id: int
    chunk_offset: int
    chunk_len: int
    meta_len: int
    body_offset: int
    chunk_crc: int
    meta_crc: int
    row_count: int
    producer_id: int
    producer_sequence: int
    columns: _containers.RepeatedCompositeFieldContainer[ColumnRange]
    pk_writes: bytes
    def __init__(self, stream: _Optional[_Union[StreamRef, _Mapping]] = ..., schema_id: _Optional[int] = ..., chunk_offset: _Optional[int] = ..., chunk_len: _Optional[int] = ..., meta_len: _Optional[int] = ..., body_offset: _Optional[int] = ..., chunk_crc: _Optional[int] = ..., meta_crc: _Optional[int] = ..., row_count: _Optional[int] = ..., producer_id: _Optional[int] = ..., producer_sequence: _Optional[int] = ..., columns: _Optional[_Iterable[_Union[ColumnRange, _Mapping]]] = ..., pk_writes: _Optional[bytes] = ...) -> None: ...

class ColumnRange(_message.Message):
    __slots__ = ("offset", "len", "crc32c")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LEN_FIELD_NUMBER: _ClassVar[int]
    CRC32C_FIELD_NUMBER: _ClassVar[int]
    offset: int
    len: int
    crc32c: int
    def __init__(self, offset: _Optional[int] = ..., len: _Optional[int] = ..., crc32c: _Optional[int] = ...) -> None: ...

class ChangeRecordRequest(_message.Message):
    __slots__ = ("stream", "end_offset")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    stream: StreamRef
    end_offset: int
    def __init__(self, stream: _Optional[_Union[StreamRef, _Mapping]] = ..., end_offset: _Optional[int] = ...) -> None: ...

class ChangeRecordReply(_message.Message):
    __slots__ = ("record",)
    RECORD_FIELD_NUMBER: _ClassVar[int]
    record: bytes
    def __init__(self, record: _Optional[bytes] = ...) -> None: ...

class LookupPrefixRequest(_message.Message):
    __slots__ = ("stream", "prefix", "max")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    stream: StreamRef
    prefix: bytes
    max: int
    def __init__(self, stream: _Optional[_Union[StreamRef, _Mapping]] = ..., prefix: _Optional[bytes] = ..., max: _Optional[int] = ...) -> None: ...

class LookupKeysRequest(_message.Message):
    __slots__ = ("stream", "keys")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    stream: StreamRef
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, stream: _Optional[_Union[StreamRef, _Mapping]] = ..., keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class KeyScanPage(_message.Message):
    __slots__ = ("low", "high", "keys", "states")
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    low: int
    high: int
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    states: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, low: _Optional[int] = ..., high: _Optional[int] = ..., keys: _Optional[_Iterable[bytes]] = ..., states: _Optional[_Iterable[bytes]] = ...) -> None: ...

class LookupKeysReply(_message.Message):
    __slots__ = ("values",)
    class Value(_message.Message):
        __slots__ = ("state",)
        STATE_FIELD_NUMBER: _ClassVar[int]
        state: bytes
        def __init__(self, state: _Optional[bytes] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[LookupKeysReply.Value]
    def __init__(self, values: _Optional[_Iterable[_Union[LookupKeysReply.Value, _Mapping]]] = ...) -> None: ...

class WalCommit(_message.Message):
    __slots__ = ("id", "object", "footer_offset", "footer_len", "chunks")
    ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    FOOTER_OFFSET_FIELD_NUMBER: _ClassVar[int]
    FOOTER_LEN_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    id: int
    object: bytes
    footer_offset: int
    footer_len: int
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkCommit]
    def __init__(self, id: _Optional[int] = ..., object: _Optional[bytes] = ..., footer_offset: _Optional[int] = ..., footer_len: _Optional[int] = ..., chunks: _Optional[_Iterable[_Union[ChunkCommit, _Mapping]]] = ...) -> None: ...

class ChunkOutcome(_message.Message):
    __slots__ = ("committed", "rejected_json")
    class Committed(_message.Message):
        __slots__ = ("base_offset", "commit_ts_micros")
        BASE_OFFSET_FIELD_NUMBER: _ClassVar[int]
        COMMIT_TS_MICROS_FIELD_NUMBER: _ClassVar[int]
        base_offset: int
        commit_ts_micros: int
        def __init__(self, base_offset: _Optional[int] = ..., commit_ts_micros: _Optional[int] = ...) -> None: ...
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_JSON_FIELD_NUMBER: _ClassVar[int]
    committed: ChunkOutcome.Committed
    rejected_json: bytes
    def __init__(self, committed: _Optional[_Union[ChunkOutcome.Committed, _Mapping]] = ..., rejected_json: _Optional[bytes] = ...) -> None: ...

class WalCommitReply(_message.Message):
    __slots__ = ("id", "failure_json", "chunks")
    ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_JSON_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    id: int
    failure_json: bytes
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkOutcome]
    def __init__(self, id: _Optional[int] = ..., failure_json: _Optional[bytes] = ..., chunks: _Optional[_Iterable[_Union[ChunkOutcome, _Mapping]]] = ...) -> None: ...

class OffsetForTimestampRequest(_message.Message):
    __slots__ = ("stream", "timestamp_micros")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MICROS_FIELD_NUMBER: _ClassVar[int]
    stream: StreamRef
    timestamp_micros: int
    def __init__(self, stream: _Optional[_Union[StreamRef, _Mapping]] = ..., timestamp_micros: _Optional[int] = ...) -> None: ...

class OffsetReply(_message.Message):
    __slots__ = ("offset",)
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    offset: int
    def __init__(self, offset: _Optional[int] = ...) -> None: ...

class AliveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AliveReply(_message.Message):
    __slots__ = ("node_id", "serving")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    serving: bool
    def __init__(self, node_id: _Optional[str] = ..., serving: _Optional[bool] = ...) -> None: ...
