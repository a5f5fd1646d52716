"""The allocation bitmaps: both layouts against a plain set, and their shared codec."""

from __future__ import annotations

import base64
import itertools
import json
import random
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import dualstack_ipam.bitmap.dense as dense
from dualstack_ipam.bitmap import (
    DENSE_MAX,
    Bitmap,
    BitmapFormatError,
    DenseBitmap,
    Geometry,
    SparseBitmap,
    bitmap_from_json,
    make_bitmap,
)

Layout = type[DenseBitmap] | type[SparseBitmap]
LAYOUTS: list[Layout] = [DenseBitmap, SparseBitmap]
# Sizes around the chunk edges: 1 slot, a short last chunk, several chunks.
SIZES = [1, 2, 7, 16, 254, 4096, 4097, 9000]


def expected_find(model: set[int], start: int, lo: int, hi: int) -> int:
    for index in itertools.chain(range(start, hi), range(lo, start)):
        if index not in model:
            return index
    return -1


class BitmapMachine(RuleBasedStateMachine):
    """Every operation of a bitmap, checked against a ``set`` after each step."""

    @initialize(layout=st.sampled_from(LAYOUTS), size=st.sampled_from(SIZES))
    def start(self, layout: Layout, size: int) -> None:
        self.size = size
        self.bitmap: DenseBitmap | SparseBitmap = layout(size)
        self.model: set[int] = set()

    def index(self, data: st.DataObject) -> int:
        index: int = data.draw(st.integers(0, self.size - 1))
        return index

    def span(self, data: st.DataObject) -> tuple[int, int]:
        start = data.draw(st.integers(0, self.size))
        return start, data.draw(st.integers(start, self.size))

    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        i = self.index(data)
        assert self.bitmap.add(i) == (i not in self.model)
        self.model.add(i)

    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        i = self.index(data)
        assert self.bitmap.discard(i) == (i in self.model)
        self.model.discard(i)

    @rule(data=st.data())
    def add_range(self, data: st.DataObject) -> None:
        a, b = self.span(data)
        assert self.bitmap.add_range(a, b) == len(set(range(a, b)) - self.model)
        self.model |= set(range(a, b))

    @rule(data=st.data())
    def discard_range(self, data: st.DataObject) -> None:
        a, b = self.span(data)
        assert self.bitmap.discard_range(a, b) == len(set(range(a, b)) & self.model)
        self.model -= set(range(a, b))

    @rule(data=st.data())
    def take_free(self, data: st.DataObject) -> None:
        lo = self.index(data)
        hi = data.draw(st.integers(lo + 1, self.size))
        start = data.draw(st.integers(lo, hi - 1))
        want = expected_find(self.model, start, lo, hi)
        assert self.bitmap.find_free(start, lo, hi) == want
        assert self.bitmap.take_free(start, lo, hi) == want
        if want >= 0:
            self.model.add(want)

    @rule(data=st.data(), seed=st.integers(0, 2**32))
    def take_random(self, data: st.DataObject, seed: int) -> None:
        lo = self.index(data)
        hi = data.draw(st.integers(lo + 1, self.size))
        got = self.bitmap.take_random(lo, hi, random.Random(seed))
        if got < 0:
            assert set(range(lo, hi)) <= self.model
        else:
            assert lo <= got < hi
            assert got not in self.model
            self.model.add(got)

    @rule(data=st.data())
    def all_set(self, data: st.DataObject) -> None:
        a, b = self.span(data)
        assert self.bitmap.all_set(a, b) == (set(range(a, b)) <= self.model)

    @precondition(lambda self: self.size <= 4097)
    @rule()
    def round_trip(self) -> None:
        data = json.loads(json.dumps(self.bitmap.to_json()))
        other = type(self.bitmap).from_json(self.size, data)
        assert list(other) == sorted(self.model)
        # The other layout, given the same runs, holds the same set, and the
        # canonical form does not depend on the order the set was built in.
        twin = (SparseBitmap if isinstance(self.bitmap, DenseBitmap) else DenseBitmap)(self.size)
        for start, stop in self.bitmap.runs():
            twin.add_range(start, stop)
        assert list(twin.runs()) == list(self.bitmap.runs())
        rebuilt = type(self.bitmap)(self.size)
        for start, stop in reversed(list(self.bitmap.runs())):
            rebuilt.add_range(start, stop)
        assert rebuilt.to_json() == self.bitmap.to_json()

    @invariant()
    def agrees(self) -> None:
        self.bitmap.check_invariants()
        assert self.bitmap.count == len(self.model)

    def teardown(self) -> None:
        assert list(self.bitmap) == sorted(self.model)
        assert [i for a, b in self.bitmap.runs() for i in range(a, b)] == sorted(self.model)
        for start in {0, 1, self.size // 3, self.size - 1, self.size}:
            tail = [i for a, b in self.bitmap.runs(start) for i in range(a, b)]
            assert tail == sorted(i for i in self.model if i >= start)
        assert all((i in self.bitmap) == (i in self.model) for i in range(self.size))


TestBitmapMachine = BitmapMachine.TestCase


def test_layout_is_chosen_by_size() -> None:
    assert isinstance(make_bitmap(DENSE_MAX), DenseBitmap)
    assert isinstance(make_bitmap(DENSE_MAX + 1), SparseBitmap)


@pytest.mark.parametrize("size", [2**40, 2**64, 2**128 - 1])
def test_sparse_ranges_cost_one_entry_per_run(size: int) -> None:
    bitmap = SparseBitmap(size)
    tracemalloc.start()
    try:
        assert bitmap.add_range(0, size) == size
        assert bitmap.discard_range(size // 3, size // 2) == size // 2 - size // 3
        assert bitmap.add_range(size // 3 + 1, size // 2 - 1) == size // 2 - size // 3 - 2
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 64 * 1024
    assert bitmap.count == size - 2
    assert bitmap.find_free(0, 0, size) == size // 3
    assert bitmap.find_free(size // 3 + 1, 0, size) == size // 2 - 1
    bitmap.check_invariants()
    again = bitmap_from_json(size, json.loads(json.dumps(bitmap.to_json())))
    assert list(again.runs()) == list(bitmap.runs())


def test_sparse_random_picks_keep_locality() -> None:
    bitmap = SparseBitmap(2**64)
    rng = random.Random(0)
    picks = {bitmap.take_random(256, 2**64, rng) for _ in range(20_000)}
    assert len(picks) == 20_000 == bitmap.count
    # 20,000 picks fill whole 1,024-slot chunks instead of 20,000 scattered ones.
    assert len({pick >> 10 for pick in picks}) <= 20_000 // 1024 + 2
    bitmap.check_invariants()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_full_chunks_are_skipped_without_scanning(layout: Layout) -> None:
    bitmap = layout(2**20)
    bitmap.add_range(0, 2**20 - 1)
    assert bitmap.take_free(5, 0, 2**20) == 2**20 - 1
    assert bitmap.take_free(5, 0, 2**20) == -1
    assert bitmap.find_free(7, 3, 9) == -1
    assert bitmap.discard(4096 * 7 + 3)
    assert bitmap.find_free(5, 0, 2**20) == 4096 * 7 + 3
    bitmap.check_invariants()


def _good(layout: Layout, size: int) -> tuple[Bitmap, int]:
    """A bitmap with one full chunk (a run) and one partial chunk, and its chunk size."""
    bitmap = layout(size)
    slots = 1 << bitmap.to_json()["chunk_bits"]
    bitmap.add_range(0, slots)
    bitmap.add_range(slots + slots // 4, slots + slots // 4 + 3)
    return bitmap, slots


def _corrupt_cases(layout: Layout, size: int) -> list[Any]:
    bitmap, slots = _good(layout, size)
    good = bitmap.to_json()
    width = slots // 8

    def bits(payload: bytes) -> str:
        return base64.b64encode(zlib.compress(payload)).decode()

    cases: list[Any] = [None, [], {**good, "chunk_bits": good["chunk_bits"] - 1}]
    cases += [{**good, "chunk_bits": True}, {**good, "chunk_bits": float(good["chunk_bits"])}]
    cases += [{k: v for k, v in good.items() if k != key} for key in good]
    cases += [
        {**good, "full": [[0, 1], [1, 2]]},  # runs that touch
        {**good, "full": [[1, 0]]},
        {**good, "full": [[0, 10**6]]},
        {**good, "full": [["x", 1]]},
        {**good, "full": "0-1"},
        {**good, "partial": [0]},  # a partial chunk inside a run
        {**good, "partial": [1, 1]},
        {**good, "partial": [10**6]},
        {**good, "bits": good["bits"][:-4]},
        {**good, "bits": "!!!!"},
        {**good, "bits": bits(b"\xff" * width)},  # a "partial" chunk that is full
        {**good, "bits": bits(b"\x00" * width)},  # ... or empty
        {**good, "bits": bits(b"\x01" * (width + 1))},
    ]
    return cases


@pytest.mark.parametrize("layout", LAYOUTS)
def test_corrupt_serialised_data_is_refused(layout: Layout) -> None:
    size = 3 * 4096
    good, slots = _good(layout, size)
    assert list(layout.from_json(size, good.to_json())) == list(good)
    for case in _corrupt_cases(layout, size):
        with pytest.raises(BitmapFormatError):
            layout.from_json(size, case)
    # Valid: the same set without its partial chunk.
    empty_bits = base64.b64encode(zlib.compress(b"")).decode()
    alone = {**good.to_json(), "partial": [], "bits": empty_bits}
    assert layout.from_json(size, alone).count == slots


@given(st.integers(1, 3 * 4096), st.data())
def test_geometry_covers_every_slot_once(size: int, data: st.DataObject) -> None:
    geometry = Geometry(size)
    total = sum(geometry.cap(c) for c in range(geometry.last + 1))
    assert total == size
    assert geometry.run_slots(0, geometry.last + 1) == size
    index = data.draw(st.integers(0, size - 1))
    assert index >> geometry.shift <= geometry.last


@pytest.mark.parametrize("layout", LAYOUTS)
def test_out_of_range_ranges_are_refused(layout: Layout) -> None:
    bitmap = layout(100)
    for start, stop in [(-1, 5), (5, 101), (6, 5)]:
        with pytest.raises(IndexError):
            bitmap.add_range(start, stop)
        with pytest.raises(IndexError):
            bitmap.discard_range(start, stop)
    assert bitmap.count == 0
    bitmap.check_invariants()


def test_dense_memory_is_one_byte_per_slot() -> None:
    # Only what the bitmap's own code allocated counts: the threads that
    # other tests' unclosed stores leave running allocate meanwhile.
    tracemalloc.start()
    try:
        bitmap = DenseBitmap(2**20)
        rng = random.Random(1)
        for _ in range(2**19):
            bitmap.take_random(0, 2**20, rng)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    mine = snapshot.filter_traces([tracemalloc.Filter(True, f"{Path(dense.__file__).parent}/*")])
    current = sum(stat.size for stat in mine.statistics("filename"))
    assert 2**20 <= current < 1.01 * 2**20


@given(st.integers(0, 2**32), st.lists(st.integers(0, 3), min_size=1, max_size=400))
def test_sparse_locality_path_agrees_with_a_set(seed: int, ops: list[int]) -> None:
    """The wide-band random path, forced onto a small universe."""
    import dualstack_ipam.bitmap.sparse as sparse

    saved = sparse.LOCALITY_SPAN
    sparse.LOCALITY_SPAN = 16
    try:
        size, lo, hi = 3 * 4096 + 100, 10, 3 * 4096 + 90
        bitmap, model, rng = SparseBitmap(size), set[int](), random.Random(seed)
        if seed % 2:  # nearly full: the paths that move between chunks
            bitmap.add_range(lo + 50, hi - 50)
            model |= set(range(lo + 50, hi - 50))
        for op in ops:
            if op == 3 and model:
                victim = rng.choice(sorted(model))
                assert bitmap.discard(victim)
                model.discard(victim)
                continue
            got = bitmap.take_random(lo, hi, rng)
            if got < 0:
                assert set(range(lo, hi)) <= model
            else:
                assert lo <= got < hi
                assert got not in model
                model.add(got)
        bitmap.check_invariants()
        assert list(bitmap) == sorted(model)
    finally:
        sparse.LOCALITY_SPAN = saved


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size", [1000, 4097, 5 * 1024 + 3, 3 * 4096])
def test_no_runs_from_the_end_of_a_full_universe(layout: Layout, size: int) -> None:
    """A full last chunk shorter than the others gave the empty run (size, size)."""
    bitmap = layout(size)
    bitmap.add_range(0, size)
    assert list(bitmap.runs(size)) == []
    assert list(bitmap.runs(size - 1)) == [(size - 1, size)]
    assert list(bitmap.runs()) == [(0, size)]
