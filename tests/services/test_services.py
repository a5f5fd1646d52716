"""ServiceIPAllocator: the seed's allocate(key, family, ip) model, counts,
snapshots, invariants, threads, and a stateful model check."""

from __future__ import annotations

import copy
import json
import random
import threading
from typing import Any

import netaddr
import pytest
from durable import backends
from durable.backends import Backends
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dualstack_ipam import (
    AddressFormatError,
    AlreadyAllocatedError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPAMError,
    IPFamily,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.services.allocator import ServiceIPAllocator

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
SMALL = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/27,fd00:10:96::/123")
V6_FIRST = ClusterConfig("fc00::/24,10.244.0.0/16", "fd00:10:96::/112,10.96.0.0/12")
V4_ONLY = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")
make = backends.make  # each allocator test runs on the plain class, memory:// and SQLite


def ip(text: str) -> netaddr.IPAddress:
    return netaddr.IPAddress(text)


def unchanged(
    alloc: ServiceIPAllocator, error: type[Exception], call: Any, *args: Any, **kwargs: Any
) -> Exception:
    before = alloc.snapshot()
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    assert alloc.snapshot() == before
    alloc._check_invariants()
    return info.value


def test_public_names_are_exported() -> None:
    import dualstack_ipam

    assert dualstack_ipam.ServiceIPAllocator is ServiceIPAllocator
    assert "ServiceIPAllocator" in dualstack_ipam.__all__
    assert "ClusterIPTakenError" in dualstack_ipam.__all__


class TestConstruction:
    def test_one_pool_per_service_range(self, make: Backends) -> None:
        alloc = make.services(SEED)
        assert alloc.capacity("IPv4") == 2**20 - 2
        assert alloc.capacity(IPFamily.IPv6) == 2**16 - 1
        assert (alloc.used("IPv4"), alloc.free("IPv6")) == (0, 2**16 - 1)
        assert len(alloc) == 0
        assert alloc.config is SEED
        assert "10.96.0.0/12" in repr(alloc)

    def test_service_ranges_not_cluster_cidrs_decide(self, make: Backends) -> None:
        alloc = make.services(ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/24"))
        with pytest.raises(FamilyNotConfiguredError) as info:
            alloc.capacity("IPv6")
        assert info.value.family is IPFamily.IPv6
        assert "IPv6" in str(info.value)

    @pytest.mark.parametrize(
        ("args", "kwargs"),
        [
            ((ClusterConfig("10.244.0.0/16,fc00::/24"),), {}),  # no Service range
            ((SEED,), {"strategy": "lowest"}),
            (("10.96.0.0/12",), {}),
            ((SEED,), {"rng": 42}),
        ],
    )
    def test_bad_construction(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with pytest.raises(InvalidConfigError):
            ServiceIPAllocator(*args, **kwargs)

    @pytest.mark.parametrize("method", ["capacity", "used", "free"])
    def test_bad_family_in_counts(self, make: Backends, method: str) -> None:
        with pytest.raises(InvalidConfigError):
            getattr(make.services(SEED), method)("ipv4")


class TestAllocate:
    def test_default_family_is_the_first_service_range(self, make: Backends) -> None:
        assert make.services(SEED).allocate("a").version == 4
        assert make.services(V6_FIRST).allocate("a").version == 6

    def test_family_and_ip(self, make: Backends) -> None:
        alloc = make.services(SEED, strategy="sequential")
        assert alloc.allocate("v6", family="IPv6") in netaddr.IPNetwork("fd00:10:96::/112")
        assert alloc.allocate("fixed", ip="fd00:10:96::53") == ip("fd00:10:96::53")
        assert alloc.allocate("both", family=IPFamily.IPv4, ip="10.96.0.10") == ip("10.96.0.10")
        assert alloc.get("fixed") == (ip("fd00:10:96::53"),)
        assert (alloc.used("IPv4"), alloc.used("IPv6"), len(alloc)) == (1, 2, 3)

    def test_accepts_netaddr_and_ipaddress(self, make: Backends) -> None:
        import ipaddress

        alloc = make.services(SEED)
        assert alloc.allocate("a", ip=ipaddress.ip_address("10.96.0.7")) == ip("10.96.0.7")
        assert alloc.allocate("b", ip=ip("10.96.0.8")) == ip("10.96.0.8")

    def test_idempotent_per_key(self, make: Backends) -> None:
        alloc = make.services(SEED)
        first = alloc.allocate("a")
        assert alloc.allocate("a") == first
        assert alloc.allocate("a", family="IPv4") == first
        assert alloc.allocate("a", ip=first) == first
        assert alloc.allocate("a", family="IPv4", ip=str(first)) == first
        assert alloc.used("IPv4") == 1

    @pytest.mark.parametrize(
        "kwargs", [{"family": "IPv6"}, {"ip": "10.96.0.99"}, {"ip": "fd00:10:96::99"}]
    )
    def test_different_request_for_existing_key(
        self, make: Backends, kwargs: dict[str, str]
    ) -> None:
        alloc = make.services(SEED)
        alloc.allocate("a", ip="10.96.0.5")
        error = unchanged(alloc, AlreadyAllocatedError, alloc.allocate, "a", **kwargs)
        assert isinstance(error, AlreadyAllocatedError)
        assert error.owner == "a"
        assert "'a'" in str(error)

    def test_dual_key_is_not_a_single_request(self, make: Backends) -> None:
        alloc = make.services(SEED)
        alloc.allocate_service(
            {"metadata": {"name": "x"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
        )
        unchanged(alloc, AlreadyAllocatedError, alloc.allocate, "default/x")

    def test_taken_address_names_its_owner(self, make: Backends) -> None:
        alloc = make.services(SEED)
        alloc.allocate("dns", ip="10.96.0.10")
        error = unchanged(alloc, AlreadyAllocatedError, alloc.allocate, "other", ip="10.96.0.10")
        assert isinstance(error, AlreadyAllocatedError)
        assert (error.owner, error.value) == ("dns", ip("10.96.0.10"))
        assert "10.96.0.10" in str(error)

    def test_family_disagreeing_with_ip_is_checked_first(self, make: Backends) -> None:
        alloc = make.services(V4_ONLY)
        # IPv6 has no range here, but the disagreement is reported, not the family.
        error = unchanged(alloc, InvalidConfigError, alloc.allocate, "a", "IPv6", "10.96.0.5")
        assert not isinstance(error, FamilyNotConfiguredError)
        assert "10.96.0.5" in str(error)
        unchanged(alloc, FamilyNotConfiguredError, alloc.allocate, "a", "IPv6")
        unchanged(alloc, FamilyNotConfiguredError, alloc.allocate, "a", None, "fd00::5")

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"ip": "10.97.0.1"}, NotInRangeError),
            ({"ip": "10.96.0.0"}, NotInRangeError),  # network address
            ({"ip": "10.96.0.255"}, NotInRangeError),  # broadcast
            ({"ip": "10.96.0"}, AddressFormatError),
            ({"ip": 167772161}, AddressFormatError),
            ({"ip": "10.96.0.0/24"}, AddressFormatError),
            ({"family": "IPv7"}, InvalidConfigError),
            ({"family": 4}, InvalidConfigError),
        ],
    )
    def test_bad_input_changes_nothing(
        self, make: Backends, kwargs: dict[str, Any], error: type[Exception]
    ) -> None:
        alloc = make.services(V4_ONLY)
        alloc.allocate("held", ip="10.96.0.1")
        raised = unchanged(alloc, error, alloc.allocate, "new", **kwargs)
        assert str(next(iter(kwargs.values()))) in str(raised)

    @pytest.mark.parametrize("key", ["", None, 7, ("ns", "name")])
    def test_bad_keys(self, make: Backends, key: Any) -> None:
        alloc = make.services(SEED)
        unchanged(alloc, InvalidConfigError, alloc.allocate, key)
        unchanged(alloc, InvalidConfigError, alloc.release, key)

    def test_exhaustion(self, make: Backends) -> None:
        alloc = make.services(ClusterConfig("10.244.0.0/16", "10.96.0.0/30"))
        first = alloc.allocate("a")
        assert {first, alloc.allocate("b")} == {ip("10.96.0.1"), ip("10.96.0.2")}
        error = unchanged(alloc, PoolExhaustedError, alloc.allocate, "c")
        assert isinstance(error, PoolExhaustedError)
        assert error.pool_cidr == netaddr.IPNetwork("10.96.0.0/30")
        assert alloc.release("a")
        assert alloc.allocate("c") == first

    def test_disagreement_error_carries_the_parsed_address(self, make: Backends) -> None:
        alloc = make.services(SEED)
        error = unchanged(alloc, InvalidConfigError, alloc.allocate, "a", "IPv4", "fd00::1")
        assert isinstance(error, InvalidConfigError)
        assert isinstance(error.value, netaddr.IPAddress)
        assert error.value == ip("fd00::1")
        assert "fd00::1" in str(error)

    def test_seeded_rng_is_reproducible(self, make: Backends) -> None:
        runs = []
        for _ in range(2):
            alloc = make.services(SEED, rng=random.Random(2024))
            runs.append(
                [alloc.allocate(f"k{i}", family=("IPv4", "IPv6")[i % 2]) for i in range(20)]
            )
        assert runs[0] == runs[1]


class TestQueries:
    def test_release_get_contains_len_items(self, make: Backends) -> None:
        alloc = make.services(SEED)
        a = alloc.allocate("a", ip="10.96.0.1")
        b = alloc.allocate("b", family="IPv6")
        assert "a" in alloc
        assert "z" not in alloc
        assert 7 not in alloc
        assert len(alloc) == 2
        assert alloc.items() == [("a", (a,)), ("b", (b,))]
        assert alloc.release("a") is True
        assert alloc.release("a") is False
        assert alloc.get("a") is None
        assert (len(alloc), alloc.used("IPv4"), alloc.used("IPv6")) == (1, 0, 1)
        assert alloc.allocate("c", ip="10.96.0.1") == a  # the address is free again

    @pytest.mark.parametrize("key", [[], ["x"], {}, 7, None, ""])
    def test_get_and_in_of_a_non_key(self, make: Backends, key: Any) -> None:
        alloc = make.services(SEED)
        alloc.allocate("x")
        with pytest.raises(InvalidConfigError) as info:
            alloc.get(key)
        assert repr(key) in str(info.value)
        assert (key in alloc) is False

    def test_get_is_primary_first(self, make: Backends) -> None:
        alloc = make.services(SEED)
        svc = alloc.allocate_service(
            {
                "metadata": {"name": "x"},
                "spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"]},
            }
        )
        held = alloc.get("default/x")
        assert held is not None
        assert [a.version for a in held] == [6, 4]
        assert [str(a) for a in held] == svc["spec"]["clusterIPs"]


