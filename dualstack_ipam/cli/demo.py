"""The seed's scenario, as ``dualstack-ipam demo`` runs it on the default cluster.

Three nodes get one pod CIDR per family, then the seed page's three Service
manifests (``spec.ipFamily`` unset, ``IPv6``, ``IPv4``) get their cluster
IPs, on :data:`~dualstack_ipam.cli.commands.DEFAULT_CONFIG`: the seed's own
kube-controller-manager flags. Nothing is read or written: the demo runs on
fresh allocators, with a seeded rng, so it prints the same on every run.
"""

from __future__ import annotations

import random
from typing import Any

from dualstack_ipam.cli.ground import DEFAULT_CONFIG, Output
from dualstack_ipam.cli.manifests import parse_manifests
from dualstack_ipam.cli.render import describe, node_table, services_table, to_json
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = ["DEMO_NODES", "DEMO_SEED", "SEED_SERVICES", "build_demo", "run_demo"]

DEMO_NODES = ("node-1", "node-2", "node-3")
DEMO_SEED = 16
"""Seed of the demo's Service IP rng: the demo prints the same on every run."""

# The seed page's three Service manifests, verbatim but for their names (the
# page calls all three my-service, which one namespace cannot hold).
SEED_SERVICES = """\
apiVersion: v1
kind: Service
metadata:
  name: my-service
spec:
  selector:
    app: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
---
apiVersion: v1
kind: Service
metadata:
  name: my-service-ipv6
spec:
  ipFamily: IPv6
  selector:
    app: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
---
apiVersion: v1
kind: Service
metadata:
  name: my-service-ipv4
spec:
  ipFamily: IPv4
  selector:
    app: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""


def build_demo() -> tuple[NodeCIDRAllocator, ServiceIPAllocator, list[dict[str, Any]]]:
    """The demo's allocators on the default cluster, and the seed's Services as allocated.

    The one build of the demo cluster: :func:`run_demo` prints it, and
    :func:`~dualstack_ipam.cli.maps.demo_cluster` draws it for the docs.

    Complexity:
        O(1).

    >>> nodes, services, manifests = build_demo()
    >>> len(nodes), len(services), [m["spec"]["ipFamilies"] for m in manifests]
    (3, 3, [['IPv4'], ['IPv6'], ['IPv4']])
    """
    nodes = NodeCIDRAllocator(DEFAULT_CONFIG)
    services = ServiceIPAllocator(DEFAULT_CONFIG, rng=random.Random(DEMO_SEED))
    for node in DEMO_NODES:
        nodes.allocate(node)
    results = [
        services.allocate_service(manifest)
        for manifest in parse_manifests(SEED_SERVICES, "the seed")
    ]
    return nodes, services, results


def run_demo(*, as_json: bool = False) -> Output:
    """The seed's scenario on the default cluster; returns what to print.

    Three nodes get a pod CIDR per family, then the seed's three Service
    manifests (renamed ``my-service``, ``my-service-ipv6``,
    ``my-service-ipv4``) get their cluster IPs. The Service rng is seeded
    (:data:`DEMO_SEED`), so every run prints the same.

    Complexity:
        O(1).

    >>> print(run_demo())  # doctest: +ELLIPSIS
    Cluster: dual-stack cluster 10.244.0.0/16,fc00::/24 ...
    ...
    node-1  10.244.0.0/24  fc00::/64
    ...
    default/my-service-ipv6  IPv6           IPv6        SingleStack     fd00:10:96::...
    ...
    """
    config = DEFAULT_CONFIG
    nodes, _, results = build_demo()
    if as_json:
        return Output(
            to_json(
                {
                    "config": config.to_dict(),
                    "component_flags": config.component_flags(),
                    "nodes": {node: [str(c) for c in cidrs] for node, cidrs in nodes.items()},
                    "services": results,
                }
            )
        )
    flags = config.component_flags()["kube-controller-manager"]
    return Output(
        "\n".join(
            [
                f"Cluster: {describe(config)}",
                "kube-controller-manager flags (the seed's):",
                *(f"  {flag}" for flag in flags),
                "",
                "Nodes: one pod CIDR per family",
                node_table(config, nodes.items()),
                "",
                "Services: the seed's three manifests (spec.ipFamily unset, IPv6, IPv4)",
                services_table(results),
            ]
        )
    )
