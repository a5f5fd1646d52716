"""SubnetPool: Kubernetes ``CidrSet`` semantics, examples from api.md and
kubernetes-behaviour.md, and the seed's 2**40-subnet ``fc00::/24`` pool."""

from __future__ import annotations

import tracemalloc

import netaddr
import pytest

from dualstack_ipam import (
    InvalidConfigError,
    IPFamily,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.pools.subnets import SubnetPool


def net(text: str) -> netaddr.IPNetwork:
    return netaddr.IPNetwork(text)


def indices(pool: SubnetPool) -> list[int]:
    return [pool.index_of(n) for n in pool]


# ------------------------------------------------------------ construction


class TestConstruction:
    def test_properties(self) -> None:
        pool = SubnetPool("10.244.0.0/16", 24)
        assert pool.cidr == net("10.244.0.0/16")
        assert pool.prefixlen == 24
        assert pool.family is IPFamily.IPv4
        assert (pool.capacity, pool.used, pool.free) == (256, 0, 256)

    def test_host_bits_reduced(self) -> None:
        pool = SubnetPool("127.123.3.0/16", 24)
        assert str(pool.cidr) == "127.123.0.0/16"

    @pytest.mark.parametrize(
        ("cidr", "prefixlen", "capacity"),
        [
            ("0.0.0.0/0", 0, 1),
            ("0.0.0.0/0", 8, 256),
            ("0.0.0.0/0", 32, 2**32),
            ("10.1.2.3/32", 32, 1),
            ("::/0", 0, 1),
            ("::/0", 64, 2**64),
            ("::/0", 128, 2**128),
            ("fd00::1/128", 128, 1),
            ("fc00::/24", 64, 2**40),
            ("10.0.0.0/8", 24, 2**16),
        ],
    )
    def test_capacity(self, cidr: str, prefixlen: int, capacity: int) -> None:
        pool = SubnetPool(cidr, prefixlen)
        assert pool.capacity == capacity
        assert pool.free == capacity
        assert pool.used == 0

    def test_prefixlen_equal_to_cidr_is_one_subnet(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 16)
        assert pool.capacity == 1
        assert pool.allocate_next() == net("10.42.0.0/16")
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()

    @pytest.mark.parametrize(
        ("cidr", "prefixlen"),
        [("10.0.0.0/16", 15), ("10.0.0.0/16", 33), ("fd00::/64", 63), ("fd00::/64", 129)],
    )
    def test_prefixlen_out_of_range(self, cidr: str, prefixlen: int) -> None:
        with pytest.raises(InvalidConfigError):
            SubnetPool(cidr, prefixlen)

    def test_unknown_strategy(self) -> None:
        with pytest.raises(InvalidConfigError, match="first-fit"):
            SubnetPool("10.0.0.0/16", 24, strategy="first-fit")

    def test_known_strategies(self) -> None:
        SubnetPool("10.0.0.0/16", 24, strategy="next-fit")
        SubnetPool("10.0.0.0/16", 24, strategy="lowest")


# --------------------------------------------------- Kubernetes examples


class TestKubernetesExamples:
    def test_ipv4_index_15(self) -> None:
        pool = SubnetPool("127.123.0.0/16", 24)
        assert pool.subnet_at(15) == net("127.123.15.0/24")
        assert pool.index_of("127.123.15.0/24") == 15

    def test_ipv6_index_15(self) -> None:
        pool = SubnetPool("2001:db8:1234::/48", 64)
        assert pool.subnet_at(15) == net("2001:db8:1234:f::/64")
        assert pool.index_of("2001:db8:1234:f::/64") == 15

    def test_occupy_slash15_in_slash7(self) -> None:
        pool = SubnetPool("127.0.0.0/7", 18)
        assert str(pool.cidr) == "126.0.0.0/7"
        assert pool.occupy("127.0.0.0/15") == 8
        assert indices(pool) == list(range(1024, 1032))
        assert pool.used == 8

    def test_occupy_release_sequence_then_253(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        assert pool.occupy("10.42.5.0/24") == 1
        assert pool.occupy("10.42.9.0/24") == 1
        assert pool.occupy("10.42.8.0/22") == 3
        assert pool.used == 5
        assert pool.occupy("10.42.9.0/24") == 0
        assert pool.used == 5
        assert pool.release("10.42.9.0/24") == 1
        assert pool.release("10.42.9.0/24") == 0
        assert pool.used == 4
        assert pool.release("10.42.4.0/22") == 1
        assert pool.used == 3
        assert indices(pool) == [8, 10, 11]
        got = [pool.allocate_next() for _ in range(253)]
        assert len(set(got)) == 253
        assert pool.used == pool.capacity == 256
        assert pool.free == 0
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()
        pool._check_invariants()


# ------------------------------------------------------------ next-fit


class TestNextFit:
    def test_starts_at_zero_and_advances(self) -> None:
        pool = SubnetPool("10.42.0.0/24", 28)
        assert [str(pool.allocate_next()) for _ in range(3)] == [
            "10.42.0.0/28",
            "10.42.0.16/28",
            "10.42.0.32/28",
        ]

    def test_release_does_not_move_cursor(self) -> None:
        pool = SubnetPool("10.42.0.0/24", 28)
        for _ in range(3):
            pool.allocate_next()
        assert pool.release("10.42.0.0/28") == 1
        assert pool.index_of(pool.allocate_next()) == 3

    def test_occupy_does_not_move_cursor(self) -> None:
        pool = SubnetPool("10.42.0.0/24", 28)
        pool.allocate_next()  # cursor -> 1
        assert pool.occupy("10.42.0.160/28") == 1  # index 10, cursor stays at 1
        assert pool.index_of(pool.allocate_next()) == 1
        assert pool.occupy("10.42.0.32/27") == 2  # indices 2, 3
        assert pool.index_of(pool.allocate_next()) == 4  # skips the occupied ones

    def test_cursor_is_one_past_the_last_taken(self) -> None:
        pool = SubnetPool("10.42.0.0/24", 28)
        pool.occupy("10.42.0.0/26")  # 0..3
        assert pool.index_of(pool.allocate_next()) == 4
        pool.release("10.42.0.0/26")
        assert pool.index_of(pool.allocate_next()) == 5

    def test_wraps_around(self) -> None:
        pool = SubnetPool("10.42.0.0/24", 28)
        for _ in range(16):
            pool.allocate_next()
        pool.release("10.42.0.48/28")  # 3
        pool.release("10.42.0.16/28")  # 1
        assert pool.index_of(pool.allocate_next()) == 1  # cursor wrapped to 0
        assert pool.index_of(pool.allocate_next()) == 3
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()

    def test_cursor_after_last_index_wraps_to_zero(self) -> None:
        pool = SubnetPool("10.42.0.0/24", 28)
        pool.occupy("10.42.0.0/25")  # 0..7
        pool.occupy("10.42.0.128/26")  # 8..11
        pool.occupy("10.42.0.192/27")  # 12..13
        pool.occupy("10.42.0.224/28")  # 14
        assert pool.index_of(pool.allocate_next()) == 15
        pool.release("10.42.0.64/28")  # 4
        pool.release("10.42.0.240/28")  # 15
        assert pool.index_of(pool.allocate_next()) == 4  # from 0, not 15

    def test_lowest_strategy(self) -> None:
        pool = SubnetPool("10.42.0.0/24", 28, strategy="lowest")
        for _ in range(5):
            pool.allocate_next()
        pool.release("10.42.0.16/28")
        pool.release("10.42.0.48/28")
        assert pool.index_of(pool.allocate_next()) == 1
        assert pool.index_of(pool.allocate_next()) == 3
        assert pool.index_of(pool.allocate_next()) == 5
        pool.release("10.42.0.0/28")
        assert pool.index_of(pool.allocate_next()) == 0

    def test_exhausted(self) -> None:
        pool = SubnetPool("fd00::/126", 128)
        got = [pool.allocate_next() for _ in range(4)]
        assert [str(n) for n in got] == ["fd00::/128", "fd00::1/128", "fd00::2/128", "fd00::3/128"]
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()


# ------------------------------------------------------- occupy / release


class TestOccupyRelease:
    def test_larger_than_pool_marks_all(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        pool.allocate_next()
        assert pool.occupy("10.0.0.0/8") == 255
        assert pool.used == 256
        assert pool.occupy("0.0.0.0/0") == 0
        assert pool.is_allocated("10.0.0.0/8")
        assert pool.release("0.0.0.0/0") == 256
        assert pool.used == 0

    def test_equal_to_pool(self) -> None:
        pool = SubnetPool("fd00::/120", 124)
        assert pool.occupy("fd00::/120") == 16
        assert pool.release("fd00::/121") == 8
        assert pool.used == 8

    @pytest.mark.parametrize(
        "small", ["10.42.7.9", "10.42.7.128/25", "10.42.7.255/32", "10.42.7.64/26"]
    )
    def test_smaller_than_subnet_marks_its_subnet(self, small: str) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        assert pool.occupy(small) == 1
        assert list(pool) == [net("10.42.7.0/24")]
        assert pool.is_allocated(small)
        assert pool.is_allocated("10.42.7.0/24")
        assert pool.release(small) == 1
        assert pool.used == 0

    def test_range_counts_only_changes(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        assert pool.occupy("10.42.0.0/20") == 16
        assert pool.occupy("10.42.0.0/19") == 16
        assert pool.occupy("10.42.0.0/19") == 0
        assert pool.release("10.42.8.0/21") == 8
        assert pool.release("10.42.8.0/21") == 0
        assert pool.release("10.42.0.0/18") == 24
        assert pool.used == 0

    def test_other_family_never_overlaps(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        for method in (pool.occupy, pool.release):
            with pytest.raises(NotInRangeError):
                method("::/0")
            with pytest.raises(NotInRangeError):
                method("::ffff:10.42.0.0/112")
        assert pool.is_allocated("::/0") is False

    def test_disjoint(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        for cidr in ("10.43.0.0/16", "10.41.255.0/24", "192.168.0.0/16"):
            with pytest.raises(NotInRangeError):
                pool.occupy(cidr)
            with pytest.raises(NotInRangeError):
                pool.release(cidr)
            assert pool.is_allocated(cidr) is False

    def test_partly_overlapping_larger_marks_pool_only(self) -> None:
        pool = SubnetPool("10.42.128.0/17", 24)
        assert pool.occupy("10.42.0.0/16") == 128
        assert pool.used == pool.capacity

    def test_is_allocated_needs_every_subnet(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        pool.occupy("10.42.0.0/23")
        assert pool.is_allocated("10.42.0.0/23")
        assert pool.is_allocated("10.42.1.0/24")
        assert not pool.is_allocated("10.42.0.0/22")
        assert not pool.is_allocated("10.42.2.7")
        assert not pool.is_allocated("10.42.0.0/16")


# ------------------------------------------------------ index arithmetic


class TestIndex:
    def test_index_of_uses_first_address(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        assert pool.index_of("10.42.3.0/24") == 3
        assert pool.index_of("10.42.3.77") == 3
        assert pool.index_of("10.42.3.0/23") == 2  # host bits dropped: 10.42.2.0/23
        assert pool.index_of("10.42.255.255") == 255
        assert pool.index_of("10.42.0.0/16") == 0
        assert pool.index_of("10.42.0.0/15") == 0  # first address inside the pool
        with pytest.raises(NotInRangeError):
            pool.index_of("10.0.0.0/8")  # its first address, 10.0.0.0, is outside

    def test_index_of_outside(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        with pytest.raises(NotInRangeError):
            pool.index_of("10.43.0.0")
        with pytest.raises(NotInRangeError):
            pool.index_of("fd00::1")

    def test_subnet_at_bounds(self) -> None:
        pool = SubnetPool("10.42.0.0/16", 24)
        assert pool.subnet_at(0) == net("10.42.0.0/24")
        assert pool.subnet_at(255) == net("10.42.255.0/24")
        for bad in (-1, 256, True, False, -256):
            with pytest.raises(IndexError):
                pool.subnet_at(bad)

    def test_subnet_at_huge(self) -> None:
        pool = SubnetPool("::/0", 128)
        assert pool.subnet_at(2**128 - 1) == net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")
        with pytest.raises(IndexError):
            pool.subnet_at(2**128)
        assert pool.index_of("::1:0:0") == 2**32

    def test_round_trip_index(self) -> None:
        pool = SubnetPool("2001:db8::/32", 48)
        for i in (0, 1, 15, 255, 2**15, 2**16 - 1):
            assert pool.index_of(pool.subnet_at(i)) == i


def test_iter_ascending_generator() -> None:
    pool = SubnetPool("10.42.0.0/16", 24)
    for cidr in ("10.42.200.0/24", "10.42.3.0/24", "10.42.64.0/22", "10.42.0.0/24"):
        pool.occupy(cidr)
    it = iter(pool)
    assert next(it) == net("10.42.0.0/24")
    assert [str(n) for n in pool] == [
        "10.42.0.0/24",
        "10.42.3.0/24",
        "10.42.64.0/24",
        "10.42.65.0/24",
        "10.42.66.0/24",
        "10.42.67.0/24",
        "10.42.200.0/24",
    ]


# ----------------------------------------------------- tiny and huge pools


@pytest.mark.parametrize(
    ("cidr", "prefixlen", "only"),
    [
        ("0.0.0.0/0", 0, "0.0.0.0/0"),
        ("10.1.2.3/32", 32, "10.1.2.3/32"),
        ("::/0", 0, "::/0"),
        ("fd00::5/128", 128, "fd00::5/128"),
    ],
)
def test_single_subnet_pools(cidr: str, prefixlen: int, only: str) -> None:
    pool = SubnetPool(cidr, prefixlen)
    assert pool.capacity == 1
    assert pool.allocate_next() == net(only)
    with pytest.raises(PoolExhaustedError):
        pool.allocate_next()
    assert pool.release(only) == 1
    assert pool.occupy(only) == 1
    assert list(pool) == [net(only)]


def test_slash0_into_host_routes() -> None:
    pool = SubnetPool("::/0", 128)
    assert pool.occupy("::/1") == 2**127
    assert pool.allocate_next() == net("8000::/128")
    assert pool.used == 2**127 + 1
    assert pool.release("::/0") == 2**127 + 1
    pool._check_invariants()


class TestSeedPool:
    """``SubnetPool("fc00::/24", 64)``: the seed's 2**40 subnets."""

    def test_whole_pool_and_big_ranges(self) -> None:
        pool = SubnetPool("fc00::/24", 64)
        assert pool.allocate_next() == net("fc00::/64")
        assert pool.occupy("fc00::/24") == 2**40 - 1
        assert pool.used == 2**40
        assert pool.free == 0
        assert pool.is_allocated("fc00::/24")
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()
        assert pool.release("fc00:1::/32") == 2**32
        assert pool.release("fc00:1::/32") == 0
        assert pool.used == 2**40 - 2**32
        assert not pool.is_allocated("fc00::/24")
        assert pool.is_allocated("fc00:2::/32")
        assert pool.release("fc00::/8") == 2**40 - 2**32
        assert pool.used == 0
        assert pool.occupy("fc00::/25") == 2**39
        # The cursor is at 1; the first free index is 2**39 (fc00:80::/64).
        assert pool.allocate_next() == net("fc00:80::/64")
        assert pool.occupy("fc00:ff::/40") == 2**24
        assert pool.occupy("fc00:ff:0:1:2::/80") == 0
        assert pool.occupy("fc00:fe:0:1:2::/80") == 1
        assert pool.release("fc00:fe:0:1::") == 1
        assert pool.used == 2**39 + 1 + 2**24
        pool._check_invariants()

    def test_big_ranges_around_single_subnets(self) -> None:
        pool = SubnetPool("fc00::/24", 64)
        for i in range(3):
            pool.occupy(pool.subnet_at(i * 2**20 + 5))
        first = pool.index_of("fc00:0:4000::")
        assert first == 2**30
        # Single subnets inside the range before and after it is occupied:
        # a full run must split and merge correctly around a partial chunk.
        assert pool.occupy(pool.subnet_at(first + 7)) == 1
        assert pool.occupy("fc00:0:4000::/34") == 2**30 - 1
        assert pool.used == 2**30 + 3
        assert pool.release(pool.subnet_at(first + 4097)) == 1
        assert not pool.is_allocated("fc00:0:4000::/34")
        assert pool.occupy(pool.subnet_at(first + 4097)) == 1
        assert pool.is_allocated("fc00:0:4000::/34")
        assert pool.release("fc00:0:4000::/34") == 2**30
        assert indices(pool) == [5, 2**20 + 5, 2**21 + 5]
        pool._check_invariants()

    def test_memory_stays_small(self) -> None:
        tracemalloc.start()
        try:
            pool = SubnetPool("fc00::/24", 64)
            assert pool.occupy("fc00::/24") == 2**40
            assert pool.release("fc00:80::/25") == 2**39
            assert pool.release("fc00::/24") == 2**39
            for _ in range(300):
                pool.allocate_next()
            assert pool.occupy("fc00:1::/32") == 2**32
            assert pool.occupy("fc00:80::/25") == 2**39
            assert pool.release("fc00:80:1::/48") == 2**16
            for _ in range(300):
                pool.allocate_next()
            pool._check_invariants()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert pool.used == 600 + 2**32 + 2**39 - 2**16
        assert peak < 1 << 20, peak
