"""dualstack_ipam.testing.strategies: validity, shrink targets, edge cases, arguments.

Each strategy is checked three ways: everything it draws is valid (the
constructors accept it, ``_check_invariants()`` passes, the fill and the
arguments are respected); ``find`` shrinks it to the simplest case; and a
generate-only ``find`` reaches each boosted edge case. The strategies are
also used here as users would, in properties of the allocators.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netaddr
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from dualstack_ipam import (
    ClusterConfig,
    IPFamily,
    NodeCIDRAllocator,
    PoolExhaustedError,
    ServiceIPPool,
    ServiceValidationError,
    SubnetPool,
    service_key,
)
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.testing import strategies as ds
from dualstack_ipam.testing._hypothesis_entry import _hypothesis_setup_hook

ENTRY_POINT = "dualstack_ipam.testing._hypothesis_entry:_hypothesis_setup_hook"
SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
V4 = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")
TINY = ClusterConfig(
    "10.244.0.0/30,fc00::/126", "10.96.0.0/30,fd00::/127", node_mask_ipv4=31, node_mask_ipv6=127
)


def usable(cidr: netaddr.IPNetwork) -> int:
    return int(max(cidr.size - 2, 0) if cidr.version == 4 else cidr.size - 1)


# ------------------------------------------------------------ validity: networks


@given(st.data())
def test_cidrs_respect_their_arguments(data: st.DataObject) -> None:
    family = data.draw(st.sampled_from([None, "IPv4", "IPv6"]))
    width = 128 if family == "IPv6" else 32
    lo = data.draw(st.integers(0, width))
    hi = data.draw(st.integers(lo, width))
    net = data.draw(ds.cidrs(family=family, min_prefixlen=lo, max_prefixlen=hi))
    assert net == net.cidr, "host bits set"
    assert lo <= net.prefixlen <= min(hi, 32 if net.version == 4 else 128)
    if family is not None:
        assert net.version == IPFamily(family).version


@given(
    ds.cidrs(min_prefixlen=1).flatmap(
        lambda outer: st.tuples(st.just(outer), ds.cidrs(within=outer))
    )
)
def test_cidrs_within_stay_inside(pair: tuple[netaddr.IPNetwork, netaddr.IPNetwork]) -> None:
    outer, inner = pair
    assert inner in outer
    assert inner == inner.cidr


# ------------------------------------------------------------ validity: configs


def assert_valid_config(config: ClusterConfig) -> None:
    rebuilt = ClusterConfig(
        [str(c) for c in config.cluster_cidrs],
        [str(c) for c in config.service_cidrs],
        node_mask_ipv4=config.node_mask_ipv4,
        node_mask_ipv6=config.node_mask_ipv6,
    )
    assert rebuilt == config
    assert ClusterConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert ClusterConfig.from_flags(config.component_flags()["kube-controller-manager"]) == config
    nodes = NodeCIDRAllocator(config)
    nodes._check_invariants()
    for family in config.families:
        assert nodes.free(family) == config.node_capacity(family)
    if config.service_families:
        ServiceIPAllocator(config)._check_invariants()


@st.composite
def config_arguments(draw: st.DrawFn) -> dict[str, Any]:
    """A valid argument combination for cluster_configs."""
    kwargs: dict[str, Any] = {}
    kwargs["dual_stack"] = draw(st.sampled_from([None, True, False]))
    kwargs["primary_family"] = draw(st.sampled_from([None, "IPv4", IPFamily.IPv6]))
    lo = draw(st.integers(0, 2))
    kwargs["min_service_ranges"], kwargs["max_service_ranges"] = lo, draw(st.integers(lo, 2))
    nodes = draw(st.sampled_from([0, 1, 2, 3, 100, 4096]))
    kwargs["min_nodes"] = nodes
    if draw(st.booleans()):
        kwargs["max_nodes"] = max(1, 1 << (nodes - 1).bit_length()) * draw(st.sampled_from([1, 4]))
    ips = draw(st.sampled_from([0, 1, 2, 200]))
    kwargs["min_service_ips"] = ips
    if draw(st.booleans()):
        kwargs["max_service_ips"] = max(ips, 2) * draw(st.sampled_from([4, 8, 1000]))
    return kwargs


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_cluster_configs_are_valid_and_respect_their_arguments(data: st.DataObject) -> None:
    kwargs = data.draw(config_arguments(), label="kwargs")
    config = data.draw(ds.cluster_configs(**kwargs), label="config")
    assert_valid_config(config)
    if kwargs["dual_stack"] is not None:
        assert config.is_dual_stack == kwargs["dual_stack"]
    if kwargs["primary_family"] is not None:
        assert config.primary_family == kwargs["primary_family"]
    assert kwargs["min_service_ranges"] <= len(config.service_cidrs)
    assert len(config.service_cidrs) <= kwargs["max_service_ranges"]
    assert config.max_nodes >= kwargs["min_nodes"]
    if "max_nodes" in kwargs:
        for family in config.families:
            node_bits = config.node_mask(family) - config.cluster_cidr(family).prefixlen
            assert 1 << node_bits <= kwargs["max_nodes"]
    for cidr in config.service_cidrs:
        assert usable(cidr) >= kwargs["min_service_ips"]
        assert usable(cidr) <= kwargs.get("max_service_ips", usable(cidr))


# ------------------------------------------------------------ validity: pools

FILL_USED: dict[str, Callable[[int], int | None]] = {
    "empty": lambda capacity: 0,
    "half": lambda capacity: capacity // 2,
    "one-free": lambda capacity: capacity - 1,
    "full": lambda capacity: capacity,
    "some": lambda capacity: None,
}


@pytest.mark.parametrize("fill", ds.FILLS)
@settings(max_examples=25)
@given(data=st.data())
def test_subnet_pools_are_valid_and_filled(fill: str, data: st.DataObject) -> None:
    pool = data.draw(ds.subnet_pools(fill=fill))
    assert isinstance(pool, SubnetPool)
    pool._check_invariants()
    expected = FILL_USED[fill](pool.capacity)
    if expected is not None:
        assert pool.used == expected
    assert SubnetPool.restore(pool.snapshot()).snapshot() == pool.snapshot()
    if pool.free:
        subnet = pool.allocate_next()
        assert subnet in pool.cidr
        assert subnet.prefixlen == pool.prefixlen
        pool._check_invariants()
    else:
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()


@pytest.mark.parametrize("fill", ds.FILLS)
@settings(max_examples=25)
@given(data=st.data())
def test_service_ip_pools_are_valid_and_filled(fill: str, data: st.DataObject) -> None:
    pool = data.draw(ds.service_ip_pools(fill=fill))
    assert isinstance(pool, ServiceIPPool)
    pool._check_invariants()
    expected = FILL_USED[fill](pool.capacity)
    if expected is not None and pool.capacity:
        assert pool.used == expected
    assert ServiceIPPool.restore(pool.snapshot()).snapshot() == pool.snapshot()
    if pool.free:
        address = pool.allocate_next()
        assert address in pool.cidr
        pool._check_invariants()
    else:
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()


@settings(max_examples=20)
@given(ds.subnet_pools(cidr="10.0.0.0/16", prefixlen=24), ds.service_ip_pools(cidr="fd00::/120"))
def test_pools_keep_a_given_range(pool: SubnetPool, service: ServiceIPPool) -> None:
    assert (str(pool.cidr), pool.prefixlen) == ("10.0.0.0/16", 24)
    assert str(service.cidr) == "fd00::/120"


# ------------------------------------------------------------ validity: allocators


@pytest.mark.parametrize("fill", ds.FILLS)
@settings(max_examples=15)
@given(data=st.data())
def test_node_allocators_are_valid_and_filled(fill: str, data: st.DataObject) -> None:
    alloc = data.draw(ds.node_allocators(fill=fill))
    alloc._check_invariants()
    assert NodeCIDRAllocator.restore(alloc.snapshot()).snapshot() == alloc.snapshot()
    room = alloc.config.max_nodes
    expected = {"empty": 0, "half": room // 2, "one-free": room - 1, "full": room}.get(fill)
    if expected is not None:
        assert len(alloc) == expected
    if fill == "one-free":
        alloc.allocate("the-last-one")
    if fill in ("one-free", "full"):
        before = alloc.snapshot()
        with pytest.raises(PoolExhaustedError):
            alloc.allocate("one-too-many")
        assert alloc.snapshot() == before


@pytest.mark.parametrize("fill", ds.FILLS)
@settings(max_examples=15)
@given(data=st.data())
def test_service_ip_allocators_are_valid_and_filled(fill: str, data: st.DataObject) -> None:
    alloc = data.draw(ds.service_ip_allocators(fill=fill))
    alloc._check_invariants()
    assert ServiceIPAllocator.restore(alloc.snapshot()).snapshot() == alloc.snapshot()
    for family in alloc.config.service_families:
        capacity = alloc.capacity(family)
        expected = FILL_USED[fill](capacity)
        if expected is not None:
            assert alloc.used(family) == expected, (family, capacity)


@settings(max_examples=15)
@given(ds.node_allocators(config=SEED), ds.service_ip_allocators(config=V4, fill="one-free"))
def test_allocators_keep_a_given_config(nodes: NodeCIDRAllocator, svc: ServiceIPAllocator) -> None:
    assert nodes.config == SEED
    assert svc.config == V4
    assert svc.free("IPv4") == 1


@pytest.mark.parametrize("dual_stack", [True, False])
@settings(max_examples=10)
@given(data=st.data())
def test_allocators_follow_dual_stack(dual_stack: bool, data: st.DataObject) -> None:
    nodes = data.draw(ds.node_allocators(dual_stack=dual_stack))
    services = data.draw(ds.service_ip_allocators(dual_stack=dual_stack))
    assert nodes.config.is_dual_stack == dual_stack
    assert (len(services.config.service_families) == 2) == dual_stack


@pytest.mark.parametrize("ranges", [0, 1, 2])
@settings(max_examples=10)
@given(data=st.data())
def test_node_allocators_take_min_service_ranges(ranges: int, data: st.DataObject) -> None:
    alloc = data.draw(ds.node_allocators(min_service_ranges=ranges))
    assert len(alloc.config.service_families) >= ranges
    alloc._check_invariants()


def test_node_allocators_min_service_ranges_with_a_config() -> None:
    alloc = find(ds.node_allocators(config=SEED, min_service_ranges=2), lambda a: True)
    assert alloc.config == SEED


# ------------------------------------------------------------ validity: manifests


def kind_of(manifest: dict[str, Any]) -> str:
    """Which of MANIFEST_KINDS a drawn manifest is."""
    spec = manifest["spec"]
    if spec.get("type") == "ExternalName":
        return "external-name"
    if spec.get("clusterIP") == "None":
        return "headless"
    if spec.get("clusterIP"):
        return "static-ip"
    if spec.get("ipFamily"):
        return "ip-family"
    if spec.get("ipFamilyPolicy") or spec.get("ipFamilies"):
        return "policy"
    return "plain"


def check_created(manifest: dict[str, Any], result: dict[str, Any], alloc: Any) -> None:
    spec = result["spec"]
    if spec.get("type") == "ExternalName":
        assert "clusterIPs" not in spec
        return
    if spec["clusterIP"] == "None":
        assert spec["clusterIPs"] == ["None"]
        return
    held = alloc.get(service_key(manifest))
    assert [str(a) for a in held] == spec["clusterIPs"]
    asked = manifest["spec"].get("clusterIPs") or [manifest["spec"].get("clusterIP")]
    for want, got in zip(asked, spec["clusterIPs"], strict=False):
        if want:
            assert str(netaddr.IPAddress(want)) == got


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_manifests_are_accepted_on_their_cluster(data: st.DataObject) -> None:
    config = data.draw(ds.cluster_configs(min_service_ranges=1), label="config")
    manifest = data.draw(ds.service_manifests(config=config), label="manifest")
    alloc = ServiceIPAllocator(config)
    try:
        result = alloc.allocate_service(manifest)
    except PoolExhaustedError:
        assert any(alloc.free(f) == 0 for f in config.service_families)
        return
    check_created(manifest, result, alloc)
    alloc._check_invariants()


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_manifests_fit_the_allocator_they_were_drawn_for(data: st.DataObject) -> None:
    """Names unused and static addresses free: only exhaustion may refuse them."""
    alloc = data.draw(ds.service_ip_allocators(fill=("some", "half", "one-free")), label="alloc")
    for _ in range(3):
        manifest = data.draw(ds.service_manifests(allocator=alloc), label="manifest")
        assert service_key(manifest) not in alloc
        before = alloc.snapshot()
        try:
            result = alloc.allocate_service(manifest)
        except PoolExhaustedError:
            assert alloc.snapshot() == before
            continue
        check_created(manifest, result, alloc)
        alloc._check_invariants()


@pytest.mark.parametrize("kind", ds.MANIFEST_KINDS)
@settings(max_examples=15)
@given(data=st.data())
def test_manifest_kinds_are_what_they_say(kind: str, data: st.DataObject) -> None:
    manifest = data.draw(ds.service_manifests(config=SEED, kinds=kind))
    assert kind_of(manifest) == kind
    result = ServiceIPAllocator(SEED).allocate_service(manifest)
    assert kind_of(result) in (kind, "static-ip")  # a created Service carries its clusterIP


@settings(max_examples=15)
@given(ds.service_manifests())
def test_portable_manifests_suit_every_cluster(manifest: dict[str, Any]) -> None:
    assert kind_of(manifest) in ("plain", "policy", "headless", "external-name")
    for config in (SEED, V4, ClusterConfig("fc00::/24", "fd00::/112")):
        ServiceIPAllocator(config).allocate_service(manifest)


def assert_refused(alloc: ServiceIPAllocator, bad: ds.InvalidManifest) -> None:
    before = alloc.snapshot()
    with pytest.raises(ServiceValidationError) as info:
        alloc.allocate_service(bad.manifest)
    assert info.value.field == bad.field, (info.value, bad)
    assert alloc.snapshot() == before


@settings(max_examples=60)
@given(ds.invalid_service_manifests())
def test_invalid_manifests_fail_at_their_field(bad: ds.InvalidManifest) -> None:
    assert_refused(ServiceIPAllocator(SEED), bad)
    assert_refused(ServiceIPAllocator(V4), bad)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_invalid_manifests_for_a_cluster_fail_at_their_field(data: st.DataObject) -> None:
    config = data.draw(ds.cluster_configs(min_service_ranges=1), label="config")
    assert_refused(
        ServiceIPAllocator(config), data.draw(ds.invalid_service_manifests(config=config))
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_invalid_manifests_for_an_allocator_fail_at_their_field(data: st.DataObject) -> None:
    alloc = data.draw(ds.service_ip_allocators(fill=("some", "half")), label="alloc")
    assert_refused(alloc, data.draw(ds.invalid_service_manifests(allocator=alloc)))


# ------------------------------------------------------------ properties of the allocators


@settings(max_examples=30)
@given(ds.node_allocators(fill=("some", "half", "one-free")), st.data())
def test_node_allocate_is_all_or_nothing(alloc: NodeCIDRAllocator, data: st.DataObject) -> None:
    """Used as users would: the last free subnets go, then nothing changes."""
    for step in range(4):
        before = alloc.snapshot()
        try:
            cidrs = alloc.allocate(f"new-{step}")
        except PoolExhaustedError:
            assert alloc.snapshot() == before
            assert any(alloc.free(f) == 0 for f in alloc.config.families)
            break
        assert [c.version for c in cidrs] == [f.version for f in alloc.config.families]
        assert all(alloc.owner_of(c) == f"new-{step}" for c in cidrs)
    alloc._check_invariants()


@settings(max_examples=30)
@given(ds.service_ip_pools(fill=("half", "one-free", "full")))
def test_service_pool_release_and_reallocate(pool: ServiceIPPool) -> None:
    """Releasing what is held and allocating again never hands out a held address."""
    held = list(itertools.islice(pool, 3))
    for address in held:
        assert pool.release(address)
    again = {pool.allocate_next() for _ in held}
    assert len(again) == len(held)
    assert pool.free == pool.capacity - pool.used
    pool._check_invariants()


# ------------------------------------------------------------ shrink targets

SHRINKS: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], bool], str | tuple[str, ...]]] = [
    ("family", ds.ip_families(), lambda f: f is IPFamily.IPv6, "IPv6"),
    ("cidr-v6", ds.cidrs(family="IPv6"), lambda n: n.prefixlen >= 48, "fd00::/48"),
    (
        "config-v6-first",
        ds.cluster_configs(),
        lambda c: c.primary_family is IPFamily.IPv6,
        "ClusterConfig(cluster_cidrs=(IPNetwork('fd00::/64'),), service_cidrs=(), "
        "node_mask_ipv4=24, node_mask_ipv6=64)",
    ),
    (
        "config-reserved",
        ds.cluster_configs(),
        lambda c: (
            c.node_capacity(c.primary_family)
            < 2 ** (c.node_mask(c.primary_family) - c.cluster_cidrs[0].prefixlen)
        ),
        "ClusterConfig(cluster_cidrs=(IPNetwork('10.0.0.0/24'),), "
        "service_cidrs=(IPNetwork('10.0.0.0/24'),), node_mask_ipv4=24, node_mask_ipv6=64)",
    ),
    (
        "subnet-pool-v6",
        ds.subnet_pools(family="IPv6"),
        lambda p: True,
        "SubnetPool('fd00::/64', 64, strategy='next-fit')<used=0/1>",
    ),
    (
        "service-pool-full",
        ds.service_ip_pools(),
        lambda p: p.capacity and p.free == 0,
        # Two minimal full pools: which one the shrinker settles on depends on
        # what the run explored before (seen to differ with test selection).
        (
            "ServiceIPPool('10.0.0.0/24', strategy='random')<used=254/254>",
            "ServiceIPPool('10.0.0.0/30', strategy='random')<used=2/2>",
        ),
    ),
    (
        "node-allocator-used",
        ds.node_allocators(),
        lambda a: len(a) > 0,
        "NodeCIDRAllocator(ClusterConfig(cluster_cidrs=(IPNetwork('10.0.0.0/24'),), "
        "service_cidrs=(), node_mask_ipv4=24, node_mask_ipv6=64), strategy='next-fit')<nodes=1>",
    ),
    (
        "service-allocator",
        ds.service_ip_allocators(),
        lambda a: True,
        "ServiceIPAllocator(10.0.1.0/24, strategy='random')<keys=0>",
    ),
    (
        "manifest-headless",
        ds.service_manifests(kinds="headless"),
        lambda m: True,
        "{'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'my-service'}, "
        "'spec': {'ports': [{'protocol': 'TCP', 'port': 80, 'targetPort': 9376}], "
        "'clusterIP': 'None'}}",
    ),
    (
        "manifest-static",
        ds.service_manifests(config=SEED, kinds="static-ip"),
        lambda m: True,
        "{'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'my-service'}, "
        "'spec': {'selector': {'app': 'MyApp'}, 'ports': [{'protocol': 'TCP', 'port': 80, "
        "'targetPort': 9376}], 'clusterIP': '10.96.0.1'}}",
    ),
    (
        "invalid-taken",
        ds.invalid_service_manifests(config=V4),
        lambda pair: pair.field == "spec.clusterIPs[0]" and "10.96.0" in str(pair.manifest),
        "InvalidManifest(manifest={'apiVersion': 'v1', 'kind': 'Service', "
        "'metadata': {'name': 'my-service'}, 'spec': {'selector': {'app': 'MyApp'}, "
        "'ports': [{'protocol': 'TCP', 'port': 80, 'targetPort': 9376}], "
        "'clusterIP': '10.96.0.0'}}, field='spec.clusterIPs[0]')",
    ),
]


@pytest.mark.parametrize(
    ("strategy", "condition", "expected"),
    [case[1:] for case in SHRINKS],
    ids=[case[0] for case in SHRINKS],
)
def test_shrink_target(
    strategy: Any, condition: Callable[[Any], bool], expected: str | tuple[str, ...]
) -> None:
    found = find(
        strategy,
        condition,
        settings=settings(database=None, max_examples=1000, derandomize=True),
        random=random.Random(0),
    )
    assert str(found) in (expected if isinstance(expected, tuple) else (expected,))


# ------------------------------------------------------------ edge cases are reached


def subnets(config: ClusterConfig) -> int:
    """Node subnets of the primary cluster CIDR, set-aside included."""
    family = config.primary_family
    return int(2 ** (config.node_mask(family) - config.cluster_cidr(family).prefixlen))


def one_free(alloc: NodeCIDRAllocator) -> bool:
    return min(alloc.free(f) for f in alloc.config.families) == 1 and len(alloc) > 1


EDGES: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], bool]]] = [
    ("cidr /31", ds.cidrs(family="IPv4"), lambda n: n.prefixlen == 31),
    ("cidr /32", ds.cidrs(), lambda n: n.prefixlen == 32),
    ("cidr /127", ds.cidrs(family="IPv6"), lambda n: n.prefixlen == 127),
    ("cidr /128", ds.cidrs(), lambda n: n.prefixlen == 128),
    ("cidr seed", ds.cidrs(), lambda n: str(n) == "fc00::/24"),
    ("config node /32", ds.cluster_configs(), lambda c: c.node_mask_ipv4 == 32),
    (
        "config node /127",
        ds.cluster_configs(primary_family="IPv6"),
        lambda c: c.node_mask_ipv6 == 127,
    ),
    ("config one node", ds.cluster_configs(dual_stack=True), lambda c: c.max_nodes == 1),
    ("config seed", ds.cluster_configs(), lambda c: c == SEED),
    ("config full", ds.cluster_configs(min_service_ranges=1), lambda c: c.max_nodes == 0),
    (
        "config set-aside",
        ds.cluster_configs(min_service_ranges=1, min_nodes=1),
        lambda c: 0 < c.node_capacity(c.primary_family) < subnets(c),
    ),
    (
        "config service /31",
        ds.cluster_configs(min_service_ranges=1),
        lambda c: c.service_cidrs[0].prefixlen == 31,
    ),
    (
        "config service /128",
        ds.cluster_configs(min_service_ranges=2),
        lambda c: 128 in [s.prefixlen for s in c.service_cidrs],
    ),
    (
        "config service family not in cluster",
        ds.cluster_configs(dual_stack=False, min_service_ranges=1),
        lambda c: c.service_families[0] != c.primary_family,
    ),
    ("pool one subnet v4", ds.subnet_pools(family="IPv4"), lambda p: str(p.cidr).endswith("/32")),
    (
        "pool /127 at 128",
        ds.subnet_pools(family="IPv6"),
        lambda p: (p.cidr.prefixlen, p.prefixlen) == (127, 128),
    ),
    ("pool seed", ds.subnet_pools(), lambda p: (str(p.cidr), p.prefixlen) == ("fc00::/24", 64)),
    ("pool full seed", ds.subnet_pools(fill="full"), lambda p: p.used == 2**40),
    ("pool one free", ds.subnet_pools(), lambda p: p.free == 1 and p.capacity > 2),
    ("service pool /31", ds.service_ip_pools(family="IPv4"), lambda p: p.cidr.prefixlen == 31),
    ("service pool /127", ds.service_ip_pools(family="IPv6"), lambda p: p.cidr.prefixlen == 127),
    ("service pool one free", ds.service_ip_pools(), lambda p: p.free == 1 and p.capacity > 2),
    (
        "service pool full /64",
        ds.service_ip_pools(family="IPv6", fill="full"),
        lambda p: p.used == 2**64 - 1,
    ),
    ("service pool seed", ds.service_ip_pools(), lambda p: str(p.cidr) == "10.96.0.0/12"),
    ("nodes one free", ds.node_allocators(dual_stack=True), one_free),
    (
        "nodes with set-aside",
        ds.node_allocators(),
        lambda a: any(a.reserved(f) for f in a.config.families),
    ),
    (
        "services one free dual",
        ds.service_ip_allocators(dual_stack=True),
        lambda a: a.free("IPv4") == 1 == a.free("IPv6"),
    ),
    (
        "manifest ipFamily IPv6",
        ds.service_manifests(config=SEED),
        lambda m: m["spec"].get("ipFamily") == "IPv6",
    ),
    (
        "manifest RequireDualStack",
        ds.service_manifests(config=SEED),
        lambda m: m["spec"].get("ipFamilyPolicy") == "RequireDualStack",
    ),
    (
        "manifest two static IPs",
        ds.service_manifests(config=SEED),
        lambda m: len(m["spec"].get("clusterIPs") or ()) == 2,
    ),
    (
        "manifest headless both families",
        ds.service_manifests(),
        lambda m: m["spec"].get("ipFamilies") == ["IPv6", "IPv4"],
    ),
    ("manifest explicit None", ds.service_manifests(), lambda m: None in m["spec"].values()),
    ("manifest namespace", ds.service_manifests(), lambda m: "namespace" in m["metadata"]),
    ("manifest long name", ds.service_manifests(), lambda m: len(m["metadata"]["name"]) == 63),
    (
        "invalid out of range [1]",
        ds.invalid_service_manifests(config=SEED),
        lambda p: p.field == "spec.clusterIPs[1]" and "fd00:10:96::" in str(p.manifest),
    ),
    (
        "invalid not configured",
        ds.invalid_service_manifests(config=V4),
        lambda p: p.field == "spec.ipFamilies[1]",
    ),
]


@pytest.mark.parametrize(
    ("strategy", "condition"), [e[1:] for e in EDGES], ids=[e[0] for e in EDGES]
)
def test_edge_case_is_reached(strategy: Any, condition: Callable[[Any], bool]) -> None:
    fast = settings(database=None, phases=[Phase.generate], max_examples=3000)
    find(strategy, condition, settings=fast, random=random.Random(0))


def test_invalid_taken_address_is_reached() -> None:
    alloc = ServiceIPAllocator(SEED, strategy="sequential")
    alloc.allocate_service(
        {"metadata": {"name": "web"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
    )
    fast = settings(database=None, phases=[Phase.generate], max_examples=3000)
    held = [str(a) for a in alloc.get("default/web") or ()]
    for field in ("spec.clusterIPs[0]", "spec.clusterIPs[1]"):

        def taken(pair: ds.InvalidManifest, field: str = field) -> bool:
            return pair.field == field and any(a in str(pair.manifest) for a in held)

        bad = find(
            ds.invalid_service_manifests(allocator=alloc),
            taken,
            settings=fast,
            random=random.Random(0),
        )
        assert_refused(alloc, bad)


def test_every_invalid_field_is_reached() -> None:
    fields: set[str] = set()

    # derandomize: a fixed sequence of examples, so that reaching every field
    # is checked once and for all rather than by luck on each run.
    @settings(database=None, max_examples=400, phases=[Phase.generate], derandomize=True)
    @given(ds.invalid_service_manifests(config=V4))
    def collect(pair: ds.InvalidManifest) -> None:
        fields.add(pair.field)

    collect()
    assert fields >= {
        "",
        "kind",
        "apiVersion",
        "metadata",
        "metadata.name",
        "metadata.namespace",
        "spec",
        "spec.type",
        "spec.selector",
        "spec.ipFamily",
        "spec.clusterIP",
        "spec.clusterIPs",
        "spec.clusterIPs[0]",
        "spec.clusterIPs[1]",
        "spec.ipFamilies",
        "spec.ipFamilies[0]",
        "spec.ipFamilies[1]",
        "spec.ipFamilyPolicy",
        "spec.externalName",
    }


# ------------------------------------------------------------ arguments are checked eagerly

BAD_ARGUMENTS: list[tuple[Callable[..., Any], dict[str, Any]]] = [
    (ds.cidrs, {"family": "IPv5"}),
    (ds.cidrs, {"within": "not a network"}),
    (ds.cidrs, {"family": "IPv4", "within": "fd00::/8"}),
    (ds.cidrs, {"within": "10.0.0.0/8", "min_prefixlen": 4}),
    (ds.cidrs, {"min_prefixlen": 40}),
    (ds.cidrs, {"min_prefixlen": 20, "max_prefixlen": 10}),
    (ds.cidrs, {"max_prefixlen": 129}),
    (ds.cidrs, {"min_prefixlen": True}),
    (ds.cluster_configs, {"dual_stack": "yes"}),
    (ds.cluster_configs, {"primary_family": 4}),
    (ds.cluster_configs, {"min_service_ranges": 3}),
    (ds.cluster_configs, {"min_service_ranges": 2, "max_service_ranges": 1}),
    (ds.cluster_configs, {"min_nodes": -1}),
    (ds.cluster_configs, {"min_nodes": 2**30}),
    (ds.cluster_configs, {"min_nodes": 5, "max_nodes": 7}),
    (ds.cluster_configs, {"max_nodes": 0}),
    (ds.cluster_configs, {"min_service_ips": 9, "max_service_ips": 8}),
    (ds.cluster_configs, {"min_service_ips": 1, "max_service_ips": 1}),
    (ds.cluster_configs, {"min_service_ips": 2**200}),
    (ds.subnet_pools, {"cidr": "10.0.0.0/16", "prefixlen": 8}),
    (ds.subnet_pools, {"cidr": "10.0.0.0/16", "family": "IPv6"}),
    (ds.subnet_pools, {"family": "IPv4", "prefixlen": 64}),
    (ds.subnet_pools, {"fill": "brimming"}),
    (ds.subnet_pools, {"fill": []}),
    (ds.subnet_pools, {"strategy": "random"}),
    (ds.service_ip_pools, {"cidr": "10.0.0.0/32", "fill": "one-free"}),
    (ds.service_ip_pools, {"strategy": "next-fit"}),
    (ds.service_ip_pools, {"fill": 3}),
    (ds.node_allocators, {"config": "10.0.0.0/8"}),
    (ds.node_allocators, {"config": SEED, "dual_stack": False}),
    (ds.node_allocators, {"config": ClusterConfig("10.0.0.0/8"), "fill": "full"}),
    (
        ds.node_allocators,
        {"config": ClusterConfig("10.0.0.0/24", "10.0.0.0/24"), "fill": "one-free"},
    ),
    (ds.node_allocators, {"min_service_ranges": 3}),
    (ds.node_allocators, {"min_service_ranges": -1}),
    (ds.node_allocators, {"config": ClusterConfig("10.0.0.0/8"), "min_service_ranges": 1}),
    (ds.service_ip_allocators, {"config": ClusterConfig("10.0.0.0/8")}),
    (ds.service_ip_allocators, {"config": V4, "dual_stack": True}),
    (ds.service_ip_allocators, {"config": SEED, "fill": ("half", "full")}),
    (
        ds.service_ip_allocators,
        {"config": ClusterConfig("10.0.0.0/8", "10.96.0.0/31"), "fill": "one-free"},
    ),
    (ds.service_manifests, {"config": ClusterConfig("10.0.0.0/8")}),
    (ds.service_manifests, {"kinds": "static-ip"}),
    (ds.service_manifests, {"config": SEED, "kinds": ["plain", "loadbalancer"]}),
    (ds.service_manifests, {"config": SEED, "kinds": []}),
    (
        ds.service_manifests,
        {"config": ClusterConfig("10.0.0.0/8", "10.96.0.0/32"), "kinds": "static-ip"},
    ),
    (ds.service_manifests, {"allocator": SEED}),
    (ds.service_manifests, {"config": V4, "allocator": ServiceIPAllocator(SEED)}),
    (ds.invalid_service_manifests, {"config": "10.0.0.0/8"}),
]


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    BAD_ARGUMENTS,
    ids=[f"{f.__name__}-{i}" for i, (f, _) in enumerate(BAD_ARGUMENTS)],
)
def test_bad_arguments_fail_when_the_strategy_is_built(
    factory: Any, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidArgument) as info:
        factory(**kwargs)
    assert any(name in str(info.value) for name in kwargs)


@pytest.mark.parametrize(
    "factory", [ds.cidrs, ds.cluster_configs, ds.subnet_pools, ds.node_allocators]
)
def test_arguments_are_keyword_only(factory: Any) -> None:
    with pytest.raises(TypeError):
        factory(None)


def test_good_arguments_are_accepted() -> None:
    inside = ds.cidrs(family=IPFamily.IPv6, within=netaddr.IPNetwork("fd00::/16"))
    assert find(inside, lambda n: True) == netaddr.IPNetwork("fd00::/16")
    ds.subnet_pools(fill=["full", "empty"], strategy="lowest")
    ds.service_ip_pools(cidr="10.0.0.0/32", fill=("one-free", "full"))
    ds.node_allocators(config=SEED, fill=["some", "full"])
    ds.service_manifests(config=TINY, kinds=("static-ip", "plain"))


# ------------------------------------------------------------ packaging


def test_the_library_imports_without_hypothesis() -> None:
    """Only dualstack_ipam.testing needs Hypothesis, and says so when it is missing."""
    code = """
