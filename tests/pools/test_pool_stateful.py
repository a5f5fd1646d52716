"""Rule-based state machines: each pool against a plain ``set`` model.

Small universes (an IPv4 /24 carved into /28s: 16 subnets; Service ranges
IPv4 /24 and IPv6 /120) so that the model is exhaustive and exhaustion,
wrap-around and band switches happen often. The next-fit cursor and the
sequential strategy are modelled exactly; the random strategy is checked
against its band. ``_check_invariants()`` runs after every step.

The model also holds the reservations (slot -> reason) and, for the
machines with a cooldown, the cooling slots (slot -> due time) under a fake
clock that a rule advances: ``allocate_next`` is checked to skip both, the
counts to add up (``capacity == used + reserved + free``, cooling counted in
``free``), and a snapshot round trip to keep the reservations (and, as
documented, to end every cooldown).
"""

from __future__ import annotations

import json
import random

import netaddr
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dualstack_ipam import AlreadyAllocatedError, NotInRangeError, PoolExhaustedError
from dualstack_ipam.pools.base import BasePool
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool

REASONS = st.sampled_from(["", "dns", "gateway"])


class Clock:
    """A fake clock the machines advance by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Marks:
    """The model's reserved and cooling slots, shared by both machines."""

    def __init__(self, cooldown: float, clock: Clock) -> None:
        self.cooldown = cooldown
        self.clock = clock
        self.reserved: dict[int, str] = {}
        self.cooling: dict[int, float] = {}

    def live_cooling(self) -> set[int]:
        self.cooling = {i: due for i, due in self.cooling.items() if due > self.clock.now}
        return set(self.cooling)

    def blocked(self, held: set[int]) -> set[int]:
        return held | set(self.reserved) | self.live_cooling()

    def released(self, slots: set[int]) -> None:
        if self.cooldown:
            for slot in slots:
                self.cooling[slot] = self.clock.now + self.cooldown

    def taken(self, slots: set[int]) -> None:
        for slot in slots:
            self.cooling.pop(slot, None)

    def reserve(self, slots: set[int], reason: str) -> int:
        new = len(slots - set(self.reserved))
        for slot in slots:
            if reason or slot not in self.reserved:
                self.reserved[slot] = reason
            self.cooling.pop(slot, None)
        return new

    def unreserve(self, slots: set[int]) -> int:
        freed = slots & set(self.reserved)
        for slot in freed:
            del self.reserved[slot]
        return len(freed)

    def runs(self) -> list[tuple[int, int, str]]:
        """Maximal runs of reserved slots with one reason, as ``(first, last, reason)``."""
        found: list[tuple[int, int, str]] = []
        for slot in sorted(self.reserved):
            reason = self.reserved[slot]
            if found and found[-1][1] == slot - 1 and found[-1][2] == reason:
                found[-1] = (found[-1][0], slot, reason)
            else:
                found.append((slot, slot, reason))
        return found

    def check(self, pool: BasePool, held: set[int], capacity: int) -> None:
        live = self.live_cooling()
        assert pool.used == len(held)
        assert pool.reserved == len(self.reserved)
        assert pool.cooling == len(live)
        assert pool.free == capacity - len(held) - len(self.reserved)
        assert pool.capacity == pool.used + pool.reserved + pool.free
        stats = pool.stats()
        assert (stats["used"], stats["reserved"], stats["cooling"]) == (
            len(held),
            len(self.reserved),
            len(live),
        )
        assert not held & set(self.reserved)
        assert not live & (held | set(self.reserved))


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

    COOLDOWN = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.pool = self.build()
        self.capacity = self.pool.capacity
        self.width = 32 if self.pool.cidr.version == 4 else 128
        self.held: set[int] = set()
        self.cursor = 0
        self.marks = Marks(self.COOLDOWN, self.clock)

    def build(self) -> SubnetPool:
        return SubnetPool(
            self.CIDR,
            self.PREFIXLEN,
            strategy=self.STRATEGY,
            cooldown=self.COOLDOWN,
            clock=self.clock,
        )

    def address_range(self, first: int, length: int) -> tuple[str, set[int]]:
        """``"a-b"`` over addresses ``first .. first + length`` of the pool's range."""
        base = int(self.pool.cidr.first)
        size = self.pool.cidr.size
        last = min(first + length, size - 1)
        version = self.pool.cidr.version
        text = (
            f"{netaddr.IPAddress(base + first, version)}-{netaddr.IPAddress(base + last, version)}"
        )
        shift = self.width - self.PREFIXLEN
        return text, set(range(first >> shift, (last >> shift) + 1))

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

    def expected_next(self, blocked: set[int]) -> int:
        if self.STRATEGY == "lowest":
            return min(set(range(self.capacity)) - blocked)
        for step in range(self.capacity):
            index = (self.cursor + step) % self.capacity
            if index not in blocked:
                return index
        raise AssertionError("unreachable: pool not full")

    @rule()
    def allocate_next(self) -> None:
        blocked = self.marks.blocked(self.held)
        if len(blocked) == self.capacity:
            with pytest.raises(PoolExhaustedError) as caught:
                self.pool.allocate_next()
            assert ("cooling" in str(caught.value)) == bool(self.marks.cooling)
            assert ("reserved" in str(caught.value)) == bool(self.marks.reserved)
            return
        want = self.expected_next(blocked)
        got = self.pool.allocate_next()
        assert got == self.pool.subnet_at(want), (got, want, self.cursor)
        self.held.add(want)
        self.cursor = (want + 1) % self.capacity

    def refused_as_reserved(self, call: str, cidr: str, covered: set[int]) -> bool:
        """Check the refusal of ``occupy`` over reserved space; True if refused."""
        if not covered & set(self.marks.reserved):
            return False
        before = self.pool.snapshot()
        with pytest.raises(AlreadyAllocatedError, match="is reserved"):
            getattr(self.pool, call)(cidr)
        assert self.pool.snapshot() == before
        return True

    def take(self, cidr: str, covered: set[int]) -> None:
        if self.refused_as_reserved("occupy", cidr, covered):
            return
        assert self.pool.occupy(cidr) == len(covered - self.held)
        self.held |= covered
        self.marks.taken(covered)

    def give_back(self, cidr: str, covered: set[int]) -> None:
        assert self.pool.release(cidr) == len(covered & self.held)
        self.marks.released(covered & self.held)
        self.held -= covered

    @rule(index=st.integers(0, 15))
    def allocate(self, index: int) -> None:
        """Take one given subnet (``occupy`` of exactly that subnet)."""
        self.take(str(self.pool.subnet_at(index)), {index})

    @rule(index=st.integers(0, 15), span=st.integers(-3, 4))
    def occupy(self, index: int, span: int) -> None:
        self.take(*self.cidr(index, span))

    @rule(index=st.integers(0, 15), span=st.integers(-3, 4))
    def release(self, index: int, span: int) -> None:
        self.give_back(*self.cidr(index, span))

    @rule(data=st.data(), occupy=st.booleans())
    def whole_pool(self, data: st.DataObject, occupy: bool) -> None:
        supernet = data.draw(st.sampled_from(self.SUPERNETS))
        everything = set(range(self.capacity))
        if occupy:
            self.take(supernet, everything)
        else:
            self.give_back(supernet, everything)

    @rule(index=st.integers(0, 15), span=st.integers(-3, 4))
    def is_allocated(self, index: int, span: int) -> None:
        cidr, covered = self.cidr(index, span)
        assert self.pool.is_allocated(cidr) == (covered <= self.held)

    def reserve_slots(self, value: str, covered: set[int], reason: str) -> None:
        if covered & self.held:
            before = self.pool.snapshot()
            with pytest.raises(AlreadyAllocatedError, match="is allocated"):
                self.pool.reserve(value, reason)
            assert self.pool.snapshot() == before
            return
        assert self.pool.reserve(value, reason) == self.marks.reserve(covered, reason)

    @rule(index=st.integers(0, 15), span=st.integers(-3, 2), reason=REASONS)
    def reserve(self, index: int, span: int, reason: str) -> None:
        self.reserve_slots(*self.cidr(index, span), reason)

    @rule(first=st.integers(0, 255), length=st.integers(0, 40), reason=REASONS)
    def reserve_range(self, first: int, length: int, reason: str) -> None:
        text, covered = self.address_range(first, length)
        self.reserve_slots(text, covered, reason)

    @rule(index=st.integers(0, 15), span=st.integers(-3, 4), text=st.booleans())
    def unreserve(self, index: int, span: int, text: bool) -> None:
        cidr, covered = self.cidr(index, span)
        value = cidr if text else netaddr.IPNetwork(cidr)
        assert self.pool.unreserve(value) == self.marks.unreserve(covered)

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def reservations(self) -> None:
        got = [
            (self.pool.index_of(space[0]), self.pool.index_of(space[-1]), reason)
            for space, reason in self.pool.reservations()
        ]
        assert got == self.marks.runs()

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
        self.pool = SubnetPool.restore(
            json.loads(json.dumps(data)), cooldown=self.COOLDOWN, clock=self.clock
        )
        assert self.pool.snapshot() == data
        self.marks.cooling = {}

    @invariant()
    def consistent(self) -> None:
        self.pool._check_invariants()
        self.marks.check(self.pool, self.held, self.capacity)
        assert [self.pool.index_of(n) for n in self.pool] == sorted(self.held)
        if self.STRATEGY == "next-fit":
            assert self.pool.snapshot()["cursor"] == self.cursor


