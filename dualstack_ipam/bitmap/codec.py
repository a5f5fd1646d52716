"""Chunk geometry and the serialised form shared by both bitmap layouts.

A universe ``[0, size)`` is cut into chunks of ``2**shift`` slots (at most
``2**max_shift``: 4,096 for the dense layout, 1,024 for the sparse one, or fewer
for a smaller universe); the last chunk may be shorter. Serialised, a
bitmap is::

    {"chunk_bits": 12,                 # shift, checked against the layout
     "full": [[lo, hi], ...],          # runs of full chunks, half open, ascending
     "partial": [c, ...],              # partly used chunks, ascending
     "bits": "<base64 of deflate>"}    # their bits, 1 per slot, chunk after chunk

Empty chunks are not written. Indices that may exceed 2**53 are strings.
The form is canonical: runs never touch, a partial chunk is neither empty
nor full nor inside a run, so equal sets of one size serialise equally. A
chunk is the unit a distributed store would persist.

>>> data = encode(12, [(1, 2)], [(0, bytearray(b"\\x01\\x00" * 2048))])
>>> data["full"], data["partial"]
([[1, 2]], [0])
>>> runs, partials = decode(Geometry(3 * 4096), data)
>>> runs, partials[0][0], partials[0][1].count(1)
([(1, 2)], 0, 2048)
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_SHIFT", "BitmapFormatError", "Geometry", "decode", "encode"]

MAX_SHIFT = 12
"""log2 of the largest dense chunk: 4,096 slots, 4 KiB as a byte-per-slot buffer."""

_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")
_FROM_ASCII = bytes.maketrans(b"01", b"\x00\x01")
_JSON_SAFE_INT = 1 << 53


class BitmapFormatError(ValueError):
    """Serialised bitmap data that is corrupt or inconsistent."""


class Geometry:
    """How a universe of ``size`` slots is cut into chunks.

    >>> g = Geometry(5000)
    >>> g.shift, g.slots, g.last, g.last_cap, g.cap(0), g.cap(1)
    (12, 4096, 1, 904, 4096, 904)
    >>> Geometry(5000, max_shift=8).last
    19
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
        """Slots in ``chunk``."""
        return self.last_cap if chunk == self.last else self.slots

    def run_slots(self, lo: int, hi: int) -> int:
        """Slots in the chunks ``[lo, hi)``."""
        slots = (hi - lo) << self.shift
        if hi == self.last + 1:
            slots -= self.slots - self.last_cap
        return slots


def _jint(value: int) -> int | str:
    return value if value < _JSON_SAFE_INT else str(value)


def _read_int(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 60:
        return int(value)
    raise BitmapFormatError(f"{what} must be an integer, got {value!r}")


def pack(buf: bytearray | bytes) -> bytes:
    """One byte per slot -> one bit per slot (slot k is bit k, little-endian)."""
    bits = bytearray(buf).translate(_TO_ASCII)
    bits.reverse()
    return int(bits, 2).to_bytes((len(buf) + 7) // 8, "little")


def unpack(packed: bytes, cap: int) -> bytearray:
    """The inverse of :func:`pack` for a chunk of ``cap`` slots."""
    value = int.from_bytes(packed, "little")
    if value >> cap:
        raise BitmapFormatError("bits set beyond the end of a chunk")
    text = bytearray(format(value, f"0{cap}b"), "ascii")
    text.reverse()
    return text.translate(_FROM_ASCII)


def encode(
    shift: int,
    runs: Sequence[tuple[int, int]],
    partials: Sequence[tuple[int, bytearray | bytes]],
) -> dict[str, Any]:
    """The serialised form of full-chunk ``runs`` and ``partials`` (chunk, bytes)."""
    packed = b"".join(pack(buf) for _, buf in partials)
    return {
        "chunk_bits": shift,
        "full": [[_jint(lo), _jint(hi)] for lo, hi in runs],
        "partial": [_jint(chunk) for chunk, _ in partials],
        "bits": base64.b64encode(zlib.compress(packed, 6)).decode("ascii"),
    }


def decode(
    geometry: Geometry, data: Any
) -> tuple[list[tuple[int, int]], list[tuple[int, bytearray]]]:
    """Validate serialised data; return its runs and partial chunk buffers.

    Raises:
        BitmapFormatError: anything corrupt, out of range or not canonical.
    """
    if not isinstance(data, dict):
        raise BitmapFormatError(f"allocated set must be an object, got {type(data).__name__}")
    missing = {"chunk_bits", "full", "partial", "bits"} - data.keys()
    if missing:
        raise BitmapFormatError(f"allocated set lacks {sorted(missing)}")
    shift = data["chunk_bits"]
    if type(shift) is not int or shift != geometry.shift:
        raise BitmapFormatError(
            f"chunk_bits {shift!r} does not match {geometry.shift} for {geometry.size} slots"
        )
    runs = _decode_runs(geometry, data["full"])
    return runs, _decode_partials(geometry, runs, data["partial"], data["bits"])


def _decode_runs(geometry: Geometry, full: Any) -> list[tuple[int, int]]:
    if not isinstance(full, list):
        raise BitmapFormatError(f"'full' must be a list, got {type(full).__name__}")
    runs: list[tuple[int, int]] = []
    previous_hi = -1
    for item in full:
        if not isinstance(item, list) or len(item) != 2:
            raise BitmapFormatError(f"a run must be [lo, hi], got {item!r}")
        lo, hi = _read_int(item[0], "run start"), _read_int(item[1], "run end")
        if not previous_hi < lo < hi <= geometry.last + 1:
            raise BitmapFormatError(f"run {item!r} is out of order, range, or touches another")
        runs.append((lo, hi))
        previous_hi = hi
    return runs


def _decode_partials(
    geometry: Geometry, runs: list[tuple[int, int]], partial: Any, bits: Any
) -> list[tuple[int, bytearray]]:
    if not isinstance(partial, list) or not isinstance(bits, str):
        raise BitmapFormatError("'partial' must be a list and 'bits' a string")
    chunks = [_read_int(c, "chunk index") for c in partial]
    if any(not 0 <= c <= geometry.last for c in chunks):
        raise BitmapFormatError(f"a partial chunk is outside [0, {geometry.last}]")
    expected = sum((geometry.cap(c) + 7) // 8 for c in chunks)
    try:
        raw = base64.b64decode(bits.encode("ascii"), validate=True)
        inflater = zlib.decompressobj()
        payload = inflater.decompress(raw, expected + 1)
        complete = inflater.eof and not inflater.unused_data
    except (binascii.Error, zlib.error, UnicodeEncodeError) as exc:
        raise BitmapFormatError(f"'bits' is not valid deflated base64: {exc}") from None
    if not complete or len(payload) != expected:
        raise BitmapFormatError(
            f"'bits' holds {len(payload)}{'' if complete else '+'} bytes, "
            f"{expected} expected for {len(chunks)} partial chunks"
        )
    result: list[tuple[int, bytearray]] = []
    position, previous, k = 0, -1, 0
    for chunk in chunks:
        while k < len(runs) and runs[k][1] <= chunk:
            k += 1
        if chunk <= previous or (k < len(runs) and runs[k][0] <= chunk):
            raise BitmapFormatError(f"partial chunk {chunk} is out of order or inside a run")
        cap = geometry.cap(chunk)
        width = (cap + 7) // 8
        buf = unpack(payload[position : position + width], cap)
        position += width
        if not 0 < buf.count(1) < cap:
            raise BitmapFormatError(f"partial chunk {chunk} is empty or full")
        result.append((chunk, buf))
        previous = chunk
    return result
