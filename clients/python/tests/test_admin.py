"""Databases and tables: create (schema from pyarrow, options, bucket keys), list, describe,
alter, drop; node and lake status; the Iceberg catalog settings."""

import pyarrow as pa
import pytest

import inlet


def test_databases_and_tables_lifecycle(client, db):
    created = client.create_database(db, comment="for tests")
    assert created.name == db and created.comment == "for tests" and created.id > 0
    assert db in [d.name for d in client.list_databases()]
    assert client.get_database(db).id == created.id
    assert client.create_database(db, if_not_exists=True).id == created.id

    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string())])
    table = client.create_table(f"{db}.users", schema, buckets=4, bucket_key=["id"],
                                options={"lake.enabled": False}, comment="people")
    info = table.describe()
    assert (info.database, info.name, info.full_name) == (db, "users", f"{db}.users")
    assert info.schema.equals(schema)
    assert not info.schema.field("id").nullable
    assert info.bucket_count == 4 and info.bucket_key == ["id"]
    assert info.options.get("lake.enabled") == "false" and not info.lake_enabled
    assert info.comment == "people"
    assert [(b.bucket, b.earliest, b.latest) for b in info.buckets] == [(b, 0, 0) for b in range(4)]
    assert [t.name for t in client.list_tables(db)] == ["users"]

    table.append(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}))
    assert sum(b.latest for b in table.describe().buckets) == 3

    # ALTER: options and comment change; fixed and unknown options are refused.
    altered = table.alter(options={"lake.enabled": True, "lake.freshness": "1m"}, comment="staff")
    assert altered.lake_enabled and altered.options["lake.freshness"] == "1m"
    assert table.describe().comment == "staff"
    assert "lake.freshness" not in table.alter(unset="lake.freshness").options
    with pytest.raises(inlet.InvalidInput, match="fixed when the table is created"):
        table.alter(options={"merge.engine": "first_row"})
    with pytest.raises(inlet.InvalidInput, match="unknown table option"):
        table.alter(options={"lake.colour": "blue"})
    assert table.describe().comment == "staff", "a refused alteration changes nothing"

    table.drop(purge=True)
    with pytest.raises(inlet.TableNotFound):
        table.describe()
    table.drop(if_exists=True)
    client.drop_database(db)
    with pytest.raises(inlet.DatabaseNotFound):
        client.get_database(db)


def test_a_lake_table_refuses_a_column_iceberg_cannot_hold(client, db):
    schema = pa.schema([("id", pa.int64()), ("hits", pa.uint64())])
    with pytest.raises(inlet.InvalidInput, match="column `hits` has type UInt64, which the lake cannot hold"):
        client.create_table(f"{db}.counters", schema, options={"lake.enabled": True})
    # Without the lake the table is fine; turning the lake on later is refused the same way.
    table = client.create_table(f"{db}.counters", schema)
    with pytest.raises(inlet.InvalidInput, match="decimal\\(20, 0\\)"):
        table.alter(options={"lake.enabled": True})
    assert not table.describe().lake_enabled, "a refused alteration changes nothing"
    table.drop()


def test_bare_table_names_are_in_the_default_database(client, db):
    name = f"bare_{db}"
    table = client.create_table(name, pa.schema([("x", pa.int32())]))
    assert (table.database, table.name) == ("default", name)
    assert name in [t.name for t in client.list_tables("default")]
    table.drop()


def test_status_describes_the_node(client):
    status = client.status()
    assert status["index_owner"] is True
    assert set(status["roles"]) >= {"writer", "reader"}


def test_lake_status_and_catalog_settings(client, server, db):
    table = client.create_table(f"{db}.ev", pa.schema([("x", pa.int64())]), buckets=2,
                                options={"lake.enabled": True, "lake.freshness": "1s"})
    status = table.lake_status()
    assert status.enabled and status.database == db and status.table == "ev"
    assert [b.bucket for b in status.buckets] == [0, 1]
    catalog = table.iceberg_catalog()
    assert catalog.uri == f"{server.http_url}/iceberg"
    assert catalog.identifier == f"{db}.ev"
    assert catalog.pyiceberg_properties == {"uri": f"{server.http_url}/iceberg"}
    assert catalog.duckdb_attach_sql("lake") == (
        f"ATTACH '' AS lake (TYPE iceberg, ENDPOINT '{server.http_url}/iceberg', AUTHORIZATION_TYPE 'none')"
    )
    with pytest.raises(inlet.InvalidInput):
        catalog.duckdb_attach_sql("x; DROP")


def test_default_catalog_address_follows_the_serve_defaults():
    client = inlet.connect("http://10.1.2.3:7070")
    assert client.table("a.b").iceberg_catalog().uri == "http://10.1.2.3:7071/iceberg"
    client.close()


