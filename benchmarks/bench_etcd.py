"""Durable allocations on etcd against raw etcd3gw create-if-absent, in one run.

Starts a throw-away one-member etcd 3.4 on loopback (10 / 100 ms heartbeat
and election timeout), then, for 1, 2 and 4 processes, alternates:

- raw: each process loops ``Etcd3Client.create(key, value)`` (etcd3gw's
  create-if-absent: one transaction comparing the key's version with 0);
- durable nodes: each process loops ``cluster.nodes.allocate(name)`` on one
  ``dualstack_ipam.open("etcd://...")`` Cluster (dual-stack: both families,
  the owner record and a journal entry in one transaction);
- durable Services: ``cluster.services.allocate(name)`` (random strategy:
  the Service side reads the key's own record first, a second round trip).

Each run lasts ``--seconds`` of allocations after a warm-up; ops/s is the
sum over the processes, p50/p99 the per-call latencies of all of them.
Then, one process, near-full pools (99 %) against empty: allocate+release
pairs on 1,024 node CIDRs and on 1,022 Service addresses.

Run: ``python -m benchmarks.bench_etcd --json benchmarks/results/etcd.json
--txt benchmarks/results/etcd.txt``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import Any

import dualstack_ipam
from benchmarks._common import format_table, machine_info, write_json
from dualstack_ipam import ClusterConfig
from dualstack_ipam.store.etcd_server import EtcdServer

SEED = ClusterConfig("10.0.0.0/8,fc00::/24", "172.16.0.0/12,fd00:10:96::/108")
NEAR = ClusterConfig("10.0.0.0/14,fc00::/54", "172.16.0.0/22", node_mask_ipv6=64)
WARMUP = 30


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _loop(call: Callable[[int], object], start_at: float, seconds: float) -> list[float]:
    for n in range(WARMUP):
        call(-n - 1)
    while time.time() < start_at:
        time.sleep(0.001)
    latencies, n, end = [], 0, start_at + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        call(n)
        latencies.append(time.perf_counter() - t0)
        n += 1
    return latencies


def _worker(
    kind: str,
    endpoint: str,
    prefix: str,
    name: str,
    start_at: float,
    seconds: float,
    out: Queue[list[float]],
) -> None:
    if kind == "raw":
        from etcd3gw.client import Etcd3Client

        host, port = endpoint.rsplit(":", 1)
        client = Etcd3Client(host=host, port=int(port), timeout=5, api_path="/v3/")

        def call(n: int) -> object:
            return client.create(f"{prefix}/{name}/{n}", "x")

        out.put(_loop(call, start_at, seconds))
        return
    with dualstack_ipam.open(f"etcd://{endpoint}/{prefix}", actor=name) as cluster:
        side = cluster.nodes if kind == "nodes" else cluster.services

        def allocate(n: int) -> object:
            return side.allocate(f"{name}-{n}")

        out.put(_loop(allocate, start_at, seconds))


def run(kind: str, endpoint: str, processes: int, seconds: float) -> dict[str, Any]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    if kind != "raw":
        dualstack_ipam.open(f"etcd://{endpoint}/{prefix}", SEED).close()
    context = multiprocessing.get_context("spawn")
    out: Queue[list[float]] = context.Queue()
    start_at = time.time() + 2.0 + processes * 0.5
    workers = [
        context.Process(
            target=_worker, args=(kind, endpoint, prefix, f"w{i}", start_at, seconds, out)
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    received = 0
    while received < processes:
        try:
            latencies += out.get(timeout=1.0)
            received += 1
        except queue.Empty:
            if any(w.exitcode not in (None, 0) for w in workers):
                raise RuntimeError(f"a {kind} worker failed") from None
    for worker in workers:
        worker.join()
    return {
        "kind": kind,
        "processes": processes,
        "ops_per_s": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "calls": len(latencies),
    }


def near_full(endpoint: str, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for kind, size in (("nodes", 1024), ("services", 1022)):
        for fill in (0.0, 0.99):
            prefix = f"bench/{uuid.uuid4().hex[:8]}"
            with dualstack_ipam.open(f"etcd://{endpoint}/{prefix}", NEAR) as cluster:
                side = cluster.nodes if kind == "nodes" else cluster.services
                for n in range(int(size * fill)):
                    side.allocate(f"fill-{n}")
                latencies = []
                end = time.perf_counter() + seconds
                n = 0
                while time.perf_counter() < end:
                    t0 = time.perf_counter()
                    side.allocate(f"k-{n}")
                    side.release(f"k-{n}")
                    latencies.append(time.perf_counter() - t0)
                    n += 1
            rows.append(
                {
                    "kind": kind,
                    "size": size,
                    "fill": fill,
                    "pairs_per_s": len(latencies) / seconds,
                    "p50_ms": statistics.median(latencies) * 1000,
                    "p99_ms": _percentile(latencies, 0.99) * 1000,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json")
    parser.add_argument("--txt")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine_info("benchmarks.bench_etcd")}
    with tempfile.TemporaryDirectory() as folder, EtcdServer(f"{folder}/m0") as server:
        server.start()
        concurrency = []
        for processes in (1, 2, 4):
            raw = run("raw", server.endpoint, processes, args.seconds)
            nodes = run("nodes", server.endpoint, processes, args.seconds)
            services = run("services", server.endpoint, processes, args.seconds)
            for row in (raw, nodes, services):
                row["x_raw"] = row["ops_per_s"] / raw["ops_per_s"]
                concurrency.append(row)
                print(row, file=sys.stderr, flush=True)
        results["concurrency"] = concurrency
        results["near_full"] = near_full(server.endpoint, args.seconds)
    machine = results["machine"]
    empty = {r["kind"]: r for r in results["near_full"] if r["fill"] == 0.0}
    lines = [
        f"python {machine['python']} on {machine['platform']}, {machine['cpus_usable']} CPUs, "
        f"{machine['date']}; etcd 3.4 one member on loopback (10 / 100 ms)",
        f"command: {machine['command']}",
        "Allocations per second: the sum over the processes; latency per call",
        format_table(
            ["what", "processes", "ops/s", "p50 ms", "p99 ms", "x raw"],
            [
                [r["kind"], r["processes"], r["ops_per_s"], r["p50_ms"], r["p99_ms"], r["x_raw"]]
                for r in concurrency
            ],
        ),
        "",
        "One process: allocate+release pairs, empty pool against 99 % full",
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
