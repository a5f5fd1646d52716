"""SubnetPool: carve a cluster CIDR into equal subnets (Kubernetes ``CidrSet``).

Subnet ``i`` of ``cidr`` carved at ``prefixlen`` is
``network + (i << (width - prefixlen))``; the allocated set is a
:class:`~dualstack_ipam.bitmap.Bitmap` of subnet indices, so a pool of 2**40
subnets costs memory only for what is used and ``occupy`` / ``release`` of a
range cost O(log n) plus its partly covered chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from random import Random
from typing import Any, ClassVar

import netaddr

from dualstack_ipam.errors import (
    AddressFormatError,
    InvalidConfigError,
    IPAMError,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)
from dualstack_ipam.net import Net, make_address, make_network, parse_address, parse_network
from dualstack_ipam.pools.base import BasePool
from dualstack_ipam.pools.ranges import AddressSpan
from dualstack_ipam.pools.strategies import SUBNET_STRATEGIES, Strategy
from dualstack_ipam.snapshot import read_int, write_int

__all__ = ["SubnetPool"]


class SubnetPool(BasePool):
    """Subnets of length ``prefixlen`` carved from ``cidr``.

    Args:
        cidr: the range to carve (host bits are dropped, as Kubernetes does).
        prefixlen: the length of each subnet, from ``cidr``'s own prefix
            length up to the family width; no limit on the difference.
        strategy: a :class:`~dualstack_ipam.pools.strategies.Strategy` or its
            string: ``"next-fit"`` (Kubernetes' rotating cursor, the default)
            or ``"lowest"`` (always the lowest free subnet).
        cooldown: seconds a released subnet waits before
            :meth:`allocate_next` hands it out again (0, the default: off).
        clock: a zero-argument callable giving seconds that never go back
            (``time.monotonic`` if None), read only when ``cooldown`` > 0.

    Raises:
        AddressFormatError: ``cidr`` is not a network.
        InvalidConfigError: a bad ``prefixlen``, ``strategy``, ``cooldown``
            or ``clock``.

    Complexity:
        O(capacity) bytes up to 2**24 subnets (zeroed in C), O(1) above.

    >>> pool = SubnetPool("10.244.0.0/16", 24)
    >>> pool.capacity, pool.allocate_next(), pool.allocate_next()
    (256, IPNetwork('10.244.0.0/24'), IPNetwork('10.244.1.0/24'))
    >>> pool.occupy("10.244.8.0/22"), pool.used, pool.is_allocated("10.244.9.0/24")
    (4, 6, True)
    >>> SubnetPool("fc00::/24", 64).capacity == 2**40
    True
    """

    __slots__ = ("_cursor", "_low", "_next_fit", "_prefixlen", "_shift")

    _KIND: ClassVar[str] = "SubnetPool"
    _STRATEGIES: ClassVar[tuple[Strategy, ...]] = SUBNET_STRATEGIES
    _SNAPSHOT_KEYS: ClassVar[tuple[str, ...]] = ("prefixlen", "cursor")

    def __init__(
        self,
        cidr: Any,
        prefixlen: int,
        *,
        strategy: Strategy | str = Strategy.NEXT_FIT,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        net = parse_network(cidr)
        full = net.family.width
        if isinstance(prefixlen, bool) or not isinstance(prefixlen, int):
            raise InvalidConfigError(
                f"prefixlen must be an int, got {prefixlen!r}", value=prefixlen
            )
        if not net.prefixlen <= prefixlen <= full:
            raise InvalidConfigError(
                f"prefixlen {prefixlen!r} must be between the cidr's own prefix length "
                f"({net.prefixlen}) and {full} for {net.family} {_text(net)}",
                value=prefixlen,
            )
        super().__init__(net, 1 << (prefixlen - net.prefixlen), strategy, cooldown, clock)
        self._next_fit = self._strategy is Strategy.NEXT_FIT
        self._prefixlen = prefixlen
        self._shift = full - prefixlen
        self._cursor = 0
        # Every subnet below _low is allocated: where "lowest" starts searching.
        self._low = 0

    def __repr__(self) -> str:
        return (
            f"SubnetPool({_text(self._net)!r}, {self._prefixlen}, "
            f"strategy={self._strategy.value!r})"
            f"<used={self.used}/{self.capacity}>"
        )

    @property
    def prefixlen(self) -> int:
        """The length of every subnet handed out.

        Complexity:
            O(1).
        """
        return self._prefixlen

    @property
    def cursor(self) -> int:
        """Index where the next ``"next-fit"`` scan starts.

        Complexity:
            O(1).
        """
        return self._cursor

    # ------------------------------------------------------------ helpers

    def _subnet(self, index: int) -> netaddr.IPNetwork:
        return make_network(self._net.value + (index << self._shift), self._prefixlen, self._family)

    def _span(self, net: Net) -> tuple[int, int] | None:
        """Subnet indices ``[first, stop)`` overlapping ``net``, None if disjoint."""
        if net.family is not self._family:
            return None
        full = self._family.width
        lo, hi = self._net.value, self._net.value + (1 << (full - self._net.prefixlen))
        start, stop = net.value, net.value + (1 << (full - net.prefixlen))
        if stop <= lo or start >= hi:
            return None
        start, stop = max(start, lo), min(stop, hi)
        return (start - lo) >> self._shift, ((stop - 1 - lo) >> self._shift) + 1

    def _slots_of(self, span: AddressSpan) -> tuple[int, int] | None:
        if span.family is not self._family:
            return None
        lo = self._net.value
        hi = lo + (1 << (self._family.width - self._net.prefixlen)) - 1
        first, last = max(span.first, lo), min(span.last, hi)
        if first > last:
            return None
        return (first - lo) >> self._shift, ((last - lo) >> self._shift) + 1

    def _slot_addresses(self, start: int, stop: int) -> tuple[int, int]:
        return self._net.value + (start << self._shift), self._net.value + (stop << self._shift) - 1

    def _describe(self, slot: int) -> netaddr.IPNetwork:
        return self._subnet(slot)

    def _unmark(self, start: int, stop: int) -> int:
        changed = self._bitmap.discard_range(start, stop)
        if start < self._low:
            self._low = start
        return changed

    def _occupy_span(self, start: int, stop: int, value: Any = None) -> int:
        """:meth:`occupy` of the subnets ``[start, stop)`` (inside the pool), by index.

        A cooling subnet is taken, a reserved one refused (the error quotes
        ``value``, None: the subnet ``start``, and is counted); returns how
        many changed.
        """
        with self._lock:
            cooled = 0
            if not self._plain:
                try:
                    cooled = self._claim(start, stop, value)
                except IPAMError as exc:
                    self._note_error(exc)
                    raise
            if stop - start == 1:  # the owner table's case: no range walk
                return int(self._bitmap.add(start)) + cooled
            return self._bitmap.add_range(start, stop) + cooled

    def _release_span(self, start: int, stop: int) -> int:
        """:meth:`release` of the subnets ``[start, stop)`` (inside the pool), by index.

        Frees the allocated ones (or starts their cooldown), lowers the low
        mark and counts the releases; returns how many changed.
        """
        with self._lock:
            if self._plain:
                bitmap = self._bitmap
                if stop - start == 1:  # the owner table's case: no range walk
                    changed = int(bitmap.discard(start))
                else:
                    changed = bitmap.discard_range(start, stop)
                if start < self._low:
                    self._low = start
            else:
                changed = self._release_slots(start, stop)
            self._releases += changed
            return changed

    def _span_or_raise(self, cidr: Any) -> tuple[int, int]:
        net = parse_network(cidr)
        span = self._span(net)
        if span is None:
            value = _canonical(cidr, net)
            raise NotInRangeError(
                f"{cidr!r} does not overlap the pool {_text(self._net)}",
                value=value,
                pool_cidr=self.cidr,
            )
        return span

    # ------------------------------------------------------------ public

    def allocate_next(self) -> netaddr.IPNetwork:
        """Allocate the next free subnet.

        ``"next-fit"`` scans from the cursor, wrapping, takes the first free
        subnet and moves the cursor one past it; ``"lowest"`` takes the lowest
        free subnet. Reserved subnets are never handed out, nor cooling ones
        (released less than ``cooldown`` seconds ago).

        Raises:
            PoolExhaustedError: every subnet is allocated, reserved or
                cooling (the message gives the reserved and cooling counts,
                and when the first cooling subnet comes free).

        Complexity:
            O(1) amortised, O(log n) at worst; independent of the fill.
            With a cooldown, O(log c) amortised more per released run
            coming free (c cooling runs).

        >>> pool = SubnetPool("10.0.0.0/30", 31)
        >>> pool.allocate_next(), pool.allocate_next()
        (IPNetwork('10.0.0.0/31'), IPNetwork('10.0.0.2/31'))
        """
        with self._lock:
            if self._queue:
                self._expire()
            start = self._cursor if self._next_fit else self._low
            index = self._bitmap.take_free(start, 0, self._bitmap.size)
            if index < 0:
                self._errors["exhausted"] += 1
                raise PoolExhaustedError(
                    "CIDR allocation failed; there are no remaining CIDRs left to allocate "
                    f"in the accepted range {_text(self._net)}{self._blocked_note()}",
                    pool_cidr=self.cidr,
                )
            following = index + 1 if index + 1 < self._bitmap.size else 0
            if self._next_fit:
                self._cursor = following
            else:
                self._low = following
        return self._subnet(index)

    def occupy(self, cidr: Any) -> int:
        """Mark every subnet overlapping ``cidr`` as used; return how many changed.

        A CIDR larger than the pool marks the whole pool; one smaller than a
        subnet marks the subnet holding it. Idempotent; the cursor stays. A
        cooling subnet is taken (its cooldown ends); a reserved one is
        refused.

        Raises:
            NotInRangeError: ``cidr`` does not overlap the pool.
            AlreadyAllocatedError: a subnet of ``cidr`` is reserved (the
                message says so, with the reason); nothing changed.

        Complexity:
            O(log n) plus the partly covered chunks, whatever the size
            (plus the reserved and cooling runs inside ``cidr``).

        >>> pool = SubnetPool("10.42.0.0/16", 24)
        >>> pool.occupy("10.42.8.0/22"), pool.occupy("10.42.9.0/24"), pool.occupy("10.0.0.0/8")
        (4, 0, 252)
        """
        try:
            start, stop = self._span_or_raise(cidr)
        except IPAMError as exc:
            self._note_error(exc)
            raise
        return self._occupy_span(start, stop, cidr)

    def release(self, cidr: Any) -> int:
        """Mark every subnet overlapping ``cidr`` free; return how many changed.

        Releasing a free subnet is a no-op, and so is releasing a reserved
        or cooling one (see :meth:`unreserve`). The cursor stays. With a
        ``cooldown``, the released subnets start cooling: they count as
        free, but :meth:`allocate_next` skips them until it has passed.

        Raises:
            NotInRangeError: ``cidr`` does not overlap the pool.

        Complexity:
            O(log n) plus the partly covered chunks, as :meth:`occupy`.

        >>> pool = SubnetPool("10.42.0.0/16", 24)
        >>> pool.occupy("10.42.0.0/16"), pool.release("10.42.4.0/22"), pool.release("10.42.4.0/24")
        (256, 4, 0)
        """
        try:
            start, stop = self._span_or_raise(cidr)
        except IPAMError as exc:
            self._note_error(exc)
            raise
        return self._release_span(start, stop)

    def is_allocated(self, cidr: Any) -> bool:
        """Whether every subnet overlapping ``cidr`` is allocated.

        False when ``cidr`` lies outside the pool (or is of the other family),
        or covers a reserved or cooling subnet.

        Complexity:
            O(log n) plus a scan of at most two chunks.

        >>> pool = SubnetPool("10.42.0.0/16", 24); _ = pool.occupy("10.42.1.0/24")
        >>> pool.is_allocated("10.42.1.7"), pool.is_allocated("10.42.0.0/23")
        (True, False)
        >>> pool.is_allocated("::/0")
        False
        """
        span = self._span(parse_network(cidr))
        return span is not None and self._span_allocated(*span)

    def index_of(self, address_or_cidr: Any) -> int:
        """Index of the subnet holding the first address of ``address_or_cidr``.

        Raises:
            NotInRangeError: that address is outside the pool.

        Complexity:
            O(1).

        >>> SubnetPool("127.123.0.0/16", 24).index_of("127.123.15.9")
        15
        """
        net = parse_network(address_or_cidr)
        full = self._family.width
        offset = net.value - self._net.value
        if net.family is not self._family or not 0 <= offset < 1 << (full - self._net.prefixlen):
            raise NotInRangeError(
                f"{address_or_cidr!r} is not inside the pool {_text(self._net)}",
                value=_canonical(address_or_cidr, net),
                pool_cidr=self.cidr,
            )
        return offset >> self._shift

    def subnet_at(self, index: int) -> netaddr.IPNetwork:
        """The subnet at ``index``.

        Raises:
            IndexError: unless ``index`` is an int with ``0 <= index < capacity``.

        Complexity:
            O(1).

        >>> SubnetPool("2001:db8:1234::/48", 64).subnet_at(15)
        IPNetwork('2001:db8:1234:f::/64')
        """
        if isinstance(index, bool) or not isinstance(index, int):
            raise IndexError(f"subnet index must be an int, got {index!r}")
        if not 0 <= index < self._bitmap.size:
            raise IndexError(
                f"subnet index {index!r} is outside [0, {self._bitmap.size}) "
                f"of the pool {_text(self._net)}"
            )
        return self._subnet(index)

    def __iter__(self) -> Iterator[netaddr.IPNetwork]:
        """Allocated subnets, ascending (a generator).

        Read a few runs at a time under the lock (see :meth:`runs`): a subnet
        changed during the walk is seen if it lies ahead of it.

        Complexity:
            O(1) per subnet, plus :meth:`runs`.

        >>> pool = SubnetPool("10.0.0.0/16", 24); _ = pool.occupy("10.0.2.0/23")
        >>> [str(subnet) for subnet in pool]
        ['10.0.2.0/24', '10.0.3.0/24']
        """
        for index in self._indices():
            yield self._subnet(index)

    # --------------------------------------------------------- snapshots

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready, versioned description of the pool (cursor included).

        Keys: ``kind``, ``version``, ``used``, ``cidr``, ``prefixlen``,
        ``strategy``, ``cursor``, ``allocated`` and, when there are
        reservations, ``reserved`` (``[range, reason]`` pairs, as
        :meth:`reservations` lists them). Cooling subnets are written as
        free: a restored pool has none cooling. Allocations wait only while
        the state is copied (see :meth:`BasePool.snapshot`).

        Complexity:
            O(n) in the allocated chunks; the lock is held for a flat copy only.

        >>> pool = SubnetPool("10.0.0.0/16", 24); _ = pool.allocate_next()
        >>> data = pool.snapshot(); data["kind"], data["used"], data["cursor"]
        ('SubnetPool', 1, 1)
        >>> SubnetPool.restore(data).allocate_next()
        IPNetwork('10.0.1.0/24')
        """
        return self.capture()()

    def _snapshot_fields(self) -> dict[str, Any]:
        return {
            "prefixlen": self._prefixlen,
            "strategy": self._strategy.value,
            "cursor": write_int(self._cursor),
        }

    @classmethod
    def _build(cls, cidr: str, fields: Mapping[str, Any], rng: Random | None) -> SubnetPool:
        return cls(cidr, fields["prefixlen"], strategy=fields["strategy"])

    def _restored(self, fields: Mapping[str, Any]) -> None:
        cursor = read_int(fields["cursor"], "cursor")
        if cursor >= self.capacity:
            raise SnapshotError(f"snapshot cursor {cursor} is outside [0, {self.capacity})")
        if cursor and not self._next_fit:
            raise SnapshotError(
                f"snapshot cursor {cursor} given for strategy {self._strategy.value!r}"
            )
        self._cursor = cursor

    def _check_invariants(self) -> None:
        """Assert the pool's internal consistency.

        Complexity:
            O(n).
        """
        with self._lock:
            self._check_base_invariants()
            assert self._bitmap.size == 1 << (self._prefixlen - self._net.prefixlen)
            assert 0 <= self._cursor < self._bitmap.size, f"cursor {self._cursor} out of range"
            assert self._next_fit == (self._strategy is Strategy.NEXT_FIT)
            assert self._next_fit or self._cursor == 0
            assert 0 <= self._low < self._bitmap.size, f"low mark {self._low} out of range"
            assert self._bitmap.all_set(0, self._low), "low mark above a free subnet"


def _canonical(raw: Any, net: Net) -> netaddr.IPAddress | netaddr.IPNetwork:
    """The parsed form of ``raw`` for an error's ``.value``: an address stays one."""
    try:
        value, family = parse_address(raw)
    except AddressFormatError:
        return make_network(net.value, net.prefixlen, net.family)
    return make_address(value, family)


def _text(net: Net) -> str:
    return str(make_network(net.value, net.prefixlen, net.family))
