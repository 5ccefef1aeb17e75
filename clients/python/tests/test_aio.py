"""The asyncio API: the same operations as coroutines, following with `async for`, and the
asyncio producer."""

import asyncio

import pyarrow as pa
import pytest

import inlet
import inlet.aio

# Longest an asyncio test waits for anything before it fails.
TIMEOUT_SECONDS = 30.0


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, TIMEOUT_SECONDS))


def test_async_tables_append_scan_and_errors(server, db):
    async def main():
        async with inlet.aio.connect(server.url) as client:
            table = await client.create_table(f"{db}.t", pa.schema([("n", pa.int64()), ("s", pa.string())]), buckets=2)
            ranges = await table.append(pa.table({"n": [1, 2, 3], "s": ["a", "b", None]}))
            assert sum(r.rows for r in ranges) == 3
            back = await table.scan(columns=["s"]).to_arrow()
            assert back.num_rows == 3 and set(back.column("s").to_pylist()) == {"a", "b", None}
            assert back.column_names == ["s", "_bucket", "_offset", "_timestamp"]
            assert (await table.describe()).bucket_count == 2
            assert [t.name for t in await client.list_tables(db)] == ["t"]
            assert (await table.lake_status()).enabled is False
            assert sorted((await table.offsets("latest")).values()) == [0, 3]
            with pytest.raises(inlet.TableNotFound):
                await client.table(f"{db}.nope").describe()
            with pytest.raises(inlet.SchemaMismatch):
                await table.append(pa.table({"zzz": [1]}))

    run(main())


def test_async_follow_and_producer(server, db):
    async def main():
        async with inlet.aio.connect(server.url) as client:
            table = await client.create_table(f"{db}.t", pa.schema([("n", pa.int64())]))
            scan = table.scan(start="latest", follow=True)
            seen = []

            async def follow():
                async for batch in scan:
                    seen.extend(batch.column("n").to_pylist())
                    if len(seen) >= 100:
                        return

            follower = asyncio.ensure_future(follow())
            await asyncio.sleep(0.2)  # let the follow start at the tail
            async with table.producer(linger=0.01) as producer:
                results = [await producer.send(pa.table({"n": [i]})) for i in range(100)]
                await producer.flush()
            offsets = [(await r)[0].base_offset for r in results]
            assert offsets == list(range(100))
            await asyncio.wait_for(follower, TIMEOUT_SECONDS)
            assert seen == list(range(100))
            assert scan.position == inlet.Position({0: 100})
            with pytest.raises(inlet.ProducerClosed):
                await producer.send(pa.table({"n": [1]}))

    run(main())


def test_async_resume_reads_buckets_at_different_offsets(server, db):
    async def main():
        async with inlet.aio.connect(server.url) as client:
            table = await client.create_table(f"{db}.t", pa.schema([("n", pa.int64())]), buckets=2)
            for i in range(4):  # round-robin: appends alternate buckets
                await table.append(pa.table({"n": list(range(i * 5, i * 5 + 5))}))
            rest = await table.scan(start=inlet.Position({0: 5, 1: 2})).to_arrow()
            assert rest.num_rows == 5 + 8
            assert len(set(rest.column("n").to_pylist())) == 13

    run(main())


def test_async_primary_key_table(server, db):
    async def main():
        schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string())])
        async with inlet.aio.connect(server.url) as client:
            table = await client.create_table(
                f"{db}.pk", schema, buckets=2, primary_key=["id"], options={"merge.engine": "first_row"}
            )
            assert (await table.describe()).primary_key == ["id"]
            assert (await table.scan().to_arrow()).column_names[-1] == "_change_type"
            await table.upsert(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}, schema=schema))
            await table.upsert(pa.table({"id": [1], "name": ["ignored"]}, schema=schema))  # first_row keeps "a"
            await table.delete({"id": [2]})
            rows, found = await table.lookup({"id": [3, 2, 1]}, columns=["name"])
            assert found == [True, False, True] and rows.column("name").to_pylist() == ["c", "a"]
            async with table.producer(linger=0.01) as producer:
                upserted = await producer.upsert(pa.table({"id": [4], "name": ["d"]}, schema=schema))
                deleted = await producer.delete({"id": [3]})
                await producer.flush()
            assert sum(r.rows for r in await upserted) == 1 and sum(r.rows for r in await deleted) == 1
            kinds = (await table.scan(omit_update_before=True).to_arrow()).column("_change_type").to_pylist()
            assert sorted(kinds) == ["+I", "+I", "+I", "+I", "-D", "-D"]
            assert (await table.lookup({"id": [1, 2, 3, 4]})).found == [True, False, False, True]
            with pytest.raises(inlet.WrongOperation):
                await table.append(pa.table({"id": [9], "name": ["x"]}, schema=schema))
            with pytest.raises(inlet.WrongOperation, match="partial updates need"):
                await table.upsert({"id": [1], "name": ["y"]}, partial=True)  # first_row keeps rows whole
            log = await client.create_table(f"{db}.log", schema)
            with pytest.raises(inlet.WrongOperation):
                await log.lookup({"id": [1]})

    run(main())
