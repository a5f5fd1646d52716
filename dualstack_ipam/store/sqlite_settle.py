"""Settling a SQLite store's log when it is opened: one write.

Why the settling write: in WAL mode a commit is durable once its frames are
in the ``-wal`` file, and visible once the writer has updated the shared
index (``-shm``) afterwards; with ``synchronous=FULL`` the ``fsync`` lies
between the two. A writer killed (SIGKILL) in that window leaves a
transaction nobody sees, which the next writer overwrites, or which SQLite's
recovery publishes *later* (when the last process with the file open dies
and the next one rebuilds the index from the log). A process that opened
the store after the crash could then read a state, answer from it, and see
the dead process's change appear afterwards: the SIGKILL drill
(``tests/cli_drill``) met it as an ``allocate-node`` that exited 0 on a node
whose killed ``release-node`` showed up later. Measured with plain
``sqlite3`` (``tests/store/test_sqlite_settle.py`` drives the same
sequence): 88 of 100 killed writers were published later; with a write
after the crash and before the read, 0 of 100. The write appends after the
last published frame, so a half-published transaction is overwritten (its
leftover frames fail the log's checksum chain): what a process reads after
opening is final with respect to every process that died before it opened.
"""

from __future__ import annotations

import random
import sqlite3
import time

from dualstack_ipam.store.sqlite_statements import passing, primary_code, rollback

__all__ = ["SETTLED", "settle"]

SETTLED = "settled"
"""The ``meta`` row every opening connection increments (see :func:`settle`)."""

_UNWRITABLE = frozenset({8, 13})  # SQLITE_READONLY, SQLITE_FULL: open unsettled


def settle(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Decide every half-published transaction of a killed writer: one write.

    Increments the ``meta`` row ``settled`` under ``BEGIN IMMEDIATE``. The
    write lock is polled every millisecond or so for up to
    ``busy_timeout_ms`` rather than through SQLite's busy handler, whose
    waits grow to 100 ms: a process writing in a loop frees the lock for
    microseconds between its commits, and the coarse waits would miss them
    until the timeout.

    Where the write cannot be made, the store opens unsettled rather than
    not at all (``show`` and ``export`` matter most then): a store this
    process may only read (its writer may be another user's process: what
    this process reads then carries no such promise), and a full disk
    (``SQLITE_FULL``). Any other failure is raised.

    Raises:
        sqlite3.Error: the lock stayed busy past the timeout, or SQLite
            failed (nothing written).

    Complexity:
        O(1): one row, one commit (plus the waits for the lock).

    >>> import os, sqlite3, tempfile
    >>> from dualstack_ipam.store import SQLiteBackend
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "s.db")
    >>> SQLiteBackend(path).close()  # opening settled once
    >>> conn = sqlite3.connect(path, isolation_level=None)
    >>> settle(conn, 1000)
    >>> conn.execute("SELECT value FROM meta WHERE name = ?", (SETTLED,)).fetchone()
    (2,)
    >>> conn.close(); folder.cleanup()
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.Error as exc:
                if primary_code(exc) in _UNWRITABLE:
                    return
                if not passing(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(random.uniform(0.0002, 0.002))
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    try:
        conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1",
            (SETTLED,),
        )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback(conn)
        if primary_code(exc) not in _UNWRITABLE:
            raise
    except BaseException:
        rollback(conn)
        raise
