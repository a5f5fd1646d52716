"""A durable side's reconcile keeps its leak counts in the store: separate runs accumulate."""

from __future__ import annotations

from pathlib import Path

import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, InvalidConfigError
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.durable.leaks import read_counts, write_counts
from dualstack_ipam.store import ETCD_DEFAULT_LIMITS, MemoryBackend

CONFIG = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")


def test_two_processes_accumulate_leak_counts(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    with dualstack_ipam.open(url, CONFIG) as cluster:
        cluster.nodes.allocate("gone")
        cluster.services.allocate("default/gone")
        cluster.nodes.allocate("kept")
    for run in (1, 2):  # each run a fresh open, as a CLI command is
        with dualstack_ipam.open(url) as cluster:
            nodes = cluster.nodes.reconcile({"kept": ["10.244.1.0/24"]}, repair=True)
            services = cluster.services.reconcile({}, repair=True)
            assert not nodes.released
            assert not services.released
            assert cluster.nodes._leak_counts == {"gone": run}
            assert cluster.services._leak_counts == {"default/gone": run}
    with dualstack_ipam.open(url) as other, dualstack_ipam.open(url) as cluster:
        assert cluster.nodes.reconcile({"kept": []}, repair=True).released
        assert "gone" not in other.nodes  # the other process follows the release
        assert cluster.services.reconcile({}, repair=True).released
        layout = cluster._sync.sides["nodes"].layout
        assert read_counts(cluster._sync.backend, layout) == {}  # released: count dropped


def test_a_key_back_in_the_truth_resets_its_stored_count(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    with dualstack_ipam.open(url, CONFIG) as cluster:
        cluster.nodes.allocate("flaky")
        cluster.nodes.reconcile({}, repair=True, leak_grace=2)
    with dualstack_ipam.open(url) as cluster:
        held = [str(c) for c in cluster.nodes.get("flaky") or ()]
        assert cluster.nodes.reconcile({"flaky": held}, repair=True).ok
    with dualstack_ipam.open(url) as cluster:
        # A report-only call counts nothing; the repairing one is the first sighting again.
        assert not cluster.nodes.reconcile({}, leak_grace=2).released
        assert not cluster.nodes.reconcile({}, repair=True, leak_grace=2).released
    with dualstack_ipam.open(url) as cluster:
        assert list(cluster.nodes.reconcile({}, repair=True, leak_grace=2).released) == ["flaky"]


def test_a_failed_reconcile_writes_no_counts() -> None:
    cluster = dualstack_ipam.open("memory://", CONFIG)
    cluster.nodes.allocate("gone")
    with pytest.raises(InvalidConfigError):
        cluster.nodes.reconcile({}, repair=True, leak_grace=0)
    layout = cluster._sync.sides["nodes"].layout
    assert read_counts(cluster._sync.backend, layout) == {}


def test_many_counts_are_written_in_batches_within_the_limit() -> None:
    store = MemoryBackend(limits=ETCD_DEFAULT_LIMITS)
    cluster = attach(store, "memory://", CONFIG)
    _ = cluster.nodes
    layout = cluster._sync.sides["nodes"].layout
    after = {f"k{i}": 1 for i in range(300)}
    assert write_counts(store, layout, {}, after) == 300
    assert read_counts(store, layout) == after
    assert write_counts(store, layout, after, {}) == 300
    assert read_counts(store, layout) == {}
