"""LoadBalancerIPAllocator: pools, manifests, requested addresses, keys, snapshots."""

from __future__ import annotations

import threading
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    ClusterIPTakenError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
    ServiceValidationError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily
from dualstack_ipam.services.lb_pool import AddressRanges
from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator

POOLS = {"IPv4": "192.0.2.10-192.0.2.12, 198.51.100.0/31", "IPv6": ["2001:db8::/126"]}


def lb_service(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"type": "LoadBalancer", **spec}}


def ingress(svc: dict[str, Any]) -> list[str]:
    return [entry["ip"] for entry in svc["status"]["loadBalancer"]["ingress"]]


# ---------------------------------------------------------------- pools


def test_every_address_of_a_pool_is_usable() -> None:
    lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
    got = [ingress(lb.allocate_service(lb_service(f"s{i}")))[0] for i in range(4)]
    assert got == ["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"]
    with pytest.raises(PoolExhaustedError, match=r"192\.0\.2\.0/30"):
        lb.allocate_service(lb_service("s4"))


def test_ranges_fill_in_the_order_given() -> None:
    lb = LoadBalancerIPAllocator({IPFamily.IPv4: ["198.51.100.7/32", "192.0.2.1-192.0.2.2"]})
    got = [ingress(lb.allocate_service(lb_service(f"s{i}")))[0] for i in range(3)]
    assert got == ["198.51.100.7", "192.0.2.1", "192.0.2.2"]
    assert lb.ranges("IPv4") == ("198.51.100.7/32", "192.0.2.1-192.0.2.2")


@pytest.mark.parametrize(
    "pools",
    [
        {},
        "192.0.2.0/24",
        {"IPv4": "192.0.2.0/24, 192.0.2.128/25"},
        {"IPv4": "192.0.2.9-192.0.2.1"},
        {"IPv4": "2001:db8::/120"},
        {"IPv4": "not-an-ip"},
        {"IPv5": "192.0.2.0/24"},
        {"IPv4": ""},
        {"IPv4": {"192.0.2.0/24"}},
    ],
)
def test_bad_pools_are_refused(pools: Any) -> None:
    with pytest.raises(InvalidConfigError):
        LoadBalancerIPAllocator(pools)


def test_bad_strategy_and_rng() -> None:
    with pytest.raises(InvalidConfigError, match="'first'"):
        LoadBalancerIPAllocator(POOLS, strategy="first")
    with pytest.raises(InvalidConfigError):
        LoadBalancerIPAllocator(POOLS, rng=3)  # type: ignore[arg-type]


def test_an_ipv6_slash_64_pool_is_sparse_and_cheap() -> None:
    lb = LoadBalancerIPAllocator({"IPv6": "2001:db8::/64"}, strategy="random")
    svc = lb.allocate_service(lb_service())
    assert netaddr.IPAddress(ingress(svc)[0]) in netaddr.IPNetwork("2001:db8::/64")
    assert lb.stats()["IPv6"]["capacity"] == 2**64


@given(st.lists(st.integers(0, 40), min_size=1, max_size=30))
def test_slots_and_addresses_are_inverse(values: list[int]) -> None:
    pool = AddressRanges(IPFamily.IPv4, [(20, 29), (0, 4), (35, 35)])
    for value in values:
        slot = pool.slot_of(value)
        inside = 20 <= value <= 29 or 0 <= value <= 4 or value == 35
        assert (slot is not None) == inside
        if slot is not None:
            assert pool.value_at(slot) == value


# ---------------------------------------------------------------- manifests


def test_dual_stack_service_gets_one_ingress_per_family_in_family_order() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    svc = lb.allocate_service(
        lb_service(ipFamilies=["IPv6", "IPv4"], ipFamilyPolicy="RequireDualStack")
    )
    assert ingress(svc) == ["2001:db8::", "192.0.2.10"]
    assert lb.get("default/web") == (
        netaddr.IPAddress("2001:db8::"),
        netaddr.IPAddress("192.0.2.10"),
    )


