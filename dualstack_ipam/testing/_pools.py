"""Strategies for SubnetPool and ServiceIPPool objects in realistic states."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from dualstack_ipam.bitmap import make_bitmap
from dualstack_ipam.cluster.config import DEFAULT_NODE_MASK
from dualstack_ipam.net import IPFamily, Net, make_address, make_network, parse_network
from dualstack_ipam.pools import ServiceIPPool, SubnetPool
from dualstack_ipam.snapshot import write_int

from ._common import (
    MASK_BAND,
    NODE_BITS_BAND,
    NODE_STRATEGIES,
    SEED_CLUSTER,
    SEED_SERVICE,
    SERVICE_BAND,
    SERVICE_DEFAULT,
    SERVICE_STRATEGIES,
    InvalidArgument,
    boost,
    boosted_int,
    check_family,
    check_fill,
    check_int,
    check_network,
    check_strategy,
    draw_network,
    fill_choice,
    st,
    usable,
)
from ._networks import ip_families

__all__ = ["service_ip_pools", "subnet_pools"]


def _wrapped_runs(start: int, length: int, size: int) -> list[tuple[int, int]]:
    """``[start, start + length)`` modulo ``size`` as at most two runs."""
    stop = start + length
    if stop <= size:
        return [(start, stop)] if length else []
    return [(start, size), (0, stop - size)]


def _aligned_blocks(start: int, stop: int) -> Iterable[tuple[int, int]]:
    """``[start, stop)`` as aligned power-of-two blocks ``(first, log2 size)``."""
    while start < stop:
        size = (start & -start).bit_length() - 1 if start else (stop - start).bit_length()
        while start + (1 << size) > stop:
            size -= 1
        yield start, size
        start += 1 << size


def subnet_pools(
    *,
    family: IPFamily | str | None = None,
    cidr: Any = None,
    prefixlen: int | None = None,
    fill: str | Collection[str] | None = None,
    strategy: str | None = None,
) -> st.SearchStrategy[SubnetPool]:
    """:class:`~dualstack_ipam.SubnetPool` objects in a realistic state.

    Args:
        family: of the drawn range (ignored when ``cidr`` is given).
        cidr: a fixed range to carve, or None to draw one.
        prefixlen: a fixed subnet length, or None to draw one (from the
            range's own prefix to the family width; 24 / 64 first).
        fill: one of :data:`FILLS`, a collection of them, or None for all.
            Fills are made with ``occupy`` / ``release`` of whole ranges, so
            a full ``fc00::/24`` carved at /64 (2**40 subnets) is cheap.
        strategy: ``"next-fit"``, ``"lowest"`` or None for both. A next-fit
            pool gets a drawn cursor, as after a restart from a snapshot.

    Boosted: one subnet (``/32`` at 32, ``/128`` at 128), two (``/31``,
    ``/127``), the seed's ``fc00::/24`` at 64, and the one-free fill.

    Complexity:
        O(log capacity) per draw: fills occupy and release whole ranges.

    >>> from hypothesis import find
    >>> find(subnet_pools(fill="one-free"), lambda pool: pool.capacity > 2)
    SubnetPool('10.0.0.0/22', 24, strategy='next-fit')<used=3/4>
    """
    fam = check_family(family)
    net = None if cidr is None else check_network(cidr, "cidr")
    if net is not None and fam is not None and fam is not net.family:
        raise InvalidArgument(f"family={family!r} disagrees with cidr={cidr!r}")
    if prefixlen is not None:
        lo = 0 if net is None else net.prefixlen
        hi = 128 if net is None else net.family.width
        check_int(prefixlen, "prefixlen", lo, hi)
        if net is None and fam is IPFamily.IPv4:
            check_int(prefixlen, "prefixlen", 0, 32)
    return _subnet_pools(
        fam, net, prefixlen, check_fill(fill), check_strategy(strategy, NODE_STRATEGIES)
    )


@st.composite
def _subnet_pools(
    draw: st.DrawFn,
    family: IPFamily | None,
    net: Net | None,
    prefixlen: int | None,
    fills: tuple[str, ...],
    strategies: tuple[str, ...],
) -> SubnetPool:
    if net is None:
        if prefixlen is not None and prefixlen > 32:
            fam = IPFamily.IPv6
        else:
            fam = family if family is not None else draw(ip_families())
        net, prefixlen = _draw_pool_range(draw, fam, prefixlen)
    elif prefixlen is None:
        w = net.family.width
        prefixlen = boosted_int(
            draw,
            net.prefixlen,
            w,
            first=max(net.prefixlen, DEFAULT_NODE_MASK[net.family]),
            band=(net.prefixlen, net.prefixlen + 16),
            edges=(w - 1, w),
        )
    strategy = draw(st.sampled_from(strategies))
    pool = SubnetPool(str(make_network(*net)), prefixlen, strategy=strategy)
    fill = fill_choice(draw, fills)
    capacity = pool.capacity
    if fill == "some":
        for _ in range(draw(st.integers(1, 6))):
            _subnet_step(draw, pool)
        return pool
    if fill == "full":
        pool.occupy(pool.cidr)
    elif fill == "one-free":
        pool.occupy(pool.cidr)
        pool.release(pool.subnet_at(draw(st.integers(0, capacity - 1))))
    elif fill == "half":
        start = draw(st.integers(0, capacity - 1))
        for lo, hi in _wrapped_runs(start, capacity // 2, capacity):
            for first, size in _aligned_blocks(lo, hi):
                block = pool.subnet_at(first)
                pool.occupy(make_network(block.first, prefixlen - size, net.family))
    cursor = draw(st.integers(0, capacity - 1))  # drawn for both, so neither is shorter
    if strategy == "next-fit" and cursor:
        data = pool.snapshot()
        data["cursor"] = write_int(cursor)
        pool = SubnetPool.restore(data)
    return pool


def _draw_pool_range(draw: st.DrawFn, family: IPFamily, prefixlen: int | None) -> tuple[Net, int]:
    """A range and its subnet length, drawn like a cluster CIDR and node mask."""
    w = family.width
    if prefixlen is None:
        mask = boosted_int(
            draw, 0, w, first=DEFAULT_NODE_MASK[family], band=MASK_BAND[family], edges=(w - 1, w)
        )
    else:
        mask = prefixlen
    bits = boosted_int(draw, 0, mask, first=0, band=NODE_BITS_BAND[family], edges=(1, mask))
    prefix = mask - bits
    net = Net(draw_network(draw, family, prefix, None), prefix, family)
    if boost(draw, 8) and family is IPFamily.IPv6 and prefixlen in (None, 64):
        cidr, mask = SEED_CLUSTER[IPFamily.IPv6]
        return parse_network(cidr), mask
    return net, mask


def _subnet_step(draw: st.DrawFn, pool: SubnetPool) -> None:
    """One realistic operation: allocate, occupy (a restart), or release."""
    action = draw(st.sampled_from(["allocate", "occupy", "release"]))
    if action == "allocate":
        if pool.free:
            pool.allocate_next()
        return
    subnet = pool.subnet_at(draw(st.integers(0, pool.capacity - 1)))
    if action == "occupy":
        pool.occupy(subnet)
    else:
        pool.release(subnet)


def service_ip_pools(
    *,
    family: IPFamily | str | None = None,
    cidr: Any = None,
    fill: str | Collection[str] | None = None,
    strategy: str | None = None,
) -> st.SearchStrategy[ServiceIPPool]:
    """:class:`~dualstack_ipam.ServiceIPPool` objects in a realistic state.

    Args:
        family: of the drawn range (ignored when ``cidr`` is given).
        cidr: a fixed Service range, or None to draw one (/24 and /112
            first; the seed's ``10.96.0.0/12`` and ``fd00:10:96::/112``,
            and ranges with 0, 1 or 2 usable addresses boosted).
        fill: one of :data:`FILLS`, a collection of them, or None for all.
            ``"one-free"`` needs a range with an address (a drawn range then
            has one; a fixed one without is an InvalidArgument). Full and
            partial fills are built as a snapshot and restored, so a full
            IPv6 ``/64`` is cheap; ``"some"`` uses ``allocate`` and
            ``allocate_next``, static addresses first.
        strategy: ``"random"``, ``"sequential"`` or None for both; random
            pools draw from a seeded, reproducible ``random.Random``.

    Complexity:
        O(capacity / 4096) per draw for a dense range (at most 2**24
        addresses), O(log capacity) for a sparse one.

    >>> from hypothesis import find
    >>> find(service_ip_pools(family="IPv6", fill="one-free"), lambda pool: True)
    ServiceIPPool('fd00::/112', strategy='random')<used=65534/65535>
    """
    fam = check_family(family)
    net = None if cidr is None else check_network(cidr, "cidr")
    if net is not None and fam is not None and fam is not net.family:
        raise InvalidArgument(f"family={family!r} disagrees with cidr={cidr!r}")
    fills = check_fill(fill)
    if net is not None and usable(net.family, net.prefixlen) == 0:
        if fills == ("one-free",):
            raise InvalidArgument(f"fill='one-free' needs an address, and {cidr!r} has none")
        fills = tuple(name for name in fills if name != "one-free")
    return _service_ip_pools(fam, net, fills, check_strategy(strategy, SERVICE_STRATEGIES))


@st.composite
def _service_ip_pools(
    draw: st.DrawFn,
    family: IPFamily | None,
    net: Net | None,
    fills: tuple[str, ...],
    strategies: tuple[str, ...],
) -> ServiceIPPool:
    fill = fill_choice(draw, fills)
    if net is None:
        fam = family if family is not None else draw(ip_families())
        net = _draw_service_range(draw, fam, need_address=fill == "one-free")
    strategy = draw(st.sampled_from(strategies))
    rng = draw(st.randoms(use_true_random=True))  # unused when sequential
    pool = ServiceIPPool(str(make_network(*net)), strategy=strategy, rng=rng)
    capacity = pool.capacity
    if fill == "empty" or capacity == 0:
        return pool
    if fill == "some":
        for _ in range(draw(st.integers(1, 6))):
            _service_step(draw, pool)
        return pool
    bitmap = make_bitmap(capacity)
    if fill == "half":
        for lo, hi in _wrapped_runs(draw(st.integers(0, capacity - 1)), capacity // 2, capacity):
            bitmap.add_range(lo, hi)
    else:
        bitmap.add_range(0, capacity)
        if fill == "one-free":
            bitmap.discard(draw(_slots(pool)))
    data = pool.snapshot()
    data["allocated"] = bitmap.to_json()
    data["used"] = write_int(bitmap.count)
    return ServiceIPPool.restore(data, rng=rng)


def _draw_service_range(draw: st.DrawFn, family: IPFamily, *, need_address: bool) -> Net:
    w = family.width
    top = w - (2 if family is IPFamily.IPv4 else 1) if need_address else w
    prefix = boosted_int(
        draw,
        1,
        top,
        first=SERVICE_DEFAULT[family],
        band=SERVICE_BAND[family],
        edges=(64, w - 2, w - 1, w),
    )
    net = Net(draw_network(draw, family, prefix, None), prefix, family)
    return parse_network(SEED_SERVICE[family]) if boost(draw, 10) else net


def _slots(pool: ServiceIPPool) -> st.SearchStrategy[int]:
    """A slot of ``pool``: the static band (where people pin addresses) first."""
    capacity, offset = pool.capacity, pool.offset
    static = st.integers(0, offset - 1) if offset else st.integers(0, capacity - 1)
    return st.one_of(static, st.integers(0, capacity - 1))


def _service_step(draw: st.DrawFn, pool: ServiceIPPool) -> None:
    """One realistic operation: a dynamic or a static allocation, or a release."""
    action = draw(st.sampled_from(["allocate_next", "allocate", "release"]))
    if action == "allocate_next":
        if pool.free:
            pool.allocate_next()
        return
    address = make_address(int(pool.cidr.first) + 1 + draw(_slots(pool)), pool.family)
    if action == "release":
        pool.release(address)
    elif not pool.is_allocated(address):
        pool.allocate(address)
