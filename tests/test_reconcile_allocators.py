"""Reconcile drift on the real allocators (their own ``reconcile`` method).

The approach of tests/test_reconcile.py (random holdings and truths over a
small address set: missing, leaked, swapped, conflicting and out-of-range
entries), run on NodeCIDRAllocator and ServiceIPAllocator themselves rather
than through adapters: repairing ``leak_grace`` times makes the allocator
equal to the truth where the truth is consistent, reports the rest, and
never frees an address the truth holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import netaddr
from hypothesis import given, settings
from hypothesis import strategies as st

# One strategy of drifted holdings for every reconcile property (its pools
# take their first 8 addresses: these pools have exactly 8).
from test_reconcile import holdings

from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator

NODE_POOLS = ([f"10.0.{i}.0/24" for i in range(8)], [f"fd00:0:0:{i:x}::/64" for i in range(8)])
NODE_OUTSIDE = ["10.1.0.0/24", "fd00:0:0:7::/80"]
SERVICE_POOLS = ([f"10.96.0.{i}" for i in range(1, 9)], [f"fd00::{i:x}" for i in range(1, 9)])
SERVICE_OUTSIDE = ["10.97.0.1", "fd00::1:0"]


def converge(
    alloc: Any,
    parse: Callable[[str], Any],
    pools: tuple[list[str], list[str]],
    held: dict[str, list[str]],
    truth: dict[str, list[str]],
    grace: int,
) -> None:
    for key, addresses in held.items():
        free = [a for a in addresses if alloc.owner_of(a) is None]
        if free:
            alloc.occupy(key, free)
    claimed = {parse(a) for addresses in truth.values() for a in addresses}
    report = None
    for _ in range(grace):
        before = {a for _, addresses in alloc.items() for a in addresses}
        report = alloc.reconcile(truth, repair=True, leak_grace=grace)
        after = {a for _, addresses in alloc.items() for a in addresses}
        assert not (before & claimed) - after, "an address the truth holds was freed"
        alloc._check_invariants()
    assert report is not None
    counts: dict[Any, int] = {}
    for addresses in truth.values():
        for a in addresses:
            counts[parse(a)] = counts.get(parse(a), 0) + 1
    usable = {parse(a) for a in pools[0] + pools[1]}
    if all(n == 1 for n in counts.values()) and counts.keys() <= usable:
        assert report.ok, report
        assert {k: set(v) for k, v in alloc.items()} == {
            k: {parse(a) for a in v} for k, v in truth.items()
        }
    else:
        assert not report.ok
        assert report.conflicts or report.out_of_range
    assert all(k in truth or set(v) & claimed for k, v in alloc.items()), "a leak survived"
    assert alloc.reconcile(truth).ok == report.ok


@settings(deadline=None)
@given(holdings(NODE_POOLS, None), holdings(NODE_POOLS, NODE_OUTSIDE), st.integers(1, 3))
def test_node_allocator_converges(
    held: dict[str, list[str]], truth: dict[str, list[str]], grace: int
) -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/21,fd00::/61"))
    converge(alloc, netaddr.IPNetwork, NODE_POOLS, held, truth, grace)


@settings(deadline=None)
@given(holdings(SERVICE_POOLS, None), holdings(SERVICE_POOLS, SERVICE_OUTSIDE), st.integers(1, 3))
def test_service_allocator_converges(
    held: dict[str, list[str]], truth: dict[str, list[str]], grace: int
) -> None:
    config = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/28,fd00::/124")
    converge(ServiceIPAllocator(config), netaddr.IPAddress, SERVICE_POOLS, held, truth, grace)


def test_a_reservation_blocking_the_truth_is_a_one_key_conflict() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/28"))
    alloc.reserve("10.96.0.5", "gateway")
    report = alloc.reconcile({"ns/a": ["10.96.0.5"]}, repair=True)
    assert report.conflicts == {netaddr.IPAddress("10.96.0.5"): ("ns/a",)}
    assert not report.ok
    assert len(alloc) == 0
