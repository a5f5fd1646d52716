"""The release cooldown of a durable cluster: release times kept in the store.

With a cooldown (``open(..., cooldown=N)``, stored at creation), a
transaction that frees an address or CIDR also writes
``cool/<pool>/<slot>`` = its release time (``time.time`` by default, the
cluster's ``clock``), and a transaction that takes a slot compares that
record: at the revision the cache knows, deleting it (the slot is being
reused: its cooldown passed, or ``allocate(ip)`` asked for it, which the
plain classes allow), or absent when the cache knows none. So a cache that
never read the record (a short command's partial side, probing at random)
fails its transaction, learns the release time from the failure branch,
marks the slot cooling and picks again: every process honours the
cooldown, whatever its cache saw.

A whole side reads the records at open (a record stays until its slot is
taken again, so there is at most one per slot) and marks the slots whose
cooldown has not passed; a follower applying another writer's release
starts the cooldown at its own clock, which only ever waits longer.

>>> import dualstack_ipam
>>> from dualstack_ipam import ClusterConfig
>>> now = [1000.0]
>>> cluster = dualstack_ipam.open("memory://", ClusterConfig("10.0.0.0/30", node_mask_ipv4=31),
...                               cooldown=60, clock=lambda: now[0])
>>> first = cluster.nodes.allocate("a"); _ = cluster.nodes.release("a")
>>> cluster.nodes.stats()["IPv4"]["cooling"], cluster.nodes.allocate("b") != first
(1, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dualstack_ipam.durable.reserved import within
from dualstack_ipam.errors import StoreError
from dualstack_ipam.owners import Address
from dualstack_ipam.store import Compare, Delete, Put, Record, Write

if TYPE_CHECKING:
    from dualstack_ipam.durable.sync import Side

__all__ = ["guard", "learn", "read_cools", "settle"]


def _time(record: Record) -> float:
    try:
        return float(record.value.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise StoreError(
            f"corrupt release time record {record.key!r}: {record.value!r:.40}"
        ) from None


def _mark(side: Side, address: Address, released: float, cooldown: float) -> None:
    """Mark ``address`` cooling in the cache until ``released + cooldown``, if it is free."""
    at = side.layout.pool_slot(address)
    for pool, _, slot, _ in within(side.cache, address[0], at, at + 1):
        due = released + cooldown
        if slot in pool._bitmap or due <= pool._clock():
            return  # taken, reserved or cooling already; or its cooldown has passed
        pool._cooling.paint(slot, slot + 1, due)
        pool._mark(slot, slot + 1)
        pool._queue.append((due, slot, slot + 1))
        pool._plain = False


def read_cools(backend: Any, side: Side, cooldown: float) -> None:
    """Read every release time record of the side and mark the slots still cooling.

    Call it when the cache's owners are current (after a bulk read and its
    catch-up): a record's slot is free in the store.

    Complexity:
        O(c log c) for c records (marked in order of their due time).
    """
    side.cools = {}
    found = []
    for prefix in side.layout.cool_prefixes:
        for record in backend.get_prefix(prefix):
            address = side.layout.address_of_cool(record.key)
            released = _time(record)
            side.cools[record.key] = record.revision
            found.append((released, address))
    for released, address in sorted(found):
        _mark(side, address, released, cooldown)


def guard(
    side: Side, taken: Iterable[Address], freed: Iterable[Address], now: float
) -> tuple[list[Compare], list[Write]]:
    """The compares and writes of a transaction taking ``taken`` and freeing ``freed``.

    Complexity:
        O(k) for k addresses.
    """
    compares: list[Compare] = []
    writes: list[Write] = []
    for address in taken:
        key = side.layout.cool_key(address)
        revision = side.cools.get(key, 0)
        compares.append(Compare(key, revision))
        if revision:
            writes.append(Delete(key))
    stamp = repr(float(now)).encode()
    writes.extend(Put(side.layout.cool_key(address), stamp) for address in freed)
    return compares, writes


def settle(side: Side, writes: Iterable[Write], revision: int) -> None:
    """Record what a committed transaction wrote of release times.

    Complexity:
        O(w) for w writes.
    """
    for write in writes:
        if isinstance(write, Put):
            side.cools[write.key] = revision
        else:
            side.cools.pop(write.key, None)


def learn(side: Side, current: Mapping[str, Record | None], cooldown: float) -> None:
    """After a failed transaction: the release times its compares found (the cache was undone).

    Complexity:
        O(c) for c compared keys.
    """
    for key, record in current.items():
        if not key.startswith(side.layout.cool_prefixes):
            continue
        if record is None:
            side.cools.pop(key, None)
            continue
        side.cools[key] = record.revision
        _mark(side, side.layout.address_of_cool(key), _time(record), cooldown)
