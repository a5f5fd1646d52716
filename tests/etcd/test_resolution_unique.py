"""Transactions proved by a key of their own (``txn(..., unique=key)``), on the fake etcd.

A durable mutation writes a journal entry whose key no other transaction
writes; handed to the etcd backend as ``unique``, it replaces the client's
marker put (one put fewer per transaction). These tests drive the real
``commit`` / ``Session.resolve`` / fence code through the same faults as
``test_resolution_fake.py``: every outcome is resolved by reading that key,
nothing leaks, nothing is granted twice, late copies never apply.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam import StoreError, StoreUnavailableError
from dualstack_ipam.store import Compare, Delete, MemoryBackend, Put, Record, Write
from etcd.fake_etcd import FakeEtcd
from etcd.fake_faults import FAULTS
from etcd.test_resolution_fake import APPLIED, ATTEMPTS, CALLS, client, fence

_SERIAL = itertools.count()


def journal(name: str = "c") -> Put:
    """A journal-like write no other transaction makes."""
    return Put(f"journal/{name}/{next(_SERIAL):06d}", b"entry %d" % next(_SERIAL))


@pytest.fixture
def etcd() -> FakeEtcd:
    return FakeEtcd()


def test_a_proved_transaction_puts_no_marker(etcd: FakeEtcd) -> None:
    backend, _ = client(etcd)
    entry = journal()
    result = backend.txn([Compare("k", 0)], [Put("k", b"v"), entry], unique=entry.key)
    assert result.succeeded
    assert etcd.value("p/txn/c") is None  # the marker key was never written
    assert fence(etcd) == result.revision  # the first write still creates the fence
    assert etcd.value(f"p/kv/{entry.key}") == entry.value


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_resolved_once_by_the_unique_key(etcd: FakeEtcd, fault: str) -> None:
    backend, transport = client(etcd)
    warm = journal()
    assert backend.txn([Compare("warm", 0)], [Put("warm", b"w"), warm], unique=warm.key).succeeded
    before = fence(etcd)
    transport.sent.clear()
    transport.inject("write", [fault])
    entry = journal()
    result = backend.txn([Compare("k", 0)], [Put("k", b"v"), entry], unique=entry.key)
    assert result.succeeded
    assert backend.get("k") == Record("k", b"v", result.revision)
    assert etcd.versions("p/kv/k") == {"": 1}  # applied once
    assert backend.unknown == 1
    assert fence(etcd) > before
    assert transport.sent["resolve"] == 1
    assert transport.replayed == ([False] if fault in ("resent", "late") else [])
    # Committed: settled by the unique key, not sent again; otherwise resent once.
    assert backend.retries == (0 if fault in APPLIED else 1)
    assert transport.sent["write"] == (1 if fault in APPLIED else 2)
    assert etcd.value("p/txn/c") is None


def test_lost_every_time_raises_unavailable_with_nothing_written(etcd: FakeEtcd) -> None:
    backend, transport = client(etcd)
    transport.inject("write", ["lost"] * ATTEMPTS)
    entry = journal()
    with pytest.raises(StoreUnavailableError, match="nothing was written"):
        backend.txn([Compare("k", 0)], [Put("k", b"v"), entry], unique=entry.key)
    assert backend.get("k") is None
    assert backend.get(entry.key) is None
    assert transport.sent["resolve"] == backend.unknown == ATTEMPTS


@pytest.mark.parametrize("bad", ["absent", "gone"])
def test_a_unique_key_that_is_not_a_put_of_the_transaction_is_refused(
    etcd: FakeEtcd, bad: str
) -> None:
    backend, transport = client(etcd)
    for store in (backend, MemoryBackend()):
        with pytest.raises(StoreError, match=repr(bad)):
            store.txn([], [Put("k", b"v"), Delete("gone")], unique=bad)
    assert transport.sent["write"] == 0  # refused before anything was sent


@settings(max_examples=40, deadline=None)
@given(CALLS, st.integers(1, 3))
def test_random_faults_never_leak_or_grant_twice(
    calls: list[tuple[int, int, list[str | None]]], endpoints: int
) -> None:
    """As the marker property of ``test_resolution_fake.py``, each write proved by its entry."""
    etcd = FakeEtcd()
    clients = [client(etcd, f"c{n}", endpoints=endpoints) for n in range(2)]
    told: dict[str, str] = {}
    revisions: dict[str, int] = {}
    for who, index, faults in calls:
        backend, transport = clients[who]
        name, key = f"c{who}", f"k{index}"
        transport.inject("write", faults)
        holder = told.get(key)
        entry = journal(name)
        writes: list[Write]
        try:
            if holder is None:
                writes = [Put(key, name.encode()), entry]
                result = backend.txn([Compare(key, 0)], writes, unique=entry.key)
            elif holder == name:
                writes = [Delete(key), entry]
                result = backend.txn([Compare(key, revisions[key])], writes, unique=entry.key)
            else:
                writes = [Put(key, name.encode()), entry]
                result = backend.txn([Compare(key, 0)], writes, unique=entry.key)
                assert not result.succeeded
                assert result.current[key] == Record(key, holder.encode(), revisions[key])
        except StoreUnavailableError:
            assert etcd.value(f"p/kv/{entry.key}") is None  # nothing written
        else:
            applied = etcd.value(f"p/kv/{entry.key}") is not None
            assert applied == result.succeeded  # the entry went with the transaction
            if result.succeeded and holder is None:
                told[key], revisions[key] = name, result.revision
            elif result.succeeded:
                del told[key], revisions[key]
        transport.faults.clear()
        stored = {f"k{k}": etcd.value(f"p/kv/k{k}") for k in etcd.versions("p/kv/k")}
        assert stored == {k: v.encode() for k, v in told.items()}
        assert all(etcd.mod_revision(f"p/kv/{k}") == r for k, r in revisions.items())
        assert set(etcd.versions("p/kv/").values()) <= {1}  # no put applied twice
        assert etcd.value(f"p/txn/{name}") is None  # no marker ever put
    for backend, transport in clients:
        assert not any(transport.replayed)
        assert backend.retries <= ATTEMPTS * len(calls) * 4
