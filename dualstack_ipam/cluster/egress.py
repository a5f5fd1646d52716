"""Egress: which traffic leaving a pod keeps its address (seed: "Lalu lintas egress").

Pods with publicly routable IPv6 addresses still need masquerading for
destinations outside the cluster; the seed points at ip-masq-agent, which is
dual-stack aware. :func:`masquerade_config` renders its configuration for a
cluster, and :class:`MasqueradePolicy` makes the same decision the agent's
iptables / ip6tables rules make, for both families in one object.

>>> from dualstack_ipam.cluster.config import ClusterConfig
>>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
>>> policy = MasqueradePolicy.from_config(config)
>>> policy.should_masquerade("10.244.3.7"), policy.should_masquerade("2001:db8::1")
(False, True)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import netaddr

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.errors import AddressFormatError, InvalidConfigError
from dualstack_ipam.net import (
    CIDRList,
    IPFamily,
    Net,
    make_network,
    parse_address,
    parse_network,
    split_cidrs,
)

__all__ = ["LINK_LOCAL", "MasqueradePolicy", "masquerade_config"]

LINK_LOCAL: Mapping[IPFamily, netaddr.IPNetwork] = {
    IPFamily.IPv4: netaddr.IPNetwork("169.254.0.0/16"),
    IPFamily.IPv6: netaddr.IPNetwork("fe80::/10"),
}
"""The link-local range of each family, not masqueraded unless asked."""

_RESYNC_INTERVAL = "60s"
_CONFIG_KEYS = frozenset(
    {"nonMasqueradeCIDRs", "masqLinkLocal", "masqLinkLocalIPv6", "resyncInterval"}
)


def _networks(value: Any, what: str) -> list[Net]:
    """A sequence, or one comma-separated str, of networks, parsed; duplicates dropped."""
    items = split_cidrs(value, what)
    nets: list[Net] = []
    seen: set[Net] = set()
    for index, item in enumerate(items):
        try:
            net = parse_network(item)
        except AddressFormatError as exc:
            raise AddressFormatError(f"{what}[{index}]: {exc}", value=item) from None
        if net not in seen:
            seen.add(net)
            nets.append(net)
    return nets


def masquerade_config(
    config: ClusterConfig, *, extra_non_masquerade: CIDRList = ()
) -> dict[str, Any]:
    """The ip-masq-agent configuration for ``config`` (its YAML/JSON shape).

    ``nonMasqueradeCIDRs`` lists the cluster CIDRs, then the Service CIDRs
    (each in configuration order), then ``extra_non_masquerade``, as
    canonical text without duplicates; link-local destinations of both
    families are not masqueraded; the agent re-reads its file every 60 s.

    Raises:
        InvalidConfigError: ``config`` is not a ClusterConfig;
            :class:`AddressFormatError` for an unparseable extra CIDR.

    Complexity:
        O(k) for k CIDRs.

    >>> masquerade_config(ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12"),
    ...                   extra_non_masquerade=["192.168.0.0/16"])
    {'nonMasqueradeCIDRs': ['10.244.0.0/16', 'fc00::/24', '10.96.0.0/12', '192.168.0.0/16'], \
'masqLinkLocal': False, 'masqLinkLocalIPv6': False, 'resyncInterval': '60s'}
    """
    if not isinstance(config, ClusterConfig):
        raise InvalidConfigError(
            f"config must be a ClusterConfig, got {type(config).__name__}", value=config
        )
    nets = _networks([*config.cluster_cidrs, *config.service_cidrs], "cluster CIDRs")
    seen = set(nets)
    for net in _networks(extra_non_masquerade, "extra_non_masquerade"):
        if net not in seen:
            seen.add(net)
            nets.append(net)
    return {
        "nonMasqueradeCIDRs": [str(make_network(*net)) for net in nets],
        "masqLinkLocal": False,
        "masqLinkLocalIPv6": False,
        "resyncInterval": _RESYNC_INTERVAL,
    }


def _intervals(nets: Iterable[Net], family: IPFamily) -> tuple[tuple[int, int], ...]:
    """Sorted, merged ``[first, last]`` intervals of ``family``'s networks."""
    spans = sorted(
        (net.value, net.value | ((1 << (family.width - net.prefixlen)) - 1))
        for net in nets
        if net.family is family
    )
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidConfigError(f"{name} must be a bool, got {value!r}", value=value)
    return value


