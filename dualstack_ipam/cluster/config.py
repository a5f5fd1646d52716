"""ClusterConfig: the dual-stack settings of a cluster, from flags and back.

The seed page configures dual-stack through component flags::

    kube-controller-manager --feature-gates="IPv6DualStack=true" \\
        --cluster-cidr=10.244.0.0/16,fc00::/24 \\
        --service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/112

:class:`ClusterConfig` is that configuration as a frozen value: parsed once,
validated with kube-controller-manager's and kube-apiserver's rules, and
rendered back (:meth:`ClusterConfig.component_flags`) so that
``ClusterConfig.from_flags(flags["kube-controller-manager"]) == config``.

>>> config = ClusterConfig.from_flags(
...     ["--cluster-cidr=10.244.0.0/16,fc00::/24", '--feature-gates="IPv6DualStack=true"'])
>>> config.families
(<IPFamily.IPv4: 'IPv4'>, <IPFamily.IPv6: 'IPv6'>)
>>> config.max_nodes
256
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import netaddr

from dualstack_ipam.cluster.flags import (
    check_dual_stack,
    mask_sizes,
    read_cluster_flags,
    render_flags,
)
from dualstack_ipam.cluster.rules import check_cidr_lists, check_mask, node_subnets
from dualstack_ipam.errors import FamilyNotConfiguredError, InvalidConfigError, SnapshotError
from dualstack_ipam.net import CIDRList, IPFamily, Net, make_network, parse_family

if TYPE_CHECKING:
    from dualstack_ipam.forecast import Forecast

__all__ = ["DEFAULT_NODE_MASK", "ClusterConfig"]

DEFAULT_NODE_MASK: Mapping[IPFamily, int] = {IPFamily.IPv4: 24, IPFamily.IPv6: 64}
"""kube-controller-manager's default node mask per family (/24 and /64)."""

_DICT_KEYS = frozenset({"cluster_cidrs", "service_cidrs", "node_mask_ipv4", "node_mask_ipv6"})


