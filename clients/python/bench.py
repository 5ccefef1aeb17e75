#!/usr/bin/env python3
"""Python client throughput beside the Rust client's, like for like, on the same store.

Scans, in --rounds rounds (ABBA order, so a load that drifts during the run, such as other
builds on a shared machine, weighs on both clients alike):

- Rust: `inlet bench --sections fetch` loads the 20-column table `bench.fetch` (--rows rows in
  appends of --batch-rows, so one chunk, and one fetch response, per append) and reads it in
  full and projected to c00 and c15: each read "cold" on a freshly started node (empty read
  cache), then once "hot" on the same node. Its client decodes every batch and drops it.
- Python: `inlet serve` on that same store reads the same rows and columns the same way: a
  fresh server per read kind, the cold read first, then one hot read; iterating the scan's
  batches (decoded by pyarrow, counted, dropped: what the Rust client does). Then one more
  hot read collected with `scan().to_arrow()`, which keeps every batch (what most users do,
  and what costs the client fresh memory for the whole table).

Figures are medians over the rounds with the range beside them. MB/s are Arrow IPC bytes
received per second, as the Rust bench counts them. For the Python reads the CPU seconds the
client process and the server process spent per GB are printed too: they show which side
bounds a read (the machine's cores are shared by both, and by whatever else runs).

Produce (once): one closed-loop producer of --batch-rows appends in Rust, then in Python with
`table.append` and with a `Producer`.

Usage: python clients/python/bench.py [--inlet target/release/inlet] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
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
READS = (("full", None), ("projected", PROJECTED))
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
        # One producer (one chunk per append, as in the produce run); a short linger only
        # makes the load quicker.
        "--fetch-linger", "5ms", "--json", str(report),
    ]
    print(f"bench.py: {' '.join(command[1:])}", file=sys.stderr)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return json.loads(report.read_text())


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0]


def timed_read(server: Server, table: inlet.Table, columns: list[str] | None, collect: bool, rows: int) -> dict:
    """One scan of the whole table: iterated batch by batch, or collected with to_arrow."""
    pid = server.process.pid
    server_cpu, client_cpu, start = process_cpu_seconds(pid), time.process_time(), time.perf_counter()
    scan = table.scan(columns=columns)
    if collect:
        got = scan.to_arrow().num_rows
    else:
        got = 0
        for batch in scan:
            got += batch.num_rows
    seconds = time.perf_counter() - start
    client_cpu = time.process_time() - client_cpu
    server_cpu = process_cpu_seconds(pid) - server_cpu
    if got != rows:
        raise RuntimeError(f"the Python scan returned {got} rows, expected {rows}")
    gb = scan.bytes_received / 1e9
    return {**figure(got, scan.bytes_received, seconds), "client_cpu_s_per_gb": round(client_cpu / gb, 3),
            "server_cpu_s_per_gb": round(server_cpu / gb, 3), "load": round(load_average(), 2)}


def figure(rows: int, nbytes: int, seconds: float) -> dict:
    """Throughput of one run, as the Rust bench reports it."""
    return {"rows": rows, "ipc_bytes": nbytes, "seconds": round(seconds, 3),
            "mb_per_s": round(nbytes / 1e6 / seconds, 2), "rows_per_s": round(rows / seconds)}


def python_scans(binary: str, store: Path, log: Path, rows: int) -> dict:
    """The Python reads of one round: per read kind a fresh server, cold, hot, hot collected."""
    results: dict = {}
    for read, columns in READS:
        server = Server(store, log, binary=binary)
        server.start()
        try:
            with inlet.connect(server.url) as client:
                table = client.table("bench.fetch")
                # Connected before the clock starts, as the Rust bench's client is (it asks the
                # node for its cache counters first).
                client.status()
                results[f"{read} cold"] = timed_read(server, table, columns, False, rows)
                results[f"{read} hot"] = timed_read(server, table, columns, False, rows)
                results[f"{read} hot to_arrow"] = timed_read(server, table, columns, True, rows)
        finally:
            server.stop()
    return results


def python_produce(store: Path, log: Path, args: argparse.Namespace) -> dict:
    results: dict = {}
    server = Server(store, log, binary=args.inlet)
    server.start()
    try:
        with inlet.connect(server.url) as client:
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
                results[name] = figure(appends * args.batch_rows, nbytes, seconds)
    finally:
        server.stop()
    return results


def spread(values: list[float]) -> str:
    """Median, and the range when there is more than one value."""
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:>7.1f}"
    return f"{middle:>7.1f} [{min(values):.0f}-{max(values):.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inlet", default=os.environ.get("INLET_BIN", default_binary()))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--linger", default="5ms")
    parser.add_argument("--rounds", type=int, default=4, help="scan rounds (Rust and Python each); default 4")
    parser.add_argument("--no-produce", action="store_true", help="skip the produce comparison")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    # Both clients talk to the same build: the servers this script starts are given
    # --inlet explicitly (an INLET_BIN set here would come too late for tests/conftest.py,
    # which reads it at import; the bench once compared a release Rust run with a debug
    # server this way).
    found = shutil.which(args.inlet)
    if found is None:
        parser.error(f"no inlet binary at {args.inlet}: cargo build --release -p inlet, or pass --inlet")
    args.inlet = str(Path(found).resolve())
    if args.rows % args.batch_rows:
        parser.error("--rows must be a multiple of --batch-rows (the Rust bench rounds up to whole appends)")

    rust_runs: list[dict] = []
    python_runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="inlet-pybench-") as tmp:
        store, log = Path(tmp) / "store", Path(tmp) / "serve.log"
        # ABBA: R P P R R P P R ... (always a Rust run first: each reloads `bench.fetch`, same
        # seed and rows; a Python run reads the table the last Rust run left).
        for step in "".join("RP" if i % 2 == 0 else "PR" for i in range(args.rounds)):
            if step == "R":
                rust_runs.append(rust_bench(args.inlet, store, "fetch", args)["fetch"])
            else:
                print(f"bench.py: Python scans, round {len(python_runs) + 1}", file=sys.stderr)
                python_runs.append(python_scans(args.inlet, store, log, rust_runs[-1]["rows"]))
        produce = None
        if not args.no_produce:
            rust_produce = rust_bench(args.inlet, Path(tmp) / "produce", "produce", args)["produce"][0]
            print("bench.py: Python produce", file=sys.stderr)
            produce = (rust_produce, python_produce(store, log, args))

    def rust_mb(read: str, cache: str) -> list[float]:
        return [next(r["mb_per_s"] for r in run["runs"] if (r["read"], r["cache"]) == (read, cache)) for run in rust_runs]

    def python(name: str, key: str) -> list[float]:
        return [run[name][key] for run in python_runs]

    print(f"{'':31} {'Rust MB/s':>18} {'Python MB/s':>18} {'Py/Rust':>8} {'Py client CPU s/GB':>19} {'server CPU s/GB':>16}")
    ratios = {}
    for read, _ in READS:
        for cache in ("cold", "hot"):
            for collect in ("", " to_arrow") if cache == "hot" else ("",):
                name = f"{read} {cache}{collect}"
                r, p = rust_mb(read, cache), python(name, "mb_per_s")
                ratios[name] = round(statistics.median(p) / statistics.median(r), 2)
                label = f"scan {name}" if collect else f"scan {name} (iterated)"
                print(f"{label:31} {spread(r):>18} {spread(p):>18} {ratios[name]:>8.2f} "
                      f"{statistics.median(python(name, 'client_cpu_s_per_gb')):>19.2f} "
                      f"{statistics.median(python(name, 'server_cpu_s_per_gb')):>16.2f}")
    if produce:
        rust_produce, py = produce
        for name, label in (("append", "produce append (closed loop)"), ("producer", "produce Producer (batching)")):
            print(f"{label:31} {rust_produce['mb_per_s']:>18.1f} {py[name]['mb_per_s']:>18.1f} "
                  f"{py[name]['mb_per_s'] / rust_produce['mb_per_s']:>8.2f}")
    loads = [run[name]["load"] for run in python_runs for name in run]
    print(f"\n{rust_runs[0]['rows']:,} rows of 20 columns ({rust_runs[0]['runs'][0]['ipc_bytes'] / 1e6:.0f} MB of Arrow IPC in "
          f"full, in {args.rows // args.batch_rows} fetch responses per read), {args.rounds} rounds, median [range]; "
          f"load average during the Python reads {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores; "
          f"binary {args.inlet}. Rust produce: 1 producer, closed loop, {args.batch_rows:,} rows per append, "
          f"linger {args.linger}. The to_arrow lines set Python collecting the table beside the same "
          f"Rust hot read, which keeps nothing.")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rust_fetch": [run["runs"] for run in rust_runs], "python_scans": python_runs, "ratios": ratios,
            "rust_produce": produce[0] if produce else None, "python_produce": produce[1] if produce else None,
        }, indent=1))


if __name__ == "__main__":
    main()
