"""The short-command path: a random-strategy Service side reads only what a call needs.

A cluster opened on a store that already holds Services does not read them
all for one mutation: it reads the key's own owner record, probes a random
address with a create-if-absent transaction, and learns the holder of an
address it lost. A call that needs every key (``len``, ``items``, counts)
reads the side whole first. ``Counting`` is a real SQLite store that counts
the whole-prefix reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

import pytest

import dualstack_ipam
from dualstack_ipam import (
    AlreadyAllocatedError,
    ClusterConfig,
    ClusterIPTakenError,
    PoolExhaustedError,
)
from dualstack_ipam.durable import Cluster
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import SQLiteBackend

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
SMALL = ClusterConfig("10.244.0.0/16", "10.96.0.0/27")  # 30 usable addresses


class Counting(SQLiteBackend):
    """A SQLite store that counts the prefix reads of Service owner records."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.scans = 0
        self.lost = 0
        self.before: list[Callable[[], object]] = []

    def txn(self, compares: Any, writes: Any, *, unique: str | None = None) -> Any:
        if self.before:
            self.before.pop(0)()
        result = super().txn(compares, writes, unique=unique)
        self.lost += not result.succeeded
        return result

    def get_prefix(self, prefix: str, *, start: str = "", limit: int | None = None) -> Any:
        if prefix.startswith("owner/svc/"):
            self.scans += 1
        return super().get_prefix(prefix, start=start, limit=limit)


def populated(tmp_path: Path, config: ClusterConfig, count: int) -> Path:
    path = tmp_path / "s.db"
    with dualstack_ipam.open(f"sqlite://{path}?synchronous=NORMAL", config) as cluster:
        for i in range(count):
            cluster.services.allocate(f"old-{i}")
    return path


def reopen(path: Path, seed: int = 0) -> tuple[Cluster, Counting]:
    backend = Counting(path)
    return attach(backend, str(path), rng=Random(seed)), backend


def test_one_mutation_reads_only_its_key(tmp_path: Path) -> None:
    path = populated(tmp_path, SEED, 50)
    cluster, backend = reopen(path)
    svc = cluster.services.allocate_service({"metadata": {"name": "new"}})
    assert cluster.services.get("old-3") is not None
    assert "old-4" in cluster.services
    old = cluster.services.get("old-7")
    assert old is not None
    assert cluster.services.allocate("old-7") == old[0]
    assert cluster.services.release("old-8") is True
    assert backend.scans == 0
    assert len(cluster.services) == 50  # a whole read, once
    assert backend.scans == 1
    held = cluster.services.get("default/new")
    assert held is not None
    assert [str(address) for address in held] == svc["spec"]["clusterIPs"]
    cluster._check_invariants()


def test_an_existing_key_is_idempotent_without_a_write(tmp_path: Path) -> None:
    path = populated(tmp_path, SEED, 5)
    cluster, backend = reopen(path)
    before = backend.revision()
    held = dualstack_ipam.open(f"sqlite://{path}").services.get("old-2")
    assert held is not None
    assert cluster.services.allocate("old-2") == held[0]
    assert backend.revision() == before


def test_a_requested_address_held_before_opening_names_its_owner(tmp_path: Path) -> None:
    path = populated(tmp_path, SEED, 3)
    owner = dualstack_ipam.open(f"sqlite://{path}")
    taken = owner.services.get("old-1")
    assert taken is not None
    cluster, backend = reopen(path)
    with pytest.raises(AlreadyAllocatedError, match="'old-1'"):
        cluster.services.allocate("x", ip=taken[0])
    manifest = {"metadata": {"name": "y"}, "spec": {"clusterIP": str(taken[0])}}
    with pytest.raises(ClusterIPTakenError, match="'old-1'"):
        cluster.services.allocate_service(manifest)
    assert backend.scans == 0
    assert "x" not in owner.services
    cluster._check_invariants()


def test_probing_a_busy_range_learns_and_then_reads_whole(tmp_path: Path) -> None:
    path = populated(tmp_path, SMALL, 27)  # 3 of 30 left
    lost = 0
    for seed in range(6):
        cluster, backend = reopen(path, seed)
        got = cluster.services.allocate(f"new-{seed}")
        lost += backend.lost
        assert backend.lost <= 3  # then it read the range whole, and could not lose
        assert cluster.services.owner_of(got) == f"new-{seed}"
        cluster._check_invariants()
        cluster.services.release(f"new-{seed}")
        cluster.close()
    assert lost > 0  # the probes did hit taken addresses


def test_a_full_range_is_exhausted_after_reading_it_whole(tmp_path: Path) -> None:
    path = populated(tmp_path, SMALL, 30)
    cluster, backend = reopen(path)
    before = backend.revision()
    with pytest.raises(PoolExhaustedError):
        cluster.services.allocate("one-too-many")
    assert backend.revision() == before
    assert backend.scans == 1
    cluster._check_invariants()


def test_other_strategies_read_the_side_whole(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with dualstack_ipam.open(f"sqlite://{path}", SEED, service_strategy="sequential") as c:
        c.services.allocate("a")
    cluster, backend = reopen(path)
    cluster.services.allocate("b")
    assert backend.scans == 1


def test_a_lost_probe_learns_the_winner_after_what_came_before(tmp_path: Path) -> None:
    # The winner took the probed IPv4 address and the IPv6 address that a key
    # the partial cache knows released just before: the release must be
    # applied before the winner's record, or the cache would see one address
    # held twice.
    config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/29,fd00:10:96::/125")
    path = tmp_path / "s.db"
    one = dualstack_ipam.open(f"sqlite://{path}?synchronous=NORMAL", config)
    dual = {"spec": {"ipFamilyPolicy": "RequireDualStack"}}
    for i in range(5):
        one.services.allocate_service({**dual, "metadata": {"name": f"old-{i}"}})
    held = {str(ip) for _, ips in one.services.items() for ip in ips}
    (free,) = {f"10.96.0.{i}" for i in range(1, 7)} - held
    old0 = one.services.get("default/old-0")
    assert old0 is not None
    cluster, backend = reopen(path)
    for i in range(5):
        assert cluster.services.get(f"default/old-{i}") is not None  # the cache knows them

    def winner() -> None:
        one.services.release("default/old-0")
        ips = [free, str(old0[1])]
        spec = {"ipFamilyPolicy": "RequireDualStack", "clusterIP": ips[0], "clusterIPs": ips}
        one.services.allocate_service({"metadata": {"name": "c"}, "spec": spec})

    backend.before.append(winner)
    assert cluster.services.allocate("d", family="IPv4") == old0[0]
    assert backend.lost == 1
    assert backend.scans == 0
    cluster._check_invariants()
