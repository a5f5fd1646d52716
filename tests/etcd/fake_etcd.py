"""An in-memory etcd with etcd's own compare semantics, for fast tests of the backend.

:class:`FakeEtcd` is the key space of one etcd cluster: revisions,
``create_revision`` / ``mod_revision`` / ``version`` per key, leases,
compaction, transactions with etcd's compares (``MOD``, ``VERSION``,
``CREATE``, ``VALUE``; ``EQUAL``, ``NOT_EQUAL``, ``LESS``, ``GREATER``; an
absent key has revision 0 and no value) judged before any write, nested
transactions, and etcd's refusals (an unknown lease on the chosen branch,
a key put twice, or put and deleted, in one branch; a compacted or future
revision). Answers are those of etcd's v3 JSON gateway: 64-bit numbers as
strings, empty fields left out; ``test_fake_agrees_with_etcd.py`` checks
them against a real etcd. ``fake_faults.FakeTransport`` serves it to the real
backend and loses answers on request.

It has no watch: ``changes`` and ``watched`` need a real etcd.

>>> etcd = FakeEtcd()
>>> etcd.handle("kv/put", {"key": "YQ==", "value": "MQ=="})["header"]["revision"]
'2'
>>> etcd.versions("")
{'a': 1}
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

__all__ = ["FakeEtcd", "Refused"]

_NOT_FOUND = 5
_INVALID = 3
_OUT_OF_RANGE = 11


class Refused(Exception):
    """etcd refused a request (a gRPC status code and etcd's message).

    Attributes:
        code: the gRPC status code.
        message: etcd's message.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code, self.message = code, message


@attrs.define
class _Value:
    value: bytes
    create: int
    mod: int
    version: int
    lease: int


def _b(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def _s(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FakeEtcd:
    """The key space of one etcd cluster, in memory (thread-safe).

    Attributes:
        revision: the current revision (1 when empty, as etcd's).
        compacted: the revision of the last compaction (0: none).
        served: requests answered, by path.

    Complexity:
        O(1) to build; a request costs O(k log k) for k keys it ranges over.

    >>> FakeEtcd().revision
    1
    """

    def __init__(self) -> None:
        self.revision = 1
        self.compacted = 0
        self.served: Counter[str] = Counter()
        self._kv: dict[bytes, _Value] = {}
        self._leases: dict[int, int] = {}
        self._next_lease = 0x1234
        self._lock = threading.Lock()

    # -- what tests read ------------------------------------------------------

    def versions(self, prefix: str) -> dict[str, int]:
        """``version`` (puts since creation) of every key under ``prefix``, prefix cut.

        A request applied twice shows as version 2 of a key put once.

        Complexity:
            O(n) for n keys.

        >>> FakeEtcd().versions("p/")
        {}
        """
        start = prefix.encode()
        with self._lock:
            return {
                k[len(start) :].decode(): v.version
                for k, v in sorted(self._kv.items())
                if k.startswith(start)
            }

    def value(self, key: str) -> bytes | None:
        """The value under the etcd key ``key`` (the whole key, prefix included).

        Complexity:
            O(1).

        >>> FakeEtcd().value("a") is None
        True
        """
        with self._lock:
            found = self._kv.get(key.encode())
            return None if found is None else found.value

    def mod_revision(self, key: str) -> int:
        """The ``mod_revision`` of the etcd key ``key`` (0: absent).

        Complexity:
            O(1).

        >>> FakeEtcd().mod_revision("a")
        0
        """
        with self._lock:
            found = self._kv.get(key.encode())
            return 0 if found is None else found.mod

    def expire_leases(self) -> int:
        """Expire every lease now, as etcd does after their TTL; return how many.

        Their keys (the clients' fences and markers) are deleted, in one revision.

        Complexity:
            O(n) for n keys.

        >>> FakeEtcd().expire_leases()
        0
        """
        with self._lock:
            count = len(self._leases)
            for lease in list(self._leases):
                self._revoke(lease)
            return count

    # -- the gateway ----------------------------------------------------------

    def handle(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Apply one request of etcd's v3 JSON gateway and answer it.

        Args:
            path: ``kv/txn``, ``kv/range``, ``kv/put``, ``kv/deleterange``,
                ``kv/compaction``, ``lease/grant``, ``lease/keepalive``,
                ``lease/revoke``.
            payload: the request body, as JSON.

        Returns:
            The answer, as the gateway's JSON.

        Raises:
            Refused: etcd would refuse the request; nothing was applied.

        Complexity:
            O(k log k) for k keys ranged over or written.

        >>> FakeEtcd().handle("lease/grant", {"TTL": 5, "ID": 0})["TTL"]
        '5'
        """
        with self._lock:
            answer = self._handle(path, payload)
            self.served[path] += 1
            return answer

    def _handle(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        if path == "kv/txn":
            self._check(payload)
            choices = iter(self._choose(payload))
            before = self.revision
            changed: list[bool] = []
            body = self._txn(payload, choices, before + 1, changed)
            if any(changed):
                self.revision = before + 1
            return {"header": self._header(), **body}
        if path == "kv/range":
            return {"header": self._header(), **self._range(payload)}
        if path in ("kv/put", "kv/deleterange"):
            op = "request_put" if path == "kv/put" else "request_delete_range"
            answer = self._handle("kv/txn", {"success": [{op: payload}]})
            return {**answer["responses"][0][f"response_{op[8:]}"], "header": answer["header"]}
        if path == "kv/compaction":
            return self._compact(int(payload.get("revision", 0)))
        if path == "lease/grant":
            lease = int(payload.get("ID") or 0) or self._next_lease
            self._next_lease += 1
            self._leases[lease] = int(payload.get("TTL", 0))
            return {"header": self._header(), "ID": str(lease), "TTL": str(self._leases[lease])}
        if path == "lease/keepalive":
            lease = int(payload.get("ID", 0))
            result: dict[str, Any] = {"header": self._header(), "ID": str(lease)}
            if lease in self._leases:  # etcd answers TTL 0 (left out) for a lost lease
                result["TTL"] = str(self._leases[lease])
            return {"result": result}
        if path == "lease/revoke":
            lease = int(payload.get("ID", 0))
            if lease not in self._leases:
                raise Refused(_NOT_FOUND, "etcdserver: requested lease not found")
            self._revoke(lease)
            return {"header": self._header()}
        raise Refused(12, f"the fake etcd does not serve {path!r}")

    def _header(self) -> dict[str, Any]:
        return {"cluster_id": "1", "member_id": "1", "revision": str(self.revision)}

    def _revoke(self, lease: int) -> None:
        del self._leases[lease]
        held = [k for k, v in self._kv.items() if v.lease == lease]
        for key in held:
            del self._kv[key]
        if held:
            self.revision += 1

    def _compact(self, revision: int) -> dict[str, Any]:
        if revision <= self.compacted:
            raise Refused(_OUT_OF_RANGE, "mvcc: required revision has been compacted")
        if revision > self.revision:
            raise Refused(_OUT_OF_RANGE, "mvcc: required revision is a future revision")
        self.compacted = revision
        return {"header": self._header()}

    # -- transactions -----------------------------------------------------------

    def _check(self, txn: dict[str, Any]) -> None:
        """Refuse a key written twice in one branch, as etcd's API layer does (both branches)."""
        for branch in ("success", "failure"):
            self._overlaps(txn.get(branch) or ())

    def _overlaps(
        self, ops: Sequence[dict[str, Any]]
    ) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
        """etcd's ``checkIntervals``: the keys put and the ranges deleted by ``ops``.

        A key put twice, or put and deleted, in one branch (nested
        transactions included) is refused; the two branches of a nested
        transaction may put the same key (only one of them runs).
        """
        duplicate = Refused(_INVALID, "etcdserver: duplicate key given in txn request")
        dels = [
            self._interval(op["request_delete_range"]) for op in ops if "request_delete_range" in op
        ]

        def deleted(key: bytes) -> bool:
            return any(start <= key < end for start, end in dels)

        puts: set[bytes] = set()
        for op in ops:
            if "request_txn" not in op:
                continue
            nested = op["request_txn"]
            puts_then, dels_then = self._overlaps(nested.get("success") or ())
            puts_else, dels_else = self._overlaps(nested.get("failure") or ())
            for key in puts_then:
                if key in puts or deleted(key):
                    raise duplicate
                puts.add(key)
            for key in puts_else:
                if (key in puts and key not in puts_then) or deleted(key):
                    raise duplicate
                puts.add(key)
            dels += dels_then + dels_else
        for op in ops:
            if "request_put" in op:
                key = _b(op["request_put"].get("key"))
                if key in puts or deleted(key):
                    raise duplicate
                puts.add(key)
        return puts, dels

    @staticmethod
    def _interval(request: dict[str, Any]) -> tuple[bytes, bytes]:
        start, end = _b(request.get("key")), _b(request.get("range_end"))
        if not end:
            return start, start + b"\x00"
        return start, (b"\xff" * 64 if end == b"\x00" else end)

    def _choose(self, txn: dict[str, Any]) -> list[bool]:
        """The branch each (nested) transaction takes, in order, all judged before any write.

        etcd evaluates every compare, nested ones included, on the state
        before the transaction, then checks the leases of the puts on the
        chosen path only.
        """
        succeeded = all(self._holds(c) for c in txn.get("compare") or ())
        path = [succeeded]
        for op in txn.get("success" if succeeded else "failure") or ():
            if "request_put" in op:
                lease = int(op["request_put"].get("lease") or 0)
                if lease and lease not in self._leases:
                    raise Refused(_NOT_FOUND, "etcdserver: requested lease not found")
            elif "request_txn" in op:
                path += self._choose(op["request_txn"])
        return path

    def _holds(self, compare: dict[str, Any]) -> bool:
        if compare.get("range_end"):
            raise Refused(12, "the fake etcd compares single keys only")
        found = self._kv.get(_b(compare.get("key")))
        target = compare.get("target", "VERSION")
        if target == "VALUE":
            if found is None:
                return False
            have: Any = found.value
            want: Any = _b(compare.get("value"))
        else:
            field = {"MOD": "mod_revision", "VERSION": "version", "CREATE": "create_revision"}
            if target not in field:
                raise Refused(12, f"the fake etcd does not compare {target!r}")
            attr = {"MOD": "mod", "VERSION": "version", "CREATE": "create"}[target]
            have = 0 if found is None else getattr(found, attr)
            want = int(compare.get(field[target]) or 0)
        result = compare.get("result", "EQUAL")
        if result == "EQUAL":
            return bool(have == want)
        if result == "NOT_EQUAL":
            return bool(have != want)
        if result == "LESS":
            return bool(have < want)
        if result == "GREATER":
            return bool(have > want)
        raise Refused(_INVALID, f"unknown compare result {result!r}")

    def _txn(
        self, txn: dict[str, Any], path: Iterator[bool], revision: int, changed: list[bool]
    ) -> dict[str, Any]:
        succeeded = next(path)
        responses = [
            self._op(op, path, revision, changed)
            for op in txn.get("success" if succeeded else "failure") or ()
        ]
        body: dict[str, Any] = {"responses": responses} if responses else {}
        if succeeded:
            body["succeeded"] = True
        return body

    def _op(
        self, op: dict[str, Any], path: Iterator[bool], revision: int, changed: list[bool]
    ) -> dict[str, Any]:
        # Inner answers carry the revision as the transaction has it so far.
        if "request_txn" in op:
            nested = self._txn(op["request_txn"], path, revision, changed)
            return {"response_txn": {"header": {}, **nested}}
        if "request_range" in op:
            body = self._range(op["request_range"])
            return {"response_range": {"header": self._inner(revision, changed), **body}}
        if "request_put" in op:
            put = op["request_put"]
            key = _b(put.get("key"))
            old = self._kv.get(key)
            self._kv[key] = _Value(
                _b(put.get("value")),
                old.create if old is not None else revision,
                revision,
                old.version + 1 if old is not None else 1,
                int(put.get("lease") or 0),
            )
            changed.append(True)
            return {"response_put": {"header": self._inner(revision, changed)}}
        if "request_delete_range" in op:
            keys = self._keys(op["request_delete_range"])
            for key in keys:
                del self._kv[key]
            changed.append(bool(keys))
            answer: dict[str, Any] = {"header": self._inner(revision, changed)}
            if keys:
                answer["deleted"] = str(len(keys))
            return {"response_delete_range": answer}
        raise Refused(_INVALID, f"unknown operation {sorted(op)!r}")

    @staticmethod
    def _inner(revision: int, changed: list[bool]) -> dict[str, str]:
        return {"revision": str(revision if any(changed) else revision - 1)}

    def _keys(self, request: dict[str, Any]) -> list[bytes]:
        start, end = _b(request.get("key")), _b(request.get("range_end"))
        if not end:
            return [start] if start in self._kv else []
        if end == b"\x00":  # etcd: every key from ``start`` on
            return sorted(k for k in self._kv if k >= start)
        return sorted(k for k in self._kv if start <= k < end)

    def _range(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = self._keys(request)
        answer: dict[str, Any] = {}
        if keys:
            answer["count"] = str(len(keys))
        if request.get("count_only"):
            return answer
        limit = int(request.get("limit") or 0)
        if limit and len(keys) > limit:
            keys, answer["more"] = keys[:limit], True
        if keys:
            answer["kvs"] = [self._kv_json(k) for k in keys]
        return answer

    def _kv_json(self, key: bytes) -> dict[str, Any]:
        found = self._kv[key]
        kv = {
            "key": _s(key),
            "create_revision": str(found.create),
            "mod_revision": str(found.mod),
            "version": str(found.version),
        }
        if found.value:
            kv["value"] = _s(found.value)
        if found.lease:
            kv["lease"] = str(found.lease)
        return kv
