"""Rows go in as pyarrow, pandas or polars and come back equal, for every column type the
server stores (core/src/column_types.rs), nulls included; projection, start positions,
bucket selection and limits select what they say."""

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import inlet

SYSTEM = ["_bucket", "_offset", "_timestamp"]


def every_type_table() -> pa.Table:
    """Three rows of every supported type; the last row is null in every nullable column."""
    utc = timezone.utc
    struct = pa.struct([("a", pa.int32()), ("b", pa.string())])
    columns = {
        "id": (pa.int64(), [1, 2, 3]),
        "nothing": (pa.null(), [None, None, None]),
        "flag": (pa.bool_(), [True, False, None]),
        "i8": (pa.int8(), [-128, 127, None]),
        "i16": (pa.int16(), [-32768, 32767, None]),
        "i32": (pa.int32(), [-(2**31), 2**31 - 1, None]),
        "i64": (pa.int64(), [-(2**63), 2**63 - 1, None]),
        "u8": (pa.uint8(), [0, 255, None]),
        "u16": (pa.uint16(), [0, 65535, None]),
        "u32": (pa.uint32(), [0, 2**32 - 1, None]),
        "u64": (pa.uint64(), [0, 2**64 - 1, None]),
        "f16": (pa.float16(), None),
        "f32": (pa.float32(), [1.5, -2.25, None]),
        "f64": (pa.float64(), [3.141592653589793, float("inf"), None]),
        "ts_s": (pa.timestamp("s"), [datetime(2026, 1, 1), datetime(1970, 1, 1), None]),
        "ts_ms_tz": (pa.timestamp("ms", tz="Europe/Paris"), [datetime(2026, 3, 29, 1, 30, tzinfo=utc), datetime(2000, 1, 1, tzinfo=utc), None]),
        "ts_us_utc": (pa.timestamp("us", tz="UTC"), [datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=utc), datetime(1969, 12, 31, tzinfo=utc), None]),
        "ts_ns": (pa.timestamp("ns"), [datetime(2262, 1, 1), datetime(1678, 1, 1), None]),
        "d32": (pa.date32(), [datetime(2026, 1, 31).date(), datetime(1, 1, 1).date(), None]),
        "d64": (pa.date64(), [datetime(2026, 1, 31).date(), datetime(1970, 1, 1).date(), None]),
        "t32": (pa.time32("ms"), [datetime(2026, 1, 1, 23, 59, 59, 999000).time(), datetime(2026, 1, 1).time(), None]),
        "t64": (pa.time64("ns"), [datetime(2026, 1, 1, 12, 0, 0, 1).time(), datetime(2026, 1, 1).time(), None]),
        "dur": (pa.duration("us"), [timedelta(days=3, microseconds=7), timedelta(0), None]),
        "interval": (pa.month_day_nano_interval(), [pa.MonthDayNano([1, 2, 3]), pa.MonthDayNano([-1, 0, 0]), None]),
        "dec128": (pa.decimal128(38, 9), [Decimal("12345678901234567890123456789.123456789"), Decimal("-0.000000001"), None]),
        "dec256": (pa.decimal256(76, 10), [Decimal("1" * 66 + ".0123456789"), Decimal("0"), None]),
        "bin": (pa.binary(), [b"\x00\xff", b"", None]),
        "lbin": (pa.large_binary(), [b"large", b"\x01" * 1000, None]),
        "fbin": (pa.binary(4), [b"abcd", b"\x00\x00\x00\x00", None]),
        "s": (pa.string(), ["héllo", "", None]),
        "ls": (pa.large_string(), ["large ✓", "x" * 1000, None]),
        "lst": (pa.list_(pa.int64()), [[1, None, 3], [], None]),
        "llst": (pa.large_list(pa.string()), [["a", None], ["b"], None]),
        "flst": (pa.list_(pa.float64(), 2), [[1.0, 2.0], [None, 4.0], None]),
        "map": (pa.map_(pa.string(), pa.int32()), [[("k", 1), ("l", None)], [], None]),
        "st": (struct, [{"a": 1, "b": "x"}, {"a": None, "b": None}, None]),
        "nested": (pa.list_(struct), [[{"a": 1, "b": "y"}, None], [], None]),
    }
    arrays, fields = [], []
    for name, (data_type, values) in columns.items():
        if name == "f16":
            import numpy as np

            array = pa.array(np.array([1.5, -0.25, 0], dtype=np.float16), mask=np.array([False, False, True]))
        else:
            array = pa.array(values, type=data_type)
        arrays.append(array)
        fields.append(pa.field(name, data_type, nullable=name != "id"))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def user_columns(table: pa.Table) -> pa.Table:
    return table.drop_columns(SYSTEM)


