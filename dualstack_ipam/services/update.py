"""Updating a Service: merging ``new`` over ``old``, and the rules of a change.

The third stage of the manifest rules. Kubernetes' update rules: fields
omitted in ``new`` are inherited from ``old`` (``patchAllocatedValues``
for the allocated ones); ``clusterIPs[0]``, ``ipFamilies[0]`` and the
alpha ``spec.ipFamily`` never change; the secondary family is added with a
dual-stack policy and dropped only with ``SingleStack``; an unchanged
``PreferDualStack`` Service is neither upgraded nor downgraded.

Where the contract is silent, as a Kubernetes operator expects: every
omitted (absent or None) ``spec`` field, and the name and namespace, come
from ``old``; ``clusterIP: ""``, ``clusterIPs: []`` and ``ipFamilies: []``
count as omitted too (``patchAllocatedValues``); the rest of ``new`` is taken
as it is.

>>> old = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}
>>> merge(old, {"spec": {"clusterIP": "", "clusterIPs": []}}, "h")["spec"]
{'clusterIP': 'None', 'clusterIPs': ['None']}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dualstack_ipam.errors import IPAMError, ServiceValidationError
from dualstack_ipam.net import IPFamily, make_address, parse_address
from dualstack_ipam.owners import Address
from dualstack_ipam.services.intent import (
    CLUSTER,
    EXTERNAL,
    HEADLESS,
    PREFER,
    SINGLE,
    Intent,
    addresses,
    default_policy,
    describe,
    resolve,
)
from dualstack_ipam.services.read import (
    FAMILY_KEYS,
    NONE,
    Fields,
    invalid,
    mapping,
    plain,
    read_fields,
    read_manifest,
    service_key,
    spec_of,
)

__all__ = [
    "check_kept",
    "check_old",
    "check_unchanged",
    "merge",
    "read_new",
    "read_old",
    "resolve_update",
]

_IMMUTABLE = "may not change once set"
_PATCHED = ("clusterIP", "clusterIPs", "ipFamilies")


def read_old(old: Any) -> tuple[str, dict[str, Any], Intent]:
    """The key, a plain copy and the intent of an update's ``old`` manifest.

    Raises:
        ServiceValidationError: ``old`` is invalid (the message starts with
            "old manifest").

    Complexity:
        O(size of ``old``).
    """
    try:
        key, tree = read_manifest(old)
        name = key.partition("/")[2]
        return key, tree, describe(read_fields(spec_of(tree, name), name))
    except ServiceValidationError as exc:
        message = f"old manifest: {exc}"
        raise ServiceValidationError(message, field=exc.field, value=exc.value) from None


def read_new(old: dict[str, Any], new: Any, name: str) -> dict[str, Any]:
    """A plain copy of ``new`` merged over ``old`` (:func:`merge`), its kind checked.

    Raises:
        ServiceValidationError: ``new`` is not a mapping of plain data, or
            as :func:`merge` and :func:`~dualstack_ipam.services.read.service_key`.

    Complexity:
        O(size of ``new``).
    """
    tree = plain(new, name)
    if not isinstance(tree, dict):
        raise invalid(name, "", tree, "the new manifest must be a mapping")
    merged = merge(old, tree, name)
    service_key(merged)  # new's kind and apiVersion
    return merged


def check_old(key: str, old: Intent, held: Sequence[Address]) -> None:
    """Refuse an ``old`` manifest that does not list exactly what ``key`` holds.

    Raises:
        ServiceValidationError: at ``spec.clusterIPs``.

    Complexity:
        O(1).
    """
    listed = addresses(old)
    if listed == tuple(held) and (listed or old.kind != CLUSTER):
        return
    ips = [str(make_address(v, f)) for f, v in listed if v is not None]
    holds = [str(make_address(v, f)) for f, v in held]
    families = [str(family) for family in old.families]
    message = (
        f"the old manifest of {key!r} lists cluster IPs {ips} for ipFamilies {families}, "
        f"but this allocator holds {holds} for it"
    )
    raise ServiceValidationError(message, field="spec.clusterIPs", value=ips)


def _merge_metadata(old: Mapping[str, Any], new: Mapping[str, Any], name: str) -> dict[str, Any]:
    meta = dict(mapping(new.get("metadata"), "metadata", name))
    old_meta = mapping(old.get("metadata"), "metadata", name)
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

    Both are plain trees (:func:`~dualstack_ipam.services.read.plain`); the
    result shares their parts. Omitted means absent or None, and for
    ``clusterIP``, ``clusterIPs`` and ``ipFamilies`` also ``""`` and ``[]``
    unless either side is ExternalName: Kubernetes' ``patchAllocatedValues``
    keeps what was allocated when a client resubmits its YAML, so a
    headless Service stays headless. A change to ``ExternalName`` drops the
    family fields that are omitted or unchanged (Kubernetes'
    ``dropTypeDependentFields``); one from it does not inherit
    ``externalName``.

    Raises:
        ServiceValidationError: ``new``'s metadata or spec is not a mapping,
            or ``new`` renames or moves the Service.

    Complexity:
        O(number of spec and metadata fields).
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
        skip = FAMILY_KEYS
        for key in FAMILY_KEYS:
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


def check_unchanged(
    old: Intent, old_spec: Mapping[str, Any], spec: Mapping[str, Any], name: str
) -> None:
    """Refuse a new ``clusterIPs[0]``, ``ipFamilies[0]`` or ``ipFamily``.

    ``spec`` is the merged one; only values that parse are compared (the
    others are refused later, at their field). The alpha ``spec.ipFamily``
    is set at creation only (1.16-1.19): it may not differ from the one
    ``old`` states, or from its primary family when ``old`` states none.

    Raises:
        ServiceValidationError: at the field that changed.

    Complexity:
        O(1).
    """
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
    if old.kind == CLUSTER and family in tuple(IPFamily) and family != old.families[0]:
        raise invalid(name, "spec.ipFamilies[0]", family, _IMMUTABLE)
    alpha, was = spec.get("ipFamily"), old_spec.get("ipFamily")
    was = was if was is not None else (str(old.families[0]) if old.families else None)
    if alpha in tuple(IPFamily) and was is not None and alpha != was:
        raise invalid(name, "spec.ipFamily", alpha, _IMMUTABLE)


def check_kept(new: Intent, held: Sequence[Address], name: str) -> None:
    """An update may add or drop the secondary address, never change one it keeps.

    With :func:`check_unchanged` (primary IP, hence family and headlessness)
    this is every immutability rule of an update.

    Raises:
        ServiceValidationError: at ``spec.clusterIPs[i]`` of the changed one.

    Complexity:
        O(1).
    """
    for i, (want, (family, value)) in enumerate(zip(new.requested, held, strict=False)):
        if want not in (None, value):
            text = str(make_address(want, family))
            raise invalid(name, f"spec.clusterIPs[{i}]", text, _IMMUTABLE)


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


def _trim(fields: Fields, old: Intent, policy: str, name: str) -> Fields:
    """SingleStack trims unchanged pairs; only SingleStack may shorten them."""
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


def resolve_update(
    fields: Fields, configured: tuple[IPFamily, ...], old: Intent | None, name: str
) -> Intent:
    """The intent of an updated spec; ``old`` is the stored intent (None from ExternalName).

    Raises:
        ServiceValidationError: the first rule broken.

    Complexity:
        O(1).
    """
    if old is None or fields.type == "ExternalName":
        return resolve(fields, configured, name)
    if _untouched_prefer(old, fields):
        return attrs.evolve(old, policy=PREFER)
    return resolve(_trim(fields, old, default_policy(fields), name), configured, name)
