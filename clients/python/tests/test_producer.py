"""The batching producer: sends land in order with their own offsets, memory stays bounded,
and appends whose outcome is unknown across a server crash land exactly once."""

import threading
import time

import pyarrow as pa
import pytest

import inlet


def rows(start: int, count: int) -> pa.Table:
    return pa.table({"seq": pa.array(range(start, start + count), pa.int64())})


def test_sends_are_batched_in_order_with_their_own_offsets(client, db):
    table = client.create_table(f"{db}.t", pa.schema([("seq", pa.int64())]))
    with table.producer(linger=0.05) as producer:
        futures = [producer.send(rows(i * 10, 10)) for i in range(200)]
        producer.flush()
        results = [f.result(timeout=0) for f in futures]
    for i, ranges in enumerate(results):
        assert ranges == [inlet.BucketRange(0, i * 10, 10, ranges[0].committed_at)]
    commits = {r[0].committed_at for r in results}
    assert len(commits) < 50, f"{len(commits)} appends for 200 sends: nothing was batched"
    assert table.scan().to_arrow().column("seq").to_pylist() == list(range(2000))


def test_pandas_and_polars_sends_and_closing(client, db):
    import pandas as pd
    import polars as pl

    table = client.create_table(f"{db}.t", pa.schema([("seq", pa.int64()), ("s", pa.string())]))
    producer = table.producer()
    producer.send(pd.DataFrame({"seq": [1, 2], "s": ["a", None]}))
    producer.send(pl.DataFrame({"seq": [3], "s": ["ç"]}))
    producer.send(pa.table({"seq": pa.array([], pa.int64()), "s": pa.array([], pa.string())}))
    producer.close()
    with pytest.raises(inlet.ProducerClosed):
        producer.send(rows(0, 1))
    assert table.scan().to_arrow().column("s").to_pylist() == ["a", None, "ç"]


def test_failed_appends_fail_their_futures_and_flush(client, db):
    table = client.create_table(f"{db}.t", pa.schema([("seq", pa.int64())]))
    producer = table.producer()
    table.drop()
    future = producer.send(rows(0, 3))
    with pytest.raises(inlet.NotFound):
        producer.flush()
    with pytest.raises(inlet.NotFound):
        future.result(timeout=10)
    producer.flush()  # the error was reported once
    producer.close()


def test_buffer_is_bounded_while_the_server_is_down(own_server, db):
    with inlet.connect(own_server.url) as client:
        table = client.create_table(f"{db}.t", pa.schema([("seq", pa.int64())]))
        producer = table.producer(linger=0, max_batch_bytes=4096, max_buffered_bytes=8192, block_timeout=0.5)
        own_server.stop()
        first = producer.send(rows(0, 500))  # 4000 bytes: in flight, retrying
        second = producer.send(rows(500, 500))  # fills the buffer
        started = time.monotonic()
        with pytest.raises(inlet.BufferFull, match="stayed full for 0.5s"):
            producer.send(rows(1000, 500))
        assert 0.4 < time.monotonic() - started < 5
        own_server.start()
        producer.flush()
        assert first.result(timeout=0)[0].base_offset == 0
        assert second.result(timeout=0)[0].base_offset == 500
        producer.close()
        assert table.scan().to_arrow().column("seq").to_pylist() == list(range(1000))


def test_appends_survive_a_server_crash_exactly_once(own_server, db):
    """The server is killed (SIGKILL) and restarted on the same store and port while a
    producer and a table handle keep appending: appends whose reply was lost are resent with
    their sequence number, and the server answers a resend of a committed one with its
    original offsets. Every row is there once."""
    sends = 400
    with inlet.connect(own_server.url) as client:
        table = client.create_table(f"{db}.t", pa.schema([("seq", pa.int64())]), buckets=2)
        direct = client.table(f"{db}.t")
        errors: list[BaseException] = []

        def direct_appends() -> None:
            try:
                for i in range(100):
                    direct.append(rows(1_000_000 + i * 5, 5))
            except BaseException as error:  # reported by the test thread
                errors.append(error)

        appender = threading.Thread(target=direct_appends)
        appender.start()
        with table.producer(linger=0.002, max_batch_bytes=2048) as producer:
            futures = []
            for i in range(sends):
                futures.append(producer.send(rows(i * 10, 10)))
                if i == sends // 4:
                    own_server.kill()
                if i == sends // 2:
                    own_server.start()
                time.sleep(0.002)
            producer.flush()
        appender.join(120)
        assert not errors, errors
        assert all(f.exception(timeout=0) is None for f in futures)
        seqs = table.scan(columns=["seq"]).to_arrow().column("seq").to_pylist()
        expected = list(range(sends * 10)) + [1_000_000 + i for i in range(500)]
        assert len(seqs) == len(expected), f"{len(seqs) - len(expected):+} rows: duplicated or lost"
        assert sorted(seqs) == expected
