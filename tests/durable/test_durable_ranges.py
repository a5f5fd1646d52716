"""Durable add_range on the node side: range records, followed, exported, imported, replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netaddr
import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, InvalidConfigError, PoolExhaustedError, SnapshotError
from dualstack_ipam.durable import replay
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import Change, MemoryBackend

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
    assert doc["ranges"] == {"nodes": ["10.9.0.0/24", "fd00:1::/121"]}
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