# ------------------------------------------------------------ snapshots


def populated() -> ServiceIPAllocator:
    alloc = ServiceIPAllocator(SEED, rng=random.Random(5))
    alloc.allocate("dns", ip="10.96.0.10")
    alloc.allocate("v6", family="IPv6")
    alloc.allocate_service(
        {
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"ipFamilyPolicy": "PreferDualStack"},
        }
    )
    return alloc


class TestOwners:
    def test_owner_of_finds_the_key_of_either_family(self, make: Backends) -> None:
        alloc = make.services(SEED, strategy="sequential")
        svc = alloc.allocate_service(
            {"metadata": {"name": "web"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}
        )
        alloc.allocate("dns", ip="10.96.0.10")
        for text in svc["spec"]["clusterIPs"]:
            assert alloc.owner_of(text) == "default/web"
            assert alloc.owner_of(ip(text)) == "default/web"
        assert alloc.owner_of("10.96.0.10") == "dns"
        assert alloc.owner_of("10.96.0.11") is None
        alloc.release("default/web")
        assert [alloc.owner_of(t) for t in svc["spec"]["clusterIPs"]] == [None, None]

    def test_owner_of_outside_the_ranges_or_families_is_none(self, make: Backends) -> None:
        alloc = make.services(V4_ONLY)
        alloc.allocate("a")
        assert alloc.owner_of("192.168.0.1") is None
        assert alloc.owner_of("fd00:10:96::1") is None

    @pytest.mark.parametrize("bad", ["garbage", "10.96.0.0/24", None, 5.5])
    def test_owner_of_needs_an_address(self, make: Backends, bad: Any) -> None:
        alloc = make.services(V4_ONLY)
        with pytest.raises(AddressFormatError):
            alloc.owner_of(bad)

    def test_iteration_is_sorted_by_key(self, make: Backends) -> None:
        alloc = make.services(SMALL)
        for key in ("web", "default/b", "api", "default/a"):
            alloc.allocate(key)
        assert list(alloc) == ["api", "default/a", "default/b", "web"]
        assert [key for key, _ in alloc.items()] == list(alloc)
        assert list(alloc.snapshot()["services"]) == list(alloc)


class TestSnapshot:
    def test_round_trip(self) -> None:
        alloc = populated()
        data = alloc.snapshot()
        assert json.loads(json.dumps(data)) == data
        assert (data["kind"], data["used"]) == ("ServiceIPAllocator", 4)
        assert data["config"] == SEED.to_dict()
        assert data["services"]["dns"] == "10.96.0.10"  # version 2: one text per key
        restored = ServiceIPAllocator.restore(json.loads(json.dumps(data)))
        restored._check_invariants()
        assert restored.snapshot() == data
        assert restored.items() == alloc.items()
        assert restored.config == SEED
        # Restored state refuses what the original refuses.
        with pytest.raises(AlreadyAllocatedError):
            restored.allocate("x", ip="10.96.0.10")

    def test_restore_continues_with_the_rng(self) -> None:
        data = populated().snapshot()
        one = ServiceIPAllocator.restore(data, rng=random.Random(9))
        two = ServiceIPAllocator.restore(data, rng=random.Random(9))
        assert [one.allocate(f"n{i}") for i in range(5)] == [
            two.allocate(f"n{i}") for i in range(5)
        ]

    @pytest.mark.parametrize("data", ["good", None, {"kind": "ServiceIPAllocator"}])
    def test_bad_rng_is_an_argument_error(self, data: Any) -> None:
        snapshot = populated().snapshot() if data == "good" else data
        with pytest.raises(InvalidConfigError) as info:
            ServiceIPAllocator.restore(snapshot, rng="x")  # type: ignore[arg-type]
        assert not isinstance(info.value, SnapshotError)
        assert "'x'" in str(info.value)

    @staticmethod
    def corrupt(edit: Any) -> dict[str, Any]:
        data = copy.deepcopy(populated().snapshot())
        edit(data)
        return data

    @pytest.mark.parametrize(
        "edit",
        [
            lambda d: d.update(kind="ServiceIPPool"),
            lambda d: d.update(version=99),
            lambda d: d.pop("services"),
            lambda d: d.pop("config"),
            lambda d: d.update(used=3),
            lambda d: d.update(used="many"),
            lambda d: d.update(strategy="sequential"),
            lambda d: d["config"].update(service_cidrs=["10.96.0.0/12"]),
            lambda d: d["config"].update(service_cidrs=[]),
            lambda d: d.update(config="10.96.0.0/12"),
            lambda d: d["pools"].pop("IPv6"),
            lambda d: d.update(pools=[]),
            lambda d: d["pools"].update(IPv4=d["pools"]["IPv6"]),
            lambda d: d["pools"]["IPv4"].update(used=0),
            lambda d: d.update(services=[]),
            lambda d: d["services"].update(dns="10.96.0.11"),  # not allocated in the pool
            lambda d: d["services"].update(dns=["10.96.0.10"]),  # version 1's form in version 2
            lambda d: d["services"].update(dns=""),
            lambda d: d["services"].update(dns="nonsense"),
            lambda d: d["services"].update(dns="10.96.0.10,10.96.0.10"),
            lambda d: d["services"].update({"": "10.96.0.10"}),
            lambda d: d["services"].update(copy=d["services"]["dns"]),  # shared address
            lambda d: d["services"].pop("dns"),  # pool holds an address no key owns
        ],
    )
    def test_corrupt_snapshot(self, edit: Any) -> None:
        with pytest.raises(SnapshotError):
            ServiceIPAllocator.restore(self.corrupt(edit))

    @pytest.mark.parametrize("data", [None, [], "{}", {"kind": "ServiceIPAllocator"}])
    def test_not_a_snapshot(self, data: Any) -> None:
        with pytest.raises(SnapshotError):
            ServiceIPAllocator.restore(data)


class TestInvariants:
    def test_detects_an_owner_without_pool_entry(self) -> None:
        alloc = populated()
        alloc._pools[IPFamily.IPv4].release("10.96.0.10")
        with pytest.raises(AssertionError):
            alloc._check_invariants()

    def test_detects_an_unowned_pool_entry(self) -> None:
        alloc = populated()
        alloc._pools[IPFamily.IPv4].allocate("10.96.0.99")
        with pytest.raises(AssertionError):
            alloc._check_invariants()

    def test_detects_a_stray_owner(self) -> None:
        alloc = populated()
        alloc._table._owners[(IPFamily.IPv4, int(ip("10.96.0.10")))] = "someone"
        with pytest.raises(AssertionError):
            alloc._check_invariants()


# ------------------------------------------------------------ concurrency


def test_threads_never_share_an_address(make: Backends) -> None:
    config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/22,fd00:10:96::/112")
    alloc = make.services(config)
    results: dict[int, list[tuple[str, netaddr.IPAddress]]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(n: int) -> None:
        try:
            start.wait()
            got = []
            for i in range(200):
                key = f"t{n}-{i}"
                got.append((key, alloc.allocate(key, family=("IPv4", "IPv6")[i % 2])))
                if i % 10 == 9:  # churn: give one back and take it again
                    alloc.release(key)
                    got[-1] = (key, alloc.allocate(key))
            results[n] = got
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    pairs = [pair for n in range(4) for pair in results[n]]
    addresses = [address for _, address in pairs]
    assert len(pairs) == 800
    assert len(set(addresses)) == 800
    assert len(alloc) == 800
    assert all(alloc.get(key) == (address,) for key, address in pairs)
    assert alloc.used("IPv4") + alloc.used("IPv6") == 800
    alloc._check_invariants()


# ------------------------------------------------------------ properties

KEYS = [f"k{i}" for i in range(8)]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["allocate", "release", "service"]),
            st.sampled_from(KEYS),
            st.sampled_from([None, "IPv4", "IPv6"]),
        ),
        max_size=40,
    )
)
def test_counts_equal_keys_holding_each_family(
    make: Backends, ops: list[tuple[str, str, str | None]]
) -> None:
    alloc = make.services(SMALL, rng=random.Random(0))
    for op, key, family in ops:
        try:
            if op == "allocate":
                alloc.allocate(key, family=family)
            elif op == "release":
                alloc.release(key)
            else:
                spec = (
                    {"ipFamilyPolicy": "PreferDualStack"}
                    if family is None
                    else {"ipFamilies": [family]}
                )
                alloc.allocate_service({"metadata": {"name": key}, "spec": spec})
        except IPAMError:
            pass
        for fam in ("IPv4", "IPv6"):
            holders = sum(
                1 for _, held in alloc.items() if any(a.version == int(fam[-1]) for a in held)
            )
            assert alloc.used(fam) == holders
            assert alloc.free(fam) == alloc.capacity(fam) - holders
        alloc._check_invariants()


