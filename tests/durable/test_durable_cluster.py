"""Cluster: the records a mutation writes, the journal, export/import, replay."""

from __future__ import annotations

import copy
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import dualstack_ipam
from dualstack_ipam import (
    AlreadyAllocatedError,
    ClusterConfig,
    ClusterIPTakenError,
    InvalidConfigError,
    NodeCIDRAllocator,
    PoolExhaustedError,
    ServiceIPAllocator,
    SnapshotError,
    StoreError,
)
from dualstack_ipam.durable import Cluster, JournalEntry, document_from_state_file, replay
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import MemoryBackend, TxnLimits

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
TINY = ClusterConfig(
    "10.0.0.0/24,fd00::/120", "10.0.0.32/29", node_mask_ipv4=28, node_mask_ipv6=124
)
DUAL = {"metadata": {"name": "web"}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}


def rows(path: Path) -> dict[str, tuple[bytes, int]]:
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT key, value, revision FROM kv").fetchall()
    return {key.decode(): (value, revision) for key, value, revision in found}


def sqlite_cluster(tmp_path: Path, config: ClusterConfig = SEED, **kw: Any) -> Cluster:
    return dualstack_ipam.open(f"sqlite://{tmp_path}/s.db?synchronous=NORMAL", config, **kw)


# ------------------------------------------------------------ records


def test_a_dual_stack_allocation_is_one_transaction(tmp_path: Path) -> None:
    cluster = sqlite_cluster(tmp_path, service_strategy="sequential")
    cluster.services.allocate_service(DUAL)
    stored = rows(tmp_path / "s.db")
    revision = stored["owner/svc/default/web"][1]
    assert revision == 2
    assert stored["owner/svc/default/web"][0] == (
        b"s4/00000101 s6/" + b"0" * 29 + b"101"
    )  # 10.96.1.1 and fd00:10:96::101, offsets from each range's first address
    assert stored["alloc/s4/00000101"] == (b"default/web", 2)
    assert stored["alloc/s6/" + "0" * 29 + "101"] == (b"default/web", 2)
    (journal,) = [key for key in stored if key.startswith("journal/")]
    assert stored[journal][1] == 2
    cluster.services.release("default/web")
    assert [k for k in rows(tmp_path / "s.db") if not k.startswith("journal/")] == ["config"]


def test_no_op_writes_nothing(tmp_path: Path) -> None:
    cluster = sqlite_cluster(tmp_path)
    cluster.nodes.allocate("a")
    cluster.services.allocate_service(DUAL)
    before = rows(tmp_path / "s.db")
    cluster.nodes.allocate("a")
    cluster.nodes.occupy("a", [str(c) for c in cluster.nodes.get("a") or ()])
    assert cluster.nodes.release("missing") is False
    svc = cluster.services.allocate_service(DUAL)
    cluster.services.update_service(svc, {})
    assert rows(tmp_path / "s.db") == before
    assert len(list(cluster.journal())) == 2


def test_failed_calls_change_nothing(tmp_path: Path) -> None:
    cluster = sqlite_cluster(tmp_path, TINY)
    cluster.nodes.occupy("a", ["10.0.0.0/28"])
    cluster.services.allocate("dns", ip="10.0.0.34")
    before = rows(tmp_path / "s.db")
    with pytest.raises(AlreadyAllocatedError, match="'a'"):
        cluster.nodes.occupy("b", ["10.0.0.0/28", "fd00::/124"])
    with pytest.raises(ClusterIPTakenError, match="'dns'"):
        cluster.services.allocate_service(
            {"metadata": {"name": "x"}, "spec": {"clusterIP": "10.0.0.34"}}
        )
    with pytest.raises(InvalidConfigError):
        cluster.nodes.allocate("")
    for i in range(14):  # 16 subnets, 1 set aside for the Service range, 1 taken
        cluster.nodes.allocate(f"n{i}")
    before = rows(tmp_path / "s.db")
    with pytest.raises(PoolExhaustedError):
        cluster.nodes.allocate("last")
    assert rows(tmp_path / "s.db") == before
    cluster._check_invariants()


def test_keys_of_any_text(tmp_path: Path) -> None:
    cluster = sqlite_cluster(tmp_path)
    names = ["a/b", "%41", "with space", "ünï", "x\udcff", "owner/node/evil"]
    for name in names:
        cluster.nodes.allocate(name)
        cluster.services.allocate(name)
    cluster._check_invariants()
    cluster.close()
    with dualstack_ipam.open(f"sqlite://{tmp_path}/s.db") as again:
        assert list(again.nodes) == sorted(names)
        assert list(again.services) == sorted(names)
        again._check_invariants()


