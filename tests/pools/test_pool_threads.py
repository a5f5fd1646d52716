"""api.md "Concurrency": threads allocating at once never share a result, and a
snapshot taken while another thread allocates is a state the pool passed through."""

from __future__ import annotations

import contextlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest

from dualstack_ipam import AlreadyAllocatedError
from dualstack_ipam.pools import ServiceIPPool, SubnetPool

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


# ------------------------------------------------ snapshots while allocating

POOL_MAKERS: list[Callable[[], SubnetPool | ServiceIPPool]] = [
    lambda: SubnetPool("10.0.0.0/8", 24),
    lambda: SubnetPool("fc00::/24", 64, strategy="lowest"),
    lambda: ServiceIPPool("10.96.0.0/16", rng=random.Random(4)),
    lambda: ServiceIPPool("fd00::/64", rng=random.Random(5)),
    lambda: ServiceIPPool("fd00::/112", strategy="sequential"),
]
POOL_IDS = ["subnets-v4", "subnets-seed-lowest", "ips-v4", "ips-v6-64", "ips-v6-sequential"]


def snapshot_while(pool: SubnetPool | ServiceIPPool, work: Callable[[], None]) -> list[Any]:
    """Run ``work`` in one thread while another snapshots ``pool`` until it ends."""
    done = threading.Event()
    snapshots: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)
        finally:
            done.set()

    def snapshotter() -> None:
        try:
            while not done.is_set():
                snapshots.append(json.loads(json.dumps(pool.snapshot())))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=snapshotter), threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    snapshots.append(pool.snapshot())
    return snapshots


def restored(data: Any, like: SubnetPool | ServiceIPPool) -> SubnetPool | ServiceIPPool:
    pool = type(like).restore(data)
    pool._check_invariants()
    assert pool.used == sum(stop - first for first, stop in pool.runs())
    return pool


def slots(pool: SubnetPool | ServiceIPPool) -> set[int]:
    return {slot for first, stop in pool.runs() for slot in range(first, stop)}


def slot_of(pool: SubnetPool | ServiceIPPool, item: Any) -> int:
    if isinstance(pool, SubnetPool):
        return pool.index_of(item)
    return int(item) - int(pool.cidr.first) - 1


def distinct(snapshots: list[Any]) -> list[Any]:
    """One of each document: the same state snapshotted twice is checked once."""
    return list({json.dumps(data, sort_keys=True): data for data in snapshots}.values())


@pytest.mark.parametrize("make", POOL_MAKERS, ids=POOL_IDS)
def test_snapshots_taken_while_allocating_are_prefixes(
    make: Callable[[], SubnetPool | ServiceIPPool],
) -> None:
    """Each snapshot holds exactly the first ``used`` allocations (one allocating
    thread orders them), with the cursor that followed the last of them."""
    pool = make()
    order: list[Any] = []

    def allocate() -> None:
        for i in range(3000):
            order.append(pool.allocate_next())
            if i % 16 == 0:
                time.sleep(0)  # let the snapshots in between (no timing is asserted)

    snapshots = snapshot_while(pool, allocate)
    indices = [slot_of(pool, item) for item in order]
    for data in distinct(snapshots):
        again = restored(data, pool)
        assert slots(again) == set(indices[: again.used])
        if isinstance(again, SubnetPool) and again.strategy == "next-fit" and again.used:
            assert again.cursor == indices[again.used - 1] + 1
    assert snapshots[-1] == pool.snapshot()


@pytest.mark.parametrize("make", POOL_MAKERS, ids=POOL_IDS)
def test_snapshots_taken_during_churn_are_states_the_pool_passed_through(
    make: Callable[[], SubnetPool | ServiceIPPool],
) -> None:
    """With releases too, each snapshot equals the state after some prefix of the
    operations (states compared by an order-free fingerprint of their members)."""
    pool = make()
    rng = random.Random(6)
    ops: list[tuple[bool, Any]] = []  # (allocated?, item) in the order they happened

    def churn() -> None:
        held: list[Any] = []
        for i in range(3000):
            if i % 16 == 0:
                time.sleep(0)
            if held and rng.random() < 0.4:
                item = held.pop(rng.randrange(len(held)))
                pool.release(item)
                ops.append((False, item))
            else:
                item = pool.allocate_next()
                held.append(item)
                ops.append((True, item))

    snapshots = snapshot_while(pool, churn)
    states = {0}
    current = 0
    for _, item in ops:
        current ^= fingerprint((slot_of(pool, item),))
        states.add(current)
    for data in distinct(snapshots):
        assert fingerprint(slots(restored(data, pool))) in states


