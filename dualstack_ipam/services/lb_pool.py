"""One family's load-balancer addresses: CIDRs and ``a-b`` ranges on one bitmap.

MetalLB and Cilium's LB-IPAM hand out every address of a pool (no network or
broadcast address is kept back: the addresses are announced, not routed as a
subnet), and a pool may be several disjoint ranges. :class:`AddressRanges`
lays the ranges of a family end to end, in the order given, onto the slots of
one bitmap (:func:`~dualstack_ipam.bitmap.make_bitmap`): slot ``i`` is an
offset into that concatenation, so the bitmap's O(1) free search serves the
whole pool, an IPv6 ``/64`` included (sparse layout). Mapping an address to
its slot is a bisection over the ranges sorted by first address.

Why not one :class:`~dualstack_ipam.ServiceIPPool` per range: a pool is one
CIDR with its network (and IPv4 broadcast) address excluded, so an ``a-b``
range or a ``/32`` could not be expressed, and a family of k ranges would
search k bitmaps in turn when the first ones are full.

>>> pool = AddressRanges.parse(IPFamily.IPv4, "192.0.2.10-192.0.2.12, 198.51.100.0/31")
>>> pool.capacity, pool.ranges
(5, ('192.0.2.10-192.0.2.12', '198.51.100.0/31'))
>>> [str(make_address(pool.value_at(pool.take_next()), IPFamily.IPv4)) for _ in range(3)]
['192.0.2.10', '192.0.2.11', '192.0.2.12']
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Mapping, Sequence
from random import Random
from typing import Any

import netaddr

from dualstack_ipam.bitmap import Bitmap, make_bitmap
from dualstack_ipam.errors import InvalidConfigError, IPAMError
from dualstack_ipam.net import IPFamily, make_address, parse_address, parse_family, parse_network

__all__ = ["STRATEGIES", "AddressRanges", "parse_pools"]

STRATEGIES = ("sequential", "random")
"""``sequential`` takes the lowest free slot (MetalLB's order); ``random`` any free one."""


_NETWORKS = (netaddr.IPNetwork, netaddr.IPAddress, ipaddress.IPv4Network, ipaddress.IPv6Network)


def _span(item: Any, family: IPFamily) -> tuple[int, int]:
    """``(first, last)`` of one pool item of ``family``, both included."""
    if isinstance(item, netaddr.IPRange):
        first, first_family = parse_address(item[0])
        last, last_family = parse_address(item[-1])
    elif isinstance(item, str) and "-" in item:
        low, _, high = item.partition("-")
        first, first_family = parse_address(low.strip())
        last, last_family = parse_address(high.strip())
    elif isinstance(item, (str, *_NETWORKS)):
        net = parse_network(item.strip() if isinstance(item, str) else item)
        first, first_family = net.value, net.family
        last, last_family = first + (1 << (net.family.width - net.prefixlen)) - 1, net.family
    else:
        raise InvalidConfigError(
            f"a load-balancer pool item must be a CIDR or an 'a-b' range, got {item!r}",
            value=item,
        )
    if first_family is not family or last_family is not family:
        raise InvalidConfigError(f"pool item {item!r} is not an {family} range", value=item)
    if first > last:
        raise InvalidConfigError(f"pool range {item!r} ends before it starts", value=item)
    return first, last


def _text(first: int, last: int, family: IPFamily) -> str:
    """The range as a CIDR when it is exactly one, else ``a-b``."""
    size = last - first + 1
    prefixlen = family.width - size.bit_length() + 1
    if size & (size - 1) == 0 and first % size == 0:
        return f"{make_address(first, family)}/{prefixlen}"
    return f"{make_address(first, family)}-{make_address(last, family)}"


class AddressRanges:
    """The addresses of one family's pool, several ranges on one bitmap.

    Args:
        family: the pool's family.
        spans: ``(first, last)`` integer address pairs, both included, in
            allocation order; they must not overlap.

    Raises:
        InvalidConfigError: no span, or two that overlap.

    >>> AddressRanges(IPFamily.IPv4, [(1, 2), (2, 3)])
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: IPv4 pool ranges 0.0.0.1-0.0.0.2 \
and 0.0.0.2/31 overlap
    """

    __slots__ = ("_bitmap", "_by_first", "_offsets", "_spans", "family")

    def __init__(self, family: IPFamily, spans: Sequence[tuple[int, int]]) -> None:
        if not spans:
            raise InvalidConfigError(f"an {family} load-balancer pool needs a range", value=spans)
        self.family = family
        self._spans = tuple(spans)
        offsets, total = [], 0
        for first, last in self._spans:
            offsets.append(total)
            total += last - first + 1
        self._offsets = offsets
        # (first, last, offset), sorted by first address: for address -> slot.
        self._by_first = sorted(zip(*zip(*self._spans, strict=True), offsets, strict=True))
        for (a, b, _), (c, d, _) in zip(self._by_first, self._by_first[1:], strict=False):
            if c <= b:
                shown = f"{_text(a, b, family)} and {_text(c, d, family)}"
                raise InvalidConfigError(f"{family} pool ranges {shown} overlap", value=spans)
        self._bitmap: Bitmap = make_bitmap(total)

    @classmethod
    def parse(cls, family: IPFamily | str, items: Any) -> AddressRanges:
        """A pool from CIDRs and ``a-b`` ranges (a list, or one comma-separated str).

        Raises:
            InvalidConfigError: an item that is neither, of another family,
                reversed, overlapping another, or no item at all.

        Complexity:
            O(k log k) for k items, plus the bitmap (O(size) bytes when dense).

        >>> AddressRanges.parse("IPv6", ["fd00::/126"]).capacity
        4
        """
        fam = parse_family(family)
        if isinstance(items, str):
            items = [part for part in (p.strip() for p in items.split(",")) if part]
        if not isinstance(items, (list, tuple)):
            raise InvalidConfigError(
                f"an {fam} pool must be a list of CIDRs and 'a-b' ranges or one "
                f"comma-separated str, got {items!r}",
                value=items,
            )
        try:
            return cls(fam, [_span(item, fam) for item in items])
        except InvalidConfigError:
            raise
        except IPAMError as error:  # an address that does not parse
            raise InvalidConfigError(f"bad {fam} pool {items!r}: {error}", value=items) from None

    # ------------------------------------------------------------ reading

    @property
    def capacity(self) -> int:
        """Every address of every range.

        Complexity:
            O(1).
        """
        return self._bitmap.size

    @property
    def used(self) -> int:
        """Addresses taken.

        Complexity:
            O(1).
        """
        return self._bitmap.count

    @property
    def free(self) -> int:
        """Addresses not taken.

        Complexity:
            O(1).
        """
        return self._bitmap.size - self._bitmap.count

    @property
    def ranges(self) -> tuple[str, ...]:
        """The ranges in allocation order, each a CIDR when it is one, else ``a-b``.

        Complexity:
            O(k) for k ranges.
        """
        return tuple(_text(first, last, self.family) for first, last in self._spans)

    def slot_of(self, value: int) -> int | None:
        """The slot of the address ``value``, or None outside every range.

        Complexity:
            O(log k) for k ranges.

        >>> AddressRanges(IPFamily.IPv4, [(10, 19), (0, 4)]).slot_of(3)
        13
        """
        i = bisect.bisect_right(self._by_first, (value, 1 << 129, 0)) - 1
        if i < 0:
            return None
        first, last, offset = self._by_first[i]
        return offset + value - first if value <= last else None

    def value_at(self, slot: int) -> int:
        """The address (int) of ``slot``.

        Complexity:
            O(log k) for k ranges.
        """
        i = bisect.bisect_right(self._offsets, slot) - 1
        return self._spans[i][0] + slot - self._offsets[i]

    def is_taken(self, slot: int) -> bool:
        """Whether ``slot`` is taken.

        Complexity:
            O(1).
        """
        return slot in self._bitmap

    # ------------------------------------------------------------ changing

    def take(self, slot: int) -> bool:
        """Take ``slot``; False if it was taken already.

        Complexity:
            O(1).
        """
        return self._bitmap.add(slot)

    def take_next(self, strategy: str = "sequential", rng: Random | None = None) -> int:
        """Take a free slot: the lowest (``sequential``) or any (``random``); -1 when full.

        Complexity:
            O(1) chunk visits (see :class:`~dualstack_ipam.bitmap.Bitmap`).
        """
        if strategy == "random":
            return self._bitmap.take_random(0, self._bitmap.size, rng or Random())
        return self._bitmap.take_free(0, 0, self._bitmap.size)

    def give_back(self, slot: int) -> bool:
        """Free ``slot``; False if it was free.

        Complexity:
            O(1).
        """
        return self._bitmap.discard(slot)

    def check_invariants(self) -> None:
        """Assert the bitmap's own invariants.

        Complexity:
            O(size) for a dense bitmap, O(chunks) for a sparse one.
        """
        self._bitmap.check_invariants()


def parse_pools(pools: Any) -> dict[IPFamily, AddressRanges]:
    """One :class:`AddressRanges` per family of ``pools`` (family -> items), in its order.

    Raises:
        InvalidConfigError: not a non-empty mapping, a bad family, or a bad pool.

    Complexity:
        O(k log k) for k items, plus the bitmaps.

    >>> list(parse_pools({"IPv6": "fd00::1-fd00::9", "IPv4": ["192.0.2.0/28"]}))
    [<IPFamily.IPv6: 'IPv6'>, <IPFamily.IPv4: 'IPv4'>]
    """
    if not isinstance(pools, Mapping) or not pools:
        raise InvalidConfigError(
            f"pools must be a non-empty mapping of family to ranges, got {pools!r}", value=pools
        )
    result: dict[IPFamily, AddressRanges] = {}
    for family, items in pools.items():
        fam = parse_family(family)
        if fam in result:
            raise InvalidConfigError(f"pools list {fam} twice: {pools!r}", value=pools)
        result[fam] = AddressRanges.parse(fam, items)
    return result
