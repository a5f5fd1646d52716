"""SpanMap: disjoint runs of slots, each with a tag, kept sorted.

A pool keeps two of them beside its bitmap: its reservations (the tag is
the reason) and its cooling slots (the tag is the time they come free).
Both kinds of slot are also marked in the bitmap, so that allocation skips
them at no cost; the maps say *why* a marked slot is not an allocation.

A run is ``[start, stop)``; runs never overlap. :meth:`SpanMap.paint`
merges a run with neighbours of the same tag, so the runs listed are the
maximal ones. Every operation costs O(log r) plus the runs it touches (r is
the number of runs), and each run is created and removed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from sortedcontainers import SortedDict

__all__ = ["SpanMap"]

T = TypeVar("T")

_NONE: SortedDict = SortedDict()
"""Shared by every empty map until its first run: most pools never reserve,
and a ``SortedDict`` costs about a kilobyte. Never written to."""


class SpanMap(Generic[T]):
    """Disjoint, sorted ``[start, stop)`` runs of slots, each with a tag.

    Complexity:
        O(1) to build; O(r) memory for r runs.

    >>> spans = SpanMap[str]()
    >>> spans.paint(2, 5, "dns"), spans.paint(4, 8, "dns"), list(spans)
    (3, 3, [(2, 8, 'dns')])
    >>> spans.remove(3, 4), list(spans)
    ([(3, 4, 'dns')], [(2, 3, 'dns'), (4, 8, 'dns')])
    """

    __slots__ = ("_runs", "_total")

    def __init__(self) -> None:
        self._runs: SortedDict = _NONE
        self._total = 0

    @property
    def slots(self) -> int:
        """How many slots the runs cover (not how many runs).

        A property, not ``__len__``: ``list()`` takes ``len`` as a size hint,
        and a reservation may cover 2**40 slots in a few runs.

        Complexity:
            O(1).
        """
        return self._total

    def __bool__(self) -> bool:
        return bool(self._runs)

    def __iter__(self) -> Iterator[tuple[int, int, T]]:
        """The runs as ``(start, stop, tag)``, ascending.

        Complexity:
            O(1) per run.
        """
        for start, (stop, tag) in self._runs.items():
            yield start, stop, tag

    def _first_index(self, start: int) -> int:
        """Index of the first run that may overlap ``[start, ...)``."""
        runs = self._runs
        index = runs.bisect_right(start)
        if index and runs.peekitem(index - 1)[1][0] > start:
            index -= 1
        found: int = index
        return found

    def overlapping(self, start: int, stop: int) -> list[tuple[int, int, T]]:
        """The runs that overlap ``[start, stop)``, cut to it, ascending.

        Complexity:
            O(log r) plus the runs returned.

        >>> spans = SpanMap[str](); _ = spans.paint(0, 10, "a")
        >>> spans.overlapping(5, 20)
        [(5, 10, 'a')]
        """
        runs = self._runs
        found: list[tuple[int, int, T]] = []
        if start >= stop:
            return found
        index = self._first_index(start)
        while index < len(runs):
            first, (end, tag) = runs.peekitem(index)
            if first >= stop:
                break
            found.append((max(first, start), min(end, stop), tag))
            index += 1
        return found

    def run_at(self, slot: int) -> tuple[int, int, T] | None:
        """The whole run ``(start, stop, tag)`` holding ``slot``, None if none holds it.

        Complexity:
            O(log r).

        >>> spans = SpanMap[str](); _ = spans.paint(3, 6, "gw")
        >>> spans.run_at(4), spans.run_at(6)
        ((3, 6, 'gw'), None)
        """
        runs = self._runs
        index = runs.bisect_right(slot)
        if index:
            start, (stop, tag) = runs.peekitem(index - 1)
            if stop > slot:
                return start, stop, tag
        return None

    def tag_at(self, slot: int) -> T | None:
        """The tag of the run holding ``slot``, None if no run holds it.

        Complexity:
            O(log r).

        >>> spans = SpanMap[str](); _ = spans.paint(3, 4, "gw")
        >>> spans.tag_at(3), spans.tag_at(4)
        ('gw', None)
        """
        runs = self._runs
        index = runs.bisect_right(slot)
        if index:
            end, tag = runs.peekitem(index - 1)[1]
            if end > slot:
                return tag  # type: ignore[no-any-return]
        return None

    def overlaps(self, start: int, stop: int) -> bool:
        """Whether any run overlaps ``[start, stop)``.

        Complexity:
            O(log r).

        >>> spans = SpanMap[str](); _ = spans.paint(3, 4, "gw")
        >>> spans.overlaps(0, 3), spans.overlaps(0, 4)
        (False, True)
        """
        if start >= stop:
            return False
        index = self._first_index(start)
        return index < len(self._runs) and self._runs.peekitem(index)[0] < stop

    def next_start(self, slot: int, limit: int) -> int:
        """The start of the first run beginning after ``slot``, at most ``limit``.

        Complexity:
            O(log r).

        >>> spans = SpanMap[str](); _ = spans.paint(3, 4, "gw")
        >>> spans.next_start(0, 10), spans.next_start(3, 10)
        (3, 10)
        """
        runs = self._runs
        index = runs.bisect_right(slot)
        if index < len(runs):
            key: int = runs.peekitem(index)[0]
            return min(key, limit)
        return limit

    def end_of_run(self, slot: int) -> int:
        """The ``stop`` of the run holding ``slot``, or ``slot`` if none holds it.

        Complexity:
            O(log r).
        """
        runs = self._runs
        index = runs.bisect_right(slot)
        if index:
            end: int = runs.peekitem(index - 1)[1][0]
            if end > slot:
                return end
        return slot

    def remove(self, start: int, stop: int, tag: T | None = None) -> list[tuple[int, int, T]]:
        """Uncover ``[start, stop)`` (only runs tagged ``tag`` if given); return what was.

        Complexity:
            O(log r) plus the runs touched.

        >>> spans = SpanMap[float](); _ = spans.paint(0, 2, 1.0); _ = spans.paint(2, 4, 2.0)
        >>> spans.remove(0, 4, 2.0), list(spans), spans.slots
        ([(2, 4, 2.0)], [(0, 2, 1.0)], 2)
        """
        removed = [run for run in self.overlapping(start, stop) if tag is None or run[2] == tag]
        runs = self._runs
        for first, end, old in removed:
            head = self._first_index(first)
            key = runs.peekitem(head)[0]
            whole_stop, _ = runs.pop(key)
            if key < first:
                runs[key] = (first, old)
            if whole_stop > end:
                runs[end] = (whole_stop, old)
            self._total -= end - first
        return removed

    def paint(self, start: int, stop: int, tag: T, *, keep: bool = False) -> int:
        """Cover ``[start, stop)`` with ``tag``; return how many slots were uncovered.

        Covered slots take ``tag`` too, unless ``keep`` is true (then they
        keep their own). Neighbouring runs of equal tags merge.

        Complexity:
            O(log r) plus the runs touched.

        >>> spans = SpanMap[str](); _ = spans.paint(0, 4, "a")
        >>> spans.paint(2, 6, "b"), list(spans)
        (2, [(0, 2, 'a'), (2, 6, 'b')])
        >>> spans.paint(0, 8, "c", keep=True), list(spans)
        (2, [(0, 2, 'a'), (2, 6, 'b'), (6, 8, 'c')])
        """
        if start >= stop:
            return 0
        old = self.remove(start, stop)
        covered = sum(end - first for first, end, _ in old)
        pieces: list[tuple[int, int, T]] = []
        position = start
        for first, end, was in old:
            if position < first:
                pieces.append((position, first, tag))
            pieces.append((first, end, was if keep else tag))
            position = end
        if position < stop:
            pieces.append((position, stop, tag))
        for first, end, new in pieces:
            self._insert(first, end, new)
        self._total += stop - start
        return stop - start - covered

    def _insert(self, start: int, stop: int, tag: T) -> None:
        """Add a run over uncovered slots, merging with equal neighbours."""
        if self._runs is _NONE:
            self._runs = SortedDict()
        runs = self._runs
        index = runs.bisect_left(start)
        if index:
            key, (end, was) = runs.peekitem(index - 1)
            if end == start and was == tag:
                del runs[key]
                start = key
        after = runs.get(stop)
        if after is not None and after[1] == tag:
            del runs[stop]
            stop = after[0]
        runs[start] = (stop, tag)

    def check_invariants(self) -> None:
        """Assert the runs are sorted, disjoint, non-empty and add up.

        Complexity:
            O(r).
        """
        assert not _NONE, "the shared empty map was written to"
        total = 0
        previous_stop = -1
        for start, stop, _ in self:
            assert start < stop, (start, stop)
            assert start >= previous_stop, "runs overlap"
            previous_stop = stop
            total += stop - start
        assert total == self._total, (total, self._total)
