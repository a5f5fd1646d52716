"""ServiceIPAllocator's controller operations: occupy, reserved space,
cooldown, stats, ranges and reconcile (api-durable.md, "Controller
operations"), on the plain class and, where they compose, on durable stores."""

from __future__ import annotations

import tracemalloc

import netaddr
import pytest
from durable import backends
from durable.backends import Backends
from hypothesis import given, settings
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
)

make = backends.make

DUAL = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/24,fd00::/120")
IP = netaddr.IPAddress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------- occupy


def test_occupy_records_both_families_in_the_given_order() -> None:
    alloc = ServiceIPAllocator(DUAL)
    assert alloc.occupy("ns/web", ["fd00::7", "10.96.0.7"]) == (IP("fd00::7"), IP("10.96.0.7"))
    assert alloc.occupy("ns/web", ["fd00::7", "10.96.0.7"]) == (IP("fd00::7"), IP("10.96.0.7"))
    assert alloc.occupy("ns/web", "10.96.0.7") == (IP("fd00::7"), IP("10.96.0.7"))
    assert alloc.owner_of("10.96.0.7") == "ns/web"
    assert alloc.used("IPv4") == 1
    assert alloc.occupy("ns/one", "10.96.0.8") == (IP("10.96.0.8"),)
    assert alloc.occupy("ns/one", ["fd00::8"]) == (IP("10.96.0.8"), IP("fd00::8"))
    alloc._check_invariants()


@pytest.mark.parametrize(
    ("ips", "error"),
    [
        (["fd00::9", "10.96.0.7"], AlreadyAllocatedError),  # held by ns/web
        (["10.96.0.9", "10.96.0.10"], InvalidConfigError),  # two IPv4
        (["10.96.0.9", "fd00::100"], NotInRangeError),
        (["10.96.0.255"], NotInRangeError),  # the broadcast address
        (["10.96.0.9", "bogus"], AddressFormatError),
        ([], InvalidConfigError),
    ],
)
def test_occupy_is_all_or_nothing(ips: list[str], error: type[Exception]) -> None:
    alloc = ServiceIPAllocator(DUAL)
    alloc.occupy("ns/web", "10.96.0.7")
    before = alloc.snapshot()
    with pytest.raises(error):
        alloc.occupy("ns/new", ips)
    assert alloc.snapshot() == before


def test_occupy_names_the_owner_and_refuses_another_address_of_a_family() -> None:
    alloc = ServiceIPAllocator(DUAL)
    alloc.occupy("ns/web", "10.96.0.7")
    with pytest.raises(AlreadyAllocatedError, match="'ns/web'") as info:
        alloc.occupy("ns/db", "10.96.0.7")
    assert info.value.owner == "ns/web"
    with pytest.raises(AlreadyAllocatedError) as again:
        alloc.occupy("ns/web", "10.96.0.8")
    assert again.value.owner == "ns/web"
    one = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    with pytest.raises(FamilyNotConfiguredError):
        one.occupy("ns/x", "fd00::1")


def test_occupy_bulk_load_uses_less_memory_than_the_manifests() -> None:
    """50,000 keys load through occupy; the table is the only thing kept."""
    config = ClusterConfig("10.0.0.0/8", "10.96.0.0/12")
    alloc = ServiceIPAllocator(config)
    tracemalloc.start()
    for i in range(50_000):
        alloc.occupy(f"ns/s{i}", [str(IP(0x0A600001 + i))])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(alloc) == 50_000
    assert alloc.used("IPv4") == 50_000
    assert peak < 40 * 1024 * 1024
    alloc._check_invariants()


# -------------------------------------------------------------- reserved space


