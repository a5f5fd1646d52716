"""Service manifests: reading, validating and defaulting the IP fields.

Pure functions, no allocator state: :mod:`dualstack_ipam.services` calls them
and then allocates. The rules are Kubernetes' (``ValidateService``,
``ValidateServiceClusterIPsRelatedFields`` and the API server's
``initIPFamilyFields``), plus the seed's alpha field ``spec.ipFamily``, which
stands for ``ipFamilies[0]`` and must agree with it. Kubernetes reports every
error at once; we raise the first, in Kubernetes' order.

Only what decides addresses is checked: ports, labels and the like are the
API server's business, not an IP allocator's.

>>> fields = read_fields({"ipFamilyPolicy": "PreferDualStack"}, "web")
>>> intent = resolve(fields, (IPFamily.IPv4, IPFamily.IPv6), None, "web")
>>> intent.kind, intent.policy, [str(f) for f in intent.families]
('cluster', 'PreferDualStack', ['IPv4', 'IPv6'])
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._family import IPFamily, parse_address
from .errors import IPAMError, ServiceValidationError

__all__ = [
    "CLUSTER",
    "EXTERNAL",
    "HEADLESS",
    "Fields",
    "Intent",
    "check_unchanged",
    "describe",
    "invalid",
    "merge",
    "plain",
    "read_fields",
    "render",
    "resolve",
    "service_key",
    "spec_of",
]

SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
_POLICIES = (SINGLE, PREFER, REQUIRE)
_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_FAMILY_KEYS = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "ipFamily")
NONE = "None"
CLUSTER, HEADLESS, EXTERNAL = "cluster", "headless", "external"

Address = tuple[IPFamily, int]

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def invalid(
    name: str, field: str, value: Any, detail: str, kind: str = "Invalid value"
) -> ServiceValidationError:
    """A Kubernetes-worded ServiceValidationError for ``field``."""
    shown = "" if kind in ("Required value", "Forbidden") else f" {value!r}:"
    return ServiceValidationError(
        f"Service {name!r} is invalid: {field}: {kind}:{shown} {detail}", field=field, value=value
    )


def plain(obj: Any) -> Any:
    """A deep copy with every mapping a ``dict`` and every list or tuple a ``list``."""
    if isinstance(obj, Mapping):
        return {key: plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(value) for value in obj]
    return copy.deepcopy(obj)


def _other(family: IPFamily) -> IPFamily:
    return IPFamily.IPv6 if family is IPFamily.IPv4 else IPFamily.IPv4


@attrs.frozen
class Fields:
    """The IP-related fields of a spec, type-checked and normalised.

    ``ips`` holds the parsed cluster IPs (empty when headless or unset);
    a ``clusterIP`` given without ``clusterIPs`` has already become
    ``clusterIPs[0]``.
    """

    type: str
    selector: bool
    headless: bool
    ips: tuple[Address, ...]
    families: tuple[IPFamily, ...]
    policy: str | None
    alpha: IPFamily | None


@attrs.frozen
class Intent:
    """What a Service asks of the allocator once defaulted.

    ``kind`` is ``"cluster"`` (gets addresses), ``"headless"`` or
    ``"external"``; ``requested[i]`` is the address asked for in
    ``families[i]``, or None for a dynamic one (``"cluster"`` only).
    """

    kind: str
    policy: str | None
    families: tuple[IPFamily, ...]
    requested: tuple[int | None, ...]


def _mapping(value: Any, field: str, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(name, field, value, "must be a mapping")
    return value


def spec_of(manifest: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``manifest["spec"]``; absent or None is an empty spec."""
    return _mapping(manifest.get("spec"), "spec", name)


def service_key(manifest: Any) -> str:
    """``namespace/name`` of a manifest (``default`` namespace when absent).

    Raises:
        ServiceValidationError: not a mapping, another ``kind`` or
            ``apiVersion``, a missing or malformed name or namespace.

    >>> service_key({"metadata": {"name": "my-service"}})
    'default/my-service'
    """
    if not isinstance(manifest, Mapping):
        raise ServiceValidationError(
            f"a Service manifest must be a mapping, got {manifest!r}", field="", value=manifest
        )
    name = "<unnamed>"
    for field, want in (("kind", "Service"), ("apiVersion", "v1")):
        value = manifest.get(field)
        if value is not None and value != want:
            raise invalid(name, field, value, f"must be {want!r}", "Unsupported value")
    meta = _mapping(manifest.get("metadata"), "metadata", name)
    given = meta.get("name")
    if given is None or given == "":
        raise invalid(name, "metadata.name", given, "name is required", "Required value")
    if not isinstance(given, str) or len(given) > 63 or not _DNS1035.fullmatch(given):
        raise invalid(
            str(given),
            "metadata.name",
            given,
            "a Service name must be a DNS-1035 label: at most 63 characters, lower-case "
            "letters, digits and '-', starting with a letter and ending with a letter or digit",
        )
    namespace = meta.get("namespace")
    if namespace is None:
        namespace = "default"
    if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS1123.fullmatch(namespace):
        raise invalid(
            given,
            "metadata.namespace",
            namespace,
            "a namespace must be a DNS-1123 label: at most 63 characters, lower-case "
            "letters, digits and '-', starting and ending with a letter or digit",
        )
    return f"{namespace}/{given}"


