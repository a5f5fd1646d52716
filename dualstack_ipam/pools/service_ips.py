"""ServiceIPPool: single addresses from a Service range (Kubernetes ``ipallocator``).

Slot ``k`` of the allocated set is the address ``network + 1 + k``: the
network address is never handed out, nor is the IPv4 broadcast address. The
slots ``[0, offset)`` form the static band of KEP-3070; dynamic allocation
takes from ``[offset, capacity)`` first. Unlike Kubernetes, every address of
an IPv6 range is usable, a /64 included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from random import Random
from typing import Any, ClassVar

import netaddr

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    InvalidConfigError,
    IPAMError,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.net import (
    IPFamily,
    address_factory,
    make_address,
    parse_address,
    parse_network,
    usable_span,
)
from dualstack_ipam.pools.base import BasePool
from dualstack_ipam.pools.ranges import AddressSpan
from dualstack_ipam.pools.strategies import SERVICE_STRATEGIES, Strategy

__all__ = ["ServiceIPPool", "static_band_size"]


def static_band_size(range_size: int) -> int:
    """KEP-3070's static band for a range of ``range_size`` addresses.

    0 if the range holds 16 addresses or fewer, else ``range_size // 16``
    clamped to ``[16, 256]``.

    Complexity:
        O(1).

    >>> [static_band_size(2**h) for h in (4, 5, 10, 24)]
    [0, 16, 64, 256]
    """
    if range_size <= 16:
        return 0
    return min(max(16, range_size // 16), 256)


class ServiceIPPool(BasePool):
    """Service cluster IPs from one range.

    Args:
        cidr: the Service range (host bits are dropped).
        strategy: a :class:`~dualstack_ipam.pools.strategies.Strategy` or its
            string: ``"random"`` (the default, as Kubernetes: a random start
            in the band, then the next free address) or ``"sequential"`` (the
            lowest free address of the band).
        rng: a ``random.Random`` for reproducible runs; a fresh one if None.
        cooldown: seconds a released address waits before
            :meth:`allocate_next` hands it out again (0, the default: off).
        clock: a zero-argument callable giving seconds that never go back
            (``time.monotonic`` if None), read only when ``cooldown`` > 0.

    Raises:
        AddressFormatError: ``cidr`` is not a network.
        InvalidConfigError: a bad ``strategy``, ``rng``, ``cooldown`` or
            ``clock``.

    Complexity:
        O(capacity) bytes up to 2**24 addresses (zeroed in C), O(1) above.

    >>> import random
    >>> pool = ServiceIPPool("10.96.0.0/12", rng=random.Random(1))
    >>> pool.capacity, pool.offset
    (1048574, 256)
    >>> pool.allocate("10.96.0.10"), pool.is_allocated("10.96.0.10"), pool.used
    (IPAddress('10.96.0.10'), True, 1)
    >>> ServiceIPPool("fd00::/64", strategy="sequential").allocate_next()
    IPAddress('fd00::101')
    """

    __slots__ = (
        "_base",
        "_low",
        "_low_static",
        "_make",
        "_offset",
        "_random",
        "_rng",
        "_static_used",
        "_top",
    )

    _KIND: ClassVar[str] = "ServiceIPPool"
    _STRATEGIES: ClassVar[tuple[Strategy, ...]] = SERVICE_STRATEGIES

    def __init__(
        self,
        cidr: Any,
        *,
        strategy: Strategy | str = Strategy.RANDOM,
        rng: Random | None = None,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        net = parse_network(cidr)
        if rng is not None and not isinstance(rng, Random):
            raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)
        first, usable = usable_span(net.family, net.prefixlen)
        super().__init__(net, usable, strategy, cooldown, clock)
        self._base = net.value + first
        self._offset = static_band_size(1 << (net.family.width - net.prefixlen))
        self._top = usable
        self._random = self._strategy is Strategy.RANDOM
        self._rng = rng if rng is not None else Random()
        self._make = address_factory(net.family)
        # Marked slots (allocated, reserved or cooling) in the static band, so
        # a full dynamic band is skipped in
        # O(1) instead of being searched on every allocation.
        self._static_used = 0
        # Every slot of [offset, _low) and of [0, _low_static) is used, so the
        # sequential strategy starts its search there instead of re-walking
        # the full runs below (allocate keeps this true; release lowers them).
        self._low = self._offset
        self._low_static = 0

    def __repr__(self) -> str:
        return (
            f"ServiceIPPool({str(self.cidr)!r}, strategy={self._strategy.value!r})"
            f"<used={self.used}/{self.capacity}>"
        )

    @property
    def offset(self) -> int:
        """Size of the static band at the bottom of the range.

        Complexity:
            O(1).
        """
        return self._offset

    # ------------------------------------------------------------ helpers

    def _slot(self, ip: Any) -> int:
        """The slot of ``ip``, or -1 if it is not a usable address of the range."""
        value, family = parse_address(ip)
        slot = value - self._base
        if family is not self._family or not 0 <= slot < self._bitmap.size:
            return -1
        return slot

    def _slots_of(self, span: AddressSpan) -> tuple[int, int] | None:
        if span.family is not self._family:
            return None
        start = max(span.first - self._base, 0)
        stop = min(span.last - self._base + 1, self._top)
        return (start, stop) if start < stop else None

    def _slot_addresses(self, start: int, stop: int) -> tuple[int, int]:
        return self._base + start, self._base + stop - 1

    def _describe(self, slot: int) -> netaddr.IPAddress:
        return make_address(self._base + slot, self._family)

    def _mark(self, start: int, stop: int) -> int:
        offset = self._offset
        static = self._bitmap.add_range(start, min(stop, offset)) if start < offset else 0
        dynamic = self._bitmap.add_range(max(start, offset), stop) if stop > offset else 0
        self._static_used += static
        return static + dynamic

    def _unmark(self, start: int, stop: int) -> int:
        offset = self._offset
        static = dynamic = 0
        if start < offset:
            static = self._bitmap.discard_range(start, min(stop, offset))
            self._static_used -= static
            self._low_static = min(self._low_static, start)
        if stop > offset:
            dynamic = self._bitmap.discard_range(max(start, offset), stop)
            self._low = min(self._low, max(start, offset))
        return static + dynamic

    def _slot_or_raise(self, ip: Any) -> int:
        slot = self._slot(ip)
        if slot < 0:
            value, family = parse_address(ip)
            raise NotInRangeError(
                f"provided IP {ip!r} is not in the valid range of {self.cidr}; the range of "
                "valid IPs excludes the network address"
                + (" and the broadcast address" if self._family is IPFamily.IPv4 else ""),
                value=make_address(value, family),
                pool_cidr=self.cidr,
            )
        return slot

    def _allocate_slot(self, slot: int, ip: Any = None) -> None:
        """:meth:`allocate` of the usable ``slot``.

        A cooling slot is taken; a taken or reserved one is refused, the
        error quoting ``ip`` (None: the slot's address, built only then)
        and counted.
        """
        with self._lock:
            if self._bitmap.add(slot):
                if slot < self._offset:
                    self._static_used += 1
                return
            try:
                if self._plain or not self._claim(slot, slot + 1, ip):
                    address = self._describe(slot)
                    shown = address if ip is None else ip
                    raise AlreadyAllocatedError(
                        f"provided IP {shown!r} is already allocated in {self.cidr}", value=address
                    )
            except IPAMError as exc:
                self._note_error(exc)
                raise

    # ------------------------------------------------------------ public

    def allocate(self, ip: Any) -> netaddr.IPAddress:
        """Allocate the address ``ip``.

        A cooling address can be allocated this way (its cooldown ends); a
        reserved one cannot.

        Raises:
            NotInRangeError: ``ip`` is not a usable address of this range.
            AlreadyAllocatedError: ``ip`` is taken, or reserved (then the
                message says so, with the reason).

        Complexity:
            O(1) amortised.

        >>> pool = ServiceIPPool("192.168.1.0/24")
        >>> pool.allocate("192.168.1.1")
        IPAddress('192.168.1.1')
        """
        try:
            slot = self._slot_or_raise(ip)
        except IPAMError as exc:
            self._note_error(exc)
            raise
        self._allocate_slot(slot, ip)
        return make_address(self._base + slot, self._family)

    def allocate_next(self) -> netaddr.IPAddress:
        """Allocate a dynamic address: the upper band first, then the static band.

        Reserved addresses are never handed out, nor cooling ones (released
        less than ``cooldown`` seconds ago).

        Raises:
            PoolExhaustedError: every usable address is allocated, reserved
                or cooling (the message gives the reserved and cooling
                counts, and when the first cooling address comes free).

        Complexity:
            O(1) amortised; independent of the range size and fill. With a
            cooldown, O(log c) amortised more per address coming free (c
            cooling runs).

        >>> pool = ServiceIPPool("192.168.1.0/25", strategy="sequential")
        >>> pool.offset, pool.allocate_next()
        (16, IPAddress('192.168.1.17'))
        """
        with self._lock:
            if self._queue:
                self._expire()
            bitmap, offset, top = self._bitmap, self._offset, self._top
            slot = -1
            if bitmap.count - self._static_used < top - offset:
                if self._random:
                    slot = bitmap.take_random(offset, top, self._rng)
                else:
                    slot = bitmap.take_free(self._low, offset, top)
                    self._low = slot + 1 if slot + 1 < top else offset
            elif self._static_used < offset:
                if self._random:
                    slot = bitmap.take_random(0, offset, self._rng)
                else:
                    slot = bitmap.take_free(self._low_static, 0, offset)
                    self._low_static = slot + 1 if slot + 1 < offset else 0
                self._static_used += 1
            if slot < 0:
                self._errors["exhausted"] += 1
                raise PoolExhaustedError(
                    f"range is full: no free address left in {self.cidr}{self._blocked_note()}",
                    pool_cidr=self.cidr,
                )
            return self._make(self._base + slot)

    def release(self, ip: Any) -> bool:
        """Free ``ip``; True if it was allocated, False if it was already free.

        A reserved or cooling address is not allocated: False, nothing
        changes (see :meth:`unreserve`). With a ``cooldown``, the released
        address starts cooling: it counts as free, but
        :meth:`allocate_next` skips it until the cooldown has passed.

        Raises:
            NotInRangeError: ``ip`` is not a usable address of this range.

        Complexity:
            O(1) amortised.

        >>> pool = ServiceIPPool("192.168.1.0/24"); _ = pool.allocate("192.168.1.9")
        >>> pool.release("192.168.1.9"), pool.release("192.168.1.9")
        (True, False)
        """
        try:
            slot = self._slot_or_raise(ip)
        except IPAMError as exc:
            self._note_error(exc)
            raise
        return self._release_slot(slot)

    def _release_slot(self, slot: int) -> bool:
        """:meth:`release` of the usable ``slot``: True if it was allocated.

        Frees it (or starts its cooldown), lowers the band's low mark and
        counts the release.
        """
        with self._lock:
            if not self._plain:
                if not self._release_slots(slot, slot + 1):
                    return False
            elif not self._bitmap.discard(slot):
                return False
            elif slot < self._offset:
                self._static_used -= 1
                if slot < self._low_static:
                    self._low_static = slot
            elif slot < self._low:
                self._low = slot
            self._releases += 1
            return True

    def is_allocated(self, ip: Any) -> bool:
        """Whether ``ip`` is allocated (False outside the usable range, or reserved or cooling).

        Complexity:
            O(1).

        >>> ServiceIPPool("192.168.1.0/24").is_allocated("10.0.0.1")
        False
        """
        slot = self._slot(ip)
        return slot >= 0 and self._span_allocated(slot, slot + 1)

    def __iter__(self) -> Iterator[netaddr.IPAddress]:
        """Allocated addresses, ascending (a generator).

        Read a few runs at a time under the lock (see :meth:`runs`): an
        address changed during the walk is seen if it lies ahead of it.

        Complexity:
            O(1) per address, plus :meth:`runs`.

        >>> pool = ServiceIPPool("10.96.0.0/24"); _ = pool.allocate("10.96.0.7")
        >>> list(pool)
        [IPAddress('10.96.0.7')]
        """
        for slot in self._indices():
            yield make_address(self._base + slot, self._family)

    # --------------------------------------------------------- snapshots

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready, versioned description of the pool.

        Keys: ``kind``, ``version``, ``used``, ``cidr``, ``strategy``,
        ``allocated`` and, when there are reservations, ``reserved``
        (``[range, reason]`` pairs, as :meth:`reservations` lists them).
        Cooling addresses are written as free: a restored pool has none
        cooling. The random generator's state is not part of it: pass
        ``rng`` to :meth:`restore` for a reproducible continuation.
        Allocations wait only while the state is copied (see
        :meth:`BasePool.snapshot`).

        Complexity:
            O(n) in the allocated chunks; the lock is held for a flat copy only.

        >>> pool = ServiceIPPool("10.96.0.0/24"); _ = pool.allocate("10.96.0.1")
        >>> restored = ServiceIPPool.restore(pool.snapshot())
        >>> list(restored), restored.snapshot() == pool.snapshot()
        ([IPAddress('10.96.0.1')], True)
        """
        return self.capture()()

    @classmethod
    def _build(cls, cidr: str, fields: Mapping[str, Any], rng: Random | None) -> ServiceIPPool:
        return cls(cidr, strategy=fields["strategy"], rng=rng)

    def _restored(self, fields: Mapping[str, Any]) -> None:
        self._static_used = self._count_static()

    def _count_static(self) -> int:
        used = 0
        for start, stop in self._bitmap.runs():
            if start >= self._offset:
                break
            used += min(stop, self._offset) - start
        return used

    def _check_invariants(self) -> None:
        """Assert the pool's internal consistency.

        Complexity:
            O(n).
        """
        with self._lock:
            self._check_base_invariants()
            first, usable = usable_span(self._family, self._net.prefixlen)
            size = 1 << (self._family.width - self._net.prefixlen)
            assert self._bitmap.size == usable, "capacity disagrees with the range"
            assert self._offset == static_band_size(size), "static band disagrees with the range"
            assert self._base == self._net.value + first
            assert self._top == self._bitmap.size
            assert self._static_used == self._count_static(), "static band count out of sync"
            assert 0 <= self._static_used <= self._offset
            assert self._offset <= self._low <= max(self._offset, self._top - 1)
            assert 0 <= self._low_static <= max(0, self._offset - 1)
            assert self._bitmap.all_set(self._offset, self._low), "dynamic low mark too high"
            assert self._bitmap.all_set(0, self._low_static), "static low mark too high"
            assert self._random == (self._strategy is Strategy.RANDOM)
