"""Durable add_range on both sides: range records, followed, exported, imported, replayed."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dualstack_ipam
from dualstack_ipam import (
    AlreadyAllocatedError,
    ClusterConfig,
    InvalidConfigError,
    PoolExhaustedError,
    ServiceIPAllocator,
    SnapshotError,
)
from dualstack_ipam.durable import Cluster, replay
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.durable.layout import SideLayout
from dualstack_ipam.net import IPFamily
from dualstack_ipam.pools.multi import parts_of
from dualstack_ipam.store import Change, MemoryBackend
from durable import backends
from durable.backends import Backends

make = backends.make

# Two /25 node subnets in the first range; a Service range outside it.
CONFIG = ClusterConfig(
    "10.0.0.0/24,fd00::/120", "10.96.0.0/28", node_mask_ipv4=25, node_mask_ipv6=121
)
NET = netaddr.IPNetwork


def test_a_grown_family_is_stored_and_followed(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    with dualstack_ipam.open(url, CONFIG) as one, dualstack_ipam.open(url) as two:
        one.nodes.allocate("a")
        one.nodes.allocate("b")
        with pytest.raises(PoolExhaustedError):
            two.nodes.allocate("c")
        assert one.nodes.add_range("10.9.0.0/24") == NET("10.9.0.0/24")
        one.nodes.add_range("fd00:1::/121")
        assert two.nodes.allocate("c")[0] == NET("10.9.0.0/25")  # the follower grew
        assert two.nodes.ranges("IPv4") == [NET("10.0.0.0/24"), NET("10.9.0.0/24")]
        assert one.nodes.owner_of("10.9.0.5") == "c"
        two.nodes.reserve("10.9.0.128/25", "later")
        assert one.nodes.reservations() == [(NET("10.9.0.128/25"), "later")]
        with pytest.raises(InvalidConfigError, match="overlaps"):
            two.nodes.add_range("10.9.0.0/23")
        rows = [(e.op, e.kind, e.key, e.addresses, e.data) for e in one.journal()]
        assert rows[2] == ("add-range", "range", "10.9.0.0/24", ("10.9.0.0/24",), {"side": "nodes"})
        one._check_invariants()
        two._check_invariants()
    with dualstack_ipam.open(url) as three:  # a new process reads the range first
        assert three.nodes.get("c") == (NET("10.9.0.0/25"), NET("fd00:1::/121"))
        assert three.nodes.capacity("IPv4") == 4
        three._check_invariants()


class AddWhileCatchingUp(MemoryBackend):
    """A memory store where another writer commits right after a reader's catch-up."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Any = None

    def changes(self, after: int) -> tuple[list[Change], int]:
        result = super().changes(after)
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return result


def test_concurrent_additions_are_ordered_by_the_store() -> None:
    store = AddWhileCatchingUp()
    one = attach(store, "memory://", CONFIG)
    two = attach(store, "memory://")
    _ = one.nodes, two.nodes
    store.hook = lambda: one.nodes.add_range("10.9.0.0/24")
    # two's first try takes the number one took meanwhile and loses; it follows and retries.
    assert two.nodes.add_range("10.8.0.0/24") == NET("10.8.0.0/24")
    assert one.nodes.ranges("IPv4")[1:] == [NET("10.9.0.0/24"), NET("10.8.0.0/24")]
    assert two.nodes.ranges("IPv4") == one.nodes.ranges("IPv4")
    store.hook = lambda: one.nodes.add_range("10.7.0.0/24")
    with pytest.raises(InvalidConfigError, match="overlaps"):
        two.nodes.add_range("10.7.0.0/25")  # the retry sees the other's range
    one._check_invariants()
    two._check_invariants()


def test_export_import_and_replay_carry_added_ranges() -> None:
    source = dualstack_ipam.open("memory://", CONFIG)
    source.nodes.add_range("10.9.0.0/24")
    source.nodes.add_range("fd00:1::/121")
    for name in "abc":
        source.nodes.allocate(name)
    source.nodes.reserve("10.9.0.128/25", "spare")
    doc = source.export()
    assert doc["ranges"] == {"nodes": ["10.9.0.0/24", "fd00:1::/121"], "services": []}
    target = dualstack_ipam.open("memory://", CONFIG)
    assert target.import_(doc) == 3
    assert target.export()["nodes"] == doc["nodes"]
    assert target.nodes.ranges("IPv6") == source.nodes.ranges("IPv6")
    target._check_invariants()
    copy = dualstack_ipam.open("memory://", CONFIG)
    replay(source.journal(), copy)
    replay(source.journal(), copy)  # again: the ranges are there already
    assert copy.export()["nodes"] == doc["nodes"]
    assert copy.export()["ranges"] == doc["ranges"]
    assert copy.nodes.reservations() == source.nodes.reservations()
    copy._check_invariants()
    doc["ranges"] = {"nodes": ["10.0.0.0/25"]}
    with pytest.raises(SnapshotError, match="overlaps"):
        dualstack_ipam.open("memory://", CONFIG).import_(doc)


