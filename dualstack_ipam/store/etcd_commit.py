"""How the etcd backend commits one transaction, whatever the network does.

Each attempt renews the fence's lease (for a write), sends the transaction,
and reads the answer. No answer to a write: the fence is put and the marker
read (``Session.resolve``), so the outcome is known before anything is
retried; an expired lease: the fence is made again and the write retried; a
failed compare on our own fence: another client took it, retried after the
fence is read again. A failed write reads the compared keys and the fence in
a second request (its failure branch is empty: see ``etcd_wire``). See
``EtcdBackend`` for the whole protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from dualstack_ipam.errors import StoreUnavailableError
from dualstack_ipam.store.etcd_session import NOT_FOUND, Session, backoff_delay, store_error
from dualstack_ipam.store.etcd_transport import EtcdRequestError, EtcdUnavailable, Transport
from dualstack_ipam.store.etcd_wire import read_back, stamped, txn_payload
from dualstack_ipam.store.records import Compare, Record, TxnResult, Write

__all__ = ["commit"]


def commit(
    transport: Transport,
    session: Session,
    kv: bytes,
    record: Callable[[dict[str, Any]], Record],
    compares: Sequence[Compare],
    writes: Sequence[Write],
    *,
    attempts: int,
    fencing: bool = True,
    unique: str | None = None,
) -> TxnResult:
    """Run one checked transaction until its outcome is known.

    Args:
        transport: the backend's transport.
        session: the backend's fence, lease and marker.
        kv: the etcd key prefix of the records (``<prefix>/kv/``).
        record: the backend's record of an etcd key-value.
        compares: the transaction's compares (already checked).
        writes: the transaction's writes (already checked).
        attempts: requests tried before ``StoreUnavailableError``.
        fencing: False (fault tests only): a write without an answer raises
            at once, assumed not written.
        unique: ``Backend.txn``'s: a written key that proves the
            transaction, instead of our marker.

    Returns:
        The result, as ``Backend.txn``.

    Raises:
        StoreError: etcd refused the transaction, or our fence key was moved
            by another client (nothing written).
        StoreUnavailableError: no commit within ``attempts``; nothing was
            written.

    Complexity:
        O(c + w), one round trip without faults.
    """
    for attempt in range(attempts):
        if writes:
            session.keep_lease()
        payload, proof = txn_payload(kv, session, compares, writes, unique)
        try:
            # A write is sent to one endpoint only (Transport.post): after
            # no answer its outcome is resolved, never guessed from a copy.
            answer = transport.post("kv/txn", payload)
        except EtcdUnavailable as exc:
            if proof is not None and not fencing:
                raise StoreUnavailableError(
                    f"etcd did not answer a transaction ({exc}); fencing is off, so "
                    "it is assumed not written"
                ) from None
            committed = None if proof is None else session.resolve(proof, exc)
            if committed is not None:
                return TxnResult(True, committed)
            session.retries += 1
            time.sleep(backoff_delay(attempt))
            continue
        except EtcdRequestError as exc:
            if exc.code == NOT_FOUND and writes:  # our lease expired between renewals
                session.expired()
                session.retries += 1
                continue
            raise store_error(exc) from None
        revision = int(answer["header"]["revision"])
        if answer.get("succeeded"):
            if proof is not None and session.fence_rev == 0 and stamped(answer):
                session.fence_rev = revision  # created with this transaction
            return TxnResult(True, revision)
        if writes:
            try:
                answer = session.request("kv/txn", read_back(kv, session, compares))
            except StoreUnavailableError as exc:
                raise StoreUnavailableError(
                    f"{exc} (after a transaction that failed its compares: nothing was written)"
                ) from None
        reads = [r.get("response_range", {}).get("kvs", ()) for r in answer["responses"]]
        if not writes or session.check_fence(reads[len(compares)]):
            current = {
                c.key: record(kvs[0]) if kvs else None
                for c, kvs in zip(compares, reads, strict=False)
            }
            return TxnResult(False, revision, current)
        session.retries += 1
    raise StoreUnavailableError(
        f"etcd transaction not committed after {attempts} attempts; nothing was written"
    )
