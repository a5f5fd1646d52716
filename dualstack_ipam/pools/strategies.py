"""How a pool picks the next free slot: the strategies, parsed at the edge.

A pool takes its ``strategy=`` as a :class:`Strategy` or as the plain string
(``"next-fit"``, ...), reads it once with :func:`parse_strategy` and keeps
the member; inside, the hot paths test a flag set from it, never a string.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from dualstack_ipam.errors import InvalidConfigError

__all__ = ["SERVICE_STRATEGIES", "SUBNET_STRATEGIES", "Strategy", "parse_strategy"]


class Strategy(StrEnum):
    """A pool's allocation strategy.

    A ``str`` enum: it compares equal to its value and ``str()`` gives it, so
    the plain strings work wherever a strategy is taken.

    * ``NEXT_FIT`` (``"next-fit"``, subnets): Kubernetes' rotating cursor.
    * ``LOWEST`` (``"lowest"``, subnets): always the lowest free subnet.
    * ``RANDOM`` (``"random"``, Service IPs): a random start in the band,
      then the next free address, as Kubernetes does.
    * ``SEQUENTIAL`` (``"sequential"``, Service IPs): the lowest free
      address of the band.

    >>> Strategy("next-fit"), Strategy.RANDOM == "random", str(Strategy.LOWEST)
    (<Strategy.NEXT_FIT: 'next-fit'>, True, 'lowest')
    """

    NEXT_FIT = "next-fit"
    LOWEST = "lowest"
    RANDOM = "random"
    SEQUENTIAL = "sequential"


SUBNET_STRATEGIES = (Strategy.NEXT_FIT, Strategy.LOWEST)
"""What :class:`~dualstack_ipam.pools.subnets.SubnetPool` accepts (the first by default)."""

SERVICE_STRATEGIES = (Strategy.RANDOM, Strategy.SEQUENTIAL)
"""What :class:`~dualstack_ipam.pools.service_ips.ServiceIPPool` accepts (the first by default)."""


def parse_strategy(value: Any, allowed: tuple[Strategy, ...]) -> Strategy:
    """The member of ``allowed`` named by ``value`` (a :class:`Strategy` or its string).

    Args:
        value: what the caller passed as ``strategy=``.
        allowed: the strategies the pool accepts.

    Raises:
        InvalidConfigError: anything else, quoted, with the choices; its
            ``value`` is the argument as given.

    Complexity:
        O(1).

    >>> parse_strategy("lowest", SUBNET_STRATEGIES)
    <Strategy.LOWEST: 'lowest'>
    >>> try:
    ...     parse_strategy("lowest", SERVICE_STRATEGIES)
    ... except InvalidConfigError as exc:
    ...     print(exc)
    unknown strategy 'lowest': expected one of 'random', 'sequential'
    """
    if isinstance(value, str):
        for strategy in allowed:
            if value == strategy:
                return strategy
    shown = value.value if isinstance(value, Strategy) else value
    choices = ", ".join(repr(strategy.value) for strategy in allowed)
    raise InvalidConfigError(f"unknown strategy {shown!r}: expected one of {choices}", value=value)
