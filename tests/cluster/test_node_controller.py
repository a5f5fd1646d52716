"""NodeCIDRAllocator's controller operations: Node objects, by_family, reserved
space, cooldown, stats, ranges and reconcile (api-durable.md, "Controller
operations"), on the plain class and, where they compose, on durable stores."""

from __future__ import annotations

import copy
from typing import Any

import netaddr
import pytest
from durable import backends
from durable.backends import Backends
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam import (
    AlreadyAllocatedError,
    ClusterConfig,
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPFamily,
    NodeCIDRAllocator,
    NotInRangeError,
    PoolExhaustedError,
)

make = backends.make

DUAL = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/16,fd00:10:96::/112")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ by_family


def test_by_family_is_empty_half_or_whole() -> None:
    alloc = NodeCIDRAllocator(DUAL)
    assert alloc.by_family("n") == {}
    alloc.occupy("n", "fc00:0:0:5::/64")
    assert alloc.by_family("n") == {IPFamily.IPv6: netaddr.IPNetwork("fc00:0:0:5::/64")}
    alloc.allocate("n")
    assert alloc.by_family("n") == {
        IPFamily.IPv4: netaddr.IPNetwork("10.244.0.0/24"),
        IPFamily.IPv6: netaddr.IPNetwork("fc00:0:0:5::/64"),
    }
    with pytest.raises(InvalidConfigError):
        alloc.by_family("")


# --------------------------------------------------------------- Node objects


def test_allocate_node_sets_pod_cidrs_primary_first_and_keeps_the_input() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("fc00::/48,10.244.0.0/16"))
    node = {"metadata": {"name": "n1", "labels": {"a": "b"}}, "spec": {"taints": []}}
    before = copy.deepcopy(node)
    out = alloc.allocate_node(node)
    assert node == before
    assert out["spec"] == {
        "taints": [],
        "podCIDR": "fc00::/64",
        "podCIDRs": ["fc00::/64", "10.244.0.0/24"],
    }
    assert out["metadata"] == node["metadata"]
    assert out["metadata"] is not node["metadata"]
    assert alloc.allocate_node(node) == out  # a replayed event: same CIDRs


def test_allocate_node_occupies_what_the_node_carries() -> None:
    alloc = NodeCIDRAllocator(DUAL)
    node = {"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["fc00:0:0:9::/64", "10.244.7.0/24"]}}
    out = alloc.allocate_node(node)
    assert out["spec"]["podCIDRs"] == ["fc00:0:0:9::/64", "10.244.7.0/24"]
    assert out["spec"]["podCIDR"] == "fc00:0:0:9::/64"
    assert alloc.get("n1") == (
        netaddr.IPNetwork("10.244.7.0/24"),
        netaddr.IPNetwork("fc00:0:0:9::/64"),
    )
    legacy = alloc.allocate_node({"metadata": {"name": "n2"}, "spec": {"podCIDR": "10.244.8.0/24"}})
    assert legacy["spec"]["podCIDRs"] == ["10.244.8.0/24"]
    assert alloc.by_family("n2") == {IPFamily.IPv4: netaddr.IPNetwork("10.244.8.0/24")}


@pytest.mark.parametrize(
    ("cidrs", "error", "field"),
    [
        (["10.244.1.0/24", "fc00:0:0:1::/64"], AlreadyAllocatedError, "spec.podCIDRs[1]"),
        (["10.9.0.0/24"], NotInRangeError, "spec.podCIDRs[0]"),
        (["10.244.2.0/24", "10.244.3.0/24"], InvalidConfigError, "spec.podCIDRs[1]"),
        (["10.244.2.0/25"], InvalidConfigError, "spec.podCIDRs[0]"),
    ],
)
def test_allocate_node_errors_name_the_field_and_change_nothing(
    cidrs: list[str], error: type[Exception], field: str
) -> None:
    alloc = NodeCIDRAllocator(DUAL)
    alloc.occupy("other", ["fc00:0:0:1::/64"])
    before = alloc.snapshot()
    with pytest.raises(error, match=rf"spec\.podCIDRs\[{field[-2]}\]"):
        alloc.allocate_node({"metadata": {"name": "n"}, "spec": {"podCIDRs": cidrs}})
    assert alloc.snapshot() == before


def test_allocate_node_family_not_configured_names_the_field() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16"))
    with pytest.raises(FamilyNotConfiguredError, match=r"spec\.podCIDRs\[1\]"):
        alloc.allocate_node(
            {"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.0.0/24", "fc00::/64"]}}
        )
    assert len(alloc) == 0


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ([], "object"),
        ({"metadata": {}}, "metadata.name"),
        ({"metadata": {"name": ""}}, "metadata.name"),
        ({"metadata": {"name": "n"}, "spec": []}, "spec"),
        ({"metadata": {"name": "n"}, "spec": {"podCIDRs": "10.244.0.0/24"}}, "spec.podCIDRs"),
        ({"metadata": {"name": "n"}, "spec": {"podCIDR": 7}}, "spec.podCIDR"),
        (
            {
                "metadata": {"name": "n"},
                "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.2.0/24"]},
            },
            "spec.podCIDR",
        ),
    ],
)
def test_bad_node_objects(node: Any, field: str) -> None:
    alloc = NodeCIDRAllocator(DUAL)
    with pytest.raises(InvalidConfigError, match=field.replace(".", r"\.")):
        alloc.allocate_node(node)
    assert len(alloc) == 0


