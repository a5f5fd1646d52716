"""What controllers need on top of allocation: reserved space, cooldown, stats.

:class:`PoolControls` is the part of :class:`~dualstack_ipam.pools.BasePool`
behind api-durable.md's "Controller operations" and "Metrics" for one
pool: ``reserve`` / ``unreserve`` / ``reservations`` / ``reserved``, the
release cooldown (``cooldown``, ``cooling``) and ``stats()``. The state
and the marking rules are :class:`~dualstack_ipam.pools.marks.SlotMarks`'.
"""

from __future__ import annotations

from typing import Any

import netaddr

from dualstack_ipam.errors import AlreadyAllocatedError, InvalidConfigError, IPAMError
from dualstack_ipam.pools.marks import SlotMarks
from dualstack_ipam.pools.ranges import range_value

__all__ = ["PoolControls"]


class PoolControls(SlotMarks):
    """Reserved space, the release cooldown and ``stats()`` of one pool (a mixin).

    Complexity:
        O(1) to set up (see :class:`~dualstack_ipam.pools.marks.SlotMarks`).
    """

    __slots__ = ()

    # ------------------------------------------------------- reserved space

    def reserve(self, range: Any, reason: str = "") -> int:
        """Set ``range`` aside: ``allocate_next`` never hands it out; return new slots.

        ``range`` is a CIDR (any network input; an address is one host), an
        ``"a-b"`` address range (both ends included) or a
        ``netaddr.IPRange``. It reserves every slot it overlaps: whole
        subnets of a :class:`~dualstack_ipam.SubnetPool` (as its
        :meth:`~dualstack_ipam.SubnetPool.occupy`), the usable addresses of
        a :class:`~dualstack_ipam.ServiceIPPool`; a range reaching beyond
        the pool is cut to it. Reserving over a reservation extends it:
        already reserved slots are not counted again, and take ``reason``
        when it is not empty (an empty ``reason`` keeps theirs).
        Cooling slots in the range stop cooling and become reserved.
        All or nothing: on an error nothing changed.

        Args:
            range: the space to set aside.
            reason: free text shown by :meth:`reservations` and in the
                error of an ``allocate`` / ``occupy`` that hits it.

        Returns:
            How many slots were reserved by this call (0 if all already were).

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: a range that ends before it starts or mixes
                families, or a ``reason`` that is not a str.
            NotInRangeError: ``range`` covers no slot of the pool.
            AlreadyAllocatedError: a slot of ``range`` is allocated (the
                message names the first).

        Complexity:
            O(log n) plus the partly covered chunks, as ``occupy``, plus the
            reserved and cooling runs inside ``range``.

        >>> from dualstack_ipam import ServiceIPPool
        >>> pool = ServiceIPPool("10.96.0.0/24", strategy="sequential")
        >>> pool.reserve("10.96.0.10-10.96.0.19", "appliances"), pool.reserve("10.96.0.0/28")
        (10, 9)
        >>> [(str(space), why) for space, why in pool.reservations()]
        [('10.96.0.1-10.96.0.9', ''), ('10.96.0.10-10.96.0.19', 'appliances')]
        >>> pool.reserved, pool.used, pool.free
        (19, 0, 235)
        """
        try:
            if not isinstance(reason, str):
                raise InvalidConfigError(f"reason must be a str, got {reason!r}", value=reason)
            start, stop = self._range_slots(range)
            with self._lock:
                first = self._first_allocated(start, stop)
                if first >= 0:
                    raise AlreadyAllocatedError(
                        f"cannot reserve {range!r}: {self._describe(first)} is allocated "
                        f"in {self._range_cidr()}",
                        value=self._describe(first),
                    )
                self._cooling.remove(start, stop)
                added = self._reserved.paint(start, stop, reason, keep=not reason)
                self._mark(start, stop)
                self._plain = False
                return added
        except IPAMError as exc:
            self._note_error(exc)
            raise

    def unreserve(self, range: Any) -> int:
        """Free the reserved slots of ``range``; return how many.

        Only reserved slots change: allocated ones stay allocated, free
        ones free. The freed slots can be handed out at once (no cooldown).
        ``range`` is read as in :meth:`reserve`; a reservation partly
        covered is split.

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: a range that ends before it starts or mixes
                families.
            NotInRangeError: ``range`` covers no slot of the pool.

        Complexity:
            O(log n) plus the partly covered chunks plus the reservations
            inside ``range``.

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/16", 24)
        >>> pool.reserve("10.0.0.0/22", "racks"), pool.unreserve("10.0.1.0/24")
        (4, 1)
        >>> [(str(space), why) for space, why in pool.reservations()]
        [('10.0.0.0/24', 'racks'), ('10.0.2.0/23', 'racks')]
        >>> pool.allocate_next()
        IPNetwork('10.0.1.0/24')
        """
        try:
            start, stop = self._range_slots(range)
            with self._lock:
                freed = 0
                for first, end, _ in self._reserved.remove(start, stop):
                    self._unmark(first, end)
                    freed += end - first
                self._plain = not self._cooldown and not self._reserved
                return freed
        except IPAMError as exc:
            self._note_error(exc)
            raise

    def reservations(self) -> list[tuple[netaddr.IPNetwork | netaddr.IPRange, str]]:
        """The reservations as ``(range, reason)``, ascending.

        Each is a maximal run of reserved slots with one reason: adjacent
        or overlapping reservations of the same reason show as one, a
        reservation split by :meth:`unreserve` or partly re-reserved with
        another reason as several. A run is given as the addresses its
        slots cover (whole subnets for a :class:`~dualstack_ipam.SubnetPool`, usable
        addresses for a :class:`~dualstack_ipam.ServiceIPPool`): an ``IPNetwork`` when
        that is exactly one CIDR, else an ``IPRange``.

        Complexity:
            O(r) for r reservations.

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/16", 24)
        >>> pool.reserve("10.0.0.5-10.0.1.1", "gateways")
        2
        >>> pool.reservations()
        [(IPNetwork('10.0.0.0/23'), 'gateways')]
        """
        with self._lock:
            runs = list(self._reserved)
        return [
            (range_value(*self._slot_addresses(start, stop), self._family), reason)
            for start, stop, reason in runs
        ]

    @property
    def reserved(self) -> int:
        """How many slots are reserved.

        Complexity:
            O(1).
        """
        return self._reserved.slots

    # ------------------------------------------------------------- cooldown

    @property
    def cooldown(self) -> float:
        """Seconds a released slot waits before ``allocate_next`` reuses it (0: off).

        Complexity:
            O(1).
        """
        return self._cooldown

    @property
    def cooling(self) -> int:
        """How many released slots are cooling down now (counted in :attr:`free`).

        Complexity:
            O(1) amortised: slots whose cooldown has passed are freed first.

        >>> from dualstack_ipam import ServiceIPPool
        >>> now = [0.0]
        >>> pool = ServiceIPPool("10.96.0.0/30", cooldown=30, clock=lambda: now[0])
        >>> first = pool.allocate_next(); _ = pool.release(first)
        >>> pool.cooling, pool.free
        (1, 2)
        >>> now[0] = 30.0
        >>> pool.cooling
        0
        """
        with self._lock:
            if self._queue:
                self._expire()
            return self._cooling.slots

    # -------------------------------------------------------------- metrics

    def stats(self) -> dict[str, Any]:
        """Counts and this process's totals (api-durable.md, "Metrics").

        ``capacity``, ``used`` (allocations), ``free`` (``capacity - used -
        reserved``, cooling slots included), ``reserved`` and ``cooling``
        are the state now. ``totals`` count calls on this object since it
        was built or restored: ``allocations`` the slots handed out by
        ``allocate_next``, ``allocate`` and ``occupy``; ``releases`` the
        slots freed by ``release``; ``errors`` the calls that changed state
        or would have (``allocate_next``, ``allocate``, ``occupy``,
        ``release``, ``reserve``, ``unreserve``) and raised, by class:
        ``exhausted`` (:class:`~dualstack_ipam.PoolExhaustedError`), ``taken``
        (:class:`~dualstack_ipam.AlreadyAllocatedError`), ``invalid``
        (:class:`~dualstack_ipam.InvalidConfigError`, its
        :class:`~dualstack_ipam.AddressFormatError`, and
        :class:`~dualstack_ipam.NotInRangeError`).

        Complexity:
            O(1) amortised (cooling slots now due are freed first).

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/30", 31); _ = pool.allocate_next()
        >>> _ = pool.reserve("10.0.0.2/31")
        >>> stats = pool.stats()
        >>> {key: stats[key] for key in ("family", "capacity", "used", "free", "reserved")}
        {'family': 'IPv4', 'capacity': 2, 'used': 1, 'free': 0, 'reserved': 1}
        >>> stats["cooling"], stats["totals"]["allocations"], stats["totals"]["errors"]
        (0, 1, {'exhausted': 0, 'taken': 0, 'invalid': 0})
        """
        with self._lock:
            if self._queue:
                self._expire()
            return {
                "family": str(self._family),
                "capacity": self._bitmap.size,
                "used": self.used,
                "free": self.free,
                "reserved": self._reserved.slots,
                "cooling": self._cooling.slots,
                "totals": {
                    "allocations": self.used - self._start_used + self._releases,
                    "releases": self._releases,
                    "errors": dict(self._errors),
                },
            }
