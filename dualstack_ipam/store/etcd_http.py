"""The HTTP session the etcd backend gives each ``etcd3gw`` client.

``etcd3gw`` sends every request with ``session.post(url, json=...,
timeout=...)`` and reads ``status_code``, ``reason``, ``text`` and
``json()`` of the answer; its constructor takes the session to use
(``session=``). With a ``requests`` session, ``requests`` and ``urllib3``
cost about 0.75 ms of CPU per request on the 2-core machine of
``docs/etcd.md`` (preparing the request, merging settings and cookies,
parsing headers through ``email``, building the response), more than the
durable protocol itself, and with 4 processes on 2 cores CPU is the limit.
:class:`GatewaySession` is that session over a socket (``ssl`` for
``https``): one kept-alive HTTP/1.1 connection, the request written in one
``sendall``, the answer read whole by its own small reader (status line,
the three headers that matter, the body by length, by chunks or to the
close). The standard library's ``http.client`` was the first step; its
header parsing through the ``email`` package still cost about a sixth of
a durable node allocation's client CPU with 4 processes on 2 cores (py-spy,
GIL-held samples), and the reader here needs none of it. Malformed answers
raise ``http.client``'s exception classes, mapped as below. ``etcd3gw``
stays the client: its ``post`` checks
the status and raises its own errors, which the transport maps as before.
``benchmarks/bench_etcd`` measures both (``raw`` against ``raw-ours``).

What it keeps of ``requests``: its exceptions (``ConnectionError``,
``Timeout``, ``SSLError``), which ``etcd3gw`` catches; TLS with the given
CA bundle or ``requests``' own (certifi), the server's name checked, an optional
client certificate; one timeout per socket operation; no proxy and nothing
read from ``os.environ``. A kept connection that the server closed is
noticed before it is reused (as ``urllib3`` does), so a write is not sent
into a dead socket.

This module needs ``requests`` for its exceptions (it comes with
``etcd3gw``, the ``etcd`` extra);
:class:`~dualstack_ipam.store.etcd_transport.Transport` imports it once
``etcd3gw`` is known to be installed.
"""

from __future__ import annotations

import http.client
import json as json_module
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

import requests

__all__ = ["GatewaySession"]

_HEADERS = {"Content-Type": "application/json"}