def test_reserved_addresses_are_skipped_and_refused() -> None:
    alloc = ServiceIPAllocator(
        ClusterConfig("10.244.0.0/16", "10.96.0.0/28"), strategy="sequential"
    )
    assert alloc.reserve("10.96.0.4-10.96.0.14", "appliances") == 11
    assert alloc.reserved("IPv4") == 11
    assert alloc.free("IPv4") == 3
    got = {alloc.allocate(f"k{i}") for i in range(3)}
    assert got == {IP("10.96.0.1"), IP("10.96.0.2"), IP("10.96.0.3")}
    with pytest.raises(PoolExhaustedError):
        alloc.allocate("k3")
    with pytest.raises(AlreadyAllocatedError, match="reserved"):
        alloc.occupy("k4", "10.96.0.5")
    with pytest.raises(ServiceValidationError, match="reserved"):
        alloc.allocate_service({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.96.0.6"}})
    with pytest.raises(AlreadyAllocatedError):
        alloc.reserve("10.96.0.1")
    assert alloc.reservations() == [(netaddr.IPRange("10.96.0.4", "10.96.0.14"), "appliances")]
    assert alloc.unreserve("10.96.0.0/29") == 4
    assert ServiceIPAllocator.restore(alloc.snapshot()).reservations() == alloc.reservations()
    alloc._check_invariants()


def test_a_reserved_second_family_fails_a_manifest_before_the_first_is_taken() -> None:
    alloc = ServiceIPAllocator(DUAL)
    alloc.reserve("fd00::10")
    before = alloc.snapshot()
    manifest = {
        "metadata": {"name": "x"},
        "spec": {
            "ipFamilyPolicy": "RequireDualStack",
            "clusterIP": "10.96.0.9",
            "clusterIPs": ["10.96.0.9", "fd00::10"],
        },
    }
    with pytest.raises(ServiceValidationError, match=r"spec\.clusterIPs\[1\]"):
        alloc.allocate_service(manifest)
    with pytest.raises(AlreadyAllocatedError, match="reserved"):
        alloc.occupy("ns/x", ["10.96.0.9", "fd00::10"])
    assert alloc.snapshot() == before


# ------------------------------------------------------------------- cooldown


def test_released_addresses_cool_down() -> None:
    clock = Clock()
    config = ClusterConfig("10.244.0.0/16", "10.96.0.0/30")  # two usable addresses
    alloc = ServiceIPAllocator(config, strategy="sequential", cooldown=60, clock=clock)
    first, second = alloc.allocate("a"), alloc.allocate("b")
    alloc.release("a")
    assert alloc.stats()["IPv4"]["cooling"] == 1
    assert alloc.free("IPv4") == 1
    with pytest.raises(PoolExhaustedError, match="cooling"):
        alloc.allocate_service({"metadata": {"name": "c"}})
    with pytest.raises(PoolExhaustedError):
        alloc.allocate("c")
    assert alloc.allocate("c", ip=first) == first  # a requested address is taken at once
    alloc.release("c")
    clock.now = 60
    assert alloc.allocate("d") == first
    assert alloc.get("b") == (second,)
    restored = ServiceIPAllocator.restore(alloc.snapshot(), cooldown=1, clock=clock)
    assert restored.get("d") == (first,)
    with pytest.raises(InvalidConfigError):
        ServiceIPAllocator.restore(alloc.snapshot(), clock=5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- stats


def test_stats_counts_and_totals() -> None:
    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/29"))
    assert alloc.ranges("IPv4") == [netaddr.IPNetwork("10.96.0.0/29")]
    alloc.occupy("a", "10.96.0.1")
    alloc.reserve("10.96.0.6")
    alloc.allocate("b")
    with pytest.raises(AlreadyAllocatedError):
        alloc.occupy("c", "10.96.0.1")
    with pytest.raises(ClusterIPTakenError):
        alloc.allocate_service({"metadata": {"name": "x"}, "spec": {"clusterIP": "10.96.0.1"}})
    with pytest.raises(NotInRangeError):
        alloc.allocate("d", ip="10.97.0.1")
    alloc.release("a")
    stats = alloc.stats()
    assert set(stats) == {"IPv4", "totals"}
    assert stats["IPv4"] == {"capacity": 6, "used": 1, "free": 4, "reserved": 1, "cooling": 0}
    assert stats["totals"] == {
        "allocations": 2,
        "releases": 1,
        "errors": {"exhausted": 0, "taken": 2, "invalid": 1},
    }


# ------------------------------------------------------------------ reconcile


def test_reconcile_on_the_service_allocator() -> None:
    alloc = ServiceIPAllocator(DUAL)
    alloc.occupy("ns/gone", "10.96.0.3")
    alloc.occupy("ns/moved", "10.96.0.4")
    truth = {"ns/moved": ["10.96.0.5"], "ns/new": ["10.96.0.3", "fd00::3"], "ns/far": ["1.2.3.4"]}
    report = alloc.reconcile(truth, repair=True, leak_grace=1)
    assert report.released == {"ns/gone": (IP("10.96.0.3"),)}
    assert report.mismatched == {"ns/moved": ((IP("10.96.0.4"),), (IP("10.96.0.5"),))}
    assert report.out_of_range == {"ns/far": (IP("1.2.3.4"),)}
    assert not report.ok
    assert dict(alloc.items()) == {
        "ns/moved": (IP("10.96.0.5"),),
        "ns/new": (IP("10.96.0.3"), IP("fd00::3")),
    }
    alloc._check_invariants()


# ------------------------------------------------------------------- durable


def test_durable_service_operations(make: Backends) -> None:
    alloc = make.services(DUAL, strategy="sequential")
    assert alloc.occupy("ns/web", ["10.96.0.7", "fd00::7"]) == (IP("10.96.0.7"), IP("fd00::7"))
    assert alloc.occupy("ns/web", ["10.96.0.7"]) == (IP("10.96.0.7"), IP("fd00::7"))
    with pytest.raises(AlreadyAllocatedError, match="'ns/web'"):
        alloc.occupy("ns/db", ["10.96.0.8", "fd00::7"])
    assert "ns/db" not in alloc
    assert alloc.owner_of("10.96.0.8") is None
    report = alloc.reconcile({"ns/db": ["10.96.0.8"]}, repair=True, leak_grace=1)
    assert report.ok
    assert list(alloc) == ["ns/db"]
    assert alloc.stats()["IPv6"]["used"] == 0
    assert alloc.reserved("IPv4") == 0
    # Reservations are stored on a durable cluster too.
    assert alloc.reserve("10.96.0.100", "appliance") == 1
    assert alloc.reserved("IPv4") == 1
    with pytest.raises(AlreadyAllocatedError, match="appliance"):
        alloc.occupy("ns/x", "10.96.0.100")
    assert alloc.unreserve("10.96.0.100") == 1
    alloc._check_invariants()


# ------------------------------------------------------------------ property


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alloc", "service", "release", "reserve", "unreserve", "tick"]),
            st.integers(1, 14),
            st.integers(0, 2),
        ),
        max_size=40,
    )
)
def test_reserved_and_cooling_addresses_are_never_handed_out(
    ops: list[tuple[str, int, int]],
) -> None:
    clock = Clock()
    config = ClusterConfig("10.244.0.0/16", "10.96.0.0/28")
    alloc = ServiceIPAllocator(config, cooldown=10, clock=clock)
    released: dict[netaddr.IPAddress, float] = {}
    for op, i, n in ops:
        key = f"ns/k{i}"
        if op in ("alloc", "service"):
            fresh = alloc.get(key) is None
            try:
                if op == "alloc":
                    got = alloc.allocate(key)
                else:
                    alloc.allocate_service({"metadata": {"name": f"k{i}", "namespace": "ns"}})
                    got = alloc.get(key)[0]  # type: ignore[index]
            except (PoolExhaustedError, AlreadyAllocatedError):
                continue
            if fresh:
                assert not any(got in space for space, _ in alloc.reservations())
                assert clock.now >= released.pop(got, -1e9) + 10, "a cooling address handed out"
        elif op == "release":
            for ip in alloc.get(key) or ():
                released[ip] = clock.now
            alloc.release(key)
        elif op in ("reserve", "unreserve"):
            space = netaddr.IPRange(IP(f"10.96.0.{i}"), IP(f"10.96.0.{min(i + n, 14)}"))
            try:
                getattr(alloc, op)(space)
            except AlreadyAllocatedError:
                continue
            for ip in [a for a in released if a in space]:
                del released[ip]
        else:
            clock.now += 4 * n
    alloc._check_invariants()


