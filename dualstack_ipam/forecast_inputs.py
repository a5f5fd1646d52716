"""The forecast's inputs, read once at the edge: rates, what is held now, the day.

:func:`dualstack_ipam.forecast.forecast` takes its rates as numbers or a
mapping by family, what is held now as allocators or a mapping (the
``usage`` object of ``dualstack-ipam show --json`` as it is), and the day as
a ``date`` or a ``datetime``. Each is checked and turned into plain values
here, raising :class:`~dualstack_ipam.InvalidConfigError` (or
:class:`~dualstack_ipam.FamilyNotConfiguredError` for a family the cluster
lacks) with the bad value quoted, before anything is counted.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.nodes import NodeCIDRAllocator
from dualstack_ipam.errors import FamilyNotConfiguredError, InvalidConfigError
from dualstack_ipam.net import IPFamily, parse_family
from dualstack_ipam.pools.multi import parts_of
from dualstack_ipam.services.allocator import ServiceIPAllocator

__all__ = ["KINDS", "Rate", "read_rate", "read_today", "read_used", "service_rates"]

KINDS = {"node_cidrs": "node CIDRs", "service_ips": "Service IPs"}
"""The kinds of range a forecast covers, with the label its table prints."""

Rate = int | float


def read_rate(value: Any, name: str) -> Rate:
    """``value`` as units per day: a finite number >= 0 (not a bool).

    Raises:
        InvalidConfigError: anything else; the message names ``name``.

    Complexity:
        O(1).

    >>> read_rate(1.5, "nodes_per_day")
    1.5
    >>> read_rate(-1, "nodes_per_day")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: nodes_per_day must be finite and not negative, got -1
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidConfigError(
            f"{name} must be a number of units per day, got {value!r}", value=value
        )
    if not math.isfinite(value) or value < 0:
        raise InvalidConfigError(
            f"{name} must be finite and not negative, got {value!r}", value=value
        )
    return value


def service_rates(config: ClusterConfig, services_per_day: Any) -> dict[IPFamily, Rate]:
    """The rate of each Service family: a number counts the primary one only.

    Raises:
        InvalidConfigError: a bad rate, or a rate above 0 for a cluster
            without a Service range.
        FamilyNotConfiguredError: a mapping names a family the cluster has
            no Service range of.

    Complexity:
        O(1) (at most two families).

    >>> from dualstack_ipam import ClusterConfig
    >>> service_rates(ClusterConfig("10.0.0.0/16", "fd00::/112,10.96.0.0/24"), 5)
    {<IPFamily.IPv6: 'IPv6'>: 5, <IPFamily.IPv4: 'IPv4'>: 0}
    """
    families = config.service_families
    if isinstance(services_per_day, Mapping):
        rates: dict[IPFamily, Rate] = dict.fromkeys(families, 0)
        for key, value in services_per_day.items():
            family = parse_family(key)
            if family not in families:
                raise FamilyNotConfiguredError(
                    f"services_per_day names {key!r}, but the cluster has no {family} Service "
                    "range",
                    family=family,
                )
            rates[family] = read_rate(value, f"services_per_day[{key!r}]")
        return rates
    rate = read_rate(services_per_day, "services_per_day")
    if not families:
        if rate:
            raise InvalidConfigError(
                f"services_per_day={services_per_day!r}, but the cluster has no Service range",
                value=services_per_day,
            )
        return {}
    return {family: rate if i == 0 else 0 for i, family in enumerate(families)}


def _count(value: Any, where: str) -> int:
    if isinstance(value, Mapping):
        value = value.get("used")
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit() and value.isascii():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidConfigError(
            f"used{where} must be a count (an int >= 0), got {value!r}", value=value
        )
    return value


