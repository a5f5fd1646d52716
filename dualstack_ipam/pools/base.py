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

Reserved space, the release cooldown and ``stats()`` come from
:class:`~dualstack_ipam.pools.controls.PoolControls`, whose state lives in
this class's slots; snapshots carry the reservations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from random import Random
from typing import Any, ClassVar, Self

import netaddr

from dualstack_ipam.bitmap import Bitmap, BitmapFormatError, bitmap_from_json, make_bitmap
from dualstack_ipam.errors import (
    InvalidConfigError,
    IPAMError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily, Net, make_network, parse_network
from dualstack_ipam.pools.controls import PoolControls
from dualstack_ipam.pools.marks import check_cooldown
from dualstack_ipam.pools.strategies import Strategy, parse_strategy
from dualstack_ipam.snapshot import envelope, open_envelope, read_int

__all__ = ["BasePool"]

_BATCH = 64
"""Runs read per lock acquisition when iterating a pool."""


class BasePool(PoolControls):
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

    __slots__ = ("__weakref__", "_bitmap", "_family", "_lock", "_net", "_strategy")

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
        self._init_controls(cooldown, clock)

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
            extra: dict[str, Any] = {}
            if self._reserved:
                extra["reserved"] = self._reservation_texts()
        cidr = str(self.cidr)
        kind = self._KIND
        return lambda: envelope(kind, used, cidr=cidr, **fields, allocated=image.to_json(), **extra)

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
        checked_cooldown, checked_clock = check_cooldown(cooldown, clock)
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
        self._check_control_invariants()
        assert isinstance(self._strategy, Strategy)
        assert self._strategy in self._STRATEGIES