import importlib, pkgutil, sys
sys.modules["hypothesis"] = None  # makes "import hypothesis" raise ImportError
import dualstack_ipam
assert not [m for m in sys.modules if m.startswith("dualstack_ipam.testing")]
names = [m.name for m in pkgutil.walk_packages(dualstack_ipam.__path__, "dualstack_ipam.")]
for name in names:
    if name.startswith("dualstack_ipam.testing") or name == "dualstack_ipam.__main__":
        continue
    importlib.import_module(name)
import dualstack_ipam.testing
import dualstack_ipam.testing._hypothesis_entry
for name in ("strategies", "stateful", "pytest_plugin"):
    try:
        importlib.import_module("dualstack_ipam.testing." + name)
    except ImportError as exc:
        assert "pip install 'dualstack_ipam[testing]'" in str(exc), exc
    else:
        raise AssertionError(name + " imported without hypothesis")
print(len(names))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10


def test_setup_hook_registers_our_types() -> None:
    _hypothesis_setup_hook()
    first = settings(database=None, phases=[Phase.generate])  # the simplest example, no shrinking
    assert str(find(st.from_type(ClusterConfig), lambda c: True, settings=first)) == (
        "ClusterConfig(cluster_cidrs=(IPNetwork('10.0.0.0/24'),), service_cidrs=(), "
        "node_mask_ipv4=24, node_mask_ipv6=64)"
    )

    @settings(max_examples=3)
    @given(
        st.from_type(NodeCIDRAllocator), st.from_type(ServiceIPAllocator), st.from_type(IPFamily)
    )
    def drawn(nodes: NodeCIDRAllocator, services: ServiceIPAllocator, family: IPFamily) -> None:
        nodes._check_invariants()
        services._check_invariants()
        assert family in (IPFamily.IPv4, IPFamily.IPv6)

    drawn()
    assert isinstance(find(st.from_type(str), lambda s: True, settings=first), str)


