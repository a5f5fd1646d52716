"""A process that allocates on a shared store and prints what was acknowledged.

Run as ``python durable_worker.py URL NAME COUNT``: COUNT rounds of one node
and one dual-stack Service named after NAME, a release every fifth round;
each acknowledged result is one JSON line on stdout, printed only after the
call returned.
"""

from __future__ import annotations

import json
import sys

import dualstack_ipam


def main(url: str, name: str, count: int) -> None:
    with dualstack_ipam.open(url, actor=name) as cluster:
        for i in range(count):
            node = f"{name}-n{i}"
            cidrs = cluster.nodes.allocate(node)
            print(json.dumps(["node", node, [str(c) for c in cidrs]]), flush=True)
            manifest = {
                "metadata": {"name": f"{name}-s{i}"},
                "spec": {"ipFamilyPolicy": "RequireDualStack"},
            }
            svc = cluster.services.allocate_service(manifest)
            key = f"default/{name}-s{i}"
            print(json.dumps(["service", key, svc["spec"]["clusterIPs"]]), flush=True)
            if i % 5 == 4:
                cluster.nodes.release(node)
                print(json.dumps(["node", node, []]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
