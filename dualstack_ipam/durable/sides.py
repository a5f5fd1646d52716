"""A durable cluster's ``.nodes`` and ``.services``: the allocators, made durable.

Each is a subclass of the plain allocator whose state is the cache of
:mod:`~dualstack_ipam.durable.sync`: a mutating method runs the plain method
on the cache through :meth:`Sync.mutate` (one store transaction), and a
reading method catches up with the store first. Every public method of the
plain class is listed here, mutating or reading, so a method added to the
plain class later is refused by a test until it is classified.

>>> import dualstack_ipam
>>> from dualstack_ipam import ClusterConfig
>>> with dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")) as cluster:
...     cluster.nodes.allocate("node-1"), cluster.nodes.owner_of("10.244.0.9")
((IPNetwork('10.244.0.0/24'),), 'node-1')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from random import Random
from typing import Any, NoReturn, TypeVar

import netaddr

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.node_objects import read_node
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.durable import growing
from dualstack_ipam.durable.documents import check_store
from dualstack_ipam.durable.leaks import read_counts, write_counts
from dualstack_ipam.durable.reserving import change_reservations
from dualstack_ipam.durable.sync import Sync
from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import check_key
from dualstack_ipam.services import read
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.services.update import read_old

__all__ = ["FIXED", "MUTATING", "READING", "DurableNodes", "DurableServices"]

R = TypeVar("R")

MUTATING = {
    "nodes": (
        "allocate",
        "occupy",
        "release",
        "allocate_node",
        "reconcile",
        "reserve",
        "unreserve",
        "add_range",
    ),
    "services": (
        "allocate",
        "release",
        "allocate_service",
        "update_service",
        "release_service",
        "occupy",
        "reconcile",
        "reserve",
        "unreserve",
        "add_range",
    ),
}
"""The public methods that change state: made durable one transaction each,
or composed of such transactions (``reconcile``)."""

READING = (
    "__contains__",
    "__iter__",
    "__len__",
    "free",
    "get",
    "items",
    "owner_of",
    "reserved",
    "reservations",
    "ranges",
    "snapshot",
    "stats",
    "by_family",
    "used",
)
"""The public methods that read the cache's changing state: they catch up first."""

FIXED = ("capacity", "config", "strategy", "restore")
"""Public names that read what never changes (``restore`` is refused)."""


