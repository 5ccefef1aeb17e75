"""Primary-key tables: upserts, deletes and lookups round-trip; each merge engine keeps the
rows a model of it keeps; the changelog replays to exactly what lookups return; the
producer's upserts and deletes stay in order and land once across a server crash; wrong
operations and bad keys raise their classes."""

import random
import threading
import time

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import inlet

SCHEMA = pa.schema(
    [pa.field("id", pa.int64(), nullable=False), ("name", pa.string()), pa.field("v", pa.int64(), nullable=False)]
)


def users(ids, names, versions=None) -> pa.Table:
    versions = versions if versions is not None else [0] * len(ids)
    return pa.table({"id": ids, "name": names, "v": versions}, schema=SCHEMA)


def lookup_state(table: inlet.Table, ids: list[int]) -> dict[int, tuple]:
    """The current (name, v) of every key that has a row."""
    rows, found = table.lookup({"id": ids})
    assert len(found) == len(ids) and rows.num_rows == sum(found)
    got = rows.to_pylist()
    assert [r["id"] for r in got] == [i for i, hit in zip(ids, found) if hit], "rows come in key order"
    return {r["id"]: (r["name"], r["v"]) for r in got}


def replay(changelog: pa.Table) -> dict[int, tuple]:
    """The key state the changelog rebuilds; every before image must be the key's row."""
    state: dict[int, tuple] = {}
    rows = sorted(changelog.to_pylist(), key=lambda r: (r["_bucket"], r["_offset"], r["_change_type"] != "-U"))
    for r in rows:
        key, value, kind = r["id"], (r["name"], r["v"]), r["_change_type"]
        if kind == "+I":
            assert key not in state, f"+I of a present key: {r}"
            state[key] = value
        elif kind in ("-U", "-D"):
            assert state.get(key) == value, f"{kind} whose before image is not the key's row: {r}"
            del state[key]
        elif kind == "+U":
            assert key not in state, f"+U without its -U: {r}"
            state[key] = value
        else:
            raise AssertionError(f"unknown change type {kind!r}")
    return state


def test_upsert_delete_lookup_round_trip(client, db):
    table = client.create_table(f"{db}.users", SCHEMA, buckets=4, primary_key="id")
    info = table.describe()
    assert info.primary_key == ["id"] and info.is_primary_key_table and info.bucket_key == ["id"]
    assert not client.create_table(f"{db}.log", SCHEMA).describe().is_primary_key_table

    written = table.upsert(users([1, 2, 3], ["ann", "bob", "cy"]))
    assert sum(r.rows for r in written) == 3
    table.upsert(pd.DataFrame({"id": [2], "name": ["bobby"], "v": [1]}))  # pandas
    table.upsert(pl.DataFrame({"id": [4], "name": [None], "v": [2]}))  # polars, a null
    deleted = table.delete({"id": [3, 99]})  # a present and an absent key
    assert sum(r.rows for r in deleted) == 2, "every delete gets an offset, also of an absent key"

    rows, found = table.lookup({"id": [4, 3, 2, 1, 99]})
    assert found == [True, False, True, True, False]
    assert rows.column_names == ["id", "name", "v", "_offset", "_bucket"]
    assert [(r["id"], r["name"], r["v"]) for r in rows.to_pylist()] == [(4, None, 2), (2, "bobby", 1), (1, "ann", 0)]
    result = table.lookup(pa.table({"id": pa.array([2, 5], pa.int32())}), columns=["name"])  # int32 keys convert
    assert result.rows.column_names == ["name", "_offset", "_bucket"]
    assert result.rows.column("name").to_pylist() == ["bobby"] and result.missing == [1]

    # `_offset` of a looked-up row is the changelog offset of the write that made it.
    row = table.lookup({"id": [2]}).rows.to_pylist()[0]
    changes = table.scan().to_arrow().to_pylist()
    writer = [c for c in changes if c["id"] == 2 and c["_change_type"] == "+U"]
    assert [(c["_bucket"], c["_offset"]) for c in writer] == [(row["_bucket"], row["_offset"])]

    # Deleting with whole rows sends only their keys; an empty lookup is no error.
    table.delete(users([1], ["whatever"]))
    assert lookup_state(table, [1, 2, 3, 4]) == {2: ("bobby", 1), 4: (None, 2)}
    empty = table.lookup({"id": []})
    assert empty.found == [] and empty.rows.num_rows == 0
    assert empty.rows.column_names == ["id", "name", "v", "_offset", "_bucket"]


