"""The owner table both allocators share: which key holds which addresses.

A key (node name, Service key) is a plain non-empty string holding at most
one address per family; an address is a ``(family, slot)`` pair of ints
(subnet index or IP). The table keeps both directions, the per-family counts
and the keys sorted, so every allocator iterates in one order, sorted by
key, at O(log n) per change. :class:`KeyedAllocator` is the surface built on
it that both allocators share. The table has no lock: its allocator's lock
guards it.

>>> table = OwnerTable((IPFamily.IPv4, IPFamily.IPv6), "key", "Service range")
>>> table.put("web", ((IPFamily.IPv4, 7),))
>>> table.put("db", ((IPFamily.IPv6, 1), (IPFamily.IPv4, 9)))
>>> list(table), table.owner((IPFamily.IPv4, 9)), table.count(IPFamily.IPv4)
(['db', 'web'], 'db', 2)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

from sortedcontainers import SortedList

from dualstack_ipam.errors import FamilyNotConfiguredError, InvalidConfigError, SnapshotError
from dualstack_ipam.net import IPFamily, parse_family

__all__ = ["Address", "KeyedAllocator", "OwnerTable", "Pool", "check_key"]

Address = tuple[IPFamily, int]
"""One held slot: its family, and its number in that family (an int)."""

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


def check_key(key: Any, what: str = "key") -> str:
    """``key`` itself if it is a non-empty ``str``.

    Args:
        key: the value to check.
        what: how messages name it (``"node name"``).

    Raises:
        InvalidConfigError: anything else (the message quotes it).

    Complexity:
        O(1).

    >>> check_key("default/web")
    'default/web'
    >>> check_key("", "node name")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: a node name must be a non-empty str, got ''
    """
    if not isinstance(key, str) or not key:
        raise InvalidConfigError(f"a {what} must be a non-empty str, got {key!r}", value=key)
    return key


class OwnerTable:
    """Keys and the addresses they hold, both ways, for the configured families.

    Args:
        families: the families the allocator has ranges for, in its order.
        key_name: how messages name a key (``"node name"``, ``"key"``).
        range_name: how messages name a family's range (``"cluster CIDR"``).

    >>> table = OwnerTable((IPFamily.IPv4,), "node name", "cluster CIDR")
    >>> table.family("IPv6")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.FamilyNotConfiguredError: the cluster has no IPv6 cluster CIDR \
