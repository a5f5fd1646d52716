"""Release cooldown on both pools (api-durable.md, "Controller operations").

Every test drives a fake clock: no test waits or measures time.
"""

from __future__ import annotations

import math
from typing import Any

import netaddr
import pytest

from dualstack_ipam import InvalidConfigError, PoolExhaustedError
from dualstack_ipam.pools import ServiceIPPool, SubnetPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def never_read() -> float:
    raise AssertionError("the clock was read with cooldown=0")


def services(cooldown: float, clock: Any, cidr: str = "10.96.0.0/29") -> ServiceIPPool:
    return ServiceIPPool(cidr, strategy="sequential", cooldown=cooldown, clock=clock)


# ----------------------------------------------------------- configuration


@pytest.mark.parametrize("cooldown", [-1, -0.5, "5", None, True, math.nan, math.inf, [1]])
def test_bad_cooldowns_are_invalid_config(cooldown: Any) -> None:
    with pytest.raises(InvalidConfigError, match="cooldown") as caught:
        ServiceIPPool("10.96.0.0/24", cooldown=cooldown)
    assert repr(cooldown) in str(caught.value)
    with pytest.raises(InvalidConfigError, match="cooldown"):
        SubnetPool("10.0.0.0/16", 24, cooldown=cooldown)
    with pytest.raises(InvalidConfigError, match="cooldown"):
        SubnetPool.restore(SubnetPool("10.0.0.0/16", 24).snapshot(), cooldown=cooldown)


@pytest.mark.parametrize("clock", [5, "time.monotonic", object()])
def test_a_clock_must_be_callable(clock: Any) -> None:
    with pytest.raises(InvalidConfigError, match="clock"):
        ServiceIPPool("10.96.0.0/24", cooldown=1, clock=clock)
    with pytest.raises(InvalidConfigError, match="clock"):
        SubnetPool("10.0.0.0/16", 24, clock=clock)


def test_the_default_is_no_cooldown_and_the_clock_is_never_read() -> None:
    pool = services(0, never_read)
    first = pool.allocate_next()
    assert pool.release(first) is True
    assert pool.allocate_next() == first
    assert pool.cooling == 0
    assert pool.cooldown == 0
    assert pool.stats()["cooling"] == 0
    subnets = SubnetPool("10.0.0.0/30", 31, strategy="lowest", clock=never_read)
    taken = subnets.allocate_next()
    subnets.release(taken)
    assert subnets.allocate_next() == taken


def test_int_and_float_cooldowns_are_accepted() -> None:
    assert ServiceIPPool("10.96.0.0/24", cooldown=3).cooldown == 3
    assert SubnetPool("10.0.0.0/16", 24, cooldown=0.25).cooldown == 0.25


# ---------------------------------------------------------------- cooling


def test_a_released_address_is_not_handed_out_before_the_cooldown() -> None:
    clock = Clock()
    pool = services(30, clock)
    first = pool.allocate_next()
    pool.release(first)
    assert (pool.used, pool.cooling, pool.free) == (0, 1, 6)
    assert pool.allocate_next() != first
    clock.now += 29.9
    assert pool.cooling == 1
    clock.now += 0.1
    assert pool.cooling == 0
    assert pool.allocate_next() == first


def test_a_cooling_subnet_is_skipped_by_both_strategies() -> None:
    for strategy in ("next-fit", "lowest"):
        clock = Clock()
        pool = SubnetPool("10.0.0.0/24", 26, strategy=strategy, cooldown=10, clock=clock)
        first = pool.allocate_next()
        assert pool.release(first) == 1
        got = [pool.allocate_next() for _ in range(3)]
        assert first not in got
        clock.now += 10
        assert pool.allocate_next() == first
        pool._check_invariants()


def test_allocate_of_a_cooling_address_works_and_ends_its_cooldown() -> None:
    clock = Clock()
    pool = services(60, clock)
    first = pool.allocate_next()
    pool.release(first)
    assert pool.allocate(first) == first
    assert (pool.used, pool.cooling) == (1, 0)
    assert pool.release(first) is True
    assert pool.cooling == 1
    pool._check_invariants()


def test_occupy_of_a_cooling_range_counts_the_cooling_subnets() -> None:
    clock = Clock()
    pool = SubnetPool("10.0.0.0/16", 24, cooldown=60, clock=clock)
    pool.occupy("10.0.0.0/22")
    assert pool.release("10.0.0.0/23") == 2
    assert pool.occupy("10.0.0.0/21") == 6
    assert (pool.used, pool.cooling) == (8, 0)
    pool._check_invariants()


def test_releasing_a_cooling_slot_again_is_a_no_op() -> None:
    clock = Clock()
    pool = services(60, clock)
    first = pool.allocate_next()
    assert pool.release(first) is True
    assert pool.release(first) is False
    subnets = SubnetPool("10.0.0.0/16", 24, cooldown=60, clock=clock)
    subnets.occupy("10.0.0.0/23")
    assert subnets.release("10.0.0.0/24") == 1
    assert subnets.release("10.0.0.0/23") == 1
    assert subnets.cooling == 2