def _list(spec: Mapping[str, Any], key: str, name: str) -> list[Any]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise invalid(name, f"spec.{key}", value, "must be a list")
    return list(value)


def _read_external(spec: Mapping[str, Any], name: str) -> Fields:
    for key, field in (("clusterIP", "clusterIPs"), *((k, k) for k in _FAMILY_KEYS[1:])):
        if spec.get(key) not in (None, "", []):
            raise invalid(
                name,
                f"spec.{field}",
                spec[key],
                "may not be set for ExternalName services",
                "Forbidden",
            )
    target = spec.get("externalName")
    if target is None or target == "":
        raise invalid(name, "spec.externalName", target, "required", "Required value")
    cname = target.removesuffix(".") if isinstance(target, str) else None
    if cname is None or len(cname) > 253 or not _SUBDOMAIN.fullmatch(cname):
        raise invalid(name, "spec.externalName", target, "must be a DNS-1123 subdomain")
    return Fields("ExternalName", False, False, (), (), None, None)


def _read_families(spec: Mapping[str, Any], name: str) -> tuple[IPFamily, ...]:
    families: list[IPFamily] = []
    for i, value in enumerate(_list(spec, "ipFamilies", name)):
        if value not in ("IPv4", "IPv6"):
            raise invalid(
                name,
                f"spec.ipFamilies[{i}]",
                value,
                'supported values: "IPv4", "IPv6"',
                "Unsupported value",
            )
        if IPFamily(value) in families:
            raise invalid(name, f"spec.ipFamilies[{i}]", value, "listed twice", "Duplicate value")
        families.append(IPFamily(value))
    return tuple(families)


def _read_ips(spec: Mapping[str, Any], name: str) -> list[str]:
    first = spec.get("clusterIP")
    if first == "":
        first = None
    if first is not None and not isinstance(first, str):
        raise invalid(name, "spec.clusterIP", first, "must be an IP address or 'None'")
    texts = _list(spec, "clusterIPs", name)
    if first is None and texts:
        raise invalid(
            name, "spec.clusterIPs", texts, "must be empty when `clusterIP` is not specified"
        )
    if first is not None and not texts:
        texts = [first]
    elif first is not None and texts[0] != first:
        raise invalid(name, "spec.clusterIPs", texts, "first value must match `clusterIP`")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise invalid(name, f"spec.clusterIPs[{i}]", text, "must be a valid IP address")
    if texts and texts[0] == NONE and len(texts) > 1:
        raise invalid(name, "spec.clusterIPs", texts, "'None' must be the first and only value")
    return texts


def read_fields(spec: Mapping[str, Any], name: str) -> Fields:
    """Type-check and normalise the IP fields of ``spec`` (standalone rules only).

    Raises:
        ServiceValidationError: the first rule broken, with its field path.
    """
    kind = spec.get("type")
    if kind is None:
        kind = "ClusterIP"
    if kind not in _TYPES:
        raise invalid(
            name, "spec.type", kind, f"supported values: {', '.join(_TYPES)}", "Unsupported value"
        )
    if kind == "ExternalName":
        return _read_external(spec, name)
    selector = _mapping(spec.get("selector"), "spec.selector", name)
    alpha = spec.get("ipFamily")
    if alpha is not None and alpha not in ("IPv4", "IPv6"):
        raise invalid(
            name, "spec.ipFamily", alpha, 'supported values: "IPv4", "IPv6"', "Unsupported value"
        )
    texts = _read_ips(spec, name)
    families = _read_families(spec, name)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in _POLICIES:
        raise invalid(
            name,
            "spec.ipFamilyPolicy",
            policy,
            f"supported values: {', '.join(_POLICIES)}",
            "Unsupported value",
        )
    headless = texts == [NONE]
    ips: list[Address] = []
    for i, text in enumerate([] if headless else texts):
        try:
            value, family = parse_address(text)
        except IPAMError:
            raise invalid(
                name, f"spec.clusterIPs[{i}]", text, "must be a valid IP address"
            ) from None
        ips.append((family, value))
    if len(ips) > 2:
        raise invalid(name, "spec.clusterIPs", texts, "may only hold up to 2 values")
    if len(ips) == 2 and ips[0][0] is ips[1][0]:
        raise invalid(
            name,
            "spec.clusterIPs[1]",
            texts[1],
            "may specify no more than one IP for each IP family",
        )
    for i, ((family, _), want) in enumerate(zip(ips, families, strict=False)):
        if family is not want:
            raise invalid(
                name,
                f"spec.clusterIPs[{i}]",
                texts[i],
                f"expected an {want} value as indicated by `ipFamilies[{i}]`",
            )
    if headless and kind in ("LoadBalancer", "NodePort"):
        raise invalid(
            name, "spec.clusterIPs[0]", NONE, f"may not be set to 'None' for {kind} services"
        )
    return Fields(
        kind,
        bool(selector),
        headless,
        tuple(ips),
        families,
        policy,
        None if alpha is None else IPFamily(alpha),
    )


