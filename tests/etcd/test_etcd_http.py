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
        thread.join(10)
    assert not thread.is_alive()


def test_nothing_is_sent_for_a_body_it_cannot_encode() -> None:
    with GatewaySession() as session:
        with pytest.raises(ValueError, match="data=3"):
            session.post("http://127.0.0.1:1/v3/kv/put", data=3)
        with pytest.raises(ValueError, match="JSON"):
            session.post("http://127.0.0.1:1/v3/kv/put", json={"x": float("nan")}, timeout=1)
        assert session._connections == {}


def serve(answers: list[bytes]) -> tuple[int, threading.Thread, list[bytes]]:
    """A one-connection server on loopback: reads a request, sends the next answer.

    After the last answer it closes the connection. Returns the port, the
    thread, and the requests as received (head and body).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    received: list[bytes] = []

    listener.settimeout(10)  # a client that never comes fails the test, not hangs it

    def run() -> None:
        with listener:
            peer, _ = listener.accept()
            with peer:
                peer.settimeout(10)
                for answer in answers:
                    received.append(read_request(peer))
                    peer.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, received


def read_request(peer: socket.socket) -> bytes:
    """One request as received: the head, its blank line and the body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += peer.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += peer.recv(65536)
    return data


def test_answers_by_length_by_chunks_and_to_the_close() -> None:
    answers = [
        b'HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Type: application/json\r\n\r\n{"a":1}',
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"b"\r\n3\r\n:2}\r\n0\r\nX-Trailer: 1\r\n\r\n',
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        b'HTTP/1.0 200 OK\r\n\r\n{"c":3}',
    ]
    port, thread, received = serve(answers)
    url = f"http://127.0.0.1:{port}/v3/kv/range"
    with GatewaySession() as session:
        assert session.post(url, json={"k": 1}, timeout=5).json() == {"a": 1}
        assert session.post(url, data='{"k":2}', timeout=5).json() == {"b": 2}
        answer = session.post(url, data=b"{}", timeout=5)
        assert (answer.status_code, answer.reason, answer.content) == (404, "Not Found", b"no")
        assert len(session._connections) == 1  # all of these on one connection
        assert session.post(url, json={}, timeout=5).json() == {"c": 3}
        assert session._connections == {}  # HTTP/1.0 without a length: read to the close
    thread.join(10)
    assert not thread.is_alive()
    first = received[0].split(b"\r\n")
    assert first[0] == b"POST /v3/kv/range HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}".encode() in first
    assert received[0].endswith(b'\r\n\r\n{"k":1}')


def test_connection_close_is_honoured() -> None:
    port, thread, _ = serve(
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"]
    )
    with GatewaySession() as session:
        assert session.post(f"http://127.0.0.1:{port}/v3/kv/range", json={}, timeout=5).json() == {}
        assert session._connections == {}
    thread.join(10)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # cut short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}",  # a chunk cut short
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # not a chunk size
        b"SPDY/3 200 OK\r\n\r\n",  # not HTTP/1.x
        b"HTTP/1.1 OK\r\n\r\n",  # no status code
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",  # the headers never end
        b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n{}",  # not a length
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",  # no CRLF
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    ],
)
def test_a_malformed_answer_is_a_connection_error_and_drops_the_connection(answer: bytes) -> None:
    port, thread, _ = serve([answer])
    with GatewaySession() as session:
        with pytest.raises(requests.ConnectionError, match="Connection aborted"):
            session.post(f"http://127.0.0.1:{port}/v3/kv/range", json={}, timeout=5)
        assert session._connections == {}
    thread.join(10)
    assert not thread.is_alive()


def test_an_answer_without_a_body_is_not_waited_for() -> None:
    answers = [
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    ]
    port, thread, _ = serve(answers)
    url = f"http://127.0.0.1:{port}/v3/kv/range"
    with GatewaySession() as session:
        assert session.post(url, json={}, timeout=5).status_code == 204
        assert session.post(url, json={}, timeout=5).json() == {}
    thread.join(10)
    assert not thread.is_alive()


def test_bytes_past_an_answer_never_become_the_next_answer() -> None:
    # A server (or a proxy) that answers twice: the second answer must not
    # be read as the answer to the next request on the same connection.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(10)

    def run() -> None:
        with listener:
            first, _ = listener.accept()
            with first:
                first.settimeout(10)
                read_request(first)
                first.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
                    b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"old":1}'
                )
                second, _ = listener.accept()
                with second:
                    second.settimeout(10)
                    read_request(second)
                    second.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"new":2}')

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v3/kv/range"
    with GatewaySession() as session:
        assert session.post(url, json={}, timeout=5).json() == {}
        assert session.post(url, json={}, timeout=5).json() == {"new": 2}
    thread.join(10)
    assert not thread.is_alive()
