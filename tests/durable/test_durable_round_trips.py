"""What one mutation asks of the store: one transaction, no read before it.

A random-strategy Service side (a short command's partial side) allocating
for a key it has not read does not read the key first: the owner record
compared absent fails if the key exists, and the retry reads it. An error
is raised only after that read. ``Lagging`` is a real SQLite store with a
watch that has delivered nothing (``watched``, as etcd's lags), so the
cache can be stale the way an etcd cache is for a moment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netaddr
import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, PoolExhaustedError
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import Change, SQLiteBackend

SEED = ClusterConfig("10.244.0.0/16", "10.96.0.0/24")


class Lagging(SQLiteBackend):
    """A SQLite store that counts its reads and whose watch delivers nothing."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.gets = 0
        self.feeds = 0

    def get(self, key: str) -> Any:
        self.gets += 1
        return super().get(key)

    def changes(self, after: int) -> tuple[list[Change], int]:
        self.feeds += 1
        return super().changes(after)

    def watched(self, after: int, *, reach: int = 0) -> tuple[list[Change], int]:
        return [], after


def test_an_allocate_reads_nothing_before_its_transaction(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    dualstack_ipam.open(f"sqlite://{path}?synchronous=NORMAL", SEED).close()
    backend = Lagging(path)
    with attach(backend, str(path)) as cluster:
        services = cluster.services  # opening the side reads what it needs
        revision, backend.gets = backend.revision(), 0
        services.allocate("a")
        services.allocate("b")
        assert backend.gets == 0
        assert backend.revision() == revision + 2
        cluster._check_invariants()


def test_an_existing_key_is_read_after_its_compare_failed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with dualstack_ipam.open(f"sqlite://{path}?synchronous=NORMAL", SEED) as other:
        held = other.services.allocate("a")
    backend = Lagging(path)
    with attach(backend, str(path)) as cluster:
        services = cluster.services
        revision, backend.gets = backend.revision(), 0
        assert services.allocate("a") == held
        assert backend.revision() == revision  # nothing written
        assert backend.gets == 1
        cluster._check_invariants()


def test_an_error_is_raised_only_after_reading_the_key(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    dualstack_ipam.open(f"sqlite://{path}?synchronous=NORMAL", SEED).close()
    backend = Lagging(path)
    with attach(backend, str(path)) as cluster, dualstack_ipam.open(f"sqlite://{path}") as other:
        taken = cluster.services.allocate("old")
        other.services.release("old")
        assert other.services.allocate("new", ip=taken) == taken
        # The cache still holds "old" at that address (its watch lags): the
        # allocation would raise AlreadyAllocatedError naming "old", but the
        # key's own record is read first, and the feed up to it.
        assert cluster.services.allocate("new", ip=taken) == taken
        assert cluster.services.owner_of(taken) == "new"
        cluster._check_invariants()


def test_an_error_from_a_lagging_cache_is_checked_against_the_store(tmp_path: Path) -> None:
    # The first try trusts the watch; another process freed a CIDR the watch
    # has not delivered: "exhausted" would rest on the cache alone. The
    # error makes the side read the feed and try again.
    path = tmp_path / "s.db"
    config = ClusterConfig("10.244.0.0/23")  # two /24 node CIDRs
    dualstack_ipam.open(f"sqlite://{path}?synchronous=NORMAL", config).close()
    backend = Lagging(path)
    with attach(backend, str(path)) as cluster, dualstack_ipam.open(f"sqlite://{path}") as other:
        cluster.nodes.allocate("n1")
        cluster.nodes.allocate("n2")
        other.nodes.release("n1")
        assert cluster.nodes.allocate("n3") == (netaddr.IPNetwork("10.244.0.0/24"),)
        # Truly full: the store says so too, and the error stands.
        with pytest.raises(PoolExhaustedError):
            cluster.nodes.allocate("n4")
        assert "n4" not in cluster.nodes
        cluster._check_invariants()


def test_stats_totals_count_this_process_calls_not_what_it_loaded(tmp_path: Path) -> None:
    # api-durable.md: "totals count this process's calls". Opening a store
    # loads its keys into the cache, and following another process applies
    # its changes: neither is an allocation or a release of this process.
    url = f"sqlite://{tmp_path / 's.db'}?synchronous=NORMAL"
    config = ClusterConfig("10.244.0.0/16,fc00::/48", "10.96.0.0/24,fd00::/112")
    with dualstack_ipam.open(url, config) as first:
        first.nodes.allocate("old")
        first.services.allocate("old")
    with dualstack_ipam.open(url) as cluster, dualstack_ipam.open(url) as other:
        assert cluster.nodes.stats()["totals"]["allocations"] == 0
        assert cluster.services.stats()["totals"]["allocations"] == 0
        other.nodes.allocate("theirs")
        other.nodes.release("old")
        cluster.nodes.allocate("mine")  # dual-stack: two CIDRs
        cluster.services.release("old")
        nodes, services = cluster.nodes.stats(), cluster.services.stats()
        assert nodes["totals"]["allocations"] == 2
        assert nodes["totals"]["releases"] == 0
        assert nodes["IPv4"]["used"] == 2  # the state is the store's: mine and theirs
        assert services["totals"]["releases"] == 1
        assert services["totals"]["allocations"] == 0
