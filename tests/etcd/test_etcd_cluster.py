"""The durable Cluster runs unchanged on the etcd backend; the 3-member helper works."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dualstack_ipam import ClusterConfig
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import Compare, Put
from dualstack_ipam.store.etcd import EtcdBackend
from dualstack_ipam.store.etcd_server import EtcdServer, etcd_binary, start_cluster

SEED = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")


def test_two_clusters_on_one_etcd_never_hand_out_the_same_address(etcd: EtcdServer) -> None:
    url = f"etcd://{etcd.endpoint}/ipam"
    clusters = [
        attach(EtcdBackend(etcd.endpoint, "ipam"), url, SEED if i == 0 else None) for i in range(2)
    ]
    got: list[list[str]] = [[], []]

    def worker(index: int) -> None:
        for n in range(25):
            nets = clusters[index].nodes.allocate(f"node-{index}-{n}")
            ips = clusters[index].services.allocate(f"default/svc-{index}-{n}")
            got[index] += [str(net) for net in nets] + [str(ips)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = got[0] + got[1]
    assert len(handed) == len(set(handed)) == 150
    clusters[0].refresh()
    assert sorted(clusters[0].nodes) == sorted(f"node-{i}-{n}" for i in (0, 1) for n in range(25))
    for cluster in clusters:
        cluster.close()


def test_a_three_member_cluster_survives_the_loss_of_the_member_in_use(tmp_path: Path) -> None:
    if etcd_binary() is None:
        pytest.skip("etcd not found on PATH (Debian: apt-get install etcd-server)")
    members = start_cluster(tmp_path, 3)
    try:
        endpoints = ",".join(m.endpoint for m in members)
        with EtcdBackend(endpoints, "ha", timeout=2.0) as backend:
            assert backend.txn([Compare("a", 0)], [Put("a", b"1")]).succeeded
            members[0].kill()  # the endpoint the backend was using
            assert backend.txn([Compare("b", 0)], [Put("b", b"2")]).succeeded
            assert [r.key for r in backend.get_prefix("")] == ["a", "b"]
            changes, _ = backend.changes(0)
            assert [c.key for c in changes] == ["a", "b"]
    finally:
        for member in members:
            member.kill()
