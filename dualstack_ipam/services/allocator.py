"""ServiceIPAllocator: Service cluster IPs of every configured family, by key.

One :class:`~dualstack_ipam.ServiceIPPool` per Service range; who holds what
is an :class:`~dualstack_ipam.owners.OwnerTable`. A key (a plain string, or
``namespace/name`` for manifests: one shared namespace) holds one address
per family, primary first. The seed's ``allocate(key, family, ip)`` and the
manifest API (:mod:`~dualstack_ipam.services.service_manifests`; the rules,
by stage, in :mod:`~dualstack_ipam.services.read`,
:mod:`~dualstack_ipam.services.intent`, :mod:`~dualstack_ipam.services.update`
and :mod:`~dualstack_ipam.services.render`) share that state. Every call is
all-or-nothing and thread-safe; ``release_service`` releases by key, as
``kubectl delete`` does. A requested address held by another key raises
:class:`ClusterIPTakenError`: both a ``ServiceValidationError`` (``.field``)
and an ``AlreadyAllocatedError`` (``.owner``), so "taken" and "invalid" differ.

:meth:`ServiceIPAllocator.add_range` grows a family with another Service
range (Kubernetes' ServiceCIDR objects): the family's pool becomes a
:class:`~dualstack_ipam.pools.multi.MultiServiceIPPool`; each range keeps
its own static band, and dynamic allocation fills the ranges in the order
they were added.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from random import Random
from typing import Any, cast

import netaddr

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    ClusterIPTakenError,
    InvalidConfigError,
    NotInRangeError,
)
from dualstack_ipam.net import (
    IPFamily,
    make_address,
    make_network,
    parse_address,
    parse_family,
    parse_network,
    split_cidrs,
)
from dualstack_ipam.owners import Address, KeyedAllocator, OwnerTable, check_key
from dualstack_ipam.owners.controls import AllocatorControls
from dualstack_ipam.pools.multi import MultiServiceIPPool, grow, parts_of, ranges_of, sibling
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.services import service_snapshots
from dualstack_ipam.services.service_manifests import ServiceManifests
from dualstack_ipam.services.take import check_occupied, release_all, take

__all__ = ["ClusterIPTakenError", "ServiceIPAllocator"]

_text = service_snapshots.text


class ServiceIPAllocator(ServiceManifests, AllocatorControls, KeyedAllocator[netaddr.IPAddress]):
    """Service cluster IPs from a cluster's Service ranges.

    Args:
        config: a :class:`~dualstack_ipam.ClusterConfig` with one or two
            Service ranges; the first is the default family.
        strategy: ``"random"`` or ``"sequential"``, for every pool.
        rng: a ``random.Random`` shared by the pools, for reproducible runs.
        cooldown: seconds a released address waits before a dynamic
            allocation hands it out again (0: at once), for every pool.
        clock: a zero-argument callable giving seconds (``time.monotonic``
            if None), read only when ``cooldown`` > 0.

    Raises:
        InvalidConfigError: no Service range, a bad strategy, rng, cooldown
            or clock.

    >>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
    >>> alloc = ServiceIPAllocator(config, strategy="sequential")
    >>> alloc.allocate("dns", ip="10.96.0.10"), alloc.allocate("web", family="IPv6")
    (IPAddress('10.96.0.10'), IPAddress('fd00:10:96::101'))
    >>> svc = alloc.allocate_service({"metadata": {"name": "my-service"},
    ...     "spec": {"ipFamilyPolicy": "PreferDualStack", "selector": {"app": "MyApp"}}})
    >>> svc["spec"]["clusterIPs"], svc["spec"]["ipFamilies"]
    (['10.96.1.1', 'fd00:10:96::102'], ['IPv4', 'IPv6'])
    """

    __slots__ = (
        "_config",
        "_errors",
        "_leak_counts",
        "_lock",
        "_pools",
        "_strategy",
        "_table",
        "_texts",
        "_uncounted",
    )
    _pools: dict[IPFamily, ServiceIPPool | MultiServiceIPPool]

    def __init__(
        self,
        config: ClusterConfig,
        *,
        strategy: str = "random",
        rng: Random | None = None,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(config, ClusterConfig) or not config.service_families:
            raise InvalidConfigError(
                "a ClusterConfig with a Service range (--service-cluster-ip-range) is needed "
                f"to allocate cluster IPs, got {config!r}",
                value=config,
            )
        families = config.service_families
        pools = {
            f: ServiceIPPool(
                config.service_cidr(f), strategy=strategy, rng=rng, cooldown=cooldown, clock=clock
            )
            for f in families
        }
        self._setup(config, strategy, pools)

    def _setup(
        self, config: ClusterConfig, strategy: str, pools: Mapping[IPFamily, ServiceIPPool]
    ) -> None:
        self._config, self._strategy = config, strategy
        self._pools = dict(pools)
        self._table = OwnerTable(pools, "key", "Service range")
        self._lock = threading.RLock()
        self._leak_counts: dict[str, int] = {}
        self._errors = {"exhausted": 0, "taken": 0, "invalid": 0}
        self._uncounted: dict[IPFamily, int] = {}
        # Snapshot texts by key, each beside the owner table's tuple it was
        # made from (see services.service_snapshots.snapshot).
        self._texts: dict[str, tuple[tuple[Address, ...], str]] = {}

    def __repr__(self) -> str:
        ranges = ",".join(str(cidr) for pool in self._pools.values() for cidr in ranges_of(pool))
        return f"ServiceIPAllocator({ranges}, strategy={self._strategy!r})<keys={len(self)}>"

    def _pool(self, family: Any) -> ServiceIPPool | MultiServiceIPPool:
        return self._pools[self._table.family(family)]

    def _build(self, address: Address) -> netaddr.IPAddress:
        return make_address(address[1], address[0])

    def _take_slot(self, address: Address) -> None:
        try:
            pool, slot = self._pool_slot(address)
        except NotInRangeError:
            pass
        else:
            pool._allocate_slot(slot)
            return
        # Usable in no range: allocate by address raises (and counts) its own error.
        self._pools[address[0]].allocate(self._build(address))

    def _free_slot(self, address: Address) -> None:
        pool, slot = self._pool_slot(address)
        pool._release_slot(slot)

    def _pool_slot(self, address: Address) -> tuple[ServiceIPPool, int]:
        entry = self._pools[address[0]]
        pool = entry.part_holding(address[1]) if isinstance(entry, MultiServiceIPPool) else entry
        if pool is None:
            ranges = ", ".join(map(str, ranges_of(entry)))
            raise NotInRangeError(
                f"{self._build(address)} is not in {ranges}", pool_cidr=entry.cidr
            )
        slot = address[1] - pool._base  # the pool's own slot rule, without an address object
        if not 0 <= slot < pool._bitmap.size:
            raise NotInRangeError(
                f"{self._build(address)} is not usable in {pool.cidr}", pool_cidr=pool.cidr
            )
        return pool, slot

    # ------------------------------------------------------------ the seed's model

    def allocate(
        self, key: str, family: IPFamily | str | None = None, ip: Any = None
    ) -> netaddr.IPAddress:
        """One address of one family for ``key``.

        ``family=None`` means the family of ``ip``, else the first Service
        range. The same request for a key that holds exactly that one address
        returns it.

        Raises:
            InvalidConfigError: a bad key or family, or a ``family`` that
                disagrees with ``ip`` (checked first).
            AddressFormatError: ``ip`` does not parse.
            FamilyNotConfiguredError: no Service range of that family.
            AlreadyAllocatedError: ``ip`` is held by another key, or ``key``
                holds something else (``.owner`` names the holder).
            NotInRangeError: ``ip`` is not usable in its range.
            PoolExhaustedError: the range is full.

        Complexity:
            O(1) amortised.

        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"),
        ...                            strategy="sequential")
        >>> alloc.allocate("a"), alloc.allocate("a"), alloc.allocate("b", ip="10.96.0.5")
        (IPAddress('10.96.0.17'), IPAddress('10.96.0.17'), IPAddress('10.96.0.5'))
        """
        check_key(key)
        fam = None if family is None else parse_family(family)
        value = None
        if ip is not None:
            value, ip_family = parse_address(ip)
            if fam not in (None, ip_family):
                message = f"family {str(fam)!r} disagrees with ip {ip!r}, an {ip_family} address"
                raise InvalidConfigError(message, value=make_address(value, ip_family))
            fam = ip_family
        fam = self._pool(fam or next(iter(self._pools))).family
        with self._counting(), self._lock:
            held = self._table.get(key)
            if held is None:
                pools = cast("Mapping[IPFamily, ServiceIPPool]", self._routed(((fam, value),)))
                held = ((fam, take(pools, self._table, fam, value)),)
                self._table.put(key, held)
            elif len(held) != 1 or held[0][0] is not fam or value not in (None, held[0][1]):
                message = (
                    f"key {key!r} already holds {[_text(a) for a in held]}, not what "
                    f"allocate({key!r}, family={family!r}, ip={ip!r}) asks for"
                )
                raise AlreadyAllocatedError(message, value=key, owner=key)
        return make_address(held[0][1], fam)

    def release(self, key: str) -> bool:
        """Free every address ``key`` holds; False if it holds none.

        Raises:
            InvalidConfigError: ``key`` is not a non-empty str.

        Complexity:
            O(1) amortised.

        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
        >>> _ = alloc.allocate("a"); alloc.release("a"), alloc.release("a")
        (True, False)
        """
        check_key(key)
        with self._lock:
            held = self._table.pop(key)
            release_all(cast("Mapping[IPFamily, ServiceIPPool]", self._pools), held or ())
            return held is not None

    def owner_of(self, ip: Any) -> str | None:
        """The key holding the address ``ip``, or None (also for a family without a range).

        Raises:
            AddressFormatError: ``ip`` is not an address.

        Complexity:
            O(1).

        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
        >>> _ = alloc.allocate("dns", ip="10.96.0.10")
        >>> alloc.owner_of("10.96.0.10"), alloc.owner_of("10.96.0.11"), alloc.owner_of("fd00::1")
        ('dns', None, None)
        """
        value, family = parse_address(ip)
        with self._lock:
            return self._table.owner((family, value))

    def occupy(self, key: str, ips: Any) -> tuple[netaddr.IPAddress, ...]:
        """Record addresses ``key`` already has (one or two families), all or nothing.

        The bulk load of a restarting controller: no manifest is read, and
        what the truth says is taken as it is (a cooling address is taken;
        a reserved one is refused). ``ips`` is a sequence of addresses (or
        one comma-separated str), at most one per family, in the key's
        order (primary first). Occupying what ``key`` holds is a no-op; a
        key holding one family may occupy the other (it comes second).

        Returns:
            Every address ``key`` holds afterwards, primary first.

        Raises:
            InvalidConfigError: a bad key, no address, or two of a family.
            AddressFormatError: an address that does not parse.
            FamilyNotConfiguredError: no Service range of that family.
            NotInRangeError: an address not usable in its range.
            AlreadyAllocatedError: an address held by another key (the
                message and ``.owner`` name it) or reserved, or ``key``
                holding another address of that family.

        Complexity:
            O(k) for k addresses: far less than :meth:`allocate_service`
            per Service (no manifest).

        >>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/24,fd00::/120")
        >>> alloc = ServiceIPAllocator(config)
        >>> alloc.occupy("default/web", ["fd00::7", "10.96.0.7"])
        (IPAddress('fd00::7'), IPAddress('10.96.0.7'))
        >>> alloc.occupy("default/db", "10.96.0.7")
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.AlreadyAllocatedError: key 'default/db': Service IP \
10.96.0.7 is already allocated to 'default/web'
        """
        check_key(key)
        values = [parse_address(ip) for ip in split_cidrs(ips, "Service IPs")]
        if not values:
            raise InvalidConfigError(f"{key!r}: no Service IP given to occupy (got {ips!r})")
        with self._counting(), self._lock:
            wanted: dict[IPFamily, int] = {}
            for value, family in values:
                if family in wanted:
                    raise InvalidConfigError(
                        f"{key!r}: two {family} Service IPs in {ips!r}; at most one", value=ips
                    )
                self._table.family(family)
                wanted[family] = value
            new = self._table.claim(key, wanted.items(), self._build, "Service IP")
            for family, number in new:
                entry = self._pools[family]
                if isinstance(entry, MultiServiceIPPool) and entry.part_holding(number) is None:
                    # Named here: the check below would name the first range only.
                    address, ranges = make_address(number, family), ranges_of(entry)
                    raise NotInRangeError(
                        f"Service IP {str(address)!r} is not usable in "
                        f"{', '.join(map(str, ranges))}",
                        value=address,
                        pool_cidr=entry.cidr,
                    )
            check_occupied(cast("Mapping[IPFamily, ServiceIPPool]", self._routed(new)), new)
            if new:
                for address in new:
                    self._take_slot(address)
                self._table.put(key, (*(self._table.get(key) or ()), *new))
            return tuple(map(self._build, self._table.get(key) or ()))

    def _reconcile_parse(self, value: Any) -> tuple[netaddr.IPAddress, bool]:
        """``value`` as an address, and whether it is usable in its family's range."""
        address, _, in_range = self._reconcile_read(value)
        return (self._build(address) if in_range else address), in_range

    def _reconcile_read(self, value: Any) -> tuple[Any, IPFamily, bool]:
        """``value`` as ``(address, family, usable)``: a ``(family, int)`` pair when
        usable in its family's range, else an address object (reconcile's slotted
        surface: no object for the truth it compares)."""
        number, family = parse_address(value)
        entry = self._pools.get(family)
        pool = entry.part_holding(number) if isinstance(entry, MultiServiceIPPool) else entry
        # The pool's own slot rule (its first usable address, its usable count).
        if pool is not None and 0 <= number - pool._base < pool._top:
            return (family, number), family, True
        return make_address(number, family), family, False

    # ------------------------------------------------------------ ranges

    def add_range(self, cidr: Any) -> netaddr.IPNetwork:
        """Grow a family with another Service range (a Kubernetes ServiceCIDR); return it.

        The new range has its own static band (KEP-3070, from its own
        size) and is used by dynamic allocation once the ranges before it
        are full (the configuration's first, then in the order added); a
        requested address may lie in any range, and everything else
        (``occupy``, ``owner_of``, ``release``, ``reserve``, ``reconcile``,
        counts, snapshots) covers every range. Host bits are dropped. The
        range must not overlap a Service range of its family (a cluster
        CIDR is the node allocator's: not checked here, as Kubernetes does
        not). :attr:`config` is unchanged. All or nothing.

        Args:
            cidr: the network to add (anything
                :func:`~dualstack_ipam.net.parse_network` accepts).

        Returns:
            The network added, canonical.

        Raises:
            AddressFormatError: ``cidr`` does not parse.
            InvalidConfigError: a family the cluster has no Service range
                of, or overlap with a Service range of the family (the
                message quotes ``cidr`` and names the range).

        Complexity:
            O(k log k) for k ranges of the family, plus the new pool's
            construction (O(1) above 2**24 addresses, else its bytes,
            zeroed in C).

        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/29"),
        ...                            strategy="sequential")
        >>> alloc.add_range("10.97.0.0/24"), alloc.ranges("IPv4")
        (IPNetwork('10.97.0.0/24'), [IPNetwork('10.96.0.0/29'), IPNetwork('10.97.0.0/24')])
        >>> [str(alloc.allocate(f"s{i}")) for i in range(7)][-2:], alloc.capacity("IPv4")
        (['10.96.0.6', '10.97.0.17'], 260)
        >>> alloc.add_range("10.96.0.0/16")
        Traceback (most recent call last):
        ...
        dualstack_ipam.errors.InvalidConfigError: cannot add the Service range '10.96.0.0/16': \
it overlaps the IPv4 Service range 10.96.0.0/29
        """
        with self._counting(), self._lock:
            value = make_network(*parse_network(cidr))
            pool = self._new_range_pool(value, cidr)
            self._pools[pool.family] = grow(pool, sibling(pool, value))
        return value

    def _new_range_pool(
        self, value: netaddr.IPNetwork, cidr: Any = None
    ) -> ServiceIPPool | MultiServiceIPPool:
        """The pool ``value`` (canonical) would be added to; the error if it cannot be."""
        net = parse_network(value)
        pool = self._pools.get(net.family)
        where = f"cannot add the Service range {str(value) if cidr is None else cidr!r}"
        if pool is None:
            have = ", ".join(map(str, self._pools))
            raise InvalidConfigError(
                f"{where}: the cluster has no {net.family} Service range (families: {have}); "
                "add_range grows a family the cluster has",
                value=value,
            )
        for other in ranges_of(pool):
            if other.first <= value.last and value.first <= other.last:
                raise InvalidConfigError(
                    f"{where}: it overlaps the {net.family} Service range {other}", value=value
                )
        return pool

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: the config, each pool's snapshot, key -> addresses (``used`` counts
        addresses).

        Allocating threads wait only while the state is copied (each pool's
        :meth:`~dualstack_ipam.pools.base.BasePool.capture` and one flat copy
        of the owner map); encoding happens after the lock. Version 2: each
        key's addresses are one comma-separated text; a family grown with
        :meth:`add_range` keeps its first pool under ``pools`` and lists the
        added ones under ``added`` (see
        :mod:`~dualstack_ipam.services.service_snapshots`).

        Complexity:
            O(n): flat copies under the lock, the encoding after it.

        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
        >>> _ = alloc.allocate("dns", ip="10.96.0.10")
        >>> data = alloc.snapshot(); data["services"], data["used"]
        ({'dns': '10.96.0.10'}, 1)
        >>> ServiceIPAllocator.restore(data).snapshot() == data
        True
        """
        return service_snapshots.snapshot(self)

    @classmethod
    def restore(
        cls,
        data: Any,
        *,
        rng: Random | None = None,
        cooldown: float = 0,
        clock: Callable[[], float] | None = None,
    ) -> ServiceIPAllocator:
        """Rebuild an allocator from :meth:`snapshot`; its pools draw from ``rng``.

        ``cooldown`` and ``clock`` are the restored allocator's, as in the
        constructor: snapshots do not carry cooling state (an address
        cooling when the snapshot was taken is free after the restore);
        reservations are part of the pools' snapshots.

        Raises:
            InvalidConfigError: ``rng`` is not a ``random.Random``, or a bad
                ``cooldown`` or ``clock`` (checked first).
            SnapshotError: corrupt, truncated, of another kind or version, or
                keys, pools and counts that disagree.

        Complexity:
            O(n).

        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
        >>> _ = alloc.allocate("dns", ip="10.96.0.10")
        >>> ServiceIPAllocator.restore(alloc.snapshot()).get("dns")
        (IPAddress('10.96.0.10'),)
        """
        return service_snapshots.restore(cls, data, rng, cooldown, clock)

    def _read_address(self, key: str, text: str) -> Address:
        return service_snapshots.read_address(self, key, text)

    def _check_invariants(self) -> None:
        """Assert owners against pools, and every count.

        Complexity:
            O(n).
        """
        with self._lock:
            assert tuple(self._pools) == self._config.service_families
            for family, pool in self._pools.items():
                first = parts_of(pool)[0]
                assert first.cidr == self._config.service_cidr(family)
                assert all(part.strategy == self._strategy for part in parts_of(pool))
            self._check_owners()
