"""The etcd backend's resolution of unknown outcomes, on an in-memory etcd (fast).

No etcd binary: :class:`FakeTransport` is the backend's real transport
whose endpoints serve one :class:`FakeEtcd` (etcd's compare semantics),
and which injects faults into chosen requests. Each test drives the real
``commit`` / ``Session.resolve`` / fence code and checks, for every fault:
no leak (what the store holds is what callers were told), no double
grant, the call returns or raises ``StoreUnavailableError`` with the
outcome resolved (a copy of the request that arrives later never
applies), the fence moved exactly when an outcome was unknown, and the
retries are counted and bounded by ``attempts``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam import StoreError, StoreUnavailableError
from dualstack_ipam.store import Compare, Delete, Put, Record
from dualstack_ipam.store.etcd import EtcdBackend
from etcd.fake_etcd import FakeEtcd
from etcd.fake_faults import FAULTS, FakeTransport

APPLIED = ("committed", "resent", "twice")
"""Faults after which the request has committed (the others never apply)."""
ATTEMPTS = 3
"""A small retry budget: each retry waits a jittered backoff (at most 20 ms x 2^n)."""


def client(
    etcd: FakeEtcd, name: str = "c", *, endpoints: int = 1, resolve_timeout: float = 60.0
) -> tuple[EtcdBackend, FakeTransport]:
    transport = FakeTransport(etcd, endpoints=endpoints)
    backend = EtcdBackend(
        "fake:2379",
        "p",
        transport=transport,
        client_id=name,
        attempts=ATTEMPTS,
        resolve_timeout=resolve_timeout,
    )
    return backend, transport


def fence(etcd: FakeEtcd, name: str = "c") -> int:
    """The mod_revision of the client's fence key."""
    return etcd.mod_revision(f"p/fence/{name}")


@pytest.fixture
def etcd() -> FakeEtcd:
    return FakeEtcd()


def test_without_faults_a_write_is_one_request_and_the_fence_stays(etcd: FakeEtcd) -> None:
    backend, transport = client(etcd)
    first = backend.txn([Compare("a", 0)], [Put("a", b"1")])
    assert fence(etcd) == first.revision  # the first write creates the fence
    second = backend.txn([Compare("b", 0)], [Put("b", b"2")])
    assert second.succeeded
    assert fence(etcd) == first.revision
    assert transport.sent["write"] == 2
    assert transport.sent["resolve"] == 0
    assert (backend.retries, backend.unknown) == (0, 0)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_resolved_once(etcd: FakeEtcd, fault: str) -> None:
    backend, transport = client(etcd)
    assert backend.txn([Compare("warm", 0)], [Put("warm", b"w")]).succeeded
    before = fence(etcd)
    transport.sent.clear()
    transport.inject("write", [fault])
    result = backend.txn([Compare("k", 0)], [Put("k", b"v")])
    assert result.succeeded
    assert backend.get("k") == Record("k", b"v", result.revision)
    assert etcd.versions("p/kv/") == {"k": 1, "warm": 1}  # applied once
    # The outcome was unknown, so the fence moved (after the request).
    assert backend.unknown == 1
    assert fence(etcd) > before
    assert transport.sent["resolve"] == 1
    # A copy arriving after the resolution is refused by the fence.
    assert transport.replayed == ([False] if fault in ("resent", "late") else [])
    # Committed: settled by the marker, not sent again; otherwise resent once.
    assert backend.retries == (0 if fault in APPLIED else 1)
    assert transport.sent["write"] == (1 if fault in APPLIED else 2)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_release_resolves_too(etcd: FakeEtcd, fault: str) -> None:
    backend, transport = client(etcd)
    taken = backend.txn([Compare("k", 0)], [Put("k", b"v")])
    transport.inject("write", [fault])
    result = backend.txn([Compare("k", taken.revision)], [Delete("k")])
    assert result.succeeded
    assert backend.get("k") is None
    assert backend.unknown == 1
    assert transport.replayed == ([False] if fault in ("resent", "late") else [])


def test_error_before_send_every_time_raises_unavailable_with_nothing_written(
    etcd: FakeEtcd,
) -> None:
    backend, transport = client(etcd)
    assert backend.txn([Compare("warm", 0)], [Put("warm", b"w")]).succeeded
    transport.sent.clear()
    transport.inject("write", ["lost"] * ATTEMPTS)
    with pytest.raises(StoreUnavailableError, match="nothing was written"):
        backend.txn([Compare("k", 0)], [Put("k", b"v")])
    assert backend.get("k") is None
    assert etcd.versions("p/kv/") == {"warm": 1}
    # Bounded: ATTEMPTS sends, each outcome resolved before the next.
    assert transport.sent["write"] == ATTEMPTS
    assert transport.sent["resolve"] == backend.unknown == ATTEMPTS
    assert backend.retries == ATTEMPTS
    # The store still works, and no stale copy is pending.
    assert backend.txn([Compare("k", 0)], [Put("k", b"v")]).succeeded


