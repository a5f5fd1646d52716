"""The in-process backend: a dict of records and a list of changes, one lock.

Thread-safe, not durable, not shared between processes. It is the reference
the other backends are tested against and the store behind ``memory://``.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from types import TracebackType

from dualstack_ipam.errors import StoreError
from dualstack_ipam.store.backend import TxnLimits, check_range, check_txn
from dualstack_ipam.store.records import (
    Change,
    CompactedError,
    Compare,
    Put,
    Record,
    TxnResult,
    Write,
    check_key,
    check_revision,
)

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """A thread-safe in-process store with revisions and a change feed.

    Args:
        limits: transaction limits to enforce (none by default; pass
            ``ETCD_DEFAULT_LIMITS`` to test code meant for etcd).

    >>> from dualstack_ipam.store import Compare, Put
    >>> store = MemoryBackend()
    >>> store.txn([Compare("k", 0)], [Put("k", b"v")]).succeeded
    True
    >>> store.txn([Compare("k", 0)], [Put("k", b"w")]).current
    {'k': Record(key='k', value=b'v', revision=1)}
    """

    def __init__(self, *, limits: TxnLimits | None = None) -> None:
        self.limits = limits if limits is not None else TxnLimits()
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._changes: list[Change] = []
        self._revisions: list[int] = []  # parallel to _changes, for bisect
        self._revision = 0
        self._compacted = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryBackend(revision={self._revision}, records={len(self._records)})"

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed")

    def get(self, key: str) -> Record | None:
        """The record under ``key``, or ``None``.

        Args:
            key: the record's key.

        Returns:
            The record, or None when absent.

        Raises:
            StoreError: the store is closed.

        Complexity:
            O(1).

        >>> MemoryBackend().get("absent") is None
        True
        """
        check_key(key)
        with self._lock:
            self._check_open()
            return self._records.get(key)

    def get_prefix(self, prefix: str, *, start: str = "", limit: int | None = None) -> list[Record]:
        """The records whose key starts with ``prefix``, sorted by key.

        Args:
            prefix: the key prefix ('' = every record).
            start: skip keys below this one.
            limit: return at most this many records (None = all).

        Returns:
            The records, sorted by key (UTF-8 byte order, as etcd).

        Raises:
            StoreError: bad arguments, or the store is closed.

        Complexity:
            O(n log n) for n records in the store (a scan; memory only).

        >>> MemoryBackend().get_prefix("pools/")
        []
        """
        check_range(prefix, start, limit)
        with self._lock:
            self._check_open()
            found = [
                rec for key, rec in self._records.items() if key.startswith(prefix) and key >= start
            ]
        found.sort(key=lambda rec: rec.key)
        return found if limit is None else found[:limit]

    def txn(
        self, compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        """If every compare holds, apply every write at one new revision.

        Args:
            compares: conditions; ``Compare(key, 0)`` = the key is absent.
            writes: puts and deletes, each key at most once.
            unique: the key of a ``Put`` of ``writes`` no other transaction
                writes (see ``Backend.txn``): checked, not otherwise used.

        Returns:
            The outcome; on failure the compared keys' current records.

        Raises:
            StoreError: a malformed or oversized transaction, or the store
                is closed. Nothing is written.

        Complexity:
            O(c + w) for c compares and w writes.

        >>> from dualstack_ipam.store import Delete
        >>> MemoryBackend().txn([], [Delete("absent")])
        TxnResult(succeeded=True, revision=0, current={})
        """
        check_txn(compares, writes, self.limits, unique)
        with self._lock:
            self._check_open()
            records = self._records
            if any(_revision_of(records.get(c.key)) != c.revision for c in compares):
                current = {c.key: records.get(c.key) for c in compares}
                return TxnResult(succeeded=False, revision=self._revision, current=current)
            revision = self._revision + 1
            changed: list[Change] = []
            for write in writes:
                if type(write) is Put:
                    records[write.key] = Record(write.key, write.value, revision)
                    changed.append(Change(write.key, revision, write.value))
                elif records.pop(write.key, None) is not None:
                    changed.append(Change(write.key, revision, None))
            if changed:
                changed.sort(key=lambda change: change.key)
                self._changes.extend(changed)
                self._revisions.extend([revision] * len(changed))
                self._revision = revision
            return TxnResult(succeeded=True, revision=self._revision)

    def changes(self, after: int) -> tuple[list[Change], int]:
        """Every change with revision > ``after``, and the current revision.

        Args:
            after: the last revision the caller has seen.

        Returns:
            The changes in revision order, and the store's revision.

        Raises:
            CompactedError: ``after`` is older than the compaction revision.
            StoreError: the store is closed.

        Complexity:
            O(log h + k) for h kept changes and k returned.

        >>> MemoryBackend().changes(0)
        ([], 0)
        """
        check_revision(after)
        with self._lock:
            self._check_open()
            if after < self._compacted:
                raise CompactedError(
                    f"changes after revision {after!r} were compacted "
                    f"(kept after {self._compacted})",
                    after=after,
                    compacted=self._compacted,
                )
            start = bisect.bisect_right(self._revisions, after)
            return self._changes[start:], self._revision

    def compact(self, revision: int) -> None:
        """Drop the change feed up to and including ``revision``.

        Args:
            revision: the newest revision to drop; at most the current one.
                Compacting at or below an earlier compaction does nothing.

        Raises:
            StoreError: ``revision`` is above the store's, or the store is
                closed.

        Complexity:
            O(h) for h kept changes.

        >>> MemoryBackend().compact(0)
        """
        with self._lock:
            self._check_open()
            if type(revision) is not int or not 0 <= revision <= self._revision:
                raise StoreError(
                    f"cannot compact at revision {revision!r}: the store is at {self._revision}"
                )
            if revision <= self._compacted:
                return
            cut = bisect.bisect_right(self._revisions, revision)
            del self._changes[:cut]
            del self._revisions[:cut]
            self._compacted = revision

    def revision(self) -> int:
        """The store's current revision (0 for a new store).

        Raises:
            StoreError: the store is closed.

        Complexity:
            O(1).

        >>> MemoryBackend().revision()
        0
        """
        with self._lock:
            self._check_open()
            return self._revision

    def close(self) -> None:
        """Forget nothing, but refuse further calls (as a durable store would).

        Complexity:
            O(1).

        >>> MemoryBackend().close()
        """
        with self._lock:
            self._closed = True

    def __enter__(self) -> MemoryBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _revision_of(record: Record | None) -> int:
    return 0 if record is None else record.revision
