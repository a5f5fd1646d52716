"""api.md "Concurrency": threads allocating at once never share a result."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

THREADS = 4
PER_THREAD = 2_000


@pytest.fixture(autouse=True)
def frequent_switches() -> Iterator[None]:
    """Switch threads far more often than the default 5 ms, to provoke races."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def hammer(call: Callable[[], Any]) -> list[Any]:
    """Run ``call`` PER_THREAD times in each of THREADS threads started together."""
    barrier = threading.Barrier(THREADS)
    results: list[list[Any]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def work(out: list[Any]) -> None:
        try:
            barrier.wait()
            for _ in range(PER_THREAD):
                out.append(call())
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [item for out in results for item in out]


@pytest.mark.parametrize(
    "make",
    [
        lambda: SubnetPool("10.0.0.0/8", 24),
        lambda: SubnetPool("fc00::/24", 64),
        lambda: SubnetPool("10.0.0.0/8", 24, strategy="lowest"),
        lambda: ServiceIPPool("10.96.0.0/16", rng=random.Random(1)),
        lambda: ServiceIPPool("10.96.0.0/18", strategy="sequential"),
        lambda: ServiceIPPool("fd00::/64", rng=random.Random(2)),
    ],
    ids=[
        "subnets-v4",
        "subnets-seed",
        "subnets-lowest",
        "ips-random",
        "ips-sequential",
        "ips-v6-64",
    ],
)
def test_concurrent_allocate_next(make: Callable[[], SubnetPool | ServiceIPPool]) -> None:
    pool = make()
    got = hammer(pool.allocate_next)
    assert len(got) == THREADS * PER_THREAD
    assert len(set(got)) == len(got), "an address or subnet was handed out twice"
    assert pool.used == THREADS * PER_THREAD
    assert set(pool) == set(got)
    pool._check_invariants()


def test_concurrent_allocate_and_release() -> None:
    """Threads taking and giving back leave counts that match the set."""
    pool = ServiceIPPool("10.96.0.0/18", rng=random.Random(3))
    lock = threading.Lock()
    kept: list[Any] = []

    def churn() -> None:
        ip = pool.allocate_next()
        assert pool.release(ip) is True
        ip = pool.allocate_next()
        with lock:
            kept.append(ip)

    hammer(churn)
    assert len(set(kept)) == len(kept) == THREADS * PER_THREAD
    assert pool.used == len(kept)
    pool._check_invariants()
