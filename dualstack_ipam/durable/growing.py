"""Durable ``add_range``: range records, followed by every process.

A range added to a family is the record ``range/<tag>/<4|6>/<n>`` (the
``n``-th added to that family, from 1; :mod:`~dualstack_ipam.durable.layout`)
written with its journal entry (``kind`` ``range``, ``op`` ``add-range``)
in one transaction whose create-if-absent compare on ``n`` orders
concurrent additions: the loser catches up, takes the winner's range, and
runs its own call again (which may then overlap it). A cache applies range
records before the owner, reservation and release time records of the same
batch, since those may name the new range's slots. Both sides grow: node
families (``range/node/...``) and Service families (``range/svc/...``,
``data`` ``{"side": "services"}``); how an added range's slots are
numbered is in :mod:`~dualstack_ipam.durable.layout`.

>>> import dualstack_ipam
>>> from dualstack_ipam import ClusterConfig
>>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.0.0.0/24", node_mask_ipv4=25))
>>> cluster.nodes.add_range("10.9.0.0/25"), cluster.nodes.ranges("IPv4")[1:]
(IPNetwork('10.9.0.0/25'), [IPNetwork('10.9.0.0/25')])
>>> [(e.op, e.kind, e.key, e.data) for e in cluster.journal()]
[('add-range', 'range', '10.9.0.0/25', {'side': 'nodes'})]
>>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.0.0.0/16", "10.96.0.0/29"))
>>> cluster.services.add_range("10.95.0.0/29"), cluster.services.ranges("IPv4")
(IPNetwork('10.95.0.0/29'), [IPNetwork('10.96.0.0/29'), IPNetwork('10.95.0.0/29')])
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
import netaddr

from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.durable.journal import encode_entry
from dualstack_ipam.errors import IPAMError, StoreError, StoreUnavailableError
from dualstack_ipam.net import parse_network
from dualstack_ipam.pools.multi import parts_of
from dualstack_ipam.services.allocator import ServiceIPAllocator
from dualstack_ipam.store import Compare, Put

if TYPE_CHECKING:
    from dualstack_ipam.durable.sync import Side, Sync

__all__ = ["add_range", "apply_ranges", "read_ranges"]


def _plain(side: Side, cidr: Any) -> netaddr.IPNetwork:
    """The plain allocator's ``add_range`` on the side's cache (not the durable method)."""
    plain: Any = NodeCIDRAllocator if side.layout.kind == "node" else ServiceIPAllocator
    value: netaddr.IPNetwork = plain.add_range(side.cache, cidr)
    return value


def _grow(side: Side, text: str) -> None:
    """Add ``text`` to the cache as the plain allocator does, and to the layout."""
    family = parse_network(_plain(side, text)).family
    side.layout.grow(family, side.cache._pools[family])  # type: ignore[attr-defined]


def apply_ranges(side: Side, records: Iterable[tuple[str, int, bytes]]) -> None:
    """Apply range records ``(key, revision, value)`` the side does not know yet, in order.

    Raises:
        StoreError: a record out of order (a gap in ``n``), or one the
            cache refuses (a store written by something else).

    Complexity:
        O(k log k) for k ranges, plus each new pool's construction.
    """
    for key, revision, value in sorted(records):
        if key in side.ranges or not key.startswith(side.layout.range_prefix):
            continue
        text = value.decode("utf-8", "replace")
        try:
            family = parse_network(text).family
            count = len(parts_of(side.cache._pools[family]))  # type: ignore[attr-defined]
            if key != side.layout.range_key(family, count):
                raise ValueError(key)
            _grow(side, text)
        except (ValueError, KeyError, IPAMError) as exc:
            raise StoreError(
                f"the cache cannot add the range record {key!r} ({text!r}): {exc}"
            ) from exc
        side.ranges[key] = revision


def read_ranges(backend: Any, side: Side) -> None:
    """Read the side's range records and apply those it does not know (before its owners).

    Complexity:
        O(k) records, plus :func:`apply_ranges`.
    """
    records = backend.get_prefix(side.layout.range_prefix)
    apply_ranges(side, [(r.key, r.revision, r.value) for r in records])


def add_range(sync: Sync, name: str, cidr: Any) -> netaddr.IPNetwork:
    """The plain ``add_range`` on side ``name``'s cache, made durable (see the module).

    Raises:
        AddressFormatError, InvalidConfigError: as the plain method (also
            when a range another process added first overlaps ``cidr``).
        StoreUnavailableError: ``ATTEMPTS`` tries lost their race.
        StoreError: the store refused or failed (nothing changed).

    Complexity:
        One catch-up, the plain method, one transaction of 2 records.
    """
    from dualstack_ipam.durable.sync import ATTEMPTS, backoff

    with sync.lock:
        side = sync.sides[name]
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(backoff(attempt))
            sync.catch_up(fresh=attempt > 0)
            pools = side.cache._pools  # type: ignore[attr-defined]
            before = dict(pools)
            value = _plain(side, cidr)
            family = parse_network(value).family
            key = side.layout.range_key(family, len(parts_of(pools[family])) - 1)
            text = str(value)
            entry = sync.entry("add-range", "range", text, (text,))
            entry = attrs.evolve(entry, data={"side": name})
            journal_key = sync.journal_key()
            writes = [Put(key, text.encode()), Put(journal_key, encode_entry(entry))]
            try:
                result = sync.backend.txn([Compare(key, 0)], writes)
                succeeded, revision = result.succeeded, result.revision
            except StoreError:
                record = sync.backend.get(journal_key)  # the outcome may be unknown
                if record is None:
                    pools.update(before)
                    raise
                succeeded, revision = True, record.revision
            if succeeded:
                side.layout.grow(family, pools[family])
                side.ranges[key] = revision
                sync._own = max(sync._own, revision)
                return value
            pools.update(before)
        raise StoreUnavailableError(
            f"add_range({cidr!r}): {ATTEMPTS} tries in a row lost their race with other "
            "writers; nothing was changed"
        )