def test_setup_hook_never_breaks_hypothesis(monkeypatch: pytest.MonkeyPatch) -> None:
    from dualstack_ipam.testing import _hypothesis_entry

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_hypothesis_entry, "_register", broken)
    with pytest.warns(RuntimeWarning, match="boom"):
        _hypothesis_setup_hook()


@pytest.mark.parametrize(
    "first_import",
    ["from hypothesis import find", "import dualstack_ipam.testing.strategies"],
)
def test_entry_point_registers_our_types_on_hypothesis_import(
    tmp_path: Path, first_import: str
) -> None:
    """The hook as Hypothesis runs it: during ``import hypothesis``, from metadata.

    A stand-in distribution declares the same entry point as pyproject.toml,
    so this holds whatever is installed; importing the strategies first (so
    that they import Hypothesis, which runs the hook) must not be a cycle.
    """
    dist = tmp_path / "entry_point_check-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: entry-point-check\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[hypothesis]\n_ = {ENTRY_POINT}\n")
    code = (
        f"{first_import}\n"
        "from hypothesis import find, strategies as st\n"
        "from dualstack_ipam import ClusterConfig, SubnetPool\n"
        "print(find(st.from_type(ClusterConfig), lambda c: c.is_dual_stack).cluster_cidrs)\n"
        "print(type(find(st.from_type(SubnetPool), lambda p: True)).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [
        "(IPNetwork('10.0.0.0/24'), IPNetwork('fd00::/64'))",
        "SubnetPool",
    ]


def test_installed_entry_point_registers_our_types() -> None:
    """Needs the package reinstalled after pyproject.toml declares the entry point."""
    from importlib.metadata import entry_points

    ours = [e for e in entry_points(group="hypothesis") if e.value.startswith("dualstack_ipam")]
    assert [e.value for e in ours] == [ENTRY_POINT], (
        "declare the entry point in pyproject.toml, then: pip install -e ."
    )
    code = (
        "from hypothesis import find, strategies as st\n"
        "from dualstack_ipam import ClusterConfig\n"
        "print(find(st.from_type(ClusterConfig), lambda c: c.is_dual_stack).cluster_cidrs)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(IPNetwork('10.0.0.0/24'), IPNetwork('fd00::/64'))"
