"""What each store operation says to SQLite, on a connection the backend holds.

:class:`~dualstack_ipam.store.SQLiteBackend` owns the connection, its lock
and the mapping of SQLite's errors; the functions here own the SQL against
the schema of :mod:`~dualstack_ipam.store.sqlite_file` (``meta``, ``kv``,
``feed``) and the transaction each operation needs:

- :func:`apply_txn` runs inside the ``BEGIN IMMEDIATE`` the backend opened,
  so the compares are read with the write lock held;
- :func:`read_feed` reads the revision and the feed in one read
  transaction, so they agree;
- :func:`compact_feed` checks and drops under its own ``BEGIN IMMEDIATE``.

They raise ``sqlite3.Error`` as SQLite does: the caller turns it into a
``StoreError`` naming the file; :func:`passing` says which errors are
another process's passing state (the caller's ``StoreUnavailableError``,
or a wait for the lock).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence

from dualstack_ipam.errors import StoreError
from dualstack_ipam.store.records import Change, Compare, Put, Record, TxnResult, Write, prefix_end

__all__ = [
    "apply_txn",
    "compact_feed",
    "passing",
    "primary_code",
    "range_query",
    "read_feed",
    "rollback",
]


def range_query(prefix: str, start: str, limit: int | None) -> tuple[str, tuple[bytes | int, ...]]:
    """The SELECT of ``get_prefix``: keys from ``max(prefix, start)``, in key order.

    Complexity:
        O(len(prefix) + len(start)).

    >>> range_query("a", "", 2)
    ('SELECT key, value, revision FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?', \
(b'a', b'b', 2))
    """
    sql = "SELECT key, value, revision FROM kv WHERE key >= ?"
    args: list[bytes | int] = [max(prefix.encode(), start.encode())]
    high = prefix_end(prefix.encode())
    if high is not None:
        sql += " AND key < ?"
        args.append(high)
    sql += " ORDER BY key"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return sql, tuple(args)


def apply_txn(
    conn: sqlite3.Connection, compares: Sequence[Compare], writes: Sequence[Write]
) -> TxnResult:
    """Read the compares and, if they all hold, write at the next revision.

    Runs inside a transaction the caller opened and commits or rolls back.
    A transaction whose writes change nothing (deletes of absent keys, or
    no writes) keeps the revision.

    Complexity:
        O((c + w) log n) for c compares, w writes and n records.
    """
    now = conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
    current: dict[str, Record | None] = {}
    holds = True
    for compare in compares:
        row = conn.execute(
            "SELECT value, revision FROM kv WHERE key = ?", (compare.key.encode(),)
        ).fetchone()
        found = None if row is None else Record(compare.key, bytes(row[0]), row[1])
        current[compare.key] = found
        holds = holds and (0 if row is None else row[1]) == compare.revision
    if not holds:
        return TxnResult(succeeded=False, revision=now, current=current)
    revision = now + 1
    changed = False
    for write in writes:
        key = write.key.encode()
        if type(write) is Put:
            conn.execute(
                "INSERT OR REPLACE INTO kv (key, value, revision) VALUES (?, ?, ?)",
                (key, write.value, revision),
            )
            conn.execute(
                "INSERT INTO feed (revision, key, value) VALUES (?, ?, ?)",
                (revision, key, write.value),
            )
            changed = True
        elif conn.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount:
            conn.execute(
                "INSERT INTO feed (revision, key, value) VALUES (?, ?, NULL)", (revision, key)
            )
            changed = True
    if not changed:
        return TxnResult(succeeded=True, revision=now)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
    return TxnResult(succeeded=True, revision=revision)


def read_feed(conn: sqlite3.Connection, after: int) -> tuple[int, int, list[Change]]:
    """(revision, compaction revision, changes after ``after``) in one read transaction.

    The changes are read only when ``after`` is at or past the compaction
    revision (else the list is empty: the caller refuses the request).

    Complexity:
        O(log h + k) for h kept changes and k returned.
    """
    conn.execute("BEGIN")
    try:
        meta = dict(
            conn.execute(
                "SELECT name, value FROM meta WHERE name IN ('revision', 'compacted')"
            ).fetchall()
        )
        rows = (
            conn.execute(
                "SELECT revision, key, value FROM feed WHERE revision > ? ORDER BY revision, key",
                (after,),
            ).fetchall()
            if after >= meta["compacted"]
            else []
        )
    finally:
        conn.execute("COMMIT")
    feed = [Change(bytes(k).decode(), r, None if v is None else bytes(v)) for r, k, v in rows]
    return meta["revision"], meta["compacted"], feed


def compact_feed(conn: sqlite3.Connection, revision: int, path: str) -> None:
    """Drop the feed up to ``revision`` under ``BEGIN IMMEDIATE``; all or nothing.

    Raises:
        StoreError: ``revision`` is not an int from 0 to the store's
            revision (nothing is written).

    Complexity:
        O(d log h) for d changes dropped out of h.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if type(revision) is not int or not 0 <= revision <= meta["revision"]:
            raise StoreError(
                f"cannot compact at revision {revision!r}: the store is at {meta['revision']}",
                path=path,
            )
        if revision > meta["compacted"]:
            conn.execute("DELETE FROM feed WHERE revision <= ?", (revision,))
            conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is open, keeping the error that got us here.

    Complexity:
        O(1) plus what SQLite undoes.
    """
    if conn.in_transaction:
        # A failing ROLLBACK leaves it to SQLite, which rolls back on its own.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``exc`` (an extended code's low byte), or None.

    Complexity:
        O(1).

    >>> import sqlite3
    >>> error = sqlite3.OperationalError("database is locked")
    >>> error.sqlite_errorcode = 261  # SQLITE_BUSY_RECOVERY
    >>> primary_code(error)
    5
    """
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def passing(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is another process's passing state: nothing changed, try again.

    BUSY and LOCKED: another connection held the file past the busy
    timeout. PROTOCOL: SQLite could not take the WAL index's locks after
    its own retries (another process stopped, or recovering the log, at
    that instant). An ``OperationalError`` without a code counts by its text.

    Complexity:
        O(1).

    >>> import sqlite3
    >>> passing(sqlite3.OperationalError("database is locked"))
    True
    >>> passing(sqlite3.OperationalError("no such table: kv"))
    False
    """
    text = str(exc)
    return primary_code(exc) in _PASSING or (
        isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
    )


_PASSING = frozenset({5, 6, 15})  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_PROTOCOL
