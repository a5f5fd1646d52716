"""Restart to ready: the benchmark of issue 11, every ratio measured in one run.

Run from the repository root::

    python -m benchmarks.bench_restart [--quick] [--json FILE] [--no-freeze]

A controller that restarts rebuilds its allocators before it serves, either
from a snapshot of its own (``restore()``) or from the cluster's truth (the
Nodes' ``spec.podCIDRs`` and the Services' ``spec.clusterIPs``). The state
is 5,000 dual-stack nodes and 50,000 Services, 2,000 of them dual-stack:
5,000 x 2 pod CIDRs + 48,000 + 2,000 x 2 Service IPs = **62,000
addresses** (``--quick``: 500 nodes, 5,000 Services, 200 dual-stack). It is
made untimed, as a cluster makes it: ``NodeCIDRAllocator.allocate_node`` of
every Node, ``ServiceIPAllocator.allocate_service`` of every manifest
(random strategy; a quarter of the dual-stack Services IPv6-first); the
truth is what those calls wrote into the objects, as text, as a controller
reads it from the API server.

Timed in rounds, the cases interleaved (every round times each case once,
in the same order, the node allocator's half and then the Service
allocator's; a case's figure is the median over the rounds of the sum of
its halves, the minimum is kept beside it):

* ``restore``: ``NodeCIDRAllocator.restore`` and
  ``ServiceIPAllocator.restore`` of the two snapshots, as dicts in memory
  (the baseline of every ratio). ``json.loads`` of the snapshots' text is
  timed apart, for the record.
* ``occupy``: new allocators, then ``occupy(name, cidrs)`` per node and
  ``occupy(key, ips)`` per Service from the truth (the bulk load);
  goal: <= 4x ``restore``.
* ``allocate_node + occupy``: the nodes through ``allocate_node(node)`` of
  the Node objects (which occupy the CIDRs they carry), for the record.
* ``occupy + allocate_service`` (the old way): node ``occupy``, then
  ``allocate_service`` of every Service manifest carrying its
  ``clusterIPs``; the issue measured 6x ``restore`` before ``occupy``
  existed.
* ``reconcile``: ``reconcile(truth, repair=True, leak_grace=1)`` of both
  allocators, restored (untimed) from snapshots of a state that drifted
  from the truth by 1 % of each allocator's keys: a third missing (released
  since), a third leaked (keys the truth does not have), a third mismatched
  (holding other addresses); goal: <= 2x ``restore``.

Every case is checked untimed, every round: the allocators it built hold
exactly the truth, and each reconcile report names exactly the drift.

Each half is timed twice over: wall clock and the process's CPU time. The
goals are judged on CPU time, the wall-clock ratio printed beside it: on a
machine shared with other jobs the wall clock counts the time the process
waited for a core, which falls on whichever case runs then (the work is
single-threaded and does no I/O, so on an idle machine both agree). The
garbage collector stays on (a controller pays for its passes) and runs
before each case; the harness's own objects (the truth, the manifests and
the snapshots) are frozen (``gc.freeze()``) so that the passes a case
triggers do not walk them (``--no-freeze``: not frozen). Goals are printed
PASS / FAIL, never asserted: the script exits 0.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import format_table, machine_info, write_json
from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator

# Cluster CIDRs of 32,768 /24s and 65,536 /64s; Service ranges at
# Kubernetes' largest (IPv4 /12, IPv6 /108: 2**20 addresses each).
CONFIG = ClusterConfig("10.128.0.0/9,fd00:10:244::/48", "10.96.0.0/12,fd00:10:96::/108")

OCCUPY_GOAL = 4.0
RECONCILE_GOAL = 2.0
DRIFT = 0.01
ISSUE_OLD_RATIO = 2.55 / 0.43  # the issue's figures before occupy existed

Truth = dict[str, list[str]]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _service_manifest(i: int, dual: bool, ipv6_first: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80}]}
    if dual:
        spec["ipFamilyPolicy"] = "RequireDualStack"
        spec["ipFamilies"] = ["IPv6", "IPv4"] if ipv6_first else ["IPv4", "IPv6"]
    return {"metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % 50}"}, "spec": spec}


class State:
    """The cluster's objects and truth, and the allocators' snapshots."""

    def __init__(self, nodes: int, services: int, dual: int, seed: int) -> None:
        self.config = CONFIG
        node_alloc = NodeCIDRAllocator(CONFIG)
        self.node_objects = [
            node_alloc.allocate_node({"metadata": {"name": f"node-{i}"}}) for i in range(nodes)
        ]
        service_alloc = ServiceIPAllocator(CONFIG, rng=random.Random(seed))
        # The dual-stack Services spread over the whole list, as created over time.
        step = max(1, services // dual) if dual else 0
        dual_at = set(range(0, step * dual, step)) if dual else set()
        self.manifests = []
        for i in range(services):
            is_dual = i in dual_at
            ipv6_first = is_dual and (i // step) % 4 == 3
            self.manifests.append(
                service_alloc.allocate_service(_service_manifest(i, is_dual, ipv6_first))
            )
        self.nodes: Truth = {
            n["metadata"]["name"]: list(n["spec"]["podCIDRs"]) for n in self.node_objects
        }
        self.services: Truth = {
            f"{m['metadata']['namespace']}/{m['metadata']['name']}": list(m["spec"]["clusterIPs"])
            for m in self.manifests
        }
        self.addresses = sum(map(len, self.nodes.values())) + sum(map(len, self.services.values()))
        self.node_snapshot = node_alloc.snapshot()
        self.service_snapshot = service_alloc.snapshot()
        self.node_text = json.dumps(self.node_snapshot)
        self.service_text = json.dumps(self.service_snapshot)
        self.drift = _drift(node_alloc, service_alloc, self.nodes, self.services, seed)
        self.drift_node_snapshot = node_alloc.snapshot()
        self.drift_service_snapshot = service_alloc.snapshot()


def _drift(
    nodes: NodeCIDRAllocator,
    services: ServiceIPAllocator,
    node_truth: Truth,
    service_truth: Truth,
    seed: int,
) -> dict[str, dict[str, set[str]]]:
    """Move 1 % of each allocator's keys away from the truth; the keys moved, by kind.

    Leaks and mismatches take their new addresses first, while every
    address of the truth is still held, so that none of them lands on an
    address the truth gives to a key; the missing keys are released last.
    """
    rng = random.Random(seed)
    drift: dict[str, dict[str, set[str]]] = {}
    for name, alloc, truth in (
        ("nodes", nodes, node_truth),
        ("services", services, service_truth),
    ):
        count = max(3, round(DRIFT * len(truth)))
        chosen = rng.sample(sorted(truth), count - count // 3)
        missing = set(chosen[: count // 3])
        mismatched = set(chosen[count // 3 :])
        leaked = {f"leaked-{name}-{i}" for i in range(count // 3)}
        for key in sorted(leaked):
            if isinstance(alloc, NodeCIDRAllocator):
                alloc.allocate(key)
            else:
                alloc.allocate(f"default/{key}")
        for key in sorted(mismatched):
            if isinstance(alloc, NodeCIDRAllocator):
                other = alloc.allocate("drift-spare")
                alloc.release("drift-spare")
                alloc.release(key)
                alloc.occupy(key, other)
            else:
                # Every family the key holds moves (one or two addresses).
                spare = [
                    alloc.allocate(f"spare/{i}", f"IPv{ip.version}")
                    for i, ip in enumerate(alloc.get(key) or ())
                ]
                for i in range(len(spare)):
                    alloc.release(f"spare/{i}")
                alloc.release(key)
                alloc.occupy(key, spare)
        for key in missing:
            alloc.release(key)
        if isinstance(alloc, ServiceIPAllocator):
            leaked = {f"default/{key}" for key in leaked}
        drift[name] = {"missing": missing, "leaked": leaked, "mismatched": mismatched}
    return drift


# --- the cases --------------------------------------------------------------------
#
# A case is two halves, the node allocator's and the Service allocator's,
# timed one after the other; its figure is their sum.

Half = Callable[["State"], Any]


def restore_nodes(state: State) -> NodeCIDRAllocator:
    """The node allocator from its snapshot (a dict in memory)."""
    return NodeCIDRAllocator.restore(state.node_snapshot)


def restore_services(state: State) -> ServiceIPAllocator:
    """The Service allocator from its snapshot (a dict in memory)."""
    return ServiceIPAllocator.restore(state.service_snapshot)


def loads_nodes(state: State) -> Any:
    """Decoding the node snapshot's JSON text (not part of ``restore``)."""
    return json.loads(state.node_text)