def test_late_copies_of_every_failed_attempt_never_apply(etcd: FakeEtcd) -> None:
    backend, transport = client(etcd)
    transport.inject("write", ["late"] * ATTEMPTS)
    with pytest.raises(StoreUnavailableError):
        backend.txn([], [Put("k", b"v")])  # no compare: only the fence stops a copy
    assert transport.replayed == [False] * ATTEMPTS
    assert backend.get("k") is None


def test_a_lost_resolution_is_retried_until_it_answers(etcd: FakeEtcd) -> None:
    backend, transport = client(etcd)
    assert backend.txn([Compare("warm", 0)], [Put("warm", b"w")]).succeeded
    transport.inject("write", ["committed"])
    transport.inject("resolve", ["lost", "committed", "twice"])
    result = backend.txn([Compare("k", 0)], [Put("k", b"v")])
    assert result.succeeded
    assert backend.get("k") == Record("k", b"v", result.revision)
    assert transport.sent["resolve"] == 4
    assert backend.retries == 3  # the three unanswered bumps
    assert backend.unknown == 1
    # The fence is where the client believes it: its next write goes through.
    assert backend.txn([Compare("n", 0)], [Put("n", b"x")]).succeeded
    assert backend.retries == 3


def test_an_outcome_that_cannot_be_learnt_is_not_reported_as_a_failure(
    etcd: FakeEtcd,
) -> None:
    backend, transport = client(etcd, resolve_timeout=0.0)
    assert backend.txn([Compare("warm", 0)], [Put("warm", b"w")]).succeeded
    transport.inject("write", ["committed"])
    transport.inject("resolve", ["lost"])
    with pytest.raises(StoreError, match="outcome is unknown") as caught:
        backend.txn([Compare("k", 0)], [Put("k", b"v")])
    assert not isinstance(caught.value, StoreUnavailableError)
    assert backend.get("k") == Record("k", b"v", etcd.mod_revision("p/kv/k"))


def test_fencing_off_the_same_fault_leaks(etcd: FakeEtcd) -> None:
    """The control: without the fence, a committed write is reported as failed."""
    backend, transport = client(etcd)
    backend.FENCING = False
    transport.inject("write", ["committed"])
    with pytest.raises(StoreUnavailableError, match="assumed not written"):
        backend.txn([Compare("k", 0)], [Put("k", b"v")])
    assert backend.get("k") is not None  # the leak the fence prevents


def test_an_expired_lease_costs_a_new_lease_and_fence(etcd: FakeEtcd) -> None:
    backend, _ = client(etcd)
    assert backend.txn([Compare("a", 0)], [Put("a", b"1")]).succeeded
    assert etcd.expire_leases() == 1  # the client was paused past its TTL
    assert fence(etcd) == 0
    result = backend.txn([Compare("b", 0)], [Put("b", b"2")])
    assert result.succeeded
    assert fence(etcd) == result.revision  # made again with the write
    assert backend.retries == 1
    assert backend.unknown == 0
    assert etcd.versions("p/kv/") == {"a": 1, "b": 1}


def test_another_client_moving_the_fence_fences_this_one_off(etcd: FakeEtcd) -> None:
    backend, _ = client(etcd)
    assert backend.txn([Compare("a", 0)], [Put("a", b"1")]).succeeded
    etcd.handle("kv/put", {"key": "cC9mZW5jZS9j", "value": "b3RoZXI="})  # p/fence/c
    with pytest.raises(StoreError, match="fenced off"):
        backend.txn([Compare("b", 0)], [Put("b", b"2")])
    assert backend.get("b") is None


def test_a_lost_answer_after_the_lease_expired_is_resolved_with_a_new_lease(
    etcd: FakeEtcd,
) -> None:
    backend, transport = client(etcd)
    assert backend.txn([Compare("a", 0)], [Put("a", b"1")]).succeeded
    etcd.expire_leases()  # the client does not know yet
    transport.inject("write", ["committed"])  # refused (dead lease), and the answer lost
    result = backend.txn([Compare("b", 0)], [Put("b", b"2")])
    assert result.succeeded
    assert backend.get("b") == Record("b", b"2", result.revision)
    assert backend.unknown == 1
    assert transport.sent["resolve"] == 2  # the bump on the dead lease was refused
    assert 0 < fence(etcd) < result.revision  # made again by the resolution's bump


