"""The ``requests`` session the etcd backend gives each ``etcd3gw`` client.

``etcd3gw`` sends every request with ``session.post(url, json=...)``. A
plain ``requests`` session prepares each call from scratch: it merges the
session's headers, cookies, hooks and settings, parses the URL, encodes
the JSON and checks for redirects, about 0.25-0.5 ms of CPU per request on
the 2-core machine of ``docs/etcd.md`` (``benchmarks/bench_etcd`` measures
it: the ``raw`` and ``raw, our session`` rows). The etcd backend only ever
POSTs JSON to a few gateway URLs, so :class:`JsonSession` prepares each URL's
request once and sends a copy of it with the new body: the same headers,
TLS settings, connection pool, timeouts and errors as before.

It never reads ``os.environ`` (``trust_env = False``): requests to etcd take
no proxy from the environment, which another thread may be changing.

This module needs ``requests`` (it comes with ``etcd3gw``, the ``etcd``
extra); :class:`~dualstack_ipam.store.etcd_transport.Transport` imports it
once ``etcd3gw`` is known to be installed.
"""

from __future__ import annotations

import json as json_module
from typing import Any

import requests
from requests.models import PreparedRequest

__all__ = ["JsonSession"]

_HEADERS = {"Content-Type": "application/json"}


class JsonSession(requests.Session):
    """A ``requests`` session whose JSON POSTs reuse one prepared request per URL.

    Any other call (a GET, form data, redirects asked for, other keyword
    arguments) is the plain session's. etcd's gateway sets no cookie and
    never redirects, so a prepared request stays valid; a response that
    redirects is returned as it is (etcd3gw then raises on its status).

    Complexity:
        O(1) to build; one prepared request kept per URL posted to.

    >>> session = JsonSession()
    >>> session.trust_env
    False
    >>> session.close()
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self._prepared: dict[str, PreparedRequest] = {}

    def post(  # type: ignore[override]
        self, url: str, data: Any = None, json: Any = None, **kwargs: Any
    ) -> requests.Response:
        """POST ``json`` to ``url`` from the URL's prepared request.

        Args:
            url: the gateway URL.
            data: form data or bytes: sent the plain session's way.
            json: the JSON body.
            **kwargs: ``timeout`` only; anything else goes the plain way.

        Returns:
            The response, as ``requests.Session.post``.

        Raises:
            requests.RequestException: as ``requests.Session.post``
                (connection refused or reset, timeout).
            ValueError: ``json`` holds what JSON cannot (NaN, say).

        Complexity:
            O(len(body)) plus one round trip.
        """
        if data is not None or json is None or kwargs.keys() - {"timeout"}:
            return super().post(url, data=data, json=json, **kwargs)
        template = self._prepared.get(url)
        if template is None:
            request = requests.Request("POST", url, data=b"{}", headers=_HEADERS)
            template = self._prepared[url] = self.prepare_request(request)
        prepared = template.copy()
        body = json_module.dumps(json, allow_nan=False, separators=(",", ":")).encode()
        prepared.body = body
        prepared.headers["Content-Length"] = str(len(body))
        return self.send(prepared, timeout=kwargs.get("timeout"), allow_redirects=False)
