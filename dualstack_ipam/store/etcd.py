"""The etcd backend: the store of several machines, behind the same ``Backend``.

Keys live under ``<prefix>/kv/``; a record's revision is etcd's
``mod_revision`` and the store revision is etcd's header revision (shared
by every key of that etcd, so revisions of one prefix have gaps). A
transaction is ONE etcd transaction: every compare is ``mod_revision ==
r`` (``0`` = absent), the success branch holds the writes. A writing
transaction whose compares fail reads the compared keys in a second,
read-only request (ranges in its failure branch would cost etcd on every
transaction, see ``etcd_wire``); one that only compares reads them in its
failure branch.

Fencing (why a write is never lost or applied twice): each backend object
owns a fence key ``<prefix>/fence/<client id>``, attached to an etcd lease
(a dead client's key expires) and compared in every writing transaction,
which also puts a marker ``<prefix>/txn/<client id>`` holding a value
unique to that attempt (or names a key it writes that no other
transaction writes, ``txn(..., unique=key)``: that key is then the
marker). When a write gets no answer (timeout, reset, server killed
mid-commit), the outcome is unknown: the backend puts the fence key and
reads the marker in one transaction. From then on the old
request can never apply (its fence compare fails), and the marker says
whether it did: committed → success; not committed → retried, or
``StoreUnavailableError`` with nothing written. See ``docs/etcd.md``.

>>> EtcdBackend.parse_endpoints("10.0.0.1:2379,[fd00::1]:2379")
(('10.0.0.1', 2379), ('fd00::1', 2379))
"""

from __future__ import annotations

import functools
import secrets
import threading
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from dualstack_ipam.errors import StoreError, StoreUnavailableError
from dualstack_ipam.store.backend import TxnLimits, check_range, check_txn
from dualstack_ipam.store.etcd_commit import commit
from dualstack_ipam.store.etcd_follow import Follower
from dualstack_ipam.store.etcd_session import (
    Session,
    store_error,
)
from dualstack_ipam.store.etcd_transport import (
    EtcdRequestError,
    EtcdTLS,
    EtcdUnavailable,
    Transport,
    decode_bytes,
    encode_bytes,
    encode_key,
)
from dualstack_ipam.store.etcd_wire import (
    compacted_error,
    parse_endpoints,
)
from dualstack_ipam.store.records import (
    Change,
    Compare,
    Record,
    TxnResult,
    Write,
    check_key,
    check_revision,
    prefix_end,
)

__all__ = ["EtcdBackend", "EtcdTLS"]

RESERVED_OPS = 2
"""Operations of each transaction the backend keeps for itself: the fence
compare, and the fence and marker puts."""