# -------------------------------------------------------------------- metrics


def test_service_metrics_scraped_with_prometheus_parser() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from dualstack_ipam.metrics import register

    alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/29"))
    alloc.occupy("ns/a", "10.96.0.1")
    alloc.reserve("10.96.0.6")
    with pytest.raises(AlreadyAllocatedError):
        alloc.occupy("ns/b", "10.96.0.1")
    registry = CollectorRegistry()
    register(alloc, registry)
    samples = {
        (s.name, s.labels.get("cidr")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    prefix = "kube_apiserver_clusterip_allocator_"
    assert samples[(prefix + "allocated_ips", "10.96.0.0/29")] == 1
    assert samples[(prefix + "available_ips", "10.96.0.0/29")] == 4
    assert samples[(prefix + "allocation_total", "10.96.0.0/29")] == 1
    assert samples[(prefix + "allocation_errors_total", "10.96.0.0/29")] == 1


def test_a_cooling_second_family_fails_a_manifest_before_the_first_is_taken() -> None:
    """Defect: ``free`` counts cooling addresses, so take_all's room check
    passed and the first family was taken before the second raised."""
    clock = Clock()
    config = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/24,fd00::/126")
    alloc = ServiceIPAllocator(config, strategy="sequential", cooldown=30, clock=clock)
    for i in range(3):
        alloc.allocate(f"v6-{i}", family="IPv6")
    alloc.release("v6-0")  # IPv6 has no free address now, only a cooling one
    before = alloc.snapshot()
    manifest = {"metadata": {"name": "web"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
    with pytest.raises(PoolExhaustedError, match="cooling"):
        alloc.allocate_service(manifest)
    assert alloc.snapshot() == before
    alloc._check_invariants()
