"""Store URLs: which backend ``dualstack_ipam.open`` talks to, parsed in one place.

- ``memory://``: a new in-process store at each call (two calls never share);
- ``sqlite:///abs/path.db`` and ``sqlite:relative/path.db``: one SQLite file
  that the processes of one machine share; optional query settings
  ``?synchronous=FULL|EXTRA|NORMAL`` and ``?busy_timeout_ms=N``
  (see ``docs/store.md``);
- ``etcd://host:port[,host:port...]/prefix`` and ``etcds://...`` (TLS): an
  etcd cluster, the keys under ``prefix`` (see ``docs/etcd.md``); the client
  fails over between the endpoints. Needs the ``etcd`` extra (etcd3gw).

Anything else is an ``InvalidConfigError`` quoting the URL.

>>> parse_url("sqlite:state/ipam.db")
StoreURL(scheme='sqlite', path='state/ipam.db', endpoints=(), options={})
>>> parse_url("etcd://10.0.0.1:2379,10.0.0.2:2379/ipam").endpoints
(('10.0.0.1', 2379), ('10.0.0.2', 2379))
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.store import Backend, EtcdBackend, EtcdTLS, MemoryBackend, SQLiteBackend

__all__ = ["StoreURL", "open_backend", "parse_url"]

_SQLITE_OPTIONS = ("synchronous", "busy_timeout_ms")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$")


@attrs.frozen
class StoreURL:
    """A parsed store URL.

    Attributes:
        scheme: ``memory``, ``sqlite``, ``etcd`` or ``etcds``.
        path: the SQLite file, or the etcd key prefix ('' for memory).
        endpoints: etcd's ``(host, port)`` pairs, in the order given.
        options: the query settings (SQLite's ``synchronous``,
            ``busy_timeout_ms``).
    """

    scheme: str
    path: str
    endpoints: tuple[tuple[str, int], ...] = ()
    options: dict[str, str] = attrs.field(factory=dict)


def _bad(url: Any, why: str) -> InvalidConfigError:
    return InvalidConfigError(
        f"bad store URL {url!r}: {why} (expected memory://, sqlite:///abs/path.db, "
        "sqlite:relative/path.db or etcd://host:port[,host:port]/prefix)",
        value=url,
    )


def parse_url(url: Any) -> StoreURL:
    """Check a store URL and split it into its parts.

    Args:
        url: the URL text.

    Returns:
        Its :class:`StoreURL`.

    Raises:
        InvalidConfigError: not text, an unknown scheme, or a malformed URL
            (the message quotes it).

    Complexity:
        O(len(url)).

    >>> parse_url("sqlite:///var/lib/ipam.db?synchronous=NORMAL")
    StoreURL(scheme='sqlite', path='/var/lib/ipam.db', endpoints=(), \
options={'synchronous': 'NORMAL'})
    >>> parse_url("redis://x")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: bad store URL 'redis://x': unknown scheme \
'redis' (expected memory://, sqlite:///abs/path.db, sqlite:relative/path.db or \
etcd://host:port[,host:port]/prefix)
    """
    if not isinstance(url, str) or not url.strip():
        raise _bad(url, "not a non-empty str")
    if url != url.strip() or any(ch in url for ch in "\x00\n\r\t"):
        raise _bad(url, "blank or control characters")
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise _bad(url, "no scheme")
    scheme = scheme.lower()
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise _bad(url, str(exc)) from None
    if parts.fragment:
        raise _bad(url, "a fragment ('#') is not allowed")
    options = dict(query)
    if len(options) != len(query):
        raise _bad(url, "a setting is given twice")
    if scheme == "memory":
        if url.lower() != "memory://":
            raise _bad(url, "memory:// takes no path or settings")
        return StoreURL("memory", "")
    if scheme == "sqlite":
        if parts.netloc:
            raise _bad(url, f"a host ({parts.netloc!r}) is not allowed; use sqlite:///abs/path")
        path = unquote(parts.path)
        if not path or path == "/" or (url.startswith("sqlite://") and not path.startswith("/")):
            raise _bad(url, "no file path")
        if path.startswith("//"):
            raise _bad(url, "a path starting with '//'")
        unknown = sorted(set(options) - set(_SQLITE_OPTIONS))
        if unknown:
            raise _bad(url, f"unknown settings {unknown}; known: {list(_SQLITE_OPTIONS)}")
        return StoreURL("sqlite", path, options=options)
    if scheme in ("etcd", "etcds"):
        return StoreURL(scheme, unquote(parts.path).lstrip("/"), _endpoints(url, parts.netloc))
    raise _bad(url, f"unknown scheme {scheme!r}")


def _endpoints(url: str, netloc: str) -> tuple[tuple[str, int], ...]:
    if not netloc:
        raise _bad(url, "no host:port")
    found = []
    for item in netloc.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(url, f"bad endpoint {item!r} (host:port)")
        found.append((host, int(port)))
    return tuple(found)


def open_backend(url: Any) -> Backend:
    """The backend a store URL names, opened.

    Args:
        url: a store URL (see :func:`parse_url`).

    Returns:
        A new :class:`~dualstack_ipam.store.MemoryBackend` for ``memory://``,
        a :class:`~dualstack_ipam.store.SQLiteBackend` for a SQLite path, an
        :class:`~dualstack_ipam.store.EtcdBackend` for ``etcd://`` (TLS with
        the system's CA bundle for ``etcds://``); opening an etcd backend
        sends nothing, its first call does.

    Raises:
        InvalidConfigError: a malformed URL, a bad setting or path.
        StoreError: a file that is not our store (left untouched).

    Complexity:
        O(1) plus the backend's own opening.

    >>> open_backend("memory://").revision()
    0
    >>> open_backend("etcd://127.0.0.1:2379,127.0.0.1:2380/ipam")
    EtcdBackend('127.0.0.1:2379', prefix='ipam')
    """
    parsed = parse_url(url)
    if parsed.scheme == "memory":
        return MemoryBackend()
    if parsed.scheme == "sqlite":
        timeout = parsed.options.get("busy_timeout_ms", "5000")
        if not timeout.isdigit():
            raise _bad(url, f"busy_timeout_ms must be a number of milliseconds, got {timeout!r}")
        return SQLiteBackend(
            parsed.path,
            synchronous=parsed.options.get("synchronous", "FULL"),
            busy_timeout_ms=int(timeout),
        )
    return EtcdBackend(
        parsed.endpoints, parsed.path, tls=EtcdTLS() if parsed.scheme == "etcds" else None
    )