def test_families_default_as_for_cluster_ips() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    assert ingress(lb.allocate_service(lb_service("a"))) == ["192.0.2.10"]
    svc = lb.allocate_service(lb_service("b", ipFamilyPolicy="PreferDualStack"))
    assert ingress(svc) == ["192.0.2.11", "2001:db8::"]
    with pytest.raises(ServiceValidationError) as info:
        LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"}).allocate_service(
            lb_service(ipFamilyPolicy="RequireDualStack")
        )
    assert info.value.field == "spec.ipFamilyPolicy"


def test_other_types_are_returned_unchanged_and_hold_nothing() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    manifest = {"metadata": {"name": "web"}, "spec": {"type": "ClusterIP"}}
    assert lb.allocate_service(manifest) == manifest
    assert len(lb) == 0
    assert lb.stats()["totals"]["allocations"] == 0


def test_manifest_is_not_mutated_and_other_status_is_kept() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    manifest = lb_service()
    manifest["status"] = {"conditions": []}
    svc = lb.allocate_service(manifest)
    assert manifest["status"] == {"conditions": []}
    assert svc["status"] == {"conditions": [], "loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("spec.loadBalancerIP", "spec"),
        ("metadata.annotations[metallb.universe.tf/loadBalancerIPs]", "metallb"),
        ("metadata.annotations[lbipam.cilium.io/ips]", "cilium"),
    ],
)
def test_requested_addresses_from_each_source(field: str, where: str) -> None:
    def with_request(name: str, text: str) -> dict[str, Any]:
        svc = lb_service(name)
        if where == "spec":
            svc["spec"]["loadBalancerIP"] = text
        else:
            note = field.split("[")[1].rstrip("]")
            svc["metadata"]["annotations"] = {note: text}
        return svc

    lb = LoadBalancerIPAllocator(POOLS)
    assert ingress(lb.allocate_service(with_request("a", "198.51.100.1"))) == ["198.51.100.1"]
    with pytest.raises(ClusterIPTakenError) as taken:
        lb.allocate_service(with_request("b", "198.51.100.1"))
    assert (taken.value.field, taken.value.owner) == (field, "default/a")
    with pytest.raises(ServiceValidationError) as outside:
        lb.allocate_service(with_request("c", "192.0.2.200"))
    assert outside.value.field == field
    assert not isinstance(outside.value, ClusterIPTakenError)
    with pytest.raises(ServiceValidationError, match="valid IP"):
        lb.allocate_service(with_request("d", "nope"))
    assert lb.stats()["totals"]["errors"] == {"exhausted": 0, "taken": 1, "invalid": 1}


def test_two_requested_addresses_choose_the_families() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    svc = lb_service(ipFamilyPolicy="PreferDualStack")
    svc["metadata"]["annotations"] = {"lbipam.cilium.io/ips": "2001:db8::3, 192.0.2.12"}
    assert ingress(lb.allocate_service(svc)) == ["2001:db8::3", "192.0.2.12"]


def test_requested_address_of_another_family_and_disagreeing_sources() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    with pytest.raises(ServiceValidationError, match="families are IPv4") as info:
        lb.allocate_service(lb_service(ipFamilies=["IPv4"], loadBalancerIP="2001:db8::1"))
    assert info.value.field == "spec.loadBalancerIP"
    svc = lb_service(loadBalancerIP="192.0.2.10")
    svc["metadata"]["annotations"] = {"metallb.universe.tf/loadBalancerIPs": "192.0.2.11"}
    with pytest.raises(ServiceValidationError, match="disagrees") as info:
        lb.allocate_service(svc)
    assert info.value.field.startswith("metadata.annotations[metallb")
    assert len(lb) == 0


