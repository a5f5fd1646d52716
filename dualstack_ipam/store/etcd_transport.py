"""How the etcd backend talks to etcd: JSON over the v3 gateway, with failover.

``etcd3gw`` talks to one host; this module holds one ``Etcd3Client`` per
endpoint and moves to the next one when a request cannot get an answer.
Every request has a timeout. Failures fall in two kinds, because a write
needs to know which one it met:

- :class:`EtcdUnavailable`: no answer (connection refused or reset, timeout,
  a 5xx such as "leader changed" or "request timed out"). For a write the
  outcome is *unknown*: it may have committed, or may still commit;
- :class:`EtcdRequestError`: etcd answered and refused the request (a
  malformed or oversized transaction, a compacted revision, an unknown
  lease): nothing was written.

Every client's session is a
:class:`~dualstack_ipam.store.etcd_http.GatewaySession`: a socket and a
small HTTP/1.1 reader under etcd3gw instead of ``requests`` (less than
half the CPU per request), which reads nothing from ``os.environ`` (no proxy variables,
which another thread may be changing while the watch thread sends a
request).

>>> encode_key("pools/a")
'cG9vbHMvYQ=='
>>> decode_bytes("cG9vbHMvYQ==")
b'pools/a'
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "EtcdRequestError",
    "EtcdTLS",
    "EtcdUnavailable",
    "Transport",
    "checked_write",
    "decode_bytes",
    "encode_bytes",
    "encode_key",
]


class EtcdUnavailable(Exception):
    """No answer from any endpoint tried: a write's outcome is unknown."""


