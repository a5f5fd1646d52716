"""Allocators on every backend: the plain class, ``open("memory://")``, SQLite and etcd.

The fixture ``make`` (module-scoped, parametrised) gives a :class:`Backends`
whose ``nodes(config, strategy=...)`` / ``services(config, strategy=...,
rng=...)`` build an allocator of the kind under test, so one allocator test
runs on the plain class and on both durable backends. A test module uses it
with ``make = backends.make`` (ready to move into ``tests/conftest.py``).
SQLite stores use ``synchronous=NORMAL`` here: the same transactions, without
a disk sync per commit, to keep the suite fast. The etcd kind shares ONE
throw-away etcd server for the whole session (each cluster takes a prefix of
its own); it skips with "etcd not found" where no binary is installed.
"""

from __future__ import annotations

import itertools
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from random import Random

import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, NodeCIDRAllocator, ServiceIPAllocator
from dualstack_ipam.durable import Cluster
from dualstack_ipam.store.etcd_server import EtcdServer, etcd_binary

KINDS = ("plain", "memory", "sqlite", "etcd")

_ETCD: list[EtcdServer] = []


def etcd_endpoint(request: pytest.FixtureRequest, folder: Path) -> str:
    """The session's one etcd server, started at the first call, killed when pytest ends."""
    if not _ETCD:
        if etcd_binary() is None:
            pytest.skip("etcd not found on PATH (Debian: apt-get install etcd-server)")
        server = EtcdServer(folder / "etcd")
        server.start()
        _ETCD.append(server)
        request.config.add_cleanup(_stop_etcd)
    return _ETCD[0].endpoint


def _stop_etcd() -> None:
    while _ETCD:
        _ETCD.pop().kill()


class Backends:
    """Builds allocators of one kind: ``plain``, ``memory``, ``sqlite`` or ``etcd``."""

    def __init__(self, kind: str, folder: Path, endpoint: str = "") -> None:
        self.kind, self.folder, self.endpoint = kind, folder, endpoint
        self._count = itertools.count()
        self._open: weakref.WeakSet[Cluster] = weakref.WeakSet()

    @property
    def durable(self) -> bool:
        return self.kind != "plain"

    def url(self) -> str:
        if self.kind == "memory":
            return "memory://"
        if self.kind == "etcd":
            return f"etcd://{self.endpoint}/t/{uuid.uuid4().hex[:12]}"
        return f"sqlite://{self.folder}/store-{next(self._count)}.db?synchronous=NORMAL"

    def cluster(self, config: ClusterConfig, **settings: object) -> Cluster:
        cluster = dualstack_ipam.open(self.url(), config, **settings)  # type: ignore[arg-type]
        self._open.add(cluster)
        return cluster

    def nodes(self, config: ClusterConfig, *, strategy: str = "next-fit") -> NodeCIDRAllocator:
        if not self.durable:
            return NodeCIDRAllocator(config, strategy=strategy)
        return self.cluster(config, node_strategy=strategy).nodes

    def services(
        self, config: ClusterConfig, *, strategy: str = "random", rng: Random | None = None
    ) -> ServiceIPAllocator:
        if not self.durable:
            return ServiceIPAllocator(config, strategy=strategy, rng=rng)
        return self.cluster(config, service_strategy=strategy, rng=rng).services

    def close(self) -> None:
        for cluster in list(self._open):
            cluster.close()


@pytest.fixture(scope="module", params=KINDS)
def make(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backends]:
    """Allocators of each kind in turn (module scope, so Hypothesis tests may use it)."""
    folder = tmp_path_factory.mktemp(f"stores-{request.param}")
    endpoint = etcd_endpoint(request, folder) if request.param == "etcd" else ""
    backends = Backends(request.param, folder, endpoint)
    yield backends
    backends.close()
