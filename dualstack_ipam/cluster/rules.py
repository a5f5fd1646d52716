"""Kubernetes' rules for a cluster's ranges, as :class:`ClusterConfig` applies them.

kube-controller-manager and kube-apiserver check the same things whether
the ranges come from flags or, here, from Python: one or two CIDRs per list,
of different families; a node mask between its cluster CIDR's prefix and
the address width. And kube-controller-manager sets aside, at start-up,
every node subnet that overlaps a Service range: :func:`node_subnets`
counts what is left. Messages follow Kubernetes' wording where it refuses
the same thing, and quote the bad value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dualstack_ipam.cluster.flags import CLUSTER_FLAG, FAMILY_MASK_FLAG, SERVICE_FLAG
from dualstack_ipam.errors import AddressFormatError, InvalidConfigError
from dualstack_ipam.net import IPFamily, Net, make_network, parse_network, split_cidrs

__all__ = ["check_cidr_lists", "check_mask", "node_subnets", "parse_cidr_list"]


def parse_cidr_list(value: Any, flag: str) -> list[Net]:
    """Read one list of CIDRs (any form :func:`~dualstack_ipam.net.split_cidrs` takes).

    Raises:
        InvalidConfigError: not a list of CIDRs (see ``split_cidrs``).
        AddressFormatError: an item that does not parse, named as
            ``flag[index]``.

    Complexity:
        O(n) for n items.

    >>> parse_cidr_list("10.0.0.0/8, fd00::/64", "--cluster-cidr")[1].prefixlen
    64
    """
    nets = []
    for index, item in enumerate(split_cidrs(value, flag)):
        try:
            nets.append(parse_network(item))
        except AddressFormatError as exc:
            raise AddressFormatError(f"{flag}[{index}]: {exc}", value=item) from None
    return nets


def _check_pair(nets: list[Net], flag: str, what: str) -> None:
    if len(nets) > 2:
        raise InvalidConfigError(
            f"length of {what} is:{len(nets)} more than max allowed of 2 ({flag}="
            f"{','.join(str(make_network(*n)) for n in nets)})",
            value=tuple(make_network(*n) for n in nets),
        )
    if len(nets) == 2 and nets[0].family is nets[1].family:
        # kube-controller-manager words it as "not configured as dual stack".
        lead = (
            f"len of ClusterCIDRs==2 and they are not configured as dual stack: {flag}[0]"
            if flag == CLUSTER_FLAG
            else f"{flag}[0]"
        )
        raise InvalidConfigError(
            f"{lead} and {flag}[1] must be of different IP family, got "
            f"{str(make_network(*nets[0]))!r} and {str(make_network(*nets[1]))!r} "
            f"(both {nets[0].family})",
            value=tuple(make_network(*n) for n in nets),
        )


def check_cidr_lists(
    cluster_cidrs: Any, service_cidrs: Any, *, from_flags: bool = False
) -> tuple[list[Net], list[Net]]:
    """The cluster CIDRs and Service ranges, parsed and checked.

    Args:
        cluster_cidrs: the ``--cluster-cidr`` list, in any list form.
        service_cidrs: the ``--service-cluster-ip-range`` list; may be empty.
        from_flags: quote a missing cluster CIDR as the flag's value.

    Returns:
        ``(cluster, service)``, each in the given order.

    Raises:
        InvalidConfigError: no cluster CIDR, more than two CIDRs in a list,
            or two of one family (and every error of :func:`parse_cidr_list`).

    Complexity:
        O(n) for n items.

    >>> cluster, service = check_cidr_lists("fc00::/24,10.244.0.0/16", [])
    >>> [net.family for net in cluster], service
    ([<IPFamily.IPv6: 'IPv6'>, <IPFamily.IPv4: 'IPv4'>], [])
    """
    cluster = parse_cidr_list(cluster_cidrs, CLUSTER_FLAG)
    service = parse_cidr_list(service_cidrs, SERVICE_FLAG)
    if not cluster:
        # Checked first: the mask rules need the cluster's families.
        shown = f"{CLUSTER_FLAG}={cluster_cidrs!r}" if from_flags else repr(cluster_cidrs)
        raise InvalidConfigError(
            f"{CLUSTER_FLAG} is required: give one cluster CIDR, or two of different "
            f"families for dual-stack (got {shown})",
            value=cluster_cidrs,
        )
    _check_pair(cluster, CLUSTER_FLAG, "clusterCIDRs")
    _check_pair(service, SERVICE_FLAG, "serviceClusterIPRanges")
    return cluster, service


def check_mask(mask: Any, family: IPFamily, cluster: Net) -> int:
    """``mask`` if it is a valid node mask for the cluster CIDR ``cluster``.

    Raises:
        InvalidConfigError: not an int, shorter than the cluster CIDR's
            prefix, or longer than the family's address width.

    Complexity:
        O(1).

    >>> check_mask(24, IPFamily.IPv4, parse_network("10.244.0.0/16"))
    24
    """
    if isinstance(mask, bool) or not isinstance(mask, int):
        raise InvalidConfigError(
            f"{FAMILY_MASK_FLAG[family]} must be an integer, got {mask!r}", value=mask
        )
    if mask < cluster.prefixlen:
        raise InvalidConfigError(
            f"mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size "
            f"configured for CIDR family: {family} node mask {mask!r} is shorter than "
            f"cluster CIDR {str(make_network(*cluster))!r}",
            value=mask,
        )
    if mask > family.width:
        raise InvalidConfigError(
            f"{family} node mask {mask!r} is longer than the {family.width}-bit address width",
            value=mask,
        )
    return mask


def _set_aside(cluster: Net, mask: int, services: Iterable[Net]) -> int:
    """Subnets of ``cluster`` (cut at ``mask``) that overlap a Service range."""
    width = cluster.family.width
    shift = width - mask
    total = 1 << (mask - cluster.prefixlen)
    for service in services:
        if service.family is not cluster.family:
            continue
        if service.prefixlen <= cluster.prefixlen:
            covers = (cluster.value >> (width - service.prefixlen)) == (
                service.value >> (width - service.prefixlen)
            )
            if covers:
                return total
            continue
        last = service.value | ((1 << (width - service.prefixlen)) - 1)
        same = service.value >> (width - cluster.prefixlen) == cluster.value >> (
            width - cluster.prefixlen
        )
        if same:
            # One Service range per family, so there is never a union to take.
            return (last >> shift) - (service.value >> shift) + 1
    return 0


def node_subnets(cluster: Net, mask: int, services: Iterable[Net]) -> int:
    """Node subnets of ``cluster`` cut at ``mask``, less those a Service range overlaps.

    kube-controller-manager occupies every node subnet that overlaps a
    Service range at start-up, so none of them is ever handed to a node.

    Args:
        cluster: the cluster CIDR of one family.
        mask: the node mask of that family (not shorter than its prefix).
        services: the Service ranges, at most one per family; those of the
            other family are ignored.

    Complexity:
        O(1) (at most two Service ranges).

    >>> node_subnets(parse_network("10.0.0.0/16"), 24, [parse_network("10.0.0.0/20")])
    240
    """
    return (1 << (mask - cluster.prefixlen)) - _set_aside(cluster, mask, services)