def loads_services(state: State) -> Any:
    """Decoding the Service snapshot's JSON text (not part of ``restore``)."""
    return json.loads(state.service_text)


def occupy_nodes(state: State) -> NodeCIDRAllocator:
    """A new node allocator, then ``occupy(name, cidrs)`` of every Node of the truth."""
    nodes = NodeCIDRAllocator(state.config)
    for name, cidrs in state.nodes.items():
        nodes.occupy(name, cidrs)
    return nodes


def occupy_services(state: State) -> ServiceIPAllocator:
    """A new Service allocator, then ``occupy(key, ips)`` of every Service of the truth."""
    services = ServiceIPAllocator(state.config)
    for key, ips in state.services.items():
        services.occupy(key, ips)
    return services


def allocate_nodes(state: State) -> NodeCIDRAllocator:
    """A new node allocator, then ``allocate_node`` of every Node object."""
    nodes = NodeCIDRAllocator(state.config)
    for node in state.node_objects:
        nodes.allocate_node(node)
    return nodes


def allocate_services(state: State) -> ServiceIPAllocator:
    """The old way: a new Service allocator, then ``allocate_service`` of every manifest."""
    services = ServiceIPAllocator(state.config)
    for manifest in state.manifests:
        services.allocate_service(manifest)
    return services


