"""The in-memory etcd of the fast tests answers as a real etcd does.

Random requests of etcd's v3 JSON gateway — transactions with every kind
of compare (``MOD``, ``VERSION``, ``CREATE``, ``VALUE``; ``EQUAL``,
``NOT_EQUAL``, ``LESS``, ``GREATER``), puts, deletes, ranges and a nested
transaction in either branch, keys put twice; ranges with a limit or a
count only — go to a real etcd and to :class:`FakeEtcd`; the answers must
be the same, revisions counted from each one's start. And the backend over
the fake agrees with the memory backend, as over a real etcd
(``test_etcd_property.py``).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from dualstack_ipam.store import Compare, Delete, MemoryBackend, Put, Record, Write
from dualstack_ipam.store.etcd import EtcdBackend
from etcd.fake_etcd import FakeEtcd, Refused
from etcd.fake_faults import FakeTransport

NAMES = ["a", "b", "c/1", "c/2"]
Request = tuple[str, dict[str, Any]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Keys:
    """Builds requests on keys under one prefix, revisions relative to a base."""

    def __init__(self, prefix: str, base: int) -> None:
        self.prefix, self.base = prefix, base

    def key(self, name: str) -> str:
        return _b64(f"{self.prefix}{name}".encode())

    def span(self) -> dict[str, str]:
        start = self.prefix.encode()
        return {"key": _b64(start), "range_end": _b64(start[:-1] + bytes([start[-1] + 1]))}

    def rev(self, n: int) -> str:
        return str(self.base + n if n else 0)


@st.composite
def _op(draw: st.DrawFn, nested: bool = True) -> Any:
    kind = draw(st.sampled_from(["put", "delete", "range", "span"] + (["txn"] if nested else [])))
    name = draw(st.sampled_from(NAMES))
    if kind == "put":
        return ("put", name, draw(st.binary(max_size=2)))
    if kind == "txn":
        return ("txn", draw(_txn(nested=False)))
    return (kind, name)


@st.composite
def _compare(draw: st.DrawFn) -> Any:
    target = draw(st.sampled_from(["MOD", "VERSION", "CREATE", "VALUE"]))
    result = draw(st.sampled_from(["EQUAL", "NOT_EQUAL", "LESS", "GREATER"]))
    value: Any = draw(st.binary(max_size=2)) if target == "VALUE" else draw(st.integers(0, 5))
    return (draw(st.sampled_from(NAMES)), target, result, value)


@st.composite
def _txn(draw: st.DrawFn, nested: bool = True) -> Any:
    return (
        draw(st.lists(_compare(), max_size=2)),
        draw(st.lists(_op(nested), max_size=3)),
        draw(st.lists(_op(nested), max_size=2)),
    )


def _request(keys: Keys, drawn: Any) -> Request:
    if drawn[0] == "range":
        _, name, limit, count_only = drawn
        if name is None:
            return "kv/range", {**keys.span(), "limit": limit, "count_only": count_only}
        return "kv/range", {"key": keys.key(name)}
    return "kv/txn", _txn_json(keys, drawn[1])


def _txn_json(keys: Keys, txn: Any) -> dict[str, Any]:
    compares, success, failure = txn
    tests = []
    for name, target, result, value in compares:
        test = {"key": keys.key(name), "target": target, "result": result}
        if target == "VALUE":
            test["value"] = _b64(value)
        elif target == "VERSION":
            test["version"] = str(value)
        else:
            test[{"MOD": "mod_revision", "CREATE": "create_revision"}[target]] = keys.rev(value)
        tests.append(test)
    return {
        "compare": tests,
        "success": [_op_json(keys, op) for op in success],
        "failure": [_op_json(keys, op) for op in failure],
    }


def _op_json(keys: Keys, op: Any) -> dict[str, Any]:
    if op[0] == "put":
        return {"request_put": {"key": keys.key(op[1]), "value": _b64(op[2])}}
    if op[0] == "delete":
        return {"request_delete_range": {"key": keys.key(op[1])}}
    if op[0] == "range":
        return {"request_range": {"key": keys.key(op[1])}}
    if op[0] == "span":
        return {"request_range": keys.span()}
    return {"request_txn": _txn_json(keys, op[1])}


REQUESTS = st.lists(
    st.one_of(
        st.tuples(st.just("txn"), _txn()),
        st.tuples(
            st.just("range"), st.none() | st.sampled_from(NAMES), st.integers(0, 3), st.booleans()
        ),
    ),
    min_size=1,
    max_size=8,
)


def _normal(answer: Any, keys: Keys) -> Any:
    """An answer without what differs between etcds (ids, terms); revisions shifted."""
    if isinstance(answer, list):
        return [_normal(item, keys) for item in answer]
    if not isinstance(answer, dict):
        return answer
    found: dict[str, Any] = {}
    for field, value in answer.items():
        if field == "header":
            continue
        if field in ("mod_revision", "create_revision"):
            value = int(value) - keys.base
        elif field == "key":
            value = base64.b64decode(value).decode()[len(keys.prefix) :]
        else:
            value = _normal(value, keys)
        found[field] = value
    if "header" in answer and "revision" in answer["header"]:
        found["revision"] = int(answer["header"]["revision"]) - keys.base
    return found


def _real(endpoint: str, path: str, payload: dict[str, Any]) -> Any:
    answer = requests.post(f"http://{endpoint}/v3/{path}", json=payload, timeout=5)
    if answer.status_code != 200:
        body = answer.json()
        return ("refused", int(body["code"]), body["message"])
    return answer.json()


def _fake(etcd: FakeEtcd, path: str, payload: dict[str, Any]) -> Any:
    try:
        return etcd.handle(path, payload)
    except Refused as exc:
        return ("refused", exc.code, exc.message)


@settings(max_examples=40, deadline=None)
@given(REQUESTS)
def test_the_fake_answers_as_etcd_does(etcd_endpoint: str, drawn: list[Any]) -> None:
    prefix = f"fake/{uuid.uuid4().hex[:8]}/"
    start = _real(etcd_endpoint, "kv/range", {"key": _b64(b"\x00"), "count_only": True})
    real_keys = Keys(prefix, int(start["header"]["revision"]))
    fake, fake_keys = FakeEtcd(), Keys(prefix, 1)
    for item in drawn:
        path, payload = _request(real_keys, item)
        got = _real(etcd_endpoint, path, payload)
        path, payload = _request(fake_keys, item)
        want = _fake(fake, path, payload)
        if isinstance(got, tuple) or isinstance(want, tuple):
            assert got == want, (payload, got, want)
        else:
            assert _normal(got, real_keys) == _normal(want, fake_keys), payload


def _shift(record: Record | None, base: int) -> tuple[str, bytes, int] | None:
    return None if record is None else (record.key, record.value, record.revision - base)


Step = tuple[list[tuple[str, int]], list[tuple[str, bytes | None]]]
STEPS = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from(NAMES), st.integers(0, 6)),
            max_size=2,
            unique_by=lambda c: c[0],
        ),
        st.lists(
            st.tuples(st.sampled_from(NAMES), st.none() | st.binary(max_size=3)),
            max_size=3,
            unique_by=lambda w: w[0],
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(STEPS)
def test_the_backend_over_the_fake_agrees_with_memory(program: list[Step]) -> None:
    model = MemoryBackend()
    transport = FakeTransport(FakeEtcd())
    with EtcdBackend("fake:2379", "prop", transport=transport) as fake:
        base = fake.revision()
        for compares, writes in program:
            ops: list[Write] = [Put(k, v) if v is not None else Delete(k) for k, v in writes]
            expected = model.txn([Compare(k, r) for k, r in compares], ops)
            got = fake.txn([Compare(k, r + base if r else 0) for k, r in compares], ops)
            assert got.succeeded == expected.succeeded
            assert got.revision - base == expected.revision
            assert {k: _shift(v, base) for k, v in got.current.items()} == {
                k: _shift(v, 0) for k, v in expected.current.items()
            }
        assert [_shift(r, base) for r in fake.get_prefix("")] == [
            _shift(r, 0) for r in model.get_prefix("")
        ]
        assert fake.revision() - base == model.revision()
