"""The embedded backend: one SQLite file that processes on one machine share.

Settings and why (see ``docs/store.md``):

- WAL journal: readers never block the writer and a commit appends to the
  log instead of rewriting pages;
- ``synchronous=FULL`` (default): the log is synced at every commit, so a
  change that ``txn`` acknowledged survives a power cut. ``NORMAL`` syncs
  only at checkpoints: faster, never corrupt, but the last commits before a
  power cut (not a process crash) may be lost;
- ``BEGIN IMMEDIATE`` for every transaction: the write lock is taken before
  the compares are read, so processes serialise and a compare can never be
  invalidated between its read and the commit;
- a busy timeout: a process waits for the lock that long, then the call
  raises ``StoreUnavailableError`` with nothing written.

One connection per backend object, used by one thread at a time under a
lock; a backend must not cross ``fork`` (each process opens its own). This
class holds the connection, the lock and the error mapping; opening the file
is :mod:`~dualstack_ipam.store.sqlite_file`'s, the SQL of each operation
:mod:`~dualstack_ipam.store.sqlite_statements`'.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from dualstack_ipam.errors import StoreError
from dualstack_ipam.store.backend import TxnLimits, check_range, check_txn
from dualstack_ipam.store.records import (
    Change,
    CompactedError,
    Compare,
    Record,
    TxnResult,
    Write,
    check_key,
    check_revision,
)
from dualstack_ipam.store.sqlite_file import connect, sqlite_error
from dualstack_ipam.store.sqlite_statements import (
    apply_txn,
    compact_feed,
    range_query,
    read_feed,
    rollback,
)

__all__ = ["SQLiteBackend"]


class SQLiteBackend:
    """A store in one SQLite file, shared by threads and processes.

    Args:
        path: the store file; created (with its schema) when absent. Its
            folder must exist.
        synchronous: ``"FULL"`` (default: durable across power loss),
            ``"EXTRA"`` or ``"NORMAL"`` (see the module notes).
        busy_timeout_ms: how long a call waits for another process's lock.
        limits: transaction limits to enforce (none by default).

    Raises:
        InvalidConfigError: an empty path, a directory, a FIFO, a missing
            folder, a bad setting, or a store of another format version.
        StoreError: not a SQLite file, or a foreign or corrupt database
            (left untouched).

    >>> import os, tempfile
    >>> from dualstack_ipam.store import Compare, Put
    >>> folder = tempfile.TemporaryDirectory()
    >>> with SQLiteBackend(os.path.join(folder.name, "ipam.db")) as store:
    ...     store.txn([Compare("k", 0)], [Put("k", b"v")])
    TxnResult(succeeded=True, revision=1, current={})
    >>> folder.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        limits: TxnLimits | None = None,
    ) -> None:
        self.limits = limits if limits is not None else TxnLimits()
        self._conn, self.path, _ = connect(
            path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms
        )
        self.synchronous = synchronous.upper()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.path!r}, synchronous={self.synchronous!r})"

    def _use(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the SQLite store {self.path!r} is closed", path=self.path)
        if os.getpid() != self._pid:
            # A SQLite connection must not be used across fork: its locks
            # belong to the parent.
            raise StoreError(
                f"the SQLite store {self.path!r} was opened in process {self._pid}; "
                "open it again in this process",
                path=self.path,
            )
        return self._conn

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            conn = self._use()
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise sqlite_error(exc, self.path) from None

    def get(self, key: str) -> Record | None:
        """The record under ``key``, or ``None``.

        Args:
            key: the record's key.

        Returns:
            The record, or None when absent.

        Raises:
            StoreError: the store is closed or failed.

        Complexity:
            O(log n) for n records.

        >>> import os, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> SQLiteBackend(os.path.join(folder.name, "s.db")).get("k") is None
        True
        >>> folder.cleanup()
        """
        check_key(key)
        rows = self._query("SELECT value, revision FROM kv WHERE key = ?", (key.encode(),))
        return Record(key, bytes(rows[0][0]), rows[0][1]) if rows else None

    def get_prefix(self, prefix: str, *, start: str = "", limit: int | None = None) -> list[Record]:
        """The records whose key starts with ``prefix``, sorted by key.

        Args:
            prefix: the key prefix ('' = every record).
            start: skip keys below this one.
            limit: return at most this many records (None = all).

        Returns:
            The records in key order (UTF-8 bytes, as etcd).

        Raises:
            StoreError: bad arguments, or the store is closed or failed.

        Complexity:
            O(log n + k) for n records and k returned.

        >>> import os, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> SQLiteBackend(os.path.join(folder.name, "s.db")).get_prefix("")
        []
        >>> folder.cleanup()
        """
        check_range(prefix, start, limit)
        rows = self._query(*range_query(prefix, start, limit))
        return [Record(bytes(k).decode(), bytes(v), r) for k, v, r in rows]

    def txn(
        self, compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        """If every compare holds, apply every write at one new revision.

        Runs under ``BEGIN IMMEDIATE``: the compares are read with the write
        lock held, and the commit is synced as ``synchronous`` says before
        this returns.

        Args:
            compares: conditions; ``Compare(key, 0)`` = the key is absent.
            writes: puts and deletes, each key at most once.
            unique: the key of a ``Put`` of ``writes`` no other transaction
                writes (see ``Backend.txn``): checked, not otherwise used.

        Returns:
            The outcome; on failure the compared keys' current records.

        Raises:
            StoreError: a malformed or oversized transaction, or SQLite
                failed: before the commit, nothing was written; during it
                (a disk error syncing the log), the message says the
                outcome is unknown, as SQLite may recover the commit.
            StoreUnavailableError: the lock stayed busy past the timeout;
                nothing was written.

        Complexity:
            O((c + w) log n) for c compares, w writes and n records.

        >>> import os, tempfile
        >>> from dualstack_ipam.store import Compare, Put
        >>> folder = tempfile.TemporaryDirectory()
        >>> store = SQLiteBackend(os.path.join(folder.name, "s.db"))
        >>> store.txn([Compare("k", 3)], [Put("k", b"v")])
        TxnResult(succeeded=False, revision=0, current={'k': None})
        >>> store.close(); folder.cleanup()
        """
        check_txn(compares, writes, self.limits, unique)
        with self._lock:
            conn = self._use()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise sqlite_error(exc, self.path) from None
            committing = False
            try:
                result = apply_txn(conn, compares, writes)
                committing = result.succeeded
                conn.execute("COMMIT" if result.succeeded else "ROLLBACK")
            except BaseException as exc:
                rollback(conn)
                if not isinstance(exc, sqlite3.Error):
                    raise
                if committing:
                    # A disk error while the log was synced: the commit frame
                    # may be in the log, and SQLite's recovery may apply it.
                    raise StoreError(
                        f"store file {self.path!r}: {exc} while committing; the outcome is "
                        "unknown until the keys are read back",
                        path=self.path,
                    ) from None
                raise sqlite_error(exc, self.path) from None
            return result

    def changes(self, after: int) -> tuple[list[Change], int]:
        """Every change with revision > ``after``, and the current revision.

        Read in one read transaction, so the list and the revision agree.

        Args:
            after: the last revision the caller has seen.

        Returns:
            The changes in revision order (keys sorted within a revision),
            and the store's revision.

        Raises:
            CompactedError: ``after`` is older than the compaction revision.
            StoreError: the store is closed or failed.

        Complexity:
            O(log h + k) for h kept changes and k returned.

        >>> import os, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> SQLiteBackend(os.path.join(folder.name, "s.db")).changes(0)
        ([], 0)
        >>> folder.cleanup()
        """
        check_revision(after)
        with self._lock:
            conn = self._use()
            try:
                revision, compacted, feed = read_feed(conn, after)
            except sqlite3.Error as exc:
                raise sqlite_error(exc, self.path) from None
        if after < compacted:
            raise CompactedError(
                f"changes after revision {after!r} were compacted (kept after {compacted})",
                after=after,
                compacted=compacted,
                path=self.path,
            )
        return feed, revision

    def compact(self, revision: int) -> None:
        """Drop the change feed up to and including ``revision``.

        Args:
            revision: the newest revision to drop; at most the current one.
                Compacting at or below an earlier compaction does nothing.

        Raises:
            StoreError: ``revision`` is above the store's, or SQLite failed.

        Complexity:
            O(d log h) for d changes dropped out of h.

        >>> import os, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> SQLiteBackend(os.path.join(folder.name, "s.db")).compact(0)
        >>> folder.cleanup()
        """
        with self._lock:
            conn = self._use()
            try:
                compact_feed(conn, revision, self.path)
            except sqlite3.Error as exc:
                raise sqlite_error(exc, self.path) from None

    def revision(self) -> int:
        """The store's current revision (0 for a new store).

        Raises:
            StoreError: the store is closed or failed.

        Complexity:
            O(1).

        >>> import os, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> SQLiteBackend(os.path.join(folder.name, "s.db")).revision()
        0
        >>> folder.cleanup()
        """
        rows = self._query("SELECT value FROM meta WHERE name = 'revision'")
        return int(rows[0][0])

    def close(self) -> None:
        """Close the connection; later calls raise ``StoreError``. Idempotent.

        Complexity:
            O(1) (SQLite may checkpoint the log into the file).

        >>> import os, tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> SQLiteBackend(os.path.join(folder.name, "s.db")).close()
        >>> folder.cleanup()
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:  # never close a parent's connection in a child
                self._conn.close()

    def __enter__(self) -> SQLiteBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
