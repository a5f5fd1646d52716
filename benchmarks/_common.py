"""Timing, machine description and table printing shared by the benchmarks.

Every figure is a median of several timed batches, each batch timed with
``time.perf_counter_ns`` around a list comprehension of ``ops`` calls, minus
the measured cost of timing an empty batch. The garbage collector is off
inside timed batches (as ``timeit`` does): a collection pass over the
millions of objects some fills create would land in one random batch.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter_ns
from typing import Any

__all__ = [
    "Batch",
    "format_table",
    "machine_info",
    "median",
    "run_batches",
    "timer_overhead_ns",
    "write_json",
]

Batch = Callable[[], Any]
"""A zero-argument callable that performs one batch of operations."""


def _empty() -> None:
    return None


def timer_overhead_ns(samples: int = 2001) -> float:
    """Median cost of timing an empty batch (two clock reads and one call)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        costs = []
        for _ in range(samples):
            t0 = perf_counter_ns()
            _empty()
            costs.append(perf_counter_ns() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return float(statistics.median(costs))


def run_batches(
    prepare: Callable[[], tuple[Batch, int]],
    undo: Callable[[Any], None],
    repeats: int,
    overhead: float,
) -> list[float]:
    """Time ``repeats`` batches; return ns per operation for each.

    ``prepare()`` builds the inputs of one batch (untimed) and returns the
    batch callable and how many operations it performs; ``undo(result)``
    puts the structure back as it was (untimed), so every batch starts from
    the same state.
    """
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    for _ in range(repeats):
        batch, ops = prepare()
        if ops <= 0:
            continue
        gc.disable()
        try:
            t0 = perf_counter_ns()
            result = batch()
            t1 = perf_counter_ns()
        finally:
            if gc_was_enabled:
                gc.enable()
        undo(result)
        samples.append(max(0.0, (t1 - t0 - overhead) / ops))
    return samples


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return float(statistics.median(values)) if values else None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info(module: str) -> dict[str, Any]:
    """Python, platform, CPUs, date and the command line of this run."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count() or 0
    try:
        import netaddr

        netaddr_version = str(netaddr.__version__)
    except Exception:  # pragma: no cover - netaddr is a dependency
        netaddr_version = "?"
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "netaddr": netaddr_version,
        "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", module, *sys.argv[1:]]),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain aligned text: text columns left, numbers right."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        all(_is_number(row[i]) for row in rows if row[i] is not None) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (parent folders created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
