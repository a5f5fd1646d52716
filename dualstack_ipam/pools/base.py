"""What every bitmap-backed pool shares: the lock, counts, iteration, snapshots.

A pool is one range of one family over a :class:`~dualstack_ipam.bitmap.Bitmap`
of slots. This base owns everything that does not depend on what a slot
means: the re-entrant lock, ``capacity`` / ``used`` / ``free``, reading the
allocated runs without holding the lock, and the one shape of a snapshot
and of its restore, which subclasses fill in through three hooks:

* ``_snapshot_fields()``: the class's fields between ``cidr`` and
  ``allocated`` (O(1), read under the lock);
* ``_build(cidr, fields, rng)``: a fresh pool from the checked envelope;
* ``_restored(fields)``: read the class's own state (a cursor, a count)
  once the allocated set is in.

It also owns what controllers need on top of allocation (api-durable.md,
"Controller operations" and "Metrics"): reserved space, the release
cooldown and :meth:`BasePool.stats`. Reserved and cooling slots are marked
in the bitmap like allocations, so ``allocate_next`` skips them at no cost;
two :class:`~dualstack_ipam.pools.spans.SpanMap` say which marked slots
are not allocations. A pool with neither (``_plain``) takes the old paths,
one attribute test more. Subclasses map between addresses and slots
through ``_slots_of`` / ``_slot_addresses`` and keep their own marks (a low
mark, a band count) in ``_mark`` / ``_unmark``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from random import Random
from typing import Any, ClassVar, Self

import netaddr

from dualstack_ipam.bitmap import Bitmap, BitmapFormatError, bitmap_from_json, make_bitmap
from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    InvalidConfigError,
    IPAMError,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily, Net, make_network, parse_network
from dualstack_ipam.pools.ranges import AddressSpan, parse_range, range_text, range_value
from dualstack_ipam.pools.spans import SpanMap
from dualstack_ipam.pools.strategies import Strategy, parse_strategy
from dualstack_ipam.snapshot import envelope, open_envelope, read_int

__all__ = ["BasePool"]

_NO_QUEUE: deque[tuple[float, int, int]] = deque()
"""The cooling queue of every pool without a cooldown: never appended to."""

_BATCH = 64
"""Runs read per lock acquisition when iterating a pool."""


class BasePool:
    """Counts, the lock, iteration and the snapshot plumbing of a bitmap-backed pool.

    Args:
        net: the parsed range.
        slots: how many items the pool can hand out.
        strategy: a :class:`Strategy` or its string, one of ``_STRATEGIES``.
        cooldown: seconds a released slot waits before ``allocate_next``
            may hand it out again (an int or float, at least 0; 0 is off).
        clock: a zero-argument callable giving the time in seconds
            (``time.monotonic`` if None); it must never go back.

    Raises:
        InvalidConfigError: a strategy the class does not accept, a bad
            ``cooldown`` or ``clock``.

    Complexity:
        O(slots) bytes for a dense pool (zeroed in C), O(1) for a sparse one.
    """

    __slots__ = (
        "__weakref__",
        "_bitmap",
        "_clock",
        "_cooldown",
        "_cooling",
        "_errors",
        "_family",
        "_lock",
        "_net",
        "_plain",
        "_queue",
        "_releases",
        "_reserved",
        "_start_used",
        "_strategy",
    )

    _KIND: ClassVar[str] = "BasePool"
    _STRATEGIES: ClassVar[tuple[Strategy, ...]] = ()
    _SNAPSHOT_KEYS: ClassVar[tuple[str, ...]] = ()
    """Snapshot keys of the class besides ``cidr``, ``strategy`` and ``allocated``."""

    def __init__(
        self, net: Net, slots: int, strategy: Any, cooldown: Any = 0, clock: Any = None
    ) -> None:
        self._net = net
        self._family = net.family
        self._strategy = parse_strategy(strategy, self._STRATEGIES)
        self._bitmap: Bitmap = make_bitmap(slots)
        # Re-entrant so that an allocator holding it may call the pool's methods.
        self._lock = threading.RLock()
        self._reserved: SpanMap[str] = SpanMap()
        self._cooling: SpanMap[float] = SpanMap()
        self._set_cooldown(*_check_cooldown(cooldown, clock))
        # Allocations are not counted on the hot path: every slot handed out
        # raises ``used`` by one and only ``release`` lowers it (reserving,
        # unreserving and cooling never move it), so they are ``used -
        # _start_used + _releases``.
        self._start_used = 0
        self._releases = 0
        self._errors = {"exhausted": 0, "taken": 0, "invalid": 0}

    @property
    def cidr(self) -> netaddr.IPNetwork:
        """The pool's range (a new ``IPNetwork`` each time).

        Complexity:
            O(1).
        """
        return make_network(self._net.value, self._net.prefixlen, self._family)

    @property
    def family(self) -> IPFamily:
        """The pool's :class:`IPFamily`.

        Complexity:
            O(1).
        """
        return self._family

    @property
    def strategy(self) -> Strategy:
        """The allocation strategy chosen at construction (equal to its string).

        Complexity:
            O(1).
        """
        return self._strategy

    @property
    def capacity(self) -> int:
        """How many items the pool can hand out.

        Complexity:
            O(1).
        """
        return self._bitmap.size

    @property
    def used(self) -> int:
        """How many items are allocated (reserved and cooling slots are not).

        Complexity:
            O(1).
        """
        return self._bitmap.count - len(self._reserved) - len(self._cooling)

    @property
    def free(self) -> int:
        """``capacity - used - reserved``: cooling slots count as free.

        Complexity:
            O(1).
        """
        return self._bitmap.size - self._bitmap.count + len(self._cooling)

    # ------------------------------------------------------------ iteration

    def runs(self) -> Iterator[tuple[int, int]]:
        """Runs of allocated slots as ``(first, stop)`` index pairs, ascending.

        A slot is a subnet index for :class:`SubnetPool` and an offset from
        the first usable address for :class:`ServiceIPPool` (``first`` is
        allocated, ``stop`` is the first free slot after it).

        Read under the lock a few runs at a time, never held while the caller
        consumes: a huge pool is neither copied nor blocks other threads. A
        slot changed during the walk is seen if it lies ahead of it; the runs
        never overlap and are never adjacent.

        Complexity:
            O(1) amortised per run (plus O(log n) per batch of 64 runs for a
            sparse pool); never one step per allocated slot. A dense pool
            (up to 2**24 slots) also searches the free space between runs
            with C ``memchr``, at most once over its bytes.

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/16", 24)
        >>> pool.occupy("10.0.4.0/23"), pool.occupy("10.0.9.0/24")
        (2, 1)
        >>> list(pool.runs())
        [(4, 6), (9, 10)]
        """
        position = 0
        pending: tuple[int, int] | None = None
        while True:
            with self._lock:
                batch = list(islice(self._allocated_runs(position), _BATCH))
            if not batch:
                break
            first, stop = batch[0]
            if pending is not None:
                if pending[1] == first:
                    # The slot after the last batch was taken meanwhile: one run.
                    batch[0] = (pending[0], stop)
                else:
                    yield pending
            yield from batch[:-1]
            pending = batch[-1]
            position = pending[1]
            if position >= self._bitmap.size:
                break
        if pending is not None:
            yield pending

    def _indices(self) -> Iterator[int]:
        """Allocated slots, ascending, read as :meth:`runs` reads them."""
        for first, stop in self.runs():
            yield from range(first, stop)

    # ------------------------------------------------------- reserved space

    def reserve(self, range: Any, reason: str = "") -> int:
        """Set ``range`` aside: ``allocate_next`` never hands it out; return new slots.

        ``range`` is a CIDR (any network input; an address is one host), an
        ``"a-b"`` address range (both ends included) or a
        ``netaddr.IPRange``. It reserves every slot it overlaps: whole
        subnets of a :class:`SubnetPool` (as :meth:`SubnetPool.occupy`),
        the usable addresses of a :class:`ServiceIPPool`; a range reaching
        beyond the pool is cut to it. Reserving over a reservation extends
        it: already reserved slots are not counted again, and take
        ``reason`` when it is not empty (an empty ``reason`` keeps theirs).
        Cooling slots in the range stop cooling and become reserved.
        All or nothing: on an error nothing changed.

        Args:
            range: the space to set aside.
            reason: free text shown by :meth:`reservations` and in the
                error of an ``allocate`` / ``occupy`` that hits it.

        Returns:
            How many slots were reserved by this call (0 if all already were).

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: a range that ends before it starts or mixes
                families, or a ``reason`` that is not a str.
            NotInRangeError: ``range`` covers no slot of the pool.
            AlreadyAllocatedError: a slot of ``range`` is allocated (the
                message names the first).

        Complexity:
            O(log n) plus the partly covered chunks, as ``occupy``, plus the
            reserved and cooling runs inside ``range``.

        >>> from dualstack_ipam import ServiceIPPool
        >>> pool = ServiceIPPool("10.96.0.0/24", strategy="sequential")
        >>> pool.reserve("10.96.0.10-10.96.0.19", "appliances"), pool.reserve("10.96.0.0/28")
        (10, 9)
        >>> [(str(space), why) for space, why in pool.reservations()]
        [('10.96.0.1-10.96.0.9', ''), ('10.96.0.10-10.96.0.19', 'appliances')]
        >>> pool.reserved, pool.used, pool.free
        (19, 0, 235)
        """
        try:
            if not isinstance(reason, str):
                raise InvalidConfigError(f"reason must be a str, got {reason!r}", value=reason)
            start, stop = self._range_slots(range)
            with self._lock:
                first = self._first_allocated(start, stop)
                if first >= 0:
                    raise AlreadyAllocatedError(
                        f"cannot reserve {range!r}: {self._describe(first)} is allocated "
                        f"in {self.cidr}",
                        value=self._describe(first),
                    )
                self._cooling.remove(start, stop)
                added = self._reserved.paint(start, stop, reason, keep=not reason)
                self._mark(start, stop)
                self._plain = False
                return added
        except IPAMError as exc:
            self._note_error(exc)
            raise

    def unreserve(self, range: Any) -> int:
        """Free the reserved slots of ``range``; return how many.

        Only reserved slots change: allocated ones stay allocated, free
        ones free. The freed slots can be handed out at once (no cooldown).
        ``range`` is read as in :meth:`reserve`; a reservation partly
        covered is split.

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: a range that ends before it starts or mixes
                families.
            NotInRangeError: ``range`` covers no slot of the pool.

        Complexity:
            O(log n) plus the partly covered chunks plus the reservations
            inside ``range``.

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/16", 24)
        >>> pool.reserve("10.0.0.0/22", "racks"), pool.unreserve("10.0.1.0/24")
        (4, 1)
        >>> [(str(space), why) for space, why in pool.reservations()]
        [('10.0.0.0/24', 'racks'), ('10.0.2.0/23', 'racks')]
        >>> pool.allocate_next()
        IPNetwork('10.0.1.0/24')
        """
        try:
            start, stop = self._range_slots(range)
            with self._lock:
                freed = 0
                for first, end, _ in self._reserved.remove(start, stop):
                    self._unmark(first, end)
                    freed += end - first
                self._plain = not self._cooldown and not self._reserved
                return freed
        except IPAMError as exc:
            self._note_error(exc)
            raise

    def reservations(self) -> list[tuple[netaddr.IPNetwork | netaddr.IPRange, str]]:
        """The reservations as ``(range, reason)``, ascending.

        Each is a maximal run of reserved slots with one reason: adjacent
        or overlapping reservations of the same reason show as one, a
        reservation split by :meth:`unreserve` or partly re-reserved with
        another reason as several. A run is given as the addresses its
        slots cover (whole subnets for a :class:`SubnetPool`, usable
        addresses for a :class:`ServiceIPPool`): an ``IPNetwork`` when
        that is exactly one CIDR, else an ``IPRange``.

        Complexity:
            O(r) for r reservations.

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/16", 24)
        >>> pool.reserve("10.0.0.5-10.0.1.1", "gateways")
        2
        >>> pool.reservations()
        [(IPNetwork('10.0.0.0/23'), 'gateways')]
        """
        with self._lock:
            runs = list(self._reserved)
        return [
            (range_value(*self._slot_addresses(start, stop), self._family), reason)
            for start, stop, reason in runs
        ]

    @property
    def reserved(self) -> int:
        """How many slots are reserved.

        Complexity:
            O(1).
        """
        return len(self._reserved)

    # ------------------------------------------------------------- cooldown

    @property
    def cooldown(self) -> float:
        """Seconds a released slot waits before ``allocate_next`` reuses it (0: off).

        Complexity:
            O(1).
        """
        return self._cooldown

    @property
    def cooling(self) -> int:
        """How many released slots are cooling down now (counted in :attr:`free`).

        Complexity:
            O(1) amortised: slots whose cooldown has passed are freed first.

        >>> from dualstack_ipam import ServiceIPPool
        >>> now = [0.0]
        >>> pool = ServiceIPPool("10.96.0.0/30", cooldown=30, clock=lambda: now[0])
        >>> first = pool.allocate_next(); _ = pool.release(first)
        >>> pool.cooling, pool.free
        (1, 2)
        >>> now[0] = 30.0
        >>> pool.cooling
        0
        """
        with self._lock:
            if self._queue:
                self._expire()
            return len(self._cooling)

    # -------------------------------------------------------------- metrics

    def stats(self) -> dict[str, Any]:
        """Counts and this process's totals (api-durable.md, "Metrics").

        ``capacity``, ``used`` (allocations), ``free`` (``capacity - used -
        reserved``, cooling slots included), ``reserved`` and ``cooling``
        are the state now. ``totals`` count calls on this object since it
        was built or restored: ``allocations`` the slots handed out by
        ``allocate_next``, ``allocate`` and ``occupy``; ``releases`` the
        slots freed by ``release``; ``errors`` the calls that changed state
        or would have (``allocate_next``, ``allocate``, ``occupy``,
        ``release``, ``reserve``, ``unreserve``) and raised, by class:
        ``exhausted`` (:class:`PoolExhaustedError`), ``taken``
        (:class:`AlreadyAllocatedError`), ``invalid``
        (:class:`InvalidConfigError`, its :class:`AddressFormatError`, and
        :class:`NotInRangeError`).

        Complexity:
            O(1) amortised (cooling slots now due are freed first).

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/30", 31); _ = pool.allocate_next()
        >>> _ = pool.reserve("10.0.0.2/31")
        >>> stats = pool.stats()
        >>> {key: stats[key] for key in ("family", "capacity", "used", "free", "reserved")}
        {'family': 'IPv4', 'capacity': 2, 'used': 1, 'free': 0, 'reserved': 1}
        >>> stats["cooling"], stats["totals"]["allocations"], stats["totals"]["errors"]
        (0, 1, {'exhausted': 0, 'taken': 0, 'invalid': 0})
        """
        with self._lock:
            if self._queue:
                self._expire()
            return {
                "family": str(self._family),
                "capacity": self._bitmap.size,
                "used": self.used,
                "free": self.free,
                "reserved": len(self._reserved),
                "cooling": len(self._cooling),
                "totals": {
                    "allocations": self.used - self._start_used + self._releases,
                    "releases": self._releases,
                    "errors": dict(self._errors),
                },
            }

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
                f"{value!r} covers nothing of the pool {self.cidr}",
                value=range_value(*span),
                pool_cidr=self.cidr,
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

    def _claim(self, start: int, stop: int, value: Any) -> int:
        """Make ``[start, stop)`` allocatable by ``allocate`` / ``occupy``.

        Raises the error of a reserved slot; ends the cooldown of cooling
        ones (they stay marked: the caller's allocation) and returns how many.
        """
        hit = self._reserved.overlapping(start, stop)
        if hit:
            first = hit[0][0]
            whole = self._reserved.run_at(first)
            assert whole is not None
            why = f" ({whole[2]})" if whole[2] else ""
            space = range_text(*self._slot_addresses(whole[0], whole[1]), self._family)
            raise AlreadyAllocatedError(
                f"{value!r} is reserved{why} in {self.cidr}: {self._describe(first)} lies in "
                f"the reservation {space}",
                value=self._describe(first),
            )
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
            notes.append(f"{len(self._reserved)} reserved")
        if self._cooling:
            due = min(tag for _, _, tag in self._cooling)
            wait = max(0.0, due - self._clock())
            notes.append(
                f"{len(self._cooling)} cooling down after release "
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

    # ------------------------------------------------------------ snapshots

    def capture(self) -> Callable[[], dict[str, Any]]:
        """Copy the state now; return a function that builds its snapshot later.

        For an owner that must snapshot several pools at one instant under
        its own lock: call ``capture()`` on each under that lock, release
        it, then call the functions. Only the copy happens under the pool's
        lock (see :meth:`snapshot`); the function may run in any thread, and
        builds a new ``dict`` each time.

        Complexity:
            O(n) flat C-level copies now (the bitmap's
            :meth:`~dualstack_ipam.bitmap.Bitmap.freeze`); O(n) later to
            encode.

        >>> from dualstack_ipam import SubnetPool
        >>> pool = SubnetPool("10.0.0.0/16", 24)
        >>> finish = pool.capture(); _ = pool.allocate_next()
        >>> finish()["used"], pool.used
        (0, 1)
        """
        with self._lock:
            used = self.used
            fields = self._snapshot_fields()
            image = self._bitmap.freeze() if self._plain else self._freeze_allocations()
            extra = {"reserved": self._reservation_texts()} if self._reserved else {}
        cidr = str(self.cidr)
        kind = self._KIND
        return lambda: envelope(kind, used, cidr=cidr, **fields, allocated=image.to_json(), **extra)

    def _freeze_allocations(self) -> Any:
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

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready, versioned description of the pool (api.md, "Snapshots").

        Allocating threads wait only while the state is copied: a dense pool
        copies its byte-per-slot buffer (16 MiB at most, one ``memcpy``), a
        sparse one its run lists and the bytes of its partial chunks (C-level
        copies, no Python step per chunk). Packing, deflate, base64 and
        building the ``dict`` happen after the lock is released.

        Complexity:
            O(n) in the allocated chunks; the lock is held for the flat copy
            only.

        >>> from dualstack_ipam import ServiceIPPool
        >>> pool = ServiceIPPool("10.96.0.0/24"); _ = pool.allocate("10.96.0.1")
        >>> data = pool.snapshot(); data["kind"], data["used"], data["strategy"]
        ('ServiceIPPool', 1, 'random')
        """
        return self.capture()()

    @classmethod
    def restore(
        cls,
        data: Any,
        *,
        rng: Random | None = None,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> Self:
        """Rebuild a pool from :meth:`snapshot`, drawing from ``rng`` if the class draws.

        Every key :meth:`snapshot` writes is required, except ``reserved``
        (written only when there are reservations; absent means none, as in
        snapshots written before reservations existed); the range must be in
        canonical form, the strategy one the class accepts and ``used`` the
        size of the allocated set. Nothing half-restored is ever returned.
        Nothing is cooling in a restored pool: cooling is not part of a
        snapshot.

        Args:
            data: a snapshot, as :meth:`snapshot` wrote it (or read back from
                JSON).
            rng: a ``random.Random`` for a reproducible continuation of a
                random strategy; classes that do not draw ignore it.
            cooldown: the restored pool's release cooldown, as in the
                constructor (not part of the snapshot).
            clock: the restored pool's clock, as in the constructor.

        Raises:
            InvalidConfigError: ``rng`` is not a ``random.Random``, or a bad
                ``cooldown`` or ``clock`` (checked first: they are
                arguments, not the data).
            SnapshotError: corrupt, truncated, of another kind or version, or
                with counts that disagree with the allocated set.

        Complexity:
            O(n) in the snapshot's size.

        >>> from dualstack_ipam import ServiceIPPool, SubnetPool
        >>> pool = SubnetPool("10.0.0.0/16", 24); _ = pool.allocate_next()
        >>> SubnetPool.restore(pool.snapshot()).allocate_next()
        IPNetwork('10.0.1.0/24')
        >>> ServiceIPPool.restore(pool.snapshot())
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.SnapshotError: snapshot kind 'SubnetPool' is not 'ServiceIPPool'
        """
        if rng is not None and not isinstance(rng, Random):
            raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)
        checked_cooldown, checked_clock = _check_cooldown(cooldown, clock)
        keys = ["cidr", "strategy", "allocated", *cls._SNAPSHOT_KEYS]
        fields = open_envelope(data, cls._KIND, keys)
        text = fields["cidr"]
        try:
            net = parse_network(text) if isinstance(text, str) else None
        except IPAMError:
            net = None
        if net is None or str(make_network(*net)) != text:
            raise SnapshotError(
                f"{cls._KIND} snapshot field 'cidr' is not a network in canonical form: {text!r}"
            )
        try:
            pool = cls._build(text, fields, rng)
        except InvalidConfigError as exc:
            raise SnapshotError(f"{cls._KIND} snapshot: {exc}") from None
        pool._load_bitmap(fields)
        pool._restored(fields)
        pool._load_reservations(fields.get("reserved", []))
        pool._set_cooldown(checked_cooldown, checked_clock)
        pool._start_used = pool.used
        return pool

    def _set_cooldown(self, cooldown: float, clock: Callable[[], float]) -> None:
        self._cooldown, self._clock = cooldown, clock
        # (due, start, stop) in release order; entries whose slots were
        # claimed or reserved meanwhile are skipped when they come due. A
        # pool without a cooldown never appends: it shares one empty deque.
        self._queue = deque() if cooldown else _NO_QUEUE
        self._plain = not cooldown and not self._reserved

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
                    f"slots of {self.cidr} in canonical form"
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

    def _snapshot_fields(self) -> dict[str, Any]:
        """The class's snapshot fields between ``cidr`` and ``allocated``; O(1)."""
        return {"strategy": self._strategy.value}

    @classmethod
    def _build(cls, cidr: str, fields: Mapping[str, Any], rng: Random | None) -> Self:
        """A fresh pool for a snapshot's range and parameters."""
        raise NotImplementedError

    def _restored(self, fields: Mapping[str, Any]) -> None:
        """Read the class's own state once the allocated set is loaded."""

    def _load_bitmap(self, data: Mapping[str, Any]) -> None:
        """Replace the allocated set with the snapshot's, checking ``used``."""
        used = read_int(data["used"], "used")
        try:
            bitmap = bitmap_from_json(self._bitmap.size, data["allocated"])
        except BitmapFormatError as exc:
            raise SnapshotError(f"{self._KIND} snapshot: {exc}") from None
        if bitmap.count != used:
            raise SnapshotError(
                f"{self._KIND} snapshot says used={used} but its allocated set holds {bitmap.count}"
            )
        self._bitmap = bitmap

    def _check_base_invariants(self) -> None:
        self._bitmap.check_invariants()
        assert 0 <= self._bitmap.count <= self._bitmap.size
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
        assert self.used + len(self._reserved) + self.free == self._bitmap.size
        assert all(count >= 0 for count in self._errors.values())
        assert self.used - self._start_used + self._releases >= 0
        assert self._releases >= 0
        assert isinstance(self._strategy, Strategy)
        assert self._strategy in self._STRATEGIES


def _check_cooldown(cooldown: Any, clock: Any) -> tuple[float, Callable[[], float]]:
    """Validate the ``cooldown=`` and ``clock=`` arguments of a pool."""
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
