"""Reading "a list of CIDRs": the one home of the rule.

A list of CIDRs is one comma-separated ``str`` (as ``--cluster-cidr`` takes
it), a single network object, or an ordered sequence (``list``, ``tuple``).
Order matters — the first family is primary — so unordered containers are
refused. So is everything that iterates *addresses* rather than networks:
netaddr's ``IPRange`` / ``IPGlob`` / ``IPSet`` (and a network object, which
is therefore taken whole, never iterated). Refusals are O(1): nothing is
iterated to decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence, Set
from typing import Any, TypeAlias

import netaddr

from dualstack_ipam.errors import InvalidConfigError

__all__ = ["CIDRList", "split_cidrs"]

CIDRList: TypeAlias = (
    "str | Sequence[Any] | netaddr.IPNetwork | ipaddress.IPv4Network | ipaddress.IPv6Network"
)
"""What a "list of CIDRs" argument accepts (for annotations)."""

_NETWORKS = (netaddr.IPNetwork, ipaddress.IPv4Network, ipaddress.IPv6Network)
# Checked by name, not by ABC: whether netaddr's address containers are
# registered as sequences is up to the netaddr release; ``range`` is a
# Sequence of ints, never CIDRs, and can be astronomically long.
_NOT_LISTS = (
    netaddr.IPRange,
    netaddr.IPGlob,
    netaddr.IPSet,
    bytes,
    bytearray,
    memoryview,
    range,
)
# A repr of a large unordered container is O(n): summarise it instead.
_QUOTE_LIMIT = 8


def split_cidrs(value: Any, what: str) -> list[Any]:
    """The items of a list of CIDRs, unparsed, in order.

    Args:
        value: one comma-separated ``str`` (blanks around commas forgiven;
            empty or blank means no CIDR), a single network object
            (``netaddr.IPNetwork`` or an ``ipaddress`` network), or an ordered
            sequence (``list``, ``tuple``) of anything
            :func:`~dualstack_ipam.net.parse_network` may accept.
        what: the name of the list for messages, e.g. ``"--cluster-cidr"``.

    Returns:
        A new list of the items; each still has to be parsed.

    Raises:
        InvalidConfigError: sets, mappings, iterators, netaddr ``IPRange`` /
            ``IPGlob`` / ``IPSet``, bytes-like values, ``range`` and
            non-iterables, quoting the value and ``what``. Never iterates
            them to decide.

    Complexity:
        O(n) in the items (or characters) of an accepted value; O(1) to
        refuse one.

    >>> split_cidrs("10.0.0.0/8, fd00::/64", "--cluster-cidr")
    ['10.0.0.0/8', 'fd00::/64']
    >>> split_cidrs(" ", "--cluster-cidr")
    []
    >>> split_cidrs(netaddr.IPNetwork("10.0.0.0/8"), "cidrs")
    [IPNetwork('10.0.0.0/8')]
    >>> split_cidrs({"10.0.0.0/8"}, "cidrs")
    Traceback (most recent call last):
    ...
    dualstack_ipam.errors.InvalidConfigError: cidrs must be one comma-separated str or an \
ordered sequence of CIDRs (list, tuple), got {'10.0.0.0/8'} (a set: its order is not defined)
    """
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")] if value.strip() else []
    if isinstance(value, _NETWORKS):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, Sequence) and not isinstance(value, _NOT_LISTS):
        return list(value)
    raise InvalidConfigError(
        f"{what} must be one comma-separated str or an ordered sequence of CIDRs "
        f"(list, tuple), got {_quote(value)}{_why(value)}",
        value=value,
    )


def _quote(value: Any) -> str:
    if not isinstance(value, (netaddr.IPRange, netaddr.IPSet, range)):
        try:
            size = len(value)
        except Exception:  # not sized, or a len() that refuses: repr is cheap then
            size = 0
        if size > _QUOTE_LIMIT:
            return f"a {type(value).__name__} of {size} items"
    return repr(value)


def _why(value: Any) -> str:
    if isinstance(value, (netaddr.IPRange, netaddr.IPSet)):
        return f" (a {type(value).__name__} holds addresses, not a list of CIDRs)"
    if isinstance(value, (Set, Mapping)):
        return f" (a {type(value).__name__}: its order is not defined)"
    if isinstance(value, Iterator):
        return " (an iterator: give a list)"
    return ""
