"""IP families, their constants, and the one place input is parsed.

The rule of the house: addresses are ``int`` inside, objects at the edge.
Public methods call :func:`parse_network` / :func:`parse_address` once and do
all arithmetic on the ``(value, prefixlen, family)`` they get back; results
are built with :func:`make_address` / :func:`make_network`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from enum import StrEnum
from typing import Any, NamedTuple

import netaddr
from netaddr.strategy import ipv4 as _nv4
from netaddr.strategy import ipv6 as _nv6

from dualstack_ipam.errors import AddressFormatError, InvalidConfigError

__all__ = [
    "IPFamily",
    "Net",
    "address_factory",
    "make_address",
    "make_network",
    "parse_address",
    "parse_family",
    "parse_network",
    "usable_span",
]


class IPFamily(StrEnum):
    """An IP family: ``IPFamily.IPv4`` or ``IPFamily.IPv6``.

    A ``str`` enum: ``str()`` and ``format()`` give the value, and it compares
    equal to it, so manifests and flags can use the plain strings.

    >>> IPFamily.IPv6
    <IPFamily.IPv6: 'IPv6'>
    >>> f"{IPFamily.IPv4}", str(IPFamily.IPv6), IPFamily.IPv4 == "IPv4"
    ('IPv4', 'IPv6', True)
    """

    IPv4 = "IPv4"
    IPv6 = "IPv6"

    @property
    def width(self) -> int:
        """Bits in an address of this family (32 or 128). Complexity: O(1)."""
        return 32 if self is IPFamily.IPv4 else 128

    @property
    def version(self) -> int:
        """The IP version number (4 or 6). Complexity: O(1)."""
        return 4 if self is IPFamily.IPv4 else 6

    @property
    def other(self) -> IPFamily:
        """The other family: the one a dual-stack cluster pairs with this one.

        Complexity: O(1).

        >>> IPFamily.IPv4.other, IPFamily.IPv6.other
        (<IPFamily.IPv6: 'IPv6'>, <IPFamily.IPv4: 'IPv4'>)
        """
        return IPFamily.IPv6 if self is IPFamily.IPv4 else IPFamily.IPv4


def usable_span(family: IPFamily, prefixlen: int) -> tuple[int, int]:
    """Where a Service range's usable addresses start, and how many there are.

    The one home of the rule: an IPv4 range loses its network and broadcast
    addresses, an IPv6 range only its network address (Kubernetes
    ``ipallocator``); a /31 or /32 (IPv4) has none, a /128 none either.

    Returns:
        ``(first, count)``: the offset of the first usable address from the
        network address, and the number of usable addresses.

    Complexity: O(1).

    >>> usable_span(IPFamily.IPv4, 24), usable_span(IPFamily.IPv6, 120)
    ((1, 254), (1, 255))
    >>> usable_span(IPFamily.IPv4, 31), usable_span(IPFamily.IPv6, 128)
    ((1, 0), (1, 0))
    """
    size = 1 << (family.width - prefixlen)
    return 1, (max(size - 2, 0) if family is IPFamily.IPv4 else size - 1)


_WIDTH = {IPFamily.IPv4: 32, IPFamily.IPv6: 128}
_BY_VERSION = {4: IPFamily.IPv4, 6: IPFamily.IPv6}
_AF = {IPFamily.IPv4: socket.AF_INET, IPFamily.IPv6: socket.AF_INET6}
_MODULE = {IPFamily.IPv4: _nv4, IPFamily.IPv6: _nv6}


def parse_family(value: Any) -> IPFamily:
    """Return the :class:`IPFamily` named by ``value``.

    Accepts an ``IPFamily`` or one of the strings ``"IPv4"`` / ``"IPv6"``.

    Raises:
        InvalidConfigError: for anything else, quoting it.
    """
    if isinstance(value, IPFamily):
        return value
    if isinstance(value, str):
        if value == "IPv4":
            return IPFamily.IPv4
        if value == "IPv6":
            return IPFamily.IPv6
    raise InvalidConfigError(f"unknown IP family {value!r}: expected 'IPv4' or 'IPv6'", value=value)


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
    no leading zeros in IPv4 octets, no surrounding blanks, no scope ids.

    >>> parse_address("10.0.0.1")
    (167772161, <IPFamily.IPv4: 'IPv4'>)

    Raises:
        AddressFormatError: anything else, or text that does not parse.
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
    ``"127.123.3.0/16"`` means ``127.123.0.0/16``.

    >>> parse_network("127.123.3.0/16")
    Net(value=2138767360, prefixlen=16, family=<IPFamily.IPv4: 'IPv4'>)

    Raises:
        AddressFormatError: anything else, or text that does not parse.
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


# Building netaddr objects through their public constructors costs ~600 ns;
# filling the two slots directly costs ~130 ns. The shortcut is used only if
# it builds objects equal in every observable way to the public ones.
_new = object.__new__


def _slow_address(value: int, family: IPFamily) -> netaddr.IPAddress:
    return netaddr.IPAddress(value, family.version)


def _slow_network(value: int, prefixlen: int, family: IPFamily) -> netaddr.IPNetwork:
    return netaddr.IPNetwork((value, prefixlen), family.version)


def _fast_address(value: int, family: IPFamily) -> netaddr.IPAddress:
    obj = _new(netaddr.IPAddress)
    obj._value = value
    obj._module = _MODULE[family]
    return obj


def _fast_network(value: int, prefixlen: int, family: IPFamily) -> netaddr.IPNetwork:
    obj = _new(netaddr.IPNetwork)
    obj._value = value
    obj._prefixlen = prefixlen
    obj._module = _MODULE[family]
    return obj


def _shortcut_works() -> bool:
    try:
        for fam, val, plen in ((IPFamily.IPv4, 0x0A000100, 24), (IPFamily.IPv6, 1 << 120, 64)):
            a, b = _fast_address(val, fam), _slow_address(val, fam)
            n, m = _fast_network(val, plen, fam), _slow_network(val, plen, fam)
            if (a, str(a), repr(a), hash(a), a.version) != (b, str(b), repr(b), hash(b), b.version):
                return False
            if (n, str(n), repr(n), hash(n), n.first, n.last, n.size) != (
                m,
                str(m),
                repr(m),
                hash(m),
                m.first,
                m.last,
                m.size,
            ):
                return False
        return True
    except Exception:  # any change inside netaddr: use the public constructors
        return False


if _shortcut_works():
    make_address = _fast_address
    make_network = _fast_network
else:  # pragma: no cover - depends on the installed netaddr
    make_address = _slow_address
    make_network = _slow_network


def address_factory(family: IPFamily) -> Callable[[int], netaddr.IPAddress]:
    """A one-argument :func:`make_address` bound to ``family``, for hot paths."""
    if make_address is _slow_address:  # pragma: no cover - depends on netaddr
        version = family.version
        return lambda value: netaddr.IPAddress(value, version)
    module = _MODULE[family]
    cls = netaddr.IPAddress

    def build(value: int) -> netaddr.IPAddress:
        obj = _new(cls)
        obj._value = value
        obj._module = module
        return obj

    return build


make_address.__doc__ = """Build the ``netaddr.IPAddress`` for an int of ``family``."""
make_network.__doc__ = """Build the ``netaddr.IPNetwork`` ``value/prefixlen`` of ``family``."""
