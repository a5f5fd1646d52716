"""The netaddr builders: ints of a family to ``netaddr`` objects, fast.

Results leave the library as ``netaddr.IPAddress`` / ``netaddr.IPNetwork``
(api.md); these are built on every allocation, so their cost is the hot path.
"""

from __future__ import annotations

from collections.abc import Callable

import netaddr
from netaddr.strategy import ipv4 as _nv4
from netaddr.strategy import ipv6 as _nv6

from dualstack_ipam.net.family import IPFamily

__all__ = ["address_factory", "make_address", "make_network"]

_MODULE = {IPFamily.IPv4: _nv4, IPFamily.IPv6: _nv6}


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
    """A one-argument :func:`make_address` bound to ``family``, for hot paths.

    Complexity:
        O(1) to bind, and O(1) per call.

    >>> address_factory(IPFamily.IPv6)(1)
    IPAddress('::1')
    """
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


# Whichever pair was chosen, it carries the public documentation.
make_address.__doc__ = """Build the ``netaddr.IPAddress`` for an int of ``family``.

Complexity:
    O(1).

>>> make_address(167772161, IPFamily.IPv4)
IPAddress('10.0.0.1')
"""
make_network.__doc__ = """Build the ``netaddr.IPNetwork`` ``value/prefixlen`` of ``family``.

``value`` must be the network address (no host bits): it is not checked.

Complexity:
    O(1).

>>> make_network(167772160, 8, IPFamily.IPv4)
IPNetwork('10.0.0.0/8')
"""
