"""Durable allocations on etcd against raw etcd3gw create-if-absent, in one run.

Starts a throw-away one-member etcd 3.4 on loopback (10 / 100 ms heartbeat
and election timeout), then, for 1, 2 and 4 processes, runs each kind in
turn, ``--rounds`` times with the order rotated each round (so that the
drift of a shared machine falls on every kind alike):

- raw: each process loops ``Etcd3Client.create(key, value)`` (etcd3gw's
  create-if-absent: one transaction comparing the key's version with 0)
  on etcd3gw's own ``requests`` session, with ``trust_env = False`` as the
  backend's (otherwise every request looks up proxies in ``os.environ``, a
  quarter of the raw client's CPU with a large environment, which would
  handicap the baseline). The goal's baseline;
- raw-ours: the same loop on the session the backend gives etcd3gw
  (``dualstack_ipam.store.etcd_http.GatewaySession``: ``http.client``
  instead of ``requests``). Against it, ``x ours`` is the cost of the
  durable protocol alone, with the HTTP stack the same on both sides;
- durable nodes: each process loops ``cluster.nodes.allocate(name)`` on one
  ``dualstack_ipam.open("etcd://...")`` Cluster (dual-stack: both families,
  the owner record and a journal entry in one transaction);
- durable Services: ``cluster.services.allocate(name)`` (random strategy:
  a short command's partial side, which reads the key's own record first).

Each run lasts ``--seconds`` of allocations after a warm-up. ops/s is the
sum over the processes (the median over the rounds), ``x raw`` the median
of each round's ratio to that round's raw run (``x ours``: to raw-ours), p50/p99 the per-call
latencies of every process and round. CPU per allocation is measured too
(the client processes with their watch threads, and etcd): on a machine
shared with other jobs it moves much less than the rates do.

Then, one process, near-full pools (99 %) against empty: allocate+release
pairs on 1,024 node CIDRs and on 1,022 Service addresses, the two pools
alternating ``--rounds`` times.

Run: ``python -m benchmarks.bench_etcd --json benchmarks/results/etcd.json
--txt benchmarks/results/etcd.txt``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import Any, NamedTuple

import dualstack_ipam
from benchmarks._common import format_table, machine_info, write_json
from dualstack_ipam import ClusterConfig
from dualstack_ipam.store.etcd_server import EtcdServer

SEED = ClusterConfig("10.0.0.0/8,fc00::/24", "172.16.0.0/12,fd00:10:96::/108")
NEAR = ClusterConfig("10.0.0.0/14,fc00::/54", "172.16.0.0/22", node_mask_ipv6=64)
WARMUP = 30
KINDS = ("raw", "raw-ours", "nodes", "services")


class Start(NamedTuple):
    """How the parent opens the same window for every worker of a run."""

    ready: Any  # a semaphore each worker releases once warmed up
    go: Any  # set when the window opens
    end: Any  # the window's end (time.time()), a shared double


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of process ``pid`` so far; None where /proc is not."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loop(call: Callable[[int], object], start: Start) -> tuple[list[float], float]:
    """The latencies of ``call`` over the common window, and the CPU they took."""
    for n in range(WARMUP):
        call(-n - 1)
    start.ready.release()
    start.go.wait()
    latencies, n, end = [], 0, start.end.value
    cpu = time.process_time()  # every thread of the process: the watch's too
    while time.time() < end:
        t0 = time.perf_counter()
        call(n)
        latencies.append(time.perf_counter() - t0)
        n += 1
    return latencies, time.process_time() - cpu


def _worker(
    kind: str,
    endpoint: str,
    prefix: str,
    name: str,
    start: Start,
    out: Queue[tuple[list[float], float]],
) -> None:
    if kind in ("raw", "raw-ours"):
        from etcd3gw.client import Etcd3Client

        from dualstack_ipam.store.etcd_http import GatewaySession

        host, port = endpoint.rsplit(":", 1)
        # raw-ours: the session the backend's Transport gives etcd3gw.
        ours: Any = GatewaySession() if kind == "raw-ours" else None
        client = Etcd3Client(host=host, port=int(port), timeout=5, api_path="/v3/", session=ours)
        if ours is None:
            client.session.trust_env = False  # no proxy lookup, as the backend

        def call(n: int) -> object:
            return client.create(f"{prefix}/{name}/{n}", "x")

        out.put(_loop(call, start))
        return
    with dualstack_ipam.open(f"etcd://{endpoint}/{prefix}", actor=name) as cluster:
        side = cluster.nodes if kind == "nodes" else cluster.services

        def allocate(n: int) -> object:
            return side.allocate(f"{name}-{n}")

        out.put(_loop(allocate, start))


def run(
    kind: str, server: EtcdServer, processes: int, seconds: float
) -> tuple[dict[str, Any], list[float]]:
    """One run of ``kind`` with ``processes`` workers: its figures, and every latency."""
    endpoint = server.endpoint
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    if not kind.startswith("raw"):
        dualstack_ipam.open(f"etcd://{endpoint}/{prefix}", SEED).close()
    context = multiprocessing.get_context("spawn")
    out: Queue[tuple[list[float], float]] = context.Queue()
    start = Start(context.Semaphore(0), context.Event(), context.Value("d", 0.0))
    workers = [
        context.Process(target=_worker, args=(kind, endpoint, prefix, f"w{i}", start, out))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        # Every worker warmed up (imports, open, first calls) before the
        # window opens: a slow start must not eat into one kind's window.
        while not start.ready.acquire(timeout=1.0):
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError(f"a {kind} worker failed")
    pid = server.process.pid if server.process is not None else 0
    etcd_start = _cpu_seconds(pid)
    start.end.value = time.time() + seconds
    start.go.set()
    etcd_cpu: float | None = None
    latencies: list[float] = []
    client_cpu = 0.0
    received = 0
    while received < processes:
        try:
            times, cpu = out.get(timeout=1.0)
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError(f"a {kind} worker failed") from None
            continue
        if received == 0 and etcd_start is not None:
            # The first worker has finished its window: etcd's CPU over it.
            etcd_end = _cpu_seconds(pid)
            etcd_cpu = None if etcd_end is None else etcd_end - etcd_start
        latencies += times
        client_cpu += cpu
        received += 1
    for worker in workers:
        worker.join()
    calls = max(len(latencies), 1)
    return {
        "kind": kind,
        "processes": processes,
        "ops_per_s": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "calls": len(latencies),
        "client_cpu_ms": client_cpu / calls * 1000,
        "etcd_cpu_ms": None if etcd_cpu is None else etcd_cpu / calls * 1000,
    }, latencies


def concurrency(server: EtcdServer, seconds: float, rounds: int) -> list[dict[str, Any]]:
    """Every kind at 1, 2 and 4 processes, ``rounds`` times in rotated order."""
    rows = []
    for processes in (1, 2, 4):
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        pooled: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for number in range(rounds):
            turn = number % len(KINDS)
            for kind in KINDS[turn:] + KINDS[:turn]:
                row, latencies = run(kind, server, processes, seconds)
                runs[kind].append(row)
                pooled[kind] += latencies
                print(row, file=sys.stderr, flush=True)
        for kind in KINDS:
            mine = runs[kind]
            etcd = [r["etcd_cpu_ms"] for r in mine if r["etcd_cpu_ms"] is not None]
            rows.append(
                {
                    "kind": kind,
                    "processes": processes,
                    "ops_per_s": statistics.median(r["ops_per_s"] for r in mine),
                    "p50_ms": statistics.median(pooled[kind]) * 1000,
                    "p99_ms": _percentile(pooled[kind], 0.99) * 1000,
                    "calls": sum(r["calls"] for r in mine),
                    "x_raw": statistics.median(
                        r["ops_per_s"] / raw["ops_per_s"]
                        for r, raw in zip(mine, runs["raw"], strict=True)
                    ),
                    "x_ours": statistics.median(
                        r["ops_per_s"] / raw["ops_per_s"]
                        for r, raw in zip(mine, runs["raw-ours"], strict=True)
                    ),
                    "client_cpu_ms": statistics.median(r["client_cpu_ms"] for r in mine),
                    "etcd_cpu_ms": statistics.median(etcd) if etcd else None,
                    "rounds": mine,
                }
            )
    return rows


def _pairs(side: Any, seconds: float) -> list[float]:
    """Latencies of allocate+release pairs of fresh keys for ``seconds``."""
    latencies = []
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        side.allocate(f"k-{n}")
        side.release(f"k-{n}")
        latencies.append(time.perf_counter() - t0)
        n += 1
    return latencies


def near_full(endpoint: str, seconds: float, rounds: int) -> list[dict[str, Any]]:
    """One process: pairs on an empty and a 99 % full pool, alternating ``rounds`` times."""
    rows = []
    for kind, size in (("nodes", 1024), ("services", 1022)):
        fills = (0.0, 0.99)
        clusters, sides = [], []
        for fill in fills:
            cluster = dualstack_ipam.open(f"etcd://{endpoint}/bench/{uuid.uuid4().hex[:8]}", NEAR)
            side = cluster.nodes if kind == "nodes" else cluster.services
            for n in range(int(size * fill)):
                side.allocate(f"fill-{n}")
            clusters.append(cluster)
            sides.append(side)
        for side in sides:  # the lease, the watch and the cursors warmed up
            for n in range(WARMUP):
                side.allocate(f"warm-{n}")
                side.release(f"warm-{n}")
        rates: list[list[float]] = [[] for _ in fills]
        pooled: list[list[float]] = [[] for _ in fills]
        for _ in range(rounds):
            for index, side in enumerate(sides):
                latencies = _pairs(side, seconds / rounds)
                rates[index].append(len(latencies) / (seconds / rounds))
                pooled[index] += latencies
        for cluster in clusters:
            cluster.close()
        for index, fill in enumerate(fills):
            rows.append(
                {
                    "kind": kind,
                    "size": size,
                    "fill": fill,
                    "pairs_per_s": statistics.median(rates[index]),
                    "p50_ms": statistics.median(pooled[index]) * 1000,
                    "p99_ms": _percentile(pooled[index], 0.99) * 1000,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--txt")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine_info("benchmarks.bench_etcd")}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as folder, EtcdServer(f"{folder}/m0") as server:
        server.start()
        results["concurrency"] = concurrency(server, args.seconds, args.rounds)
        load.append(os.getloadavg()[0])
        results["near_full"] = near_full(server.endpoint, 2 * args.seconds, args.rounds)
    load.append(os.getloadavg()[0])
    results["load_average"] = load
    machine = results["machine"]
    empty = {r["kind"]: r for r in results["near_full"] if r["fill"] == 0.0}
    lines = [
        f"python {machine['python']} on {machine['platform']}, {machine['cpus_usable']} CPUs, "
        f"{machine['date']}; etcd 3.4 one member on loopback (10 / 100 ms)",
        f"command: {machine['command']}",
        "the machine is shared with other jobs: load average (1 min) at the start, after "
        "the concurrency runs, at the end: " + ", ".join(f"{value:.1f}" for value in load),
        "",
        f"Allocations per second: the sum over the processes, median of {args.rounds} rounds; "
        "latency per call; CPU ms per allocation (client processes, etcd)",
        format_table(
            [
                "what",
                "processes",
                "ops/s",
                "p50 ms",
                "p99 ms",
                "x raw",
                "x ours",
                "client CPU",
                "etcd CPU",
            ],
            [
                [
                    r["kind"],
                    r["processes"],
                    r["ops_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["x_raw"],
                    r["x_ours"],
                    r["client_cpu_ms"],
                    "n/a" if r["etcd_cpu_ms"] is None else r["etcd_cpu_ms"],
                ]
                for r in results["concurrency"]
            ],
        ),
        "",
        "One process: allocate+release pairs, empty pool against 99 % full (alternating)",
        format_table(
            ["side", "size", "fill", "pairs/s", "p50 ms", "p99 ms", "x empty"],
            [
                [
                    r["kind"],
                    r["size"],
                    f"{r['fill']:.0%}",
                    r["pairs_per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["pairs_per_s"] / empty[r["kind"]]["pairs_per_s"],
                ]
                for r in results["near_full"]
            ],
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        write_json(args.json, results)
    if args.txt:
        with open(args.txt, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
