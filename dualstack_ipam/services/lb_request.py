"""The addresses a ``type: LoadBalancer`` Service asks for, read from its manifest.

A Service may ask for its load-balancer addresses with ``spec.loadBalancerIP``
(deprecated in Kubernetes, still honoured by MetalLB and Cilium) or the
annotations of MetalLB (``metallb.universe.tf/loadBalancerIPs``) and Cilium's
LB-IPAM (``lbipam.cilium.io/ips``), comma-separated. The sources must agree:
a Service that asks for different addresses in two places is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dualstack_ipam.errors import IPAMError
from dualstack_ipam.net import parse_address
from dualstack_ipam.owners import Address
from dualstack_ipam.services import read

__all__ = ["ANNOTATIONS", "Requested", "requested"]

ANNOTATIONS = ("metallb.universe.tf/loadBalancerIPs", "lbipam.cilium.io/ips")
"""The annotations a Service asks for its addresses with (MetalLB's, Cilium's)."""

Requested = tuple[tuple[str, str, Address], ...]
"""``(field, text, address)`` of each requested address."""


def _texts(value: Any, field: str, name: str) -> list[str]:
    if not isinstance(value, str):
        raise read.invalid(name, field, value, "must be a comma-separated list of IPs")
    return [part.strip() for part in value.split(",") if part.strip()]


def requested(tree: Mapping[str, Any], name: str) -> Requested:
    """The addresses the Service ``tree`` (named ``name``) asks for.

    Read from ``spec.loadBalancerIP`` and the :data:`ANNOTATIONS`, each a
    comma-separated list of at most one address per family; every source
    given must ask for the same addresses.

    Raises:
        ServiceValidationError: a source that is not a str, an address that
            does not parse, two of one family, or sources that disagree
            (``.field`` names the source).

    Complexity:
        O(size of the sources).

    >>> requested({"spec": {"loadBalancerIP": "192.0.2.5"}}, "web")
    (('spec.loadBalancerIP', '192.0.2.5', (<IPFamily.IPv4: 'IPv4'>, 3221225989)),)
    """
    spec = read.spec_of(tree, name)
    meta = read.mapping(tree.get("metadata"), "metadata", name)
    notes = read.mapping(meta.get("annotations"), "metadata.annotations", name)
    sources = [("spec.loadBalancerIP", spec.get("loadBalancerIP"))]
    sources += [(f"metadata.annotations[{a}]", notes.get(a)) for a in ANNOTATIONS]
    found: list[Requested] = []
    for field, value in sources:
        if value in (None, ""):
            continue
        parsed: list[tuple[str, str, Address]] = []
        for text in _texts(value, field, name):
            try:
                address = parse_address(text)[::-1]
            except IPAMError:
                raise read.invalid(name, field, text, "must be a valid IP") from None
            if any(family is address[0] for _, _, (family, _) in parsed):
                detail = "may specify no more than one IP for each IP family"
                raise read.invalid(name, field, value, detail)
            parsed.append((field, text, address))
        if found and {a for *_, a in found[0]} != {a for *_, a in parsed}:
            raise read.invalid(name, field, value, f"disagrees with {found[0][0][0]}")
        found.append(tuple(parsed))
    return found[0] if found else ()
