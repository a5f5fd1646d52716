"""Fixtures of the etcd tests: real etcd servers on loopback, one per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dualstack_ipam.store.etcd import EtcdBackend
from dualstack_ipam.store.etcd_server import EtcdServer, etcd_binary


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A fresh one-member etcd (10 / 100 ms timing), killed at teardown."""
    if etcd_binary() is None:
        pytest.skip("etcd not found on PATH (Debian: apt-get install etcd-server)")
    with EtcdServer(tmp_path / "m0") as server:
        server.start()
        yield server


@pytest.fixture(scope="session")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One etcd for the session, for Hypothesis tests (each example takes a new prefix)."""
    if etcd_binary() is None:
        pytest.skip("etcd not found on PATH (Debian: apt-get install etcd-server)")
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "m0") as server:
        server.start()
        yield server.endpoint


@pytest.fixture
def make(etcd: EtcdServer) -> Iterator[Callable[..., EtcdBackend]]:
    """Backends on the server, one prefix per test unless given; closed at teardown."""
    opened: list[EtcdBackend] = []
    default = f"t/{uuid.uuid4().hex[:8]}"

    def make_backend(prefix: str = default, **kwargs: Any) -> EtcdBackend:
        kwargs.setdefault("timeout", 2.0)
        backend = EtcdBackend(etcd.endpoint, prefix, **kwargs)
        opened.append(backend)
        return backend

    yield make_backend
    for backend in opened:
        backend.close()
