"""NodeCIDRAllocator: one pod CIDR per family per node (Kubernetes ``rangeAllocator``).

One :class:`~dualstack_ipam.pools.subnets.SubnetPool` per cluster CIDR, carved at
the family's node mask. The allocator adds what Kubernetes' controller keeps
around its ``CidrSet``\\ s: who holds what, and the rules that tie a node's
CIDRs of both families together. Where Kubernetes leaks the first family's
CIDR when the second family is exhausted, and matches a node's ``podCIDRs``
to pools by position, this allocator is all-or-nothing and matches by family.

Who holds what is an :class:`~dualstack_ipam.owners.OwnerTable` of subnet
indices. Service ranges that overlap a cluster CIDR are occupied at
construction, as kube-controller-manager does at start-up, and are never
handed out nor released.

:meth:`NodeCIDRAllocator.add_range` grows a family with another cluster
CIDR (carved at the family's node mask): the family's pool becomes a
:class:`~dualstack_ipam.pools.multi.MultiSubnetPool`, which numbers subnets
across its ranges in the order they were added, so the first range keeps
its numbers and the Service set-aside its span.

>>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16,fc00::/24"))
>>> alloc.allocate("node-a")
(IPNetwork('10.244.0.0/24'), IPNetwork('fc00::/64'))
>>> alloc.owner_of("10.244.0.17"), alloc.used("IPv6"), alloc.free("IPv4")
('node-a', 1, 255)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from random import Random
from typing import Any

import netaddr

from dualstack_ipam.cluster import node_objects, node_snapshots
from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.cluster.node_claims import NodeClaims
from dualstack_ipam.errors import (
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.net import IPFamily, make_address, make_network, parse_network
from dualstack_ipam.owners import Address, KeyedAllocator, OwnerTable, check_key
from dualstack_ipam.owners.controls import AllocatorControls
from dualstack_ipam.pools.multi import MultiSubnetPool, grow, parts_of, ranges_of, sibling
from dualstack_ipam.pools.subnets import SubnetPool

__all__ = ["NodeCIDRAllocator"]

_KIND = node_snapshots.KIND


class NodeCIDRAllocator(NodeClaims, AllocatorControls, KeyedAllocator[netaddr.IPNetwork]):
    """Per-node pod CIDRs, one per configured family, in the cluster's order.

    Args:
        config: the :class:`~dualstack_ipam.ClusterConfig`.
        strategy: ``"next-fit"`` (Kubernetes' rotating cursor) or
            ``"lowest"``, passed to every :class:`SubnetPool`.
        cooldown: seconds a released CIDR waits before :meth:`allocate`
            hands it out again (0: at once), passed to every pool.
        clock: a zero-argument callable giving seconds (``time.monotonic``
            if None), read only when ``cooldown`` > 0.

    Node names are non-empty strings (:class:`InvalidConfigError` otherwise).
    Every method is thread-safe: one re-entrant lock guards the owners and
    the pools together.

    Raises:
        InvalidConfigError: ``config`` is not a ClusterConfig, or a bad
            strategy, cooldown or clock.

    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16", "10.0.0.0/20"))
    >>> alloc.capacity("IPv4"), alloc.reserved("IPv4"), alloc.allocate("n1")
    (256, 16, (IPNetwork('10.0.16.0/24'),))
    """

    __slots__ = (
        "_config",
        "_errors",
        "_leak_counts",
        "_lock",
        "_pools",
        "_reserved",
        "_strategy",
        "_table",
        "_uncounted",
    )
    _pools: dict[IPFamily, SubnetPool | MultiSubnetPool]

    def __init__(
        self,
        config: ClusterConfig,
        *,
        strategy: str = "next-fit",
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(config, ClusterConfig):
            raise InvalidConfigError(
                f"config must be a ClusterConfig, got {type(config).__name__}", value=config
            )
        self._config = config
        self._pools: dict[IPFamily, SubnetPool | MultiSubnetPool] = {
            family: SubnetPool(
                config.cluster_cidr(family),
                config.node_mask(family),
                strategy=strategy,
                cooldown=cooldown,
                clock=clock,
            )
            for family in config.families
        }
        self._strategy = strategy
        # family -> [first, stop) subnet indices set aside for the Service range.
        self._reserved: dict[IPFamily, tuple[int, int]] = {}
        for family, pool in self._pools.items():
            assert isinstance(pool, SubnetPool)  # nothing is added yet
            if family in config.service_families:
                service = config.service_cidr(family)
                if pool.cidr.first <= service.last and service.first <= pool.cidr.last:
                    first = pool.index_of(make_address(max(service.first, pool.cidr.first), family))
                    last = pool.index_of(make_address(min(service.last, pool.cidr.last), family))
                    pool.occupy(service)
                    self._reserved[family] = (first, last + 1)
        self._table = OwnerTable(config.families, "node name", "cluster CIDR")
        self._lock = threading.RLock()
        self._leak_counts: dict[str, int] = {}
        self._errors = {"exhausted": 0, "taken": 0, "invalid": 0}
        # The set-aside was occupied above: not an allocation to a node.
        self._uncounted = {family: self._set_aside(family) for family in self._pools}

    def __repr__(self) -> str:
        return (
            f"NodeCIDRAllocator({self._config!r}, strategy={self._strategy!r})<nodes={len(self)}>"
        )

    @property
    def strategy(self) -> str:
        """The pools' allocation strategy.

        Complexity:
            O(1).

        >>> NodeCIDRAllocator(ClusterConfig("10.244.0.0/16"), strategy="lowest").strategy
        'lowest'
        """
        return self._strategy

    # ------------------------------------------------------------ helpers

    def _pool(self, family: Any) -> SubnetPool | MultiSubnetPool:
        return self._pools[self._table.family(family)]

    def _build(self, address: Address) -> netaddr.IPNetwork:
        return self._pools[address[0]].subnet_at(address[1])

    def _take_slot(self, address: Address) -> None:
        pool, index = self._pool_slot(address)
        pool._occupy_span(index, index + 1)

    def _free_slot(self, address: Address) -> None:
        pool, index = self._pool_slot(address)
        pool._release_span(index, index + 1)

    def _pool_slot(self, address: Address) -> tuple[SubnetPool, int]:
        pool, index = self._pools[address[0]], address[1]
        if not 0 <= index < pool.capacity:
            raise NotInRangeError(f"subnet {index} is outside {pool.cidr}", pool_cidr=pool.cidr)
        if isinstance(pool, MultiSubnetPool):
            return pool.locate(index)
        return pool, index

    # ------------------------------------------------------------ public

    def allocate(self, node: str) -> tuple[netaddr.IPNetwork, ...]:
        """Give ``node`` one pod CIDR per family, in ``config.families`` order.

        Idempotent: a node that has CIDRs gets the same ones back, and a node
        holding only some families (after a partial :meth:`occupy`) gets the
        missing ones. Atomic: if any family it needs is exhausted, nothing
        changes (no pool, no cursor).

        Raises:
            PoolExhaustedError: a needed family has no free subnet.
            InvalidConfigError: ``node`` is not a non-empty str.

        Complexity:
            O(1) amortised per family (the pools' free-space search).

        >>> alloc = NodeCIDRAllocator(ClusterConfig("fc00::/24,10.244.0.0/16"))
        >>> alloc.allocate("a")
        (IPNetwork('fc00::/64'), IPNetwork('10.244.0.0/24'))
        >>> alloc.allocate("a") == alloc.get("a")
        True
        """
        check_key(node, "node name")
        with self._counting(), self._lock:
            held = dict(self._table.get(node) or ())
            missing = [family for family in self._pools if family not in held]
            for family in missing:
                # Checking every family first is what makes the call atomic:
                # under our lock no one else touches the pools. Cooling
                # subnets count as free but allocate_next skips them.
                pool = self._pools[family]
                cooling = pool.cooling if pool.cooldown else 0
                if pool.free - cooling <= 0:
                    note = f" ({cooling} released CIDRs are cooling down)" if cooling else ""
                    accepted = ", ".join(map(str, ranges_of(pool)))
                    raise PoolExhaustedError(
                        "CIDR allocation failed; there are no remaining CIDRs left to allocate "
                        f"in the accepted range {accepted} (node {node!r}){note}",
                        pool_cidr=pool.cidr,
                    )
            if missing:
                held = dict(held)
                for family in missing:
                    pool = self._pools[family]
                    index = pool.index_of(pool.allocate_next())
                    held[family] = index
                self._table.put(node, tuple((f, held[f]) for f in self._pools if f in held))
            return self._cidrs(held)

    def release(self, node: str) -> bool:
        """Free every pod CIDR of ``node``; True if it held any.

        Releasing an unknown node is a no-op that returns False.

        Raises:
            InvalidConfigError: ``node`` is not a non-empty str.

        Complexity:
            O(1) per family.

        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16"))
        >>> _ = alloc.allocate("a")
        >>> alloc.release("a"), alloc.release("a"), alloc.used("IPv4")
        (True, False, 0)
        """
        check_key(node, "node name")
        with self._lock:
            held = self._table.pop(node)
            for address in held or ():
                self._free_slot(address)
            return held is not None

    def owner_of(self, address_or_cidr: Any) -> str | None:
        """The node whose pod CIDR holds ``address_or_cidr`` entirely, or None.

        None for a network larger than a node CIDR, for anything outside the
        cluster CIDRs and for a family the cluster does not have.

        Raises:
            AddressFormatError: not an address or network.

        Complexity:
            O(1).

        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16"))
        >>> _ = alloc.allocate("a")
        >>> alloc.owner_of("10.244.0.0/26"), alloc.owner_of("10.244.0.0/16"), alloc.owner_of("::1")
        ('a', None, None)
        """
        net = parse_network(address_or_cidr)
        pool = self._pools.get(net.family)
        if pool is None or net.prefixlen < pool.prefixlen:
            return None
        try:
            index = pool.index_of(make_network(*net))
        except NotInRangeError:
            return None
        with self._lock:
            return self._table.owner((net.family, index))

    def allocate_node(self, node: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of the Kubernetes Node object ``node`` with its pod CIDRs set.

        As kube-controller-manager's range allocator: a Node that carries
        ``spec.podCIDRs`` (or only the older ``spec.podCIDR``) has them
        occupied, not replaced (the API server allows setting them only
        once); a Node without gets one CIDR per family (as :meth:`allocate`,
        the primary family first) written to ``spec.podCIDRs`` and
        ``spec.podCIDR`` (the first). ``node`` is never mutated; the call
        is all or nothing (see :mod:`~dualstack_ipam.cluster.node_objects`).

        Raises:
            InvalidConfigError: not a mapping, no ``metadata.name``, a
                ``spec.podCIDRs`` that is not a list of str, a ``podCIDR``
                that disagrees with ``podCIDRs[0]``, or an ``occupy`` error
                of that kind; the message names the field.
            NotInRangeError, FamilyNotConfiguredError, AlreadyAllocatedError:
                as :meth:`occupy`, the message naming the field
                (``spec.podCIDRs[1]``).
            PoolExhaustedError: as :meth:`allocate`.

        Complexity:
            O(size of the object) plus :meth:`allocate` / :meth:`occupy`.

        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16,fc00::/24"))
        >>> alloc.allocate_node({"metadata": {"name": "n1"}})["spec"]
        {'podCIDR': '10.244.0.0/24', 'podCIDRs': ['10.244.0.0/24', 'fc00::/64']}
        """
        return node_objects.allocate_node(self, node)

    # ------------------------------------------------------------ ranges

    def add_range(self, cidr: Any) -> netaddr.IPNetwork:
        """Grow a family with another cluster CIDR (a Kubernetes ClusterCIDR); return it.

        The new range is carved at the family's node mask and handed out
        after the ranges before it (:meth:`allocate` fills the ranges in the
        order they were added, the configuration's first); everything else
        (``occupy``, ``owner_of``, ``release``, ``reserve``, ``reconcile``,
        counts, snapshots) covers every range. Host bits are dropped. The
        range must not overlap a range of its family nor the family's
        Service range: the configuration's cluster CIDR keeps its Service
        set-aside as it was, and a range added later is refused rather than
        partly set aside. :attr:`config` is unchanged. All or nothing.

        Args:
            cidr: the network to add (anything
                :func:`~dualstack_ipam.net.parse_network` accepts).

        Returns:
            The network added, canonical.

        Raises:
            AddressFormatError: ``cidr`` does not parse.
            InvalidConfigError: a family the cluster has no cluster CIDR of,
                a prefix longer than the family's node mask, or overlap with
                a range of the family or with its Service range (the message
                quotes ``cidr`` and names what it overlaps).

        Complexity:
            O(k log k) for k ranges of the family, plus the new pool's
            construction (O(1) above 2**24 subnets, else its bytes, zeroed
            in C).

        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/23", node_mask_ipv4=24))
        >>> alloc.add_range("10.245.0.0/24"), alloc.ranges("IPv4")
        (IPNetwork('10.245.0.0/24'), [IPNetwork('10.244.0.0/23'), IPNetwork('10.245.0.0/24')])
        >>> [alloc.allocate(n)[0] for n in ("a", "b", "c")], alloc.capacity("IPv4")
        ([IPNetwork('10.244.0.0/24'), IPNetwork('10.244.1.0/24'), IPNetwork('10.245.0.0/24')], 3)
        >>> alloc.add_range("10.244.1.0/24")
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.InvalidConfigError: cannot add the cluster CIDR '10.244.1.0/24': \
it overlaps the IPv4 cluster CIDR 10.244.0.0/23
        """
        with self._counting(), self._lock:
            value = make_network(*parse_network(cidr))
            pool = self._new_range_pool(value, cidr)
            self._pools[pool.family] = grow(pool, sibling(pool, value))
        return value

    def _new_range_pool(
        self, value: netaddr.IPNetwork, cidr: Any = None
    ) -> SubnetPool | MultiSubnetPool:
        """The pool ``value`` (canonical) would be added to; the error if it cannot be."""
        net = parse_network(value)
        pool = self._pools.get(net.family)
        where = f"cannot add the cluster CIDR {str(value) if cidr is None else cidr!r}"
        if pool is None:
            have = ", ".join(map(str, self._pools)) or "none"
            raise InvalidConfigError(
                f"{where}: the cluster has no {net.family} cluster CIDR (families: {have}); "
                "add_range grows a family the cluster has",
                value=value,
            )
        mask = pool.prefixlen
        if net.prefixlen > mask:
            raise InvalidConfigError(
                f"{where}: mask size of cluster CIDR must be less than or equal to "
                f"--node-cidr-mask-size configured for CIDR family ({mask})",
                value=value,
            )
        taken = [(f"{net.family} cluster CIDR", other) for other in ranges_of(pool)]
        if net.family in self._config.service_families:
            service = self._config.service_cidr(net.family)
            taken.append((f"{net.family} Service range", service))
        for what, other in taken:
            if other.first <= value.last and value.first <= other.last:
                raise InvalidConfigError(f"{where}: it overlaps the {what} {other}", value=value)
        return pool

    def _set_aside(self, family: IPFamily) -> int:
        span = self._reserved.get(family)
        return 0 if span is None else span[1] - span[0]

    def _set_aside_range(self, family: IPFamily) -> tuple[int, int] | None:
        span = self._reserved.get(family)
        if span is None:
            return None
        pool = self._pools[family]
        return pool.subnet_at(span[0]).first, pool.subnet_at(span[1] - 1).last

    # --------------------------------------------------------- snapshots

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready, versioned description of the whole allocator.

        Keys: ``kind`` (``"NodeCIDRAllocator"``), ``version``, ``used`` (the
        number of nodes), ``config`` (:meth:`ClusterConfig.to_dict`),
        ``strategy``, ``pools`` (each pool's snapshot, in
        ``config.families`` order; cursors included) and ``nodes`` (node ->
        list of CIDR text, in ``config.families`` order).

        Allocating threads wait only for flat copies; the encoding happens
        after the lock (:mod:`~dualstack_ipam.cluster.node_snapshots`).

        Complexity:
            O(n) in the nodes and the pools' allocated chunks.

        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16"))
        >>> _ = alloc.allocate("a")
        >>> data = alloc.snapshot()
        >>> data["kind"], data["used"], data["nodes"]
        ('NodeCIDRAllocator', 1, {'a': ['10.244.0.0/24']})
        >>> NodeCIDRAllocator.restore(data).snapshot() == data
        True
        """
        return node_snapshots.snapshot(self)

    @classmethod
    def restore(
        cls,
        data: Any,
        *,
        rng: Random | None = None,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> NodeCIDRAllocator:
        """Rebuild an allocator from :meth:`snapshot` (``rng`` is unused).

        ``cooldown`` and ``clock`` are the restored allocator's, as in the
        constructor (snapshots do not carry cooling state: a CIDR cooling
        when the snapshot was taken is free after the restore).
        Reservations are part of the pools' snapshots.

        The pools are restored as written (cursors included) and must agree
        with the configuration, the Service set-aside and the nodes: every
        node CIDR allocated, no CIDR held twice, and the counts equal.

        Raises:
            SnapshotError: corrupt, truncated, of another kind or version, or
                with owners and pools that disagree.

        Complexity:
            O(n) in the snapshot's size.

        >>> alloc = NodeCIDRAllocator(ClusterConfig("10.244.0.0/16,fc00::/24"))
        >>> _ = alloc.allocate("a")
        >>> NodeCIDRAllocator.restore(alloc.snapshot()).get("a") == alloc.get("a")
        True
        """
        return node_snapshots.restore(cls, data, cooldown=cooldown, clock=clock)

    def _read_cidr(self, node: str, text: str) -> Address:
        return node_snapshots.read_cidr(self, node, text)

    def _check_invariants(self) -> None:
        """Assert owners and pools agree, no CIDR is shared, counts add up.

        Complexity:
            O(n) in the nodes and the pools' allocated chunks.
        """
        with self._lock:
            assert list(self._pools) == list(self._config.families)
            self._check_owners()
            for node, held in self._table.items():
                assert not any(self._is_reserved(*a) for a in held), node
                assert [f for f, _ in held] == [f for f in self._pools if f in dict(held)], node
            for family, pool in self._pools.items():
                first, *added = parts_of(pool)
                assert pool.strategy == self._strategy
                assert first.cidr == self._config.cluster_cidr(family)
                assert first.capacity - self._set_aside(family) == self._config.node_capacity(
                    family
                )
                assert pool.capacity == sum(part.capacity for part in parts_of(pool))
                assert all(part.prefixlen == first.prefixlen for part in added)
                if family in self._reserved:
                    assert first.is_allocated(self._config.service_cidr(family))
                if family in self._config.service_families:
                    service = self._config.service_cidr(family)
                    assert not any(p.cidr.first <= service.last <= p.cidr.last for p in added)
                    assert not any(service.first <= p.cidr.first <= service.last for p in added)