def read_used(config: ClusterConfig, used: Any) -> dict[tuple[IPFamily, str], int]:
    """Current usage by (family, kind), from allocators or a mapping.

    ``used`` is None, an allocator of ``config`` or a list or tuple of
    them, or a mapping of family to kind to count (a count may be a mapping
    with a ``"used"`` key, or decimal text, as ``show --json`` writes big
    counts). Whether the cluster has each counted range is the caller's
    check.

    Raises:
        InvalidConfigError: another type, an allocator of another cluster,
            an unknown kind, or a count that is not an int >= 0.

    Complexity:
        O(1) (at most four ranges).

    >>> from dualstack_ipam import ClusterConfig
    >>> read_used(ClusterConfig("10.0.0.0/16"), {"IPv4": {"node_cidrs": {"used": "3"}}})
    {(<IPFamily.IPv4: 'IPv4'>, 'node_cidrs'): 3}
    """
    if used is None:
        return {}
    if isinstance(used, (NodeCIDRAllocator, ServiceIPAllocator)):
        used = (used,)
    if isinstance(used, (list, tuple)):
        counts: dict[tuple[IPFamily, str], int] = {}
        for alloc in used:
            if not isinstance(alloc, (NodeCIDRAllocator, ServiceIPAllocator)):
                raise InvalidConfigError(
                    f"used= takes allocators or a mapping, got {alloc!r} in it", value=alloc
                )
            if alloc.config != config:
                raise InvalidConfigError(
                    f"used= holds an allocator of another cluster: {alloc!r}", value=alloc
                )
            if isinstance(alloc, NodeCIDRAllocator):
                counts.update({(f, "node_cidrs"): alloc.used(f) for f in config.families})
            else:
                counts.update({(f, "service_ips"): alloc.used(f) for f in config.service_families})
        return counts
    if not isinstance(used, Mapping):
        raise InvalidConfigError(
            f"used= takes allocators or a mapping of family to kind to count, got {used!r}",
            value=used,
        )
    counts = {}
    for key, kinds in used.items():
        family = parse_family(key)
        if not isinstance(kinds, Mapping):
            raise InvalidConfigError(
                f"used[{key!r}] must map a kind to a count, got {kinds!r}", value=kinds
            )
        for kind, value in kinds.items():
            if kind not in KINDS:
                raise InvalidConfigError(
                    f"used[{key!r}] has kind {kind!r}; expected one of {sorted(KINDS)}",
                    value=kind,
                )
            counts[family, kind] = _count(value, f"[{key!r}][{kind!r}]")
    return counts


def read_today(now: Any) -> datetime.date:
    """The day to count from: ``now``'s date, or today in UTC for None.

    Raises:
        InvalidConfigError: ``now`` is neither None, a date nor a datetime.

    Complexity:
        O(1).

    >>> read_today(datetime.datetime(2026, 3, 1, 23, 59))
    datetime.date(2026, 3, 1)
    """
    if now is None:
        return datetime.datetime.now(datetime.UTC).date()
    if isinstance(now, datetime.datetime):
        return now.date()
    if isinstance(now, datetime.date):
        return now
    raise InvalidConfigError(f"now must be a datetime.date or datetime, got {now!r}", value=now)


def added_capacity(config: ClusterConfig, used: Any) -> dict[tuple[IPFamily, str], int]:
    """What the ranges added to ``used``'s allocators (``add_range``) hold, by (family, kind).

    The configuration names only the first range of each family; an
    allocator that grew holds more. ``used`` as :func:`read_used` takes it
    (checked there first); a mapping of counts adds nothing.

    Complexity:
        O(k) for k ranges.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16"))
    >>> _ = alloc.add_range("10.1.0.0/20")
    >>> added_capacity(alloc.config, alloc)
    {(<IPFamily.IPv4: 'IPv4'>, 'node_cidrs'): 16}
    """
    allocators = used if isinstance(used, (list, tuple)) else (used,)
    extra: dict[tuple[IPFamily, str], int] = {}
    for alloc in allocators:
        if isinstance(alloc, NodeCIDRAllocator):
            kind, families = "node_cidrs", config.families
        elif isinstance(alloc, ServiceIPAllocator):
            kind, families = "service_ips", config.service_families
        else:
            continue
        for family in families:
            added = parts_of(alloc._pool(family))[1:]
            if added:
                extra[family, kind] = sum(part.capacity for part in added)
    return extra
