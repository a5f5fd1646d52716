"""The session the backend gives etcd3gw: http.client under etcd3gw's own client."""

from __future__ import annotations

import base64
import socket
import threading

import pytest
import requests
from etcd3gw import exceptions
from etcd3gw.client import Etcd3Client

from dualstack_ipam.store.etcd_http import GatewaySession
from dualstack_ipam.store.etcd_server import EtcdServer


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def client_of(endpoint: str, session: GatewaySession) -> Etcd3Client:
    host, port = endpoint.rsplit(":", 1)
    return Etcd3Client(host=host, port=int(port), timeout=5, api_path="/v3/", session=session)  # type: ignore[arg-type]


def test_etcd3gw_works_on_it(etcd_endpoint: str) -> None:
    with GatewaySession() as session:
        client = client_of(etcd_endpoint, session)
        assert client.create("http-test/a", "1") is True
        assert client.create("http-test/a", "2") is False  # create-if-absent
        assert client.get("http-test/a") == [b"1"]
        client.put("http-test/b", "x" * 5000)  # a body larger than one packet
        assert client.get("http-test/b") == [b"x" * 5000]
        assert len(session._connections) == 1  # one kept-alive connection


def test_etcd_errors_come_back_as_etcd3gw_errors(etcd_endpoint: str) -> None:
    with GatewaySession() as session:
        client = client_of(etcd_endpoint, session)
        with pytest.raises(exceptions.Etcd3Exception) as info:
            client.post(client.get_url("kv/put"), json={"key": "not base64!"})
        assert "illegal base64" in (info.value.detail_text or "")
        assert client.create("http-test/after-error", "1") is True  # the connection goes on


def test_a_connection_the_server_closed_is_not_reused(etcd: EtcdServer) -> None:
    with GatewaySession() as session:
        client = client_of(etcd.endpoint, session)
        assert client.create("k", "1") is True
        etcd.kill()
        etcd.start()
        # The kept connection is dead: noticed before the write, a new one answers.
        assert client.create("k2", "1") is True


def test_no_answer_raises_requests_own_errors() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with GatewaySession() as session:
            with pytest.raises(requests.Timeout):
                session.post(f"http://127.0.0.1:{port}/v3/kv/range", json={}, timeout=0.2)
            silent.close()
            with pytest.raises(requests.ConnectionError):
                session.post(f"http://127.0.0.1:{port}/v3/kv/range", json={}, timeout=0.2)


def test_etcd3gw_maps_them_to_its_connection_errors() -> None:
    with GatewaySession() as session:
        client = client_of("127.0.0.1:1", session)
        with pytest.raises(exceptions.ConnectionFailedError) as info:
            client.post(client.get_url("kv/range"), json={"key": b64("a")})
        assert "Connection aborted" in (info.value.detail_text or "")


def test_a_server_hanging_up_before_answering_is_a_connection_error() -> None:
    with socket.socket() as rude:
        rude.bind(("127.0.0.1", 0))
        rude.listen()
        port = rude.getsockname()[1]

        def hang_up() -> None:
            peer, _ = rude.accept()
            peer.recv(65536)
            peer.close()

        thread = threading.Thread(target=hang_up)
        thread.start()
        with GatewaySession() as session, pytest.raises(requests.ConnectionError, match="closed"):
            session.post(f"http://127.0.0.1:{port}/v3/kv/put", json={}, timeout=2)
        thread.join()


def test_nothing_is_sent_for_a_body_it_cannot_encode() -> None:
    with GatewaySession() as session:
        with pytest.raises(ValueError, match="data=3"):
            session.post("http://127.0.0.1:1/v3/kv/put", data=3)
        with pytest.raises(ValueError, match="JSON"):
            session.post("http://127.0.0.1:1/v3/kv/put", json={"x": float("nan")}, timeout=1)
        assert session._connections == {}
