"""``_set_key_state`` on slots against the same calls by address.

The durable cache applies every change another process makes through
``KeyedAllocator._set_key_state``; its checks and marks now work on slots
(``_pool_slot`` and the pools' slot-level primitives). The reference here
is the glue as it was: build the CIDR or address of the slot and call the
pools' public ``is_allocated`` / ``occupy`` / ``allocate`` / ``release``.
Both allocators, built alike (a grown family, the Service set-aside,
reservations, a cooldown under a fake clock), take the same random steps:
results, errors (class, message, ``.value``, ``.owner``) and the whole
state (snapshot, holders, every part's marks, cooling queue, low marks and
counters) must stay equal.
"""

from __future__ import annotations

import random
from typing import Any

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pool_internals import pool_state

from dualstack_ipam import (
    ClusterConfig,
    IPAMError,
    NodeCIDRAllocator,
    NotInRangeError,
    ServiceIPAllocator,
)
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import Address
from dualstack_ipam.pools.multi import parts_of

V4, V6 = IPFamily.IPv4, IPFamily.IPv6
KEYS = ["a", "b", "c"]


class Clock:
    """A fake clock the steps advance by hand (shared by both allocators)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class NodesByAddress(NodeCIDRAllocator):
    """The node allocator's owner-table glue by address (the reference)."""

    def _allocated(self, address: Address) -> bool:
        return self._pool(address[0]).is_allocated(self._build(address))

    def _take_slot(self, address: Address) -> None:
        self._pools[address[0]].occupy(self._build(address))

    def _free_slot(self, address: Address) -> None:
        self._pools[address[0]].release(self._build(address))


class ServicesByAddress(ServiceIPAllocator):
    """The Service allocator's owner-table glue by address (the reference)."""

    def _allocated(self, address: Address) -> bool:
        return self._pool(address[0]).is_allocated(self._build(address))

    def _take_slot(self, address: Address) -> None:
        self._pools[address[0]].allocate(self._build(address))

    def _free_slot(self, address: Address) -> None:
        self._pools[address[0]].release(self._build(address))


NODES = ClusterConfig(
    "10.0.0.0/26,fc00::/61", "10.0.0.0/29,fd00::/112", node_mask_ipv4=29, node_mask_ipv6=64
)
SERVICES = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/28,fd00::/124")


def _ints(*texts: str) -> list[int]:
    return [int(netaddr.IPAddress(text)) for text in texts]


# The slots a step may name: every node subnet (index 0 of IPv4 is the
# Service set-aside, 8 and 9 the added range); every address of the Service
# ranges, the unusable network and broadcast ones included, and one outside.
CANDIDATES: dict[str, dict[IPFamily, list[int]]] = {
    "nodes": {V4: list(range(10)), V6: list(range(8))},
    "services": {
        V4: [
            *range(_ints("10.96.0.0")[0], _ints("10.96.0.0")[0] + 16),
            *range(_ints("10.97.0.0")[0], _ints("10.97.0.0")[0] + 8),
            *_ints("10.98.0.1"),
        ],
        V6: [*range(_ints("fd00::")[0], _ints("fd00::")[0] + 16), *_ints("fd00::100")],
    },
}


def build(kind: str, reference: bool, cooldown: float, clock: Clock) -> Any:
    alloc: Any
    if kind == "nodes":
        cls: Any = NodesByAddress if reference else NodeCIDRAllocator
        alloc = cls(NODES, strategy="lowest", cooldown=cooldown, clock=clock)
        alloc.add_range("10.1.0.0/28")
    else:
        cls = ServicesByAddress if reference else ServiceIPAllocator
        alloc = cls(
            SERVICES, strategy="random", rng=random.Random(7), cooldown=cooldown, clock=clock
        )
        alloc.add_range("10.97.0.0/29")
    return alloc


def outcome(call: Any, *args: Any) -> Any:
    try:
        return ("ok", call(*args))
    except IPAMError as exc:
        return (type(exc), str(exc), getattr(exc, "value", None), getattr(exc, "owner", None))


def state(alloc: Any) -> tuple[Any, ...]:
    parts = [pool_state(part) for pool in alloc._pools.values() for part in parts_of(pool)]
    return alloc.snapshot(), alloc.items(), parts, dict(alloc._errors)


