"""Strategies for Service manifests: every valid kind, for a cluster or an allocator.

Re-exported by :mod:`dualstack_ipam.testing.strategies`; the invalid ones
are in :mod:`dualstack_ipam.testing._invalid_manifests`.

Manifests are plain dicts, as ``yaml.safe_load`` gives them, and shrink to
the seed's first example (``my-service``, selector ``app: MyApp``, TCP port
80 to 9376). What is valid depends on the cluster: a manifest for one
cluster may ask for a family another lacks. So both strategies take the
cluster (``config=``) or the allocator itself (``allocator=``, which also
makes requested addresses free and names unused at the moment of the draw);
without either they draw only manifests that every cluster with a Service
range accepts.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dualstack_ipam.cluster.config import ClusterConfig
from dualstack_ipam.net import IPFamily, make_address, usable_span
from dualstack_ipam.pools.service_ips import static_band_size
from dualstack_ipam.services.allocator import ServiceIPAllocator

from ._common import InvalidArgument, choose, st

__all__ = [
    "MANIFEST_KINDS",
    "Cluster",
    "context",
    "free_address",
    "service_manifests",
    "shell",
    "usable_in",
]

MANIFEST_KINDS = ("plain", "ip-family", "policy", "headless", "external-name", "static-ip")
"""The kinds of valid manifest :func:`service_manifests` draws, simplest first.

