"""The cache protocol: in-memory allocators kept in step with a store.

Each side (nodes, Services) is a plain allocator used as a cache. Per
mutation, under the cluster's one lock:

1. catch up: apply the owner records other writers changed since the last
   look (``changes(seen)``), idempotently: a change no newer than what the
   cache holds for that key is skipped, so our own changes coming back are
   harmless. ``CompactedError``: re-read the side's owner records whole.
   A backend with a watch (etcd's ``watched(seen)``) is followed without a
   request at a mutation's first attempt: what the watch delivered so far
   may lag, which costs at worst a failed compare, and a retry catches up
   through the watch to the revisions of the records that won (they come
   back with the failed transaction), or fully (``changes``) when one was
   deleted, so a mutation costs one round trip. That watch carries only
   the records the caches follow (``FOLLOWED``: ``watch_only``);
2. remember the key's state, run the operation on the cache (it validates
   and is all-or-nothing; its errors propagate unchanged), read the state;
3. no change: return, writing nothing;
4. one transaction: the owner record compared at the revision the cache
   knows (0 = absent), every newly taken alloc record compared absent;
   writes: the owner record, the alloc records taken and freed, one
   journal entry;
5. it failed: another writer got there first. Undo the cache, move the
   next-fit cursors to a random slot (racing writers would all pick the
   winner's next CIDR), catch up and run the operation again, which
   now sees the other writer's change (a requested address held by
   another key raises the allocator's own error naming the owner); after ``ATTEMPTS`` failures raise
   ``StoreUnavailableError``, nothing written.

A transaction whose outcome the store could not learn (a ``StoreError``
saying so, etcd unreachable for long) leaves its key *in doubt*: the next
mutation of that key first catches up with the whole feed, which holds that
transaction if it applied.

Freed alloc records need no compare of their own: a transaction writes an
alloc record only with its owner record, so the owner record at the known
revision proves the key still holds them. Counts and the next-fit cursor
live in the cache only.

A *partial* side (the random-strategy Service side of a short command)
starts empty instead of reading every owner record: before a call it reads
the key's own record (not before an ``allocate``: its owner record compared
absent fails if the key exists, and the retry reads it; an error the
operation raises is raised only after that read); a random pick is a probe
that the create-if-absent compare checks; a lost probe reads the holder's
owner record (named by the failed compare's current alloc record) so the
retry avoids it; after
``PARTIAL_ATTEMPTS`` lost races, or at the first call that needs every key
(``len``, ``items``, counts), the side reads itself whole (:meth:`Sync.fill`).
"""

from __future__ import annotations

import inspect
import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from dualstack_ipam.durable import cooling, growing, reserved
from dualstack_ipam.durable.journal import JournalEntry, encode_entry
from dualstack_ipam.durable.layout import (
    COOL_PREFIX,
    JOURNAL_PREFIX,
    OWNER_PREFIX,
    RANGE_PREFIX,
    RESV_PREFIX,
    SideLayout,
)
from dualstack_ipam.errors import IPAMError, StoreError, StoreUnavailableError
from dualstack_ipam.owners import Address
from dualstack_ipam.store import (
    Backend,
    Change,
    CompactedError,
    Compare,
    Delete,
    Put,
    Record,
    Write,
)

if TYPE_CHECKING:
    from dualstack_ipam.owners import KeyedAllocator

__all__ = ["ATTEMPTS", "Side", "Sync", "backoff"]

R = TypeVar("R")
State = tuple[Address, ...] | None

ATTEMPTS = 8
"""Transactions one mutation tries before ``StoreUnavailableError``."""

FOLLOWED = (OWNER_PREFIX, RESV_PREFIX, RANGE_PREFIX)
"""The records the caches follow through the change feed (and ``COOL_PREFIX``
with a cooldown)."""

PARTIAL_ATTEMPTS = 3
"""Lost races after which a partial side reads itself whole before trying again."""


