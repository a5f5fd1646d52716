"""ServiceIPPool: Kubernetes ``ipallocator`` semantics, KEP-3070 bands, the
whole IPv6 range usable, and seeded strategies."""

from __future__ import annotations

import random
import sys

import netaddr
import pytest

from dualstack_ipam import (
    AlreadyAllocatedError,
    IPFamily,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.pools.service_ips import ServiceIPPool

STRATEGIES = ["random", "sequential"]


def ip(text: str) -> netaddr.IPAddress:
    return netaddr.IPAddress(text)


def last_octet(address: netaddr.IPAddress) -> int:
    return int(address) & 0xFF


class TestCapacity:
    @pytest.mark.parametrize(
        ("cidr", "capacity"),
        [
            ("192.168.1.0/24", 254),
            ("192.168.1.0/25", 126),
            ("192.168.1.0/30", 2),
            ("192.168.1.0/31", 0),
            ("192.168.1.1/32", 0),
            ("10.0.0.0/8", 2**24 - 2),
            ("0.0.0.0/0", 2**32 - 2),
            ("fd00::/127", 1),
            ("fd00::/128", 0),
            ("fd00::/120", 255),
            ("fd00:10:96::/112", 2**16 - 1),
            ("fd00::/64", 2**64 - 1),
            ("::/0", 2**128 - 1),
        ],
    )
    def test_capacity(self, cidr: str, capacity: int) -> None:
        pool = ServiceIPPool(cidr)
        assert pool.capacity == capacity
        assert (pool.used, pool.free) == (0, capacity)

    def test_properties(self) -> None:
        pool = ServiceIPPool("10.96.0.0/12")
        assert pool.cidr == netaddr.IPNetwork("10.96.0.0/12")
        assert pool.family is IPFamily.IPv4
        assert pool.offset == 256
        assert pool.capacity == 2**20 - 2

    def test_slash30_gives_both_hosts(self) -> None:
        pool = ServiceIPPool("192.168.1.0/30")
        got = {pool.allocate_next(), pool.allocate_next()}
        assert got == {ip("192.168.1.1"), ip("192.168.1.2")}
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()

    @pytest.mark.parametrize("cidr", ["192.168.1.0/31", "192.168.1.1/32", "fd00::/128"])
    def test_no_usable_address(self, cidr: str) -> None:
        pool = ServiceIPPool(cidr)
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()
        network = netaddr.IPNetwork(cidr)
        for address in (network.first, network.last):
            with pytest.raises(NotInRangeError):
                pool.allocate(netaddr.IPAddress(address, network.version))

    def test_ipv6_slash127(self) -> None:
        pool = ServiceIPPool("fd00::/127")
        assert pool.allocate_next() == ip("fd00::1")
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()

    def test_ipv4_excludes_network_and_broadcast(self) -> None:
        pool = ServiceIPPool("192.168.1.0/24")
        assert pool.allocate("192.168.1.1") == ip("192.168.1.1")
        assert pool.allocate("192.168.1.254") == ip("192.168.1.254")
        for bad in ("192.168.1.0", "192.168.1.255"):
            with pytest.raises(NotInRangeError):
                pool.allocate(bad)

    def test_ipv6_excludes_only_the_network_address(self) -> None:
        pool = ServiceIPPool("fd00::/120")
        assert pool.allocate("fd00::ff") == ip("fd00::ff")
        assert pool.allocate("fd00::1") == ip("fd00::1")
        with pytest.raises(NotInRangeError):
            pool.allocate("fd00::")

    def test_whole_ipv6_slash64_is_usable(self) -> None:
        pool = ServiceIPPool("fd00:1:2:3::/64")
        last = ip("fd00:1:2:3:ffff:ffff:ffff:ffff")
        assert pool.allocate(last) == last
        assert pool.is_allocated(last)
        assert pool.allocate("fd00:1:2:3::1:0:0") == ip("fd00:1:2:3::1:0:0")  # past 65,535
        assert list(pool) == [ip("fd00:1:2:3::1:0:0"), last]
        assert pool.used == 2
        assert pool.free == 2**64 - 3

    def test_slash0_ipv6_is_cheap(self) -> None:
        pool = ServiceIPPool("::/0", rng=random.Random(1))
        assert pool.offset == 256
        top = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        assert pool.allocate(top) == top
        assert pool.allocate("::1") == ip("::1")
        got = [pool.allocate_next() for _ in range(200)]
        assert len(set(got)) == 200
        assert all(int(a) > 256 for a in got)
        assert pool.used == 202
        assert pool.release(top) is True
        assert pool.release(top) is False
        assert pool.is_allocated("::1")
        assert len(str(pool.snapshot())) < 16_000
        pool._check_invariants()


class TestOffset:
    @pytest.mark.parametrize(
        ("cidr", "offset"),
        [
            ("10.0.0.0/27", 16),
            ("10.0.0.0/22", 64),
            ("10.0.0.0/8", 256),
            ("0.0.0.0/0", 256),
            ("fd00::/122", 16),
            ("fd00::/118", 64),
            ("fd00::/64", 256),
            ("10.0.0.0/24", 16),
            ("10.0.0.0/20", 256),
            ("10.0.0.0/21", 128),
            ("10.0.0.0/28", 0),
            ("10.0.0.0/29", 0),
            ("10.0.0.0/31", 0),
            ("10.0.0.0/32", 0),
            ("fd00::/124", 0),
            ("fd00::/127", 0),
            ("fd00::/128", 0),
        ],
    )
    def test_offset(self, cidr: str, offset: int) -> None:
        assert ServiceIPPool(cidr).offset == offset


class TestBands:
    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_upper_band_first(self, strategy: str) -> None:
        pool = ServiceIPPool("192.168.1.0/25", strategy=strategy, rng=random.Random(5))
        assert pool.offset == 16
        upper = [pool.allocate_next() for _ in range(110)]
        assert sorted(last_octet(a) for a in upper) == list(range(17, 127))
        lower = [pool.allocate_next() for _ in range(16)]
        assert sorted(last_octet(a) for a in lower) == list(range(1, 17))
        with pytest.raises(PoolExhaustedError):
            pool.allocate_next()
        assert pool.used == pool.capacity == 126

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_static_band_taken_only_when_upper_full(self, strategy: str) -> None:
        pool = ServiceIPPool("192.168.1.0/25", strategy=strategy, rng=random.Random(9))
        for n in range(17, 127):
            pool.allocate(f"192.168.1.{n}")
        pool.release("192.168.1.100")
        assert pool.allocate_next() == ip("192.168.1.100")
        got = pool.allocate_next()
        assert 1 <= last_octet(got) <= 16

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_static_band_open_to_allocate(self, strategy: str) -> None:
        pool = ServiceIPPool("10.96.0.0/24", strategy=strategy)
        assert pool.allocate("10.96.0.10") == ip("10.96.0.10")
        assert pool.allocate("10.96.0.16") == ip("10.96.0.16")
        assert pool.is_allocated("10.96.0.10")

    def test_small_range_has_one_band(self) -> None:
        pool = ServiceIPPool("10.96.0.0/28", strategy="sequential")
        assert pool.offset == 0
        assert [last_octet(pool.allocate_next()) for _ in range(14)] == list(range(1, 15))

    def test_sequential_takes_lowest_free_in_band(self) -> None:
        pool = ServiceIPPool("10.96.0.0/24", strategy="sequential")
        got = [last_octet(pool.allocate_next()) for _ in range(5)]
        assert got == [17, 18, 19, 20, 21]
        pool.allocate("10.96.0.22")
        pool.release("10.96.0.18")
        assert last_octet(pool.allocate_next()) == 18
        assert last_octet(pool.allocate_next()) == 23

    def test_sequential_ipv6(self) -> None:
        pool = ServiceIPPool("fd00:10:96::/112", strategy="sequential")
        assert pool.offset == 256
        assert pool.allocate_next() == ip("fd00:10:96::101")
        assert pool.allocate_next() == ip("fd00:10:96::102")


class TestRandom:
    def test_seeded_rng_is_reproducible(self) -> None:
        a = ServiceIPPool("10.96.0.0/16", rng=random.Random(7))
        b = ServiceIPPool("10.96.0.0/16", rng=random.Random(7))
        seq_a = [a.allocate_next() for _ in range(100)]
        seq_b = [b.allocate_next() for _ in range(100)]
        assert seq_a == seq_b
        c = ServiceIPPool("10.96.0.0/16", rng=random.Random(8))
        assert [c.allocate_next() for _ in range(100)] != seq_a

    def test_seeded_rng_is_reproducible_v6_huge(self) -> None:
        a = ServiceIPPool("fd00::/64", rng=random.Random(7))
        b = ServiceIPPool("fd00::/64", rng=random.Random(7))
        assert [a.allocate_next() for _ in range(300)] == [b.allocate_next() for _ in range(300)]

    def test_random_is_not_sequential(self) -> None:
        pool = ServiceIPPool("10.96.0.0/16", rng=random.Random(7))
        got = [int(pool.allocate_next()) for _ in range(10)]
        assert got != sorted(got)

    def test_default_strategy_is_random_and_unseeded_works(self) -> None:
        pool = ServiceIPPool("10.96.0.0/24")
        got = {pool.allocate_next() for _ in range(238)}
        assert {last_octet(a) for a in got} == set(range(17, 255))

    def test_huge_range_many_allocations_distinct(self) -> None:
        pool = ServiceIPPool("fd00::/64", rng=random.Random(3))
        got = [pool.allocate_next() for _ in range(2000)]
        assert len(set(got)) == 2000
        assert all(int(a) - int(pool.cidr.first) > 256 for a in got)
        assert pool.used == 2000
        pool._check_invariants()


class TestAllocateRelease:
    def test_allocate_specific(self) -> None:
        pool = ServiceIPPool("10.96.0.0/24")
        got = pool.allocate("10.96.0.50")
        assert type(got) is netaddr.IPAddress
        assert got == ip("10.96.0.50")
        assert pool.used == 1
        assert pool.free == 253
        with pytest.raises(AlreadyAllocatedError):
            pool.allocate("10.96.0.50")
        assert pool.used == 1

    @pytest.mark.parametrize(
        "bad",
        ["10.96.0.0", "10.96.0.255", "10.96.1.0", "10.95.255.254", "fd00::1", "::ffff:10.96.0.5"],
    )
    def test_allocate_not_in_range(self, bad: str) -> None:
        pool = ServiceIPPool("10.96.0.0/24")
        with pytest.raises(NotInRangeError):
            pool.allocate(bad)
        assert pool.used == 0

    def test_release(self) -> None:
        pool = ServiceIPPool("fd00::/120")
        pool.allocate("fd00::7")
        assert pool.release("fd00::7") is True
        assert pool.release("fd00::7") is False
        assert pool.release("fd00::8") is False
        assert pool.used == 0
        for bad in ("fd00::", "fd00::100", "fd01::7", "10.0.0.7"):
            with pytest.raises(NotInRangeError):
                pool.release(bad)

    def test_is_allocated(self) -> None:
        pool = ServiceIPPool("10.96.0.0/24")
        pool.allocate("10.96.0.9")
        assert pool.is_allocated("10.96.0.9") is True
        assert pool.is_allocated("10.96.0.10") is False
        for outside in ("10.96.0.0", "10.96.0.255", "10.97.0.9", "fd00::9"):
            assert pool.is_allocated(outside) is False

    def test_iter_ascending_generator(self) -> None:
        pool = ServiceIPPool("10.96.0.0/24")
        for n in (200, 3, 77, 17, 254, 1):
            pool.allocate(f"10.96.0.{n}")
        assert [last_octet(a) for a in pool] == [1, 3, 17, 77, 200, 254]
        it = iter(pool)
        assert next(it) == ip("10.96.0.1")
        assert all(type(a) is netaddr.IPAddress for a in pool)

    def test_counts_past_maxsize(self) -> None:
        pool = ServiceIPPool("::/0")
        assert pool.capacity > sys.maxsize
        assert pool.free == pool.capacity
