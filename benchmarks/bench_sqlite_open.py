"""What the settling write costs when a SQLite store is opened.

Opening a store writes once (``sqlite_settle.settle``: docs/store.md, "Opening
settles what a killed writer left behind"). This times ``SQLiteBackend(path)``
followed by ``close()`` with that write and, as the baseline in the same run,
with it replaced by a no-op, rounds interleaved so that the drift of a shared
machine falls on both alike. A second connection holds the file throughout,
as a controller running beside command-line calls would (without it every
close is the last one and checkpoints the log, which would time the
checkpoint instead).

Run: ``python -m benchmarks.bench_sqlite_open --json
benchmarks/results/sqlite_open.json --txt benchmarks/results/sqlite_open.txt``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from benchmarks._common import format_table, machine_info, median, write_json
from dualstack_ipam.store import SQLiteBackend, sqlite_file


def _time_opens(path: str, synchronous: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        SQLiteBackend(path, synchronous=synchronous).close()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(rounds: int, opens: int) -> list[dict[str, Any]]:
    """Median open+close ms per (synchronous, with or without the write)."""
    # ``connect`` calls the name ``settle`` of its own module: patched there.
    real_settle = sqlite_file.settle
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "store.db")
        holder = SQLiteBackend(path)
        try:
            for synchronous in ("FULL", "NORMAL"):
                samples: dict[bool, list[float]] = {True: [], False: []}
                for _ in range(rounds):
                    for settled in (False, True):
                        sqlite_file.settle = real_settle if settled else _no_settle
                        try:
                            samples[settled] += _time_opens(path, synchronous, opens)
                        finally:
                            sqlite_file.settle = real_settle
                without, with_write = median(samples[False]), median(samples[True])
                assert without is not None
                assert with_write is not None
                rows.append(
                    {
                        "synchronous": synchronous,
                        "without_ms": round(without, 3),
                        "with_ms": round(with_write, 3),
                        "ratio": round(with_write / without, 2),
                        "opens": rounds * opens,
                    }
                )
        finally:
            holder.close()
    return rows


def _no_settle(conn: Any, busy_timeout_ms: int) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--opens", type=int, default=100, help="opens per round and variant")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--txt", help="write the table here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 20 opens")
    args = parser.parse_args()
    rows = measure(1, 20) if args.quick else measure(args.rounds, args.opens)
    info = machine_info("benchmarks.bench_sqlite_open")
    table = format_table(
        ["synchronous", "open+close ms, no write", "with the write", "x", "opens each"],
        [[r["synchronous"], r["without_ms"], r["with_ms"], r["ratio"], r["opens"]] for r in rows],
    )
    text = (
        f"python {info['python']} on {info['platform']}, {info['cpus_usable']} CPUs, "
        f"{info['date']}\ncommand: {info['command']}\n"
        "median open+close of a SQLiteBackend, another connection holding the file\n\n"
        f"{table}\n"
    )
    print(text, end="")
    if args.txt:
        with open(args.txt, "w", encoding="utf-8") as file:
            file.write(text)
    if args.json:
        write_json(args.json, {"machine": info, "rows": rows})


if __name__ == "__main__":
    main()