def describe(fields: Fields) -> Intent:
    """The intent a stored manifest already embodies (families inferred from its IPs)."""
    if fields.type == "ExternalName":
        return Intent(EXTERNAL, None, (), ())
    families = list(fields.families)
    families += [family for family, _ in fields.ips[len(families) :]]
    kind = HEADLESS if fields.headless else CLUSTER
    return Intent(kind, fields.policy, tuple(families), tuple(v for _, v in fields.ips))


def _same_ips(old: Intent, fields: Fields) -> bool:
    if old.kind == HEADLESS or fields.headless:
        return old.kind == HEADLESS and fields.headless
    return tuple(zip(old.families, old.requested, strict=False)) == fields.ips


def _update_prep(fields: Fields, old: Intent, policy: str, name: str) -> Fields:
    """Kubernetes' update-only rules: downgrade needs SingleStack, which trims."""
    ips, families = fields.ips, fields.families
    old_ips = 1 if old.kind == HEADLESS else len(old.requested)
    new_ips = 1 if fields.headless else len(ips)
    if policy == SINGLE:
        if _same_ips(old, fields) and len(ips) > 1:
            ips = ips[:1]
        if families == old.families and len(families) > 1:
            families = families[:1]
        return attrs.evolve(fields, ips=ips, families=families)
    if 0 < new_ips < old_ips:
        raise invalid(
            name,
            "spec.ipFamilyPolicy",
            policy,
            "must be 'SingleStack' to release the secondary cluster IP",
        )
    if 0 < len(families) < len(old.families):
        raise invalid(
            name,
            "spec.ipFamilyPolicy",
            policy,
            "must be 'SingleStack' to release the secondary IP family",
        )
    return fields


def resolve(
    fields: Fields, configured: tuple[IPFamily, ...], old: Intent | None, name: str
) -> Intent:
    """Kubernetes' defaulting of ``ipFamilyPolicy`` / ``ipFamilies`` for a spec.

    ``configured`` holds the Service-range families, primary first; ``old``
    the stored intent on update (None on create).

    Raises:
        ServiceValidationError: the first rule broken.
    """
    if fields.type == "ExternalName":
        return Intent(EXTERNAL, None, (), ())
    if (
        old is not None
        and old.kind != EXTERNAL
        and fields.policy == PREFER
        and old.policy in (None, PREFER)
        and _same_ips(old, fields)
        and fields.families == old.families
    ):
        # Kubernetes never upgrades or downgrades an unchanged PreferDualStack Service.
        return attrs.evolve(old, policy=PREFER)
    lonely = fields.headless and not fields.selector
    policy = fields.policy or (REQUIRE if lonely else SINGLE)
    if old is not None and old.kind != EXTERNAL:
        fields = _update_prep(fields, old, policy, name)
    families = list(fields.families)
    if policy == SINGLE and (len(fields.ips) == 2 or len(families) == 2):
        what = "cluster IPs" if len(fields.ips) == 2 else "IP families"
        raise invalid(
            name,
            "spec.ipFamilyPolicy",
            policy,
            f"must be 'RequireDualStack' or 'PreferDualStack' when multiple {what} are specified",
        )
    for i, (family, _) in enumerate(fields.ips):
        if i >= len(families):
            if family not in configured:
                raise invalid(
                    name,
                    f"spec.clusterIPs[{i}]",
                    str(family),
                    f"{family} is not configured on this cluster",
                )
            families.append(family)
    alpha_field = "spec.ipFamilies"
    if fields.alpha is not None:
        if families and families[0] is not fields.alpha:
            raise invalid(
                name,
                "spec.ipFamily",
                str(fields.alpha),
                f"must agree with ipFamilies[0] ({families[0]})",
            )
        if not families:
            families, alpha_field = [fields.alpha], "spec.ipFamily"
    if lonely:
        # Headless without selector gets no address: any family mix is fine.
        families = families or [configured[0]]
        if len(families) == 1 and policy != SINGLE:
            families.append(_other(families[0]))
        return Intent(HEADLESS, policy, tuple(families), ())
    if policy == REQUIRE and len(configured) < 2:
        raise invalid(
            name,
            "spec.ipFamilyPolicy",
            policy,
            "this cluster is not configured for dual-stack services",
        )
    for i, family in enumerate(families):
        if family not in configured:
            field = alpha_field if alpha_field == "spec.ipFamily" else f"{alpha_field}[{i}]"
            raise invalid(name, field, str(family), "not configured on this cluster")
    families = families or [configured[0]]
    if policy != SINGLE and len(families) == 1 and len(configured) == 2:
        families.append(_other(families[0]))
    if fields.headless:
        return Intent(HEADLESS, policy, tuple(families), ())
    requested: list[int | None] = [value for _, value in fields.ips[: len(families)]]
    requested += [None] * (len(families) - len(requested))
    return Intent(CLUSTER, policy, tuple(families), tuple(requested))


