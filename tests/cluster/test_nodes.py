"""Tests for dualstack_ipam.cluster.nodes: NodeCIDRAllocator."""

from __future__ import annotations

import copy
import importlib
import ipaddress
import json
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import netaddr
import pytest
from durable import backends
from durable.backends import Backends
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import (
    AddressFormatError,
    AlreadyAllocatedError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily
from dualstack_ipam.pools.subnets import SubnetPool

V4, V6 = IPFamily.IPv4, IPFamily.IPv6
make = backends.make  # each allocator test runs on the plain class, memory:// and SQLite
SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")


def net(text: str) -> netaddr.IPNetwork:
    return netaddr.IPNetwork(text)


def unchanged(alloc: NodeCIDRAllocator, call: Callable[[], object], error: type[Exception]) -> Any:
    """Run ``call``, expect ``error``, and check the allocator did not change."""
    before = alloc.snapshot()
    with pytest.raises(error) as info:
        call()
    assert alloc.snapshot() == before
    alloc._check_invariants()
    return info.value


# ---------------------------------------------------------------- allocate


def test_seed_cluster_allocates_one_cidr_per_family(make: Backends) -> None:
    alloc = make.nodes(SEED)
    assert alloc.allocate("node-1") == (net("10.244.0.0/24"), net("fc00::/64"))
    assert alloc.allocate("node-2") == (net("10.244.1.0/24"), net("fc00:0:0:1::/64"))
    assert alloc.capacity(V6) == 2**40
    assert (alloc.used(V4), alloc.used("IPv6"), len(alloc)) == (2, 2, 2)
    assert alloc.reserved(V4) == alloc.reserved(V6) == 0
    alloc._check_invariants()


def test_family_order_follows_the_config(make: Backends) -> None:
    alloc = make.nodes(ClusterConfig("fd00::/48,10.0.0.0/16"))
    cidrs = alloc.allocate("n")
    assert [c.version for c in cidrs] == [6, 4]
    assert alloc.get("n") == cidrs
    assert alloc.items() == [("n", cidrs)]


def test_allocate_is_idempotent(make: Backends) -> None:
    alloc = make.nodes(SEED)
    first = alloc.allocate("n")
    snap = alloc.snapshot()
    assert alloc.allocate("n") == first
    assert alloc.snapshot() == snap  # not even the cursor moved


def test_next_fit_and_lowest_strategies(make: Backends) -> None:
    config = ClusterConfig("10.0.0.0/24", node_mask_ipv4=26)
    for strategy, expected in (("next-fit", "10.0.0.192/26"), ("lowest", "10.0.0.0/26")):
        alloc = make.nodes(config, strategy=strategy)
        for name in "abc":
            alloc.allocate(name)
        alloc.release("a")
        assert alloc.allocate("d") == (net(expected),)
        assert alloc.strategy == strategy


def test_bad_constructor_arguments() -> None:
    with pytest.raises(InvalidConfigError, match="'best-fit'"):
        NodeCIDRAllocator(SEED, strategy="best-fit")
    with pytest.raises(InvalidConfigError, match="ClusterConfig"):
        NodeCIDRAllocator("10.0.0.0/8")  # type: ignore[arg-type]


def test_exhaustion_is_atomic_unlike_kubernetes(make: Backends) -> None:
    # IPv4 has room for 4 nodes, IPv6 for 2: the third node must not leak an IPv4 CIDR.
    config = ClusterConfig("10.0.0.0/24,fd00::/120", node_mask_ipv4=26, node_mask_ipv6=121)
    alloc = make.nodes(config)
    alloc.allocate("a")
    alloc.allocate("b")
    error = unchanged(alloc, lambda: alloc.allocate("c"), PoolExhaustedError)
    assert "there are no remaining CIDRs left to allocate" in str(error)
    assert "'c'" in str(error)
    assert error.pool_cidr == net("fd00::/120")
    assert (alloc.used(V4), alloc.free(V4), alloc.used(V6)) == (2, 2, 2)
    assert "c" not in alloc
    alloc.release("a")
    assert alloc.allocate("c") == (net("10.0.0.128/26"), net("fd00::/121"))


def test_partial_node_gets_the_missing_family(make: Backends) -> None:
    alloc = make.nodes(SEED)
    assert alloc.occupy("n", "fc00:0:0:5::/64") == (net("fc00:0:0:5::/64"),)
    assert alloc.get("n") == (net("fc00:0:0:5::/64"),)
    assert alloc.allocate("n") == (net("10.244.0.0/24"), net("fc00:0:0:5::/64"))
    assert (alloc.used(V4), alloc.used(V6)) == (1, 1)
    alloc._check_invariants()


def test_partial_node_refused_when_its_missing_family_is_full(make: Backends) -> None:
    config = ClusterConfig("10.0.0.0/24,fd00::/120", node_mask_ipv4=25, node_mask_ipv6=121)
    alloc = make.nodes(config)
    alloc.occupy("a", ["10.0.0.0/25"])
    alloc.occupy("b", ["10.0.0.128/25"])
    error = unchanged(alloc, lambda: alloc.allocate("c"), PoolExhaustedError)
    assert error.pool_cidr == net("10.0.0.0/24")
    # "a" misses only IPv6, which has room.
    assert alloc.allocate("a") == (net("10.0.0.0/25"), net("fd00::/121"))


@pytest.mark.parametrize("bad", ["", 5, None, b"n", ("a",)])
def test_node_names_must_be_non_empty_strings(make: Backends, bad: Any) -> None:
    alloc = make.nodes(SEED)
    alloc.allocate("x")
    for call in (
        lambda: alloc.allocate(bad),
        lambda: alloc.occupy(bad, "10.244.9.0/24"),
        lambda: alloc.release(bad),
        lambda: alloc.get(bad),
    ):
        error = unchanged(alloc, call, InvalidConfigError)
        assert error.value == bad
    assert bad not in alloc


@pytest.mark.parametrize("name", ["Node_1", "node 1", "ü", "a" * 300, "-", "10.0.0.1"])
def test_any_non_empty_str_names_a_node(make: Backends, name: str) -> None:
    alloc = make.nodes(SEED)
    assert alloc.allocate(name) == alloc.get(name)
    assert list(alloc) == [name]


@pytest.mark.parametrize(
    "cidrs",
    [
        {"10.244.9.0/24"},
        frozenset({"10.244.9.0/24"}),
        {"10.244.9.0/24": 1},
        iter(["10.244.9.0/24"]),
        (c for c in ["10.244.9.0/24"]),
        netaddr.IPSet(["10.244.9.0/24"]),
        netaddr.IPRange("10.244.9.0", "10.244.9.255"),
        b"10.244.9.0/24",
        range(3),
        5,
    ],
    ids=repr,
)
def test_occupy_refuses_what_is_not_an_ordered_cidr_list(make: Backends, cidrs: Any) -> None:
    # One rule for CIDR lists (net.split_cidrs): unordered or lazy values are
    # refused at once, never iterated.
    alloc = make.nodes(SEED)
    unchanged(alloc, lambda: alloc.occupy("n", cidrs), InvalidConfigError)


# ---------------------------------------------------------------- Services


def test_service_range_inside_the_cluster_is_set_aside(make: Backends) -> None:
    config = ClusterConfig("10.0.0.0/28", "10.0.0.4/30", node_mask_ipv4=30)
    alloc = make.nodes(config)
    assert (alloc.capacity(V4), alloc.reserved(V4), alloc.used(V4), alloc.free(V4)) == (4, 1, 0, 3)
    got = {alloc.allocate(n)[0] for n in "abc"}
    assert got == {net("10.0.0.0/30"), net("10.0.0.8/30"), net("10.0.0.12/30")}
    unchanged(alloc, lambda: alloc.allocate("d"), PoolExhaustedError)
    for n in "abc":
        alloc.release(n)
    assert (alloc.reserved(V4), alloc.used(V4), alloc.free(V4)) == (1, 0, 3)
    assert alloc.owner_of("10.0.0.5") is None
    error = unchanged(alloc, lambda: alloc.occupy("d", "10.0.0.4/30"), AlreadyAllocatedError)
    assert "Service range 10.0.0.4/30" in str(error)
    assert error.owner is None


def test_service_range_larger_than_the_cluster_takes_everything(make: Backends) -> None:
    alloc = make.nodes(ClusterConfig("10.0.0.0/24,fd00::/48", "10.0.0.0/16"))
    assert alloc.reserved(V4) == alloc.capacity(V4) == 1
    assert alloc.free(V4) == 0
    unchanged(alloc, lambda: alloc.allocate("a"), PoolExhaustedError)
    alloc._check_invariants()


def test_ipv6_service_range_inside_the_seed_cluster(make: Backends) -> None:
    config = ClusterConfig("10.244.0.0/16,fc00::/24", "fc00:0:0:3::/112")
    alloc = make.nodes(config, strategy="lowest")
    assert alloc.reserved(V6) == 1
    assert alloc.reserved(V4) == 0
    cidrs = [alloc.allocate(f"n{i}")[1] for i in range(4)]
    assert net("fc00:0:0:3::/64") not in cidrs
    assert alloc.free(V6) == 2**40 - 5


# ------------------------------------------------------------------ occupy


def test_occupy_matches_by_family_not_position(make: Backends) -> None:
    alloc = make.nodes(SEED)
    got = alloc.occupy("n", [ipaddress.ip_network("fc00:0:0:9::/64"), net("10.244.7.0/24")])
    assert got == (net("10.244.7.0/24"), net("fc00:0:0:9::/64"))
    assert alloc.owner_of("10.244.7.200") == alloc.owner_of("fc00:0:0:9::1") == "n"
    # Kubernetes skips occupied indices only when asked: the cursor did not move.
    assert alloc.allocate("m") == (net("10.244.0.0/24"), net("fc00::/64"))


def test_occupy_is_idempotent_and_drops_host_bits(make: Backends) -> None:
    alloc = make.nodes(SEED)
    alloc.occupy("n", "10.244.7.0/24,fc00:0:0:9::/64")
    snap = alloc.snapshot()
    assert alloc.occupy("n", ["10.244.7.9/24"]) == alloc.get("n")
    assert alloc.occupy("n", "fc00:0:0:9::1/64, 10.244.7.0/24") == alloc.get("n")
    assert alloc.snapshot() == snap


def test_occupy_accepts_a_single_network_object(make: Backends) -> None:
    alloc = make.nodes(SEED)
    assert alloc.occupy("n", net("10.244.3.0/24")) == (net("10.244.3.0/24"),)
    assert alloc.occupy("m", ipaddress.ip_network("fc00::/64")) == (net("fc00::/64"),)


@pytest.mark.parametrize(
    ("cidrs", "error", "message"),
    [
        ([], InvalidConfigError, "no pod CIDR"),
        ("", InvalidConfigError, "no pod CIDR"),
        (5, InvalidConfigError, "5"),
        (["10.244.1.0/24", "10.244.2.0/24"], InvalidConfigError, "two IPv4 pod CIDRs"),
        (["10.244.1.0/24", "fc00::/64", "10.244.2.0/24"], InvalidConfigError, "two IPv4"),
        (["10.244.1.0/25"], InvalidConfigError, "prefix length 25"),
        (["fc00::/48"], InvalidConfigError, "prefix length 48"),
        (["10.245.1.0/24"], NotInRangeError, "not inside the cluster CIDR 10.244.0.0/16"),
        (["fd00::/64"], NotInRangeError, "'fd00::/64'"),
        (["10.244.1.0/24", "fd00::/64"], NotInRangeError, "fd00::/64"),
        (["10.244.1.0/24", "not-a-cidr"], AddressFormatError, "not-a-cidr"),
    ],
)
def test_occupy_errors(make: Backends, cidrs: Any, error: type[Exception], message: str) -> None:
    alloc = make.nodes(SEED)
    alloc.allocate("other")
    assert message in str(unchanged(alloc, lambda: alloc.occupy("n", cidrs), error))
    assert "n" not in alloc


def test_occupy_errors_carry_values(make: Backends) -> None:
    alloc = make.nodes(SEED)
    error = unchanged(alloc, lambda: alloc.occupy("n", ["10.245.1.5/24"]), NotInRangeError)
    assert error.value == net("10.245.1.0/24")
    assert error.pool_cidr == net("10.244.0.0/16")
    error = unchanged(alloc, lambda: alloc.occupy("n", ["10.244.1.0/25"]), InvalidConfigError)
    assert error.value == net("10.244.1.0/25")


def test_occupy_of_a_family_the_cluster_lacks(make: Backends) -> None:
    alloc = make.nodes(ClusterConfig("10.244.0.0/16"))
    error = unchanged(
        alloc, lambda: alloc.occupy("n", ["10.244.1.0/24", "fc00::/64"]), FamilyNotConfiguredError
    )
    assert error.family is V6
    assert "fc00::/64" in str(error)


def test_occupy_of_a_cidr_held_by_another_node(make: Backends) -> None:
    alloc = make.nodes(SEED)
    taken = alloc.allocate("a")
    # All-or-nothing: the free IPv6 CIDR is not recorded either.
    error = unchanged(
        alloc, lambda: alloc.occupy("b", [taken[0], "fc00:0:0:8::/64"]), AlreadyAllocatedError
    )
    assert error.owner == "a"
    assert error.value == taken[0]
    assert "'a'" in str(error)
    assert alloc.owner_of("fc00:0:0:8::/64") is None


def test_occupy_of_different_cidrs_for_a_node(make: Backends) -> None:
    alloc = make.nodes(SEED)
    alloc.occupy("n", ["10.244.7.0/24"])
    error = unchanged(alloc, lambda: alloc.occupy("n", ["10.244.8.0/24"]), AlreadyAllocatedError)
    assert error.owner == "n"
    assert "already holds 10.244.7.0/24" in str(error)
    # The family it lacks can still be added.
    assert alloc.occupy("n", ["fc00::/64", "10.244.7.0/24"]) == (
        net("10.244.7.0/24"),
        net("fc00::/64"),
    )


# --------------------------------------------------- release, get, owner_of


def test_release_get_contains_len_items_iter(make: Backends) -> None:
    alloc = make.nodes(SEED)
    a, b = alloc.allocate("a"), alloc.allocate("b")
    assert ("a" in alloc, "z" in alloc, None in alloc, len(alloc)) == (True, False, False, 2)
    assert list(alloc) == ["a", "b"]
    assert alloc.items() == [("a", a), ("b", b)]
    # Sorted by name, not by arrival (the owner table's one order).
    c = alloc.allocate("0")
    assert list(alloc) == ["0", "a", "b"]
    assert alloc.items() == [("0", c), ("a", a), ("b", b)]
    assert alloc.release("0")
    assert alloc.release("a") is True
    assert alloc.release("a") is False
    assert alloc.get("a") is None
    assert alloc.owner_of(a[0]) is None
    assert (alloc.used(V4), alloc.used(V6), len(alloc)) == (1, 1, 1)
    # Released CIDRs come back once the cursor wraps; here "lowest" shows it at once.
    lowest = make.nodes(SEED, strategy="lowest")
    first = lowest.allocate("a")
    lowest.release("a")
    assert lowest.allocate("c") == first


def test_owner_of(make: Backends) -> None:
    alloc = make.nodes(SEED)
    alloc.allocate("a")
    assert alloc.owner_of("10.244.0.255") == "a"
    assert alloc.owner_of(netaddr.IPAddress("fc00::ffff")) == "a"
    assert alloc.owner_of(ipaddress.ip_network("10.244.0.128/25")) == "a"
    assert alloc.owner_of("10.244.0.0/24") == "a"
    assert alloc.owner_of("10.244.0.0/23") is None  # larger than a node CIDR
    assert alloc.owner_of("10.244.1.0") is None  # free
    assert alloc.owner_of("192.168.0.1") is None  # outside
    assert alloc.owner_of("fd00:10:96::1") is None
    single = make.nodes(ClusterConfig("10.244.0.0/16"))
    assert single.owner_of("fc00::1") is None  # family not configured
    with pytest.raises(AddressFormatError):
        alloc.owner_of("10.244.0.256")


def test_counts_of_an_absent_family(make: Backends) -> None:
    alloc = make.nodes(ClusterConfig("10.244.0.0/16"))
    for method in (alloc.capacity, alloc.reserved, alloc.used, alloc.free):
        with pytest.raises(FamilyNotConfiguredError) as info:
            method("IPv6")
        assert info.value.family is V6
    with pytest.raises(InvalidConfigError):
        alloc.used("ipv4")


def test_public_names() -> None:
    package = importlib.import_module("dualstack_ipam")
    assert package.NodeCIDRAllocator is NodeCIDRAllocator
    assert "NodeCIDRAllocator" in package.__all__


# --------------------------------------------------------------- snapshots


def busy() -> NodeCIDRAllocator:
    config = ClusterConfig(
        "10.0.0.0/24,fd00::/120", "10.0.0.32/27", node_mask_ipv4=28, node_mask_ipv6=124
    )
    alloc = NodeCIDRAllocator(config)
    for name in ("a", "b", "c"):
        alloc.allocate(name)
    alloc.occupy("p", ["10.0.0.240/28"])
    alloc.release("b")
    return alloc


def test_snapshot_restore_round_trip_through_json() -> None:
    alloc = busy()
    data = alloc.snapshot()
    assert data["kind"] == "NodeCIDRAllocator"
    assert data["used"] == 3
    assert data["config"] == alloc.config.to_dict()
    assert data["nodes"]["p"] == ["10.0.0.240/28"]
    restored = NodeCIDRAllocator.restore(json.loads(json.dumps(data)))
    restored._check_invariants()
    assert restored.snapshot() == data
    assert restored.items() == alloc.items()
    assert restored.reserved(V4) == 2
    # The cursor survives: both hand out the same next CIDRs.
    assert restored.allocate("d") == alloc.allocate("d")


def corruptions() -> list[tuple[str, Callable[[dict[str, Any]], Any], str]]:
    def set_(path: list[Any], value: Any) -> Callable[[dict[str, Any]], Any]:
        def apply(data: dict[str, Any]) -> Any:
            target = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            return data

        return apply

    def drop(key: str) -> Callable[[dict[str, Any]], Any]:
        return lambda data: {k: v for k, v in data.items() if k != key}

    return [
        ("not a mapping", lambda data: [data], "mapping"),
        ("kind", set_(["kind"], "SubnetPool"), "kind"),
        ("version", set_(["version"], 99), "version"),
        ("no nodes", drop("nodes"), "lacks"),
        ("no pools", drop("pools"), "lacks"),
        ("no config", drop("config"), "lacks"),
        ("no used", drop("used"), "lacks"),
        ("used", set_(["used"], 4), "used=4"),
        ("config", set_(["config", "node_mask_ipv4"], 30), "does not match the configuration"),
        ("bad config", set_(["config"], "10.0.0.0/24"), "ClusterConfig"),
        ("strategy", set_(["strategy"], "lowest"), "does not match the configuration"),
        ("bad strategy", set_(["strategy"], "worst"), "'worst'"),
        ("pools type", set_(["pools"], {}), "one pool per family"),
        ("one pool", lambda data: {**data, "pools": data["pools"][:1]}, "one pool per family"),
        ("pool order", lambda data: {**data, "pools": data["pools"][::-1]}, "does not match"),
        ("pool kind", set_(["pools", 0, "kind"], "ServiceIPPool"), "kind"),
        ("pool used", set_(["pools", 1, "used"], 0), "used=0"),
        ("pool extra", set_(["pools", 1, "used"], 3), "used=3"),
        ("nodes type", set_(["nodes"], []), "'nodes' must be a mapping"),
        ("node name", set_(["nodes", ""], ["10.0.0.0/28"]), "bad node name"),
        ("node cidrs type", set_(["nodes", "a"], "10.0.0.0/28"), "non-empty list of text"),
        ("node cidrs empty", set_(["nodes", "a"], []), "non-empty list of text"),
        ("node cidr garbage", set_(["nodes", "a"], ["garbage"]), "'garbage'"),
        ("node cidr free", set_(["nodes", "a"], ["10.0.0.16/28", "fd00::10/124"]), "is free"),
        ("node cidr shared", set_(["nodes", "a"], ["10.0.0.240/28", "fd00::/124"]), "twice"),
        ("node cidr reserved", set_(["nodes", "a"], ["10.0.0.32/28", "fd00::/124"]), "twice"),
        ("node cidr outside", set_(["nodes", "a"], ["10.0.1.0/28", "fd00::/124"]), "not inside"),
        ("node family", set_(["nodes", "a"], ["10.0.0.0/28", "fe00::/124"]), "not inside"),
        (
            "node cidr order",
            lambda data: set_(["nodes", "a"], data["nodes"]["a"][::-1])(data),
            "family order",
        ),
        (
            "node two of a family",
            set_(["nodes", "p"], ["10.0.0.240/28", "10.0.0.16/28"]),
            "two IPv4",
        ),
        ("node cidr mask", set_(["nodes", "p"], ["10.0.0.240/29"]), "prefix length 29"),
        (
            "node forgotten",
            lambda data: {**data, "used": 2, "nodes": {k: data["nodes"][k] for k in "ap"}},
            "2 are held",
        ),
    ]


@pytest.mark.parametrize(
    ("name", "corrupt", "message"), corruptions(), ids=[c[0] for c in corruptions()]
)
def test_restore_rejects_corrupt_snapshots(
    name: str, corrupt: Callable[[dict[str, Any]], Any], message: str
) -> None:
    data = copy.deepcopy(busy().snapshot())
    with pytest.raises(SnapshotError, match=message):
        NodeCIDRAllocator.restore(corrupt(data))


def test_restore_rejects_service_set_aside_freed() -> None:
    alloc = busy()
    data = alloc.snapshot()
    pool = alloc._pools[V4]
    assert isinstance(pool, SubnetPool)  # no range was added
    pool.release("10.0.0.32/27")
    pool.occupy("10.0.0.64/27")  # same count, wrong subnets
    data["pools"][0] = pool.snapshot()
    with pytest.raises(SnapshotError, match="set aside"):
        NodeCIDRAllocator.restore(data)


# -------------------------------------------------------------- properties

SMALL = ClusterConfig("10.0.0.0/24,fd00::/120", node_mask_ipv4=28, node_mask_ipv6=124)


@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([f"node-{i}" for i in range(24)])),
        max_size=60,
    )
)
def test_allocate_release_keep_family_counts_equal(
    make: Backends, ops: list[tuple[bool, str]]
) -> None:
    alloc = make.nodes(SMALL)
    for is_allocate, node in ops:
        if is_allocate:
            try:
                alloc.allocate(node)
            except PoolExhaustedError:
                assert len(alloc) == 16
        else:
            alloc.release(node)
        assert alloc.used(V4) == alloc.used(V6) == len(alloc)
        assert alloc.free(V4) == alloc.free(V6) == 16 - len(alloc)
    cidrs = [cidr for _, held in alloc.items() for cidr in held]
    assert len(set(cidrs)) == len(cidrs)  # a node never shares a CIDR
    assert all(alloc.owner_of(cidr) == node for node, held in alloc.items() for cidr in held)
    alloc._check_invariants()
    assert NodeCIDRAllocator.restore(alloc.snapshot()).snapshot() == alloc.snapshot()


