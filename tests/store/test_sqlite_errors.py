"""Which SQLite failures are passing (StoreUnavailableError) and which are not."""

from __future__ import annotations

import sqlite3

import pytest

from dualstack_ipam.errors import StoreError, StoreUnavailableError
from dualstack_ipam.store.sqlite_file import sqlite_error


def _error(text: str, code: int) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("database is locked", 5),  # SQLITE_BUSY
        ("database is locked", 517),  # SQLITE_BUSY_SNAPSHOT (extended)
        ("database table is locked", 6),  # SQLITE_LOCKED
        # The drill met this one: a process stopped (SIGSTOP) while it held the
        # WAL index's lock makes an opener give up with SQLITE_PROTOCOL.
        ("locking protocol", 15),
    ],
)
def test_passing_states_are_unavailable(text: str, code: int) -> None:
    error = sqlite_error(_error(text, code), "ipam.db")
    assert isinstance(error, StoreUnavailableError)
    assert "ipam.db" in str(error)
    assert text in str(error)


def test_other_failures_are_store_errors() -> None:
    error = sqlite_error(_error("file is not a database", 26), "ipam.db")
    assert type(error) is StoreError
    assert "file is not a database" in str(error)
