"""Everything a subnet or Service pool keeps, for tests that compare two pools driven alike.

Used by ``tests/pools/test_pool_slot_paths.py`` and
``tests/owners/test_key_state_slots.py`` (the slot path against the
address path).
"""

from __future__ import annotations

from typing import Any

from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool


def pool_state(pool: SubnetPool | ServiceIPPool) -> tuple[Any, ...]:
    """Everything a pool keeps, hidden marks and counters included (no expiry is run)."""
    common = (
        pool.snapshot(),
        pool._bitmap.count,
        list(pool._bitmap.runs()),
        list(pool._reserved),
        list(pool._cooling),
        list(pool._queue),
        pool._releases,
        pool._start_used,
        dict(pool._errors),
        pool._plain,
    )
    if isinstance(pool, SubnetPool):
        return (*common, pool._cursor, pool._low)
    return (*common, pool._low, pool._low_static, pool._static_used)