@attrs.frozen(init=False)
class ClusterConfig:
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

    # -- flags ------------------------------------------------------------

    @classmethod
    def from_flags(cls, argv: Sequence[str], *, ignore_unknown: bool = False) -> ClusterConfig:
        """Parse kube-controller-manager style flags (the seed's flags).

        Accepted: ``--cluster-cidr`` (required), ``--service-cluster-ip-range``,
        ``--node-cidr-mask-size``, ``--node-cidr-mask-size-ipv4``,
        ``--node-cidr-mask-size-ipv6``, ``--allocate-node-cidrs`` (a boolean
        that may stand bare; its value is checked, then ignored: this library
        exists to allocate node CIDRs) and ``--feature-gates``. Each as
        ``--flag=value`` or ``--flag value``, the value optionally in one pair
        of quotes (``--feature-gates="IPv6DualStack=true"``). The last of a
        repeated flag wins. Feature gates other than ``IPv6DualStack`` are
        ignored; an absent ``IPv6DualStack`` counts as true (GA, locked on).

        Mask rules are kube-controller-manager's: ``--node-cidr-mask-size``
        sets the mask of a single-stack cluster and is refused with a
        dual-stack cluster CIDR or with the per-family flags; a per-family
        flag for a family the cluster lacks is refused. A mask value of 0 is
        taken literally (Kubernetes reads it as "unset").

        With ``ignore_unknown=True`` the flags this library does not read are
        skipped, so a whole kube-controller-manager command line can be
        given; an unknown flag in ``--flag value`` form takes the next token
        as its value when that token does not start with ``--``.

        Raises:
            InvalidConfigError: an unknown flag (unless ``ignore_unknown``),
                a stray argument, a missing, empty or malformed value,
                ``IPv6DualStack=false`` with two CIDRs in a list, and every
                rule of the constructor.

        Complexity:
            O(len(argv)).

        >>> ClusterConfig.from_flags(["--cluster-cidr", "10.0.0.0/8", "--node-cidr-mask-size=20"])
        ClusterConfig(cluster_cidrs=(IPNetwork('10.0.0.0/8'),), service_cidrs=(), \
node_mask_ipv4=20, node_mask_ipv6=64)
        >>> ClusterConfig.from_flags(
        ...     ["--v", "2", "--leader-elect", "--cluster-cidr=fd00::/48"], ignore_unknown=True
        ... ).cluster_cidrs
        (IPNetwork('fd00::/48'),)
        """
        values, dual_stack = read_cluster_flags(argv, ignore_unknown=ignore_unknown)
        cluster, service = check_cidr_lists(
            values["cluster-cidr"], values.get("service-cluster-ip-range", ""), from_flags=True
        )
        check_dual_stack(values, dual_stack, len(cluster), len(service))
        masks = mask_sizes(values, [net.family for net in cluster])
        return cls(
            [make_network(*net) for net in cluster],
            [make_network(*net) for net in service],
            node_mask_ipv4=masks.get(IPFamily.IPv4, DEFAULT_NODE_MASK[IPFamily.IPv4]),
            node_mask_ipv6=masks.get(IPFamily.IPv6, DEFAULT_NODE_MASK[IPFamily.IPv6]),
        )

    def component_flags(self, *, feature_gate: bool = False) -> dict[str, list[str]]:
        """The flags the seed lists, per component, for this configuration.

        Keys: ``kube-controller-manager``, ``kube-apiserver``, ``kubelet``,
        ``kube-proxy``. CIDR lists are comma-joined in configuration order, in
        canonical text. With ``feature_gate=True`` every component first gets
        ``--feature-gates=IPv6DualStack=true`` (Kubernetes 1.16-1.22; later
        releases reject the gate, hence off by default).

        Complexity:
            O(1).

        >>> flags = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12").component_flags()
        >>> flags["kube-controller-manager"]
        ['--allocate-node-cidrs=true', '--cluster-cidr=10.244.0.0/16,fc00::/24', \
'--service-cluster-ip-range=10.96.0.0/12', '--node-cidr-mask-size-ipv4=24', \
'--node-cidr-mask-size-ipv6=64']
        >>> flags["kube-proxy"]
        ['--proxy-mode=ipvs', '--cluster-cidr=10.244.0.0/16,fc00::/24']
        >>> ClusterConfig.from_flags(flags["kube-controller-manager"]) == ClusterConfig(
        ...     "10.244.0.0/16,fc00::/24", "10.96.0.0/12")
        True
        """
        masks = {family: self.node_mask(family) for family in self.families}
        return render_flags(
            self.cluster_cidrs, self.service_cidrs, masks, feature_gate=feature_gate
        )

    # -- JSON -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """This configuration as a JSON-ready dict (used inside snapshots).

        Keys: ``cluster_cidrs`` and ``service_cidrs`` (lists of canonical CIDR
        text, in order), ``node_mask_ipv4`` and ``node_mask_ipv6`` (ints).
        :meth:`from_dict` reads it back to an equal configuration.

        Complexity:
            O(1).

        >>> ClusterConfig("fd00::/48", node_mask_ipv6=56).to_dict()
        {'cluster_cidrs': ['fd00::/48'], 'service_cidrs': [], 'node_mask_ipv4': 24, \
'node_mask_ipv6': 56}
        """
        return {
            "cluster_cidrs": [str(net) for net in self.cluster_cidrs],
            "service_cidrs": [str(net) for net in self.service_cidrs],
            "node_mask_ipv4": self.node_mask_ipv4,
            "node_mask_ipv6": self.node_mask_ipv6,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ClusterConfig:
        """Rebuild a configuration written by :meth:`to_dict`.

        Only CIDR text and ints are accepted, exactly the four keys, and the
        result must pass every validation rule.

        Raises:
            SnapshotError: not a mapping, a key missing or unknown, a value of
                the wrong type, or a configuration that does not validate.

        Complexity:
            O(1).

        >>> config = ClusterConfig("10.244.0.0/16,fc00::/24")
        >>> ClusterConfig.from_dict(config.to_dict()) == config
        True
        """
        if not isinstance(data, Mapping):
            raise SnapshotError(f"a ClusterConfig must be a mapping, got {type(data).__name__}")
        if data.keys() != _DICT_KEYS:
            raise SnapshotError(
                f"a ClusterConfig needs exactly the keys {sorted(_DICT_KEYS)}, "
                f"got {sorted(map(str, data.keys()))}"
            )
        for key in ("cluster_cidrs", "service_cidrs"):
            items = data[key]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise SnapshotError(
                    f"ClusterConfig field {key!r} must be a list of str, got {items!r}"
                )
        for key in ("node_mask_ipv4", "node_mask_ipv6"):
            if isinstance(data[key], bool) or not isinstance(data[key], int):
                raise SnapshotError(
                    f"ClusterConfig field {key!r} must be an int, got {data[key]!r}"
                )
        try:
            return cls(
                data["cluster_cidrs"],
                data["service_cidrs"],
                node_mask_ipv4=data["node_mask_ipv4"],
                node_mask_ipv6=data["node_mask_ipv6"],
            )
        except InvalidConfigError as exc:
            raise SnapshotError(f"invalid ClusterConfig in snapshot: {exc}") from None

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
