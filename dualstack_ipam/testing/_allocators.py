"""Strategies for NodeCIDRAllocator and ServiceIPAllocator objects in realistic states."""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import AlreadyAllocatedError, PoolExhaustedError
from dualstack_ipam.net import make_address, make_network, usable_span
from dualstack_ipam.services.allocator import ServiceIPAllocator

from ._common import (
    LOOP_FILLS,
    LOOP_LIMIT,
    NODE_STRATEGIES,
    SERVICE_STRATEGIES,
    InvalidArgument,
    check_bool,
    check_fill,
    check_int,
    check_strategy,
    fill_choice,
    st,
)
from ._manifests import service_manifests
from ._networks import cluster_configs

__all__ = ["node_allocators", "service_ip_allocators"]


def _allocator_fills(
    fills: tuple[str, ...], smallest: int, largest: int, what: str
) -> tuple[str, ...]:
    """The fills a given config allows.

    ``"one-free"`` needs room everywhere (``smallest > 0``); the fills made
    one item at a time need ``largest <= LOOP_LIMIT``.
    """
    possible = tuple(
        name
        for name in fills
        if not (name == "one-free" and smallest == 0)
        and not (name in LOOP_FILLS and largest > LOOP_LIMIT)
    )
    if not possible:
        raise InvalidArgument(
            f"fill={fills!r} cannot be made: the config has {smallest} to {largest} {what} "
            f"(one-free needs at least 1, half, one-free and full at most {LOOP_LIMIT})"
        )
    return possible


def node_allocators(
    *,
    config: ClusterConfig | None = None,
    dual_stack: bool | None = None,
    fill: str | Collection[str] | None = None,
    strategy: str | None = None,
    min_service_ranges: int = 0,
) -> st.SearchStrategy[NodeCIDRAllocator]:
    """:class:`~dualstack_ipam.NodeCIDRAllocator` objects with nodes ``node-0``, ``node-1``...

    Args:
        config: a fixed :class:`~dualstack_ipam.ClusterConfig`, or None to
            draw one from :func:`cluster_configs`.
        dual_stack: passed to :func:`cluster_configs` (must agree with
            ``config`` if both are given).
        fill: one of :data:`FILLS`, a collection, or None for all. Counted
            in nodes against ``config.max_nodes``: ``"full"`` means
            ``allocate`` raises ``PoolExhaustedError``. Nodes are created one
            by one, so ``"half"``, ``"one-free"`` and ``"full"`` need
            ``max_nodes <= 256`` (drawn configs are kept that small for
            them). ``"some"`` allocates, occupies scattered CIDRs as a
            restarting controller does, and releases; the looping fills
            churn a few nodes so that the free subnets are not all at the top.
        strategy: ``"next-fit"``, ``"lowest"`` or None for both.
        min_service_ranges: the config has at least this many Service
            ranges (0 to 2), as :func:`cluster_configs` takes it; with
            ``config``, it must have them.

    Complexity:
        O(nodes) per draw; at most 256 nodes for the looping fills.

    >>> from hypothesis import find
    >>> config = ClusterConfig("10.244.0.0/16,fc00::/24", node_mask_ipv4=18)
    >>> find(node_allocators(config=config, fill="one-free"), lambda alloc: True).items()
    [('node-0', (IPNetwork('10.244.0.0/18'), IPNetwork('fc00::/64'))), \
('node-1', (IPNetwork('10.244.64.0/18'), IPNetwork('fc00:0:0:1::/64'))), \
('node-2', (IPNetwork('10.244.128.0/18'), IPNetwork('fc00:0:0:2::/64')))]
    """
    check_bool(dual_stack, "dual_stack")
    check_int(min_service_ranges, "min_service_ranges", 0, 2)
    fills = check_fill(fill)
    if config is not None:
        if not isinstance(config, ClusterConfig):
            raise InvalidArgument(f"config={config!r} must be a ClusterConfig")
        if dual_stack is not None and config.is_dual_stack != dual_stack:
            raise InvalidArgument(f"dual_stack={dual_stack!r} disagrees with config={config!r}")
        if len(config.service_families) < min_service_ranges:
            raise InvalidArgument(
                f"min_service_ranges={min_service_ranges}: config={config!r} has "
                f"{len(config.service_families)}"
            )
        fills = _allocator_fills(fills, config.max_nodes, config.max_nodes, "node CIDRs")
    configs = {
        name: cluster_configs(
            dual_stack=dual_stack,
            min_service_ranges=min_service_ranges,
            min_nodes=1 if name == "one-free" else 0,
            max_nodes=LOOP_LIMIT if name in LOOP_FILLS else None,
        )
        for name in fills
    }
    return _node_allocators(config, configs, fills, check_strategy(strategy, NODE_STRATEGIES))


