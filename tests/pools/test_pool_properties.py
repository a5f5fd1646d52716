"""Hypothesis properties of both pools over random operation sequences.

- no address or subnet is handed out twice while it is held;
- ``used`` equals the number allocated and ``len(list(pool))``;
- a snapshot round trip (through JSON) equals the original;
- the pool built incrementally equals a fresh pool rebuilt from its
  allocated set, and one restored from its snapshot.

Universes are small enough for exhaustive models, and include one that
spans several bitmap chunks (more than 4,096 slots).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import netaddr
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import AlreadyAllocatedError, PoolExhaustedError
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

# (cidr, prefixlen, strategy)
SUBNET_UNIVERSES = [
    ("10.42.0.0/24", 28, "next-fit"),
    ("10.42.0.0/24", 28, "lowest"),
    ("fd00::/120", 124, "next-fit"),
    ("10.0.0.0/10", 24, "next-fit"),  # 16,384 subnets: four chunks
]
# (cidr, strategy)
SERVICE_UNIVERSES = [
    ("10.96.0.0/24", "random"),
    ("10.96.0.0/24", "sequential"),
    ("fd00::/120", "random"),
    ("fd00::/120", "sequential"),
    ("10.96.0.0/18", "random"),  # 16,382 addresses: four chunks
]


@dataclass(frozen=True)
class Op:
    """One step: ``kind`` in next / occupy / release / allocate; ``index``, ``span``."""

    kind: str
    index: int = 0
    span: int = 0


def subnet_ops() -> st.SearchStrategy[list[Op]]:
    step = st.one_of(
        st.builds(Op, st.just("next")),
        st.builds(
            Op,
            st.sampled_from(["occupy", "release"]),
            st.integers(0, 2**14 - 1),
            st.integers(-2, 14),
        ),
    )
    return st.lists(step, max_size=60)


def service_ops() -> st.SearchStrategy[list[Op]]:
    step = st.one_of(
        st.builds(Op, st.just("next")),
        st.builds(Op, st.sampled_from(["allocate", "release"]), st.integers(0, 2**14 - 1)),
    )
    return st.lists(step, max_size=80)


# ------------------------------------------------------------- SubnetPool


def span_cidr(pool: SubnetPool, index: int, span: int) -> tuple[str, range]:
    """A CIDR inside the pool and the subnet indices it covers.

    ``span`` is log2 of the subnets covered; a negative span is a network
    smaller than one subnet (it covers the subnet holding it).
    """
    bits = pool.capacity.bit_length() - 1
    index %= pool.capacity
    span = min(span, bits)
    if span < 0:
        plen = min(pool.prefixlen - span, 32 if pool.cidr.version == 4 else 128)
        first = int(pool.subnet_at(index).first)
        return str(netaddr.IPNetwork((first, plen), pool.cidr.version)), range(index, index + 1)
    start = index >> span << span
    first = int(pool.subnet_at(start).first)
    cidr = netaddr.IPNetwork((first, pool.prefixlen - span), pool.cidr.version)
    return str(cidr), range(start, start + (1 << span))


def run_subnet_ops(pool: SubnetPool, ops: list[Op]) -> set[int]:
    """Apply ``ops``, checking each result against a set model."""
    held: set[int] = set()
    for op in ops:
        if op.kind == "next":
            try:
                got = pool.index_of(pool.allocate_next())
            except PoolExhaustedError:
                assert len(held) == pool.capacity
                continue
            assert got not in held, f"subnet {got} handed out twice"
            held.add(got)
        else:
            cidr, covered = span_cidr(pool, op.index, op.span)
            if op.kind == "occupy":
                assert pool.occupy(cidr) == len(set(covered) - held)
                held.update(covered)
            else:
                assert pool.release(cidr) == len(set(covered) & held)
                held.difference_update(covered)
    return held


@given(st.sampled_from(SUBNET_UNIVERSES), subnet_ops())
def test_subnets_never_handed_out_twice_and_counts(
    universe: tuple[str, int, str], ops: list[Op]
) -> None:
    cidr, prefixlen, strategy = universe
    pool = SubnetPool(cidr, prefixlen, strategy=strategy)
    held = run_subnet_ops(pool, ops)
    listed = list(pool)
    assert pool.used == len(held) == len(listed)
    assert pool.free == pool.capacity - len(held)
    assert [pool.index_of(n) for n in listed] == sorted(held)
    pool._check_invariants()


@given(st.sampled_from(SUBNET_UNIVERSES), subnet_ops())
def test_subnets_snapshot_round_trip(universe: tuple[str, int, str], ops: list[Op]) -> None:
    cidr, prefixlen, strategy = universe
    pool = SubnetPool(cidr, prefixlen, strategy=strategy)
    run_subnet_ops(pool, ops)
    data = pool.snapshot()
    restored = SubnetPool.restore(json.loads(json.dumps(data)))
    assert restored.snapshot() == data
    assert list(restored) == list(pool)
    restored._check_invariants()
    # Same cursor and strategy: the same future.
    for _ in range(3):
        try:
            want = pool.allocate_next()
        except PoolExhaustedError:
            assert restored.free == 0
            break
        assert restored.allocate_next() == want


@given(st.sampled_from(SUBNET_UNIVERSES), subnet_ops())
def test_subnets_incremental_equals_rebuilt(universe: tuple[str, int, str], ops: list[Op]) -> None:
    cidr, prefixlen, strategy = universe
    pool = SubnetPool(cidr, prefixlen, strategy=strategy)
    run_subnet_ops(pool, ops)
    rebuilt = SubnetPool(cidr, prefixlen, strategy=strategy)
    for subnet in pool:
        assert rebuilt.occupy(subnet) == 1
    restored = SubnetPool.restore(pool.snapshot())
    for other in (rebuilt, restored):
        other._check_invariants()
        assert list(other) == list(pool)
        assert (other.used, other.free, other.capacity) == (pool.used, pool.free, pool.capacity)
        for index in range(0, pool.capacity, max(1, pool.capacity // 64)):
            subnet = pool.subnet_at(index)
            assert other.is_allocated(subnet) == pool.is_allocated(subnet)


# ---------------------------------------------------------- ServiceIPPool


def address(pool: ServiceIPPool, index: int) -> netaddr.IPAddress:
    """The usable address number ``index`` (0 is the network address + 1)."""
    return netaddr.IPAddress(pool.cidr.first + 1 + index, pool.cidr.version)


def run_service_ops(pool: ServiceIPPool, ops: list[Op]) -> set[netaddr.IPAddress]:
    held: set[netaddr.IPAddress] = set()
    for op in ops:
        if op.kind == "next":
            try:
                got = pool.allocate_next()
            except PoolExhaustedError:
                assert len(held) == pool.capacity
                continue
            assert got not in held, f"{got} handed out twice"
            held.add(got)
        elif op.kind == "allocate":
            ip = address(pool, op.index % pool.capacity)
            if ip in held:
                try:
                    pool.allocate(ip)
                except AlreadyAllocatedError:
                    continue
                raise AssertionError(f"{ip} allocated twice")
            assert pool.allocate(str(ip)) == ip
            held.add(ip)
        else:
            ip = address(pool, op.index % pool.capacity)
            assert pool.release(ip) is (ip in held)
            held.discard(ip)
    return held


@given(st.sampled_from(SERVICE_UNIVERSES), service_ops(), st.integers(0, 2**32))
def test_service_ips_never_handed_out_twice_and_counts(
    universe: tuple[str, str], ops: list[Op], seed: int
) -> None:
    cidr, strategy = universe
    pool = ServiceIPPool(cidr, strategy=strategy, rng=random.Random(seed))
    held = run_service_ops(pool, ops)
    listed = list(pool)
    assert pool.used == len(held) == len(listed)
    assert pool.free == pool.capacity - len(held)
    assert listed == sorted(held)
    pool._check_invariants()


@given(st.sampled_from(SERVICE_UNIVERSES), service_ops(), st.integers(0, 2**32))
def test_service_ips_snapshot_round_trip(
    universe: tuple[str, str], ops: list[Op], seed: int
) -> None:
    cidr, strategy = universe
    pool = ServiceIPPool(cidr, strategy=strategy, rng=random.Random(seed))
    run_service_ops(pool, ops)
    data = pool.snapshot()
    restored = ServiceIPPool.restore(json.loads(json.dumps(data)), rng=random.Random(seed))
    assert restored.snapshot() == data
    assert list(restored) == list(pool)
    assert restored.offset == pool.offset
    restored._check_invariants()
    if strategy == "sequential":
        for _ in range(3):
            try:
                want = pool.allocate_next()
            except PoolExhaustedError:
                assert restored.free == 0
                break
            assert restored.allocate_next() == want


@given(st.sampled_from(SERVICE_UNIVERSES), service_ops(), st.integers(0, 2**32))
def test_service_ips_incremental_equals_rebuilt(
    universe: tuple[str, str], ops: list[Op], seed: int
) -> None:
    cidr, strategy = universe
    pool = ServiceIPPool(cidr, strategy=strategy, rng=random.Random(seed))
    run_service_ops(pool, ops)
    rebuilt = ServiceIPPool(cidr, strategy=strategy)
    for ip in pool:
        rebuilt.allocate(ip)
    restored = ServiceIPPool.restore(pool.snapshot())
    for other in (rebuilt, restored):
        other._check_invariants()
        assert list(other) == list(pool)
        assert (other.used, other.free, other.capacity) == (pool.used, pool.free, pool.capacity)
