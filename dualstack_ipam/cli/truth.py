"""The cluster's truth for ``reconcile``: Node and Service objects, as kubectl prints them.

``kubectl get nodes,svc -A -o yaml`` prints one ``kind: List`` document whose
``items`` are the Nodes and Services; a stream of Node and Service
documents (YAML separated by ``---``, or JSON) is read the same way, as are
the API's typed lists (``NodeList``, ``ServiceList``). What each object
holds, in the allocators' terms:

- a Node: its name, and ``spec.podCIDRs`` (``spec.podCIDR`` when the list
  is absent; none when neither is set), read as
  :func:`~dualstack_ipam.cluster.node_objects.read_node` reads them;
- a Service: its key ``namespace/name``
  (:func:`~dualstack_ipam.service_key`), and ``spec.clusterIPs``
  (``spec.clusterIP`` when the list is absent); a headless Service
  (``None``), an ``ExternalName`` one or one without an address yet holds
  none.

Everything is checked before any store is opened, and an error names the
document and the field: an object of another kind, a malformed name, an
address or CIDR that does not parse, two of one family, a key twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dualstack_ipam import service_key
from dualstack_ipam.cli.ground import CLIError
from dualstack_ipam.cli.manifests import parse_documents, read_source
from dualstack_ipam.cluster.node_objects import read_node
from dualstack_ipam.errors import IPAMError
from dualstack_ipam.net import parse_address, parse_network

__all__ = ["Truth", "read_truth", "truth_of"]

_LISTS = ("List", "NodeList", "ServiceList")


@attrs.frozen
class Truth:
    """What the cluster holds, by key, as :meth:`reconcile` takes it.

    Attributes:
        nodes: node name -> its pod CIDRs (text), or None when the truth
            holds no Node object (then nodes are not reconciled).
        services: Service key -> its cluster IPs (text), or None when the
            truth holds no Service object.
        sources: the sources read, as messages name them.
    """

    nodes: dict[str, list[str]] | None
    services: dict[str, list[str]] | None
    sources: tuple[str, ...]


def _one_per_family(texts: Sequence[str], field: str, parse: Any) -> None:
    families: dict[Any, str] = {}
    for i, text in enumerate(texts):
        try:
            family = parse(text)
        except IPAMError as exc:
            raise CLIError(f"{field}[{i}]: {exc}") from None
        if family in families:
            raise CLIError(f"{field}: two {family} entries ({families[family]!r} and {text!r})")
        families[family] = text


def _node(item: Any) -> tuple[str, list[str]]:
    try:
        name, cidrs = read_node(item)
    except IPAMError as exc:
        raise CLIError(str(exc)) from None
    spec = item.get("spec") or {}
    field = "spec.podCIDRs" if spec.get("podCIDRs") else "spec.podCIDR"
    _one_per_family(cidrs, f"Node {name!r} {field}", lambda text: parse_network(text).family)
    return name, cidrs


def _service_ips(key: str, spec: Any) -> list[str]:
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise CLIError(f"Service {key!r} spec: must be a mapping, got {spec!r}")
    if spec.get("type") == "ExternalName":
        return []
    ips, single = spec.get("clusterIPs"), spec.get("clusterIP")
    if single is not None and not isinstance(single, str):
        raise CLIError(f"Service {key!r} spec.clusterIP: must be a str, got {single!r}")
    if ips is None or ips == []:
        field, ips = "spec.clusterIP", [single] if single else []
    else:
        field = "spec.clusterIPs"
        if not isinstance(ips, list) or not all(isinstance(ip, str) and ip for ip in ips):
            raise CLIError(f"Service {key!r} spec.clusterIPs: must be a list of str, got {ips!r}")
        if single and single != ips[0]:
            raise CLIError(
                f"Service {key!r} spec.clusterIP: must equal spec.clusterIPs[0] "
                f"({ips[0]!r}), got {single!r}"
            )
    if ips == ["None"]:
        return []  # headless
    _one_per_family(ips, f"Service {key!r} {field}", lambda text: parse_address(text)[1])
    return list(ips)


def _service(item: Any) -> tuple[str, list[str]]:
    try:
        key = service_key(item)
    except IPAMError as exc:
        raise CLIError(str(exc)) from None
    return key, _service_ips(key, item.get("spec"))


def _items(docs: Sequence[Any], name: str) -> list[tuple[str, Any]]:
    """``(label, object)`` for every object of the documents, lists opened."""
    found: list[tuple[str, Any]] = []
    for i, doc in enumerate(docs, 1):
        label = f"{name} document {i}"
        if isinstance(doc, Mapping) and doc.get("kind") in _LISTS:
            items = doc.get("items")
            if not isinstance(items, list):
                raise CLIError(f"{label}: items: must be a list, got {items!r}")
            found.extend((f"{label} items[{j}]", item) for j, item in enumerate(items))
        elif doc is not None:
            found.append((label, doc))
    return found


def truth_of(docs: Sequence[Any], name: str = "TRUTH") -> Truth:
    """The :class:`Truth` in parsed documents (``docs`` from source ``name``).

    Raises:
        CLIError: an object that is not a Node or a Service, or a bad field,
            naming the document and the field; a key twice; no Node and no
            Service at all (exit 2).

    Complexity:
        O(size of ``docs``).

    >>> node = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}}
    >>> svc = {"kind": "Service", "metadata": {"name": "dns"}, "spec": {"clusterIP": "None"}}
    >>> truth_of([{"kind": "List", "items": [node, svc]}])
    Truth(nodes={'n1': ['10.244.1.0/24']}, services={'default/dns': []}, sources=('TRUTH',))
    >>> truth_of([{"kind": "Pod", "metadata": {"name": "x"}}], "stdin")
    Traceback (most recent call last):
    ...
    dualstack_ipam.cli.ground.CLIError: stdin document 1: kind: must be Node or Service, got 'Pod'
    """
    return _collect([(label, item) for label, item in _items(docs, name)], (name,))


def _collect(items: Sequence[tuple[str, Any]], sources: tuple[str, ...]) -> Truth:
    nodes: dict[str, list[str]] = {}
    services: dict[str, list[str]] = {}
    where: dict[tuple[str, str], str] = {}
    seen_nodes = seen_services = False
    for label, item in items:
        kind = item.get("kind") if isinstance(item, Mapping) else None
        if kind not in ("Node", "Service"):
            shown = kind if isinstance(item, Mapping) else item
            what = "kind" if isinstance(item, Mapping) else "object"
            raise CLIError(f"{label}: {what}: must be Node or Service, got {shown!r}")
        try:
            key, held = _node(item) if kind == "Node" else _service(item)
        except CLIError as exc:
            raise CLIError(f"{label}: {exc}") from None
        if (kind, key) in where:
            raise CLIError(f"{label}: {kind} {key!r} again (first in {where[kind, key]})")
        where[kind, key] = label
        if kind == "Node":
            nodes[key], seen_nodes = held, True
        else:
            services[key], seen_services = held, True
    if not (seen_nodes or seen_services):
        raise CLIError(f"no Node and no Service in {', '.join(sources)}")
    return Truth(nodes if seen_nodes else None, services if seen_services else None, sources)


def read_truth(sources: Sequence[str]) -> Truth:
    """The :class:`Truth` in files ``sources`` (``-``: stdin), all read and checked.

    Raises:
        CLIError: no source; a source that is not UTF-8, YAML or JSON data;
            any error of :func:`truth_of` (exit 2).
        OSError: a file cannot be read (exit 2).

    Complexity:
        O(total size of the sources).
    """
    if not sources:
        raise CLIError("reconcile needs the truth: -f FILE ('-' for stdin)")
    items: list[tuple[str, Any]] = []
    names: list[str] = []
    for source in sources:
        name = "stdin" if source == "-" else source
        names.append(name)
        items.extend(_items(parse_documents(read_source(source), name), name))
    return _collect(items, tuple(names))
