"""Pod CIDRs matched by family: what a node already holds, recorded and read back.

Kubernetes matches a Node's ``spec.podCIDRs`` to its CIDR sets by position;
:class:`NodeClaims` matches each CIDR to the pool of its family and checks it
against the configuration (node mask, cluster CIDR, Service set-aside,
reservations) before any pool is touched, so :meth:`NodeClaims.occupy` is
all-or-nothing. :meth:`NodeClaims.by_family` reads a node's CIDRs back the
same way, and reconciliation asks here whether a node could hold a CIDR.
"""

from __future__ import annotations

import contextlib
from typing import Any

import netaddr

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    FamilyNotConfiguredError,
    InvalidConfigError,
    NotInRangeError,
)
from dualstack_ipam.net import IPFamily, Net, make_network, parse_network, split_cidrs
from dualstack_ipam.owners import Address, KeyedAllocator, check_key
from dualstack_ipam.owners.controls import AllocatorControls, reservation_at
from dualstack_ipam.pools.multi import MultiSubnetPool, ranges_of
from dualstack_ipam.pools.subnets import SubnetPool

__all__ = ["NodeClaims"]


class NodeClaims(AllocatorControls, KeyedAllocator[netaddr.IPNetwork]):
    """``occupy`` and ``by_family`` of :class:`~dualstack_ipam.NodeCIDRAllocator` (a mixin).

    A subclass has ``_pools`` (family -> :class:`SubnetPool`, or a
    :class:`~dualstack_ipam.pools.multi.MultiSubnetPool` once a range was
    added; in ``config.families`` order), ``_pool_slot`` and ``_reserved`` (family -> the ``[first,
    stop)`` subnet indices set aside for the Service range), besides what
    its bases need.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16,fc00::/24"))
    >>> alloc.occupy("a", "fc00:0:0:7::/64"), alloc.by_family("a")[IPFamily.IPv6]
    ((IPNetwork('fc00:0:0:7::/64'),), IPNetwork('fc00:0:0:7::/64'))
    """

    __slots__ = ()
    _pools: dict[IPFamily, SubnetPool | MultiSubnetPool]
    _reserved: dict[IPFamily, tuple[int, int]]

    def _pool_slot(self, address: Address) -> tuple[SubnetPool, int]:
        raise NotImplementedError

    def _cidrs(self, held: dict[IPFamily, int]) -> tuple[netaddr.IPNetwork, ...]:
        return tuple(self._build((f, held[f])) for f in self._pools if f in held)

    def _is_reserved(self, family: IPFamily, index: int) -> bool:
        span = self._reserved.get(family)
        return span is not None and span[0] <= index < span[1]

    def _locate(self, node: str, net: Net, seen: dict[IPFamily, int]) -> int:
        """The subnet index of one of ``node``'s pod CIDRs, checked against the config."""
        pool, value = self._pools.get(net.family), make_network(*net)
        where = f"node {node!r}: pod CIDR {str(value)!r}"
        if pool is None:
            message = f"{where} is {net.family}, which the cluster has no cluster CIDR for"
            raise FamilyNotConfiguredError(message, family=net.family)
        if net.family in seen:
            other = pool.subnet_at(seen[net.family])
            message = (
                f"node {node!r}: two {net.family} pod CIDRs ({other} and {value}); at most one"
            )
            raise InvalidConfigError(message, value=value)
        if net.prefixlen != pool.prefixlen:
            message = (
                f"{where} has prefix length {net.prefixlen}, but the {net.family} node mask is"
            )
            raise InvalidConfigError(f"{message} {pool.prefixlen}", value=value)
        try:
            return pool.index_of(value)
        except NotInRangeError:
            accepted = ", ".join(map(str, ranges_of(pool)))
            message = f"{where} is not inside the cluster CIDR {accepted}"
            raise NotInRangeError(message, value=value, pool_cidr=pool.cidr) from None

    def _claims(self, node: str, nets: list[Net]) -> list[Address]:
        """What :meth:`occupy` of ``nets`` would add to ``node``, checked; nothing changes."""
        wanted: dict[IPFamily, int] = {}
        for net in nets:
            wanted[net.family] = self._locate(node, net, wanted)
        new = self._table.claim(node, wanted.items(), self._build, "pod CIDR")
        for family, index in new:
            cidr = self._build((family, index))
            if self._is_reserved(family, index):
                service = self._config.service_cidr(family)
                message = f"pod CIDR {cidr} overlaps the Service range {service}, set aside"
                raise AlreadyAllocatedError(f"node {node!r}: {message}", value=cidr)
            # Checked before any pool is touched: a reserved CIDR must fail the
            # call before another was occupied (giving one back would cool it).
            reason = reservation_at(*self._pool_slot((family, index)))
            if reason is not None:
                message = f"node {node!r}: pod CIDR {cidr} is reserved ({reason!r})"
                raise AlreadyAllocatedError(message, value=cidr)
        return new

    def occupy(self, node: str, cidrs: Any) -> tuple[netaddr.IPNetwork, ...]:
        """Record pod CIDRs ``node`` already has (e.g. after a controller restart).

        ``cidrs`` is a sequence (or one comma-separated str) of one to
        ``len(config.families)`` CIDRs, at most one per family, matched to
        the pools by family, not position. Host bits are dropped. Occupying
        what the node already holds is a no-op. All-or-nothing.

        Returns:
            Every CIDR ``node`` holds afterwards, in ``config.families`` order.

        Raises:
            InvalidConfigError: no CIDR, two of one family, or a prefix
                length other than the node mask (:class:`AddressFormatError`
                for unparseable input).
            FamilyNotConfiguredError: a CIDR of a family the cluster lacks.
            NotInRangeError: a CIDR outside its cluster CIDR.
            AlreadyAllocatedError: a CIDR held by another node (``.owner``
                names it) or set aside for Services, or ``node`` already
                holding a different CIDR of that family.

        Complexity:
            O(k) for k CIDRs.

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16,fc00::/24"))
        >>> alloc.occupy("a", ["fc00:0:0:7::/64", "10.244.3.0/24"])
        (IPNetwork('10.244.3.0/24'), IPNetwork('fc00:0:0:7::/64'))
        >>> alloc.owner_of("fc00:0:0:7::1")
        'a'
        """
        check_key(node, "node name")
        nets = [parse_network(cidr) for cidr in split_cidrs(cidrs, "pod CIDRs")]
        if not nets:
            raise InvalidConfigError(
                f"node {node!r}: no pod CIDR given to occupy (got {cidrs!r})", value=cidrs
            )
        with self._counting(), self._lock:
            new = self._claims(node, nets)
            held = dict(self._table.get(node) or ())
            if new:
                held.update(new)
                for address in new:
                    self._pools[address[0]].occupy(self._build(address))
                self._table.put(node, tuple((f, held[f]) for f in self._pools if f in held))
            return self._cidrs(held)

    def by_family(self, node: str) -> dict[IPFamily, netaddr.IPNetwork]:
        """``node``'s pod CIDRs by family (empty if it holds none).

        Raises:
            InvalidConfigError: ``node`` is not a non-empty str.

        Complexity:
            O(1).

        >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16,fc00::/24"))
        >>> _ = alloc.occupy("a", "fc00:0:0:7::/64")
        >>> alloc.by_family("a"), alloc.by_family("b")
        ({<IPFamily.IPv6: 'IPv6'>: IPNetwork('fc00:0:0:7::/64')}, {})
        """
        check_key(node, "node name")
        with self._lock:
            return {address[0]: self._build(address) for address in self._table.get(node) or ()}

    def _reconcile_parse(self, value: Any) -> tuple[netaddr.IPNetwork, bool]:
        """``value`` as a CIDR, and whether a node could hold it (the family's node
        mask, inside its cluster CIDR)."""
        address, _, in_range = self._reconcile_read(value)
        return (self._build(address) if in_range else address), in_range

    def _reconcile_read(self, value: Any) -> tuple[Any, IPFamily, bool]:
        """``value`` as ``(address, family, holdable)``: a ``(family, subnet index)``
        pair when a node could hold it, else a network object (reconcile's slotted
        surface)."""
        net = parse_network(value)
        pool = self._pools.get(net.family)
        if pool is not None and net.prefixlen == pool.prefixlen:
            if isinstance(pool, SubnetPool):
                # index_of's rule, on the parsed value (no object to parse again).
                offset = net.value - pool._net.value
                if 0 <= offset < 1 << (net.family.width - pool._net.prefixlen):
                    return (net.family, offset >> pool._shift), net.family, True
            else:
                with contextlib.suppress(NotInRangeError):
                    return (net.family, pool.index_of(make_network(*net))), net.family, True
        return make_network(*net), net.family, False
