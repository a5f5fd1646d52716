"""Several writers on one store: they follow each other and never collide.

A lost race is made on purpose with a real SQLite backend whose ``txn`` lets
another cluster write first (``Racing``): the loser's cache is then stale
exactly between its catch-up and its transaction.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import dualstack_ipam
from dualstack_ipam import (
    AlreadyAllocatedError,
    ClusterConfig,
    ClusterIPTakenError,
    StoreUnavailableError,
)
from dualstack_ipam.durable import Cluster
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import Compare, SQLiteBackend, TxnResult, Write

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
WORKER = str(Path(__file__).with_name("durable_worker.py"))


class Racing(SQLiteBackend):
    """A SQLite store that runs ``before`` (another writer) ahead of some transactions."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.before: list[Callable[[], object]] = []
        self.txns = 0

    def txn(
        self, compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        self.txns += 1
        if self.before:
            self.before.pop(0)()
        return super().txn(compares, writes, unique=unique)


def pair(tmp_path: Path, **settings: Any) -> tuple[Cluster, Cluster, Racing]:
    path = tmp_path / "s.db"
    first = dualstack_ipam.open(f"sqlite://{path}?synchronous=NORMAL", SEED, **settings)
    racing = Racing(path)
    second = attach(racing, str(path))
    return first, second, racing


def test_two_clusters_follow_each_other(tmp_path: Path) -> None:
    one, two, _ = pair(tmp_path)
    one.nodes.allocate("a")
    assert two.nodes.get("a") == one.nodes.get("a")
    two.services.allocate("dns", ip="10.96.0.10")
    assert one.services.owner_of("10.96.0.10") == "dns"
    two.nodes.release("a")
    assert "a" not in one.nodes
    assert len(one.nodes) == 0
    one._check_invariants()
    two._check_invariants()


def test_a_taken_request_names_the_winner(tmp_path: Path) -> None:
    one, two, racing = pair(tmp_path)
    _ = one.services, two.services
    racing.before.append(lambda: one.services.allocate("winner", ip="10.96.0.5"))
    with pytest.raises(AlreadyAllocatedError, match="'winner'"):
        two.services.allocate("loser", ip="10.96.0.5")
    assert racing.txns == 1  # the retry found the owner in the cache: no second txn
    racing.before.append(lambda: one.services.allocate("w2", ip="10.96.0.6"))
    manifest = {"metadata": {"name": "l2"}, "spec": {"clusterIP": "10.96.0.6"}}
    with pytest.raises(ClusterIPTakenError, match="'w2'") as info:
        two.services.allocate_service(manifest)
    assert info.value.field == "spec.clusterIPs[0]"
    racing.before.append(lambda: one.nodes.occupy("winner", ["10.244.7.0/24"]))
    with pytest.raises(AlreadyAllocatedError, match="'winner'"):
        two.nodes.occupy("loser", ["10.244.7.0/24"])
    assert "loser" not in two.services
    assert "loser" not in one.nodes
    two._check_invariants()
    one._check_invariants()


def test_a_lost_dynamic_pick_is_retried(tmp_path: Path) -> None:
    one, two, racing = pair(tmp_path, service_strategy="sequential", node_strategy="lowest")
    _ = one.services, two.services, one.nodes, two.nodes
    racing.before.append(lambda: one.services.allocate("first"))
    got = two.services.allocate("second")
    assert racing.txns == 2
    assert one.services.get("first") != (got,)
    racing.before.append(lambda: one.nodes.allocate("n1"))
    cidrs = two.nodes.allocate("n2")
    assert cidrs != one.nodes.get("n1")
    two._check_invariants()
    one._check_invariants()


def test_the_same_key_changed_meanwhile(tmp_path: Path) -> None:
    one, two, racing = pair(tmp_path)
    _ = two.nodes
    racing.before.append(lambda: one.nodes.allocate("k"))
    assert two.nodes.allocate("k") == one.nodes.get("k")  # idempotent once it sees it
    racing.before.append(lambda: one.nodes.release("k"))
    assert two.nodes.release("k") is False
    assert len(two.nodes) == 0
    two._check_invariants()


def test_losing_every_race_raises_and_writes_nothing(tmp_path: Path) -> None:
    one, two, racing = pair(tmp_path, service_strategy="sequential")
    _ = one.services, two.services
    for i in range(20):
        racing.before.append(functools.partial(one.services.allocate, f"rival-{i}"))
    with pytest.raises(StoreUnavailableError, match="lost their race"):
        two.services.allocate("unlucky")
    assert racing.txns == 8
    assert "unlucky" not in one.services
    assert "unlucky" not in two.services
    assert [e.key for e in one.journal()] == [f"rival-{i}" for i in range(8)]
    two._check_invariants()


def test_threads_of_two_clusters_never_collide(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    clusters = [dualstack_ipam.open(url, SEED) for _ in range(2)]
    acknowledged: dict[str, tuple[Any, ...]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        cluster = clusters[n % 2]
        try:
            for i in range(60):
                acknowledged[f"t{n}-{i}"] = (cluster.services.allocate(f"t{n}-{i}"),)
                acknowledged[f"n{n}-{i}"] = cluster.nodes.allocate(f"n{n}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for cluster in clusters:
        cluster._check_invariants()
        held = dict(cluster.services.items()) | dict(cluster.nodes.items())
        assert acknowledged == held


def test_processes_never_hand_out_an_address_twice(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    dualstack_ipam.open(url, SEED).close()
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, url, f"w{n}", "40"], stdout=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    acknowledged: dict[tuple[str, str], list[str]] = {}
    for worker in workers:
        out, _ = worker.communicate(timeout=300)
        assert worker.returncode == 0
        for line in out.splitlines():
            kind, key, addresses = json.loads(line)
            acknowledged[(kind, key)] = addresses
    with dualstack_ipam.open(url) as cluster:
        cluster._check_invariants()
        stored = {("node", k): [str(c) for c in v] for k, v in cluster.nodes.items()}
        stored |= {("service", k): [str(a) for a in v] for k, v in cluster.services.items()}
        assert stored == {k: v for k, v in acknowledged.items() if v}
        held = [a for addresses in stored.values() for a in addresses]
        assert len(held) == len(set(held))
        assert len(stored) == 4 * (40 + 40 - 8)
        assert {e.actor for e in cluster.journal()} == {"w0", "w1", "w2", "w3"}
