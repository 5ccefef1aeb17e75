"""Partitioned tables: appends route rows to partitions (created on first write or up front),
partitions are listed with their sizes, a scan reads only the partitions it names, and a
consumer of a partitioned table saves its position per partition and bucket and resumes
without losing or repeating a row. Also the zero-copy fetch reader's `partition_id` and
the JSON form of partitioned positions, which need no server."""

import asyncio
import threading
from datetime import date

import pyarrow as pa
import pytest

import inlet
import inlet.aio

DAYS = [date(2026, 12, 7), date(2026, 12, 8), date(2026, 12, 9)]
NAMES = ["2026-12-07", "2026-12-08", "2026-12-09"]
# Longest a test waits for a followed batch before it fails (closing the scan).
FOLLOW_TIMEOUT_SECONDS = 20.0
SCHEMA = pa.schema([
    pa.field("day", pa.date32(), nullable=False),
    pa.field("n", pa.int64()),
])


def day_rows(start: int, count: int, days: list[date] = DAYS) -> pa.Table:
    """Rows ``n`` = start .. start + count - 1, the day of each chosen by ``n`` (round-robin)."""
    ns = list(range(start, start + count))
    return pa.table({"day": [days[n % len(days)] for n in ns], "n": ns}, schema=SCHEMA)


def partitioned(client, db, buckets: int = 2, name: str = "t"):
    return client.create_table(f"{db}.{name}", SCHEMA, buckets=buckets, partition_key="day")


def test_one_append_of_three_days_lands_in_three_partitions(client, db):
    table = partitioned(client, db)
    ranges = table.append(day_rows(0, 30))
    assert sorted({r.partition_id for r in ranges}) == [1, 2, 3]
    assert sum(r.rows for r in ranges) == 30
    per_partition = {}
    for r in ranges:
        per_partition[r.partition_id] = per_partition.get(r.partition_id, 0) + r.rows
    assert per_partition == {1: 10, 2: 10, 3: 10}

    partitions = table.partitions()
    assert sorted(p.name for p in partitions) == NAMES
    assert [p.id for p in partitions] == [1, 2, 3]
    for p in partitions:
        assert p.values == [p.name]
        assert p.rows == 10, p
        assert p.wal_bytes > 0
        assert p.created_at is not None

    info = table.describe()
    assert info.partition_key == ["day"] and info.is_partitioned
    assert info.last_partition_id == 3
    # Each partition has its own buckets, and the bucket offsets say whose they are.
    assert sorted({b.partition_id for b in info.buckets}) == [1, 2, 3]
    assert len(info.buckets) == 3 * 2
    assert info.partition(NAMES[1]).rows == 10
    with pytest.raises(inlet.PartitionNotFound):
        info.partition("1999-01-01")

    # A table without a partition key has none to list, and its appends are partition 0.
    plain = client.create_table(f"{db}.plain", SCHEMA)
    assert [r.partition_id for r in plain.append(day_rows(0, 3))] == [0]
    assert plain.partitions() == [] and not plain.describe().is_partitioned


def test_scan_of_one_partition_reads_only_its_rows(client, db):
    table = partitioned(client, db)
    for i in range(3):
        table.append(day_rows(i * 30, 30))
    day = table.describe().partition(NAMES[1])

    rows = table.scan(partitions=[NAMES[1]]).to_arrow()
    assert rows.num_rows == 30
    assert set(rows.column("day").to_pylist()) == {DAYS[1]}
    assert sorted(rows.column("n").to_pylist()) == [n for n in range(90) if n % 3 == 1]

    # A Partition object names it as well as its name does; buckets narrow it further.
    assert table.scan(partitions=day).to_arrow().num_rows == 30
    two = table.scan(partitions=[NAMES[0], NAMES[2]], columns=["day"]).to_arrow()
    assert two.num_rows == 60 and set(two.column("day").to_pylist()) == {DAYS[0], DAYS[2]}
    assert table.scan().to_arrow().num_rows == 90

    # Offsets are keyed (partition_id, bucket), of every partition or the ones named.
    latest = table.offsets()
    assert set(latest) == {(p, b) for p in (1, 2, 3) for b in (0, 1)}
    assert sum(latest.values()) == 90
    assert table.offsets(partitions=[NAMES[1]]) == {k: o for k, o in latest.items() if k[0] == day.id}
    assert table.offsets("earliest", partitions=NAMES[1]) == {(day.id, 0): 0, (day.id, 1): 0}


