"""Several ranges of one family acting as one pool: what ``add_range`` grows into.

Kubernetes grows a family with more ranges (ServiceCIDR objects, more
cluster CIDRs); the allocators' ``add_range`` does the same. Their state is
``_pools[family]``, one pool per family, which the owner checks, the
controls, reconcile, metrics and the durable sides all read. So a grown
family's entry stays one pool-like object: a :class:`MultiSubnetPool` or
:class:`MultiServiceIPPool` wrapping the family's first pool and the added
ones (its *parts*), rather than a list that every reader would have to
learn. A family that never grew keeps its plain pool: the hot path of a
single-range cluster (every cluster before this change, and every durable
one) pays nothing.

A composite is immutable: growing builds a new one around the same parts
plus the new one, so an allocator replaces its entry in one assignment and
a failed ``add_range`` changes nothing. It holds no state of its own: counts
are the parts' sums, and each part keeps its own bitmap, cursor, static
band (each Service range has its own, as each ServiceCIDR has in
Kubernetes), reservations and cooldown. What it adds is dispatch:

* by address (``allocate``, ``occupy``, ``release``, ``is_allocated``,
  ``reserve``): to the one part holding it; a value touching no range is a
  :class:`NotInRangeError` naming every range, one touching several (a
  reservation across two ranges) an :class:`InvalidConfigError`;
* by order (``allocate_next``): the parts in the order they were added,
  the first range first;
* by slot: a node allocator numbers subnets across the parts in that order
  (part ``i``'s subnet ``k`` is ``offsets[i] + k``), so the first range
  keeps the numbers it always had (:meth:`MultiPool.locate`).

A durable store maps slots per range through :attr:`MultiPool.parts` and
:attr:`MultiPool.offsets`; :func:`parts_of` and :func:`ranges_of` read a
plain pool and a composite alike. The allocators' snapshots keep a grown
family's first pool where it always was and list the added ones under
``added`` (:func:`stamp_grown`, :func:`open_grown`, :func:`read_added`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain, pairwise
from typing import Any, Generic, TypeVar

import netaddr

from dualstack_ipam.errors import (
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
    SnapshotError,
)
from dualstack_ipam.net import IPFamily, make_network, parse_address, parse_network
from dualstack_ipam.pools.base import BasePool
from dualstack_ipam.pools.ranges import parse_range
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.pools.subnets import SubnetPool
from dualstack_ipam.snapshot import FORMAT_VERSION, open_envelope

__all__ = [
    "GROWN_VERSION",
    "MultiPool",
    "MultiServiceIPPool",
    "MultiSubnetPool",
    "grow",
    "open_grown",
    "parts_of",
    "ranges_of",
    "read_added",
    "sibling",
    "stamp_grown",
]

P = TypeVar("P", SubnetPool, ServiceIPPool)


class MultiPool(Generic[P]):
    """Two or more pools of one family, one class and one strategy, as one pool.

    Args:
        pools: the pools, the first range first, then in the order added;
            none may overlap another.

    Raises:
        InvalidConfigError: fewer than two parts, parts of different
            classes, families or strategies, or two that overlap (the
            message names them).

    Complexity:
        O(k log k) for k parts.

    >>> pool = MultiServiceIPPool([ServiceIPPool("10.96.0.0/29"), ServiceIPPool("10.97.0.0/29")])
    >>> pool.ranges, pool.capacity, pool.offsets
    ((IPNetwork('10.96.0.0/29'), IPNetwork('10.97.0.0/29')), 12, (0, 6))
    """

    __slots__ = ("_firsts", "_lasts", "_offsets", "_parts", "_sorted", "_sorted_offsets")
    _parts: tuple[P, ...]
    _sorted: tuple[P, ...]

    def __init__(self, pools: Sequence[P]) -> None:
        parts: tuple[P, ...] = tuple(pools)
        if len(parts) < 2:
            raise InvalidConfigError(f"a MultiPool needs two pools or more, got {parts!r}")
        first = parts[0]
        for part in parts[1:]:
            if (type(part), part.family, part.strategy) != (
                type(first),
                first.family,
                first.strategy,
            ):
                raise InvalidConfigError(
                    f"{part!r} is not of the kind, family and strategy of {first!r}", value=part
                )
        ordered = sorted(parts, key=lambda part: int(part.cidr.first))
        for low, high in pairwise(ordered):
            if int(high.cidr.first) <= int(low.cidr.last):
                raise InvalidConfigError(
                    f"the ranges {low.cidr} and {high.cidr} overlap", value=high.cidr
                )
        offsets, total = [], 0
        for part in parts:
            offsets.append(total)
            total += part.capacity
        self._parts = parts
        self._offsets = tuple(offsets)
        self._sorted = tuple(ordered)
        self._sorted_offsets = tuple(offsets[parts.index(part)] for part in ordered)
        self._firsts = [int(part.cidr.first) for part in ordered]
        self._lasts = [int(part.cidr.last) for part in ordered]

    def __repr__(self) -> str:
        texts = ",".join(str(cidr) for cidr in self.ranges)
        return f"{type(self).__name__}({texts!r})<used={self.used}/{self.capacity}>"

    # ------------------------------------------------------------ the parts

    @property
    def parts(self) -> tuple[P, ...]:
        """The pools, the first range first, then in the order added.

        Complexity:
            O(1).
        """
        return self._parts

    @property
    def offsets(self) -> tuple[int, ...]:
        """Where each part's slots start in the composite's numbering (``offsets[0] == 0``).

        Complexity:
            O(1).
        """
        return self._offsets

    @property
    def ranges(self) -> tuple[netaddr.IPNetwork, ...]:
        """The parts' networks, in the order of :attr:`parts`.

        Complexity:
            O(k) for k parts.
        """
        return tuple(part.cidr for part in self._parts)

    @property
    def cidr(self) -> netaddr.IPNetwork:
        """The first range (the configuration's): what a message about "the range" names.

        Complexity:
            O(1).
        """
        return self._parts[0].cidr

    @property
    def family(self) -> IPFamily:
        """The parts' family.

        Complexity:
            O(1).
        """
        return self._parts[0].family

    @property
    def strategy(self) -> Any:
        """The parts' strategy.

        Complexity:
            O(1).
        """
        return self._parts[0].strategy

    @property
    def cooldown(self) -> float:
        """The parts' release cooldown in seconds (0: off).

        Complexity:
            O(1).
        """
        return self._parts[0].cooldown

    def part_holding(self, value: int) -> P | None:
        """The part whose range holds the address ``value`` (an int), or None.

        Complexity:
            O(log k) for k parts.

        >>> pool = MultiSubnetPool([SubnetPool("10.0.0.0/24", 26), SubnetPool("10.0.9.0/24", 26)])
        >>> pool.part_holding(int(netaddr.IPAddress("10.0.9.7")))
        SubnetPool('10.0.9.0/24', 26, strategy='next-fit')<used=0/4>
        """
        i = bisect.bisect_right(self._firsts, value) - 1
        if i >= 0 and value <= self._lasts[i]:
            return self._sorted[i]
        return None

    def locate(self, slot: int) -> tuple[P, int]:
        """The part holding the composite's slot ``slot``, and the slot there.

        Raises:
            NotInRangeError: ``slot`` is outside ``[0, capacity)``.

        Complexity:
            O(log k) for k parts.

        >>> pool = MultiSubnetPool([SubnetPool("10.0.0.0/24", 26), SubnetPool("10.0.9.0/24", 26)])
        >>> part, index = pool.locate(5); str(part.cidr), index
        ('10.0.9.0/24', 1)
        """
        if not 0 <= slot < self.capacity:
            raise NotInRangeError(
                f"slot {slot!r} is outside [0, {self.capacity}) of {self._text()}",
                pool_cidr=self.cidr,
            )
        i = bisect.bisect_right(self._offsets, slot) - 1
        return self._parts[i], slot - self._offsets[i]

    def _touched(self, first: int, last: int, family: IPFamily) -> list[P]:
        """The parts overlapping the addresses ``[first, last]``, ascending."""
        if family is not self.family:
            return []
        start = max(bisect.bisect_right(self._firsts, first) - 1, 0)
        stop = bisect.bisect_right(self._firsts, last)
        return [p for i, p in enumerate(self._sorted[start:stop], start) if self._lasts[i] >= first]

    def _one(self, value: Any, first: int, last: int, family: IPFamily, what: str) -> P:
        """The one part ``[first, last]`` touches; the error for none or several."""
        touched = self._touched(first, last, family)
        if len(touched) == 1:
            return touched[0]
        if not touched:
            raise NotInRangeError(
                f"{value!r} is not inside any range of {self._text()}", pool_cidr=self.cidr
            )
        names = " and ".join(str(part.cidr) for part in touched)
        raise InvalidConfigError(
            f"cannot {what} {value!r}: it spans the ranges {names}; give one range at a time",
            value=value,
        )

    def _text(self) -> str:
        return ", ".join(str(cidr) for cidr in self.ranges)

    # ------------------------------------------------------------ counts

    @property
    def capacity(self) -> int:
        """The parts' capacities added up.

        Complexity:
            O(1).
        """
        return self._offsets[-1] + self._parts[-1].capacity

    @property
    def used(self) -> int:
        """The parts' allocations added up.

        Complexity:
            O(k) for k parts.
        """
        return sum(part.used for part in self._parts)

    @property
    def free(self) -> int:
        """The parts' free slots added up (cooling ones included, as a pool's).

        Complexity:
            O(k) for k parts.
        """
        return sum(part.free for part in self._parts)

    @property
    def reserved(self) -> int:
        """The parts' reserved slots added up.

        Complexity:
            O(k) for k parts.
        """
        return sum(part.reserved for part in self._parts)

    @property
    def cooling(self) -> int:
        """The parts' cooling slots added up.

        Complexity:
            O(k) amortised for k parts.
        """
        return sum(part.cooling for part in self._parts)

    def stats(self) -> dict[str, Any]:
        """A pool's ``stats()``, every count and total added up over the parts.

        Complexity:
            O(k) amortised for k parts.

        >>> pool = MultiServiceIPPool([ServiceIPPool("10.96.0.0/30"),
        ...                            ServiceIPPool("10.97.0.0/30")])
        >>> _ = pool.allocate("10.97.0.1"); stats = pool.stats()
        >>> stats["capacity"], stats["used"], stats["free"], stats["totals"]["allocations"]
        (4, 1, 3, 1)
        """
        every = [part.stats() for part in self._parts]
        result: dict[str, Any] = {"family": every[0]["family"]}
        for key in ("capacity", "used", "free", "reserved", "cooling"):
            result[key] = sum(stats[key] for stats in every)
        kinds = every[0]["totals"]["errors"]
        errors = {kind: sum(s["totals"]["errors"][kind] for s in every) for kind in kinds}
        result["totals"] = {
            "allocations": sum(s["totals"]["allocations"] for s in every),
            "releases": sum(s["totals"]["releases"] for s in every),
            "errors": errors,
        }
        return result

    # ------------------------------------------------------------ reserved space

    def reserve(self, range: Any, reason: str = "") -> int:
        """Reserve ``range`` in the one part it touches (see the pools' ``reserve``).

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: ``range`` spans two ranges, or as the pool's.
            NotInRangeError: ``range`` touches no range.
            AlreadyAllocatedError: as the pool's.

        Complexity:
            O(log k) plus the part's ``reserve``.

        >>> pool = MultiServiceIPPool([ServiceIPPool("10.96.0.0/29"),
        ...                            ServiceIPPool("10.96.0.8/29")])
        >>> pool.reserve("10.96.0.9-10.96.0.10", "dns"), pool.reserved
        (2, 2)
        >>> pool.reserve("10.96.0.6-10.96.0.9")
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.InvalidConfigError: cannot reserve '10.96.0.6-10.96.0.9': \
it spans the ranges 10.96.0.0/29 and 10.96.0.8/29; give one range at a time
        """
        span = parse_range(range)
        return self._one(range, span.first, span.last, span.family, "reserve").reserve(
            range, reason
        )

    def unreserve(self, range: Any) -> int:
        """Free the reserved slots of ``range`` in the one part it touches.

        Raises:
            AddressFormatError: ``range`` does not parse.
            InvalidConfigError: ``range`` spans two ranges, or as the pool's.
            NotInRangeError: ``range`` touches no range.

        Complexity:
            O(log k) plus the part's ``unreserve``.
        """
        span = parse_range(range)
        return self._one(range, span.first, span.last, span.family, "unreserve").unreserve(range)

    def reservations(self) -> list[tuple[netaddr.IPNetwork | netaddr.IPRange, str]]:
        """Every part's reservations, ascending by address.

        Complexity:
            O(r) for r reservations.
        """
        return [entry for part in self._sorted for entry in part.reservations()]

    # ------------------------------------------------------------ allocation

    def _next(self) -> Any:
        """``allocate_next`` of the first part with room, in the order added."""
        for part in self._parts:
            # Cooling slots count as free, but allocate_next skips them.
            room = part.free - (part.cooling if part.cooldown else 0)
            if room > 0:
                try:
                    return part.allocate_next()
                except PoolExhaustedError:  # pragma: no cover - another thread won the race
                    continue
        messages = []
        for part in self._parts:
            try:
                return part.allocate_next()
            except PoolExhaustedError as exc:
                messages.append(str(exc))
        raise PoolExhaustedError("; ".join(messages), pool_cidr=self.cidr)

    def is_allocated(self, value: Any) -> bool:
        """Whether every slot ``value`` covers is allocated, in each range it touches.

        False when it touches no range (an address outside them all).

        Complexity:
            O(log k) plus the parts' ``is_allocated``.
        """
        net = parse_network(value)
        last = net.value + (1 << (net.family.width - net.prefixlen)) - 1
        touched = self._touched(net.value, last, net.family)
        return bool(touched) and all(part.is_allocated(value) for part in touched)

    def __iter__(self) -> Iterator[Any]:
        """What the parts hold, part by part in the order of :attr:`parts`.

        Complexity:
            O(1) per item, plus the parts' ``runs``.
        """
        return chain.from_iterable(self._parts)

    def _check_invariants(self) -> None:
        """Assert every part's invariants, and that the parts still fit together.

        Complexity:
            O(n) in the parts' allocated chunks.
        """
        offset = 0
        for part, start in zip(self._parts, self._offsets, strict=True):
            assert start == offset, (start, offset)
            assert part.family is self.family
            assert part.strategy == self.strategy
            part._check_invariants()
            offset += part.capacity
        for i in range(1, len(self._sorted)):
            assert self._lasts[i - 1] < self._firsts[i], "ranges overlap"


class MultiSubnetPool(MultiPool[SubnetPool]):
    """Node subnets from several cluster CIDRs of one family (one node mask).

    >>> pool = MultiSubnetPool([SubnetPool("10.0.0.0/25", 26), SubnetPool("10.9.0.0/25", 26)])
    >>> [str(pool.allocate_next()) for _ in range(3)], pool.index_of("10.9.0.64/26")
    (['10.0.0.0/26', '10.0.0.64/26', '10.9.0.0/26'], 3)
    """

    __slots__ = ()

    @property
    def prefixlen(self) -> int:
        """The node mask every part carves at.

        Complexity:
            O(1).
        """
        return self._parts[0].prefixlen

    def allocate_next(self) -> netaddr.IPNetwork:
        """The next free subnet of the first part with room, in the order added.

        Raises:
            PoolExhaustedError: every part is full (the message gives each
                part's).

        Complexity:
            O(k) plus the part's ``allocate_next``.
        """
        subnet: netaddr.IPNetwork = self._next()
        return subnet

    def _part_of_cidr(self, cidr: Any, what: str) -> SubnetPool:
        net = parse_network(cidr)
        last = net.value + (1 << (net.family.width - net.prefixlen)) - 1
        return self._one(cidr, net.value, last, net.family, what)

    def occupy(self, cidr: Any) -> int:
        """``occupy`` in the one part ``cidr`` touches; how many subnets changed.

        Raises:
            NotInRangeError: ``cidr`` touches no range.
            InvalidConfigError: ``cidr`` spans two ranges.
            AlreadyAllocatedError: as the pool's.

        Complexity:
            O(log k) plus the part's ``occupy``.
        """
        return self._part_of_cidr(cidr, "occupy").occupy(cidr)

    def release(self, cidr: Any) -> int:
        """``release`` in the one part ``cidr`` touches; how many subnets changed.

        Raises:
            NotInRangeError: ``cidr`` touches no range.
            InvalidConfigError: ``cidr`` spans two ranges.

        Complexity:
            O(log k) plus the part's ``release``.
        """
        return self._part_of_cidr(cidr, "release").release(cidr)

    def index_of(self, address_or_cidr: Any) -> int:
        """The composite's number of the subnet holding the first address of ``address_or_cidr``.

        Raises:
            NotInRangeError: that address is in no range.

        Complexity:
            O(log k).
        """
        net = parse_network(address_or_cidr)
        i = bisect.bisect_right(self._firsts, net.value) - 1
        if net.family is not self.family or i < 0 or net.value > self._lasts[i]:
            raise NotInRangeError(
                f"{address_or_cidr!r} is not inside the pools {self._text()}",
                value=make_network(*net),
                pool_cidr=self.cidr,
            )
        return self._sorted_offsets[i] + self._sorted[i].index_of(address_or_cidr)

    def subnet_at(self, index: int) -> netaddr.IPNetwork:
        """The subnet the composite numbers ``index``.

        Raises:
            IndexError: unless ``0 <= index < capacity``.

        Complexity:
            O(log k).
        """
        if isinstance(index, bool) or not isinstance(index, int):
            raise IndexError(f"subnet index must be an int, got {index!r}")
        if not 0 <= index < self.capacity:
            raise IndexError(f"subnet index {index!r} is outside [0, {self.capacity})")
        part, local = self.locate(index)
        return part.subnet_at(local)


class MultiServiceIPPool(MultiPool[ServiceIPPool]):
    """Service cluster IPs from several Service ranges of one family.

    Each range keeps its own static band; dynamic allocation fills the
    first range (its upper band, then its static band) before the next.

    >>> pool = MultiServiceIPPool([ServiceIPPool("10.96.0.0/30", strategy="sequential"),
    ...                            ServiceIPPool("10.97.0.0/30", strategy="sequential")])
    >>> [str(pool.allocate_next()) for _ in range(3)]
    ['10.96.0.1', '10.96.0.2', '10.97.0.1']
    """

    __slots__ = ()

    def allocate_next(self) -> netaddr.IPAddress:
        """A dynamic address of the first part with room, in the order added.

        Raises:
            PoolExhaustedError: every part is full (the message gives each
                part's).

        Complexity:
            O(k) plus the part's ``allocate_next``.
        """
        address: netaddr.IPAddress = self._next()
        return address

    def _part_of_ip(self, ip: Any) -> ServiceIPPool:
        value, family = parse_address(ip)
        part = self.part_holding(value) if family is self.family else None
        if part is None:
            raise NotInRangeError(
                f"provided IP {ip!r} is not in the valid range of {self._text()}",
                value=netaddr.IPAddress(value, family.version),
                pool_cidr=self.cidr,
            )
        return part

    def allocate(self, ip: Any) -> netaddr.IPAddress:
        """``allocate`` in the part holding ``ip``.

        Raises:
            NotInRangeError: ``ip`` is in no range (or not usable in its).
            AlreadyAllocatedError: as the pool's.

        Complexity:
            O(log k) plus the part's ``allocate``.
        """
        return self._part_of_ip(ip).allocate(ip)

    def release(self, ip: Any) -> bool:
        """``release`` in the part holding ``ip``.

        Raises:
            NotInRangeError: ``ip`` is in no range (or not usable in its).

        Complexity:
            O(log k) plus the part's ``release``.
        """
        return self._part_of_ip(ip).release(ip)


def parts_of(pool: Any) -> tuple[Any, ...]:
    """The pools behind a family's entry: a composite's parts, or the pool itself.

    Complexity:
        O(1).

    >>> parts_of(SubnetPool("10.0.0.0/16", 24))
    (SubnetPool('10.0.0.0/16', 24, strategy='next-fit')<used=0/256>,)
    """
    return pool.parts if isinstance(pool, MultiPool) else (pool,)


def ranges_of(pool: Any) -> tuple[netaddr.IPNetwork, ...]:
    """The networks behind a family's entry, the first range first.

    Complexity:
        O(k) for k parts.

    >>> ranges_of(ServiceIPPool("10.96.0.0/24"))
    (IPNetwork('10.96.0.0/24'),)
    """
    return tuple(part.cidr for part in parts_of(pool))


def sibling(pool: Any, cidr: Any) -> Any:
    """A new empty pool for ``cidr`` built like ``pool``'s first part.

    Same class, strategy, cooldown and clock; a Service pool shares the
    first part's random generator (so a seeded run stays reproducible), a
    subnet pool carves at the same node mask.

    Raises:
        AddressFormatError: ``cidr`` does not parse.
        InvalidConfigError: as the pool's constructor.

    Complexity:
        As the pool's constructor.

    >>> sibling(SubnetPool("10.0.0.0/16", 24, strategy="lowest"), "10.1.0.0/16")
    SubnetPool('10.1.0.0/16', 24, strategy='lowest')<used=0/256>
    """
    first = parts_of(pool)[0]
    if isinstance(first, SubnetPool):
        return SubnetPool(
            cidr,
            first.prefixlen,
            strategy=first.strategy,
            cooldown=first.cooldown,
            clock=first._clock,
        )
    assert isinstance(first, ServiceIPPool)
    return ServiceIPPool(
        cidr,
        strategy=first.strategy,
        rng=first._rng,
        cooldown=first.cooldown,
        clock=first._clock,
    )


def grow(pool: Any, part: BasePool) -> Any:
    """A family's entry with ``part`` added last: a new composite (nothing is changed).

    Raises:
        InvalidConfigError: ``part`` overlaps a range, or is of another
            kind, family or strategy.

    Complexity:
        O(k log k) for k parts.

    >>> grown = grow(SubnetPool("10.0.0.0/16", 24), SubnetPool("10.1.0.0/16", 24))
    >>> type(grown).__name__, grown.capacity
    ('MultiSubnetPool', 512)
    """
    parts = (*parts_of(pool), part)
    if isinstance(part, SubnetPool):
        return MultiSubnetPool(parts)
    return MultiServiceIPPool(parts)


GROWN_VERSION = 2
"""The snapshot version of an allocator with added ranges (its ``added`` key).

An allocator whose families never grew writes :data:`~dualstack_ipam.snapshot.FORMAT_VERSION`
exactly as before; one with added ranges writes this version, so that a
release that knows nothing of added ranges refuses the snapshot instead of
restoring it without them.
"""


def stamp_grown(data: dict[str, Any], added: list[Any]) -> dict[str, Any]:
    """``data`` (an allocator's snapshot) with ``added`` set, at :data:`GROWN_VERSION`.

    Nothing changes when ``added`` is empty.

    Complexity:
        O(1).

    >>> stamp_grown({"kind": "X", "version": 1, "used": 0}, [{"cidr": "10.1.0.0/16"}])
    {'kind': 'X', 'version': 2, 'used': 0, 'added': [{'cidr': '10.1.0.0/16'}]}
    """
    if added:
        data["version"] = GROWN_VERSION
        data["added"] = added
    return data


def open_grown(data: Any, kind: str, keys: Sequence[str]) -> tuple[Mapping[str, Any], list[Any]]:
    """Open an allocator's snapshot of either version; its fields and its added pools.

    Version 1 has no ``added`` key (no range was added); version
    :data:`GROWN_VERSION` must have a non-empty list there.

    Raises:
        SnapshotError: as :func:`~dualstack_ipam.snapshot.open_envelope`,
            or an ``added`` key that breaks the rule above.

    Complexity:
        O(keys).

    >>> fields, added = open_grown({"kind": "X", "version": 2, "used": 0, "added": [{}]}, "X", [])
    >>> fields["version"], added
    (1, [{}])
    """
    if isinstance(data, Mapping) and type(data.get("version")) is int:
        if data["version"] == GROWN_VERSION:
            added = data.get("added")
            if not isinstance(added, list) or not added:
                raise SnapshotError(
                    f"{kind} snapshot of version {GROWN_VERSION} needs a non-empty list 'added', "
                    f"got {added!r}"
                )
            return open_envelope({**data, "version": FORMAT_VERSION}, kind, keys), added
        if data["version"] == FORMAT_VERSION and "added" in data:
            raise SnapshotError(
                f"{kind} snapshot of version {data['version']} cannot carry 'added' ranges"
            )
    return open_envelope(data, kind, keys), []


def read_added(data: Mapping[str, Any], kind: str, since: int) -> list[Any]:
    """The ``added`` pool snapshots of an opened allocator snapshot (``[]`` if absent).

    For a class whose version ``since`` (and later) may carry added ranges
    besides other changes, so that the key's presence, not the version,
    says whether a family grew.

    Raises:
        SnapshotError: ``added`` in a version before ``since``, or not a
            non-empty list.

    Complexity:
        O(1).

    >>> read_added({"version": 2, "added": [{}]}, "X", 2), read_added({"version": 1}, "X", 2)
    ([{}], [])
    """
    if "added" not in data:
        return []
    added = data["added"]
    if data["version"] < since:
        raise SnapshotError(
            f"{kind} snapshot of version {data['version']} cannot carry 'added' ranges"
        )
    if not isinstance(added, list) or not added:
        raise SnapshotError(
            f"{kind} snapshot field 'added' must be a non-empty list, got {added!r}"
        )
    return added