@st.composite
def _node_allocators(
    draw: st.DrawFn,
    config: ClusterConfig | None,
    configs: dict[str, st.SearchStrategy[ClusterConfig]],
    fills: tuple[str, ...],
    strategies: tuple[str, ...],
) -> NodeCIDRAllocator:
    fill = fill_choice(draw, fills)
    if config is None:
        config = draw(configs[fill])
    alloc = NodeCIDRAllocator(config, strategy=draw(st.sampled_from(strategies)))
    names = _Names("node")
    if fill == "some":
        for _ in range(draw(st.integers(1, 8))):
            _node_step(draw, alloc, names)
    elif fill != "empty":
        room = config.max_nodes
        target = {"half": room // 2, "one-free": room - 1, "full": room}[fill]
        for _ in range(target):
            alloc.allocate(names.new())
        held = list(alloc)
        for _ in range(draw(st.integers(0, min(3, len(held))))):
            alloc.release(held.pop(draw(st.integers(0, len(held) - 1))))
            alloc.allocate(names.new())
    return alloc


class _Names:
    """Fresh names ``prefix-0``, ``prefix-1``... for one generated object."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    def new(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count - 1}"


def _node_step(draw: st.DrawFn, alloc: NodeCIDRAllocator, names: _Names) -> None:
    """Allocate a node, occupy scattered CIDRs for one (a restart), or release one."""
    action = draw(st.sampled_from(["allocate", "occupy", "release"]))
    held = list(alloc)
    if action == "release" and held:
        alloc.release(held[draw(st.integers(0, len(held) - 1))])
        return
    if action == "occupy":
        config, cidrs = alloc.config, []
        for family in config.families:
            cluster, mask = config.cluster_cidr(family), config.node_mask(family)
            index = draw(st.integers(0, (1 << (mask - cluster.prefixlen)) - 1))
            shift = family.width - mask
            cidrs.append(make_network(int(cluster.first) + (index << shift), mask, family))
        try:
            alloc.occupy(names.new(), cidrs)
            return
        except AlreadyAllocatedError:
            pass  # taken or set aside: nothing changed, allocate instead
    with contextlib.suppress(PoolExhaustedError):
        alloc.allocate(names.new())


def service_ip_allocators(
    *,
    config: ClusterConfig | None = None,
    dual_stack: bool | None = None,
    fill: str | Collection[str] | None = None,
    strategy: str | None = None,
) -> st.SearchStrategy[ServiceIPAllocator]:
    """:class:`~dualstack_ipam.services.allocator.ServiceIPAllocator` objects in a realistic state.

    Args:
        config: a fixed config with at least one Service range, or None to
            draw one from :func:`cluster_configs`.
        dual_stack: two Service ranges on a dual-stack cluster (True), one
            range on a single-stack cluster (False), or either (None).
        fill: one of :data:`FILLS`, a collection, or None for all; applied
            to every Service range. Addresses are allocated one by one under
            keys ``svc-4-0``, ``svc-6-0``..., so the looping fills need
            ranges of at most 256 addresses (drawn configs are kept that
            small for them). ``"some"`` mixes the seed's ``allocate`` (with
            and without a static address), manifests from
            :func:`service_manifests` and releases.
        strategy: ``"random"``, ``"sequential"`` or None for both; the
            allocator's ``rng`` is drawn, so runs are reproducible.

    Complexity:
        O(addresses) per draw; at most 256 per range for the looping fills.

    >>> from hypothesis import find
    >>> config = ClusterConfig("10.244.0.0/16", "10.96.0.0/29")
    >>> alloc = find(service_ip_allocators(config=config, fill="one-free"), lambda alloc: True)
    >>> len(alloc), alloc.free("IPv4")
    (5, 1)
    """
    check_bool(dual_stack, "dual_stack")
    fills = check_fill(fill)
    if config is not None:
        if not isinstance(config, ClusterConfig):
            raise InvalidArgument(f"config={config!r} must be a ClusterConfig")
        if not config.service_families:
            raise InvalidArgument(f"config={config!r} has no Service range")
        if dual_stack is not None and (len(config.service_families) == 2) != dual_stack:
            raise InvalidArgument(f"dual_stack={dual_stack!r} disagrees with config={config!r}")
        sizes = [
            usable_span(family, config.service_cidr(family).prefixlen)[1]
            for family in config.service_families
        ]
        fills = _allocator_fills(fills, min(sizes), max(sizes), "usable Service addresses")
    ranges = {True: (2, 2), False: (1, 1), None: (1, 2)}[dual_stack]
    configs = {
        name: cluster_configs(
            dual_stack=dual_stack,
            min_service_ranges=ranges[0],
            max_service_ranges=ranges[1],
            min_service_ips=1 if name == "one-free" else 0,
            max_service_ips=LOOP_LIMIT if name in LOOP_FILLS else None,
        )
        for name in fills
    }
    return _service_ip_allocators(
        config, configs, fills, check_strategy(strategy, SERVICE_STRATEGIES)
    )


@st.composite
def _service_ip_allocators(
    draw: st.DrawFn,
    config: ClusterConfig | None,
    configs: dict[str, st.SearchStrategy[ClusterConfig]],
    fills: tuple[str, ...],
    strategies: tuple[str, ...],
) -> ServiceIPAllocator:
    fill = fill_choice(draw, fills)
    if config is None:
        config = draw(configs[fill])
    strategy = draw(st.sampled_from(strategies))
    rng = draw(st.randoms(use_true_random=True))  # unused when sequential
    alloc = ServiceIPAllocator(config, strategy=strategy, rng=rng)
    capacities = {family: alloc.capacity(family) for family in config.service_families}
    if fill == "some":
        for _ in range(draw(st.integers(1, 6))):
            _service_allocator_step(draw, alloc)
    elif fill != "empty":
        for family, capacity in capacities.items():
            target = {"half": capacity // 2, "one-free": capacity - 1, "full": capacity}[fill]
            for i in range(max(target, 0)):
                alloc.allocate(f"svc-{family.version}-{i}", family)
    return alloc


def _service_allocator_step(draw: st.DrawFn, alloc: ServiceIPAllocator) -> None:
    """A seed-style allocation (dynamic or static), a manifest, or a release."""
    action = draw(st.sampled_from(["allocate", "manifest", "static", "release"]))
    keys = [key for key, _ in alloc.items()]
    if action == "release" and keys:
        alloc.release(keys[draw(st.integers(0, len(keys) - 1))])
        return
    try:
        if action == "manifest":
            alloc.allocate_service(draw(service_manifests(allocator=alloc)))
            return
        family = draw(st.sampled_from(alloc.config.service_families))
        key = f"svc-{family.version}-{len(keys)}"
        while key in alloc:
            key += "x"
        if action == "static" and alloc.free(family):
            start = int(alloc.config.service_cidr(family).first) + 1
            held = {
                int(a)
                for _, addresses in alloc.items()
                for a in addresses
                if a.version == family.version
            }
            slot = draw(st.integers(0, alloc.capacity(family) - 1))
            while start + slot in held:
                slot = (slot + 1) % alloc.capacity(family)
            alloc.allocate(key, ip=make_address(start + slot, family))
        else:
            alloc.allocate(key, family)
    except PoolExhaustedError:
        pass