# Services: a dual-stack cluster with small Service ranges, filled in order.
SVC = ClusterConfig("10.0.0.0/16,fd00::/64", "10.96.0.0/29,fd00:96::/125")
IP = netaddr.IPAddress


def follower(make: Backends, cluster: Cluster) -> Cluster:
    """A second process on the same store (a second client of the same memory store)."""
    if make.kind == "memory":
        return attach(cluster._sync.backend, "memory://")
    return dualstack_ipam.open(cluster.url)


def test_a_grown_service_family_is_stored_and_followed(make: Backends) -> None:
    if not make.durable:
        pytest.skip("the plain class: tests/services/test_service_ranges.py")
    one = make.cluster(SVC, service_strategy="sequential")
    two = follower(make, one)
    try:
        for name in "abcdef":
            one.services.allocate(name)
        with pytest.raises(PoolExhaustedError):
            two.services.allocate("g", "IPv4")
        # Below the first range, and an IPv6 range far from the first.
        assert one.services.add_range("10.95.0.0/29") == NET("10.95.0.0/29")
        one.services.add_range("fd00:1:96::/126")
        two.refresh()  # etcd: a mutation's first try trusts the watch, which may lag
        assert two.services.allocate("g") == IP("10.95.0.1")  # the follower grew
        assert one.services.owner_of("10.95.0.1") == "g"
        assert two.services.ranges("IPv4") == [NET("10.96.0.0/29"), NET("10.95.0.0/29")]
        # Its records go on past the first range's slots: 6 usable addresses, slot 1 + 6.
        keys = [r.key for r in one._sync.backend.get_prefix("alloc/s4/")]
        assert keys[-1] == "alloc/s4/00000007"
        # Reservations reach it, from either process.
        two.services.reserve("10.95.0.2-10.95.0.3", "vips")
        assert one.services.reservations() == [(netaddr.IPRange("10.95.0.2", "10.95.0.3"), "vips")]
        assert one.services.allocate("h", "IPv4") == IP("10.95.0.4")
        with pytest.raises(AlreadyAllocatedError):  # the store's alloc records of that range
            two.services.reserve("10.95.0.4-10.95.0.5")
        with pytest.raises(InvalidConfigError, match="overlaps"):
            two.services.add_range("10.95.0.0/28")
        two.services.occupy("v6", ["fd00:1:96::2"])
        assert one.services.get("v6") == (IP("fd00:1:96::2"),)
        rows = [(e.op, e.kind, e.key, e.data) for e in one.journal() if e.kind == "range"]
        assert rows == [
            ("add-range", "range", "10.95.0.0/29", {"side": "services"}),
            ("add-range", "range", "fd00:1:96::/126", {"side": "services"}),
        ]
        one._check_invariants()
        two._check_invariants()
        if make.kind != "memory":  # a new process reads the ranges before the owners
            with dualstack_ipam.open(one.url) as three:
                assert three.services.get("h") == (IP("10.95.0.4"),)
                assert three.services.capacity("IPv4") == 12
                assert three.services.allocate("i", "IPv4") == IP("10.95.0.5")
                three._check_invariants()
    finally:
        two.close()


def test_cooldown_reaches_an_added_service_range(tmp_path: Path) -> None:
    now = [1000.0]
    url = f"sqlite://{tmp_path}/c.db?synchronous=NORMAL"
    one = dualstack_ipam.open(
        url, SVC, service_strategy="sequential", cooldown=60, clock=lambda: now[0]
    )
    with one, dualstack_ipam.open(url, clock=lambda: now[0]) as two:
        one.services.add_range("10.95.0.0/30")
        for name in "abcdefg":
            one.services.allocate(name, "IPv4")
        assert one.services.get("g") == (IP("10.95.0.1"),)
        assert two.services.release("g")
        # The released address cools in both processes: the next pick skips it.
        assert one.services.stats()["IPv4"]["cooling"] == 1
        assert one.services.allocate("h", "IPv4") == IP("10.95.0.2")
        with pytest.raises(PoolExhaustedError, match="cool"):
            two.services.allocate("i", "IPv4")
        now[0] += 61
        assert two.services.allocate("i", "IPv4") == IP("10.95.0.1")
        one._check_invariants()


def test_concurrent_service_additions_are_ordered_by_the_store() -> None:
    store = AddWhileCatchingUp()
    one = attach(store, "memory://", SVC, service_strategy="sequential")
    two = attach(store, "memory://")
    _ = one.services, two.services
    store.hook = lambda: one.services.add_range("10.97.0.0/29")
    assert two.services.add_range("10.95.0.0/29") == NET("10.95.0.0/29")
    assert one.services.ranges("IPv4")[1:] == [NET("10.97.0.0/29"), NET("10.95.0.0/29")]
    assert two.services.ranges("IPv4") == one.services.ranges("IPv4")
    for name in "abcdefg":
        two.services.allocate(name, "IPv4")
    assert one.services.get("g") == (IP("10.97.0.1"),)  # filled in the order the store took
    store.hook = lambda: one.services.add_range("10.94.0.0/29")
    with pytest.raises(InvalidConfigError, match="overlaps"):
        two.services.add_range("10.94.0.0/30")
    one._check_invariants()
    two._check_invariants()