CASES: dict[str, tuple[Half, Half]] = {
    "restore": (restore_nodes, restore_services),
    "json.loads": (loads_nodes, loads_services),
    "occupy": (occupy_nodes, occupy_services),
    "allocate_node + occupy": (allocate_nodes, occupy_services),
    "occupy + allocate_service": (occupy_nodes, allocate_services),
}


def _as_text(alloc: NodeCIDRAllocator | ServiceIPAllocator) -> Truth:
    return {key: [str(a) for a in held] for key, held in alloc.items()}


def _check(state: State, nodes: Any, services: Any, name: str) -> None:
    """Untimed: the allocators built by a case hold exactly the truth."""
    if _as_text(nodes) != state.nodes or _as_text(services) != state.services:
        raise AssertionError(f"{name}: the allocators do not hold the truth")


def _time(call: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of ``call()``, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _check_report(report: Any, drift: dict[str, set[str]]) -> None:
    found = {
        "missing": set(report.missing),
        "leaked": set(report.leaked),
        "mismatched": set(report.mismatched),
    }
    if found != drift or not report.ok or set(report.released) != drift["leaked"]:
        raise AssertionError(f"reconcile found {found}, not the drift {drift}")


# --- the run ------------------------------------------------------------------------

Samples = dict[str, list[float]]


def _new_samples() -> Samples:
    return {key: [] for key in ("nodes", "services", "total", "nodes_cpu", "services_cpu")}


def _one_round(state: State, samples: dict[str, Samples]) -> None:
    """Every case once, in order, then ``reconcile``; each checked untimed."""
    for name, halves in CASES.items():
        gc.collect()
        built = []
        for half, label in zip(halves, ("nodes", "services"), strict=True):
            wall, cpu, result = _time(functools.partial(half, state))
            samples[name][label].append(wall)
            samples[name][f"{label}_cpu"].append(cpu)
            built.append(result)
        if name != "json.loads":
            _check(state, built[0], built[1], name)
        del built
    nodes = NodeCIDRAllocator.restore(state.drift_node_snapshot)
    services = ServiceIPAllocator.restore(state.drift_service_snapshot)
    gc.collect()
    for alloc, truth, label in (
        (nodes, state.nodes, "nodes"),
        (services, state.services, "services"),
    ):
        wall, cpu, report = _time(
            functools.partial(alloc.reconcile, truth, repair=True, leak_grace=1)
        )
        samples["reconcile"][label].append(wall)
        samples["reconcile"][f"{label}_cpu"].append(cpu)
        _check_report(report, state.drift[label])
    _check(state, nodes, services, "reconcile")


def _figures(samples: Samples) -> dict[str, Any]:
    """Medians and minima of each half and of the sums (wall and CPU)."""
    out: dict[str, Any] = {}
    for suffix in ("", "_cpu"):
        nodes, services = samples[f"nodes{suffix}"], samples[f"services{suffix}"]
        total = [a + b for a, b in zip(nodes, services, strict=True)]
        for label, values in (("nodes", nodes), ("services", services), ("total", total)):
            out[f"{label}{suffix}_median_s"] = statistics.median(values)
            out[f"{label}{suffix}_min_s"] = min(values)
            out[f"{label}{suffix}_samples_s"] = values
    return out


def run(
    nodes: int, services: int, dual: int, rounds: int, quick: bool, freeze: bool = True
) -> dict[str, Any]:
    """Build the state, time every case in ``rounds`` rounds; the result document."""
    load_start = os.getloadavg()[0]
    _log(f"building {nodes:,} nodes and {services:,} Services ({dual:,} dual-stack)")
    started = time.perf_counter()
    state = State(nodes, services, dual, seed=1)
    build_s = time.perf_counter() - started
    if freeze:
        # The harness's own objects (the truth, the manifests, the snapshots:
        # millions) would otherwise be walked by every full collection that
        # a case's allocations trigger, charging the cases for the harness.
        gc.collect()
        gc.freeze()
    samples = {name: _new_samples() for name in (*CASES, "reconcile")}
    try:
        for r in range(rounds):
            _log(f"round {r + 1} of {rounds}")
            _one_round(state, samples)
    finally:
        if freeze:
            gc.unfreeze()
    figures = {name: _figures(values) for name, values in samples.items()}
    base = figures["restore"]
    for figure in figures.values():
        for suffix in ("", "_cpu"):
            for stat in ("median", "min"):
                key = f"total{suffix}_{stat}_s"
                figure[f"x_restore{suffix}_{stat}"] = figure[key] / base[key]
    goals = [
        _goal("bulk occupy from the truth / restore()", figures["occupy"], OCCUPY_GOAL),
        _goal(
            f"reconcile(repair=True, leak_grace=1) with {DRIFT:.0%} drift / restore()",
            figures["reconcile"],
            RECONCILE_GOAL,
        ),
    ]
    return {
        "machine": machine_info("benchmarks.bench_restart"),
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "quick": quick,
        "gc_frozen": freeze,
        "nodes": nodes,
        "services": services,
        "dual_stack_services": dual,
        "addresses": state.addresses,
        "config": state.config.to_dict(),
        "rounds": rounds,
        "build_s": build_s,
        "drift": {
            name: {kind: len(keys) for kind, keys in kinds.items()}
            for name, kinds in state.drift.items()
        },
        "snapshot_json_bytes": len(state.node_text) + len(state.service_text),
        "cases": figures,
        "old_way_issue_ratio": ISSUE_OLD_RATIO,
        "goals": goals,
    }


def _goal(name: str, figure: dict[str, Any], limit: float) -> dict[str, Any]:
    """Judged on CPU time, the wall-clock ratio beside it (the machine is shared)."""
    return {
        "goal": name,
        "figure": figure["x_restore_cpu_median"],
        "figure_wall": figure["x_restore_median"],
        "figure_cpu_min": figure["x_restore_cpu_min"],
        "limit": limit,
        "unit": "x",
        "pass": figure["x_restore_cpu_median"] <= limit,
    }


def report(result: dict[str, Any]) -> str:
    """The printed tables."""
    machine = result["machine"]
    drift = result["drift"]
    cases = result["cases"]
    out = [
        f"python {machine['python']} on {machine['platform']}, {machine['cpus_usable']} CPUs, "
        f"{machine['date']}; {'quick' if result['quick'] else 'full'} run",
        f"command: {machine['command']}",
        f"load average (1 min) at start {result['load_average_1min']['start']:.2f}, "
        f"at end {result['load_average_1min']['end']:.2f}; garbage collector "
        + ("on, the harness's objects frozen" if result["gc_frozen"] else "on, nothing frozen"),
        f"state: {result['nodes']:,} dual-stack nodes, {result['services']:,} Services "
        f"({result['dual_stack_services']:,} dual-stack): {result['addresses']:,} addresses; "
        f"built in {result['build_s']:.1f} s; snapshots {result['snapshot_json_bytes']:,} "
        "bytes of JSON",
        "drift for reconcile: "
        + "; ".join(
            f"{name} " + ", ".join(f"{n} {kind}" for kind, n in kinds.items())
            for name, kinds in drift.items()
        ),
        "",
    ]
    for suffix, what in (("_cpu", "CPU time of the process"), ("", "wall clock")):
        out += [
            f"restart to ready, {what}, {result['rounds']} rounds, cases interleaved "
            "(ms, median; min for the total)",
            format_table(
                ["case", "nodes", "Services", "total", "min total", "x restore", "x (min/min)"],
                [
                    [
                        name,
                        f[f"nodes{suffix}_median_s"] * 1e3,
                        f[f"services{suffix}_median_s"] * 1e3,
                        f[f"total{suffix}_median_s"] * 1e3,
                        f[f"total{suffix}_min_s"] * 1e3,
                        f[f"x_restore{suffix}_median"],
                        f[f"x_restore{suffix}_min"],
                    ]
                    for name, f in cases.items()
                ],
            ),
            "",
        ]
    out += [
        f"the issue's old way: allocate_service 2.55 s / restore 0.43 s = "
        f"{result['old_way_issue_ratio']:.1f}x; measured here (CPU) "
        f"{cases['occupy + allocate_service']['x_restore_cpu_median']:.1f}x",
        "",
        "goals (CPU time; wall clock beside it):",
    ]
    for goal in result["goals"]:
        verdict = "PASS" if goal["pass"] else "FAIL"
        out.append(
            f"  {verdict}  {goal['goal']}: {goal['figure']:.2f} {goal['unit']} "
            f"(wall {goal['figure_wall']:.2f}, min/min {goal['figure_cpu_min']:.2f}; "
            f"goal <= {goal['limit']:g} {goal['unit']})"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the tables and the goals, optionally write ``--json``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_restart")
    parser.add_argument("--quick", action="store_true", help="a tenth of the size, 3 rounds")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="leave the harness's objects to the garbage collector (see the docstring)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    freeze = not args.no_freeze
    if args.quick:
        result = run(500, 5_000, 200, rounds=3, quick=True, freeze=freeze)
    else:
        result = run(5_000, 50_000, 2_000, rounds=9, quick=False, freeze=freeze)
    result["seconds"] = time.perf_counter() - started
    print(report(result))
    print(f"total {result['seconds']:.0f} s")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
