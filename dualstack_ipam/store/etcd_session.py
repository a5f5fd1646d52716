"""One etcd client's identity: its lease, its fence key, its marker, its retries.

Every writing transaction of a client compares the client's fence key
(``<prefix>/fence/<client id>``) at the revision the client last wrote it,
and puts the client's marker (``<prefix>/txn/<client id>``) with a value
unique to that attempt; both keys hang on the client's lease, so a dead
client's keys expire. When a write gets no answer, :meth:`Session.resolve`
puts the fence key and reads the marker in ONE transaction: etcd orders
that transaction before or after the lost one. Before: the lost one's
fence compare fails whenever it arrives; after: the marker shows it. So
the outcome is known and final.

>>> backoff_delay(0) <= 0.02
True
"""

from __future__ import annotations

import random
import secrets
import time
from typing import Any

import attrs

from dualstack_ipam.errors import StoreError, StoreUnavailableError
from dualstack_ipam.store.etcd_transport import (
    EtcdRequestError,
    EtcdUnavailable,
    Transport,
    decode_bytes,
    encode_bytes,
    encode_key,
)

__all__ = ["Proof", "Session", "backoff_delay", "compare_op", "store_error"]

NOT_FOUND = 5
"""gRPC code etcd gives for an unknown (expired) lease."""


def compare_op(key: str, revision: int) -> dict[str, Any]:
    """An etcd compare: ``mod_revision(key) == revision`` (0 holds for an absent key).

    Fields at protobuf's defaults are left out (``result`` EQUAL is 0, an
    unset ``mod_revision`` compares as 0): the gateway parses every field
    of every message of a transaction, a large share of etcd's CPU for one.

    Complexity:
        O(1).

    >>> compare_op("YQ==", 0)
    {'key': 'YQ==', 'target': 'MOD'}
    >>> compare_op("YQ==", 7)["mod_revision"]
    '7'
    """
    if revision:
        return {"key": key, "target": "MOD", "mod_revision": str(revision)}
    return {"key": key, "target": "MOD"}


