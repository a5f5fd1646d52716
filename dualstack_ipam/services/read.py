"""Reading a Service manifest: plain data, its key, and its IP fields checked alone.

The first stage of the manifest rules (then :mod:`~dualstack_ipam.services.intent`,
:mod:`~dualstack_ipam.services.update`, :mod:`~dualstack_ipam.services.render`).
The rules are Kubernetes' ``ValidateService`` and
``ValidateServiceClusterIPsRelatedFields``, plus the seed's alpha
``spec.ipFamily``. Kubernetes reports every error at once; we raise the
first, in Kubernetes' order. Only what decides addresses is checked: ports
and labels are the API server's business.

>>> key, tree = read_manifest({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.1"}})
>>> key, read_fields(spec_of(tree, "web"), "web").ips
('default/web', ((<IPFamily.IPv4: 'IPv4'>, 167772161),))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dualstack_ipam.errors import IPAMError, ServiceValidationError
from dualstack_ipam.net import IPFamily, parse_address
from dualstack_ipam.net.names import is_dns1035_label, is_dns1123_label, is_dns1123_subdomain
from dualstack_ipam.owners import Address

__all__ = [
    "FAMILY_KEYS",
    "MAX_DEPTH",
    "MAX_VALUES",
    "NONE",
    "Fields",
    "invalid",
    "mapping",
    "plain",
    "read_fields",
    "read_manifest",
    "service_key",
    "spec_of",
]

NONE = "None"
"""The ``clusterIP`` of a headless Service."""
FAMILY_KEYS = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "ipFamily")
"""The spec fields that decide a Service's addresses."""
POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_FAMILIES = ("IPv4", "IPv6")

MAX_DEPTH = 100
"""How deep a manifest may nest (real ones stay under 20): deeper data would
overflow Python's recursion later, in ``repr`` or ``json``, not fail here."""

MAX_VALUES = 100_000
"""How many values a manifest may hold once YAML aliases are expanded. A real
Service holds a few hundred; the limit stops an alias bomb (each level of
aliases multiplying the size) before it eats memory and time."""

_SCALARS = (str, int, float, type(None))


def invalid(
    name: str, field: str, value: Any, detail: str, kind: str = "Invalid value"
) -> ServiceValidationError:
    """A ServiceValidationError for ``field``, worded as the API server words it.

    Complexity:
        O(1) plus the ``repr`` of ``value``.

    >>> str(invalid("web", "spec.type", "Ingress", "not a type"))
    "Service 'web' is invalid: spec.type: Invalid value: 'Ingress': not a type"
    """
    shown = "" if kind in ("Required value", "Forbidden") else f" {value!r}:"
    message = f"Service {name!r} is invalid: {field}: {kind}:{shown} {detail}"
    return ServiceValidationError(message, field=field, value=value)


def unsupported(name: str, field: str, value: Any, choices: Sequence[str]) -> Exception:
    """The "Unsupported value" error, listing ``choices``.

    Complexity:
        O(len(choices)).
    """
    detail = "supported values: " + ", ".join(map(repr, choices))
    return invalid(name, field, value, detail, "Unsupported value")


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

    Complexity:
        O(size of ``obj``), at most :data:`MAX_VALUES` values.

    >>> plain({"spec": ({"port": 80},)}, "web")
    {'spec': [{'port': 80}]}
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

    Complexity:
        O(size of ``manifest``).

    >>> read_manifest({"metadata": {"name": "web"}})
    ('default/web', {'metadata': {'name': 'web'}})
    """
    meta = manifest.get("metadata") if isinstance(manifest, Mapping) else None
    name = meta.get("name") if isinstance(meta, Mapping) else None
    tree = plain(manifest, name if isinstance(name, str) and name else "<unnamed>")
    return service_key(tree), tree


def mapping(value: Any, field: str, name: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping, ``{}`` if it is None.

    Raises:
        ServiceValidationError: anything else, at ``field``.

    Complexity:
        O(1).
    """
    if value is not None and not isinstance(value, Mapping):
        raise invalid(name, field, value, "must be a mapping")
    return value or {}


