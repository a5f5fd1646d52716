"""api.md "Snapshots" for both pools: JSON round trips, required keys, corrupt
data refused as a whole, big integers as strings, and snapshot sizes."""

from __future__ import annotations

import copy
import ipaddress
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dualstack_ipam import SnapshotError
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

Pool = SubnetPool | ServiceIPPool
Path = tuple[str | int, ...]

JSON_SAFE = 2**53


# ------------------------------------------------------------------ pools


def subnets_v4() -> SubnetPool:
    pool = SubnetPool("10.42.0.0/16", 24)
    for _ in range(40):
        pool.allocate_next()
    pool.release("10.42.0.0/27")  # a partly covered subnet: index 0
    pool.release("10.42.8.0/21")
    pool.occupy("10.42.128.0/18")
    return pool


def subnets_lowest() -> SubnetPool:
    pool = SubnetPool("10.0.0.0/8", 28, strategy="lowest")
    pool.occupy("10.1.0.0/16")
    for _ in range(9):
        pool.allocate_next()
    return pool


def subnets_seed() -> SubnetPool:
    pool = SubnetPool("fc00::/24", 64)
    for _ in range(100):
        pool.allocate_next()
    pool.occupy("fc00:1::/32")
    pool.occupy("fc00:80::/25")
    pool.release("fc00:80:1::/48")
    pool.release("fc00::3/64")
    return pool


def subnets_huge() -> SubnetPool:
    pool = SubnetPool("::/0", 64)
    pool.occupy("::/1")
    pool.occupy("ffff:ffff:ffff:fff0::/60")
    pool.allocate_next()
    return pool


def services_random() -> ServiceIPPool:
    pool = ServiceIPPool("10.96.0.0/20", rng=random.Random(4))
    for _ in range(300):
        pool.allocate_next()
    pool.allocate("10.96.0.2")
    return pool


def services_sequential_v6() -> ServiceIPPool:
    pool = ServiceIPPool("fd00:10:96::/112", strategy="sequential")
    for _ in range(50):
        pool.allocate_next()
    pool.release("fd00:10:96::120")
    pool.allocate("fd00:10:96::5")
    return pool


def services_whole_v6() -> ServiceIPPool:
    pool = ServiceIPPool("::/0", rng=random.Random(2))
    pool.allocate("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")
    pool.allocate("::1")
    for _ in range(30):
        pool.allocate_next()
    return pool


def services_empty() -> ServiceIPPool:
    return ServiceIPPool("10.96.0.1/32", strategy="sequential")


POOLS: list[Callable[[], Pool]] = [
    subnets_v4,
    subnets_lowest,
    subnets_seed,
    subnets_huge,
    services_random,
    services_sequential_v6,
    services_whole_v6,
    services_empty,
]

SMALL_POOLS = [subnets_v4, subnets_lowest, services_random, services_sequential_v6]


def through_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def observable(pool: Pool) -> tuple[Any, ...]:
    """What a caller can see, without walking huge allocated sets."""
    head = []
    for i, item in enumerate(pool):
        if i == 200:
            break
        head.append(item)
    extra = (pool.prefixlen,) if isinstance(pool, SubnetPool) else (pool.offset,)
    return (str(pool.cidr), pool.family, pool.capacity, pool.used, pool.free, head, *extra)


def walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) of a JSON document, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, (*path, index))


def replaced(data: Any, path: Path, new: Any) -> Any:
    out = copy.deepcopy(data)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def deleted(data: Any, path: Path) -> Any:
    out = copy.deepcopy(data)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


def lookup(data: Any, path: Path) -> Any:
    for step in path:
        data = data[step]
    return data


def longest_string(data: Any) -> Path:
    strings = [(len(v), p) for p, v in walk(data) if isinstance(v, str)]
    return max(strings)[1]


def assert_refused(cls: type[Pool], data: Any) -> SnapshotError:
    with pytest.raises(SnapshotError) as info:
        cls.restore(data)
    return info.value


# ------------------------------------------------------------- round trip


@pytest.mark.parametrize("make", POOLS)
def test_json_round_trip(make: Callable[[], Pool]) -> None:
    pool = make()
    data = pool.snapshot()
    assert through_json(data) == data, "snapshot is not plain JSON (tuples? non-str keys?)"
    restored = type(pool).restore(through_json(data))
    assert restored.snapshot() == data
    assert observable(restored) == observable(pool)
    restored._check_invariants()


@pytest.mark.parametrize("make", SMALL_POOLS)
def test_round_trip_same_allocated_set(make: Callable[[], Pool]) -> None:
    pool = make()
    restored = type(pool).restore(through_json(pool.snapshot()))
    assert list(restored) == list(pool)