def test_allocate_node_exhausted_changes_nothing() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/23"))
    alloc.allocate("a"), alloc.allocate("b")
    with pytest.raises(PoolExhaustedError):
        alloc.allocate_node({"metadata": {"name": "c"}})
    assert list(alloc) == ["a", "b"]


# -------------------------------------------------------------- reserved space


def test_reserved_space_is_skipped_and_refused() -> None:
    alloc = NodeCIDRAllocator(DUAL, strategy="lowest")
    assert alloc.reserve("10.244.0.0/23", "racks") == 2
    assert alloc.reserve("fc00::-fc00:0:0:0:ffff::", "") == 1
    assert alloc.reserved("IPv4") == 2
    assert alloc.reserved("IPv6") == 1
    assert alloc.allocate("a") == (
        netaddr.IPNetwork("10.244.2.0/24"),
        netaddr.IPNetwork("fc00:0:0:1::/64"),
    )
    before = alloc.snapshot()
    with pytest.raises(AlreadyAllocatedError, match="reserved"):
        alloc.occupy("b", ["10.244.9.0/24", "fc00::/64"])  # the second is reserved
    assert alloc.snapshot() == before  # the first was not taken
    with pytest.raises(AlreadyAllocatedError):
        alloc.reserve("10.244.2.0/24")  # allocated to "a"
    assert alloc.reservations() == [
        (netaddr.IPNetwork("10.244.0.0/23"), "racks"),
        (netaddr.IPNetwork("fc00::/64"), ""),
    ]
    assert alloc.unreserve("10.244.1.0/24") == 1
    assert alloc.allocate("c")[0] == netaddr.IPNetwork("10.244.1.0/24")
    restored = NodeCIDRAllocator.restore(alloc.snapshot())
    assert restored.reservations() == alloc.reservations()
    restored._check_invariants()


def test_the_service_set_aside_is_reserved_but_never_unreserved() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16", "10.0.4.0/22"))
    assert alloc.reserved("IPv4") == 4
    assert alloc.reservations() == []
    with pytest.raises(InvalidConfigError, match="set-aside"):
        alloc.unreserve("10.0.0.0/16")
    with pytest.raises(AlreadyAllocatedError):
        alloc.reserve("10.0.4.0/24")
    assert alloc.reserve("10.0.8.0/24") == 1
    assert alloc.reserved("IPv4") == 5
    assert alloc.free("IPv4") == 256 - 5
    with pytest.raises(FamilyNotConfiguredError):
        alloc.reserve("fc00::/64")


# ------------------------------------------------------------------- cooldown


