"""Strategies: a ``StrEnum`` parsed at the pools' edge; plain strings still work."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from dualstack_ipam import InvalidConfigError, SnapshotError
from dualstack_ipam.pools import (
    SERVICE_STRATEGIES,
    SUBNET_STRATEGIES,
    ServiceIPPool,
    Strategy,
    SubnetPool,
    parse_strategy,
)


def test_members_are_their_strings() -> None:
    assert [str(s) for s in Strategy] == ["next-fit", "lowest", "random", "sequential"]
    assert Strategy("lowest") is Strategy.LOWEST
    assert "next-fit" in SUBNET_STRATEGIES  # equal to its string
    assert f"{Strategy.SEQUENTIAL}" == "sequential"


def test_each_pool_accepts_its_own() -> None:
    assert SUBNET_STRATEGIES == (Strategy.NEXT_FIT, Strategy.LOWEST)
    assert SERVICE_STRATEGIES == (Strategy.RANDOM, Strategy.SEQUENTIAL)
    for strategy in SUBNET_STRATEGIES:
        for given in (strategy, strategy.value):
            pool = SubnetPool("10.0.0.0/16", 24, strategy=given)
            assert pool.strategy is strategy
    for strategy in SERVICE_STRATEGIES:
        for given in (strategy, strategy.value):
            assert ServiceIPPool("10.96.0.0/24", strategy=given).strategy is strategy


def test_defaults() -> None:
    assert SubnetPool("10.0.0.0/16", 24).strategy is Strategy.NEXT_FIT
    assert ServiceIPPool("10.96.0.0/24").strategy is Strategy.RANDOM


@pytest.mark.parametrize(
    ("make", "bad"),
    [
        (lambda s: SubnetPool("10.0.0.0/16", 24, strategy=s), "random"),
        (lambda s: SubnetPool("10.0.0.0/16", 24, strategy=s), Strategy.SEQUENTIAL),
        (lambda s: SubnetPool("10.0.0.0/16", 24, strategy=s), "Next-Fit"),
        (lambda s: ServiceIPPool("10.96.0.0/24", strategy=s), "lowest"),
        (lambda s: ServiceIPPool("10.96.0.0/24", strategy=s), Strategy.NEXT_FIT),
        (lambda s: ServiceIPPool("10.96.0.0/24", strategy=s), None),
        (lambda s: ServiceIPPool("10.96.0.0/24", strategy=s), 1),
        (lambda s: ServiceIPPool("10.96.0.0/24", strategy=s), b"random"),
    ],
)
def test_unknown_strategy_is_refused_quoting_it(make: Any, bad: Any) -> None:
    with pytest.raises(InvalidConfigError) as info:
        make(bad)
    shown = bad.value if isinstance(bad, Strategy) else bad
    assert f"unknown strategy {shown!r}: expected one of " in str(info.value)
    assert info.value.value is bad


def test_the_message_lists_the_choices() -> None:
    with pytest.raises(InvalidConfigError, match=r"expected one of 'next-fit', 'lowest'$"):
        parse_strategy("first-fit", SUBNET_STRATEGIES)


def test_snapshots_carry_the_plain_string_and_restore_the_member() -> None:
    pool = SubnetPool("10.0.0.0/16", 24, strategy=Strategy.LOWEST)
    data = pool.snapshot()
    assert type(data["strategy"]) is str
    assert json.loads(json.dumps(data))["strategy"] == "lowest"
    assert SubnetPool.restore(data).strategy is Strategy.LOWEST
    ips = ServiceIPPool("fd00::/64", strategy="sequential")
    assert type(ips.snapshot()["strategy"]) is str
    restored = ServiceIPPool.restore(ips.snapshot(), rng=random.Random(1))
    assert restored.strategy is Strategy.SEQUENTIAL


def test_a_snapshot_with_a_strategy_of_the_other_pool_is_refused() -> None:
    data = SubnetPool("10.0.0.0/16", 24).snapshot()
    with pytest.raises(SnapshotError, match="unknown strategy 'random'"):
        SubnetPool.restore({**data, "strategy": "random", "cursor": 0})


def test_repr_shows_the_string() -> None:
    assert "strategy='lowest'" in repr(SubnetPool("10.0.0.0/16", 24, strategy=Strategy.LOWEST))
    assert "strategy='random'" in repr(ServiceIPPool("10.96.0.0/24"))
