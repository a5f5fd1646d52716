"""Who holds what: the owner table both allocators share, and their common surface.

- :mod:`~dualstack_ipam.owners.table`: :class:`OwnerTable` (key checks,
  family lookup, key <-> addresses both ways, loading, counts, invariants).
- :mod:`~dualstack_ipam.owners.surface`: :class:`KeyedHoldings`, what every
  allocator reads the same way (iteration sorted by key, ``items``, ``get``),
  and :class:`KeyedAllocator`, the cluster allocators' counts and checks.

Import from here: ``from dualstack_ipam.owners import OwnerTable``.
"""

from __future__ import annotations

from dualstack_ipam.owners.surface import KeyedAllocator, KeyedHoldings, Pool
from dualstack_ipam.owners.table import Address, OwnerTable, check_key

__all__ = ["Address", "KeyedAllocator", "KeyedHoldings", "OwnerTable", "Pool", "check_key"]
