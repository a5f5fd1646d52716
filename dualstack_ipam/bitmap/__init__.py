"""The ``bitmap`` layer: integer index sets over ``[0, size)``, nothing about IPs.

One interface (:class:`Bitmap`, a ``typing.Protocol``), two layouts
(:class:`DenseBitmap` up to :data:`DENSE_MAX` slots, :class:`SparseBitmap`
above), the chunk :class:`Geometry` both use, one serialised form
(:mod:`~dualstack_ipam.bitmap.codec`) and the factory that picks a layout.
Everything above imports from here, never from the modules inside. The
layer imports nothing of ours but ``errors`` and the snapshot int rule.
"""

from dualstack_ipam.bitmap.codec import BitmapFormatError
from dualstack_ipam.bitmap.dense import DENSE_MAX, DenseBitmap
from dualstack_ipam.bitmap.factory import bitmap_from_json, make_bitmap
from dualstack_ipam.bitmap.geometry import MAX_SHIFT, Geometry
from dualstack_ipam.bitmap.protocol import Bitmap, BitmapImage
from dualstack_ipam.bitmap.sparse import LOCALITY_SPAN, SparseBitmap

__all__ = [
    "DENSE_MAX",
    "LOCALITY_SPAN",
    "MAX_SHIFT",
    "Bitmap",
    "BitmapFormatError",
    "BitmapImage",
    "DenseBitmap",
    "Geometry",
    "SparseBitmap",
    "bitmap_from_json",
    "make_bitmap",
]
