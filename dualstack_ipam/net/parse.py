"""The one parser of addresses and networks.

The rule of the house: addresses are ``int`` inside, objects at the edge.
Public methods call :func:`parse_network` / :func:`parse_address` once and do
all arithmetic on the ``(value, prefixlen, family)`` they get back; results
are built with :func:`~dualstack_ipam.net.make_address` /
:func:`~dualstack_ipam.net.make_network`.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, NamedTuple

import netaddr

from dualstack_ipam.errors import AddressFormatError
from dualstack_ipam.net.family import BY_VERSION as _BY_VERSION
from dualstack_ipam.net.family import IPFamily

__all__ = ["Net", "parse_address", "parse_network"]

_AF = {IPFamily.IPv4: socket.AF_INET, IPFamily.IPv6: socket.AF_INET6}
# A dict lookup, not the property: parse_network is on every hot path.
_WIDTH = {IPFamily.IPv4: 32, IPFamily.IPv6: 128}


class Net(NamedTuple):
    """A parsed network: integer network address, prefix length, family."""

    value: int
    prefixlen: int
    family: IPFamily


def _refuse_scope(value: Any) -> AddressFormatError:
    return AddressFormatError(
        f"{value!r} carries a scope id, which has no place in IPAM", value=value
    )


def _scope_id(value: ipaddress.IPv6Address | ipaddress.IPv6Network) -> str | None:
    # A network keeps its scope on its network address; "0" is a scope too.
    address = value.network_address if isinstance(value, ipaddress.IPv6Network) else value
    return address.scope_id


def _parse_text_address(text: str, original: Any) -> tuple[int, IPFamily]:
    if "%" in text:
        raise _refuse_scope(original)
    family = IPFamily.IPv6 if ":" in text else IPFamily.IPv4
    try:
        packed = socket.inet_pton(_AF[family], text)
    except (OSError, ValueError):
        raise AddressFormatError(
            f"{original!r} is not a valid IP address", value=original
        ) from None
    return int.from_bytes(packed, "big"), family


def parse_address(value: Any) -> tuple[int, IPFamily]:
    """Parse one address into ``(int, family)``.

    Accepts text (``"10.0.0.1"``, ``"fd00::1"``), ``netaddr.IPAddress`` and
    ``ipaddress.IPv4Address`` / ``IPv6Address``. Text is parsed strictly:
    no leading zeros in IPv4 octets, no surrounding blanks. An IPv6 scope id
    (``%eth0``) is refused in every form.

    Raises:
        AddressFormatError: anything else, text that does not parse, or a
            scope id.

    Complexity:
        O(1).

    >>> parse_address("10.0.0.1")
    (167772161, <IPFamily.IPv4: 'IPv4'>)
    """
    if isinstance(value, str):
        return _parse_text_address(value, value)
    if isinstance(value, netaddr.IPAddress):
        return int(value), _BY_VERSION[value.version]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        if isinstance(value, ipaddress.IPv6Address) and _scope_id(value) is not None:
            raise _refuse_scope(value)
        return int(value), _BY_VERSION[value.version]
    raise AddressFormatError(
        f"{value!r} is not an IP address (expected str, netaddr.IPAddress "
        f"or ipaddress address, got {type(value).__name__})",
        value=value,
    )


def parse_network(value: Any) -> Net:
    """Parse a network into :class:`Net`, dropping host bits.

    Accepts text (``"10.0.0.0/8"``; a bare address means a single host),
    ``netaddr.IPNetwork`` / ``IPAddress`` and ``ipaddress`` networks,
    interfaces and addresses. Host bits are cleared, as Kubernetes does:
    ``"127.123.3.0/16"`` means ``127.123.0.0/16``. An IPv6 scope id
    (``fe80::%eth0/64``, an ``ipaddress`` network or interface carrying one)
    is refused, never dropped.

    Raises:
        AddressFormatError: anything else, text that does not parse, or a
            scope id.

    Complexity:
        O(1).

    >>> parse_network("127.123.3.0/16")
    Net(value=2138767360, prefixlen=16, family=<IPFamily.IPv4: 'IPv4'>)
    """
    if isinstance(value, str):
        if "%" in value:
            raise _refuse_scope(value)
        address, slash, prefix = value.partition("/")
        number, family = _parse_text_address(address, value)
        full = _WIDTH[family]
        if not slash:
            return Net(number, full, family)
        if not (prefix.isascii() and prefix.isdigit()) or len(prefix) > 3:
            raise AddressFormatError(
                f"{value!r} is not a valid CIDR: bad prefix length {prefix!r}",
                value=value,
            )
        prefixlen = int(prefix)
        if prefixlen > full:
            raise AddressFormatError(
                f"{value!r} is not a valid CIDR: prefix length {prefixlen} "
                f"exceeds {full} for {family}",
                value=value,
            )
        return Net(number & _mask(prefixlen, full), prefixlen, family)
    if isinstance(value, netaddr.IPNetwork):
        family = _BY_VERSION[value.version]
        return Net(value.first, value.prefixlen, family)
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        if isinstance(value, ipaddress.IPv6Network) and _scope_id(value) is not None:
            raise _refuse_scope(value)
        family = _BY_VERSION[value.version]
        return Net(int(value.network_address), value.prefixlen, family)
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        if isinstance(value, ipaddress.IPv6Interface) and _scope_id(value) is not None:
            raise _refuse_scope(value)
        return parse_network(value.network)
    if isinstance(value, (netaddr.IPAddress, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        number, family = parse_address(value)
        return Net(number, _WIDTH[family], family)
    raise AddressFormatError(
        f"{value!r} is not an IP network (expected str, netaddr.IPNetwork "
        f"or ipaddress network, got {type(value).__name__})",
        value=value,
    )


def _mask(prefixlen: int, full: int) -> int:
    return ((1 << full) - 1) ^ ((1 << (full - prefixlen)) - 1)
