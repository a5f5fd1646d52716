"""ServiceIPAllocator.add_range / ranges: growing a family with more Service
ranges, as Kubernetes' ServiceCIDR objects (api-durable.md, "Controller
operations", "Growing a family")."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import (
    AddressFormatError,
    AlreadyAllocatedError,
    ClusterConfig,
    ClusterIPTakenError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
    ServiceIPAllocator,
    ServiceValidationError,
    SnapshotError,
)

A = netaddr.IPAddress
N = netaddr.IPNetwork
CONFIG = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/29,fd00::/125")


def grown(strategy: str = "sequential") -> ServiceIPAllocator:
    alloc = ServiceIPAllocator(CONFIG, strategy=strategy, rng=random.Random(7))
    assert alloc.add_range("10.97.0.0/27") == N("10.97.0.0/27")
    assert alloc.add_range("fd01::/120") == N("fd01::/120")
    return alloc


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("cidr", "error", "match"),
    [
        ("10.96.0.4/30", InvalidConfigError, r"'10\.96\.0\.4/30'.*overlaps the IPv4 Service range"),
        ("10.97.0.16/28", InvalidConfigError, r"overlaps the IPv4 Service range 10\.97\.0\.0/27"),
        ("10.0.0.0/8", InvalidConfigError, r"overlaps the IPv4 Service range 10\.96\.0\.0/29"),
        ("fd01::80/121", InvalidConfigError, "overlaps the IPv6 Service range fd01::/120"),
        ("10.97.0.300/24", AddressFormatError, "300"),
    ],
)
def test_add_range_refusals_change_nothing(cidr: str, error: type[Exception], match: str) -> None:
    alloc = grown()
    alloc.allocate("a")
    before = alloc.items(), alloc.stats()["IPv4"], alloc.ranges("IPv4"), alloc.ranges("IPv6")
    with pytest.raises(error, match=match):
        alloc.add_range(cidr)
    assert (alloc.items(), alloc.stats()["IPv4"], alloc.ranges("IPv4"), alloc.ranges("IPv6")) == (
        before
    )
    assert alloc.stats()["totals"]["errors"]["invalid"] == 1
    alloc._check_invariants()


def test_a_new_family_is_refused() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/24"))
    with pytest.raises(InvalidConfigError, match=r"'fd00::/112'.*no IPv6 Service range") as info:
        alloc.add_range("fd00::/112")
    assert not isinstance(info.value, FamilyNotConfiguredError)
    with pytest.raises(FamilyNotConfiguredError):
        alloc.ranges("IPv6")
    assert alloc.ranges("IPv4") == [N("10.96.0.0/24")]


# ---------------------------------------------------------------- growing


def test_ranges_capacity_and_the_config() -> None:
    alloc = grown()
    assert alloc.ranges("IPv4") == [N("10.96.0.0/29"), N("10.97.0.0/27")]
    assert alloc.ranges("IPv6") == [N("fd00::/125"), N("fd01::/120")]
    assert alloc.config == CONFIG
    assert alloc.capacity("IPv4") == 6 + 30
    assert alloc.capacity("IPv6") == 7 + 255
    assert alloc.free("IPv4") == 36
    assert "10.97.0.0/27" in repr(alloc)
    alloc._check_invariants()


def test_dynamic_allocation_fills_the_ranges_in_order_each_with_its_band() -> None:
    alloc = grown()
    first = [alloc.allocate(f"s{i}") for i in range(6)]
    assert first == [A(f"10.96.0.{i}") for i in range(1, 7)]  # a /29 has no static band
    # The /27's band is its first 16 addresses: its upper band comes first.
    assert alloc.allocate("s6") == A("10.97.0.17")
    for i in range(7, 20):
        alloc.allocate(f"s{i}")
    assert alloc.allocate("s20") == A("10.97.0.1")
    svc = alloc.allocate_service(
        {"metadata": {"name": "web"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
    )
    assert svc["spec"]["clusterIPs"] == ["10.97.0.2", "fd00::1"]


def test_random_strategy_keeps_to_the_first_range_until_full() -> None:
    alloc = grown("random")
    got = [alloc.allocate(f"s{i}") for i in range(6)]
    assert all(ip in N("10.96.0.0/29") for ip in got)
    assert alloc.allocate("s6") in N("10.97.0.16/28")  # the upper band of the second
    alloc._check_invariants()


def test_exhaustion_over_every_range() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/30"))
    alloc.add_range("10.97.0.0/30")
    held = {alloc.allocate(f"s{i}") for i in range(4)}
    assert held == {A("10.96.0.1"), A("10.96.0.2"), A("10.97.0.1"), A("10.97.0.2")}
    with pytest.raises(PoolExhaustedError):
        alloc.allocate("s4")
    with pytest.raises(PoolExhaustedError):
        alloc.allocate_service({"metadata": {"name": "x"}})
    assert alloc.used("IPv4") == 4
    assert alloc.stats()["IPv4"]["free"] == 0


def test_requested_addresses_in_any_range() -> None:
    alloc = grown()
    svc = alloc.allocate_service(
        {
            "metadata": {"name": "db"},
            "spec": {
                "clusterIP": "10.97.0.9",
                "clusterIPs": ["10.97.0.9", "fd01::9"],
                "ipFamilyPolicy": "RequireDualStack",
            },
        }
    )
    assert svc["spec"]["clusterIPs"] == ["10.97.0.9", "fd01::9"]
    assert alloc.allocate("dns", ip="10.97.0.10") == A("10.97.0.10")
    with pytest.raises(ClusterIPTakenError, match="'default/db'") as taken:
        alloc.allocate_service({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.97.0.9"}})
    assert taken.value.field == "spec.clusterIPs[0]"
    with pytest.raises(ServiceValidationError, match=r"10\.97\.0\.31") as bad:
        alloc.allocate_service({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.97.0.31"}})
    assert bad.value.field == "spec.clusterIPs[0]"  # the broadcast address of its range
    with pytest.raises(ServiceValidationError):
        alloc.allocate_service({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.98.0.1"}})
    with pytest.raises(NotInRangeError, match=r"10\.96\.0\.0/29, 10\.97\.0\.0/27"):
        alloc.allocate("x", ip="10.98.0.1")
    new = alloc.update_service(
        svc, {"spec": {"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}}
    )
    assert new["spec"]["clusterIPs"] == ["10.97.0.9"]
    assert alloc.owner_of("fd01::9") is None
    alloc._check_invariants()


def test_occupy_owner_of_release_across_ranges() -> None:
    alloc = grown()
    assert alloc.occupy("a", ["fd01::5", "10.97.0.5"]) == (A("fd01::5"), A("10.97.0.5"))
    assert alloc.occupy("a", ["fd01::5", "10.97.0.5"]) == (A("fd01::5"), A("10.97.0.5"))
    assert alloc.owner_of("10.97.0.5") == "a"
    assert alloc.owner_of("fd01::5") == "a"
    assert alloc.owner_of("10.98.0.5") is None
    with pytest.raises(AlreadyAllocatedError, match="'a'"):
        alloc.occupy("b", "10.97.0.5")
    with pytest.raises(NotInRangeError):
        alloc.occupy("b", "10.98.0.5")
    assert alloc.used("IPv4") == alloc.used("IPv6") == 1
    assert alloc.release("a")
    assert alloc.owner_of("10.97.0.5") is None
    assert alloc.used("IPv4") == 0


def test_reserve_in_an_added_range_and_across_ranges() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/29"))
    alloc.add_range("10.96.0.8/29")  # adjacent: one reserve could touch both
    assert alloc.reserve("10.96.0.9-10.96.0.10", "dns") == 2
    assert alloc.reserved("IPv4") == 2
    with pytest.raises(InvalidConfigError, match=r"spans the ranges 10\.96\.0\.0/29 and"):
        alloc.reserve("10.96.0.5-10.96.0.9")
    with pytest.raises(AlreadyAllocatedError, match="dns"):
        alloc.occupy("a", "10.96.0.9")
    with pytest.raises(ServiceValidationError, match="reserved"):
        alloc.allocate_service({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.96.0.10"}})
    assert alloc.reservations() == [(netaddr.IPRange("10.96.0.9", "10.96.0.10"), "dns")]
    assert alloc.unreserve("10.96.0.8/29") == 2
    stats = alloc.stats()["IPv4"]
    assert (stats["capacity"], stats["reserved"], stats["free"]) == (12, 0, 12)


def test_reconcile_across_ranges() -> None:
    alloc = grown()
    alloc.occupy("gone", "10.97.0.3")
    truth = {"a": ["10.97.0.7", "fd01::7"], "far": ["10.98.0.1"], "edge": ["10.97.0.0"]}
    report = alloc.reconcile(truth, repair=True, leak_grace=1)
    assert set(report.missing) == {"a"}
    assert set(report.released) == {"gone"}
    assert report.out_of_range == {"far": (A("10.98.0.1"),), "edge": (A("10.97.0.0"),)}
    assert alloc.get("a") == (A("10.97.0.7"), A("fd01::7"))
    alloc._check_invariants()


# ---------------------------------------------------------------- a property


@given(
    prefixes=st.lists(st.integers(26, 30), min_size=1, max_size=3),
    requested=st.lists(st.integers(0, 2**12 - 1), max_size=6),
)
def test_capacity_and_counts_add_up(prefixes: list[int], requested: list[int]) -> None:
    """With any ranges added, capacity is the ranges' usable addresses added
    up, requested addresses in any range are taken, and dynamic ones fill
    the rest until exactly capacity are held, each once and inside a range."""
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/28"))
    for k, prefix in enumerate(prefixes, start=1):
        alloc.add_range(f"10.{96 + k}.0.0/{prefix}")
    ranges = alloc.ranges("IPv4")
    assert alloc.capacity("IPv4") == sum(r.size - 2 for r in ranges)
    for i, offset in enumerate(requested):
        cidr = ranges[offset % len(ranges)]
        ip = A(int(cidr.first) + 1 + offset % (cidr.size - 2))
        if alloc.owner_of(ip) is None:
            assert alloc.allocate(f"r{i}", ip=ip) == ip
    while alloc.free("IPv4"):
        alloc.allocate(f"d{alloc.used('IPv4')}")
    held = [ips[0] for _, ips in alloc.items()]
    assert len(held) == len(set(held)) == alloc.capacity("IPv4")
    assert all(any(ip in r for r in ranges) for ip in held)
    alloc._check_invariants()


# ---------------------------------------------------------------- snapshots


def test_snapshot_round_trip_with_added_ranges() -> None:
    alloc = grown("random")
    alloc.allocate("a")
    alloc.occupy("b", ["10.97.0.5", "fd01::5"])
    alloc.reserve("10.97.0.20-10.97.0.25", "appliances")
    data = json.loads(json.dumps(alloc.snapshot()))
    assert [pool["cidr"] for pool in data["added"]] == ["10.97.0.0/27", "fd01::/120"]
    assert sorted(pool["cidr"] for pool in data["pools"].values()) == ["10.96.0.0/29", "fd00::/125"]
    again = ServiceIPAllocator.restore(data, rng=random.Random(1))
    assert again.snapshot() == data
    assert again.ranges("IPv4") == alloc.ranges("IPv4")
    assert again.ranges("IPv6") == alloc.ranges("IPv6")
    assert again.items() == alloc.items()
    assert again.reservations() == alloc.reservations()
    assert again.stats()["IPv4"] == alloc.stats()["IPv4"]
    again._check_invariants()


def test_a_snapshot_without_added_ranges_has_no_added_key() -> None:
    alloc = ServiceIPAllocator(CONFIG)
    alloc.allocate("a")
    data = alloc.snapshot()
    assert "added" not in data
    assert ServiceIPAllocator.restore(data).snapshot() == data


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.update(added=[]), "non-empty list"),
        (lambda d: d.update(added={}), "non-empty list"),
        (lambda d: d["added"][1].update(cidr="fd00::/120"), "overlaps"),
        (lambda d: d["added"][0].update(strategy="random"), "disagrees"),
        (lambda d: d["added"].pop(0), "10.97.0.5"),  # a key in a range no longer there
    ],
)
def test_restore_refuses_bad_added_ranges(change: Callable[[Any], Any], match: str) -> None:
    alloc = grown()
    alloc.occupy("b", "10.97.0.5")
    data = json.loads(json.dumps(alloc.snapshot()))
    change(data)
    with pytest.raises(SnapshotError, match=match):
        ServiceIPAllocator.restore(data)


def test_adding_ranges_while_other_threads_allocate() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/28"), strategy="random")
    errors: list[BaseException] = []

    def allocate(worker: int) -> None:
        for i in range(30):
            try:
                alloc.allocate(f"w{worker}-{i}")
            except PoolExhaustedError:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=allocate, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for k in range(1, 5):
        alloc.add_range(f"10.{96 + k}.0.0/29")
    for thread in threads:
        thread.join()
    assert not errors
    for i in range(40):
        if alloc.free("IPv4"):
            alloc.allocate(f"main-{i}")
    held = [ips[0] for _, ips in alloc.items()]
    assert len(held) == len(set(held)) == alloc.capacity("IPv4") == 14 + 4 * 6
    alloc._check_invariants()
