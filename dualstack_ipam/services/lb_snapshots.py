"""LoadBalancerIPAllocator snapshots: the pools, the strategy and the holdings.

A snapshot carries each family's ranges (as the allocator was built), the
strategy and key -> addresses; restoring rebuilds the allocator and occupies
every key's addresses again, so the pools' rules (in range, held once) check
the holdings. Call counts and leak counts are not carried.
"""

from __future__ import annotations

from collections.abc import Mapping
from random import Random
from typing import TYPE_CHECKING, Any

from dualstack_ipam.errors import InvalidConfigError, IPAMError, SnapshotError
from dualstack_ipam.snapshot import envelope, open_envelope, read_int

if TYPE_CHECKING:
    from dualstack_ipam.services.loadbalancer import LoadBalancerIPAllocator

__all__ = ["KIND", "restore", "snapshot"]

KIND = "LoadBalancerIPAllocator"


def snapshot(lb: LoadBalancerIPAllocator) -> dict[str, Any]:
    """The snapshot of ``lb`` (see :meth:`LoadBalancerIPAllocator.snapshot`).

    Complexity:
        O(n) under the allocator's lock.

    >>> from dualstack_ipam import LoadBalancerIPAllocator
    >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
    >>> snapshot(lb)["pools"]
    {'IPv4': ['192.0.2.0/30']}
    """
    with lb._lock:
        return envelope(
            KIND,
            sum(pool.used for pool in lb._pools.values()),
            strategy=lb._strategy,
            pools={str(f): list(pool.ranges) for f, pool in lb._pools.items()},
            services=lb._table.dump(lambda a: str(lb._build(a))),
        )


def restore(
    cls: type[LoadBalancerIPAllocator], data: Any, rng: Random | None
) -> LoadBalancerIPAllocator:
    """A ``cls`` rebuilt from ``data`` (see :meth:`LoadBalancerIPAllocator.restore`).

    The holdings are occupied again through ``cls.occupy``, so a pool or a
    key refusing one refuses the snapshot.

    Raises:
        InvalidConfigError: a bad ``rng`` (checked before ``data`` is read).
        SnapshotError: ``data`` is corrupt or of another kind or version,
            or its holdings or count disagree with its pools.

    Complexity:
        O(n) in the snapshot's size.

    >>> from dualstack_ipam import LoadBalancerIPAllocator
    >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
    >>> _ = lb.occupy("default/web", "192.0.2.2")
    >>> restore(LoadBalancerIPAllocator, lb.snapshot(), None).get("default/web")
    (IPAddress('192.0.2.2'),)
    """
    if rng is not None and not isinstance(rng, Random):
        raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)
    data = open_envelope(data, KIND, ["strategy", "pools", "services"])
    used = read_int(data["used"], "used")
    services = data["services"]
    if not isinstance(services, Mapping):
        raise SnapshotError(f"{KIND} snapshot field 'services' must be a mapping")
    try:
        obj = cls(data["pools"], strategy=data["strategy"], rng=rng)
        for key, texts in services.items():
            if not isinstance(texts, list) or not texts:
                raise SnapshotError(f"{KIND} snapshot: {key!r} needs a list of addresses")
            obj.occupy(key, texts)
    except IPAMError as error:
        if isinstance(error, SnapshotError):
            raise
        raise SnapshotError(f"{KIND} snapshot: {error}") from None
    held = sum(pool.used for pool in obj._pools.values())
    if used != held:
        raise SnapshotError(f"{KIND} snapshot says used={used} but keys hold {held}")
    return obj
