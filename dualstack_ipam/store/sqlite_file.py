"""Opening a SQLite store file safely: the path, the file, the format version.

Everything here happens before the store is used, and nothing is written
until the file is known to be a store of ours (or a new, empty file):

1. the path is checked with ``os.stat`` before SQLite sees it, so an empty
   path, a directory or a FIFO is an ``InvalidConfigError`` that neither
   blocks nor creates anything;
2. an existing file must start with SQLite's header, else ``StoreError``
   (SQLite is never asked to open it);
3. the database must carry our ``application_id`` and ``meta`` table, or be
   empty; a foreign or corrupt database is a ``StoreError``, left untouched;
4. the format version must be this release's: a newer one is refused naming
   both versions, an older one points to ``dualstack-ipam migrate``.

Then WAL mode, the busy timeout and the ``synchronous`` level are set, and
the opening connection *settles* the log
(:func:`~dualstack_ipam.store.sqlite_settle.settle`): one small write that
decides every transaction a killed process left half-published.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import urllib.parse
from collections.abc import Callable
from typing import Any

from dualstack_ipam.errors import InvalidConfigError, StoreError, StoreUnavailableError
from dualstack_ipam.store.sqlite_settle import SETTLED, settle
from dualstack_ipam.store.sqlite_statements import passing

__all__ = [
    "APPLICATION_ID",
    "FORMAT_VERSION",
    "SETTLED",
    "SYNCHRONOUS_LEVELS",
    "connect",
    "migrate",
    "settle",
]

FORMAT_VERSION = 1
"""The store format this release reads and writes."""

APPLICATION_ID = 0x44534950  # "DSIP": marks the file as ours in SQLite's header
"""The ``PRAGMA application_id`` of every dualstack_ipam store file."""

SYNCHRONOUS_LEVELS = ("FULL", "EXTRA", "NORMAL")
"""Accepted ``synchronous`` settings (OFF can corrupt on power loss: refused)."""

_HEADER = b"SQLite format 3\x00"

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, revision INTEGER NOT NULL)"
    " WITHOUT ROWID",
    # The change feed: one row per key written by a transaction; value NULL
    # for a delete. Keyed by (revision, key), so a catch-up is a range read.
    "CREATE TABLE feed (revision INTEGER NOT NULL, key BLOB NOT NULL, value BLOB,"
    " PRIMARY KEY (revision, key)) WITHOUT ROWID",
)

# Steps from format version v to v + 1. Version 1 is the first format, so
# there is nothing to migrate yet; a step is added with each format change.
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def check_path(path: Any) -> tuple[str, bool]:
    """Check a store path without opening it: (absolute path, exists).

    Raises:
        InvalidConfigError: not a str or path object, empty, a directory, a
            FIFO or another non-regular file, or a missing parent folder.
        StoreError: the file is not SQLite, or it is missing but its WAL
            log is not.

    Complexity:
        O(1) system calls.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidConfigError(f"a store path must be a str or path, got {path!r}", value=path)
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise InvalidConfigError(
            f"a store path must be a non-empty file name, got {path!r}", value=path
        )
    full = os.path.abspath(text)
    try:
        info = os.stat(full)
    except FileNotFoundError:
        parent = os.path.dirname(full)
        if not os.path.isdir(parent):
            raise InvalidConfigError(
                f"store path {text!r}: the folder {parent!r} does not exist", value=path
            ) from None
        if os.path.lexists(full + "-wal"):
            # SQLite would replay a deleted database's log into the new file.
            raise StoreError(
                f"store file {text!r} is missing but its log {text + '-wal'!r} is there; "
                "restore the database beside it or move the log away",
                path=text,
            ) from None
        return full, False
    except OSError as exc:
        raise InvalidConfigError(f"store path {text!r}: {exc.strerror}", value=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidConfigError(f"store path {text!r} is a directory", value=path)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidConfigError(
            f"store path {text!r} is not a regular file (a FIFO, socket or device)", value=path
        )
    if info.st_size:
        _check_header(full, text)
    return full, True


def _check_header(full: str, shown: str) -> None:
    try:
        with open(full, "rb") as file:
            head = file.read(len(_HEADER))
    except OSError as exc:
        message = f"store file {shown!r} cannot be read: {exc.strerror}"
        raise StoreError(message, path=shown) from None
    if head != _HEADER:
        raise StoreError(f"store file {shown!r} is not a SQLite database", path=shown)


def connect(
    path: Any, *, synchronous: str, busy_timeout_ms: int, allow_older: bool = False
) -> tuple[sqlite3.Connection, str, int]:
    """Open (or create) the store at ``path``: (connection, shown path, version).

    Raises:
        InvalidConfigError: a bad path or setting, or a format version other
            than this release's (newer: refused; older: needs ``migrate``,
            unless ``allow_older``).
        StoreError: not a SQLite file, a foreign or corrupt database.
        StoreUnavailableError: another process held the file past the busy
            timeout.

    Complexity:
        O(1) queries.
    """
    level = synchronous.upper() if isinstance(synchronous, str) else synchronous
    if level not in SYNCHRONOUS_LEVELS:
        raise InvalidConfigError(
            f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, got {synchronous!r}",
            value=synchronous,
        )
    if type(busy_timeout_ms) is not int or busy_timeout_ms < 0:
        raise InvalidConfigError(
            f"busy_timeout_ms must be an int >= 0, got {busy_timeout_ms!r}", value=busy_timeout_ms
        )
    full, exists = check_path(path)
    shown = os.fspath(path)
    mode = "rw" if exists else "rwc"
    uri = f"file:{urllib.parse.quote(full)}?mode={mode}"
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN / COMMIT ourselves
            check_same_thread=False,  # the backend serialises threads with a lock
        )
    except sqlite3.Error as exc:
        raise StoreError(f"store file {shown!r} cannot be opened: {exc}", path=shown) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        version = _open_or_create(conn, shown)
        _check_version(version, shown, allow_older)
        mode_set = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode_set).lower() != "wal":
            raise StoreError(
                f"store file {shown!r}: SQLite refused WAL mode ({mode_set})", path=shown
            )
        conn.execute(f"PRAGMA synchronous = {level}")
        if version == FORMAT_VERSION:
            # An older store is opened only by ``migrate``, whose steps are
            # writes (they settle the log) and which writes nothing when it
            # has no step to run.
            settle(conn, busy_timeout_ms)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise sqlite_error(exc, shown) from None
        raise
    return conn, shown, version