def test_added_columns_read_as_null_in_older_rows(client, db):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string())])
    table = client.create_table(f"{db}.evolving", schema, options={"lake.enabled": False})
    table.append(pa.table({"id": [1, 2], "name": ["a", "b"]}, schema=schema))
    before = table.describe().schema_id

    altered = table.alter(add_columns=[pa.field("score", pa.float64())])
    assert altered.schema_id == before + 1
    assert altered.schema.names == ["id", "name", "score"]
    # Producers with the new column and with the old columns only both work.
    table.append(pa.table({"id": [3], "name": ["c"], "score": [1.5]}))
    table.append(pa.table({"id": [4], "name": ["d"]}, schema=schema))
    rows = table.scan(columns=["id", "score"]).to_arrow().sort_by("id")
    assert rows.column("id").to_pylist() == [1, 2, 3, 4]
    assert rows.column("score").to_pylist() == [None, None, 1.5, None]

    with pytest.raises(inlet.InvalidInput, match="nullable"):
        table.alter(add_columns=[pa.field("rank", pa.int32(), nullable=False)])
    with pytest.raises(inlet.InvalidInput, match="duplicate column `name`"):
        table.alter(add_columns=[pa.field("name", pa.string())])
    assert table.describe().schema_id == before + 1


def test_widened_columns_read_under_the_new_type(client, db):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("rank", pa.int32())])
    table = client.create_table(f"{db}.widening", schema, options={"lake.enabled": False})
    table.append(pa.table({"id": [1, 2], "rank": [7, None]}, schema=schema))
    before = table.describe().schema_id
    # Another handle, whose cached schema is from before the widening.
    stale = client.table(f"{db}.widening")
    assert stale.schema.field("rank").type == pa.int32()

    altered = table.alter(widen_columns=[pa.field("rank", pa.int64())])
    assert altered.schema_id == before + 1
    assert altered.schema.field("rank").type == pa.int64()
    # A producer of the new type, with a value beyond int32, and one still sending int32.
    table.append(pa.table({"id": [3], "rank": [2**40]}))
    table.append(pa.table({"id": [4], "rank": [9]}, schema=schema))
    # The stale handle learns the new type instead of refusing a value beyond int32.
    stale.append(pa.table({"id": [5], "rank": [-(2**41)]}))
    rows = table.scan(columns=["id", "rank"]).to_arrow().sort_by("id")
    assert rows.schema.field("rank").type == pa.int64()
    assert rows.column("rank").to_pylist() == [7, None, 2**40, 9, -(2**41)]

    with pytest.raises(inlet.InvalidInput, match="cannot change from Int64 to Int32"):
        table.alter(widen_columns=[pa.field("rank", pa.int32())])
    with pytest.raises(inlet.InvalidInput, match="`missing` is not a column"):
        table.alter(widen_columns=[pa.field("missing", pa.int64())])
    assert table.describe().schema_id == before + 1


def test_renamed_and_dropped_columns_keep_older_rows_by_column_id(client, db):
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), ("tag", pa.string()), ("rank", pa.int32())]
    )
    table = client.create_table(
        f"{db}.reshaped", schema, bucket_key="id", options={"lake.enabled": False}
    )
    table.append(pa.table({"id": [1, 2], "tag": ["a", "b"], "rank": [7, 8]}, schema=schema))
    before = table.describe().schema_id
    # A handle cached before the change: an old producer.
    stale = client.table(f"{db}.reshaped")
    assert stale.schema.names == ["id", "tag", "rank"]

    altered = table.alter(drop_columns="rank", rename_columns={"tag": "label"})
    assert altered.schema_id == before + 1
    assert altered.schema.names == ["id", "label"]
    # The old producer's `tag` is the label; its `rank` is ignored.
    stale.append(pa.table({"id": [3], "tag": ["c"], "rank": [9]}, schema=schema))
    # A new `rank` is a new column: null in every row written before, the dropped values gone.
    table.alter(add_columns=[pa.field("rank", pa.int32())])
    table.append(pa.table({"id": [4], "label": ["d"], "rank": [10]}))
    rows = table.scan(columns=["id", "label", "rank"]).to_arrow().sort_by("id")
    assert rows.column("label").to_pylist() == ["a", "b", "c", "d"]
    assert rows.column("rank").to_pylist() == [None, None, None, 10]

    with pytest.raises(inlet.InvalidInput, match="`id` is in the bucket key"):
        table.alter(drop_columns=["id"])
    with pytest.raises(inlet.InvalidInput, match="`nope` is not a column"):
        table.alter(rename_columns={"nope": "x"})
    with pytest.raises(inlet.InvalidInput, match="duplicate column `rank`"):
        table.alter(rename_columns={"label": "rank"})


def test_an_added_column_has_a_doc_and_a_default_for_appends_that_leave_it_out(client, db):
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    table = client.create_table(f"{db}.tiered", schema, options={"lake.enabled": False})
    table.append(pa.table({"id": [1]}, schema=schema))
    tier = pa.field("tier", pa.int32(), metadata={"inlet.doc": "service tier", "inlet.default": "3"})
    altered = table.alter(add_columns=[tier])
    field = altered.schema.field("tier")
    assert field.metadata[b"inlet.doc"] == b"service tier"
    assert field.metadata[b"inlet.default"] == b"3"
    # An append without the column gets the default; one with it keeps its values; the row
    # written before the column existed stays null.
    table.append(pa.table({"id": [2]}, schema=schema))
    table.append(pa.table({"id": [3], "tier": pa.array([7], pa.int32())}))
    rows = table.scan(columns=["id", "tier"]).to_arrow().sort_by("id")
    assert rows.column("tier").to_pylist() == [None, 3, 7]
    with pytest.raises(inlet.InvalidInput, match="`gold` is no Int32 value"):
        table.alter(add_columns=[pa.field("rank", pa.int32(), metadata={"inlet.default": "gold"})])
