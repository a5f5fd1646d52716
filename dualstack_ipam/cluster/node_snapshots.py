"""NodeCIDRAllocator snapshots: taken without stalling allocations, and restored.

Taking one copies under the allocator's lock only what is flat: each pool's
state (:meth:`~dualstack_ipam.pools.base.BasePool.capture`: the bitmap's
buffer or run lists, C-level copies) and the owner map (one ``dict`` copy).
Sorting the nodes, building CIDR text and encoding the pools happen after
the lock is released, so allocating threads wait only for the copies.

A family grown with ``add_range`` writes its first pool under ``pools`` as
before and the added ones, in the order added, under ``added``, at snapshot
version 2 (:func:`~dualstack_ipam.pools.multi.stamp_grown`); a snapshot
without added ranges is version 1, byte for byte what earlier releases
wrote, and both restore.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import InvalidConfigError, IPAMError, SnapshotError
from dualstack_ipam.net import IPFamily, parse_network
from dualstack_ipam.pools.marks import check_cooldown
from dualstack_ipam.pools.multi import grow, open_grown, parts_of, stamp_grown
from dualstack_ipam.pools.subnets import SubnetPool
from dualstack_ipam.snapshot import envelope, read_int

if TYPE_CHECKING:
    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator

__all__ = ["KIND", "read_cidr", "restore", "snapshot"]

KIND = "NodeCIDRAllocator"


def snapshot(alloc: NodeCIDRAllocator) -> dict[str, Any]:
    """The snapshot of ``alloc`` (see :meth:`NodeCIDRAllocator.snapshot`).

    Complexity:
        O(n) flat copies under the lock, O(n log n) to encode after it.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16")); _ = alloc.allocate("a")
    >>> snapshot(alloc)["nodes"]
    {'a': ['10.244.0.0/24']}
    """
    with alloc._lock:
        finish = [parts_of(pool)[0].capture() for pool in alloc._pools.values()]
        added = [part.capture() for pool in alloc._pools.values() for part in parts_of(pool)[1:]]
        held = alloc._table.held_copy()
        pools = dict(alloc._pools)  # subnet_at computes; it reads no changing state

    def text(address: tuple[IPFamily, int]) -> str:
        return str(pools[address[0]].subnet_at(address[1]))

    data = envelope(
        KIND,
        len(held),
        config=alloc.config.to_dict(),
        strategy=alloc.strategy,
        pools=[build() for build in finish],
        nodes={node: [text(a) for a in held[node]] for node in sorted(held)},
    )
    return stamp_grown(data, [build() for build in added])


def restore(
    cls: type[NodeCIDRAllocator],
    data: Any,
    *,
    cooldown: float = 0,
    clock: Callable[[], float] | None = None,
) -> NodeCIDRAllocator:
    """Rebuild an allocator from a snapshot (see :meth:`NodeCIDRAllocator.restore`).

    The pools get ``cooldown`` and ``clock`` (checked first, an
    :class:`InvalidConfigError` as in the constructor).

    Raises:
        InvalidConfigError: a bad ``cooldown`` or ``clock``.
        SnapshotError: corrupt, truncated, of another kind or version, or
            with owners and pools that disagree.

    Complexity:
        O(n) in the snapshot's size.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16")); _ = alloc.allocate("a")
    >>> restore(NodeCIDRAllocator, alloc.snapshot()).get("a")
    (IPNetwork('10.244.0.0/24'),)
    """
    check_cooldown(cooldown, clock)
    fields, added = open_grown(data, KIND, ["config", "strategy", "pools", "nodes"])
    config = ClusterConfig.from_dict(fields["config"])
    try:
        alloc = cls(config, strategy=fields["strategy"], cooldown=cooldown, clock=clock)
    except InvalidConfigError as exc:
        raise SnapshotError(f"{KIND} snapshot: {exc}") from None
    pools, nodes = fields["pools"], fields["nodes"]
    if not isinstance(pools, list) or len(pools) != len(config.families):
        raise SnapshotError(
            f"{KIND} snapshot needs one pool per family {list(map(str, config.families))}"
        )
    if not isinstance(nodes, dict):
        raise SnapshotError(f"{KIND} snapshot field 'nodes' must be a mapping")
    for family, pool_data in zip(config.families, pools, strict=True):
        _load_pool(alloc, family, pool_data, cooldown, clock)
    for pool_data in added:
        _load_added(alloc, pool_data, cooldown, clock)
    alloc._uncounted = {}  # restored pools count from their restored state
    alloc._load_owners(KIND, nodes, alloc._read_cidr, in_family_order=True)
    used = read_int(fields["used"], "used")
    if used != len(alloc):
        raise SnapshotError(f"{KIND} snapshot says used={used} but lists {len(alloc)}")
    return alloc


def read_cidr(alloc: NodeCIDRAllocator, node: str, text: str) -> tuple[IPFamily, int]:
    """The address (family, subnet index) of one of ``node``'s CIDRs in a snapshot.

    Raises:
        SnapshotError: not a CIDR of the cluster at its node mask, or one set
            aside for the Service range.

    Complexity:
        O(1).

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> read_cidr(NodeCIDRAllocator(ClusterConfig("10.244.0.0/16")), "a", "10.244.3.0/24")
    (<IPFamily.IPv4: 'IPv4'>, 3)
    """
    try:
        net = parse_network(text)
        address = (net.family, alloc._locate(node, net, {}))
    except IPAMError as exc:
        raise SnapshotError(f"{KIND} snapshot: {exc}") from None
    if alloc._is_reserved(*address):
        raise SnapshotError(f"{KIND} snapshot: {text} is held twice (node {node!r}, Services)")
    return address


def _load_pool(
    alloc: NodeCIDRAllocator,
    family: IPFamily,
    data: Any,
    cooldown: float,
    clock: Callable[[], float] | None,
) -> None:
    pool = SubnetPool.restore(data, cooldown=cooldown, clock=clock)
    fresh = alloc._pools[family]
    if (pool.cidr, pool.prefixlen, pool.strategy) != (fresh.cidr, fresh.prefixlen, alloc.strategy):
        message = f"{family} pool {pool!r} does not match the configuration ({fresh!r})"
        raise SnapshotError(f"{KIND} snapshot: {message}")
    service = alloc.config.service_cidr(family) if family in alloc._reserved else None
    if service is not None and not pool.is_allocated(service):
        message = f"the {family} subnets set aside for the Service range {service}"
        raise SnapshotError(f"{KIND} snapshot: {message} are not all allocated")
    alloc._pools[family] = pool


def _load_added(
    alloc: NodeCIDRAllocator, data: Any, cooldown: float, clock: Callable[[], float] | None
) -> None:
    """Add a range from the snapshot's ``added`` list, checked as ``add_range`` checks it."""
    part = SubnetPool.restore(data, cooldown=cooldown, clock=clock)
    try:
        pool = alloc._new_range_pool(part.cidr)
    except InvalidConfigError as exc:
        raise SnapshotError(f"{KIND} snapshot: added range: {exc}") from None
    if (part.prefixlen, part.strategy) != (pool.prefixlen, alloc.strategy):
        message = f"added pool {part!r} does not match the configuration ({pool!r})"
        raise SnapshotError(f"{KIND} snapshot: {message}")
    alloc._pools[part.family] = grow(pool, part)