def fingerprint(indices: Any) -> int:
    """An order-free digest of a set of slots (XOR of a hash of each)."""
    value = 0
    for index in indices:
        value ^= hash((index, "slot"))
    return value


@pytest.mark.parametrize("make", POOL_MAKERS, ids=POOL_IDS)
def test_encoding_needs_no_lock(make: Callable[[], SubnetPool | ServiceIPPool]) -> None:
    """Only the copy happens under the pool's lock: the function ``capture()``
    returns builds the snapshot while another thread holds the lock."""
    pool = make()
    for _ in range(2000):
        pool.allocate_next()
    expected = pool.snapshot()
    finish = pool.capture()
    holding, give_back = threading.Event(), threading.Event()
    built: list[Any] = []

    def hold() -> None:
        with pool._lock:
            holding.set()
            give_back.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()
    builder = threading.Thread(target=lambda: built.append(finish()))
    builder.start()
    builder.join(timeout=120)  # a deadlock guard, not a timing assertion
    stalled = builder.is_alive()
    give_back.set()
    holder.join()
    builder.join()
    assert not stalled, "building the snapshot waited for the pool's lock"
    assert built == [expected]


@pytest.mark.parametrize("make", POOL_MAKERS, ids=POOL_IDS)
def test_runs_walked_while_allocating_are_ascending_and_apart(
    make: Callable[[], SubnetPool | ServiceIPPool],
) -> None:
    """``runs()`` reads in batches without holding the lock between them: what it
    gives stays ascending, non-empty and never touching, and was allocated."""
    pool = make()
    done = threading.Event()
    walks: list[list[tuple[int, int]]] = []

    def allocate() -> None:
        try:
            for i in range(3000):
                pool.allocate_next()
                if i % 16 == 0:
                    time.sleep(0)
        finally:
            done.set()

    worker = threading.Thread(target=allocate)
    worker.start()
    while not done.is_set():
        walks.append(list(pool.runs()))
    worker.join()
    final = slots(pool)
    for runs in walks:
        assert all(first < stop for first, stop in runs)
        assert all(a[1] < b[0] for a, b in pairwise(runs))
        assert {slot for first, stop in runs for slot in range(first, stop)} <= final


def test_reserving_while_threads_allocate_never_hands_out_reserved_space() -> None:
    """Threads allocate and release with a cooldown while one reserves and unreserves."""
    now = [0.0]
    pool = ServiceIPPool("10.96.0.0/16", cooldown=1.0, clock=lambda: now[0])
    blocks = [f"10.96.{third}.0/24" for third in range(0, 256, 8)]
    stop = threading.Event()
    leaked: list[Any] = []

    def reserver() -> None:
        turn = 0
        while not stop.is_set():
            block = blocks[turn % len(blocks)]
            # An allocation may hold an address of the block: then nothing is reserved.
            with contextlib.suppress(AlreadyAllocatedError):
                pool.reserve(block, "drill")
            now[0] += 0.25
            pool.unreserve(block)
            turn += 1

    def allocate() -> Any:
        address = pool.allocate_next()
        # Allocated until this thread releases it, so in no reservation meanwhile.
        if any(address in space for space, _ in pool.reservations()):
            leaked.append(address)
        pool.release(address)
        return address

    side = threading.Thread(target=reserver)
    side.start()
    try:
        hammer(allocate)
    finally:
        stop.set()
        side.join()
    assert leaked == []
    pool._check_invariants()
    assert pool.used == 0
    assert pool.reserved == 0
