"""Opening SQLite store files: bad paths, foreign and corrupt files, versions.

Every refusal must leave the file byte for byte as it was and create nothing
beside it; a FIFO must not block.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from dualstack_ipam import InvalidConfigError, StoreError, StoreUnavailableError
from dualstack_ipam.store import FORMAT_VERSION, Put, Record, SQLiteBackend, migrate
from dualstack_ipam.store.sqlite_file import APPLICATION_ID


def listing(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` with its bytes."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_new_store_uses_wal_full_sync_and_our_application_id(tmp_path: Path) -> None:
    with SQLiteBackend(tmp_path / "s.db") as store:
        store.txn([], [Put("a", b"1")])
        conn = sqlite3.connect(tmp_path / "s.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        version = conn.execute("SELECT value FROM meta WHERE name='format_version'").fetchone()
        assert version[0] == FORMAT_VERSION
        conn.close()
        # synchronous is per connection: read the backend's own.
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert {p.name for p in tmp_path.iterdir()} <= {"s.db", "s.db-wal", "s.db-shm"}


def test_normal_synchronous_is_accepted_and_set(tmp_path: Path) -> None:
    with SQLiteBackend(tmp_path / "s.db", synchronous="normal") as store:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert store.synchronous == "NORMAL"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"synchronous": "OFF"}, "synchronous must be one of"),
        ({"synchronous": 2}, "synchronous must be one of"),
        ({"busy_timeout_ms": -1}, "busy_timeout_ms"),
        ({"busy_timeout_ms": 1.5}, "busy_timeout_ms"),
    ],
)
def test_bad_settings_create_nothing(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        SQLiteBackend(tmp_path / "s.db", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["", " ", "\x00x", None, 5, b"s.db"])
def test_empty_or_non_text_paths_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: object
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidConfigError) as caught:
        SQLiteBackend(path)  # type: ignore[arg-type]
    assert repr(path) in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    assert list(tmp_path.parent.glob("*.db*")) == []


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="is a directory"):
        SQLiteBackend(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            SQLiteBackend(fifo)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(30)  # a generous bound on a hang, not a timing assertion
    assert not thread.is_alive(), "opening a FIFO blocked"
    assert isinstance(outcome[0], InvalidConfigError)
    assert "not a regular file" in str(outcome[0])
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.db"]


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="does not exist"):
        SQLiteBackend(tmp_path / "no" / "s.db")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [b'{"version": 1}\n', b"SQLite format", b"\x00" * 4096],
    ids=["json", "short-header", "zeros"],
)
def test_a_non_sqlite_file_is_a_store_error_and_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a SQLite database") as caught:
        SQLiteBackend(path)
    assert caught.value.path == str(path)
    assert listing(tmp_path) == {"state.db": content}


def test_a_foreign_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO people VALUES ('ada')")
    conn.commit()
    conn.close()
    before = listing(tmp_path)
    with pytest.raises(StoreError, match="another program") as caught:
        SQLiteBackend(path)
    assert "people" in str(caught.value)
    assert str(path) in str(caught.value)
    assert listing(tmp_path) == before


def test_a_corrupt_store_is_a_store_error_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteBackend(path) as store:
        store.txn([], [Put("a", b"1")])
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # the schema page, after the header
    path.write_bytes(bytes(data))
    before = listing(tmp_path)
    with pytest.raises(StoreError) as caught:
        SQLiteBackend(path)
    assert str(path) in str(caught.value)
    assert not isinstance(caught.value, InvalidConfigError)
    assert listing(tmp_path) == before


def test_an_empty_existing_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch()
    with SQLiteBackend(path) as store:
        assert store.txn([], [Put("a", b"1")]).succeeded
    with SQLiteBackend(path) as store:
        assert store.get("a") == Record("a", b"1", 1)


def set_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'format_version'", (version,))
    conn.commit()
    conn.close()


def test_a_newer_format_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteBackend(path).close()
    set_version(path, FORMAT_VERSION + 1)
    before = listing(tmp_path)
    with pytest.raises(InvalidConfigError) as caught:
        SQLiteBackend(path)
    message = str(caught.value)
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert f"version {FORMAT_VERSION} that this" in message
    assert listing(tmp_path) == before
    with pytest.raises(InvalidConfigError, match="newer"):
        migrate(path)


def test_an_older_format_points_to_migrate_and_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteBackend(path).close()
    set_version(path, FORMAT_VERSION - 1)
    before = listing(tmp_path)
    with pytest.raises(InvalidConfigError, match="dualstack-ipam migrate"):
        SQLiteBackend(path)
    assert listing(tmp_path) == before
    # Format 1 is the first: there is no step from 0, and migrate says so.
    with pytest.raises(StoreError, match="no migration from format version 0"):
        migrate(path)


def test_migrate_on_a_current_store_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteBackend(path) as store:
        store.txn([], [Put("a", b"1")])
    assert migrate(path) == (FORMAT_VERSION, FORMAT_VERSION)
    with SQLiteBackend(path) as store:
        assert store.get("a") == Record("a", b"1", 1)
    with pytest.raises(InvalidConfigError, match="does not exist"):
        migrate(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_a_lock_held_past_the_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteBackend(path, busy_timeout_ms=50) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailableError, match="locked"):
                store.txn([], [Put("a", b"1")])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.get("a") is None
        assert store.txn([], [Put("a", b"1")]).succeeded


def test_a_backend_refuses_use_in_a_forked_child(tmp_path: Path) -> None:
    store = SQLiteBackend(tmp_path / "s.db")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            store.get("a")
            os.write(write, b"used")
        except StoreError as exc:
            os.write(write, b"refused" if "open it again" in str(exc) else b"other")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"refused"
    os.close(read)
    assert store.get("a") is None  # the parent's connection still works
    store.close()


def test_a_missing_store_beside_its_log_is_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    (tmp_path / "s.db-wal").write_bytes(b"\x37\x7f\x06\x82" + b"\x00" * 28)
    before = listing(tmp_path)
    with pytest.raises(StoreError, match="log"):
        SQLiteBackend(path)
    assert listing(tmp_path) == before