class EtcdRequestError(Exception):
    """etcd answered with an error: the request was refused, nothing written.

    Attributes:
        code: the gRPC status code etcd gave (3 invalid argument, 5 not
            found, 8 resource exhausted, 11 out of range...).
        message: etcd's message.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"etcd refused the request: {message} (code {code})")
        self.code, self.message = code, message


@attrs.frozen
class EtcdTLS:
    """TLS settings for ``etcds://`` endpoints (every request's, the watch's too).

    Attributes:
        ca_cert: the CA bundle that signed the servers' certificates (None:
            the system's CAs).
        cert: the client certificate (PEM), for ``--client-cert-auth``.
        key: the client certificate's private key (PEM).
    """

    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None


def encode_bytes(data: bytes) -> str:
    """``data`` as the gateway's base64 text.

    Complexity:
        O(len(data)).

    >>> encode_bytes(b"\\xff")
    '/w=='
    """
    return base64.b64encode(data).decode("ascii")


def encode_key(key: str) -> str:
    """A text key as the gateway's base64 of its UTF-8 bytes.

    Complexity:
        O(len(key)).

    >>> encode_key("a")
    'YQ=='
    """
    return encode_bytes(key.encode("utf-8"))


def decode_bytes(text: str) -> bytes:
    """The bytes of the gateway's base64 ``text``.

    Complexity:
        O(len(text)).

    >>> decode_bytes("YQ==")
    b'a'
    """
    return base64.b64decode(text)


class Transport:
    """POST JSON to etcd's v3 gateway, failing over between endpoints.

    Args:
        endpoints: ``(host, port)`` pairs, tried in order from the last one
            that answered.
        timeout: seconds every request may take (connect and read).
        tls: TLS settings; None = plain HTTP.

    Raises:
        StoreError: ``etcd3gw`` is not installed (the ``etcd`` extra).

    Complexity:
        O(len(endpoints)) to build.

    >>> type(Transport([("127.0.0.1", 2379)], timeout=1.0)._clients[0].session).__name__
    'GatewaySession'
    """

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        *,
        timeout: float,
        tls: EtcdTLS | None = None,
    ) -> None:
        from dualstack_ipam.errors import StoreError

        try:
            from etcd3gw.client import Etcd3Client
        except ImportError:  # pragma: no cover - the extra is installed in tests
            raise StoreError(
                "the etcd backend needs etcd3gw: pip install 'dualstack_ipam[etcd]'"
            ) from None
        if not endpoints:
            raise StoreError("an etcd store needs at least one endpoint")
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self.tls = tls
        self._clients = [
            Etcd3Client(
                host=host,
                port=port,
                protocol="https" if tls is not None else "http",
                timeout=timeout,
                api_path="/v3/",
                session=self._session(tls),
            )
            for host, port in self.endpoints
        ]
        self._current = 0

    @staticmethod
    def _session(tls: EtcdTLS | None) -> Any:
        # Imported here: it needs requests, which comes with etcd3gw (checked above).
        from dualstack_ipam.store.etcd_http import GatewaySession

        if tls is None:
            return GatewaySession()
        return GatewaySession(tls.ca_cert, tls.cert, tls.key)

    @property
    def endpoint(self) -> str:
        """``host:port`` of the endpoint in use.

        Complexity:
            O(1).
        """
        host, port = self.endpoints[self._current]
        return f"{host}:{port}"

    def base_url(self, index: int | None = None) -> str:
        """The URL of an endpoint's gateway (``.../v3/``); the current one by default.

        Complexity:
            O(1).
        """
        client = self._clients[self._current if index is None else index]
        return f"{client.base_url}/v3/"

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one request to the current endpoint; on no answer, try the next.

        Each endpoint is tried once; a request that fails on all of them
        raises. The caller retries (with backoff) and, for a write, resolves
        the outcome first. A checked write (:func:`checked_write`) is sent
        once: after no answer it may have committed on that endpoint, and
        a copy sent to the next one would fail its compares and report a
        conflict for a write that applied; the next request goes there.

        Args:
            path: the gateway path (``kv/txn``, ``kv/range``...).
            payload: the JSON body.

        Returns:
            The decoded JSON answer.

        Raises:
            EtcdUnavailable: no endpoint answered (outcome unknown).
            EtcdRequestError: etcd refused the request (nothing written).

        Complexity:
            O(len(endpoints)) round trips at worst.
        """
        from etcd3gw import exceptions

        last = ""
        resend = not checked_write(path, payload)
        for _ in range(len(self._clients)):
            client = self._clients[self._current]
            try:
                answer: dict[str, Any] = client.post(client.get_url(path), json=payload)
                return answer
            except (
                exceptions.ConnectionFailedError,
                exceptions.ConnectionTimeoutError,
                exceptions.InternalServerError,
            ) as exc:
                last = f"{self.endpoint}: {type(exc).__name__} {exc.detail_text or ''}".strip()
            except exceptions.Etcd3Exception as exc:
                code, message = _error_of(exc.detail_text)
                if code in (4, 14):  # deadline exceeded, unavailable: no decision
                    last = f"{self.endpoint}: {message}"
                else:
                    raise EtcdRequestError(code, message) from None
            except ValueError as exc:  # a body that is not JSON: a proxy, not etcd
                last = f"{self.endpoint}: {exc}"
            self._current = (self._current + 1) % len(self._clients)
            if not resend:
                break
        raise EtcdUnavailable(last)

    def close(self) -> None:
        """Close every endpoint's HTTP session.

        Complexity:
            O(len(endpoints)).
        """
        for client in self._clients:
            client.session.close()


def checked_write(path: str, payload: dict[str, Any]) -> bool:
    """Whether a request is a checked write: a transaction with writes and a failure branch.

    Its outcome must be resolved after no answer, never learnt from a
    second copy (the fence bump that resolves it has no failure branch).

    Complexity:
        O(1).

    >>> checked_write("kv/txn", {"compare": [], "success": [{}], "failure": []})
    True
    >>> checked_write("kv/txn", {"compare": [], "success": [{}]})
    False
    """
    return path == "kv/txn" and bool(payload.get("success")) and "failure" in payload


def _error_of(text: str | None) -> tuple[int, str]:
    try:
        body = json.loads(text or "")
        return int(body.get("code", 2)), str(body.get("message") or body.get("error"))
    except (ValueError, AttributeError, TypeError):
        return 2, str(text)
