"""A lake-enabled table: the compactor tiers it, the client reports the lake status, a scan
from offset 0 reads the tiered rows (the server reads them from Parquet, since the index
trims the WAL's chunk entries at each lake commit), and pyiceberg attaches through the
catalog settings the client hands out."""

import time

import pyarrow as pa
import pytest

import inlet

# Longest the test waits for the compactor to tier the rows (freshness 1 s, scans 200 ms).
TIERING_TIMEOUT_SECONDS = 60.0


def lake_reads(client) -> int:
    return sum(int(s.get("requests", 0)) for s in client.status()["store"] if "lake" in s["purpose"] and s["op"] == "get")


def test_tiered_rows_read_back_and_attach_with_pyiceberg(client, db):
    table = client.create_table(f"{db}.clicks", pa.schema([("user", pa.int64()), ("url", pa.string())]),
                                buckets=2, bucket_key="user",
                                options={"lake.enabled": True, "lake.freshness": "1s"})
    data = pa.table({"user": list(range(200)), "url": [f"/p/{i}" for i in range(200)]})
    table.append(data)
    deadline = time.monotonic() + TIERING_TIMEOUT_SECONDS
    while True:
        status = table.lake_status()
        if status.file_rows == 200 and status.lag_offsets == 0:
            break
        assert time.monotonic() < deadline, f"not tiered in {TIERING_TIMEOUT_SECONDS}s: {status}"
        time.sleep(0.2)
    assert status.snapshot_id != 0 and status.metadata_location and status.file_count >= 1
    assert all(b.watermark == b.next_offset for b in status.buckets)

    table.append(pa.table({"user": [1000], "url": ["/new"]}))  # in the WAL, not the lake yet
    before = lake_reads(client)
    back = table.scan(columns=["user", "url"]).to_arrow()
    assert lake_reads(client) > before, "the scan of tiered offsets read nothing from the lake"
    assert sorted(back.column("user").to_pylist()) == list(range(200)) + [1000]

    pytest.importorskip("pyiceberg")
    lake = table.iceberg_catalog().load_table()
    assert lake.scan().to_arrow().num_rows >= 200


def test_a_start_behind_retention_is_refused_or_reset_to_earliest(client, db):
    table = client.create_table(f"{db}.expiring", pa.schema([("user", pa.int64())]),
                                options={"lake.enabled": True, "lake.freshness": "200ms", "retention": "1s"})
    table.append(pa.table({"user": list(range(50))}))
    deadline = time.monotonic() + TIERING_TIMEOUT_SECONDS
    while table.offsets("earliest")[0] < 50:
        assert time.monotonic() < deadline, f"retention did not expire the rows: {table.offsets('earliest')}"
        time.sleep(0.2)
    with pytest.raises(inlet.OffsetOutOfRange, match="out of range"):
        table.scan(start=0).to_arrow()
    table.append(pa.table({"user": [1000]}))
    scan = table.scan(start=0, reset_to_earliest=True)
    rows = scan.to_arrow()
    # The new row, unless retention took it too meanwhile; never an expired one.
    assert rows.column("user").to_pylist() in ([1000], [])
    assert all(offset >= 50 for offset in rows.column("_offset").to_pylist())
    assert scan.position.offsets.get(0, 51) >= 50
