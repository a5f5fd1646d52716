"""What the etcd backend puts on the wire and reads back from it.

Pure functions between the backend's records and etcd's v3 JSON: the
endpoint list, the body of a writing transaction (with the fence compare
and the attempt's marker), the read that follows a failed one, and what an
answer or a compaction means.

A writing transaction's failure branch is empty: each range there costs
etcd about as much as a put, applied or not (measured on etcd 3.4: six
ranges, 0.3-0.4 ms of etcd CPU on every transaction, ~20 % of a node
allocation's), while compares fail on ~0.2 % of the transactions of 4
processes allocating at once. A failed write reads the compared keys and
the fence in a second round trip (:func:`read_back`) instead.

>>> parse_endpoints("10.0.0.1:2379,[fd00::1]:2379")
(('10.0.0.1', 2379), ('fd00::1', 2379))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dualstack_ipam.errors import StoreError
from dualstack_ipam.store.etcd_session import Proof, Session, compare_op
from dualstack_ipam.store.etcd_transport import encode_bytes, encode_key
from dualstack_ipam.store.records import CompactedError, Compare, Put, Write

__all__ = ["compacted_error", "parse_endpoints", "read_back", "stamped", "txn_payload"]


def parse_endpoints(text: str) -> tuple[tuple[str, int], ...]:
    """``"host:port,host:port"`` as ``(host, port)`` pairs.

    Raises:
        StoreError: an empty list or a bad ``host:port``.

    Complexity:
        O(len(text)).

    >>> parse_endpoints("a:1")
    (('a', 1),)
    """
    found = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise StoreError(f"bad etcd endpoint {item!r} in {text!r} (host:port)")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def txn_payload(
    kv: bytes,
    session: Session | None,
    compares: Sequence[Compare],
    writes: Sequence[Write],
    unique: str | None = None,
) -> tuple[dict[str, Any], Proof | None]:
    """The JSON body of one transaction, and what proves it applied (None if it reads only).

    A transaction that only compares reads the compared keys in its failure
    branch; one that writes has an empty failure branch (see the module
    notes; :func:`read_back` reads them after a failure). Its ``failure``
    key is still there: it marks a checked write
    (:func:`~dualstack_ipam.store.etcd_transport.checked_write`).

    Args:
        kv: the etcd key prefix of the records (``<prefix>/kv/``).
        session: the fence and marker of this client; used only for writes.
        compares: the caller's compares.
        writes: the caller's writes.
        unique: the key of a Put of ``writes`` that no other transaction
            writes: it proves the transaction, which then puts no marker.

    Complexity:
        O(c + w).

    >>> txn_payload(b"kv/", None, [Compare("a", 0)], [])[0]["failure"]
    [{'request_range': {'key': 'a3YvYQ=='}}]
    """
    tests = [compare_op(encode_bytes(kv + c.key.encode()), c.revision) for c in compares]
    if not writes:
        reads = [{"request_range": {"key": encode_bytes(kv + c.key.encode())}} for c in compares]
        return {"compare": tests, "success": [], "failure": reads}, None
    assert session is not None
    marker = session.marker()
    tests.append(compare_op(encode_key(session.fence_key), session.fence_rev))
    effects: list[dict[str, Any]] = []
    proof = None
    for write in writes:
        key = encode_bytes(kv + write.key.encode())
        if type(write) is Put:
            effects.append({"request_put": {"key": key, "value": encode_bytes(write.value)}})
            if write.key == unique:
                proof = session.proof(marker, (kv + write.key.encode(), write.value))
        else:
            effects.append({"request_delete_range": {"key": key}})
    effects += session.stamps(marker, own=proof is None)
    proof = proof or session.proof(marker)
    if any(type(write) is Put for write in writes):
        success = effects
    else:
        # Deletes of absent keys change nothing, so they must not write
        # the marker (which would raise the revision): a nested
        # transaction writes it only when some key exists.
        absent = [compare_op(encode_bytes(kv + w.key.encode()), 0) for w in writes]
        success = [{"request_txn": {"compare": absent, "success": [], "failure": effects}}]
    return {"compare": tests, "success": success, "failure": []}, proof


def read_back(kv: bytes, session: Session, compares: Sequence[Compare]) -> dict[str, Any]:
    """The read after a failed writing transaction: the compared keys, then the fence.

    A read-only transaction (one round trip, safe to repeat): what it finds
    is at least as new as what made the write fail.

    Complexity:
        O(c).

    >>> from dualstack_ipam.store.etcd_transport import Transport
    >>> transport = Transport([("127.0.0.1", 2379)], timeout=1.0)
    >>> session = Session(transport, "", "c", attempts=1, lease_ttl=1, resolve_timeout=1)
    >>> body = read_back(b"", session, [Compare("a", 0)])
    >>> [op["request_range"]["key"] for op in body["success"]]
    ['YQ==', 'ZmVuY2UvYw==']
    """
    keys = [encode_bytes(kv + c.key.encode()) for c in compares]
    keys.append(encode_key(session.fence_key))
    return {"compare": [], "success": [{"request_range": {"key": key}} for key in keys]}


def stamped(answer: dict[str, Any]) -> bool:
    """Whether a successful writing transaction wrote our marker and fence.

    A delete-only one writes them only if its nested transaction found a key.

    Complexity:
        O(1).

    >>> stamped({"responses": [{"response_put": {}}]})
    True
    """
    nested = answer.get("responses", [{}])[0].get("response_txn")
    return nested is None or not nested.get("succeeded")


def compacted_error(after: int, compacted: int) -> CompactedError:
    """The error for changes after ``after`` when etcd kept only those after ``compacted``.

    Complexity:
        O(1).

    >>> compacted_error(3, 7).compacted
    7
    """
    return CompactedError(
        f"changes after revision {after!r} were compacted (kept after {compacted})",
        after=after,
        compacted=compacted,
    )
