"""One rule for integers in every snapshot, the allocated set included: a JSON
number below 2**53, a decimal string from 2**53 up, nothing else; and
whatever ``snapshot()`` writes, ``restore()`` reads back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam import SnapshotError
from dualstack_ipam.pools import ServiceIPPool, SubnetPool
from dualstack_ipam.snapshot import write_int
from dualstack_ipam.testing import strategies as ds

Pool = SubnetPool | ServiceIPPool
JSON_SAFE = 2**53


def dense_subnets() -> SubnetPool:
    pool = SubnetPool("10.0.0.0/8", 24)
    pool.occupy("10.0.0.0/12")
    pool.occupy("10.32.5.0/24")
    return pool


def sparse_subnets() -> SubnetPool:
    pool = SubnetPool("fc00::/24", 64)
    pool.occupy("fc00:0:0:2000::/52")
    pool.occupy("fc00::7/64")
    return pool


def dense_ips() -> ServiceIPPool:
    pool = ServiceIPPool("10.96.0.0/16", strategy="sequential")
    for _ in range(9000):  # slots [256, 9256): chunk 1 is full
        pool.allocate_next()
    pool.allocate("10.96.200.1")
    return pool


def sparse_ips() -> ServiceIPPool:
    pool = ServiceIPPool("fd00::/64", strategy="sequential")
    for _ in range(3000):
        pool.allocate_next()
    pool.allocate("fd00::ffff:1")
    return pool


POOLS = [dense_subnets, sparse_subnets, dense_ips, sparse_ips]


def ints_as_text(value: Any) -> Any:
    if isinstance(value, list):
        return [ints_as_text(item) for item in value]
    return str(value) if type(value) is int else value


def numbers(data: Any) -> Iterator[Any]:
    """Every value of a snapshot that stands for an integer."""
    yield data["used"]
    if "cursor" in data:
        yield data["cursor"]
    allocated = data["allocated"]
    yield from allocated["partial"]
    for run in allocated["full"]:
        yield from run


@pytest.mark.parametrize("make", POOLS)
@pytest.mark.parametrize("key", ["full", "partial"])
def test_a_small_index_as_a_string_is_refused_at_restore(make: Any, key: str) -> None:
    """ "5" in the allocated set is refused as it is in ``used`` or ``cursor``."""
    pool = make()
    data = json.loads(json.dumps(pool.snapshot()))
    assert data["allocated"][key], "the sample has something to garble"
    allocated = {**data["allocated"], key: ints_as_text(data["allocated"][key])}
    with pytest.raises(SnapshotError, match="must be an integer"):
        type(pool).restore({**data, "allocated": allocated})
    with pytest.raises(SnapshotError, match="must be an integer"):
        type(pool).restore({**data, "used": str(data["used"])})
    assert type(pool).restore(data).snapshot() == data


def test_indices_from_2_53_up_are_strings_and_restore() -> None:
    pool = SubnetPool("::/0", 64)
    pool.occupy("0:0:20::/48")  # chunks below 2**53: numbers
    pool.occupy("8000::/64")  # 2**63: a partial chunk of index 2**53
    pool.occupy("ffff::/16")  # a run up to the end: 2**54
    data = json.loads(json.dumps(pool.snapshot()))
    allocated = data["allocated"]
    assert allocated["partial"] == [str(2**53)]
    assert allocated["full"][-1] == [str(2**54 - 2**38), str(2**54)]
    assert all(type(end) is int for end in allocated["full"][0])
    assert SubnetPool.restore(data).snapshot() == data


@given(
    st.one_of(
        ds.subnet_pools(),
        ds.service_ip_pools(),
        ds.subnet_pools(cidr="::/0", prefixlen=64),
        ds.service_ip_pools(cidr="::/1"),
    )
)
def test_whatever_snapshot_writes_restores(pool: Pool) -> None:
    data = json.loads(json.dumps(pool.snapshot()))
    for value in numbers(data):
        assert value == write_int(int(value)), f"{value!r} is not written by the rule"
    restored = type(pool).restore(data)
    assert restored.snapshot() == data
    assert (restored.used, restored.capacity, restored.strategy) == (
        pool.used,
        pool.capacity,
        pool.strategy,
    )
    assert list(restored.runs()) == list(pool.runs())
    restored._check_invariants()
