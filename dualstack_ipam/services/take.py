"""Taking a Service's addresses from the pools: requested or dynamic, all or none.

The allocator's transaction, run under its lock: every requested address
is checked (usable in its range, held by no other key) and every dynamic
one has room before anything is taken or drawn from the rng, so a failure
leaves every pool exactly as it was (hidden search state included) and a
seeded run keeps its sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dualstack_ipam.errors import AlreadyAllocatedError, ClusterIPTakenError, PoolExhaustedError
from dualstack_ipam.net import IPFamily, make_address, usable_span
from dualstack_ipam.owners import Address, OwnerTable
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.services.intent import Intent, addresses
from dualstack_ipam.services.read import invalid

__all__ = ["release_all", "take", "take_all"]

Pools = Mapping[IPFamily, ServiceIPPool]


def _usable(pool: ServiceIPPool, value: int) -> bool:
    first, count = usable_span(pool.family, pool.cidr.prefixlen)
    return 0 <= value - int(pool.cidr.first) - first < count


def take(pools: Pools, table: OwnerTable, family: IPFamily, value: int | None) -> int:
    """Take ``value`` (None: the pool's next free address) from ``family``'s pool.

    Raises:
        AlreadyAllocatedError: another key holds ``value``.
        NotInRangeError: ``value`` is not usable in its range.
        PoolExhaustedError: the range is full.

    Complexity:
        O(1) amortised.
    """
    pool = pools[family]
    if value is None:
        return int(pool.allocate_next())
    address, owner = make_address(value, family), table.owner((family, value))
    if owner is not None:
        message = f"provided IP {str(address)!r} is already allocated in {pool.cidr} to {owner!r}"
        raise AlreadyAllocatedError(message, value=address, owner=owner)
    return int(pool.allocate(address))


def take_all(
    pools: Pools, table: OwnerTable, intent: Intent, first: int, name: str
) -> tuple[Address, ...]:
    """Take ``intent``'s addresses from index ``first`` on, all or none.

    Raises:
        ServiceValidationError: a requested address is not usable in its
            range (``.field`` is ``spec.clusterIPs[i]``).
        ClusterIPTakenError: a requested address is held by another key.
        PoolExhaustedError: a range with a dynamic address to give is full.

    Complexity:
        O(1) amortised per family.
    """
    pairs = addresses(intent)[first:]
    for i, (family, value) in enumerate(pairs, start=first):
        if value is not None:
            _check_requested(pools, table, family, value, f"spec.clusterIPs[{i}]", name)
    for family, value in pairs:
        pool = pools[family]
        if value is None and not pool.free:
            message = f"range is full: no free address in {pool.cidr} for {name!r}"
            raise PoolExhaustedError(message, pool_cidr=pool.cidr)
    return tuple((family, take(pools, table, family, value)) for family, value in pairs)


def _check_requested(
    pools: Pools, table: OwnerTable, family: IPFamily, value: int, field: str, name: str
) -> None:
    """Refuse a requested address that is out of range or held, touching nothing.

    Under the allocator's lock the pools hold exactly the owned addresses,
    so an unowned usable address is free. (An update never requests one the
    key keeps: those come before ``first``.)
    """
    pool, address = pools[family], make_address(value, family)
    text = str(address)
    if not _usable(pool, value):
        v4 = family is IPFamily.IPv4
        edges = "network and broadcast addresses" if v4 else "network address"
        detail = f"provided IP is not in the valid range of {pool.cidr} (without its {edges})"
        raise invalid(name, field, text, f"failed to allocate IP: {detail}")
    owner = table.owner((family, value))
    if owner is not None:
        message = (
            f"Service {name!r} is invalid: {field}: Invalid value: {text!r}: provided IP "
            f"is already allocated in {pool.cidr} to {owner!r}"
        )
        raise ClusterIPTakenError(message, field=field, value=address, owner=owner)


def release_all(pools: Pools, held: Iterable[Address]) -> None:
    """Give ``held`` back to the pools (the caller updates the owner table).

    Complexity:
        O(1) amortised per address.
    """
    for family, value in held:
        pools[family].release(make_address(value, family))
