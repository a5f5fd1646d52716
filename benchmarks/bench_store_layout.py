"""How to store a pool's allocated set: one record per allocation, or chunks?

Run from the repository root::

    python -m benchmarks.bench_store_layout [--quick] [--json FILE] [--dir DIR]

Two layouts of one pool's allocated set on the store layer's SQLite backend
(``synchronous=FULL``, WAL, ``BEGIN IMMEDIATE``):

* ``record``: one record per allocated slot, ``pools/p/slot/<hex>``, whose
  value names the owner; an allocation is one create-if-absent transaction
  (``Compare(key, 0)``), which needs no read.
* ``chunk``: the bitmap in records of 1,024 slots (128 bytes),
  ``pools/p/chunk/<hex>``, an absent chunk = all free; an allocation sets a
  bit in the cached chunk and compares the chunk's revision.

Each allocation does what a durable allocator will: catch up from
``changes()``, pick a free slot from its cache, one transaction; on a
conflict, refresh the cache from the failure branch and pick again. The
pick is the library's random strategy: uniform over an IPv4 /16; over an
IPv6 /64 random inside the chunk in use (a new random chunk when it
fills), the locality that keeps a sparse /64 small.

Measured: latency per allocation at 2,000 and 50,000 allocated (the fill
is written in bulk transactions first), bytes per allocation (file after
compaction and VACUUM; bytes each allocation adds to the change feed), time
to open the file and read the whole set into memory, and conflicts with 4
processes allocating at once. Baseline, in the same run: one raw SQLite
transaction reading and writing one row with the same ``synchronous``.
``NORMAL`` is measured too for the baseline and the 2,000 case.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dualstack_ipam.store import (
    Backend,
    Change,
    Compare,
    MemoryBackend,
    Put,
    Record,
    SQLiteBackend,
    Write,
)

from ._common import format_table, machine_info, write_json

CHUNK = 1024
CHUNK_BYTES = CHUNK // 8
SPACES = {"IPv4 /16": 1 << 16, "IPv6 /64": 1 << 64}
FILLS = (2_000, 50_000)
OWNER = b"default/service-000000"  # a typical Service key: the record's value


class Cache:
    """A process's view of one pool in one layout, and its allocation step."""

    def __init__(self, store: Backend, layout: str, space: int, rng: random.Random) -> None:
        self.store, self.layout, self.space, self.rng = store, layout, space, rng
        self.prefix = f"pools/p/{'slot' if layout == 'record' else 'chunk'}/"
        self.used: set[int] = set()
        self.counts: dict[int, int] = {}  # chunk -> used slots, for the /64 pick
        self.chunks: dict[int, tuple[int, int]] = {}  # chunk -> (bits, revision)
        self.seen = 0
        self.attempts = 0
        self.conflicts = 0

    def load(self) -> None:
        """Read the whole set (what opening a store costs)."""
        self.seen = self.store.revision()
        for record in self.store.get_prefix(self.prefix):
            self.absorb(record.key, record.value, record.revision)

    def mark(self, slot: int, used: bool) -> None:
        chunk = slot // CHUNK
        if used and slot not in self.used:
            self.used.add(slot)
            self.counts[chunk] = self.counts.get(chunk, 0) + 1
        elif not used and slot in self.used:
            self.used.discard(slot)
            self.counts[chunk] -= 1

    def absorb(self, key: str, value: bytes | None, revision: int) -> None:
        index = int(key[len(self.prefix) :], 16)
        if self.layout == "record":
            self.mark(index, value is not None)
            return
        bits = 0 if value is None else int.from_bytes(value, "little")
        old = self.chunks.get(index, (0, 0))[0]
        diff = bits ^ old
        while diff:
            low = diff & -diff
            off = low.bit_length() - 1
            self.mark(index * CHUNK + off, bool(bits & low))
            diff ^= low
        self.chunks[index] = (bits, revision if value is not None else 0)

    def catch_up(self) -> list[Change]:
        changes, self.seen = self.store.changes(self.seen)
        for change in changes:
            if change.key.startswith(self.prefix):
                self.absorb(change.key, change.value, change.revision)
        return changes

    def pick(self) -> int:
        if self.space <= 1 << 16:
            while True:
                slot = self.rng.randrange(self.space)
                if slot not in self.used:
                    return slot
        # The sparse random strategy: a random chunk among those in use with
        # free space, a new random chunk only when they are all full.
        open_chunks = [c for c, n in self.counts.items() if 0 < n < CHUNK]
        chunk = (
            self.rng.choice(open_chunks) if open_chunks else self.rng.randrange(self.space // CHUNK)
        )
        while True:
            slot = chunk * CHUNK + self.rng.randrange(CHUNK)
            if slot not in self.used:
                return slot

    def allocate(self, delay: float = 0.0) -> int:
        """Allocate one slot; retry on conflicts."""
        while True:
            self.catch_up()
            slot = self.pick()
            self.attempts += 1
            compares, writes = self.txn_for(slot)
            if delay:  # the request's way to a remote store
                time.sleep(delay)
            result = self.store.txn(compares, writes)
            if delay:  # and the answer's way back
                time.sleep(delay)
            if result.succeeded:
                self.seen_own(slot, result.revision)
                return slot
            self.conflicts += 1
            for key, record in result.current.items():
                self.absorb(key, None if record is None else record.value, _rev(record))

    def txn_for(self, slot: int) -> tuple[list[Compare], list[Write]]:
        if self.layout == "record":
            key = f"{self.prefix}{slot:x}"
            return [Compare(key, 0)], [Put(key, OWNER)]
        chunk = slot // CHUNK
        bits, revision = self.chunks.get(chunk, (0, 0))
        key = f"{self.prefix}{chunk:x}"
        new = bits | 1 << (slot % CHUNK)
        return [Compare(key, revision)], [Put(key, new.to_bytes(CHUNK_BYTES, "little"))]

    def seen_own(self, slot: int, revision: int) -> None:
        self.mark(slot, True)
        if self.layout == "chunk":
            chunk = slot // CHUNK
            self.chunks[chunk] = (self.chunks.get(chunk, (0, 0))[0] | 1 << slot % CHUNK, revision)


def _rev(record: Record | None) -> int:
    return 0 if record is None else record.revision


def fill_slots(space: int, count: int, rng: random.Random) -> list[int]:
    """``count`` slots as the random strategy leaves them."""
    if space <= 1 << 16:
        return rng.sample(range(space), count)
    chunks = rng.sample(range(space // CHUNK), count // CHUNK + 1)
    return [c * CHUNK + off for c in chunks for off in range(CHUNK)][:count]


def bulk_fill(store: Backend, layout: str, slots: list[int]) -> None:
    """Write the fill in transactions of 1,000 records."""
    writes: list[Write] = []
    if layout == "record":
        writes = [Put(f"pools/p/slot/{s:x}", OWNER) for s in slots]
    else:
        chunks: dict[int, int] = {}
        for s in slots:
            chunks[s // CHUNK] = chunks.get(s // CHUNK, 0) | 1 << s % CHUNK
        writes = [
            Put(f"pools/p/chunk/{c:x}", bits.to_bytes(CHUNK_BYTES, "little"))
            for c, bits in chunks.items()
        ]
    for start in range(0, len(writes), 1000):
        store.txn([], writes[start : start + 1000])


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def summary(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "median_us": statistics.median(ordered) / 1000,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
    }


def raw_baseline(folder: Path, synchronous: str, ops: int) -> dict[str, float]:
    """One SQLite transaction that reads and writes one row, ``ops`` times."""
    path = folder / f"raw-{synchronous}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(k, b"x" * 20) for k in range(1000)])
    rng = random.Random(1)
    samples = []
    for n in range(ops):
        k = rng.randrange(1000)
        t0 = time.perf_counter_ns()
        conn.execute("BEGIN IMMEDIATE")
        value = conn.execute("SELECT v FROM t WHERE k = ?", (k,)).fetchone()[0]
        # A new value each time: SQLite skips writing a cell overwritten
        # with identical bytes, and the commit would then sync nothing.
        conn.execute("UPDATE t SET v = ? WHERE k = ?", (value[:12] + n.to_bytes(8, "big"), k))
        conn.execute("COMMIT")
        samples.append(time.perf_counter_ns() - t0)
    conn.close()
    return summary(samples)


def cold_allocation(path: Path, layout: str, space: int, rng: random.Random) -> tuple[int, int]:
    """Open the store and allocate one slot without reading the pool: (ns, probes).

    What a short command does: ``record`` probes random slots with
    create-if-absent; ``chunk`` reads the chunk of a random slot and sets a
    free bit with compare-and-swap.
    """
    t0 = time.perf_counter_ns()
    probes = 0
    with SQLiteBackend(path) as store:
        while True:
            probes += 1
            slot = rng.randrange(space)
            if layout == "record":
                key = f"pools/p/slot/{slot:x}"
                if store.txn([Compare(key, 0)], [Put(key, OWNER)]).succeeded:
                    break
                continue
            key = f"pools/p/chunk/{slot // CHUNK:x}"
            record = store.get(key)
            bits = 0 if record is None else int.from_bytes(record.value, "little")
            if bits >> slot % CHUNK & 1:
                continue
            new = (bits | 1 << slot % CHUNK).to_bytes(CHUNK_BYTES, "little")
            if store.txn([Compare(key, _rev(record))], [Put(key, new)]).succeeded:
                break
    return time.perf_counter_ns() - t0, probes


def measure_case(
    folder: Path, space_name: str, layout: str, fill: int, ops: int, synchronous: str
) -> dict[str, Any]:
    """Latency, size, feed bytes and open time of one layout at one fill."""
    path = folder / f"{layout}-{space_name[:4]}-{fill}-{synchronous}.db"
    space = SPACES[space_name]
    rng = random.Random(fill)
    with SQLiteBackend(path, synchronous=synchronous) as store:
        bulk_fill(store, layout, fill_slots(space, fill, rng))
        cache = Cache(store, layout, space, rng)
        cache.load()
        samples = []
        before = store.revision()
        for _ in range(ops):
            t0 = time.perf_counter_ns()
            cache.allocate()
            samples.append(time.perf_counter_ns() - t0)
        feed, _ = store.changes(before)
        feed_bytes = sum(len(c.key) + len(c.value or b"") for c in feed) / ops
        store.compact(store.revision())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = file_bytes(path)
    opens = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        with SQLiteBackend(path) as store:
            reader = Cache(store, layout, space, random.Random(0))
            reader.load()
        opens.append(time.perf_counter_ns() - t0)
    assert len(reader.used) == fill + ops
    cold: dict[str, float | None] = {"cold_median_us": None, "cold_probes": None}
    if space <= 1 << 16:
        runs = [cold_allocation(path, layout, space, rng) for _ in range(max(5, ops // 10))]
        cold["cold_median_us"] = statistics.median(ns for ns, _ in runs) / 1000
        cold["cold_probes"] = statistics.fmean(p for _, p in runs)
    return {
        "space": space_name,
        "layout": layout,
        "fill": fill,
        "synchronous": synchronous,
        "allocations": ops,
        **summary(samples),
        "bytes_per_allocation": size / (fill + ops),
        "feed_bytes_per_allocation": feed_bytes,
        "open_read_ms": statistics.median(opens) / 1e6,
        "records": fill + ops if layout == "record" else len(reader.chunks),
        **cold,
    }


def worker(path: str, layout: str, space: int, seed: int, ops: int, start: Any, out: Any) -> None:
    """One of the concurrent allocators (a separate process)."""
    with SQLiteBackend(path, busy_timeout_ms=60_000) as store:
        cache = Cache(store, layout, space, random.Random(seed))
        cache.load()
        start.wait()
        t0 = time.perf_counter_ns()
        slots = [cache.allocate() for _ in range(ops)]
        elapsed = time.perf_counter_ns() - t0
    out.put(
        {
            "slots": slots,
            "attempts": cache.attempts,
            "conflicts": cache.conflicts,
            "elapsed_ns": elapsed,
        }
    )


def measure_concurrent(
    folder: Path, space_name: str, layout: str, fill: int, ops: int, procs: int
) -> dict[str, Any]:
    """``procs`` processes allocating ``ops`` each from one pool."""
    path = folder / f"conc-{layout}-{space_name[:4]}.db"
    space = SPACES[space_name]
    with SQLiteBackend(path) as store:
        bulk_fill(store, layout, fill_slots(space, fill, random.Random(7)))
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=worker, args=(str(path), layout, space, 100 + i, ops, start, out))
        for i in range(procs)
    ]
    for proc in workers:
        proc.start()
    time.sleep(1.0)  # let every worker load before the start signal
    t0 = time.perf_counter_ns()
    start.set()
    results = [out.get(timeout=600) for _ in workers]
    wall = time.perf_counter_ns() - t0
    for proc in workers:
        proc.join()
    slots = [s for r in results for s in r["slots"]]
    attempts = sum(r["attempts"] for r in results)
    conflicts = sum(r["conflicts"] for r in results)
    return {
        "space": space_name,
        "layout": layout,
        "processes": procs,
        "allocations": len(slots),
        "duplicates": len(slots) - len(set(slots)),
        "conflicts": conflicts,
        "conflicts_per_allocation": conflicts / len(slots),
        "attempts_per_allocation": attempts / len(slots),
        "allocations_per_s": len(slots) / (wall / 1e9),
    }


def measure_remote_model(
    space_name: str, layout: str, fill: int, ops: int, clients: int, delay: float
) -> dict[str, Any]:
    """A model of a remote store (etcd): threads on one memory store, with
    ``delay`` seconds each way between a client and the store, so that other
    clients commit between a client's read and its transaction."""
    space = SPACES[space_name]
    store = MemoryBackend()
    bulk_fill(store, layout, fill_slots(space, fill, random.Random(7)))
    caches = [Cache(store, layout, space, random.Random(200 + i)) for i in range(clients)]
    for cache in caches:
        cache.load()
    slots: list[list[int]] = [[] for _ in caches]
    gate = threading.Barrier(clients)

    def run(index: int) -> None:
        gate.wait()
        slots[index] = [caches[index].allocate(delay) for _ in range(ops)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    allocated = [s for got in slots for s in got]
    conflicts = sum(c.conflicts for c in caches)
    return {
        "space": space_name,
        "layout": layout,
        "clients": clients,
        "delay_ms": delay * 1000,
        "allocations": len(allocated),
        "duplicates": len(allocated) - len(set(allocated)),
        "conflicts_per_allocation": conflicts / len(allocated),
        "most_attempts": max(c.attempts for c in caches) / ops,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer operations")
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON")
    parser.add_argument("--dir", metavar="DIR", help="where the store files go (a real disk)")
    args = parser.parse_args(argv)
    ops = 40 if args.quick else 300
    conc_ops = 30 if args.quick else 150
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-store-") as name:
        folder = Path(name)
        log("raw SQLite baseline ...")
        raw = {level: raw_baseline(folder, level, ops) for level in ("FULL", "NORMAL")}
        cases = []
        for space_name in SPACES:
            for fill in FILLS:
                for layout in ("record", "chunk"):
                    log(f"{space_name} {layout} at {fill:,} ...")
                    cases.append(measure_case(folder, space_name, layout, fill, ops, "FULL"))
            for layout in ("record", "chunk"):
                log(f"{space_name} {layout} at 2,000, NORMAL ...")
                cases.append(measure_case(folder, space_name, layout, 2_000, ops, "NORMAL"))
        concurrent = []
        for space_name in SPACES:
            for layout in ("record", "chunk"):
                log(f"4 processes, {space_name} {layout} ...")
                concurrent.append(
                    measure_concurrent(folder, space_name, layout, 2_000, conc_ops, 4)
                )
        remote = []
        for space_name in SPACES:
            for layout in ("record", "chunk"):
                log(f"remote-store model, {space_name} {layout} ...")
                remote.append(measure_remote_model(space_name, layout, 2_000, conc_ops, 4, 0.0005))
    for case in cases:
        case["ratio_to_raw"] = case["median_us"] / raw[case["synchronous"]]["median_us"]
    machine = machine_info("benchmarks.bench_store_layout")
    print(
        f"python {machine['python']} on {machine['platform']}, {machine['cpus_usable']} CPUs, "
        f"{machine['date']}; {'quick' if args.quick else 'full'} run"
    )
    print(f"command: {machine['command']}")
    print(render(raw, cases, concurrent, remote))
    if args.json:
        write_json(
            args.json,
            {
                "machine": machine,
                "raw_sqlite": raw,
                "cases": cases,
                "concurrent": concurrent,
                "remote_model": remote,
            },
        )
    return 0


def render(
    raw: dict[str, dict[str, float]],
    cases: list[dict[str, Any]],
    concurrent: list[dict[str, Any]],
    remote: list[dict[str, Any]],
) -> str:
    lines = [
        "Raw SQLite: one transaction reading and writing one row (WAL)",
        format_table(
            ["synchronous", "median us", "p99 us"],
            [[level, r["median_us"], r["p99_us"]] for level, r in raw.items()],
        ),
        "",
        "One allocation (catch-up + pick + one transaction), single process",
        format_table(
            [
                "range",
                "layout",
                "allocated",
                "sync",
                "median us",
                "p99 us",
                "x raw",
                "B/alloc file",
                "B/alloc feed",
                "records",
                "open+read ms",
            ],
            [
                [
                    c["space"],
                    c["layout"],
                    c["fill"],
                    c["synchronous"],
                    c["median_us"],
                    c["p99_us"],
                    c["ratio_to_raw"],
                    c["bytes_per_allocation"],
                    c["feed_bytes_per_allocation"],
                    c["records"],
                    c["open_read_ms"],
                ]
                for c in cases
            ],
        ),
        "",
        "A short command: open the file and allocate one address without reading the pool",
        format_table(
            ["range", "layout", "allocated", "sync", "median us", "probes"],
            [
                [
                    c["space"],
                    c["layout"],
                    c["fill"],
                    c["synchronous"],
                    c["cold_median_us"],
                    c["cold_probes"],
                ]
                for c in cases
                if c["cold_median_us"] is not None
            ],
        ),
        "",
        "4 processes allocating at once from 2,000 allocated (FULL)",
        format_table(
            [
                "range",
                "layout",
                "allocations",
                "duplicates",
                "conflicts/alloc",
                "attempts/alloc",
                "allocs/s",
            ],
            [
                [
                    c["space"],
                    c["layout"],
                    c["allocations"],
                    c["duplicates"],
                    c["conflicts_per_allocation"],
                    c["attempts_per_allocation"],
                    c["allocations_per_s"],
                ]
                for c in concurrent
            ],
        ),
        "",
        "A model of a remote store (etcd): 4 client threads on one memory store,",
        "0.5 ms each way between client and store, from 2,000 allocated",
        format_table(
            [
                "range",
                "layout",
                "allocations",
                "duplicates",
                "conflicts/alloc",
                "worst client attempts/alloc",
            ],
            [
                [
                    c["space"],
                    c["layout"],
                    c["allocations"],
                    c["duplicates"],
                    c["conflicts_per_allocation"],
                    c["most_attempts"],
                ]
                for c in remote
            ],
        ),
        "",
        "Ratios chunk / record (median latency, file bytes, open+read):",
    ]
    by_key = {(c["space"], c["layout"], c["fill"], c["synchronous"]): c for c in cases}
    for (space, layout, fill, sync), chunk in by_key.items():
        if layout != "chunk":
            continue
        record = by_key[(space, "record", fill, sync)]
        lines.append(
            f"  {space} at {fill:,} {sync}: "
            f"latency {chunk['median_us'] / record['median_us']:.2f}x, "
            f"file {chunk['bytes_per_allocation'] / record['bytes_per_allocation']:.2f}x, "
            f"open+read {chunk['open_read_ms'] / record['open_read_ms']:.2f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
