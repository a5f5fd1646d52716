"""When each range runs out: a linear exhaustion forecast per family and per range.

The model (``docs/maps.md`` has the long form): every range fills at a
constant rate per day from what it holds now, so it is full after
``free / rate`` days. Days count from the start of ``now``'s day (UTC
today by default); the range runs out on the day its last unit is taken,
``today + floor(free / rate)`` days. A rate of 0 never runs it out
(``runs_out`` is None); a full range runs out today whatever the rate; a
date past 9999-12-31 (Python's last date: a /64 at any human rate) is None
too, with ``days_left`` still exact.

Two kinds of range per family: ``"node_cidrs"`` (a node takes one subnet of
every cluster CIDR, so each family's node pool fills at ``nodes_per_day``;
the subnets set aside for a Service range are not counted) and
``"service_ips"`` (the usable addresses of the Service range). A number for
``services_per_day`` counts the Services that take an address of the
primary Service family (the first Service range: the family of a Service
that names none); the other family fills only as fast as a mapping by
family says. The arguments are read and checked in
:mod:`dualstack_ipam.forecast_inputs`.

>>> import datetime
>>> from dualstack_ipam import ClusterConfig
>>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/24,fd00::/112")
>>> result = forecast(config, nodes_per_day=10, services_per_day=20,
...                   now=datetime.date(2026, 1, 1), used={"IPv4": {"node_cidrs": 6}})
>>> result.get("IPv4", "node_cidrs").runs_out, result.get("IPv6", "service_ips").runs_out
(datetime.date(2026, 1, 26), None)
>>> print(result)  # doctest: +NORMALIZE_WHITESPACE
Forecast from 2026-01-01 at constant rates per day (linear model)
FAMILY  RANGE        CIDR           CAPACITY       USED  PER DAY  DAYS LEFT  RUNS OUT
IPv4    node CIDRs   10.244.0.0/16  256            6     10       25         2026-01-26
IPv6    node CIDRs   fc00::/24      1099511627776  0     10       109951162777  after 9999-12-31
IPv4    Service IPs  10.96.0.0/24   254            0     20       12         2026-01-13
IPv6    Service IPs  fd00::/112     65535          0     0        -          never
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import attrs
import netaddr

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import FamilyNotConfiguredError, InvalidConfigError
from dualstack_ipam.forecast_inputs import (
    KINDS,
    Rate,
    added_capacity,
    read_rate,
    read_today,
    read_used,
    service_rates,
)
from dualstack_ipam.net import IPFamily, parse_family, usable_span
from dualstack_ipam.snapshot import write_int

__all__ = ["KINDS", "Forecast", "RangeForecast", "forecast"]


@attrs.frozen
class RangeForecast:
    """One range's forecast.

    Attributes:
        family: the range's :class:`~dualstack_ipam.IPFamily`.
        kind: ``"node_cidrs"`` or ``"service_ips"`` (see :data:`KINDS`).
        cidr: the cluster CIDR or Service range (the configuration's).
        capacity: units that can be handed out (node subnets less the
            Service set-aside; usable Service addresses), with those of the
            ranges added to the allocators given as ``used`` (``add_range``).
        used: units held now.
        rate: units taken per day.
        days_left: whole days from the start of today until the last unit
            is taken (0: today), or None at rate 0 with room left.
        runs_out: that day, or None ("never": rate 0, or after 9999-12-31).
    """

    family: IPFamily
    kind: str
    cidr: netaddr.IPNetwork
    capacity: int
    used: int
    rate: Rate
    days_left: int | None
    runs_out: datetime.date | None

    @property
    def free(self) -> int:
        """``capacity - used``.

        Complexity:
            O(1).
        """
        return self.capacity - self.used

    @property
    def when(self) -> str:
        """The run-out day as the table prints it: ISO date, "never" or "after 9999-12-31".

        Complexity:
            O(1).
        """
        if self.runs_out is not None:
            return self.runs_out.isoformat()
        return "never" if self.days_left is None else "after 9999-12-31"

    @property
    def label(self) -> str:
        """The kind as the table prints it (``"node CIDRs"``, ``"Service IPs"``).

        Complexity:
            O(1).
        """
        return KINDS[self.kind]


def _number(value: Rate) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


@attrs.frozen
class Forecast:
    """Every range's forecast, node CIDRs first, each kind in family order.

    Attributes:
        today: the day the forecast counts from.
        ranges: one :class:`RangeForecast` per family and kind.
    """

    today: datetime.date
    ranges: tuple[RangeForecast, ...]

    def __iter__(self) -> Iterator[RangeForecast]:
        """The ranges' forecasts, in order.

        Complexity:
            O(1) per range.
        """
        return iter(self.ranges)

    def get(self, family: IPFamily | str, kind: str) -> RangeForecast:
        """The forecast of ``family``'s range of ``kind``.

        Raises:
            FamilyNotConfiguredError: the forecast has no such range.

        Complexity:
            O(1) (at most four ranges).
        """
        fam = parse_family(family)
        for entry in self.ranges:
            if entry.family is fam and entry.kind == kind:
                return entry
        raise FamilyNotConfiguredError(
            f"the forecast has no {fam} range of kind {kind!r}", family=fam
        )

    @property
    def first(self) -> RangeForecast | None:
        """The range that runs out first, or None when none ever does.

        Complexity:
            O(1) (at most four ranges).
        """
        dated = [entry for entry in self.ranges if entry.runs_out is not None]
        return min(dated, key=lambda entry: entry.days_left or 0, default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``today`` and ``ranges`` (big counts as strings, dates ISO).

        Complexity:
            O(1) (at most four ranges).
        """
        return {
            "today": self.today.isoformat(),
            "ranges": [
                {
                    "family": str(entry.family),
                    "kind": entry.kind,
                    "cidr": str(entry.cidr),
                    "capacity": write_int(entry.capacity),
                    "used": write_int(entry.used),
                    "rate_per_day": entry.rate,
                    "days_left": None if entry.days_left is None else write_int(entry.days_left),
                    "runs_out": None if entry.runs_out is None else entry.runs_out.isoformat(),
                }
                for entry in self.ranges
            ],
        }

    def __str__(self) -> str:
        """A table, one row per range; "never" where the rate is 0.

        Complexity:
            O(1) (at most four ranges).
        """
        rows = [["FAMILY", "RANGE", "CIDR", "CAPACITY", "USED", "PER DAY", "DAYS LEFT", "RUNS OUT"]]
        for entry in self.ranges:
            rows.append(
                [
                    str(entry.family),
                    entry.label,
                    str(entry.cidr),
                    str(entry.capacity),
                    str(entry.used),
                    _number(entry.rate),
                    "-" if entry.days_left is None else str(entry.days_left),
                    entry.when,
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        head = f"Forecast from {self.today.isoformat()} at constant rates per day (linear model)"
        return "\n".join([head, *(line.rstrip() for line in lines)])


def _entry(
    family: IPFamily,
    kind: str,
    cidr: netaddr.IPNetwork,
    capacity: int,
    used: int,
    rate: Rate,
    today: datetime.date,
) -> RangeForecast:
    if used > capacity:
        raise InvalidConfigError(
            f"used={used!r} {KINDS[kind]} of {family} exceeds the capacity {capacity} of {cidr}",
            value=used,
        )
    free = capacity - used
    days: int | None = None
    if free == 0:
        days = 0
    elif rate:
        exact = Fraction(rate)  # exact for floats too: no rounding at 2**64
        days = free * exact.denominator // exact.numerator
    runs_out = None
    if days is not None and days <= (datetime.date.max - today).days:
        runs_out = today + datetime.timedelta(days=days)
    return RangeForecast(family, kind, cidr, capacity, used, rate, days, runs_out)


def forecast(
    config: ClusterConfig,
    *,
    nodes_per_day: Rate = 0,
    services_per_day: Rate | Mapping[Any, Rate] = 0,
    now: datetime.date | None = None,
    used: Any = None,
) -> Forecast:
    """When each node and Service range of ``config`` runs out, at constant rates.

    Args:
        config: the cluster.
        nodes_per_day: nodes added per day (each takes a subnet of every
            cluster family).
        services_per_day: Services per day taking an address of the primary
            Service family, or a mapping of family (``"IPv4"``, ``"IPv6"`` or
            :class:`~dualstack_ipam.IPFamily`) to addresses per day; an
            absent family fills at 0.
        now: the day to count from (a ``date``, or a ``datetime`` whose date
            is taken); None is today in UTC.
        used: what is held now: None (nothing, as ``plan`` assumes); a
            :class:`~dualstack_ipam.NodeCIDRAllocator` and/or
            :class:`~dualstack_ipam.ServiceIPAllocator` of this cluster
            (alone or in a list or tuple); or a mapping of family to kind
            (``"node_cidrs"``, ``"service_ips"``) to a count, where a count
            may also be a mapping with a ``"used"`` key, so the ``usage``
            object of ``dualstack-ipam show --json`` can be passed as it is.
            Absent entries count 0. An allocator's ranges added with
            ``add_range`` count in the capacity too.

    Returns:
        A :class:`Forecast`.

    Raises:
        InvalidConfigError: a negative, infinite or non-numeric rate, a
            Service rate for a cluster without a Service range, a bad
            ``now`` or ``used``, an allocator of another cluster, or a count
            above the range's capacity.
        FamilyNotConfiguredError: a rate or count for a family the cluster
            has no such range of.

    Complexity:
        O(1) (at most four ranges).

    >>> from dualstack_ipam import ClusterConfig
    >>> import datetime
    >>> entry = forecast(ClusterConfig("10.0.0.0/24", node_mask_ipv4=28), nodes_per_day=1.5,
    ...                  now=datetime.date(2026, 3, 1)).get("IPv4", "node_cidrs")
    >>> entry.capacity, entry.days_left, entry.runs_out
    (16, 10, datetime.date(2026, 3, 11))
    """
    node_rate = read_rate(nodes_per_day, "nodes_per_day")
    rates = service_rates(config, services_per_day)
    counts = read_used(config, used)
    extra = added_capacity(config, used)
    today = read_today(now)
    for family, kind in counts:
        present = config.families if kind == "node_cidrs" else config.service_families
        if family not in present:
            raise FamilyNotConfiguredError(
                f"used= counts {KINDS[kind]} of {family}, which the cluster has no range for",
                family=family,
            )
    entries = [
        _entry(
            family,
            "node_cidrs",
            config.cluster_cidr(family),
            config.node_capacity(family) + extra.get((family, "node_cidrs"), 0),
            counts.get((family, "node_cidrs"), 0),
            node_rate,
            today,
        )
        for family in config.families
    ]
    for family in config.service_families:
        cidr = config.service_cidr(family)
        capacity = usable_span(family, cidr.prefixlen)[1] + extra.get((family, "service_ips"), 0)
        entries.append(
            _entry(
                family,
                "service_ips",
                cidr,
                capacity,
                counts.get((family, "service_ips"), 0),
                rates[family],
                today,
            )
        )
    return Forecast(today, tuple(entries))
