"""Resolving a Service's intent: its policy, families and requested addresses.

The second stage of the manifest rules: from the :class:`~dualstack_ipam.services.read.Fields`
a manifest states to the :class:`Intent` the API server defaults them to
(Kubernetes' ``initIPFamilyFields``), on a cluster with the given Service
range families. Update rules that change the defaulting live in
:mod:`~dualstack_ipam.services.update`.

>>> from dualstack_ipam.services.read import read_fields
>>> intent = resolve(read_fields({"ipFamilyPolicy": "PreferDualStack"}, "web"),
...                  (IPFamily.IPv4, IPFamily.IPv6), "web")
>>> intent.kind, intent.policy, [str(f) for f in intent.families]
('cluster', 'PreferDualStack', ['IPv4', 'IPv6'])
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from dualstack_ipam.net import IPFamily
from dualstack_ipam.owners import Address
from dualstack_ipam.services.read import Fields, invalid

__all__ = [
    "CLUSTER",
    "EXTERNAL",
    "HEADLESS",
    "PREFER",
    "REQUIRE",
    "SINGLE",
    "Intent",
    "addresses",
    "default_policy",
    "describe",
    "describes",
    "resolve",
]

SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
CLUSTER, HEADLESS, EXTERNAL = "cluster", "headless", "external"
_BOTH = "must be 'RequireDualStack' or 'PreferDualStack' when multiple {} are specified"


@attrs.frozen
class Intent:
    """A defaulted Service: ``kind`` is ``cluster``, ``headless`` or ``external``;
    ``requested[i]`` is the address asked for in ``families[i]`` or None (dynamic)."""

    kind: str
    policy: str | None
    families: tuple[IPFamily, ...]
    requested: tuple[int | None, ...]


EXTERNAL_INTENT = Intent(EXTERNAL, None, (), ())


def describe(fields: Fields) -> Intent:
    """The intent a stored manifest embodies (missing families inferred from its IPs).

    Complexity:
        O(1).
    """
    if fields.type == "ExternalName":
        return EXTERNAL_INTENT
    families = fields.families + tuple(f for f, _ in fields.ips[len(fields.families) :])
    if fields.headless:
        return Intent(HEADLESS, fields.policy, families, ())
    # A family listed without its address gets None, which no allocation matches.
    requested = tuple(v for _, v in fields.ips) + (None,) * (len(families) - len(fields.ips))
    return Intent(CLUSTER, fields.policy, families, requested)


def addresses(intent: Intent) -> tuple[tuple[IPFamily, int | None], ...]:
    """``(family, requested)`` pairs of a ``cluster`` intent, else ().

    Complexity:
        O(1).
    """
    if intent.kind != CLUSTER:
        return ()
    return tuple(zip(intent.families, intent.requested, strict=True))


def describes(intent: Intent, held: Sequence[Address]) -> bool:
    """Whether a Service created with ``intent`` may own ``held`` (idempotent re-create).

    Complexity:
        O(1).
    """
    pairs = addresses(intent)
    return len(pairs) == len(held) and all(
        f is g and want in (None, v) for (f, want), (g, v) in zip(pairs, held, strict=True)
    )


def default_policy(fields: Fields) -> str:
    """``ipFamilyPolicy`` as given, else ``RequireDualStack`` for a headless Service
    without selector and ``SingleStack`` for the rest.

    Complexity:
        O(1).
    """
    lonely = fields.headless and not fields.selector
    return fields.policy or (REQUIRE if lonely else SINGLE)


def resolve(fields: Fields, configured: tuple[IPFamily, ...], name: str) -> Intent:
    """Kubernetes' defaulting of ``ipFamilyPolicy`` and ``ipFamilies`` on create.

    ``configured`` lists the Service-range families, primary first.

    Raises:
        ServiceValidationError: the first rule broken.

    Complexity:
        O(1).
    """
    if fields.type == "ExternalName":
        return EXTERNAL_INTENT
    lonely = fields.headless and not fields.selector
    policy = default_policy(fields)
    families = list(fields.families)
    if policy == SINGLE and 2 in (len(fields.ips), len(families)):
        what = "cluster IPs" if len(fields.ips) == 2 else "IP families"
        raise invalid(name, "spec.ipFamilyPolicy", policy, _BOTH.format(what))
    for i, (family, _) in enumerate(fields.ips[len(families) :], start=len(families)):
        if family not in configured:
            detail = f"{family} is not configured on this cluster"
            raise invalid(name, f"spec.clusterIPs[{i}]", str(family), detail)
        families.append(family)
    from_alpha = fields.alpha is not None and not families
    if fields.alpha is not None and families and families[0] is not fields.alpha:
        detail = f"must agree with ipFamilies[0] ({families[0]})"
        raise invalid(name, "spec.ipFamily", str(fields.alpha), detail)
    families = families or [fields.alpha or configured[0]]
    if lonely:  # headless without selector: no address, so any families will do
        if len(families) == 1 and policy != SINGLE:
            families.append(families[0].other)
        return Intent(HEADLESS, policy, tuple(families), ())
    if policy == REQUIRE and len(configured) < 2:
        detail = "this cluster is not configured for dual-stack services"
        raise invalid(name, "spec.ipFamilyPolicy", policy, detail)
    for i, family in enumerate(families):
        if family not in configured:
            field = "spec.ipFamily" if from_alpha else f"spec.ipFamilies[{i}]"
            raise invalid(name, field, str(family), "not configured on this cluster")
    if policy != SINGLE and len(families) == 1 and len(configured) == 2:
        families.append(families[0].other)
    if fields.headless:
        return Intent(HEADLESS, policy, tuple(families), ())
    requested = [value for _, value in fields.ips[: len(families)]]
    dynamic = (None,) * (len(families) - len(requested))
    return Intent(CLUSTER, policy, tuple(families), (*requested, *dynamic))
