"""``stats()`` on both pools (api-durable.md, "Metrics")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dualstack_ipam import (
    AddressFormatError,
    AlreadyAllocatedError,
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.pools import ServiceIPPool, SubnetPool


def totals(pool: SubnetPool | ServiceIPPool) -> tuple[int, int, dict[str, int]]:
    data = pool.stats()["totals"]
    return data["allocations"], data["releases"], data["errors"]


def test_the_shape_of_stats() -> None:
    pool = ServiceIPPool("fd00::/120")
    stats = pool.stats()
    assert stats == {
        "family": "IPv6",
        "capacity": 255,
        "used": 0,
        "free": 255,
        "reserved": 0,
        "cooling": 0,
        "totals": {
            "allocations": 0,
            "releases": 0,
            "errors": {"exhausted": 0, "taken": 0, "invalid": 0},
        },
    }
    assert json.loads(json.dumps(stats)) == stats
    assert SubnetPool("10.0.0.0/16", 24).stats()["family"] == "IPv4"


def test_counts_are_the_state_now() -> None:
    now = [0.0]
    pool = SubnetPool("10.0.0.0/24", 28, cooldown=5, clock=lambda: now[0])
    pool.occupy("10.0.0.0/26")
    pool.release("10.0.0.0/28")
    pool.reserve("10.0.0.128/25", "later")
    stats = pool.stats()
    assert {k: stats[k] for k in ("capacity", "used", "free", "reserved", "cooling")} == {
        "capacity": 16,
        "used": 3,
        "free": 5,
        "reserved": 8,
        "cooling": 1,
    }
    now[0] = 5
    assert pool.stats()["cooling"] == 0


def test_service_totals_count_allocations_releases_and_errors_by_class() -> None:
    pool = ServiceIPPool("10.96.0.0/30", strategy="sequential")
    pool.allocate_next()
    pool.allocate("10.96.0.2")
    pool.release("10.96.0.2")
    pool.release("10.96.0.2")  # already free: nothing released
    assert totals(pool) == (2, 1, {"exhausted": 0, "taken": 0, "invalid": 0})
    pool.allocate_next()
    for call, error in [
        (pool.allocate_next, PoolExhaustedError),
        (lambda: pool.allocate("10.96.0.1"), AlreadyAllocatedError),
        (lambda: pool.allocate("10.96.0.3"), NotInRangeError),
        (lambda: pool.allocate("nonsense"), AddressFormatError),
        (lambda: pool.release("10.0.0.1"), NotInRangeError),
        (lambda: pool.reserve("10.96.0.1"), AlreadyAllocatedError),
        (lambda: pool.reserve("10.96.0.9-10.96.0.1"), InvalidConfigError),
        (lambda: pool.unreserve("fd00::/64"), NotInRangeError),
    ]:
        with pytest.raises(error):
            call()
    assert totals(pool) == (3, 1, {"exhausted": 1, "taken": 2, "invalid": 5})


def test_subnet_totals_count_slots() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    pool.occupy("10.0.0.0/22")
    pool.occupy("10.0.0.0/22")  # nothing new
    pool.allocate_next()
    pool.release("10.0.0.0/23")
    pool.reserve("10.0.9.0/24", "x")
    with pytest.raises(AlreadyAllocatedError):
        pool.occupy("10.0.8.0/22")
    with pytest.raises(NotInRangeError):
        pool.occupy("10.1.0.0/24")
    assert totals(pool) == (5, 2, {"exhausted": 0, "taken": 1, "invalid": 1})


def test_exhaustion_of_a_subnet_pool_is_counted() -> None:
    pool = SubnetPool("10.0.0.0/24", 24)
    pool.allocate_next()
    for _ in range(3):
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()
    assert totals(pool)[2]["exhausted"] == 3


def test_queries_are_not_counted() -> None:
    pool = SubnetPool("10.0.0.0/16", 24)
    assert pool.is_allocated("10.1.0.0/24") is False
    with pytest.raises(AddressFormatError):
        pool.is_allocated("nonsense")
    with pytest.raises(NotInRangeError):
        pool.index_of("10.1.0.0")
    assert totals(pool) == (0, 0, {"exhausted": 0, "taken": 0, "invalid": 0})


def test_a_restored_pool_counts_from_zero() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    pool.allocate_next()
    again = ServiceIPPool.restore(pool.snapshot())
    assert totals(again)[0] == 0
    assert again.stats()["used"] == 1


def test_stats_returns_a_fresh_dict() -> None:
    pool = ServiceIPPool("10.96.0.0/24")
    stats: Any = pool.stats()
    stats["totals"]["errors"]["taken"] = 99
    assert pool.stats()["totals"]["errors"]["taken"] == 0
