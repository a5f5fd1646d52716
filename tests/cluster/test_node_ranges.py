"""NodeCIDRAllocator.add_range / ranges: growing a family with more cluster
CIDRs (api-durable.md, "Controller operations", "Growing a family")."""

from __future__ import annotations

import json
import threading

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import (
    AddressFormatError,
    AlreadyAllocatedError,
    ClusterConfig,
    FamilyNotConfiguredError,
    InvalidConfigError,
    NodeCIDRAllocator,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)

N = netaddr.IPNetwork
# Four /24 node CIDRs in 10.0.0.0/22, the first set aside for the Service range.
CONFIG = ClusterConfig("10.0.0.0/22,fc00::/62", "10.0.0.0/24", node_mask_ipv4=24)


def grown() -> NodeCIDRAllocator:
    alloc = NodeCIDRAllocator(CONFIG, strategy="lowest")
    assert alloc.add_range("10.8.0.0/23") == N("10.8.0.0/23")
    assert alloc.add_range("fc00:9::/63") == N("fc00:9::/63")
    return alloc


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("cidr", "error", "match"),
    [
        ("10.0.2.0/23", InvalidConfigError, r"'10\.0\.2\.0/23'.*overlaps the IPv4 cluster CIDR"),
        ("10.0.0.0/8", InvalidConfigError, "overlaps the IPv4 cluster CIDR 10.0.0.0/22"),
        ("10.8.1.0/24", InvalidConfigError, "overlaps the IPv4 cluster CIDR 10.8.0.0/23"),
        ("10.9.0.0/25", InvalidConfigError, r"less than or equal to --node-cidr-mask-size.*\(24\)"),
        ("nonsense", AddressFormatError, "nonsense"),
    ],
)
def test_add_range_refusals_change_nothing(cidr: str, error: type[Exception], match: str) -> None:
    alloc = grown()
    alloc.allocate("a")
    before = alloc.snapshot()
    with pytest.raises(error, match=match):
        alloc.add_range(cidr)
    assert alloc.snapshot() == before
    assert alloc.stats()["totals"]["errors"]["invalid"] == 1


def test_a_new_family_is_refused() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16"))
    with pytest.raises(InvalidConfigError, match=r"'fc00::/48'.*no IPv6 cluster CIDR") as info:
        alloc.add_range("fc00::/48")
    assert not isinstance(info.value, FamilyNotConfiguredError)
    assert info.value.value == N("fc00::/48")
    assert alloc.ranges("IPv4") == [N("10.0.0.0/16")]
    with pytest.raises(FamilyNotConfiguredError):
        alloc.ranges("IPv6")


def test_a_range_overlapping_the_service_range_is_refused() -> None:
    # The config's cluster CIDR keeps its set-aside; a range added later must
    # not overlap the Service range at all.
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/22", "10.96.0.0/12"))
    with pytest.raises(InvalidConfigError, match=r"overlaps the IPv4 Service range 10\.96\."):
        alloc.add_range("10.100.0.0/16")
    assert alloc.ranges("IPv4") == [N("10.0.0.0/22")]


# ---------------------------------------------------------------- growing


def test_ranges_capacity_and_the_config() -> None:
    alloc = grown()
    assert alloc.ranges("IPv4") == [N("10.0.0.0/22"), N("10.8.0.0/23")]
    assert alloc.ranges("IPv6") == [N("fc00::/62"), N("fc00:9::/63")]
    assert alloc.config == CONFIG
    assert alloc.capacity("IPv4") == 4 + 2
    assert alloc.reserved("IPv4") == 1  # the set-aside, in the first range only
    assert alloc.free("IPv4") == 5
    assert alloc.capacity("IPv6") == 4 + 2
    alloc._check_invariants()


def test_allocation_fills_the_ranges_in_the_order_added() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/23"), strategy="next-fit")
    alloc.add_range("10.9.0.0/24")
    alloc.add_range("10.5.0.0/24")  # below the one before it: order is the order added
    got = [alloc.allocate(f"n{i}")[0] for i in range(4)]
    assert got == [N("10.0.0.0/24"), N("10.0.1.0/24"), N("10.9.0.0/24"), N("10.5.0.0/24")]
    with pytest.raises(PoolExhaustedError, match=r"10\.0\.0\.0/23, 10\.9\.0\.0/24, 10\.5\.0\.0/24"):
        alloc.allocate("n4")
    alloc.release("n1")
    assert alloc.allocate("n5") == (N("10.0.1.0/24"),)
    stats = alloc.stats()["IPv4"]
    assert (stats["capacity"], stats["used"], stats["free"]) == (4, 4, 0)


