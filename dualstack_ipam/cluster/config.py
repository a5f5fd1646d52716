"""ClusterConfig: the dual-stack settings of a cluster, from flags and back.

The seed page configures dual-stack through component flags::

    kube-controller-manager --feature-gates="IPv6DualStack=true" \\
        --cluster-cidr=10.244.0.0/16,fc00::/24 \\
        --service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112

:class:`ClusterConfig` is that configuration as a frozen value: parsed once,
validated with kube-controller-manager's and kube-apiserver's rules, and
rendered back (:meth:`ClusterConfig.component_flags`) so that
``ClusterConfig.from_flags(flags["kube-controller-manager"]) == config``.
Those two and the JSON form (``to_dict`` / ``from_dict``) are its base class,
:class:`~dualstack_ipam.cluster.config_codec.ConfigCodec`; this module holds
the value, its validation and the queries.

>>> config = ClusterConfig.from_flags(
...     ["--cluster-cidr=10.244.0.0/16,fc00::/24", '--feature-gates="IPv6DualStack=true"'])
>>> config.families
(<IPFamily.IPv4: 'IPv4'>, <IPFamily.IPv6: 'IPv6'>)
>>> config.max_nodes
256
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import netaddr

from dualstack_ipam.cluster.config_codec import ConfigCodec
from dualstack_ipam.cluster.rules import check_cidr_lists, check_mask, node_subnets
from dualstack_ipam.errors import FamilyNotConfiguredError
from dualstack_ipam.net import CIDRList, IPFamily, Net, make_network, parse_family

if TYPE_CHECKING:
    from dualstack_ipam.forecast import Forecast

__all__ = ["DEFAULT_NODE_MASK", "ClusterConfig"]

DEFAULT_NODE_MASK: Mapping[IPFamily, int] = {IPFamily.IPv4: 24, IPFamily.IPv6: 64}
"""kube-controller-manager's default node mask per family (/24 and /64)."""


