"""``dualstack_ipam.open("etcd://...")``: the durable Cluster on etcd, through its URL.

A mutation follows the store through the watch (``watched``), so it costs
one round trip; a lagging watch costs a failed compare and a retry, never
an address handed out twice; a transaction whose outcome stayed unknown
leaves its key in doubt, re-read before the next mutation of that key.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

import dualstack_ipam
from dualstack_ipam import ClusterConfig, StoreError
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.durable.urls import open_backend
from dualstack_ipam.store import Compare, EtcdBackend, EtcdTLS, Put
from dualstack_ipam.store.etcd_server import EtcdServer
from dualstack_ipam.store.etcd_transport import EtcdUnavailable, Transport

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
TINY = ClusterConfig(
    "10.244.0.0/26,fc00::/122", "10.96.0.0/28", node_mask_ipv4=30, node_mask_ipv6=126
)


def url_of(etcd: EtcdServer, prefix: str = "") -> str:
    return f"etcd://{etcd.endpoint}/{prefix or 't/' + uuid.uuid4().hex[:8]}"


class CountingTransport(Transport):
    """A real transport that counts requests and can go silent on demand."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(EtcdBackend.parse_endpoints(endpoint), timeout=2.0)
        self.posts: list[str] = []
        self.lose_next_commit = False
        self.down = False

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.posts.append(path)
        if self.down:
            raise EtcdUnavailable("injected: etcd unreachable")
        if self.lose_next_commit and path == "kv/txn" and "failure" in payload:
            self.lose_next_commit, self.down = False, True
            super().post(path, payload)  # committed; the answer is lost
            raise EtcdUnavailable("injected: answer lost")
        return super().post(path, payload)


def test_open_gives_the_cluster_and_a_second_open_sees_its_state(etcd: EtcdServer) -> None:
    url = url_of(etcd)
    first = dualstack_ipam.open(url, SEED)
    nets = first.nodes.allocate("node-a")
    ips = first.services.allocate("default/web")
    second = dualstack_ipam.open(url)
    assert second.config == SEED
    assert second.nodes.get("node-a") == nets
    assert second.services.get("default/web") == (ips,)
    assert [str(n.version) for n in nets] == ["4", "6"]
    first.close()
    second.close()


def test_open_backend_builds_an_etcd_backend_per_url_without_a_request() -> None:
    backend = open_backend("etcd://127.0.0.1:1,127.0.0.1:2/ipam/prod")
    assert isinstance(backend, EtcdBackend)
    assert backend.prefix == "ipam/prod"
    assert isinstance(EtcdTLS(), EtcdTLS)
    tls = open_backend("etcds://127.0.0.1:1/ipam")
    assert isinstance(tls, EtcdBackend)
    assert tls._transport.base_url().startswith("https://")


def test_a_mutation_costs_one_round_trip(etcd: EtcdServer) -> None:
    transport = CountingTransport(etcd.endpoint)
    prefix = f"t/{uuid.uuid4().hex[:8]}"
    backend = EtcdBackend(etcd.endpoint, prefix, transport=transport)
    cluster = attach(backend, url_of(etcd, prefix), SEED)
    cluster.nodes.allocate("warm-up")  # reads the side, grants the lease
    transport.posts.clear()
    for n in range(20):
        cluster.nodes.allocate(f"node-{n}")
    assert transport.posts == ["kv/txn"] * 20
    cluster.close()


def test_the_caches_watch_carries_only_the_records_they_follow(etcd: EtcdServer) -> None:
    # etcd sends each watch every event of its range: a cache watching the
    # whole store got every alloc record, journal entry and marker of every
    # process (a third of etcd's CPU at 4 processes), and needs owner,
    # reservation and range records only (with a cooldown, release times).
    url = url_of(etcd)
    mine, other = dualstack_ipam.open(url, SEED), dualstack_ipam.open(url)
    backend = mine.nodes._sync.backend
    assert isinstance(backend, EtcdBackend)
    start = backend.revision()
    backend.watched(start)
    other.nodes.allocate("node-a")
    other.services.allocate("default/web")
    last = backend.revision()
    changes, seen = backend.watched(start, reach=last)  # waits for the watch
    assert seen >= last
    assert [c.key for c in changes] == ["owner/node/node-a", "owner/svc/default/web"]
    assert mine.nodes.get("node-a") == other.nodes.get("node-a")  # followed all the same
    mine.close()
    other.close()


def test_two_clusters_on_a_tiny_range_retry_on_a_lagging_watch_never_share(
    etcd: EtcdServer,
) -> None:
    url = url_of(etcd)
    clusters = [dualstack_ipam.open(url, TINY), dualstack_ipam.open(url)]
    got: list[list[str]] = [[], []]

    def worker(index: int) -> None:
        for n in range(8):
            nets = clusters[index].nodes.allocate(f"node-{index}-{n}")
            got[index] += [str(net) for net in nets]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = got[0] + got[1]
    assert len(handed) == len(set(handed)) == 32  # 16 nodes, both families: the whole range
    for cluster in clusters:
        cluster.refresh()
        assert len(cluster.nodes) == 16
        cluster.close()


def test_an_unknown_outcome_leaves_the_key_in_doubt_and_it_is_re_read(
    etcd: EtcdServer,
) -> None:
    transport = CountingTransport(etcd.endpoint)
    prefix = f"t/{uuid.uuid4().hex[:8]}"
    url = url_of(etcd, prefix)
    backend = EtcdBackend(etcd.endpoint, prefix, transport=transport, resolve_timeout=0.2)
    cluster = attach(backend, url, SEED)
    cluster.nodes.allocate("warm-up")
    transport.lose_next_commit = True
    with pytest.raises(StoreError):  # the outcome is unknown, and so is the journal read
        cluster.nodes.allocate("node-a")
    assert cluster.nodes._sync._doubt  # the key is in doubt
    transport.down = False
    other = dualstack_ipam.open(url)
    stored = other.nodes.get("node-a")  # it did commit
    assert stored is not None
    assert cluster.nodes.allocate("node-a") == stored  # re-read, not allocated again
    assert not cluster.nodes._sync._doubt
    assert sorted(cluster.nodes) == sorted(other.nodes) == ["node-a", "warm-up"]
    cluster.close()
    other.close()


class LostPutTransport(Transport):
    """A real transport whose plain puts commit but lose their answer while ``lose_puts``."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(EtcdBackend.parse_endpoints(endpoint), timeout=2.0)
        self.lose_puts = False

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self.lose_puts and path == "kv/put":
            super().post(path, payload)
            raise EtcdUnavailable("injected: the put's answer is lost")
        return super().post(path, payload)


def test_a_sync_point_whose_answer_was_lost_does_not_fence_the_client_off(
    etcd: EtcdServer,
) -> None:
    transport = LostPutTransport(etcd.endpoint)
    backend = EtcdBackend(etcd.endpoint, f"t/{uuid.uuid4().hex[:8]}", transport=transport)
    assert backend.txn([Compare("a", 0)], [Put("a", b"1")]).succeeded  # the fence exists
    transport.lose_puts = True
    with pytest.raises(StoreError):
        backend._session.sync_point()  # moved the fence; no answer
    transport.lose_puts = False
    # Before the fix: StoreError "fenced off" (it took its own move for another client's).
    assert backend.txn([Compare("b", 0)], [Put("b", b"2")]).succeeded
    assert not backend.txn([Compare("b", 0)], [Put("b", b"3")]).succeeded
    backend.close()
