"""The interface every allocation bitmap offers: a ``typing.Protocol``.

The pools above program against :class:`Bitmap` only, so a layout can be
replaced without touching them; :mod:`dualstack_ipam.bitmap.factory` checks
with mypy that both layouts satisfy it. A bitmap is not thread-safe: its
owner serialises every call (the pools hold their lock around each).

Slots are ``int`` indices in ``[0, size)``; a *band* ``[lo, hi)`` is the part
of the universe a search may return, and a search starting at ``start``
wraps from ``hi`` back to ``lo``.
"""

from __future__ import annotations

from collections.abc import Iterator
from random import Random
from typing import Any, Protocol, Self

__all__ = ["Bitmap", "BitmapImage"]


class BitmapImage(Protocol):
    """A copy of a bitmap's state taken by :meth:`Bitmap.freeze`, detached from it.

    Encoding is the slow part of a snapshot (packing bits, deflate); an image
    lets the owner take the copy under its lock and encode after releasing it.
    """

    def to_json(self) -> dict[str, Any]:
        """The serialised form of :mod:`dualstack_ipam.bitmap.codec`.

        Complexity:
            O(n) in the copied state.
        """
        ...


class Bitmap(Protocol):
    """A set of integer slots in ``[0, size)`` with a fast "first free" search.

    ``count`` is read on the hot path: a layout may keep it as a plain
    attribute (it must only ever be written by the bitmap itself).
    """

    @property
    def size(self) -> int:
        """Slots in the universe.

        Complexity:
            O(1).
        """
        ...

    @property
    def count(self) -> int:
        """Slots in use.

        Complexity:
            O(1).
        """
        ...

    def __contains__(self, index: int) -> bool:
        """Whether ``index`` is in use.

        Complexity:
            O(1), O(log runs) for a sparse slot outside any partial chunk.
        """
        ...

    def __iter__(self) -> Iterator[int]:
        """Used slots, ascending (a generator).

        Complexity:
            O(1) per slot.
        """
        ...

    def add(self, index: int) -> bool:
        """Mark ``index`` used; True if it was free.

        Complexity:
            O(1) amortised.
        """
        ...

    def discard(self, index: int) -> bool:
        """Mark ``index`` free; True if it was used.

        Complexity:
            O(1) amortised.
        """
        ...

    def find_free(self, start: int, lo: int, hi: int) -> int:
        """First free slot at or after ``start`` in ``[lo, hi)``, wrapping to ``lo``.

        Returns -1 when the band is full. Requires ``lo <= start < hi``.

        Complexity:
            O(1) chunk visits (at most three, six when it wraps); never a
            scan over used space.
        """
        ...

    def take_free(self, start: int, lo: int, hi: int) -> int:
        """Like :meth:`find_free`, and mark the slot used.

        Complexity:
            O(1) chunk visits, as :meth:`find_free`.
        """
        ...

    def take_random(self, lo: int, hi: int, rng: Random) -> int:
        """Mark a free slot of ``[lo, hi)`` chosen at random; -1 when the band is full.

        Complexity:
            O(1) amortised.
        """
        ...

    def add_range(self, start: int, stop: int) -> int:
        """Mark ``[start, stop)`` used; return how many slots changed.

        Raises:
            IndexError: the range is not inside ``[0, size)``.

        Complexity:
            O(chunks touched) Python steps at most, the rest in C; never one
            step per slot.
        """
        ...

    def discard_range(self, start: int, stop: int) -> int:
        """Mark ``[start, stop)`` free; return how many slots changed.

        Raises:
            IndexError: the range is not inside ``[0, size)``.

        Complexity:
            O(chunks touched), as :meth:`add_range`.
        """
        ...

    def all_set(self, start: int, stop: int) -> bool:
        """Whether every slot of ``[start, stop)`` is used.

        Raises:
            IndexError: the range is not inside ``[0, size)``.

        Complexity:
            O(1) chunk visits, as :meth:`find_free`.
        """
        ...

    def runs(self, start: int = 0) -> Iterator[tuple[int, int]]:
        """Maximal ``(first, stop)`` runs of used slots at or after ``start``, ascending.

        A run that began before ``start`` is cut at ``start``.

        Complexity:
            O(1) amortised per run after O(log n) to begin (a dense layout
            also ``memchr``-searches the free space between runs).
        """
        ...

    def freeze(self) -> BitmapImage:
        """A detached copy of the state, to encode later without the owner's lock.

        Complexity:
            O(n) flat C-level copies only (no Python step per slot or chunk);
            see each layout for what it copies.
        """
        ...

    def to_json(self) -> dict[str, Any]:
        """The serialised form: ``self.freeze().to_json()``.

        Complexity:
            O(n).
        """
        ...

    @classmethod
    def from_json(cls, size: int, data: Any) -> Self:
        """Rebuild a bitmap of ``size`` slots from :meth:`to_json`.

        Raises:
            BitmapFormatError: the data is corrupt, out of range or not canonical.

        Complexity:
            O(n) in the serialised size (plus a zeroed buffer if dense).
        """
        ...

    def check_invariants(self) -> None:
        """Assert every structural invariant (for tests).

        Complexity:
            O(n).
        """
        ...
