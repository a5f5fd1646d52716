"""Strategies for IP families, networks and cluster configurations."""

from __future__ import annotations

import functools
from typing import Any

import netaddr

from dualstack_ipam.cluster.config import DEFAULT_NODE_MASK, ClusterConfig
from dualstack_ipam.net import IPFamily, Net, make_network, parse_network

from ._common import (
    MASK_BAND,
    NODE_BITS_BAND,
    SEED_CLUSTER,
    SEED_SERVICE,
    SERVICE_BAND,
    SERVICE_DEFAULT,
    InvalidArgument,
    boost,
    boosted_int,
    check_bool,
    check_family,
    check_int,
    check_network,
    choose,
    draw_network,
    draw_outside,
    st,
    usable,
)

__all__ = ["cidrs", "cluster_configs", "ip_families"]

_MAX_MIN_NODES = 1 << 24


def _ceil_log2(n: int) -> int:
    return 0 if n <= 1 else (n - 1).bit_length()


# ---------------------------------------------------------------- networks


def ip_families() -> st.SearchStrategy[IPFamily]:
    """An :class:`~dualstack_ipam.IPFamily`; shrinks to IPv4.

    Complexity:
        O(1) per draw.

    >>> from hypothesis import find
    >>> find(ip_families(), lambda family: True)
    <IPFamily.IPv4: 'IPv4'>
    """
    return st.sampled_from((IPFamily.IPv4, IPFamily.IPv6))


def cidrs(
    *,
    family: IPFamily | str | None = None,
    within: Any = None,
    min_prefixlen: int | None = None,
    max_prefixlen: int | None = None,
) -> st.SearchStrategy[netaddr.IPNetwork]:
    """Canonical networks (``netaddr.IPNetwork``, no host bits).

    Args:
        family: ``"IPv4"``, ``"IPv6"`` or None for both (IPv4 first).
        within: a network the result must lie inside (its family wins).
        min_prefixlen: shortest prefix (default: ``within``'s, else 0); it
            may not be shorter than ``within``'s, nor longer than 32 unless
            only IPv6 is drawn.
        max_prefixlen: longest prefix (default: the family width; with both
            families a value above 32 means /32 for IPv4).

    Boosted: ``/31``, ``/32``, ``/127``, ``/128`` and the seed's
    ``fc00::/24``. Shrinks to the shortest prefix at the home range
    (``10.0.0.0`` or ``fd00::``), or to ``within``'s first subnet.

    Complexity:
        O(1) per draw.

    >>> from hypothesis import find
    >>> find(cidrs(), lambda net: True)
    IPNetwork('0.0.0.0/0')
    >>> find(cidrs(family="IPv6", min_prefixlen=64), lambda net: True)
    IPNetwork('fd00::/64')
    >>> find(cidrs(within="192.168.0.0/16"), lambda net: net.prefixlen == 24)
    IPNetwork('192.168.0.0/24')
    """
    fam = check_family(family)
    inside = None if within is None else check_network(within, "within")
    if inside is not None:
        if fam is not None and fam is not inside.family:
            raise InvalidArgument(f"family={family!r} disagrees with within={within!r}")
        families: tuple[IPFamily, ...] = (inside.family,)
    else:
        families = (fam,) if fam is not None else (IPFamily.IPv4, IPFamily.IPv6)
    widest = max(f.width for f in families)
    floor = 0 if inside is None else inside.prefixlen
    lo = floor if min_prefixlen is None else check_int(min_prefixlen, "min_prefixlen", 0, widest)
    if lo < floor:
        raise InvalidArgument(
            f"min_prefixlen={lo} is shorter than within={within!r}: nothing that short is inside"
        )
    if lo > min(f.width for f in families):
        raise InvalidArgument(
            f"min_prefixlen={lo} is longer than an IPv4 address; pass family='IPv6'"
        )
    hi = widest if max_prefixlen is None else check_int(max_prefixlen, "max_prefixlen", 0, widest)
    if hi < lo:
        raise InvalidArgument(f"max_prefixlen={hi} is shorter than min_prefixlen={lo}")
    bounds = {f: (lo, min(hi, f.width)) for f in families}
    return _cidrs(families, bounds, inside)


@st.composite
def _cidrs(
    draw: st.DrawFn,
    families: tuple[IPFamily, ...],
    bounds: dict[IPFamily, tuple[int, int]],
    inside: Net | None,
) -> netaddr.IPNetwork:
    family = draw(st.sampled_from(families))
    lo, hi = bounds[family]
    w = family.width
    prefixlen = boosted_int(draw, lo, hi, edges=(w - 1, w))
    value = draw_network(draw, family, prefixlen, inside)
    seed = parse_network(SEED_CLUSTER[IPFamily.IPv6][0])
    seed_fits = (
        family is IPFamily.IPv6
        and lo <= seed.prefixlen <= hi
        and (inside is None or _contains(inside, seed))
    )
    # Drawn whether or not the seed fits: paths that skip a choice would be
    # shorter, and so simpler to the shrinker.
    if boost(draw, 10) and seed_fits:
        return make_network(seed.value, seed.prefixlen, family)
    return make_network(value, prefixlen, family)


