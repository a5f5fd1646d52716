"""Service manifests: validating and defaulting the IP fields (pure functions).

The rules are Kubernetes' (``ValidateService``,
``ValidateServiceClusterIPsRelatedFields`` and the API server's
``initIPFamilyFields``), plus the seed's alpha ``spec.ipFamily``, which stands
for ``ipFamilies[0]`` and must agree with it. Kubernetes reports every error
at once; we raise the first, in Kubernetes' order. Only what decides addresses
is checked: ports and labels are the API server's business.

>>> fields = read_fields({"ipFamilyPolicy": "PreferDualStack"}, "web")
>>> intent = resolve(fields, (IPFamily.IPv4, IPFamily.IPv6), None, "web")
>>> intent.kind, intent.policy, [str(f) for f in intent.families]
('cluster', 'PreferDualStack', ['IPv4', 'IPv6'])
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dualstack_ipam.errors import IPAMError, ServiceValidationError
from dualstack_ipam.net import IPFamily, make_address, parse_address

SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
CLUSTER, HEADLESS, EXTERNAL = "cluster", "headless", "external"
NONE = "None"
_POLICIES = (SINGLE, PREFER, REQUIRE)
_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_FAMILIES = ("IPv4", "IPv6")
_FAMILY_KEYS = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "ipFamily")
_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME, _NAMESPACE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?"), re.compile(_LABEL)
_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_IMMUTABLE = "may not change once set"
_BOTH = "must be 'RequireDualStack' or 'PreferDualStack' when multiple {} are specified"

Address = tuple[IPFamily, int]


def invalid(
    name: str, field: str, value: Any, detail: str, kind: str = "Invalid value"
) -> ServiceValidationError:
    """A ServiceValidationError for ``field``, worded as the API server words it."""
    shown = "" if kind in ("Required value", "Forbidden") else f" {value!r}:"
    message = f"Service {name!r} is invalid: {field}: {kind}:{shown} {detail}"
    return ServiceValidationError(message, field=field, value=value)


def _unsupported(name: str, field: str, value: Any, choices: Sequence[str]) -> Exception:
    detail = "supported values: " + ", ".join(map(repr, choices))
    return invalid(name, field, value, detail, "Unsupported value")


MAX_DEPTH = 100
"""How deep a manifest may nest (real ones stay under 20): deeper data would
overflow Python's recursion later, in ``repr`` or ``json``, not fail here."""

MAX_VALUES = 100_000
"""How many values a manifest may hold once YAML aliases are expanded. A real
Service holds a few hundred; the limit stops an alias bomb (each level of
aliases multiplying the size) before it eats memory and time."""

_SCALARS = (str, int, float, type(None))


def plain(obj: Any, name: str, field: str = "") -> Any:
    """A deep copy with every mapping a ``dict`` and every list or tuple a ``list``.

    ``field`` is the path of ``obj`` in its manifest, for error messages.
    Only JSON data is accepted, as the Kubernetes API does: mappings with
    string keys, lists, strings, finite numbers, booleans and null.

    Raises:
        ServiceValidationError: a part contains itself (a recursive YAML
            alias), nests deeper than :data:`MAX_DEPTH`, holds more than
            :data:`MAX_VALUES` values, or is not JSON data (a date, bytes, a
            set, NaN, a generator); ``.field`` is the path of that part.
    """
    return _copy(obj, name, field, (), [MAX_VALUES])


