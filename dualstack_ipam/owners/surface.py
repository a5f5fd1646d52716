"""The surface both allocators share on their owner table: keys, counts, checks.

:class:`KeyedAllocator` is to the allocators what the pools' base class is to
the pools: ``key in alloc``, ``len``, iteration and ``items`` sorted by key,
``get``, the per-family counts, and the owner checks of snapshot loading and
invariants, written once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from dualstack_ipam.errors import SnapshotError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners.table import Address, OwnerTable, check_key

if TYPE_CHECKING:  # the allocators, above this layer, hold one
    from dualstack_ipam.cluster.config import ClusterConfig

__all__ = ["KeyedAllocator", "Pool"]

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
    def is_allocated(self, value: Any) -> bool: ...
    def _check_invariants(self) -> None: ...


class KeyedAllocator(Generic[T]):
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
    _table: OwnerTable
    _lock: threading.RLock

    @property
    def config(self) -> ClusterConfig:
        """The cluster configuration.

        Complexity:
            O(1).
        """
        return self._config

    def _build(self, address: Address) -> T:
        raise NotImplementedError

    def _pool(self, family: Any) -> Pool:
        raise NotImplementedError

    def _allocated(self, address: Address) -> bool:
        return self._pool(address[0]).is_allocated(self._build(address))

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

    def get(self, key: str) -> tuple[T, ...] | None:
        """What ``key`` holds, one per family, in the allocator's order, or None.

        Node CIDRs come in ``config.families`` order, Service IPs primary first.

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
