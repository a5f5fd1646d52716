"""Address ranges for reservations: a CIDR or ``"a-b"``, in and out.

:func:`parse_range` reads what ``reserve`` / ``unreserve`` accept: any
network input :func:`~dualstack_ipam.net.parse_network` accepts (a bare
address is one host), the text ``"10.0.0.10-10.0.0.20"`` (both ends
included, no blanks) or a ``netaddr.IPRange``. :func:`range_value` and
:func:`range_text` give a span of addresses back as the smallest honest
object: an ``IPNetwork`` when the span is exactly one CIDR, else an
``IPRange``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import netaddr

from dualstack_ipam.errors import AddressFormatError, InvalidConfigError
from dualstack_ipam.net import IPFamily, make_address, make_network, parse_address, parse_network

__all__ = ["AddressSpan", "parse_range", "range_text", "range_value"]


class AddressSpan(NamedTuple):
    """Addresses ``first`` to ``last`` (both included) of one family, as ints."""

    first: int
    last: int
    family: IPFamily


def parse_range(value: Any) -> AddressSpan:
    """Read a CIDR, an address, ``"a-b"`` text or a ``netaddr.IPRange``.

    Raises:
        AddressFormatError: an end or the network does not parse.
        InvalidConfigError: the ends are of two families, or the first is
            above the last.

    Complexity:
        O(1).

    >>> parse_range("10.0.0.10-10.0.0.20")
    AddressSpan(first=167772170, last=167772180, family=<IPFamily.IPv4: 'IPv4'>)
    >>> parse_range("10.0.0.0/30").last - parse_range("10.0.0.0/30").first
    3
    >>> parse_range("10.0.0.9-10.0.0.1")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: address range '10.0.0.9-10.0.0.1' ends before ...
    """
    if isinstance(value, netaddr.IPRange):
        family = IPFamily.IPv4 if value.version == 4 else IPFamily.IPv6
        return AddressSpan(value.first, value.last, family)
    if isinstance(value, str) and "-" in value:
        low, _, high = value.partition("-")
        if not low or not high:
            raise AddressFormatError(f"{value!r} is not an address range 'first-last'", value=value)
        first, family = parse_address(low)
        last, other = parse_address(high)
        if other is not family:
            raise InvalidConfigError(
                f"address range {value!r} mixes {family} and {other}", value=value
            )
        if first > last:
            raise InvalidConfigError(f"address range {value!r} ends before it starts", value=value)
        return AddressSpan(first, last, family)
    net = parse_network(value)
    size = 1 << (net.family.width - net.prefixlen)
    return AddressSpan(net.value, net.value + size - 1, net.family)


def _as_cidr(first: int, last: int) -> int | None:
    """The prefix length if ``[first, last]`` is exactly one aligned block."""
    size = last - first + 1
    if size & (size - 1) or first & (size - 1):
        return None
    return size.bit_length() - 1


def range_value(first: int, last: int, family: IPFamily) -> netaddr.IPNetwork | netaddr.IPRange:
    """``[first, last]`` as an ``IPNetwork`` if it is one CIDR, else an ``IPRange``.

    Complexity:
        O(1).

    >>> range_value(167772160, 167772163, IPFamily.IPv4)
    IPNetwork('10.0.0.0/30')
    >>> range_value(167772161, 167772163, IPFamily.IPv4)
    IPRange('10.0.0.1', '10.0.0.3')
    """
    bits = _as_cidr(first, last)
    if bits is not None:
        return make_network(first, family.width - bits, family)
    return netaddr.IPRange(make_address(first, family), make_address(last, family))


def range_text(first: int, last: int, family: IPFamily) -> str:
    """:func:`range_value` as text: ``"10.0.0.0/30"`` or ``"10.0.0.1-10.0.0.3"``.

    :func:`parse_range` reads it back to the same span.

    Complexity:
        O(1).

    >>> range_text(167772161, 167772163, IPFamily.IPv4)
    '10.0.0.1-10.0.0.3'
    """
    bits = _as_cidr(first, last)
    if bits is not None:
        return str(make_network(first, family.width - bits, family))
    return f"{make_address(first, family)}-{make_address(last, family)}"
