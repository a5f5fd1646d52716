"""The release cooldown on a durable cluster: stored release times that every process honours."""

from __future__ import annotations

from pathlib import Path

import netaddr
import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, InvalidConfigError, PoolExhaustedError
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import MemoryBackend

# Four /26 node subnets (no Service range) and a Service range of 6 usable addresses.
NODES = ClusterConfig("10.0.0.0/24", node_mask_ipv4=26)
SERVICES = ClusterConfig("10.0.0.0/24", "10.96.0.0/29", node_mask_ipv4=26)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_cooldown_is_stored_at_creation_and_checked(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    with dualstack_ipam.open(url, NODES, cooldown=30) as cluster:
        assert cluster.settings["cooldown"] == 30
    with dualstack_ipam.open(url) as cluster:
        assert cluster.settings["cooldown"] == 30
    with pytest.raises(InvalidConfigError, match="cooldown=30"):
        dualstack_ipam.open(url, cooldown=0)
    for bad in (-1, float("inf"), True, "5"):
        with pytest.raises(InvalidConfigError, match="cooldown"):
            dualstack_ipam.open("memory://", NODES, cooldown=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="clock"):
        dualstack_ipam.open("memory://", NODES, clock=5)  # type: ignore[arg-type]


def test_another_process_honours_a_release_it_did_not_see(tmp_path: Path) -> None:
    clock = Clock()
    url = f"sqlite://{tmp_path}/s.db?synchronous=NORMAL"
    with dualstack_ipam.open(url, NODES, cooldown=60, clock=clock) as cluster:
        first = cluster.nodes.allocate("a")
        assert cluster.nodes.release("a")
    with dualstack_ipam.open(url, clock=clock) as cluster:  # a new process: reads the time
        assert cluster.nodes.stats()["IPv4"]["cooling"] == 1
        assert cluster.nodes.allocate("b") != first
        cluster.nodes.allocate("c")
        cluster.nodes.allocate("d")
        with pytest.raises(PoolExhaustedError, match="cooling"):
            cluster.nodes.allocate("e")
        assert cluster.nodes.occupy("e", [str(first[0])]) == first  # asked for: still works
        cluster._check_invariants()
    clock.now += 61
    with dualstack_ipam.open(url, clock=clock) as cluster:
        assert cluster.nodes.release("e")
        assert cluster.nodes.stats()["IPv4"]["cooling"] == 1
        clock.now += 61
        assert cluster.nodes.allocate("f") == first  # the cooldown passed
        cluster._check_invariants()


def test_a_partial_side_learns_the_release_time_from_its_failed_probe() -> None:
    clock = Clock()
    store = MemoryBackend()
    one = attach(store, "memory://", SERVICES, cooldown=60, clock=clock)
    taken = [one.services.allocate(f"k{i}") for i in range(6)]
    for i in range(5):
        one.services.release(f"k{i}")
    two = attach(store, "memory://", clock=clock)  # random strategy: a partial side
    assert two._sync.sides.get("services") is None
    with pytest.raises(PoolExhaustedError):
        two.services.allocate("new")  # the five free addresses are all cooling
    clock.now += 61
    got = two.services.allocate("new")
    assert got in taken[:5]
    stamps = {record.key for record in store.get_prefix("cool/s4/")}
    assert f"cool/s4/{int(got) - int(netaddr.IPAddress('10.96.0.0')):08x}" not in stamps  # reused
    assert len(stamps) == 4
    two._check_invariants()


def test_a_follower_starts_the_cooldown_of_a_release_by_another_process() -> None:
    clock = Clock()
    store = MemoryBackend()
    one = attach(
        store, "memory://", SERVICES, cooldown=60, clock=clock, service_strategy="sequential"
    )
    two = attach(store, "memory://", clock=clock)
    address = one.services.allocate("a")
    assert two.services.get("a") == (address,)
    one.services.release("a")
    assert two.services.stats()["IPv4"]["cooling"] == 1
    assert two.services.allocate("b") != address
    assert two.services.allocate("c", ip=str(address)) == netaddr.IPAddress(address)
    one._check_invariants()
    two._check_invariants()