def test_partitions_created_up_front_are_empty_until_written(client, db):
    table = partitioned(client, db)
    created = table.create_partitions([NAMES[0], date(2026, 12, 8)])
    assert [(p.id, p.name, p.rows) for p in created] == [(1, NAMES[0], 0), (2, NAMES[1], 0)]
    assert [(p.name, p.rows, p.wal_bytes) for p in table.partitions()] == [
        (NAMES[0], 0, 0), (NAMES[1], 0, 0),
    ]
    # Asking again is no error: the existing partitions come back, sized.
    table.append(day_rows(0, 3, days=[DAYS[0]]))
    again = table.create_partitions([[NAMES[0]], [NAMES[2]]])
    assert [(p.id, p.name, p.rows) for p in again] == [(1, NAMES[0], 3), (3, NAMES[2], 0)]
    assert table.scan(partitions=[NAMES[2]]).to_arrow().num_rows == 0

    # A two-column key: a partition's name is its values joined by `$`.
    schema = pa.schema([
        pa.field("day", pa.date32(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("n", pa.int64()),
    ])
    regional = client.create_table(f"{db}.regional", schema, partition_key=["day", "region"])
    (eu,) = regional.create_partitions([[DAYS[0], "eu"]])
    assert (eu.name, eu.values) == (f"{NAMES[0]}$eu", [NAMES[0], "eu"])
    ranges = regional.append(pa.table({"day": [DAYS[0]], "region": ["eu"], "n": [1]}, schema=schema))
    assert [r.partition_id for r in ranges] == [eu.id]
    assert regional.scan(partitions=[eu.name]).to_arrow().column("n").to_pylist() == [1]

    with pytest.raises(inlet.InvalidInput, match="2 values"):
        table.create_partitions([[NAMES[0], "x"]])
    with pytest.raises(inlet.InvalidInput, match="list of partitions"):
        table.create_partitions(NAMES[0])
    with pytest.raises(inlet.InvalidInput, match="partition value"):
        table.create_partitions([1.5])


def test_unknown_partition_and_filters_on_unpartitioned_tables_are_refused(client, db):
    table = partitioned(client, db)
    table.append(day_rows(0, 3))
    with pytest.raises(inlet.PartitionNotFound, match="has no partition `1999-01-01`") as error:
        table.scan(partitions=["1999-01-01"]).to_arrow()
    assert isinstance(error.value, inlet.NotFound) and not isinstance(error.value, inlet.TableNotFound)
    with pytest.raises(inlet.PartitionNotFound):
        table.offsets(partitions=["1999-01-01"])

    plain = client.create_table(f"{db}.plain", SCHEMA)
    plain.append(day_rows(0, 3))
    with pytest.raises(inlet.InvalidInput):
        plain.scan(partitions=[NAMES[0]]).to_arrow()


def test_consumer_of_a_partitioned_table_resumes_from_a_saved_position(client, db, tmp_path):
    table = partitioned(client, db, buckets=2)
    # No bucket key: each append's rows of one day land in one bucket of its partition,
    # round-robin, so partitions' buckets fill unevenly.
    for i in range(6):
        table.append(day_rows(i * 15, 15))

    first = table.scan()
    consumed = []
    for batch in first:
        consumed.extend(batch.column("n").to_pylist())
        if len(consumed) >= 40:
            break
    first.close()
    assert first.position.partitioned
    assert all(isinstance(key, tuple) and key[0] in (1, 2, 3) for key in first.position.offsets)
    saved = tmp_path / "position.json"
    first.position.save(str(saved))
    assert '"1/' in saved.read_text() or '"2/' in saved.read_text() or '"3/' in saved.read_text()

    # More rows, also of a new day (a partition the position does not name).
    later = [date(2026, 12, 10)] + DAYS
    table.append(day_rows(90, 20, days=later))
    position = inlet.Position.load(str(saved))
    resumed = table.scan(start=position)
    assert len(resumed._requests) > 1, "a position midway should resume streams from different offsets"
    rest = resumed.to_arrow().column("n").to_pylist()
    assert sorted(consumed + rest) == list(range(110)), "a row was lost or read twice"
    # Every stream that has rows is now at its end (an empty one is not named).
    assert resumed.position.offsets == {k: o for k, o in table.offsets().items() if o}

    # Resuming only one partition reads only its rest.
    one = table.scan(start=inlet.Position.load(str(saved)), partitions=[NAMES[1]]).to_arrow()
    assert set(one.column("day").to_pylist()) <= {DAYS[1]}
    assert sorted(one.column("n").to_pylist()) == sorted(n for n in rest if day_of(n) == DAYS[1])

    # A position of the table's current end reads nothing; a position of another kind of
    # table is refused.
    assert table.scan(start=inlet.Position(table.offsets())).to_arrow().num_rows == 0
    with pytest.raises(inlet.InvalidInput, match="unpartitioned"):
        table.scan(start=inlet.Position({0: 1}))
    plain = client.create_table(f"{db}.plain", SCHEMA)
    with pytest.raises(inlet.InvalidInput, match="no partition key"):
        plain.scan(start=position)


def day_of(n: int) -> date:
    """The day ``day_rows`` gave row ``n`` in the resume test (rows from 90 on had 4 days)."""
    if n < 90:
        return DAYS[n % 3]
    return ([date(2026, 12, 10)] + DAYS)[n % 4]


def test_follow_of_every_partition_picks_up_new_partitions(client, db):
    table = partitioned(client, db)
    table.append(day_rows(0, 3))
    scan = table.scan(start="latest", follow=True)
    closer = threading.Timer(FOLLOW_TIMEOUT_SECONDS, scan.close)  # a missing batch fails, not hangs
    closer.daemon = True
    closer.start()
    new_day = [date(2027, 1, 1)]
    appender = threading.Timer(0.2, table.append, args=(day_rows(100, 2, days=new_day),))
    appender.start()
    got = []
    for batch in scan:
        got.extend(batch.column("n").to_pylist())
        if len(got) >= 2:
            break
    scan.close()
    closer.cancel()
    appender.join(FOLLOW_TIMEOUT_SECONDS)
    assert got == [100, 101]
    new = table.describe().partition("2027-01-01")
    assert new.id == 4 and [key[0] for key in scan.position.offsets] == [4]


def test_producer_results_carry_the_partition(client, db):
    table = partitioned(client, db)
    with table.producer(linger=0.05) as producer:
        futures = [producer.send(day_rows(i, 1, days=[DAYS[2]])) for i in range(5)]
        producer.flush()
    results = [f.result(timeout=0) for f in futures]
    assert all(r[0].partition_id == 1 and r[0].rows == 1 for r in results)
    assert sorted(r[0].base_offset for r in results) == list(range(5))


def test_async_partitions_scan_and_resume(server, db):
    async def main():
        async with inlet.aio.connect(server.url) as client:
            table = await client.create_table(f"{db}.t", SCHEMA, buckets=2, partition_key="day")
            created = await table.create_partitions([NAMES[2]])
            assert [(p.id, p.rows) for p in created] == [(1, 0)]
            ranges = await table.append(day_rows(0, 30))
            assert sorted({r.partition_id for r in ranges}) == [1, 2, 3]
            assert {p.name: p.rows for p in await table.partitions()} == dict.fromkeys(NAMES, 10)
            one = await table.scan(partitions=[NAMES[0]]).to_arrow()
            assert one.num_rows == 10 and set(one.column("day").to_pylist()) == {DAYS[0]}
            with pytest.raises(inlet.PartitionNotFound):
                await table.scan(partitions=["nope"]).to_arrow()

            first = table.scan(limit=12)
            head = (await first.to_arrow()).column("n").to_pylist()
            await table.append(day_rows(30, 9))
            rest = (await table.scan(start=first.position).to_arrow()).column("n").to_pylist()
            assert sorted(head + rest) == list(range(39))
            assert set((await table.offsets()).keys()) == {(p, b) for p in (1, 2, 3) for b in (0, 1)}

    asyncio.run(asyncio.wait_for(main(), 30.0))


def test_partitioned_primary_key_table_upserts_deletes_and_looks_up_per_partition(client, db):
    schema = pa.schema([
        pa.field("day", pa.date32(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("v", pa.int64()),
    ])
    table = client.create_table(
        f"{db}.state", schema, buckets=2, primary_key=["day", "id"], partition_key="day"
    )
    assert table.describe().bucket_key == ["id"], "the bucket key is the key less the partition"
    rows = pa.table(
        {"day": [DAYS[0], DAYS[0], DAYS[1]], "id": [1, 2, 1], "v": [10, 20, 100]}, schema=schema
    )
    table.upsert(rows)
    table.upsert(pa.table({"day": [DAYS[0]], "id": [1], "v": [11]}, schema=schema))
    # The key of a day with no partition has no row: deleting it creates nothing.
    table.delete(pa.table({"day": [DAYS[0], DAYS[2]], "id": [2, 9]}))
    assert sorted(p.name for p in table.partitions()) == NAMES[:2]

    keys = pa.table({"day": [DAYS[0], DAYS[1], DAYS[0], DAYS[2]], "id": [1, 1, 2, 1]})
    found_rows, found = table.lookup(keys)
    assert found == [True, True, False, False]
    assert found_rows.column("v").to_pylist() == [11, 100]
    current = table.scan(start="snapshot", partitions=[NAMES[0]]).to_arrow()
    assert current.column("id").to_pylist() == [1]
    assert current.column("v").to_pylist() == [11]


def test_fetch_reader_reads_the_partition_id():
    from inlet._fetch import fetched_batches, parse_fetch_response
    from inlet._proto import inlet_pb2 as pb
    from inlet.arrow import table_to_ipc

    ipc = table_to_ipc(pa.table({"_bucket": pa.array([3], pa.uint32()), "_offset": pa.array([7], pa.uint64())}))
    message = pb.FetchResponse(
        bucket=3, partition_id=2**20 + 5, batch_ipc=ipc, high_watermark=8
    ).SerializeToString()
    parsed = parse_fetch_response(message)
    assert (parsed.bucket, parsed.partition_id, parsed.high_watermark) == (3, 2**20 + 5, 8)
    assert bytes(parsed.batch_ipc) == ipc
    # Absent (a table without a partition key, or an older server): partition 0.
    assert parse_fetch_response(pb.FetchResponse(bucket=1).SerializeToString()).partition_id == 0

    ((batch, mark, partition),) = fetched_batches(parsed)
    assert (batch.num_rows, mark, partition) == (1, None, 2**20 + 5)
    position = inlet.Position()
    position.advance(batch, mark, partition)
    assert position.offsets == {(2**20 + 5, 3): 8}


def test_partitioned_positions_in_json():
    # Unpartitioned positions keep their format, so positions saved before still load.
    assert inlet.Position({3: 7}).to_json() == '{"offsets": {"3": 7}}'
    assert inlet.Position.from_json('{"offsets": {"3": 7}}') == inlet.Position({3: 7})

    position = inlet.Position({(2, 1): 5, (1, 0): 9, (10, 0): 1})
    assert position.to_json() == '{"offsets": {"1/0": 9, "2/1": 5, "10/0": 1}}'
    assert inlet.Position.from_json(position.to_json()) == position
    assert position.partitioned and not inlet.Position({3: 7}).partitioned
    assert position.partition_offsets(2) == {1: 5}
    for broken, why in [
        ('{"offsets": {"1/0": 1, "3": 2}}', "mixes"),
        ('{"offsets": {"0/1": 1}}', "partition 0"),
        ('{"offsets": {"1/-1": 1}}', "negative"),
        ('{"offsets": {"1/x": 1}}', "not a saved position"),
    ]:
        with pytest.raises(inlet.InvalidInput, match=why):
            inlet.Position.from_json(broken)
