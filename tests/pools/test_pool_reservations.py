"""Reserved space on both pools (api-durable.md, "Controller operations").

``reserve`` / ``unreserve`` / ``reservations`` / ``reserved``: what a range
is, what it covers on each pool, the errors, the merge and split rules, how
reservations meet allocation, and their place in the snapshot format.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import (
    AddressFormatError,
    AlreadyAllocatedError,
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)
from dualstack_ipam.pools import ServiceIPPool, SubnetPool


def texts(pool: SubnetPool | ServiceIPPool) -> list[tuple[str, str]]:
    return [(str(space), reason) for space, reason in pool.reservations()]


# ------------------------------------------------------------ what a range is


@pytest.mark.parametrize(
    "value",
    [
        "10.96.0.8/29",
        "10.96.0.8-10.96.0.15",
        netaddr.IPRange("10.96.0.8", "10.96.0.15"),
        netaddr.IPNetwork("10.96.0.8/29"),
        ipaddress.ip_network("10.96.0.8/29"),
    ],
)
def test_every_form_of_a_range_reserves_the_same_slots(value: Any) -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    assert pool.reserve(value) == 8
    assert texts(pool) == [("10.96.0.8/29", "")]


def test_a_bare_address_reserves_one_slot() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    assert pool.reserve("10.96.0.10", "dns") == 1
    assert pool.reservations() == [(netaddr.IPNetwork("10.96.0.10/32"), "dns")]


def test_service_pool_reserves_only_usable_addresses() -> None:
    pool = ServiceIPPool("10.96.0.0/29")
    # The network and broadcast addresses are not slots.
    assert pool.reserve("10.96.0.0/29") == 6
    assert texts(pool) == [("10.96.0.1-10.96.0.6", "")]
    assert pool.free == 0


def test_subnet_pool_reserves_every_subnet_a_range_overlaps() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    assert pool.reserve("10.0.3.200-10.0.5.1") == 3
    assert texts(pool) == [("10.0.3.0-10.0.5.255", "")]
    assert pool.reserve("10.0.8.7") == 1
    assert texts(pool)[-1] == ("10.0.8.0/24", "")


def test_a_range_reaching_beyond_the_pool_is_cut_to_it() -> None:
    pool = ServiceIPPool("10.96.0.0/28")
    assert pool.reserve("10.0.0.0/8") == pool.capacity
    subnets = SubnetPool("10.0.0.0/30", 31)
    assert subnets.reserve("9.255.255.255-10.0.0.1") == 1


def test_sparse_pool_reserves_huge_ranges_cheaply() -> None:
    pool = SubnetPool("fc00::/24", 64)
    assert pool.reserve("fc00::/25", "lower half") == 2**39
    assert pool.allocate_next() == netaddr.IPNetwork("fc00:80::/64")
    assert pool.reserved == 2**39
    assert pool.free == 2**40 - 2**39 - 1
    assert pool.unreserve("fc00::/24") == 2**39
    pool._check_invariants()


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize("value", ["10.0.1.0/24", "fd00::/64", "10.96.0.255", "10.96.0.0"])
def test_a_range_covering_no_slot_is_not_in_range(value: str) -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    with pytest.raises(NotInRangeError) as caught:
        pool.reserve(value)
    assert repr(value) in str(caught.value)
    with pytest.raises(NotInRangeError):
        pool.unreserve(value)


@pytest.mark.parametrize(
    "value", ["10.96.0.x-10.96.0.5", "garbage", "10.96.0.1-", "-10.96.0.1", 42, None]
)
def test_a_range_that_does_not_parse_is_an_address_format_error(value: Any) -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    with pytest.raises(AddressFormatError):
        pool.reserve(value)


@pytest.mark.parametrize("value", ["10.96.0.9-10.96.0.1", "10.96.0.1-fd00::1"])
def test_reversed_or_mixed_ranges_are_invalid_config(value: str) -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    with pytest.raises(InvalidConfigError) as caught:
        pool.reserve(value)
    assert repr(value) in str(caught.value)


def test_reason_must_be_text() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    with pytest.raises(InvalidConfigError, match="reason"):
        pool.reserve("10.96.0.1", 3)  # type: ignore[arg-type]
    assert pool.reserved == 0


@pytest.mark.parametrize(
    "factory", [lambda: ServiceIPPool("10.96.0.0/24"), lambda: SubnetPool("10.96.0.0/16", 24)]
)
def test_reserving_over_allocated_space_changes_nothing(factory: Any) -> None:
    pool = factory()
    taken = pool.allocate_next()
    before = pool.snapshot()
    with pytest.raises(AlreadyAllocatedError) as caught:
        pool.reserve("10.96.0.0/16", "everything")
    message = str(caught.value)
    assert "'10.96.0.0/16'" in message
    assert str(taken) in message
    assert pool.snapshot() == before
    assert pool.reserved == 0


# --------------------------------------------------- merge, split, reasons


def test_reserving_over_a_reservation_extends_it() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    assert pool.reserve("10.96.0.10-10.96.0.20", "lb") == 11
    assert pool.reserve("10.96.0.15-10.96.0.30", "lb") == 10
    assert texts(pool) == [("10.96.0.10-10.96.0.30", "lb")]
    assert pool.reserve("10.96.0.31-10.96.0.31", "lb") == 1
    assert texts(pool) == [("10.96.0.10-10.96.0.31", "lb")]


def test_an_empty_reason_keeps_the_old_one_and_a_new_reason_replaces_it() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    pool.reserve("10.96.0.10-10.96.0.19", "lb")
    assert pool.reserve("10.96.0.15-10.96.0.24") == 5
    assert texts(pool) == [("10.96.0.10-10.96.0.19", "lb"), ("10.96.0.20-10.96.0.24", "")]
    assert pool.reserve("10.96.0.12/31", "dns") == 0
    assert texts(pool) == [
        ("10.96.0.10/31", "lb"),
        ("10.96.0.12/31", "dns"),
        ("10.96.0.14-10.96.0.19", "lb"),
        ("10.96.0.20-10.96.0.24", ""),
    ]
    assert pool.reserved == 15


def test_unreserve_splits_a_reservation_and_counts_only_reserved_slots() -> None:
    pool = ServiceIPPool("10.96.0.0/24", strategy="sequential")
    pool.reserve("10.96.0.16/28", "block")
    assert pool.unreserve("10.96.0.20-10.96.0.23") == 4
    assert texts(pool) == [("10.96.0.16/30", "block"), ("10.96.0.24/29", "block")]
    assert pool.unreserve("10.96.0.20-10.96.0.23") == 0
    assert pool.reserved == 12


def test_unreserve_leaves_allocations_alone() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    pool.occupy("10.0.0.0/24")
    pool.reserve("10.0.1.0/24")
    assert pool.unreserve("10.0.0.0/23") == 1
    assert pool.is_allocated("10.0.0.0/24")
    assert pool.used == 1
    assert pool.reservations() == []


def test_unreserved_space_is_handed_out_at_once() -> None:
    pool = ServiceIPPool("10.96.0.0/29", strategy="sequential")
    pool.reserve("10.96.0.0/29")
    pool.unreserve("10.96.0.3")
    assert pool.allocate_next() == netaddr.IPAddress("10.96.0.3")


# --------------------------------------------- reservations and allocation


def test_counts_add_up_and_used_counts_allocations_only() -> None:
    pool = SubnetPool("10.0.0.0/24", 28)
    pool.allocate_next()
    pool.reserve("10.0.0.128/25")
    assert (pool.capacity, pool.used, pool.reserved, pool.free) == (16, 1, 8, 7)
    assert [str(n) for n in pool] == ["10.0.0.0/28"]
    assert list(pool.runs()) == [(0, 1)]


@pytest.mark.parametrize("strategy", ["random", "sequential"])
def test_allocate_next_never_hands_out_reserved_space(strategy: str) -> None:
    pool = ServiceIPPool("10.96.0.0/24", strategy=strategy)
    pool.reserve("10.96.0.1-10.96.0.200", "held back")
    handed = {int(pool.allocate_next()) & 0xFF for _ in range(54)}
    assert handed == set(range(201, 255))
    with pytest.raises(PoolExhaustedError, match="200 reserved"):
        pool.allocate_next()


@pytest.mark.parametrize("strategy", ["next-fit", "lowest"])
def test_subnet_allocate_next_skips_reserved_subnets(strategy: str) -> None:
    pool = SubnetPool("10.0.0.0/24", 26, strategy=strategy)
    pool.reserve("10.0.0.0/26")
    pool.reserve("10.0.0.128/26")
    got = [str(pool.allocate_next()) for _ in range(2)]
    assert got == ["10.0.0.64/26", "10.0.0.192/26"]
    with pytest.raises(PoolExhaustedError, match="2 reserved"):
        pool.allocate_next()


def test_allocate_of_a_reserved_address_says_it_is_reserved_and_why() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    pool.reserve("10.96.0.10-10.96.0.19", "appliances")
    with pytest.raises(AlreadyAllocatedError) as caught:
        pool.allocate("10.96.0.12")
    message = str(caught.value)
    assert "'10.96.0.12' is reserved (appliances)" in message
    assert "10.96.0.10-10.96.0.19" in message
    assert caught.value.value == netaddr.IPAddress("10.96.0.12")
    assert pool.used == 0


def test_occupy_over_a_reservation_is_refused_whole() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    pool.reserve("10.0.5.0/24", "lab")
    before = pool.snapshot()
    with pytest.raises(AlreadyAllocatedError, match=r"is reserved \(lab\)"):
        pool.occupy("10.0.4.0/22")
    assert pool.snapshot() == before
    assert pool.occupy("10.0.4.0/24") == 1


def test_release_and_is_allocated_do_not_see_reserved_slots_as_allocated() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    subnets = SubnetPool("10.0.0.0/16", 24)
    pool.reserve("10.96.0.5")
    subnets.reserve("10.0.1.0/24")
    assert pool.is_allocated("10.96.0.5") is False
    assert pool.release("10.96.0.5") is False
    assert subnets.is_allocated("10.0.1.0/24") is False
    assert subnets.release("10.0.0.0/16") == 0
    assert pool.reserved == subnets.reserved == 1


def test_reserving_static_band_space_keeps_the_band_switch_right() -> None:
    pool = ServiceIPPool("10.96.0.0/24", strategy="sequential")
    assert pool.offset == 16
    pool.reserve("10.96.0.17-10.96.0.254")  # the whole dynamic band
    assert pool.allocate_next() == netaddr.IPAddress("10.96.0.1")
    pool.unreserve("10.96.0.100")
    assert pool.allocate_next() == netaddr.IPAddress("10.96.0.100")
    pool._check_invariants()


# ---------------------------------------------------------------- snapshots


def test_reservations_survive_a_json_round_trip() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    pool.allocate_next()
    pool.reserve("10.0.8.0/22", "racks")
    pool.reserve("10.0.20.5-10.0.22.1", "")
    data = json.loads(json.dumps(pool.snapshot()))
    assert data["reserved"] == [["10.0.8.0/22", "racks"], ["10.0.20.0-10.0.22.255", ""]]
    assert data["used"] == 1
    again = SubnetPool.restore(data)
    again._check_invariants()
    assert again.reservations() == pool.reservations()
    assert again.snapshot() == pool.snapshot()
    assert (again.used, again.reserved, again.free) == (1, 7, 248)


def test_service_pool_reservations_round_trip() -> None:
    pool = ServiceIPPool("fd00::/120", strategy="sequential")
    pool.allocate("fd00::2")
    pool.reserve("fd00::3-fd00::1f", "")
    pool.unreserve("fd00::3-fd00::4")
    pool.reserve(netaddr.IPRange("fd00::40", "fd00::7f"), "lb")
    again = ServiceIPPool.restore(json.loads(json.dumps(pool.snapshot())))
    again._check_invariants()
    assert again.reservations() == pool.reservations()
    assert list(again) == [netaddr.IPAddress("fd00::2")]
    assert again.allocate_next() == netaddr.IPAddress("fd00::20")


def test_no_reservations_no_key_and_old_snapshots_restore() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    pool.allocate("10.96.0.1")
    data = pool.snapshot()
    assert "reserved" not in data
    pool.reserve("10.96.0.2")
    pool.unreserve("10.96.0.2")
    assert pool.snapshot() == data
    assert ServiceIPPool.restore(data).reserved == 0


@pytest.mark.parametrize(
    ("reserved", "why"),
    [
        ("10.0.1.0/24", "must be a list"),
        ([["10.0.1.0/24"]], "must be \\[range, reason\\]"),
        ([["10.0.1.0/24", 5]], "must be \\[range, reason\\]"),
        ([["10.0.1.0/25", ""]], "canonical"),
        ([["10.0.1.0-10.0.1.255", ""]], "canonical"),
        ([["10.1.0.0/24", ""]], "canonical"),
        ([["nonsense", ""]], "canonical"),
        ([["10.0.0.0/24", ""]], "overlaps an allocation"),
        ([["10.0.2.0/24", ""], ["10.0.1.0/24", ""]], "overlaps or precedes"),
        ([["10.0.2.0/23", ""], ["10.0.3.0/24", ""]], "overlaps or precedes"),
    ],
)
def test_corrupt_reservations_are_refused(reserved: Any, why: str) -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    pool.allocate_next()
    data = pool.snapshot()
    data["reserved"] = reserved
    with pytest.raises(SnapshotError, match=why):
        SubnetPool.restore(data)


def test_snapshot_while_reserved_and_cooling_writes_allocations_only() -> None:
    now = [0.0]
    pool = ServiceIPPool("10.96.0.0/28", strategy="sequential", cooldown=9, clock=lambda: now[0])
    first, second = pool.allocate_next(), pool.allocate_next()
    pool.release(first)
    pool.reserve("10.96.0.10-10.96.0.12", "x")
    data = pool.snapshot()
    assert data["used"] == 1
    again = ServiceIPPool.restore(data)
    assert list(again) == [second]
    assert again.cooling == 0
    # The live pool is unchanged by the snapshot.
    assert (pool.used, pool.cooling, pool.reserved) == (1, 1, 3)
    pool._check_invariants()


# ------------------------------------------------ property: huge sparse pools

BLOCKS = st.tuples(st.integers(0, 2**16 - 1), st.integers(8, 24))


@given(st.lists(st.tuples(st.booleans(), BLOCKS), min_size=1, max_size=12))
def test_reservations_of_a_huge_pool_match_an_ipset(
    steps: list[tuple[bool, tuple[int, int]]],
) -> None:
    """``fc00::/24`` carved at /64 (2**40 subnets), against ``netaddr.IPSet``."""
    pool = SubnetPool("fc00::/24", 64, strategy="lowest")
    model = netaddr.IPSet()
    base = int(netaddr.IPAddress("fc00::"))
    for reserve, (high, prefix) in steps:
        length = 24 + prefix
        value = (base + (high << (128 - 40))) >> (128 - length) << (128 - length)
        cidr = netaddr.IPNetwork((value, length), 6)
        before = model.size >> 64
        if reserve:
            model.add(cidr)
            assert pool.reserve(cidr, "r") == (model.size >> 64) - before
        else:
            model.remove(cidr)
            assert pool.unreserve(str(cidr)) == before - (model.size >> 64)
        assert pool.reserved == model.size >> 64
    got = netaddr.IPSet(space for space, _ in pool.reservations())
    assert got == model
    taken = pool.allocate_next()
    assert taken not in model
    spaces = [space for space, _ in pool.reservations()]
    # One reason throughout: runs never touch, else they would be one.
    assert all(left.last + 1 < right.first for left, right in itertools.pairwise(spaces))
    pool._check_invariants()