def test_a_released_cidr_cools_down_and_an_all_cooling_pool_is_exhausted() -> None:
    clock = Clock()
    alloc = NodeCIDRAllocator(
        ClusterConfig("10.0.0.0/23,fc00::/63"), strategy="lowest", cooldown=30, clock=clock
    )
    alloc.allocate("a"), alloc.allocate("b")
    alloc.release("a")
    assert alloc.stats()["IPv4"]["cooling"] == 1
    before = alloc.snapshot()
    with pytest.raises(PoolExhaustedError, match="cooling"):
        alloc.allocate("c")
    assert alloc.snapshot() == before
    assert alloc.occupy("c", ["10.0.0.0/24"])  # an explicit occupy takes a cooling one
    alloc.release("c")
    clock.now = 30
    assert alloc.allocate("d") == (netaddr.IPNetwork("10.0.0.0/24"), netaddr.IPNetwork("fc00::/64"))
    restored = NodeCIDRAllocator.restore(alloc.snapshot(), cooldown=5, clock=clock)
    assert restored.get("d") == alloc.get("d")
    with pytest.raises(InvalidConfigError):
        NodeCIDRAllocator.restore(alloc.snapshot(), cooldown=-1)


# ---------------------------------------------------------------------- stats


def test_stats_and_ranges() -> None:
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/22", "10.0.0.0/24"))
    assert alloc.ranges("IPv4") == [netaddr.IPNetwork("10.0.0.0/22")]
    alloc.allocate("a")
    alloc.reserve("10.0.2.0/23")
    with pytest.raises(AlreadyAllocatedError):
        alloc.occupy("b", "10.0.1.0/24")
    with pytest.raises(PoolExhaustedError):
        alloc.allocate("c")
    alloc.release("a")
    stats = alloc.stats()
    assert set(stats) == {"IPv4", "totals"}  # no IPv6 range: absent
    assert stats["IPv4"] == {"capacity": 4, "used": 0, "free": 1, "reserved": 3, "cooling": 0}
    assert stats["totals"] == {
        "allocations": 1,
        "releases": 1,
        "errors": {"exhausted": 1, "taken": 1, "invalid": 0},
    }
    restored = NodeCIDRAllocator.restore(alloc.snapshot())
    assert restored.stats()["totals"]["allocations"] == 0
    assert restored.stats()["IPv4"] == stats["IPv4"]


# ------------------------------------------------------------------ reconcile


def test_reconcile_on_the_node_allocator() -> None:
    alloc = NodeCIDRAllocator(DUAL)
    alloc.occupy("gone", "10.244.1.0/24")
    truth = {"n1": ["10.244.2.0/24", "fc00:0:0:2::/64"], "n2": ["10.244.3.0/25"]}
    report = alloc.reconcile(truth, repair=True, leak_grace=2)
    assert report.missing == {
        "n1": (netaddr.IPNetwork("10.244.2.0/24"), netaddr.IPNetwork("fc00:0:0:2::/64"))
    }
    assert report.out_of_range == {"n2": (netaddr.IPNetwork("10.244.3.0/25"),)}
    assert alloc._leak_counts == {"gone": 1}
    assert "gone" in alloc
    report = alloc.reconcile(truth, repair=True, leak_grace=2)
    assert report.released == {"gone": (netaddr.IPNetwork("10.244.1.0/24"),)}
    assert list(alloc) == ["n1"]
    alloc._check_invariants()


# ------------------------------------------------------------------- durable