``plain``: no IP field (the seed's first example); ``ip-family``: the seed's
alpha ``spec.ipFamily``; ``policy``: the GA ``ipFamilyPolicy`` and
``ipFamilies``; ``headless``: ``clusterIP: None``, with or without a
selector; ``external-name``: ``type: ExternalName``; ``static-ip``:
``clusterIP`` / ``clusterIPs`` asking for free addresses of the ranges.
"""

_PORTABLE = ("plain", "policy", "headless", "external-name")
_CLUSTER_ONLY = ("ip-family", "static-ip")
SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
_NAMES = ("my-service", "web", "db", "dns", "api", "cache", "metrics", "frontend")
_SEED_PORTS = [{"protocol": "TCP", "port": 80, "targetPort": 9376}]
HOSTS = ("db.example.com", "my.database.example.com", "example.com", "api.example.com.")


class Cluster:
    """What validity depends on: the Service ranges, and the allocator's state."""

    def __init__(self, config: ClusterConfig | None, allocator: ServiceIPAllocator | None):
        self.allocator = allocator
        self.families: tuple[IPFamily, ...] = () if config is None else config.service_families
        # family -> (first usable address, usable count, static band size) of
        # the configuration's range, and of every range (added ones too).
        self.ranges: dict[IPFamily, tuple[int, int, int]] = {}
        self.spans: dict[IPFamily, list[tuple[int, int, int]]] = {}
        for family in self.families:
            cidr = config.service_cidr(family) if config is not None else None
            assert cidr is not None
            cidrs = allocator.ranges(family) if allocator is not None else [cidr]
            self.spans[family] = [_span(family, each) for each in cidrs]
            self.ranges[family] = self.spans[family][0]

    @property
    def portable(self) -> bool:
        return not self.families

    def used(self, family: IPFamily) -> set[int]:
        if self.allocator is None:
            return set()
        return {
            int(address)
            for _, addresses in self.allocator.items()
            for address in addresses
            if address.version == family.version
        }

    def reserved(self, family: IPFamily) -> list[tuple[int, int]]:
        """The allocator's reserved runs of ``family``: (first, last) addresses as ints."""
        if self.allocator is None:
            return []
        return [
            (int(span.first), int(span.last))
            for span, _ in self.allocator.reservations()
            if span.version == family.version
        ]

    def free(self, family: IPFamily) -> int:
        if self.allocator is not None:
            return self.allocator.free(family)
        return self.ranges[family][1]

    def taken(self, key: str) -> bool:
        return self.allocator is not None and key in self.allocator


def _span(family: IPFamily, cidr: Any) -> tuple[int, int, int]:
    first, usable = usable_span(family, cidr.prefixlen)
    return int(cidr.first) + first, usable, static_band_size(cidr.size)


def usable_in(cluster: Cluster, family: IPFamily, value: int) -> bool:
    """Whether the address ``value`` is usable in one of ``family``'s ranges."""
    return any(0 <= value - base < count for base, count, _ in cluster.spans[family])


def context(config: Any, allocator: Any) -> Cluster:
    if allocator is not None:
        if not isinstance(allocator, ServiceIPAllocator):
            raise InvalidArgument(f"allocator={allocator!r} must be a ServiceIPAllocator")
        if config is not None and config != allocator.config:
            raise InvalidArgument(f"config={config!r} is not the allocator's configuration")
        config = allocator.config
    if config is not None:
        if not isinstance(config, ClusterConfig):
            raise InvalidArgument(f"config={config!r} must be a ClusterConfig")
        if not config.service_families:
            raise InvalidArgument(f"config={config!r} has no Service range: nothing to allocate")
    return Cluster(config, allocator)


# ---------------------------------------------------------------- pieces


def _metadata(draw: st.DrawFn, cluster: Cluster) -> dict[str, Any]:
    name = choose(
        draw,
        [
            (8, st.sampled_from(_NAMES)),
            (3, st.tuples(st.sampled_from(_NAMES), st.integers(0, 99)).map("{0[0]}-{0[1]}".format)),
            (1, st.sampled_from(["a", "s" * 63])),
        ],
    )
    namespace = choose(
        draw,
        [
            (6, st.none()),
            (2, st.just("default")),
            (2, st.sampled_from(["kube-system", "team-a", "0prod", "n" * 63])),
        ],
    )
    key_namespace = namespace or "default"
    fresh, count = name, 2
    while cluster.taken(f"{key_namespace}/{fresh}"):
        suffix = f"-{count}"
        fresh, count = name[: 63 - len(suffix)].rstrip("-") + suffix, count + 1
    meta: dict[str, Any] = {"name": fresh}
    if namespace is not None:
        meta["namespace"] = namespace
    if draw(st.sampled_from([False] * 4 + [True])):
        meta["labels"] = {"app": fresh}
    return meta


def shell(draw: st.DrawFn, cluster: Cluster, *, selector: bool | None = None) -> dict[str, Any]:
    """A manifest with no IP field: the seed's first example and its variations."""
    spec: dict[str, Any] = {}
    # One choice for presence and value alike, so that no option is shorter.
    labels = choose(
        draw,
        [(6, st.just("MyApp")), (3, st.sampled_from(_NAMES)), (0 if selector else 2, st.none())],
    )
    if labels is not None and selector is not False:
        spec["selector"] = {"app": labels}
    ports = choose(
        draw,
        [
            (6, st.just(_SEED_PORTS)),
            (2, st.just([{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53}])),
            (1, st.none()),
        ],
    )
    if ports is not None:
        spec["ports"] = [dict(port) for port in ports]
    manifest: dict[str, Any] = {}
    if draw(st.sampled_from([True] * 9 + [False])):
        manifest.update(apiVersion="v1", kind="Service")
    manifest["metadata"] = _metadata(draw, cluster)
    manifest["spec"] = spec
    return manifest


def service_type(draw: st.DrawFn, *, headless: bool = False) -> str | None:
    kinds = [None, None, None, "ClusterIP"] + ([] if headless else ["NodePort", "LoadBalancer"])
    return draw(st.sampled_from(kinds))


def set_type(spec: dict[str, Any], kind: str | None) -> None:
    if kind is not None:
        spec["type"] = kind


_ABSENT = object()

# Values that mean "unset" for each IP field, as a YAML file may hold them.
_UNSET: dict[str, tuple[Any, ...]] = {
    "clusterIP": (None, ""),
    "clusterIPs": (None, []),
    "ipFamilies": (None, []),
    "ipFamilyPolicy": (None,),
    "ipFamily": (None,),
}


def _unset_noise(draw: st.DrawFn, spec: dict[str, Any]) -> None:
    """Now and then spell an absent IP field as an explicit unset value."""
    for key, values in _UNSET.items():
        # Always one choice per key, so that manifests with more fields set
        # are not shorter (and so simpler, to the shrinker) than plain ones.
        value = choose(draw, [(18, st.just(_ABSENT)), (len(values), st.sampled_from(values))])
        if key not in spec and value is not _ABSENT:
            spec[key] = list(value) if isinstance(value, list) else value


def _families(draw: st.DrawFn, cluster: Cluster, policy: str | None) -> list[str] | None:
    """An optional ``ipFamilies`` consistent with ``policy`` on this cluster."""
    if cluster.portable:
        return None
    first = draw(st.sampled_from(cluster.families))
    options: list[list[str] | None] = [None, [str(first)]]
    if policy in (PREFER, REQUIRE) and len(cluster.families) == 2:
        options.append([str(first), str(first.other)])
    if policy is None:
        options.remove(None)  # without both, the manifest is plain
    return draw(st.sampled_from(options))


def _policies(cluster: Cluster) -> list[str | None]:
    policies: list[str | None] = [SINGLE, PREFER]
    if len(cluster.families) == 2:
        policies.append(REQUIRE)
    return policies


def free_address(draw: st.DrawFn, cluster: Cluster, family: IPFamily) -> str:
    """A usable address of one of ``family``'s ranges that the allocator does not hold.

    Mostly the configuration's range (its static band first); an added
    range (``ServiceIPAllocator.add_range``) sometimes.
    """
    spans = cluster.spans[family]
    which = draw(st.integers(0, len(spans) - 1)) if len(spans) > 1 else 0
    base, capacity, offset = spans[which]
    used = cluster.used(family)
    slot = choose(
        draw,
        [
            (3 if offset else 0, st.integers(0, max(offset - 1, 0))),
            (1, st.integers(0, max(capacity - 1, 0))),
        ],
    )
    reserved = cluster.reserved(family)
    # The caller checked that one is free (``free`` counts neither held nor
    # reserved addresses): walk the ranges' usable addresses as one sequence
    # from the drawn one until a free one turns up, over a reserved run at
    # once (it may be far longer than the pool's free space).
    while True:
        if slot >= capacity:
            which, slot = (which + 1) % len(spans), 0
            base, capacity, offset = spans[which]
            continue
        value = base + slot
        run = next((last for first, last in reserved if first <= value <= last), None)
        if run is not None:
            slot = run - base + 1
        elif value in used:
            slot += 1
        else:
            return str(make_address(value, family))


# ---------------------------------------------------------------- valid


def service_manifests(
    *,
    config: ClusterConfig | None = None,
    allocator: ServiceIPAllocator | None = None,
    kinds: str | Collection[str] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid Service manifests, as parsed from YAML, of every kind.

    Args:
        config: the cluster the manifests are for (it needs a Service
            range). Without it (and without ``allocator``) only the kinds
            every cluster accepts are drawn: ``plain``, ``policy`` (no
            ``RequireDualStack``, no ``ipFamilies``), ``headless`` and
            ``external-name``.
        allocator: a :class:`~dualstack_ipam.services.allocator.ServiceIPAllocator`;
            its config is used, names are ones it does not hold, and
            ``static-ip`` addresses are free in it when the manifest is
            drawn. When no address is free, ``static-ip`` is not drawn.
        kinds: one of :data:`MANIFEST_KINDS`, a collection, or None for all.

    ``allocate_service`` accepts every manifest drawn (on a fresh allocator
    for ``config``, or on ``allocator`` as it was at the draw); it may still
    raise ``PoolExhaustedError`` for a dynamic address of a full range.
    ``None`` and ``""`` sometimes spell unset fields, as YAML files do.

    Complexity:
        O(1) per draw; O(n) in the allocator's keys with ``allocator=``.

    >>> from hypothesis import find
    >>> find(service_manifests(), lambda manifest: True)
    {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'my-service'}, \
'spec': {'selector': {'app': 'MyApp'}, 'ports': [{'protocol': 'TCP', 'port': 80, \
'targetPort': 9376}]}}
    >>> config = ClusterConfig("10.244.0.0/16,fc00::/24", "10.96.0.0/12,fd00:10:96::/112")
    >>> find(service_manifests(config=config, kinds="ip-family"),
    ...      lambda m: m["spec"]["ipFamily"] == "IPv6")["spec"]
    {'selector': {'app': 'MyApp'}, 'ports': [{'protocol': 'TCP', 'port': 80, \
'targetPort': 9376}], 'ipFamily': 'IPv6'}
    """
    cluster = context(config, allocator)
    chosen: tuple[str, ...]
    if kinds is None:
        chosen = _PORTABLE if cluster.portable else MANIFEST_KINDS
    else:
        names = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(names, Collection):
            raise InvalidArgument(f"kinds={kinds!r} must be None, a kind or a collection")
        bad = [k for k in names if k not in MANIFEST_KINDS]
        if not names or bad:
            raise InvalidArgument(
                f"kinds={kinds!r}: the kinds are {', '.join(map(repr, MANIFEST_KINDS))}"
            )
        if cluster.portable and any(k in _CLUSTER_ONLY for k in names):
            raise InvalidArgument(
                f"kinds={kinds!r}: 'ip-family' and 'static-ip' depend on the cluster; "
                "pass config= or allocator="
            )
        chosen = tuple(k for k in MANIFEST_KINDS if k in names)
    no_room = not any(cluster.free(f) for f in cluster.families)
    if allocator is None and "static-ip" in chosen and no_room:
        if chosen == ("static-ip",):
            raise InvalidArgument(f"kinds='static-ip': {config!r} has no usable address")
        chosen = tuple(k for k in chosen if k != "static-ip")
    return _service_manifests(cluster, chosen)


@st.composite
def _service_manifests(draw: st.DrawFn, cluster: Cluster, kinds: tuple[str, ...]) -> dict[str, Any]:
    open_families = [f for f in cluster.families if cluster.free(f)]
    live = [k for k in kinds if k != "static-ip" or open_families]
    if not live:
        # allocator= with only static-ip and every range full: nothing to draw.
        draw(st.nothing())
    kind = draw(st.sampled_from(live))
    if kind == "headless":
        return _headless(draw, cluster)
    manifest = shell(draw, cluster)
    spec = manifest["spec"]
    if kind == "external-name":
        spec["type"] = "ExternalName"
        spec["externalName"] = draw(st.sampled_from(HOSTS))
        _unset_noise(draw, spec)
        return manifest
    set_type(spec, service_type(draw))
    if kind == "ip-family":
        family = draw(st.sampled_from(cluster.families))
        policy = draw(st.sampled_from([None, *_policies(cluster)]))
        put(spec, ipFamily=str(family), ipFamilyPolicy=policy)
        families = draw(
            st.sampled_from([None, _family_list(cluster, family, policy, also_single=False)])
        )
        put(spec, ipFamilies=families)
    elif kind == "policy":
        policy = draw(st.sampled_from([*_policies(cluster)] + ([None] if cluster.families else [])))
        put(spec, ipFamilyPolicy=policy, ipFamilies=_families(draw, cluster, policy))
    elif kind == "static-ip":
        _static(draw, cluster, spec, open_families)
    _unset_noise(draw, spec)
    return manifest


def put(spec: dict[str, Any], **fields: Any) -> None:
    for key, value in fields.items():
        if value is not None:
            spec[key] = value


def _family_list(
    cluster: Cluster, first: IPFamily, policy: str | None, *, also_single: bool
) -> list[str]:
    """``[first]``, or both families when the policy and the cluster allow it."""
    if policy in (PREFER, REQUIRE) and len(cluster.families) == 2 and not also_single:
        return [str(first), str(first.other)]
    return [str(first)]


def _static(
    draw: st.DrawFn, cluster: Cluster, spec: dict[str, Any], open_families: list[IPFamily]
) -> None:
    first = draw(st.sampled_from(open_families))
    order = [first]
    if len(open_families) == 2 and draw(st.booleans()):
        order.append(first.other)
    ips = [free_address(draw, cluster, family) for family in order]
    if len(order) == 2:
        policy: str | None = draw(st.sampled_from([PREFER, REQUIRE]))
    else:
        policy = draw(st.sampled_from([None, *_policies(cluster)]))
    spec["clusterIP"] = ips[0]
    if len(ips) == 2 or draw(st.booleans()):
        spec["clusterIPs"] = ips
    put(spec, ipFamilyPolicy=policy)
    if draw(st.booleans()):
        wide = len(order) == 2 or (policy in (PREFER, REQUIRE) and draw(st.booleans()))
        put(spec, ipFamilies=_family_list(cluster, first, policy, also_single=not wide))
    if draw(st.booleans()):
        spec["ipFamily"] = str(first)


def _headless(draw: st.DrawFn, cluster: Cluster) -> dict[str, Any]:
    """``clusterIP: None``; without a selector any family mix is valid."""
    selector = draw(st.booleans())
    manifest = shell(draw, cluster, selector=selector)
    spec = manifest["spec"]
    set_type(spec, service_type(draw, headless=True))
    spec["clusterIP"] = "None"
    if draw(st.booleans()):
        spec["clusterIPs"] = ["None"]
    # Both branches draw the same choices, so that neither is shorter and the
    # shrinker is free to prefer the first (no selector).
    mix = draw(st.sampled_from([[], ["IPv4"], ["IPv6"], ["IPv4", "IPv6"], ["IPv6", "IPv4"]]))
    lonely_policy = draw(st.sampled_from([None, PREFER, REQUIRE, SINGLE]))
    policy = draw(st.sampled_from([None, *_policies(cluster)]))
    first = draw(st.sampled_from(cluster.families or (IPFamily.IPv4,)))
    wide, listed, with_alpha = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    alpha = draw(st.sampled_from([None, "IPv4", "IPv6"]))
    if not selector:
        if lonely_policy == SINGLE and len(mix) == 2:
            lonely_policy = None
        put(spec, ipFamilyPolicy=lonely_policy, ipFamilies=list(mix) or None)
        alpha = mix[0] if mix else alpha
    else:
        families = None
        if listed and policy is not None and not cluster.portable:
            dual = wide and policy in (PREFER, REQUIRE) and len(cluster.families) == 2
            families = [str(first), str(first.other)] if dual else [str(first)]
        put(spec, ipFamilyPolicy=policy, ipFamilies=families)
        alpha = families[0] if families else None
    if alpha is not None and with_alpha:
        spec["ipFamily"] = alpha
    _unset_noise(draw, spec)
    return manifest
