"""Unknown outcomes: injected on the transport, then a real etcd SIGKILLed mid-commit.

The fault-injecting transport sits between the backend and a real etcd
and turns chosen transaction requests into "no answer":

- ``committed``: sent, committed, then the answer is lost;
- ``lost``: never sent;
- ``late``: held back, then delivered after the backend resolved the
  outcome (a request stuck in a network buffer);
- ``duplicate``: sent and committed, then delivered once more.

Whatever happens, every transaction that returned success is stored once,
and no request applies after its outcome was resolved.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from typing import Any

import pytest

from dualstack_ipam import StoreError, StoreUnavailableError
from dualstack_ipam.store import Compare, Delete, Put, Record
from dualstack_ipam.store.etcd import EtcdBackend
from dualstack_ipam.store.etcd_server import EtcdServer
from dualstack_ipam.store.etcd_transport import EtcdUnavailable, Transport

FAULTS = ("committed", "lost", "late", "duplicate")


class FaultyTransport(Transport):
    """A real transport that loses answers and requests as it is told."""

    def __init__(self, endpoint: str, faults: list[str | None]) -> None:
        super().__init__(EtcdBackend.parse_endpoints(endpoint), timeout=2.0)
        self.faults = faults  # one entry per user transaction, None = no fault
        self.held: list[dict[str, Any]] = []
        self.replayed: list[bool] = []  # did a held request apply when delivered?

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        user_txn = path == "kv/txn" and "failure" in payload
        if not user_txn:
            answer = super().post(path, payload)
            if path == "kv/txn" and self.held:  # the resolution ran: now deliver
                for held in self.held:
                    self.replayed.append(bool(super().post(path, held).get("succeeded")))
                self.held.clear()
            return answer
        fault = self.faults.pop(0) if self.faults else None
        if fault in ("committed", "duplicate"):
            super().post(path, payload)
        if fault in ("late", "duplicate"):
            self.held.append(payload)
        if fault is not None:
            raise EtcdUnavailable(f"injected: {fault}")
        return super().post(path, payload)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_resolved_once(etcd: EtcdServer, fault: str) -> None:
    transport = FaultyTransport(etcd.endpoint, [fault])
    with EtcdBackend(etcd.endpoint, "f", transport=transport, client_id="c") as backend:
        result = backend.txn([Compare("k", 0)], [Put("k", b"v")])
        assert result.succeeded
        assert backend.get("k") == Record("k", b"v", result.revision)
        assert transport.replayed == ([False] if fault in ("late", "duplicate") else [])
        assert backend.retries == (0 if fault in ("committed", "duplicate") else 1)


def test_random_faults_lose_nothing_and_apply_nothing_twice(etcd: EtcdServer) -> None:
    rng = random.Random(7)
    faults: list[str | None] = [rng.choice((*FAULTS, None, None)) for _ in range(80)]
    transport = FaultyTransport(etcd.endpoint, list(faults))
    with EtcdBackend(etcd.endpoint, "r", transport=transport, client_id="c") as backend:
        for i in range(80):
            # No compare: a request applied twice would show as version 2.
            assert backend.txn([], [Put(f"k{i:02d}", b"x"), Put(f"j{i:02d}", b"y")]).succeeded
        assert not any(transport.replayed)
        assert len(transport.replayed) == sum(f in ("late", "duplicate") for f in faults)
    versions = _versions(etcd, "r/kv/")
    assert len(versions) == 160
    assert set(versions.values()) == {1}


def test_a_delete_only_txn_resolves_too(etcd: EtcdServer) -> None:
    transport = FaultyTransport(etcd.endpoint, [None, "committed", "late"])
    with EtcdBackend(etcd.endpoint, "d", transport=transport, client_id="c") as backend:
        first = backend.txn([], [Put("a", b"1"), Put("b", b"2")])
        assert backend.txn([Compare("a", first.revision)], [Delete("a")]).succeeded
        assert backend.txn([Compare("b", first.revision)], [Delete("b")]).succeeded
        assert backend.get_prefix("") == []
        assert transport.replayed == [False]


def test_an_unresolvable_outcome_is_never_reported_as_failure(etcd: EtcdServer) -> None:
    class Dark(FaultyTransport):
        def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
            if path == "kv/txn":
                raise EtcdUnavailable("injected: etcd unreachable")
            return super().post(path, payload)

    transport = Dark(etcd.endpoint, [])
    backend = EtcdBackend(etcd.endpoint, "u", transport=transport, resolve_timeout=0.3)
    with pytest.raises(StoreError, match="outcome is unknown") as caught:
        backend.txn([], [Put("a", b"1")])
    assert not isinstance(caught.value, StoreUnavailableError)


def test_sigkill_mid_commit_acknowledged_are_stored_raised_are_absent(
    etcd: EtcdServer,
) -> None:
    outcomes: dict[str, bool] = {}
    unknown: list[int] = []
    stop = threading.Event()

    def worker(name: str) -> None:
        with EtcdBackend(etcd.endpoint, "k", timeout=0.5, attempts=2) as backend:
            i = 0
            while not stop.is_set():
                key = f"{name}/{i}"
                try:
                    outcomes[key] = backend.txn([Compare(key, 0)], [Put(key, b"x")]).succeeded
                except StoreUnavailableError:
                    outcomes[key] = False
                i += 1
            unknown.append(backend.unknown)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(4):
        time.sleep(0.3)
        etcd.signal(signal.SIGKILL)
        etcd.kill()
        time.sleep(0.2)
        etcd.start()
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    stored = set(_versions(etcd, "k/kv/"))
    acknowledged = {key for key, ok in outcomes.items() if ok}
    assert acknowledged == stored
    assert len(acknowledged) > 20
    assert sum(unknown) > 0  # the kills did leave outcomes to resolve


def _versions(etcd: EtcdServer, prefix: str) -> dict[str, int]:
    import base64

    import requests

    start = prefix.encode()
    end = start[:-1] + bytes([start[-1] + 1])
    answer = requests.post(
        f"http://{etcd.endpoint}/v3/kv/range",
        json={
            "key": base64.b64encode(start).decode(),
            "range_end": base64.b64encode(end).decode(),
        },
        timeout=5,
    ).json()
    return {
        base64.b64decode(kv["key"]).decode()[len(prefix) :]: int(kv["version"])
        for kv in answer.get("kvs", ())
    }
