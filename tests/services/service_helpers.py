"""Helpers shared by the Service manifest tests (not collected: no test_ prefix)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dualstack_ipam import ServiceValidationError
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = [
    "ADDRESS",
    "CLUSTERS",
    "FAMILY",
    "POLICY",
    "V4",
    "V6",
    "allocator",
    "create",
    "refused",
    "service",
]

V4, V6 = "10.96.0.50", "fd00::50"  # inside the Service ranges below
CLUSTERS = {
    "v4": ("10.244.0.0/16", "10.96.0.0/24"),
    "v6": ("fc00::/24", "fd00::/112"),
    "dual": ("10.244.0.0/16,fc00::/24", "10.96.0.0/24,fd00::/112"),
    "dual6": ("fc00::/24,10.244.0.0/16", "fd00::/112,10.96.0.0/24"),
}
POLICY = {"-": None, "S": "SingleStack", "P": "PreferDualStack", "R": "RequireDualStack"}
FAMILY = {"4": "IPv4", "6": "IPv6"}
ADDRESS = {"4": V4, "6": V6}


def allocator(cluster: str = "dual") -> ServiceIPAllocator:
    cidrs, services = CLUSTERS[cluster]
    return ServiceIPAllocator(ClusterConfig(cidrs, services), strategy="sequential")


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def create(alloc: ServiceIPAllocator, manifest: dict[str, Any]) -> dict[str, Any]:
    """allocate_service, checking that the input is left exactly as it was."""
    frozen = copy.deepcopy(manifest)
    result = alloc.allocate_service(manifest)
    assert manifest == frozen
    alloc._check_invariants()
    return result


def refused(alloc: ServiceIPAllocator, call: Any, *args: Any) -> ServiceValidationError:
    """Run a call that must fail with ServiceValidationError and change nothing."""
    before = alloc.snapshot()
    frozen = copy.deepcopy(args)
    with pytest.raises(ServiceValidationError) as info:
        call(*args)
    assert alloc.snapshot() == before
    assert args == frozen
    alloc._check_invariants()
    return info.value
