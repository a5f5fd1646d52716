"""IP families and their facts: width, version, the other family, usable span.

Every rule that depends only on the family lives here, once:
:attr:`IPFamily.other` pairs the families of a dual-stack cluster and
:func:`usable_span` says which addresses of a Service range can be handed out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from dualstack_ipam.errors import InvalidConfigError

__all__ = ["BY_VERSION", "IPFamily", "parse_family", "usable_span"]


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
        """Bits in an address of this family (32 or 128).

        Complexity:
            O(1).

        >>> IPFamily.IPv4.width, IPFamily.IPv6.width
        (32, 128)
        """
        return 32 if self is IPFamily.IPv4 else 128

    @property
    def version(self) -> int:
        """The IP version number (4 or 6).

        Complexity:
            O(1).

        >>> IPFamily.IPv6.version
        6
        """
        return 4 if self is IPFamily.IPv4 else 6

    @property
    def other(self) -> IPFamily:
        """The other family: the one a dual-stack cluster pairs with this one.

        Complexity:
            O(1).

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

    Complexity:
        O(1).

    >>> usable_span(IPFamily.IPv4, 24), usable_span(IPFamily.IPv6, 120)
    ((1, 254), (1, 255))
    >>> usable_span(IPFamily.IPv4, 31), usable_span(IPFamily.IPv6, 128)
    ((1, 0), (1, 0))
    """
    size = 1 << (family.width - prefixlen)
    return 1, (max(size - 2, 0) if family is IPFamily.IPv4 else size - 1)


BY_VERSION = {4: IPFamily.IPv4, 6: IPFamily.IPv6}
"""The family of an IP version number."""


def parse_family(value: Any) -> IPFamily:
    """Return the :class:`IPFamily` named by ``value``.

    Accepts an ``IPFamily`` or one of the strings ``"IPv4"`` / ``"IPv6"``.

    Raises:
        InvalidConfigError: for anything else, quoting it.

    Complexity:
        O(1).

    >>> parse_family("IPv6")
    <IPFamily.IPv6: 'IPv6'>
    """
    if isinstance(value, IPFamily):
        return value
    if isinstance(value, str):
        if value == "IPv4":
            return IPFamily.IPv4
        if value == "IPv6":
            return IPFamily.IPv6
    raise InvalidConfigError(f"unknown IP family {value!r}: expected 'IPv4' or 'IPv6'", value=value)