BACKOFF_BASE = 0.003
"""Seconds: about one etcd round trip; the first retry waits up to twice this."""
BACKOFF_CAP = 0.1


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): full jitter, doubling.

    Writers that lost a race to the same candidate (the next-fit cursor of
    every cache points at the same CIDR) would otherwise retry in step and
    keep colliding; a random wait of up to a few round trips spreads them.

    Complexity:
        O(1).

    >>> 0 <= backoff(1) <= 2 * BACKOFF_BASE
    True
    """
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


class Side:
    """One side's cache and what it knows of the store.

    Attributes:
        cache: the allocator used as the cache.
        layout: its records.
        revs: key -> the revision of its owner record, for keys that hold
            something.
        gone: key -> the revision of our own delete of its owner record,
            until the next catch-up passes it.
        known: None when the cache holds the whole side; else the side is
            *partial* (a short command's): the keys whose owner record the
            cache has read or followed since it opened.
        blocks: reservation block record key -> (revision, value), every
            one the side knows (:mod:`~dualstack_ipam.durable.reserved`).
        laid: whether the blocks' runs are on the pools' reservations now.
        cools: release time record key -> its revision, those the side
            knows (only with a cooldown; :mod:`~dualstack_ipam.durable.cooling`).
        ranges: added range record key -> its revision, those applied
            (:mod:`~dualstack_ipam.durable.growing`).
        taken, freed: slots this process's own commits gave to keys and
            took back (``stats()`` totals: the cache also takes and frees
            what it loads and follows, which are not this process's calls).
    """

    __slots__ = (
        "blocks",
        "cache",
        "cools",
        "freed",
        "gone",
        "known",
        "laid",
        "layout",
        "ranges",
        "revs",
        "taken",
    )

    def __init__(self, cache: KeyedAllocator[object], layout: SideLayout) -> None:
        self.cache, self.layout = cache, layout
        self.revs: dict[str, int] = {}
        self.gone: dict[str, int] = {}
        self.known: set[str] | None = None
        self.blocks: dict[str, tuple[int, bytes]] = {}
        self.laid = True
        self.cools: dict[str, int] = {}
        self.ranges: dict[str, int] = {}
        self.taken = 0
        self.freed = 0


class Sync:
    """A backend, the caches following it, and the one lock guarding them.

    Args:
        backend: the store.
        actor: who the journal says mutates.
        cooldown: the cluster's release cooldown in seconds (0: none).
        clock: seconds since the epoch (``time.time`` if None): the
            release times stored, and the caches' cooldowns.
    """

    def __init__(
        self,
        backend: Backend,
        actor: str,
        *,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.backend, self.actor = backend, actor
        self.cooldown, self.clock = cooldown, clock or time.time
        self.lock = threading.RLock()
        self.sides: dict[str, Side] = {}
        self.seen = 0
        self._writer = secrets.token_hex(8)
        self._seq = itertools.count(1)
        self._doubt: set[tuple[str, str]] = set()
        self._conflict = 0  # the revision of what beat our last transaction (0: unknown)
        self._own = 0  # the revision of our last commit
        # A backend that takes ``unique`` proves a transaction by its journal
        # entry (etcd: no marker put); one written before it (a test's
        # wrapper, another project's backend) is called without it.
        try:
            self._unique = "unique" in inspect.signature(backend.txn).parameters
        except (TypeError, ValueError):
            self._unique = False
        watch_only = getattr(backend, "watch_only", None)
        if watch_only is not None:
            # The caches follow these records only (``_follow``), and every
            # revision they wait for (``reach``: our own commits, the records
            # that beat a transaction) writes one of them: etcd need not send
            # each process every alloc record and journal entry of the others.
            watch_only(FOLLOWED + ((COOL_PREFIX,) if cooldown else ()))

    # ------------------------------------------------------------ loading

    def load(self, name: str, side: Side, *, partial: bool = False) -> None:
        """Fill ``side``'s cache from the store (a bulk read) and follow it from now on.

        ``partial``: read nothing now; the side reads each key's own owner
        record when a call needs it, learns of other keys from the change
        feed and from lost races, and reads itself whole (:meth:`fill`) at
        the first call that needs every key.

        Complexity:
            O(n) for the side's n keys; O(1) if ``partial``.
        """
        with self.lock:
            revision = self.backend.revision()
            if not self.sides:
                self.seen = revision
            # Added ranges first (the records below may name their slots);
            # the reservations are read whole even by a partial side: a
            # handful of records, which every transaction taking slots compares.
            growing.read_ranges(self.backend, side)
            reserved.read_blocks(self.backend, side)
            if partial:
                side.known = set()
                self.sides[name] = side
                self.catch_up()
                return
            records = self.backend.get_prefix(side.layout.prefix)
            layout = side.layout
            states = [(layout.key_of(r.key), layout.decode(r.value, r.key)) for r in records]
            try:
                side.cache._load_states(states)
            except IPAMError as exc:
                raise StoreError(f"the store's {layout.kind} records disagree: {exc}") from None
            side.revs = {key: r.revision for (key, _), r in zip(states, records, strict=True)}
            self.sides[name] = side
            self.catch_up()
            if self.cooldown:
                cooling.read_cools(self.backend, side, self.cooldown)

    def _reload(self) -> None:
        """Re-read every loaded side whole (the change feed was compacted)."""
        revision = self.backend.revision()
        for side in self.sides.values():
            layout = side.layout
            growing.read_ranges(self.backend, side)
            reserved.read_blocks(self.backend, side)
            records = self.backend.get_prefix(layout.prefix)
            # The table, not the durable side: its iteration would catch up.
            targets: dict[str, State] = dict.fromkeys(list(side.cache._table), None)
            revs = {}
            for record in records:
                key = layout.key_of(record.key)
                targets[key] = layout.decode(record.value, record.key)
                revs[key] = record.revision
            self._apply(side, targets)
            side.revs, side.gone, side.known = revs, {}, None
            if self.cooldown:
                cooling.read_cools(self.backend, side, self.cooldown)
        self.seen = revision

    def fill(self, side: Side) -> None:
        """Make a partial side whole: read every owner record (see :meth:`load`).

        Complexity:
            O(n) for the side's n keys; O(1) when it is whole already.
        """
        with self.lock:
            if side.known is None:
                return
            self.catch_up()
            reserved.lift_all(side)  # laid again once the owners are current
            layout = side.layout
            records = self.backend.get_prefix(layout.prefix)
            # Keys the cache holds but the read does not were deleted since
            # the last catch-up: drop them now, or an address they held and
            # another key holds in the read would be claimed twice.
            targets: dict[str, State] = dict.fromkeys(list(side.cache._table), None)
            for record in records:
                key = layout.key_of(record.key)
                targets.pop(key, None)
                if record.revision > max(side.revs.get(key, 0), side.gone.get(key, 0)):
                    targets[key] = layout.decode(record.value, record.key)
                    side.revs[key] = record.revision
            for key, target in targets.items():
                if target is None:
                    side.revs.pop(key, None)
            self._apply(side, targets)
            side.known = None
            self.catch_up()  # what changed while reading
            if self.cooldown:
                cooling.read_cools(self.backend, side, self.cooldown)

    def ensure(self, side: Side, key: str, *, again: bool = False) -> None:
        """Make a partial side's cache hold ``key``'s current owner record.

        ``again``: read it even if it was read before (it changed).

        Complexity:
            O(1): one read, the first time (two on etcd when the watch lags
            the record).
        """
        if side.known is None or (key in side.known and not again):
            return
        layout = side.layout
        record = self.backend.get(layout.owner_key(key))
        # What others committed up to the record (an address it holds may
        # have been released by a key the cache knows) comes first; what the
        # watch delivered is enough when it reaches the record.
        self.catch_up(fresh=False)
        if record is not None and record.revision > self.seen:
            self.catch_up()
        if record is not None and record.revision > side.revs.get(key, 0):
            self._apply(side, {key: layout.decode(record.value, record.key)})
            side.revs[key] = record.revision
        side.known.add(key)

    # ------------------------------------------------------------ catching up

    def catch_up(self, *, fresh: bool = True, reach: int = 0) -> None:
        """Apply what other writers committed since the last look.

        Args:
            fresh: up to the store's current revision (``changes``); False:
                up to what the backend's watch has delivered, without a
                request (``watched``, where the backend has one).
            reach: with ``fresh`` False, wait for the watch up to this
                revision (and our own last commit) before trusting it.

        Complexity:
            O(c) for c changes since then (one cheap query on SQLite, one
            round trip on etcd unless ``fresh`` is False).
        """
        with self.lock:
            if not self.sides:
                return
            for _ in range(ATTEMPTS):
                try:
                    changes, revision = self._read_feed(fresh, reach)
                    break
                except CompactedError:
                    self._reload()
            else:
                raise StoreUnavailableError("the store's change feed kept moving past the cache")
            self._follow(changes)
            self.seen = max(self.seen, revision)
            for side in self.sides.values():
                reserved.lay_all(side)
                # Our own deletes newer than the feed's revision are still to
                # come back from it: keep them, or the older put of the same
                # key would be applied again when it arrives.
                side.gone = {key: rev for key, rev in side.gone.items() if rev > self.seen}

    def _read_feed(self, fresh: bool, reach: int = 0) -> tuple[list[Change], int]:
        watched = None if fresh else getattr(self.backend, "watched", None)
        if watched is not None:
            # Up to our own last commit at least: the history before it,
            # applied only in part, could contradict what that commit took.
            reach = max(reach, self._own)
            changes, revision = watched(self.seen, reach=reach)
            if revision >= reach:
                return changes, revision
        return self.backend.changes(self.seen)

    def _follow(self, changes: Iterable[Change]) -> None:
        last: dict[str, Change] = {}
        for change in changes:
            if change.key.startswith((*FOLLOWED, COOL_PREFIX)):
                last[change.key] = change
        if not last:
            return
        for side in self.sides.values():
            growing.apply_ranges(
                side,
                [
                    (key, change.revision, change.value)
                    for key, change in last.items()
                    if key.startswith(side.layout.range_prefix) and change.value is not None
                ],
            )
            for store_key, change in last.items():
                if store_key.startswith(side.layout.cool_prefixes):
                    if change.value is None:
                        side.cools.pop(store_key, None)
                    elif change.revision > side.cools.get(store_key, 0):
                        side.cools[store_key] = change.revision
            blocks = reserved.note(side, last)
            if side.laid:
                # Lifted before the owners change and laid after, so a slot
                # can move between a key and a reservation in one batch.
                reserved.lift(side, blocks)
            layout, targets = side.layout, dict[str, State]()
            for store_key, change in last.items():
                if not store_key.startswith(layout.prefix):
                    continue
                key = layout.key_of(store_key)
                if change.revision <= max(side.revs.get(key, 0), side.gone.get(key, 0)):
                    continue  # what the cache holds is as new (our own change, say)
                if change.value is None:
                    targets[key] = None
                    side.revs.pop(key, None)
                else:
                    targets[key] = layout.decode(change.value, store_key)
                    side.revs[key] = change.revision
                if side.known is not None:
                    side.known.add(key)
            self._apply(side, targets)
            if side.laid:
                reserved.lay(side, blocks)

    def _apply(self, side: Side, targets: dict[str, State]) -> None:
        """Make the cache's keys hold ``targets``: shrink every key first, then grow.

        Shrinking first lets an address move between two keys in one batch.
        """
        cache = side.cache
        try:
            changed = []
            for key, target in targets.items():
                held = cache._key_state(key) or ()
                if held != (target or ()):
                    changed.append((key, target))
                    cache._set_key_state(key, tuple(a for a in held if a in (target or ())))
            # One key at a time: the bulk path of an empty table takes a
            # cooling slot for "allocated for something else".
            for key, target in changed:
                cache._set_key_state(key, target or ())
        except IPAMError as exc:
            # Only a cache that diverged from the store gets here (a bug, or a
            # store written by something else): say so rather than guess.
            kind = side.layout.kind
            raise StoreError(f"the {kind} cache cannot follow the store: {exc}") from exc

    # ------------------------------------------------------------ mutating

    def mutate(self, name: str, key: str, op: Callable[[], R], journal_op: str) -> R:
        """Run ``op`` (a mutation of ``key`` on the cache) and make it durable.

        Raises:
            IPAMError: what ``op`` raises (nothing changed).
            StoreUnavailableError: ``ATTEMPTS`` transactions lost their race.
            StoreError: the store refused or failed (nothing changed).

        Complexity:
            ``op``'s cost, one catch-up and one transaction of O(1) records.
        """
        with self.lock:
            side = self.sides[name]
            # A partial side allocating for a key it has not read skips the
            # read: the owner record compared absent fails if the key exists.
            lazy = journal_op == "allocate" and side.known is not None and key not in side.known
            self._conflict = 0
            for attempt in range(ATTEMPTS):
                if attempt:
                    time.sleep(backoff(attempt))
                if attempt >= PARTIAL_ATTEMPTS:
                    self.fill(side)  # probing keeps losing: the range is busy, read it whole
                # The first try follows the watch (no request); after a lost
                # race, the watch up to the records that won (their revisions
                # came back with the failure), or the feed whole.
                self.catch_up(fresh=attempt > 0 and self._conflict <= 0, reach=self._conflict)
                if not lazy:
                    self.ensure(side, key)
                self._settle(side, key)
                before = side.cache._key_state(key)
                try:
                    result = op()
                except IPAMError:
                    # An error must rest on the store, not on a cache that may
                    # lag (the first try trusted the watch, and a lazy try did
                    # not read the key): read the feed up to the store's
                    # revision and the key, and if that taught the cache
                    # anything, run it again. Costs a request on errors only.
                    seen = self.seen
                    self.catch_up()
                    if lazy:
                        lazy = False
                        self.ensure(side, key)
                    elif self.seen == seen:
                        raise
                    before = side.cache._key_state(key)
                    result = op()
                after = side.cache._key_state(key)
                if after == before:
                    return result
                if self._commit(side, key, before, after, journal_op):
                    return result
                lazy = False
                self._spread(side)
            raise StoreUnavailableError(
                f"{side.layout.kind} {key!r}: {ATTEMPTS} transactions in a row lost their race "
                "with other writers; nothing was changed"
            )

    def mutate_many(self, name: str, ops: Sequence[tuple[str, Callable[[], R], str]]) -> list[R]:
        """Run several ``(key, op, journal_op)`` mutations and commit them as ONE transaction.

        All or nothing: see :func:`dualstack_ipam.durable.batch.mutate_many`.

        Raises:
            IPAMError: what an op raises (nothing changed).
            StoreError: the batch does not fit in one transaction of the
                store (naming the limit), or the store refused or failed
                (nothing changed).
            StoreUnavailableError: ``ATTEMPTS`` transactions lost their race.

        Complexity:
            The ops' cost, one catch-up and one transaction of O(n) records
            for n ops.
        """
        from dualstack_ipam.durable import batch  # batch builds on this module

        return batch.mutate_many(self, name, ops)

    @staticmethod
    def _spread(side: Side) -> None:
        """After a lost race: move the cache's next-fit cursors to a random slot.

        Every writer's cursor points just past the last CIDR taken, so a
        writer that lost a race would pick the same next CIDR as the winner,
        which allocating in a loop gets there first every time (one round
        trip against the loser's catch-up and retry): starvation. A jump of
        a few slots only moved the collision a few CIDRs on (6-20 % of the
        transactions of 2-4 writers lost); a random slot of the whole pool
        puts each writer in a region of its own. A lone writer never loses,
        so it keeps the in-memory sequence. The cursor is only where the
        next scan starts: nothing else moves.
        """
        for pool in getattr(side.cache, "_pools", {}).values():
            size = pool.capacity
            if getattr(pool, "_next_fit", False) and size > 1:
                pool._cursor = random.randrange(size)

    def _settle(self, side: Side, key: str) -> None:
        """Catch up fully first if a transaction of ours on ``key`` was left in doubt.

        The feed up to the store's current revision holds that transaction
        if it applied, in order with what others did around it, so the
        cache then holds the key as the store does.
        """
        doubt = (side.layout.kind, key)
        if doubt in self._doubt:
            self.catch_up()
            self._doubt.discard(doubt)

    def _commit(self, side: Side, key: str, before: State, after: State, op: str) -> bool:
        layout = side.layout
        owner_key = layout.owner_key(key)
        old, new = before or (), after or ()
        compares = [Compare(owner_key, side.revs.get(key, 0))]
        writes: list[Write] = [Put(owner_key, layout.encode(new)) if new else Delete(owner_key)]
        taken = [address for address in new if address not in old]
        for address in taken:
            compares.append(Compare(layout.alloc_key(address), 0))
            writes.append(Put(layout.alloc_key(address), key.encode("utf-8", "surrogatepass")))
        writes.extend(Delete(layout.alloc_key(a)) for a in old if a not in new)
        guards, rewrites = reserved.guard(side, taken)
        compares += guards
        writes += rewrites
        stamps: list[Write] = []
        if self.cooldown:
            freed = [a for a in old if a not in new]
            guards, stamps = cooling.guard(side, taken, freed, self.clock())
            compares += guards
            writes += stamps
        journal_key = self.journal_key()
        entry = self.entry(op, layout.kind, key, tuple(map(layout.text, new)))
        writes.append(Put(journal_key, encode_entry(entry)))
        try:
            if self._unique:
                result = self.backend.txn(compares, writes, unique=journal_key)
            else:
                result = self.backend.txn(compares, writes)
            succeeded, revision = result.succeeded, result.revision
        except StoreError:
            # The outcome may be unknown (a failed sync, say): the journal
            # key is unique to this transaction, so reading it settles it.
            try:
                record = self.backend.get(journal_key)
            except StoreError:
                side.cache._set_key_state(key, before)
                # Not settled: it may still apply. Its compares keep the
                # store right; the cache re-reads the key before trusting it.
                self._doubt.add((side.layout.kind, key))
                raise
            if record is None:
                side.cache._set_key_state(key, before)
                raise
            succeeded, revision = True, record.revision
        if not succeeded:
            side.cache._set_key_state(key, before)
            self._lost(side, compares, result.current)
            return False
        self._won(side, [(key, before, after)], revision, rewrites, stamps)
        return True

    def _lost(
        self, side: Side, compares: list[Compare], current: Mapping[str, Record | None]
    ) -> None:
        """After a lost race (the cache undone): learn what beat the transaction."""
        self._conflict = _conflict(compares, current)
        if self.cooldown:
            cooling.learn(side, current, self.cooldown)
        if side.known is not None:
            # A partial cache learns who holds what it probed; the
            # feed would not tell it (that was allocated before it opened).
            for compared, record in current.items():
                if record is not None and compared.startswith("alloc/"):
                    owner = record.value.decode("utf-8", "surrogatepass")
                    self.ensure(side, owner, again=True)

    def _won(
        self,
        side: Side,
        states: Iterable[tuple[str, State, State]],
        revision: int,
        rewrites: Iterable[Write],
        stamps: Iterable[Write],
    ) -> None:
        """After a commit at ``revision``: what the side knows of the keys and records written."""
        for write in rewrites:
            assert isinstance(write, Put)
            side.blocks[write.key] = (revision, write.value)
        cooling.settle(side, stamps, revision)
        self._own = max(self._own, revision)
        if revision == self.seen + 1:
            self.seen = revision  # nobody else wrote in between: no need to read our change back
        for key, before, after in states:
            old, new = set(before or ()), set(after or ())
            side.taken += len(new - old)
            side.freed += len(old - new)
            if side.known is not None:
                side.known.add(key)
            if after:
                side.revs[key] = revision
            else:
                side.revs.pop(key, None)
                side.gone[key] = revision

    # ------------------------------------------------------------ journal

    def journal_key(self) -> str:
        """A journal record key no other writer uses.

        Complexity:
            O(1).
        """
        return f"{JOURNAL_PREFIX}{self._writer}/{next(self._seq):012x}"

    def entry(self, op: str, kind: str, key: str, addresses: tuple[str, ...]) -> JournalEntry:
        """A journal entry of this writer, stamped now (its revision comes from its record).

        Complexity:
            O(1).
        """
        return JournalEntry(0, datetime.now(UTC), self.actor, op, kind, key, addresses)


def _conflict(compares: Iterable[Compare], current: Mapping[str, Record | None]) -> int:
    """The revision up to which the feed holds what made a transaction fail; 0: unknown.

    A compared record deleted since has no revision to wait for.
    """
    reach = 0
    for compare in compares:
        record = current.get(compare.key)
        if record is None:
            if compare.revision:
                return 0
        else:
            reach = max(reach, record.revision)
    return reach