def reservation(alloc: Any, kind: str, family: IPFamily, pick: int) -> str:
    slot = CANDIDATES[kind][family][pick % len(CANDIDATES[kind][family])]
    if kind == "nodes":
        return str(alloc._pools[family].subnet_at(slot))
    return str(netaddr.IPAddress(slot, family.version))


ADDRESS = st.tuples(st.sampled_from([V4, V6]), st.integers(0, 3))
STEP: st.SearchStrategy[tuple[str, str, list[tuple[IPFamily, int]]]] = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.lists(ADDRESS, max_size=2)),
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.just([])),
    st.tuples(st.sampled_from(["allocate", "release"]), st.sampled_from(KEYS), st.just([])),
    st.tuples(st.just("tick"), st.just(""), st.just([])),
    st.tuples(st.just("reserve"), st.just(""), st.lists(ADDRESS, min_size=1, max_size=1)),
)
# A few slots per family and example, so that the steps meet on the same ones.
HOT = st.lists(st.integers(0, 2**10), min_size=1, max_size=3)


@pytest.mark.parametrize("kind", ["nodes", "services"])
@given(
    cooldown=st.sampled_from([0, 5]),
    hot4=HOT,
    hot6=HOT,
    steps=st.lists(STEP, max_size=30),
)
def test_set_key_state_on_slots_matches_the_address_path(
    kind: str,
    cooldown: float,
    hot4: list[int],
    hot6: list[int],
    steps: list[tuple[str, str, list[tuple[IPFamily, int]]]],
) -> None:
    clock = Clock()
    allocs = [build(kind, reference, cooldown, clock) for reference in (True, False)]
    hot = {V4: hot4, V6: hot6}

    def pick(family: IPFamily, i: int) -> int:
        return hot[family][i % len(hot[family])]

    for op, key, addresses in steps:
        if op == "tick":
            clock.now += 3
            continue
        if op == "set":
            candidates = CANDIDATES[kind]
            new = tuple((f, candidates[f][pick(f, i) % len(candidates[f])]) for f, i in addresses)
            if kind == "nodes":  # a node's CIDRs come in the config's family order
                new = tuple(sorted(new, key=lambda address: address[0] is V6))
            results = [outcome(alloc._set_key_state, key, new) for alloc in allocs]
        elif op == "reserve":
            family, i = addresses[0]
            text = reservation(allocs[0], kind, family, pick(family, i))
            results = [outcome(alloc.reserve, text, "r") for alloc in allocs]
        else:
            results = [outcome(getattr(alloc, op), key) for alloc in allocs]
        assert results[0] == results[1], (op, key, addresses)
        assert state(allocs[0]) == state(allocs[1]), (op, key, addresses)
    for alloc in allocs:
        alloc._check_invariants()
    assert allocs[0].stats() == allocs[1].stats()


def test_a_reserved_slot_fails_the_key_state_as_by_address() -> None:
    results = []
    for reference in (True, False):
        alloc = build("nodes", reference, 5, Clock())
        alloc.reserve("10.0.0.16/29", "racks")
        alloc._set_key_state("a", ((V4, 1),))
        results.append(outcome(alloc._set_key_state, "a", ((V4, 2), (V6, 0))))
        assert alloc._key_state("a") == ((V4, 1),)
        assert alloc.stats()["IPv4"]["cooling"] == 0
        alloc._check_invariants()
    assert results[0] == results[1]
    assert "reserved (racks)" in results[1][1]


def test_an_unusable_service_address_fails_as_by_address() -> None:
    network = _ints("10.96.0.0")[0]
    results = [
        outcome(build("services", reference, 0, Clock())._set_key_state, "a", ((V4, network),))
        for reference in (True, False)
    ]
    assert results[0] == results[1]
    assert results[1][0] is NotInRangeError


def test_a_node_slot_outside_the_ranges_is_not_in_range() -> None:
    # By address it was an IndexError from ``subnet_at``; the documented
    # error is NotInRangeError, and the key keeps what it held.
    alloc = build("nodes", False, 0, Clock())
    alloc._set_key_state("a", ((V4, 3),))
    before = alloc.snapshot()
    for slot in (10, -1):
        with pytest.raises(NotInRangeError, match=f"subnet {slot} is outside"):
            alloc._set_key_state("a", ((V4, slot),))
    assert alloc.snapshot() == before
    alloc._check_invariants()
