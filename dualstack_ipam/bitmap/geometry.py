"""How a universe of integer slots is cut into chunks.

Both layouts cut ``[0, size)`` into chunks of ``2**shift`` slots: at most
``2**max_shift`` (4,096 for the dense layout, 1,024 for the sparse one),
fewer for a smaller universe; the last chunk may be shorter. A chunk is the
unit of the summaries, of the serialised form and of what a store persists.

>>> g = Geometry(5000)
>>> g.shift, g.slots, g.last, g.last_cap, g.cap(0), g.cap(1)
(12, 4096, 1, 904, 4096, 904)
>>> Geometry(5000, max_shift=8).last
19
"""

from __future__ import annotations

__all__ = ["MAX_SHIFT", "Geometry"]

MAX_SHIFT = 12
"""log2 of the largest dense chunk: 4,096 slots, 4 KiB as a byte-per-slot buffer."""


class Geometry:
    """How a universe of ``size`` slots is cut into chunks of ``slots`` each.

    Attributes:
        size: slots in the universe.
        shift: log2 of the chunk size; ``slots = 1 << shift``, ``mask = slots - 1``.
        last: the index of the last chunk (-1 for an empty universe).
        last_cap: slots in the last chunk.

    Raises:
        ValueError: ``size`` is negative.

    Complexity:
        O(1).

    >>> g = Geometry(3 * 1024 + 1, max_shift=10)
    >>> g.last, g.cap(3), g.run_slots(2, 4)
    (3, 1, 1025)
    """

    __slots__ = ("last", "last_cap", "mask", "shift", "size", "slots")

    def __init__(self, size: int, max_shift: int = MAX_SHIFT) -> None:
        if size < 0:
            raise ValueError(f"bitmap size must be >= 0, got {size!r}")
        self.size = size
        self.shift = min(max_shift, (size - 1).bit_length()) if size > 1 else 0
        self.slots = 1 << self.shift
        self.mask = self.slots - 1
        self.last = (size - 1) >> self.shift if size else -1
        self.last_cap = size - (self.last << self.shift) if size else 0

    def cap(self, chunk: int) -> int:
        """Slots in ``chunk``.

        Complexity:
            O(1).

        >>> Geometry(4100).cap(1)
        4
        """
        return self.last_cap if chunk == self.last else self.slots

    def run_slots(self, lo: int, hi: int) -> int:
        """Slots in the chunks ``[lo, hi)``.

        Complexity:
            O(1).

        >>> Geometry(4100).run_slots(0, 2)
        4100
        """
        slots = (hi - lo) << self.shift
        if hi == self.last + 1:
            slots -= self.slots - self.last_cap
        return slots