def test_every_type_round_trips_through_pyarrow(client, db):
    data = every_type_table()
    table = client.create_table(f"{db}.all", data.schema)
    ranges = table.append(data)
    assert ranges == [inlet.BucketRange(0, 0, 3, ranges[0].committed_at)]
    back = table.scan().to_arrow()
    assert back.column_names == data.column_names + SYSTEM
    assert user_columns(back).schema.equals(data.schema)
    assert user_columns(back).equals(data), "values changed on the way"
    assert back.column("_offset").to_pylist() == [0, 1, 2]
    # A record batch is accepted too.
    table.append(data.to_batches()[0])
    assert table.scan(start=3).to_arrow().num_rows == 3


def test_pandas_round_trip_with_nulls_timestamps_and_decimals(client, db):
    schema = pa.schema([
        ("id", pa.int64()), ("name", pa.string()), ("price", pa.decimal128(12, 2)),
        ("score", pa.float64()), ("ok", pa.bool_()), ("at", pa.timestamp("us", tz="UTC")),
        ("tags", pa.list_(pa.string())),
    ])
    table = client.create_table(f"{db}.pd", schema)
    frame = pd.DataFrame({
        "id": [1, 2, 3],
        "name": ["a", None, "c"],
        "price": [Decimal("1.50"), None, Decimal("-99999.99")],
        "score": [0.5, None, 2.0],
        "ok": [True, None, False],
        "at": pd.to_datetime(["2026-01-01T00:00:00.000001Z", None, "2026-06-30T23:59:59Z"], utc=True, format="ISO8601"),
        "tags": [["x", "y"], None, []],
    })
    table.append(frame)
    back = table.scan().to_pandas()
    assert list(back.columns) == list(frame.columns) + SYSTEM
    # Through Arrow both ways: values and nulls must match exactly.
    assert pa.Table.from_pandas(back[list(frame.columns)], schema=schema, preserve_index=False).equals(
        pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    )
    assert back["name"].isna().tolist() == [False, True, False]
    assert back["price"][2] == Decimal("-99999.99")
    assert back["at"][0] == pd.Timestamp("2026-01-01T00:00:00.000001Z")


def test_polars_round_trip_with_nested_types(client, db):
    frame = pl.DataFrame({
        "id": pl.Series([1, 2, 3], dtype=pl.Int64),
        "name": ["a", None, "ç"],
        "at": pl.Series([datetime(2026, 1, 1, tzinfo=timezone.utc), None, datetime(2026, 2, 1, tzinfo=timezone.utc)]).cast(pl.Datetime("us", "UTC")),
        "amount": pl.Series([Decimal("1.10"), None, Decimal("2.25")], dtype=pl.Decimal(10, 2)),
        "items": [[1, 2], None, []],
        "point": [{"x": 1.0, "y": None}, None, {"x": 3.0, "y": 4.0}],
    })
    schema = pa.schema([
        ("id", pa.int64()), ("name", pa.string()), ("at", pa.timestamp("us", tz="UTC")),
        ("amount", pa.decimal128(10, 2)), ("items", pa.list_(pa.int64())),
        ("point", pa.struct([("x", pa.float64()), ("y", pa.float64())])),
    ])
    table = client.create_table(f"{db}.pl", schema)
    table.append(frame)
    back = table.scan().to_polars()
    assert back.columns == frame.columns + SYSTEM
    assert back.select(frame.columns).equals(frame)
    # Polars' own types (large strings, views) were converted to the table's, not refused.
    assert table.scan(columns=["name"]).to_arrow().schema.field("name").type == pa.string()


