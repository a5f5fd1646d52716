"""ServiceIPAllocator snapshots: taken without stalling allocations, and restored.

Taking one copies under the allocator's lock only what is flat: each pool's
state (:meth:`~dualstack_ipam.pools.base.BasePool.capture`) and the owner
map (one ``dict`` copy); sorting the keys, building address text and
encoding the pools happen after the lock is released. Restoring checks the
pools against the configuration and the keys against the pools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from random import Random
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import InvalidConfigError, IPAMError, SnapshotError
from dualstack_ipam.net import IPFamily, make_address, parse_address
from dualstack_ipam.owners import Address
from dualstack_ipam.pools.marks import check_cooldown
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.snapshot import envelope, open_envelope, read_int

if TYPE_CHECKING:
    from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = ["KIND", "read_address", "restore", "snapshot", "text"]

KIND = "ServiceIPAllocator"


def text(address: tuple[IPFamily, int | None]) -> str:
    """An address of the owner table as text ("" for a slot not chosen yet).

    Complexity:
        O(1).

    >>> text((IPFamily.IPv4, 167772161)), text((IPFamily.IPv6, None))
    ('10.0.0.1', '')
    """
    return "" if address[1] is None else str(make_address(address[1], address[0]))


def snapshot(alloc: ServiceIPAllocator) -> dict[str, Any]:
    """The snapshot of ``alloc`` (see :meth:`ServiceIPAllocator.snapshot`).

    Complexity:
        O(n) flat copies under the lock, O(n log n) to encode after it.

    >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
    >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    >>> snapshot(alloc)["services"]
    {}
    """
    with alloc._lock:  # flat copies only: allocating threads wait for nothing else
        finish = {str(family): pool.capture() for family, pool in alloc._pools.items()}
        held = alloc._table.held_copy()
    return envelope(
        KIND,
        sum(map(len, held.values())),
        strategy=alloc._strategy,
        config=alloc.config.to_dict(),
        pools={family: build() for family, build in finish.items()},
        services={key: [text(a) for a in held[key]] for key in sorted(held)},
    )


def restore(
    cls: type[ServiceIPAllocator],
    data: Any,
    rng: Random | None,
    cooldown: float,
    clock: Callable[[], float] | None,
) -> ServiceIPAllocator:
    """Rebuild an allocator of class ``cls`` (see :meth:`ServiceIPAllocator.restore`).

    Raises:
        InvalidConfigError: a bad ``rng``, ``cooldown`` or ``clock``.
        SnapshotError: corrupt, truncated, of another kind or version, or
            keys, pools and counts that disagree.

    Complexity:
        O(n) in the snapshot's size.

    >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
    >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    >>> _ = alloc.allocate("dns", ip="10.96.0.10")
    >>> restore(ServiceIPAllocator, alloc.snapshot(), None, 0, None).get("dns")
    (IPAddress('10.96.0.10'),)
    """
    if rng is not None and not isinstance(rng, Random):  # an argument, not the data
        raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)
    check_cooldown(cooldown, clock)
    data = open_envelope(data, KIND, ["strategy", "config", "pools", "services"])
    used, config = read_int(data["used"], "used"), ClusterConfig.from_dict(data["config"])
    pools, services = data["pools"], data["services"]
    names = {str(family) for family in config.service_families}
    if not names or not isinstance(pools, Mapping) or set(pools) != names:
        raise SnapshotError(f"{KIND} snapshot needs one pool per Service range {names}")
    if not isinstance(services, Mapping):
        raise SnapshotError(f"{KIND} snapshot field 'services' must be a mapping")
    obj = cls.__new__(cls)
    families = config.service_families
    obj._setup(
        config,
        data["strategy"],
        {
            f: ServiceIPPool.restore(pools[str(f)], rng=rng, cooldown=cooldown, clock=clock)
            for f in families
        },
    )
    for family, pool in obj._pools.items():
        if pool.cidr != config.service_cidr(family) or pool.strategy != obj._strategy:
            raise SnapshotError(f"{KIND} snapshot pool {pool!r} disagrees with its config")

    obj._load_owners(KIND, services, obj._read_address)
    held = sum(map(obj._table.count, families))
    if used != held:
        raise SnapshotError(f"{KIND} snapshot says used={used} but keys hold {held}")
    return obj


def read_address(alloc: ServiceIPAllocator, key: str, value: str) -> Address:
    """The owner-table address of one of ``key``'s addresses in a snapshot.

    Raises:
        SnapshotError: not an address, or of a family without a Service range.

    Complexity:
        O(1).

    >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
    >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    >>> read_address(alloc, "dns", "10.96.0.10")
    (<IPFamily.IPv4: 'IPv4'>, 174063626)
    """
    try:
        number, family = parse_address(value)
    except IPAMError:
        raise SnapshotError(f"{KIND} snapshot entry {key!r}: {value!r}") from None
    if family not in alloc._pools:
        raise SnapshotError(f"{KIND} snapshot entry {key!r}: {value!r} has no Service range")
    return family, number
