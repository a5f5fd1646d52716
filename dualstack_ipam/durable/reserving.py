"""Durable ``reserve`` / ``unreserve``: reservation block records, written safely.

The plain method runs on the side's cache first (it validates and raises
the plain errors: ``AlreadyAllocatedError`` over allocated space, the node
pool's set-aside refused by ``unreserve``, ...); the blocks whose runs it
changed are then written as :mod:`~dualstack_ipam.durable.layout`
describes. Correctness rests on the compares, not on the cache: the
blocks are compared at the revisions the cache knows, and reserving new
slots marks the blocks *pending* first, then reads the store's alloc
records inside the new runs, then commits compared against the pending
mark. A lost race undoes the cache, catches up and runs the call again,
which then raises the plain error if the other writer allocated there.

>>> import dualstack_ipam
>>> from dualstack_ipam import ClusterConfig
>>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.0.0.0/16", "10.96.0.0/24"))
>>> cluster.services.reserve("10.96.0.200-10.96.0.209", "appliances")
10
>>> [(e.op, e.kind, e.key, e.data["reason"]) for e in cluster.journal()]
[('reserve', 'reservation', '10.96.0.200-10.96.0.209', 'appliances')]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs

from dualstack_ipam.durable.journal import encode_entry
from dualstack_ipam.durable.reserved import (
    Runs,
    block_runs,
    encode_block,
    lay,
    lift,
    stored_runs,
)
from dualstack_ipam.durable.sync import ATTEMPTS, Side, Sync, backoff
from dualstack_ipam.errors import StoreError, StoreUnavailableError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.pools.multi import parts_of
from dualstack_ipam.pools.ranges import parse_range, range_text
from dualstack_ipam.store import Compare, Put, Write

__all__ = ["change_reservations"]

Cooling = list[tuple[Any, list[tuple[int, int, float]]]]


def change_reservations(
    sync: Sync, name: str, op: Callable[[], int], journal_op: str, value: Any, reason: str
) -> int:
    """Run the plain ``reserve`` / ``unreserve`` (``op``) on side ``name`` and make it durable.

    Args:
        sync: the cluster's cache protocol.
        name: ``"nodes"`` or ``"services"``.
        op: the plain method bound to its arguments, run on the cache.
        journal_op: ``"reserve"`` or ``"unreserve"``.
        value: the range as the caller gave it (the journal shows it canonical).
        reason: the reservation's reason (``""`` for ``unreserve``).

    Returns:
        What ``op`` returns: the slots newly reserved, or freed.

    Raises:
        IPAMError: what ``op`` raises (nothing changed), also when another
            writer allocated inside the range first.
        StoreUnavailableError: ``ATTEMPTS`` tries lost their race.
        StoreError: the store refused or failed (nothing changed).

    Complexity:
        One catch-up and fill of the side, ``op``'s cost, and 1 transaction
        (unreserve, or only reasons changed) or 3 transactions and one read
        per new run (reserving new slots), each of at most 16 records per pool.
    """
    with sync.lock:
        side = sync.sides[name]
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(backoff(attempt))
            sync.catch_up(fresh=attempt > 0)
            sync.fill(side)
            cooling = _cooling(side)
            result = op()
            after = block_runs(side.cache, side.layout)
            changed = {
                key: after.get(key, [])
                for key in sorted(set(after) | set(side.blocks))
                if after.get(key, []) != stored_runs(side, key)
            }
            if not changed:
                return result
            try:
                done = _write(sync, side, name, changed, journal_op, value, reason)
            except BaseException:
                _undo(side, changed, cooling)
                raise
            if done:
                return result
            _undo(side, changed, cooling)
        raise StoreUnavailableError(
            f"{journal_op} {value!r}: {ATTEMPTS} tries in a row lost their race with other "
            "writers; nothing was changed"
        )


def _cooling(side: Side) -> Cooling:
    pools = side.cache._pools  # type: ignore[attr-defined]
    parts = [part for pool in pools.values() for part in parts_of(pool)]
    return [(part, list(part._cooling)) for part in parts if part._cooldown]


def _undo(side: Side, changed: dict[str, Runs], cooling: Cooling) -> None:
    """Give the cache back the stored runs of ``changed``, and the cooling the call ended."""
    lift(side, changed)
    lay(side, changed)
    for pool, runs in cooling:
        for first, end, due in runs:
            for start, stop in _minus([(first, end)], list(pool._cooling.overlapping(first, end))):
                pool._cooling.paint(start, stop, due)
                pool._mark(start, stop)
                pool._queue.append((due, start, stop))


def _minus(runs: list[tuple[int, int]], cut: Any) -> list[tuple[int, int]]:
    """The parts of ``runs`` outside the runs of ``cut`` (both ascending)."""
    result = []
    for start, stop in runs:
        position = start
        for first, end, *_ in cut:
            if end <= position or first >= stop:
                continue
            if first > position:
                result.append((position, first))
            position = max(position, end)
        if position < stop:
            result.append((position, stop))
    return result


def _fresh(side: Side, changed: dict[str, Runs]) -> list[tuple[IPFamily, int, int]]:
    """The slots ``changed`` reserves that the store's blocks do not."""
    fresh = []
    for key, runs in changed.items():
        family = side.layout.block_of(key)[0]
        old = stored_runs(side, key)
        for start, stop in _minus([(a, b) for a, b, _ in runs], old):
            fresh.append((family, start, stop))
    return fresh


