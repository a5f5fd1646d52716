"""Hypothesis strategies for dualstack_ipam: networks, clusters, pools, allocators, manifests.

Use them in your own property-based tests::

    from hypothesis import given
    from dualstack_ipam.testing import strategies as ds

    @given(ds.node_allocators(fill="one-free"))
    def test_my_controller_survives_the_last_node(alloc):
        ...

Every strategy:

- takes keyword-only arguments, checked when the strategy is built
  (``hypothesis.errors.InvalidArgument`` names the bad one);
- generates only valid values: configurations pass every
  :class:`~dualstack_ipam.ClusterConfig` rule, pools and allocators pass
  their ``_check_invariants()``, manifests are accepted by
  :meth:`~dualstack_ipam.services.allocator.ServiceIPAllocator.allocate_service`;
- builds them constructively (no ``.filter``), and fills pools by ranges,
  so a full IPv6 ``/64`` costs no more than a full ``/24``;
- shrinks to the simplest case: IPv4 before IPv6, single-stack before
  dual-stack, empty before full, the ``10.0.0.0`` / ``fd00::`` ranges;
- boosts the edge cases: ``/31``, ``/32``, ``/127``, ``/128``, one node per
  cluster, a pool with one free slot, Service ranges inside the cluster CIDR,
  and the seed's own ``10.244.0.0/16,fc00::/24`` cluster.

This module tree (:mod:`dualstack_ipam.testing`) is the only part of
dualstack_ipam that imports Hypothesis.
"""

from __future__ import annotations

from ._allocators import node_allocators, service_ip_allocators
from ._common import FILLS
from ._invalid_manifests import InvalidManifest, invalid_service_manifests
from ._manifests import MANIFEST_KINDS, service_manifests
from ._networks import cidrs, cluster_configs, ip_families
from ._pools import service_ip_pools, subnet_pools

__all__ = [
    "FILLS",
    "MANIFEST_KINDS",
    "InvalidManifest",
    "cidrs",
    "cluster_configs",
    "invalid_service_manifests",
    "ip_families",
    "node_allocators",
    "service_ip_allocators",
    "service_ip_pools",
    "service_manifests",
    "subnet_pools",
]
