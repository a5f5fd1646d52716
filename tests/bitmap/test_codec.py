"""The serialised form's integers follow the one snapshot rule, and ``freeze()``
detaches a copy that encodes to what the bitmap held when it was taken."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualstack_ipam.bitmap import (
    Bitmap,
    BitmapFormatError,
    DenseBitmap,
    SparseBitmap,
    bitmap_from_json,
    codec,
    make_bitmap,
)
from dualstack_ipam.bitmap.geometry import Geometry
from dualstack_ipam.snapshot import read_int, write_int

JSON_SAFE = 2**53
Layout = type[DenseBitmap] | type[SparseBitmap]
LAYOUTS: list[Layout] = [DenseBitmap, SparseBitmap]


def sample(layout: Layout) -> Bitmap:
    """Two runs of full chunks and two partial chunks, in a universe of 40 chunks."""
    bitmap = layout(40 * 4096)
    slots = 1 << bitmap.to_json()["chunk_bits"]
    bitmap.add_range(slots, 3 * slots)
    bitmap.add_range(5 * slots, 6 * slots)
    bitmap.add(7 * slots + 3)
    bitmap.add_range(9 * slots + 1, 9 * slots + 9)
    return bitmap


def as_text(value: Any) -> Any:
    """``value`` with every int written as a string, as a lax writer would."""
    if isinstance(value, list):
        return [as_text(item) for item in value]
    return str(value) if type(value) is int else value


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("key", ["full", "partial"])
def test_small_index_as_a_string_is_refused(layout: Layout, key: str) -> None:
    """ "5" is not how an index below 2**53 is written: refused, as in every snapshot."""
    data = sample(layout).to_json()
    assert data[key], "the sample has something to garble"
    with pytest.raises(BitmapFormatError, match="must be an integer"):
        layout.from_json(40 * 4096, {**data, key: as_text(data[key])})


@pytest.mark.parametrize("text", ["5", "05", "+5", " 5", "5.0", "9007199254740991"])
def test_the_codec_and_the_envelope_read_ints_alike(text: str) -> None:
    """Each string the envelope refuses, the codec refuses too."""
    with pytest.raises(ValueError, match="must be an integer"):
        read_int(text, "x")
    bitmap = SparseBitmap(2**64)
    bitmap.add_range(2**20, 2**21)
    data = bitmap.to_json()
    data["full"] = [[text, data["full"][0][1]]]
    with pytest.raises(BitmapFormatError, match="must be an integer"):
        SparseBitmap.from_json(2**64, data)


@pytest.mark.parametrize("chunk", [JSON_SAFE - 2, JSON_SAFE - 1, JSON_SAFE, 2**54 - 2], ids=str)
def test_indices_around_2_53_are_written_by_the_rule_and_read_back(chunk: int) -> None:
    """Below 2**53 a JSON number, from 2**53 up a string; both restore."""
    size = 2**64
    bitmap = SparseBitmap(size)
    shift = bitmap.to_json()["chunk_bits"]
    bitmap.add_range(chunk << shift, (chunk + 1) << shift)  # a run [chunk, chunk + 1)
    bitmap.add((chunk + 1 << shift) + 7)  # a partial chunk right after it: it is not full
    data = json.loads(json.dumps(bitmap.to_json()))
    assert data["full"] == [[write_int(chunk), write_int(chunk + 1)]]
    assert data["partial"] == [write_int(chunk + 1)]
    assert isinstance(data["partial"][0], int if chunk + 1 < JSON_SAFE else str)
    again = bitmap_from_json(size, data)
    assert list(again.runs()) == list(bitmap.runs())
    again.check_invariants()


@given(
    st.sampled_from([1, 4095, 4097, 2**24, 2**24 + 1, 2**40, 2**64, 2**128 - 1]),
    st.lists(st.tuples(st.floats(0, 1), st.integers(1, 5000)), max_size=12),
)
def test_whatever_to_json_writes_restores(size: int, spans: list[tuple[float, int]]) -> None:
    bitmap = make_bitmap(size)
    for where, length in spans:
        start = min(int(where * size), size - 1)
        bitmap.add_range(start, min(start + length, size))
    data = json.loads(json.dumps(bitmap.to_json()))
    for value in (*data["partial"], *(end for run in data["full"] for end in run)):
        assert value == write_int(int(value)), "an index not written by the snapshot rule"
    again = bitmap_from_json(size, data)
    assert list(again.runs()) == list(bitmap.runs())
    assert again.to_json() == data


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_frozen_image_keeps_the_state_it_was_taken_in(layout: Layout) -> None:
    bitmap = sample(layout)
    before = bitmap.to_json()
    slots = 1 << before["chunk_bits"]
    image = bitmap.freeze()
    # Change every kind of chunk: a partial one, a full one, an empty one.
    assert bitmap.discard(7 * slots + 3)
    assert bitmap.discard_range(slots, slots + 5) == 5
    assert bitmap.add_range(30 * slots, 30 * slots + 17) == 17
    assert bitmap.add(9 * slots)
    assert bitmap.to_json() != before
    assert image.to_json() == before
    assert image.to_json() == before, "encoding twice gives the same form"


@pytest.mark.parametrize("every", [1, 3, 64])
@given(st.lists(st.integers(0, 2**14 - 1), max_size=12))
def test_packing_in_stretches_writes_what_one_pass_writes(every: int, chunks: list[int]) -> None:
    # Hand-overs between stretches of packing change nothing in the output.
    # Chunks of 4,096 slots, each partial: slot 0 used, slot 1 free.
    geometry = Geometry(12 * 4096)
    partials = [
        (number, bytearray([1, 0, *((bits >> k) & 1 for k in range(14))]) * 256)
        for number, bits in enumerate(chunks)
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(codec, "PACKED_PER_HANDOVER", every)
        data = codec.encode(geometry.shift, [], partials)
    one_pass = b"".join(codec.pack(buf) for _, buf in partials)
    assert zlib.decompress(base64.b64decode(data["bits"])) == one_pass
    runs, back = codec.decode(geometry, data)
    assert runs == []
    assert back == partials