class EtcdBackend:
    """A store in etcd under a key prefix, shared by any number of machines.

    Args:
        endpoints: ``"host:port,host:port"`` or ``(host, port)`` pairs; the
            backend fails over between them.
        prefix: the key prefix of this store (one per cluster).
        timeout: seconds each request may take.
        tls: TLS settings (``etcds://``); None = plain HTTP.
        attempts: requests tried (with jittered backoff, across endpoints)
            before ``StoreUnavailableError``.
        lease_ttl: seconds the fence key outlives a silent client.
        max_txn_ops: etcd's ``--max-txn-ops``.
        max_request_bytes: etcd's ``--max-request-bytes``.
        client_id: names the fence key (random by default).
        watch_all: watch the whole key space (every revision then has an
            event, so the feed proves itself complete without writing);
            False for a user allowed only this prefix (see ``feed_wait``).
        feed_wait: seconds ``changes`` waits for the watch before it writes
            a sync point (the fence key) to prove the feed complete; with
            ``watch_all`` this happens only when the watch is broken.
        resolve_timeout: seconds a write whose answer was lost keeps trying
            to learn its outcome before it raises ``StoreError`` saying the
            outcome is unknown.
        transport: the transport to use (tests inject faults through it).

    >>> EtcdBackend("127.0.0.1:2379", "ipam").limits.max_ops
    126
    """

    FENCING = True
    """Test-only switch. False: a write that got no answer raises
    ``StoreUnavailableError`` at once, as a client without fencing would
    (assuming it failed); the fault tests' control run shows the leak."""

    def __init__(
        self,
        endpoints: str | Sequence[tuple[str, int]],
        prefix: str,
        *,
        timeout: float = 5.0,
        tls: EtcdTLS | None = None,
        attempts: int = 8,
        lease_ttl: int = 30,
        max_txn_ops: int = 128,
        max_request_bytes: int = 3 * 1024 * 1024 // 2,
        client_id: str | None = None,
        watch_all: bool = True,
        feed_wait: float = 2.0,
        resolve_timeout: float = 60.0,
        transport: Transport | None = None,
    ) -> None:
        if type(prefix) is not str or "\x00" in prefix:
            raise StoreError(f"an etcd key prefix must be text, got {prefix!r}")
        if isinstance(endpoints, str):
            endpoints = self.parse_endpoints(endpoints)
        self.limits = TxnLimits(
            max_ops=max_txn_ops - RESERVED_OPS, max_bytes=max_request_bytes - 16 * 1024
        )
        self.prefix = prefix.strip("/")
        space = f"{self.prefix}/" if self.prefix else ""
        self._kv = f"{space}kv/".encode()
        self._space = space.encode()
        self.client_id = client_id or secrets.token_hex(8)
        self._transport = transport or Transport(endpoints, timeout=timeout, tls=tls)
        self._session = Session(
            self._transport,
            space,
            self.client_id,
            attempts=attempts,
            lease_ttl=lease_ttl,
            resolve_timeout=resolve_timeout,
        )
        self._attempts = attempts
        start, end = b"\x00", b"\x00"  # etcd's "every key"
        if not watch_all and self._space:
            start, end = self._space, prefix_end(self._space) or b"\x00"
        self._follower = Follower(
            self._transport,
            self._session,
            start,
            end,
            # Not a bound method: the watch thread must not keep the backend
            # alive, so that a backend nobody closed stops its watch when it
            # is collected (the finalizer below) instead of running forever.
            functools.partial(_user_key_of, self._kv),
            feed_wait=feed_wait,
            attempts=attempts,
        )
        weakref.finalize(self, self._follower.close)
        self._lock = threading.RLock()
        self._compacted = 0
        self._closed = False

    @property
    def retries(self) -> int:
        """Requests repeated after no answer or an expired lease (for tests, metrics).

        Complexity:
            O(1).
        """
        return self._session.retries

    @property
    def unknown(self) -> int:
        """Writes that got no answer; each was resolved through the fence.

        Complexity:
            O(1).
        """
        return self._session.unknown

    @staticmethod
    def parse_endpoints(text: str) -> tuple[tuple[str, int], ...]:
        """``"host:port,host:port"`` as ``(host, port)`` pairs.

        Raises:
            StoreError: an empty list or a bad ``host:port``.

        Complexity:
            O(len(text)).

        >>> EtcdBackend.parse_endpoints("a:1")
        (('a', 1),)
        """
        return parse_endpoints(text)

    def __repr__(self) -> str:
        return f"EtcdBackend({self._transport.endpoint!r}, prefix={self.prefix!r})"

    # -- requests -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the etcd store {self.prefix!r} is closed")

    def _key(self, key: str) -> bytes:
        return self._kv + key.encode()

    def _user_key(self, raw: bytes) -> str | None:
        return _user_key_of(self._kv, raw)

    def _record(self, kv: dict[str, Any]) -> Record:
        key = self._user_key(decode_bytes(kv["key"]))
        assert key is not None
        return Record(key, decode_bytes(kv.get("value", "")), int(kv["mod_revision"]))

    # -- reads --------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        """The record under ``key``, or ``None`` (a linearizable read).

        Raises:
            StoreError: the store is closed.
            StoreUnavailableError: no endpoint answered.

        Complexity:
            O(log n), one round trip.
        """
        check_key(key)
        with self._lock:
            self._check_open()
            answer = self._session.request("kv/range", {"key": encode_bytes(self._key(key))})
        kvs = answer.get("kvs", ())
        return self._record(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str, *, start: str = "", limit: int | None = None) -> list[Record]:
        """The records whose key starts with ``prefix``, sorted by key.

        Raises:
            StoreError: bad arguments, or the store is closed.
            StoreUnavailableError: no endpoint answered.

        Complexity:
            O(log n + k) for k returned, one round trip.
        """
        check_range(prefix, start, limit)
        first = max(self._key(prefix), self._key(start))
        end = prefix_end(self._key(prefix))
        assert end is not None  # the kv/ namespace is never all 0xff
        if first >= end:
            return []
        payload: dict[str, Any] = {"key": encode_bytes(first), "range_end": encode_bytes(end)}
        if limit is not None:
            payload["limit"] = limit
        with self._lock:
            self._check_open()
            answer = self._session.request("kv/range", payload)
        return [self._record(kv) for kv in answer.get("kvs", ())]

    def revision(self) -> int:
        """etcd's current revision (shared by every prefix of that etcd).

        Raises:
            StoreError: the store is closed.
            StoreUnavailableError: no endpoint answered.

        Complexity:
            O(1), one round trip.
        """
        with self._lock:
            self._check_open()
            payload = {"key": encode_key(self._session.fence_key), "count_only": True}
            return int(self._session.request("kv/range", payload)["header"]["revision"])

    # -- the transaction ----------------------------------------------------

    def txn(
        self, compares: Sequence[Compare], writes: Sequence[Write], *, unique: str | None = None
    ) -> TxnResult:
        """One etcd transaction: if every compare holds, apply every write.

        Returns only once the outcome is known: after no answer, the fence
        is put and the marker read (see the module notes). With ``unique``
        (the key of a Put of ``writes`` that no other transaction writes,
        a journal entry's), that key is the marker: the transaction puts
        no marker of its own, one put fewer, and after no answer the key
        is read instead.

        Raises:
            StoreError: a malformed or oversized transaction (nothing sent),
                etcd refused it, our fence key was moved by another client
                (nothing written), or the store is closed.
            StoreUnavailableError: no commit within the retry budget;
                nothing was written.

        Complexity:
            O(c + w), one round trip without faults (two when the compares
            of a writing transaction fail).
        """
        check_txn(compares, writes, self.limits, unique)
        with self._lock:
            self._check_open()
            return commit(
                self._transport,
                self._session,
                self._kv,
                self._record,
                compares,
                writes,
                attempts=self._attempts,
                fencing=self.FENCING,
                unique=unique,
            )

    # -- the change feed ----------------------------------------------------

    def changes(self, after: int) -> tuple[list[Change], int]:
        """Every change with revision > ``after``, and the revision it is complete to.

        A watch thread follows the prefix; this call reads the current
        revision (one round trip) and waits for the watch to reach it. When
        the last revisions belong to other keys of the etcd (no event of
        ours will arrive), it puts its fence key as a sync point and waits
        for that instead.

        Raises:
            CompactedError: ``after`` is older than etcd's compaction.
            StoreError: the store is closed.
            StoreUnavailableError: etcd or the watch did not answer.

        Complexity:
            O(k log k) for k changes held, one round trip.
        """
        check_revision(after)
        with self._lock:
            self._check_open()
            if after < self._compacted:
                raise compacted_error(after, self._compacted)
            revision = self.revision()
            if after >= revision:
                return [], revision
            return self._follower.complete(after, revision)

    def watched(self, after: int, *, reach: int = 0) -> tuple[list[Change], int]:
        """The changes the watch has delivered after ``after``, without a round trip.

        Only those of the keys :meth:`watch_only` narrowed the watch to, if
        it was called. Complete up to the revision returned, which may lag
        etcd's by the watch's delay: a cache that follows the store this way costs no
        request per mutation (its transactions' compares catch what it has
        not seen yet). The first call starts the watch at ``after``.

        Args:
            after: the last revision the caller has seen.
            reach: wait (up to ``feed_wait`` seconds, no request) until the
                watch has delivered this revision, say the caller's own
                last commit: a cache must not apply the history before its
                own commit only in part (an address it just took may have
                been taken and released again in between). The revision
                returned is below ``reach`` only when the wait timed out.

        Raises:
            CompactedError: ``after`` is older than etcd's compaction.
            StoreError: the store is closed.

        Complexity:
            O(k log k) for k changes held; no round trip once the watch runs.
        """
        check_revision(after)
        with self._lock:
            self._check_open()
            if after < self._compacted:
                raise compacted_error(after, self._compacted)
            return self._follower.delivered(after, reach)

    def watch_only(self, prefixes: Sequence[str]) -> None:
        """Narrow what :meth:`watched` follows to the keys under ``prefixes``.

        The watch then covers the one key range from the smallest prefix to
        the end of the largest (etcd watches one range), so etcd sends this
        client only the events of those keys: a cache that follows a few
        kinds of record no longer receives every record, journal entry and
        marker of every other client (each event costs etcd and the client
        whatever the client does with it). ``changes`` stays complete: it
        reads the whole store's history with a watch of its own that stops
        once it has delivered the current revision. A caller that follows
        ``watched`` this way must wait (``reach``) only for revisions that
        wrote a key under ``prefixes``.

        Args:
            prefixes: key prefixes (text); empty: every key again.

        Raises:
            StoreError: ``prefixes`` is a bare text rather than a list, a
                prefix is not non-empty text, or the store is closed.

        Complexity:
            O(len(prefixes)); no request (the next ``watched`` starts the
            narrowed watch).

        >>> backend = EtcdBackend("127.0.0.1:2379", "ipam")
        >>> backend.watch_only(["owner/", "resv/"])
        >>> backend.close()
        """
        if isinstance(prefixes, (str, bytes)):
            # A bare text would be taken as one-character prefixes.
            raise StoreError(f"watch_only takes a list of prefixes, got {prefixes!r}")
        for prefix in prefixes:
            if type(prefix) is not str or not prefix:
                raise StoreError(f"a watched prefix must be non-empty text, got {prefix!r}")
        with self._lock:
            self._check_open()
            if not prefixes:
                self._follower.narrow(None)
                return
            end = prefix_end(self._key(max(prefixes)))
            assert end is not None  # the kv/ namespace is never all 0xff
            self._follower.narrow((self._key(min(prefixes)), end))

    def compact(self, revision: int) -> None:
        """Compact etcd's history up to ``revision`` (every prefix of that etcd).

        Raises:
            StoreError: ``revision`` is not an int in [0, current], or the
                store is closed.

        Complexity:
            O(d) for d revisions dropped (etcd's work), one round trip.
        """
        with self._lock:
            self._check_open()
            current = self.revision()
            if type(revision) is not int or not 0 <= revision <= current:
                raise StoreError(
                    f"cannot compact at revision {revision!r}: the store is at {current}"
                )
            if revision <= self._compacted or revision == 0:
                return
            try:
                self._transport.post("kv/compaction", {"revision": revision})
            except EtcdRequestError as exc:
                if exc.code != 11:  # 11: already compacted at or past it
                    raise store_error(exc) from None
            except EtcdUnavailable as exc:
                raise StoreUnavailableError(f"etcd did not compact: {exc}") from None
            self._compacted = revision

    def close(self) -> None:
        """Stop the watch, revoke the fence's lease (best effort); idempotent.

        A backend collected without ``close`` stops its watch thread at the
        watch's next event or idle timeout (5 s), with no request; its
        fence key expires with the lease (``lease_ttl``).

        Complexity:
            O(1), one round trip.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._follower.close()
            self._session.revoke()
            self._transport.close()

    def __enter__(self) -> EtcdBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _user_key_of(kv: bytes, raw: bytes) -> str | None:
    """The record key of etcd key ``raw`` under the records' prefix ``kv``; None if not one."""
    return raw[len(kv) :].decode() if raw.startswith(kv) else None
