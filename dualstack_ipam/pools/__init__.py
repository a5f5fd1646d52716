"""The ``pools`` layer: one range of one family over a bitmap of slots.

:class:`SubnetPool` carves a cluster CIDR into node subnets,
:class:`ServiceIPPool` hands out single Service addresses; both share
:class:`BasePool` (lock, counts, runs, snapshots) and take their
``strategy=`` as a :class:`Strategy` or its string. Both also take
``cooldown=`` / ``clock=`` and offer ``reserve`` / ``unreserve`` /
``reservations``, ``reserved``, ``cooling`` and ``stats()`` (from
:class:`BasePool`; the runs behind them live in
:mod:`~dualstack_ipam.pools.spans`, the ``"a-b"`` ranges in
:mod:`~dualstack_ipam.pools.ranges`). :class:`MultiSubnetPool` and
:class:`MultiServiceIPPool` (:mod:`~dualstack_ipam.pools.multi`) are
several ranges of one family as one pool: what an allocator's
``add_range`` grows a family into. Everything above imports from here.
"""

from dualstack_ipam.pools.base import BasePool
from dualstack_ipam.pools.multi import MultiServiceIPPool, MultiSubnetPool, parts_of, ranges_of
from dualstack_ipam.pools.service_ips import ServiceIPPool, static_band_size
from dualstack_ipam.pools.strategies import (
    SERVICE_STRATEGIES,
    SUBNET_STRATEGIES,
    Strategy,
    parse_strategy,
)
from dualstack_ipam.pools.subnets import SubnetPool

__all__ = [
    "SERVICE_STRATEGIES",
    "SUBNET_STRATEGIES",
    "BasePool",
    "MultiServiceIPPool",
    "MultiSubnetPool",
    "ServiceIPPool",
    "Strategy",
    "SubnetPool",
    "parse_strategy",
    "parts_of",
    "ranges_of",
    "static_band_size",
]
