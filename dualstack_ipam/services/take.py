"""Taking a Service's addresses from the pools: requested or dynamic, all or none.

The allocator's transaction, run under its lock: every requested address
is checked (usable in its range, held by no other key) and every dynamic
one has room before anything is taken or drawn from the rng, so a failure
leaves every pool exactly as it was (hidden search state included) and a
seeded run keeps its sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    ClusterIPTakenError,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.net import IPFamily, make_address
from dualstack_ipam.owners import Address, OwnerTable
from dualstack_ipam.owners.controls import reservation_at
from dualstack_ipam.pools.multi import MultiServiceIPPool, ranges_of
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.services.intent import Intent, addresses
from dualstack_ipam.services.read import invalid

__all__ = ["check_occupied", "release_all", "take", "take_all"]

Pools = Mapping[IPFamily, ServiceIPPool]


def _usable(pool: ServiceIPPool | MultiServiceIPPool, value: int) -> bool:
    """Whether ``value`` is usable in ``pool`` (a grown family's: in one of its ranges)."""
    # The pool's own slot rule: no network object per call on the bulk load.
    if isinstance(pool, MultiServiceIPPool):
        return any(0 <= value - part._base < part._top for part in pool.parts)
    return 0 <= value - pool._base < pool._top


def _ranges(pool: ServiceIPPool | MultiServiceIPPool) -> str:
    """Every range of ``pool``, for a message (a grown family has several)."""
    return ", ".join(map(str, ranges_of(pool)))


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
        # Cooling addresses count as free, but allocate_next skips them.
        cooling = pool.cooling if pool.cooldown and value is None else 0
        if value is None and pool.free - cooling <= 0:
            note = f" ({cooling} released addresses are cooling down)" if cooling else ""
            message = f"range is full: no free address in {_ranges(pool)} for {name!r}{note}"
            raise PoolExhaustedError(message, pool_cidr=pool.cidr)
    return tuple((family, take(pools, table, family, value)) for family, value in pairs)


def _check_requested(
    pools: Pools, table: OwnerTable, family: IPFamily, value: int, field: str, name: str
) -> None:
    """Refuse a requested address that is out of range or held, touching nothing.

    Under the allocator's lock the pools hold exactly the owned addresses
    and the reserved ones, so an unowned, unreserved usable address is free
    (or cooling, which ``allocate`` takes). (An update never requests one the
    key keeps: those come before ``first``.)
    """
    pool, address = pools[family], make_address(value, family)
    text = str(address)
    if not _usable(pool, value):
        v4 = family is IPFamily.IPv4
        edges = "network and broadcast addresses" if v4 else "network address"
        where = _ranges(pool)
        detail = f"provided IP is not in the valid range of {where} (without its {edges})"
        raise invalid(name, field, text, f"failed to allocate IP: {detail}")
    reason = reservation_at(pool, value - pool._base)
    if reason is not None:
        raise invalid(
            name, field, text, f"failed to allocate IP: provided IP is reserved ({reason!r})"
        )
    owner = table.owner((family, value))
    if owner is not None:
        message = (
            f"Service {name!r} is invalid: {field}: Invalid value: {text!r}: provided IP "
            f"is already allocated in {pool.cidr} to {owner!r}"
        )
        raise ClusterIPTakenError(message, field=field, value=address, owner=owner)


def check_occupied(pools: Pools, new: Iterable[Address]) -> None:
    """Refuse an address of ``new`` that is not usable or is reserved, touching nothing.

    ``occupy``'s check before it takes anything (the owner table has
    refused addresses held by keys): a reserved address must fail the call
    before another was taken, since giving one back would start its cooldown.

    Raises:
        NotInRangeError: an address not usable in its range.
        AlreadyAllocatedError: a reserved address (the message gives the reason).

    Complexity:
        O(1) per address (O(log r) with r reservations).
    """
    for family, value in new:
        pool = pools[family]
        if not _usable(pool, value):
            address = make_address(value, family)
            raise NotInRangeError(
                f"Service IP {str(address)!r} is not usable in {_ranges(pool)}",
                value=address,
                pool_cidr=pool.cidr,
            )
        reason = reservation_at(pool, value - pool._base)
        if reason is not None:
            address = make_address(value, family)
            raise AlreadyAllocatedError(
                f"Service IP {str(address)!r} is reserved in {pool.cidr} ({reason!r})",
                value=address,
            )


def release_all(pools: Pools, held: Iterable[Address]) -> None:
    """Give ``held`` back to the pools (the caller updates the owner table).

    Complexity:
        O(1) amortised per address.
    """
    for family, value in held:
        pools[family].release(make_address(value, family))
