"""ClusterConfig's codec: kube-controller-manager flags and a JSON dict, both ways.

:class:`ConfigCodec` is the part of :class:`~dualstack_ipam.ClusterConfig`
that reads and writes a configuration in the forms it travels in: the
component flags the seed page lists (:meth:`~ConfigCodec.from_flags`,
:meth:`~ConfigCodec.component_flags`, with the flag rules in
:mod:`~dualstack_ipam.cluster.flags`) and the dict inside snapshots
(:meth:`~ConfigCodec.to_dict`, :meth:`~ConfigCodec.from_dict`). Both read
back to an equal configuration, checked by the constructor's rules.

>>> from dualstack_ipam import ClusterConfig
>>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12")
>>> ClusterConfig.from_flags(config.component_flags()["kube-controller-manager"]) == config
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

import netaddr

from dualstack_ipam.cluster.flags import (
    check_dual_stack,
    mask_sizes,
    read_cluster_flags,
    render_flags,
)
from dualstack_ipam.cluster.rules import check_cidr_lists
from dualstack_ipam.errors import InvalidConfigError, SnapshotError
from dualstack_ipam.net import IPFamily, make_network

__all__ = ["ConfigCodec"]

_DICT_KEYS = frozenset({"cluster_cidrs", "service_cidrs", "node_mask_ipv4", "node_mask_ipv6"})


class ConfigCodec:
    """The flags and JSON forms of :class:`~dualstack_ipam.ClusterConfig` (its base).

    A subclass has the configuration's fields and queries, and a
    constructor taking ``(cluster_cidrs, service_cidrs, *, node_mask_ipv4,
    node_mask_ipv6)``.
    """

    __slots__ = ()
    cluster_cidrs: tuple[netaddr.IPNetwork, ...]
    service_cidrs: tuple[netaddr.IPNetwork, ...]
    node_mask_ipv4: int
    node_mask_ipv6: int

    if TYPE_CHECKING:  # ClusterConfig's, which the methods below build and read

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...
        @property
        def families(self) -> tuple[IPFamily, ...]: ...
        def node_mask(self, family: IPFamily | str) -> int: ...

    # -- flags ------------------------------------------------------------

    @classmethod
    def from_flags(cls, argv: Sequence[str], *, ignore_unknown: bool = False) -> Self:
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

        >>> from dualstack_ipam import ClusterConfig
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
        # A family no mask flag sets keeps the constructor's default mask.
        masks = {
            f"node_mask_{family.name.lower()}": mask
            for family, mask in mask_sizes(values, [net.family for net in cluster]).items()
        }
        return cls(
            [make_network(*net) for net in cluster],
            [make_network(*net) for net in service],
            **masks,
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

        >>> from dualstack_ipam import ClusterConfig
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

        >>> from dualstack_ipam import ClusterConfig
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
    def from_dict(cls, data: Any) -> Self:
        """Rebuild a configuration written by :meth:`to_dict`.

        Only CIDR text and ints are accepted, exactly the four keys, and the
        result must pass every validation rule.

        Raises:
            SnapshotError: not a mapping, a key missing or unknown, a value of
                the wrong type, or a configuration that does not validate.

        Complexity:
            O(1).

        >>> from dualstack_ipam import ClusterConfig
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
