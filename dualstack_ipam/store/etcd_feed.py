"""The etcd backend's change feed: one watch, followed by a thread of its own.

etcd keeps the history of every key until compaction; a watch from a past
revision replays it, then streams new changes. ``etcd3gw``'s watch stops
silently when the server restarts, so the loop is ours: on any break it
reconnects (the next endpoint) and resumes after the last revision it
delivered. Watching the whole key space (the default), every revision
brings an event, so the feed knows it is complete up to a revision once it
has seen that revision's events, whatever other prefixes wrote; a watch of
the prefix alone cannot tell "nothing of ours yet" from "nothing of ours
at all", and the backend then writes a sync point (``EtcdBackend.changes``).

The watch starts at ``after``, not ``after + 1``: etcd keeps the compaction
revision itself, so starting one earlier makes "``after`` is older than
the compaction" fail exactly as the memory and SQLite backends do.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from dualstack_ipam.store.etcd_transport import Transport, decode_bytes, encode_bytes
from dualstack_ipam.store.records import Change

__all__ = ["Feed"]


class Feed:
    """The changes of one key range after a revision, kept by a watch thread.

    Args:
        transport: gives the endpoints and TLS settings.
        start: the first key of the watched range (bytes).
        end: the end of the range (exclusive).
        decode: maps an etcd key to the caller's key, or None to drop it
            from the list (internal keys still advance ``seen``).
        after: the feed holds the changes with revision > ``after``.
        idle: seconds a silent watch stays open before it is reopened.
        until: stop the watch once it has delivered this revision (a
            one-off read of the history); None: follow until closed.

    Attributes:
        after: as given.
        seen: every change of the range up to this revision is held.
        compacted: etcd's compaction revision, once the watch found
            ``after`` (or a resume point) compacted; the feed has stopped.

    Complexity:
        O(1) memory per change held.
    """

    def __init__(
        self,
        transport: Transport,
        start: bytes,
        end: bytes,
        decode: Callable[[bytes], str | None],
        after: int,
        *,
        idle: float = 5.0,
        until: int | None = None,
    ) -> None:
        self.after = after
        self.until = until
        # Revision 1 is etcd's initial one: no change ever has it.
        self.seen = max(after, 1)
        self.compacted: int | None = None
        self._transport, self._start, self._end, self._decode = transport, start, end, decode
        self._idle = idle
        self._changes: list[Change] = []
        self._cond = threading.Condition()
        self._closed = False
        self._response: Any = None
        name = "etcd-feed" if until is None else "etcd-feed-until"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wait(self, revision: int, timeout: float) -> bool:
        """Wait until the feed holds every change up to ``revision``.

        Returns:
            True when it does; False after ``timeout`` seconds, or when the
            feed stopped on a compaction.

        Complexity:
            O(1) per change delivered meanwhile.
        """
        with self._cond:
            self._cond.wait_for(
                lambda: self.seen >= revision or self.compacted is not None or self._closed,
                timeout,
            )
            return self.seen >= revision and self.compacted is None

    def since(self, after: int, upto: int) -> list[Change]:
        """The held changes with ``after`` < revision <= ``upto``, in order.

        Changes at or below ``after`` are dropped from memory: the caller
        follows the feed forwards.

        Complexity:
            O(k log k) for k changes held.
        """
        with self._cond:
            if after > self.after:
                self._changes = [c for c in self._changes if c.revision > after]
                self.after = after
            found = [c for c in self._changes if after < c.revision <= upto]
        found.sort(key=lambda change: (change.revision, change.key))
        return found

    def close(self) -> None:
        """Stop the watch thread.

        Complexity:
            O(1).
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        # Closing the response from here would block until its read returns;
        # the (daemon) thread leaves at its next event or idle timeout instead.

    def _run(self) -> None:
        import requests
        import urllib3

        transport = self._transport
        index = 0
        session = requests.Session()
        # As the transport's sessions: never read proxy settings from
        # os.environ, which another thread may be changing while this one
        # iterates it (the watch thread died of "dictionary changed size").
        session.trust_env = False
        if transport.tls is not None:
            if transport.tls.ca_cert is not None:
                session.verify = transport.tls.ca_cert
            if transport.tls.cert is not None and transport.tls.key is not None:
                session.cert = (transport.tls.cert, transport.tls.key)
        failures = 0
        while not self._closed:
            # Resume at the last revision held: etcd replays the history after it.
            request: dict[str, Any] = {
                "create_request": {
                    "key": encode_bytes(self._start),
                    "range_end": encode_bytes(self._end),
                    "start_revision": max(self.seen, 1),
                }
            }
            try:
                self._response = session.post(
                    transport.base_url(index) + "watch",
                    json=request,
                    stream=True,
                    timeout=(transport.timeout, self._idle),
                )
                if self._closed:
                    break
                raw = self._response.raw
                # A chunked stream (etcd's gateway) is read chunk by chunk;
                # anything else (a proxy that buffers) the plain way.
                lines = _lines(raw) if raw.chunked else self._response.iter_lines()
                for line in lines:
                    if self._closed:
                        break
                    if line.strip():
                        failures = 0
                        if not self._take(json.loads(line).get("result", {})):
                            self._closed = True
                            break
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
                OSError,
                ValueError,
                AttributeError,
            ):
                failures += 1
            finally:
                if self._response is not None:
                    self._response.close()
            if failures:
                index = (index + 1) % len(transport.endpoints)
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, min(0.05 * failures, 1.0))
        session.close()

    def _take(self, result: dict[str, Any]) -> bool:
        """Apply one watch response; False when the watch cannot go on."""
        if result.get("canceled"):
            with self._cond:
                self.compacted = int(result.get("compact_revision", 0)) or self.seen
                self._cond.notify_all()
            return False
        events = result.get("events", ())
        if not events:
            return True
        with self._cond:
            for event in events:
                kv = event["kv"]
                revision = int(kv.get("mod_revision", 0))
                if revision <= self.seen:
                    continue
                key = self._decode(decode_bytes(kv["key"]))
                if key is not None:
                    deleted = event.get("type") == "DELETE"
                    value = None if deleted else decode_bytes(kv.get("value", ""))
                    self._changes.append(Change(key, revision, value))
            # One response holds whole revisions: its last one is complete.
            self.seen = max(self.seen, int(events[-1]["kv"].get("mod_revision", 0)))
            self._cond.notify_all()
        return self.until is None or self.seen < self.until


def _lines(raw: Any) -> Iterator[bytes]:
    """The newline-separated messages of a streamed response, each as soon as it is whole.

    Reads the urllib3 response chunk by chunk as etcd's gateway writes them
    (one message and its newline at a time), without ``requests``'
    ``iter_lines``, whose layers of generators cost more than the JSON of
    the message (each process reads every allocation's event). Errors are
    urllib3's and the socket's own (``Feed._run`` reconnects on any).

    Complexity:
        O(len(chunk)) per chunk.
    """
    pending = b""
    for chunk in raw.stream(None, decode_content=True):
        if pending:
            chunk = pending + chunk
        if not chunk.endswith(b"\n"):
            *whole, pending = chunk.split(b"\n")
            yield from whole
            continue
        pending = b""
        if chunk.count(b"\n") == 1:
            yield chunk
        else:
            yield from chunk.split(b"\n")
    if pending:
        yield pending