def test_export_import_and_replay_carry_added_service_ranges() -> None:
    source = dualstack_ipam.open("memory://", SVC, service_strategy="sequential")
    source.services.add_range("10.95.0.0/29")
    source.services.add_range("fd00:1:96::/126")
    for name in "abcdefgh":
        source.services.allocate(name, "IPv4")
    source.services.occupy("v6", ["fd00:1:96::3"])
    source.services.reserve("10.95.0.5-10.95.0.6", "spare")
    doc = source.export()
    assert doc["ranges"] == {"nodes": [], "services": ["10.95.0.0/29", "fd00:1:96::/126"]}
    target = dualstack_ipam.open("memory://", SVC)
    assert target.import_(doc) == 9
    assert target.export()["services"] == doc["services"]
    assert target.services.ranges("IPv6") == source.services.ranges("IPv6")
    assert target.services.reservations() == source.services.reservations()
    target._check_invariants()
    copy = dualstack_ipam.open("memory://", SVC)
    replay(source.journal(), copy)
    replay(source.journal(), copy)  # again: the ranges are there already
    assert copy.export()["services"] == doc["services"]
    assert copy.export()["ranges"] == doc["ranges"]
    assert copy.services.reservations() == source.services.reservations()
    copy._check_invariants()
    doc["ranges"] = {"services": ["10.96.0.0/30"]}
    with pytest.raises(SnapshotError, match="overlaps"):
        dualstack_ipam.open("memory://", SVC).import_(doc)
    nodes_only = ClusterConfig("10.0.0.0/16,fd00::/64")
    doc = {**source.export(), "config": nodes_only.to_dict(), "services": None}
    doc["reservations"] = {"nodes": []}
    with pytest.raises(SnapshotError, match="Service ranges"):
        dualstack_ipam.open("memory://", nodes_only).import_(doc)


@given(
    st.lists(st.integers(0, 255), min_size=1, max_size=5, unique=True),
    st.lists(st.integers(27, 30), min_size=5, max_size=5),
    st.data(),
)
@settings(max_examples=40, deadline=None)
def test_grown_service_slots_are_one_to_one_and_ordered(
    bases: list[int], prefixes: list[int], data: st.DataObject
) -> None:
    """Any added ranges, below or above the first: keys round-trip, never collide, keep order."""
    alloc = ServiceIPAllocator(ClusterConfig("10.0.0.0/16", "10.96.128.0/27"))
    for third, prefix in zip(bases, prefixes, strict=False):
        with contextlib.suppress(InvalidConfigError):  # overlaps the first range
            alloc.add_range(f"10.96.{third}.0/{prefix}")
    layout = SideLayout.for_services(alloc)
    pool: Any = alloc._pools[IPFamily.IPv4]
    keys = []
    for part in parts_of(pool):
        picks = data.draw(st.lists(st.integers(0, part.capacity - 1), min_size=1, unique=True))
        addresses = [(IPFamily.IPv4, part._base + pick) for pick in sorted(picks)]
        for address in addresses:
            assert layout.address_of(IPFamily.IPv4, layout.pool_slot(address)) == address
        assert layout.decode(layout.encode(tuple(addresses))) == tuple(addresses)
        part_keys = [layout.alloc_key(a) for a in addresses]
        assert part_keys == sorted(part_keys)  # address order within a range
        keys.append(part_keys)
    flat = [key for part_keys in keys for key in part_keys]
    assert flat == sorted(flat)  # the ranges in the order added
    assert len(set(flat)) == len(flat)
    first = (IPFamily.IPv4, int(netaddr.IPAddress("10.96.128.1")))
    assert layout.alloc_key(first) == "alloc/s4/00000001"  # the first range's keys never move


@pytest.mark.parametrize("side", ["nodes", "services"])
def test_a_big_added_range_has_at_most_16_reservation_blocks(side: str) -> None:
    """Blocks are cut per range: a small first range must not make a big added one's tiny."""
    config = ClusterConfig("10.0.0.0/24", "10.96.0.0/28", node_mask_ipv4=28)
    with dualstack_ipam.open("memory://", config) as cluster:
        alloc: Any = getattr(cluster, side)
        alloc.add_range("10.100.0.0/16")
        big = "10.100.0.0/17"  # half the added range: 2,048 node subnets, 32,768 addresses
        assert alloc.reserve(big, "later") > 2000
        records = cluster._sync.backend.get_prefix("resv/")
        assert len(records) <= 16 + 1  # the added range's blocks (the first's Service set-aside)
        layout = cluster._sync.sides[side].layout
        assert len(layout.blocks(IPFamily.IPv4)) <= 2 * 16
        alloc.unreserve(big)
        assert alloc.reservations() == []
        cluster._check_invariants()
