"""What every bitmap-backed pool shares: counts, lock, strategy check, restore plumbing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, Self

import netaddr

from dualstack_ipam.bitmap.factory import (
    AnyBitmap,
    BitmapFormatError,
    bitmap_from_json,
    make_bitmap,
)
from dualstack_ipam.errors import InvalidConfigError, IPAMError, SnapshotError
from dualstack_ipam.net import IPFamily, Net, make_network, parse_network
from dualstack_ipam.snapshot import open_envelope, read_int

__all__ = ["BasePool", "check_strategy"]

_BATCH = 64
"""Runs read per lock acquisition when iterating a pool."""


def check_strategy(strategy: Any, allowed: tuple[str, ...]) -> str:
    """Return ``strategy`` if it is one of ``allowed``; InvalidConfigError otherwise."""
    if isinstance(strategy, str) and strategy in allowed:
        return strategy
    choices = ", ".join(repr(name) for name in allowed)
    raise InvalidConfigError(
        f"unknown strategy {strategy!r}: expected one of {choices}", value=strategy
    )


class BasePool:
    """Counts, the lock and the allocated-set plumbing of a bitmap-backed pool."""

    __slots__ = ("__weakref__", "_bitmap", "_family", "_lock", "_net", "_strategy")

    _KIND = "BasePool"

    def __init__(self, net: Net, slots: int, strategy: str) -> None:
        self._net = net
        self._family = net.family
        self._strategy = strategy
        self._bitmap: AnyBitmap = make_bitmap(slots)
        # Re-entrant so that an allocator holding it may call the pool's methods.
        self._lock = threading.RLock()

    @property
    def cidr(self) -> netaddr.IPNetwork:
        """The pool's range (a new ``IPNetwork`` each time). Complexity: O(1)."""
        return make_network(self._net.value, self._net.prefixlen, self._family)

    @property
    def family(self) -> IPFamily:
        """The pool's :class:`IPFamily`. Complexity: O(1)."""
        return self._family

    @property
    def strategy(self) -> str:
        """The allocation strategy chosen at construction. Complexity: O(1)."""
        return self._strategy

    @property
    def capacity(self) -> int:
        """How many items the pool can hand out. Complexity: O(1)."""
        return self._bitmap.size

    @property
    def used(self) -> int:
        """How many items are allocated. Complexity: O(1)."""
        return self._bitmap.count

    @property
    def free(self) -> int:
        """``capacity - used``. Complexity: O(1)."""
        return self._bitmap.size - self._bitmap.count

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
                batch = list(islice(self._bitmap.runs(position), _BATCH))
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
        if pending is not None:
            yield pending

    def _indices(self) -> Iterator[int]:
        """Allocated slots, ascending, read as :meth:`runs` reads them."""
        for first, stop in self.runs():
            yield from range(first, stop)

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

    @classmethod
    def _from_snapshot(
        cls, data: Any, keys: Iterable[str], build: Callable[[str, Mapping[str, Any]], Self]
    ) -> tuple[Self, Mapping[str, Any]]:
        """Check a snapshot's envelope and range, ``build`` the pool, load its set.

        Raises:
            SnapshotError: anything missing, corrupt, not canonical, or refused
                by the constructor.
        """
        fields = open_envelope(data, cls._KIND, ["cidr", "strategy", "allocated", *keys])
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
            pool = build(text, fields)
        except InvalidConfigError as exc:
            raise SnapshotError(f"{cls._KIND} snapshot: {exc}") from None
        pool._load_bitmap(fields)
        return pool, fields

    def _check_base_invariants(self) -> None:
        self._bitmap.check_invariants()
        assert 0 <= self._bitmap.count <= self._bitmap.size
