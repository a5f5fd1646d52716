"""The manifest API of ServiceIPAllocator: create, update and delete a Service.

Each call reads the manifest in stages (:mod:`~dualstack_ipam.services.read`,
:mod:`~dualstack_ipam.services.intent`, :mod:`~dualstack_ipam.services.update`),
takes or gives back addresses under the allocator's lock
(:mod:`~dualstack_ipam.services.take`), and renders the returned manifest
(:mod:`~dualstack_ipam.services.render`). The manifest API shares the owner
table with the seed's ``allocate(key, family, ip)``: a Service's key is
``namespace/name``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import netaddr

from dualstack_ipam.errors import AlreadyAllocatedError
from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import KeyedAllocator
from dualstack_ipam.owners.controls import AllocatorControls
from dualstack_ipam.pools.multi import MultiServiceIPPool
from dualstack_ipam.pools.service_ips import ServiceIPPool
from dualstack_ipam.services import intent as it
from dualstack_ipam.services import read
from dualstack_ipam.services.render import render
from dualstack_ipam.services.service_snapshots import text as _text
from dualstack_ipam.services.take import release_all, take_all
from dualstack_ipam.services.update import (
    check_kept,
    check_old,
    check_unchanged,
    read_new,
    read_old,
    resolve_update,
)

__all__ = ["ServiceManifests"]


class ServiceManifests(AllocatorControls, KeyedAllocator[netaddr.IPAddress]):
    """``allocate_service``, ``update_service``, ``release_service`` (a mixin).

    A subclass has ``_pools`` (family -> :class:`ServiceIPPool`, or a
    :class:`~dualstack_ipam.pools.multi.MultiServiceIPPool` once a range was
    added; primary first) besides what its bases need, and releases a key
    in ``release``.

    >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
    >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
    >>> alloc.release_service(alloc.allocate_service({"metadata": {"name": "web"}}))
    True
    """

    __slots__ = ()
    _pools: dict[IPFamily, ServiceIPPool | MultiServiceIPPool]

    def release(self, key: str) -> bool:
        raise NotImplementedError

    def _routed(self, wanted: Iterable[tuple[IPFamily, int | None]]) -> Mapping[IPFamily, Any]:
        """The pools a call's transaction (:mod:`~dualstack_ipam.services.take`) works on.

        A grown family's entry is a composite; a requested address that
        lies in one of its ranges is taken from that range's own pool, so
        that the transaction's checks (usable in the range, reserved) read
        that range. A dynamic address, or one outside every range, is the
        composite's: it offers what the transaction asks of a pool then
        (``free``, ``cooling``, ``cooldown``, ``cidr``, ``allocate_next``,
        ``allocate``), and an address outside every range is outside its
        first range too, so the check refuses it. Without a grown family
        this is ``_pools`` itself.

        Complexity:
            O(1) per family (O(log k) for k ranges of a grown one).
        """
        pools = self._pools
        if not any(isinstance(pool, MultiServiceIPPool) for pool in pools.values()):
            return pools
        routed: dict[IPFamily, Any] = dict(pools)
        for family, value in wanted:
            pool = pools.get(family)
            if isinstance(pool, MultiServiceIPPool) and value is not None:
                part = pool.part_holding(value)
                if part is not None:
                    routed[family] = part
        return routed

    def allocate_service(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Service: a copy of ``manifest`` with its cluster IPs filled in.

        The returned ``spec`` carries ``clusterIP``, ``clusterIPs``,
        ``ipFamilies`` and ``ipFamilyPolicy`` as the API server defaults them
        (none for ``ExternalName``). Headless and ExternalName Services get no
        address and are not recorded. Creating a recorded key again returns
        its allocation if the manifest describes it. ``manifest`` is never
        mutated.

        Raises:
            ServiceValidationError: an invalid manifest (one that is not plain
                data too), or a requested IP out of range (``.field`` is the
                path: ``spec.clusterIPs[1]``).
            ClusterIPTakenError: a requested IP is held by another key.
            AlreadyAllocatedError: the key holds an allocation the manifest
                does not describe.
            PoolExhaustedError: a range is full (nothing is allocated).

        Complexity:
            O(size of the manifest) plus O(1) amortised per family.

        >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
        >>> svc = alloc.allocate_service({"metadata": {"name": "db"},
        ...                               "spec": {"clusterIP": "10.96.0.7"}})
        >>> {k: svc["spec"][k] for k in ("clusterIPs", "ipFamilies", "ipFamilyPolicy")}
        {'clusterIPs': ['10.96.0.7'], 'ipFamilies': ['IPv4'], 'ipFamilyPolicy': 'SingleStack'}
        """
        key, result = read.read_manifest(manifest)
        name = key.partition("/")[2]
        fields = read.read_fields(read.spec_of(result, name), name)
        intent = it.resolve(fields, tuple(self._pools), name)
        with self._counting(), self._lock:
            held = self._table.get(key)
            if held is None and intent.kind == it.CLUSTER:
                held = take_all(
                    cast("Mapping[IPFamily, ServiceIPPool]", self._routed(it.addresses(intent))),
                    self._table,
                    intent,
                    0,
                    name,
                )
                self._table.put(key, held)
            elif held is not None and not it.describes(intent, held):
                message = f"Service {key!r} holds {[_text(a) for a in held]}, unlike {result!r}"
                raise AlreadyAllocatedError(message, value=key, owner=key)
        return render(result, intent, [_text(a) for a in held or ()])

    def update_service(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
        """Update a Service from ``old`` (what this allocator holds) to ``new``.

        Omitted fields of ``new`` are inherited from ``old``: absent or None,
        and ``clusterIP: ""``, ``clusterIPs: []`` or ``ipFamilies: []`` (so
        resubmitted YAML keeps a headless Service headless and a ClusterIP one
        its addresses). ``clusterIPs[0]`` and ``ipFamilies[0]`` are immutable;
        a second family is added with a dual-stack policy and dropped (and
        released) only with ``SingleStack``; a change to ``ExternalName``
        releases the addresses, one from it allocates. Neither argument is
        mutated.

        Raises:
            ServiceValidationError: ``old`` is not what the key holds (its
                message starts with "old manifest" when ``old`` itself is
                invalid), ``new`` is not a mapping of plain data, the name or
                namespace changes, or an update rule is broken.
            ClusterIPTakenError, PoolExhaustedError: as :meth:`allocate_service`.

        Complexity:
            O(size of the manifests) plus O(1) amortised per family.

        >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16,fc00::/24",
        ...     "10.96.0.0/24,fd00::/120"), strategy="sequential")
        >>> old = alloc.allocate_service({"metadata": {"name": "web"}})
        >>> new = alloc.update_service(old, {"spec": {"ipFamilyPolicy": "RequireDualStack"}})
        >>> new["spec"]["clusterIPs"], alloc.get("default/web")
        (['10.96.0.17', 'fd00::11'], (IPAddress('10.96.0.17'), IPAddress('fd00::11')))
        """
        key, old_tree, before = read_old(old)
        name = key.partition("/")[2]
        merged = read_new(old_tree, new, name)
        spec = read.spec_of(merged, name)
        with self._counting(), self._lock:
            held = self._table.get(key) or ()
            check_old(key, before, held)
            check_unchanged(before, read.spec_of(old_tree, name), spec, name)
            base = None if before.kind == it.EXTERNAL else before
            after = resolve_update(read.read_fields(spec, name), tuple(self._pools), base, name)
            check_kept(after, held, name)
            kept = held[: len(after.requested)]
            routed = cast("Mapping[IPFamily, ServiceIPPool]", self._routed(it.addresses(after)))
            added = (
                take_all(routed, self._table, after, len(kept), name)
                if after.kind == it.CLUSTER
                else ()
            )
            release_all(routed, held[len(kept) :])
            self._table.put(key, kept + added)
        return render(merged, after, [_text(a) for a in kept + added])

    def release_service(self, manifest: Mapping[str, Any]) -> bool:
        """Release the addresses of the Service ``manifest`` names (by key).

        Raises:
            ServiceValidationError: no valid ``metadata.name`` / namespace,
                or not plain data (as :meth:`allocate_service` refuses).

        Complexity:
            O(size of the manifest).

        >>> from dualstack_ipam import ClusterConfig, ServiceIPAllocator
        >>> alloc = ServiceIPAllocator(ClusterConfig("10.244.0.0/16", "10.96.0.0/24"))
        >>> svc = alloc.allocate_service({"metadata": {"name": "web"}})
        >>> alloc.release_service(svc), alloc.release_service(svc)
        (True, False)
        """
        return self.release(read.read_manifest(manifest)[0])
