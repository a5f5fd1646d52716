"""The etcd backend's real transport over a :class:`FakeEtcd`, losing answers on request.

:class:`FakeTransport` is the backend's own
:class:`~dualstack_ipam.store.etcd_transport.Transport` with one part
replaced: the ``etcd3gw`` HTTP clients of its endpoints, which here are
members of one in-memory :class:`~etcd.fake_etcd.FakeEtcd`. So what the
tests exercise is the backend's code, not a copy: the transport's
failover and its sorting of errors into "no answer" and "refused", the
session's lease, fence and marker, ``commit`` and ``Session.resolve``.

Faults (:data:`FAULTS`) are queued per kind of request (:func:`kind_of`)
and raised as ``etcd3gw`` raises them: a refused connection, a timeout.

>>> transport = FakeTransport(FakeEtcd()).inject("write", ["committed"])
>>> transport.faults
{'write': ['committed']}
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from etcd3gw import exceptions

from dualstack_ipam.store.etcd_transport import Transport, checked_write
from etcd.fake_etcd import FakeEtcd, Refused

__all__ = ["FAULTS", "FakeTransport", "kind_of"]

FAULTS = ("committed", "lost", "resent", "late", "twice")
"""What a fault does to the one request it hits (the caller always gets no answer):

- ``committed``: applied, then the answer is lost (committed then error);
- ``lost``: never applied (an error before the request was sent);
- ``resent``: applied, the answer lost, and the same request delivered
  once more after the client's next answered transaction (a network or
  proxy that resends);
- ``late``: not applied now; delivered after the client's next answered
  transaction (a request stuck in a buffer);
- ``twice``: applied twice back to back, the answer lost.
"""


def kind_of(path: str, payload: dict[str, Any]) -> str:
    """Which kind of request the backend sends: what a fault is scheduled on.

    ``write`` (the backend's checked transaction, as the transport itself
    tells it: ``etcd_transport.checked_write``), ``resolve``
    (a transaction without a failure branch: the fence bump after no
    answer), ``read`` (a range, or a transaction that only reads), ``put``
    (a sync point), ``lease`` (grant, keep-alive, revoke), ``compact``.

    Complexity:
        O(1).

    >>> kind_of("kv/txn", {"compare": [], "success": []})
    'resolve'
    >>> kind_of("lease/grant", {})
    'lease'
    """
    if checked_write(path, payload):
        return "write"
    if path == "kv/txn":
        return "read" if "failure" in payload else "resolve"
    if path == "kv/range":
        return "read"
    if path.startswith("lease/"):
        return "lease"
    return {"kv/put": "put", "kv/compaction": "compact"}.get(path, path)


class _Session:
    """What the transport touches of a ``requests`` session."""

    trust_env = True

    def close(self) -> None:
        return None


class _Member:
    """One endpoint of a :class:`FakeEtcd`, standing in for etcd3gw's ``Etcd3Client``."""

    def __init__(self, transport: FakeTransport, host: str, port: int) -> None:
        self.base_url = f"http://{host}:{port}"
        self.session = _Session()
        self._transport = transport

    def get_url(self, path: str) -> str:
        return f"{self.base_url}/v3/{path}"

    def post(self, url: str, *, json: dict[str, Any]) -> dict[str, Any]:
        return self._transport.send(url.split("/v3/", 1)[1], json)


class FakeTransport(Transport):
    """The backend's real transport, its endpoints members of one :class:`FakeEtcd`.

    Faults are scheduled per kind of request (see :func:`kind_of`): each
    request of that kind takes the next entry of its queue (``None``: no
    fault) and is answered, or not, accordingly. ``down`` members refuse
    connections (the transport fails over to the next one).

    Args:
        etcd: the key space every endpoint serves.
        endpoints: how many endpoints (members) the transport sees.

    Attributes:
        faults: the queue of faults of each kind.
        sent: requests sent (to any member), by kind.
        hit: faults injected, in order, as ``(kind, fault)``.
        replayed: for each request delivered again (``resent``, ``late``),
            whether it applied (its compares held).
        down: indexes of the members that refuse connections.

    Complexity:
        O(endpoints) to build.

    >>> FakeTransport(FakeEtcd(), endpoints=2).endpoint
    'fake-0:2379'
    """

    def __init__(self, etcd: FakeEtcd, *, endpoints: int = 1) -> None:
        super().__init__([(f"fake-{i}", 2379) for i in range(endpoints)], timeout=1.0)
        self.etcd = etcd
        # The HTTP clients are the one part replaced: below them is the fake.
        self._clients = [_Member(self, host, port) for host, port in self.endpoints]  # type: ignore[misc]
        self.faults: dict[str, list[str | None]] = {}
        self.sent: Counter[str] = Counter()
        self.hit: list[tuple[str, str]] = []
        self.replayed: list[bool] = []
        self.down: set[int] = set()
        self._held: list[tuple[str, dict[str, Any]]] = []

    def inject(self, kind: str, faults: Iterable[str | None]) -> FakeTransport:
        """Queue ``faults`` for the next requests of ``kind``; return self.

        Raises:
            ValueError: a fault that is not one of :data:`FAULTS`.

        Complexity:
            O(len(faults)).

        >>> FakeTransport(FakeEtcd()).inject("write", ["lost", None]).faults
        {'write': ['lost', None]}
        """
        faults = list(faults)
        for fault in faults:
            if fault is not None and fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
        self.faults.setdefault(kind, []).extend(faults)
        return self

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The real transport's ``post``; then deliver the requests held back.

        Held requests (``resent``, ``late``) arrive after the client's next
        answered transaction: after the fence bump that resolved them, as
        a request stuck in the network would.

        Complexity:
            As ``Transport.post``.
        """
        answer = super().post(path, payload)
        if path == "kv/txn" and self._held:
            held, self._held = self._held, []
            for held_path, request in held:
                try:
                    applied = self.etcd.handle(held_path, request).get("succeeded", False)
                except Refused:
                    applied = False
                self.replayed.append(bool(applied))
        return answer

    def send(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request to the current member, faults applied (called by a member).

        Raises:
            etcd3gw.exceptions.ConnectionFailedError: the member is down, or
                the request was lost or applied without an answer.
            etcd3gw.exceptions.Etcd3Exception: etcd refused the request.

        Complexity:
            As :meth:`FakeEtcd.handle`.
        """
        kind = kind_of(path, payload)
        self.sent[kind] += 1
        if self._current in self.down:
            raise exceptions.ConnectionFailedError("[Errno 111] Connection refused")
        queue = self.faults.get(kind)
        fault = queue.pop(0) if queue else None
        if fault is None:
            return self._answer(path, payload)
        self.hit.append((kind, fault))
        if fault in ("committed", "resent", "twice"):
            self._apply(path, payload)
        if fault == "twice":
            self._apply(path, payload)
        if fault in ("resent", "late"):
            self._held.append((path, payload))
        if fault == "lost":
            raise exceptions.ConnectionFailedError("injected: the request was never sent")
        raise exceptions.ConnectionTimeoutError(f"injected: {fault}, the answer was lost")

    def _apply(self, path: str, payload: dict[str, Any]) -> None:
        with contextlib.suppress(Refused):  # a refusal whose answer is lost
            self.etcd.handle(path, payload)

    def _answer(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.etcd.handle(path, payload)
        except Refused as exc:
            body = {"error": exc.message, "code": exc.code, "message": exc.message}
            raise exceptions.Etcd3Exception(json.dumps(body), "Bad Request") from None