(configured: IPv4)
    """

    __slots__ = ("_counts", "_held", "_keys", "_owners", "families", "key_name", "range_name")

    def __init__(self, families: Iterable[IPFamily], key_name: str, range_name: str) -> None:
        self.families = tuple(families)
        self.key_name, self.range_name = key_name, range_name
        self._held: dict[str, tuple[Address, ...]] = {}
        self._owners: dict[Address, str] = {}
        self._keys: SortedList = SortedList()
        self._counts = dict.fromkeys(self.families, 0)

    def family(self, value: Any) -> IPFamily:
        """``value`` as an :class:`IPFamily` the allocator has a range for.

        Raises:
            InvalidConfigError: not a family.
            FamilyNotConfiguredError: a family without a range.

        Complexity:
            O(1).
        """
        family = parse_family(value)
        if family not in self._counts:
            configured = ", ".join(map(str, self.families))
            raise FamilyNotConfiguredError(
                f"the cluster has no {family} {self.range_name} (configured: {configured})",
                family=family,
            )
        return family

    # ------------------------------------------------------------ reading

    def get(self, key: str) -> tuple[Address, ...] | None:
        """What ``key`` holds, in the order it was put, or None.

        Complexity:
            O(1).
        """
        return self._held.get(key)

    def owner(self, address: Address) -> str | None:
        """The key holding ``address``, or None.

        Complexity:
            O(1).
        """
        return self._owners.get(address)

    def count(self, family: IPFamily) -> int:
        """How many addresses of ``family`` keys hold.

        Complexity:
            O(1).
        """
        return self._counts[family]

    def __len__(self) -> int:
        """The number of keys holding addresses.

        Complexity:
            O(1).
        """
        return len(self._held)

    def __iter__(self) -> Iterator[str]:
        """The keys, sorted (a live view: copy it before changing the table).

        Complexity:
            O(1) per key.
        """
        return iter(self._keys)

    def items(self) -> list[tuple[str, tuple[Address, ...]]]:
        """``(key, addresses)`` pairs, sorted by key (a copy).

        Complexity:
            O(n).
        """
        return [(key, self._held[key]) for key in self._keys]

    # ------------------------------------------------------------ changing

    def put(self, key: str, addresses: tuple[Address, ...]) -> None:
        """Make ``key`` hold exactly ``addresses`` (none: forget it).

        The caller has checked that no other key holds them.

        Complexity:
            O(log n).
        """
        before = self._held.pop(key, None)
        for address in before or ():
            del self._owners[address]
            self._counts[address[0]] -= 1
        if addresses:
            self._held[key] = addresses
            for address in addresses:
                self._owners[address] = key
                self._counts[address[0]] += 1
            if before is None:
                self._keys.add(key)
        elif before is not None:
            self._keys.remove(key)

    def pop(self, key: str) -> tuple[Address, ...] | None:
        """Forget ``key``; what it held, or None.

        Complexity:
            O(log n).
        """
        held = self._held.get(key)
        if held is not None:
            self.put(key, ())
        return held

    # ------------------------------------------------------------ snapshots

    def dump(self, text: Callable[[Address], str]) -> dict[str, list[str]]:
        """key -> the text of each address, keys sorted: a snapshot's entries.

        Complexity:
            O(n).
        """
        return {key: [text(a) for a in self._held[key]] for key in self._keys}

    def load(
        self,
        kind: str,
        entries: Any,
        read: Callable[[str, str], Address],
        allocated: Callable[[Address], bool],
        *,
        in_family_order: bool = False,
    ) -> None:
        """Fill the table from a snapshot's entries (key -> list of address text).

        Args:
            kind: the snapshot's kind, for messages.
            entries: the snapshot field, as read from JSON.
            read: parses one text of ``key``'s list into an address; raises
                ``SnapshotError`` for what does not belong to the allocator.
            allocated: whether an address is allocated in its pool.
            in_family_order: refuse a list whose families are not in the
                table's order.

        Raises:
            SnapshotError: not a mapping, a bad key or list, an address of a
                family listed twice, held by two keys, or free in its pool.

        Complexity:
            O(n log n).
        """
        if not isinstance(entries, Mapping):
            raise SnapshotError(f"{kind} snapshot: the entries must be a mapping, got {entries!r}")
        for key, texts in entries.items():
            if not isinstance(key, str) or not key:
                raise SnapshotError(f"{kind} snapshot: bad {self.key_name} {key!r}")
            if (
                not isinstance(texts, list)
                or not texts
                or not all(isinstance(t, str) for t in texts)
            ):
                raise SnapshotError(
                    f"{kind} snapshot: {key!r} needs a non-empty list of text: {texts!r}"
                )
            held = tuple(read(key, text) for text in texts)
            families = [family for family, _ in held]
            for family in families:
                if families.count(family) > 1:
                    raise SnapshotError(f"{kind} snapshot: {key!r} lists two {family} entries")
            if in_family_order and families != [f for f in self.families if f in families]:
                raise SnapshotError(f"{kind} snapshot: {key!r} lists {texts} not in family order")
            for address, text in zip(held, texts, strict=True):
                owner = self._owners.get(address)
                if owner is not None:
                    raise SnapshotError(
                        f"{kind} snapshot: {text} is held twice ({owner!r}, {key!r})"
                    )
                if not allocated(address):
                    raise SnapshotError(f"{kind} snapshot: {key!r} holds {text}, which is free")
            self.put(key, held)

    # ------------------------------------------------------------ checks

    def _check_invariants(self, allocated: Callable[[Address], bool]) -> None:
        """Assert both directions agree, the counts, the order, and the pools.

        Args:
            allocated: whether an address is allocated in its pool.

        Complexity:
            O(n).
        """
        counts = dict.fromkeys(self.families, 0)
        for key, held in self._held.items():
            assert isinstance(key, str), key
            assert key, key
            assert 1 <= len(held) <= len(self.families), (key, held)
            assert len({family for family, _ in held}) == len(held), (key, held)
            for address in held:
                assert self._owners.get(address) == key, (key, address)
                assert allocated(address), (key, address)
                counts[address[0]] += 1
        assert len(self._owners) == sum(counts.values()), "owners not the inverse of keys"
        assert counts == self._counts, (counts, self._counts)
        assert list(self._keys) == sorted(self._held), "the key order is stale"


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
    _table: OwnerTable
    _lock: threading.RLock

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