def test_a_late_copy_of_our_own_fence_bump_is_taken_as_ours(etcd: FakeEtcd) -> None:
    """A bump delivered late moves the fence with our own value: not "fenced off"."""
    backend, transport = client(etcd)
    assert backend.txn([Compare("a", 0)], [Put("a", b"1")]).succeeded
    transport.inject("write", ["committed"])
    transport.inject("resolve", ["late"])  # held, then delivered after the second bump
    assert backend.txn([Compare("b", 0)], [Put("b", b"2")]).succeeded
    assert transport.replayed == [True]  # it moved the fence behind the client's back
    retries = backend.retries
    result = backend.txn([Compare("c", 0)], [Put("c", b"3")])
    assert result.succeeded
    assert backend.retries == retries + 1  # one failed fence compare, then through
    assert etcd.versions("p/kv/") == {"a": 1, "b": 1, "c": 1}


def test_reads_retry_then_give_up_bounded(etcd: FakeEtcd) -> None:
    backend, transport = client(etcd)
    transport.inject("read", ["lost", "committed"])
    assert backend.get("k") is None
    assert backend.retries == 2
    transport.inject("read", ["lost"] * ATTEMPTS)
    with pytest.raises(StoreUnavailableError, match=f"after {ATTEMPTS} attempts"):
        backend.get("k")
    assert transport.sent["read"] == 3 + ATTEMPTS


def test_a_member_down_fails_over_with_nothing_visible(etcd: FakeEtcd) -> None:
    backend, transport = client(etcd, endpoints=3)
    transport.down = {0}
    assert backend.txn([Compare("k", 0)], [Put("k", b"v")]).succeeded
    assert transport.endpoint == "fake-1:2379"
    assert (backend.retries, backend.unknown) == (0, 0)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_write_is_not_resent_to_the_next_endpoint(etcd: FakeEtcd, fault: str) -> None:
    """A copy sent to the next member would fail its compare (the first one
    committed) and report "not written" for a write that was: found by this
    fake, fixed in the transport (the lost answer goes to the resolution)."""
    backend, transport = client(etcd, endpoints=2)
    assert backend.txn([Compare("warm", 0)], [Put("warm", b"w")]).succeeded
    transport.sent.clear()
    transport.inject("write", [fault])
    result = backend.txn([Compare("k", 0)], [Put("k", b"v")])
    assert result.succeeded  # it committed: "conflict" would leak the key
    assert backend.get("k") == Record("k", b"v", result.revision)
    assert backend.unknown == 1
    assert transport.sent["write"] == (1 if fault in APPLIED else 2)
    assert transport.endpoint == "fake-1:2379"  # the next request went to the next member


# -- a property: two clients, random faults, a pool of keys ---------------------

CALLS = st.lists(
    st.tuples(
        st.integers(0, 1),  # which client
        st.integers(0, 3),  # which key
        st.lists(st.sampled_from((*FAULTS, None, None)), max_size=ATTEMPTS + 1),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(CALLS, st.integers(1, 3))
def test_random_faults_never_leak_or_grant_twice(
    calls: list[tuple[int, int, list[str | None]]], endpoints: int
) -> None:
    etcd = FakeEtcd()
    clients = [client(etcd, f"c{n}", endpoints=endpoints) for n in range(2)]
    told: dict[str, str] = {}  # key -> the client told it holds it
    revisions: dict[str, int] = {}
    for who, index, faults in calls:
        backend, transport = clients[who]
        name, key = f"c{who}", f"k{index}"
        transport.inject("write", faults)
        holder = told.get(key)
        try:
            if holder is None:  # take the key
                result = backend.txn([Compare(key, 0)], [Put(key, name.encode())])
            elif holder == name:  # give it back
                result = backend.txn([Compare(key, revisions[key])], [Delete(key)])
            else:  # try to take it from its holder: must be refused
                result = backend.txn([Compare(key, 0)], [Put(key, name.encode())])
                assert not result.succeeded
                assert result.current[key] == Record(key, holder.encode(), revisions[key])
        except StoreUnavailableError:
            pass  # nothing written: the model stays as it was
        else:
            if result.succeeded and holder is None:
                told[key], revisions[key] = name, result.revision
            elif result.succeeded:
                del told[key], revisions[key]
        transport.faults.clear()
        # What etcd holds is exactly what the callers were told, each key once.
        stored = {k: etcd.value(f"p/kv/{k}") for k in etcd.versions("p/kv/")}
        assert stored == {k: v.encode() for k, v in told.items()}
        assert all(etcd.mod_revision(f"p/kv/{k}") == r for k, r in revisions.items())
        assert set(etcd.versions("p/kv/").values()) <= {1}  # no put applied twice
    for backend, transport in clients:
        assert not any(transport.replayed)  # no copy applied after its resolution
        assert backend.retries <= ATTEMPTS * len(calls) * 4
