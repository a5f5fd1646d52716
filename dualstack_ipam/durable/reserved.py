"""Reservation block records and the caches that follow them.

The records are described in :mod:`~dualstack_ipam.durable.layout`
(``resv/<pool>/<block>``). A side keeps every block record it knows in
``Side.blocks`` (key -> (revision, value)) and *lays* their runs on its
pools' reservations. The cache protocol (:mod:`~dualstack_ipam.durable.sync`)
calls this module:

- a bulk read of owner records (open, fill, a compacted feed) first *lifts*
  the laid runs, and the end of the next catch-up lays them again: the
  owner and block records are then at one revision, so they agree (read at
  two instants they may not: a slot released and reserved in between);
- following the feed, the blocks that changed are lifted before the owner
  changes are applied and laid after them, so a slot can move between a
  key and a reservation in one batch;
- a transaction taking slots compares their blocks (:func:`guard`).

>>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
>>> decode_block(encode_block([(0, 9, "gateways")], pending=False), "resv/s4/0")
([(0, 9, 'gateways')], False)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from dualstack_ipam.durable.layout import SideLayout
from dualstack_ipam.errors import StoreError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import Address
from dualstack_ipam.pools.multi import parts_of
from dualstack_ipam.store import Compare, Put, Write

if TYPE_CHECKING:
    from dualstack_ipam.durable.sync import Side

__all__ = [
    "Runs",
    "block_runs",
    "decode_block",
    "encode_block",
    "guard",
    "lay",
    "lay_all",
    "lift",
    "lift_all",
    "note",
    "stored_runs",
    "within",
]

Runs = list[tuple[int, int, str]]
Piece = tuple[Any, int, int, int]


def encode_block(runs: Runs, *, pending: bool) -> bytes:
    """A block record's value.

    Complexity:
        O(r) for r runs.
    """
    data = {"runs": [list(run) for run in runs], "pending": pending}
    return json.dumps(data, separators=(",", ":")).encode()


def decode_block(value: bytes, key: str) -> tuple[Runs, bool]:
    """A block record's runs and pending flag.

    Raises:
        StoreError: a value that is not a block record (a corrupt store).

    Complexity:
        O(r) for r runs.
    """
    try:
        data = json.loads(value)
        runs = [(int(a), int(b), str(why)) for a, b, why in data["runs"]]
        pending = data["pending"]
        if not isinstance(pending, bool) or any(a >= b for a, b, _ in runs):
            raise ValueError(data)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise StoreError(f"corrupt reservation record {key!r}: {value!r:.80}") from None
    return runs, pending


def stored_runs(side: Side, key: str) -> Runs:
    """The runs of a block as the side last read them from the store (none if absent).

    Complexity:
        O(r) for r runs.
    """
    known = side.blocks.get(key)
    return [] if known is None else decode_block(known[1], key)[0]


def within(cache: Any, family: IPFamily, start: int, stop: int) -> Iterator[Piece]:
    """The pools holding the family's slots ``[start, stop)``: ``(pool, offset, lo, hi)``.

    A family that grew (``add_range``) is a composite whose parts number
    their own slots from 0; ``offset`` is where a part starts in the
    family's numbering, ``[lo, hi)`` the part's own slots in the span.

    Complexity:
        O(k) for k ranges of the family.
    """
    pool = cache._pools[family]
    parts = parts_of(pool)
    offsets = pool.offsets if len(parts) > 1 else (0,)
    for part, offset in zip(parts, offsets, strict=True):
        lo, hi = max(start - offset, 0), min(stop - offset, part.capacity)
        if lo < hi:
            yield part, offset, lo, hi


def block_runs(cache: Any, layout: SideLayout) -> dict[str, Runs]:
    """Every block's reserved runs in ``cache``'s pools, clipped to the block.

    Complexity:
        O(b + r) for b blocks and r reserved runs.
    """
    result: dict[str, Runs] = {}
    for family in layout.families():
        for key, start, stop in layout.blocks(family):
            runs = [
                (offset + max(a, lo), offset + min(b, hi), why)
                for part, offset, lo, hi in within(cache, family, start, stop)
                for a, b, why in part._reserved.overlapping(lo, hi)
            ]
            if runs:
                result[key] = runs
    return result


def _refresh_plain(pool: Any) -> None:
    pool._plain = not pool._cooldown and not pool._reserved


def lift(side: Side, keys: Iterable[str]) -> None:
    """Take the laid runs of the blocks ``keys`` off the side's pools.

    Complexity:
        O(r) for the r runs of those blocks (plus their bitmap ranges).
    """
    for key in keys:
        family, start, stop = side.layout.block_of(key)
        for pool, _, lo, hi in within(side.cache, family, start, stop):
            for first, end, _ in pool._reserved.remove(lo, hi):
                pool._unmark(first, end)
            _refresh_plain(pool)


def lay(side: Side, keys: Iterable[str]) -> None:
    """Lay the stored runs of the blocks ``keys`` on the side's pools (lifted before).

    Raises:
        StoreError: a run covers a slot the cache holds for a key: the cache
            and the store disagree (a bug, or a store written by something else).

    Complexity:
        O(r) for the r runs of those blocks (plus their bitmap ranges).
    """
    for key in keys:
        family = side.layout.block_of(key)[0]
        for start, stop, why in stored_runs(side, key):
            for pool, _, first, end in within(side.cache, family, start, stop):
                taken = pool._first_allocated(first, end)
                if taken >= 0:
                    raise StoreError(
                        f"the {side.layout.kind} cache cannot follow the store: the reservation "
                        f"record {key!r} covers {pool._describe(taken)}, which a key holds"
                    )
                pool._cooling.remove(first, end)
                pool._reserved.paint(first, end, why)
                pool._mark(first, end)
                _refresh_plain(pool)


def lift_all(side: Side) -> None:
    """Take every laid run off the side's pools (before a bulk read of owner records).

    Complexity:
        O(r) for r laid runs.
    """
    if side.laid:
        lift(side, list(side.blocks))
    side.laid = False


def lay_all(side: Side) -> None:
    """Lay every known block (the owner records are at the blocks' revision now).

    Complexity:
        O(r) for r stored runs.
    """
    if not side.laid:
        lay(side, list(side.blocks))
        side.laid = True


def note(side: Side, changes: dict[str, Any]) -> list[str]:
    """Record the block changes of one catch-up (key -> its last ``Change``); which changed.

    Changes no newer than what the side knows (our own writes coming back)
    are skipped.

    Complexity:
        O(c) for c changes.
    """
    changed = []
    for key, change in changes.items():
        if not key.startswith(side.layout.resv_prefixes):
            continue
        known = side.blocks.get(key)
        if known is not None and change.revision <= known[0]:
            continue
        if change.value is None:
            side.blocks.pop(key, None)
        else:
            side.blocks[key] = (change.revision, change.value)
        changed.append(key)
    return changed


def read_blocks(backend: Any, side: Side) -> None:
    """Read every block record of the side (the runs are laid at the next catch-up).

    Complexity:
        O(b) for b block records (at most 16 per pool).
    """
    lift_all(side)
    side.blocks = {
        record.key: (record.revision, record.value)
        for prefix in side.layout.resv_prefixes
        for record in backend.get_prefix(prefix)
    }


def guard(side: Side, taken: Iterable[Address]) -> tuple[list[Compare], list[Write]]:
    """The compares (and pending rewrites) of a transaction taking ``taken``.

    Each block of a taken slot is compared at the revision the side knows
    (0: absent); a pending block is also rewritten unchanged, which fails a
    reservation in progress there (see :mod:`~dualstack_ipam.durable.layout`).

    Complexity:
        O(k) for k slots taken.
    """
    compares: list[Compare] = []
    writes: list[Write] = []
    seen: set[str] = set()
    for address in taken:
        key = side.layout.block_key(address)
        if key in seen:
            continue
        seen.add(key)
        known = side.blocks.get(key)
        compares.append(Compare(key, 0 if known is None else known[0]))
        if known is not None and decode_block(known[1], key)[1]:
            writes.append(Put(key, known[1]))
    return compares, writes
