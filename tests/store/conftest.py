"""Fixtures of the store tests: every backend, on real files and a real etcd where durable."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dualstack_ipam.store import Backend, MemoryBackend, SQLiteBackend
from dualstack_ipam.store.etcd_server import EtcdServer, etcd_binary

BACKENDS = ("memory", "sqlite", "etcd")


@pytest.fixture(scope="session")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One etcd server for the session (each test uses a prefix of its own)."""
    if etcd_binary() is None:
        pytest.skip("etcd not found on PATH (Debian: apt-get install etcd-server)")
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "m0") as server:
        server.start()
        yield server.endpoint


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
    """A factory of backends; each call on a durable param reopens the same store."""
    opened: list[Backend] = []
    memory = MemoryBackend()
    endpoint = request.getfixturevalue("etcd_endpoint") if request.param == "etcd" else ""
    prefix = f"test/{uuid.uuid4().hex}"

    def make() -> Backend:
        backend: Backend
        if request.param == "memory":
            return memory
        if request.param == "etcd":
            from dualstack_ipam.store.etcd import EtcdBackend

            # A long feed wait: nothing else writes to this etcd during a test,
            # so the watch always delivers and no sync point shifts revisions.
            backend = EtcdBackend(endpoint, prefix, timeout=5.0, feed_wait=10.0)
        else:
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
