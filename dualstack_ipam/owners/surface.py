"""The surface the allocators share on their owner table: keys, counts, checks.

:class:`KeyedHoldings` is who holds what, read the same way by every
allocator (the load-balancer one too): ``key in alloc``, ``len``, iteration
and ``items`` sorted by key, ``get``. :class:`KeyedAllocator` is to the
cluster allocators what the pools' base class is to the pools: those, the
per-family counts, and the owner checks of snapshot loading and invariants,
written once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    InvalidConfigError,
    NotInRangeError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners.table import Address, OwnerTable, check_key

if TYPE_CHECKING:  # the allocators, above this layer, hold one
    from dualstack_ipam.cluster.config import ClusterConfig

__all__ = ["KeyedAllocator", "KeyedHoldings", "Pool"]

T = TypeVar("T")


class Pool(Protocol):
    """What the allocators' pools (SubnetPool, ServiceIPPool) offer the owner checks."""

    @property
    def family(self) -> IPFamily: ...
    @property
    def capacity(self) -> int: ...
    @property
    def used(self) -> int: ...
    @property
    def free(self) -> int: ...
    @property
    def cooling(self) -> int: ...
    def is_allocated(self, value: Any) -> bool: ...
    def _check_invariants(self) -> None: ...


class KeyedHoldings(Generic[T]):
    """What every allocator keyed by name reads the same way: who holds what.

    ``key in alloc``, ``len``, iteration and ``items`` sorted by key, and
    ``get``. A subclass sets ``_table`` and ``_lock`` and builds the objects
    it returns in :meth:`_build`.

    >>> from dualstack_ipam import LoadBalancerIPAllocator
    >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
    >>> _ = lb.occupy("b", "192.0.2.1"), lb.occupy("a", "192.0.2.2")
    >>> list(lb), len(lb), "a" in lb, lb.get("a"), lb.items()[1]
    (['a', 'b'], 2, True, (IPAddress('192.0.2.2'),), ('b', (IPAddress('192.0.2.1'),)))
    """

    __slots__ = ()
    _table: OwnerTable
    _lock: threading.RLock

    def _build(self, address: Address) -> T:
        raise NotImplementedError

    def get(self, key: str) -> tuple[T, ...] | None:
        """What ``key`` holds, one per family, in the allocator's order, or None.

        Node CIDRs come in ``config.families`` order, Service and
        load-balancer addresses primary first.

        Raises:
            InvalidConfigError: ``key`` is not a non-empty str.

        Complexity:
            O(1).
        """
        check_key(key, self._table.key_name)
        with self._lock:
            held = self._table.get(key)
            return None if held is None else tuple(map(self._build, held))

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` holds anything (False for a non-str).

        Complexity:
            O(1).
        """
        return isinstance(key, str) and self._table.get(key) is not None

    def __len__(self) -> int:
        """The number of keys holding anything.

        Complexity:
            O(1).
        """
        return len(self._table)

    def __iter__(self) -> Iterator[str]:
        """The keys, sorted (a copy: the allocator may change meanwhile).

        Complexity:
            O(n) for the copy.
        """
        with self._lock:
            return iter(list(self._table))

    def items(self) -> list[tuple[str, tuple[T, ...]]]:
        """``(key, what it holds)`` pairs, sorted by key (a copy).

        Complexity:
            O(n).
        """
        with self._lock:
            return [(key, tuple(map(self._build, held))) for key, held in self._table.items()]


class KeyedAllocator(KeyedHoldings[T]):
    """What both allocators read the same way: keys, and counts per family.

    A subclass sets ``_table`` and ``_lock``, finds a family's pool in
    :meth:`_pool` and builds the objects it returns in :meth:`_build`.
    Iteration is sorted by key for every allocator.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16", "10.0.4.0/22"))
    >>> _ = alloc.allocate("b"), alloc.allocate("a")
    >>> list(alloc), len(alloc), "a" in alloc, 3 in alloc, alloc.get("c")
    (['a', 'b'], 2, True, False, None)
    >>> alloc.items()[0]
    ('a', (IPNetwork('10.0.1.0/24'),))
    >>> alloc.capacity("IPv4"), alloc.used("IPv4"), alloc.free("IPv4")
    (256, 2, 250)
    """

    __slots__ = ()
    _config: ClusterConfig

    @property
    def config(self) -> ClusterConfig:
        """The cluster configuration.

        Complexity:
            O(1).
        """
        return self._config

    def _pool(self, family: Any) -> Pool:
        raise NotImplementedError

    def _allocated(self, address: Address) -> bool:
        """Whether ``address`` is allocated in its pool, as ``is_allocated`` says.

        On the slot (no address object is built): False outside the ranges.
        """
        try:
            pool, slot = self._pool_slot(address)
        except NotInRangeError:
            return False
        allocated: bool = pool._span_allocated(slot, slot + 1)
        return allocated

    def _load_owners(
        self,
        kind: str,
        entries: Any,
        read: Callable[[str, str], Address],
        *,
        in_family_order: bool = False,
    ) -> None:
        """Fill the table from a snapshot's entries; the pools must be loaded.

        Raises:
            SnapshotError: as :meth:`OwnerTable.load`, or pools whose counts
                are not what the keys (and the set-aside) hold.
        """
        self._table.load(kind, entries, read, self._allocated, in_family_order=in_family_order)
        for family in self._table.families:
            pool, held, aside = (
                self._pool(family),
                self._table.count(family),
                self._set_aside(family),
            )
            if pool.used != held + aside:
                raise SnapshotError(
                    f"{kind} snapshot: the {family} pool has {pool.used} allocated, but "
                    f"{held} are held and {aside} set aside"
                )

    # ------------------------------------------------------------ key states

    def _take_slot(self, address: Address) -> None:
        """Mark ``address`` allocated in its pool (it is free)."""
        raise NotImplementedError

    def _free_slot(self, address: Address) -> None:
        """Mark ``address`` free in its pool (it is allocated)."""
        raise NotImplementedError

    def _key_state(self, key: str) -> tuple[Address, ...] | None:
        """What ``key`` holds, as ``(family, slot)`` pairs in the allocator's order.

        The whole state of a key: the allocators keep nothing else per key
        (a Service's manifest fields come with each call), so making another
        allocator's key hold the same pairs reproduces it exactly.

        Complexity:
            O(1).
        """
        with self._lock:
            return self._table.get(key)

    def _set_key_state(self, key: str, state: tuple[Address, ...] | None) -> None:
        """Make ``key`` hold exactly ``state`` (None or empty: nothing), all or nothing.

        The primitive of the durable cache: catch-up, undo and bulk loading.
        It checks consistency only (families configured, one per family, no
        address held by another key or otherwise allocated), not the rules
        of ``allocate``; cursors and random state are not touched.

        Raises:
            AlreadyAllocatedError: an address is held by another key or
                allocated for something else (the Service set-aside).
            InvalidConfigError: two addresses of one family.
            FamilyNotConfiguredError: a family without a range.
            NotInRangeError: an address outside its range.

        Complexity:
            O(1) per address, O(log n) for the key order.
        """
        new = tuple(state or ())
        with self._lock:
            old = self._table.get(key) or ()
            if old == new:
                return
            families = [self._table.family(family) for family, _ in new]
            if len(set(families)) != len(families):
                raise InvalidConfigError(f"{key!r}: two addresses of one family in {new!r}")
            gone = [a for a in old if a not in new]
            added = [a for a in new if a not in old]
            for address in added:
                owner = self._table.owner(address)
                if owner is not None:
                    raise AlreadyAllocatedError(
                        f"{key!r}: {self._build(address)} is held by {owner!r}",
                        value=self._build(address),
                        owner=owner,
                    )
            for address in gone:
                self._free_slot(address)
            taken: list[Address] = []
            try:
                for address in added:
                    if self._allocated(address):
                        raise AlreadyAllocatedError(
                            f"{key!r}: {self._build(address)} is allocated for something else",
                            value=self._build(address),
                        )
                    self._take_slot(address)
                    taken.append(address)
            except BaseException:
                for address in taken:
                    self._free_slot(address)
                for address in gone:
                    self._take_slot(address)
                raise
            self._table.put(key, new)

    def _pool_slot(self, address: Address) -> tuple[Any, int]:
        """The pool holding ``address`` and its slot there (NotInRangeError if none)."""
        raise NotImplementedError

    def _load_states(self, states: Iterable[tuple[str, tuple[Address, ...]]]) -> None:
        """Set many keys at once (a durable side's first load): no manifest work.

        Into an empty table whose pools have no cooling slot, every state is
        checked first (one address per family, no address twice, none
        allocated otherwise), then the slots are marked in the pools'
        bitmaps directly: no address object is built. Otherwise one
        :meth:`_set_key_state` per key.

        Raises:
            As :meth:`_set_key_state` (an empty table is left unchanged; else
            the keys set before the failing one stay).

        Complexity:
            O(k) for k addresses, plus O(n log n) once for the key order.
        """
        with self._lock:
            # A cooling slot is marked in its pool's bitmap, but it is free to
            # take: only the per-key path knows to end its cooldown.
            cooling = any(self._pool(family).cooling for family in self._table.families)
            if len(self._table) or cooling:
                for key, state in states:
                    self._set_key_state(key, state)
                return
            todo = [(key, tuple(state)) for key, state in states if state]
            taken: dict[Address, str] = {}
            marks = []
            configured = set(self._table.families)
            for key, state in todo:
                families = {family for family, _ in state}
                if not families <= configured:
                    for family in families:
                        self._table.family(family)  # raises, naming it
                if len(families) != len(state):
                    raise InvalidConfigError(f"{key!r}: two addresses of one family in {state!r}")
                for address in state:
                    owner = taken.setdefault(address, key)
                    if owner != key:
                        raise AlreadyAllocatedError(
                            f"{key!r}: {self._build(address)} is held by {owner!r}",
                            value=self._build(address),
                            owner=owner,
                        )
                    pool, slot = self._pool_slot(address)
                    if slot in pool._bitmap:
                        raise AlreadyAllocatedError(
                            f"{key!r}: {self._build(address)} is allocated for something else",
                            value=self._build(address),
                        )
                    marks.append((pool, slot))
            for pool, slot in marks:
                with pool._lock:
                    pool._mark(slot, slot + 1)
            for key, state in todo:
                self._table.put(key, state)

    def _check_owners(self) -> None:
        """Assert the table against the pools, and every pool's own invariants."""
        self._table._check_invariants(self._allocated)
        for family in self._table.families:
            pool = self._pool(family)
            pool._check_invariants()
            count = self._table.count(family)
            assert pool.used == count + self._set_aside(family), (family, pool.used, count)

    def _set_aside(self, family: IPFamily) -> int:
        """Slots of ``family``'s pool allocated for something other than a key."""
        return 0

    def capacity(self, family: IPFamily | str) -> int:
        """The slots of ``family``: node CIDRs at the node mask, or usable Service IPs.

        Raises:
            FamilyNotConfiguredError: the cluster has no range of that family.

        Complexity:
            O(1).
        """
        return self._pool(family).capacity

    def used(self, family: IPFamily | str) -> int:
        """The slots of ``family`` that keys hold.

        Raises:
            FamilyNotConfiguredError: the cluster has no range of that family.

        Complexity:
            O(1).
        """
        with self._lock:
            pool = self._pool(family)
            return pool.used - self._set_aside(pool.family)

    def free(self, family: IPFamily | str) -> int:
        """The slots of ``family`` still free (capacity - set aside - used).

        Raises:
            FamilyNotConfiguredError: the cluster has no range of that family.

        Complexity:
            O(1).
        """
        return self._pool(family).free
