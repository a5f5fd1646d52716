"""What a LoadBalancerIPAllocator holds, read: keys, addresses, ranges, ``stats()``.

The reading side of :class:`~dualstack_ipam.services.loadbalancer.LoadBalancerIPAllocator`,
shaped as the cluster-IP and node allocators' (``get``, ``owner_of``,
``items()``, iteration sorted by key) and their ``stats()``, with the call
counts of Kubernetes' ``scope`` label. Every read takes the allocator's lock.
"""

from __future__ import annotations

from typing import Any

import netaddr

from dualstack_ipam.net import IPFamily, parse_address
from dualstack_ipam.owners import KeyedHoldings
from dualstack_ipam.services.lb_pool import AddressRanges

__all__ = ["LoadBalancerHoldings"]


class LoadBalancerHoldings(KeyedHoldings[netaddr.IPAddress]):
    """The reading methods of the load-balancer allocator (a mixin).

    Keys and what they hold are read as the other allocators' are
    (:class:`~dualstack_ipam.owners.KeyedHoldings`). A subclass has
    ``_pools`` (family -> :class:`AddressRanges`, the default family first)
    and ``_totals`` (its call counts by name), besides what that base needs.

    >>> from dualstack_ipam import LoadBalancerIPAllocator
    >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
    >>> _ = lb.occupy("default/web", "192.0.2.1")
    >>> list(lb), lb.get("default/web"), lb.owner_of("192.0.2.1"), len(lb)
    (['default/web'], (IPAddress('192.0.2.1'),), 'default/web', 1)
    """

    __slots__ = ()
    _pools: dict[IPFamily, AddressRanges]
    _totals: dict[str, int]

    @property
    def families(self) -> tuple[IPFamily, ...]:
        """The pool families, the default one first.

        Complexity:
            O(1).
        """
        return self._table.families

    def ranges(self, family: IPFamily | str) -> tuple[str, ...]:
        """The ranges of ``family``'s pool, in allocation order.

        Raises:
            FamilyNotConfiguredError: no pool of that family.

        Complexity:
            O(k) for k ranges.

        >>> from dualstack_ipam import LoadBalancerIPAllocator
        >>> LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30, 192.0.2.8-192.0.2.9"}).ranges("IPv4")
        ('192.0.2.0/30', '192.0.2.8/31')
        """
        return self._pools[self._table.family(family)].ranges

    def owner_of(self, ip: Any) -> str | None:
        """The key holding the address ``ip``, or None.

        Raises:
            AddressFormatError: ``ip`` is not an address.

        Complexity:
            O(1).
        """
        value, family = parse_address(ip)
        with self._lock:
            return self._table.owner((family, value))

    def stats(self) -> dict[str, Any]:
        """Per family ``capacity``, ``used``, ``free``, ``reserved``, ``cooling``; ``totals``.

        ``totals`` counts this process's calls: ``allocations`` and
        ``releases`` (addresses), ``errors`` by cause, and ``scopes``:
        allocations and errors of requested (``static``) and pool-chosen
        (``dynamic``) addresses, Kubernetes' ``scope`` label.

        Complexity:
            O(1) per family.

        >>> from dualstack_ipam import LoadBalancerIPAllocator
        >>> LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"}).stats()["IPv4"]
        {'capacity': 4, 'used': 0, 'free': 4, 'reserved': 0, 'cooling': 0}
        """
        with self._lock:
            t = self._totals
            result: dict[str, Any] = {
                str(family): {
                    "capacity": pool.capacity,
                    "used": pool.used,
                    "free": pool.free,
                    "reserved": 0,
                    "cooling": 0,
                }
                for family, pool in self._pools.items()
            }
            errors = {"exhausted": t["exhausted"], "taken": t["taken"], "invalid": t["invalid"]}
            result["totals"] = {
                "allocations": t["allocations"],
                "releases": t["releases"],
                "errors": errors,
                "scopes": {
                    "static": {"allocations": t["static"], "errors": t["taken"] + t["invalid"]},
                    "dynamic": {"allocations": t["dynamic"], "errors": t["exhausted"]},
                },
            }
            return result