def test_projection_returns_the_asked_columns_in_order(client, db):
    data = every_type_table()
    table = client.create_table(f"{db}.proj", data.schema)
    table.append(data)
    back = table.scan(columns=["s", "id"]).to_arrow()
    assert back.column_names == ["s", "id"] + SYSTEM
    assert back.column("s").to_pylist() == ["héllo", "", None]
    empty = client.create_table(f"{db}.empty", data.schema).scan(columns=["dec128"]).to_arrow()
    assert empty.num_rows == 0 and empty.column_names == ["dec128"] + SYSTEM


def test_start_positions_buckets_and_limit(client, db):
    schema = pa.schema([("k", pa.int64()), ("v", pa.string())])
    table = client.create_table(f"{db}.pos", schema, buckets=3, bucket_key="k")
    first = table.append(pa.table({"k": list(range(30)), "v": [f"a{i}" for i in range(30)]}))
    assert sum(r.rows for r in first) == 30
    between = datetime.now(timezone.utc)
    table.append(pa.table({"k": list(range(30)), "v": [f"b{i}" for i in range(30)]}))

    assert table.scan().to_arrow().num_rows == 60
    assert table.scan(start="latest").to_arrow().num_rows == 0
    later = table.scan(start=between).to_arrow()
    assert sorted(later.column("v").to_pylist()) == sorted(f"b{i}" for i in range(30))
    # An offset applies to every bucket: each bucket holds 2 appends' rows of its keys.
    per_bucket = {r.bucket: r.rows for r in first}
    from_offset = table.scan(start=1).to_arrow()
    assert from_offset.num_rows == 60 - len(per_bucket)
    only = table.scan(buckets=[first[0].bucket]).to_arrow()
    assert set(only.column("_bucket").to_pylist()) == {first[0].bucket}
    assert only.num_rows == 2 * per_bucket[first[0].bucket]
    assert table.scan(limit=7).to_arrow().num_rows == 7
    assert table.scan(limit=0).to_arrow().num_rows == 0
    # A following scan with a limit ends once it has its rows, not when more arrive.
    started = time.monotonic()
    assert sum(b.num_rows for b in table.scan(follow=True, limit=45)) == 45
    assert sum(b.num_rows for b in table.scan(follow=True, limit=60)) == 60
    assert time.monotonic() - started < 10
    assert table.offsets("latest") == {b: 2 * n for b, n in per_bucket.items()} | {
        b: 0 for b in range(3) if b not in per_bucket
    }


def test_batches_iterate_without_collecting(client, db):
    table = client.create_table(f"{db}.it", pa.schema([("x", pa.int64())]))
    for i in range(5):
        table.append(pa.table({"x": [i] * 1000}))
    batches = list(table.scan())
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert sum(b.num_rows for b in batches) == 5000


def test_large_append_is_split_and_ordered(client, db):
    table = client.create_table(f"{db}.big", pa.schema([("x", pa.int64()), ("pad", pa.binary())]))
    rows = 1100 * 1024  # more rows than one append may carry
    data = pa.table({"x": pa.array(range(rows), pa.int64()), "pad": pa.array([b""] * rows, pa.binary())})
    ranges = table.append(data)
    assert len(ranges) == 2 and sum(r.rows for r in ranges) == rows
    back = table.scan(columns=["x"]).to_arrow()
    assert back.column("x").to_pylist() == list(range(rows))
