#!/usr/bin/env python3
"""Python client throughput beside the Rust client's, in one run on the same store.

1. `inlet bench --sections produce,fetch` (the Rust client, driving an embedded node over
   gRPC) loads and reads its 20-column wide table `bench.fetch` in a temporary directory and
   measures one producer's closed-loop appends of --batch-rows rows.
2. `inlet serve` is started on that directory (a fresh node: an empty read cache), and this
   client reads the same `bench.fetch` rows, in full and projected to c00 and c15: the first
   read of each is "cold", the median of three more "hot" (the Rust bench's cold read runs on a
   fresh node, its hot read right after). Then it appends rows of the same shape and batch
   size, with `table.append` (closed loop, like the Rust run) and with a `Producer`.

MB/s are Arrow IPC bytes (what the appends carried, what the fetches returned) per second, as
the Rust bench counts them. Figures, not a pass/fail test.

Usage: python clients/python/bench.py [--inlet target/release/inlet] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "tests"))

import inlet  # noqa: E402
from inlet import arrow  # noqa: E402
from conftest import Server  # noqa: E402

WIDE_COLUMNS = 20
PROJECTED = ["c00", "c15"]
# Distinct batches generated and sent round-robin, as the Rust bench's pool does.
POOL_BATCHES = 4


def default_binary() -> str:
    for build in ("release", "debug"):
        path = HERE.parent.parent / "target" / build / "inlet"
        if path.exists():
            return str(path)
    return "inlet"


def wide_batch(rows: int, first_id: int, rng: random.Random) -> pa.Table:
    """The Rust bench's wide rows (bench/src/data.rs): c00 an id, c01..c09 int64 below 10^i,
    c10..c14 float64, c15..c19 utf8 of 8 to 24 characters."""
    letters = string.ascii_lowercase + string.digits
    columns = {"c00": pa.array(range(first_id, first_id + rows), pa.int64())}
    for i in range(1, 10):
        bound = 10**i
        columns[f"c{i:02}"] = pa.array([rng.randrange(bound) for _ in range(rows)], pa.int64())
    for i in range(10, 15):
        columns[f"c{i:02}"] = pa.array([rng.random() * 1000 for _ in range(rows)], pa.float64())
    for i in range(15, WIDE_COLUMNS):
        columns[f"c{i:02}"] = pa.array(
            ["".join(rng.choices(letters, k=rng.randint(8, 24))) for _ in range(rows)], pa.string()
        )
    table = pa.table(columns)
    fields = [pa.field("c00", pa.int64(), nullable=False)] + list(table.schema)[1:]
    return table.cast(pa.schema(fields))


def rust_bench(binary: str, store: Path, sections: str, args: argparse.Namespace) -> dict:
    report = store.parent / f"rust-{sections}.json"
    command = [
        binary, "bench", "--store", str(store), "--sections", sections,
        "--producers", "1", "--produce-producers", "1", "--batch-rows", str(args.batch_rows),
        "--linger", args.linger, "--duration", "30s", "--rows", str(args.rows),
        "--fetch-rows", str(args.rows), "--fetch-batch-rows", str(args.batch_rows),
        "--json", str(report),
    ]
    print(f"bench.py: running {' '.join(command[1:])}", file=sys.stderr)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return json.loads(report.read_text())


def timed_scan(table: inlet.Table, columns: list[str] | None) -> tuple[int, int, float]:
    start = time.perf_counter()
    scan = table.scan(columns=columns)
    data = scan.to_arrow()
    return data.num_rows, scan.bytes_received, time.perf_counter() - start


def figure(rows: int, nbytes: int, seconds: float) -> dict:
    """Throughput of one run, as the Rust bench reports it."""
    return {"rows": rows, "ipc_bytes": nbytes, "seconds": round(seconds, 3),
            "mb_per_s": round(nbytes / 1e6 / seconds, 2), "rows_per_s": round(rows / seconds)}


def python_side(server: Server, args: argparse.Namespace) -> dict:
    results: dict = {}
    with inlet.connect(server.url) as client:
        fetch = client.table("bench.fetch")
        for read, columns in (("full", None), ("projected", PROJECTED)):
            # "cold" is the first read of each, "hot" the median of three more (one read's
            # noise on a shared machine is larger than the difference measured). Unlike the
            # Rust bench, which restarts its node before the projected read, this projected
            # cold read may find pages the full reads cached.
            results[f"scan {read} cold"] = figure(*timed_scan(fetch, columns))
            hot = sorted((figure(*timed_scan(fetch, columns)) for _ in range(3)), key=lambda f: f["mb_per_s"])
            results[f"scan {read} hot"] = hot[1]

        rng = random.Random(1)
        pool = [wide_batch(args.batch_rows, i * args.batch_rows, rng) for i in range(POOL_BATCHES)]
        pool_bytes = [len(arrow.table_to_ipc(batch)) for batch in pool]
        appends = max(1, args.rows // args.batch_rows)
        schema = pool[0].schema
        for name in ("append", "producer"):
            table = client.create_table(f"pybench.{name}", schema, buckets=4, if_not_exists=True)
            start = time.perf_counter()
            if name == "append":
                for i in range(appends):
                    table.append(pool[i % POOL_BATCHES])
            else:
                with table.producer(linger=0.005) as producer:
                    for i in range(appends):
                        producer.send(pool[i % POOL_BATCHES])
                    producer.flush()
            seconds = time.perf_counter() - start
            nbytes = sum(pool_bytes[i % POOL_BATCHES] for i in range(appends))
            results[f"produce {name}"] = figure(appends * args.batch_rows, nbytes, seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inlet", default=os.environ.get("INLET_BIN", default_binary()))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--linger", default="5ms")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ["INLET_BIN"] = args.inlet

    with tempfile.TemporaryDirectory(prefix="inlet-pybench-") as tmp:
        # Two stores, so the node the Python client reads holds only the fetch table (the
        # produce runs' index would be compacted while it reads, on the same cores).
        rust = {"produce": rust_bench(args.inlet, Path(tmp) / "produce", "produce", args)["produce"]}
        store = Path(tmp) / "store"
        rust["fetch"] = rust_bench(args.inlet, store, "fetch", args)["fetch"]
        server = Server(store, Path(tmp) / "serve.log")
        server.start()
        try:
            python = python_side(server, args)
        finally:
            server.stop()

    runs = {(r["read"], r["cache"]): r for r in rust["fetch"]["runs"]}
    produce = rust["produce"][0]
    rows = [
        (f"scan {read} {cache}", runs[(read, cache)], python[f"scan {read} {cache}"])
        for read in ("full", "projected") for cache in ("cold", "hot")
    ] + [
        ("produce append (closed loop)", produce, python["produce append"]),
        ("produce Producer (batching)", produce, python["produce producer"]),
    ]
    print(f"{'':30} {'Rust MB/s':>10} {'Py MB/s':>10} {'Py/Rust':>8} {'Rust rows/s':>12} {'Py rows/s':>12}")
    for name, r, p in rows:
        print(f"{name:30} {r['mb_per_s']:>10.1f} {p['mb_per_s']:>10.1f} {p['mb_per_s'] / r['mb_per_s']:>8.2f} "
              f"{r['rows_per_s']:>12,.0f} {p['rows_per_s']:>12,.0f}")
    print(f"\n{args.rows:,} rows of 20 columns, {args.batch_rows:,} rows per append, linger {args.linger}; "
          f"binary {args.inlet}; Rust produce: 1 producer, closed loop")
    if args.json:
        Path(args.json).write_text(json.dumps({"rust_produce": produce, "rust_fetch": rust["fetch"]["runs"],
                                               "python": python}, indent=1))


if __name__ == "__main__":
    main()
