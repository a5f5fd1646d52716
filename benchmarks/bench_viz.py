"""How long an occupancy map takes to draw: sparse IPv6 ranges in time proportional to runs.

Run from the repository root::

    python -m benchmarks.bench_viz [--quick] [--json FILE]

Cases (each filled untimed, then drawn ``repeats`` times; median seconds):

* ``ServiceIPPool("fd00::/64")`` (2**64 - 1 addresses) with 100,000
  ``allocate_next()`` (the default random strategy: it keeps to a hot
  chunk, so few runs) and with 100,000 ``allocate(ip)`` at uniformly random
  addresses (100,000 runs: the worst case for the count);
* ``SubnetPool("fc00::/24", 64)`` (2**40 subnets) with 100,000
  ``allocate_next()`` (one run) and entirely occupied;
* ``SubnetPool("10.0.0.0/16", 24)`` (256 cells) for scale.

Timed: ``occupancy()`` (reading the runs into cells) and ``occupancy_svg()``
(that plus writing the 4,096 ``<rect>`` elements). The goal of issue 12 is
"a 2**64 pool with 100,000 allocations draws in under a second": printed
PASS / FAIL, never asserted (the script always exits 0).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import netaddr

from benchmarks._common import format_table, machine_info, write_json
from dualstack_ipam import ServiceIPPool, SubnetPool
from dualstack_ipam.viz import occupancy, occupancy_svg

GOAL_SECONDS = 1.0
ALLOCATIONS = 100_000


def _random_addresses(pool: ServiceIPPool, count: int, rng: random.Random) -> None:
    base = int(pool.cidr.first) + 1
    taken = 0
    while taken < count:
        address = netaddr.IPAddress(base + rng.randrange(pool.capacity), 6)
        if not pool.is_allocated(address):
            pool.allocate(address)
            taken += 1


def _cases(allocations: int) -> list[tuple[str, Callable[[], Any]]]:
    def slash64_next() -> ServiceIPPool:
        pool = ServiceIPPool("fd00::/64", rng=random.Random(1))
        for _ in range(allocations):
            pool.allocate_next()
        return pool

    def slash64_scattered() -> ServiceIPPool:
        pool = ServiceIPPool("fd00::/64", rng=random.Random(1))
        _random_addresses(pool, allocations, random.Random(2))
        return pool

    def subnets_next() -> SubnetPool:
        pool = SubnetPool("fc00::/24", 64)
        for _ in range(allocations):
            pool.allocate_next()
        return pool

    def subnets_full() -> SubnetPool:
        pool = SubnetPool("fc00::/24", 64)
        pool.occupy("fc00::/24")
        return pool

    def slash16() -> SubnetPool:
        pool = SubnetPool("10.0.0.0/16", 24)
        for _ in range(200):
            pool.allocate_next()
        return pool

    return [
        (f"/64 Service range, {allocations:,} allocate_next", slash64_next),
        (f"/64 Service range, {allocations:,} scattered allocate(ip)", slash64_scattered),
        (f"fc00::/24 -> /64, {allocations:,} allocate_next", subnets_next),
        ("fc00::/24 -> /64, all 2**40 occupied", subnets_full),
        ("10.0.0.0/16 -> /24, 200 allocate_next", slash16),
    ]


def _median_seconds(call: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return float(statistics.median(samples))


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the goal, optionally write ``--json``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_viz")
    parser.add_argument("--quick", action="store_true", help="10,000 allocations, 3 repeats")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    args = parser.parse_args(argv)
    allocations = 10_000 if args.quick else ALLOCATIONS
    repeats = 3 if args.quick else 9
    started = time.perf_counter()
    rows: list[list[object]] = []
    results: list[dict[str, Any]] = []
    for name, build in _cases(allocations):
        print(f"filling: {name}", file=sys.stderr)
        pool = build()
        runs = sum(1 for _ in pool.runs())
        count_s = _median_seconds(partial(occupancy, pool), repeats)
        draw_s = _median_seconds(partial(occupancy_svg, pool), repeats)
        size = len(occupancy_svg(pool))
        (panel,) = occupancy(pool)
        rows.append([name, pool.used, runs, panel.cells, count_s * 1000, draw_s * 1000, size])
        results.append(
            {
                "case": name,
                "used": str(pool.used),
                "runs": runs,
                "cells": panel.cells,
                "occupancy_seconds": count_s,
                "svg_seconds": draw_s,
                "svg_bytes": size,
            }
        )
    machine = machine_info("benchmarks.bench_viz")
    print(
        f"python {machine['python']} on {machine['platform']}, {machine['cpus_usable']} CPUs, "
        f"{machine['date']}; {'quick' if args.quick else 'full'} run, median of {repeats}"
    )
    print(f"command: {machine['command']}")
    print(
        format_table(
            ["case", "used", "runs", "cells", "occupancy ms", "occupancy_svg ms", "SVG bytes"],
            rows,
        )
    )
    worst = max(r["svg_seconds"] for r in results[:2])
    verdict = "PASS" if worst < GOAL_SECONDS else "FAIL"
    goal = (
        f"goal: a 2**64 pool with {allocations:,} allocations draws in under "
        f"{GOAL_SECONDS:g} s: {verdict} (worst {worst:.3f} s)"
    )
    print(goal)
    if args.json:
        write_json(
            args.json,
            {
                "machine": machine,
                "settings": {"allocations": allocations, "repeats": repeats},
                "cases": results,
                "goal": {"seconds": GOAL_SECONDS, "worst_seconds": worst, "verdict": verdict},
                "seconds": time.perf_counter() - started,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