class Answer:
    """The parts of a ``requests.Response`` that ``etcd3gw`` reads.

    Attributes:
        status_code: the HTTP status.
        reason: the HTTP reason phrase.
        content: the body.
    """

    def __init__(self, status_code: int, reason: str, content: bytes) -> None:
        self.status_code, self.reason, self.content = status_code, reason, content

    @property
    def text(self) -> str:
        """The body as text (etcd's gateway answers UTF-8 JSON).

        Complexity:
            O(len(body)).

        >>> Answer(404, "Not Found", b"no such path").text
        'no such path'
        """
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body's JSON.

        Raises:
            ValueError: a body that is not JSON (a proxy's page, say).

        Complexity:
            O(len(body)).

        >>> Answer(200, "OK", b'{"header": {"revision": "7"}}').json()["header"]
        {'revision': '7'}
        """
        return json_module.loads(self.content)


class GatewaySession:
    """The session of one ``etcd3gw`` client: POSTs over one kept-alive connection.

    Args:
        ca_cert: the CA bundle for ``https`` (None: ``requests``' bundle,
            certifi's public CAs).
        cert: the client certificate (PEM), with ``key``.
        key: the client certificate's private key (PEM).

    Complexity:
        O(1) to build; the connection is opened at the first request.

    >>> session = GatewaySession()
    >>> session.close()
    """

    def __init__(
        self, ca_cert: str | None = None, cert: str | None = None, key: str | None = None
    ) -> None:
        self._ca_cert, self._cert, self._key = ca_cert, cert, key
        self._context: ssl.SSLContext | None = None
        self._connections: dict[tuple[str, str, int], _Link] = {}
        self._paths: dict[str, tuple[tuple[str, str, int], str]] = {}
        self._lock = threading.Lock()

    def post(
        self, url: str, data: Any = None, json: Any = None, timeout: float | None = None
    ) -> Answer:
        """POST ``json`` to ``url`` and read the answer whole.

        Args:
            url: ``http(s)://host:port/path``.
            data: the body already encoded (text or bytes), as etcd3gw's
                own calls send it; or None.
            json: the JSON body (when ``data`` is None).
            timeout: seconds for the connection and for each read.

        Returns:
            The answer (any status: ``etcd3gw`` checks it).

        Raises:
            requests.SSLError: the TLS handshake failed (the certificate,
                the CA, or the server hung up during it).
            requests.Timeout: no connection or no answer within ``timeout``.
            requests.ConnectionError: refused, reset or closed before the
                answer was read.
            ValueError: ``json`` holds what JSON cannot (NaN, say), or
                ``data`` is neither text nor bytes; nothing was sent.

        Complexity:
            O(len(body) + len(answer)) plus one round trip.
        """
        if data is None:
            body = json_module.dumps(json, allow_nan=False, separators=(",", ":")).encode()
        elif isinstance(data, (str, bytes)):
            body = data.encode() if isinstance(data, str) else data
        else:
            raise ValueError(f"GatewaySession sends text, bytes or json=, got data={data!r:.60}")
        where, path = self._split(url)
        with self._lock:
            try:
                link = self._link(where, timeout)
            except BaseException as exc:
                raise _requests_error(exc, url) from None
            try:
                status, reason, content, keep = link.exchange(path, body)
            except BaseException as exc:
                link.close()
                del self._connections[where]
                raise _requests_error(exc, url) from None
            if not keep:
                link.close()
                del self._connections[where]
        return Answer(status, reason, content)

    def close(self) -> None:
        """Close the kept connections; the next request opens a new one.

        Complexity:
            O(1).

        >>> session = GatewaySession(); session.close(); session._connections
        {}
        """
        with self._lock:
            for connection in self._connections.values():
                connection.close()
            self._connections.clear()

    def _split(self, url: str) -> tuple[tuple[str, str, int], str]:
        known = self._paths.get(url)
        if known is None:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            known = (parts.scheme, parts.hostname or "", port), parts.path or "/"
            if len(self._paths) < 64:  # a handful of gateway paths
                self._paths[url] = known
        return known

    def _link(self, where: tuple[str, str, int], timeout: float | None) -> _Link:
        link = self._connections.get(where)
        if link is not None and (not link.idle() or _dropped(link.sock)):
            link.close()
            link = None
        if link is None:
            scheme, host, port = where
            sock = socket.create_connection((host, port), timeout)
            try:
                # Each request is one write: send it now, not after the
                # previous one's acknowledgement (Nagle), as http.client does.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if scheme == "https":
                    sock = self._tls().wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
            link = _Link(sock, host, port)
            self._connections[where] = link
        else:
            link.sock.settimeout(timeout)
        return link

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            # No CA given: requests' bundle (certifi), as the watch's requests
            # session and etcd3gw's own would use; not the system's store.
            context = ssl.create_default_context(
                cafile=self._ca_cert or requests.utils.DEFAULT_CA_BUNDLE_PATH
            )
            if self._cert is not None and self._key is not None:
                context.load_cert_chain(self._cert, self._key)
            self._context = context
        return self._context

    def __enter__(self) -> GatewaySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Link:
    """One kept-alive HTTP/1.1 connection to the gateway: a socket and its own buffer.

    Writes a request in one ``sendall`` and reads the answer: the status
    line, the header lines (only ``Content-Length``, ``Transfer-Encoding``
    and ``Connection`` matter), then the body by length, by chunks, or up to
    the close. ``http.client`` parses the headers through the ``email``
    package, a sixth of a durable allocation's CPU with 4 processes on 2
    cores (``docs/etcd.md``); the gateway's answers need none of it.
    Malformed answers raise ``http.client``'s own exceptions. The buffer is
    the link's own, so that bytes past an answer are seen: a link holding
    any (a server answering twice) is not used again, and no request can
    read another's answer.
    """

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self.sock = sock
        self.buffer = bytearray()
        name = f"[{host}]" if ":" in host else host
        self.head = (
            f"Host: {name}:{port}\r\nContent-Type: application/json\r\n"
            "Accept-Encoding: identity\r\nContent-Length: "
        ).encode("ascii")

    def exchange(self, path: str, body: bytes) -> tuple[int, str, bytes, bool]:
        """POST ``body`` to ``path``: (status, reason, content, whether to keep the link)."""
        self.sock.sendall(
            b"POST %s HTTP/1.1\r\n%s%d\r\n\r\n%s"
            % (path.encode("ascii"), self.head, len(body), body)
        )
        while True:
            line = self._line()
            if not line:
                raise http.client.RemoteDisconnected(
                    "the server closed the connection without answering"
                )
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise http.client.BadStatusLine(repr(line[:80]))
            status = int(parts[1])
            headers = self._headers()
            if status == 101:
                raise http.client.HTTPException("the server switched protocols")
            if status >= 200:
                break  # 1xx answers are interim: read on
        reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
        keep = parts[0] != b"HTTP/1.0" and b"close" not in headers.get(b"connection", b"")
        if status in (204, 304):
            content = b""  # no body, whatever the headers say
        elif b"chunked" in headers.get(b"transfer-encoding", b""):
            content = self._chunks()
        elif b"content-length" in headers:
            text = headers[b"content-length"]
            if not text.isdigit():
                raise http.client.HTTPException(f"bad Content-Length {text[:40]!r}")
            length = int(text)
            content = self._read(length)
            if len(content) != length:
                raise http.client.IncompleteRead(content, length - len(content))
        else:
            content, keep = self._read_to_close(), False
        return status, reason, content, keep and self.idle()

    def idle(self) -> bool:
        """Whether nothing is waiting on the link: no byte buffered here or in TLS."""
        pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
        return not self.buffer and not pending

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def _line(self) -> bytes:
        """One line with its end, or what came before the close (b"": nothing)."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            if len(self.buffer) > _LINE_LIMIT:
                raise http.client.LineTooLong("an answer's line")
            if not self._fill():
                line = bytes(self.buffer)
                self.buffer.clear()
                return line

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size and self._fill():
            pass
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _read_to_close(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def _headers(self) -> dict[bytes, bytes]:
        headers: dict[bytes, bytes] = {}
        for _ in range(_MAX_HEADERS):
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return headers
            if not line.endswith(b"\n"):
                raise http.client.IncompleteRead(line)
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        raise http.client.HTTPException(f"more than {_MAX_HEADERS} header lines")

    def _chunks(self) -> bytes:
        pieces: list[bytes] = []
        while True:
            line = self._line()
            digits = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not digits or digits.strip(_HEX):
                raise http.client.IncompleteRead(b"".join(pieces))
            size = int(digits, 16)
            if size == 0:
                self._headers()  # the trailer, up to its blank line
                return b"".join(pieces)
            piece = self._read(size + 2)  # the chunk and its CRLF
            if len(piece) != size + 2 or piece[size:] != b"\r\n":
                raise http.client.IncompleteRead(b"".join(pieces), size + 2 - len(piece))
            pieces.append(piece[:size])

    def close(self) -> None:
        """Close the socket.

        Complexity:
            O(1).
        """
        self.sock.close()


_LINE_LIMIT = 65536  # bytes in a status, header or chunk-size line
_MAX_HEADERS = 100
_HEX = b"0123456789abcdefABCDEF"


def _dropped(sock: socket.socket) -> bool:
    """Whether a kept connection was closed by the server (readable while idle)."""
    try:
        poller = select.poll()  # not select(): it refuses descriptors >= 1024
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _requests_error(exc: BaseException, url: str) -> BaseException:
    """The ``requests`` exception ``etcd3gw`` maps, for what ``http.client`` raised."""
    if not isinstance(exc, (OSError, http.client.HTTPException)):
        return exc  # not the network's: KeyboardInterrupt, a bug
    text = f"{url}: {type(exc).__name__}: {exc}"
    if isinstance(exc, ssl.SSLError):
        return requests.exceptions.SSLError(f"SSLError {text}")
    if isinstance(exc, TimeoutError):
        return requests.exceptions.Timeout(text)
    return requests.exceptions.ConnectionError(f"Connection aborted: {text}")
