"""Kubernetes Node objects in, Node objects out: ``NodeCIDRAllocator.allocate_node``.

What kube-controller-manager's range allocator does with a Node
(``AllocateOrOccupyCIDR``): a Node that already carries ``spec.podCIDRs``
has them occupied (the API server lets them be set only once, so they are
never replaced nor completed); one without gets a CIDR per family, written
to ``spec.podCIDRs`` (primary family first) and ``spec.podCIDR`` (the
first). Unlike Kubernetes, which matches ``podCIDRs`` to its CIDR sets by
position, the CIDRs are matched by family, and a failure changes nothing.

Every entry is checked on its own first (the checks of ``occupy``, nothing
changed), so an error names its field: ``spec.podCIDRs[1]``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dualstack_ipam.errors import InvalidConfigError, IPAMError
from dualstack_ipam.net import IPFamily, parse_network

if TYPE_CHECKING:
    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator

__all__ = ["allocate_node", "read_node"]


def _invalid(field: str, message: str, value: Any) -> InvalidConfigError:
    return InvalidConfigError(f"Node {field}: {message}, got {value!r}", value=value)


def read_node(node: Any) -> tuple[str, list[str]]:
    """The name of the Node object ``node`` and the pod CIDRs it carries (text).

    ``spec.podCIDRs`` when set, else ``[spec.podCIDR]`` when that is set.

    Raises:
        InvalidConfigError: not a mapping; no non-empty ``metadata.name``;
            ``spec`` not a mapping; ``spec.podCIDRs`` not a list of str;
            ``spec.podCIDR`` not a str or unlike ``spec.podCIDRs[0]``.

    Complexity:
        O(size of ``spec.podCIDRs``).

    >>> read_node({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24"}})
    ('n1', ['10.0.0.0/24'])
    """
    if not isinstance(node, Mapping):
        raise _invalid("object", "a Node must be a mapping", node)
    metadata = node.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise _invalid("metadata.name", "a Node needs a non-empty str name", name)
    spec = node.get("spec")
    if spec is None:
        return name, []
    if not isinstance(spec, Mapping):
        raise _invalid("spec", "must be a mapping", spec)
    cidrs, single = spec.get("podCIDRs"), spec.get("podCIDR")
    if single not in (None, "") and not isinstance(single, str):
        raise _invalid("spec.podCIDR", "must be a str", single)
    if cidrs is None or cidrs == []:
        return name, [single] if single else []
    if not isinstance(cidrs, list) or not all(isinstance(c, str) and c for c in cidrs):
        raise _invalid("spec.podCIDRs", "must be a list of non-empty str", cidrs)
    if single and single != cidrs[0]:
        raise _invalid("spec.podCIDR", f"must equal spec.podCIDRs[0] ({cidrs[0]!r})", single)
    return name, list(cidrs)


def _named(exc: IPAMError, field: str) -> IPAMError:
    """``exc`` with its message prefixed by ``field`` (class and attributes kept)."""
    exc.args = (f"Node {field}: {exc.args[0] if exc.args else exc}", *exc.args[1:])
    return exc


def allocate_node(alloc: NodeCIDRAllocator, node: Mapping[str, Any]) -> dict[str, Any]:
    """See :meth:`NodeCIDRAllocator.allocate_node`.

    The plain ``occupy`` / ``allocate`` are called (not a subclass's), so
    that a durable side makes the whole call one transaction.

    Raises:
        InvalidConfigError, NotInRangeError, FamilyNotConfiguredError,
            AlreadyAllocatedError, PoolExhaustedError: see the method.

    Complexity:
        O(size of the object) plus the allocator's call.

    >>> from dualstack_ipam import ClusterConfig, NodeCIDRAllocator
    >>> alloc = NodeCIDRAllocator(ClusterConfig("10.0.0.0/16"))
    >>> allocate_node(alloc, {"metadata": {"name": "a"}, "spec": {"podCIDRs": ["10.0.9.0/24"]}})
    {'metadata': {'name': 'a'}, 'spec': {'podCIDRs': ['10.0.9.0/24'], 'podCIDR': '10.0.9.0/24'}}
    """
    from dualstack_ipam.cluster.nodes import NodeCIDRAllocator

    name, cidrs = read_node(node)
    field = "spec.podCIDRs" if cidrs and node.get("spec", {}).get("podCIDRs") else "spec.podCIDR"
    result = copy.deepcopy(dict(node))
    with alloc._counting(), alloc._lock:
        if cidrs:
            seen: dict[IPFamily, str] = {}
            for i, text in enumerate(cidrs):
                where = f"{field}[{i}]" if field == "spec.podCIDRs" else field
                try:
                    net = parse_network(text)
                    if net.family in seen:
                        raise InvalidConfigError(
                            f"two {net.family} pod CIDRs ({seen[net.family]!r} and {text!r})",
                            value=text,
                        )
                    seen[net.family] = text
                    alloc._claims(name, [net])
                except IPAMError as exc:
                    raise _named(exc, where) from None
            NodeCIDRAllocator.occupy(alloc, name, cidrs)
        else:
            cidrs = [str(c) for c in NodeCIDRAllocator.allocate(alloc, name)]
    spec = result.get("spec")
    spec = dict(spec) if isinstance(spec, Mapping) else {}
    spec["podCIDR"] = cidrs[0]
    spec["podCIDRs"] = list(cidrs)
    result["spec"] = spec
    return result
