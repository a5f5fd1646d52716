"""What a controller needs of an allocator beyond allocation, written once for both.

:class:`AllocatorControls` is the allocators' part of api-durable.md's
"Controller operations" and "Metrics": reserved space by family
(``reserve`` / ``unreserve`` / ``reservations`` / ``reserved``), the
family's ``ranges``, ``stats()`` and ``reconcile`` against the cluster's
truth (:func:`dualstack_ipam.reconcile.reconcile`; the leak counts live in
the allocator's ``_leak_counts`` dict, so in memory they last as long as
the allocator and are not part of its snapshot). Each pool keeps its own
reservations and cooldown (:class:`~dualstack_ipam.pools.controls.PoolControls`);
this layer picks the pool by the family of the value, and adds what only
the allocator knows: the node pools' Service set-aside and the errors the
allocator raises before a pool is asked.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import netaddr

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    InvalidConfigError,
    IPAMError,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners.table import Address, OwnerTable
from dualstack_ipam.pools.multi import ranges_of
from dualstack_ipam.pools.ranges import parse_range

if TYPE_CHECKING:
    from dualstack_ipam.pools.base import BasePool
    from dualstack_ipam.reconcile import ReconcileReport

__all__ = ["AllocatorControls", "error_kind", "reservation_at"]


def error_kind(exc: IPAMError) -> str | None:
    """Which ``stats()`` error counter ``exc`` belongs to (None: none).

    Complexity:
        O(1).

    >>> error_kind(PoolExhaustedError("full")), error_kind(IPAMError("other"))
    ('exhausted', None)
    """
    if isinstance(exc, PoolExhaustedError):
        return "exhausted"
    if isinstance(exc, AlreadyAllocatedError):
        return "taken"
    if isinstance(exc, (InvalidConfigError, NotInRangeError)):
        return "invalid"
    if type(exc).__name__ == "ServiceValidationError":
        return "invalid"
    return None


def reservation_at(pool: BasePool, slot: int) -> str | None:
    """The reason ``slot`` of ``pool`` is reserved for, or None if it is not reserved.

    The allocators check every address of a call before taking any, so
    that a reserved one fails the call before anything changed (a taken
    address given back would start cooling).

    Complexity:
        O(log r) for r reserved runs; O(1) for a pool without reservations.
    """
    if not pool.reserved:
        return None
    with pool._lock:
        return pool._reserved.tag_at(slot)


class AllocatorControls:
    """Reserved space, ranges, ``stats()`` and ``reconcile`` of an allocator (a mixin).

    A subclass has ``_pools`` (family -> pool), ``_lock``, ``_leak_counts``
    (a dict) and ``_errors`` (the allocator's own error counts), and
    implements ``_pool`` and ``_set_aside``.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16", "10.0.4.0/22"))
    >>> alloc.reserve("10.0.8.0/23", "racks"), alloc.reserved("IPv4"), alloc.free("IPv4")
    (2, 6, 250)
    """

    __slots__ = ()
    _pools: Mapping[IPFamily, Any]
    _table: OwnerTable
    _lock: threading.RLock
    _leak_counts: dict[str, int]
    _errors: dict[str, int]
    _uncounted: dict[IPFamily, int]

    def _pool(self, family: Any) -> Any:
        raise NotImplementedError

    def _set_aside(self, family: IPFamily) -> int:
        return 0

    def _set_aside_range(self, family: IPFamily) -> tuple[int, int] | None:
        """The set-aside's first and last address (ints), or None."""
        return None

    @contextlib.contextmanager
    def _counting(self) -> Iterator[None]:
        """Count an error the call raises in ``stats()["totals"]["errors"]``."""
        try:
            yield
        except IPAMError as exc:
            kind = error_kind(exc)
            if kind is not None:
                self._errors[kind] += 1
            raise

    # ------------------------------------------------------- reserved space

    def reserve(self, range: Any, reason: str = "") -> int:
        """Set ``range`` aside in the pool of its family; the slots newly reserved.

        As the pools' :meth:`~dualstack_ipam.pools.controls.PoolControls.reserve`:
        ``range`` is a CIDR, an address or ``"a-b"`` (text or
        ``netaddr.IPRange``); a range reaching beyond the family's range is
        cut to it; reserving over a reservation extends it. Reserved slots
        are never handed out, and ``allocate`` / ``occupy`` of one fails.

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: a malformed range or a ``reason`` not a str.
            FamilyNotConfiguredError: no range of that family.
            NotInRangeError: ``range`` covers none of the family's range.
            AlreadyAllocatedError: a slot of ``range`` is held (or, for
                node CIDRs, set aside for the Service range).

        Complexity:
            O(log n) plus the runs inside ``range``, as the pool's ``reserve``.

        >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
        >>> alloc.reserve("10.96.0.200-10.96.0.254", "appliances")
        55
        >>> alloc.reservations()
        [(IPRange('10.96.0.200', '10.96.0.254'), 'appliances')]
        """
        with self._counting(), self._lock:
            return int(self._pool(parse_range(range).family).reserve(range, reason))

    def unreserve(self, range: Any) -> int:
        """Free the reserved slots of ``range``; how many.

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: a malformed range, or one touching the node
                pool's Service set-aside (which is never freed).
            FamilyNotConfiguredError: no range of that family.
            NotInRangeError: ``range`` covers none of the family's range.

        Complexity:
            O(log n) plus the runs inside ``range``, as the pool's ``unreserve``.

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16", "10.0.4.0/22"))
        >>> alloc.reserve("10.0.8.0/22"), alloc.unreserve("10.0.8.0/24")
        (4, 1)
        >>> alloc.unreserve("10.0.4.0/24")
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.InvalidConfigError: cannot unreserve '10.0.4.0/24': \
it touches the Service range's set-aside 10.0.4.0/22
        """
        with self._counting(), self._lock:
            span = parse_range(range)
            pool = self._pool(span.family)
            aside = self._set_aside_range(pool.family)
            if aside is not None and span.first <= aside[1] and aside[0] <= span.last:
                shown = netaddr.IPRange(aside[0], aside[1]).cidrs()[0]
                raise InvalidConfigError(
                    f"cannot unreserve {range!r}: it touches the Service range's set-aside {shown}",
                    value=range,
                )
            return int(pool.unreserve(range))

    def reservations(self) -> list[tuple[netaddr.IPNetwork | netaddr.IPRange, str]]:
        """Every family's reservations as ``(range, reason)``, family by family.

        The node pools' Service set-aside is not listed (it is not a
        reservation: it cannot be unreserved), but :meth:`reserved` counts it.

        Complexity:
            O(r) for r reservations.
        """
        with self._lock:
            return [entry for pool in self._pools.values() for entry in pool.reservations()]

    def reserved(self, family: IPFamily | str) -> int:
        """Slots of ``family`` reserved, plus those set aside for the Service range.

        Raises:
            FamilyNotConfiguredError: no range of that family.

        Complexity:
            O(1).

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> NodeCIDRAllocator(ClusterConfig("10.0.0.0/16", "10.0.4.0/22")).reserved("IPv4")
        4
        """
        with self._lock:
            pool = self._pool(family)
            return int(pool.reserved) + self._set_aside(pool.family)

    def ranges(self, family: IPFamily | str) -> list[netaddr.IPNetwork]:
        """The ranges ``family`` allocates from: the configuration's, then those added, in order.

        Raises:
            FamilyNotConfiguredError: no range of that family.

        Complexity:
            O(k) for k ranges of the family.

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator
        >>> ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24")).ranges("IPv4")
        [IPNetwork('10.96.0.0/24')]
        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16"))
        >>> _ = alloc.add_range("10.250.0.0/16"); alloc.ranges("IPv4")
        [IPNetwork('10.244.0.0/16'), IPNetwork('10.250.0.0/16')]
        """
        with self._lock:
            return list(ranges_of(self._pool(family)))

    # -------------------------------------------------------------- metrics

    def stats(self) -> dict[str, Any]:
        """Counts per configured family and this process's totals (api-durable.md "Metrics").

        One entry per family the allocator has (a family it lacks is
        absent): ``capacity`` (every slot of the range), ``used`` (held by
        keys), ``reserved`` (as :meth:`reserved`: reservations plus the
        Service set-aside), ``free`` (``capacity - used - reserved``,
        cooling slots included) and ``cooling``. ``totals`` counts calls on
        this object since it was built or restored: ``allocations`` (slots
        handed to keys), ``releases`` (slots given back), and ``errors`` by
        class of the failed calls that would have changed state
        (``exhausted``, ``taken``, ``invalid``).

        Complexity:
            O(1) per family (cooling slots now due are freed first).

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/22", "10.0.0.0/24"))
        >>> _ = alloc.allocate("a")
        >>> alloc.stats()["IPv4"]
        {'capacity': 4, 'used': 1, 'free': 2, 'reserved': 1, 'cooling': 0}
        >>> alloc.stats()["totals"]
        {'allocations': 1, 'releases': 0, 'errors': {'exhausted': 0, 'taken': 0, 'invalid': 0}}
        """
        with self._lock:
            result: dict[str, Any] = {}
            allocations = releases = 0
            errors = dict(self._errors)
            for family, pool in self._pools.items():
                counts = pool.stats()
                aside = self._set_aside(family)
                result[str(family)] = {
                    "capacity": counts["capacity"],
                    "used": counts["used"] - aside,
                    "free": counts["free"],
                    "reserved": counts["reserved"] + aside,
                    "cooling": counts["cooling"],
                }
                totals = counts["totals"]
                allocations += totals["allocations"] - self._uncounted.get(family, 0)
                releases += totals["releases"]
                # The pools' error counts are not added: every failed call
                # reaching a pool went through _counting already.
            result["totals"] = {"allocations": allocations, "releases": releases, "errors": errors}
            return result

    # ------------------------------------------------------------ reconcile

    def _reconcile_state(self) -> tuple[dict[str, tuple[Address, ...]], dict[Address, str]]:
        """Copies of who holds what, as pairs, for :func:`~dualstack_ipam.reconcile.reconcile`.

        With ``_reconcile_read`` and ``_build`` of the allocator, the
        slotted surface: reconcile compares the owner table's ``(family,
        slot)`` pairs rather than address objects (the caller holds the lock).
        """
        return self._table.held_copy(), self._table.owners_copy()

    def reconcile(
        self,
        observed: Mapping[str, Iterable[Any]],
        *,
        repair: bool = False,
        leak_grace: int = 3,
    ) -> ReconcileReport:
        """Compare with the cluster's truth; with ``repair``, follow it.

        As :func:`dualstack_ipam.reconcile.reconcile` on this allocator: the
        order of a repair is "release leaks, fix mismatches, occupy what is
        missing"; a conflict is reported, never stolen; an address the
        truth holds is never freed. The leak counts live in this allocator
        (in memory: as long as the object; a durable cluster's side keeps
        them in the store, so that separate runs accumulate them).

        Args:
            observed: every key of the truth -> its addresses or CIDRs.
            repair: make the allocator follow the truth.
            leak_grace: consecutive repairing calls that must see a key
                leaked before it is released (>= 1).

        Returns:
            The :class:`~dualstack_ipam.reconcile.ReconcileReport`.

        Raises:
            InvalidConfigError: ``leak_grace`` below 1, or a malformed
                ``observed`` (nothing changed).
            AddressFormatError: an entry that does not parse.

        Complexity:
            O(n + m) for n keys held and m in the truth.

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16"))
        >>> _ = alloc.allocate("gone")
        >>> report = alloc.reconcile({"a": ["10.244.7.0/24"]}, repair=True, leak_grace=1)
        >>> report.ok, list(alloc)
        (True, ['a'])
        """
        from dualstack_ipam.reconcile import reconcile

        return reconcile(self, observed, repair=repair, leak_grace=leak_grace)  # type: ignore[arg-type]