def test_a_dual_stack_node_waits_for_room_in_every_family() -> None:
    alloc = NodeCIDRAllocator(
        ClusterConfig("10.0.0.0/24,fc00::/64", node_mask_ipv4=24, node_mask_ipv6=64)
    )
    alloc.allocate("a")
    with pytest.raises(PoolExhaustedError):
        alloc.allocate("b")
    alloc.add_range("10.1.0.0/24")
    with pytest.raises(PoolExhaustedError):
        alloc.allocate("b")  # IPv6 is still full: nothing taken
    assert alloc.used("IPv4") == 1
    alloc.add_range("fc00:1::/64")
    assert alloc.allocate("b") == (N("10.1.0.0/24"), N("fc00:1::/64"))


def test_occupy_owner_of_by_family_and_node_objects_cover_every_range() -> None:
    alloc = grown()
    assert alloc.occupy("a", ["fc00:9::/64", "10.8.1.0/24"]) == (N("10.8.1.0/24"), N("fc00:9::/64"))
    assert alloc.owner_of("10.8.1.77") == "a"
    assert alloc.owner_of("fc00:9::1") == "a"
    assert alloc.owner_of("10.8.0.1") is None
    assert alloc.owner_of("10.8.0.0/23") is None
    node = alloc.allocate_node({"metadata": {"name": "b"}, "spec": {"podCIDRs": ["10.8.0.0/24"]}})
    assert node["spec"]["podCIDRs"] == ["10.8.0.0/24"]
    assert alloc.by_family("b")
    with pytest.raises(AlreadyAllocatedError, match="'a'"):
        alloc.occupy("c", "10.8.1.0/24")
    with pytest.raises(NotInRangeError, match=r"10\.0\.0\.0/22, 10\.8\.0\.0/23"):
        alloc.occupy("c", "10.9.0.0/24")
    assert alloc.release("a")
    assert alloc.owner_of("10.8.1.77") is None
    alloc._check_invariants()


def test_reserve_in_an_added_range_and_across_ranges() -> None:
    alloc = grown()
    assert alloc.reserve("10.8.0.0/24", "racks") == 1
    assert alloc.reserved("IPv4") == 2
    assert alloc.reservations() == [(N("10.8.0.0/24"), "racks")]
    with pytest.raises(AlreadyAllocatedError, match="racks"):
        alloc.occupy("a", "10.8.0.0/24")
    with pytest.raises(InvalidConfigError, match=r"spans the ranges 10\.0\.0\.0/22 and 10\.8\."):
        alloc.reserve("10.0.3.0-10.8.0.255")
    with pytest.raises(InvalidConfigError, match="set-aside"):
        alloc.unreserve("10.0.0.0/24")
    # The lowest strategy skips the set-aside and the reservation.
    got = [alloc.allocate(n)[0] for n in ("a", "b", "c", "d")]
    assert got == [N("10.0.1.0/24"), N("10.0.2.0/24"), N("10.0.3.0/24"), N("10.8.1.0/24")]
    assert alloc.unreserve("10.8.0.0/23") == 1
    assert alloc.allocate("e")[0] == N("10.8.0.0/24")
    alloc._check_invariants()


def test_reconcile_across_ranges() -> None:
    alloc = grown()
    alloc.occupy("gone", "10.8.1.0/24")
    truth = {"a": ["10.8.0.0/24", "fc00:9::/64"], "far": ["10.77.0.0/24"]}
    report = alloc.reconcile(truth, repair=True, leak_grace=1)
    assert set(report.missing) == {"a"}
    assert set(report.released) == {"gone"}
    assert report.out_of_range == {"far": (N("10.77.0.0/24"),)}
    assert alloc.get("a") == (N("10.8.0.0/24"), N("fc00:9::/64"))
    alloc._check_invariants()


# ---------------------------------------------------------------- snapshots


