"""Rule-based state machines: each pool against a plain ``set`` model.

Small universes (an IPv4 /24 carved into /28s: 16 subnets; Service ranges
IPv4 /24 and IPv6 /120) so that the model is exhaustive and exhaustion,
wrap-around and band switches happen often. The next-fit cursor and the
sequential strategy are modelled exactly; the random strategy is checked
against its band. ``_check_invariants()`` runs after every step.
"""

from __future__ import annotations

import json
import random

import netaddr
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dualstack_ipam import AlreadyAllocatedError, NotInRangeError, PoolExhaustedError
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

# ------------------------------------------------------------- SubnetPool


class SubnetPoolMachine(RuleBasedStateMachine):
    """``SubnetPool("10.42.0.0/24", 28)`` against a set of indices and a cursor."""

    CIDR = "10.42.0.0/24"
    PREFIXLEN = 28
    STRATEGY = "next-fit"
    OUTSIDE: tuple[str, ...] = (
        "10.42.1.0/28",
        "10.41.255.255",
        "10.43.0.0/16",
        "fd00::/120",
        "::/0",
    )
    SUPERNETS: tuple[str, ...] = ("10.42.0.0/16", "10.0.0.0/8", "0.0.0.0/0", "10.42.0.0/24")

    def __init__(self) -> None:
        super().__init__()
        self.pool = SubnetPool(self.CIDR, self.PREFIXLEN, strategy=self.STRATEGY)
        self.capacity = self.pool.capacity
        self.width = 32 if self.pool.cidr.version == 4 else 128
        self.held: set[int] = set()
        self.cursor = 0

    def cidr(self, index: int, span: int) -> tuple[str, set[int]]:
        """A CIDR covering 2**span subnets from ``index`` (span < 0: inside one)."""
        if span < 0:
            first = int(self.pool.subnet_at(index).first)
            plen = min(self.PREFIXLEN - span, self.width)
            net = netaddr.IPNetwork((first, plen), self.pool.cidr.version)
            return str(net), {index}
        start = index >> span << span
        first = int(self.pool.subnet_at(start).first)
        net = netaddr.IPNetwork((first, self.PREFIXLEN - span), self.pool.cidr.version)
        return str(net), set(range(start, start + (1 << span)))

    def expected_next(self) -> int:
        if self.STRATEGY == "lowest":
            return min(set(range(self.capacity)) - self.held)
        for step in range(self.capacity):
            index = (self.cursor + step) % self.capacity
            if index not in self.held:
                return index
        raise AssertionError("unreachable: pool not full")

    @rule()
    def allocate_next(self) -> None:
        if len(self.held) == self.capacity:
            with pytest.raises(PoolExhaustedError):
                self.pool.allocate_next()
            return
        want = self.expected_next()
        got = self.pool.allocate_next()
        assert got == self.pool.subnet_at(want), (got, want, self.cursor)
        self.held.add(want)
        self.cursor = (want + 1) % self.capacity

    @rule(index=st.integers(0, 15))
    def allocate(self, index: int) -> None:
        """Take one given subnet (``occupy`` of exactly that subnet)."""
        subnet = self.pool.subnet_at(index)
        assert self.pool.occupy(subnet) == (index not in self.held)
        self.held.add(index)

    @rule(index=st.integers(0, 15), span=st.integers(-3, 4))
    def occupy(self, index: int, span: int) -> None:
        cidr, covered = self.cidr(index, span)
        assert self.pool.occupy(cidr) == len(covered - self.held)
        self.held |= covered

    @rule(index=st.integers(0, 15), span=st.integers(-3, 4))
    def release(self, index: int, span: int) -> None:
        cidr, covered = self.cidr(index, span)
        assert self.pool.release(cidr) == len(covered & self.held)
        self.held -= covered

    @rule(data=st.data(), occupy=st.booleans())
    def whole_pool(self, data: st.DataObject, occupy: bool) -> None:
        supernet = data.draw(st.sampled_from(self.SUPERNETS))
        everything = set(range(self.capacity))
        if occupy:
            assert self.pool.occupy(supernet) == len(everything - self.held)
            self.held = everything
        else:
            assert self.pool.release(supernet) == len(self.held)
            self.held = set()

    @rule(index=st.integers(0, 15), span=st.integers(-3, 4))
    def is_allocated(self, index: int, span: int) -> None:
        cidr, covered = self.cidr(index, span)
        assert self.pool.is_allocated(cidr) == (covered <= self.held)

    @rule(data=st.data(), method=st.sampled_from(["occupy", "release", "index_of"]))
    def refuse_outside(self, data: st.DataObject, method: str) -> None:
        outside = data.draw(st.sampled_from(self.OUTSIDE))
        before = self.pool.snapshot()
        with pytest.raises(NotInRangeError):
            getattr(self.pool, method)(outside)
        assert self.pool.is_allocated(outside) is False
        assert self.pool.snapshot() == before

    @rule()
    def snapshot_restore(self) -> None:
        data = self.pool.snapshot()
        self.pool = SubnetPool.restore(json.loads(json.dumps(data)))
        assert self.pool.snapshot() == data

    @invariant()
    def consistent(self) -> None:
        self.pool._check_invariants()
        assert self.pool.used == len(self.held)
        assert self.pool.free == self.capacity - len(self.held)
        assert [self.pool.index_of(n) for n in self.pool] == sorted(self.held)
        assert self.pool.snapshot()["cursor"] == self.cursor


class LowestSubnetPoolMachine(SubnetPoolMachine):
    STRATEGY = "lowest"

    @invariant()
    def consistent(self) -> None:
        self.pool._check_invariants()
        assert self.pool.used == len(self.held)
        assert [self.pool.index_of(n) for n in self.pool] == sorted(self.held)