@attrs.frozen(init=False)
class MasqueradePolicy:
    """ip-masq-agent's decision for traffic leaving a pod, both families at once.

    Args:
        non_masquerade_cidrs: destinations that keep the pod's address, a
            sequence or one comma-separated str, of either family.
        masq_link_local: masquerade traffic to 169.254.0.0/16 too.
        masq_link_local_ipv6: masquerade traffic to fe80::/10 too.

    Attributes:
        non_masquerade_cidrs: tuple of canonical ``netaddr.IPNetwork``, in the
            given order without duplicates.
        masq_link_local, masq_link_local_ipv6: the two flags.

    Equality and hash are on those three values.

    Raises:
        InvalidConfigError: a flag that is not a bool
            (:class:`AddressFormatError` for an unparseable CIDR).

    >>> policy = MasqueradePolicy(["10.0.0.0/8"], masq_link_local=True)
    >>> policy.should_masquerade("10.1.2.3"), policy.should_masquerade("169.254.169.254")
    (False, True)
    """

    non_masquerade_cidrs: tuple[netaddr.IPNetwork, ...]
    masq_link_local: bool
    masq_link_local_ipv6: bool
    # Derived from the three fields, so out of init, eq, hash and repr.
    _keep: dict[IPFamily, tuple[tuple[int, int], ...]] = attrs.field(
        init=False, eq=False, repr=False
    )

    def __init__(
        self,
        non_masquerade_cidrs: CIDRList,
        *,
        masq_link_local: bool = False,
        masq_link_local_ipv6: bool = False,
    ) -> None:
        nets = _networks(non_masquerade_cidrs, "nonMasqueradeCIDRs")
        masq = {
            IPFamily.IPv4: _check_flag(masq_link_local, "masqLinkLocal"),
            IPFamily.IPv6: _check_flag(masq_link_local_ipv6, "masqLinkLocalIPv6"),
        }
        # Link-local ranges join the kept set unless their flag is set; an
        # explicit CIDR is kept whatever the flags say (explicit wins).
        keep_nets = list(nets)
        for family, flag in masq.items():
            if not flag:
                keep_nets.append(parse_network(LINK_LOCAL[family]))
        self.__attrs_init__(
            tuple(make_network(*net) for net in nets),
            masq_link_local,
            masq_link_local_ipv6,
        )
        keep = {family: _intervals(keep_nets, family) for family in IPFamily}
        object.__setattr__(self, "_keep", keep)

    @classmethod
    def from_config(
        cls, config: ClusterConfig, *, extra_non_masquerade: CIDRList = ()
    ) -> MasqueradePolicy:
        """The policy :func:`masquerade_config` describes for ``config``.

        Complexity:
            O(k log k) for k CIDRs.

        >>> policy = MasqueradePolicy.from_config(ClusterConfig("10.244.0.0/16"), \
extra_non_masquerade="192.168.0.0/16")
        >>> [str(net) for net in policy.non_masquerade_cidrs]
        ['10.244.0.0/16', '192.168.0.0/16']
        """
        return cls.from_dict(masquerade_config(config, extra_non_masquerade=extra_non_masquerade))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MasqueradePolicy:
        """Read an ip-masq-agent configuration (as :func:`masquerade_config` writes).

        ``nonMasqueradeCIDRs`` is required; the two link-local flags default
        to False; ``resyncInterval`` is accepted and plays no part here.

        Raises:
            InvalidConfigError: not a mapping, an unknown key, a missing list,
                or a flag that is not a bool.

        Complexity:
            O(k log k) for k CIDRs.

        >>> MasqueradePolicy.from_dict({"nonMasqueradeCIDRs": ["fd00::/8"]}).masq_link_local_ipv6
        False
        """
        if not isinstance(data, Mapping):
            raise InvalidConfigError(
                f"an ip-masq-agent config must be a mapping, got {data!r}", value=data
            )
        unknown = sorted(set(map(str, data)) - _CONFIG_KEYS)
        if unknown:
            raise InvalidConfigError(f"unknown ip-masq-agent config keys {unknown}", value=unknown)
        if not isinstance(data.get("nonMasqueradeCIDRs"), list):
            raise InvalidConfigError(
                "ip-masq-agent config needs a nonMasqueradeCIDRs list, got "
                f"{data.get('nonMasqueradeCIDRs')!r}",
                value=data.get("nonMasqueradeCIDRs"),
            )
        return cls(
            data["nonMasqueradeCIDRs"],
            masq_link_local=data.get("masqLinkLocal", False),
            masq_link_local_ipv6=data.get("masqLinkLocalIPv6", False),
        )

    def to_dict(self) -> dict[str, Any]:
        """This policy in ip-masq-agent's configuration shape.

        Complexity:
            O(k) for k CIDRs.

        >>> MasqueradePolicy("fd00::/8,10.0.0.0/8").to_dict()
        {'nonMasqueradeCIDRs': ['fd00::/8', '10.0.0.0/8'], 'masqLinkLocal': False, \
'masqLinkLocalIPv6': False, 'resyncInterval': '60s'}
        """
        return {
            "nonMasqueradeCIDRs": [str(net) for net in self.non_masquerade_cidrs],
            "masqLinkLocal": self.masq_link_local,
            "masqLinkLocalIPv6": self.masq_link_local_ipv6,
            "resyncInterval": _RESYNC_INTERVAL,
        }

    def should_masquerade(self, dst: Any) -> bool:
        """Whether traffic from a pod to ``dst`` leaves with the node's address.

        False for a destination inside a non-masquerade CIDR (always, even a
        link-local one listed explicitly) and for a link-local destination
        whose flag is unset; True for everything else.

        Raises:
            AddressFormatError: ``dst`` is not an address.

        Complexity:
            O(log k) for k CIDRs.

        >>> policy = MasqueradePolicy(["fc00::/24"])
        >>> policy.should_masquerade("fc00::5"), policy.should_masquerade("fe80::1")
        (False, False)
        >>> policy.should_masquerade("8.8.8.8")
        True
        """
        value, family = parse_address(dst)
        spans = self._keep[family]
        position = bisect_right(spans, (value, 1 << 128)) - 1
        return not (position >= 0 and spans[position][0] <= value <= spans[position][1])