def test_exhaustion_in_the_second_family_allocates_nothing() -> None:
    lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30", "IPv6": "2001:db8::/128"})
    lb.allocate_service(lb_service("a", ipFamilies=["IPv6"]))
    before = lb.snapshot()
    with pytest.raises(PoolExhaustedError):
        lb.allocate_service(lb_service("b", ipFamilyPolicy="RequireDualStack"))
    assert lb.snapshot() == before
    assert lb.stats()["totals"]["scopes"]["dynamic"]["errors"] == 1
    lb._check_invariants()


def test_idempotent_per_key_and_release() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    svc = lb.allocate_service(lb_service())
    assert lb.allocate_service(svc) == svc
    assert lb.allocate_service(lb_service()) == svc
    with pytest.raises(AlreadyAllocatedError):
        lb.allocate_service(lb_service(loadBalancerIP="192.0.2.12"))
    assert lb.release_service(svc)
    assert not lb.release_service(svc)
    assert lb.owner_of("192.0.2.10") is None
    totals = lb.stats()["totals"]
    assert (totals["allocations"], totals["releases"]) == (1, 1)


# ---------------------------------------------------------------- by key


def test_occupy_all_or_nothing_and_owner_in_message() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    assert lb.occupy("default/a", ["192.0.2.11"]) == (netaddr.IPAddress("192.0.2.11"),)
    assert lb.occupy("default/a", "192.0.2.11") == (netaddr.IPAddress("192.0.2.11"),)
    with pytest.raises(AlreadyAllocatedError, match="default/a") as info:
        lb.occupy("default/b", ["2001:db8::1", "192.0.2.11"])
    assert info.value.owner == "default/a"
    assert lb.owner_of("2001:db8::1") is None
    with pytest.raises(NotInRangeError):
        lb.occupy("default/b", ["10.0.0.1"])
    with pytest.raises(FamilyNotConfiguredError):
        LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"}).occupy("k", ["2001:db8::1"])
    with pytest.raises(InvalidConfigError):
        lb.occupy("default/b", ["192.0.2.10", "192.0.2.12"])
    with pytest.raises(InvalidConfigError):
        lb.occupy("", ["192.0.2.10"])
    lb._check_invariants()


def test_iteration_sorted_by_key() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    for namespace in ("c", "a", "b"):
        svc = lb_service("x")
        svc["metadata"]["namespace"] = namespace
        lb.allocate_service(svc)
    assert list(lb) == ["a/x", "b/x", "c/x"]
    assert [key for key, _ in lb.items()] == list(lb)
    assert "a/x" in lb
    assert 3 not in lb


def test_snapshot_round_trip_keeps_ingress_order() -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    svc = lb.allocate_service(
        lb_service(ipFamilies=["IPv6", "IPv4"], ipFamilyPolicy="RequireDualStack")
    )
    data = lb.snapshot()
    again = LoadBalancerIPAllocator.restore(data)
    assert again.snapshot() == data
    assert again.allocate_service(svc) == svc
    again._check_invariants()


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "ServiceIPAllocator"},
        {"used": 5},
        {"services": {"default/a": ["192.0.2.10"], "default/b": ["192.0.2.10"]}},
        {"services": {"default/a": ["10.0.0.1"]}},
        {"services": {"default/a": []}},
        {"services": []},
        {"pools": {"IPv4": "nope"}},
    ],
)
def test_corrupt_snapshots_are_refused(change: dict[str, Any]) -> None:
    lb = LoadBalancerIPAllocator(POOLS)
    lb.allocate_service(lb_service("a"))
    with pytest.raises(SnapshotError):
        LoadBalancerIPAllocator.restore({**lb.snapshot(), **change})


def test_threads_never_share_an_address() -> None:
    lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/24"})

    def work(start: int) -> None:
        for i in range(start, start + 40):
            lb.allocate_service(lb_service(f"s{i}"))

    threads = [threading.Thread(target=work, args=(i * 40,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [a for _, addresses in lb.items() for a in addresses]
    assert len(held) == len(set(held)) == 200
    lb._check_invariants()
