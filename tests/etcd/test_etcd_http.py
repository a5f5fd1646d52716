"""The session the backend gives etcd3gw: each URL prepared once, the same answers."""

from __future__ import annotations

import base64

import pytest
import requests

from dualstack_ipam.store.etcd_http import JsonSession


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_posts_to_one_url_reuse_one_prepared_request(etcd_endpoint: str) -> None:
    url = f"http://{etcd_endpoint}/v3/kv/"
    with JsonSession() as session:
        for n in range(3):
            answer = session.post(
                url + "put", json={"key": b64(f"http-test/{n}"), "value": b64(str(n))}, timeout=5
            )
            assert answer.status_code == 200
        got = session.post(
            url + "range",
            json={"key": b64("http-test/"), "range_end": b64("http-test0")},
            timeout=5,
        ).json()
        assert [base64.b64decode(kv["value"]) for kv in got["kvs"]] == [b"0", b"1", b"2"]
        assert sorted(session._prepared) == [url + "put", url + "range"]


def test_each_body_is_its_own(etcd_endpoint: str) -> None:
    """The copy of a prepared request carries the new body and its length, not the last."""
    url = f"http://{etcd_endpoint}/v3/kv/put"
    with JsonSession() as session:
        session.post(url, json={"key": b64("http-len/a"), "value": b64("x" * 500)}, timeout=5)
        session.post(url, json={"key": b64("http-len/b"), "value": b64("y")}, timeout=5)
        got = session.post(
            url.replace("put", "range"), json={"key": b64("http-len/b")}, timeout=5
        ).json()
        assert base64.b64decode(got["kvs"][0]["value"]) == b"y"


def test_other_calls_go_the_plain_way(etcd_endpoint: str) -> None:
    with JsonSession() as session:
        version = session.get(f"http://{etcd_endpoint}/version", timeout=5).json()
        assert "etcdserver" in version
        answer = session.post(
            f"http://{etcd_endpoint}/v3/kv/range",
            json={"key": b64("none")},
            timeout=5,
            allow_redirects=True,
        )
        assert answer.status_code == 200
        assert session._prepared == {}


def test_no_answer_raises_requests_own_error() -> None:
    with JsonSession() as session, pytest.raises(requests.ConnectionError):
        session.post("http://127.0.0.1:1/v3/kv/range", json={"key": b64("a")}, timeout=1)


def test_nan_is_refused_before_sending() -> None:
    with JsonSession() as session, pytest.raises(ValueError, match="JSON"):
        session.post("http://127.0.0.1:1/v3/kv/put", json={"x": float("nan")}, timeout=1)
