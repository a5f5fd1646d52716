"""How a pool marks slots that are not allocations: reserved and cooling runs.

Reserved and cooling slots are marked in the bitmap like allocations, so
``allocate_next`` skips them at no cost; two
:class:`~dualstack_ipam.pools.spans.SpanMap` say which marked slots are
not allocations (a reason per reserved run, a due time per cooling run),
so ``used`` is the marked count less both. A pool with no reservation and
no cooldown (``_plain``) takes the paths it had before they existed, at
the cost of one attribute test. Cooling runs also wait in a queue in
release order; the head is expired lazily, before ``allocate_next`` and
before reads of ``cooling`` / ``stats()``.

:class:`SlotMarks` holds that state and the logic the pools' own methods
call (``allocate``, ``occupy``, ``release``, iteration, snapshots);
:class:`~dualstack_ipam.pools.controls.PoolControls` builds the public
surface on it. Subclasses map between addresses and slots through
``_slots_of`` / ``_slot_addresses`` / ``_describe`` and keep their own
marks (a low mark, a band count) in ``_mark`` / ``_unmark``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import netaddr

from dualstack_ipam.bitmap import Bitmap, BitmapImage
from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    InvalidConfigError,
    IPAMError,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily, Net, make_network
from dualstack_ipam.pools.ranges import AddressSpan, parse_range, range_text, range_value
from dualstack_ipam.pools.spans import SpanMap

__all__ = ["SlotMarks", "check_cooldown"]

_NO_QUEUE: deque[tuple[float, int, int]] = deque()
"""The cooling queue of every pool without a cooldown: never appended to."""


class SlotMarks:
    """The reserved and cooling runs of one pool, and the logic on them (a mixin).

    :class:`~dualstack_ipam.pools.BasePool` derives from it (through
    :class:`~dualstack_ipam.pools.controls.PoolControls`) and calls
    ``_init_controls`` from its constructor; the bitmap, lock and range are
    BasePool's.

    Complexity:
        O(1) to set up: the span maps and the queue are shared empty
        objects until first used.
    """

    __slots__ = (
        "_clock",
        "_cooldown",
        "_cooling",
        "_errors",
        "_plain",
        "_queue",
        "_releases",
        "_reserved",
        "_start_used",
    )

    # Set by BasePool.
    _KIND: ClassVar[str]
    _bitmap: Bitmap
    _lock: threading.RLock
    _net: Net
    _family: IPFamily

    def _init_controls(self, cooldown: Any, clock: Any) -> None:
        self._reserved: SpanMap[str] = SpanMap()
        self._cooling: SpanMap[float] = SpanMap()
        self._set_cooldown(*check_cooldown(cooldown, clock))
        # Allocations are not counted on the hot path: every slot handed out
        # raises ``used`` by one and only ``release`` lowers it (reserving,
        # unreserving and cooling never move it), so they are ``used -
        # _start_used + _releases``.
        self._start_used = 0
        self._releases = 0
        self._errors = {"exhausted": 0, "taken": 0, "invalid": 0}

    def _set_cooldown(self, cooldown: float, clock: Callable[[], float]) -> None:
        self._cooldown, self._clock = cooldown, clock
        # (due, start, stop) in release order; entries whose slots were
        # claimed or reserved meanwhile are skipped when they come due. A
        # pool without a cooldown never appends: it shares one empty deque.
        self._queue = deque() if cooldown else _NO_QUEUE
        self._plain = not cooldown and not self._reserved

    def _range_cidr(self) -> netaddr.IPNetwork:
        return make_network(*self._net)

    @property
    def used(self) -> int:
        """How many items are allocated (reserved and cooling slots are not).

        Complexity:
            O(1).
        """
        return self._bitmap.count - self._reserved.slots - self._cooling.slots

    @property
    def free(self) -> int:
        """``capacity - used - reserved``: cooling slots count as free.

        Complexity:
            O(1).
        """
        return self._bitmap.size - self._bitmap.count + self._cooling.slots

    # ------------------------------------------- marks: what subclasses map

    def _slots_of(self, span: AddressSpan) -> tuple[int, int] | None:
        """Slots ``[start, stop)`` that ``span`` covers, cut to the pool; None if none."""
        raise NotImplementedError

    def _slot_addresses(self, start: int, stop: int) -> tuple[int, int]:
        """First and last address of slots ``[start, stop)``."""
        raise NotImplementedError

    def _describe(self, slot: int) -> Any:
        """The netaddr object a slot stands for, for messages."""
        raise NotImplementedError

    def _mark(self, start: int, stop: int) -> int:
        """Mark ``[start, stop)`` in the bitmap (subclasses keep their own counts)."""
        return self._bitmap.add_range(start, stop)

    def _unmark(self, start: int, stop: int) -> int:
        """Clear ``[start, stop)`` in the bitmap (subclasses lower their marks)."""
        return self._bitmap.discard_range(start, stop)

    # ------------------------------------------------- marks: shared logic

    def _range_slots(self, value: Any) -> tuple[int, int]:
        span = parse_range(value)
        slots = self._slots_of(span)
        if slots is None:
            raise NotInRangeError(
                f"{value!r} covers nothing of the pool {self._range_cidr()}",
                value=range_value(*span),
                pool_cidr=self._range_cidr(),
            )
        return slots

    def _pieces(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        """Runs of ``[start, stop)`` neither reserved nor cooling (marked or not)."""
        reserved, cooling = self._reserved, self._cooling
        position = start
        while position < stop:
            skip = reserved.end_of_run(position)
            if skip == position:
                skip = cooling.end_of_run(position)
            if skip > position:
                position = skip
                continue
            end = min(reserved.next_start(position, stop), cooling.next_start(position, stop))
            yield position, end
            position = end

    def _allocated_runs(self, start: int) -> Iterator[tuple[int, int]]:
        """Runs of allocated slots from ``start`` (the bitmap's, less other marks)."""
        if self._plain:
            yield from self._bitmap.runs(start)
            return
        for first, stop in self._bitmap.runs(start):
            yield from self._pieces(first, stop)

    def _allocations_in(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        for first, end in self._allocated_runs(start):
            if first >= stop:
                return
            yield first, min(end, stop)

    def _first_allocated(self, start: int, stop: int) -> int:
        for first, _ in self._allocations_in(start, stop):
            return first
        return -1

    def _release_slots(self, start: int, stop: int) -> int:
        """Free the allocated slots of ``[start, stop)``, or start their cooldown."""
        if stop - start == 1:
            # One slot (an owner's): no walk to the end of its run of marks.
            pieces = [(start, stop)] if self._span_allocated(start, stop) else []
        else:
            pieces = list(self._allocations_in(start, stop))
        if self._cooldown and pieces:
            due = self._clock() + self._cooldown
            for first, end in pieces:
                self._cooling.paint(first, end, due)
                self._queue.append((due, first, end))
        else:
            for first, end in pieces:
                self._unmark(first, end)
        return sum(end - first for first, end in pieces)

    def _span_allocated(self, start: int, stop: int) -> bool:
        """Whether every slot of ``[start, stop)`` is allocated: marked, none reserved or cooling.

        The rule of the pools' ``is_allocated`` once the value is a span of
        slots (the allocators' owner checks call it with a slot they hold).
        """
        with self._lock:
            bitmap = self._bitmap
            if not (start in bitmap if stop - start == 1 else bitmap.all_set(start, stop)):
                return False
            if self._plain:
                return True
            # Most pools have a cooldown or reservations, rarely both: an
            # empty map is not searched.
            reserved, cooling = self._reserved, self._cooling
            return not (
                (reserved and reserved.overlaps(start, stop))
                or (cooling and cooling.overlaps(start, stop))
            )

    def _claim(self, start: int, stop: int, value: Any = None) -> int:
        """Make ``[start, stop)`` allocatable by ``allocate`` / ``occupy``.

        Raises the error of a reserved slot, quoting ``value`` (the caller's
        argument; None: the netaddr object of ``start``, built only then);
        ends the cooldown of cooling ones (they stay marked: the caller's
        allocation) and returns how many.
        """
        hit = self._reserved.overlapping(start, stop) if self._reserved else None
        if hit:
            if value is None:
                value = self._describe(start)
            first = hit[0][0]
            whole = self._reserved.run_at(first)
            assert whole is not None
            why = f" ({whole[2]})" if whole[2] else ""
            space = range_text(*self._slot_addresses(whole[0], whole[1]), self._family)
            raise AlreadyAllocatedError(
                f"{value!r} is reserved{why} in {self._range_cidr()}: "
                f"{self._describe(first)} lies in the reservation {space}",
                value=self._describe(first),
            )
        if not self._cooling:
            return 0
        cooled = self._cooling.remove(start, stop)
        return sum(end - first for first, end, _ in cooled)

    def _expire(self) -> None:
        """Free the cooling slots whose time has come (the queue is not empty)."""
        now = self._clock()
        queue = self._queue
        while queue and queue[0][0] <= now:
            due, start, stop = queue.popleft()
            for first, end, _ in self._cooling.remove(start, stop, due):
                self._unmark(first, end)

    def _blocked_note(self) -> str:
        """Why an exhausted pool still has slots that are not allocated ('' if none)."""
        notes = []
        if self._reserved:
            notes.append(f"{self._reserved.slots} reserved")
        if self._cooling:
            due = min(tag for _, _, tag in self._cooling)
            wait = max(0.0, due - self._clock())
            notes.append(
                f"{self._cooling.slots} cooling down after release "
                f"(the first comes free in {wait:.3g} s)"
            )
        return "; " + ", ".join(notes) if notes else ""

    def _note_error(self, exc: IPAMError) -> None:
        """Count a failed call in :meth:`stats` by its error's class."""
        if isinstance(exc, PoolExhaustedError):
            kind = "exhausted"
        elif isinstance(exc, AlreadyAllocatedError):
            kind = "taken"
        elif isinstance(exc, (InvalidConfigError, NotInRangeError)):
            kind = "invalid"
        else:
            return
        with self._lock:
            self._errors[kind] += 1

    def _load_reservations(self, data: Any) -> None:
        """Read a snapshot's ``reserved`` list: canonical, ascending, clear of allocations."""
        if not isinstance(data, list):
            raise SnapshotError(f"{self._KIND} snapshot field 'reserved' must be a list")
        previous = -1
        for item in data:
            if not (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], str)
            ):
                raise SnapshotError(
                    f"{self._KIND} snapshot reservation must be [range, reason], got {item!r}"
                )
            text, reason = item
            try:
                slots = self._slots_of(parse_range(text))
            except IPAMError:
                slots = None
            if slots is None or range_text(*self._slot_addresses(*slots), self._family) != text:
                raise SnapshotError(
                    f"{self._KIND} snapshot reservation {text!r} is not a range of whole "
                    f"slots of {self._range_cidr()} in canonical form"
                )
            start, stop = slots
            if start < previous:
                raise SnapshotError(
                    f"{self._KIND} snapshot reservation {text!r} overlaps or precedes the one "
                    "before it"
                )
            if next(self._bitmap.runs(start), (stop, stop))[0] < stop:
                raise SnapshotError(
                    f"{self._KIND} snapshot reservation {text!r} overlaps an allocation"
                )
            previous = stop
            self._reserved.paint(start, stop, reason)
            self._mark(start, stop)

    def _freeze_allocations(self) -> BitmapImage:
        """Freeze the allocated set alone: reserved and cooling marks lifted meanwhile."""
        bitmap = self._bitmap
        marks = [(start, stop) for start, stop, _ in self._reserved]
        marks += [(start, stop) for start, stop, _ in self._cooling]
        for start, stop in marks:
            bitmap.discard_range(start, stop)
        try:
            return bitmap.freeze()
        finally:
            for start, stop in marks:
                bitmap.add_range(start, stop)

    def _reservation_texts(self) -> list[list[str]]:
        return [
            [range_text(*self._slot_addresses(start, stop), self._family), reason]
            for start, stop, reason in self._reserved
        ]

    def _check_control_invariants(self) -> None:
        self._reserved.check_invariants()
        self._cooling.check_invariants()
        assert self._plain == (not self._cooldown and not self._reserved), "plain flag stale"
        assert self._cooldown or not self._cooling, "cooling without a cooldown"
        assert not _NO_QUEUE, "the shared empty queue was appended to"
        assert (self._queue is _NO_QUEUE) == (not self._cooldown)
        for spans in (self._reserved, self._cooling):
            for start, stop, _ in spans:
                assert 0 <= start < stop <= self._bitmap.size
                assert self._bitmap.all_set(start, stop), "reserved or cooling slot not marked"
        for start, stop, _ in self._cooling:
            assert not self._reserved.overlaps(start, stop), "slot both reserved and cooling"
        assert 0 <= self.used <= self._bitmap.size
        assert self.used + self._reserved.slots + self.free == self._bitmap.size
        assert all(count >= 0 for count in self._errors.values())
        assert self.used - self._start_used + self._releases >= 0
        assert self._releases >= 0


def check_cooldown(cooldown: Any, clock: Any) -> tuple[float, Callable[[], float]]:
    """Validate a pool's ``cooldown=`` and ``clock=`` (None: ``time.monotonic``).

    Raises:
        InvalidConfigError: ``cooldown`` is not a finite int or float >= 0
            (a bool is not a number here), or ``clock`` is not callable.

    Complexity:
        O(1).

    >>> check_cooldown(2.5, None)[0]
    2.5
    """
    if (
        isinstance(cooldown, bool)
        or not isinstance(cooldown, (int, float))
        or not math.isfinite(cooldown)
        or cooldown < 0
    ):
        raise InvalidConfigError(
            f"cooldown must be a number of seconds >= 0, got {cooldown!r}", value=cooldown
        )
    if clock is None:
        clock = time.monotonic
    elif not callable(clock):
        raise InvalidConfigError(f"clock must be a callable, got {clock!r}", value=clock)
    return cooldown, clock