def _write(
    sync: Sync,
    side: Side,
    name: str,
    changed: dict[str, Runs],
    journal_op: str,
    value: Any,
    reason: str,
) -> bool:
    """Write ``changed``; False when another writer got in the way (nothing changed)."""
    backend, layout = sync.backend, side.layout
    revs = {key: side.blocks.get(key, (0, b""))[0] for key in changed}
    fresh = _fresh(side, changed)
    if fresh:
        # 1. pending: from now on every allocation in these blocks rewrites them.
        marks = {key: encode_block(stored_runs(side, key), pending=True) for key in changed}
        result = backend.txn(
            [Compare(key, rev) for key, rev in revs.items()],
            [Put(key, mark) for key, mark in marks.items()],
        )
        if not result.succeeded:
            return False
        for key, mark in marks.items():
            side.blocks[key] = (result.revision, mark)
            revs[key] = result.revision
        # 2. what was allocated before the mark is in the store now.
        for family, start, stop in fresh:
            first = layout.alloc_key(layout.address_of(family, start))
            found = backend.get_prefix(layout.pool_alloc_prefix(family), start=first, limit=1)
            end = layout.blocks(family)[-1][2]
            bound = None if stop >= end else layout.alloc_key(layout.address_of(family, stop))
            if found and (bound is None or found[0].key < bound):
                _clear(sync, side, revs)
                return False
    # 3. the runs, compared against what (1) wrote or the cache knew.
    text = range_text(*parse_range(value))
    data = {"side": name, "range": text, **({"reason": reason} if journal_op == "reserve" else {})}
    addresses = (text,) if journal_op == "reserve" else ()
    entry = attrs.evolve(sync.entry(journal_op, "reservation", text, addresses), data=data)
    journal_key = sync.journal_key()
    values = {key: encode_block(runs, pending=False) for key, runs in changed.items()}
    writes: list[Write] = [Put(key, v) for key, v in values.items()]
    writes.append(Put(journal_key, encode_entry(entry)))
    try:
        result = backend.txn([Compare(key, rev) for key, rev in revs.items()], writes)
        succeeded, revision = result.succeeded, result.revision
    except StoreError:
        # The outcome may be unknown: the journal key is this call's alone.
        record = backend.get(journal_key)
        if record is None:
            raise
        succeeded, revision = True, record.revision
    if not succeeded:
        return False
    for key, v in values.items():
        side.blocks[key] = (revision, v)
    sync._own = max(sync._own, revision)
    return True


def _clear(sync: Sync, side: Side, revs: dict[str, int]) -> None:
    """Take the pending mark off again (best effort: a later change of the block does too)."""
    values = {key: encode_block(stored_runs(side, key), pending=False) for key in revs}
    try:
        result = sync.backend.txn(
            [Compare(key, rev) for key, rev in revs.items()],
            [Put(key, v) for key, v in values.items()],
        )
    except StoreError:
        return
    if result.succeeded:
        for key, v in values.items():
            side.blocks[key] = (result.revision, v)