# ------------------------------------------------------------ stateful model

V4_USABLE = {str(ip("10.96.0.0") + k) for k in range(1, 31)}  # /27 without network, broadcast
V6_USABLE = {str(ip("fd00:10:96::") + k) for k in range(1, 32)}  # /123 without network
CANDIDATES = sorted(
    [str(ip("10.96.0.0") + k) for k in range(0, 33, 3)]
    + [str(ip("fd00:10:96::") + k) for k in range(0, 33, 3)]
)
MODEL_KEYS = ["a", "b", "c", "default/s", "default/t"]


def family_of(text: str) -> str:
    return "IPv6" if ":" in text else "IPv4"


class ServiceAllocatorMachine(RuleBasedStateMachine):
    """ServiceIPAllocator against a dict key -> tuple of address text."""

    def __init__(self) -> None:
        super().__init__()
        self.alloc = ServiceIPAllocator(SMALL, rng=random.Random(1))
        self.model: dict[str, tuple[str, ...]] = {}
        self.manifests: dict[str, dict[str, Any]] = {}
        self.serial = 0

    def holder(self, text: str) -> str | None:
        return next((k for k, held in self.model.items() if text in held), None)

    def used(self, family: str) -> int:
        return sum(1 for held in self.model.values() for a in held if family_of(a) == family)

    def capacity(self, family: str) -> int:
        return len(V4_USABLE if family == "IPv4" else V6_USABLE)

    @rule(key=st.sampled_from(MODEL_KEYS), family=st.sampled_from([None, "IPv4", "IPv6"]))
    def allocate_dynamic(self, key: str, family: str | None) -> None:
        fam = family or "IPv4"
        held = self.model.get(key)
        if held is not None:
            if len(held) == 1 and family_of(held[0]) == fam:
                assert str(self.alloc.allocate(key, family)) == held[0]
            else:
                unchanged(self.alloc, AlreadyAllocatedError, self.alloc.allocate, key, family)
        elif self.used(fam) == self.capacity(fam):
            unchanged(self.alloc, PoolExhaustedError, self.alloc.allocate, key, family)
        else:
            got = str(self.alloc.allocate(key, family))
            assert family_of(got) == fam
            assert got in (V4_USABLE | V6_USABLE)
            assert self.holder(got) is None
            self.model[key] = (got,)

    @rule(key=st.sampled_from(MODEL_KEYS), text=st.sampled_from(CANDIDATES))
    def allocate_specific(self, key: str, text: str) -> None:
        held, owner = self.model.get(key), self.holder(text)
        if held is not None:
            if held == (text,):
                assert str(self.alloc.allocate(key, ip=text)) == text
            else:
                unchanged(self.alloc, AlreadyAllocatedError, self.alloc.allocate, key, ip=text)
        elif text not in (V4_USABLE | V6_USABLE):
            unchanged(self.alloc, NotInRangeError, self.alloc.allocate, key, ip=text)
        elif owner is not None:
            error = unchanged(self.alloc, AlreadyAllocatedError, self.alloc.allocate, key, ip=text)
            assert isinstance(error, AlreadyAllocatedError)
            assert error.owner == owner
        else:
            assert str(self.alloc.allocate(key, ip=text)) == text
            self.model[key] = (text,)

    @rule(
        name=st.sampled_from(["s", "t"]),
        policy=st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]),
        primary=st.sampled_from(["IPv4", "IPv6"]),
    )
    def allocate_service(self, name: str, policy: str, primary: str) -> None:
        key = f"default/{name}"
        manifest = {
            "metadata": {"name": name},
            "spec": {"ipFamilyPolicy": policy, "ipFamilies": [primary]},
        }
        other = {"IPv4": "IPv6", "IPv6": "IPv4"}[primary]
        families = [primary] if policy == "SingleStack" else [primary, other]
        held = self.model.get(key)
        if held is not None:
            if [family_of(a) for a in held] == families:
                result = self.alloc.allocate_service(manifest)
                assert tuple(result["spec"]["clusterIPs"]) == held
            else:
                unchanged(self.alloc, AlreadyAllocatedError, self.alloc.allocate_service, manifest)
        elif any(self.used(f) == self.capacity(f) for f in families):
            unchanged(self.alloc, PoolExhaustedError, self.alloc.allocate_service, manifest)
        else:
            result = self.alloc.allocate_service(manifest)
            got = tuple(result["spec"]["clusterIPs"])
            assert [family_of(a) for a in got] == families
            assert all(self.holder(a) is None for a in got)
            self.model[key] = got
            self.manifests[key] = result

    @precondition(lambda self: any(len(self.model.get(k, ())) == 2 for k in self.manifests))
    @rule(data=st.data())
    def downgrade(self, data: st.DataObject) -> None:
        keys = sorted(k for k in self.manifests if len(self.model.get(k, ())) == 2)
        key = data.draw(st.sampled_from(keys))
        result = self.alloc.update_service(
            self.manifests[key], {"spec": {"ipFamilyPolicy": "SingleStack"}}
        )
        self.model[key] = self.model[key][:1]
        assert tuple(result["spec"]["clusterIPs"]) == self.model[key]
        self.manifests[key] = result

    @rule(family=st.sampled_from(["IPv4", "IPv6"]))
    def fill(self, family: str) -> None:
        """Take every free address of ``family`` under throw-away keys, then one too many."""
        while self.used(family) < self.capacity(family):
            self.serial += 1
            key = f"fill-{self.serial}"
            got = str(self.alloc.allocate(key, family))
            assert self.holder(got) is None
            self.model[key] = (got,)
        unchanged(self.alloc, PoolExhaustedError, self.alloc.allocate, "one-more", family)

    @precondition(lambda self: any(k.startswith("fill-") for k in self.model))
    @rule(data=st.data())
    def drain(self, data: st.DataObject) -> None:
        keys = sorted(k for k in self.model if k.startswith("fill-"))
        for key in data.draw(st.lists(st.sampled_from(keys), min_size=1, unique=True)):
            assert self.alloc.release(key) is True
            del self.model[key]

    @rule(key=st.sampled_from(MODEL_KEYS))
    def release(self, key: str) -> None:
        assert self.alloc.release(key) is (self.model.pop(key, None) is not None)
        self.manifests.pop(key, None)

    @rule()
    def snapshot_round_trip(self) -> None:
        data = self.alloc.snapshot()
        assert ServiceIPAllocator.restore(data).snapshot() == data

    @invariant()
    def agrees_with_model(self) -> None:
        self.alloc._check_invariants()
        assert len(self.alloc) == len(self.model)
        for key, held in self.model.items():
            assert tuple(str(a) for a in self.alloc.get(key) or ()) == held
        for family in ("IPv4", "IPv6"):
            assert self.alloc.used(family) == self.used(family)


ServiceAllocatorMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None
)
TestServiceAllocatorMachine = ServiceAllocatorMachine.TestCase


def test_snapshots_taken_while_a_thread_allocates_restore_consistently() -> None:
    alloc = ServiceIPAllocator(SEED, rng=random.Random(4))
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            alloc.allocate(f"k{i % 900}", family=("IPv4", "IPv6")[i % 2])
            if i % 3 == 0:
                alloc.release(f"k{(i * 7) % 900}")
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(40):
            data = alloc.snapshot()
            restored = ServiceIPAllocator.restore(json.loads(json.dumps(data)))
            restored._check_invariants()
            assert restored.snapshot() == data
    finally:
        stop.set()
        worker.join()
