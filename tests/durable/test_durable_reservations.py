"""Durable reserve / unreserve: the plain semantics, stored, followed, and safe on stale caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netaddr
import pytest

import dualstack_ipam
from dualstack_ipam import (
    AlreadyAllocatedError,
    ClusterConfig,
    InvalidConfigError,
    NodeCIDRAllocator,
    ServiceIPAllocator,
    SnapshotError,
)
from dualstack_ipam.durable import Cluster, replay
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.durable.reserved import block_runs, stored_runs
from dualstack_ipam.durable.reserving import _write
from dualstack_ipam.net import IPFamily
from dualstack_ipam.store import MemoryBackend, Record
from durable import backends
from durable.backends import Backends

make = backends.make

CONFIG = ClusterConfig("10.0.0.0/16,fd00::/48", "10.0.4.0/22,fd00:10::/112")
IP = netaddr.IPAddress


def test_reserve_and_unreserve_as_the_plain_allocators(make: Backends) -> None:
    nodes = make.nodes(CONFIG)
    services = make.services(CONFIG, strategy="sequential")
    nodes.allocate("n1")  # 10.0.0.0/24
    assert nodes.reserve("10.0.8.0/23", "racks") == 2
    assert nodes.reserve("10.0.8.0/22", "") == 2  # extends, keeps the reason of the first
    assert nodes.reservations() == [
        (netaddr.IPNetwork("10.0.8.0/23"), "racks"),
        (netaddr.IPNetwork("10.0.10.0/23"), ""),
    ]
    with pytest.raises(AlreadyAllocatedError, match=r"10\.0\.0\.0/24"):
        nodes.reserve("10.0.0.0/22")
    with pytest.raises(InvalidConfigError, match="set-aside"):
        nodes.unreserve("10.0.4.0/24")
    assert nodes.unreserve("10.0.9.0-10.0.10.255") == 2  # only reserved slots are freed
    assert nodes.reserved("IPv4") == 2 + 4  # and the Service set-aside
    assert nodes.reserve("fd00:0:0:100::/56", "v6") == 256
    assert services.reserve("10.0.4.65-10.0.4.69", "gateways") == 5  # the dynamic band's first
    assert services.allocate("a") == IP("10.0.4.70")
    with pytest.raises(AlreadyAllocatedError, match="reserved"):
        services.allocate("b", ip="10.0.4.66")
    assert services.stats()["IPv4"]["reserved"] == 5
    nodes._check_invariants()
    services._check_invariants()


def journal_rows(cluster: Cluster) -> list[tuple[str, str, str, tuple[str, ...], dict[str, Any]]]:
    return [(e.op, e.kind, e.key, e.addresses, e.data) for e in cluster.journal()]


def test_journal_entries_and_a_follower(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    with dualstack_ipam.open(url, CONFIG) as one, dualstack_ipam.open(url) as two:
        assert two.services.reservations() == []
        one.services.reserve(netaddr.IPRange("10.0.4.200", "10.0.4.209"), "lb")
        assert two.services.reservations() == [(netaddr.IPRange("10.0.4.200", "10.0.4.209"), "lb")]
        with pytest.raises(AlreadyAllocatedError, match="reserved"):
            two.services.allocate("x", ip="10.0.4.201")
        two.services.unreserve("10.0.4.205")
        assert one.services.reserved("IPv4") == 9
        assert one.services.reserve("10.0.4.200/30", "") == 0  # all reserved: no change, no entry
        assert journal_rows(one) == [
            (
                "reserve",
                "reservation",
                "10.0.4.200-10.0.4.209",
                ("10.0.4.200-10.0.4.209",),
                {"side": "services", "range": "10.0.4.200-10.0.4.209", "reason": "lb"},
            ),
            (
                "unreserve",
                "reservation",
                "10.0.4.205/32",
                (),
                {"side": "services", "range": "10.0.4.205/32"},
            ),
        ]
        one._check_invariants()
        two._check_invariants()


def test_a_stale_cache_cannot_allocate_a_reserved_slot() -> None:
    store = MemoryBackend()
    stale = attach(store, "memory://", CONFIG)
    other = attach(store, "memory://")
    _ = stale.services
    sync = stale._sync
    side = sync.sides["services"]
    other.services.reserve("10.0.4.50", "appliance")
    # The stale cache takes the slot without catching up: its transaction must fail.
    address = (IPFamily.IPv4, int(IP("10.0.4.50")))
    side.cache._set_key_state("k", (address,))
    assert not sync._commit(side, "k", None, (address,), "allocate")
    assert side.cache._key_state("k") is None
    assert stale.services.owner_of("10.0.4.50") is None
    with pytest.raises(AlreadyAllocatedError, match="reserved"):
        stale.services.allocate("k", ip="10.0.4.50")
    stale._check_invariants()


def test_a_stale_cache_cannot_reserve_over_a_slot_just_allocated() -> None:
    store = MemoryBackend()
    stale = attach(store, "memory://", CONFIG)
    _ = stale.services
    other = attach(store, "memory://")
    other.services.allocate("ns/x", ip="10.0.4.77")
    side = stale._sync.sides["services"]
    # The reservation runs on the stale cache (it succeeds there), then writes.
    ServiceIPAllocator.reserve(stale.services, "10.0.4.64/26", "racks")
    changed = {
        k: v for k, v in block_runs(side.cache, side.layout).items() if v != stored_runs(side, k)
    }
    assert not _write(stale._sync, side, "services", changed, "reserve", "10.0.4.64/26", "racks")
    assert all(not stored_runs(side, key) for key in changed)  # the pending mark is cleared
    ServiceIPAllocator.unreserve(stale.services, "10.0.4.64/26")
    with pytest.raises(AlreadyAllocatedError, match=r"10\.0\.4\.77"):
        stale.services.reserve("10.0.4.64/26", "racks")
    assert stale.services.reservations() == []
    stale._check_invariants()


class AllocateWhileReserving(MemoryBackend):
    """A memory store where another writer allocates right after a reservation's store read."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Any = None

    def get_prefix(self, prefix: str, *, start: str = "", limit: int | None = None) -> list[Record]:
        found = super().get_prefix(prefix, start=start, limit=limit)
        if self.hook is not None and prefix.startswith("alloc/") and start:
            hook, self.hook = self.hook, None
            hook()
        return found