def _contains(outer: Net, inner: Net) -> bool:
    if outer.family is not inner.family or inner.prefixlen < outer.prefixlen:
        return False
    return inner.value >> (outer.family.width - outer.prefixlen) == outer.value >> (
        outer.family.width - outer.prefixlen
    )


# ---------------------------------------------------------------- configs


def cluster_configs(
    *,
    dual_stack: bool | None = None,
    primary_family: IPFamily | str | None = None,
    min_service_ranges: int = 0,
    max_service_ranges: int = 2,
    min_nodes: int = 0,
    max_nodes: int | None = None,
    min_service_ips: int = 0,
    max_service_ips: int | None = None,
) -> st.SearchStrategy[ClusterConfig]:
    """Valid :class:`~dualstack_ipam.ClusterConfig` values.

    Args:
        dual_stack: two cluster CIDRs (True), one (False), either (None).
        primary_family: the family of the first cluster CIDR, or None.
        min_service_ranges, max_service_ranges: how many Service ranges
            (0 to 2). They usually follow the cluster's families in order;
            sometimes the other way round, or of a family the cluster lacks
            (Kubernetes allows both).
        min_nodes: ``config.max_nodes >= min_nodes`` (at most 2**24).
        max_nodes: every family's node subnet count, Service set-aside
            included, is at most this, so ``config.max_nodes <= max_nodes``;
            a power of two must lie in ``[min_nodes, max_nodes]``.
        min_service_ips, max_service_ips: every Service range holds that
            many usable addresses (``ServiceIPPool.capacity``).

    Every rule of ``ClusterConfig`` holds by construction: node masks
    between the cluster prefix and the family width, no two CIDRs of one
    family. Service ranges are disjoint from the cluster CIDRs, or
    (boosted) inside one, so that some node subnets are set aside, or
    covering one entirely (only when ``min_nodes == 0``). Node masks
    shrink to the defaults (24 and 64), clusters to one node.

    Complexity:
        O(1) per draw.

    >>> from hypothesis import find
    >>> find(cluster_configs(), lambda config: True)
    ClusterConfig(cluster_cidrs=(IPNetwork('10.0.0.0/24'),), service_cidrs=(), \
node_mask_ipv4=24, node_mask_ipv6=64)
    >>> find(cluster_configs(dual_stack=True, min_service_ranges=1), lambda c: True).service_cidrs
    (IPNetwork('10.0.1.0/24'),)
    """
    check_bool(dual_stack, "dual_stack")
    primary = check_family(primary_family, "primary_family")
    check_int(min_service_ranges, "min_service_ranges", 0, 2)
    check_int(max_service_ranges, "max_service_ranges", 0, 2)
    if min_service_ranges > max_service_ranges:
        raise InvalidArgument(
            f"min_service_ranges={min_service_ranges} > max_service_ranges={max_service_ranges}"
        )
    check_int(min_nodes, "min_nodes", 0, _MAX_MIN_NODES)
    if max_nodes is not None:
        check_int(max_nodes, "max_nodes", 1)
        if 1 << _ceil_log2(min_nodes) > max_nodes:
            raise InvalidArgument(
                f"min_nodes={min_nodes}, max_nodes={max_nodes}: node subnets come in powers "
                f"of two, and none lies between them"
            )
    check_int(min_service_ips, "min_service_ips", 0)
    if max_service_ips is not None:
        check_int(max_service_ips, "max_service_ips", 0)
        if max_service_ips < min_service_ips:
            raise InvalidArgument(
                f"max_service_ips={max_service_ips} < min_service_ips={min_service_ips}"
            )
    prefixes = {}
    for family in IPFamily:
        fits = _service_prefixes(family, min_service_ips, max_service_ips)
        if fits is None and max_service_ranges > 0:
            raise InvalidArgument(
                f"min_service_ips={min_service_ips}, max_service_ips={max_service_ips}: "
                f"no {family} Service range holds that many usable addresses"
            )
        prefixes[family] = fits or (0, 0)
    nodes = (min_nodes, max_nodes)
    return _cluster_configs(
        dual_stack, primary, (min_service_ranges, max_service_ranges), nodes, prefixes
    )


@functools.lru_cache(maxsize=64)
def _service_prefixes(family: IPFamily, lo: int, hi: int | None) -> tuple[int, int] | None:
    """The prefix lengths whose ranges hold ``lo`` to ``hi`` usable addresses."""
    fits = [
        p
        for p in range(1, family.width + 1)
        if lo <= usable(family, p) and (hi is None or usable(family, p) <= hi)
    ]
    return (min(fits), max(fits)) if fits else None