def _copy(obj: Any, name: str, field: str, ancestors: tuple[int, ...], budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise invalid(
            name,
            field,
            "...",
            f"makes the manifest hold more than {MAX_VALUES:,} values (YAML aliases included)",
            "Forbidden",
        )
    if isinstance(obj, (Mapping, list, tuple)):
        if id(obj) in ancestors:
            raise invalid(name, field, obj, "contains itself (a recursive alias)", "Forbidden")
        if len(ancestors) == MAX_DEPTH:
            raise invalid(name, field, obj, f"nests deeper than {MAX_DEPTH} levels", "Forbidden")
        inner = (*ancestors, id(obj))
        if isinstance(obj, Mapping):
            copied = {}
            for key, value in obj.items():
                path = f"{field}.{key}" if field else str(key)
                if not isinstance(key, str):
                    raise invalid(name, path, key, "keys must be strings (JSON object keys)")
                copied[key] = _copy(value, name, path, inner, budget)
            return copied
        return [_copy(value, name, f"{field}[{i}]", inner, budget) for i, value in enumerate(obj)]
    if not isinstance(obj, _SCALARS) or (isinstance(obj, float) and not math.isfinite(obj)):
        raise invalid(name, field, obj, "must be plain data (a JSON value)")
    return obj


def read_manifest(manifest: Any) -> tuple[str, dict[str, Any]]:
    """The key (:func:`service_key`) and a plain copy (:func:`plain`) of ``manifest``.

    The copy comes first, so that nothing else ever meets a cycle or an
    overly deep value.

    Raises:
        ServiceValidationError: as :func:`plain` and :func:`service_key`.

    >>> read_manifest({"metadata": {"name": "web"}})
    ('default/web', {'metadata': {'name': 'web'}})
    """
    meta = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    tree = plain(manifest, name if isinstance(name, str) and name else "<unnamed>")
    return service_key(tree), tree


def _other(family: IPFamily) -> IPFamily:
    return IPFamily.IPv6 if family is IPFamily.IPv4 else IPFamily.IPv4


@attrs.frozen
class Fields:
    """A spec's IP fields, checked on their own; a lone ``clusterIP`` is ``ips[0]``."""

    type: str
    selector: bool
    headless: bool
    ips: tuple[Address, ...]
    families: tuple[IPFamily, ...]
    policy: str | None
    alpha: IPFamily | None


@attrs.frozen
class Intent:
    """A defaulted Service: ``kind`` is ``cluster``, ``headless`` or ``external``;
    ``requested[i]`` is the address asked for in ``families[i]`` or None (dynamic)."""

    kind: str
    policy: str | None
    families: tuple[IPFamily, ...]
    requested: tuple[int | None, ...]


_EXTERNAL = Intent(EXTERNAL, None, (), ())


def _mapping(value: Any, field: str, name: str) -> Mapping[str, Any]:
    if value is not None and not isinstance(value, Mapping):
        raise invalid(name, field, value, "must be a mapping")
    return value or {}


def spec_of(manifest: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``manifest["spec"]``; absent or None is an empty spec."""
    return _mapping(manifest.get("spec"), "spec", name)


def service_key(manifest: Any) -> str:
    """``namespace/name`` of a manifest (namespace ``default`` when absent).

    Raises:
        ServiceValidationError: not a mapping, another kind or apiVersion, a
            missing or malformed name (a DNS-1035 label) or namespace.

    >>> service_key({"metadata": {"name": "my-service"}})
    'default/my-service'
    """
    if not isinstance(manifest, Mapping):
        raise ServiceValidationError(f"a manifest must be a mapping, not {manifest!r}", field="")
    for field, want in (("kind", "Service"), ("apiVersion", "v1")):
        if manifest.get(field) not in (None, want):
            raise _unsupported("<unnamed>", field, manifest[field], [want])
    meta = _mapping(manifest.get("metadata"), "metadata", "<unnamed>")
    name, namespace = meta.get("name"), meta.get("namespace")
    namespace = "default" if namespace in (None, "") else namespace
    if name in (None, ""):
        raise invalid("<unnamed>", "metadata.name", name, "name is required", "Required value")
    for field, value, pattern in (("name", name, _NAME), ("namespace", namespace, _NAMESPACE)):
        if not isinstance(value, str) or len(value) > 63 or not pattern.fullmatch(value):
            what = "DNS-1035 label" if pattern is _NAME else "DNS-1123 label"
            detail = f"must be a {what}: at most 63 of a-z, 0-9 and '-'"
            raise invalid(str(name), f"metadata.{field}", value, detail)
    return f"{namespace}/{name}"


def _list(spec: Mapping[str, Any], key: str, name: str) -> list[Any]:
    value = spec.get(key)
    if value is not None and (not isinstance(value, Sequence) or isinstance(value, str)):
        raise invalid(name, f"spec.{key}", value, "must be a list")
    return list(value or ())


def _read_external(spec: Mapping[str, Any], name: str) -> Fields:
    for key in _FAMILY_KEYS:
        if spec.get(key) not in (None, "", []):
            field = "spec.clusterIPs" if key == "clusterIP" else f"spec.{key}"
            detail = "may not be set for ExternalName services"
            raise invalid(name, field, spec[key], detail, "Forbidden")
    target = spec.get("externalName")
    if target in (None, ""):
        raise invalid(name, "spec.externalName", target, "required", "Required value")
    cname = target.removesuffix(".") if isinstance(target, str) else ""
    if len(cname) > 253 or not _SUBDOMAIN.fullmatch(cname):
        raise invalid(name, "spec.externalName", target, "must be a DNS-1123 subdomain")
    return Fields("ExternalName", False, False, (), (), None, None)


def _read_texts(spec: Mapping[str, Any], name: str) -> list[str]:
    """``clusterIPs``, with ``clusterIP`` standing for ``clusterIPs[0]``."""
    first = spec.get("clusterIP")
    first = None if first == "" else first
    if first is not None and not isinstance(first, str):
        raise invalid(name, "spec.clusterIP", first, "must be an IP address or 'None'")
    texts = _list(spec, "clusterIPs", name)
    if first is None and texts:
        detail = "must be empty when `clusterIP` is not specified"
        raise invalid(name, "spec.clusterIPs", texts, detail)
    if first is not None and texts and texts[0] != first:
        raise invalid(name, "spec.clusterIPs", texts, "first value must match `clusterIP`")
    texts = texts or ([first] if first else [])
    if texts[:1] == [NONE] and len(texts) > 1:
        raise invalid(name, "spec.clusterIPs", texts, "'None' must be the first and only value")
    return texts


def _parse_ips(texts: list[str], families: Sequence[IPFamily], name: str) -> list[Address]:
    ips: list[Address] = []
    for i, text in enumerate(texts):
        try:
            value, family = parse_address(text)
        except IPAMError:
            raise invalid(name, f"spec.clusterIPs[{i}]", text, "must be a valid IP") from None
        if i < len(families) and family is not families[i]:
            detail = f"expected an {families[i]} value as indicated by `ipFamilies[{i}]`"
            raise invalid(name, f"spec.clusterIPs[{i}]", text, detail)
        ips.append((family, value))
    if len(ips) > 2:
        raise invalid(name, "spec.clusterIPs", texts, "may only hold up to 2 values")
    if len(ips) == 2 and ips[0][0] is ips[1][0]:
        raise invalid(name, "spec.clusterIPs[1]", texts[1], "one IP per family at most")
    return ips


def read_fields(spec: Mapping[str, Any], name: str) -> Fields:
    """Check and normalise the IP fields of ``spec`` on their own.

    Raises:
        ServiceValidationError: the first rule broken, with its field path.
    """
    kind = spec.get("type")
    kind = "ClusterIP" if kind in (None, "") else kind
    if kind not in _TYPES:
        raise _unsupported(name, "spec.type", kind, _TYPES)
    if kind == "ExternalName":
        return _read_external(spec, name)
    selector = _mapping(spec.get("selector"), "spec.selector", name)
    alpha = spec.get("ipFamily")
    if alpha not in (None, *_FAMILIES):
        raise _unsupported(name, "spec.ipFamily", alpha, _FAMILIES)
    texts = _read_texts(spec, name)
    families: list[IPFamily] = []
    for i, value in enumerate(_list(spec, "ipFamilies", name)):
        if value not in _FAMILIES:
            raise _unsupported(name, f"spec.ipFamilies[{i}]", value, _FAMILIES)
        if value in families:
            raise invalid(name, f"spec.ipFamilies[{i}]", value, "listed twice", "Duplicate value")
        families.append(IPFamily(value))
    policy = spec.get("ipFamilyPolicy")
    if policy not in (None, *_POLICIES):
        raise _unsupported(name, "spec.ipFamilyPolicy", policy, _POLICIES)
    headless = texts == [NONE]
    if headless and kind != "ClusterIP":
        detail = f"may not be set to 'None' for {kind} services"
        raise invalid(name, "spec.clusterIPs[0]", NONE, detail)
    ips = () if headless else tuple(_parse_ips(texts, families, name))
    alpha = None if alpha is None else IPFamily(alpha)
    return Fields(kind, bool(selector), headless, ips, tuple(families), policy, alpha)


def describe(fields: Fields) -> Intent:
    """The intent a stored manifest embodies (missing families inferred from its IPs)."""
    if fields.type == "ExternalName":
        return _EXTERNAL
    families = fields.families + tuple(f for f, _ in fields.ips[len(fields.families) :])
    if fields.headless:
        return Intent(HEADLESS, fields.policy, families, ())
    # A family listed without its address gets None, which no allocation matches.
    requested = tuple(v for _, v in fields.ips) + (None,) * (len(families) - len(fields.ips))
    return Intent(CLUSTER, fields.policy, families, requested)


def addresses(intent: Intent) -> tuple[tuple[IPFamily, int | None], ...]:
    """``(family, requested)`` pairs of a ``cluster`` intent, else ()."""
    if intent.kind != CLUSTER:
        return ()
    return tuple(zip(intent.families, intent.requested, strict=True))


def describes(intent: Intent, held: Sequence[Address]) -> bool:
    """Whether a Service created with ``intent`` may own ``held`` (idempotent re-create)."""
    pairs = addresses(intent)
    return len(pairs) == len(held) and all(
        f is g and want in (None, v) for (f, want), (g, v) in zip(pairs, held, strict=True)
    )


def _same_ips(old: Intent, fields: Fields) -> bool:
    if old.kind == HEADLESS or fields.headless:
        return old.kind == HEADLESS and fields.headless
    return addresses(old) == fields.ips


def _untouched_prefer(old: Intent, fields: Fields) -> bool:
    """Kubernetes never upgrades nor downgrades an unchanged PreferDualStack Service."""
    return (
        fields.policy == PREFER
        and old.policy in (None, PREFER)
        and _same_ips(old, fields)
        and fields.families == old.families
    )


def _update_prep(fields: Fields, old: Intent, policy: str, name: str) -> Fields:
    """On update, SingleStack trims unchanged pairs; only SingleStack may shorten them."""
    ips, families = fields.ips, fields.families
    if policy == SINGLE:
        ips = ips[:1] if _same_ips(old, fields) else ips
        families = families[:1] if families == old.families else families
        return attrs.evolve(fields, ips=ips, families=families)
    old_count = 1 if old.kind == HEADLESS else len(old.requested)
    for count, before, what in (
        (1 if fields.headless else len(ips), old_count, "cluster IP"),
        (len(families), len(old.families), "IP family"),
    ):
        if 0 < count < before:
            detail = f"must be 'SingleStack' to release the secondary {what}"
            raise invalid(name, "spec.ipFamilyPolicy", policy, detail)
    return fields


def resolve(
    fields: Fields, configured: tuple[IPFamily, ...], old: Intent | None, name: str
) -> Intent:
    """Kubernetes' defaulting of ``ipFamilyPolicy`` and ``ipFamilies``.

    ``configured`` lists the Service-range families, primary first; ``old`` is
    the stored intent on update (None on create or from ExternalName).

    Raises:
        ServiceValidationError: the first rule broken.
    """
    if fields.type == "ExternalName":
        return _EXTERNAL
    if old is not None and _untouched_prefer(old, fields):
        return attrs.evolve(old, policy=PREFER)
    lonely = fields.headless and not fields.selector
    policy = fields.policy or (REQUIRE if lonely else SINGLE)
    if old is not None:
        fields = _update_prep(fields, old, policy, name)
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
            families.append(_other(families[0]))
        return Intent(HEADLESS, policy, tuple(families), ())
    if policy == REQUIRE and len(configured) < 2:
        detail = "this cluster is not configured for dual-stack services"
        raise invalid(name, "spec.ipFamilyPolicy", policy, detail)
    for i, family in enumerate(families):
        if family not in configured:
            field = "spec.ipFamily" if from_alpha else f"spec.ipFamilies[{i}]"
            raise invalid(name, field, str(family), "not configured on this cluster")
    if policy != SINGLE and len(families) == 1 and len(configured) == 2:
        families.append(_other(families[0]))
    if fields.headless:
        return Intent(HEADLESS, policy, tuple(families), ())
    requested = [value for _, value in fields.ips[: len(families)]]
    dynamic = (None,) * (len(families) - len(requested))
    return Intent(CLUSTER, policy, tuple(families), (*requested, *dynamic))


_PATCHED = ("clusterIP", "clusterIPs", "ipFamilies")


def _merge_metadata(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> dict[str, Any]:
    meta = dict(_mapping(new.get("metadata"), "metadata", name))
    old_meta = _mapping(old.get("metadata"), "metadata", name)
    for key, default in (("name", None), ("namespace", "default")):
        given, before = meta.get(key), old_meta.get(key)
        if given is None and before is not None:
            meta[key] = before
        elif given not in (None, before or default):
            detail = f"may not change on update (was {before or default!r})"
            raise invalid(name, f"metadata.{key}", given, detail)
    return meta


def merge(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``new`` with omitted spec fields, the name and the namespace from ``old``.

    Both are plain trees (:func:`plain`); the result shares their parts.
    Omitted means absent or None, and for ``clusterIP``, ``clusterIPs`` and
    ``ipFamilies`` also ``""`` and ``[]`` unless either side is ExternalName:
    Kubernetes' ``patchAllocatedValues`` keeps what was allocated when a
    client resubmits its YAML, so a headless Service stays headless. A change
    to ``ExternalName`` drops the family fields that are omitted or unchanged
    (Kubernetes' ``dropTypeDependentFields``); one from it does not inherit
    ``externalName``.

    Raises:
        ServiceValidationError: ``new``'s metadata or spec is not a mapping,
            or ``new`` renames or moves the Service.

    >>> old = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}
    >>> merge(old, {"spec": {"clusterIP": "", "clusterIPs": []}}, "h")["spec"]
    {'clusterIP': 'None', 'clusterIPs': ['None']}
    """
    result = dict(new)
    result["metadata"] = _merge_metadata(old, new, name)
    spec = result["spec"] = dict(spec_of(new, name))
    old_spec = spec_of(old, name)
    old_type, new_type = old_spec.get("type"), spec.get("type")
    new_type = old_type if new_type is None else new_type
    old_external, new_external = old_type == "ExternalName", new_type == "ExternalName"
    skip: Sequence[str] = ()
    if new_external and not old_external:
        skip = _FAMILY_KEYS
        for key in _FAMILY_KEYS:
            if key in spec and spec[key] in (None, old_spec.get(key)):
                del spec[key]
    elif old_external and not new_external:
        skip = ("externalName",)
    patched = () if old_external or new_external else _PATCHED
    for key, value in old_spec.items():
        given = spec.get(key)
        if key not in skip and (given is None or (key in patched and given in ("", []))):
            spec[key] = value
    return result


def check_unchanged(old: Intent, spec: Mapping[str, Any], name: str) -> None:
    """Refuse a new ``clusterIPs[0]`` or ``ipFamilies[0]`` (values that parse only)."""
    if old.kind == EXTERNAL or spec.get("type") == "ExternalName":
        return
    first = NONE if old.kind == HEADLESS else (old.families[0], old.requested[0])
    listed = spec.get("clusterIPs")
    for text in (spec.get("clusterIP"), listed[0] if isinstance(listed, list) and listed else None):
        try:
            now = text if text == NONE else parse_address(text)[::-1]
        except IPAMError:
            continue
        if now != first:
            raise invalid(name, "spec.clusterIPs[0]", text, _IMMUTABLE)
    families = spec.get("ipFamilies")
    family = families[0] if isinstance(families, list) and families else None
    if old.kind == CLUSTER and family in _FAMILIES and family != old.families[0]:
        raise invalid(name, "spec.ipFamilies[0]", family, _IMMUTABLE)


def check_kept(new: Intent, held: Sequence[Address], name: str) -> None:
    """An update may add or drop the secondary address, never change one it keeps.

    With :func:`check_unchanged` (primary IP, hence family and headlessness)
    this is every immutability rule of an update.
    """
    for i, (want, (family, value)) in enumerate(zip(new.requested, held, strict=False)):
        if want not in (None, value):
            text = str(make_address(want, family))
            raise invalid(name, f"spec.clusterIPs[{i}]", text, _IMMUTABLE)


def render(manifest: dict[str, Any], intent: Intent, ips: Sequence[str]) -> dict[str, Any]:
    """Write the four IP fields of ``intent`` and ``ips`` into ``manifest``'s spec."""
    spec = manifest["spec"] = manifest.get("spec") or {}
    if intent.kind == EXTERNAL:  # validation left only empty values here
        for key in _FAMILY_KEYS:
            spec.pop(key, None)
        return manifest
    ips = [NONE] if intent.kind == HEADLESS else list(ips)
    spec.update(clusterIP=ips[0], clusterIPs=ips, ipFamilyPolicy=intent.policy)
    spec["ipFamilies"] = [str(family) for family in intent.families]
    return manifest