def merge(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``new`` with omitted (absent or None) spec fields, name and namespace taken from ``old``.

    A type change to ``ExternalName`` drops the family fields that are
    omitted or unchanged (Kubernetes' ``dropTypeDependentFields``); one from
    ``ExternalName`` does not inherit ``externalName``.

    Raises:
        ServiceValidationError: ``new`` renames the Service or moves it.
    """
    result: dict[str, Any] = plain(new)
    old_meta = _mapping(old.get("metadata"), "metadata", name)
    meta = result.get("metadata")
    if meta is None:
        meta = result["metadata"] = {}
    if isinstance(meta, dict):
        for key, default in (("name", None), ("namespace", "default")):
            before, after = old_meta.get(key) or default, meta.get(key)
            if after is None:
                if old_meta.get(key) is not None:
                    meta[key] = plain(old_meta[key])
            elif after != before:
                raise invalid(
                    name, f"metadata.{key}", after, f"may not change on update (was {before!r})"
                )
    old_spec = spec_of(old, name)
    spec = result.get("spec")
    if spec is None:
        spec = result["spec"] = {}
    if not isinstance(spec, dict):
        return result
    old_type = old_spec.get("type") or "ClusterIP"
    new_type = spec.get("type") or old_type
    skip: tuple[str, ...] = ()
    if new_type == "ExternalName" and old_type != "ExternalName":
        skip = _FAMILY_KEYS
        for key in _FAMILY_KEYS:
            if key in spec and (spec[key] is None or spec[key] == plain(old_spec.get(key))):
                del spec[key]
    elif old_type == "ExternalName" and new_type != "ExternalName":
        skip = ("externalName",)
    for key, value in old_spec.items():
        if spec.get(key) is None and key not in skip:
            spec[key] = plain(value)
    return result


def check_unchanged(old: Intent, spec: Mapping[str, Any], name: str) -> None:
    """Refuse a new ``clusterIPs[0]`` or ``ipFamilies[0]`` before anything else is checked.

    Only values that parse are compared; :func:`read_fields` reports the rest.
    """
    if old.kind == EXTERNAL or spec.get("type") == "ExternalName":
        return
    first = NONE if old.kind == HEADLESS else (old.families[0], old.requested[0])
    texts = [spec.get("clusterIP")]
    listed = spec.get("clusterIPs")
    if isinstance(listed, list) and listed:
        texts.append(listed[0])
    for text in texts:
        if not isinstance(text, str) or text == "":
            continue
        if text == NONE:
            now: Any = NONE
        else:
            try:
                value, family = parse_address(text)
            except IPAMError:
                continue
            now = (family, value)
        if now != first:
            raise invalid(name, "spec.clusterIPs[0]", text, "may not change once set")
    families = spec.get("ipFamilies")
    if (
        old.kind == CLUSTER
        and isinstance(families, list)
        and families
        and families[0] in ("IPv4", "IPv6")
        and families[0] != old.families[0]
    ):
        raise invalid(name, "spec.ipFamilies[0]", families[0], "may not change once set")


def render(manifest: dict[str, Any], intent: Intent, addresses: Sequence[str]) -> dict[str, Any]:
    """Write the four IP fields of ``intent`` (and ``addresses``) into ``manifest``'s spec."""
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        spec = manifest["spec"] = {}
    if intent.kind == EXTERNAL:
        for key in _FAMILY_KEYS:
            if spec.get(key) is None:
                spec.pop(key, None)
        return manifest
    ips = [NONE] if intent.kind == HEADLESS else list(addresses)
    spec["clusterIP"] = ips[0]
    spec["clusterIPs"] = ips
    spec["ipFamilies"] = [str(family) for family in intent.families]
    spec["ipFamilyPolicy"] = intent.policy
    return manifest
