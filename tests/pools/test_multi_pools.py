"""MultiSubnetPool / MultiServiceIPPool: several ranges of one family as one pool
(what the allocators' ``add_range`` grows a family into)."""

from __future__ import annotations

import random

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import (
    AlreadyAllocatedError,
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
    ServiceIPPool,
    SubnetPool,
)
from dualstack_ipam.pools.multi import (
    MultiServiceIPPool,
    MultiSubnetPool,
    grow,
    parts_of,
    ranges_of,
    sibling,
)


def services(*cidrs: str, strategy: str = "sequential") -> MultiServiceIPPool:
    return MultiServiceIPPool([ServiceIPPool(cidr, strategy=strategy) for cidr in cidrs])


def subnets(*cidrs: str, prefixlen: int = 26) -> MultiSubnetPool:
    return MultiSubnetPool([SubnetPool(cidr, prefixlen) for cidr in cidrs])


# ---------------------------------------------------------------- building


def test_refuses_overlap_one_part_and_mixed_parts() -> None:
    with pytest.raises(InvalidConfigError, match=r"10\.0\.0\.0/24 and 10\.0\.0\.128/25 overlap"):
        subnets("10.0.0.0/24", "10.0.0.128/25")
    with pytest.raises(InvalidConfigError, match="two pools or more"):
        subnets("10.0.0.0/24")
    with pytest.raises(InvalidConfigError, match="kind, family and strategy"):
        MultiServiceIPPool(
            [ServiceIPPool("10.96.0.0/24"), ServiceIPPool("10.97.0.0/24", strategy="sequential")]
        )
    with pytest.raises(InvalidConfigError, match="kind, family and strategy"):
        MultiServiceIPPool([ServiceIPPool("10.96.0.0/24"), ServiceIPPool("fd00::/120")])


def test_grow_builds_a_new_composite_and_changes_nothing() -> None:
    first = SubnetPool("10.0.0.0/24", 26)
    grown = grow(first, sibling(first, "10.9.0.0/24"))
    again = grow(grown, sibling(grown, "10.5.0.0/25"))
    assert parts_of(first) == (first,)
    assert ranges_of(grown) == (netaddr.IPNetwork("10.0.0.0/24"), netaddr.IPNetwork("10.9.0.0/24"))
    assert len(parts_of(grown)) == 2  # growing again built a new object
    assert again.offsets == (0, 4, 8)
    assert again.capacity == 10
    with pytest.raises(InvalidConfigError):
        grow(again, sibling(again, "10.9.0.0/25"))
    assert len(again.parts) == 3


# ---------------------------------------------------------------- order and bands


def test_allocate_next_fills_the_parts_in_the_order_added() -> None:
    # The second range added lies below the first: order is added order, not address order.
    pool = subnets("10.9.0.0/25", "10.0.0.0/25")
    got = [str(pool.allocate_next()) for _ in range(4)]
    assert got == ["10.9.0.0/26", "10.9.0.64/26", "10.0.0.0/26", "10.0.0.64/26"]
    with pytest.raises(PoolExhaustedError, match=r"10\.9\.0\.0/25.*10\.0\.0\.0/25"):
        pool.allocate_next()
    assert pool.release("10.0.0.0/26") == 1
    assert str(pool.allocate_next()) == "10.0.0.0/26"


def test_each_service_range_keeps_its_own_static_band() -> None:
    # A /27 has a band of 16; a /28 has none.
    pool = services("10.96.0.0/28", "10.97.0.0/27")
    first = [pool.allocate_next() for _ in range(14)]
    assert [str(ip) for ip in first[:2]] == ["10.96.0.1", "10.96.0.2"]
    assert str(pool.allocate_next()) == "10.97.0.17"  # the second range's upper band first
    for _ in range(13):
        pool.allocate_next()
    assert str(pool.allocate_next()) == "10.97.0.1"  # then its static band
    assert pool.parts[1].offset == 16


def test_random_strategy_stays_in_the_first_range_until_it_is_full() -> None:
    pool = services("10.96.0.0/29", "10.97.0.0/29", strategy="random")
    got = {pool.allocate_next() for _ in range(6)}
    assert all(ip in netaddr.IPNetwork("10.96.0.0/29") for ip in got)
    assert pool.allocate_next() in netaddr.IPNetwork("10.97.0.0/29")


# ---------------------------------------------------------------- dispatch


def test_dispatch_by_address() -> None:
    pool = services("10.96.0.0/29", "10.97.0.0/29")
    assert pool.allocate("10.97.0.3") == netaddr.IPAddress("10.97.0.3")
    assert pool.is_allocated("10.97.0.3")
    assert not pool.is_allocated("10.98.0.3")
    with pytest.raises(AlreadyAllocatedError):
        pool.allocate("10.97.0.3")
    with pytest.raises(NotInRangeError, match=r"10\.96\.0\.0/29, 10\.97\.0\.0/29"):
        pool.allocate("10.98.0.1")
    with pytest.raises(NotInRangeError):
        pool.allocate("fd00::1")
    with pytest.raises(NotInRangeError):
        pool.allocate("10.97.0.7")  # the broadcast address of its range
    assert pool.release("10.97.0.3") is True
    assert pool.release("10.97.0.3") is False
    assert pool.used == 0