def _open_or_create(conn: sqlite3.Connection, shown: str) -> int:
    """Our format version, after creating the schema in an empty database."""
    app_id, tables = _identify(conn)
    if app_id == 0 and not tables:
        # WAL before the schema, so that creating it leaves no rollback
        # journal behind if the process dies mid-way.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created the store since we looked.
            app_id, tables = _identify(conn)
            if app_id == 0 and not tables:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (name, value) VALUES (?, ?)",
                    [("format_version", FORMAT_VERSION), ("revision", 0), ("compacted", 0)],
                )
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                app_id, tables = APPLICATION_ID, {"meta", "kv", "feed"}
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    if app_id != APPLICATION_ID or "meta" not in tables:
        raise StoreError(
            f"store file {shown!r} is a SQLite database of another program "
            f"(application_id {app_id}, tables {sorted(tables)!r}); it was left untouched",
            path=shown,
        )
    row = conn.execute("SELECT value FROM meta WHERE name = 'format_version'").fetchone()
    if row is None or type(row[0]) is not int:
        raise StoreError(f"store file {shown!r} has no format version", path=shown)
    return int(row[0])


def _identify(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return int(app_id), tables


def _check_version(version: int, shown: str, allow_older: bool) -> None:
    if version > FORMAT_VERSION:
        raise InvalidConfigError(
            f"store {shown!r} has format version {version}, newer than version "
            f"{FORMAT_VERSION} that this dualstack_ipam reads; upgrade dualstack_ipam",
            value=version,
        )
    if version < FORMAT_VERSION and not allow_older:
        raise InvalidConfigError(
            f"store {shown!r} has format version {version}, older than version "
            f"{FORMAT_VERSION}; run `dualstack-ipam migrate` on it first (nothing was changed)",
            value=version,
        )


def sqlite_error(exc: sqlite3.Error, shown: str) -> StoreError:
    """The store error for a SQLite failure on ``shown``.

    Complexity:
        O(1).
    """
    text = str(exc)
    if passing(exc):
        return StoreUnavailableError(
            f"store file {shown!r} stayed locked by another process past the busy timeout: {text}",
            path=shown,
        )
    return StoreError(f"store file {shown!r}: {text}", path=shown)


def migrate(path: Any) -> tuple[int, int]:
    """Bring the store at ``path`` to this release's format version.

    Each step runs in one transaction with the version bump, so a migration
    interrupted at any instant leaves a store of the old or the new version.

    Args:
        path: an existing store file.

    Returns:
        (version before, version after); equal when there was nothing to do.

    Raises:
        InvalidConfigError: a bad path, or a store newer than this release.
        StoreError: not a store, or no migration exists from its version.

    Complexity:
        O(n) for n records, in the worst case of a step that rewrites them.

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> from dualstack_ipam.store import SQLiteBackend
    >>> SQLiteBackend(os.path.join(folder.name, "s.db")).close()
    >>> migrate(os.path.join(folder.name, "s.db"))
    (1, 1)
    >>> folder.cleanup()
    """
    if not check_path(path)[1]:
        raise InvalidConfigError(f"store path {os.fspath(path)!r} does not exist", value=path)
    conn, shown, before = connect(path, synchronous="FULL", busy_timeout_ms=5000, allow_older=True)
    try:
        version = before
        while version < FORMAT_VERSION:
            step = _MIGRATIONS.get(version)
            if step is None:
                raise StoreError(
                    f"store {shown!r}: no migration from format version {version}", path=shown
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                step(conn)
                conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'format_version'", (version + 1,)
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            version += 1
    except sqlite3.Error as exc:
        raise sqlite_error(exc, shown) from None
    finally:
        conn.close()
    return before, version