def _reading(name: str) -> Any:
    """A method that catches up with the store, then reads as the plain class does.

    A partial side (a short command's, see :meth:`Sync.load`) reads itself
    whole first.
    """

    def method(self: _Durable, *args: Any, **kwargs: Any) -> Any:
        with self._sync.lock:
            self._sync.catch_up()
            self._sync.fill(self._sync.sides[self._side])
            return getattr(super(_Durable, self), name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"""As the plain allocator's ``{name}``, after catching up with the store.

        Complexity:
            O(c) to catch up (c changes by other writers since the last
            look: one query on SQLite), then as the plain method.
        """
    return method


class _Durable:
    """What both durable sides share: reads that catch up first, ``restore`` refused."""

    __slots__ = ()
    _sync: Sync
    _side: str
    _leak_counts: dict[str, int]  # the plain allocator's slot

    owner_of = _reading("owner_of")
    used = _reading("used")
    free = _reading("free")
    items = _reading("items")
    snapshot = _reading("snapshot")
    reserved = _reading("reserved")
    reservations = _reading("reservations")
    ranges = _reading("ranges")

    def stats(self) -> dict[str, Any]:
        """As the plain allocator's ``stats()``, after catching up; totals are this process's.

        ``allocations`` and ``releases`` count the slots this process's own
        committed calls gave to keys and took back, not what the cache
        loaded or followed from the store (other processes' work, or this
        store's history); ``errors`` count this process's failed calls.

        Complexity:
            O(c) to catch up, then O(1) per family.
        """
        with self._sync.lock:
            self._sync.catch_up()
            side = self._sync.sides[self._side]
            self._sync.fill(side)
            result: dict[str, Any] = super().stats()  # type: ignore[misc]
            result["totals"]["allocations"] = side.taken
            result["totals"]["releases"] = side.freed
            return result

    __len__ = _reading("__len__")
    __iter__ = _reading("__iter__")

    def _one_key(self, key: object) -> None:
        """Catch up, and read ``key``'s own record into a partial side."""
        self._sync.catch_up()
        if isinstance(key, str) and key:
            self._sync.ensure(self._sync.sides[self._side], key)

    def get(self, key: str) -> Any:
        """As the plain allocator's ``get``, after catching up (reads only ``key`` if partial).

        Complexity:
            O(c) to catch up, plus one record read the first time a partial
            side is asked for ``key``.
        """
        with self._sync.lock:
            self._one_key(key)
            return super().get(key)  # type: ignore[misc]

    def __contains__(self, key: object) -> bool:
        """As the plain allocator's ``in``, after catching up (reads only ``key`` if partial).

        Complexity:
            O(c) to catch up, plus one record read the first time a partial
            side is asked for ``key``.
        """
        with self._sync.lock:
            self._one_key(key)
            return bool(super().__contains__(key))  # type: ignore[misc]

    def _check_invariants(self) -> None:
        """Assert the cache's own invariants, then the store's records against it.

        Complexity:
            O(n) store records.
        """
        with self._sync.lock:
            self._sync.catch_up()
            self._sync.fill(self._sync.sides[self._side])
            super()._check_invariants()  # type: ignore[misc]
            check_store(self._sync)

    def reconcile(
        self, observed: Mapping[str, Any], *, repair: bool = False, leak_grace: int = 3
    ) -> Any:
        """As the plain allocator's ``reconcile``, each repair one transaction.

        The repair is composed of this side's own durable ``release`` and
        ``occupy`` (one transaction per key changed), so a crash part-way
        leaves a consistent store that the next ``reconcile`` finishes. The
        leak counts live in the store (``leak/`` records, see
        :mod:`~dualstack_ipam.durable.leaks`): read at the start of the call,
        the changed ones written back at its end, so separate processes and
        CLI runs accumulate them. A call that raises writes no counts.

        Raises:
            InvalidConfigError, AddressFormatError: as the plain method.
            StoreUnavailableError: a transaction could not be written (the
                keys repaired before it stay repaired).

        Complexity:
            As the plain method, plus one transaction per key repaired, one
            read of the k counted keys and O(k / batch) transactions.
        """
        with self._sync.lock:
            self._sync.catch_up()
            self._sync.fill(self._sync.sides[self._side])
            layout = self._sync.sides[self._side].layout
            stored = read_counts(self._sync.backend, layout)
            self._leak_counts.clear()
            self._leak_counts.update(stored)
            report = super().reconcile(  # type: ignore[misc]
                observed, repair=repair, leak_grace=leak_grace
            )
            write_counts(self._sync.backend, layout, stored, self._leak_counts)
            return report

    def reserve(self, range: Any, reason: str = "") -> int:
        """As the plain allocator's ``reserve``, stored as reservation block records.

        One journal entry (``kind`` ``reservation``, ``op`` ``reserve``,
        ``data`` the side, the canonical range and the reason). Other
        processes follow it through the change feed; an allocation of a
        reserved slot fails even from a stale cache, and a reservation over
        a slot another process just allocated raises ``AlreadyAllocatedError``
        (see :mod:`~dualstack_ipam.durable.reserving`).

        Raises:
            AddressFormatError, InvalidConfigError, FamilyNotConfiguredError,
                NotInRangeError, AlreadyAllocatedError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus a catch-up, a read of the side if it
            was partial, and 1 transaction (only reasons change) or 3 and
            one read per new run.
        """
        plain = super().reserve  # type: ignore[misc]
        return change_reservations(
            self._sync, self._side, lambda: plain(range, reason), "reserve", range, reason
        )

    def unreserve(self, range: Any) -> int:
        """As the plain allocator's ``unreserve``, in one transaction with its journal entry.

        Raises:
            AddressFormatError, InvalidConfigError, FamilyNotConfiguredError,
                NotInRangeError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus a catch-up and one transaction of at
            most 16 records per pool.
        """
        plain = super().unreserve  # type: ignore[misc]
        return change_reservations(
            self._sync, self._side, lambda: plain(range), "unreserve", range, ""
        )

    @classmethod
    def restore(
        cls,
        data: Any,
        *,
        rng: Random | None = None,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> NoReturn:
        """Refused: a durable side is loaded from its store, not from a snapshot.

        Raises:
            InvalidConfigError: always.

        Complexity:
            O(1).
        """
        raise InvalidConfigError(
            f"{cls.__name__} is a durable cluster's side; restore a plain allocator, or "
            "load a document into a store with Cluster.import_()"
        )


class DurableNodes(_Durable, NodeCIDRAllocator):
    """``Cluster.nodes``: the whole :class:`~dualstack_ipam.NodeCIDRAllocator` API, durable.

    Each mutation is one store transaction (see
    :mod:`~dualstack_ipam.durable.sync`); reads follow other writers first.
    Errors are the plain allocator's, plus ``StoreError`` /
    ``StoreUnavailableError`` from the store (nothing changed).
    """

    __slots__ = ("_sync",)
    _side = "nodes"

    def __init__(self, sync: Sync, config: ClusterConfig, *, strategy: str) -> None:
        super().__init__(config, strategy=strategy, cooldown=sync.cooldown, clock=sync.clock)
        self._sync = sync
        self._lock = sync.lock

    def __repr__(self) -> str:
        return f"DurableNodes({self._config!r}, strategy={self._strategy!r})"

    def allocate(self, node: str) -> tuple[netaddr.IPNetwork, ...]:
        """As :meth:`NodeCIDRAllocator.allocate`, committed in one transaction.

        Raises:
            PoolExhaustedError, InvalidConfigError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction of
            at most 6 records.

        >>> import dualstack_ipam
        >>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16"))
        >>> cluster.nodes.allocate("a"), [e.op for e in cluster.journal()]
        ((IPNetwork('10.244.0.0/24'),), ['allocate'])
        """
        check_key(node, "node name")
        return self._sync.mutate(
            "nodes", node, lambda: NodeCIDRAllocator.allocate(self, node), "allocate"
        )

    def occupy(self, node: str, cidrs: Any) -> tuple[netaddr.IPNetwork, ...]:
        """As :meth:`NodeCIDRAllocator.occupy`, committed in one transaction.

        Raises:
            InvalidConfigError, FamilyNotConfiguredError, NotInRangeError,
                AlreadyAllocatedError: as the plain method (also when another
                writer took the CIDR first).
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.
        """
        check_key(node, "node name")
        return self._sync.mutate(
            "nodes", node, lambda: NodeCIDRAllocator.occupy(self, node, cidrs), "occupy"
        )

    def release(self, node: str) -> bool:
        """As :meth:`NodeCIDRAllocator.release`, committed in one transaction.

        Raises:
            InvalidConfigError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.
        """
        check_key(node, "node name")
        return self._sync.mutate(
            "nodes", node, lambda: NodeCIDRAllocator.release(self, node), "release"
        )

    def allocate_node(self, node: Mapping[str, Any]) -> dict[str, Any]:
        """As :meth:`NodeCIDRAllocator.allocate_node`, committed in one transaction.

        Raises:
            InvalidConfigError, NotInRangeError, FamilyNotConfiguredError,
                AlreadyAllocatedError, PoolExhaustedError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.

        >>> import dualstack_ipam
        >>> with dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")) as cluster:
        ...     cluster.nodes.allocate_node({"metadata": {"name": "n1"}})["spec"]["podCIDRs"]
        ['10.244.0.0/24']
        """
        name = read_node(node)[0]
        return self._sync.mutate(
            "nodes", name, lambda: NodeCIDRAllocator.allocate_node(self, node), "allocate"
        )

    by_family = _reading("by_family")
    reconcile = _Durable.reconcile
    reserve = _Durable.reserve
    unreserve = _Durable.unreserve

    def add_range(self, cidr: Any) -> netaddr.IPNetwork:
        """As :meth:`NodeCIDRAllocator.add_range`, stored as a range record.

        One transaction with its journal entry (``kind`` ``range``, ``op``
        ``add-range``); other processes follow it through the change feed
        and allocate from it too (see :mod:`~dualstack_ipam.durable.growing`).

        Raises:
            AddressFormatError, InvalidConfigError: as the plain method (also
                when a range another process added first overlaps ``cidr``).
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus a catch-up and one transaction.

        >>> import dualstack_ipam
        >>> with dualstack_ipam.open("memory://", ClusterConfig("10.244.0.0/16")) as cluster:
        ...     cluster.nodes.add_range("10.250.0.0/16"), cluster.nodes.capacity("IPv4")
        (IPNetwork('10.250.0.0/16'), 512)
        """
        return growing.add_range(self._sync, "nodes", cidr)


class DurableServices(_Durable, ServiceIPAllocator):
    """``Cluster.services``: the whole :class:`~dualstack_ipam.ServiceIPAllocator` API, durable.

    Each mutation is one store transaction (see
    :mod:`~dualstack_ipam.durable.sync`); reads follow other writers first.
    Errors are the plain allocator's, plus ``StoreError`` /
    ``StoreUnavailableError`` from the store (nothing changed).
    """

    __slots__ = ("_sync",)
    _side = "services"

    def __init__(
        self, sync: Sync, config: ClusterConfig, *, strategy: str, rng: Random | None
    ) -> None:
        super().__init__(
            config, strategy=strategy, rng=rng, cooldown=sync.cooldown, clock=sync.clock
        )
        self._sync = sync
        self._lock = sync.lock

    def __repr__(self) -> str:
        ranges = ",".join(str(pool.cidr) for pool in self._pools.values())
        return f"DurableServices({ranges}, strategy={self._strategy!r})"

    reconcile = _Durable.reconcile
    reserve = _Durable.reserve
    unreserve = _Durable.unreserve

    def add_range(self, cidr: Any) -> netaddr.IPNetwork:
        """As :meth:`ServiceIPAllocator.add_range`, stored as a range record.

        One transaction with its journal entry (``kind`` ``range``, ``op``
        ``add-range``, ``data`` ``{"side": "services"}``); other processes
        follow it through the change feed and allocate from it too, once
        the ranges before it are full (see
        :mod:`~dualstack_ipam.durable.growing`; how its addresses are
        numbered in records: :mod:`~dualstack_ipam.durable.layout`).

        Raises:
            AddressFormatError, InvalidConfigError: as the plain method (also
                when a range another process added first overlaps ``cidr``).
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus a catch-up and one transaction.

        >>> import dualstack_ipam
        >>> config = ClusterConfig("10.244.0.0/16", "10.96.0.0/30")
        >>> with dualstack_ipam.open("memory://", config, service_strategy="sequential") as c:
        ...     c.services.add_range("10.95.0.0/30")
        ...     [str(c.services.allocate(name)) for name in "abc"]
        IPNetwork('10.95.0.0/30')
        ['10.96.0.1', '10.96.0.2', '10.95.0.1']
        """
        return growing.add_range(self._sync, "services", cidr)

    def _mutate(self, key: str, op: Callable[[], R], journal_op: str) -> R:
        return self._sync.mutate("services", key, op, journal_op)

    def occupy(self, key: str, ips: Any) -> tuple[netaddr.IPAddress, ...]:
        """As :meth:`ServiceIPAllocator.occupy`, committed in one transaction.

        Raises:
            InvalidConfigError, AddressFormatError, FamilyNotConfiguredError,
                NotInRangeError, AlreadyAllocatedError: as the plain method
                (also when another writer took an address first).
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction: a
            bulk load of n keys is n transactions.
        """
        check_key(key)
        return self._mutate(key, lambda: ServiceIPAllocator.occupy(self, key, ips), "occupy")

    def allocate(
        self, key: str, family: IPFamily | str | None = None, ip: Any = None
    ) -> netaddr.IPAddress:
        """As :meth:`ServiceIPAllocator.allocate`, committed in one transaction.

        Raises:
            InvalidConfigError, AddressFormatError, FamilyNotConfiguredError,
                AlreadyAllocatedError, NotInRangeError, PoolExhaustedError: as
                the plain method (``AlreadyAllocatedError`` also when another
                writer took ``ip`` first, naming it).
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.

        >>> import dualstack_ipam
        >>> config = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")
        >>> with dualstack_ipam.open("memory://", config) as cluster:
        ...     cluster.services.allocate("dns", ip="10.96.0.10")
        IPAddress('10.96.0.10')
        """
        check_key(key)
        return self._mutate(
            key, lambda: ServiceIPAllocator.allocate(self, key, family, ip), "allocate"
        )

    def release(self, key: str) -> bool:
        """As :meth:`ServiceIPAllocator.release`, committed in one transaction.

        Raises:
            InvalidConfigError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.
        """
        check_key(key)
        return self._mutate(key, lambda: ServiceIPAllocator.release(self, key), "release")

    def allocate_service(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """As :meth:`ServiceIPAllocator.allocate_service`, committed in one transaction.

        Raises:
            ServiceValidationError, ClusterIPTakenError, AlreadyAllocatedError,
                PoolExhaustedError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.
        """
        key = read.read_manifest(manifest)[0]
        return self._mutate(
            key, lambda: ServiceIPAllocator.allocate_service(self, manifest), "allocate"
        )

    def update_service(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        """As :meth:`ServiceIPAllocator.update_service`, committed in one transaction.

        Raises:
            ServiceValidationError, ClusterIPTakenError, PoolExhaustedError:
                as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.
        """
        key = read_old(old)[0]
        return self._mutate(
            key, lambda: ServiceIPAllocator.update_service(self, old, new), "update"
        )

    def release_service(self, manifest: Mapping[str, Any]) -> bool:
        """As :meth:`ServiceIPAllocator.release_service`, committed in one transaction.

        Raises:
            ServiceValidationError: as the plain method.
            StoreUnavailableError: the store could not be written (nothing changed).

        Complexity:
            As the plain method, plus one catch-up and one transaction.
        """
        return self.release(read.read_manifest(manifest)[0])
