"""Several Service changes committed as ONE store transaction (:mod:`dualstack_ipam.durable.batch`).

Failures are injected with ``Hooked``, a real backend wrapped so that its
``txn`` first runs a hook (another writer's change, or a failure); every
other call goes to the real backend unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dualstack_ipam
from dualstack_ipam import (
    ClusterConfig,
    ClusterIPTakenError,
    ServiceIPAllocator,
    StoreError,
    StoreUnavailableError,
)
from dualstack_ipam.durable import Cluster
from dualstack_ipam.durable.batch import allocate_services, release_services, run
from dualstack_ipam.durable.cluster import attach
from dualstack_ipam.store import Backend, Compare, TxnLimits, TxnResult, Write

from . import backends
from .backends import Backends

make = backends.make

CONFIG = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/24,fd00:10:96::/120")


def manifest(name: str, ip: str | None = None, *, dual: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": ip} if ip else {}
    if dual:
        spec["ipFamilyPolicy"] = "RequireDualStack"
    return {"metadata": {"name": name}, "spec": spec}


class Hooked:
    """A real backend whose ``txn`` runs the hooks queued in ``before`` first."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.before: list[Callable[[], object]] = []
        self.txns = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def txn(
        self, compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        self.txns += 1
        if self.before:
            self.before.pop(0)()
        return self.backend.txn(compares, writes, unique=unique)


@pytest.fixture
def cluster(make: Backends) -> Iterator[Cluster]:
    if not make.durable:
        pytest.skip("a batch is a store transaction")
    one = make.cluster(CONFIG, service_strategy="sequential")
    _ = one.services
    yield one
    one.close()


def hook(cluster: Cluster) -> Hooked:
    hooked = Hooked(cluster._backend)
    cluster._sync.backend = hooked
    return hooked


def other_writer(cluster: Cluster) -> Cluster:
    """Another cluster on the same store (memory:// stores are per backend object)."""
    if cluster.url == "memory://":
        return attach(cluster._backend, cluster.url)
    return dualstack_ipam.open(cluster.url)


def stored(cluster: Cluster) -> list[tuple[str, bytes, int]]:
    return [(r.key, r.value, r.revision) for r in cluster._backend.get_prefix("")]


def held(cluster: Cluster) -> dict[str, tuple[str, ...]]:
    return {key: tuple(map(str, ips)) for key, ips in cluster.services.items()}


def test_a_batch_is_one_revision_with_one_journal_entry_per_key(cluster: Cluster) -> None:
    start = cluster.revision
    made = allocate_services(
        cluster, [manifest("a", dual=True), manifest("b", "10.96.0.20"), manifest("c")]
    )
    assert [m["metadata"]["name"] for m in made] == ["a", "b", "c"]
    assert cluster.revision == start + 1
    entries = list(cluster.journal(since=start))
    assert [(e.op, e.key, e.revision) for e in entries] == [
        ("allocate", f"default/{name}", start + 1) for name in "abc"
    ]
    follower = other_writer(cluster)
    assert held(follower) == held(cluster)
    assert len(follower.services) == 3
    assert release_services(cluster, ["default/a", "default/x", "default/c"]) == [
        True,
        False,
        True,
    ]
    assert cluster.revision == start + 2
    assert sorted(held(follower)) == ["default/b"]
    cluster.services._check_invariants()


def test_a_refusal_in_the_middle_leaves_store_and_cache_as_before(cluster: Cluster) -> None:
    cluster.services.allocate("default/dns", ip="10.96.0.10")
    before, cache = stored(cluster), held(cluster)
    batch = [manifest("a"), manifest("b", "10.96.0.10"), manifest("c")]
    with pytest.raises(ClusterIPTakenError, match=r"10\.96\.0\.10"):
        allocate_services(cluster, batch)
    assert stored(cluster) == before
    assert held(cluster) == cache
    cluster.services._check_invariants()
    # The address "a" had taken in the cache is free again.
    assert len(cluster.services.allocate_service(manifest("a"))["spec"]["clusterIPs"]) == 1


def test_a_store_failing_the_commit_leaves_nothing(cluster: Cluster) -> None:
    hooked = hook(cluster)
    before, cache = stored(cluster), held(cluster)

    def fail() -> None:
        raise StoreUnavailableError("the store went away")

    hooked.before.append(fail)
    with pytest.raises(StoreUnavailableError, match="went away"):
        allocate_services(cluster, [manifest("a"), manifest("b", dual=True)])
    assert stored(cluster) == before
    assert held(cluster) == cache
    cluster.services._check_invariants()
    assert len(allocate_services(cluster, [manifest("a"), manifest("b")])) == 2
    assert sorted(held(other_writer(cluster))) == ["default/a", "default/b"]


def test_an_unknown_outcome_that_applied_is_a_success(cluster: Cluster) -> None:
    hooked = hook(cluster)
    real = hooked.backend

    def apply_then_fail(
        compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        real.txn(compares, writes, unique=unique)
        raise StoreError("the reply was lost")

    hooked.txn = apply_then_fail  # type: ignore[method-assign]
    made = allocate_services(cluster, [manifest("a"), manifest("b")])
    assert sorted(held(cluster)) == ["default/a", "default/b"]
    assert [m["spec"]["clusterIP"] for m in made] == [ips[0] for ips in held(cluster).values()]
    assert held(other_writer(cluster)) == held(cluster)


def test_a_lost_race_is_retried_whole(cluster: Cluster) -> None:
    other = other_writer(cluster)
    _ = other.services
    hooked = hook(cluster)
    # Both caches pick the same first free address: the other writer wins it.
    hooked.before.append(lambda: other.services.allocate("default/other"))
    made = allocate_services(cluster, [manifest("a"), manifest("b")])
    assert hooked.txns == 2
    ips = {m["spec"]["clusterIP"] for m in made}
    assert len(ips) == 2
    assert set(held(other)["default/other"]).isdisjoint(ips)
    assert held(other) == held(cluster)
    assert len(list(cluster.journal())) == 3
    cluster.services._check_invariants()


def test_a_batch_over_the_store_limit_is_refused_before_writing(cluster: Cluster) -> None:
    before, cache = stored(cluster), held(cluster)
    limits = cluster._backend.limits
    cluster._backend.limits = TxnLimits(max_ops=4)
    try:
        with pytest.raises(StoreError, match="limit of 4 operations") as caught:
            allocate_services(cluster, [manifest(name) for name in "abc"])
        assert not isinstance(caught.value, StoreUnavailableError)
        assert stored(cluster) == before
        assert held(cluster) == cache
        # Within the limit: one Service is an owner record, an alloc record, a journal entry.
        allocate_services(cluster, [manifest("a")])
    finally:
        cluster._backend.limits = limits
    cluster.services._check_invariants()


def test_an_address_moves_between_keys_of_one_batch(cluster: Cluster) -> None:
    services = cluster.services
    services.allocate("default/a", ip="10.96.0.7")
    ops = [
        ("default/a", partial(ServiceIPAllocator.release, services, "default/a"), "release"),
        (
            "default/b",
            partial(ServiceIPAllocator.allocate, services, "default/b", ip="10.96.0.7"),
            "allocate",
        ),
    ]
    run(cluster, "services", ops)
    assert held(other_writer(cluster)) == {"default/b": ("10.96.0.7",)}
    services._check_invariants()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.none() | st.sampled_from(["10.96.0.5", "10.96.0.6"])),
        min_size=1,
        max_size=5,
    )
)
def test_a_batch_matches_the_plain_allocator_or_changes_nothing(
    requests: list[tuple[str, str | None]],
) -> None:
    """Allocating (ip: None) or releasing (an ip: allocate it, or release if held)."""
    with dualstack_ipam.open("memory://", CONFIG, service_strategy="sequential") as durable:
        plain = ServiceIPAllocator(CONFIG, strategy="sequential")
        for target in (durable.services, plain):
            target.allocate("default/a", ip="10.96.0.5")
        services = durable.services
        ops: list[tuple[str, Callable[[], object], str]] = []
        for name, ip in requests:
            key = f"default/{name}"
            if ip is None:
                ops.append((key, partial(ServiceIPAllocator.release, services, key), "release"))
            else:
                ops.append((key, partial(ServiceIPAllocator.occupy, services, key, [ip]), "occupy"))
        before = stored(durable)
        try:
            run(durable, "services", ops)
        except dualstack_ipam.IPAMError:
            assert stored(durable) == before
            assert held(durable) == {"default/a": ("10.96.0.5",)}
        else:
            for name, ip in requests:
                key = f"default/{name}"
                if ip is None:
                    plain.release(key)
                else:
                    plain.occupy(key, [ip])
            assert held(durable) == {k: tuple(map(str, v)) for k, v in plain.items()}
            assert held(other_writer(durable)) == held(durable)
        durable.services._check_invariants()
