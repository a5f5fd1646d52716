"""A process allocating on one etcd-backed Cluster while the test injects faults.

Run as ``python fault_worker.py ENDPOINTS PREFIX NAME COUNT STOP [nofence]``:
at most COUNT rounds (fewer once the file STOP exists; ``-`` = none) of
one dual-stack node and one dual-stack Service named after NAME, a node
release every fifth round (2.2 calls a round). Each call that returned is one
JSON line on stdout, printed only after the call returned; a call that
raised ``StoreUnavailableError`` prints ``["unavailable", kind, key, why]`` and
the worker goes on with the next round (that call must have changed
nothing). Any other exception ends the worker with a traceback (exit 1).
``nofence`` switches the backend's fencing off (the control run).
"""

from __future__ import annotations

import json
import os
import sys

from dualstack_ipam import ClusterConfig, StoreUnavailableError
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store.etcd import EtcdBackend

SEED = ClusterConfig("10.0.0.0/8,fc00::/24", "172.16.0.0/16,fd00:10:96::/108")
TIMEOUT = 1.0
"""Seconds a request may take (the SIGSTOP test stops etcd for longer)."""


def say(*item: object) -> None:
    print(json.dumps(item), flush=True)


def main(endpoints: str, prefix: str, name: str, count: int, stop: str, fencing: bool) -> None:
    EtcdBackend.FENCING = fencing
    try:
        backend = EtcdBackend(endpoints, prefix, timeout=TIMEOUT)
        cluster = attach(backend, f"etcd://{endpoints}/{prefix}", SEED, actor=name)
    except StoreUnavailableError as exc:
        say("unavailable", "open", name, str(exc))
        return
    if stop != "-":
        open(f"{stop}.{name}.ready", "w").close()
    with cluster:
        for i in range(count):
            if stop != "-" and os.path.exists(stop):
                break
            node = f"{name}-n{i}"
            try:
                cidrs = cluster.nodes.allocate(node)
                say("node", node, [str(c) for c in cidrs])
            except StoreUnavailableError as exc:
                say("unavailable", "node", node, str(exc))
            manifest = {
                "metadata": {"name": f"{name}-s{i}"},
                "spec": {"ipFamilyPolicy": "RequireDualStack"},
            }
            key = f"default/{name}-s{i}"
            try:
                svc = cluster.services.allocate_service(manifest)
                say("service", key, svc["spec"]["clusterIPs"])
            except StoreUnavailableError as exc:
                say("unavailable", "service", key, str(exc))
            if i % 5 == 4:
                try:
                    cluster.nodes.release(node)  # False: it held nothing, as told
                    say("node", node, [])
                except StoreUnavailableError as exc:
                    say("unavailable", "node", node, str(exc))


if __name__ == "__main__":
    endpoints, prefix, name, count, stop, *rest = sys.argv[1:]
    main(endpoints, prefix, name, int(count), stop, rest != ["nofence"])
