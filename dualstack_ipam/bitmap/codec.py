"""The serialised form shared by both bitmap layouts.

A universe ``[0, size)`` is cut into chunks
(:class:`~dualstack_ipam.bitmap.geometry.Geometry`). Serialised, a bitmap
is::

    {"chunk_bits": 12,                 # shift, checked against the layout
     "full": [[lo, hi], ...],          # runs of full chunks, half open, ascending
     "partial": [c, ...],              # partly used chunks, ascending
     "bits": "<base64 of deflate>"}    # their bits, 1 per slot, chunk after chunk

Empty chunks are not written. Indices follow the one rule of every
snapshot (:func:`dualstack_ipam.snapshot.write_int`): a string from 2**53
up, and only there.
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

from dualstack_ipam.bitmap.geometry import Geometry
from dualstack_ipam.errors import SnapshotError
from dualstack_ipam.snapshot import hand_over, read_int, write_int

__all__ = ["BitmapFormatError", "decode", "encode"]

_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")
_FROM_ASCII = bytes.maketrans(b"01", b"\x00\x01")


class BitmapFormatError(ValueError):
    """Serialised bitmap data that is corrupt or inconsistent."""


def _index(value: Any, what: str) -> int:
    """A chunk index as :func:`dualstack_ipam.snapshot.read_int` reads every big int."""
    try:
        return read_int(value, what)
    except SnapshotError as exc:
        raise BitmapFormatError(str(exc)) from None


def pack(buf: bytearray | bytes) -> bytes:
    """One byte per slot -> one bit per slot (slot k is bit k, little-endian).

    Complexity:
        O(len(buf)), in C.

    >>> pack(b"\\x01\\x00\\x01")
    b'\\x05'
    """
    bits = bytearray(buf).translate(_TO_ASCII)
    bits.reverse()
    return int(bits, 2).to_bytes((len(buf) + 7) // 8, "little")


def unpack(packed: bytes, cap: int) -> bytearray:
    """The inverse of :func:`pack` for a chunk of ``cap`` slots.

    Raises:
        BitmapFormatError: a bit is set at or beyond ``cap``.

    Complexity:
        O(cap), in C.

    >>> unpack(b"\\x05", 3)
    bytearray(b'\\x01\\x00\\x01')
    """
    value = int.from_bytes(packed, "little")
    if value >> cap:
        raise BitmapFormatError("bits set beyond the end of a chunk")
    text = bytearray(format(value, f"0{cap}b"), "ascii")
    text.reverse()
    return text.translate(_FROM_ASCII)


PACKED_PER_HANDOVER = 64
"""Partial chunks packed (~0.6 ms) between two hand-overs of the interpreter."""


def _packed(partials: Sequence[tuple[int, bytearray | bytes]]) -> list[bytes]:
    """Each partial chunk packed, with a short sleep every :data:`PACKED_PER_HANDOVER`.

    Packing a 2**20-slot pool's 256 chunks is ~2.5 ms of C-level calls
    between which the interpreter is never released: a thread that wanted
    it (an allocating one, while another thread snapshots) then waits out
    the whole stretch. The sleep hands it over (``sleep(0)`` takes it back
    before the waiting thread wakes); a pool of few chunks never sleeps.
    """
    packed = []
    for number, (_, buf) in enumerate(partials):
        if number and not number % PACKED_PER_HANDOVER:
            hand_over()
        packed.append(pack(buf))
    return packed


def encode(
    shift: int,
    runs: Sequence[tuple[int, int]],
    partials: Sequence[tuple[int, bytearray | bytes]],
) -> dict[str, Any]:
    """The serialised form of full-chunk ``runs`` and ``partials`` (chunk, bytes).

    Both must be ascending and canonical (see the module docstring).

    Complexity:
        O(runs + slots in the partial chunks), the bits packed and deflated in C.
    """
    packed = b"".join(_packed(partials))
    return {
        "chunk_bits": shift,
        "full": [[write_int(lo), write_int(hi)] for lo, hi in runs],
        "partial": [write_int(chunk) for chunk, _ in partials],
        "bits": base64.b64encode(zlib.compress(packed, 6)).decode("ascii"),
    }


def decode(
    geometry: Geometry, data: Any
) -> tuple[list[tuple[int, int]], list[tuple[int, bytearray]]]:
    """Validate serialised data; return its runs and partial chunk buffers.

    Raises:
        BitmapFormatError: anything corrupt, out of range or not canonical.

    Complexity:
        O(runs + slots in the partial chunks); the inflated size is bounded
        by what the partial chunks can hold before it is read.
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
        lo, hi = _index(item[0], "run start"), _index(item[1], "run end")
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
    chunks = [_index(c, "chunk index") for c in partial]
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