def spec_of(manifest: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """``manifest["spec"]``; absent or None is an empty spec.

    Raises:
        ServiceValidationError: a spec that is not a mapping.

    Complexity:
        O(1).
    """
    return mapping(manifest.get("spec"), "spec", name)


def service_key(manifest: Any) -> str:
    """The key of a Service manifest: ``namespace/name`` (namespace ``default`` when absent).

    The allocators record a Service's addresses under this key; plain keys
    given to ``allocate`` share the same namespace.

    Raises:
        ServiceValidationError: not a mapping, another kind or apiVersion, a
            missing or malformed name (a DNS-1035 label) or namespace (a
            DNS-1123 label).

    Complexity:
        O(1) (names are at most 63 characters).

    >>> service_key({"metadata": {"name": "my-service"}})
    'default/my-service'
    >>> service_key({"metadata": {"name": "dns", "namespace": "kube-system"}})
    'kube-system/dns'
    """
    if not isinstance(manifest, Mapping):
        raise ServiceValidationError(f"a manifest must be a mapping, not {manifest!r}", field="")
    for field, want in (("kind", "Service"), ("apiVersion", "v1")):
        if manifest.get(field) not in (None, want):
            raise unsupported("<unnamed>", field, manifest[field], [want])
    meta = mapping(manifest.get("metadata"), "metadata", "<unnamed>")
    name, namespace = meta.get("name"), meta.get("namespace")
    namespace = "default" if namespace in (None, "") else namespace
    if name in (None, ""):
        raise invalid("<unnamed>", "metadata.name", name, "name is required", "Required value")
    for field, value, check, what in (
        ("name", name, is_dns1035_label, "DNS-1035 label"),
        ("namespace", namespace, is_dns1123_label, "DNS-1123 label"),
    ):
        if not check(value):
            detail = f"must be a {what}: at most 63 of a-z, 0-9 and '-'"
            raise invalid(str(name), f"metadata.{field}", value, detail)
    return f"{namespace}/{name}"


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


def _list(spec: Mapping[str, Any], key: str, name: str) -> list[Any]:
    value = spec.get(key)
    if value is not None and (not isinstance(value, Sequence) or isinstance(value, str)):
        raise invalid(name, f"spec.{key}", value, "must be a list")
    return list(value or ())


def _read_external(spec: Mapping[str, Any], name: str) -> Fields:
    for key in FAMILY_KEYS:
        if spec.get(key) not in (None, "", []):
            field = "spec.clusterIPs" if key == "clusterIP" else f"spec.{key}"
            detail = "may not be set for ExternalName services"
            raise invalid(name, field, spec[key], detail, "Forbidden")
    target = spec.get("externalName")
    if target in (None, ""):
        raise invalid(name, "spec.externalName", target, "required", "Required value")
    if not is_dns1123_subdomain(target.removesuffix(".") if isinstance(target, str) else None):
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


def _parse_ips(texts: list[str], families: Sequence[IPFamily], name: str) -> tuple[Address, ...]:
    """The cluster IPs, in ``ValidateServiceClusterIPsRelatedFields``' order of checks."""
    ips: list[Address] = []
    for i, text in enumerate(texts):
        try:
            ips.append(parse_address(text)[::-1])
        except IPAMError:
            raise invalid(name, f"spec.clusterIPs[{i}]", text, "must be a valid IP") from None
    if len(ips) > 2:
        raise invalid(name, "spec.clusterIPs", texts, "may only hold up to 2 values")
    if len(ips) == 2 and ips[0][0] is ips[1][0]:
        detail = "may specify no more than one IP for each IP family"
        raise invalid(name, "spec.clusterIPs", texts, detail)
    for i, ((family, _), want) in enumerate(zip(ips, families, strict=False)):
        if family is not want:
            detail = f"expected an {want} value as indicated by `ipFamilies[{i}]`"
            raise invalid(name, f"spec.clusterIPs[{i}]", texts[i], detail)
    return tuple(ips)


def read_fields(spec: Mapping[str, Any], name: str) -> Fields:
    """Check and normalise the IP fields of ``spec`` on their own.

    Raises:
        ServiceValidationError: the first rule broken, with its field path.

    Complexity:
        O(size of the IP fields).

    >>> read_fields({"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}, "web").families
    (<IPFamily.IPv6: 'IPv6'>,)
    """
    kind = spec.get("type")
    kind = "ClusterIP" if kind in (None, "") else kind
    if kind not in _TYPES:
        raise unsupported(name, "spec.type", kind, _TYPES)
    if kind == "ExternalName":
        return _read_external(spec, name)
    selector = mapping(spec.get("selector"), "spec.selector", name)
    alpha = spec.get("ipFamily")
    if alpha not in (None, *_FAMILIES):
        raise unsupported(name, "spec.ipFamily", alpha, _FAMILIES)
    texts = _read_texts(spec, name)
    families: list[IPFamily] = []
    for i, value in enumerate(_list(spec, "ipFamilies", name)):
        if value not in _FAMILIES:
            raise unsupported(name, f"spec.ipFamilies[{i}]", value, _FAMILIES)
        if value in families:
            raise invalid(name, f"spec.ipFamilies[{i}]", value, "listed twice", "Duplicate value")
        families.append(IPFamily(value))
    policy = spec.get("ipFamilyPolicy")
    if policy not in (None, *POLICIES):
        raise unsupported(name, "spec.ipFamilyPolicy", policy, POLICIES)
    headless = texts == [NONE]
    if headless and kind != "ClusterIP":
        detail = f"may not be set to 'None' for {kind} services"
        raise invalid(name, "spec.clusterIPs[0]", NONE, detail)
    ips = () if headless else _parse_ips(texts, families, name)
    alpha = None if alpha is None else IPFamily(alpha)
    return Fields(kind, bool(selector), headless, ips, tuple(families), policy, alpha)