# Each engine's rule for an upsert of `new` over the current row `old` (None: no row):
# whether the new row replaces it.
ENGINES = {
    "last_row": ({}, lambda old, new: True),
    "first_row": ({}, lambda old, new: old is None),
    "versioned": ({"merge.version-column": "v"}, lambda old, new: old is None or new[1] > old[1]),
}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_merge_engines_match_a_model_and_the_changelog_replays_to_lookups(client, db, engine):
    options, replaces = ENGINES[engine]
    table = client.create_table(
        f"{db}.t", SCHEMA, buckets=3, primary_key=["id"], options={"merge.engine": engine, **options}
    )
    assert table.describe().options["merge.engine"] == engine
    rng = random.Random(7)
    model: dict[int, tuple] = {}
    keys = list(range(20))
    for step in range(30):
        if rng.random() < 0.25:
            ids = rng.sample(keys, 3)
            table.delete({"id": ids})
            for key in ids:
                model.pop(key, None)
            continue
        ids = rng.sample(keys, 5)
        rows = [(f"n{step}-{key}", rng.randrange(10)) for key in ids]
        table.upsert(users(ids, [r[0] for r in rows], [r[1] for r in rows]))
        for key, row in zip(ids, rows):
            if replaces(model.get(key), row):
                model[key] = row
    assert lookup_state(table, keys) == model, f"{engine}: lookups differ from the model"
    changelog = table.scan().to_arrow()
    assert changelog.schema.names[-1] == "_change_type"
    assert replay(changelog) == model, f"{engine}: replaying the changelog differs from lookups"
    # Read in small limited pieces, each resuming from the last one's position, the
    # changelog comes back whole: a limit never ends a piece between an update's -U and +U.
    def key(row: dict) -> tuple:
        return row["_bucket"], row["_offset"], row["_change_type"], row["id"], row["name"], row["v"]

    pieces, position = [], inlet.Position()
    for _ in range(changelog.num_rows):
        scan = table.scan(start=position, limit=3)
        piece = scan.to_arrow()
        if piece.num_rows == 0:
            break
        assert piece.num_rows in (1, 2, 3, 4), "at most 3 rows, or 4 to keep a -U with its +U"
        pieces.extend(piece.to_pylist())
        position = scan.position
    assert sorted(map(key, pieces)) == sorted(map(key, changelog.to_pylist()))


def test_changelog_has_every_change_type_and_omits_update_before(client, db):
    table = client.create_table(f"{db}.t", SCHEMA, buckets=1, primary_key="id")
    empty = table.scan().to_arrow()
    assert empty.num_rows == 0 and empty.column_names == ["id", "name", "v", "_bucket", "_offset", "_timestamp", "_change_type"]
    table.upsert(users([1, 2], ["a", None]))
    table.upsert(users([1], ["b"]))
    table.delete({"id": [2, 3]})
    expected = [
        (0, "+I", 1, "a"),
        (1, "+I", 2, None),
        (2, "-U", 1, "a"),
        (2, "+U", 1, "b"),
        (3, "-D", 2, None),
    ]

    def changes(scan: inlet.Scan) -> list[tuple]:
        return [(r["_offset"], r["_change_type"], r.get("id"), r["name"]) for r in scan.to_arrow().to_pylist()]

    assert changes(table.scan()) == expected, "offset 4 (delete of an absent key) changes nothing"
    assert changes(table.scan(omit_update_before=True)) == [c for c in expected if c[1] != "-U"]
    pruned = table.scan(columns=["name"], start=2)
    assert changes(pruned) == [(2, "-U", None, "a"), (2, "+U", None, "b"), (3, "-D", None, None)]
    assert pruned.position == inlet.Position({0: 4})


def test_producer_upserts_and_deletes_in_order(client, db):
    table = client.create_table(f"{db}.t", SCHEMA, buckets=1, primary_key="id")
    with table.producer(linger=0.05) as producer:
        futures = []
        for i in range(50):
            futures.append(producer.upsert(users([i], [f"a{i}"])))
            if i % 2:
                futures.append(producer.delete({"id": [i]}))  # after its upsert: gone
        for i in range(0, 50, 10):
            futures.append(producer.delete({"id": [i]}))
            futures.append(producer.upsert(users([i], [f"b{i}"])))  # after its delete: back
        producer.flush()
        offsets = [f.result(timeout=0)[0].base_offset for f in futures]
    assert offsets == list(range(len(futures))), "each send has its own offset, in send order"
    assert lookup_state(table, list(range(50))) == {
        i: (f"b{i}" if i % 10 == 0 else f"a{i}", 0) for i in range(0, 50, 2)
    }
    with pytest.raises(inlet.WrongOperation):
        with table.producer() as producer:
            producer.send(users([1], ["x"])).result(timeout=30)