def test_snapshot_round_trip_with_added_ranges() -> None:
    alloc = grown()
    alloc.allocate("a")
    alloc.occupy("b", ["10.8.1.0/24", "fc00:9::/64"])
    alloc.reserve("10.8.0.0/24", "racks")
    data = json.loads(json.dumps(alloc.snapshot()))
    assert data["version"] == 2
    assert [pool["cidr"] for pool in data["pools"]] == ["10.0.0.0/22", "fc00::/62"]
    assert [pool["cidr"] for pool in data["added"]] == ["10.8.0.0/23", "fc00:9::/63"]
    again = NodeCIDRAllocator.restore(data)
    assert again.snapshot() == data
    assert again.ranges("IPv4") == alloc.ranges("IPv4")
    assert again.items() == alloc.items()
    assert again.reservations() == alloc.reservations()
    assert again.allocate("c") == alloc.allocate("c")
    again._check_invariants()


def test_a_snapshot_without_added_ranges_is_version_1_as_before() -> None:
    alloc = NodeCIDRAllocator(CONFIG)
    alloc.allocate("a")
    data = alloc.snapshot()
    assert data["version"] == 1
    assert "added" not in data
    assert NodeCIDRAllocator.restore(data).snapshot() == data


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.pop("added"), "non-empty list 'added'"),
        (lambda d: d.update(added=[]), "non-empty list 'added'"),
        (lambda d: d.update(version=1), "version 1 cannot carry 'added'"),
        (lambda d: d["added"][1].update(cidr="fc00::/63"), "overlaps"),
        (lambda d: d["added"][0].update(prefixlen=25), "does not match"),
        (lambda d: d.update(version=3), "version 3 is not supported"),
    ],
)
def test_restore_refuses_bad_added_ranges(change: object, match: str) -> None:
    data = json.loads(json.dumps(grown().snapshot()))
    change(data)  # type: ignore[operator]
    with pytest.raises(SnapshotError, match=match):
        NodeCIDRAllocator.restore(data)


def test_restore_refuses_a_node_outside_every_range() -> None:
    alloc = grown()
    alloc.occupy("a", "10.8.1.0/24")
    data = json.loads(json.dumps(alloc.snapshot()))
    del data["added"][0]
    with pytest.raises(SnapshotError):
        NodeCIDRAllocator.restore(data)


# ---------------------------------------------------------------- threads, a property


def test_adding_ranges_while_other_threads_allocate() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/24", node_mask_ipv4=28))
    errors: list[BaseException] = []

    def allocate(worker: int) -> None:
        for i in range(40):
            try:
                alloc.allocate(f"w{worker}-{i}")
            except PoolExhaustedError:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=allocate, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for k in range(1, 6):
        alloc.add_range(f"10.{k}.0.0/26")
    for thread in threads:
        thread.join()
    assert not errors
    for i in range(40):
        if alloc.free("IPv4"):
            alloc.allocate(f"main-{i}")
    held = [cidrs[0] for _, cidrs in alloc.items()]
    assert len(held) == len(set(held)) == alloc.capacity("IPv4") == 16 + 5 * 4
    alloc._check_invariants()


@given(
    added=st.lists(st.integers(0, 15), min_size=1, max_size=4, unique=True),
    strategy=st.sampled_from(["next-fit", "lowest"]),
)
def test_every_subnet_of_every_range_once_in_the_order_added(
    added: list[int], strategy: str
) -> None:
    """Allocating until full hands out every node CIDR of every range exactly
    once, range by range in the order added; capacity adds up; a snapshot
    restores to the same state."""
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/25", node_mask_ipv4=27), strategy=strategy)
    for k in added:
        alloc.add_range(f"10.1.{k * 8}.0/26")
    ranges = alloc.ranges("IPv4")
    assert alloc.capacity("IPv4") == sum(r.size // 32 for r in ranges)
    got: list[netaddr.IPNetwork] = []
    while True:
        try:
            got.append(alloc.allocate(f"n{len(got)}")[0])
        except PoolExhaustedError:
            break
    assert len(got) == len(set(got)) == alloc.capacity("IPv4")
    position = 0
    for cidr in ranges:
        count = cidr.size // 32
        assert all(subnet in cidr for subnet in got[position : position + count])
        position += count
    alloc._check_invariants()
    assert NodeCIDRAllocator.restore(alloc.snapshot()).snapshot() == alloc.snapshot()