def test_subnet_numbering_runs_across_the_parts() -> None:
    pool = subnets("10.0.0.0/25", "10.9.0.0/24")
    assert [pool.index_of(f"10.9.0.{k * 64}") for k in range(4)] == [2, 3, 4, 5]
    assert pool.subnet_at(5) == netaddr.IPNetwork("10.9.0.192/26")
    assert pool.locate(1) == (pool.parts[0], 1)
    assert pool.locate(2) == (pool.parts[1], 0)
    assert pool.prefixlen == 26
    with pytest.raises(IndexError):
        pool.subnet_at(6)
    with pytest.raises(NotInRangeError):
        pool.locate(6)
    with pytest.raises(NotInRangeError):
        pool.index_of("10.1.0.0")
    assert pool.occupy("10.9.0.0/25") == 2
    assert pool.is_allocated("10.9.0.64/26")
    assert list(map(str, pool)) == ["10.9.0.0/26", "10.9.0.64/26"]
    with pytest.raises(InvalidConfigError, match="spans the ranges"):
        pool.occupy("10.0.0.0/12")
    with pytest.raises(NotInRangeError):
        pool.occupy("10.1.0.0/24")


def test_reserve_lies_in_one_range_or_errors() -> None:
    pool = services("10.96.0.0/29", "10.96.0.8/29")
    assert pool.reserve("10.96.0.9-10.96.0.10", "dns") == 2
    assert pool.reserve("10.96.0.1", "gw") == 1
    with pytest.raises(InvalidConfigError, match="spans the ranges"):
        pool.reserve("10.96.0.6-10.96.0.9")
    with pytest.raises(InvalidConfigError, match="spans the ranges"):
        pool.unreserve("10.96.0.0/28")
    with pytest.raises(NotInRangeError):
        pool.reserve("10.99.0.1")
    assert [why for _, why in pool.reservations()] == ["gw", "dns"]
    assert pool.reserved == 3
    assert pool.unreserve("10.96.0.8/29") == 2
    assert pool.free == pool.capacity - 1


def test_counts_and_stats_add_up() -> None:
    pool = services("10.96.0.0/29", "10.97.0.0/30")
    pool.allocate("10.97.0.1")
    pool.allocate_next()
    pool.reserve("10.96.0.6")
    stats = pool.stats()
    assert (stats["capacity"], stats["used"], stats["reserved"]) == (8, 2, 1)
    assert stats["free"] == pool.free == 5
    assert stats["totals"]["allocations"] == 2
    assert stats["family"] == "IPv4"
    assert pool.cooldown == 0
    assert pool.cooling == 0
    pool._check_invariants()


def test_cooldown_blocks_each_part_and_the_next_part_is_used() -> None:
    now = [0.0]
    first = ServiceIPPool("10.96.0.0/30", strategy="sequential", cooldown=10, clock=lambda: now[0])
    pool = grow(first, sibling(first, "10.97.0.0/30"))
    a, b = pool.allocate_next(), pool.allocate_next()
    pool.release(a)
    assert pool.cooling == 1
    assert pool.allocate_next() == netaddr.IPAddress("10.97.0.1")  # a is cooling
    pool.allocate_next()
    with pytest.raises(PoolExhaustedError, match="cooling"):
        pool.allocate_next()
    now[0] = 10.0
    assert pool.allocate_next() == a
    assert pool.is_allocated(b)


# ---------------------------------------------------------------- a property


@given(
    sizes=st.lists(st.integers(28, 30), min_size=2, max_size=4),
    gaps=st.lists(st.integers(0, 3), min_size=4, max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_allocate_next_hands_out_every_usable_address_once_range_by_range(
    sizes: list[int], gaps: list[int], order: random.Random
) -> None:
    """Whatever the ranges and their order, dynamic allocation hands out each
    usable address of every range exactly once, never one of a later range
    before an earlier range is full, then is exhausted; counts add up."""
    cidrs, base = [], int(netaddr.IPAddress("10.96.0.0"))
    for size, gap in zip(sizes, gaps, strict=False):
        cidrs.append(f"{netaddr.IPAddress(base)}/{size}")
        base += (1 << (32 - size)) * (1 + gap) + 64
    order.shuffle(cidrs)
    pool = services(*cidrs, strategy="random")
    expected = [set(ServiceIPPool(c).cidr.iter_hosts()) for c in cidrs]
    got = []
    while True:
        try:
            got.append(pool.allocate_next())
        except PoolExhaustedError:
            break
    assert len(got) == len(set(got)) == pool.capacity == sum(map(len, expected))
    position = 0
    for hosts in expected:
        assert set(got[position : position + len(hosts)]) == hosts
        position += len(hosts)
    assert pool.used == pool.capacity
    assert pool.free == 0
    pool._check_invariants()
