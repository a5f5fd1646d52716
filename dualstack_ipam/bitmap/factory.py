"""Integer index sets over ``[0, size)``: the allocation bitmaps, and which to use.

This is the only place that knows how free space is found; it knows nothing
about IP addresses. Two layouts share one interface and one serialised form
(:mod:`dualstack_ipam.bitmap.codec`):

* :class:`~dualstack_ipam.bitmap.dense.DenseBitmap` up to :data:`DENSE_MAX` slots: a
  flat ``bytearray`` (one byte per slot) plus per-chunk counts and "full"
  flags; a search is at most three ``memchr`` calls over 12 KiB, twice that
  when it wraps around.
* :class:`~dualstack_ipam.bitmap.sparse.SparseBitmap` above it (IPv6 ranges, subnet
  pools of 2**40): chunks of 4,096 slots created lazily, runs of full chunks
  kept as ranges; memory follows what is allocated.

``benchmarks/bitmap_designs.py`` measured both against a 64-ary tree of
words; ``docs/performance.md`` has the figures and the reasons for the split.

>>> type(make_bitmap(254)).__name__, type(make_bitmap(2**64)).__name__
('DenseBitmap', 'SparseBitmap')
>>> b = make_bitmap(2**64); b.add_range(0, 2**64), b.count == 2**64
(18446744073709551616, True)
>>> bitmap_from_json(2**64, b.to_json()).find_free(5, 0, 2**64)
-1
"""

from __future__ import annotations

from typing import Any

from dualstack_ipam.bitmap.codec import BitmapFormatError
from dualstack_ipam.bitmap.dense import DENSE_MAX, DenseBitmap
from dualstack_ipam.bitmap.sparse import LOCALITY_SPAN, SparseBitmap

__all__ = [
    "DENSE_MAX",
    "LOCALITY_SPAN",
    "AnyBitmap",
    "Bitmap",
    "BitmapFormatError",
    "DenseBitmap",
    "SparseBitmap",
    "bitmap_from_json",
    "make_bitmap",
]

AnyBitmap = DenseBitmap | SparseBitmap

Bitmap = SparseBitmap
"""The chunked layout, which works at every size (kept for the design benchmark)."""


def make_bitmap(size: int) -> AnyBitmap:
    """An empty bitmap of ``size`` slots in the layout that suits the size.

    Complexity: O(size) bytes for a dense bitmap (zeroed by C), O(1) for sparse.
    """
    return DenseBitmap(size) if size <= DENSE_MAX else SparseBitmap(size)


def bitmap_from_json(size: int, data: Any) -> AnyBitmap:
    """Rebuild a bitmap of ``size`` slots; ``BitmapFormatError`` if corrupt.

    Complexity: O(n) in the serialised size (plus the zeroed buffer if dense).
    """
    if size <= DENSE_MAX:
        return DenseBitmap.from_json(size, data)
    return SparseBitmap.from_json(size, data)
