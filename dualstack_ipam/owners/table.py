"""The owner table: which key holds which addresses, both ways.

A key (node name, Service key) is a plain non-empty string holding at most
one address per family; an address is a ``(family, slot)`` pair of ints
(subnet index or IP). The table keeps both directions, the per-family counts
and the keys sorted, so every allocator iterates in one order, sorted by
key. A change costs O(1): keys added or removed since the last iteration
wait in two sets and are merged into the sorted list by the next iteration
(one sort of the new keys, one linear merge), which keeps the hot path of
allocate/release as cheap as a dict. It has no lock: its allocator's lock guards it.

The sorted list is never changed in place (a merge builds a new one), so a
snapshot takes it by reference under its allocator's lock, with copies of
the two small sets of pending keys, and merges after the lock is released
(:meth:`OwnerTable.order_copy`, :class:`KeyOrder`): no sort of all keys,
and nothing proportional to the keys, is done under the lock. Nor is the
key -> addresses map copied there: :meth:`OwnerTable.held_view` opens a
:class:`~dualstack_ipam.owners.held_view.HeldView` of it, into which every
later change first records what it replaces, until the view is closed.

>>> table = OwnerTable((IPFamily.IPv4, IPFamily.IPv6), "key", "Service range")
>>> table.put("web", ((IPFamily.IPv4, 7),))
>>> table.put("db", ((IPFamily.IPv6, 1), (IPFamily.IPv4, 9)))
>>> list(table), table.owner((IPFamily.IPv4, 9)), table.count(IPFamily.IPv4)
(['db', 'web'], 'db', 2)
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily, parse_family
from dualstack_ipam.owners.held_view import Address, HeldView, Undo

__all__ = ["Address", "KeyOrder", "OwnerTable", "check_key"]


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


_SLICE = 4096
"""Keys sorted by one C-level call at most: ~1 ms, so other threads get the interpreter."""


def _sorted_in_slices(keys: Iterable[str]) -> list[str]:
    """``keys`` sorted by slices, then merged two runs at a time (one linear pass each)."""
    items = list(keys)
    runs = [sorted(items[i : i + _SLICE]) for i in range(0, len(items), _SLICE)]
    while len(runs) > 1:
        runs = [sorted(runs[i] + runs[i + 1]) for i in range(0, len(runs) - 1, 2)] + (
            runs[-1:] if len(runs) % 2 else []
        )
    return runs[0] if runs else []


_FEW = 32
"""Changed keys merged one by one (by bisection) rather than by a pass over all keys."""


def _merge(keys: list[str], added: AbstractSet[str], removed: AbstractSet[str]) -> list[str]:
    """``keys`` (sorted) without ``removed`` and with ``added``, sorted: a new list.

    ``removed`` keys are in ``keys``, ``added`` ones are not (the table's
    pending sets). A few changes (the usual case between two snapshots of a
    busy allocator) are placed by bisection in a C-level copy of the list:
    each costs one move of the pointers after it (~20 us at 50,000 keys),
    where a pass over all keys in Python steps took ~3 ms and the final
    ``sorted()`` of all keys (one C-level call) held the interpreter ~1 ms.
    """
    if not added and not removed:
        return keys
    if len(added) + len(removed) <= _FEW:
        merged = list(keys)
        for key in removed:
            del merged[bisect_left(merged, key)]
        for key in added:
            insort(merged, key)
        return merged
    kept = [k for k in keys if k not in removed] if removed else keys
    # Two sorted runs: Timsort merges them in linear time.
    return sorted(kept + _sorted_in_slices(added)) if added else kept


class KeyOrder:
    """The keys of an :class:`OwnerTable` at one instant, to sort later.

    Made by :meth:`OwnerTable.order_copy` under the allocator's lock; it
    shares the table's sorted list (never changed in place) and copies only
    the keys added or removed since the table last merged them.

    >>> table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
    >>> table.put("b", ((IPFamily.IPv4, 2),)); table.put("a", ((IPFamily.IPv4, 1),))
    >>> order = table.order_copy(); table.put("c", ((IPFamily.IPv4, 3),))
    >>> order.sorted()
    ['a', 'b']
    """

    __slots__ = ("_added", "_keys", "_merged", "_removed")

    def __init__(self, keys: list[str], added: AbstractSet[str], removed: AbstractSet[str]) -> None:
        self._keys, self._added, self._removed = keys, frozenset(added), frozenset(removed)
        self._merged: list[str] | None = None

    @property
    def base(self) -> list[str]:
        """The table's sorted list this order was taken from (shared, not a copy).

        Complexity:
            O(1).
        """
        return self._keys

    def sorted(self) -> list[str]:
        """The keys, sorted: a new list (or the shared one when nothing was pending).

        Complexity:
            O(1) when no key was added or removed since the table's last
            merge, else O(n + k log k) for k such keys: the removals are
            filtered in Python steps (other threads run between them), the
            additions sorted and merged by one linear C-level pass.
        """
        if self._merged is None:
            self._merged = _merge(self._keys, self._added, self._removed)
        return self._merged


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

    __slots__ = (
        "_added",
        "_counts",
        "_held",
        "_keys",
        "_owners",
        "_removed",
        "_views",
        "families",
        "key_name",
        "range_name",
    )

    def __init__(self, families: Iterable[IPFamily], key_name: str, range_name: str) -> None:
        self.families = tuple(families)
        self.key_name, self.range_name = key_name, range_name
        self._held: dict[str, tuple[Address, ...]] = {}
        self._owners: dict[Address, str] = {}
        self._keys: list[str] = []
        self._added: set[str] = set()
        self._removed: set[str] = set()
        # The undo dicts of the open HeldViews (replaced, never changed in
        # place, and only under the allocator's lock).
        self._views: tuple[Undo, ...] = ()
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

    def _sorted(self) -> list[str]:
        """The keys, sorted: the list, with the keys changed since merged in."""
        if self._added or self._removed:
            self._keys = _merge(self._keys, self._added, self._removed)
            self._added, self._removed = set(), set()
        return self._keys

    def __iter__(self) -> Iterator[str]:
        """The keys, sorted (a live view: copy it before changing the table).

        Complexity:
            O(n + k log k) after k keys were added or removed, else O(1) per key.
        """
        return iter(self._sorted())

    def items(self) -> list[tuple[str, tuple[Address, ...]]]:
        """``(key, addresses)`` pairs, sorted by key (a copy).

        Complexity:
            O(n).
        """
        return [(key, self._held[key]) for key in self._sorted()]

    # ------------------------------------------------------------ changing

    def put(self, key: str, addresses: tuple[Address, ...]) -> None:
        """Make ``key`` hold exactly ``addresses`` (none: forget it).

        The caller has checked that no other key holds them.

        Complexity:
            O(1) (the key order is brought up to date by the next iteration).
        """
        before = self._held.get(key)
        for undo in self._views:  # before the change: see held_view
            if key not in undo:
                undo[key] = before
        for address in before or ():
            del self._owners[address]
            self._counts[address[0]] -= 1
        if addresses:
            self._held[key] = addresses
            for address in addresses:
                self._owners[address] = key
                self._counts[address[0]] += 1
            if before is None:
                self._add_key(key)
        elif before is not None:
            del self._held[key]
            self._remove_key(key)

    def _add_key(self, key: str) -> None:
        if key in self._removed:
            self._removed.discard(key)
        else:
            self._added.add(key)

    def _remove_key(self, key: str) -> None:
        if key in self._added:
            self._added.discard(key)
        else:
            self._removed.add(key)

    def claim(
        self, key: str, wanted: Iterable[Address], build: Callable[[Address], Any], what: str
    ) -> list[Address]:
        """Check that ``key`` may hold ``wanted``; those it does not hold yet.

        Args:
            key: the claiming key.
            wanted: addresses, at most one per family.
            build: makes the object a message and the error show.
            what: how messages name one (``"pod CIDR"``).

        Raises:
            AlreadyAllocatedError: another key holds one (``.owner`` names
                it), or ``key`` holds another of that family (``.owner`` is
                ``key``).

        Complexity:
            O(k) for k addresses.
        """
        held, new = dict(self._held.get(key, ())), []
        for family, value in wanted:
            owner = self._owners.get((family, value))
            if owner is not None and owner != key:
                shown = build((family, value))  # only when refusing: the bulk load claims per key
                message = f"{self.key_name.split()[0]} {key!r}: {what} {shown} is already "
                raise AlreadyAllocatedError(
                    f"{message}allocated to {owner!r}", value=shown, owner=owner
                )
            if family not in held:
                new.append((family, value))
            elif held[family] != value:
                shown = build((family, value))
                message = f"{key!r} already holds {build((family, held[family]))}, not {shown}"
                raise AlreadyAllocatedError(message, value=shown, owner=key)
        return new

    def pop(self, key: str) -> tuple[Address, ...] | None:
        """Forget ``key``; what it held, or None.

        Complexity:
            O(1).
        """
        held = self._held.get(key)
        if held is not None:
            self.put(key, ())
        return held

    # ------------------------------------------------------------ snapshots

    def held_copy(self) -> dict[str, tuple[Address, ...]]:
        """key -> addresses, a flat copy (one C-level dict copy: cheap under a lock).

        Complexity:
            O(n), without a Python step per key.
        """
        return dict(self._held)

    def held_view(self) -> HeldView:
        """key -> addresses as now, read later without the lock and without a copy.

        Call it under the allocator's lock, read the view outside it, and
        hand it back to :meth:`close_view` under the lock: until then every
        change records the changed key's old addresses in the view (see
        :mod:`~dualstack_ipam.owners.held_view`).

        Complexity:
            O(v) for the v views open (usually 0); each later change costs
            O(1) more per open view.

        >>> table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
        >>> view = table.held_view(); table.put("a", ((IPFamily.IPv4, 1),))
        >>> view.get("a"), view.changed
        (None, 1)
        >>> table.close_view(view)
        """
        undo: Undo = {}
        self._views = (*self._views, undo)
        return HeldView(self._held, undo)

    def close_view(self, view: HeldView) -> None:
        """Stop recording changes for ``view`` (under the allocator's lock).

        Complexity:
            O(v) for the v views open.

        >>> table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
        >>> view = table.held_view(); table.close_view(view)
        >>> table.put("a", ((IPFamily.IPv4, 1),)); view.changed
        0
        """
        self._views = tuple(undo for undo in self._views if undo is not view._undo)

    def owners_copy(self) -> dict[Address, str]:
        """address -> key, a flat copy (one C-level dict copy).

        Complexity:
            O(n), without a Python step per address.
        """
        return dict(self._owners)

    def order_copy(self) -> KeyOrder:
        """The key order now, to sort after the lock is released (see :class:`KeyOrder`).

        Complexity:
            O(k) for the k keys added or removed since the last merge; the
            sorted list is shared, not copied.
        """
        return KeyOrder(self._keys, self._added, self._removed)

    def adopt(self, order: KeyOrder) -> bool:
        """Take ``order``'s merged keys as the table's, if the table has not merged since.

        A snapshot merges outside the lock (:meth:`KeyOrder.sorted`) and
        hands the result back under it, so the table's own list stays up to
        date without a merge under the lock: the keys added or removed since
        ``order`` was taken stay pending, relative to the new list.

        Returns:
            Whether the list was taken (False: the table merged meanwhile,
            or ``order`` was not sorted yet).

        Complexity:
            O(k) for the k keys pending in the table or in ``order``.

        >>> table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
        >>> table.put("b", ((IPFamily.IPv4, 2),)); table.put("a", ((IPFamily.IPv4, 1),))
        >>> order = table.order_copy(); _ = order.sorted()
        >>> table.put("b", ()); table.put("c", ((IPFamily.IPv4, 3),))
        >>> table.adopt(order), table._keys, sorted(table._added), sorted(table._removed)
        (True, ['a', 'b'], ['c'], ['b'])
        >>> list(table)
        ['a', 'c']
        """
        merged = order._merged
        if merged is None or order._keys is not self._keys:
            return False
        # Now pending relative to the merged list: what changed since the copy.
        # A key of the copy's removed set that is back (or of its added set that
        # is gone again) left the table's set when it changed back.
        added = (order._removed - self._removed) | (self._added - order._added)
        removed = (self._removed - order._removed) | (order._added - self._added)
        self._keys, self._added, self._removed = merged, set(added), set(removed)
        return True

    def dump(self, text: Callable[[Address], str]) -> dict[str, list[str]]:
        """key -> the text of each address, keys sorted: a snapshot's entries.

        Complexity:
            O(n).
        """
        return {key: [text(a) for a in self._held[key]] for key in self._sorted()}

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
        assert self._sorted() == sorted(self._held), "the key order is stale"
