"""Strategies for Service manifests Kubernetes refuses, each with the field it names.

Every case builds a manifest that is valid except for one rule, so the first
error Kubernetes reports (and ``ServiceValidationError.field``) is known.
The cases follow Kubernetes' order of checks: the document, metadata,
``spec.type``, the selector, the alpha ``ipFamily``, ``clusterIP`` and
``clusterIPs``, ``ipFamilies``, ``ipFamilyPolicy``, their consistency, then
what depends on the cluster (families, ranges) and on the allocator (taken
addresses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.net import IPFamily, make_address
from dualstack_ipam.services.allocator import ServiceIPAllocator

from ._common import st
from ._manifests import (
    HOSTS,
    PREFER,
    REQUIRE,
    SINGLE,
    Cluster,
    context,
    free_address,
    put,
    service_type,
    set_type,
    shell,
    usable_in,
)

__all__ = ["InvalidManifest", "invalid_service_manifests"]

# Addresses for manifests refused before any range is looked at.
_SAMPLE = {IPFamily.IPv4: ("10.96.0.10", "192.168.0.1"), IPFamily.IPv6: ("fd00::10", "2001:db8::1")}


class InvalidManifest(NamedTuple):
    """A manifest Kubernetes refuses, and the field path of the first error.

    ``field`` is what :class:`~dualstack_ipam.ServiceValidationError` carries
    as ``.field`` (``""`` when the manifest is not a mapping at all).
    """

    manifest: Any
    field: str


def invalid_service_manifests(
    *,
    config: ClusterConfig | None = None,
    allocator: ServiceIPAllocator | None = None,
) -> st.SearchStrategy[InvalidManifest]:
    """Manifests Kubernetes refuses, each with the field of the first error.

    Draws :class:`InvalidManifest` ``(manifest, field)`` pairs: everything
    else in the manifest is valid, so
    ``allocate_service(manifest)`` raises
    :class:`~dualstack_ipam.ServiceValidationError` with ``.field == field``
    and changes nothing. Covers malformed documents, names and namespaces,
    unsupported values, every ``clusterIP`` / ``clusterIPs`` /
    ``ipFamilies`` / ``ipFamilyPolicy`` consistency rule, ExternalName
    rules, and, given ``config`` or ``allocator``, families the cluster
    lacks, ``RequireDualStack`` on a single-stack cluster, addresses out of
    range and (``allocator=`` only) addresses another Service holds.

    Args:
        config: the cluster (enables the cluster-dependent cases).
        allocator: the allocator (also enables "address taken").

    Complexity:
        O(1) per draw; O(n) in the allocator's keys with ``allocator=``.

    >>> from hypothesis import find
    >>> find(invalid_service_manifests(), lambda pair: True)
    InvalidManifest(manifest=[], field='')
    >>> find(invalid_service_manifests(), lambda pair: pair.field == "spec.clusterIPs[1]").manifest
    {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'my-service'}, \
