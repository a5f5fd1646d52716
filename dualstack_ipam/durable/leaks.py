"""Reconcile's leak counts, kept in the store so that separate runs accumulate them.

api-durable.md: a leaked key is released only once ``leak_grace``
consecutive repairing reconciles saw it leaked, and "the counts live with
the allocator — in the store for a durable one, so that CLI runs accumulate
them". A durable side's ``reconcile`` reads the side's ``leak/<tag>/``
records whole (:func:`read_counts`), runs the plain reconcile on a dict of
them, and writes back what changed (:func:`write_counts`): one small
transaction per call (more only when more keys changed than one transaction
holds). No cache follows these records: each call reads them fresh.

>>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
>>> from dualstack_ipam.durable.layout import SideLayout
>>> from dualstack_ipam.store import MemoryBackend
>>> layout = SideLayout.for_nodes(NodeCIDRAllocator(ClusterConfig("10.0.0.0/16")))
>>> store = MemoryBackend()
>>> write_counts(store, layout, {}, {"gone": 1})
1
>>> read_counts(store, layout)
{'gone': 1}
"""

from __future__ import annotations

from collections.abc import Mapping

from dualstack_ipam.durable.layout import SideLayout
from dualstack_ipam.errors import StoreError
from dualstack_ipam.store import Backend, Delete, Put, Write

__all__ = ["read_counts", "write_counts"]

_DEFAULT_BATCH = 500  # writes per transaction when the store sets no limit


def read_counts(backend: Backend, layout: SideLayout) -> dict[str, int]:
    """The side's stored leak counts: key -> consecutive repairing sightings.

    Raises:
        StoreError: a record that is not a count (a corrupt store).

    Complexity:
        O(k) for k keys counted (leaked keys only).
    """
    counts = {}
    for record in backend.get_prefix(layout.leak_prefix):
        try:
            count = int(record.value.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            count = 0
        if count < 1:
            raise StoreError(f"corrupt leak count record {record.key!r}: {record.value!r:.40}")
        counts[layout.key_of_leak(record.key)] = count
    return counts


def write_counts(
    backend: Backend, layout: SideLayout, before: Mapping[str, int], after: Mapping[str, int]
) -> int:
    """Write the counts that changed from ``before`` to ``after``; how many records.

    Puts and deletes without compares: two repairing reconciles at once
    both saw the keys they count, and the last one's counts win (a count
    only delays or hastens a release, which is itself a compared
    transaction). Batches fit the store's transaction limit.

    Raises:
        StoreError: the store refused or failed (the batches before stay).

    Complexity:
        O(k) for k keys in either mapping, in O(k / batch) transactions.
    """
    writes: list[Write] = [
        Put(layout.leak_key(key), str(count).encode())
        for key, count in sorted(after.items())
        if before.get(key) != count
    ]
    writes += [Delete(layout.leak_key(key)) for key in sorted(before) if key not in after]
    limits = backend.limits
    batch: list[Write] = []
    size = 0
    for write in writes:
        cost = len(write.key.encode()) + (len(write.value) if isinstance(write, Put) else 0)
        if batch and (
            len(batch) >= (limits.max_ops or _DEFAULT_BATCH)
            or (limits.max_bytes is not None and size + cost > limits.max_bytes)
        ):
            backend.txn([], batch)
            batch, size = [], 0
        batch.append(write)
        size += cost
    if batch:
        backend.txn([], batch)
    return len(writes)
