"""Reconcile drift on the real allocators (their own ``reconcile`` method).

The approach of tests/test_reconcile.py (random holdings and truths over a
small address set: missing, leaked, swapped, conflicting and out-of-range
entries), run on NodeCIDRAllocator and ServiceIPAllocator themselves rather
than through adapters: repairing ``leak_grace`` times makes the allocator
equal to the truth where the truth is consistent, reports the rest, and
never frees an address the truth holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# One strategy of drifted holdings for every reconcile property (its pools
# take their first 8 addresses: these pools have exactly 8).
from test_reconcile import NodeAdapter, holdings

from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator
from dualstack_ipam.errors import AddressFormatError, InvalidConfigError
from dualstack_ipam.reconcile import ReconcileReport, reconcile

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


# ------------------------------------------------ the slotted surface changes nothing
# Both allocators offer reconcile a faster surface (owner-table pairs, objects
# built only for what differs). Through a wrapper offering only the
# Reconcilable surface, the same engine works on address objects: both ways
# must give equal reports, in the same order, and leave equal allocators.


class ObjectsOnly(NodeAdapter):
    """An allocator seen through the plain :class:`Reconcilable` surface only.

    The node adapter's forwarding methods, with the allocator's own parsing.
    """

    def __init__(self, alloc: Any) -> None:
        super().__init__(alloc)

    def _reconcile_parse(self, value: Any) -> tuple[Any, bool]:
        return self.alloc._reconcile_parse(value)  # type: ignore[no-any-return]


def _as_data(report: ReconcileReport) -> str:
    """The report with its order and the type of every address."""
    typed = {
        name: {
            key: [(type(a).__name__, str(a)) for a in value]
            if name != "mismatched"
            else [[(type(a).__name__, str(a)) for a in side] for side in value]
            for key, value in getattr(report, name).items()
        }
        for name in ("missing", "leaked", "mismatched", "released", "out_of_range")
    }
    conflicts = [(type(a).__name__, str(a), keys) for a, keys in report.conflicts.items()]
    return json.dumps([typed, conflicts, report.ok])


def same_both_ways(
    make: Callable[[], Any],
    held: dict[str, list[str]],
    truth: dict[str, list[str]],
    grace: int,
) -> None:
    fast, slow = make(), make()
    for alloc in (fast, slow):
        for key, addresses in held.items():
            # A grown range's network and broadcast addresses cannot be held.
            free = [
                a for a in addresses if alloc.owner_of(a) is None and alloc._reconcile_parse(a)[1]
            ]
            if free:
                alloc.occupy(key, free)
    plain = ObjectsOnly(slow)
    for repair in (False, *[True] * grace, False):
        a = fast.reconcile(truth, repair=repair, leak_grace=grace)
        b = reconcile(plain, truth, repair=repair, leak_grace=grace)
        assert a == b
        assert _as_data(a) == _as_data(b)
        assert fast.items() == slow.items()
        assert fast._leak_counts == plain._leak_counts
    fast._check_invariants()


def grown_services() -> ServiceIPAllocator:
    # The pools' .7 and .8 (fd00::8) are a range's broadcast or network address.
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/29,fd00::/125"))
    alloc.add_range("10.96.0.8/29")
    alloc.add_range("fd00::8/125")
    return alloc


def grown_nodes() -> NodeCIDRAllocator:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/22,fd00::/62"))
    alloc.add_range("10.0.4.0/22")
    alloc.add_range("fd00:0:0:4::/62")
    return alloc


@settings(deadline=None)
@given(
    holdings(NODE_POOLS, None),
    holdings(NODE_POOLS, NODE_OUTSIDE),
    st.integers(1, 3),
    st.booleans(),
)
def test_node_reports_are_those_of_the_object_surface(
    held: dict[str, list[str]], truth: dict[str, list[str]], grace: int, grown: bool
) -> None:
    def make() -> NodeCIDRAllocator:
        return grown_nodes() if grown else NodeCIDRAllocator(ClusterConfig("10.0.0.0/21,fd00::/61"))

    same_both_ways(make, held, truth, grace)


@settings(deadline=None)
@given(
    holdings(SERVICE_POOLS, None),
    holdings(SERVICE_POOLS, SERVICE_OUTSIDE),
    st.integers(1, 3),
    st.booleans(),
)
def test_service_reports_are_those_of_the_object_surface(
    held: dict[str, list[str]], truth: dict[str, list[str]], grace: int, grown: bool
) -> None:
    config = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/28,fd00::/124")

    def make() -> ServiceIPAllocator:
        return grown_services() if grown else ServiceIPAllocator(config)

    same_both_ways(make, held, truth, grace)


def test_the_truth_is_read_as_before() -> None:
    alloc = grown_services()
    alloc.reserve("10.96.0.3", "gateway")
    report = alloc.reconcile(
        {"ns/a": ["10.96.0.9", "fd00::9"], "ns/b": ["10.96.0.8"], "ns/c": ["10.96.0.3"]},
        repair=True,
    )
    assert report.missing == {
        "ns/a": (netaddr.IPAddress("10.96.0.9"), netaddr.IPAddress("fd00::9")),
        "ns/c": (netaddr.IPAddress("10.96.0.3"),),
    }
    assert report.out_of_range == {"ns/b": (netaddr.IPAddress("10.96.0.8"),)}
    assert report.conflicts == {netaddr.IPAddress("10.96.0.3"): ("ns/c",)}
    assert alloc.get("ns/a") == (netaddr.IPAddress("10.96.0.9"), netaddr.IPAddress("fd00::9"))
    with pytest.raises(InvalidConfigError, match=r"observed\['ns/a'\] lists two IPv4 entries"):
        alloc.reconcile({"ns/a": ["10.96.0.9", "10.96.0.1"]})
    with pytest.raises(AddressFormatError):
        alloc.reconcile({"ns/a": ["10.96.0.300"]})
