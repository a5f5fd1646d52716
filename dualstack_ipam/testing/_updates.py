"""Edits of a created Service, as ``kubectl edit`` sends them, for the state machine.

Each edit changes one thing of a manifest the allocator returned (its type,
``ipFamily``, ``ipFamilyPolicy``, ``ipFamilies``, ``clusterIP`` /
``clusterIPs``, name or namespace) and knows the fields Kubernetes may
report when it refuses the change: the changed field, and the fields its
cross-field rules tie to it. Nothing else may be named.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from dualstack_ipam.net import IPFamily, make_address

from ._common import st
from ._manifests import HOSTS, PREFER, REQUIRE, SINGLE, Cluster, free_address

__all__ = ["EDITS", "Edit", "edit_service"]

EDITS = ("policy", "type", "ip-family", "ip-families", "cluster-ips", "name", "namespace")
"""What an edit may change, one each."""

_IPS = frozenset({"spec.clusterIPs", "spec.clusterIPs[0]", "spec.clusterIPs[1]"})
_FAMILIES = frozenset({"spec.ipFamilies", "spec.ipFamilies[0]", "spec.ipFamilies[1]"})
# The fields a refusal may name, per edit: the changed one, and those the
# rules tie to it (a policy that must be dual for two families or IPs, an
# alpha ipFamily that must agree with ipFamilies[0], IPs that must match
# their families).
_ALLOWED = {
    "policy": frozenset({"spec.ipFamilyPolicy"}),
    "type": frozenset({"spec.clusterIPs[0]"}),
    "ip-family": frozenset({"spec.ipFamily"}),
    "ip-families": _FAMILIES | _IPS | {"spec.ipFamilyPolicy", "spec.ipFamily"},
    "cluster-ips": _IPS | {"spec.ipFamilyPolicy"},
    "name": frozenset({"metadata.name"}),
    "namespace": frozenset({"metadata.namespace"}),
}


class Edit(NamedTuple):
    """An edited manifest, what was changed, and the fields a refusal may name."""

    manifest: dict[str, Any]
    change: str
    fields: frozenset[str]


def _families(spec: dict[str, Any], cluster: Cluster) -> list[IPFamily]:
    listed = [IPFamily(f) for f in spec.get("ipFamilies") or ()]
    return listed or list(cluster.families[:1])


def _cluster_ips(draw: st.DrawFn, spec: dict[str, Any], cluster: Cluster) -> list[str]:
    """New cluster IPs: one more, one less, another primary, a taken or a foreign one."""
    ips = [ip for ip in spec.get("clusterIPs") or () if ip != "None"]
    first = _families(spec, cluster)[0]
    options: list[list[str]] = [[], ips[:1]]
    for family in (first, first.other):
        if family in cluster.families and cluster.free(family):
            new = free_address(draw, cluster, family)
            options += [[*ips[:1], new], [new], [*ips, new]]
        held = sorted(cluster.used(family))
        if held:
            options.append([*ips[:1], str(make_address(draw(st.sampled_from(held)), family))])
    if ips:
        options.append(ips[::-1])
    return draw(st.sampled_from(options))


def edit_service(draw: st.DrawFn, service: dict[str, Any], cluster: Cluster) -> Edit:
    """One edit of ``service`` (a manifest as the allocator returned it).

    Complexity:
        O(n) in the allocator's keys (free and taken addresses are looked up).
    """
    edited = copy.deepcopy(service)
    spec = edited.setdefault("spec", {})
    # Policy edits move Services between single- and dual-stack, what
    # controllers most often get wrong: they come up as often as the rest.
    change = draw(st.sampled_from(("policy",) * (len(EDITS) - 1) + EDITS[1:]))
    both = [f.value for f in IPFamily]
    if change == "policy":
        spec["ipFamilyPolicy"] = draw(st.sampled_from([SINGLE, PREFER, REQUIRE]))
    elif change == "type":
        kind = draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]))
        spec["type"] = kind
        if kind == "ExternalName":
            spec["externalName"] = draw(st.sampled_from(HOSTS))
    elif change == "ip-family":
        spec["ipFamily"] = draw(st.sampled_from(both))
    elif change == "ip-families":
        spec["ipFamilies"] = draw(
            st.sampled_from([["IPv4"], ["IPv6"], ["IPv4", "IPv6"], ["IPv6", "IPv4"]])
        )
    elif change == "cluster-ips":
        ips = _cluster_ips(draw, spec, cluster)
        spec["clusterIPs"] = ips
        spec["clusterIP"] = ips[0] if ips else ""
    else:
        key = "name" if change == "name" else "namespace"
        was = edited["metadata"].get(key) or "default"
        edited["metadata"][key] = f"{was[:50]}-moved"
    return Edit(edited, change, _ALLOWED[change])