@pytest.mark.parametrize("make", POOLS)
def test_envelope(make: Callable[[], Pool]) -> None:
    pool = make()
    data = pool.snapshot()
    assert data["kind"] == type(pool).__name__
    assert data["version"] == 1
    assert int(data["used"]) == pool.used
    assert isinstance(data["used"], int if pool.used < JSON_SAFE else str)


def test_subnet_cursor_is_kept() -> None:
    pool = SubnetPool("10.42.0.0/24", 28)
    for _ in range(6):
        pool.allocate_next()
    pool.release("10.42.0.0/26")  # 0..3 free, cursor stays at 6
    restored = SubnetPool.restore(through_json(pool.snapshot()))
    got = [restored.allocate_next() for _ in range(12)]
    want = [pool.allocate_next() for _ in range(12)]
    assert got == want
    assert [restored.index_of(n) for n in got[:3]] == [6, 7, 8]
    assert restored.snapshot() == pool.snapshot()


def test_subnet_cursor_is_kept_seed_pool() -> None:
    pool = subnets_seed()
    restored = SubnetPool.restore(through_json(pool.snapshot()))
    for _ in range(5):
        assert restored.allocate_next() == pool.allocate_next()


def test_subnet_strategy_is_kept() -> None:
    pool = subnets_lowest()
    restored = SubnetPool.restore(through_json(pool.snapshot()))
    pool.release(pool.subnet_at(3))
    restored.release(restored.subnet_at(3))
    assert restored.allocate_next() == pool.allocate_next() == pool.subnet_at(3)


def test_service_strategy_and_rng() -> None:
    pool = services_sequential_v6()
    restored = ServiceIPPool.restore(through_json(pool.snapshot()))
    assert [restored.allocate_next() for _ in range(5)] == [pool.allocate_next() for _ in range(5)]
    data = services_random().snapshot()
    a = ServiceIPPool.restore(data, rng=random.Random(99))
    b = ServiceIPPool.restore(data, rng=random.Random(99))
    assert [a.allocate_next() for _ in range(20)] == [b.allocate_next() for _ in range(20)]


def test_snapshot_is_detached() -> None:
    pool = subnets_v4()
    data = pool.snapshot()
    frozen = copy.deepcopy(data)
    restored = SubnetPool.restore(data)
    assert data == frozen, "restore changed its input"
    restored.allocate_next()
    restored.occupy("10.42.0.0/16")
    assert pool.snapshot() == frozen
    pool.allocate_next()
    assert data == frozen, "a later change to the pool reached an earlier snapshot"


# ---------------------------------------------------------- big integers


@pytest.mark.parametrize("make", POOLS)
def test_no_int_beyond_2_53(make: Callable[[], Pool]) -> None:
    for path, value in walk(make().snapshot()):
        if isinstance(value, int):
            assert -JSON_SAFE < value < JSON_SAFE, (path, value)


def test_big_counts_are_strings() -> None:
    pool = subnets_huge()
    data = pool.snapshot()
    assert data["used"] == str(2**63 + 2**4 + 1)
    assert str(2**63 + 2**4 + 1) in json.dumps(data)
    assert SubnetPool.restore(through_json(data)).used == 2**63 + 2**4 + 1


def test_big_ints_read_back_as_ints_too() -> None:
    """Readers accept a big int given as a JSON number as well (lossless in Python)."""
    pool = subnets_huge()
    data = pool.snapshot()
    data["used"] = int(data["used"])
    assert SubnetPool.restore(data).snapshot() == pool.snapshot()


# ----------------------------------------------------------- corruption


@pytest.mark.parametrize("make", [subnets_v4, subnets_seed, services_random, services_whole_v6])
def test_every_key_is_required(make: Callable[[], Pool]) -> None:
    pool = make()
    data = pool.snapshot()
    keys = [p for p, v in walk(data) if p and isinstance(p[-1], str)]
    assert {("kind",), ("version",), ("used",)} <= set(keys)
    for path in keys:
        with pytest.raises(SnapshotError):
            type(pool).restore(deleted(data, path))
    assert pool.snapshot() == data


@pytest.mark.parametrize(
    "make", [subnets_v4, subnets_seed, services_random, services_sequential_v6]
)
def test_every_value_is_checked(make: Callable[[], Pool]) -> None:
    """Each value, replaced by one of a few impossible ones, is refused."""
    pool = make()
    data = pool.snapshot()
    garbage: list[Any] = [None, "garbage!", -1, 1.5, [], {}]
    for path, value in walk(data):
        if not path:
            continue
        for bad in garbage:
            if bad == value and type(bad) is type(value):
                continue
            with pytest.raises(SnapshotError):
                type(pool).restore(replaced(data, path, bad))
    assert pool.snapshot() == data