def test_a_pool_whose_only_free_space_is_cooling_says_so() -> None:
    clock = Clock()
    pool = services(45, clock, "10.96.0.0/30")
    first, second = pool.allocate_next(), pool.allocate_next()
    pool.release(second)
    clock.now += 5
    pool.release(first)
    with pytest.raises(PoolExhaustedError) as caught:
        pool.allocate_next()
    message = str(caught.value)
    assert "2 cooling down after release" in message
    assert "the first comes free in 40 s" in message
    clock.now += 40
    assert pool.allocate_next() == second


def test_subnet_exhaustion_message_names_cooling_and_reserved() -> None:
    clock = Clock()
    pool = SubnetPool("10.0.0.0/30", 31, cooldown=8, clock=clock)
    pool.reserve("10.0.0.2/31", "gw")
    pool.release(pool.allocate_next())
    with pytest.raises(PoolExhaustedError, match=r"1 reserved, 1 cooling down .* in 8 s"):
        pool.allocate_next()


def test_reserving_cooling_space_ends_its_cooldown() -> None:
    clock = Clock()
    pool = services(60, clock)
    first = pool.allocate_next()
    pool.release(first)
    assert pool.reserve(str(first), "hold") == 1
    assert (pool.cooling, pool.reserved, pool.used) == (0, 1, 0)
    clock.now += 60
    # The old cooldown coming due does not free the reservation.
    assert pool.allocate_next() != first
    assert pool.reserved == 1
    pool._check_invariants()


def test_cooling_slots_are_not_allocated_or_iterated() -> None:
    clock = Clock()
    pool = SubnetPool("10.0.0.0/16", 24, cooldown=60, clock=clock)
    pool.occupy("10.0.0.0/22")
    pool.release("10.0.1.0/24")
    assert pool.is_allocated("10.0.1.0/24") is False
    assert pool.is_allocated("10.0.0.0/24") is True
    assert [str(n) for n in pool] == ["10.0.0.0/24", "10.0.2.0/24", "10.0.3.0/24"]


def test_expired_cooldowns_are_freed_lazily_and_reads_see_them() -> None:
    clock = Clock()
    pool = services(10, clock, "10.96.0.0/24")
    addresses = [pool.allocate_next() for _ in range(50)]
    for address in addresses:
        pool.release(address)
    assert pool.cooling == 50
    clock.now += 10
    assert pool.stats()["cooling"] == 0
    assert pool.free == pool.capacity
    pool._check_invariants()


def test_the_queue_keeps_no_stale_entries_once_due() -> None:
    clock = Clock()
    pool = services(10, clock, "10.96.0.0/24")
    address = pool.allocate_next()
    for _ in range(100):
        pool.release(address)
        pool.allocate(address)
    clock.now += 10
    pool.allocate_next()
    assert len(pool._queue) == 0


# ----------------------------------------------------- snapshots and clock


def test_a_restored_pool_has_nothing_cooling() -> None:
    clock = Clock()
    pool = services(60, clock)
    first = pool.allocate_next()
    pool.release(first)
    data = pool.snapshot()
    again = ServiceIPPool.restore(data, cooldown=60, clock=clock)
    assert again.cooling == 0
    assert again.cooldown == 60
    assert again.allocate_next() == first
    again.release(first)
    assert again.cooling == 1


def test_the_clock_is_read_only_when_something_cools() -> None:
    clock = Clock()
    pool = services(5, clock)
    for _ in range(4):
        pool.release(pool.allocate_next())
    reads = clock.reads
    clock.now += 5
    pool.allocate_next()
    assert clock.reads == reads + 1
    pool.allocate_next()
    assert clock.reads == reads + 1  # the queue is empty: no read


def test_the_default_clock_is_monotonic() -> None:
    import time

    pool = ServiceIPPool("10.96.0.0/24", cooldown=3600)
    assert pool._clock is time.monotonic
    first = pool.allocate("10.96.0.1")
    pool.release(first)
    assert pool.cooling == 1
    assert netaddr.IPAddress("10.96.0.1") not in {pool.allocate_next() for _ in range(20)}


def test_a_huge_release_cools_and_expires_in_one_step() -> None:
    clock = Clock()
    pool = SubnetPool("fc00::/24", 64, cooldown=5, clock=clock)
    pool.occupy("fc00::/24")
    assert pool.release("fc00::/24") == 2**40
    assert (pool.cooling, pool.free, pool.used) == (2**40, 2**40, 0)
    with pytest.raises(PoolExhaustedError, match="1099511627776 cooling"):
        pool.allocate_next()
    assert SubnetPool.restore(pool.snapshot()).free == 2**40
    clock.now += 5
    assert pool.allocate_next() == netaddr.IPNetwork("fc00::/64")
    assert pool.cooling == 0
    pool._check_invariants()
