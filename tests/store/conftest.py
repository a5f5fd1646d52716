"""Fixtures of the store tests: every backend, on real files where durable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dualstack_ipam.store import Backend, MemoryBackend, SQLiteBackend

BACKENDS = ("memory", "sqlite")


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
    """A factory of backends; each call on a SQLite param reopens the same file."""
    opened: list[Backend] = []
    memory = MemoryBackend()

    def make() -> Backend:
        if request.param == "memory":
            return memory
        backend = SQLiteBackend(tmp_path / "store.db")
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


@pytest.fixture
def backend(make_backend: Callable[[], Backend]) -> Backend:
    """One backend of each kind."""
    return make_backend()