def test_upserts_and_deletes_survive_a_server_crash_exactly_once(own_server, db):
    """A producer upserts and deletes while the server is killed and restarted: writes whose
    reply was lost are resent with their sequence, and land once. Every write row takes one
    changelog offset (also a delete of an absent key), so a duplicate shows in the offsets."""
    with inlet.connect(own_server.url) as client:
        table = client.create_table(f"{db}.t", SCHEMA, buckets=2, primary_key="id")
        sends, written = 300, 0
        with table.producer(linger=0.002, max_batch_bytes=2048) as producer:
            futures = []
            for i in range(sends):
                futures.append(producer.upsert(users([i, i + 1], [f"n{i}", f"m{i}"], [i, i])))
                written += 2
                if i % 3 == 0:
                    futures.append(producer.delete({"id": [i - 1]}))
                    written += 1
                if i == sends // 4:
                    own_server.kill()
                if i == sends // 2:
                    own_server.start()
                time.sleep(0.002)
            producer.flush()
        assert all(f.exception(timeout=0) is None for f in futures)
        assert sum(table.offsets("latest").values()) == written, "a write was lost or applied twice"
        model: dict[int, tuple] = {}
        for i in range(sends):
            model[i], model[i + 1] = (f"n{i}", i), (f"m{i}", i)
            if i % 3 == 0:
                model.pop(i - 1, None)
        assert lookup_state(table, list(range(-1, sends + 1))) == model
        assert replay(table.scan().to_arrow()) == model


def test_wrong_operations_and_bad_keys(client, db):
    pk = client.create_table(f"{db}.pk", SCHEMA, primary_key="id")
    log = client.create_table(f"{db}.log", SCHEMA)
    with pytest.raises(inlet.WrongOperation, match="write it with upsert and delete") as raised:
        pk.append(users([1], ["a"]))
    assert raised.value.code == "INVALID_ARGUMENT" and isinstance(raised.value, inlet.InvalidInput)
    with pytest.raises(inlet.WrongOperation, match="cannot upsert rows of table .*: it is a log table"):
        log.upsert(users([1], ["a"]))
    with pytest.raises(inlet.WrongOperation, match="cannot delete rows of table .*: it is a log table"):
        log.delete({"id": [1]})
    with pytest.raises(inlet.WrongOperation, match="has no primary key: lookups need one"):
        log.lookup({"id": [1]})
    with pytest.raises(inlet.InvalidKey, match="column `id` is string, expected int64"):
        pk.lookup({"id": ["1"]})  # refused before sending
    with pytest.raises(inlet.InvalidKey, match="`name` is not a key column here"):
        pk.lookup(users([1], ["a"]))
    with pytest.raises(inlet.InvalidKey, match="key column `id` has nulls"):
        pk.lookup({"id": pa.array([1, None], pa.int64())})
    with pytest.raises(inlet.SchemaMismatch, match="lacks non-nullable column `id`"):
        pk.delete({"name": ["a"]})
    with pytest.raises(inlet.InvalidInput, match="merge.engine` only applies to primary-key tables"):
        client.create_table(f"{db}.x", SCHEMA, options={"merge.engine": "first_row"})
    with pytest.raises(inlet.InvalidInput, match="needs `merge.version-column`"):
        client.create_table(f"{db}.y", SCHEMA, primary_key="id", options={"merge.engine": "versioned"})
    with pytest.raises(inlet.InvalidInput, match="primary-key column `name` is nullable"):
        client.create_table(f"{db}.z", SCHEMA, primary_key="name")
    assert pk.scan().to_arrow().num_rows == 0, "a refused write left rows behind"
    assert log.scan().to_arrow().num_rows == 0


