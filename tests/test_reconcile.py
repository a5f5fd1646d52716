"""reconcile: the report, the repair order, leak grace, conflicts; on every allocator."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator
from dualstack_ipam.errors import AddressFormatError, InvalidConfigError, NotInRangeError
from dualstack_ipam.net import IPFamily, parse_address
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.reconcile import Reconcilable, ReconcileReport, reconcile
from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator

A, B, C = (netaddr.IPAddress(f"192.0.2.{i}") for i in (1, 2, 3))
V6 = netaddr.IPAddress("2001:db8::1")


def make_lb() -> LoadBalancerIPAllocator:
    return LoadBalancerIPAllocator({"IPv4": "192.0.2.0/28", "IPv6": "2001:db8::/124"})


# ---------------------------------------------------------------- adapters
# The node and Service allocators lack the reconcile surface today (leak
# counts, the range check, and occupy(key, ips) for Services); these thin
# adapters supply it so the engine is tested on them as they are.


class NodeAdapter:
    def __init__(self, alloc: NodeCIDRAllocator) -> None:
        self.alloc: Any = alloc  # the Service adapter puts a ServiceIPAllocator here
        self._leak_counts: dict[str, int] = {}

    def get(self, key: str) -> tuple[Any, ...] | None:
        return self.alloc.get(key)  # type: ignore[no-any-return]

    def items(self) -> list[tuple[str, tuple[Any, ...]]]:
        return self.alloc.items()  # type: ignore[no-any-return]

    def owner_of(self, address: Any) -> str | None:
        return self.alloc.owner_of(address)  # type: ignore[no-any-return]

    def occupy(self, key: str, addresses: Any) -> tuple[Any, ...]:
        return self.alloc.occupy(key, list(addresses))  # type: ignore[no-any-return]

    def release(self, key: str) -> bool:
        return self.alloc.release(key)  # type: ignore[no-any-return]

    def _reconcile_parse(self, value: Any) -> tuple[Any, bool]:
        net = netaddr.IPNetwork(str(value)).cidr
        config = self.alloc.config
        family = IPFamily.IPv4 if net.version == 4 else IPFamily.IPv6
        inside = (
            family in config.families
            and net.prefixlen == config.node_mask(family)
            and net in config.cluster_cidr(family)
        )
        return net, inside


class ServiceAdapter(NodeAdapter):
    def __init__(self, alloc: ServiceIPAllocator) -> None:
        self.alloc = alloc
        self._leak_counts = {}
        self._pools = {
            f: ServiceIPPool(alloc.config.service_cidr(f)) for f in alloc.config.service_families
        }

    def occupy(self, key: str, addresses: Any) -> tuple[Any, ...]:
        (address,) = addresses  # allocate(key, ip=) gives one family per key only
        return (self.alloc.allocate(key, ip=address),)

    def _reconcile_parse(self, value: Any) -> tuple[Any, bool]:
        number, family = parse_address(value)
        address = netaddr.IPAddress(number, family.version)
        pool = self._pools.get(family)
        if pool is None:
            return address, False
        try:  # a scratch pool: allocate refuses what the range cannot hold
            pool.release(pool.allocate(address))
        except NotInRangeError:
            return address, False
        return address, True


def _is_reconcilable(target: Reconcilable) -> Reconcilable:
    return target  # mypy checks each adapter against the protocol


# ---------------------------------------------------------------- examples


def test_in_sync_is_ok_and_changes_nothing() -> None:
    lb = make_lb()
    lb.occupy("a", [A, V6])
    report = reconcile(lb, {"a": ["2001:db8::1", "192.0.2.1"]}, repair=True)
    assert report == ReconcileReport()
    assert report.ok


def test_report_only_changes_nothing_and_counts_nothing() -> None:
    lb = make_lb()
    lb.occupy("old", [A])
    before = lb.snapshot()
    for _ in range(5):
        report = reconcile(lb, {"new": [B]}, leak_grace=1)
        assert report.leaked == {"old": (A,)}
        assert report.missing == {"new": (B,)}
        assert not report.ok
        assert not report.released
    assert lb.snapshot() == before
    assert lb._leak_counts == {}


def test_leaks_are_released_after_grace_consecutive_repairs() -> None:
    lb = make_lb()
    lb.occupy("old", [A])
    for i in (1, 2):
        report = reconcile(lb, {}, repair=True)
        assert not report.released
        assert lb._leak_counts == {"old": i}
        assert not report.ok
    reconcile(lb, {})  # report-only: neither counts nor resets
    report = reconcile(lb, {}, repair=True)
    assert report.released == {"old": (A,)}
    assert report.ok
    assert lb.get("old") is None
    assert lb._leak_counts == {}


def test_a_key_back_in_the_truth_resets_its_count() -> None:
    lb = make_lb()
    lb.occupy("k", [A])
    reconcile(lb, {}, repair=True, leak_grace=2)
    reconcile(lb, {"k": [A]}, leak_grace=2)
    assert lb._leak_counts == {}
    assert not reconcile(lb, {}, repair=True, leak_grace=2).released
    assert reconcile(lb, {}, repair=True, leak_grace=2).released == {"k": (A,)}


@pytest.mark.parametrize("grace", [0, -1, 1.5, True, "3"])
def test_bad_leak_grace(grace: Any) -> None:
    with pytest.raises(InvalidConfigError):
        reconcile(make_lb(), {}, leak_grace=grace)


def test_bad_truth_changes_nothing() -> None:
    lb = make_lb()
    lb.occupy("a", [A])
    with pytest.raises(AddressFormatError):
        reconcile(lb, {"b": ["192.0.2.5"], "c": ["nope"]}, repair=True, leak_grace=1)
    with pytest.raises(InvalidConfigError):
        reconcile(lb, {"b": ["192.0.2.5", "192.0.2.6"]}, repair=True)
    with pytest.raises(InvalidConfigError):
        reconcile(lb, {"b": "192.0.2.5"}, repair=True)
    with pytest.raises(InvalidConfigError):
        reconcile(lb, [("b", ["192.0.2.5"])], repair=True)  # type: ignore[arg-type]
    assert lb.items() == [("a", (A,))]


def test_a_swap_between_two_keys_is_repaired_in_one_call() -> None:
    lb = make_lb()
    lb.occupy("a", [A])
    lb.occupy("b", [B])
    report = reconcile(lb, {"a": [B], "b": [A]}, repair=True)
    assert report.mismatched == {"a": ((A,), (B,)), "b": ((B,), (A,))}
    assert report.ok
    assert lb.items() == [("a", (B,)), ("b", (A,))]
    lb._check_invariants()


def test_a_leak_under_grace_keeps_its_address_as_a_conflict() -> None:
    lb = make_lb()
    lb.occupy("gone", [A])
    report = reconcile(lb, {"new": [A, V6]}, repair=True, leak_grace=2)
    assert report.conflicts == {A: ("gone", "new")}
    assert not report.ok
    assert lb.get("gone") == (A,)
    assert lb.get("new") == (V6,)
    report = reconcile(lb, {"new": [A, V6]}, repair=True, leak_grace=2)
    assert report.released == {"gone": (A,)}
    assert report.mismatched == {"new": ((V6,), (A, V6))}
    assert report.ok
    assert set(lb.get("new") or ()) == {A, V6}


def test_an_address_the_truth_gives_twice_is_reported_and_never_freed() -> None:
    lb = make_lb()
    lb.occupy("gone", [A])
    lb.occupy("x", [C])
    report = reconcile(lb, {"x": [A], "y": [A]}, repair=True, leak_grace=1)
    assert report.conflicts == {A: ("gone", "x", "y")}
    assert not report.released
    assert lb.get("gone") == (A,)
    assert lb.get("x") is None
    assert lb.get("y") is None
    assert not report.ok


def test_out_of_range_is_reported_and_the_rest_repaired() -> None:
    lb = make_lb()
    report = reconcile(lb, {"a": ["203.0.113.9", "2001:db8::1"]}, repair=True)
    assert report.out_of_range == {"a": (netaddr.IPAddress("203.0.113.9"),)}
    assert report.missing == {"a": (V6,)}
    assert lb.get("a") == (V6,)
    assert not report.ok


def test_to_dict_is_json() -> None:
    lb = make_lb()
    lb.occupy("a", [A])
    lb.occupy("b", [B])
    report = reconcile(lb, {"a": [C], "c": [B], "d": ["10.0.0.1"]})
    data = json.loads(json.dumps(report.to_dict()))
    assert data == {
        "ok": False,
        "missing": {"c": ["192.0.2.2"]},
        "leaked": {"b": ["192.0.2.2"]},
        "mismatched": {"a": {"held": ["192.0.2.1"], "truth": ["192.0.2.3"]}},
        "released": {},
        "out_of_range": {"d": ["10.0.0.1"]},
        "conflicts": {"192.0.2.2": ["b", "c"]},
    }


def test_the_report_is_frozen() -> None:
    with pytest.raises(AttributeError):
        ReconcileReport().ok = False  # type: ignore[misc]


def test_node_allocator_through_the_adapter() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16,fd00::/48", "10.96.0.0/24"))
    target = _is_reconcilable(NodeAdapter(alloc))
    alloc.allocate("n1")
    alloc.occupy("n2", ["10.244.7.0/24"])
    truth = {
        "n1": ["10.244.0.0/24", "fd00:0:0:5::/64"],  # mismatched: the IPv6 CIDR moved
        "n3": ["10.244.7.0/24"],  # n2's CIDR, n2 gone
        "n4": ["10.244.9.0/25"],  # the wrong mask
    }
    report = reconcile(target, truth, repair=True, leak_grace=1)
    assert report.released == {"n2": (netaddr.IPNetwork("10.244.7.0/24"),)}
    assert report.out_of_range == {"n4": (netaddr.IPNetwork("10.244.9.0/25"),)}
    assert set(alloc.get("n1") or ()) == {
        netaddr.IPNetwork("10.244.0.0/24"),
        netaddr.IPNetwork("fd00:0:0:5::/64"),
    }
    assert alloc.get("n3") == (netaddr.IPNetwork("10.244.7.0/24"),)
    alloc._check_invariants()


def test_an_address_refused_outside_the_owner_table_is_a_one_key_conflict() -> None:
    # The Service range inside the cluster CIDR is set aside: occupy refuses it.
    alloc = NodeCIDRAllocator(ClusterConfig("10.96.0.0/16", "10.96.0.0/24"))
    target = NodeAdapter(alloc)
    aside = netaddr.IPNetwork("10.96.0.0/24")
    report = reconcile(target, {"n1": [aside], "n2": ["10.96.5.0/24"]}, repair=True)
    assert report.conflicts == {aside: ("n1",)}
    assert not report.ok
    assert alloc.get("n1") is None
    assert alloc.get("n2") == (netaddr.IPNetwork("10.96.5.0/24"),)
    alloc._check_invariants()


def test_service_allocator_through_the_adapter() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    target = _is_reconcilable(ServiceAdapter(alloc))
    alloc.allocate("default/dns", ip="10.96.0.10")
    alloc.allocate("default/gone", ip="10.96.0.20")
    truth = {"default/dns": ["10.96.0.11"], "default/web": ["10.96.0.20"], "x/y": ["10.96.0.0"]}
    report = reconcile(target, truth, repair=True, leak_grace=1)
    assert report.out_of_range == {"x/y": (netaddr.IPAddress("10.96.0.0"),)}
    assert alloc.get("default/dns") == (netaddr.IPAddress("10.96.0.11"),)
    assert alloc.get("default/web") == (netaddr.IPAddress("10.96.0.20"),)
    assert alloc.get("default/gone") is None
    alloc._check_invariants()


# ---------------------------------------------------------------- property

# Each target: the addresses its truth may use (the first 8 of each family
# also drawn for the allocator), out-of-range ones, a parser, and a builder.
LB_POOLS = ([f"192.0.2.{i}" for i in range(16)], [f"2001:db8::{i:x}" for i in range(16)])
LB_OUTSIDE = ["203.0.113.1", "2001:db8:1::1"]
NODE_POOLS = ([f"10.0.{i}.0/24" for i in range(16)], [f"fd00:0:0:{i:x}::/64" for i in range(16)])
NODE_OUTSIDE = ["10.1.0.0/24", "fd00:0:0:7::/80"]
KEYS = [f"ns/k{i}" for i in range(6)]


def holdings(
    pools: tuple[list[str], list[str]], outside: list[str] | None
) -> st.SearchStrategy[dict[str, list[str]]]:
    """key -> at most one address per family (addresses may repeat across keys)."""
    extra = outside or ["", ""]

    @st.composite
    def draw_holdings(draw: st.DrawFn) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=6)):
            picked = []
            for family_pool, out in zip(pools, extra, strict=True):
                choices = family_pool[:8] + ([out] if out else [])
                value = draw(st.none() | st.sampled_from(choices))
                if value is not None:
                    picked.append(value)
            if picked:
                result[key] = draw(st.permutations(picked))
        return result

    return draw_holdings()


def make_nodes() -> NodeAdapter:
    config = ClusterConfig("10.0.0.0/20,fd00::/60")
    return NodeAdapter(NodeCIDRAllocator(config))


def check_convergence(
    target: Any,
    parse: Any,
    pools: tuple[list[str], list[str]],
    held: dict[str, list[str]],
    truth: dict[str, list[str]],
    grace: int,
) -> None:
    inner = target.alloc if isinstance(target, NodeAdapter) else target
    for key, addresses in held.items():
        free = [a for a in addresses if target.owner_of(a) is None]
        if free:
            target.occupy(key, free)
    claimed = {parse(a) for addresses in truth.values() for a in addresses}
    report = ReconcileReport()
    for _ in range(grace):
        before = {a for _, addresses in target.items() for a in addresses}
        report = reconcile(target, truth, repair=True, leak_grace=grace)
        after = {a for _, addresses in target.items() for a in addresses}
        assert not (before & claimed) - after, "an address the truth holds was freed"
        inner._check_invariants()
    counts: dict[Any, int] = {}
    for addresses in truth.values():
        for a in addresses:
            counts[parse(a)] = counts.get(parse(a), 0) + 1
    usable = {parse(a) for a in pools[0] + pools[1]}
    if all(n == 1 for n in counts.values()) and counts.keys() <= usable:
        assert report.ok, report
        assert {k: set(v) for k, v in target.items()} == {
            k: {parse(a) for a in v} for k, v in truth.items()
        }
    else:
        assert not report.ok
        assert report.conflicts or report.out_of_range
    for key, addresses in truth.items():  # what the report does not excuse is held by its key
        for text in addresses:
            address = parse(text)
            # A key keeping an address the truth gives to another (never
            # freed) cannot take its own of that family.
            blocked = any(
                h.version == address.version and h != address and h in claimed
                for h in target.get(key) or ()
            )
            if address in usable and address not in report.conflicts and not blocked:
                assert target.owner_of(address) == key, (key, address, report)
    assert all(k in truth or set(v) & claimed for k, v in target.items()), "a leak survived"
    assert reconcile(target, truth).ok == report.ok


@given(holdings(LB_POOLS, None), holdings(LB_POOLS, LB_OUTSIDE), st.integers(1, 3))
def test_repair_converges_where_the_truth_is_consistent(
    held: dict[str, list[str]], truth: dict[str, list[str]], grace: int
) -> None:
    check_convergence(make_lb(), netaddr.IPAddress, LB_POOLS, held, truth, grace)


@given(holdings(NODE_POOLS, None), holdings(NODE_POOLS, NODE_OUTSIDE), st.integers(1, 3))
def test_repair_converges_on_the_node_allocator(
    held: dict[str, list[str]], truth: dict[str, list[str]], grace: int
) -> None:
    check_convergence(make_nodes(), netaddr.IPNetwork, NODE_POOLS, held, truth, grace)


def _adapters_satisfy(targets: Iterable[Reconcilable]) -> None:
    """Type-level only: the LB allocator is a Reconcilable as it is."""


_adapters_satisfy([make_lb()])