@st.composite
def _cluster_configs(
    draw: st.DrawFn,
    dual_stack: bool | None,
    primary: IPFamily | None,
    service_ranges: tuple[int, int],
    nodes: tuple[int, int | None],
    service_prefixes: dict[IPFamily, tuple[int, int]],
) -> ClusterConfig:
    first = primary if primary is not None else draw(ip_families())
    dual = dual_stack if dual_stack is not None else draw(st.booleans())
    families = (first, first.other) if dual else (first,)
    count = draw(st.integers(*service_ranges))
    natural = (first, first.other)[:count]
    swapped = (first.other, first)[:count]
    services = choose(draw, [(7, st.just(natural)), (1 if count else 0, st.just(swapped))])
    min_nodes, max_nodes = nodes
    bits_lo = _ceil_log2(min_nodes)
    bits_cap = None if max_nodes is None else max_nodes.bit_length() - 1
    clusters: dict[IPFamily, tuple[Net, int]] = {}
    for family in families:
        # A family with a Service range keeps its cluster prefix >= 1, so
        # that a Service range disjoint from it always exists.
        spare = 1 if family in services else 0
        w = family.width
        mask = boosted_int(
            draw,
            bits_lo + spare,
            w,
            first=DEFAULT_NODE_MASK[family],
            band=MASK_BAND[family],
            edges=(w - 1, w),
        )
        top = mask - spare if bits_cap is None else min(bits_cap, mask - spare)
        bits = boosted_int(
            draw, bits_lo, top, first=bits_lo, band=NODE_BITS_BAND[family], edges=(1, top)
        )
        prefix = mask - bits
        value = draw_network(draw, family, prefix, None)
        clusters[family] = (Net(value, prefix, family), mask)
    ranges = [
        _service_range(draw, family, clusters.get(family), min_nodes, service_prefixes[family])
        for family in services
    ]
    seed = _seed_config(families, services, nodes, service_prefixes)
    if boost(draw, 8) and seed is not None:
        return seed
    masks = {family: mask for family, (_, mask) in clusters.items()}
    return ClusterConfig(
        [str(make_network(*net)) for net, _ in clusters.values()],
        [str(make_network(*net)) for net in ranges],
        node_mask_ipv4=masks.get(IPFamily.IPv4, DEFAULT_NODE_MASK[IPFamily.IPv4]),
        node_mask_ipv6=masks.get(IPFamily.IPv6, DEFAULT_NODE_MASK[IPFamily.IPv6]),
    )


def _service_range(
    draw: st.DrawFn,
    family: IPFamily,
    cluster: tuple[Net, int] | None,
    min_nodes: int,
    prefixes: tuple[int, int],
) -> Net:
    """A Service range of ``family``, placed against the cluster CIDR of that family."""
    w = family.width
    prefix = boosted_int(
        draw,
        *prefixes,
        first=SERVICE_DEFAULT[family],
        band=SERVICE_BAND[family],
        edges=(w - 2, w - 1, w),
    )
    if cluster is None:
        return Net(draw_network(draw, family, prefix, None), prefix, family)
    net, mask = cluster
    # Drawn first whatever the placement, so that every placement costs the
    # same number of choices and the shrinker prefers the first: disjoint.
    outside = draw_outside(draw, family, prefix, net)
    subnets = 1 << (mask - net.prefixlen)
    inside = prefix > net.prefixlen and subnets - (1 << max(0, mask - prefix)) >= min_nodes
    covering = prefix <= net.prefixlen and min_nodes == 0
    placement = choose(
        draw,
        [
            (6, st.just("disjoint")),
            (3 if inside else 0, st.just("inside")),
            (1 if covering else 0, st.just("covering")),
        ],
    )
    if placement == "inside":
        value = draw_network(draw, family, prefix, net)
    elif placement == "covering":
        value = net.value & ~((1 << (w - prefix)) - 1)
    else:
        value = outside
    return Net(value, prefix, family)


def _seed_config(
    families: tuple[IPFamily, ...],
    services: tuple[IPFamily, ...],
    nodes: tuple[int, int | None],
    service_prefixes: dict[IPFamily, tuple[int, int]],
) -> ClusterConfig | None:
    """The seed's cluster cut to these families, if it meets every bound."""
    for family in families:
        cidr, mask = SEED_CLUSTER[family]
        count = 1 << (mask - parse_network(cidr).prefixlen)
        if count < nodes[0] or (nodes[1] is not None and count > nodes[1]):
            return None
    for family in services:
        lo, hi = service_prefixes[family]
        if not lo <= parse_network(SEED_SERVICE[family]).prefixlen <= hi:
            return None
    return ClusterConfig(
        [SEED_CLUSTER[f][0] for f in families],
        [SEED_SERVICE[f] for f in services],
        node_mask_ipv4=SEED_CLUSTER[IPFamily.IPv4][1],
        node_mask_ipv6=SEED_CLUSTER[IPFamily.IPv6][1],
    )
