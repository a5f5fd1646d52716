"""Growth measured from a cluster's journal: the rates ``Cluster.forecast`` uses.

Each journal entry carries a key's addresses after the change, so a replay
in revision order knows every key's addresses at any moment the journal
covers. The growth of a window ``[start, now]`` is, per family, what the
keys held at ``now`` less what they held just before ``start``: node CIDRs
count the nodes holding a CIDR of the family, Service IPs the addresses of
the family. Entries after ``now`` are ignored.

The rate is that growth divided by the measured span: the window, or from
the oldest entry in it when the journal starts later (a young cluster, or a
compacted journal). Under one hour of history every rate is 0 ("not enough
history"); a negative growth is 0 too (a shrinking range never runs out).
An ``import`` entry (a backup written into the store) sets a key's state
without counting as growth.
A key whose earlier entries were compacted away counts as holding nothing
before its first entry kept, so its release is not counted: after
compaction growth can be overstated, never understated (the date is early,
not late).

>>> from datetime import UTC, datetime, timedelta
>>> from dualstack_ipam.durable.journal import JournalEntry
>>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
>>> entries = [JournalEntry(i + 1, t0 + timedelta(days=i), "a", "allocate", "node",
...                         f"n{i}", ("10.244.%d.0/24" % i,)) for i in range(4)]
>>> measure(entries, start=t0 - timedelta(days=7), now=t0 + timedelta(days=4)).node_rate
1.0
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import attrs

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.durable.journal import JournalEntry
from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.forecast import Forecast, forecast
from dualstack_ipam.net import IPFamily

__all__ = ["MIN_SPAN", "Growth", "journal_forecast", "measure", "read_window"]

MIN_SPAN = datetime.timedelta(hours=1)
"""Less history than this measures nothing: every rate is 0."""

_DAY = datetime.timedelta(days=1)


def _family(text: str) -> IPFamily:
    # Address and CIDR text of the journal: only IPv6 text has a colon.
    return IPFamily.IPv6 if ":" in text else IPFamily.IPv4


def _counts(kind: str, addresses: tuple[str, ...]) -> dict[IPFamily, int]:
    counts = dict.fromkeys(IPFamily, 0)
    for text in addresses:
        counts[_family(text)] += 1
    if kind == "node":  # a node counts once per family, however many CIDRs
        counts = {family: min(count, 1) for family, count in counts.items()}
    return counts


@attrs.frozen
class Growth:
    """Net growth over a measured span, and the rates per day it gives.

    Attributes:
        span: the time measured (from the window start or the oldest entry
            in the window, to ``now``); zero when no entry is in the window.
        nodes: net node CIDRs gained per family over the span.
        services: net Service IPs gained per family over the span.
        entries: how many entries of the window were replayed.
    """

    span: datetime.timedelta
    nodes: dict[IPFamily, int]
    services: dict[IPFamily, int]
    entries: int

    def _rate(self, growth: int) -> float:
        if self.span < MIN_SPAN or growth <= 0:
            return 0.0
        return growth / (self.span / _DAY)

    @property
    def node_rate(self) -> float:
        """Nodes per day: the fastest-growing family's node CIDRs (0 if none grows).

        A node takes a CIDR of every family, so the families grow alike;
        the largest is taken so that the forecast errs early.

        Complexity:
            O(1).
        """
        return max((self._rate(growth) for growth in self.nodes.values()), default=0.0)

    @property
    def service_rates(self) -> dict[IPFamily, float]:
        """Service IPs per day, per family (0 for a shrinking one).

        Complexity:
            O(1).
        """
        return {family: self._rate(growth) for family, growth in self.services.items()}


def measure(
    entries: Iterable[JournalEntry], *, start: datetime.datetime, now: datetime.datetime
) -> Growth:
    """Replay ``entries`` (revision order) and measure the growth of ``[start, now]``.

    Args:
        entries: the journal, oldest revision first (``Cluster.journal()``).
        start: the window's start (an aware datetime).
        now: its end; later entries are ignored.

    Returns:
        The :class:`Growth` of the window.

    Complexity:
        O(j) for the j entries read.

    >>> from datetime import UTC, datetime
    >>> moment = datetime(2026, 1, 1, tzinfo=UTC)
    >>> measure([], start=moment, now=moment).node_rate
    0.0
    """
    before: dict[tuple[str, str], tuple[str, ...]] = {}
    after: dict[tuple[str, str], tuple[str, ...]] = {}
    oldest: datetime.datetime | None = None
    replayed, earlier = 0, False
    for entry in entries:
        if entry.time > now:
            continue
        where = (entry.kind, entry.key)
        if entry.time < start:
            before[where] = after[where] = entry.addresses
            earlier = True
            continue
        if entry.op == "import":
            # A restored backup: state that existed elsewhere, not growth.
            before[where] = entry.addresses
        else:
            before.setdefault(where, ())
        after[where] = entry.addresses
        oldest = entry.time if oldest is None else min(oldest, entry.time)
        replayed += 1
    growth = {kind: dict.fromkeys(IPFamily, 0) for kind in ("node", "service")}
    for where, held in after.items():
        kind = where[0]
        if kind not in growth:
            continue
        old, new = _counts(kind, before[where]), _counts(kind, held)
        for family in IPFamily:
            growth[kind][family] += new[family] - old[family]
    # History before the window: the whole window is measured, even if quiet.
    span = datetime.timedelta(0)
    if earlier:
        span = now - start
    elif oldest is not None:
        span = now - oldest
    return Growth(span, growth["node"], growth["service"], replayed)


def read_window(window: Any, now: Any) -> tuple[datetime.datetime, datetime.datetime]:
    """The window ``[now - window, now]`` as two aware datetimes (None: now in UTC).

    Raises:
        InvalidConfigError: ``window`` is not a positive ``timedelta``, or
            ``now`` is neither None nor an aware ``datetime``.

    Complexity:
        O(1).

    >>> from datetime import UTC, datetime, timedelta
    >>> read_window(timedelta(days=1), datetime(2026, 1, 2, tzinfo=UTC))[0]
    datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> read_window(timedelta(days=1), datetime(2026, 1, 2))
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: now must be a timezone-aware \
datetime.datetime, got datetime.datetime(2026, 1, 2, 0, 0)
    """
    if not isinstance(window, datetime.timedelta) or window <= datetime.timedelta(0):
        raise InvalidConfigError(
            f"window must be a positive datetime.timedelta, got {window!r}", value=window
        )
    if now is None:
        now = datetime.datetime.now(datetime.UTC)
    elif not isinstance(now, datetime.datetime) or now.utcoffset() is None:
        raise InvalidConfigError(
            f"now must be a timezone-aware datetime.datetime, got {now!r}", value=now
        )
    try:
        start = now - window
    except OverflowError:  # a window reaching before year 1: all of history
        start = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return start, now


def journal_forecast(
    config: ClusterConfig,
    entries: Iterable[JournalEntry],
    used: Any,
    *,
    start: datetime.datetime,
    now: datetime.datetime,
) -> Forecast:
    """The forecast of ``config`` at the rates :func:`measure` finds in ``entries``.

    Args:
        config: the cluster.
        entries: its journal, oldest revision first.
        used: what it holds now (as ``forecast``'s ``used=``).
        start: the window's start.
        now: its end; the forecast counts from its UTC day.

    Returns:
        A :class:`~dualstack_ipam.Forecast`.

    Raises:
        InvalidConfigError: ``used`` is not of this cluster.

    Complexity:
        O(j) for the j entries read.

    >>> from datetime import UTC, datetime
    >>> from dualstack_ipam import ClusterConfig
    >>> moment = datetime(2026, 1, 1, tzinfo=UTC)
    >>> journal_forecast(ClusterConfig("10.0.0.0/16"), [], None, start=moment,
    ...                  now=moment).get("IPv4", "node_cidrs").when
    'never'
    """
    growth = measure(entries, start=start, now=now)
    rates = {family: growth.service_rates[family] for family in config.service_families}
    return forecast(
        config,
        nodes_per_day=growth.node_rate,
        services_per_day=rates,
        now=now.astimezone(datetime.UTC).date(),
        used=used,
    )