'spec': {'selector': {'app': 'MyApp'}, 'ports': [{'protocol': 'TCP', 'port': 80, \
'targetPort': 9376}], 'clusterIP': '10.96.0.10', 'clusterIPs': ['10.96.0.10', 7]}}
    """
    return _invalid(context(config, allocator))


@st.composite
def _invalid(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    cases: list[_Case] = list(_PORTABLE_CASES)
    if not cluster.portable:
        cases.append(_out_of_range)
        if len(cluster.families) == 1:
            cases += [_require_single, _family_not_configured]
        if cluster.used(cluster.families[0]) or cluster.used(cluster.families[-1]):
            cases.append(_taken)
    case: _Case = draw(st.sampled_from(cases))
    pair: InvalidManifest = case(draw, cluster)
    return pair


def _pick_case(
    draw: st.DrawFn, cases: list[tuple[dict[str, Any], str]]
) -> tuple[dict[str, Any], str]:
    """One ``(spec fields, field path)`` case; shrinks to the first."""
    picked: tuple[dict[str, Any], str] = draw(st.sampled_from(cases))
    return picked


def _ip_shell(draw: st.DrawFn, cluster: Cluster, **spec: Any) -> dict[str, Any]:
    """A valid non-ExternalName manifest with ``spec`` fields added."""
    manifest = shell(draw, cluster)
    set_type(manifest["spec"], service_type(draw))
    manifest["spec"].update(spec)
    return manifest


def _sample(draw: st.DrawFn, family: IPFamily | None = None) -> str:
    fam = family if family is not None else draw(st.sampled_from(list(IPFamily)))
    return draw(st.sampled_from(_SAMPLE[fam]))


def _bad_policy(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    policy = draw(st.sampled_from(["DualStack", "singlestack", "RequiredDualStack", "Dual"]))
    return InvalidManifest(_ip_shell(draw, cluster, ipFamilyPolicy=policy), "spec.ipFamilyPolicy")


def _not_a_mapping(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    manifest = draw(st.sampled_from([[], ["kind: Service"], "kind: Service", None]))
    return InvalidManifest(manifest, "")


def _top_field(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    manifest = _ip_shell(draw, cluster)
    field, value = draw(
        st.sampled_from(
            [
                ("kind", "Pod"),
                ("kind", "service"),
                ("apiVersion", "v2"),
                ("apiVersion", "apps/v1"),
                ("metadata", ["my-service"]),
                ("metadata", "my-service"),
                ("spec", ["clusterIP"]),
                ("spec", "ClusterIP"),
            ]
        )
    )
    manifest[field] = value
    return InvalidManifest(manifest, field)


def _bad_name(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    manifest = _ip_shell(draw, cluster)
    name = draw(
        st.sampled_from(
            [None, "", "My_Service", "1web", "web-", "-web", "web.svc", "Web", "a" * 64, 7]
        )
    )
    manifest["metadata"]["name"] = name
    if name is None and draw(st.booleans()):
        del manifest["metadata"]["name"]
    return InvalidManifest(manifest, "metadata.name")


def _bad_namespace(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    manifest = _ip_shell(draw, cluster)
    namespace = draw(
        st.sampled_from(["Bad NS", "-ns", "ns-", "kube_system", "Team-A", "n" * 64, 5])
    )
    manifest["metadata"]["namespace"] = namespace
    return InvalidManifest(manifest, "metadata.namespace")


def _bad_value(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    """A field whose value is of the wrong type or not a supported value."""
    a = _sample(draw)
    key, value, field = draw(
        st.sampled_from(
            [
                ("type", "Ingress", "spec.type"),
                ("type", "clusterip", "spec.type"),
                ("selector", ["app"], "spec.selector"),
                ("selector", "app=web", "spec.selector"),
                ("ipFamily", "IPv5", "spec.ipFamily"),
                ("ipFamily", "ipv4", "spec.ipFamily"),
                ("ipFamily", "IPv4,IPv6", "spec.ipFamily"),
                ("clusterIP", 5, "spec.clusterIP"),
                ("clusterIP", [a], "spec.clusterIP"),
                ("clusterIPs", [a], "spec.clusterIPs"),
                ("ipFamilies", "IPv4", "spec.ipFamilies"),
                ("ipFamilies", ["IPv5"], "spec.ipFamilies[0]"),
                ("ipFamilies", ["IPv4", "ipv6"], "spec.ipFamilies[1]"),
                ("ipFamilies", ["IPv6", "IPv6"], "spec.ipFamilies[1]"),
                ("ipFamilies", ["IPv4", "IPv4"], "spec.ipFamilies[1]"),
            ]
        )
    )
    manifest = _ip_shell(draw, cluster)
    manifest["spec"][key] = value
    return InvalidManifest(manifest, field)


def _cluster_ips(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    """``clusterIP`` and ``clusterIPs`` that disagree or do not parse."""
    a, b = _sample(draw, IPFamily.IPv4), _sample(draw, IPFamily.IPv6)
    bad = draw(
        st.sampled_from(
            ["10.96.0.300", "010.96.0.1", "fd00::g", "10.96.0.1/24", " 10.96.0.1", "localhost"]
        )
    )
    spec, field = _pick_case(
        draw,
        [
            ({"clusterIP": a, "clusterIPs": [a, 7]}, "spec.clusterIPs[1]"),
            ({"clusterIP": a, "clusterIPs": [b, a]}, "spec.clusterIPs"),
            ({"clusterIP": a, "clusterIPs": a}, "spec.clusterIPs"),
            ({"clusterIP": "None", "clusterIPs": ["None", a]}, "spec.clusterIPs"),
            ({"clusterIP": bad}, "spec.clusterIPs[0]"),
            (
                {"clusterIP": a, "clusterIPs": [a, bad], "ipFamilyPolicy": PREFER},
                "spec.clusterIPs[1]",
            ),
            (
                {"clusterIP": a, "clusterIPs": [a, "None"], "ipFamilyPolicy": PREFER},
                "spec.clusterIPs[1]",
            ),
            (
                {"clusterIP": a, "clusterIPs": [a, b, a], "ipFamilyPolicy": REQUIRE},
                "spec.clusterIPs",
            ),
            (
                {"clusterIP": a, "clusterIPs": [a, "10.96.0.11"], "ipFamilyPolicy": PREFER},
                "spec.clusterIPs",
            ),
            ({"clusterIP": a, "clusterIPs": [a, "10.96.0.11"]}, "spec.clusterIPs"),
            ({"clusterIP": b, "clusterIPs": [b, b], "ipFamilyPolicy": REQUIRE}, "spec.clusterIPs"),
            ({"clusterIP": b, "ipFamilies": ["IPv4"]}, "spec.clusterIPs[0]"),
            ({"clusterIP": a, "ipFamilies": ["IPv6"]}, "spec.clusterIPs[0]"),
        ],
    )
    return InvalidManifest(_ip_shell(draw, cluster, **spec), field)


def _policy_conflict(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    """Two families under SingleStack, an alpha field that disagrees, headless LB."""
    a, b = _sample(draw, IPFamily.IPv4), _sample(draw, IPFamily.IPv6)
    policy = draw(st.sampled_from([{}, {"ipFamilyPolicy": SINGLE}]))
    spec, field = _pick_case(
        draw,
        [
            ({**policy, "ipFamilies": ["IPv4", "IPv6"]}, "spec.ipFamilyPolicy"),
            ({**policy, "ipFamilies": ["IPv6", "IPv4"]}, "spec.ipFamilyPolicy"),
            ({**policy, "clusterIP": a, "clusterIPs": [a, b]}, "spec.ipFamilyPolicy"),
            ({**policy, "ipFamily": "IPv6", "ipFamilies": ["IPv4"]}, "spec.ipFamily"),
            ({**policy, "ipFamily": "IPv4", "ipFamilies": ["IPv6"]}, "spec.ipFamily"),
        ],
    )
    if draw(st.sampled_from([False] * 4 + [True])):
        kind = draw(st.sampled_from(["LoadBalancer", "NodePort"]))
        spec, field = {"type": kind, "clusterIP": "None"}, "spec.clusterIPs[0]"
    return InvalidManifest(_ip_shell(draw, cluster, **spec), field)


def _external_name(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    manifest = shell(draw, cluster)
    spec = manifest["spec"]
    spec["type"] = "ExternalName"
    spec["externalName"] = draw(st.sampled_from(HOSTS))
    key, value, field = draw(
        st.sampled_from(
            [
                ("clusterIP", _sample(draw), "spec.clusterIPs"),
                ("clusterIP", "None", "spec.clusterIPs"),
                ("clusterIPs", [_sample(draw)], "spec.clusterIPs"),
                ("ipFamilies", ["IPv4"], "spec.ipFamilies"),
                ("ipFamilyPolicy", SINGLE, "spec.ipFamilyPolicy"),
                ("ipFamily", "IPv6", "spec.ipFamily"),
                ("externalName", None, "spec.externalName"),
                ("externalName", "", "spec.externalName"),
                ("externalName", "not a host!", "spec.externalName"),
                ("externalName", "DB.example.com", "spec.externalName"),
                ("externalName", "a..example.com", "spec.externalName"),
                ("externalName", "x" * 254, "spec.externalName"),
                ("externalName", 5, "spec.externalName"),
            ]
        )
    )
    spec[key] = value
    return InvalidManifest(manifest, field)


_Case = Callable[[st.DrawFn, Cluster], InvalidManifest]

_PORTABLE_CASES: tuple[_Case, ...] = (
    _not_a_mapping,
    _bad_policy,
    _top_field,
    _bad_name,
    _bad_namespace,
    _bad_value,
    _cluster_ips,
    _policy_conflict,
    _external_name,
)


def _require_single(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    (family,) = cluster.families
    families = draw(st.sampled_from([None, [str(family)]]))
    spec: dict[str, Any] = {"ipFamilyPolicy": REQUIRE}
    put(spec, ipFamilies=families)
    return InvalidManifest(_ip_shell(draw, cluster, **spec), "spec.ipFamilyPolicy")


def _family_not_configured(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    (family,) = cluster.families
    other = family.other
    spec, field = _pick_case(
        draw,
        [
            ({"ipFamilies": [str(other)]}, "spec.ipFamilies[0]"),
            ({"ipFamily": str(other)}, "spec.ipFamily"),
            (
                {"ipFamilies": [str(family), str(other)], "ipFamilyPolicy": PREFER},
                "spec.ipFamilies[1]",
            ),
            ({"clusterIP": _SAMPLE[other][0]}, "spec.clusterIPs[0]"),
        ],
    )
    return InvalidManifest(_ip_shell(draw, cluster, **spec), field)


def _unusable(draw: st.DrawFn, cluster: Cluster, family: IPFamily) -> str:
    """An address of ``family`` that its Service range will not hand out."""
    base, capacity, _ = cluster.ranges[family]
    network = base - 1
    top = (1 << family.width) - 1
    options = [network]
    last = network + capacity + (1 if family is IPFamily.IPv4 else 0)
    if family is IPFamily.IPv4 and capacity:
        options.append(last)  # the broadcast address
    if network > 0:
        options.append(network - 1)
    if last < top:
        options.append(last + 1)
    # An added range (ServiceIPAllocator.add_range) may start right after the
    # first; the network address never lies in another range.
    options = [value for value in options if not usable_in(cluster, family, value)]
    return str(make_address(draw(st.sampled_from(options)), family))


def _out_of_range(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    family = draw(st.sampled_from(cluster.families))
    bad = _unusable(draw, cluster, family)
    other = family.other
    if other in cluster.families and cluster.free(other) and draw(st.booleans()):
        good = free_address(draw, cluster, other)
        spec = {"clusterIP": good, "clusterIPs": [good, bad], "ipFamilyPolicy": PREFER}
        return InvalidManifest(_ip_shell(draw, cluster, **spec), "spec.clusterIPs[1]")
    return InvalidManifest(_ip_shell(draw, cluster, clusterIP=bad), "spec.clusterIPs[0]")


def _taken(draw: st.DrawFn, cluster: Cluster) -> InvalidManifest:
    held = [(f, value) for f in cluster.families for value in sorted(cluster.used(f))]
    family, value = draw(st.sampled_from(held))
    bad = str(make_address(value, family))
    other = family.other
    if other in cluster.families and cluster.free(other) and draw(st.booleans()):
        good = free_address(draw, cluster, other)
        spec = {"clusterIP": good, "clusterIPs": [good, bad], "ipFamilyPolicy": REQUIRE}
        return InvalidManifest(_ip_shell(draw, cluster, **spec), "spec.clusterIPs[1]")
    return InvalidManifest(_ip_shell(draw, cluster, clusterIP=bad), "spec.clusterIPs[0]")