# ------------------------------------------------------------ journal


def test_journal_entries(tmp_path: Path) -> None:
    cluster = sqlite_cluster(tmp_path, actor="tester", service_strategy="sequential")
    start = datetime.now(UTC)
    cluster.nodes.allocate("n1")
    cluster.nodes.occupy("n2", ["10.244.9.0/24"])
    svc = cluster.services.allocate_service({"metadata": {"name": "web"}})
    cluster.services.update_service(svc, {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
    cluster.nodes.release("n1")
    cluster.services.release_service(svc)
    entries = list(cluster.journal())
    assert [(e.op, e.kind, e.key) for e in entries] == [
        ("allocate", "node", "n1"),
        ("occupy", "node", "n2"),
        ("allocate", "service", "default/web"),
        ("update", "service", "default/web"),
        ("release", "node", "n1"),
        ("release", "service", "default/web"),
    ]
    assert entries[0].addresses == ("10.244.0.0/24", "fc00::/64")
    assert entries[3].addresses == ("10.96.1.1", "fd00:10:96::101")
    assert entries[-1].addresses == ()
    assert [e.revision for e in entries] == sorted({e.revision for e in entries})
    assert all(e.actor == "tester" and e.data == {} for e in entries)
    assert all(start <= e.time <= datetime.now(UTC) and e.time.tzinfo is not None for e in entries)
    assert list(cluster.journal(entries[3].revision)) == entries[4:]
    assert entries[0].to_dict()["addresses"] == ["10.244.0.0/24", "fc00::/64"]
    with pytest.raises(InvalidConfigError):
        cluster.journal(-1)


def test_compact_journal(tmp_path: Path) -> None:
    cluster = sqlite_cluster(tmp_path)
    for i in range(30):
        cluster.nodes.allocate(f"n{i}")
    entries = list(cluster.journal())
    assert cluster.compact_journal(entries[19].revision) == 20
    assert list(cluster.journal()) == entries[20:]
    assert cluster.compact_journal(entries[19].revision) == 0
    # Another cluster that lagged behind the compacted feed re-reads whole.
    other = dualstack_ipam.open(f"sqlite://{tmp_path}/s.db")
    assert len(other.nodes) == 30
    cluster.nodes.release("n0")
    cluster.compact_journal(cluster.revision)
    assert len(other.nodes) == 29
    assert "n0" not in other.nodes
    other._check_invariants()
    with pytest.raises(InvalidConfigError):
        cluster.compact_journal(-3)


def test_compaction_in_batches_within_the_limit() -> None:
    backend = MemoryBackend(limits=TxnLimits(max_ops=8))
    cluster = attach(backend, "memory://", SEED)
    for i in range(20):
        cluster.nodes.allocate(f"n{i}")
    assert cluster.compact_journal(cluster.revision) == 20
    assert list(cluster.journal()) == []


def test_replay_reproduces_every_key() -> None:
    cluster = dualstack_ipam.open("memory://", SEED)
    for i in range(6):
        cluster.nodes.allocate(f"n{i}")
        cluster.services.allocate_service({**DUAL, "metadata": {"name": f"s{i}"}})
    cluster.nodes.release("n2")
    cluster.services.release("default/s3")
    copy_ = dualstack_ipam.open("memory://", SEED)
    assert replay(cluster.journal(), copy_) == 14
    assert copy_.export()["nodes"] == cluster.export()["nodes"]
    assert copy_.export()["services"] == cluster.export()["services"]
    assert [(e.op, e.key) for e in copy_.journal()] == [(e.op, e.key) for e in cluster.journal()]
    replay(cluster.journal(), copy_)  # again: the intermediate states come and go
    assert copy_.export()["services"] == cluster.export()["services"]
    odd = JournalEntry(1, datetime.now(UTC), "x", "reserve", "bogus", "r", ())
    with pytest.raises(SnapshotError, match="unknown kind"):
        replay([odd], copy_)
    odd = JournalEntry(1, datetime.now(UTC), "x", "reserve", "reservation", "r", ())
    with pytest.raises(SnapshotError, match="needs data with side"):
        replay([odd], copy_)


# ------------------------------------------------------------ export / import


def test_export_import_round_trip(tmp_path: Path) -> None:
    cluster = dualstack_ipam.open("memory://", SEED, node_strategy="lowest")
    for i in range(5):
        cluster.nodes.allocate(f"n{i}")
        cluster.services.allocate(f"k{i}", family=("IPv4", "IPv6")[i % 2])
    cluster.services.allocate_service(DUAL)
    doc = json.loads(json.dumps(cluster.export()))
    assert doc["kind"] == "dualstack-ipam-store"
    assert doc["version"] == 1
    assert doc["node_strategy"] == "lowest"
    assert doc["revision"] == cluster.revision
    target = dualstack_ipam.open(f"sqlite://{tmp_path}/t.db?synchronous=NORMAL", SEED)
    assert target.import_(doc) == 11
    assert target.export()["nodes"] == doc["nodes"]
    assert target.export()["services"] == doc["services"]
    assert {e.op for e in target.journal()} == {"import"}
    target._check_invariants()
    with pytest.raises(StoreError, match="empty store"):
        target.import_(doc)


def test_import_in_batches_within_the_limit() -> None:
    source = dualstack_ipam.open("memory://", SEED)
    for i in range(40):
        source.services.allocate_service({**DUAL, "metadata": {"name": f"s{i}"}})
    backend = MemoryBackend(limits=TxnLimits(max_ops=16, max_bytes=4000))
    target = attach(backend, "memory://", SEED)
    assert target.import_(source.export()) == 40
    assert target.services.items() == source.services.items()
    assert backend.revision() > 5  # many transactions
    target._check_invariants()


def edit(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda d: [d], SnapshotError, "not a dualstack-ipam-store"),
        (lambda d: edit(d, ["version"], 2), InvalidConfigError, "newer"),
        (lambda d: edit(d, ["version"], "1"), SnapshotError, "version"),
        (lambda d: edit(d, ["config", "node_mask_ipv4"], 25), InvalidConfigError, "not the store"),
        (lambda d: edit(d, ["nodes", "b"], d["nodes"]["a"]), SnapshotError, "held by 'a'"),
        (lambda d: edit(d, ["nodes", "b"], ["10.0.0.32/28"]), SnapshotError, "held twice"),
        (lambda d: edit(d, ["nodes", "b"], ["192.168.0.0/28"]), SnapshotError, "not inside"),
        (lambda d: edit(d, ["nodes", "b"], []), SnapshotError, "non-empty list"),
        (lambda d: edit(d, ["nodes", ""], ["10.0.0.16/28"]), SnapshotError, "bad nodes key"),
        (lambda d: edit(d, ["services", "x"], ["10.0.0.0"]), SnapshotError, "'x'"),
        (lambda d: edit(d, ["services", "x"], ["10.0.0.35", "10.0.0.36"]), SnapshotError, "two"),
        (lambda d: edit(d, ["services"], []), SnapshotError, "mapping"),
    ],
)
def test_bad_documents_write_nothing(change: Any, error: type[Exception], message: str) -> None:
    source = dualstack_ipam.open("memory://", TINY)
    source.nodes.allocate("a")
    source.services.allocate("s")
    target = dualstack_ipam.open("memory://", TINY)
    with pytest.raises(error, match=message):
        target.import_(change(source.export()))
    assert target.export()["nodes"] == {}
    assert target.export()["services"] == {}
    assert list(target.journal()) == []


def test_document_from_the_old_state_file() -> None:
    nodes = NodeCIDRAllocator(SEED, strategy="lowest")
    services = ServiceIPAllocator(SEED, strategy="sequential")
    nodes.allocate("n1")
    services.allocate_service(DUAL)
    old = {
        "kind": "dualstack-ipam-state",
        "version": 1,
        "config": SEED.to_dict(),
        "nodes": nodes.snapshot(),
        "services": services.snapshot(),
    }
    doc = document_from_state_file(json.loads(json.dumps(old)))
    assert doc["node_strategy"] == "lowest"
    assert doc["service_strategy"] == "sequential"
    cluster = dualstack_ipam.open("memory://", SEED, node_strategy="lowest")
    assert cluster.import_(doc) == 2
    assert cluster.nodes.items() == nodes.items()
    assert cluster.services.items() == services.items()
    for bad in (
        {"kind": "x"},
        {**old, "version": 2},
        {**old, "extra": 1},
        {**old, "services": None},
    ):
        with pytest.raises(SnapshotError):
            document_from_state_file(bad)
