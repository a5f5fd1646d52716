"""api.md "Errors": the tree, the attributes, the messages, and bad input.

Every public method of both pools is fed every kind of garbage the issue
lists. Each call must raise the documented class, quote the bad value, and
leave the pool exactly as it was: same snapshot, same allocated set and
counts, and the same next ``allocate_next`` result as an untouched twin (so
neither the cursor nor the random generator moved).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import Any

import netaddr
import pytest

from dualstack_ipam import (
    AddressFormatError,
    AlreadyAllocatedError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    IPAMError,
    IPFamily,
    NotInRangeError,
    PoolExhaustedError,
    ServiceValidationError,
    SnapshotError,
)
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

Pool = SubnetPool | ServiceIPPool

GARBAGE: list[Any] = [
    None,
    2.5,
    float("nan"),
    0,
    167772161,
    True,
    b"10.42.1.0/24",
    bytearray(b"fd00::1"),
    "",
    "not an address",
    "10.42.1",
    "10.42.1.0/33",
    "010.42.1.0",
    " 10.42.1.0",
    "fe80::1%eth0",
    "fd00::/129",
    ["10.42.1.0/24"],
    {"cidr": "10.42.1.0/24"},
    object(),
]


def pool_state(pool: Pool) -> tuple[Any, ...]:
    """Everything observable about a small pool."""
    return (pool.snapshot(), list(pool), pool.used, pool.free, pool.capacity, str(pool.cidr))


def subnet_pool() -> SubnetPool:
    """A /16 carved into /24s with a few allocated, cursor at 3."""
    pool = SubnetPool("10.42.0.0/16", 24)
    for _ in range(3):
        pool.allocate_next()
    pool.occupy("10.42.9.0/24")
    pool.release("10.42.1.0/24")
    return pool


def service_pool() -> ServiceIPPool:
    """A random-strategy /24 with a seeded generator and a few addresses taken."""
    pool = ServiceIPPool("10.96.0.0/24", rng=random.Random(7))
    for _ in range(5):
        pool.allocate_next()
    pool.allocate("10.96.0.3")
    return pool


def service_pool_v6() -> ServiceIPPool:
    pool = ServiceIPPool("fd00:10:96::/112", rng=random.Random(11))
    for _ in range(5):
        pool.allocate_next()
    pool.allocate("fd00:10:96::3")
    return pool


def assert_refused(
    make: Callable[[], Pool],
    call: Callable[[Any], Any],
    error: type[BaseException],
    quoted: str | None,
) -> BaseException:
    """``call(pool)`` raises ``error`` quoting ``quoted`` and changes nothing."""
    pool, twin = make(), make()
    before = pool_state(pool)
    with pytest.raises(error) as info:
        call(pool)
    if quoted is not None:
        assert quoted in str(info.value), (quoted, str(info.value))
    assert pool_state(pool) == before
    pool._check_invariants()
    assert pool.allocate_next() == twin.allocate_next(), "cursor or rng moved"
    assert pool_state(pool) == pool_state(twin)
    return info.value


# --------------------------------------------------------------- the tree


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (InvalidConfigError, (IPAMError, ValueError)),
        (AddressFormatError, (InvalidConfigError, IPAMError, ValueError)),
        (NotInRangeError, (IPAMError, ValueError)),
        (AlreadyAllocatedError, (IPAMError, ValueError)),
        (PoolExhaustedError, (IPAMError,)),
        (FamilyNotConfiguredError, (IPAMError, ValueError)),
        (SnapshotError, (IPAMError, ValueError)),
        (ServiceValidationError, (IPAMError, ValueError)),
    ],
)
def test_error_tree(cls: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    assert issubclass(IPAMError, Exception)
    for base in bases:
        assert issubclass(cls, base)


def test_pool_exhausted_is_not_a_value_error() -> None:
    assert not issubclass(PoolExhaustedError, ValueError)
    assert not issubclass(NotInRangeError, InvalidConfigError)
    assert not issubclass(AlreadyAllocatedError, NotInRangeError)


def test_error_attributes_are_kept() -> None:
    net = netaddr.IPNetwork("10.0.0.0/8")
    assert NotInRangeError("m", value="x", pool_cidr=net).pool_cidr is net
    assert AlreadyAllocatedError("m", value="x", owner="node-1").owner == "node-1"
    assert AlreadyAllocatedError("m", value="x").owner is None
    assert PoolExhaustedError("m", pool_cidr=net).pool_cidr is net
    assert FamilyNotConfiguredError("m", family=IPFamily.IPv6).family is IPFamily.IPv6
    err = ServiceValidationError("m", field="spec.clusterIPs[1]", value="1.2.3.4")
    assert (err.field, err.value, str(err)) == ("spec.clusterIPs[1]", "1.2.3.4", "m")
    assert InvalidConfigError("m", value=3).value == 3
    assert str(SnapshotError("broken")) == "broken"


# ------------------------------------------------- attributes from the pools


class TestAttributesFromPools:
    def test_not_in_range_from_service_pool(self) -> None:
        pool = ServiceIPPool("10.96.0.0/28")
        with pytest.raises(NotInRangeError) as info:
            pool.allocate("10.97.0.1")
        err = info.value
        assert type(err.value) is netaddr.IPAddress
        assert err.value == netaddr.IPAddress("10.97.0.1")
        assert err.pool_cidr == netaddr.IPNetwork("10.96.0.0/28")
        assert repr("10.97.0.1") in str(err)
        assert "10.96.0.0/28" in str(err)

    def test_not_in_range_value_is_canonical_network(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        with pytest.raises(NotInRangeError) as info:
            pool.occupy("10.43.7.9/24")
        assert type(info.value.value) is netaddr.IPNetwork
        assert str(info.value.value) == "10.43.7.0/24"
        assert info.value.pool_cidr == netaddr.IPNetwork("10.42.0.0/16")
        assert "10.43.7" in str(info.value)
        assert "10.42.0.0/16" in str(info.value)

    def test_not_in_range_for_the_other_family(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        with pytest.raises(NotInRangeError) as info:
            pool.occupy(ipaddress.IPv6Network("fc00::/64"))
        assert info.value.value == netaddr.IPNetwork("fc00::/64")
        assert info.value.pool_cidr == pool.cidr
        assert "fc00::/64" in str(info.value)

    def test_already_allocated(self) -> None:
        pool = ServiceIPPool("fd00::/120")
        pool.allocate("fd00::9")
        with pytest.raises(AlreadyAllocatedError) as info:
            pool.allocate(netaddr.IPAddress("fd00::9"))
        assert info.value.value == netaddr.IPAddress("fd00::9")
        assert type(info.value.value) is netaddr.IPAddress
        assert info.value.owner is None
        assert repr("fd00::9") in str(info.value)

    @pytest.mark.parametrize(
        "make",
        [
            lambda: SubnetPool("10.42.0.0/30", 32),
            lambda: ServiceIPPool("10.96.0.0/30"),
            lambda: ServiceIPPool("fd00::/126"),
        ],
    )
    def test_pool_exhausted(self, make: Callable[[], Pool]) -> None:
        pool = make()
        for _ in range(pool.capacity):
            pool.allocate_next()
        with pytest.raises(PoolExhaustedError) as info:
            pool.allocate_next()
        assert info.value.pool_cidr == pool.cidr
        assert str(pool.cidr) in str(info.value)

    def test_address_format_error_keeps_the_raw_input(self) -> None:
        pool = ServiceIPPool("10.96.0.0/24")
        raw = b"10.96.0.1"
        with pytest.raises(AddressFormatError) as info:
            pool.allocate(raw)
        assert info.value.value is raw
        assert repr(raw) in str(info.value)

    def test_invalid_strategy_names_it(self) -> None:
        with pytest.raises(InvalidConfigError) as info:
            ServiceIPPool("10.96.0.0/24", strategy="round-robin")
        assert info.value.value == "round-robin"
        assert repr("round-robin") in str(info.value)


# ------------------------------------------------------------ constructors


@pytest.mark.parametrize("bad", GARBAGE, ids=repr)
def test_subnet_pool_garbage_cidr(bad: Any) -> None:
    with pytest.raises(AddressFormatError) as info:
        SubnetPool(bad, 24)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", GARBAGE, ids=repr)
def test_service_pool_garbage_cidr(bad: Any) -> None:
    with pytest.raises(AddressFormatError) as info:
        ServiceIPPool(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("cidr", "prefixlen"),
    [
        ("10.42.0.0/16", 15),
        ("10.42.0.0/16", 0),
        ("10.42.0.0/16", 33),
        ("10.42.0.0/16", 128),
        ("10.42.0.0/16", -1),
        ("fc00::/24", 23),
        ("fc00::/24", 129),
        ("fc00::/24", -64),
        ("0.0.0.0/0", 33),
        ("::/0", 129),
    ],
)
def test_subnet_pool_prefixlen_out_of_range(cidr: str, prefixlen: int) -> None:
    with pytest.raises(InvalidConfigError) as info:
        SubnetPool(cidr, prefixlen)
    assert repr(prefixlen) in str(info.value)


@pytest.mark.parametrize("bad", [None, 24.0, "24", b"24", True, [24]], ids=repr)
def test_subnet_pool_prefixlen_wrong_type(bad: Any) -> None:
    """Choice: a prefix length that is not a plain int is a configuration error.

    ``True`` is refused although it is an ``int`` subclass: no flag parser
    yields a bool for a mask size, so it is always a caller's mistake.
    """
    with pytest.raises(InvalidConfigError) as info:
        SubnetPool("10.42.0.0/16", bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", ["random", "sequential", "", "NEXT-FIT", None, 1])
def test_subnet_pool_unknown_strategy(bad: Any) -> None:
    with pytest.raises(InvalidConfigError) as info:
        SubnetPool("10.42.0.0/16", 24, strategy=bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", ["next-fit", "lowest", "", "Random", None, 0])
def test_service_pool_unknown_strategy(bad: Any) -> None:
    with pytest.raises(InvalidConfigError) as info:
        ServiceIPPool("10.96.0.0/24", strategy=bad)
    assert repr(bad) in str(info.value)


# ---------------------------------------------------- SubnetPool methods

SUBNET_CIDR_METHODS = ["occupy", "release", "is_allocated", "index_of"]


@pytest.mark.parametrize("method", SUBNET_CIDR_METHODS)
@pytest.mark.parametrize("bad", GARBAGE, ids=repr)
def test_subnet_pool_garbage_argument(method: str, bad: Any) -> None:
    assert_refused(subnet_pool, lambda p: getattr(p, method)(bad), AddressFormatError, repr(bad))


@pytest.mark.parametrize("method", ["occupy", "release", "index_of"])
@pytest.mark.parametrize(
    "outside",
    [
        "10.43.0.0/16",
        "10.43.1.0/24",
        "10.41.255.255",
        "11.0.0.0/8",
        "fc00::/24",
        "::/0",
        "::ffff:10.42.1.0/120",
        "::a2a:100",
    ],
)
def test_subnet_pool_outside_or_other_family(method: str, outside: str) -> None:
    err = assert_refused(subnet_pool, lambda p: getattr(p, method)(outside), NotInRangeError, None)
    assert isinstance(err, NotInRangeError)
    assert err.pool_cidr == netaddr.IPNetwork("10.42.0.0/16")
    assert "10.42.0.0/16" in str(err)


@pytest.mark.parametrize(
    "outside", ["10.43.0.0/16", "11.0.0.0/8", "fc00::/24", "::/0", "::a2a:100"]
)
def test_subnet_pool_is_allocated_outside_is_false(outside: str) -> None:
    pool = subnet_pool()
    pool.occupy("10.42.0.0/16")
    before = pool_state(pool)
    assert pool.is_allocated(outside) is False
    assert pool_state(pool) == before


@pytest.mark.parametrize(
    "bad", [-1, -(2**70), 256, 2**64, True, False, None, 1.0, "1", b"\x01", [1]], ids=repr
)
def test_subnet_pool_subnet_at_bad_index(bad: Any) -> None:
    """Choice: anything but an int in range is an ``IndexError``, bools included.

    ``IndexError`` is the one error api.md documents for ``subnet_at``; a bool
    is refused because ``subnet_at(True)`` is never what a caller meant.
    """
    assert_refused(subnet_pool, lambda p: p.subnet_at(bad), IndexError, repr(bad))


def test_subnet_pool_exhausted_changes_nothing() -> None:
    pool = SubnetPool("10.42.0.0/24", 28)
    for _ in range(16):
        pool.allocate_next()
    pool.release("10.42.0.32/28")
    pool.occupy("10.42.0.32/28")
    before = pool_state(pool)
    with pytest.raises(PoolExhaustedError):
        pool.allocate_next()
    assert pool_state(pool) == before
    pool.release("10.42.0.64/28")
    assert str(pool.allocate_next()) == "10.42.0.64/28"


# ------------------------------------------------- ServiceIPPool methods

SERVICE_METHODS = ["allocate", "release", "is_allocated"]


@pytest.mark.parametrize("method", SERVICE_METHODS)
@pytest.mark.parametrize("bad", [*GARBAGE, "10.96.0.5/32", "10.96.0.0/24"], ids=repr)
def test_service_pool_garbage_argument(method: str, bad: Any) -> None:
    assert_refused(service_pool, lambda p: getattr(p, method)(bad), AddressFormatError, repr(bad))


@pytest.mark.parametrize("method", ["allocate", "release"])
@pytest.mark.parametrize(
    "outside",
    ["10.96.0.0", "10.96.0.255", "10.96.1.1", "10.95.255.255", "0.0.0.0", "fd00::1", "::a60:1"],
)
def test_service_pool_not_usable_v4(method: str, outside: str) -> None:
    err = assert_refused(
        service_pool, lambda p: getattr(p, method)(outside), NotInRangeError, repr(outside)
    )
    assert isinstance(err, NotInRangeError)
    assert err.value == netaddr.IPAddress(outside)
    assert err.pool_cidr == netaddr.IPNetwork("10.96.0.0/24")


@pytest.mark.parametrize("method", ["allocate", "release"])
@pytest.mark.parametrize(
    "outside", ["fd00:10:96::", "fd00:10:97::1", "fd00:10:95:ffff:ffff:ffff:ffff:ffff", "10.96.0.1"]
)
def test_service_pool_not_usable_v6(method: str, outside: str) -> None:
    assert_refused(
        service_pool_v6, lambda p: getattr(p, method)(outside), NotInRangeError, repr(outside)
    )


@pytest.mark.parametrize("outside", ["10.96.0.0", "10.96.0.255", "10.97.0.1", "fd00::1"])
def test_service_pool_is_allocated_outside_is_false(outside: str) -> None:
    pool = service_pool()
    before = pool_state(pool)
    assert pool.is_allocated(outside) is False
    assert pool_state(pool) == before


@pytest.mark.parametrize("make", [service_pool, service_pool_v6])
def test_service_pool_taken_is_already_allocated(make: Callable[[], ServiceIPPool]) -> None:
    taken = str(next(iter(make())))
    err = assert_refused(make, lambda p: p.allocate(taken), AlreadyAllocatedError, repr(taken))
    assert isinstance(err, AlreadyAllocatedError)
    assert err.value == netaddr.IPAddress(taken)


@pytest.mark.parametrize("strategy", ["random", "sequential"])
def test_service_pool_exhausted_changes_nothing(strategy: str) -> None:
    pool = ServiceIPPool("10.96.0.0/28", strategy=strategy, rng=random.Random(3))
    got = {pool.allocate_next() for _ in range(14)}
    assert len(got) == 14
    before = pool_state(pool)
    for _ in range(3):
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()
    assert pool_state(pool) == before
    assert pool.release("10.96.0.9") is True
    assert str(pool.allocate_next()) == "10.96.0.9"


@pytest.mark.parametrize("cidr", ["10.96.0.0/31", "10.96.0.1/32", "fd00::/128"])
def test_empty_service_pools_are_exhausted(cidr: str) -> None:
    pool = ServiceIPPool(cidr)
    assert pool.capacity == 0
    before = pool_state(pool)
    with pytest.raises(PoolExhaustedError) as info:
        pool.allocate_next()
    assert info.value.pool_cidr == pool.cidr
    assert pool_state(pool) == before
