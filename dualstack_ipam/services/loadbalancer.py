"""LoadBalancerIPAllocator: ingress addresses for ``type: LoadBalancer`` Services.

What MetalLB and Cilium's LB-IPAM do for a bare-metal cluster: one address
per family of a Service's ``spec.ipFamilies`` (defaulted by the same rules
as cluster IPs, :func:`~dualstack_ipam.services.intent.resolve`, with the
load-balancer pools' families as the configured ones), written to
``status.loadBalancer.ingress``. Pools are CIDRs and ``a-b`` ranges whose
every address is usable (:mod:`~dualstack_ipam.services.lb_pool`). A
Service may ask for its addresses with ``spec.loadBalancerIP`` or the
annotations ``metallb.universe.tf/loadBalancerIPs`` and
``lbipam.cilium.io/ips`` (comma-separated;
:mod:`~dualstack_ipam.services.lb_request`). Keys are
:func:`~dualstack_ipam.service_key`'s; who holds what is an
:class:`~dualstack_ipam.owners.OwnerTable`. Every call is all-or-nothing and
thread-safe. The reading side is in
:mod:`~dualstack_ipam.services.lb_holdings`. In memory only: snapshots
(:mod:`~dualstack_ipam.services.lb_snapshots`) carry the holdings, not the
call counts of :meth:`LoadBalancerIPAllocator.stats` nor the leak counts of
:func:`~dualstack_ipam.reconcile.reconcile`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from random import Random
from typing import Any

import attrs
import netaddr

from dualstack_ipam.errors import (
    AlreadyAllocatedError,
    ClusterIPTakenError,
    InvalidConfigError,
    NotInRangeError,
    PoolExhaustedError,
)
from dualstack_ipam.net import IPFamily, make_address, parse_address
from dualstack_ipam.owners import Address, OwnerTable, check_key
from dualstack_ipam.reconcile import ReconcileReport
from dualstack_ipam.reconcile import reconcile as reconcile_with
from dualstack_ipam.services import intent as it
from dualstack_ipam.services import lb_snapshots, read
from dualstack_ipam.services.lb_holdings import LoadBalancerHoldings
from dualstack_ipam.services.lb_pool import STRATEGIES, AddressRanges, parse_pools
from dualstack_ipam.services.lb_request import ANNOTATIONS, requested

__all__ = ["ANNOTATIONS", "LoadBalancerIPAllocator"]


class LoadBalancerIPAllocator(LoadBalancerHoldings):
    """Load-balancer ingress addresses of every pool family, by Service key.

    Args:
        pools: family (``IPFamily`` or its string) -> a list of CIDRs and
            ``"a-b"`` ranges, or one comma-separated string of them; the
            first family is the default one.
        strategy: ``"sequential"`` (lowest free address, as MetalLB) or
            ``"random"``.
        rng: a ``random.Random`` for ``random``, for reproducible runs.

    Raises:
        InvalidConfigError: no pool, a bad family, range, strategy or rng.

    >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.10-192.0.2.20",
    ...                               "IPv6": ["2001:db8::/120"]})
    >>> svc = lb.allocate_service({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer",
    ...     "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}})
    >>> svc["status"]["loadBalancer"]["ingress"]
    [{'ip': '2001:db8::'}, {'ip': '192.0.2.10'}]
    >>> lb.owner_of("192.0.2.10"), lb.stats()["IPv4"]["used"]
    ('default/web', 1)
    """

    __slots__ = ("_leak_counts", "_lock", "_pools", "_rng", "_strategy", "_table", "_totals")

    def __init__(
        self, pools: Any, *, strategy: str = "sequential", rng: Random | None = None
    ) -> None:
        if strategy not in STRATEGIES:
            raise InvalidConfigError(
                f"strategy must be one of {STRATEGIES}, got {strategy!r}", value=strategy
            )
        if rng is not None and not isinstance(rng, Random):
            raise InvalidConfigError(f"rng must be a random.Random, got {rng!r}", value=rng)
        self._setup(parse_pools(pools), strategy, rng)

    def _setup(
        self, pools: dict[IPFamily, AddressRanges], strategy: str, rng: Random | None
    ) -> None:
        self._pools, self._strategy, self._rng = pools, strategy, rng or Random()
        self._table = OwnerTable(pools, "key", "load-balancer pool")
        self._lock = threading.RLock()
        self._leak_counts: dict[str, int] = {}
        self._totals = {"allocations": 0, "releases": 0, "exhausted": 0, "taken": 0}
        self._totals |= {"invalid": 0, "static": 0, "dynamic": 0}

    def __repr__(self) -> str:
        pools = "; ".join(f"{f}: {','.join(p.ranges)}" for f, p in self._pools.items())
        return f"LoadBalancerIPAllocator({pools}, strategy={self._strategy!r})<keys={len(self)}>"

    # ------------------------------------------------------------ manifests

    def allocate_service(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``manifest`` with ``status.loadBalancer.ingress`` filled in.

        Only ``type: LoadBalancer`` gets addresses; any other manifest comes
        back as a plain copy and holds nothing. The families are those of
        ``spec.ipFamilies`` (defaulted as for cluster IPs, the requested
        addresses standing for ``clusterIPs`` when neither is given);
        ``ingress`` lists one ``{"ip": ...}`` per family, in that order.
        Allocating a recorded key again returns what it holds if the
        manifest describes it. ``manifest`` is never mutated.

        Raises:
            ServiceValidationError: an invalid manifest, a requested address
                that does not parse, is of no family of the Service or is
                outside the pools (``.field`` names the source, e.g.
                ``spec.loadBalancerIP``), or sources that disagree.
            ClusterIPTakenError: a requested address held by another key.
            AlreadyAllocatedError: the key holds what the manifest does not
                describe.
            PoolExhaustedError: a pool is full (nothing is allocated).

        Complexity:
            O(size of the manifest) plus O(log k) per family for k ranges.

        >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/29"})
        >>> svc = lb.allocate_service({"metadata": {"name": "dns", "annotations":
        ...     {"metallb.universe.tf/loadBalancerIPs": "192.0.2.5"}},
        ...     "spec": {"type": "LoadBalancer"}})
        >>> svc["status"], lb.allocate_service(svc) == svc
        ({'loadBalancer': {'ingress': [{'ip': '192.0.2.5'}]}}, True)
        """
        key, tree = read.read_manifest(manifest)
        name = key.partition("/")[2]
        fields = read.read_fields(read.spec_of(tree, name), name)
        if fields.type != "LoadBalancer":
            return tree
        asked = requested(tree, name)
        if not fields.families and not fields.ips:
            fields = attrs.evolve(fields, ips=tuple(a for *_, a in asked))
        families = it.resolve(fields, self.families, name).families
        wanted: dict[IPFamily, tuple[str, str, int]] = {}
        for field, text, (family, value) in asked:
            if family not in families:
                shown = ", ".join(map(str, families))
                detail = f"an {family} address, but the Service's families are {shown}"
                raise read.invalid(name, field, text, detail)
            wanted[family] = (field, text, value)
        intent = it.Intent(
            it.CLUSTER,
            None,
            families,
            tuple(wanted[f][2] if f in wanted else None for f in families),
        )
        with self._lock:
            held = self._table.get(key)
            if held is None:
                held = self._take(key, families, wanted, name)
            elif not it.describes(intent, held):
                texts = [str(make_address(v, f)) for f, v in held]
                message = f"Service {key!r} holds {texts}, unlike {tree!r}"
                raise AlreadyAllocatedError(message, value=key, owner=key)
        ingress = [{"ip": str(make_address(v, f))} for f, v in held]
        status = dict(read.mapping(tree.get("status"), "status", name))
        status["loadBalancer"] = {"ingress": ingress}
        return {**tree, "status": status}

    def _take(
        self,
        key: str,
        families: tuple[IPFamily, ...],
        wanted: dict[IPFamily, tuple[str, str, int]],
        name: str,
    ) -> tuple[Address, ...]:
        """Take one address per family for ``key`` (requested ones checked first)."""
        slots: dict[IPFamily, int] = {}
        for family, (field, text, value) in wanted.items():
            pool, owner = self._pools[family], self._table.owner((family, value))
            slot = pool.slot_of(value)
            if slot is None:
                self._totals["invalid"] += 1
                detail = f"is not in the {family} load-balancer pool {','.join(pool.ranges)}"
                raise read.invalid(name, field, text, detail)
            if owner is not None:
                self._totals["taken"] += 1
                message = (
                    f"Service {name!r} is invalid: {field}: Invalid value: {text!r}: provided "
                    f"IP is already allocated to {owner!r}"
                )
                raise ClusterIPTakenError(message, field=field, value=text, owner=owner)
            slots[family] = slot
        for family in families:
            if family not in slots and not self._pools[family].free:
                self._totals["exhausted"] += 1
                ranges = ",".join(self._pools[family].ranges)
                message = f"no free {family} load-balancer address in {ranges} for {name!r}"
                raise PoolExhaustedError(message, pool_cidr=ranges)
        held = []
        for family in families:
            pool = self._pools[family]
            if family in slots:
                pool.take(slots[family])
                self._totals["static"] += 1
            else:
                slots[family] = pool.take_next(self._strategy, self._rng)
                self._totals["dynamic"] += 1
            held.append((family, pool.value_at(slots[family])))
        self._totals["allocations"] += len(held)
        self._table.put(key, tuple(held))
        return tuple(held)

    def release_service(self, manifest: Mapping[str, Any]) -> bool:
        """Release what the Service ``manifest`` names holds (by key).

        Raises:
            ServiceValidationError: no valid name or namespace.

        Complexity:
            O(size of the manifest).
        """
        return self.release(read.read_manifest(manifest)[0])

    # ------------------------------------------------------------ by key

    def release(self, key: str) -> bool:
        """Free every address ``key`` holds; False if it holds none.

        Raises:
            InvalidConfigError: ``key`` is not a non-empty str.

        Complexity:
            O(log k) per family for k ranges.

        >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
        >>> _ = lb.occupy("a", ["192.0.2.1"]); lb.release("a"), lb.release("a")
        (True, False)
        """
        check_key(key)
        with self._lock:
            held = self._table.pop(key)
            for family, value in held or ():
                slot = self._pools[family].slot_of(value)
                assert slot is not None
                self._pools[family].give_back(slot)
            self._totals["releases"] += len(held or ())
            return held is not None

    def occupy(self, key: str, ips: Any) -> tuple[netaddr.IPAddress, ...]:
        """Record addresses ``key`` already has (one per family), all or nothing.

        Occupying what ``key`` holds is a no-op.

        Args:
            key: the Service key.
            ips: a list of addresses (str, netaddr, ipaddress) or one
                comma-separated str.

        Returns:
            What ``key`` holds afterwards: what it held, then the new
            addresses in the order given (a Service's ingress order).

        Raises:
            InvalidConfigError: a bad key, no address, or two of a family.
            AddressFormatError: an address that does not parse.
            FamilyNotConfiguredError: a family without a pool.
            NotInRangeError: an address outside its pool.
            AlreadyAllocatedError: an address held by another key (the
                message and ``.owner`` name it), or ``key`` holding another.

        Complexity:
            O(log k) per address for k ranges.

        >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30", "IPv6": "2001:db8::/126"})
        >>> lb.occupy("default/web", "2001:db8::2, 192.0.2.3")
        (IPAddress('2001:db8::2'), IPAddress('192.0.2.3'))
        """
        check_key(key)
        texts = ips.split(",") if isinstance(ips, str) else ips
        if not isinstance(texts, (list, tuple)) or not texts:
            raise InvalidConfigError(f"{key!r}: no address to occupy in {ips!r}", value=ips)
        wanted: dict[IPFamily, int] = {}
        for text in texts:
            value, family = parse_address(text.strip() if isinstance(text, str) else text)
            family = self._table.family(family)
            if family in wanted:
                raise InvalidConfigError(f"{key!r}: two {family} addresses in {ips!r}", value=ips)
            if self._pools[family].slot_of(value) is None:
                shown, ranges = make_address(value, family), ",".join(self._pools[family].ranges)
                raise NotInRangeError(
                    f"{key!r}: {shown} is outside the {family} load-balancer pool {ranges}",
                    value=shown,
                    pool_cidr=ranges,
                )
            wanted[family] = value
        with self._lock:
            new = self._table.claim(key, wanted.items(), self._build, "address")
            held = list(self._table.get(key) or ())
            for family, value in new:
                slot = self._pools[family].slot_of(value)
                assert slot is not None
                self._pools[family].take(slot)
                held.append((family, value))
            if new:
                self._table.put(key, tuple(held))
            return tuple(map(self._build, held))

    def _build(self, address: Address) -> netaddr.IPAddress:
        return make_address(address[1], address[0])

    # ------------------------------------------------------------ reconcile

    def _reconcile_parse(self, value: Any) -> tuple[netaddr.IPAddress, bool]:
        number, family = parse_address(value)
        pool = self._pools.get(family)
        return make_address(number, family), pool is not None and pool.slot_of(number) is not None

    def reconcile(
        self, observed: Mapping[str, Any], *, repair: bool = False, leak_grace: int = 3
    ) -> ReconcileReport:
        """Compare with the truth (Service key -> ingress addresses); see
        :func:`~dualstack_ipam.reconcile.reconcile` for the rules.

        Raises:
            InvalidConfigError: ``leak_grace`` below 1, or a bad ``observed``.
            AddressFormatError: an address that does not parse.

        Complexity:
            O(n + m) for n keys held and m in the truth.

        >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
        >>> lb.reconcile({"default/web": ["192.0.2.2"]}, repair=True).ok, lb.get("default/web")
        (True, (IPAddress('192.0.2.2'),))
        """
        return reconcile_with(self, observed, repair=repair, leak_grace=leak_grace)

    # ------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: the pools, the strategy, key -> addresses.

        Complexity:
            O(n).

        >>> lb = LoadBalancerIPAllocator({"IPv4": "192.0.2.0/30"})
        >>> _ = lb.occupy("default/web", ["192.0.2.2"])
        >>> data = lb.snapshot(); data["services"]
        {'default/web': ['192.0.2.2']}
        >>> LoadBalancerIPAllocator.restore(data).snapshot() == data
        True
        """
        return lb_snapshots.snapshot(self)

    @classmethod
    def restore(cls, data: Any, *, rng: Random | None = None) -> LoadBalancerIPAllocator:
        """Rebuild an allocator from :meth:`snapshot`.

        Raises:
            InvalidConfigError: ``rng`` is not a ``random.Random``.
            SnapshotError: corrupt, of another kind or version, or holdings
                that the pools or the count refuse.

        Complexity:
            O(n).
        """
        return lb_snapshots.restore(cls, data, rng)

    def _check_invariants(self) -> None:
        """Assert the owner table against the pools.

        Complexity:
            O(n) plus the bitmaps' checks.
        """
        with self._lock:

            def allocated(address: Address) -> bool:
                slot = self._pools[address[0]].slot_of(address[1])
                return slot is not None and self._pools[address[0]].is_taken(slot)

            self._table._check_invariants(allocated)
            for family, pool in self._pools.items():
                pool.check_invariants()
                assert pool.used == self._table.count(family), (family, pool.used)
