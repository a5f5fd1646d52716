"""4 clients forced near-full onto one small range on a real etcd: no livelock.

Each client is its own Cluster (its own etcd client, fence and watch) in a
thread; a barrier starts every allocation of the 4 at the same moment, so
they race for the same next CIDR and the same few free addresses. Every
allocation must succeed within the retry budget (``ATTEMPTS``
transactions), counted per allocation; no timing is asserted.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import netaddr

from dualstack_ipam import ClusterConfig
from dualstack_ipam.durable.cluster import Cluster, attach
from dualstack_ipam.durable.sync import ATTEMPTS
from dualstack_ipam.store import Compare, EtcdBackend, TxnResult, Write
from dualstack_ipam.store.etcd_server import EtcdServer

# 16 node CIDRs and 14 Service addresses.
SMALL = ClusterConfig("10.244.0.0/24", "10.96.0.0/28", node_mask_ipv4=28)
NODES, SERVICES = 4, 3  # per client: 16 of 16 CIDRs, 12 of 14 addresses


class CountingBackend(EtcdBackend):
    """A real etcd backend that counts the transactions sent for the caller."""

    txns = 0

    def txn(
        self, compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        self.txns += 1
        return super().txn(compares, writes, unique=unique)


def test_four_clients_near_full_all_finish_within_the_retry_budget(etcd: EtcdServer) -> None:
    prefix = f"c/{uuid.uuid4().hex[:8]}"
    url = f"etcd://{etcd.endpoint}/{prefix}"
    backends = [CountingBackend(etcd.endpoint, prefix, timeout=2.0) for _ in range(4)]
    clusters: list[Cluster] = [
        attach(backend, url, SMALL if n == 0 else None) for n, backend in enumerate(backends)
    ]
    for cluster in clusters:
        _ = cluster.nodes, cluster.services  # read before the race
    start = threading.Barrier(4)
    tries: list[list[int]] = [[] for _ in range(4)]
    got: list[list[str]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def client(n: int) -> None:
        cluster, backend = clusters[n], backends[n]
        try:
            for i in range(NODES + SERVICES):
                start.wait()
                before = backend.txns
                if i < NODES:
                    got[n] += [str(c) for c in cluster.nodes.allocate(f"node-{n}-{i}")]
                else:
                    got[n].append(str(cluster.services.allocate(f"default/svc-{n}-{i}")))
                tries[n].append(backend.txns - before)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    handed = [a for addresses in got for a in addresses]
    assert len(handed) == len(set(handed)) == 4 * (NODES + SERVICES)
    counts = [t for per_client in tries for t in per_client]
    assert len(counts) == 4 * (NODES + SERVICES)
    assert max(counts) <= ATTEMPTS, tries
    assert sum(counts) > len(counts), "no race was lost: the test did not contend"
    print(f"\ntransactions per allocation: {tries}")
    assert all(netaddr.IPNetwork(c) in netaddr.IPNetwork("10.244.0.0/24") for c in got[0][:NODES])
    for cluster in clusters:
        cluster.close()