# ----------------------------------------------------------------- threads


def test_threads_never_share_a_cidr(make: Backends) -> None:
    config = ClusterConfig("10.0.0.0/16,fd00::/48", node_mask_ipv4=26)
    alloc = make.nodes(config)
    results: dict[str, tuple[netaddr.IPNetwork, ...]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(200):
                node = f"w{worker}-{i}"
                results[node] = alloc.allocate(node)
                if i % 7 == 0:  # churn: release and take again
                    alloc.release(node)
                    results[node] = alloc.allocate(node)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == len(alloc) == 800
    for family_index, family in enumerate((V4, V6)):
        cidrs = {cidrs[family_index] for cidrs in results.values()}
        assert len(cidrs) == 800 == alloc.used(family)
    assert dict(alloc.items()) == results
    alloc._check_invariants()


# ---------------------------------------------------------- state machine


NAMES = st.sampled_from([f"n{i}" for i in range(20)])


class NodeMachine(RuleBasedStateMachine):
    """NodeCIDRAllocator against a plain dict model, on a universe of 16 + 16 subnets.

    The IPv4 cluster holds a Service range (2 subnets set aside), so IPv4
    runs out first and partial nodes (from occupy) are common.
    """

    CONFIG = ClusterConfig(
        "10.0.0.0/24,fd00::/120",
        "10.0.0.32/27",
        node_mask_ipv4=28,
        node_mask_ipv6=124,
    )
    SUBNETS: ClassVar[dict[IPFamily, list[netaddr.IPNetwork]]] = {
        V4: list(netaddr.IPNetwork("10.0.0.0/24").subnet(28)),
        V6: list(netaddr.IPNetwork("fd00::/120").subnet(124)),
    }
    RESERVED: ClassVar[set[netaddr.IPNetwork]] = {
        netaddr.IPNetwork("10.0.0.32/28"),
        netaddr.IPNetwork("10.0.0.48/28"),
    }

    def __init__(self) -> None:
        super().__init__()
        self.alloc = NodeCIDRAllocator(self.CONFIG)
        self.model: dict[str, dict[IPFamily, netaddr.IPNetwork]] = {}

    def owners(self) -> dict[netaddr.IPNetwork, str]:
        return {cidr: node for node, held in self.model.items() for cidr in held.values()}

    def free(self, family: IPFamily) -> int:
        taken = sum(1 for held in self.model.values() if family in held)
        reserved = len(self.RESERVED) if family is V4 else 0
        return 16 - reserved - taken

    @rule(node=NAMES)
    def allocate(self, node: str) -> None:
        held = self.model.get(node, {})
        missing = [f for f in (V4, V6) if f not in held]
        if any(self.free(f) == 0 for f in missing):
            event("allocate: exhausted")
            unchanged(self.alloc, lambda: self.alloc.allocate(node), PoolExhaustedError)
            return
        event(f"allocate: {len(missing)} missing")
        owners = self.owners()
        got = self.alloc.allocate(node)
        assert len(got) == 2
        for family, cidr in zip((V4, V6), got, strict=True):
            if family in held:
                assert cidr == held[family]
            else:
                assert cidr not in owners
                assert cidr not in self.RESERVED
                assert cidr in self.SUBNETS[family]
        self.model[node] = {V4: got[0], V6: got[1]}

    @rule(nodes=st.lists(NAMES, min_size=2, max_size=10))
    def allocate_many(self, nodes: list[str]) -> None:
        # Reaches exhaustion within Hypothesis' default step budget.
        for node in nodes:
            self.allocate(node)

    @rule(
        node=NAMES,
        v4=st.none() | st.integers(0, 15),
        v6=st.none() | st.integers(0, 15),
        reverse=st.booleans(),
    )
    def occupy(self, node: str, v4: int | None, v6: int | None, reverse: bool) -> None:
        wanted = {}
        if v4 is not None:
            wanted[V4] = self.SUBNETS[V4][v4]
        if v6 is not None:
            wanted[V6] = self.SUBNETS[V6][v6]
        cidrs = list(wanted.values())[:: -1 if reverse else 1]
        if not wanted:
            unchanged(self.alloc, lambda: self.alloc.occupy(node, cidrs), InvalidConfigError)
            return
        owners = self.owners()
        held = self.model.get(node, {})
        refused = any(
            owners.get(cidr, node) != node
            or cidr in self.RESERVED
            or (family in held and held[family] != cidr)
            for family, cidr in wanted.items()
        )
        event(f"occupy: {'refused' if refused else 'accepted'}")
        if refused:
            unchanged(self.alloc, lambda: self.alloc.occupy(node, cidrs), AlreadyAllocatedError)
            return
        self.model[node] = {**held, **wanted}
        expected = tuple(self.model[node][f] for f in (V4, V6) if f in self.model[node])
        assert self.alloc.occupy(node, cidrs) == expected

    @rule(node=NAMES)
    def release(self, node: str) -> None:
        assert self.alloc.release(node) is (self.model.pop(node, None) is not None)

    @rule()
    def restart(self) -> None:
        data = json.loads(json.dumps(self.alloc.snapshot()))
        restored = NodeCIDRAllocator.restore(data)
        assert restored.snapshot() == self.alloc.snapshot()
        self.alloc = restored

    @invariant()
    def agrees_with_model(self) -> None:
        self.alloc._check_invariants()
        assert len(self.alloc) == len(self.model)
        for node, held in self.model.items():
            expected = tuple(held[f] for f in (V4, V6) if f in held)
            assert self.alloc.get(node) == expected
            for cidr in held.values():
                assert self.alloc.owner_of(cidr) == node
        for family in (V4, V6):
            assert self.alloc.free(family) == self.free(family)
            assert self.alloc.used(family) == sum(1 for h in self.model.values() if family in h)


TestNodeMachine = NodeMachine.TestCase


def test_snapshots_taken_while_a_thread_allocates_restore_consistently() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16,fd00::/48", node_mask_ipv4=26))
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            alloc.allocate(f"n{i % 700}")
            if i % 3 == 0:
                alloc.release(f"n{(i * 7) % 700}")
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(40):
            data = alloc.snapshot()
            restored = NodeCIDRAllocator.restore(json.loads(json.dumps(data)))
            restored._check_invariants()
            assert restored.snapshot() == data
    finally:
        stop.set()
        worker.join()
