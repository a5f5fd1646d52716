"""The sparse layout of the allocation bitmap, for universes above 2**24 slots.

Measured against a flat bitmap with a summary and a 64-ary tree of words
(``benchmarks/bitmap_designs.py``, ``docs/performance.md``):

* The universe is cut into chunks of ``2**shift`` slots (1,024, or fewer for
  a smaller universe). A chunk is in one of three states:

  - *empty*: stored nowhere (a /64 costs nothing until used);
  - *partial*: a ``bytearray`` with one byte per slot (0 free, 1 used), in
    ``_chunks``, with its count in ``_counts`` and its index in the sorted
    ``_partial`` list;
  - *full*: no buffer at all; it is covered by a *run* of full chunks.
    Runs are kept in two parallel sorted lists ``_run_lo`` / ``_run_hi``
    (chunk indices, half open), disjoint and never adjacent: neighbouring
    full chunks always merge into one run.

* "First free at or after ``i``" looks at ``i``'s chunk; a partial chunk is
  searched with ``bytearray.find`` (C ``memchr`` over at most 1 KiB); an
  absent chunk is either empty (``i`` is free) or inside a run, found by
  ``bisect`` in C, whose end is followed by a chunk that is not full.
  Hence at most three chunk visits per search, whatever the size or fill.

* A chunk is also the unit of persistence: a distributed store can keep one
  key per chunk (its packed bits) plus the run list.

Memory follows the partial chunks (about 1.2 KiB each with their index
entries); a run of full chunks costs one list entry however long it is, so
``occupy`` of 2**40 subnets is a few list operations.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from random import Random
from typing import Any

from sortedcontainers import SortedList

from dualstack_ipam.bitmap.codec import decode, encode
from dualstack_ipam.bitmap.geometry import Geometry

__all__ = ["LOCALITY_SPAN", "SHIFT", "SparseBitmap"]

SHIFT = 10
"""log2 of a sparse chunk: 1,024 slots. A chunk's buffer is the cost of an
address allocated far from all others (~1.2 KiB with its index entries), and
a chunk turning full or partial costs a few microseconds of index upkeep:
256-slot chunks cost 0.4 KiB but made churn near full 1.6x slower, 4,096-slot
ones 4.2 KiB (``docs/performance.md`` has the measurements)."""

LOCALITY_SPAN = 1 << 24
"""Random picks over bands wider than this keep to chunks already in use."""


class SparseBitmap:
    """A set of integer indices in ``[0, size)`` with fast free-slot search.

    Satisfies :class:`~dualstack_ipam.bitmap.protocol.Bitmap`. ``count``
    (slots in use) is a plain attribute, read on the hot path; only the
    bitmap writes it.

    Complexity:
        O(1) to build, whatever the size.

    >>> b = SparseBitmap(10)
    >>> b.add(3), b.add(3), b.count
    (True, False, 1)
    >>> b.add_range(0, 5), sorted(b), b.find_free(0, 0, 10)
    (4, [0, 1, 2, 3, 4], 5)
    >>> b.find_free(7, 6, 8), b.find_free(9, 0, 10)
    (7, 9)
    """

    __slots__ = (
        "_chunks",
        "_counts",
        "_geometry",
        "_hot",
        "_last",
        "_last_cap",
        "_mask",
        "_partial",
        "_run_hi",
        "_run_lo",
        "_shift",
        "_size",
        "_slots",
        "count",
    )

    def __init__(self, size: int) -> None:
        geometry = Geometry(size, SHIFT)
        self._geometry = geometry
        self._size = size
        self._shift = geometry.shift
        self._slots = geometry.slots
        self._mask = geometry.mask
        self._last = geometry.last
        self._last_cap = geometry.last_cap
        self._chunks: dict[int, bytearray] = {}
        self._counts: dict[int, int] = {}
        self._partial = SortedList()
        self._run_lo: list[int] = []
        self._run_hi: list[int] = []
        self.count = 0
        self._hot = -1

    # ------------------------------------------------------------------ info

    @property
    def size(self) -> int:
        """Slots in the universe.

        Complexity:
            O(1).
        """
        return self._size

    def _cap(self, chunk: int) -> int:
        return self._last_cap if chunk == self._last else self._slots

    def _run_of(self, chunk: int) -> int:
        """Index of the run holding ``chunk``, or -1."""
        k = bisect_right(self._run_lo, chunk) - 1
        if k >= 0 and chunk < self._run_hi[k]:
            return k
        return -1

    def __contains__(self, index: int) -> bool:
        """Whether ``index`` is in use.

        Complexity:
            O(1), O(log runs) outside the partial chunks.
        """
        buf = self._chunks.get(index >> self._shift)
        if buf is not None:
            return buf[index & self._mask] == 1
        return self._run_of(index >> self._shift) >= 0

    # ------------------------------------------------------- chunk changes

    def _new_chunk(self, chunk: int, fill: int) -> bytearray:
        cap = self._cap(chunk)
        buf = bytearray(cap) if fill == 0 else bytearray(b"\x01" * cap)
        self._chunks[chunk] = buf
        self._counts[chunk] = fill * cap
        self._partial.add(chunk)
        return buf

    def _drop_chunk(self, chunk: int) -> None:
        # _hot may keep pointing here: the random pick copes with a full or
        # empty hot chunk, and keeping it makes undoing a pick (release after
        # allocate) restore the exact state, so seeded sequences replay.
        del self._chunks[chunk]
        del self._counts[chunk]
        self._partial.remove(chunk)

    def _mark_full(self, lo: int, hi: int) -> None:
        """Cover chunks ``[lo, hi)`` with a run, merging neighbours and inner runs."""
        run_lo, run_hi = self._run_lo, self._run_hi
        i = bisect_left(run_hi, lo)  # first run ending at or after lo
        j = bisect_right(run_lo, hi)  # runs starting at or before hi
        if i < j:
            lo = min(lo, run_lo[i])
            hi = max(hi, run_hi[j - 1])
        run_lo[i:j] = [lo]
        run_hi[i:j] = [hi]

    def _unmark_full(self, lo: int, hi: int) -> None:
        """Remove chunks ``[lo, hi)`` from the runs, splitting where needed."""
        run_lo, run_hi = self._run_lo, self._run_hi
        i = bisect_right(run_hi, lo)
        j = bisect_left(run_lo, hi)
        if i >= j:
            return
        pieces_lo: list[int] = []
        pieces_hi: list[int] = []
        if run_lo[i] < lo:
            pieces_lo.append(run_lo[i])
            pieces_hi.append(lo)
        if run_hi[j - 1] > hi:
            pieces_lo.append(hi)
            pieces_hi.append(run_hi[j - 1])
        run_lo[i:j] = pieces_lo
        run_hi[i:j] = pieces_hi

    def _full_chunks_between(self, lo: int, hi: int) -> int:
        """How many chunks of ``[lo, hi)`` lie in runs."""
        run_lo, run_hi = self._run_lo, self._run_hi
        i = bisect_right(run_hi, lo)
        j = bisect_left(run_lo, hi)
        return sum(min(hi, run_hi[k]) - max(lo, run_lo[k]) for k in range(i, j))

    def _chunk_became_full(self, chunk: int) -> None:
        self._drop_chunk(chunk)
        self._mark_full(chunk, chunk + 1)

    def _open_full_chunk(self, chunk: int) -> bytearray:
        """Turn a full chunk (inside a run) into a partial buffer of ones."""
        self._unmark_full(chunk, chunk + 1)
        return self._new_chunk(chunk, 1)

    # -------------------------------------------------------- single slots

    def add(self, index: int) -> bool:
        """Mark ``index`` used; True if it was free.

        Creating or retiring a chunk costs O(log chunks) once per chunk.

        Complexity:
            O(1) amortised.
        """
        chunk = index >> self._shift
        buf = self._chunks.get(chunk)
        if buf is None:
            if self._run_of(chunk) >= 0:
                return False
            buf = self._new_chunk(chunk, 0)
        offset = index & self._mask
        if buf[offset]:
            return False
        buf[offset] = 1
        self.count += 1
        n = self._counts[chunk] + 1
        if n == len(buf):
            self._chunk_became_full(chunk)
        else:
            self._counts[chunk] = n
        return True

    def discard(self, index: int) -> bool:
        """Mark ``index`` free; True if it was used.

        Complexity:
            O(1) amortised.
        """
        chunk = index >> self._shift
        buf = self._chunks.get(chunk)
        if buf is None:
            if self._run_of(chunk) < 0:
                return False
            buf = self._open_full_chunk(chunk)
        offset = index & self._mask
        if not buf[offset]:
            return False
        buf[offset] = 0
        self.count -= 1
        n = self._counts[chunk] - 1
        if n == 0:
            self._drop_chunk(chunk)
        else:
            self._counts[chunk] = n
        return True

    # ------------------------------------------------------------- search

    def _find_upto(self, index: int, hi: int) -> int:
        """First free slot in ``[index, hi)``, or -1. At most three chunk visits."""
        shift, chunks = self._shift, self._chunks
        while index < hi:
            chunk = index >> shift
            buf = chunks.get(chunk)
            if buf is not None:
                j = buf.find(0, index & self._mask)
                if j >= 0:
                    found = (chunk << shift) + j
                    return found if found < hi else -1
                index = (chunk + 1) << shift
                continue
            k = self._run_of(chunk)
            if k < 0:
                return index  # an empty chunk: every slot is free
            index = self._run_hi[k] << shift
        return -1

    def find_free(self, start: int, lo: int, hi: int) -> int:
        """First free slot at or after ``start`` in ``[lo, hi)``, wrapping to ``lo``.

        Returns -1 when ``[lo, hi)`` is full. Requires ``lo <= start < hi``.

        Complexity:
            O(log runs) plus one ``memchr`` over at most two chunks.

        >>> b = SparseBitmap(8); b.add_range(2, 8)
        6
        >>> b.find_free(5, 0, 8), b.find_free(5, 2, 8)
        (0, -1)
        """
        found = self._find_upto(start, hi)
        if found < 0 and lo < start:
            found = self._find_upto(lo, start)
        return found

    def take_free(self, start: int, lo: int, hi: int) -> int:
        """Like :meth:`find_free`, and mark the slot used.

        Complexity:
            O(log runs), as :meth:`find_free`.
        """
        chunk = start >> self._shift
        buf = self._chunks.get(chunk)
        if buf is not None:
            offset = start & self._mask
            if buf[offset]:
                offset = buf.find(0, offset)
            if offset >= 0:
                found = (chunk << self._shift) + offset
                if found < hi:
                    buf[offset] = 1
                    self.count += 1
                    n = self._counts[chunk] + 1
                    if n == len(buf):
                        self._chunk_became_full(chunk)
                    else:
                        self._counts[chunk] = n
                    return found
        found = self.find_free(start, lo, hi)
        if found >= 0:
            self.add(found)
        return found

    def take_random(self, lo: int, hi: int, rng: Random) -> int:
        """Mark a free slot of ``[lo, hi)`` chosen at random; -1 when full.

        Bands up to :data:`LOCALITY_SPAN` slots: a uniform random start, then
        the next free slot (wrapping), as Kubernetes does. Wider bands keep
        locality so that memory follows what is allocated: picks stay in a
        "hot" chunk at a random offset until it fills, then move to a random
        partially used chunk of the band, and only when none is left to a
        random new place.

        Complexity:
            O(1) amortised; O(log chunks) when the hot chunk fills.
        """
        span = hi - lo
        if span <= LOCALITY_SPAN:
            return self.take_free(lo + int(rng.random() * span), lo, hi)
        shift = self._shift
        hot = self._hot
        if hot >= 0:
            buf = self._chunks.get(hot)
            base = hot << shift
            if buf is not None and lo <= base and base + len(buf) <= hi:
                # The common case, inlined: a partial chunk inside the band
                # always has a free slot; search from a random offset, wrapping.
                offset = int(rng.random() * len(buf))
                if buf[offset]:
                    offset = buf.find(0, offset)
                    if offset < 0:
                        offset = buf.find(0)
                buf[offset] = 1
                self.count += 1
                n = self._counts[hot] + 1
                if n == len(buf):
                    self._chunk_became_full(hot)
                else:
                    self._counts[hot] = n
                return base + offset
            found = self._take_in_chunk(hot, lo, hi, rng)
            if found >= 0:
                return found
        partial = self._partial
        first = partial.bisect_left(lo >> shift)
        stop = partial.bisect_left(((hi - 1) >> shift) + 1)
        if first < stop:
            chunk = partial[first + rng.randrange(stop - first)]
            found = self._take_in_chunk(chunk, lo, hi, rng)
            if found >= 0:
                self._hot = chunk
                return found
        found = self.take_free(lo + rng.randrange(span), lo, hi)
        if found >= 0:
            self._hot = found >> shift
        return found

    def _take_in_chunk(self, chunk: int, lo: int, hi: int, rng: Random) -> int:
        clo = chunk << self._shift
        chi = clo + self._slots
        clo = clo if clo > lo else lo
        chi = chi if chi < hi else hi
        if clo >= chi:
            return -1
        return self.take_free(clo + int(rng.random() * (chi - clo)), clo, chi)

    # -------------------------------------------------------------- ranges

    def _set_slots(self, chunk: int, o1: int, o2: int) -> int:
        buf = self._chunks.get(chunk)
        if buf is None:
            if self._run_of(chunk) >= 0:
                return 0
            buf = self._new_chunk(chunk, 0)
        changed = buf.count(0, o1, o2)
        if changed:
            buf[o1:o2] = b"\x01" * (o2 - o1)
            n = self._counts[chunk] + changed
            if n == len(buf):
                self._chunk_became_full(chunk)
            else:
                self._counts[chunk] = n
        return changed

    def _clear_slots(self, chunk: int, o1: int, o2: int) -> int:
        buf = self._chunks.get(chunk)
        if buf is None:
            if self._run_of(chunk) < 0:
                return 0
            buf = self._open_full_chunk(chunk)
        changed = buf.count(1, o1, o2)
        if changed:
            buf[o1:o2] = bytes(o2 - o1)
            n = self._counts[chunk] - changed
            if n == 0:
                self._drop_chunk(chunk)
            else:
                self._counts[chunk] = n
        return changed

    def _partials_between(self, lo: int, hi: int) -> list[int]:
        return list(self._partial.irange(lo, hi - 1)) if lo < hi else []

    def _edges(self, start: int, stop: int) -> tuple[list[tuple[int, int, int]], int, int]:
        """Split ``[start, stop)`` into partly covered chunks and whole chunks."""
        shift, mask = self._shift, self._mask
        c1, o1 = start >> shift, start & mask
        c2, o2 = stop >> shift, stop & mask
        if c1 == c2:
            return [(c1, o1, o2)], 0, 0
        edges = []
        if o1:
            edges.append((c1, o1, self._cap(c1)))
            c1 += 1
        if o2:
            edges.append((c2, 0, o2))
        return edges, c1, c2

    def _check_range(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self._size:
            raise IndexError(f"range [{start}, {stop}) is outside [0, {self._size})")

    def add_range(self, start: int, stop: int) -> int:
        """Mark ``[start, stop)`` used; return how many slots changed.

        Raises:
            IndexError: the range is not inside ``[0, size)``.

        Complexity:
            O(log n + k) where k counts the partial chunks and runs inside
            the range (plus a C-level shift of the run list); never one step
            per slot or per whole chunk.
        """
        self._check_range(start, stop)
        if start == stop:
            return 0
        edges, c1, c2 = self._edges(start, stop)
        changed = sum(self._set_slots(c, a, b) for c, a, b in edges)
        if c1 < c2:
            before = (self._full_chunks_between(c1, c2) << self._shift) + sum(
                self._counts[c] for c in self._partials_between(c1, c2)
            )
            for chunk in self._partials_between(c1, c2):
                self._drop_chunk(chunk)
            self._mark_full(c1, c2)
            changed += ((c2 - c1) << self._shift) - before
        self.count += changed
        return changed

    def discard_range(self, start: int, stop: int) -> int:
        """Mark ``[start, stop)`` free; return how many slots changed.

        Raises:
            IndexError: the range is not inside ``[0, size)``.

        Complexity:
            O(log n + k), as :meth:`add_range`.
        """
        self._check_range(start, stop)
        if start == stop:
            return 0
        edges, c1, c2 = self._edges(start, stop)
        changed = sum(self._clear_slots(c, a, b) for c, a, b in edges)
        if c1 < c2:
            inside = self._partials_between(c1, c2)
            changed += (self._full_chunks_between(c1, c2) << self._shift) + sum(
                self._counts[c] for c in inside
            )
            for chunk in inside:
                self._drop_chunk(chunk)
            self._unmark_full(c1, c2)
        self.count -= changed
        return changed

    def all_set(self, start: int, stop: int) -> bool:
        """Whether every slot of ``[start, stop)`` is used.

        Raises:
            IndexError: the range is not inside ``[0, size)``.

        Complexity:
            O(log runs), as :meth:`find_free`.
        """
        self._check_range(start, stop)
        return start >= stop or self._find_upto(start, stop) < 0

    # ----------------------------------------------------------- iteration

    def runs(self, start: int = 0) -> Iterator[tuple[int, int]]:
        """Maximal ``(start, stop)`` runs of used slots at or after ``start``, ascending.

        A run that began before ``start`` is cut at ``start``.

        Complexity:
            O(log n) to begin, then O(1) amortised per run.
        """
        if start >= self._size:
            # The last chunk may be short: a run over it would be cut to (size, size).
            return
        pending: tuple[int, int] | None = None
        for lo, hi in self._pieces(start):
            if pending is not None and pending[1] == lo:
                pending = (pending[0], hi)
                continue
            if pending is not None:
                yield pending
            pending = (lo, hi)
        if pending is not None:
            yield pending

    def _pieces(self, start: int) -> Iterator[tuple[int, int]]:
        """Runs of full chunks and runs inside partial chunks, ascending from ``start``."""
        shift, size = self._shift, self._size
        run_lo, run_hi = self._run_lo, self._run_hi
        k = bisect_right(run_hi, start >> shift)
        for chunk in self._partial.irange(start >> shift):
            while k < len(run_lo) and run_lo[k] < chunk:
                yield max(run_lo[k] << shift, start), min(run_hi[k] << shift, size)
                k += 1
            yield from self._chunk_runs(chunk, start)
        while k < len(run_lo):
            yield max(run_lo[k] << shift, start), min(run_hi[k] << shift, size)
            k += 1

    def _chunk_runs(self, chunk: int, start: int) -> Iterator[tuple[int, int]]:
        buf, base = self._chunks[chunk], chunk << self._shift
        j = buf.find(1, start - base if start > base else 0)
        while j >= 0:
            end = buf.find(0, j)
            if end < 0:
                end = len(buf)
            yield base + j, base + end
            j = buf.find(1, end)

    def __iter__(self) -> Iterator[int]:
        """Used slots, ascending (a generator).

        Complexity:
            O(1) per slot.
        """
        for start, stop in self._pieces(0):
            yield from range(start, stop)

    # ------------------------------------------------------- serialisation

    def freeze(self) -> _SparseImage:
        """A detached copy of the state, for encoding without the owner's lock.

        Copies the two run lists (a pointer copy each), the partial chunks'
        indices (in the dict's order, sorted later by the image) and their
        bytes: ``list(map(bytes, values))`` runs in C, one ``memcpy`` of at
        most 1 KiB per partial chunk, with no Python bytecode per chunk. The
        cost follows the partial chunks, not the universe or the full runs;
        it is the same memory again as the chunks themselves, for as long as
        the image lives. Random picks keep locality, so a Service range holds
        few partial chunks; the worst case is every allocation in a chunk of
        its own (50,000 subnets occupied at random in a 2**40 pool: ~50 MB
        copied, ~40 ms on the reference machine, against ~0.4 s to encode).
        Copy-on-write would avoid even that, at the price of a test in every
        mutation on the hot path: not worth it.

        Complexity:
            O(runs + partial chunks), all in C.
        """
        chunks = self._chunks
        return _SparseImage(
            self._shift,
            self._run_lo[:],
            self._run_hi[:],
            list(chunks),
            list(map(bytes, chunks.values())),
        )

    def to_json(self) -> dict[str, Any]:
        """The serialised form of :mod:`dualstack_ipam.bitmap.codec`.

        Complexity:
            O(n): a copy (:meth:`freeze`), then encoding.
        """
        return self.freeze().to_json()

    @classmethod
    def from_json(cls, size: int, data: Any) -> SparseBitmap:
        """Rebuild from :meth:`to_json`.

        Raises:
            BitmapFormatError: the data is corrupt, out of range or not canonical.

        Complexity:
            O(n) in the serialised size.
        """
        bitmap = cls(size)
        runs, partials = decode(Geometry(size, SHIFT), data)
        for lo, hi in runs:
            bitmap._run_lo.append(lo)
            bitmap._run_hi.append(hi)
            bitmap.count += bitmap._geometry.run_slots(lo, hi)
        for chunk, buf in partials:
            used = buf.count(1)
            bitmap._chunks[chunk] = buf
            bitmap._counts[chunk] = used
            bitmap.count += used
        bitmap._partial.update(chunk for chunk, _ in partials)
        return bitmap

    # ---------------------------------------------------------- invariants

    def check_invariants(self) -> None:
        """Assert every structural invariant.

        Complexity:
            O(n).
        """
        assert list(self._partial) == sorted(self._chunks), "partial index out of sync"
        assert self._counts.keys() == self._chunks.keys(), "counts out of sync"
        total = 0
        for chunk, buf in self._chunks.items():
            assert 0 <= chunk <= self._last, f"chunk {chunk} out of range"
            assert len(buf) == self._cap(chunk), f"chunk {chunk} has the wrong length"
            used = buf.count(1)
            assert used + buf.count(0) == len(buf), f"chunk {chunk} holds bytes other than 0/1"
            assert used == self._counts[chunk], f"chunk {chunk} count is not {used}"
            assert 0 < used < len(buf), f"chunk {chunk} should not be partial ({used})"
            assert self._run_of(chunk) < 0, f"chunk {chunk} is partial and inside a run"
            total += used
        assert len(self._run_lo) == len(self._run_hi)
        previous_hi = -1
        for lo, hi in zip(self._run_lo, self._run_hi, strict=True):
            assert previous_hi < lo < hi <= self._last + 1, f"bad run [{lo}, {hi})"
            total += self._geometry.run_slots(lo, hi)
            previous_hi = hi
        assert total == self.count, f"count {self.count} != {total} slots in use"
        assert self._hot == -1 or 0 <= self._hot <= self._last


class _SparseImage:
    """The state of a :class:`SparseBitmap` as :meth:`SparseBitmap.freeze` copied it."""

    __slots__ = ("_bufs", "_chunks", "_run_hi", "_run_lo", "_shift")

    def __init__(
        self, shift: int, run_lo: list[int], run_hi: list[int], chunks: list[int], bufs: list[bytes]
    ) -> None:
        self._shift = shift
        self._run_lo = run_lo
        self._run_hi = run_hi
        self._chunks = chunks
        self._bufs = bufs

    def to_json(self) -> dict[str, Any]:
        """The serialised form of :mod:`dualstack_ipam.bitmap.codec`.

        Complexity:
            O(runs + p log p) for p partial chunks, packing and deflate in C.
        """
        partials = sorted(zip(self._chunks, self._bufs, strict=True))
        return encode(self._shift, list(zip(self._run_lo, self._run_hi, strict=True)), partials)
