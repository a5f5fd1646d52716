"""The backend interface every store speaks, and the checks all of them share.

A backend is a key-value store with a revision counter of its own, in the
shape etcd offers (memory, SQLite and etcd implement it):

- ``get`` / ``get_prefix`` read records;
- ``txn(compares, writes)`` is one atomic compare-and-swap: if every compare
  holds, all writes apply at one new revision, else nothing is written and
  the result carries the compared keys' current records;
- ``changes(after)`` is the revision-ordered change feed a cache follows;
- ``compact``, ``revision`` and ``close``.

No logical record is shared by every writer: the store revision is the
backend's own, so callers never need a counter key (a hot key under
contention).

>>> from dualstack_ipam.store import MemoryBackend, Put
>>> backend: Backend = MemoryBackend()
>>> backend.txn([], [Put("a", b"1")]).revision
1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from dualstack_ipam.errors import StoreError
from dualstack_ipam.store.records import Change, Compare, Delete, Put, Record, TxnResult, Write

__all__ = ["Backend", "TxnLimits", "check_range", "check_txn"]


@attrs.frozen(slots=True)
class TxnLimits:
    """The largest transaction a backend takes; ``None`` = no limit.

    etcd refuses a transaction with more than ``--max-txn-ops`` compares or
    writes (128 by default) and a request over ``--max-request-bytes``
    (1.5 MiB by default). The memory and SQLite backends have no such limit
    but take the same settings, so code meant for etcd can be tested on them.

    Attributes:
        max_ops: most compares, and most writes, in one transaction.
        max_bytes: most bytes of keys and values in one transaction.
    """

    max_ops: int | None = None
    max_bytes: int | None = None


ETCD_DEFAULT_LIMITS = TxnLimits(max_ops=128, max_bytes=3 * 1024 * 1024 // 2)
"""etcd's defaults: ``--max-txn-ops=128``, ``--max-request-bytes=1.5 MiB``."""


@runtime_checkable
class Backend(Protocol):
    """A durable (or in-process) key-value store with revisions.

    Guarantees every backend gives:

    - a transaction is atomic and isolated: all its writes or none, and no
      other transaction runs between its compares and its writes;
    - a transaction that changes something raises the store revision by
      exactly one, and every key it writes gets that revision; one that
      changes nothing (a failed compare, no writes, deletes of absent keys)
      leaves the revision as it is;
    - once ``txn`` returns, its outcome is durable as far as the backend
      promises (SQLite ``synchronous=FULL``: survives a power cut);
    - ``changes(after)`` lists every put and delete with a revision above
      ``after`` in revision order (keys sorted within one revision), until
      ``compact`` drops them.
    """

    limits: TxnLimits

    def get(self, key: str) -> Record | None:
        """The record under ``key``, or ``None``.

        Complexity:
            O(log n) for n records (one round trip on a remote store).
        """
        ...

    def get_prefix(self, prefix: str, *, start: str = "", limit: int | None = None) -> list[Record]:
        """The records whose key starts with ``prefix``, sorted by key.

        ``start`` skips keys below it; ``limit`` returns at most that many
        (etcd's range with a limit), so a scan can go page by page.

        Complexity:
            O(log n + k) for n records and k returned.
        """
        ...

    def txn(
        self, compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        """If every compare holds, apply every write at one new revision.

        ``unique`` (optional for a backend to take): the key of one of
        ``writes``, a ``Put`` that no other transaction ever writes (a
        journal entry's key). A backend that must learn whether a
        transaction whose answer was lost applied may read it instead of
        writing a marker of its own (etcd: one put fewer per transaction).

        Complexity:
            O((c + w) log n) for c compares, w writes and n records.
        """
        ...

    def changes(self, after: int) -> tuple[list[Change], int]:
        """Every change with revision > ``after``, and the current revision.

        Complexity:
            O(log h + k) for h kept changes and k returned.
        """
        ...

    def compact(self, revision: int) -> None:
        """Drop the change feed up to and including ``revision``.

        Complexity:
            O(d) for d changes dropped.
        """
        ...

    def revision(self) -> int:
        """The store's current revision (0 for a new store).

        Complexity:
            O(1).
        """
        ...

    def close(self) -> None:
        """Release the backend's resources; later calls raise ``StoreError``.

        Complexity:
            O(1).
        """
        ...


def check_txn(
    compares: Sequence[Compare],
    writes: Sequence[Write],
    limits: TxnLimits,
    unique: str | None = None,
) -> None:
    """Refuse a malformed or oversized transaction before anything is written.

    Args:
        compares: the transaction's conditions.
        writes: the transaction's writes.
        limits: the backend's limits.
        unique: ``txn``'s ``unique``: None, or the key of a ``Put`` of
            ``writes``.

    Raises:
        StoreError: an element of the wrong type, a key written twice (etcd
            refuses it too), more operations or bytes than ``limits``, or a
            ``unique`` that is not the key of a ``Put`` of ``writes``.

    Complexity:
        O(c + w) for c compares and w writes.

    >>> check_txn([], [Put("a", b""), Delete("a")], TxnLimits())
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.StoreError: key 'a' is written twice in one transaction
    """
    for name, items in (("compares", compares), ("writes", writes)):
        if not isinstance(items, (list, tuple)):
            raise StoreError(f"transaction {name} must be a list or tuple, got {items!r:.60}")
    size = 0
    for compare in compares:
        if type(compare) is not Compare:
            raise StoreError(f"a transaction compare must be a Compare, got {compare!r}")
        size += len(compare.key.encode())
    written: set[str] = set()
    for write in writes:
        if type(write) is Put:
            size += len(write.key.encode()) + len(write.value)
        elif type(write) is Delete:
            size += len(write.key.encode())
        else:
            raise StoreError(f"a transaction write must be a Put or Delete, got {write!r}")
        if write.key in written:
            raise StoreError(f"key {write.key!r} is written twice in one transaction")
        written.add(write.key)
    if unique is not None and not any(type(w) is Put and w.key == unique for w in writes):
        raise StoreError(f"unique={unique!r} is not the key of a Put of the transaction")
    most = max(len(compares), len(writes))
    if limits.max_ops is not None and most > limits.max_ops:
        raise StoreError(
            f"a transaction of {len(compares)} compares and {len(writes)} writes exceeds "
            f"the store's limit of {limits.max_ops} operations"
        )
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise StoreError(
            f"a transaction of {size} bytes exceeds the store's limit of {limits.max_bytes} bytes"
        )


def check_range(prefix: str, start: str, limit: int | None) -> None:
    """Refuse malformed ``get_prefix`` arguments.

    Args:
        prefix: the key prefix ('' = every key).
        start: the first key to return (keys below it are skipped).
        limit: the most records to return, or None for all.

    Raises:
        StoreError: a prefix or start that is not text, or a limit that is
            not a positive int.

    Complexity:
        O(1).

    >>> check_range("pools/", "", 0)
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.StoreError: a range limit must be an int >= 1 or None, got 0
    """
    for name, value in (("prefix", prefix), ("start", start)):
        if type(value) is not str:
            raise StoreError(f"a range {name} must be a str, got {value!r}")
    if limit is not None and (type(limit) is not int or limit < 1):
        raise StoreError(f"a range limit must be an int >= 1 or None, got {limit!r}")
