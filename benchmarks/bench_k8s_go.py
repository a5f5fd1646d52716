"""Kubernetes' Service IP bitmap, re-created in Go, timed as our pools are.

Run from the repository root (``bench_hot_path`` runs it too, in the same
run, and puts the figures beside ours)::

    python -m benchmarks.bench_k8s_go [--quick] [--json FILE]

``benchmarks/go/`` holds a Go re-creation of Kubernetes' ``AllocationBitmap``
(one ``math/big.Int``, a mutex, ``AllocateNext`` = a random start then a
linear scan with wrap-around, the KEP-3070 static band), written by us from
its behaviour, with the measuring loop of ``bench_hot_path``: filled with
``AllocateNext`` only to each fill level, timed batches of ``k`` calls
undone by ``Release``, medians of ns per call. It needs the Go toolchain
(Debian: ``apt-get install golang-go``; standard library only, no module
downloads); without ``go`` on ``PATH`` the Go figures are skipped with a note.
The build happens in a temporary directory (``GOCACHE``, ``GOPATH`` and the
binary): nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import format_table, machine_info, write_json

__all__ = ["GO_DIR", "go_table_rows", "run_go_bitmap"]

GO_DIR = Path(__file__).resolve().parent / "go"
"""The Go module: ``bitmap.go`` (the allocator), ``main.go`` (the timing loop)."""

BUILD_TIMEOUT_S = 600
RUN_TIMEOUT_S = 1800


def _go_env(scratch: Path) -> dict[str, str]:
    """The environment for ``go``: every cache in ``scratch``, never the network."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GOCACHE=str(scratch / "cache"),
        GOPATH=str(scratch / "gopath"),
        GOMODCACHE=str(scratch / "gopath" / "pkg" / "mod"),
        GOPROXY="off",
        GOFLAGS="",
        GO111MODULE="on",
        GOTOOLCHAIN="local",
        GOTELEMETRY="off",
        CGO_ENABLED="0",
    )
    return env


def _skipped(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason, "cases": []}


def run_go_bitmap(
    cidrs: Sequence[str],
    *,
    fills: Sequence[float],
    repeats: int,
    max_batch: int,
    seed: int = 1,
    uniform: bool = True,
    realizations: int = 1,
) -> dict[str, Any]:
    """Build ``benchmarks/go`` and time ``AllocateNext`` on each Service range.

    Returns the program's JSON (Go version, timer overhead, settings and one
    row per range, strategy, fill method and fill) with ``available: True``
    and the command line; each range is filled ``realizations`` times from
    empty (different seeds), its batches pooled. Or ``available: False`` and the reason when ``go``
    is missing or the build or run fails. The program's progress goes to
    this process's stderr.
    """
    go = shutil.which("go")
    if go is None:
        return _skipped("no `go` on PATH (Debian: apt-get install golang-go)")
    args = [f"-fills={','.join(repr(float(f)) for f in fills)}"]
    args += [f"-repeats={repeats}", f"-max-batch={max_batch}", f"-seed={seed}"]
    args += [f"-realizations={realizations}"]
    args += [f"-cidr={c}" for c in cidrs]
    if uniform:
        args.append("-uniform")
    with tempfile.TemporaryDirectory(prefix="k8sbitmap-") as tmp:
        scratch = Path(tmp)
        env = _go_env(scratch)
        binary = scratch / "k8sbitmap"
        try:
            version = subprocess.run(
                [go, "version"], capture_output=True, text=True, env=env, timeout=60, check=True
            ).stdout.strip()
            subprocess.run(
                [go, "build", "-o", str(binary), "."],
                cwd=GO_DIR,
                capture_output=True,
                text=True,
                env=env,
                timeout=BUILD_TIMEOUT_S,
                check=True,
            )
            done = subprocess.run(
                [str(binary), *args],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                timeout=RUN_TIMEOUT_S,
                check=True,
            )
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or "").strip().splitlines()[-5:]
            return _skipped(f"`{' '.join(exc.cmd[:2])}` failed: {' / '.join(tail)}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            return _skipped(f"go could not run: {exc}")
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        return _skipped(f"the Go program printed no JSON: {exc}")
    result.update(
        available=True,
        reason=None,
        toolchain=version,
        command=" ".join(["k8sbitmap", *args]),
    )
    return result


def go_table_rows(result: dict[str, Any]) -> list[list[object]]:
    """One row per range and fill: the Go figures side by side (ns per call)."""
    by_key: dict[tuple[str, float], dict[str, float]] = {}
    used: dict[tuple[str, float], int] = {}
    for row in result["cases"]:
        key = (row["cidr"], row["fill"])
        by_key.setdefault(key, {})[f"{row['strategy']}/{row['fill_method']}"] = row["ns"]
        used[key] = row["used"]
    columns = ("offset/allocate_next", "plain/allocate_next", "offset/uniform", "plain/uniform")
    return [
        [cidr, f"{fill:.1%}", used[(cidr, fill)], *(ns.get(c) for c in columns)]
        for (cidr, fill), ns in by_key.items()
    ]


GO_HEADERS = [
    "range",
    "fill",
    "used",
    "band, AllocateNext fill",
    "no band, AllocateNext fill",
    "band, uniform fill",
    "no band, uniform fill",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_k8s_go", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="no /12, fewer and smaller batches")
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON")
    args = parser.parse_args(argv)
    cidrs = ["10.96.0.0/24", "10.96.0.0/16", "fd00:10:96::/112"]
    if not args.quick:
        cidrs.append("10.96.0.0/12")
    result = run_go_bitmap(
        cidrs,
        fills=(0.0, 0.5, 0.99, 0.999),
        repeats=9 if args.quick else 41,
        max_batch=64 if args.quick else 256,
        realizations=2 if args.quick else 5,
    )
    if not result["available"]:
        print(f"Go bitmap skipped: {result['reason']}")
    else:
        print(f"{result['toolchain']}; command: {result['command']}")
        print("Kubernetes' bitmap re-created in Go, AllocateNext, ns per call (median):")
        print(format_table(GO_HEADERS, go_table_rows(result)))
    if args.json:
        write_json(args.json, {"machine": machine_info("benchmarks.bench_k8s_go"), **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