@pytest.mark.parametrize("cls", [SubnetPool, ServiceIPPool])
@pytest.mark.parametrize("bad", [None, [], "snapshot", 3, b"{}", {}], ids=repr)
def test_not_a_snapshot(cls: type[Pool], bad: Any) -> None:
    assert_refused(cls, bad)


def test_wrong_kind() -> None:
    sub, svc = subnets_v4().snapshot(), services_random().snapshot()
    assert_refused(ServiceIPPool, sub)
    assert_refused(SubnetPool, svc)
    for kind in ("subnetpool", "NodeCIDRAllocator", "", None):
        assert_refused(SubnetPool, {**sub, "kind": kind})


@pytest.mark.parametrize("version", [0, 2, "1", True, None, "v1"], ids=repr)
@pytest.mark.parametrize("make", [subnets_v4, services_random])
def test_wrong_version(make: Callable[[], Pool], version: Any) -> None:
    pool = make()
    assert_refused(type(pool), {**pool.snapshot(), "version": version})


@pytest.mark.parametrize("delta", [1, -1, 1000])
@pytest.mark.parametrize(
    "make", [subnets_v4, subnets_seed, subnets_huge, services_random, services_whole_v6]
)
def test_counts_must_agree(make: Callable[[], Pool], delta: int) -> None:
    pool = make()
    data = pool.snapshot()
    wrong = int(data["used"]) + delta
    for written in (wrong, str(wrong)):
        assert_refused(type(pool), {**data, "used": written})


def test_counts_must_agree_when_empty() -> None:
    data = services_empty().snapshot()
    assert_refused(ServiceIPPool, {**data, "used": 1})
    assert ServiceIPPool.restore(data).used == 0


@pytest.mark.parametrize("make", [subnets_v4, services_random, services_sequential_v6])
def test_truncated_or_garbled_bits(make: Callable[[], Pool]) -> None:
    pool = make()
    data = pool.snapshot()
    path = longest_string(data)
    bits: str = lookup(data, path)
    assert len(bits) > 20, "expected the allocated set's packed bits"
    middle = len(bits) // 2
    swapped = "A" if bits[middle] != "A" else "B"
    variants = [
        bits[:middle],
        bits[:-4],
        bits[4:],
        bits[:middle] + swapped + bits[middle + 1 :],
        bits[:middle] + "!" + bits[middle + 1 :],
        bits + "AAAA",
        bits + bits,
        "",
    ]
    for bad in variants:
        assert_refused(type(pool), replaced(data, path, bad))
    assert pool.snapshot() == data


# ----------------------------------------------------------------- sizes


def snapshot_bytes(pool: Pool) -> int:
    return len(json.dumps(pool.snapshot()))


def dense_bound(capacity: int) -> float:
    """~1 bit per slot, base64-encoded, plus a small header."""
    return capacity / 8 * 1.4 + 1024


def test_dense_service_pool_size() -> None:
    pool = ServiceIPPool("10.96.0.0/18", strategy="sequential")
    rng = random.Random(1)
    for index in rng.sample(range(1, pool.capacity + 1), pool.capacity // 2):
        pool.allocate(f"10.96.{index >> 8}.{index & 0xFF}")
    assert pool.used == pool.capacity // 2
    assert snapshot_bytes(pool) <= dense_bound(pool.capacity)


def test_dense_subnet_pool_size() -> None:
    pool = SubnetPool("10.0.0.0/10", 24)
    rng = random.Random(2)
    for index in rng.sample(range(pool.capacity), pool.capacity // 2):
        pool.occupy(pool.subnet_at(index))
    assert snapshot_bytes(pool) <= dense_bound(pool.capacity)


def test_full_pools_are_tiny() -> None:
    sub = SubnetPool("fc00::/24", 64)
    sub.occupy("fc00::/24")
    svc = ServiceIPPool("10.96.0.0/20", strategy="sequential")
    for _ in range(svc.capacity):
        svc.allocate_next()
    assert svc.free == 0
    assert snapshot_bytes(sub) < 1024
    assert snapshot_bytes(svc) < 1024


@pytest.mark.parametrize("count", [20, 200])
def test_sparse_sizes_follow_what_is_allocated(count: int) -> None:
    rng = random.Random(count)
    svc = ServiceIPPool("fd00::/64")
    sub = SubnetPool("fc00::/24", 64)
    for _ in range(count):
        svc.allocate(ipaddress.IPv6Address(svc.cidr.first + 1 + rng.randrange(svc.capacity)))
        sub.occupy(sub.subnet_at(rng.randrange(sub.capacity)))
    assert svc.used == sub.used == count
    for pool in (svc, sub):
        assert snapshot_bytes(pool) <= 1024 + 64 * count, (pool, snapshot_bytes(pool))
        restored = type(pool).restore(through_json(pool.snapshot()))
        assert list(restored) == list(pool)