class LowestSubnetPoolMachine(SubnetPoolMachine):
    STRATEGY = "lowest"


class CoolingSubnetPoolMachine(SubnetPoolMachine):
    COOLDOWN = 5.0


class CoolingLowestSubnetPoolMachine(SubnetPoolMachine):
    STRATEGY = "lowest"
    COOLDOWN = 5.0


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
TestCoolingSubnetPool = CoolingSubnetPoolMachine.TestCase
TestCoolingLowestSubnetPool = CoolingLowestSubnetPoolMachine.TestCase


# ---------------------------------------------------------- ServiceIPPool


class ServiceIPPoolMachine(RuleBasedStateMachine):
    """A Service range against a set of usable-address indices."""

    CIDR = "fd00::/120"
    STRATEGY = "sequential"
    COOLDOWN = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.pool: ServiceIPPool | None = None
        self.held: set[int] = set()
        self.clock = Clock()
        self.marks = Marks(self.COOLDOWN, self.clock)
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
        self.pool = ServiceIPPool(
            self.CIDR,
            strategy=self.STRATEGY,
            rng=random.Random(seed),
            cooldown=self.COOLDOWN,
            clock=self.clock,
        )
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
        blocked = self.marks.blocked(self.held)
        if len(blocked) == self.capacity:
            with pytest.raises(PoolExhaustedError) as caught:
                self.live.allocate_next()
            assert ("cooling" in str(caught.value)) == bool(self.marks.cooling)
            assert ("reserved" in str(caught.value)) == bool(self.marks.reserved)
            return False
        got = self.index(self.live.allocate_next())
        upper = set(range(self.offset, self.capacity)) - blocked
        band = upper or set(range(self.offset)) - blocked
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
        if index in self.held or index in self.marks.reserved:
            before = self.live.snapshot()
            why = "already allocated" if index in self.held else "is reserved"
            with pytest.raises(AlreadyAllocatedError, match=why):
                self.live.allocate(self.ip(index))
            assert self.live.snapshot() == before
            return
        assert self.live.allocate(str(self.ip(index))) == self.ip(index)
        self.held.add(index)
        self.marks.taken({index})

    def give_back(self, index: int) -> None:
        assert self.live.release(self.ip(index)) is (index in self.held)
        if index in self.held:
            self.marks.released({index})
        self.held.discard(index)

    @rule(index=st.integers(0, 254))
    def release(self, index: int) -> None:
        self.give_back(index % self.capacity)

    @rule(low=st.booleans())
    def release_band(self, low: bool) -> None:
        """Free a whole band, so that dynamic allocation switches bands often."""
        band = range(self.offset) if low else range(self.offset, self.capacity)
        for index in band:
            self.give_back(index)

    @rule(first=st.integers(-2, 260), length=st.integers(0, 40), reason=REASONS)
    def reserve(self, first: int, length: int, reason: str) -> None:
        """Reserve ``"a-b"`` (or a CIDR when it is one) over usable indices, cut to the range."""
        network = netaddr.IPNetwork(self.CIDR)
        low = max(network.first, min(self.first + first, network.last))
        high = min(low + length, network.last)
        ends = netaddr.IPAddress(low, self.version), netaddr.IPAddress(high, self.version)
        value: object = netaddr.IPRange(*ends) if length % 2 else f"{ends[0]}-{ends[1]}"
        top = min(high - self.first, self.capacity - 1)
        covered = set(range(max(low - self.first, 0), top + 1))
        if not covered:
            with pytest.raises(NotInRangeError):
                self.live.reserve(value, reason)
            return
        if covered & self.held:
            before = self.live.snapshot()
            with pytest.raises(AlreadyAllocatedError, match="is allocated"):
                self.live.reserve(value, reason)
            assert self.live.snapshot() == before
            return
        assert self.live.reserve(value, reason) == self.marks.reserve(covered, reason)

    @rule(first=st.integers(0, 254), length=st.integers(0, 40))
    def unreserve(self, first: int, length: int) -> None:
        first %= self.capacity
        last = min(first + length, self.capacity - 1)
        value = f"{self.ip(first)}-{self.ip(last)}"
        assert self.live.unreserve(value) == self.marks.unreserve(set(range(first, last + 1)))

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def reservations(self) -> None:
        got = [
            (self.index(space[0]), self.index(space[-1]), reason)
            for space, reason in self.live.reservations()
        ]
        assert got == self.marks.runs()

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
        self.pool = ServiceIPPool.restore(
            json.loads(json.dumps(data)),
            rng=random.Random(seed),
            cooldown=self.COOLDOWN,
            clock=self.clock,
        )
        assert self.pool.snapshot() == data
        self.marks.cooling = {}

    @invariant()
    def consistent(self) -> None:
        if self.pool is None:
            return
        self.live._check_invariants()
        self.marks.check(self.live, self.held, self.capacity)
        assert [self.index(ip) for ip in self.live] == sorted(self.held)


class RandomIPv6ServiceMachine(ServiceIPPoolMachine):
    STRATEGY = "random"


class SequentialIPv4ServiceMachine(ServiceIPPoolMachine):
    CIDR = "10.96.0.0/24"


class RandomIPv4ServiceMachine(ServiceIPPoolMachine):
    CIDR = "10.96.0.0/24"
    STRATEGY = "random"


class CoolingSequentialIPv4ServiceMachine(ServiceIPPoolMachine):
    CIDR = "10.96.0.0/24"
    COOLDOWN = 5.0


class CoolingRandomIPv6ServiceMachine(ServiceIPPoolMachine):
    STRATEGY = "random"
    COOLDOWN = 5.0


TestSequentialIPv6Service = ServiceIPPoolMachine.TestCase
TestRandomIPv6Service = RandomIPv6ServiceMachine.TestCase
TestSequentialIPv4Service = SequentialIPv4ServiceMachine.TestCase
TestRandomIPv4Service = RandomIPv4ServiceMachine.TestCase
TestCoolingSequentialIPv4Service = CoolingSequentialIPv4ServiceMachine.TestCase
TestCoolingRandomIPv6Service = CoolingRandomIPv6ServiceMachine.TestCase