class IPv6SubnetPoolMachine(SubnetPoolMachine):
    CIDR = "fc00::/120"
    PREFIXLEN = 124
    OUTSIDE = (
        "fc00::100/124",
        "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "10.42.0.0/24",
        "fc01::/16",
    )
    SUPERNETS = ("fc00::/24", "::/0", "fc00::/120")


TestSubnetPool = SubnetPoolMachine.TestCase
TestLowestSubnetPool = LowestSubnetPoolMachine.TestCase
TestIPv6SubnetPool = IPv6SubnetPoolMachine.TestCase


# ---------------------------------------------------------- ServiceIPPool


class ServiceIPPoolMachine(RuleBasedStateMachine):
    """A Service range against a set of usable-address indices."""

    CIDR = "fd00::/120"
    STRATEGY = "sequential"

    def __init__(self) -> None:
        super().__init__()
        self.pool: ServiceIPPool | None = None
        self.held: set[int] = set()
        network = netaddr.IPNetwork(self.CIDR)
        self.first = network.first + 1
        self.version = network.version
        last = network.last if self.version == 6 else network.last - 1
        self.capacity = last - network.first
        size = network.size
        self.offset = 0 if size <= 16 else min(max(16, size // 16), 256)
        # Addresses allocate() refuses as not in range (the other family too).
        outside = [network.first, network.first - 1, network.last + 1]
        if self.version == 4:
            outside.append(network.last)
        self.outside = [str(netaddr.IPAddress(a, self.version)) for a in outside]
        self.outside.append("fd00::1" if self.version == 4 else "10.96.0.1")

    @initialize(seed=st.integers(0, 2**32))
    def create(self, seed: int) -> None:
        self.pool = ServiceIPPool(self.CIDR, strategy=self.STRATEGY, rng=random.Random(seed))
        assert self.pool.capacity == self.capacity
        assert self.pool.offset == self.offset

    @property
    def live(self) -> ServiceIPPool:
        assert self.pool is not None
        return self.pool

    def ip(self, index: int) -> netaddr.IPAddress:
        return netaddr.IPAddress(self.first + index, self.version)

    def index(self, ip: netaddr.IPAddress) -> int:
        return int(ip) - int(self.first)

    def check_next(self) -> bool:
        """One ``allocate_next`` against the model; False once exhausted."""
        if len(self.held) == self.capacity:
            with pytest.raises(PoolExhaustedError):
                self.live.allocate_next()
            return False
        got = self.index(self.live.allocate_next())
        upper = set(range(self.offset, self.capacity)) - self.held
        band = upper or set(range(self.offset)) - self.held
        assert got in band, (got, self.offset, len(self.held))
        if self.STRATEGY == "sequential":
            assert got == min(band)
        self.held.add(got)
        return True

    @rule()
    def allocate_next(self) -> None:
        self.check_next()

    @rule(count=st.integers(1, 300))
    def allocate_many(self, count: int) -> None:
        for _ in range(count):
            if not self.check_next():
                break

    @rule(index=st.integers(0, 254))
    def allocate(self, index: int) -> None:
        index %= self.capacity
        if index in self.held:
            with pytest.raises(AlreadyAllocatedError):
                self.live.allocate(self.ip(index))
            return
        assert self.live.allocate(str(self.ip(index))) == self.ip(index)
        self.held.add(index)

    @rule(index=st.integers(0, 254))
    def release(self, index: int) -> None:
        index %= self.capacity
        assert self.live.release(self.ip(index)) is (index in self.held)
        self.held.discard(index)

    @rule(low=st.booleans())
    def release_band(self, low: bool) -> None:
        """Free a whole band, so that dynamic allocation switches bands often."""
        band = range(self.offset) if low else range(self.offset, self.capacity)
        for index in band:
            assert self.live.release(self.ip(index)) is (index in self.held)
            self.held.discard(index)

    @rule(index=st.integers(0, 254))
    def is_allocated(self, index: int) -> None:
        index %= self.capacity
        assert self.live.is_allocated(self.ip(index)) is (index in self.held)

    @rule(data=st.data(), method=st.sampled_from(["allocate", "release"]))
    def refuse_outside(self, data: st.DataObject, method: str) -> None:
        outside = data.draw(st.sampled_from(self.outside))
        before = self.live.snapshot()
        with pytest.raises(NotInRangeError):
            getattr(self.live, method)(outside)
        assert self.live.is_allocated(outside) is False
        assert self.live.snapshot() == before

    @rule(seed=st.integers(0, 2**32))
    def snapshot_restore(self, seed: int) -> None:
        data = self.live.snapshot()
        self.pool = ServiceIPPool.restore(json.loads(json.dumps(data)), rng=random.Random(seed))
        assert self.pool.snapshot() == data

    @invariant()
    def consistent(self) -> None:
        self.live._check_invariants()
        assert self.live.used == len(self.held)
        assert self.live.free == self.capacity - len(self.held)
        assert [self.index(ip) for ip in self.live] == sorted(self.held)


class RandomIPv6ServiceMachine(ServiceIPPoolMachine):
    STRATEGY = "random"


class SequentialIPv4ServiceMachine(ServiceIPPoolMachine):
    CIDR = "10.96.0.0/24"


class RandomIPv4ServiceMachine(ServiceIPPoolMachine):
    CIDR = "10.96.0.0/24"
    STRATEGY = "random"


TestSequentialIPv6Service = ServiceIPPoolMachine.TestCase
TestRandomIPv6Service = RandomIPv6ServiceMachine.TestCase
TestSequentialIPv4Service = SequentialIPv4ServiceMachine.TestCase
TestRandomIPv4Service = RandomIPv4ServiceMachine.TestCase
