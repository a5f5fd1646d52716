"""What an owner table held at one instant, read later while the table changes.

A snapshot of 50,000 Services used to copy the table's ``key -> addresses``
dict under its allocator's lock: one C-level copy, but ~1-4 ms on the
shared 2-core machine once releases have left holes in the dict (the fast
copy needs a dict without deleted entries). An allocating thread waited
that long for the lock, then up to the interpreter's 5 ms switch interval
for the interpreter itself: the copy alone put ~10 ms pauses in the
distribution ``measure_pause`` of ``benchmarks/bench_store.py`` reports.

A :class:`HeldView` copies nothing. Opening one under the lock costs
O(1); from then on every change of the table first records, in the view's
*undo* dict, what the changed key held when the view was opened (only the
first change of a key is recorded). :meth:`HeldView.get` reads the live
dict and then the undo dict, without the lock: the table records before it
changes and the view reads in the other order, and each dict operation is
atomic under the interpreter lock, so a read racing a change sees either
the old value twice or the recorded one; both are the value at the
instant. The view holds O(c) entries for c keys changed while it is open,
and must be closed (under the lock) when the snapshot is done, or every
later change keeps recording into it.

>>> from dualstack_ipam.net import IPFamily
>>> from dualstack_ipam.owners.table import OwnerTable
>>> table = OwnerTable((IPFamily.IPv4,), "key", "Service range")
>>> table.put("a", ((IPFamily.IPv4, 1),))
>>> view = table.held_view()
>>> table.put("a", ()); table.put("b", ((IPFamily.IPv4, 2),))
>>> view.get("a"), view.get("b"), table.get("a")
(((<IPFamily.IPv4: 'IPv4'>, 1),), None, None)
>>> table.close_view(view)
"""

from __future__ import annotations

from typing import TypeAlias

from dualstack_ipam.net import IPFamily

__all__ = ["Address", "Held", "HeldView", "Undo"]

Address: TypeAlias = tuple[IPFamily, int]
"""One held slot: its family, and its number in that family (an int)."""

Held: TypeAlias = tuple[Address, ...]
"""What a key holds: its addresses."""

Undo: TypeAlias = dict[str, "Held | None"]
"""key -> what it held when a view was opened (None: nothing), first change only."""


class HeldView:
    """``key -> addresses`` of an owner table as at the instant the view was opened.

    Made by :meth:`OwnerTable.held_view
    <dualstack_ipam.owners.table.OwnerTable.held_view>` under the
    allocator's lock; read without it; closed by :meth:`OwnerTable.close_view
    <dualstack_ipam.owners.table.OwnerTable.close_view>` under it.
    """

    __slots__ = ("_held", "_undo")

    def __init__(self, held: dict[str, Held], undo: Undo) -> None:
        self._held, self._undo = held, undo

    def get(self, key: str) -> Held | None:
        """What ``key`` held when the view was opened, or None.

        The live dict is read first, the undo dict second: the table writes
        the undo entry before it changes the live one (see the module).

        Complexity:
            O(1).

        >>> HeldView({"a": ((IPFamily.IPv4, 1),)}, {"a": None}).get("a") is None
        True
        """
        now = self._held.get(key)
        return self._undo.get(key, now)

    def __getitem__(self, key: str) -> Held:
        """What ``key`` held when the view was opened.

        Raises:
            KeyError: it held nothing then.

        Complexity:
            O(1).

        >>> HeldView({"a": ((IPFamily.IPv4, 1),)}, {})["a"]
        ((<IPFamily.IPv4: 'IPv4'>, 1),)
        """
        now = self._held.get(key)
        found = self._undo.get(key, now)
        if found is None:
            raise KeyError(key)
        return found

    @property
    def changed(self) -> int:
        """How many keys changed since the view was opened (what it keeps).

        Complexity:
            O(1).

        >>> HeldView({}, {"a": None}).changed
        1
        """
        return len(self._undo)
