"""The journal: one entry per mutation, written in the mutation's own transaction.

An entry's record lives under ``journal/<writer>/<seq>``: the writer is a
random id per :class:`~dualstack_ipam.Cluster` object and the sequence its own
counter, so writers never share a key (no hot counter record). The entry's
revision is its record's revision, which is the store revision of the
transaction that made the change: revisions strictly increase in commit
order, with gaps.

>>> entry = JournalEntry(7, datetime(2026, 1, 1, tzinfo=UTC), "ops@host:1",
...                      "allocate", "node", "node-1", ("10.244.0.0/24",), {})
>>> decode_entry(encode_entry(entry), 7) == entry
True
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import attrs

from dualstack_ipam.errors import StoreError

__all__ = ["KINDS", "OPS", "JournalEntry", "decode_entry", "encode_entry"]

OPS = (
    "allocate",
    "occupy",
    "update",
    "release",
    "reserve",
    "unreserve",
    "add-range",
    "repair",
    "import",
)
"""Every ``op`` an entry may carry (api-durable.md); ``add-range`` and ``repair``
are not written yet (a repair is written as the ``release`` / ``occupy`` it is made of)."""

KINDS = ("node", "service", "reservation", "range")
"""Every ``kind`` an entry may carry; ``range`` is not written yet."""


@attrs.frozen
class JournalEntry:
    """One change of a durable cluster, as the journal recorded it.

    Attributes:
        revision: the store revision of the change (strictly increasing).
        time: when it was committed (UTC, as the writer's clock read it).
        actor: who made it (``user@host:pid`` by default).
        op: ``allocate``, ``occupy``, ``update``, ``release``, ``import``, ...
        kind: ``node``, ``service`` or ``reservation`` (``range`` later).
        key: the node name or Service key; for a reservation, the range
            as canonical text (``10.96.0.0/28``, ``10.96.0.1-10.96.0.9``).
        addresses: the key's addresses after the change, as text (CIDRs for
            nodes, IPs for Services), in the allocator's order; empty after
            a release. A reservation's: its range after ``reserve``, empty
            after ``unreserve``.
        data: what replay needs beyond the addresses: ``{}`` for nodes and
            Services (the allocators keep nothing else per key); for a
            reservation ``side`` (``nodes`` / ``services``), ``range`` and,
            for ``reserve`` and ``import``, ``reason``.
    """

    revision: int
    time: datetime
    actor: str
    op: str
    kind: str
    key: str
    addresses: tuple[str, ...]
    data: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (``time`` in ISO 8601).

        Complexity:
            O(size of the entry).

        >>> JournalEntry(3, datetime(2026, 1, 1, tzinfo=UTC), "a", "release",
        ...              "service", "default/web", ()).to_dict()["time"]
        '2026-01-01T00:00:00+00:00'
        """
        return {
            "revision": self.revision,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "op": self.op,
            "kind": self.kind,
            "key": self.key,
            "addresses": list(self.addresses),
            "data": self.data,
        }


def encode_entry(entry: JournalEntry) -> bytes:
    """A journal record's value (the revision is the record's own, not stored).

    Complexity:
        O(size of the entry).

    >>> encode_entry(JournalEntry(0, datetime(2026, 1, 1, tzinfo=UTC), "a",
    ...                           "release", "node", "n", ()))[:30]
    b'{"time":"2026-01-01T00:00:00+0'
    """
    data = entry.to_dict()
    del data["revision"]
    return json.dumps(data, separators=(",", ":")).encode()


def decode_entry(value: bytes, revision: int) -> JournalEntry:
    """The entry a journal record holds.

    Raises:
        StoreError: a value that is not a journal entry (a corrupt record).

    Complexity:
        O(size of the entry).

    >>> decode_entry(b"[]", 1)
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.StoreError: corrupt journal record at revision 1: b'[]'
    """
    try:
        data = json.loads(value)
        time = datetime.fromisoformat(data["time"]).astimezone(UTC)
        fields = [data[name] for name in ("actor", "op", "kind", "key")]
        addresses, extra = data["addresses"], data["data"]
        if not all(isinstance(v, str) for v in fields) or not isinstance(extra, dict):
            raise TypeError(data)
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise TypeError(addresses)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise StoreError(f"corrupt journal record at revision {revision}: {value!r:.80}") from None
    actor, op, kind, key = fields
    return JournalEntry(revision, time, actor, op, kind, key, tuple(addresses), extra)