def store_error(exc: EtcdRequestError) -> StoreError:
    """The ``StoreError`` for a request etcd refused (nothing was written).

    Complexity:
        O(1).

    >>> str(store_error(EtcdRequestError(3, "too many operations in txn request")))
    'etcd refused the request: too many operations in txn request (code 3)'
    """
    if exc.code == 8:
        return StoreError(
            f"etcd is out of space ({exc.message}): compact the journal, compact and "
            "defragment etcd, then disarm the NOSPACE alarm (docs/etcd.md)"
        )
    return StoreError(str(exc))


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): full jitter, at most 1 s.

    Clients that failed together do not retry together.

    Complexity:
        O(1).

    >>> 0 <= backoff_delay(10) <= 1.0
    True
    """
    return random.uniform(0, min(1.0, 0.02 * 2**attempt))


@attrs.frozen
class Proof:
    """What a writing transaction leaves that says it applied.

    Either our marker key holding the attempt's marker, or a key the
    transaction alone writes (``Backend.txn``'s ``unique``: a journal
    entry's) holding the value it wrote.

    Attributes:
        key: the etcd key to read (the gateway's base64).
        value: the value that key holds if the transaction applied.
        marker: the attempt's marker (the fence's value when it is bumped).
    """

    key: str
    value: bytes
    marker: str


class Session:
    """A client's lease, fence and marker, and requests with bounded retries.

    Args:
        transport: the endpoints.
        space: the store's key prefix, ending in ``/`` (or empty).
        client_id: names the fence and marker keys.
        attempts: requests tried before ``StoreUnavailableError``.
        lease_ttl: seconds the keys outlive a silent client.
        resolve_timeout: seconds a lost answer may take to resolve.

    Attributes:
        fence_rev: the revision our fence key was last written at (0: not
            written, or expired); every writing transaction compares it.
        retries: requests repeated (no answer, or our lease expired).
        unknown: writes that got no answer; unknown_committed: of which
            had committed.

    Complexity:
        O(1) memory.
    """

    def __init__(
        self,
        transport: Transport,
        space: str,
        client_id: str,
        *,
        attempts: int,
        lease_ttl: int,
        resolve_timeout: float,
    ) -> None:
        self.transport, self.attempts = transport, attempts
        self.lease_ttl, self.resolve_timeout = lease_ttl, resolve_timeout
        self.fence_key = f"{space}fence/{client_id}"
        self.marker_key = f"{space}txn/{client_id}"
        self.client_id = client_id
        self.lease = 0  # 0 = none granted (yet, or any more)
        self.renewed = 0.0
        self.fence_rev = 0
        # Every value this session writes to the fence starts with this:
        # a fence found moved to such a value was moved by us.
        self.own = f"{client_id}:{secrets.token_hex(6)}:"
        self.serial = 0
        self.retries = self.unknown = self.unknown_committed = 0

    def request(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A request that is safe to repeat, with retries and jittered backoff.

        Raises:
            StoreError: etcd refused it.
            StoreUnavailableError: no answer after ``attempts`` tries.

        Complexity:
            O(attempts) round trips at worst.
        """
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                return self.transport.post(path, payload)
            except EtcdUnavailable as exc:
                last = exc
            except EtcdRequestError as exc:
                raise store_error(exc) from None
            self.retries += 1
            time.sleep(backoff_delay(attempt))
        raise StoreUnavailableError(
            f"etcd did not answer {path} after {self.attempts} attempts: {last}"
        )

    def keep_lease(self) -> None:
        """Have a live lease: grant one, or renew it when a third of its TTL passed.

        Raises:
            StoreUnavailableError: etcd did not answer (nothing written).

        Complexity:
            O(1) round trips (none most of the time).
        """
        now = time.monotonic()
        if self.lease and now - self.renewed <= self.lease_ttl / 3:
            return
        try:
            self._renew(now)
        except StoreUnavailableError as exc:
            raise StoreUnavailableError(f"{exc}; nothing was written") from None

    def _renew(self, now: float) -> None:
        if self.lease:
            answer = self.request("lease/keepalive", {"ID": str(self.lease)})
            if int(answer.get("result", {}).get("TTL", 0)) > 0:
                self.renewed = now
                return
            self.expired()
        answer = self.request("lease/grant", {"TTL": self.lease_ttl, "ID": 0})
        self.lease, self.renewed = int(answer["ID"]), now

    def expired(self) -> None:
        """Forget a lease etcd no longer has: its fence key is gone with it.

        Complexity:
            O(1).
        """
        self.lease = self.fence_rev = 0

    def marker(self) -> str:
        """A marker value unique to one attempt.

        Complexity:
            O(1).
        """
        self.serial += 1
        return f"{self.own}{self.serial}:{secrets.token_hex(4)}"

    def stamps(self, marker: str, *, own: bool = True) -> list[dict[str, Any]]:
        """The puts a writing transaction adds: the marker, and the fence if unwritten.

        ``own`` False: no marker put (the transaction writes a key unique to
        it, which proves it instead: :class:`Proof`).

        Complexity:
            O(1).
        """
        lease = str(self.lease)
        value = encode_key(marker)
        ops = []
        if own:
            put = {"key": encode_key(self.marker_key), "value": value, "lease": lease}
            ops.append({"request_put": put})
        if self.fence_rev == 0:
            ops.append(
                {"request_put": {"key": encode_key(self.fence_key), "value": value, "lease": lease}}
            )
        return ops

    def check_fence(self, kvs: Any) -> bool:
        """After a failed transaction: is our fence where we left it?

        Args:
            kvs: the failure branch's read of the fence key.

        Returns:
            True if it is (the caller's compares failed); False if it expired
            with our lease (a new one is needed: retry).

        Raises:
            StoreError: another client moved it: this client is fenced off
                (a move by a write of our own, whose answer was lost or which
                arrived late, is taken as ours).

        Complexity:
            O(1).
        """
        found = int(kvs[0]["mod_revision"]) if kvs else 0
        if found == self.fence_rev:
            return True
        if found == 0:
            self.expired()
            return False
        if decode_bytes(kvs[0].get("value", "")).decode(errors="replace").startswith(self.own):
            # Our own write moved it: a sync point whose answer was lost, or
            # a fence bump delivered late (after a later one, on another
            # connection). Every write of ours was resolved: take it as ours.
            self.fence_rev = found
            return False
        raise StoreError(
            f"the fence key {self.fence_key!r} was moved by another client (revision {found}, "
            f"ours {self.fence_rev}): this backend is fenced off; nothing was written"
        )

    def resolve(self, proof: Proof, cause: Exception) -> int | None:
        """After no answer: fence the request off, then read whether it committed.

        Args:
            proof: what the request wrote that says it applied.
            cause: why there was no answer (for the message).

        Returns:
            The revision it committed at, or None (it did not, and never will).

        Raises:
            StoreError: etcd stayed unreachable for ``resolve_timeout``: the
                outcome is unknown (the message says so), or etcd refused.

        Complexity:
            O(1) round trips without faults.
        """
        self.unknown += 1
        deadline = time.monotonic() + self.resolve_timeout
        attempt = 0
        while True:
            try:
                if self.lease == 0:
                    answer = self.transport.post("lease/grant", {"TTL": self.lease_ttl, "ID": 0})
                    self.lease, self.renewed = int(answer["ID"]), time.monotonic()
                answer = self.transport.post("kv/txn", self._bump(proof))
            except EtcdUnavailable:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"etcd stayed unreachable after a transaction was sent ({cause}); its "
                        "outcome is unknown: re-read the store before trusting it"
                    ) from None
                self.retries += 1
                time.sleep(backoff_delay(attempt))
                attempt += 1
                continue
            except EtcdRequestError as exc:
                if exc.code != NOT_FOUND:
                    raise store_error(exc) from None
                self.expired()  # grant another lease and bump again
                continue
            self.fence_rev = int(answer["header"]["revision"])
            found = answer["responses"][1].get("response_range", {}).get("kvs", ())
            if found and decode_bytes(found[0].get("value", "")) == proof.value:
                self.unknown_committed += 1
                return int(found[0]["mod_revision"])
            return None

    def _bump(self, proof: Proof) -> dict[str, Any]:
        put = {"key": encode_key(self.fence_key), "value": encode_key(proof.marker)}
        return {
            "compare": [],
            "success": [
                {"request_put": {**put, "lease": str(self.lease)}},
                {"request_range": {"key": proof.key}},
            ],
        }

    def proof(self, marker: str, unique: tuple[bytes, bytes] | None = None) -> Proof:
        """What shows a transaction applied: our marker key holding ``marker``,
        or the transaction's ``unique`` key (etcd key, value) holding its value.

        Complexity:
            O(1).

        >>> from dualstack_ipam.store.etcd_transport import Transport
        >>> transport = Transport([("127.0.0.1", 2379)], timeout=1.0)
        >>> session = Session(transport, "p/", "c", attempts=1, lease_ttl=1, resolve_timeout=1)
        >>> session.proof("c1:ab", (b"p/kv/journal/w/1", b"entry")).value
        b'entry'
        >>> session.proof("c1:ab").value
        b'c1:ab'
        """
        if unique is None:
            return Proof(encode_key(self.marker_key), marker.encode(), marker)
        return Proof(encode_bytes(unique[0]), unique[1], marker)

    def sync_point(self) -> int:
        """Put our fence key (no transaction of ours is in flight) and return its revision.

        Raises:
            StoreUnavailableError: etcd did not answer.

        Complexity:
            O(1) round trips.
        """
        self.keep_lease()
        put = {
            "key": encode_key(self.fence_key),
            "value": encode_key(f"{self.own}sync"),
            "lease": str(self.lease),
        }
        self.fence_rev = int(self.request("kv/put", put)["header"]["revision"])
        return self.fence_rev

    def revoke(self) -> None:
        """Revoke our lease (best effort: an unrevoked lease expires by itself).

        Complexity:
            O(1) round trips.
        """
        if self.lease:
            try:
                self.transport.post("lease/revoke", {"ID": str(self.lease)})
            except (EtcdUnavailable, EtcdRequestError):
                return
