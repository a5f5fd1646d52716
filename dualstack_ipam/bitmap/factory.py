"""Integer index sets over ``[0, size)``: the allocation bitmaps, and which to use.

This is the only place that knows how free space is found; it knows nothing
about IP addresses. Two layouts share one interface
(:class:`~dualstack_ipam.bitmap.protocol.Bitmap`) and one serialised form
(:mod:`dualstack_ipam.bitmap.codec`):

* :class:`~dualstack_ipam.bitmap.dense.DenseBitmap` up to :data:`DENSE_MAX` slots: a
  flat ``bytearray`` (one byte per slot) plus per-chunk counts and "full"
  flags; a search is at most three ``memchr`` calls over 12 KiB, twice that
  when it wraps around.
* :class:`~dualstack_ipam.bitmap.sparse.SparseBitmap` above it (IPv6 ranges, subnet
  pools of 2**40): chunks of 1,024 slots created lazily, runs of full chunks
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

from dualstack_ipam.bitmap.dense import DENSE_MAX, DenseBitmap
from dualstack_ipam.bitmap.protocol import Bitmap
from dualstack_ipam.bitmap.sparse import SparseBitmap

__all__ = ["bitmap_from_json", "make_bitmap"]

# mypy proves here that both layouts satisfy the protocol (class methods included).
_DENSE: type[Bitmap] = DenseBitmap
_SPARSE: type[Bitmap] = SparseBitmap


def make_bitmap(size: int) -> Bitmap:
    """An empty bitmap of ``size`` slots in the layout that suits the size.

    Complexity:
        O(size) bytes for a dense bitmap (zeroed by C), O(1) for sparse.

    >>> make_bitmap(2**24).size, type(make_bitmap(2**24 + 1)).__name__
    (16777216, 'SparseBitmap')
    """
    return DenseBitmap(size) if size <= DENSE_MAX else SparseBitmap(size)


def bitmap_from_json(size: int, data: Any) -> Bitmap:
    """Rebuild a bitmap of ``size`` slots from its serialised form.

    Raises:
        BitmapFormatError: the data is corrupt, out of range or not canonical.

    Complexity:
        O(n) in the serialised size (plus the zeroed buffer if dense).

    >>> bitmap_from_json(10, make_bitmap(10).to_json()).count
    0
    """
    if size <= DENSE_MAX:
        return DenseBitmap.from_json(size, data)
    return SparseBitmap.from_json(size, data)