@attrs.frozen(init=False)
class ClusterConfig(ConfigCodec):
    """The dual-stack settings of a cluster (frozen, hashable, comparable).

    Args:
        cluster_cidrs: the pod networks, primary first: a list or tuple, one
            network object, or one comma-separated string like
            ``--cluster-cidr`` takes (:func:`~dualstack_ipam.net.split_cidrs`;
            sets, mappings, iterators and netaddr ``IPRange`` / ``IPSet`` /
            ``IPGlob`` are refused). Elements are anything
            :func:`~dualstack_ipam.net.parse_network` accepts; host bits are
            dropped as Kubernetes does.
        service_cidrs: the Service ranges, same forms; may be empty.
        node_mask_ipv4: prefix length of each node's IPv4 pod CIDR.
        node_mask_ipv6: prefix length of each node's IPv6 pod CIDR.

    Attributes:
        cluster_cidrs: tuple of canonical ``netaddr.IPNetwork``, primary first.
        service_cidrs: tuple of canonical ``netaddr.IPNetwork``.
        node_mask_ipv4, node_mask_ipv6: the node masks.

    Equality and hash are on the canonical values. The node mask of a family
    the cluster does not have is meaningless, so it is stored as its default
    (24 / 64): ``ClusterConfig("10.0.0.0/8", node_mask_ipv6=80) ==
    ClusterConfig("10.0.0.0/8")``.

    Service ranges may be of a family the cluster CIDRs do not have, and may
    lie inside a cluster CIDR (their node subnets are then set aside); neither
    is checked by Kubernetes, so neither is refused here. No limit on the
    Service range size.

    Raises:
        InvalidConfigError: a list in a form that is not a list of CIDRs,
            zero or more than two cluster CIDRs, more than two Service CIDRs,
            two CIDRs of one family in a list, a node mask shorter than its
            cluster CIDR's prefix or longer than the family width
            (:class:`AddressFormatError` for unparseable CIDRs or a scope id).

    >>> ClusterConfig("10.244.0.0/16,fc00::/24", ["10.96.0.0/12"])
    ClusterConfig(cluster_cidrs=(IPNetwork('10.244.0.0/16'), IPNetwork('fc00::/24')), \
service_cidrs=(IPNetwork('10.96.0.0/12'),), node_mask_ipv4=24, node_mask_ipv6=64)
    """

    cluster_cidrs: tuple[netaddr.IPNetwork, ...]
    service_cidrs: tuple[netaddr.IPNetwork, ...]
    node_mask_ipv4: int
    node_mask_ipv6: int
    # Parsed forms for the queries; derived, so out of init, eq, hash and repr.
    _cluster: dict[IPFamily, Net] = attrs.field(init=False, eq=False, repr=False)
    _service: dict[IPFamily, Net] = attrs.field(init=False, eq=False, repr=False)

    def __init__(
        self,
        cluster_cidrs: CIDRList,
        service_cidrs: CIDRList = (),
        *,
        node_mask_ipv4: int = 24,
        node_mask_ipv6: int = 64,
    ) -> None:
        cluster, service = check_cidr_lists(cluster_cidrs, service_cidrs)
        by_family = {net.family: net for net in cluster}
        masks = dict(DEFAULT_NODE_MASK)
        for family, mask in ((IPFamily.IPv4, node_mask_ipv4), (IPFamily.IPv6, node_mask_ipv6)):
            if family in by_family:
                masks[family] = check_mask(mask, family, by_family[family])
        self.__attrs_init__(
            tuple(make_network(*net) for net in cluster),
            tuple(make_network(*net) for net in service),
            masks[IPFamily.IPv4],
            masks[IPFamily.IPv6],
        )
        object.__setattr__(self, "_cluster", by_family)
        object.__setattr__(self, "_service", {net.family: net for net in service})

    # -- queries ----------------------------------------------------------

    @property
    def families(self) -> tuple[IPFamily, ...]:
        """The cluster's families, primary first (the order of ``cluster_cidrs``).

        Complexity:
            O(1).

        >>> ClusterConfig("fc00::/24,10.244.0.0/16").families
        (<IPFamily.IPv6: 'IPv6'>, <IPFamily.IPv4: 'IPv4'>)
        """
        return tuple(self._cluster)

    @property
    def primary_family(self) -> IPFamily:
        """The family of the first cluster CIDR.

        Complexity:
            O(1).

        >>> ClusterConfig("fc00::/24,10.244.0.0/16").primary_family
        <IPFamily.IPv6: 'IPv6'>
        """
        return next(iter(self._cluster))

    @property
    def is_dual_stack(self) -> bool:
        """True when the cluster has CIDRs of both families.

        Complexity:
            O(1).

        >>> ClusterConfig("10.244.0.0/16").is_dual_stack
        False
        """
        return len(self._cluster) == 2

    @property
    def service_families(self) -> tuple[IPFamily, ...]:
        """The families of the Service ranges, in configuration order.

        Complexity:
            O(1).

        >>> ClusterConfig("10.244.0.0/16", "fd00:10:96::/112,10.96.0.0/12").service_families
        (<IPFamily.IPv6: 'IPv6'>, <IPFamily.IPv4: 'IPv4'>)
        """
        return tuple(self._service)

    def cluster_cidr(self, family: IPFamily | str) -> netaddr.IPNetwork:
        """The cluster CIDR of ``family``.

        Raises:
            FamilyNotConfiguredError: the cluster has no CIDR of that family.

        Complexity:
            O(1).

        >>> ClusterConfig("10.244.0.0/16,fc00::/24").cluster_cidr("IPv6")
        IPNetwork('fc00::/24')
        """
        return make_network(*self._net(self._cluster, family, "cluster CIDR"))

    def service_cidr(self, family: IPFamily | str) -> netaddr.IPNetwork:
        """The Service range of ``family``.

        Raises:
            FamilyNotConfiguredError: no Service range of that family.

        Complexity:
            O(1).

        >>> ClusterConfig("10.244.0.0/16", "10.96.0.0/12").service_cidr("IPv4")
        IPNetwork('10.96.0.0/12')
        """
        return make_network(*self._net(self._service, family, "Service range"))

    def node_mask(self, family: IPFamily | str) -> int:
        """The prefix length of a node's pod CIDR of ``family``.

        Raises:
            FamilyNotConfiguredError: the cluster has no CIDR of that family.

        Complexity:
            O(1).

        >>> ClusterConfig("10.244.0.0/16,fc00::/24").node_mask("IPv6")
        64
        """
        fam = self._net(self._cluster, family, "cluster CIDR").family
        return self.node_mask_ipv4 if fam is IPFamily.IPv4 else self.node_mask_ipv6

    def node_capacity(self, family: IPFamily | str) -> int:
        """Node subnets of ``family`` left after setting aside Service ranges.

        A Service range inside the cluster CIDR takes every node subnet it
        overlaps (kube-controller-manager occupies them at start-up).

        Raises:
            FamilyNotConfiguredError: the cluster has no CIDR of that family.

        Complexity:
            O(1).

        >>> ClusterConfig("10.0.0.0/16", "10.0.0.0/20").node_capacity("IPv4")
        240
        """
        cluster = self._net(self._cluster, family, "cluster CIDR")
        return node_subnets(cluster, self.node_mask(cluster.family), self._service.values())

    @property
    def max_nodes(self) -> int:
        """Nodes that can get a pod CIDR of every family.

        The minimum of :meth:`node_capacity` over the families.

        Complexity:
            O(1).

        >>> ClusterConfig("10.244.0.0/16,fc00::/24", "10.244.0.0/20").max_nodes
        240
        """
        return min(self.node_capacity(family) for family in self._cluster)

    def forecast(
        self,
        *,
        nodes_per_day: int | float = 0,
        services_per_day: int | float | Mapping[Any, int | float] = 0,
        now: datetime.date | None = None,
        used: Any = None,
    ) -> Forecast:
        """When each node and Service range runs out at constant rates per day.

        :func:`dualstack_ipam.forecast.forecast` on this cluster, which
        documents the arguments and the linear model: a number for
        ``services_per_day`` counts Services of the primary Service family,
        a mapping gives a rate by family; ``used`` counts what is held now
        (allocators, or ``show --json``'s ``usage``); a rate of 0 is "never".

        Raises:
            InvalidConfigError: a bad rate, ``now`` or ``used``.
            FamilyNotConfiguredError: a rate or count for a missing range.

        Complexity:
            O(1) (at most four ranges).

        >>> import datetime
        >>> result = ClusterConfig("10.0.0.0/16", "10.96.0.0/24").forecast(
        ...     nodes_per_day=16, services_per_day=0, now=datetime.date(2026, 1, 1))
        >>> [entry.when for entry in result]
        ['2026-01-17', 'never']
        """
        # Deferred: the forecast module imports this one.
        from dualstack_ipam.forecast import forecast

        return forecast(
            self,
            nodes_per_day=nodes_per_day,
            services_per_day=services_per_day,
            now=now,
            used=used,
        )

    def _net(self, table: dict[IPFamily, Net], family: IPFamily | str, what: str) -> Net:
        fam = parse_family(family)
        try:
            return table[fam]
        except KeyError:
            raise FamilyNotConfiguredError(
                f"the cluster has no {fam} {what} (configured: "
                f"{', '.join(str(f) for f in table) or 'none'})",
                family=fam,
            ) from None
