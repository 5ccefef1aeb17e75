"""Following a table delivers batches as they are committed; a consumer saves its position
and resumes from it without losing or repeating a row."""

import threading
import time

import pyarrow as pa

import inlet

# Longest a test waits for a followed batch before it fails (closing the scan).
FOLLOW_TIMEOUT_SECONDS = 20.0


def closing_after(scan, seconds: float) -> threading.Timer:
    """Closes ``scan`` after ``seconds`` so a missing batch fails the test instead of hanging."""
    timer = threading.Timer(seconds, scan.close)
    timer.daemon = True
    timer.start()
    return timer


def test_follow_yields_each_batch_as_it_arrives(client, db):
    table = client.create_table(f"{db}.t", pa.schema([("n", pa.int64())]))
    table.append(pa.table({"n": [-1]}))  # before the follow starts: not delivered from latest
    scan = table.scan(start="latest", follow=True)
    timer = closing_after(scan, FOLLOW_TIMEOUT_SECONDS)
    seen, appenders = [], []
    batches = iter(scan)
    for n in range(3):
        # The next append is made only after the previous one was delivered: the follow
        # really streams rather than collecting until the end.
        appender = threading.Timer(0.05, table.append, args=(pa.table({"n": [n, n]}),))
        appender.start()
        appenders.append(appender)
        batch = next(batches)
        seen.extend(batch.column("n").to_pylist())
    for appender in appenders:
        appender.join(FOLLOW_TIMEOUT_SECONDS)
    scan.close()
    timer.cancel()
    assert seen == [0, 0, 1, 1, 2, 2]
    assert scan.position == inlet.Position({0: 7})


def test_consumer_resumes_from_a_saved_position(client, db, tmp_path):
    # Round-robin over 3 buckets: each append lands whole in one bucket.
    table = client.create_table(f"{db}.t", pa.schema([("n", pa.int64())]), buckets=3)
    for i in range(6):
        table.append(pa.table({"n": list(range(i * 10, i * 10 + 10))}))

    first = table.scan()
    consumed = []
    for batch in first:
        consumed.extend(batch.column("n").to_pylist())
        if len(consumed) >= 20:
            break
    first.close()
    saved = tmp_path / "position.json"
    first.position.save(str(saved))
    # Buckets stand at different offsets now: the resume reads them with separate fetches.
    assert len(set(first.position.offsets.values()) | {0}) >= 2

    for i in range(6, 9):
        table.append(pa.table({"n": list(range(i * 10, i * 10 + 10))}))
    resumed = table.scan(start=inlet.Position.load(str(saved))).to_arrow()
    rest = resumed.column("n").to_pylist()
    assert sorted(consumed + rest) == list(range(90)), "a row was lost or read twice"

    # Following from the saved position delivers the rest, then new rows.
    follow = table.scan(start=inlet.Position.load(str(saved)), follow=True)
    timer = closing_after(follow, FOLLOW_TIMEOUT_SECONDS)
    got = []
    for batch in follow:
        got.extend(batch.column("n").to_pylist())
        if len(got) == len(rest):
            table.append(pa.table({"n": [1000]}))
        if 1000 in got:
            break
    follow.close()
    timer.cancel()
    assert sorted(got) == sorted(rest + [1000])
    assert sum(follow.position.offsets.values()) == 91


def test_position_survives_json(tmp_path):
    position = inlet.Position({0: 5, 7: 123})
    path = tmp_path / "p.json"
    position.save(str(path))
    assert inlet.Position.load(str(path)) == position
    try:
        inlet.Position.from_json('{"offsets": {"0": -1}}')
    except inlet.InvalidInput as error:
        assert "negative" in str(error)
    else:
        raise AssertionError("a negative offset was accepted")


def test_close_from_another_thread_ends_a_blocked_follow(client, db):
    """The iterating thread waits for rows that never come; close() from another thread
    ends its iteration promptly (the fetch is read on the iterating thread itself)."""
    table = client.create_table(f"{db}.t", pa.schema([("n", pa.int64())]))
    scan = table.scan(start="latest", follow=True)
    closer = threading.Timer(0.3, scan.close)
    closer.start()
    started = time.monotonic()
    assert list(scan) == []
    assert time.monotonic() - started < 5, "close() did not wake the blocked iteration"
    closer.join()
