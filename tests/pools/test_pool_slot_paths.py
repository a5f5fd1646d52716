"""The pools' slot-level primitives against their public methods by address.

The owner table (``KeyedAllocator._set_key_state``, the durable cache's
primitive) marks slots through ``_span_allocated``,
``SubnetPool._occupy_span`` / ``_release_span`` and
``ServiceIPPool._allocate_slot`` / ``_release_slot`` instead of building a
netaddr object and parsing it back. Two pools built alike are driven by the
same random steps, one by address and one by slot: every result, every
error (class, message, ``.value``) and the whole state (snapshot, marks,
cooling queue, low marks, cursor, counts) must stay equal.
"""

from __future__ import annotations

import random
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pool_internals import pool_state

from dualstack_ipam import AlreadyAllocatedError, IPAMError
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

Pool = SubnetPool | ServiceIPPool


class Clock:
    """A fake clock the steps advance by hand (shared by both pools)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# (cidr, prefixlen or None for a Service range, the slots the steps use):
# dense pools small enough to fill, sparse ones (above 2**24 slots) around a
# chunk edge.
SHAPES: list[tuple[str, int | None, list[int]]] = [
    ("10.0.0.0/27", 30, list(range(8))),
    ("fc00::/24", 64, [*range(6), 4094, 4095, 4096, 4097]),
    ("10.96.0.0/27", None, list(range(30))),
    ("fd00::/64", None, [*range(4), 14, 15, 16, 17, 4095, 4096]),
]


def build(shape: int, strategy: int, cooldown: float, clock: Clock, seed: int) -> Pool:
    cidr, prefixlen, _ = SHAPES[shape]
    if prefixlen is not None:
        return SubnetPool(
            cidr,
            prefixlen,
            strategy=("next-fit", "lowest")[strategy],
            cooldown=cooldown,
            clock=clock,
        )
    return ServiceIPPool(
        cidr,
        strategy=("sequential", "random")[strategy],
        rng=random.Random(seed),
        cooldown=cooldown,
        clock=clock,
    )


def value_of(pool: Pool, slot: int) -> netaddr.IPNetwork | netaddr.IPAddress:
    """What a caller by address passes for ``slot``."""
    if isinstance(pool, SubnetPool):
        return pool.subnet_at(slot)
    return netaddr.IPAddress(pool._base + slot, pool.family.version)


def by_address(pool: Pool, op: str, slot: int) -> Any:
    value = value_of(pool, slot)
    if op == "take":
        return pool.occupy(value) if isinstance(pool, SubnetPool) else pool.allocate(value) and None
    if op == "free":
        return pool.release(value)
    return pool.is_allocated(value)


def by_slot(pool: Pool, op: str, slot: int) -> Any:
    if op == "check":
        return pool._span_allocated(slot, slot + 1)
    if isinstance(pool, SubnetPool):
        if op == "take":
            return pool._occupy_span(slot, slot + 1)
        return pool._release_span(slot, slot + 1)
    if op == "take":
        return pool._allocate_slot(slot)
    return pool._release_slot(slot)


def outcome(call: Any, *args: Any) -> Any:
    try:
        return ("ok", call(*args))
    except IPAMError as exc:
        return (type(exc), str(exc), getattr(exc, "value", None))


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["take", "take", "free", "free", "check", "next", "tick", "reserve"]),
        st.integers(0, 3),
    ),
    max_size=40,
)
# A few slots per example, so that the steps meet again on the same ones.
HOT = st.lists(st.integers(0, 2**16), min_size=1, max_size=4)


@given(
    shape=st.integers(0, len(SHAPES) - 1),
    strategy=st.integers(0, 1),
    cooldown=st.sampled_from([0, 5]),
    seed=st.integers(0, 3),
    hot=HOT,
    steps=STEPS,
)
def test_the_slot_path_matches_the_address_path(
    shape: int,
    strategy: int,
    cooldown: float,
    seed: int,
    hot: list[int],
    steps: list[tuple[str, int]],
) -> None:
    clock = Clock()
    address_pool = build(shape, strategy, cooldown, clock, seed)
    slot_pool = build(shape, strategy, cooldown, clock, seed)
    slots = SHAPES[shape][2]
    for op, pick in steps:
        slot = slots[hot[pick % len(hot)] % len(slots)]
        if op == "tick":
            clock.now += 3
            continue
        if op == "next":
            results = [outcome(pool.allocate_next) for pool in (address_pool, slot_pool)]
        elif op == "reserve":
            value = str(value_of(address_pool, slot))
            results = [outcome(pool.reserve, value, "r") for pool in (address_pool, slot_pool)]
        else:
            results = [
                outcome(by_address, address_pool, op, slot),
                outcome(by_slot, slot_pool, op, slot),
            ]
        assert results[0] == results[1], (op, slot)
        assert pool_state(address_pool) == pool_state(slot_pool), (op, slot)
    address_pool._check_invariants()
    slot_pool._check_invariants()
    assert address_pool.stats() == slot_pool.stats()


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_a_reserved_slot_is_refused_with_the_message_of_the_address_path(shape: int) -> None:
    pools = [build(shape, 0, 0, Clock(), 0) for _ in range(2)]
    slot = SHAPES[shape][2][1]
    for pool in pools:
        pool.reserve(str(value_of(pool, slot)), "gateway")
    with pytest.raises(AlreadyAllocatedError) as by_value:
        by_address(pools[0], "take", slot)
    with pytest.raises(AlreadyAllocatedError) as by_index:
        by_slot(pools[1], "take", slot)
    assert "reserved (gateway)" in str(by_index.value)
    assert str(by_index.value) == str(by_value.value)
    assert by_index.value.value == by_value.value.value == value_of(pools[0], slot)
    assert pools[1].stats()["totals"]["errors"]["taken"] == 1
    assert pool_state(pools[0]) == pool_state(pools[1])


def test_a_taken_service_slot_is_refused_and_counted() -> None:
    pool = ServiceIPPool("10.96.0.0/28")
    pool._allocate_slot(3)
    with pytest.raises(AlreadyAllocatedError, match=r"IPAddress\('10.96.0.4'\) is already"):
        pool._allocate_slot(3)
    assert pool.stats()["totals"]["errors"]["taken"] == 1
    assert pool.used == 1


def test_one_slot_release_with_a_cooldown_cools_only_that_slot() -> None:
    # The one-slot release takes no walk along its run of marks: its
    # neighbours (allocated, reserved) are left alone.
    clock = Clock()
    pool = SubnetPool("10.0.0.0/27", 30, cooldown=5, clock=clock)
    pool.occupy("10.0.0.0/28")
    pool.reserve("10.0.0.16/30")
    assert pool._release_span(1, 2) == 1
    assert pool._release_span(1, 2) == 0
    assert pool._release_span(4, 5) == 0
    assert list(pool._cooling) == [(1, 2, 5.0)]
    assert pool.used == 3
    pool._check_invariants()