def test_an_allocation_between_the_read_and_the_commit_fails_the_reservation() -> None:
    store = AllocateWhileReserving()
    one = attach(store, "memory://", CONFIG, service_strategy="sequential")
    two = attach(store, "memory://")
    _ = one.services
    store.hook = lambda: two.services.allocate("ns/late", ip="10.0.5.3")
    with pytest.raises(AlreadyAllocatedError, match=r"10\.0\.5\.3"):
        one.services.reserve("10.0.5.0/24", "later")
    assert two.services.owner_of("10.0.5.3") == "ns/late"
    assert one.services.reservations() == []
    assert one.services.allocate("ns/next") == IP("10.0.4.65")
    one._check_invariants()
    two._check_invariants()


def test_export_import_and_replay_carry_reservations() -> None:
    source = dualstack_ipam.open("memory://", CONFIG)
    source.nodes.allocate("n1")
    source.nodes.reserve("fd00:0:0:100::/56", "v6")
    source.services.reserve("10.0.4.1-10.0.4.9", "gateways")
    source.services.reserve("10.0.4.5/32", "dns")
    source.services.unreserve("10.0.4.2")
    doc = source.export()
    assert doc["reservations"]["services"] == [
        ["10.0.4.1/32", "gateways"],
        ["10.0.4.3-10.0.4.4", "gateways"],
        ["10.0.4.5/32", "dns"],
        ["10.0.4.6-10.0.4.9", "gateways"],
    ]
    target = dualstack_ipam.open("memory://", CONFIG)
    assert target.import_(doc) == 1
    assert target.export()["reservations"] == doc["reservations"]
    assert target.services.reservations() == source.services.reservations()
    target._check_invariants()
    copy = dualstack_ipam.open("memory://", CONFIG)
    replay(target.journal(), copy)  # the import entries reserve
    assert copy.export()["reservations"] == doc["reservations"]
    copy = dualstack_ipam.open("memory://", CONFIG)
    assert replay(source.journal(), copy) == 5
    assert copy.services.reservations() == source.services.reservations()
    assert copy.nodes.reservations() == source.nodes.reservations()
    copy._check_invariants()


def test_import_refuses_reservations_over_keys() -> None:
    source = dualstack_ipam.open("memory://", CONFIG)
    source.services.allocate("a", ip="10.0.4.5")
    doc = source.export()
    doc["reservations"]["services"] = [["10.0.4.0/29", "x"]]
    target = dualstack_ipam.open("memory://", CONFIG)
    with pytest.raises(SnapshotError, match=r"10\.0\.4\.0/29"):
        target.import_(doc)
    assert target.export()["services"] == {}
    doc["reservations"] = {"services": "nope"}
    with pytest.raises(SnapshotError, match="must be a list"):
        target.import_(doc)


def test_the_old_state_file_keeps_its_reservations() -> None:
    nodes = NodeCIDRAllocator(CONFIG)
    nodes.reserve("10.0.8.0/22", "racks")
    old = {
        "kind": "dualstack-ipam-state",
        "version": 1,
        "config": CONFIG.to_dict(),
        "nodes": nodes.snapshot(),
        "services": ServiceIPAllocator(CONFIG).snapshot(),
    }
    doc = dualstack_ipam.durable.document_from_state_file(old)
    assert doc["reservations"] == {"nodes": [["10.0.8.0/22", "racks"]], "services": []}