def test_durable_node_operations(make: Backends) -> None:
    alloc = make.nodes(DUAL)
    out = alloc.allocate_node({"metadata": {"name": "n1"}})
    assert out["spec"]["podCIDRs"] == ["10.244.0.0/24", "fc00::/64"]
    alloc.allocate_node({"metadata": {"name": "n2"}, "spec": {"podCIDRs": ["10.244.9.0/24"]}})
    assert alloc.by_family("n2") == {IPFamily.IPv4: netaddr.IPNetwork("10.244.9.0/24")}
    with pytest.raises(AlreadyAllocatedError, match=r"spec\.podCIDRs\[0\]"):
        alloc.allocate_node({"metadata": {"name": "n3"}, "spec": {"podCIDRs": ["10.244.9.0/24"]}})
    assert "n3" not in alloc
    report = alloc.reconcile({"n1": ["10.244.0.0/24", "fc00::/64"]}, repair=True, leak_grace=1)
    assert report.released == {"n2": (netaddr.IPNetwork("10.244.9.0/24"),)}
    assert report.ok
    assert list(alloc) == ["n1"]
    assert alloc.stats()["IPv4"]["used"] == 1
    assert alloc.ranges("IPv6") == [netaddr.IPNetwork("fc00::/48")]
    # Reservations are stored on a durable cluster too.
    assert alloc.reserve("10.244.100.0/24", "racks") == 1
    assert alloc.reservations() == [(netaddr.IPNetwork("10.244.100.0/24"), "racks")]
    assert alloc.unreserve("10.244.100.0/24") == 1
    alloc._check_invariants()


# ------------------------------------------------------------------ property


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alloc", "release", "reserve", "unreserve", "tick"]),
            st.integers(0, 15),
            st.integers(0, 3),
        ),
        max_size=40,
    )
)
def test_reserved_and_cooling_cidrs_are_never_handed_out(ops: list[tuple[str, int, int]]) -> None:
    clock = Clock()
    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/20"), cooldown=10, clock=clock)
    released: dict[netaddr.IPNetwork, float] = {}
    for op, i, n in ops:
        key = f"k{i}"
        if op == "alloc":
            fresh = alloc.get(key) is None
            try:
                (got,) = alloc.allocate(key)
            except PoolExhaustedError:
                continue
            if fresh:
                assert not any(got in space for space, _ in alloc.reservations())
                assert clock.now >= released.pop(got, -1e9) + 10, "a cooling CIDR handed out"
        elif op == "release":
            for cidr in alloc.get(key) or ():
                released[cidr] = clock.now
            alloc.release(key)
        elif op in ("reserve", "unreserve"):
            space = netaddr.IPNetwork(f"10.0.{i}.0/{24 - n}")
            try:
                getattr(alloc, op)(space)
            except AlreadyAllocatedError:
                continue
            for cidr in [c for c in released if c in space]:
                del released[cidr]  # reserving ends a cooldown; unreserving frees at once
        else:
            clock.now += 4 * n
    alloc._check_invariants()


# -------------------------------------------------------------------- metrics


def test_node_metrics_scraped_with_prometheus_parser() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from dualstack_ipam.metrics import register

    alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/22,fc00::/63", "10.0.0.0/24"))
    alloc.allocate("a")
    alloc.allocate_node({"metadata": {"name": "b"}})
    alloc.release("a")
    registry = CollectorRegistry()
    register(alloc, registry)
    samples = {
        (s.name, s.labels.get("clusterCIDR")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("node_ipam_controller_cidrset_usage_cidrs", "10.0.0.0/22")] == 0.25
    assert samples[("node_ipam_controller_cidrset_usage_cidrs", "fc00::/63")] == 0.5
    every = "10.0.0.0/22,fc00::/63"
    assert samples[("node_ipam_controller_cidrset_cidrs_allocations_total", every)] == 4
    assert samples[("node_ipam_controller_cidrset_cidrs_releases_total", every)] == 2


def test_a_cooling_second_family_fails_allocate_before_the_first_is_taken() -> None:
    """Defect: ``free`` counts cooling subnets, so the all-or-nothing check
    passed and the first family was taken before the second raised."""
    clock = Clock()
    alloc = NodeCIDRAllocator(ClusterConfig("fc00::/62,10.0.0.0/23"), cooldown=30, clock=clock)
    alloc.allocate("a"), alloc.allocate("b")
    alloc.release("a")  # IPv4 has no free subnet now, only a cooling one
    before = alloc.snapshot()
    with pytest.raises(PoolExhaustedError, match="cooling"):
        alloc.allocate("c")
    assert alloc.snapshot() == before
    alloc._check_invariants()