def test_concurrent_lookups_read_their_writes(client, db):
    """A lookup that starts after an upsert's ack sees it, from any thread."""
    table = client.create_table(f"{db}.t", SCHEMA, buckets=2, primary_key="id")
    failures: list[str] = []

    def writer(base: int) -> None:
        handle = client.table(f"{db}.t")  # a producer of its own
        for i in range(20):
            handle.upsert(users([base + i % 5], [f"w{base}-{i}"], [i]))
            got = lookup_state(handle, [base + i % 5])
            if got != {base + i % 5: (f"w{base}-{i}", i)}:
                failures.append(f"{base}: {got}")

    threads = [threading.Thread(target=writer, args=(base,)) for base in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert len(lookup_state(table, list(range(5)) + list(range(100, 105)))) == 10


WIDE = pa.schema(
    [pa.field("id", pa.int64(), nullable=False), ("name", pa.string()), ("score", pa.int8()), ("tag", pa.string())]
)


def test_partial_updates_keep_the_other_columns(client, db):
    table = client.create_table(f"{db}.t", WIDE, buckets=2, primary_key="id")
    table.upsert({"id": [1, 2], "name": ["ann", "bob"], "score": [3, 5], "tag": ["a", "b"]})
    table.upsert({"id": [1, 3], "tag": ["new", "fresh"]}, partial=True)  # 3 is a new key
    with table.producer(linger=0.05) as producer:
        first = producer.upsert({"id": [2], "score": [7]}, partial=True)
        second = producer.upsert({"id": [1], "score": [8]}, partial=True)  # batched with the first
        whole = producer.upsert({"id": [4], "name": ["dee"], "score": [1], "tag": ["d"]})
        producer.flush()
    assert first.result(timeout=0) and second.result(timeout=0) and whole.result(timeout=0)
    rows = {r["id"]: (r["name"], r["score"], r["tag"]) for r in table.lookup({"id": [1, 2, 3, 4]}).rows.to_pylist()}
    assert rows == {1: ("ann", 8, "new"), 2: ("bob", 7, "b"), 3: (None, None, "fresh"), 4: ("dee", 1, "d")}
    changes = [(r["id"], r["tag"], r["_change_type"]) for r in table.scan(columns=["id", "tag"]).to_arrow().to_pylist()]
    assert (1, "a", "-U") in changes and (1, "new", "+U") in changes, "the changelog shows merged rows"

    first_row = client.create_table(f"{db}.f", WIDE, primary_key="id", options={"merge.engine": "first_row"})
    with pytest.raises(inlet.WrongOperation, match="partial updates need `last_row` or `aggregation`"):
        first_row.upsert({"id": [1], "tag": ["x"]}, partial=True)


def test_aggregation_engine_and_a_refused_overflow(client, db):
    table = client.create_table(
        f"{db}.t", WIDE, primary_key="id",
        options={"merge.engine": "aggregation", "merge.aggregate.score": "sum", "merge.aggregate.name": "last_value"},
    )
    table.upsert({"id": [1, 2], "name": ["a", "b"], "score": [100, 1], "tag": ["x", "y"]})
    table.upsert({"id": [1], "name": [None], "score": [20], "tag": [None]})
    assert lookup_row(table, 1) == (None, 120, "x"), "sum; last_value keeps a null; tag: last non-null (default)"
    with pytest.raises(inlet.InvalidInput, match="column `score`: the sum overflows"):
        table.upsert({"id": [1], "score": [100]}, partial=True)
    assert lookup_row(table, 1) == (None, 120, "x"), "the refused upsert changed nothing"
    kinds = table.scan().to_arrow().column("_change_type").to_pylist()
    assert kinds == ["+I", "+I", "-U", "+U"]


def lookup_row(table: inlet.Table, key: int) -> tuple:
    (row,) = table.lookup({"id": [key]}).rows.to_pylist()
    return row["name"], row["score"], row["tag"]


def test_snapshot_scan_is_the_current_rows_and_resumes_at_its_offset(client, db):
    table = client.create_table(f"{db}.snap", SCHEMA, buckets=3, primary_key="id")
    rng = random.Random(5)
    model: dict[int, tuple] = {}
    for round in range(30):
        ids = rng.sample(range(40), 4)
        if round % 4 == 3:
            table.delete({"id": ids})
            for i in ids:
                model.pop(i, None)
        else:
            table.upsert(users(ids, [f"r{round}"] * 4, [round] * 4))
            model.update({i: (f"r{round}", round) for i in ids})

    scan = table.scan(start=inlet.SNAPSHOT)
    rows = scan.to_arrow()
    got = rows.to_pylist()
    assert {r["_change_type"] for r in got} == {"+I"}
    assert {r["id"]: (r["name"], r["v"]) for r in got} == model and len(got) == len(model)
    by_bucket: dict[int, list[int]] = {}
    for r in got:
        by_bucket.setdefault(r["_bucket"], []).append(r["id"])
    assert all(ids == sorted(ids) for ids in by_bucket.values()), "each bucket in key order"
    # Each bucket's position is the offset its snapshot is as of: the tail, here, for every
    # bucket, those without rows too.
    tails = table.offsets()
    assert scan.position == inlet.Position(tails)

    # Resuming from there reads only what changed after the snapshot.
    table.upsert(users([1000], ["new"]))
    changes = table.scan(start=scan.position).to_arrow().to_pylist()
    assert [(c["_change_type"], c["id"]) for c in changes] == [("+I", 1000)]

    # A column-pruned snapshot, and one cut short by a limit: its position does not move,
    # so a resume reads the snapshot again instead of missing its rest.
    assert table.scan(start="snapshot", columns=["name"]).to_arrow().column_names == [
        "name", "_bucket", "_offset", "_timestamp", "_change_type"
    ]
    cut = table.scan(start="snapshot", buckets=[0], limit=1)
    assert cut.to_arrow().num_rows == 1 and cut.position == inlet.Position()

    # A log table has no snapshot.
    log = client.create_table(f"{db}.log", SCHEMA)
    with pytest.raises(inlet.InvalidInput, match="has no primary key"):
        log.scan(start="snapshot").to_arrow()
