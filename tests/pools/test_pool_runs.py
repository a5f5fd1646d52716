"""``runs()`` on every pool: the allocated slots as maximal ascending runs."""

from __future__ import annotations

import random
from itertools import pairwise

import netaddr
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool


def expand(runs: list[tuple[int, int]]) -> list[int]:
    return [slot for first, stop in runs for slot in range(first, stop)]


def check_runs(runs: list[tuple[int, int]]) -> None:
    """Non-empty, ascending, never touching: maximal runs."""
    for first, stop in runs:
        assert first < stop
    for (_, stop), (first, _) in pairwise(runs):
        assert stop < first


def test_empty_pool_has_no_runs() -> None:
    assert list(SubnetPool("10.0.0.0/16", 24).runs()) == []
    assert list(ServiceIPPool("fd00::/64").runs()) == []


def test_service_slots_are_offsets_from_the_first_usable_address() -> None:
    pool = ServiceIPPool("192.168.0.0/24")
    for ip in ("192.168.0.1", "192.168.0.2", "192.168.0.9", "192.168.0.254"):
        pool.allocate(ip)
    assert list(pool.runs()) == [(0, 2), (8, 9), (253, 254)]


def test_runs_of_a_huge_pool_follow_the_runs_not_the_slots() -> None:
    pool = SubnetPool("::/0", 64)
    pool.occupy("::/1")
    pool.occupy("ffff::/16")
    pool.allocate_next()  # the first free subnet: right after the occupied half
    assert list(pool.runs()) == [(0, 2**63 + 1), (2**64 - 2**48, 2**64)]


def test_runs_longer_than_one_batch_are_all_given() -> None:
    pool = ServiceIPPool("10.0.0.0/16", strategy="sequential")
    for slot in range(0, 4000, 3):
        pool.allocate(f"10.0.{(slot + 1) >> 8}.{(slot + 1) & 255}")
    runs = list(pool.runs())
    assert runs == [(slot, slot + 1) for slot in range(0, 4000, 3)]


@given(
    st.sampled_from(["10.0.0.0/20", "fc00::/100"]),
    st.lists(st.tuples(st.integers(0, 4095), st.integers(1, 300)), max_size=40),
    st.integers(0, 2**32),
)
def test_runs_equal_the_allocated_set(cidr: str, spans: list[tuple[int, int]], seed: int) -> None:
    pool = SubnetPool(cidr, pool_prefix(cidr))
    rng = random.Random(seed)
    for first, length in spans:
        stop = min(first + length, pool.capacity)
        for index in range(first, stop):
            if rng.random() < 0.8:
                pool.occupy(pool.subnet_at(index))
            else:
                pool.release(pool.subnet_at(index))
    runs = list(pool.runs())
    check_runs(runs)
    assert expand(runs) == [pool.index_of(subnet) for subnet in pool]


def pool_prefix(cidr: str) -> int:
    """Subnets one address wide: 4,096 slots in either family."""
    return 32 if ":" not in cidr else 112


def test_a_pool_full_to_its_short_last_chunk_iterates_to_the_end() -> None:
    """A sparse range of 2**64 - 1 addresses has a short last chunk; once it was
    full, iteration re-read an empty run at the end for ever."""
    pool = ServiceIPPool("fd00::/64", strategy="sequential")
    top = int(pool.cidr.last)
    for offset in range(1023):
        pool.allocate(netaddr.IPAddress(top - offset))
    assert list(pool.runs()) == [(pool.capacity - 1023, pool.capacity)]
    assert len(list(pool)) == 1023
